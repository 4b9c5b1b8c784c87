//! The delivery port: one [`Channel`] per provider (log, memory, SMTP,
//! webhook, Twilio), each taking one rendered [`Delivery`] and saying whether
//! it got through.
//!
//! Invariants: a channel never retries by itself (the outbox worker owns
//! retries, so attempts are counted and durable); its [`SendError`] says
//! whether trying again could help, and its `reason` never carries the body,
//! the code or a credential — it is stored in `outbox.last_error` and logged.
//! [`scrub`] enforces the first two even for text a remote server sent back.

use async_trait::async_trait;
use uuid::Uuid;

use crate::secret::Secret;
use crate::store::{MessageKind, OutboxChannel, OutboxMessage};

/// One message on its way out.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: MessageKind,
    pub channel: OutboxChannel,
    /// An email address or an E.164 phone number.
    pub to: String,
    pub subject: String,
    /// The rendered text, containing the code.
    pub body: Secret,
    /// The HTML alternative of an email, containing the code too.
    pub html: Option<Secret>,
    /// The code alone: the memory outbox and the webhook hand it over as a field.
    pub code: Secret,
}

impl Delivery {
    /// The delivery of a claimed outbox row; `None` once its secret is erased
    /// (there is nothing left to send).
    pub fn from_message(m: &OutboxMessage) -> Option<Self> {
        Some(Self {
            id: m.id,
            tenant_id: m.tenant_id,
            kind: m.kind,
            channel: m.channel,
            to: m.recipient.clone(),
            subject: m.subject.clone(),
            body: m.body.clone()?,
            html: m.html.clone(),
            code: m.code.clone().unwrap_or_default(),
        })
    }
}

/// Why a delivery did not get through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SendError {
    /// Trying again cannot help (bad address, rejected credentials, 4xx/5xx
    /// refusal): the worker fails the message at once.
    pub permanent: bool,
    /// For `last_error` and the log: never the body, the code or a secret.
    pub reason: String,
}

impl SendError {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            permanent: true,
            reason: reason.into(),
        }
    }

    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            permanent: false,
            reason: reason.into(),
        }
    }
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// A short name for logs: "log", "memory", "smtp", "webhook", "twilio".
    fn name(&self) -> &'static str;

    /// Hands the message to the provider once.
    async fn send(&self, msg: &Delivery) -> Result<(), SendError>;
}

/// Longest `last_error` kept: enough for a provider's one-line reason.
const MAX_REASON: usize = 300;

/// Makes an error text safe to store and log: removes the delivery's code and
/// body should a remote server have echoed them, keeps one line, and bounds
/// its length.
pub fn scrub(reason: &str, msg: &Delivery) -> String {
    let mut out = reason.to_owned();
    // Longest first: the bodies contain the code.
    let html = msg.html.as_ref().map(Secret::expose).unwrap_or_default();
    for secret in [html, msg.body.expose(), msg.code.expose()] {
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
    }
    let mut out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            kind: MessageKind::Otp,
            channel: OutboxChannel::Sms,
            to: "+14155550100".into(),
            subject: "s".into(),
            body: Secret::new("Your forge code is 123456."),
            html: None,
            code: Secret::new("123456"),
        }
    }

    #[test]
    fn scrub_removes_code_and_newlines_and_bounds_length() {
        let d = delivery();
        assert_eq!(scrub("550 rejected 123456\r\nbye", &d), "550 rejected *** bye");
        assert_eq!(scrub("echo: Your forge code is 123456.", &d), "echo: ***");
        let long = "é".repeat(400);
        let s = scrub(&long, &d);
        assert!(s.len() <= MAX_REASON + '…'.len_utf8());
    }

    #[test]
    fn debug_of_a_delivery_hides_the_secret() {
        let s = format!("{:?}", delivery());
        assert!(!s.contains("123456"), "{s}");
    }
}
