//! Email verification, password reset and password change.

use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, access, assert_error, refresh};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

#[tokio::test]
async fn email_verification_with_a_bearer() {
    let s = TestServer::start().await;
    let session = s.signup("wes@example.com", PASSWORD).await;
    assert_eq!(
        s.as_user(access(&session))
            .request(reqwest::Method::POST, "/v1/auth/email/verify/request")
            .await
            .0,
        202
    );
    // With a bearer the address is not needed, but a malformed one is
    // still refused, not ignored.
    let (status, body) = s
        .as_user(access(&session))
        .post("/v1/auth/email/verify/request", json!({"email": "0000"}))
        .await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = s
        .as_user(access(&session))
        .post("/v1/auth/email/verify", json!({"email": "0000", "code": "000000"}))
        .await;
    assert_error(status, &body, 400, "validation_failed");
    let messages = s.outbox("wes@example.com").await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["kind"], "email_verification");
    let code = messages[0]["code"].as_str().unwrap();
    let (status, body) = s
        .as_user(access(&session))
        .post("/v1/auth/email/verify", json!({"code": "000000"}))
        .await;
    if code != "000000" {
        assert_error(status, &body, 400, "invalid_code");
    }
    let (status, user) = s
        .as_user(access(&session))
        .post("/v1/auth/email/verify", json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email_verified"], true);
}

#[tokio::test]
async fn required_verification_holds_back_sign_in() {
    let s = TestServer::start_with(|c| c.signup.require_email_verification = true).await;
    let (status, body) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "xena@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(body["user"]["email"], "xena@example.com");
    let (status, body) = s
        .post(
            "/v1/auth/login",
            json!({"email": "xena@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "email_not_verified");
    let code = s.last_code("xena@example.com").await;
    let (status, session) = s
        .post(
            "/v1/auth/email/verify",
            json!({"email": "xena@example.com", "code": code, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email_verified"], true);
    assert!(session["access_token"].is_string());
    // The prover showed the password: it stays.
    s.login("xena@example.com", PASSWORD).await;
}

#[tokio::test]
async fn forgot_and_reset_revoke_every_session() {
    let s = TestServer::start().await;
    let a = s.signup("yara@example.com", PASSWORD).await;
    let b = s.login("yara@example.com", PASSWORD).await;
    let forgot = |email: &'static str| s.post("/v1/auth/password/forgot", json!({"email": email}));
    let (s1, b1) = forgot("yara@example.com").await;
    let (s2, b2) = forgot("nobody-here@example.com").await;
    assert_eq!((s1, &b1), (s2, &b2), "same answer for unknown emails");
    assert_eq!(s1, 202);
    assert!(s.outbox("nobody-here@example.com").await.is_empty());
    let messages = s.outbox("yara@example.com").await;
    assert_eq!(messages[0]["kind"], "password_reset");
    let code = messages[0]["code"].as_str().unwrap().to_string();

    let reset = |code: String, password: &'static str| {
        s.post(
            "/v1/auth/password/reset",
            json!({"email": "yara@example.com", "code": code, "new_password": password}),
        )
    };
    // A weak password is refused without using up the code.
    let (status, body) = reset(code.clone(), "password").await;
    assert_error(status, &body, 400, "validation_failed");
    let wrong = if code == "999999" { "111111" } else { "999999" };
    let (status, body) = reset(wrong.into(), NEW_PASSWORD).await;
    assert_error(status, &body, 400, "invalid_code");
    assert_eq!(reset(code.clone(), NEW_PASSWORD).await.0, 204);

    for session in [&a, &b] {
        assert_eq!(
            s.as_user(access(session)).get("/v1/users/me").await.0,
            401,
            "every session is revoked"
        );
        let (status, _) = s
            .post("/v1/auth/refresh", json!({"refresh_token": refresh(session)}))
            .await;
        assert_eq!(status, 401);
    }
    let (status, _) = s
        .post(
            "/v1/auth/login",
            json!({"email": "yara@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "the old password is gone");
    s.login("yara@example.com", NEW_PASSWORD).await;
    // The code was single use.
    let (status, _) = reset(code, "another good passphrase 7").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn change_revokes_the_other_sessions() {
    let s = TestServer::start().await;
    let a = s.signup("zoe@example.com", PASSWORD).await;
    let b = s.login("zoe@example.com", PASSWORD).await;
    let change = |current: &'static str| {
        s.as_user(access(&a)).post(
            "/v1/auth/password/change",
            json!({"current_password": current, "new_password": NEW_PASSWORD}),
        )
    };
    let (status, body) = change("not my password at all").await;
    assert_error(status, &body, 401, "invalid_credentials");
    assert_eq!(change(PASSWORD).await.0, 204);
    let me = |t: &str| s.as_user(t.to_string()).get("/v1/users/me");
    assert_eq!(me(access(&a)).await.0, 200, "the caller's session stays");
    assert_eq!(me(access(&b)).await.0, 401, "the others end");
    s.login("zoe@example.com", NEW_PASSWORD).await;
}

/// The revocations of a reset are recorded with their time, so a restart
/// (which refills the deny list from the database) keeps the old access
/// tokens dead.
#[tokio::test]
async fn reset_revocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("forge.db").display());
    let a = TestServer::start_with(|c| c.database.url = url.clone()).await;
    let session = a.signup("rey@example.com", PASSWORD).await;
    a.post("/v1/auth/password/forgot", json!({"email": "rey@example.com"}))
        .await;
    let code = a.last_code("rey@example.com").await;
    assert_eq!(
        a.post(
            "/v1/auth/password/reset",
            json!({"email": "rey@example.com", "code": code, "new_password": NEW_PASSWORD})
        )
        .await
        .0,
        204
    );
    a.stop().await;
    let b = TestServer::start_with(|c| c.database.url = url.clone()).await;
    assert_eq!(
        b.as_user(access(&session)).get("/v1/users/me").await.0,
        401,
        "a token revoked by the reset works again after a restart"
    );
}
