//! The HTTP client forge talks to providers with: redirects are never
//! followed (a provider endpoint that redirects is misconfigured, and
//! following it would let a provider point forge anywhere), connections
//! and whole exchanges are time-boxed, and bodies are read in chunks and
//! cut off at [`MAX_BODY`] so a hostile or broken provider cannot make
//! forge buffer without bound.

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use super::error::UpstreamError;

/// The largest response body read from a provider.
pub const MAX_BODY: usize = 1 << 20;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn client() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        // GitHub's API refuses requests without a User-Agent.
        .user_agent(concat!("forge/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .build()
        // Building only fails when the TLS backend cannot start, which
        // rustls with bundled roots does not do; the default client then
        // still has timeouts from the request builder below.
        .unwrap_or_default()
}

fn network(stage: &'static str, e: &reqwest::Error) -> UpstreamError {
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "network error"
    };
    UpstreamError::unavailable(stage, reason)
}

/// Sends the request and reads at most [`MAX_BODY`] of the answer.
pub async fn send(stage: &'static str, request: RequestBuilder) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
    let mut response = request
        .timeout(TOTAL_TIMEOUT)
        .send()
        .await
        .map_err(|e| network(stage, &e))?;
    let status = response.status();
    if response.content_length().is_some_and(|len| len > MAX_BODY as u64) {
        return Err(UpstreamError::unavailable(stage, "response too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(stage, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(UpstreamError::unavailable(stage, "response too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// A GET answered 200 with a JSON document; anything else is
/// `Unavailable` at `stage` (`refused` for a 4xx, so the caller can tell).
pub async fn get_json(stage: &'static str, request: RequestBuilder) -> Result<Value, UpstreamError> {
    let (status, body) = send(stage, request).await?;
    if status.is_redirection() {
        return Err(UpstreamError::unavailable(stage, "unexpected redirect"));
    }
    if status.is_client_error() {
        return Err(UpstreamError::unavailable(stage, "refused"));
    }
    if !status.is_success() {
        return Err(UpstreamError::unavailable(stage, "server error"));
    }
    serde_json::from_slice(&body).map_err(|_| UpstreamError::unavailable(stage, "not JSON"))
}
