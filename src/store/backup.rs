//! Backups of a SQLite database file, and restoring one: the file-level
//! work behind scheduled backups (`service::backups`), `forge restore` and
//! `forge doctor`. Everything here is blocking (rusqlite and the file
//! system): callers run it in `spawn_blocking`.
//!
//! Invariants:
//! - A copy is taken with SQLite's online backup API from a read
//!   connection in one step, so it is one consistent snapshot (WAL lets
//!   writers go on meanwhile). It is written under a hidden temporary name,
//!   switched to `DELETE` journal mode (a copy is one self-contained file),
//!   checked with `PRAGMA integrity_check`, synced, and only then renamed
//!   to its final `forge-<UTC time>.db` name: a file with that name is
//!   always complete and checked. A copy that fails its check is deleted
//!   and the older copies stay.
//! - Names sort by time, so pruning keeps the last `keep` names.
//! - A running server holds a shared lock on `<db>-lock`, an empty file
//!   next to the database, for its whole life; `forge restore` needs the
//!   exclusive lock on the same file. The lock is the kernel's (`flock`),
//!   so it goes away with the process however it ends: no stale pid file
//!   to clean up after a crash, and a server starting during a restore is
//!   refused too. It does not
//!   work across hosts on a network file system, where SQLite itself is
//!   not safe either.
//! - A restore replaces the database with one `rename` after the copy is
//!   verified (integrity, a forge database, no migration newer than this
//!   binary's), and keeps the previous database as
//!   `<db>.before-restore-<time>`.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use time::OffsetDateTime;
use time::macros::format_description;

use super::sqlite::SqliteTarget;

const PREFIX: &str = "forge-";
const SUFFIX: &str = ".db";
/// `forge-2026-11-26T08-15-30.123Z.db`: sorts by time, no `:` (Windows, URLs).
const NAME_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]-[minute]-[second].[subsecond digits:3]Z");

/// The database file a `sqlite:` URL names; `None` for memory or other backends.
pub fn database_file(url: &str) -> Option<PathBuf> {
    match SqliteTarget::from_url(url)? {
        SqliteTarget::File(path) => Some(path),
        SqliteTarget::Memory => None,
    }
}

/// `dir` resolved against the database file's directory when relative.
pub fn resolve_dir(database: &Path, dir: &str) -> PathBuf {
    let dir = Path::new(dir);
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    match database.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(dir),
        _ => dir.to_path_buf(),
    }
}

/// One finished copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    pub path: PathBuf,
    /// When the copy was taken, Unix seconds (from its name).
    pub taken_at: i64,
    pub bytes: u64,
}

fn file_name(at: OffsetDateTime) -> anyhow::Result<String> {
    Ok(format!("{PREFIX}{}{SUFFIX}", at.format(NAME_TIME)?))
}

fn taken_at(name: &str) -> Option<i64> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let at = time::PrimitiveDateTime::parse(stamp, NAME_TIME).ok()?;
    Some(at.assume_utc().unix_timestamp())
}

/// The finished copies in `dir`, oldest first. A missing directory has none.
pub fn list(dir: &Path) -> std::io::Result<Vec<BackupFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(at) = name.to_str().and_then(taken_at) else {
            continue;
        };
        let meta = entry.metadata()?;
        if meta.is_file() {
            files.push(BackupFile {
                path: entry.path(),
                taken_at: at,
                bytes: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Deletes all but the newest `keep` copies; returns the deleted paths.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let files = list(dir)?;
    let excess = files.len().saturating_sub(keep.max(1));
    let mut deleted = Vec::new();
    for file in files.into_iter().take(excess) {
        std::fs::remove_file(&file.path)?;
        deleted.push(file.path);
    }
    Ok(deleted)
}

/// Takes one checked copy of `database` into `dir` (created if needed).
/// On a failed integrity check the copy is deleted and an error returned.
pub fn take(database: &Path, dir: &Path) -> anyhow::Result<BackupFile> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create backup.dir {}", dir.display()))?;
    let now = OffsetDateTime::now_utc();
    let path = dir.join(file_name(now)?);
    copy_to(database, &path)?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(BackupFile {
        path,
        taken_at: now.unix_timestamp(),
        bytes,
    })
}

/// Writes one checked copy of `database` to `dest` (`forge backup FILE`,
/// and each scheduled copy): into a partial file beside it, checked with
/// `PRAGMA integrity_check`, then renamed, so `dest` is never a half or a
/// damaged copy. On failure the partial file is deleted.
pub fn copy_to(database: &Path, dest: &Path) -> anyhow::Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .with_context(|| format!("{} names no file", dest.display()))?;
    // Unique even when two copies start in the same millisecond (the
    // schedule and a manual run).
    let partial = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    if let Err(e) = copy_and_check(database, &partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, dest).with_context(|| format!("cannot rename the copy to {}", dest.display()))?;
    sync_dir(dir);
    Ok(())
}

fn copy_and_check(database: &Path, dest: &Path) -> anyhow::Result<()> {
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the database {}", database.display()))?;
    source.busy_timeout(Duration::from_secs(10))?;
    {
        let mut target = Connection::open(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
            // All pages in one step: one read transaction, one snapshot.
            // Busy or locked (a checkpoint under way) is worth a few retries.
            let mut tries = 0;
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    _ => bail!("the database stayed busy; no copy taken"),
                }
            }
        }
        // The source is in WAL mode and the copy inherits it: one file is
        // what a copy should be.
        target.pragma_update(None, "journal_mode", "DELETE")?;
        integrity_check(&target)?;
    }
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", dest.display()))?;
    Ok(())
}

/// `PRAGMA integrity_check` on an open connection: `ok` or the first problems.
fn integrity_check(conn: &Connection) -> anyhow::Result<()> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(5)")?;
    let rows: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok(());
    }
    bail!("integrity check failed: {}", rows.join("; "))
}

/// Checks the file at `path` with `PRAGMA integrity_check` (opened read-only).
pub fn check_file(path: &Path) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    integrity_check(&conn).map_err(|e| e.context(format!("{} is damaged", path.display())))
}

/// Best effort: makes a rename durable on file systems that need it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The migrations a database records as applied (`version`, `name`), oldest
/// first; `None` when it has no migration history (not a forge database).
pub fn applied_migrations(conn: &Connection) -> anyhow::Result<Option<Vec<(i64, String)>>> {
    let has_history: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
        [],
        |r| r.get(0),
    )?;
    if !has_history {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT version, name FROM refinery_schema_history ORDER BY version")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(rows))
}

/// Checks that `path` is a sound forge database this binary can run:
/// integrity, a migration history whose every entry is one of
/// `known` (`version`, `name`), and users and tenants tables. Returns the
/// newest applied migration version.
pub fn verify_forge_database(path: &Path, known: &[(i64, String)]) -> anyhow::Result<i64> {
    verify_as(path, path, known)
}

/// [`verify_forge_database`] on `path`, naming `shown` in the errors.
fn verify_as(path: &Path, shown: &Path, known: &[(i64, String)]) -> anyhow::Result<i64> {
    let path_shown = shown;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path_shown.display()))?;
    integrity_check(&conn).with_context(|| format!("{} is damaged", path_shown.display()))?;
    let applied = applied_migrations(&conn)
        .with_context(|| format!("{} is not a forge database", path_shown.display()))?
        .with_context(|| {
            format!(
                "{} is not a forge database (no migration history)",
                path_shown.display()
            )
        })?;
    let newest_known = known.iter().map(|(v, _)| *v).max().unwrap_or(0);
    for (version, name) in &applied {
        if *version > newest_known {
            bail!(
                "{} was written by a newer forge (migration V{version}__{name}; this binary knows up to V{newest_known})",
                path_shown.display()
            );
        }
        if !known.iter().any(|(v, n)| v == version && n == name) {
            bail!(
                "{} is not a forge database (unknown migration V{version}__{name})",
                path_shown.display()
            );
        }
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'tenants')",
        [],
        |r| r.get(0),
    )?;
    if tables != 2 {
        bail!(
            "{} is not a forge database (no users or tenants table)",
            path_shown.display()
        );
    }
    Ok(applied.last().map(|(v, _)| *v).unwrap_or(0))
}

/// The lock a running server holds on its database (see the module docs).
pub struct ServerLock {
    // Held, never read: the open file's lock is the hold.
    _file: File,
    path: PathBuf,
}

impl std::fmt::Debug for ServerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLock").field("path", &self.path).finish()
    }
}

/// `<db>-lock`, next to the database.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Takes the lock at once or not at all; `busy` is the refusal's message.
fn hold(database: &Path, exclusive: bool, busy: impl FnOnce(&Path) -> String) -> anyhow::Result<ServerLock> {
    let path = lock_path(database);
    // Never truncated: its content does not matter (an older forge kept a
    // small SQLite file there), only the lock on it.
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let taken = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match taken {
        Ok(()) => Ok(ServerLock { _file: file, path }),
        Err(TryLockError::WouldBlock) => Err(anyhow::anyhow!(busy(&path))),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

impl ServerLock {
    /// The server's shared hold: several servers may share a database file
    /// (SQLite allows it), a restore may not run under any of them.
    pub fn serving(database: &Path) -> anyhow::Result<Self> {
        hold(database, false, |path| {
            format!(
                "a restore of {} is under way (it holds {})",
                database.display(),
                path.display()
            )
        })
    }

    /// The exclusive hold `forge restore` needs; refused while a server runs.
    pub fn exclusive(database: &Path) -> anyhow::Result<Self> {
        hold(database, true, |path| {
            format!(
                "{} is in use by a running forge server (it holds {}); stop the server first",
                database.display(),
                path.display()
            )
        })
    }
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the database that was replaced now is (none when there was none).
    pub previous: Option<PathBuf>,
    /// The newest migration of the restored copy.
    pub version: i64,
}

/// Replaces `database` with the copy at `from` (see the module docs).
/// `known` lists this binary's migrations. Refused while a server runs.
pub fn restore(database: &Path, from: &Path, known: &[(i64, String)]) -> anyhow::Result<Restored> {
    let _lock = ServerLock::exclusive(database)?;
    if !from.is_file() {
        bail!("{} is not a file", from.display());
    }
    let stamp = OffsetDateTime::now_utc().format(NAME_TIME)?;
    let mut staged = database.as_os_str().to_owned();
    staged.push(format!(".restore-{stamp}.partial"));
    let staged = PathBuf::from(staged);
    // Work on a copy next to the database: the operator's file is never
    // touched, and the final rename stays on one file system.
    let outcome = stage(from, &staged, known);
    let version = match outcome {
        Ok(version) => version,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    let previous = if database.exists() {
        Some(set_aside(database, &stamp)?)
    } else {
        None
    };
    std::fs::rename(&staged, database).with_context(|| format!("cannot move the copy to {}", database.display()))?;
    if let Some(dir) = database.parent() {
        sync_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
    }
    Ok(Restored { previous, version })
}

fn stage(from: &Path, staged: &Path, known: &[(i64, String)]) -> anyhow::Result<i64> {
    std::fs::copy(from, staged).with_context(|| format!("cannot copy {}", from.display()))?;
    let version = verify_as(staged, from, known)?;
    for side in ["-wal", "-shm", "-journal"] {
        let mut p = staged.as_os_str().to_owned();
        p.push(side);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::File::open(staged)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", staged.display()))?;
    Ok(version)
}

/// Folds the old database's WAL into it, keeps it as
/// `<db>.before-restore-<time>` and removes its `-wal`/`-shm` files, which
/// would otherwise be replayed onto the restored database.
fn set_aside(database: &Path, stamp: &str) -> anyhow::Result<PathBuf> {
    {
        let conn = Connection::open(database).with_context(|| format!("cannot open {}", database.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .with_context(|| format!("cannot checkpoint {}", database.display()))?;
    }
    let mut kept = database.as_os_str().to_owned();
    kept.push(format!(".before-restore-{stamp}"));
    let kept = PathBuf::from(kept);
    // A hard link keeps the database in place until the rename replaces it.
    if std::fs::hard_link(database, &kept).is_err() {
        std::fs::copy(database, &kept)
            .with_context(|| format!("cannot keep the old database as {}", kept.display()))?;
    }
    for side in ["-wal", "-shm"] {
        let mut p = database.as_os_str().to_owned();
        p.push(side);
        match std::fs::remove_file(PathBuf::from(&p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", PathBuf::from(p).display())),
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse_back() {
        let at = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let name = file_name(at).unwrap();
        assert_eq!(taken_at(&name), Some(1_790_000_000), "{name}");
        assert!(!name.contains(':'));
        assert_eq!(taken_at("forge-nonsense.db"), None);
        assert_eq!(taken_at(".forge-2026-01-01T00-00-00.000Z.db.partial"), None);
    }

    #[test]
    fn relative_dirs_follow_the_database() {
        assert_eq!(
            resolve_dir(Path::new("/data/forge.db"), "backups"),
            PathBuf::from("/data/backups")
        );
        assert_eq!(resolve_dir(Path::new("forge.db"), "backups"), PathBuf::from("backups"));
        assert_eq!(
            resolve_dir(Path::new("/data/forge.db"), "/srv/b"),
            PathBuf::from("/srv/b")
        );
    }

    #[test]
    fn a_server_lock_shuts_out_a_restore_and_the_reverse() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("forge.db");
        let serving = ServerLock::serving(&db).unwrap();
        let also = ServerLock::serving(&db).unwrap();
        let err = ServerLock::exclusive(&db).unwrap_err().to_string();
        assert!(err.contains("running forge server"), "{err}");
        drop((serving, also));
        let restoring = ServerLock::exclusive(&db).unwrap();
        let err = ServerLock::serving(&db).unwrap_err().to_string();
        assert!(err.contains("restore"), "{err}");
        drop(restoring);
        ServerLock::serving(&db).unwrap();
    }

    #[test]
    fn copies_are_checked_listed_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("src.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let out = dir.path().join("backups");
        let first = take(&db, &out).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        take(&db, &out).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let last = take(&db, &out).unwrap();
        check_file(&last.path).unwrap();
        let n: i64 = Connection::open(&last.path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(list(&out).unwrap().len(), 3);
        assert_eq!(prune(&out, 2).unwrap(), vec![first.path]);
        assert_eq!(list(&out).unwrap().last().unwrap().path, last.path);

        // A failed copy leaves nothing behind and the older copies alone.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, "not a database ".repeat(500)).unwrap();
        assert!(take(&junk, &out).is_err());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "no partial file stays");

        // A damaged file fails the check.
        let mut bytes = std::fs::read(&last.path).unwrap();
        for b in bytes.iter_mut().skip(4096).take(4096) {
            *b = 0x5a;
        }
        let bad = dir.path().join("bad.db");
        std::fs::write(&bad, &bytes).unwrap();
        assert!(check_file(&bad).is_err());
        // Not a forge database.
        let err = verify_forge_database(&last.path, &[(1, "init".into())]).unwrap_err();
        assert!(format!("{err:#}").contains("not a forge database"), "{err:#}");
    }
}
