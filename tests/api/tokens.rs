//! Forged, tampered and stale access tokens are all 401 on every
//! authenticated route.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::{PASSWORD, access, assert_error};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn split(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let p = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (h, p, it.next().unwrap().to_string())
}

async fn assert_rejected(s: &TestServer, token: &str, why: &str) {
    for path in ["/v1/users/me", "/v1/auth/verify"] {
        let (status, body) = s.as_user(token).get(path).await;
        assert_eq!(status, 401, "{why} on {path}: {body}");
        assert_error(status, &body, 401, "invalid_token");
    }
}

#[tokio::test]
async fn forged_tokens_are_rejected() {
    let s = TestServer::start().await;
    let session = s.signup("mallory@example.com", PASSWORD).await;
    let good = access(&session).to_string();
    let (header, payload, sig) = split(&good);
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());

    // alg: none, no signature.
    let mut none = header.clone();
    none["alg"] = json!("none");
    assert_rejected(&s, &format!("{}.{}.", b64(&none), b64(&payload)), "alg none").await;

    // HS256 signed with the public key (the classic key-confusion attack).
    let jwks: Value = s.get("/.well-known/jwks.json").response().await.json().await.unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_string();
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    for secret in [x.as_bytes().to_vec(), raw] {
        let mut hs = header.clone();
        hs["alg"] = json!("HS256");
        let signing_input = format!("{}.{}", b64(&hs), b64(&payload));
        let mac = forge::crypto::tokens::hmac_sha256_hex(&secret, signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(hex::decode(mac).unwrap());
        assert_rejected(&s, &format!("{signing_input}.{sig}"), "HS256 with public key").await;
    }

    // Tampered payload with the original signature.
    let mut evil = payload.clone();
    evil["roles"] = json!(["admin"]);
    assert_rejected(&s, &format!("{}.{}.{}", b64(&header), b64(&evil), sig), "tampered").await;

    // Unknown kid.
    let mut other_kid = header.clone();
    other_kid["kid"] = json!("not-a-key");
    assert_rejected(
        &s,
        &format!("{}.{}.{}", b64(&other_kid), b64(&payload), sig),
        "unknown kid",
    )
    .await;

    // Garbage.
    assert_rejected(&s, "not.a.jwt", "garbage").await;
    assert_rejected(&s, "", "empty").await;
}

/// Tokens signed with the server's real key but wrong claims.
#[tokio::test]
async fn expired_and_misaddressed_tokens_are_rejected() {
    let s = TestServer::start().await;
    let session = s.signup("trent@example.com", PASSWORD).await;
    let (_, payload, _) = split(access(&session));
    let claims: forge::crypto::jwt::AccessClaims = serde_json::from_value(payload).unwrap();
    let keys = s.state().keys.current();
    let now = s.clock().now();
    let mut expired = claims.clone();
    expired.iat = now - 3600;
    expired.exp = now - 600;
    let mut wrong_iss = claims.clone();
    wrong_iss.iss = "https://evil.example".into();
    let mut wrong_aud = claims.clone();
    wrong_aud.aud = "someone-else".into();
    for (c, why) in [(expired, "expired"), (wrong_iss, "wrong iss"), (wrong_aud, "wrong aud")] {
        assert_rejected(&s, &keys.sign(&c).unwrap(), why).await;
    }
    // The same claims, correctly signed, pass: the cases above fail for their reason.
    assert_eq!(s.as_user(keys.sign(&claims).unwrap()).get("/v1/users/me").await.0, 200);
}

#[tokio::test]
async fn a_token_from_another_server_is_rejected() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let session = a.signup("olivia@example.com", PASSWORD).await;
    assert_rejected(&b, access(&session), "other server's key").await;
}

#[tokio::test]
async fn hs256_mode_signs_and_verifies() {
    let s = TestServer::start_with(|c| {
        c.jwt.algorithm = forge::config::JwtAlgorithm::HS256;
        c.jwt.secret = Some(forge::secret::Secret::new("0123456789abcdef0123456789abcdef-secret"));
    })
    .await;
    let session = s.signup("hs@example.com", PASSWORD).await;
    let (header, payload, _) = split(access(&session));
    assert_eq!(header["alg"], "HS256");
    assert_eq!(s.as_user(access(&session)).get("/v1/users/me").await.0, 200);
    let jwks: Value = s.get("/.well-known/jwks.json").response().await.json().await.unwrap();
    assert_eq!(jwks["keys"], json!([]), "the HMAC secret is never published");
    let mut none = header.clone();
    none["alg"] = json!("none");
    assert_rejected(&s, &format!("{}.{}.", b64(&none), b64(&payload)), "alg none").await;
}
