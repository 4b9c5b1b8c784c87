//! The admin site's port: the few reads and the one write the `/admin` pages
//! need that no other port offers: the dashboard's counts, sign-in activity
//! bucketed by hour or day from the audit log, and the rotation of the
//! signing keys in one transaction.
//!
//! It is deliberately small (three methods), written once for both databases
//! (see `sql.rs`). Invariants it keeps:
//! - Everything about users, sessions, messages and audit rows is filtered by
//!   the tenant id given; the signing keys are global (one keyring per
//!   deployment).
//! - Counting reads indexes only (`migrations/*/V4__admin_site.sql`): the
//!   activity query is a covering range scan of `(tenant_id, event, at)` and
//!   the live-session count a partial index, so the dashboard costs the same
//!   on a large database as on a small one, give or take the rows counted.
//! - A key rotation is atomic: `next` becomes `current`, `current` becomes
//!   `retired`, a new `next` is inserted and the audit row written, or none
//!   of it happens. The age check on `next` runs inside that transaction, so
//!   two rotations racing (a double click, two operators) cannot promote a
//!   key that verifiers have not had time to fetch.
//!
//! The counts are one statement, so the four agree with each other (one
//! snapshot). The activity query names its events in `IN` lists of bound
//! parameters and counts each side with `SUM(CASE ...)`, which both
//! databases read the same way. The rotation first takes the lock that
//! first-start key creation takes too (`Conn::lock`: a PostgreSQL advisory
//! lock; SQLite's single writer is already alone), so two rotations racing
//! on two instances run one after the other and the second sees the first's
//! keys (and its young `next` key). [`SqliteStore::explain_site_queries`]
//! shows SQLite's plans of these very statements.

use async_trait::async_trait;
use uuid::Uuid;

use super::directory::sqlite_plan;
use super::rows::{all_keys, insert_audit};
use super::sql::{Driver, Value, args};
use super::sqlite::SqliteStore;
use super::{NewAuditEvent, SigningKeyRecord, StoreError, StoreResult};
use crate::domain::Timestamp;

/// The dashboard's counts for one tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteCounts {
    pub users: u64,
    /// Sessions neither revoked nor expired at `now`.
    pub active_sessions: u64,
    /// Messages waiting for (or leased to) the delivery worker.
    pub pending_messages: u64,
    pub failed_messages: u64,
}

/// Which audit events to count, over which window, in which buckets.
#[derive(Clone, Debug)]
pub struct ActivityQuery {
    pub tenant_id: Uuid,
    /// Start of the first bucket (inclusive).
    pub since: Timestamp,
    /// Bucket width in seconds (3600 for hours, 86400 for days); at least 1.
    pub bucket_secs: i64,
    /// How many buckets: the window ends at `since + buckets * bucket_secs`.
    pub buckets: u32,
    /// Events that count as a successful sign-in.
    pub successes: Vec<&'static str>,
    /// Events that count as a failed sign-in.
    pub failures: Vec<&'static str>,
}

/// One non-empty bucket of an [`ActivityQuery`]; buckets without events are
/// simply absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivityCount {
    /// 0 for the bucket starting at `since`.
    pub bucket: u32,
    pub successes: u64,
    pub failures: u64,
}

/// What a rotation request found, decided inside the rotation's transaction.
#[derive(Clone, Debug)]
pub enum KeyRotation {
    /// Done; every stored key after the rotation.
    Rotated(Vec<SigningKeyRecord>),
    /// The `next` key was created after `not_after`: too recently published
    /// for cached JWKS documents to know it. Nothing changed.
    NextTooYoung { next_created_at: Timestamp },
    /// There is no `next` key to promote (HS256 deployments, or a damaged
    /// table). Nothing changed.
    NoNextKey,
}

#[async_trait]
pub trait SiteStore: Send + Sync + 'static {
    /// Users, live sessions, pending and failed messages of one tenant.
    async fn site_counts(&self, tenant_id: Uuid, now: Timestamp) -> StoreResult<SiteCounts>;

    /// Counts the query's success and failure events per bucket (only
    /// buckets holding at least one event are returned, in bucket order).
    async fn activity(&self, query: ActivityQuery) -> StoreResult<Vec<ActivityCount>>;

    /// Rotates the signing keys in one transaction, for the algorithm of
    /// each key of `new_next` (one per algorithm): that algorithm's newest
    /// `next` key becomes `current` (`activated_at = now`), its `current`
    /// keys become `retired` (`retired_at = now`), the new key is inserted
    /// as `next`; keys of other algorithms are untouched. `audit` is written
    /// once. When `not_after` is given and any algorithm's `next` key was
    /// created after it, nothing changes ([`KeyRotation::NextTooYoung`], the
    /// youngest); an algorithm without a `next` key changes nothing either
    /// ([`KeyRotation::NoNextKey`]).
    async fn rotate_signing_keys(
        &self,
        new_next: Vec<SigningKeyRecord>,
        now: Timestamp,
        not_after: Option<Timestamp>,
        audit: NewAuditEvent,
    ) -> StoreResult<KeyRotation>;
}

/// Users, live sessions (through the partial index `sessions_live`), and
/// pending and failed messages (through `outbox_tenant_status`).
const SITE_COUNTS: &str = "SELECT \
     (SELECT COUNT(*) FROM users WHERE tenant_id = $1) AS users, \
     (SELECT COUNT(*) FROM sessions WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at > $2) AS active_sessions, \
     (SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND status IN ('pending', 'sending')) AS pending_messages, \
     (SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND status = 'failed') AS failed_messages";

/// `$first, $first+1, ...` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The activity statement for `successes` and `failures` events: `$1`
/// tenant, `$2` since, `$3` until, `$4` bucket width, then the success
/// events, then the failure events. It walks the covering index
/// `audit_tenant_event_at (tenant_id, event, at)`.
fn activity_sql(successes: usize, failures: usize) -> String {
    let s = placeholders(5, successes);
    let f = placeholders(5 + successes, failures);
    let count = |list: &str| {
        if list.is_empty() {
            "0".to_owned()
        } else {
            format!("SUM(CASE WHEN event IN ({list}) THEN 1 ELSE 0 END)")
        }
    };
    let all = placeholders(5, successes + failures);
    format!(
        "SELECT (at - $2) / $4 AS bucket, {} AS successes, {} AS failures \
         FROM audit_events \
         WHERE tenant_id = $1 AND event IN ({all}) AND at >= $2 AND at < $3 \
         GROUP BY bucket ORDER BY bucket",
        count(&s),
        count(&f),
    )
}

#[async_trait]
impl<D: Driver> SiteStore for D {
    async fn site_counts(&self, tenant_id: Uuid, now: Timestamp) -> StoreResult<SiteCounts> {
        self.read(move |c| {
            let row = c.query_one(SITE_COUNTS, &args![tenant_id, now])?;
            Ok(SiteCounts {
                users: row.get("users")?,
                active_sessions: row.get("active_sessions")?,
                pending_messages: row.get("pending_messages")?,
                failed_messages: row.get("failed_messages")?,
            })
        })
        .await
    }

    async fn activity(&self, query: ActivityQuery) -> StoreResult<Vec<ActivityCount>> {
        if query.bucket_secs < 1 || query.buckets == 0 || (query.successes.is_empty() && query.failures.is_empty()) {
            return Ok(Vec::new());
        }
        self.read(move |c| {
            let until = query
                .since
                .saturating_add(query.bucket_secs.saturating_mul(i64::from(query.buckets)));
            let sql = activity_sql(query.successes.len(), query.failures.len());
            let mut params = args![query.tenant_id, query.since, until, query.bucket_secs].to_vec();
            params.extend(
                query
                    .successes
                    .iter()
                    .chain(&query.failures)
                    .map(|e| Value::Text((*e).to_owned())),
            );
            let rows = c.query(&sql, &params)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let Ok(bucket) = u32::try_from(row.get::<i64>("bucket")?) else {
                    continue;
                };
                out.push(ActivityCount {
                    bucket,
                    successes: row.get("successes")?,
                    failures: row.get("failures")?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn rotate_signing_keys(
        &self,
        new_next: Vec<SigningKeyRecord>,
        now: Timestamp,
        not_after: Option<Timestamp>,
        audit: NewAuditEvent,
    ) -> StoreResult<KeyRotation> {
        self.write(move |c| {
            if new_next.is_empty() {
                return Ok(KeyRotation::NoNextKey);
            }
            c.lock("signing_keys")?;
            // Every algorithm is checked before anything changes.
            let mut promote = Vec::new();
            for key in &new_next {
                let next = c.query_opt_map(
                    "SELECT kid, created_at FROM signing_keys WHERE state = 'next' AND algorithm = $1 \
                     ORDER BY created_at DESC, kid DESC LIMIT 1",
                    &args![&key.algorithm],
                    |r| Ok((r.get::<String>("kid")?, r.get::<Timestamp>("created_at")?)),
                )?;
                let Some((next_kid, next_created_at)) = next else {
                    return Ok(KeyRotation::NoNextKey);
                };
                promote.push((next_kid, next_created_at));
            }
            if let Some(bound) = not_after {
                let youngest = promote.iter().map(|(_, created)| *created).max();
                if let Some(next_created_at) = youngest.filter(|created| *created > bound) {
                    return Ok(KeyRotation::NextTooYoung { next_created_at });
                }
            }
            for (key, (next_kid, _)) in new_next.iter().zip(&promote) {
                c.execute(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1 \
                     WHERE state = 'current' AND algorithm = $2",
                    &args![now, &key.algorithm],
                )?;
                // Older spare `next` keys (never expected, but possible after a
                // damaged start) are retired too, so exactly one remains.
                c.execute(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1 \
                     WHERE state = 'next' AND algorithm = $2 AND kid <> $3",
                    &args![now, &key.algorithm, next_kid],
                )?;
                let promoted = c.execute(
                    "UPDATE signing_keys SET state = 'current', activated_at = $1 WHERE kid = $2 AND state = 'next'",
                    &args![now, next_kid],
                )?;
                if promoted != 1 {
                    return Err(StoreError::Internal(anyhow::anyhow!(
                        "the next key vanished during rotation"
                    )));
                }
                c.execute(
                    "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, state, created_at, \
                     activated_at, retired_at) VALUES ($1, $2, $3, $4, 'next', $5, NULL, NULL)",
                    &args![
                        &key.kid,
                        &key.algorithm,
                        &key.private_key,
                        &key.public_key,
                        key.created_at,
                    ],
                )?;
            }
            insert_audit(c, &audit)?;
            Ok(KeyRotation::Rotated(all_keys(c)?))
        })
        .await
    }
}

impl SqliteStore {
    /// `EXPLAIN QUERY PLAN` of the dashboard's statements exactly as
    /// [`SiteStore`] runs them, as (name, plan lines): the counts must search
    /// their indexes (`sessions_live`, `outbox_tenant_status`) and the
    /// activity query `audit_tenant_event_at`, never scan a table.
    pub async fn explain_site_queries(&self) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        self.read_conn(|c| {
            let t = super::DEFAULT_TENANT_ID;
            let counts = sqlite_plan(c, SITE_COUNTS, &args![t, 0i64])?;
            let activity = sqlite_plan(
                c,
                &activity_sql(1, 1),
                &args![t, 0i64, 3600i64, 3600i64, "login", "login_failed"],
            )?;
            Ok(vec![("counts", counts), ("activity", activity)])
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AccountStore, KeyState};

    fn key(kid: &str, state: KeyState, at: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            algorithm: "EdDSA".into(),
            private_key: vec![1],
            public_key: vec![2],
            state,
            created_at: at,
            activated_at: None,
            retired_at: None,
        }
    }

    fn audit(at: i64, event: &'static str) -> NewAuditEvent {
        NewAuditEvent {
            tenant_id: crate::store::DEFAULT_TENANT_ID,
            at,
            event: event.parse().expect("an event forge writes"),
            user_id: None,
            actor_id: None,
            ip: None,
            user_agent: None,
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn placeholders_are_numbered_from_first() {
        assert_eq!(placeholders(5, 3), "$5, $6, $7");
        assert_eq!(placeholders(5, 0), "");
    }

    #[test]
    fn activity_numbers_successes_then_failures_and_counts_an_empty_side_as_zero() {
        let sql = activity_sql(2, 1);
        assert!(
            sql.contains("SUM(CASE WHEN event IN ($5, $6) THEN 1 ELSE 0 END) AS successes"),
            "{sql}"
        );
        assert!(
            sql.contains("SUM(CASE WHEN event IN ($7) THEN 1 ELSE 0 END) AS failures"),
            "{sql}"
        );
        assert!(sql.contains("event IN ($5, $6, $7)"), "{sql}");
        let sql = activity_sql(1, 0);
        assert!(sql.contains("0 AS failures") && sql.contains("event IN ($5)"), "{sql}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_promotes_retires_and_refuses_a_young_next_key() {
        let store = SqliteStore::open("sqlite::memory:", 2).unwrap();
        store
            .insert_signing_key_if_absent(key("a", KeyState::Current, 10))
            .await
            .unwrap();
        store
            .insert_signing_key_if_absent(key("b", KeyState::Next, 10))
            .await
            .unwrap();
        // `b` was created at 10: a bound of 5 says it is too young.
        let r = store
            .rotate_signing_keys(
                vec![key("c", KeyState::Next, 100)],
                100,
                Some(5),
                audit(100, "key_rotated"),
            )
            .await
            .unwrap();
        assert!(matches!(r, KeyRotation::NextTooYoung { next_created_at: 10 }));
        let KeyRotation::Rotated(keys) = store
            .rotate_signing_keys(
                vec![key("c", KeyState::Next, 100)],
                100,
                Some(50),
                audit(100, "key_rotated"),
            )
            .await
            .unwrap()
        else {
            panic!("not rotated");
        };
        let state = |kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| k.state.clone()).unwrap();
        assert_eq!(state("a"), KeyState::Retired);
        assert_eq!(state("b"), KeyState::Current);
        assert_eq!(state("c"), KeyState::Next);
        let a = keys.iter().find(|k| k.kid == "a").unwrap();
        assert_eq!(a.retired_at, Some(100));
        let b = keys.iter().find(|k| k.kid == "b").unwrap();
        assert_eq!(b.activated_at, Some(100));
        // Exactly one audit row: the refused attempt wrote nothing.
        let rows = store
            .activity(ActivityQuery {
                tenant_id: crate::store::DEFAULT_TENANT_ID,
                since: 0,
                bucket_secs: 1000,
                buckets: 1,
                successes: vec!["key_rotated"],
                failures: vec![],
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![ActivityCount {
                bucket: 0,
                successes: 1,
                failures: 0
            }]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn activity_buckets_count_successes_and_failures() {
        let store = SqliteStore::open("sqlite::memory:", 2).unwrap();
        for (at, event) in [
            (0, "login"),
            (3599, "login"),
            (3600, "login_failed"),
            (3601, "otp_verified"),
            (7300, "login_failed"),
            (7300, "signup"),
            (-1, "login"),
            (3 * 3600, "login"),
        ] {
            store.record_audit(audit(at, event)).await.unwrap();
        }
        let rows = store
            .activity(ActivityQuery {
                tenant_id: crate::store::DEFAULT_TENANT_ID,
                since: 0,
                bucket_secs: 3600,
                buckets: 3,
                successes: vec!["login", "otp_verified"],
                failures: vec!["login_failed"],
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ActivityCount {
                    bucket: 0,
                    successes: 2,
                    failures: 0
                },
                ActivityCount {
                    bucket: 1,
                    successes: 1,
                    failures: 1
                },
                ActivityCount {
                    bucket: 2,
                    successes: 0,
                    failures: 1
                },
            ]
        );
        // Another tenant sees nothing.
        let none = store
            .activity(ActivityQuery {
                tenant_id: Uuid::now_v7(),
                since: 0,
                bucket_secs: 3600,
                buckets: 3,
                successes: vec!["login"],
                failures: vec!["login_failed"],
            })
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dashboard_queries_use_their_indexes() {
        let store = SqliteStore::open("sqlite::memory:", 2).unwrap();
        let plans = store.explain_site_queries().await.unwrap();
        assert_eq!(plans.len(), 2);
        for (name, plan) in plans {
            let text = plan.join(" | ");
            eprintln!("plan {name}: {text}");
            // The counts select no table of their own: SQLite "scans" the
            // one constant row that carries the four subqueries.
            let scans = plan.iter().any(|l| l.starts_with("SCAN") && l != "SCAN CONSTANT ROW");
            assert!(!scans, "{name} scans: {text}");
            let indexes: &[&str] = match name {
                "activity" => &["audit_tenant_event_at"],
                _ => &["users_tenant", "sessions_live", "outbox_tenant_status"],
            };
            for index in indexes {
                assert!(text.contains(index), "{name} does not use {index}: {text}");
            }
        }
    }
}
