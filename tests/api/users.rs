use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, access, assert_error, parts};

#[tokio::test]
async fn me_requires_a_token() {
    let s = TestServer::start().await;
    let resp = s.get("/v1/users/me").response().await;
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, body) = parts(resp).await;
    assert_error(status, &body, 401, "invalid_token");
    let (status, _) = s.get("/v1/users/me").header("authorization", "Basic abc").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn me_get_patch_delete() {
    let s = TestServer::start().await;
    let session = s.signup("nina@example.com", PASSWORD).await;
    let token = access(&session);
    let (status, me) = s.as_user(token).get("/v1/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "nina@example.com");

    let (status, me) = s
        .as_user(token)
        .patch(
            "/v1/users/me",
            json!({"email": "Nina2@Example.com", "phone": "+14155550101", "metadata": {"theme": "dark"},
                          "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{me}");
    // The new addresses wait for their codes; metadata changes at once.
    assert_eq!(me["email"], "nina@example.com");
    assert_eq!(me["pending_email"], "nina2@example.com");
    assert_eq!(me["phone"], serde_json::Value::Null);
    assert_eq!(me["pending_phone"], "+14155550101");
    assert_eq!(me["metadata"]["theme"], "dark");
    let code = s.last_code("nina2@example.com").await;
    let (status, me) = s
        .as_user(token)
        .post("/v1/auth/email/verify", json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "nina2@example.com");
    assert_eq!(me["email_verified"], true);
    let code = s.last_code("+14155550101").await;
    let (status, me) = s
        .as_user(token)
        .post("/v1/auth/phone/verify", json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["phone"], "+14155550101");
    assert_eq!(me["phone_verified"], true);

    // Remove the phone with an explicit null (also a change of how one signs in).
    let (_, me) = s
        .as_user(token)
        .patch("/v1/users/me", json!({"phone": null, "current_password": PASSWORD}))
        .await;
    assert_eq!(me["phone"], serde_json::Value::Null);

    // Bad input changes nothing.
    let (status, body) = s.as_user(token).patch("/v1/users/me", json!({"email": "nope"})).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = s.as_user(token).patch("/v1/users/me", json!({"metadata": "x"})).await;
    assert_error(status, &body, 400, "validation_failed");

    // Taking someone else's email is a conflict.
    s.signup("omar@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(token)
        .patch(
            "/v1/users/me",
            json!({"email": "omar@example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 409, "email_taken");

    assert_eq!(s.as_user(token).delete("/v1/users/me").await.0, 204);
    let (status, _) = s.as_user(token).get("/v1/users/me").await;
    assert_eq!(status, 401, "a deleted user's token dies at once");
    let (status, _) = s
        .post(
            "/v1/auth/login",
            json!({"email": "nina2@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sessions_list_and_revoke() {
    let s = TestServer::start().await;
    let a = s.signup("pat@example.com", PASSWORD).await;
    let b = s.login("pat@example.com", PASSWORD).await;
    let (status, list) = s
        .as_user(access(&a))
        .get("/v1/users/me/sessions")
        .header("user-agent", "forge-test/1")
        .await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(
        list.iter()
            .all(|s| s["ip"] == "127.0.0.1" && s["created_at"].is_string())
    );
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(
        s.as_user(access(&a))
            .delete(&format!("/v1/users/me/sessions/{other}"))
            .await
            .0,
        204
    );
    let (status, _) = s.as_user(access(&b)).get("/v1/users/me").await;
    assert_eq!(status, 401, "revoked session's token fails at once");
    // Again: it is gone.
    let (status, body) = s
        .as_user(access(&a))
        .delete(&format!("/v1/users/me/sessions/{other}"))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = s.as_user(access(&a)).delete("/v1/users/me/sessions/not-a-uuid").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cannot_revoke_someone_elses_session() {
    let s = TestServer::start().await;
    let a = s.signup("quinn@example.com", PASSWORD).await;
    let b = s.signup("rosa@example.com", PASSWORD).await;
    let (_, list) = s.as_user(access(&b)).get("/v1/users/me/sessions").await;
    let b_session = list[0]["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .as_user(access(&a))
        .delete(&format!("/v1/users/me/sessions/{b_session}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.as_user(access(&b)).get("/v1/users/me").await;
    assert_eq!(status, 200);
}
