//! Bad input of every kind gets the documented 4xx and the one error body.

use forge::testing::TestServer;

use crate::{assert_error, parts};

#[tokio::test]
async fn malformed_bodies_are_4xx_never_500() {
    let s = TestServer::start().await;
    let post = |path: &str, ct: Option<&str>, body: Vec<u8>| {
        let mut req = s.client().post(s.url(path)).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let json = Some("application/json");
    // (path, content type, body, status, code)
    type Case = (&'static str, Option<&'static str>, Vec<u8>, u16, &'static str);
    let cases: Vec<Case> = vec![
        ("/v1/auth/signup", json, b"{not json".to_vec(), 400, "invalid_request"),
        ("/v1/auth/signup", json, b"[]".to_vec(), 400, "invalid_request"),
        (
            "/v1/auth/signup",
            json,
            br#"{"email": 5, "password": "x"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/signup",
            json,
            br#"{"email": "a@b.co"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/signup",
            json,
            br#"{"email": "a@b.co", "password": "correct horse battery", "admin": true}"#.to_vec(),
            400,
            "invalid_request",
        ),
        ("/v1/auth/signup", json, vec![0xff, 0xfe, 0x00], 400, "invalid_request"),
        (
            "/v1/auth/signup",
            Some("text/plain"),
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("/v1/auth/signup", None, b"{}".to_vec(), 415, "unsupported_media_type"),
        (
            "/v1/auth/login",
            json,
            br#"{"email": "a@b.co", "password": null}"#.to_vec(),
            400,
            "invalid_request",
        ),
        ("/v1/auth/refresh", json, b"{}".to_vec(), 400, "invalid_request"),
        (
            "/v1/auth/logout",
            Some("text/plain"),
            b"x".to_vec(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (path, ct, body, status, code) in cases {
        let (got, resp) = parts(post(path, ct, body.clone()).await.unwrap()).await;
        assert_error(got, &resp, status, code);
    }
}

#[tokio::test]
async fn a_rejected_body_never_echoes_its_values() {
    let s = TestServer::start().await;
    let (status, body) = parts(
        s.client()
            .post(s.url("/v1/auth/login"))
            .header("content-type", "application/json")
            .body(r#"{"email": "a@b.co", "password": "hunter2-secret", "extra": "hunter2-secret"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("hunter2"), "{body}");
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let s = TestServer::start().await;
    let big = format!(r#"{{"email": "a@b.co", "password": "{}"}}"#, "x".repeat(70_000));
    let (status, body) = parts(
        s.client()
            .post(s.url("/v1/auth/signup"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let s = TestServer::start().await;
    let (status, body) = s.get("/v1/nope").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.get("/v1/auth/login").await;
    assert_error(status, &body, 405, "method_not_allowed");
    let (status, body) = s.get("/v1/users/me?x=%ZZ").await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn responses_carry_a_request_id_and_nosniff() {
    let s = TestServer::start().await;
    let resp = s.get("/health").response().await;
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    // Made by forge: a fresh UUID per request.
    let id = |resp: &reqwest::Response| resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let first = id(&resp);
    assert!(uuid::Uuid::parse_str(&first).is_ok(), "{first}");
    assert_ne!(first, id(&s.get("/health").response().await));
    // The caller's own id travels back unchanged, on errors too.
    let resp = s
        .get("/v1/users/me")
        .header("x-request-id", "trace-4711")
        .response()
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(id(&resp), "trace-4711");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}
