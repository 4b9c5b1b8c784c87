//! The SQLite adapter of [`SiteStore`]: the dashboard's counts, sign-in
//! activity per bucket, and the signing-key rotation.
//!
//! Each method is one hop: counts and activity on a pooled reader, the
//! rotation on the single writer in one `BEGIN IMMEDIATE` transaction. The
//! activity query names its events in an `IN` list of bound parameters and
//! walks the covering index `audit_tenant_event_at (tenant_id, event, at)`
//! added by `V4__admin_site.sql`; live sessions are counted through the
//! partial index `sessions_live`, messages through `outbox_tenant_status`.
//! The audit insert and the key rows are `sqlite.rs`'s own helpers.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::site::*;
use super::sqlite::{SqliteStore, all_keys, insert_audit};
use super::{NewAuditEvent, SigningKeyRecord, StoreError, StoreResult};
use crate::domain::Timestamp;

fn count(c: &Connection, sql: &str, args: impl rusqlite::Params) -> StoreResult<u64> {
    let n: i64 = c.query_row(sql, args, |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `?first, ?first+1, ...` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl SiteStore for SqliteStore {
    async fn site_counts(&self, tenant_id: Uuid, now: Timestamp) -> StoreResult<SiteCounts> {
        self.read_conn(move |c| {
            let t = tenant_id.to_string();
            let users = count(c, "SELECT COUNT(*) FROM users WHERE tenant_id = ?1", params![t])?;
            let active_sessions = count(
                c,
                "SELECT COUNT(*) FROM sessions WHERE tenant_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                params![t, now],
            )?;
            let pending_messages = count(
                c,
                "SELECT COUNT(*) FROM outbox WHERE tenant_id = ?1 AND status IN ('pending', 'sending')",
                params![t],
            )?;
            let failed_messages = count(
                c,
                "SELECT COUNT(*) FROM outbox WHERE tenant_id = ?1 AND status = 'failed'",
                params![t],
            )?;
            Ok(SiteCounts {
                users,
                active_sessions,
                pending_messages,
                failed_messages,
            })
        })
        .await
    }

    async fn activity(&self, query: ActivityQuery) -> StoreResult<Vec<ActivityCount>> {
        if query.bucket_secs < 1 || query.buckets == 0 || (query.successes.is_empty() && query.failures.is_empty()) {
            return Ok(Vec::new());
        }
        self.read_conn(move |c| {
            let until = query
                .since
                .saturating_add(query.bucket_secs.saturating_mul(i64::from(query.buckets)));
            // ?1 tenant, ?2 since, ?3 until, ?4 bucket width, then the
            // success events, then the failure events.
            let mut args: Vec<SqlValue> = vec![
                query.tenant_id.to_string().into(),
                query.since.into(),
                until.into(),
                query.bucket_secs.into(),
            ];
            let successes = placeholders(args.len() + 1, query.successes.len());
            args.extend(query.successes.iter().map(|e| SqlValue::from(e.to_string())));
            let failures = placeholders(args.len() + 1, query.failures.len());
            args.extend(query.failures.iter().map(|e| SqlValue::from(e.to_string())));
            let in_list = |list: &str| {
                if list.is_empty() {
                    "NULL".to_string()
                } else {
                    list.to_string()
                }
            };
            let sql = format!(
                "SELECT (at - ?2) / ?4 AS bucket, \
                        SUM(event IN ({s})) AS successes, SUM(event IN ({f})) AS failures \
                 FROM audit_events \
                 WHERE tenant_id = ?1 AND event IN ({all}) AND at >= ?2 AND at < ?3 \
                 GROUP BY bucket ORDER BY bucket",
                s = in_list(&successes),
                f = in_list(&failures),
                all = [successes.as_str(), failures.as_str()]
                    .iter()
                    .filter(|l| !l.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(args), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(bucket, s, f)| {
                    Some(ActivityCount {
                        bucket: u32::try_from(bucket).ok()?,
                        successes: u64::try_from(s.unwrap_or(0)).unwrap_or(0),
                        failures: u64::try_from(f.unwrap_or(0)).unwrap_or(0),
                    })
                })
                .collect())
        })
        .await
    }

    async fn rotate_signing_keys(
        &self,
        new_next: SigningKeyRecord,
        now: Timestamp,
        not_after: Option<Timestamp>,
        audit: NewAuditEvent,
    ) -> StoreResult<KeyRotation> {
        self.write_tx(move |tx| {
            let next: Option<(String, Timestamp)> = tx
                .query_row(
                    "SELECT kid, created_at FROM signing_keys WHERE state = 'next' \
                     ORDER BY created_at DESC, kid DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((next_kid, next_created_at)) = next else {
                return Ok(KeyRotation::NoNextKey);
            };
            if not_after.is_some_and(|bound| next_created_at > bound) {
                return Ok(KeyRotation::NextTooYoung { next_created_at });
            }
            tx.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = ?1 WHERE state = 'current'",
                params![now],
            )?;
            // Older spare `next` keys (never expected, but possible after a
            // damaged start) are retired too, so exactly one remains.
            tx.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = ?1 WHERE state = 'next' AND kid <> ?2",
                params![now, next_kid],
            )?;
            let promoted = tx.execute(
                "UPDATE signing_keys SET state = 'current', activated_at = ?1 WHERE kid = ?2 AND state = 'next'",
                params![now, next_kid],
            )?;
            if promoted != 1 {
                return Err(StoreError::Internal(anyhow::anyhow!("the next key vanished during rotation")));
            }
            tx.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, state, created_at, activated_at, retired_at) \
                 VALUES (?1, ?2, ?3, ?4, 'next', ?5, NULL, NULL)",
                params![
                    new_next.kid,
                    new_next.algorithm,
                    new_next.private_key,
                    new_next.public_key,
                    new_next.created_at
                ],
            )?;
            insert_audit(tx, &audit)?;
            Ok(KeyRotation::Rotated(all_keys(tx)?))
        })
        .await
    }
}

impl SqliteStore {
    /// `EXPLAIN QUERY PLAN` of the dashboard's statements, as (name, plan
    /// lines): the activity query must search `audit_tenant_event_at` and
    /// the session count `sessions_live`, never scan a table.
    pub async fn explain_site_queries(&self) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        self.read_conn(|c| {
            let cases: [(&'static str, &'static str); 3] = [
                (
                    "activity",
                    "SELECT (at - ?2) / 3600 AS bucket, SUM(event IN ('login')), SUM(event IN ('login_failed')) \
                     FROM audit_events WHERE tenant_id = ?1 AND event IN ('login', 'login_failed') \
                     AND at >= ?2 AND at < ?3 GROUP BY bucket",
                ),
                (
                    "active_sessions",
                    "SELECT COUNT(*) FROM sessions WHERE tenant_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                ),
                (
                    "failed_messages",
                    "SELECT COUNT(*) FROM outbox WHERE tenant_id = ?1 AND status = 'failed' AND ?2 = ?2 AND ?3 = ?3",
                ),
            ];
            let mut out = Vec::new();
            for (name, sql) in cases {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let n = stmt.parameter_count();
                let args: Vec<SqlValue> = [SqlValue::from("t".to_string()), 0i64.into(), 1i64.into()]
                    .into_iter()
                    .take(n)
                    .collect();
                let lines = stmt
                    .query_map(params_from_iter(args), |r| r.get::<_, String>("detail"))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push((name, lines));
            }
            Ok(out)
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
        assert_eq!(placeholders(5, 3), "?5, ?6, ?7");
        assert_eq!(placeholders(5, 0), "");
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
            .rotate_signing_keys(key("c", KeyState::Next, 100), 100, Some(5), audit(100, "key_rotated"))
            .await
            .unwrap();
        assert!(matches!(r, KeyRotation::NextTooYoung { next_created_at: 10 }));
        let KeyRotation::Rotated(keys) = store
            .rotate_signing_keys(key("c", KeyState::Next, 100), 100, Some(50), audit(100, "key_rotated"))
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
        for (name, plan) in store.explain_site_queries().await.unwrap() {
            let text = plan.join(" | ");
            assert!(!text.contains("SCAN"), "{name} scans: {text}");
            let index = match name {
                "activity" => "audit_tenant_event_at",
                "active_sessions" => "sessions_live",
                _ => "outbox_tenant_status",
            };
            assert!(text.contains(index), "{name} does not use {index}: {text}");
        }
    }
}
