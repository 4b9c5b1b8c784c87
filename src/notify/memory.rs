//! The test channel: keeps every message in memory for `GET /v1/dev/outbox`,
//! so tests (forge's and its users') can read the code a request sent.
//!
//! Invariants: a message is visible the moment the request that sent it
//! returns (the [`Notifier`](super::Notifier) hands memory messages over
//! inline instead of queueing them: there is nothing to make durable about a
//! message that lives in this process's memory anyway); each server has its
//! own outbox (no global state); and the outbox is bounded, dropping the
//! oldest messages, so a development server left running does not grow.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

use super::channel::{Channel, Delivery, SendError};
use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::store::{MessageKind, OutboxChannel};

/// Messages kept; older ones are dropped first.
const CAPACITY: usize = 1000;

/// One captured message, as `GET /v1/dev/outbox` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    pub to: String,
    pub channel: OutboxChannel,
    pub kind: MessageKind,
    /// The code the message carries, in the clear: this is the dev outbox's purpose.
    pub code: String,
    pub subject: String,
    /// The text body (the whole SMS).
    pub body: String,
    /// The HTML part of an email, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// When it was sent; RFC 3339 in JSON.
    #[serde(serialize_with = "crate::domain::ts::serialize")]
    pub at: Timestamp,
}

/// A shared, bounded list of sent messages. Clones share the list.
#[derive(Clone, Default)]
pub struct MemoryOutbox {
    entries: Arc<Mutex<VecDeque<OutboxEntry>>>,
}

impl MemoryOutbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one message.
    pub fn push(&self, entry: OutboxEntry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The messages sent to `to` (an email address or E.164 phone number, as
    /// normalised by `Email::parse`/`Phone::parse`), newest first.
    pub fn messages_to(&self, to: &str) -> Vec<OutboxEntry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().rev().filter(|e| e.to == to).cloned().collect()
    }

    /// Every message kept, newest first.
    pub fn all(&self) -> Vec<OutboxEntry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().rev().cloned().collect()
    }
}

/// The [`Channel`] face of a [`MemoryOutbox`].
pub struct MemoryChannel {
    pub outbox: MemoryOutbox,
    pub clock: Clock,
}

#[async_trait]
impl Channel for MemoryChannel {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn send(&self, msg: &Delivery) -> Result<(), SendError> {
        self.outbox.push(OutboxEntry {
            to: msg.to.clone(),
            channel: msg.channel,
            kind: msg.kind,
            code: msg.code.expose().to_owned(),
            subject: msg.subject.clone(),
            body: msg.body.expose().to_owned(),
            html: msg.html.as_ref().map(|h| h.expose().to_owned()),
            at: self.clock.now(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(to: &str, code: &str, at: i64) -> OutboxEntry {
        OutboxEntry {
            to: to.into(),
            channel: OutboxChannel::Email,
            kind: MessageKind::Otp,
            code: code.into(),
            subject: "s".into(),
            body: format!("code {code}"),
            html: None,
            at,
        }
    }

    #[test]
    fn newest_first_per_recipient_and_bounded() {
        let outbox = MemoryOutbox::new();
        outbox.push(entry("a@x.test", "1", 1));
        outbox.push(entry("b@x.test", "2", 2));
        outbox.push(entry("a@x.test", "3", 3));
        let codes: Vec<_> = outbox.messages_to("a@x.test").into_iter().map(|e| e.code).collect();
        assert_eq!(codes, ["3", "1"]);
        assert!(outbox.messages_to("c@x.test").is_empty());

        for i in 0..CAPACITY {
            outbox.push(entry("c@x.test", &i.to_string(), 10));
        }
        assert_eq!(outbox.all().len(), CAPACITY);
        assert!(outbox.messages_to("a@x.test").is_empty());
    }

    #[test]
    fn serialises_as_the_dev_outbox_shows_it() {
        let v = serde_json::to_value(entry("a@x.test", "123456", 0)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"to": "a@x.test", "channel": "email", "kind": "otp", "code": "123456",
                               "subject": "s", "body": "code 123456", "at": "1970-01-01T00:00:00Z"})
        );
    }
}
