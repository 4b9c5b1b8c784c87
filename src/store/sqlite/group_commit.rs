//! Group commit: the one writer connection lives on its own thread, which
//! takes every write job waiting in its queue (at most [`MAX_BATCH`]) into
//! one `BEGIN IMMEDIATE … COMMIT`. Concurrent sign-ins and refreshes then
//! share a commit (one WAL append of the pages they touch, no lock hand-off
//! between threads) instead of paying one each.
//!
//! Invariants:
//! - Each job is still atomic: it runs inside its own `SAVEPOINT`, and a job
//!   that fails (or panics) is rolled back to it alone; the others in the
//!   batch are unaffected.
//! - A caller is answered only after the commit that holds its job: `Ok`
//!   means committed. If the commit fails, or SQLite abandons the
//!   transaction mid-batch (a full disk or an I/O error may roll it back on
//!   its own), every job of that transaction gets the error and none of its
//!   changes stand.
//! - Durability is the connection's `synchronous` level, unchanged: WAL
//!   with `NORMAL` (see `configure`), so an acknowledged write survives the
//!   process being killed; a power cut can lose the writes since the last
//!   checkpoint's `fsync`, never corrupt the file.
//! - The thread ends when the store is dropped (its queue closes) after it
//!   has finished what is queued.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::Nudge;
use crate::store::{StoreError, StoreResult};

/// At most this many jobs share one transaction, so a batch's WAL append
/// stays small and no caller waits behind an unbounded queue of others.
const MAX_BATCH: usize = 64;

/// What a job does once its transaction's fate is known: `None` when it
/// committed, else why not.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A write job: runs in its own savepoint of the batch's transaction, or,
/// given no connection (the transaction could not begin), does not run.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Finish + Send>;

pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Moves `conn` to the writer thread, which nudges `checkpoints` (if
    /// any) after each commit.
    pub fn start(conn: Connection, checkpoints: Option<Nudge>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("forge-sqlite-writer".into())
            .spawn(move || run(conn, queue, checkpoints))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in the next batch, carrying the caller's span; answers once
    /// that batch has committed (or failed).
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |conn| {
            let outcome = conn.map(|conn| span.in_scope(|| in_savepoint(conn, f)));
            Box::new(move |failed: Option<&StoreError>| {
                let result = match (outcome, failed) {
                    (Some(Err(e)), _) => Err(e),
                    (_, Some(e)) => Err(copy_error(e)),
                    (Some(Ok(value)), None) => Ok(value),
                    (None, None) => Err(StoreError::Internal(anyhow::anyhow!("a database write never ran"))),
                };
                // The caller may have gone (its request was dropped); the
                // write stands all the same, as a blocking task's would.
                let _ = done.send(result);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Internal(anyhow::anyhow!("the database writer dropped a write")))?
    }
}

/// Runs one job in a savepoint: released when it succeeds, rolled back when
/// it fails or panics (the panic costs that job, not the writer).
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Internal(anyhow::anyhow!("a database write panicked"))));
    if outcome.is_ok() {
        conn.execute_batch("RELEASE job")?;
    } else if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
    }
    outcome
}

/// The batch's error once per job (`StoreError` holds an `anyhow::Error`,
/// which does not clone).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Conflict { field } => StoreError::Conflict { field },
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        StoreError::Internal(e) => StoreError::Internal(anyhow::anyhow!("{e:#}")),
    }
}

fn run(conn: Connection, queue: mpsc::Receiver<Job>, checkpoints: Option<Nudge>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch);
        if let Some(checkpoints) = &checkpoints {
            checkpoints.committed(&conn);
        }
    }
}

/// One transaction for `batch`; every job is answered before it returns.
fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    let mut waiting: Vec<Finish> = Vec::with_capacity(batch.len());
    let mut open = false;
    for job in batch {
        if !open {
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                let e = StoreError::from(e);
                job(None)(Some(&e));
                continue;
            }
            open = true;
        }
        let finish = job(Some(conn));
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (full disk, I/O
            // error): this job and every one before it in it are lost.
            let e = StoreError::Internal(anyhow::anyhow!("the database rolled back a write transaction"));
            for f in waiting.drain(..) {
                f(Some(&e));
            }
            finish(Some(&e));
            open = false;
            continue;
        }
        waiting.push(finish);
    }
    if !open {
        return;
    }
    let failed = conn.execute_batch("COMMIT").err().map(StoreError::from);
    if failed.is_some() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for f in waiting {
        f(failed.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Writes that queue while the writer is busy share the next commit:
    /// each of twenty inserts waiting behind a slow write looks through a
    /// second connection and finds none of the others committed (they are
    /// all in one open transaction); every one is committed when its caller
    /// hears.
    #[tokio::test]
    async fn writes_waiting_for_the_writer_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        let reader = Arc::new(Mutex::new(Connection::open(&path).unwrap()));
        let committed = {
            let reader = reader.clone();
            move || -> i64 {
                let reader = reader.lock().unwrap();
                reader.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap()
            }
        };
        let writer = Writer::start(conn, None).unwrap();
        let (started, running) = mpsc::channel();
        let (release, held) = mpsc::channel::<()>();
        // A write joins the queue when first polled.
        let mut slow = Box::pin(writer.write(move |_| {
            started.send(()).unwrap();
            held.recv().unwrap();
            Ok(())
        }));
        assert!(futures::poll!(slow.as_mut()).is_pending());
        tokio::task::spawn_blocking(move || running.recv().unwrap())
            .await
            .unwrap();

        let mut waiting: Vec<_> = (0..20)
            .map(|i| {
                let committed = committed.clone();
                Box::pin(writer.write(move |c| {
                    c.execute("INSERT INTO t (x) VALUES (?1)", [i])?;
                    Ok(committed())
                }))
            })
            .collect();
        for write in &mut waiting {
            assert!(futures::poll!(write.as_mut()).is_pending());
        }
        release.send(()).unwrap();
        slow.await.unwrap();
        for write in waiting {
            assert_eq!(
                write.await.unwrap(),
                0,
                "another write of the batch was committed apart"
            );
        }
        assert_eq!(committed(), 20);
    }
}
