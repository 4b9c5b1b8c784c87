use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, access, assert_error, parts};

#[tokio::test]
async fn me_requires_a_token() {
    let s = TestServer::start().await;
    let resp = s.client().get(s.url("/v1/users/me")).send().await.unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, body) = parts(resp).await;
    assert_error(status, &body, 401, "invalid_token");
    let (status, _) = parts(
        s.client()
            .get(s.url("/v1/users/me"))
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn me_get_patch_delete() {
    let s = TestServer::start().await;
    let session = s.signup("nina@example.com", PASSWORD).await;
    let token = access(&session);
    let (status, me) = parts(
        s.client()
            .get(s.url("/v1/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "nina@example.com");

    let (status, me) = parts(
        s.client()
            .patch(s.url("/v1/users/me"))
            .bearer_auth(token)
            .json(
                &json!({"email": "Nina2@Example.com", "phone": "+14155550101", "metadata": {"theme": "dark"},
                          "current_password": PASSWORD}),
            )
            .send()
            .await
            .unwrap(),
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
    let (status, me) = parts(
        s.client()
            .post(s.url("/v1/auth/email/verify"))
            .bearer_auth(token)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "nina2@example.com");
    assert_eq!(me["email_verified"], true);
    let code = s.last_code("+14155550101").await;
    let (status, me) = parts(
        s.client()
            .post(s.url("/v1/auth/phone/verify"))
            .bearer_auth(token)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["phone"], "+14155550101");
    assert_eq!(me["phone_verified"], true);

    // Remove the phone with an explicit null (also a change of how one signs in).
    let (_, me) = parts(
        s.client()
            .patch(s.url("/v1/users/me"))
            .bearer_auth(token)
            .json(&json!({"phone": null, "current_password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["phone"], serde_json::Value::Null);

    // Bad input changes nothing.
    let (status, body) = parts(
        s.client()
            .patch(s.url("/v1/users/me"))
            .bearer_auth(token)
            .json(&json!({"email": "nope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = parts(
        s.client()
            .patch(s.url("/v1/users/me"))
            .bearer_auth(token)
            .json(&json!({"metadata": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");

    // Taking someone else's email is a conflict.
    s.signup("omar@example.com", PASSWORD).await;
    let (status, body) = parts(
        s.client()
            .patch(s.url("/v1/users/me"))
            .bearer_auth(token)
            .json(&json!({"email": "omar@example.com", "current_password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "email_taken");

    let resp = s
        .client()
        .delete(s.url("/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = parts(
        s.client()
            .get(s.url("/v1/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "a deleted user's token dies at once");
    let (status, _) = parts(
        s.client()
            .post(s.url("/v1/auth/login"))
            .json(&json!({"email": "nina2@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sessions_list_and_revoke() {
    let s = TestServer::start().await;
    let a = s.signup("pat@example.com", PASSWORD).await;
    let b = s.login("pat@example.com", PASSWORD).await;
    let (status, list) = parts(
        s.client()
            .get(s.url("/v1/users/me/sessions"))
            .bearer_auth(access(&a))
            .header("user-agent", "forge-test/1")
            .send()
            .await
            .unwrap(),
    )
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

    let resp = s
        .client()
        .delete(s.url(&format!("/v1/users/me/sessions/{other}")))
        .bearer_auth(access(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = parts(
        s.client()
            .get(s.url("/v1/users/me"))
            .bearer_auth(access(&b))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "revoked session's token fails at once");
    // Again: it is gone.
    let (status, body) = parts(
        s.client()
            .delete(s.url(&format!("/v1/users/me/sessions/{other}")))
            .bearer_auth(access(&a))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = parts(
        s.client()
            .delete(s.url("/v1/users/me/sessions/not-a-uuid"))
            .bearer_auth(access(&a))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cannot_revoke_someone_elses_session() {
    let s = TestServer::start().await;
    let a = s.signup("quinn@example.com", PASSWORD).await;
    let b = s.signup("rosa@example.com", PASSWORD).await;
    let (_, list) = parts(
        s.client()
            .get(s.url("/v1/users/me/sessions"))
            .bearer_auth(access(&b))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let b_session = list[0]["id"].as_str().unwrap().to_string();
    let (status, _) = parts(
        s.client()
            .delete(s.url(&format!("/v1/users/me/sessions/{b_session}")))
            .bearer_auth(access(&a))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = parts(
        s.client()
            .get(s.url("/v1/users/me"))
            .bearer_auth(access(&b))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}
