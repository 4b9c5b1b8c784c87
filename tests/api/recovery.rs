//! Email verification, password reset and password change.

use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, access, assert_error, parts, refresh};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

#[tokio::test]
async fn email_verification_with_a_bearer() {
    let s = TestServer::start().await;
    let session = s.signup("wes@example.com", PASSWORD).await;
    let resp = s
        .client()
        .post(s.url("/v1/auth/email/verify/request"))
        .bearer_auth(access(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let messages = s.outbox("wes@example.com").await;
    assert_eq!(messages[0]["kind"], "email_verification");
    let code = messages[0]["code"].as_str().unwrap();
    let (status, body) = parts(
        s.client()
            .post(s.url("/v1/auth/email/verify"))
            .bearer_auth(access(&session))
            .json(&json!({"code": "000000"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    if code != "000000" {
        assert_error(status, &body, 400, "invalid_code");
    }
    let (status, user) = parts(
        s.client()
            .post(s.url("/v1/auth/email/verify"))
            .bearer_auth(access(&session))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email_verified"], true);
}

#[tokio::test]
async fn required_verification_holds_back_sign_in() {
    let s = TestServer::start_with(|c| c.signup.require_email_verification = true).await;
    let (status, body) = parts(
        s.client()
            .post(s.url("/v1/auth/signup"))
            .json(&json!({"email": "xena@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(body["user"]["email"], "xena@example.com");
    let (status, body) = parts(
        s.client()
            .post(s.url("/v1/auth/login"))
            .json(&json!({"email": "xena@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 403, "email_not_verified");
    let code = s.last_code("xena@example.com").await;
    let (status, session) = parts(
        s.client()
            .post(s.url("/v1/auth/email/verify"))
            .json(&json!({"email": "xena@example.com", "code": code, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
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
    let forgot = |email: &'static str| {
        s.client()
            .post(s.url("/v1/auth/password/forgot"))
            .json(&json!({"email": email}))
            .send()
    };
    let (s1, b1) = parts(forgot("yara@example.com").await.unwrap()).await;
    let (s2, b2) = parts(forgot("nobody-here@example.com").await.unwrap()).await;
    assert_eq!((s1, &b1), (s2, &b2), "same answer for unknown emails");
    assert_eq!(s1, 202);
    assert!(s.outbox("nobody-here@example.com").await.is_empty());
    let messages = s.outbox("yara@example.com").await;
    assert_eq!(messages[0]["kind"], "password_reset");
    let code = messages[0]["code"].as_str().unwrap().to_string();

    let reset = |code: String, password: &'static str| {
        s.client()
            .post(s.url("/v1/auth/password/reset"))
            .json(&json!({"email": "yara@example.com", "code": code, "new_password": password}))
            .send()
    };
    // A weak password is refused without using up the code.
    let (status, body) = parts(reset(code.clone(), "password").await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    let wrong = if code == "999999" { "111111" } else { "999999" };
    let (status, body) = parts(reset(wrong.into(), NEW_PASSWORD).await.unwrap()).await;
    assert_error(status, &body, 400, "invalid_code");
    let resp = reset(code.clone(), NEW_PASSWORD).await.unwrap();
    assert_eq!(resp.status(), 204);

    for session in [&a, &b] {
        let me = s
            .client()
            .get(s.url("/v1/users/me"))
            .bearer_auth(access(session))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "every session is revoked");
        let (status, _) = parts(
            s.client()
                .post(s.url("/v1/auth/refresh"))
                .json(&json!({"refresh_token": refresh(session)}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, _) = parts(
        s.client()
            .post(s.url("/v1/auth/login"))
            .json(&json!({"email": "yara@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "the old password is gone");
    s.login("yara@example.com", NEW_PASSWORD).await;
    // The code was single use.
    let (status, _) = parts(reset(code, "another good passphrase 7").await.unwrap()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn change_revokes_the_other_sessions() {
    let s = TestServer::start().await;
    let a = s.signup("zoe@example.com", PASSWORD).await;
    let b = s.login("zoe@example.com", PASSWORD).await;
    let change = |current: &'static str| {
        s.client()
            .post(s.url("/v1/auth/password/change"))
            .bearer_auth(access(&a))
            .json(&json!({"current_password": current, "new_password": NEW_PASSWORD}))
            .send()
    };
    let (status, body) = parts(change("not my password at all").await.unwrap()).await;
    assert_error(status, &body, 401, "invalid_credentials");
    assert_eq!(change(PASSWORD).await.unwrap().status(), 204);
    let me = |t: &str| s.client().get(s.url("/v1/users/me")).bearer_auth(t.to_string()).send();
    assert_eq!(
        me(access(&a)).await.unwrap().status(),
        200,
        "the caller's session stays"
    );
    assert_eq!(me(access(&b)).await.unwrap().status(), 401, "the others end");
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
    a.client()
        .post(a.url("/v1/auth/password/forgot"))
        .json(&json!({"email": "rey@example.com"}))
        .send()
        .await
        .unwrap();
    let code = a.last_code("rey@example.com").await;
    let resp = a
        .client()
        .post(a.url("/v1/auth/password/reset"))
        .json(&json!({"email": "rey@example.com", "code": code, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    a.stop().await;
    let b = TestServer::start_with(|c| c.database.url = url.clone()).await;
    let me = b
        .client()
        .get(b.url("/v1/users/me"))
        .bearer_auth(access(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        401,
        "a token revoked by the reset works again after a restart"
    );
}
