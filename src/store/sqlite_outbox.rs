//! The SQLite adapter of [`OutboxStore`].
//!
//! Every method is one statement in one blocking hop: writes go through the
//! store's single writer connection inside `BEGIN IMMEDIATE`, so claiming is
//! atomic without `FOR UPDATE SKIP LOCKED` (SQLite has one writer at a time;
//! the PostgreSQL twin would claim with `SKIP LOCKED`). Every statement that
//! ends a message's life (`delivered`, `failed`, expiry) sets `body` and
//! `code` to NULL in the same statement, so the secret never outlives its use.
//! Only bound parameters reach SQL.

use async_trait::async_trait;
use rusqlite::{Row, params};
use uuid::Uuid;

use super::StoreResult;
use super::outbox::*;
use super::sqlite::{SqliteStore, uuid_col};
use crate::domain::Timestamp;
use crate::secret::Secret;

const COLUMNS: &str = "id, tenant_id, channel, kind, recipient, subject, body, code, status, attempts, \
     next_attempt_at, locked_until, last_error, created_at, updated_at, expires_at";

fn conversion_error(col: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, what.into())
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxMessage> {
    let channel: String = row.get("channel")?;
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    let attempts: i64 = row.get("attempts")?;
    Ok(OutboxMessage {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        channel: OutboxChannel::parse(&channel)
            .ok_or_else(|| conversion_error(2, format!("unknown channel {channel:?}")))?,
        kind: MessageKind::parse(&kind).ok_or_else(|| conversion_error(3, format!("unknown kind {kind:?}")))?,
        recipient: row.get("recipient")?,
        subject: row.get("subject")?,
        body: row.get::<_, Option<String>>("body")?.map(Secret::new),
        code: row.get::<_, Option<String>>("code")?.map(Secret::new),
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| conversion_error(8, format!("unknown status {status:?}")))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.get("next_attempt_at")?,
        locked_until: row.get("locked_until")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        expires_at: row.get("expires_at")?,
    })
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue(&self, msg: NewOutboxMessage) -> StoreResult<Uuid> {
        let id = Uuid::now_v7();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO outbox (id, tenant_id, channel, kind, recipient, subject, body, code, status, attempts, \
                 next_attempt_at, created_at, updated_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?10, ?10, ?11)",
                params![
                    id.to_string(),
                    msg.tenant_id.to_string(),
                    msg.channel.as_str(),
                    msg.kind.as_str(),
                    msg.recipient,
                    msg.subject,
                    msg.body.expose(),
                    msg.code.expose(),
                    msg.next_attempt_at,
                    msg.created_at,
                    msg.expires_at,
                ],
            )?;
            Ok(id)
        })
        .await
    }

    async fn claim_due(&self, now: Timestamp, limit: u32, lease_secs: i64) -> StoreResult<Vec<OutboxMessage>> {
        let locked_until = now.saturating_add(lease_secs.max(1));
        let mut claimed = self
            .write(move |tx| {
                let sql = format!(
                    "UPDATE outbox SET status = 'sending', locked_until = ?2, attempts = attempts + 1, updated_at = ?1 \
                     WHERE id IN ( \
                         SELECT id FROM outbox \
                         WHERE expires_at > ?1 AND body IS NOT NULL \
                           AND ((status = 'pending' AND next_attempt_at <= ?1) \
                             OR (status = 'sending' AND locked_until <= ?1)) \
                         ORDER BY next_attempt_at, id LIMIT ?3) \
                     RETURNING {COLUMNS}"
                );
                let mut stmt = tx.prepare(&sql)?;
                let rows = stmt
                    .query_map(params![now, locked_until, i64::from(limit)], message_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        // RETURNING gives no order guarantee; send the oldest first.
        claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
        Ok(claimed)
    }

    async fn mark_delivered(&self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE outbox SET status = 'delivered', body = NULL, code = NULL, locked_until = NULL, \
                 last_error = NULL, updated_at = ?2 WHERE id = ?1",
                params![id.to_string(), now],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_retry(&self, id: Uuid, next_attempt_at: Timestamp, error: &str, now: Timestamp) -> StoreResult<()> {
        let error = error.to_owned();
        self.write(move |tx| {
            // Only a message still leased goes back: one that expired or was
            // failed meanwhile stays as it is.
            tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?2, locked_until = NULL, \
                 last_error = ?3, updated_at = ?4 WHERE id = ?1 AND status = 'sending' AND body IS NOT NULL",
                params![id.to_string(), next_attempt_at, error, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(&self, id: Uuid, error: &str, now: Timestamp) -> StoreResult<()> {
        let error = error.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE outbox SET status = 'failed', locked_until = NULL, \
                 last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.to_string(), error, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn release(&self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?2, locked_until = NULL, \
                 attempts = MAX(attempts - 1, 0), updated_at = ?2 WHERE id = ?1 AND status = 'sending'",
                params![id.to_string(), now],
            )?;
            Ok(())
        })
        .await
    }

    async fn expire(&self, now: Timestamp) -> StoreResult<u64> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE outbox SET status = 'failed', last_error = 'expired', body = NULL, code = NULL, \
                 locked_until = NULL, updated_at = ?1 \
                 WHERE body IS NOT NULL AND expires_at <= ?1 \
                   AND (status = 'pending' OR (status = 'sending' AND locked_until <= ?1))",
                params![now],
            )?;
            // A delivered or failed row keeps no secret, whatever its expiry;
            // this catches any that an interrupted worker left behind.
            tx.execute(
                "UPDATE outbox SET body = NULL, code = NULL, updated_at = ?1 \
                 WHERE body IS NOT NULL AND expires_at <= ?1 AND status IN ('delivered', 'failed')",
                params![now],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn pending_count(&self) -> StoreResult<u64> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')",
                [],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn list(
        &self,
        tenant_id: Uuid,
        status: Option<OutboxStatus>,
        limit: u32,
        before_id: Option<Uuid>,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM outbox \
                 WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3) \
                 ORDER BY id DESC LIMIT ?4"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(
                    params![
                        tenant_id.to_string(),
                        status.map(OutboxStatus::as_str),
                        before_id.map(|id| id.to_string()),
                        i64::from(limit),
                    ],
                    message_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn resend(&self, tenant_id: Uuid, id: Uuid, now: Timestamp) -> StoreResult<bool> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?3, locked_until = NULL, \
                 last_error = NULL, updated_at = ?3 \
                 WHERE tenant_id = ?1 AND id = ?2 AND status = 'failed' AND body IS NOT NULL AND expires_at > ?3",
                params![tenant_id.to_string(), id.to_string(), now],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
