//! WAL checkpoints on their own thread and connection, not the writer's.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses 1000
//! WAL pages, on the committing connection: with one writer, every write
//! queued behind that commit waited for the copy of the WAL into the
//! database and its two `fsync`s. Under concurrent refreshes that was
//! about a tenth of the writer's time: with the bulk of the copy here,
//! refresh went from about 8.9 to 10.5 k/s on one core (the bench's
//! refresh run, alternating builds).
//!
//! The writer nudges after each commit; the thread runs a `PASSIVE`
//! checkpoint (it never blocks the writer or a reader) at most every
//! [`EVERY`], and the writer then copies the few pages committed while it
//! ran (see [`Nudge::committed`]), so the WAL holds about that long of
//! writes plus what readers still need. Durability is unchanged: with
//! `synchronous = NORMAL` a commit reaches the WAL file before its caller
//! hears, and a power cut can lose the writes since the last checkpoint's
//! `fsync`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// The least time between two checkpoints under a steady stream of writes.
const EVERY: Duration = Duration::from_millis(100);

/// The writer's end.
pub(super) struct Nudge {
    wake: mpsc::SyncSender<()>,
    copied: Arc<AtomicBool>,
}

impl Nudge {
    /// Called by the writer after each commit, on its connection. Nudges
    /// the thread (a nudge already waiting covers this one) and, when the
    /// thread has just copied the WAL, checkpoints the few pages committed
    /// since. Only a checkpoint by the writer between its transactions
    /// leaves the WAL fully copied when the writer next begins, which is
    /// when SQLite starts the WAL over from its beginning; without it the
    /// file grew by megabytes a second under a steady stream of writes.
    pub fn committed(&self, writer: &Connection) {
        if self.copied.swap(false, Ordering::AcqRel) {
            checkpoint(writer);
        }
        let _ = self.wake.try_send(());
    }
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL checkpoint failed; the next commit retries it");
    }
}

/// Starts the checkpoint thread on `conn` (a connection of its own to the
/// writer's database, in WAL mode). It ends when the [`Nudge`] is dropped,
/// after a last checkpoint of what it was nudged for.
pub(super) fn start(conn: Connection) -> std::io::Result<Nudge> {
    let (wake, woken) = mpsc::sync_channel(1);
    let copied = Arc::new(AtomicBool::new(false));
    let done = copied.clone();
    std::thread::Builder::new()
        .name("forge-sqlite-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                checkpoint(&conn);
                done.store(true, Ordering::Release);
                std::thread::sleep(EVERY);
            }
        })?;
    Ok(Nudge { wake, copied })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh WAL database with one table `t (b BLOB)` and its writer's
    /// own checkpoints off; the directory lives as long as the guard.
    fn wal_database() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (b BLOB)")
            .unwrap();
        (dir, path, writer)
    }

    /// Only a checkpoint writes the database file in WAL mode: with the
    /// writer's own turned off, a megabyte committed reaches the file once
    /// the thread has been nudged.
    #[test]
    fn a_nudge_moves_committed_pages_into_the_database_file() {
        let (_dir, path, writer) = wal_database();
        let nudge = start(Connection::open(&path).unwrap()).unwrap();
        writer.execute("INSERT INTO t VALUES (zeroblob(1048576))", []).unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        assert!(size() < 1 << 20, "nothing is checkpointed before the nudge");
        nudge.committed(&writer);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size() < 1 << 20 {
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The WAL file's size after `cycles` of writes that never pause: each
    /// transaction is already open when the other connection's checkpoint
    /// (the thread's step, done by hand) copies what was committed before
    /// it. `writer_copies` runs [`Nudge::committed`] after each commit.
    fn wal_after(cycles: usize, writer_copies: bool) -> u64 {
        let (dir, path, writer) = wal_database();
        let thread = Connection::open(&path).unwrap();
        let (wake, _woken) = mpsc::sync_channel(1);
        let nudge = Nudge {
            wake,
            copied: Arc::new(AtomicBool::new(false)),
        };
        for _ in 0..cycles {
            writer
                .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (zeroblob(16384))")
                .unwrap();
            checkpoint(&thread);
            nudge.copied.store(true, Ordering::Release);
            writer
                .execute_batch("DELETE FROM t WHERE rowid < (SELECT max(rowid) FROM t); COMMIT")
                .unwrap();
            if writer_copies {
                nudge.committed(&writer);
            }
        }
        std::fs::metadata(dir.path().join("t.db-wal")).unwrap().len()
    }

    /// Without the writer's own copy of the last pages, a WAL that the
    /// thread keeps checkpointing still only grows (every cycle appends);
    /// with it, SQLite starts the WAL over and the file stays the size of
    /// a few transactions.
    #[test]
    fn the_wal_starts_over_under_writes_that_never_pause() {
        let grown = wal_after(100, false);
        let kept = wal_after(100, true);
        assert!(
            grown > 1 << 20,
            "the scenario must grow an unchecked WAL: {grown} bytes"
        );
        assert!(
            kept < 256 << 10,
            "the WAL grew to {kept} bytes (without the writer's copy: {grown})"
        );
    }
}
