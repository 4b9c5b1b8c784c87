//! The outbox port: where a notification waits between the request that asks
//! for it and the worker that delivers it.
//!
//! Invariants every adapter keeps: a message is written once by [`OutboxStore::enqueue`]
//! and only the worker moves it on; [`OutboxStore::claim_due`] is one atomic
//! statement, so a message leased to one worker is not handed to another
//! until its lease runs out (a crashed worker's messages come back: delivery
//! is at-least-once); the body and code — the secret — are erased together
//! as soon as a message is delivered or expires (a failed message keeps them
//! until it expires, so an operator can resend it while the code is valid), and
//! `last_error` never holds either. Every time is Unix seconds from the
//! application [`Clock`](crate::clock::Clock).

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::StoreResult;
use super::sql::{Driver, Row, args};
use crate::domain::Timestamp;
use crate::secret::Secret;

/// How a message travels: decided by the recipient (an email address or a
/// phone number), not by the configured provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxChannel {
    Email,
    Sms,
    /// An OpenID Connect back-channel logout: the recipient is the client's
    /// `backchannel_logout_uri`, the body the signed logout token.
    Backchannel,
}

impl OutboxChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxChannel::Email => "email",
            OutboxChannel::Sms => "sms",
            OutboxChannel::Backchannel => "backchannel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(OutboxChannel::Email),
            "sms" => Some(OutboxChannel::Sms),
            "backchannel" => Some(OutboxChannel::Backchannel),
            _ => None,
        }
    }
}

/// What a message is for; picks its subject and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A one-time sign-in code (`POST /v1/auth/otp`).
    Otp,
    /// A code proving the user owns their email address.
    EmailVerification,
    /// A code allowing a new password to be set.
    PasswordReset,
    /// A notice, without a code, to the old address after an email or phone
    /// change: what changed, when and from where.
    AddressChanged,
    /// A notice, without a code, that one of the user's recovery codes was
    /// used to sign in (or step up): when, from where, how many remain.
    RecoveryCodeUsed,
    /// A notice, without a code, that the user's second factors changed
    /// without them (an administrator reset them).
    FactorChanged,
    /// A signed OpenID Connect logout token for a client's back channel
    /// (the body; no code).
    LogoutToken,
    /// A notice, without a code, that the password was changed or reset.
    PasswordChanged,
    /// A notice, without a code, of a sign-in from a device not seen before.
    NewDevice,
    /// A notice, without a code, that an administrator disabled the account.
    AccountDisabled,
    /// A notice to a tenant's administrators that a webhook endpoint failing
    /// for `webhooks.disable_after` was turned off.
    WebhookDisabled,
}

impl MessageKind {
    /// The messages a person reads (all but the logout token): the ones
    /// with templates.
    pub const TO_PEOPLE: [MessageKind; 10] = [
        MessageKind::Otp,
        MessageKind::EmailVerification,
        MessageKind::PasswordReset,
        MessageKind::AddressChanged,
        MessageKind::RecoveryCodeUsed,
        MessageKind::FactorChanged,
        MessageKind::PasswordChanged,
        MessageKind::NewDevice,
        MessageKind::AccountDisabled,
        MessageKind::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Otp => "otp",
            MessageKind::EmailVerification => "email_verification",
            MessageKind::PasswordReset => "password_reset",
            MessageKind::AddressChanged => "address_changed",
            MessageKind::RecoveryCodeUsed => "recovery_code_used",
            MessageKind::FactorChanged => "factor_changed",
            MessageKind::LogoutToken => "logout_token",
            MessageKind::PasswordChanged => "password_changed",
            MessageKind::NewDevice => "new_device",
            MessageKind::AccountDisabled => "account_disabled",
            MessageKind::WebhookDisabled => "webhook_disabled",
        }
    }

    /// Whether the message carries a one-time code (a notice does not).
    pub fn carries_code(self) -> bool {
        matches!(
            self,
            MessageKind::Otp | MessageKind::EmailVerification | MessageKind::PasswordReset
        )
    }

    /// Whether the message is a security notice to a person.
    pub fn is_notice(self) -> bool {
        !self.carries_code() && self != MessageKind::LogoutToken
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "otp" => Some(MessageKind::Otp),
            "email_verification" => Some(MessageKind::EmailVerification),
            "password_reset" => Some(MessageKind::PasswordReset),
            "address_changed" => Some(MessageKind::AddressChanged),
            "recovery_code_used" => Some(MessageKind::RecoveryCodeUsed),
            "factor_changed" => Some(MessageKind::FactorChanged),
            "logout_token" => Some(MessageKind::LogoutToken),
            "password_changed" => Some(MessageKind::PasswordChanged),
            "new_device" => Some(MessageKind::NewDevice),
            "account_disabled" => Some(MessageKind::AccountDisabled),
            "webhook_disabled" => Some(MessageKind::WebhookDisabled),
            _ => None,
        }
    }
}

/// Where a message is in its life. `Pending` and `Sending` still hold the
/// body; `Delivered` and `Failed` never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for its `next_attempt_at`.
    Pending,
    /// Leased to a worker until `locked_until`.
    Sending,
    Delivered,
    /// Gave up: a permanent refusal, too many attempts, or expired.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(OutboxStatus::Pending),
            "sending" => Some(OutboxStatus::Sending),
            "delivered" => Some(OutboxStatus::Delivered),
            "failed" => Some(OutboxStatus::Failed),
            _ => None,
        }
    }
}

/// A rendered message ready to be queued. The store gives it its id.
#[derive(Clone, Debug)]
pub struct NewOutboxMessage {
    pub tenant_id: Uuid,
    pub channel: OutboxChannel,
    pub kind: MessageKind,
    pub recipient: String,
    pub subject: String,
    /// The rendered text; it contains the code.
    pub body: Secret,
    /// The HTML alternative of an email body; it contains the code too.
    pub html: Option<Secret>,
    /// The code alone, for channels that hand it over as a field (webhook).
    pub code: Secret,
    /// The first attempt is due at once, normally `created_at`.
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    /// After this the code is useless: the message is failed and erased.
    pub expires_at: Timestamp,
}

/// A stored message. `body`, `html` and `code` are `None` once erased.
#[derive(Clone, Debug)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel: OutboxChannel,
    pub kind: MessageKind,
    pub recipient: String,
    pub subject: String,
    pub body: Option<Secret>,
    pub html: Option<Secret>,
    pub code: Option<Secret>,
    pub status: OutboxStatus,
    /// How many times the message was handed to a worker (counted at claim,
    /// so a message that kills its worker still runs out of attempts).
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub locked_until: Option<Timestamp>,
    /// Why the last attempt failed; never contains the body or the code.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Queues a message as `pending`; returns its new (UUIDv7) id.
    async fn enqueue(&self, msg: NewOutboxMessage) -> StoreResult<Uuid>;

    /// Leases up to `limit` messages to the caller until `now + lease_secs`:
    /// pending ones that are due and not expired, and `sending` ones whose
    /// lease ran out (their worker died). Counts an attempt on each. One
    /// atomic statement: no message is leased twice at once. Oldest due first.
    async fn claim_due(&self, now: Timestamp, limit: u32, lease_secs: i64) -> StoreResult<Vec<OutboxMessage>>;

    /// The message reached its provider: erases body, HTML and code.
    async fn mark_delivered(&self, id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// A transient failure: back to `pending`, due again at `next_attempt_at`.
    async fn mark_retry(&self, id: Uuid, next_attempt_at: Timestamp, error: &str, now: Timestamp) -> StoreResult<()>;

    /// Gives up on the message. Its body and code stay until `expires_at` (an
    /// operator may resend it while the code is still valid); `expire` erases them.
    async fn mark_failed(&self, id: Uuid, error: &str, now: Timestamp) -> StoreResult<()>;

    /// Hands a leased message back untried (a worker shutting down before it
    /// got to it): `pending`, due at once, the claim's attempt not counted.
    async fn release(&self, id: Uuid, now: Timestamp) -> StoreResult<()>;

    /// Erases the body and code of every undelivered message past its
    /// `expires_at` and marks it failed with `last_error = 'expired'` (a
    /// message leased to a live worker is left to that worker). Returns how
    /// many messages expired.
    async fn expire(&self, now: Timestamp) -> StoreResult<u64>;

    /// Messages not yet delivered nor failed (`pending` + `sending`): the
    /// queue depth for `/metrics` and readiness.
    async fn pending_count(&self) -> StoreResult<u64>;

    /// A tenant's messages, newest first, optionally of one status; pages
    /// with `before_id` (the last id of the previous page).
    async fn list(
        &self,
        tenant_id: Uuid,
        status: Option<OutboxStatus>,
        limit: u32,
        before_id: Option<Uuid>,
    ) -> StoreResult<Vec<OutboxMessage>>;

    /// Puts a failed message back to `pending` with its attempts reset.
    /// Only possible while it still has its body and has not expired; false
    /// otherwise (not found, not failed, erased, expired, other tenant).
    /// Note that failing erases the body, so in practice a failed message
    /// cannot be resent: the user asks for a new code instead.
    async fn resend(&self, tenant_id: Uuid, id: Uuid, now: Timestamp) -> StoreResult<bool>;
}

// ---- the one implementation, over either database (see `sql.rs`) ----

const COLUMNS: &str = "id, tenant_id, channel, kind, recipient, subject, body, html, code, status, attempts, \
     next_attempt_at, locked_until, last_error, created_at, updated_at, expires_at";

fn unknown(what: &str, value: &str) -> super::StoreError {
    super::sql::corrupt(what, &format!("unknown value {value:?}"))
}

fn message_from_row(row: &Row) -> StoreResult<OutboxMessage> {
    let channel: String = row.get("channel")?;
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    Ok(OutboxMessage {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        channel: OutboxChannel::parse(&channel).ok_or_else(|| unknown("channel", &channel))?,
        kind: MessageKind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?,
        recipient: row.get("recipient")?,
        subject: row.get("subject")?,
        body: row.get::<Option<String>>("body")?.map(Secret::new),
        html: row.get::<Option<String>>("html")?.map(Secret::new),
        code: row.get::<Option<String>>("code")?.map(Secret::new),
        status: OutboxStatus::parse(&status).ok_or_else(|| unknown("status", &status))?,
        attempts: u32::try_from(row.get::<i64>("attempts")?).map_err(|_| unknown("attempts", "negative"))?,
        next_attempt_at: row.get("next_attempt_at")?,
        locked_until: row.get("locked_until")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        expires_at: row.get("expires_at")?,
    })
}

/// The claim. SQLite has one writer, so `UPDATE ... WHERE id IN (SELECT ...
/// LIMIT n)` is already exclusive there. On PostgreSQL several workers on
/// several instances claim at once, so the inner select takes its rows `FOR
/// UPDATE SKIP LOCKED`: each worker locks a disjoint batch without waiting,
/// and a message is leased to exactly one worker at a time.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sending', locked_until = $2, attempts = attempts + 1, updated_at = $1 \
             WHERE id IN ( \
                 SELECT id FROM outbox \
                 WHERE expires_at > $1 AND body IS NOT NULL \
                   AND ((status = 'pending' AND next_attempt_at <= $1) \
                     OR (status = 'sending' AND locked_until <= $1)) \
                 ORDER BY next_attempt_at, id LIMIT $3",
            $lock,
            ") RETURNING id, tenant_id, channel, kind, recipient, subject, body, html, code, status, attempts, \
             next_attempt_at, locked_until, last_error, created_at, updated_at, expires_at"
        )
    };
}
const CLAIM_SQLITE: &str = claim!("");
const CLAIM_POSTGRES: &str = claim!(" FOR UPDATE SKIP LOCKED");

#[async_trait]
impl<D: Driver> OutboxStore for D {
    async fn enqueue(&self, msg: NewOutboxMessage) -> StoreResult<Uuid> {
        let id = Uuid::now_v7();
        self.write(move |c| {
            c.execute(
                "INSERT INTO outbox (id, tenant_id, channel, kind, recipient, subject, body, html, code, status, \
                 attempts, next_attempt_at, created_at, updated_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $11, $11, $12)",
                &args![
                    id,
                    msg.tenant_id,
                    msg.channel.as_str(),
                    msg.kind.as_str(),
                    &msg.recipient,
                    &msg.subject,
                    msg.body.expose(),
                    msg.html.as_ref().map(Secret::expose),
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
            .write(move |c| {
                let sql = c.pick(CLAIM_SQLITE, CLAIM_POSTGRES);
                c.query_map(sql, &args![now, locked_until, limit], message_from_row)
            })
            .await?;
        // RETURNING gives no order guarantee; send the oldest first.
        claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
        Ok(claimed)
    }

    async fn mark_delivered(&self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE outbox SET status = 'delivered', body = NULL, html = NULL, code = NULL, locked_until = NULL, \
                 last_error = NULL, updated_at = $2 WHERE id = $1",
                &args![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_retry(&self, id: Uuid, next_attempt_at: Timestamp, error: &str, now: Timestamp) -> StoreResult<()> {
        let error = error.to_owned();
        self.write(move |c| {
            // Only a message still leased goes back: one that expired or was
            // failed meanwhile stays as it is.
            c.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2, locked_until = NULL, \
                 last_error = $3, updated_at = $4 WHERE id = $1 AND status = 'sending' AND body IS NOT NULL",
                &args![id, next_attempt_at, &error, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(&self, id: Uuid, error: &str, now: Timestamp) -> StoreResult<()> {
        let error = error.to_owned();
        self.write(move |c| {
            c.execute(
                "UPDATE outbox SET status = 'failed', locked_until = NULL, \
                 last_error = $2, updated_at = $3 WHERE id = $1",
                &args![id, &error, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn release(&self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2, locked_until = NULL, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $2 \
                 WHERE id = $1 AND status = 'sending'",
                &args![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn expire(&self, now: Timestamp) -> StoreResult<u64> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE outbox SET status = 'failed', last_error = 'expired', body = NULL, html = NULL, code = NULL, \
                 locked_until = NULL, updated_at = $1 \
                 WHERE body IS NOT NULL AND expires_at <= $1 \
                   AND (status = 'pending' OR (status = 'sending' AND locked_until <= $1))",
                &args![now],
            )?;
            // A delivered or failed row keeps no secret, whatever its expiry;
            // this catches any that an interrupted worker left behind.
            c.execute(
                "UPDATE outbox SET body = NULL, html = NULL, code = NULL, updated_at = $1 \
                 WHERE body IS NOT NULL AND expires_at <= $1 AND status IN ('delivered', 'failed')",
                &args![now],
            )?;
            Ok(n)
        })
        .await
    }

    async fn pending_count(&self) -> StoreResult<u64> {
        self.read(|c| {
            c.query_value(
                "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')",
                &[],
            )
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
                 WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3) \
                 ORDER BY id DESC LIMIT $4"
            );
            c.query_map(
                &sql,
                &args![tenant_id, status.map(OutboxStatus::as_str), before_id, limit],
                message_from_row,
            )
        })
        .await
    }

    async fn resend(&self, tenant_id: Uuid, id: Uuid, now: Timestamp) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $3, locked_until = NULL, \
                 last_error = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND status = 'failed' AND body IS NOT NULL AND expires_at > $3",
                &args![tenant_id, id, now],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
