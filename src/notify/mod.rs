//! Notifications: one-time codes on their way to a person, by email or SMS.
//!
//! A use case calls [`Notifier::send`] with the code; the notifier renders the
//! message ([`render`]) and writes it to the durable outbox
//! ([`OutboxStore`]) in that request; a background worker
//! ([`Notifier::spawn_worker`]) delivers it through a [`Channel`] with
//! retries. So a slow or failing provider never slows a request down nor
//! shows in its timing, and neither a restart nor a provider outage loses a
//! message: delivery is at-least-once. The one exception is the `memory`
//! channel (tests, `/v1/dev/outbox`): its messages are handed over inline so
//! they are visible the moment the request returns, and there is nothing to
//! make durable about a message that lives in this process anyway.
//!
//! Which provider carries a message depends on `notify.channel` and on the
//! message's medium (an email address or a phone number):
//!
//! | `notify.channel` | email                                  | SMS                     |
//! |------------------|----------------------------------------|-------------------------|
//! | `log`            | log                                    | log                     |
//! | `memory`         | memory                                 | memory                  |
//! | `smtp`           | SMTP                                   | log, with a warning     |
//! | `webhook`        | webhook                                | webhook                 |
//! | `twilio`         | SMTP if `notify.smtp.host` is set, else log with a warning | Twilio |
//!
//! Twilio carries SMS only, yet a Twilio deployment still sends email
//! (verification, password reset): it configures `notify.smtp` as well.
//! Falling back to the log keeps a half-configured deployment usable, and
//! the start-up warning says that codes are being written to the log.
//!
//! Invariants: the code is a [`Secret`] until a channel sends it; the log
//! channel is the only place a code is logged; stored error texts and log
//! lines never carry a code, a body or a credential; bodies are erased from
//! the outbox once delivered, failed or expired.

mod backchannel;
mod channel;
mod log;
mod memory;
pub mod overrides;
pub mod render;
mod smtp;
mod twilio;
mod webhook;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use backchannel::BackchannelChannel;
pub use channel::{Channel, Delivery, SendError, scrub};
pub use log::LogChannel;
pub use memory::{MemoryChannel, MemoryOutbox, OutboxEntry};
pub use overrides::{Overrides, Part, PartPreview, Source};
pub use render::{Content, Letterhead, Message, NoticeText, Vars};
pub use smtp::SmtpChannel;
pub use twilio::TwilioChannel;
pub(crate) use webhook::describe_request_error;
pub use webhook::{WebhookChannel, signature as webhook_signature};
pub use worker::WorkerSettings;
pub(crate) use worker::is_stopped;

use crate::clock::Clock;
use crate::config::{Config, NotifyChannel};
use crate::domain::settings::Branding;
use crate::domain::{Email, Identifier, Phone};
use crate::secret::Secret;
pub use crate::store::{MessageKind, OutboxChannel};
use crate::store::{NewOutboxMessage, Store, StoreResult};

/// Where a message goes; the variant picks email or SMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// A normalised email address (see [`Email::parse`]).
    Email(String),
    /// An E.164 phone number (see [`Phone::parse`]).
    Phone(String),
}

impl Recipient {
    pub fn channel(&self) -> OutboxChannel {
        match self {
            Recipient::Email(_) => OutboxChannel::Email,
            Recipient::Phone(_) => OutboxChannel::Sms,
        }
    }

    pub fn address(&self) -> &str {
        match self {
            Recipient::Email(a) | Recipient::Phone(a) => a,
        }
    }
}

impl From<&Email> for Recipient {
    fn from(e: &Email) -> Self {
        Recipient::Email(e.as_str().to_owned())
    }
}

impl From<&Phone> for Recipient {
    fn from(p: &Phone) -> Self {
        Recipient::Phone(p.as_str().to_owned())
    }
}

impl From<&Identifier> for Recipient {
    fn from(i: &Identifier) -> Self {
        match i {
            Identifier::Email(e) => e.into(),
            Identifier::Phone(p) => p.into(),
        }
    }
}

/// What the notifier and its worker share.
struct Inner {
    store: Arc<dyn Store>,
    clock: Clock,
    product: String,
    public_url: String,
    /// `notify.templates_dir`, when set.
    overrides: Option<Arc<Overrides>>,
    /// At least 1.
    max_attempts: u32,
    email: Arc<dyn Channel>,
    sms: Arc<dyn Channel>,
    /// Back-channel logout tokens: always over HTTP, whatever
    /// `notify.channel` says (they go to a client, not a person).
    backchannel: Arc<dyn Channel>,
    memory: Option<MemoryOutbox>,
    /// Wakes the worker when a message is queued.
    wake: Notify,
}

impl Inner {
    fn channel_for(&self, channel: OutboxChannel) -> &Arc<dyn Channel> {
        match channel {
            OutboxChannel::Email => &self.email,
            OutboxChannel::Sms => &self.sms,
            OutboxChannel::Backchannel => &self.backchannel,
        }
    }
}

/// Sends codes. Cheap to clone: clones share the outbox, channels and worker
/// wake-up.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
    settings: WorkerSettings,
}

impl Notifier {
    /// Chooses the channels from `config.notify` (see the module table) and
    /// logs a warning for each medium that falls back to the log. A channel
    /// that cannot work (say, a malformed `notify.smtp.from`) reports it at
    /// start-up and fails its messages with that reason; the one refusal is
    /// a `notify.templates_dir` that is not a directory (a typo there would
    /// silently send the built-in texts). Override files that do not
    /// compile are reported as warnings.
    pub fn new(config: &Config, store: Arc<dyn Store>, clock: Clock) -> Result<Self, String> {
        let n = &config.notify;
        let log: Arc<dyn Channel> = Arc::new(LogChannel);
        let mut memory = None;
        let (email, sms): (Arc<dyn Channel>, Arc<dyn Channel>) = match n.channel {
            NotifyChannel::Log => (log.clone(), log),
            NotifyChannel::Memory => {
                let outbox = MemoryOutbox::new();
                memory = Some(outbox.clone());
                let channel: Arc<dyn Channel> = Arc::new(MemoryChannel {
                    outbox,
                    clock: clock.clone(),
                });
                (channel.clone(), channel)
            }
            NotifyChannel::Smtp => {
                tracing::warn!(
                    "notify.channel is smtp, which carries email only: SMS codes will be written to the log"
                );
                (Arc::new(SmtpChannel::new(&n.smtp)), log)
            }
            NotifyChannel::Webhook => {
                let channel: Arc<dyn Channel> = Arc::new(WebhookChannel::new(&n.webhook, clock.clone()));
                (channel.clone(), channel)
            }
            NotifyChannel::Twilio => {
                let email: Arc<dyn Channel> = if n.smtp.host.is_empty() {
                    tracing::warn!(
                        "notify.channel is twilio, which carries SMS only, and notify.smtp.host is not set: \
                         email codes will be written to the log"
                    );
                    log
                } else {
                    Arc::new(SmtpChannel::new(&n.smtp))
                };
                (email, Arc::new(TwilioChannel::new(&n.twilio)))
            }
        };
        let overrides = match n.templates_dir.as_str() {
            "" => None,
            dir => {
                let overrides = Overrides::open(std::path::Path::new(dir))?;
                for problem in overrides.check_all() {
                    tracing::warn!("notify.templates_dir: {problem}");
                }
                Some(Arc::new(overrides))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                product: n.product_name.clone(),
                public_url: config.server.public_url.clone(),
                overrides,
                max_attempts: n.max_attempts.max(1),
                email,
                sms,
                backchannel: Arc::new(BackchannelChannel::new()),
                memory,
                wake: Notify::new(),
            }),
            settings: WorkerSettings::default(),
        })
    }

    /// The same notifier whose workers (spawned after this) use `settings`.
    pub fn with_worker_settings(mut self, settings: WorkerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Renders the message carrying `code` and queues it for `to`; the code
    /// is useless after `ttl`, and so is the message (it is then erased,
    /// delivered or not). Returns once the message is durably queued (or,
    /// on the memory channel, captured). Fails only if the store does.
    pub async fn send(
        &self,
        tenant_id: Uuid,
        to: Recipient,
        kind: MessageKind,
        code: &Secret,
        ttl: Duration,
    ) -> StoreResult<()> {
        let content = Content::Code {
            code: code.expose(),
            ttl_minutes: ttl.as_secs().div_ceil(60).max(1),
        };
        let message = self.render(tenant_id, &to, kind, &content).await?;
        self.queue(tenant_id, to, kind, message, code.clone(), ttl).await
    }

    /// Queues a notice (no code); it is worth sending for a day.
    pub async fn notice(
        &self,
        tenant_id: Uuid,
        to: Recipient,
        kind: MessageKind,
        notice: &NoticeText,
    ) -> StoreResult<()> {
        let message = self.render(tenant_id, &to, kind, &Content::Notice(notice)).await?;
        let ttl = Duration::from_secs(24 * 3600);
        self.queue(tenant_id, to, kind, message, Secret::default(), ttl).await
    }

    /// Who the messages of `tenant_id` come from: the product, and the
    /// tenant's slug, name and branding (empty and default for a tenant
    /// that is gone).
    async fn letterhead(&self, tenant_id: Uuid) -> StoreResult<Letterhead> {
        let inner = &self.inner;
        let (tenant_slug, tenant_name) = inner
            .store
            .tenant_by_id(tenant_id)
            .await?
            .map(|t| (t.slug.as_str().to_owned(), t.name))
            .unwrap_or_default();
        let brand = match inner.store.tenant_settings(tenant_id).await? {
            Some(settings) => settings.branding(&tenant_name),
            None => Branding::default_for(&tenant_name),
        };
        Ok(Letterhead {
            product: inner.product.clone(),
            public_url: inner.public_url.clone(),
            tenant_slug,
            tenant_name,
            brand,
        })
    }

    /// Whether `notify.templates_dir` is set.
    pub fn has_overrides(&self) -> bool {
        self.inner.overrides.is_some()
    }

    /// Each part of the message of `kind` on `channel` that `tenant_id`
    /// would send with `content`, and where it comes from (the admin
    /// site's preview; `to` is a sample address).
    pub async fn preview(
        &self,
        tenant_id: Uuid,
        kind: MessageKind,
        channel: OutboxChannel,
        to: &str,
        content: &Content<'_>,
    ) -> StoreResult<Vec<PartPreview>> {
        let (vars, builtin) = self.builtin(tenant_id, kind, channel, to, content).await?;
        let fallback = overrides::builtin_parts(channel, &builtin);
        let Some(overrides) = self.inner.overrides.clone() else {
            return Ok(fallback);
        };
        let parts = tokio::task::spawn_blocking(move || overrides.preview(kind, channel, &vars, &builtin)).await;
        Ok(parts.unwrap_or(fallback))
    }

    /// The message of `kind` for `to`: the built-in, with the operator's
    /// overrides applied (read off the async runtime: they are files).
    async fn render(
        &self,
        tenant_id: Uuid,
        to: &Recipient,
        kind: MessageKind,
        content: &Content<'_>,
    ) -> StoreResult<Message> {
        let channel = to.channel();
        let (vars, builtin) = self.builtin(tenant_id, kind, channel, to.address(), content).await?;
        let Some(overrides) = self.inner.overrides.clone() else {
            return Ok(builtin);
        };
        let again = vars.clone();
        let applied = tokio::task::spawn_blocking(move || overrides.apply(kind, channel, &vars, builtin)).await;
        // A panic in there costs the override, not the message.
        Ok(applied.unwrap_or_else(|_| render::builtin(kind, channel, &again)))
    }

    /// The values of a message and its built-in words.
    async fn builtin(
        &self,
        tenant_id: Uuid,
        kind: MessageKind,
        channel: OutboxChannel,
        to: &str,
        content: &Content<'_>,
    ) -> StoreResult<(Vars, Message)> {
        let head = self.letterhead(tenant_id).await?;
        let vars = Vars::new(kind, &head, to, content);
        let builtin = render::builtin(kind, channel, &vars);
        Ok((vars, builtin))
    }

    /// Queues a rendered message (or, on the memory channel, captures it).
    async fn queue(
        &self,
        tenant_id: Uuid,
        to: Recipient,
        kind: MessageKind,
        message: Message,
        code: Secret,
        ttl: Duration,
    ) -> StoreResult<()> {
        let inner = &self.inner;
        let channel = to.channel();
        let now = inner.clock.now();
        if let Some(outbox) = &inner.memory {
            outbox.push(OutboxEntry {
                to: to.address().to_owned(),
                channel,
                kind,
                code: code.expose().to_owned(),
                subject: message.subject,
                body: message.text,
                html: message.html,
                at: now,
            });
            return Ok(());
        }
        let recipient = match to {
            Recipient::Email(a) | Recipient::Phone(a) => a,
        };
        inner
            .store
            .enqueue(NewOutboxMessage {
                tenant_id,
                channel,
                kind,
                recipient,
                subject: message.subject,
                body: Secret::new(message.text),
                html: message.html.map(Secret::new),
                code,
                next_attempt_at: now,
                created_at: now,
                expires_at: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            })
            .await?;
        inner.wake.notify_one();
        Ok(())
    }

    /// Queues a signed back-channel logout token for a client's
    /// `backchannel_logout_uri`; retried by the worker until `ttl` ends.
    /// Durable on every `notify.channel`, the memory one included: it goes
    /// to a client, over HTTP.
    pub async fn logout_token(&self, tenant_id: Uuid, uri: &str, token: &Secret, ttl: Duration) -> StoreResult<()> {
        let inner = &self.inner;
        let now = inner.clock.now();
        inner
            .store
            .enqueue(NewOutboxMessage {
                tenant_id,
                channel: OutboxChannel::Backchannel,
                kind: MessageKind::LogoutToken,
                recipient: uri.to_owned(),
                subject: render::subject(MessageKind::LogoutToken, &inner.product),
                // The body is the signed logout token itself.
                body: token.clone(),
                html: None,
                code: Secret::default(),
                next_attempt_at: now,
                created_at: now,
                expires_at: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            })
            .await?;
        inner.wake.notify_one();
        Ok(())
    }

    /// The captured messages when `notify.channel = "memory"`, for
    /// `GET /v1/dev/outbox`; `None` on every other channel.
    pub fn memory(&self) -> Option<&MemoryOutbox> {
        self.inner.memory.as_ref()
    }

    /// Messages queued and not yet delivered or failed, for `/metrics` and
    /// readiness.
    pub async fn pending_count(&self) -> StoreResult<u64> {
        self.inner.store.pending_count().await
    }

    /// Starts the delivery worker on the current Tokio runtime. It runs
    /// until `shutdown` turns true (or its sender is dropped), then stops
    /// claiming, finishes the sends under way and returns: await the handle
    /// to know that nothing is in flight. Start one per process; several
    /// (even across instances) are safe, as claiming is atomic.
    pub fn spawn_worker(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(worker::run(self.inner.clone(), self.settings, shutdown))
    }
}

/// Checks the SMTP settings by connecting and authenticating, sending
/// nothing (`forge doctor`). The error is lettre's, which names no secret.
pub async fn test_smtp(config: &crate::config::SmtpConfig) -> Result<(), String> {
    smtp::SmtpChannel::test_connection(config).await
}
