//! What a second factor adds to a sign-in, measured over real HTTP on
//! loopback against the real router (in-memory SQLite, the default argon2id
//! parameters of the sample `forge.toml`): the median of 50 of
//!
//! - a password sign-in of a user without a factor (the baseline),
//! - the TOTP step (`POST /v1/auth/mfa/verify` with a code),
//! - the passkey step (`/v1/auth/mfa/webauthn/options`, the software
//!   authenticator signing, then `/v1/auth/mfa/verify`),
//! - a passwordless passkey sign-in (`/v1/auth/passkey/options` + `verify`).
//!
//! Run it with the release profile (the closing notes quote it):
//!
//! ```text
//! cargo run --release --example mfa_latency
//! ```
//!
//! Each TOTP step uses a code of a fresh time step (the test clock moves
//! 30 s between rounds), since a code is accepted once.

// A measurement, not the server: any surprise is a bug to stop at.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use forge::config::PasswordConfig;
use forge::testing::TestServer;
use forge::testing::passkey::SoftPasskey;
use serde_json::{Value, json};
use totp_rs::TOTP;

const ROUNDS: usize = 50;
const PASSWORD: &str = "correct horse battery staple";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> Value {
    let call = match token {
        Some(t) => s.as_user(t).post(path, body),
        None => s.post(path, body),
    };
    let (status, body) = call.await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn login(s: &TestServer, email: &str) -> Value {
    post(s, "/v1/auth/login", None, json!({"email": email, "password": PASSWORD})).await
}

/// A fresh user with a TOTP factor; returns its authenticator.
async fn totp_user(s: &TestServer, email: &str) -> TOTP {
    let token = s.signup_verified(email, PASSWORD).await["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let started = post(
        s,
        "/v1/users/me/factors/totp",
        Some(&token),
        json!({"current_password": PASSWORD}),
    )
    .await;
    let app = TOTP::from_url(started["otpauth_uri"].as_str().expect("uri")).expect("otpauth uri");
    let confirm = format!(
        "/v1/users/me/factors/totp/{}/confirm",
        started["id"].as_str().expect("id")
    );
    post(s, &confirm, Some(&token), json!({"code": code_now(s, &app)})).await;
    app
}

fn code_now(s: &TestServer, app: &TOTP) -> String {
    app.generate(u64::try_from(s.clock().now()).expect("time after 1970"))
}

/// A fresh user with a passkey held by `key`.
async fn passkey_user(s: &TestServer, email: &str, key: &mut SoftPasskey) {
    let token = s.signup_verified(email, PASSWORD).await["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let options = post(
        s,
        "/v1/users/me/factors/webauthn/options",
        Some(&token),
        json!({"current_password": PASSWORD}),
    )
    .await;
    let credential = key.register(&options["publicKey"]);
    post(
        s,
        "/v1/users/me/factors/webauthn",
        Some(&token),
        json!({"request_id": options["request_id"], "credential": credential}),
    )
    .await;
}

#[tokio::main]
async fn main() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.password = PasswordConfig::default();
    })
    .await;
    let origin = s
        .state()
        .config
        .webauthn
        .origins
        .first()
        .cloned()
        .expect("webauthn.origins");

    s.signup_verified("plain@example.com", PASSWORD).await;
    let app = totp_user(&s, "totp@example.com").await;
    let mut key = SoftPasskey::new(&origin);
    passkey_user(&s, "passkey@example.com", &mut key).await;

    let (mut password, mut totp, mut passkey, mut passwordless) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let body = login(&s, "plain@example.com").await;
        password.push(t.elapsed());
        assert!(body["access_token"].is_string());

        s.clock().advance(30);
        let mfa_token = login(&s, "totp@example.com").await["mfa_token"].clone();
        let t = Instant::now();
        let body = post(
            &s,
            "/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa_token, "totp": code_now(&s, &app)}),
        )
        .await;
        totp.push(t.elapsed());
        assert!(body["access_token"].is_string());

        let mfa_token = login(&s, "passkey@example.com").await["mfa_token"].clone();
        let t = Instant::now();
        let options = post(
            &s,
            "/v1/auth/mfa/webauthn/options",
            None,
            json!({"mfa_token": mfa_token}),
        )
        .await;
        let credential = key.sign_in(&options["publicKey"]);
        let body = post(
            &s,
            "/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa_token, "request_id": options["request_id"], "credential": credential}),
        )
        .await;
        passkey.push(t.elapsed());
        assert!(body["access_token"].is_string());

        let t = Instant::now();
        let options = post(&s, "/v1/auth/passkey/options", None, json!({})).await;
        let credential = key.sign_in(&options["publicKey"]);
        let body = post(
            &s,
            "/v1/auth/passkey/verify",
            None,
            json!({"request_id": options["request_id"], "credential": credential}),
        )
        .await;
        passwordless.push(t.elapsed());
        assert!(body["access_token"].is_string());
    }
    println!("median of {ROUNDS}, loopback HTTP, in-memory SQLite, argon2id m=19456 t=2 p=1:");
    println!("  password sign-in (no factor)        {}", ms(median(password)));
    println!("  + TOTP step (mfa/verify)            {}", ms(median(totp)));
    println!("  + passkey step (options + verify)   {}", ms(median(passkey)));
    println!("  passwordless passkey sign-in        {}", ms(median(passwordless)));
    println!("(the passkey rows include the software authenticator's P-256 signature)");
    s.stop().await;
}
