//! forge's integration tests: one binary, each test starting its own server
//! through the public harness (`forge::testing::TestServer`) and talking
//! HTTP to it.

// Test code: a failed unwrap is a failed test (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_site;
mod admin_users;
mod assurance;
mod audit;
mod auth;
mod backups;
mod cli;
mod clients;
mod errors;
mod factors;
mod federation;
mod hosted;
mod import;
mod integrity;
mod limits;
mod mfa;
mod mfa_policy;
#[cfg(feature = "postgres")]
mod multi_instance;
mod notices;
mod notify;
mod oidc;
mod operator;
mod ops;
mod otp;
mod passkeys;
mod providers;
mod rbac;
mod recovery;
mod security_state;
mod settings;
mod sidecar;
mod site_clients;
mod site_mfa;
mod site_passkeys;
mod site_providers;
mod site_templates;
mod site_webhooks;
mod store_conformance;
mod store_isolation;
mod support;
mod templates;
mod tenants;
mod tokens;
mod users;
mod webhooks;

use reqwest::{Response, StatusCode};
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

/// Status and JSON body of a response (Null when there is no body).
pub async fn parts(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn access(v: &Value) -> &str {
    v["access_token"].as_str().expect("access_token")
}

pub fn refresh(v: &Value) -> &str {
    v["refresh_token"].as_str().expect("refresh_token")
}

/// Asserts the one error shape and returns the code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "body: {body}");
    assert_eq!(body["error"], want_code, "body: {body}");
    assert!(body["message"].is_string(), "error body without message: {body}");
}
