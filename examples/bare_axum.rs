//! The baseline `scripts/bench` measures forge against: a bare axum 0.8
//! server, built by the same toolchain with the same release profile and
//! allocator, doing the least each scenario needs and nothing else.
//!
//! - `GET /health` answers `{"status":"ok"}`;
//! - `GET /hello` answers `hello`;
//! - `GET /verify` checks an EdDSA bearer JWT with jsonwebtoken (the work
//!   forge's `/v1/auth/verify` cannot avoid); `GET /token` hands out one.
//!
//! `bare_axum serve` prints `listening on http://ADDR` like forge;
//! `bare_axum argon2 SECONDS` prints the raw argon2id hashes per second
//! on the calling thread with forge's default parameters (19 MiB, t=2,
//! p=1), the ceiling for password sign-ins on one core.

// A measurement, not the server: any surprise is a bug to stop at.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher as _, SaltString};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

struct Keys {
    token: String,
    decoding: DecodingKey,
    validation: Validation,
}

async fn verify(State(keys): State<Arc<Keys>>, headers: HeaderMap) -> StatusCode {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED;
    };
    match jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

fn keys() -> Keys {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = signing.to_pkcs8_der().unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 24 * 3600;
    let claims = Claims {
        sub: "0190a5c4-7e2b-7000-8000-000000000001".into(),
        exp,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    Keys {
        token,
        decoding: DecodingKey::from_ed_der(signing.verifying_key().as_bytes()),
        validation: Validation::new(Algorithm::EdDSA),
    }
}

async fn serve(bind: &str) {
    let keys = Arc::new(keys());
    let token = keys.token.clone();
    let app = Router::new()
        .route(
            "/health",
            get(|| async { ([("content-type", "application/json")], r#"{"status":"ok"}"#) }),
        )
        .route("/hello", get(|| async { "hello" }))
        .route("/token", get(move || async move { token }))
        .route("/verify", get(verify))
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

fn argon2_rate(seconds: u64) {
    let params = argon2::Params::new(19456, 2, 1, None).unwrap();
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let started = Instant::now();
    let mut hashes = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        hasher.hash_password(b"correct horse battery staple", &salt).unwrap();
        hashes += 1;
    }
    println!("{:.1}", hashes as f64 / started.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("argon2") => argon2_rate(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5)),
        _ => {
            let bind = args.get(2).cloned().unwrap_or_else(|| "127.0.0.1:0".into());
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(serve(&bind));
        }
    }
}
