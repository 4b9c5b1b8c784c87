//! The PostgreSQL adapter of [`OutboxStore`].
//!
//! The statements are those of `sqlite_outbox.rs` with `$N` placeholders,
//! except two true differences kept as explicit pairs:
//!
//! - **Claiming.** SQLite has one writer, so its `UPDATE ... WHERE id IN
//!   (SELECT ... LIMIT n)` is already exclusive. Here several workers on
//!   several instances claim at once, so the inner select takes its rows
//!   `FOR UPDATE SKIP LOCKED`: each worker locks a disjoint batch without
//!   waiting for the others, and a row locked by one claim is invisible to
//!   the next, so a message is leased to exactly one worker at a time.
//! - **Release.** `GREATEST(attempts - 1, 0)` here, the scalar `MAX` there.
//!
//! The secret leaves a row as on SQLite: delivery and expiry set `body`
//! and `code` to NULL in the same statement; a failed message keeps them
//! until it expires, so an operator can resend it while the code is valid.

use ::postgres::Row;
use async_trait::async_trait;
use uuid::Uuid;

use super::outbox::*;
use super::postgres::{PgStore, all, uuid_col};
use super::{StoreError, StoreResult};
use crate::domain::Timestamp;
use crate::secret::Secret;

macro_rules! outbox_columns {
    () => {
        "id, tenant_id, channel, kind, recipient, subject, body, code, status, attempts, \
         next_attempt_at, locked_until, last_error, created_at, updated_at, expires_at"
    };
}

const COLUMNS: &str = outbox_columns!();

/// The claim: SQLite's statement plus `FOR UPDATE SKIP LOCKED` on the row choice.
const CLAIM: &str = concat!(
    "UPDATE outbox SET status = 'sending', locked_until = $2, attempts = attempts + 1, updated_at = $1 \
     WHERE id IN ( \
         SELECT id FROM outbox \
         WHERE expires_at > $1 AND body IS NOT NULL \
           AND ((status = 'pending' AND next_attempt_at <= $1) \
             OR (status = 'sending' AND locked_until <= $1)) \
         ORDER BY next_attempt_at, id LIMIT $3 \
         FOR UPDATE SKIP LOCKED) \
     RETURNING ",
    outbox_columns!()
);

fn unknown(what: &str, value: &str) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("outbox: unknown {what} {value:?}"))
}

fn message_from_row(row: &Row) -> StoreResult<OutboxMessage> {
    let channel: String = row.try_get("channel")?;
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(OutboxMessage {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        channel: OutboxChannel::parse(&channel).ok_or_else(|| unknown("channel", &channel))?,
        kind: MessageKind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body: row.try_get::<_, Option<String>>("body")?.map(Secret::new),
        code: row.try_get::<_, Option<String>>("code")?.map(Secret::new),
        status: OutboxStatus::parse(&status).ok_or_else(|| unknown("status", &status))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get("next_attempt_at")?,
        locked_until: row.try_get("locked_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue(&self, msg: NewOutboxMessage) -> StoreResult<Uuid> {
        let id = Uuid::now_v7();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO outbox (id, tenant_id, channel, kind, recipient, subject, body, code, status, attempts, \
                 next_attempt_at, created_at, updated_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10, $10, $11)",
                &[
                    &id.to_string(),
                    &msg.tenant_id.to_string(),
                    &msg.channel.as_str(),
                    &msg.kind.as_str(),
                    &msg.recipient,
                    &msg.subject,
                    &msg.body.expose(),
                    &msg.code.expose(),
                    &msg.next_attempt_at,
                    &msg.created_at,
                    &msg.expires_at,
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
                let rows = tx.query(CLAIM, &[&now, &locked_until, &i64::from(limit)])?;
                all(rows, message_from_row)
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
                 last_error = NULL, updated_at = $2 WHERE id = $1",
                &[&id.to_string(), &now],
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
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2, locked_until = NULL, \
                 last_error = $3, updated_at = $4 WHERE id = $1 AND status = 'sending' AND body IS NOT NULL",
                &[&id.to_string(), &next_attempt_at, &error, &now],
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
                 last_error = $2, updated_at = $3 WHERE id = $1",
                &[&id.to_string(), &error, &now],
            )?;
            Ok(())
        })
        .await
    }

    async fn release(&self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.write(move |tx| {
            // GREATEST here; SQLite spells it MAX.
            tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2, locked_until = NULL, \
                 attempts = GREATEST(attempts - 1, 0), updated_at = $2 WHERE id = $1 AND status = 'sending'",
                &[&id.to_string(), &now],
            )?;
            Ok(())
        })
        .await
    }

    async fn expire(&self, now: Timestamp) -> StoreResult<u64> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE outbox SET status = 'failed', last_error = 'expired', body = NULL, code = NULL, \
                 locked_until = NULL, updated_at = $1 \
                 WHERE body IS NOT NULL AND expires_at <= $1 \
                   AND (status = 'pending' OR (status = 'sending' AND locked_until <= $1))",
                &[&now],
            )?;
            // A delivered or failed row keeps no secret, whatever its expiry.
            tx.execute(
                "UPDATE outbox SET body = NULL, code = NULL, updated_at = $1 \
                 WHERE body IS NOT NULL AND expires_at <= $1 AND status IN ('delivered', 'failed')",
                &[&now],
            )?;
            Ok(n)
        })
        .await
    }

    async fn pending_count(&self) -> StoreResult<u64> {
        self.read(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')",
                    &[],
                )?
                .try_get(0)?;
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
                 WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR id < $3) \
                 ORDER BY id DESC LIMIT $4"
            );
            let rows = c.query(
                &sql,
                &[
                    &tenant_id.to_string(),
                    &status.map(OutboxStatus::as_str),
                    &before_id.map(|id| id.to_string()),
                    &i64::from(limit),
                ],
            )?;
            all(rows, message_from_row)
        })
        .await
    }

    async fn resend(&self, tenant_id: Uuid, id: Uuid, now: Timestamp) -> StoreResult<bool> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $3, locked_until = NULL, \
                 last_error = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND status = 'failed' AND body IS NOT NULL AND expires_at > $3",
                &[&tenant_id.to_string(), &id.to_string(), &now],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
