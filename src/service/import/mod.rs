//! `forge users import` and `forge users export`: moving users in from
//! another system, with their password hashes, and out again.
//!
//! The import is a pipeline of two stages that run at once: a reader thread
//! reads the file ([`formats`]) and checks each row with the domain's own
//! parsers (`Email::parse`, `Phone::parse`, `RoleName::parse`,
//! `ImportedHash::parse`), and the writer sends batches of valid rows to the
//! store ([`ImportStore::import_users`], one transaction a batch). A bounded
//! channel between them keeps memory flat: a million-row file never holds
//! more than a few batches. Rows are rejected, not fatal: each one goes to
//! the report with its line and reason (never its hash), and the import
//! goes on. Hashes are stored as they are and upgraded to argon2id by the
//! user's next sign-in (`crypto::password`).
//!
//! Re-running the same file is safe: users already there are skipped when
//! identical and reported as conflicts otherwise, never overwritten.

pub mod formats;

use std::io::{BufRead, BufReader, IsTerminal as _, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::crypto::password::ImportedHash;
use crate::domain::{Email, Phone, RoleName, Timestamp};
use crate::store::{ImportOutcome, ImportUser, Store, Tenant};
pub use formats::{FirebaseHashConfig, Format, RawUser};

/// Rows per transaction: large enough that commits are a small part of the
/// cost and that an index page touched by many rows of a batch is written
/// to the WAL once (measured on SQLite: 1,000 rows a batch gave 16,500
/// rows/s, 5,000 gave 22,000), small enough that a batch holds the SQLite
/// writer for well under a second.
const BATCH: usize = 5000;

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportJob {
    pub file: PathBuf,
    pub format: Format,
    pub dry_run: bool,
    /// Where to write the rejected rows (JSON Lines: line, user, reason).
    pub report: Option<PathBuf>,
    pub firebase: Option<FirebaseHashConfig>,
}

/// The counts an import ends with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Rows read (every record of the file, rejected ones included).
    pub read: u64,
    pub created: u64,
    /// Already there, identical.
    pub unchanged: u64,
    /// Invalid rows, unknown roles and conflicts (each one in the report).
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file or the options are wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// One checked row on its way to the writer.
struct Checked {
    line: u64,
    who: Option<String>,
    user: Result<ImportUser, String>,
}

/// Turns a row of the JSON Lines shape into a user the store takes, or
/// the reason it cannot be imported.
///
/// `ids` gives the user ids (UUIDv7 at the creation time).
pub fn check(raw: RawUser, now: Timestamp, ids: &IdSequence) -> Result<ImportUser, String> {
    let email = raw
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| format!("email {e}"))?;
    let phone = raw
        .phone
        .as_deref()
        .map(Phone::parse)
        .transpose()
        .map_err(|e| format!("phone {e}"))?;
    if email.is_none() && phone.is_none() {
        return Err("neither email nor phone".into());
    }
    if let Some(hash) = &raw.password_hash {
        ImportedHash::parse(hash).map_err(|e| format!("password_hash: {e}"))?;
    }
    let roles = raw
        .roles
        .unwrap_or_default()
        .iter()
        .map(|r| RoleName::parse(r).map_err(|e| format!("role {r:?} {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = match raw.metadata {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(m @ Value::Object(_)) => m,
        Some(_) => return Err("metadata is not a JSON object".into()),
    };
    let created_at = match raw.created_at {
        None | Some(Value::Null) => now,
        Some(v) => parse_time(&v).ok_or("created_at is not an RFC 3339 time or Unix seconds")?,
    };
    let seconds = u64::try_from(created_at).unwrap_or(0);
    Ok(ImportUser {
        id: ids.next(seconds),
        email_verified: raw.email_verified.unwrap_or(false) && email.is_some(),
        phone_verified: raw.phone_verified.unwrap_or(false) && phone.is_some(),
        email,
        phone,
        password_hash: raw.password_hash,
        metadata,
        roles,
        created_at,
    })
}

/// UUIDv7 ids at a user's creation second that increase within a second.
/// Rows without `created_at` all share the import's second: with random
/// ids there, the inserts scatter over the primary-key index (measured on a
/// million such rows: 12,700 rows/s instead of 70,000). An earlier second
/// starts afresh, so an id always carries its user's creation time.
#[derive(Default)]
pub struct IdSequence {
    /// The last second, its random bytes and its counter.
    last: std::cell::Cell<(u64, [u8; 10], u32)>,
}

impl IdSequence {
    fn next(&self, seconds: u64) -> Uuid {
        let (last, mut bytes, counter) = self.last.get();
        let counter = if last == seconds && counter < u32::MAX {
            counter + 1
        } else {
            bytes = rand::random();
            // Start in the lower half so a second has room for 2^31 users.
            rand::random::<u32>() >> 1
        };
        self.last.set((seconds, bytes, counter));
        // Bytes 3..7 of the random part are not touched by the version and
        // variant bits, and the bytes before them stay fixed for the second.
        bytes[3..7].copy_from_slice(&counter.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(seconds.saturating_mul(1000), &bytes).into_uuid()
    }
}

/// RFC 3339, PostgreSQL's text form (`2024-01-02 03:04:05.678+00`),
/// PocketBase's (`2024-01-02 03:04:05.678Z`), or Unix seconds.
fn parse_time(v: &Value) -> Option<Timestamp> {
    use time::format_description::well_known::Rfc3339;
    let s = match v {
        Value::Number(n) => return n.as_i64(),
        Value::String(s) => s.trim(),
        _ => return None,
    };
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let mut t = s.replacen(' ', "T", 1);
    // `+00` or `+0530` as `+00:00`, `+05:30`; no offset as UTC.
    let offset_at = t.rfind(['+', '-']).filter(|&i| i > 10);
    match offset_at {
        Some(i) if t.len() - i == 3 => t.push_str(":00"),
        Some(i) if t.len() - i == 5 && !t[i..].contains(':') => t.insert(i + 3, ':'),
        Some(_) => {}
        None if !t.ends_with(['Z', 'z']) => t.push('Z'),
        None => {}
    }
    time::OffsetDateTime::parse(&t, &Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp())
}

/// Counts the bytes read so far, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Imports `job.file` into `tenant`. Rejected rows are counted, reported
/// and skipped; the import fails only when the file cannot be read or the
/// database fails.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn import(
    store: Arc<dyn Store>,
    tenant: &Tenant,
    job: ImportJob,
    now: Timestamp,
) -> Result<ImportSummary, ImportError> {
    let mut report = match &job.report {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| {
            ImportError::Usage(format!("cannot write the report {}: {e}", path.display()))
        })?)),
        None => None,
    };
    let position = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Checked>(4 * BATCH);
    let reader = {
        let (position, total) = (Arc::clone(&position), Arc::clone(&total));
        let job = job.clone();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("forge-import-reader".into())
            .spawn(move || span.in_scope(|| read_file(&job, now, &position, &total, &tx)))
            .map_err(|e| ImportError::Failed(e.into()))?
    };

    let mut summary = ImportSummary::default();
    let mut progress = Progress::start(job.format == Format::Pocketbase, position, total);
    let mut batch: Vec<ImportUser> = Vec::with_capacity(BATCH);
    let mut rows: Vec<(u64, Option<String>)> = Vec::with_capacity(BATCH);
    let mut reject = |summary: &mut ImportSummary, line: u64, who: Option<String>, reason: &str| {
        summary.rejected += 1;
        match report.as_mut() {
            Some(out) => {
                let row = serde_json::json!({"line": line, "user": who, "reason": reason});
                writeln!(out, "{row}").map_err(|e| ImportError::Failed(e.into()))
            }
            None => Ok(()),
        }
    };
    loop {
        let next = rx.recv().await;
        let done = next.is_none();
        if let Some(row) = next {
            summary.read += 1;
            match row.user {
                Ok(user) => {
                    batch.push(user);
                    rows.push((row.line, row.who));
                }
                Err(reason) => reject(&mut summary, row.line, row.who, &reason)?,
            }
        }
        if batch.len() >= BATCH || (done && !batch.is_empty()) {
            let outcomes = store
                .import_users(tenant.id, std::mem::take(&mut batch), now, job.dry_run)
                .await
                .map_err(|e| ImportError::Failed(anyhow::anyhow!("database: {e}")))?;
            for (outcome, (line, who)) in outcomes.into_iter().zip(rows.drain(..)) {
                match outcome {
                    ImportOutcome::Created => summary.created += 1,
                    ImportOutcome::Unchanged => summary.unchanged += 1,
                    ImportOutcome::Conflict { field } => reject(
                        &mut summary,
                        line,
                        who,
                        &format!("{field} belongs to another user (not overwritten)"),
                    )?,
                    ImportOutcome::UnknownRole(role) => reject(
                        &mut summary,
                        line,
                        who,
                        &format!("role {role:?} does not exist in the tenant"),
                    )?,
                }
            }
            progress.tick(summary.read);
        }
        if done {
            break;
        }
    }
    progress.finish(summary.read);
    if let Some(mut out) = report {
        out.flush().map_err(|e| ImportError::Failed(e.into()))?;
    }
    reader
        .join()
        .map_err(|_| ImportError::Failed(anyhow::anyhow!("the import reader panicked")))??;
    Ok(summary)
}

/// The reader thread: reads, checks and sends rows until the file ends.
fn read_file(
    job: &ImportJob,
    now: Timestamp,
    position: &Arc<AtomicU64>,
    total: &AtomicU64,
    tx: &tokio::sync::mpsc::Sender<Checked>,
) -> Result<(), ImportError> {
    let ids = IdSequence::default();
    let mut emit = |line: u64, raw: Result<RawUser, String>| {
        let (who, user) = match raw {
            Ok(raw) => (raw.who(), check(raw, now, &ids)),
            Err(reason) => (None, Err(reason)),
        };
        if job.format == Format::Pocketbase {
            position.fetch_add(1, Ordering::Relaxed);
        }
        // False once the writer has stopped (a database error).
        tx.blocking_send(Checked { line, who, user }).is_ok()
    };
    if job.format == Format::Pocketbase {
        return formats::read_pocketbase(&job.file, &mut |n| total.store(n, Ordering::Relaxed), &mut emit)
            .map_err(|e| ImportError::Usage(format!("{e:#}")));
    }
    let file = std::fs::File::open(&job.file)
        .map_err(|e| ImportError::Usage(format!("cannot read {}: {e}", job.file.display())))?;
    if let Ok(meta) = file.metadata() {
        total.store(meta.len(), Ordering::Relaxed);
    }
    let mut input = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: file,
            read: Arc::clone(position),
        },
    );
    formats::read_stream(
        job.format,
        &mut input as &mut dyn BufRead,
        job.firebase.as_ref(),
        &mut emit,
    )
    .map_err(|e| ImportError::Usage(format!("{}: {e:#}", job.file.display())))
}

/// Progress on standard error: a bar with rate and ETA on a terminal,
/// a plain line every few seconds otherwise (a log file, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// Rows (PocketBase) or bytes (files) done and in all.
    position: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    started: Instant,
    last_line: Instant,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    fn start(rows: bool, position: Arc<AtomicU64>, total: Arc<AtomicU64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let unit = if rows {
                "{pos}/{len} rows"
            } else {
                "{bytes}/{total_bytes}"
            };
            let bar = indicatif::ProgressBar::new(total.load(Ordering::Relaxed));
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{{bar:30}} {{percent:>3}}% {unit} {{msg}} ETA {{eta}}"
            )) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            position,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn rate(&self, rows: u64) -> u64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 { (rows as f64 / secs) as u64 } else { 0 }
    }

    fn tick(&mut self, rows: u64) {
        let (done, total) = (
            self.position.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let rate = self.rate(rows);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(format!("{rows} rows, {rate} rows/s"));
        } else if self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            let (percent, eta) = if total > 0 && done > 0 {
                let elapsed = self.started.elapsed().as_secs_f64();
                let left = elapsed * (total.saturating_sub(done)) as f64 / done as f64;
                (done * 100 / total, format!("{}s", left.round() as u64))
            } else {
                (0, "?".into())
            };
            eprintln!("forge: import: {rows} rows read, {rate} rows/s, {percent}% done, ETA {eta}");
        }
    }

    fn finish(&mut self, rows: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!("forge: import: {rows} rows in {secs:.1}s ({} rows/s)", self.rate(rows));
    }
}

/// Writes the tenant's users to `out` as JSON Lines (the import shape),
/// with password hashes only when `include_hashes`; returns the count.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn export(
    store: &dyn Store,
    tenant: &Tenant,
    include_hashes: bool,
    out: &mut dyn Write,
) -> Result<u64, ImportError> {
    let mut after = None;
    let mut count = 0;
    loop {
        let page = store
            .export_users(tenant.id, after, BATCH as u32)
            .await
            .map_err(|e| ImportError::Failed(anyhow::anyhow!("database: {e}")))?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.id);
        for (user, hash) in page {
            let mut row = serde_json::Map::new();
            if let Some(email) = &user.email {
                row.insert("email".into(), email.as_str().into());
                row.insert("email_verified".into(), user.email_verified.into());
            }
            if let Some(phone) = &user.phone {
                row.insert("phone".into(), phone.as_str().into());
                row.insert("phone_verified".into(), user.phone_verified.into());
            }
            if let (true, Some(hash)) = (include_hashes, hash) {
                row.insert("password_hash".into(), hash.into());
            }
            row.insert("metadata".into(), user.metadata);
            row.insert("roles".into(), user.roles.into());
            row.insert("created_at".into(), crate::domain::rfc3339(user.created_at).into());
            writeln!(out, "{}", Value::Object(row)).map_err(|e| ImportError::Failed(e.into()))?;
            count += 1;
        }
    }
    out.flush().map_err(|e| ImportError::Failed(e.into()))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_exported_spelling() {
        let t = 1_704_164_645; // 2024-01-02T03:04:05Z
        for s in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.678Z",
            "2024-01-02 03:04:05.678+00",
            "2024-01-02 03:04:05+00:00",
            "2024-01-02 03:04:05.678Z",
            "2024-01-02T05:04:05+0200",
            "2024-01-02 03:04:05",
            "1704164645",
        ] {
            assert_eq!(parse_time(&Value::from(s)), Some(t), "{s}");
        }
        assert_eq!(parse_time(&Value::from(t)), Some(t));
        assert_eq!(parse_time(&Value::from("yesterday")), None);
    }

    #[test]
    fn ids_follow_the_creation_time_and_increase_within_a_second() {
        let ids = IdSequence::default();
        let user = |n: u32, created_at: Option<Value>| {
            let raw = RawUser {
                email: Some(format!("u{n}@example.com")),
                created_at,
                ..RawUser::default()
            };
            check(raw, 1_700_000_000, &ids).unwrap().id
        };
        let same_second: Vec<Uuid> = (0..1000).map(|n| user(n, None)).collect();
        assert!(same_second.windows(2).all(|w| w[0] < w[1]));
        let old = user(0, Some(Value::from("2001-02-03T04:05:06Z")));
        let (secs, _) = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 981_173_106, 0))
            .get_timestamp()
            .unwrap()
            .to_unix();
        assert_eq!(old.get_timestamp().unwrap().to_unix().0, secs);
    }

    #[test]
    fn check_refuses_what_forge_would_not_store() {
        let ids = IdSequence::default();
        let ok = |raw: RawUser| check(raw, 0, &ids);
        let base = RawUser {
            email: Some("Ann@Example.com".into()),
            ..RawUser::default()
        };
        assert_eq!(ok(base.clone()).unwrap().email.unwrap().as_str(), "ann@example.com");
        let cases = [
            (RawUser::default(), "neither email nor phone"),
            (
                RawUser {
                    email: Some("nope".into()),
                    ..RawUser::default()
                },
                "email",
            ),
            (
                RawUser {
                    password_hash: Some("md5$x$y".into()),
                    ..base.clone()
                },
                "password_hash: unknown password hash format",
            ),
            (
                RawUser {
                    roles: Some(vec!["Not A Role".into()]),
                    ..base.clone()
                },
                "role",
            ),
            (
                RawUser {
                    metadata: Some(Value::from(3)),
                    ..base.clone()
                },
                "metadata",
            ),
        ];
        for (raw, why) in cases {
            let e = ok(raw).unwrap_err();
            assert!(e.starts_with(why), "{e}");
        }
    }
}
