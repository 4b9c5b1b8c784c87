//! Scheduled backups (`backup.schedule`): the server's background task
//! that takes a checked copy of the SQLite database every period and keeps
//! the last `backup.keep` (the file work is `store::backup`), and the
//! backup status `/health/ready`, the admin dashboard and `forge doctor`
//! show.
//!
//! The status is kept in memory, seeded at start from the copies already in
//! `backup.dir`, so a restart neither forgets the last copy nor takes a new
//! one before its time. A copy is stale when it is older than twice the
//! schedule (one missed run is tolerated): readiness then says "warning"
//! without failing, since a missed backup is no reason to take the server
//! out of a load balancer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::Timestamp;
use crate::store::backup::{self, BackupFile};

/// Where and how often, resolved from the configuration.
#[derive(Clone, Debug)]
pub struct Plan {
    pub database: PathBuf,
    pub dir: PathBuf,
    pub keep: u32,
    pub schedule: Duration,
}

impl Plan {
    /// The plan `config` asks for; `None` when backups are off (or the
    /// database is not a SQLite file, which validation already refused).
    pub fn from_config(config: &Config) -> Option<Self> {
        let schedule = config.backup.schedule?;
        let database = backup::database_file(&config.database.url)?;
        Some(Self {
            dir: backup::resolve_dir(&database, &config.backup.dir),
            database,
            keep: config.backup.keep,
            schedule,
        })
    }
}

/// The backup state one server knows.
pub struct Backups {
    plan: Option<Plan>,
    clock: Clock,
    started_at: Timestamp,
    last: Mutex<Option<BackupFile>>,
    last_error: Mutex<Option<String>>,
}

/// The `backup` object of `/health/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupStatus {
    /// `off` (no schedule), `ok`, or `warning` (the newest copy is older
    /// than twice the schedule, there is none that long after start, or the
    /// last attempt failed).
    pub status: &'static str,
    /// When the newest copy was taken (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_seconds: Option<u64>,
    /// Why the last attempt failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values: a panic elsewhere cannot leave them half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backups {
    /// Reads the copies already in `backup.dir` (blocking hop).
    pub async fn new(config: &Config, clock: Clock) -> Self {
        let plan = Plan::from_config(config);
        let last = match &plan {
            Some(plan) => {
                let dir = plan.dir.clone();
                tokio::task::spawn_blocking(move || backup::list(&dir))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|mut files| files.pop())
            }
            None => None,
        };
        Self {
            started_at: clock.now(),
            plan,
            clock,
            last: Mutex::new(last),
            last_error: Mutex::new(None),
        }
    }

    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// The newest copy this server knows of.
    pub fn last(&self) -> Option<BackupFile> {
        lock(&self.last).clone()
    }

    pub fn status(&self) -> BackupStatus {
        let Some(plan) = &self.plan else {
            return BackupStatus {
                status: "off",
                last_at: None,
                age_seconds: None,
                schedule_seconds: None,
                last_error: None,
            };
        };
        let now = self.clock.now();
        let allowed = i64::try_from(plan.schedule.as_secs().saturating_mul(2)).unwrap_or(i64::MAX);
        let last = self.last();
        let last_error = lock(&self.last_error).clone();
        let stale = match &last {
            Some(file) => now - file.taken_at > allowed,
            None => now - self.started_at > allowed,
        };
        BackupStatus {
            status: if stale || last_error.is_some() { "warning" } else { "ok" },
            last_at: last.as_ref().map(|f| crate::domain::rfc3339(f.taken_at)),
            age_seconds: last.as_ref().map(|f| (now - f.taken_at).max(0)),
            schedule_seconds: Some(plan.schedule.as_secs()),
            last_error,
        }
    }

    /// Takes one copy now, checks it and prunes old ones. A failure is
    /// logged, remembered for the status, and leaves older copies alone.
    #[tracing::instrument(skip_all)]
    pub async fn run_once(&self) -> anyhow::Result<BackupFile> {
        let plan = self
            .plan
            .clone()
            .ok_or_else(|| anyhow::anyhow!("backup.schedule is off"))?;
        let keep = usize::try_from(plan.keep).unwrap_or(usize::MAX);
        let span = tracing::Span::current();
        let outcome = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let file = backup::take(&plan.database, &plan.dir)?;
            match backup::prune(&plan.dir, keep) {
                Ok(deleted) if !deleted.is_empty() => {
                    tracing::info!(deleted = deleted.len(), "old backups pruned");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune old backups"),
            }
            Ok::<_, anyhow::Error>(file)
        })
        .await
        .map_err(|e| anyhow::anyhow!("the backup task failed: {e}"))
        .and_then(|r| r);
        match &outcome {
            Ok(file) => {
                tracing::info!(path = %file.path.display(), bytes = file.bytes, "backup written and checked");
                *lock(&self.last) = Some(file.clone());
                *lock(&self.last_error) = None;
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "scheduled backup failed; older copies are kept"
                );
                *lock(&self.last_error) = Some(format!("{e:#}"));
            }
        }
        outcome
    }

    /// The schedule, forever: the first copy when the newest one is a
    /// period old (at once when there is none), then one per period.
    pub async fn run(self: Arc<Self>) {
        let Some(plan) = self.plan.clone() else { return };
        loop {
            let wait = match self.last() {
                Some(file) => {
                    let due = file
                        .taken_at
                        .saturating_add(i64::try_from(plan.schedule.as_secs()).unwrap_or(i64::MAX));
                    Duration::from_secs(u64::try_from(due - self.clock.now()).unwrap_or(0)).min(plan.schedule)
                }
                None => Duration::ZERO,
            };
            tokio::time::sleep(wait).await;
            if self.run_once().await.is_err() {
                // Try again a period later, not in a tight loop.
                tokio::time::sleep(plan.schedule).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_is_off_without_a_schedule_and_warns_when_stale() {
        let clock = Clock::system();
        let backups = Backups::new(&Config::for_tests(), clock).await;
        assert_eq!(backups.status().status, "off");
        let json = serde_json::to_value(backups.status()).unwrap();
        assert_eq!(json, serde_json::json!({"status": "off"}));

        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests();
        config.database.url = format!("sqlite://{}", dir.path().join("forge.db").display());
        config.backup.schedule = Some(Duration::from_secs(60));
        let clock = Clock::system();
        let backups = Backups::new(&config, clock.clone()).await;
        assert_eq!(backups.plan().unwrap().dir, dir.path().join("backups"));
        assert_eq!(backups.status().status, "ok", "no copy yet, but just started");
        *lock(&backups.last) = Some(BackupFile {
            path: dir.path().join("x"),
            taken_at: clock.now() - 121,
            bytes: 1,
        });
        let status = backups.status();
        assert_eq!((status.status, status.schedule_seconds), ("warning", Some(60)));
        assert!(status.age_seconds.unwrap() >= 121);
    }
}
