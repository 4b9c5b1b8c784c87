//! The PostgreSQL adapter of [`SiteStore`]: the dashboard's counts, sign-in
//! activity per bucket, and the signing-key rotation.
//!
//! Same statements and indexes as `sqlite_site.rs` (`V4__admin_site.sql` has
//! a twin in `migrations/postgres/`), with two true differences kept as a
//! pair: the event lists are one `text[]` parameter matched with `= ANY($n)`
//! instead of an `IN` list of numbered parameters, and a bucket's count is
//! `COUNT(*) FILTER (WHERE ...)` where SQLite sums a boolean. The rotation
//! first takes the transaction-scoped advisory lock that first-start key
//! creation takes too (SQLite's single writer gives that for free), so two
//! rotations racing on two instances run one after the other and the second
//! sees the first's keys (and its young `next` key).

use async_trait::async_trait;
use uuid::Uuid;

use super::postgres::{KEY_COLUMNS, PgStore, all, insert_audit, key_from_row};
use super::site::*;
use super::{NewAuditEvent, SigningKeyRecord, StoreError, StoreResult};
use crate::domain::Timestamp;

fn count(row: &::postgres::Row, col: usize) -> StoreResult<u64> {
    let n: i64 = row.try_get(col)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl SiteStore for PgStore {
    async fn site_counts(&self, tenant_id: Uuid, now: Timestamp) -> StoreResult<SiteCounts> {
        self.read_client(move |c| {
            let t = tenant_id.to_string();
            // One statement, one snapshot: the four counts agree with each other.
            let row = c.query_one(
                "SELECT \
                   (SELECT COUNT(*) FROM users WHERE tenant_id = $1), \
                   (SELECT COUNT(*) FROM sessions WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at > $2), \
                   (SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND status IN ('pending', 'sending')), \
                   (SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND status = 'failed')",
                &[&t, &now],
            )?;
            Ok(SiteCounts {
                users: count(&row, 0)?,
                active_sessions: count(&row, 1)?,
                pending_messages: count(&row, 2)?,
                failed_messages: count(&row, 3)?,
            })
        })
        .await
    }

    async fn activity(&self, query: ActivityQuery) -> StoreResult<Vec<ActivityCount>> {
        if query.bucket_secs < 1 || query.buckets == 0 || (query.successes.is_empty() && query.failures.is_empty()) {
            return Ok(Vec::new());
        }
        self.read_client(move |c| {
            let until = query
                .since
                .saturating_add(query.bucket_secs.saturating_mul(i64::from(query.buckets)));
            let successes: Vec<&str> = query.successes.clone();
            let failures: Vec<&str> = query.failures.clone();
            let events: Vec<&str> = successes.iter().chain(failures.iter()).copied().collect();
            let rows = c.query(
                "SELECT (at - $2) / $4 AS bucket, \
                        COUNT(*) FILTER (WHERE event = ANY($5)) AS successes, \
                        COUNT(*) FILTER (WHERE event = ANY($6)) AS failures \
                 FROM audit_events \
                 WHERE tenant_id = $1 AND event = ANY($7) AND at >= $2 AND at < $3 \
                 GROUP BY bucket ORDER BY bucket",
                &[
                    &query.tenant_id.to_string(),
                    &query.since,
                    &until,
                    &query.bucket_secs,
                    &successes,
                    &failures,
                    &events,
                ],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let bucket: i64 = row.try_get(0)?;
                let Ok(bucket) = u32::try_from(bucket) else {
                    continue;
                };
                out.push(ActivityCount {
                    bucket,
                    successes: count(&row, 1)?,
                    failures: count(&row, 2)?,
                });
            }
            Ok(out)
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
            // Serialises rotations (and first-start key creation, which
            // takes the same lock) across instances.
            tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('forge:signing_keys:' || current_schema()))")?;
            let next = tx.query_opt(
                "SELECT kid, created_at FROM signing_keys WHERE state = 'next' \
                     ORDER BY created_at DESC, kid DESC LIMIT 1",
                &[],
            )?;
            let Some(next) = next else {
                return Ok(KeyRotation::NoNextKey);
            };
            let next_kid: String = next.try_get(0)?;
            let next_created_at: Timestamp = next.try_get(1)?;
            if not_after.is_some_and(|bound| next_created_at > bound) {
                return Ok(KeyRotation::NextTooYoung { next_created_at });
            }
            tx.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'current'",
                &[&now],
            )?;
            // Older spare `next` keys are retired too, so exactly one remains.
            tx.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'next' AND kid <> $2",
                &[&now, &next_kid],
            )?;
            let promoted = tx.execute(
                "UPDATE signing_keys SET state = 'current', activated_at = $1 WHERE kid = $2 AND state = 'next'",
                &[&now, &next_kid],
            )?;
            if promoted != 1 {
                return Err(StoreError::Internal(anyhow::anyhow!(
                    "the next key vanished during rotation"
                )));
            }
            tx.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, state, created_at, \
                     activated_at, retired_at) VALUES ($1, $2, $3, $4, 'next', $5, NULL, NULL)",
                &[
                    &new_next.kid,
                    &new_next.algorithm,
                    &new_next.private_key,
                    &new_next.public_key,
                    &new_next.created_at,
                ],
            )?;
            insert_audit(tx, &audit)?;
            let rows = tx.query(
                &format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"),
                &[],
            )?;
            Ok(KeyRotation::Rotated(all(rows, key_from_row)?))
        })
        .await
    }
}
