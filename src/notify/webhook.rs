//! Delivery through the operator's own service: each message is POSTed as
//! JSON `{id, kind, channel, to, subject, body, html, code}` to
//! `notify.webhook.url` (`html` only for an email with an HTML part),
//! for deployments that send mail or SMS their own way.
//!
//! The receiver can tell forge from anyone else and reject replays:
//! `X-Forge-Timestamp` is the sending time in Unix seconds and
//! `X-Forge-Signature` is `sha256=` + hex HMAC-SHA256 under
//! `notify.webhook.secret` of `"<timestamp>.<raw body>"`. The receiver must
//! compute it over the raw bytes, compare in constant time and refuse old
//! timestamps. `id` is stable across retries, so a receiver deduplicates
//! with it (delivery is at-least-once).
//!
//! Outcome: 2xx delivered; 4xx except 408 and 429 permanent (the receiver
//! refuses this message); anything else, a timeout (10 s) or a connection
//! error transient. Redirects are not followed: a POST with a code inside
//! goes only where it was configured to go. Error texts never include the URL
//! (it may carry a token) nor the response body.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::channel::{Channel, Delivery, SendError};
use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::crypto::tokens::hmac_sha256_hex;
use crate::secret::Secret;

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct WebhookChannel {
    client: reqwest::Client,
    url: String,
    secret: Secret,
    clock: Clock,
}

#[derive(Serialize)]
struct Payload<'a> {
    id: String,
    kind: &'a str,
    channel: &'a str,
    to: &'a str,
    subject: &'a str,
    body: &'a str,
    /// The HTML part of an email, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<&'a str>,
    code: &'a str,
}

/// The signature header's value for a payload sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("sha256={}", hmac_sha256_hex(secret, &signed))
}

/// Maps an HTTP status to the outcome of a delivery (shared with Twilio).
pub(super) fn classify(provider: &str, status: reqwest::StatusCode) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    let reason = format!("{provider} answered {code}");
    if status.is_client_error() && code != 408 && code != 429 {
        Err(SendError::permanent(reason))
    } else {
        Err(SendError::transient(reason))
    }
}

/// Describes a failed request without its URL (which may hold a token).
pub(super) fn request_error(provider: &str, e: reqwest::Error) -> SendError {
    SendError::transient(format!("{provider}: {}", describe_request_error(e)))
}

/// What went wrong with a request, for a stored error: never its URL (it
/// may hold a token) nor any body.
pub(crate) fn describe_request_error(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let source = e.without_url();
    let detail = std::error::Error::source(&source)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    format!("{what}{detail}")
}

/// An HTTP client for outgoing deliveries: bounded time, no redirects.
pub(super) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("forge/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            // Only fails when the TLS backend cannot initialise; the default
            // client then reports the same problem on each send.
            tracing::error!("cannot build the HTTP client for notifications: {e}");
            reqwest::Client::new()
        })
}

impl WebhookChannel {
    pub fn new(config: &WebhookConfig, clock: Clock) -> Self {
        Self {
            client: http_client(),
            url: config.url.clone(),
            secret: config.secret.clone().unwrap_or_default(),
            clock,
        }
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, msg: &Delivery) -> Result<(), SendError> {
        let payload = Payload {
            id: msg.id.to_string(),
            kind: msg.kind.as_str(),
            channel: msg.channel.as_str(),
            to: &msg.to,
            subject: &msg.subject,
            body: msg.body.expose(),
            html: msg.html.as_ref().map(Secret::expose),
            code: msg.code.expose(),
        };
        let body =
            serde_json::to_vec(&payload).map_err(|_| SendError::permanent("webhook: cannot encode the payload"))?;
        let timestamp = self.clock.now();
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Forge-Timestamp", timestamp.to_string())
            .header(
                "X-Forge-Signature",
                signature(self.secret.expose().as_bytes(), timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| request_error("webhook", e))?;
        classify("webhook", response.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let want = format!("sha256={}", hmac_sha256_hex(b"k", b"1700000000.{\"a\":1}"));
        assert_eq!(signature(b"k", 1_700_000_000, b"{\"a\":1}"), want);
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(classify("w", StatusCode::NO_CONTENT).is_ok());
        assert!(classify("w", StatusCode::BAD_REQUEST).unwrap_err().permanent);
        assert!(classify("w", StatusCode::NOT_FOUND).unwrap_err().permanent);
        assert!(!classify("w", StatusCode::REQUEST_TIMEOUT).unwrap_err().permanent);
        assert!(!classify("w", StatusCode::TOO_MANY_REQUESTS).unwrap_err().permanent);
        assert!(!classify("w", StatusCode::INTERNAL_SERVER_ERROR).unwrap_err().permanent);
        assert!(!classify("w", StatusCode::SERVICE_UNAVAILABLE).unwrap_err().permanent);
        assert!(!classify("w", StatusCode::FOUND).unwrap_err().permanent);
        assert_eq!(
            classify("w", StatusCode::BAD_GATEWAY).unwrap_err().reason,
            "w answered 502"
        );
    }
}
