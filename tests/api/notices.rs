//! Security notices, read from the dev outbox as the person would get
//! them: a sign-in from a device not seen before (and none from a known
//! one), a password changed or reset, a second factor added, the account
//! disabled by an administrator; each says when, from where and what to do,
//! carries no code, and follows the tenant's `notices` switches.

use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::factors::enrol;
use crate::{PASSWORD, access};

const NEW_PASSWORD: &str = "another correct horse battery staple";

async fn notices(s: &TestServer, to: &str, kind: &str) -> Vec<Value> {
    s.outbox(to).await.into_iter().filter(|m| m["kind"] == kind).collect()
}

fn body(m: &Value) -> &str {
    m["body"].as_str().unwrap()
}

async fn login_from(s: &TestServer, device: Option<&str>) -> Value {
    let mut call = s
        .post(
            "/v1/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .header("user-agent", "NoticeTest/1.0");
    if let Some(d) = device {
        call = call.header("x-forge-device", d);
    }
    let (status, body) = call.await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_told_and_one_from_a_known_device_is_not() {
    let s = TestServer::start_with(|c| c.rate_limit.enabled = false).await;
    s.signup("ada@example.com", PASSWORD).await;
    let first = login_from(&s, None).await;
    let device = first["device_token"].as_str().unwrap().to_owned();
    let before = notices(&s, "ada@example.com", "new_device").await.len();

    login_from(&s, Some(&device)).await;
    assert_eq!(
        notices(&s, "ada@example.com", "new_device").await.len(),
        before,
        "a known device"
    );

    login_from(&s, None).await;
    let told = notices(&s, "ada@example.com", "new_device").await;
    assert_eq!(told.len(), before + 1);
    // The dev outbox lists the newest first.
    let text = body(&told[0]);
    assert!(text.contains("from 127.0.0.1 (NoticeTest/1.0)"), "{text}");
    assert!(text.contains("reset your password now"), "{text}");

    // The tenant can switch it off.
    let admin = s.admin("root@example.com", PASSWORD).await;
    let (status, settings) = s
        .as_user(access(&admin))
        .patch("/v1/tenant/settings", json!({"notices": {"new_device": false}}))
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["notices"]["new_device"], false);
    assert_eq!(settings["notices"]["password_changed"], true);
    login_from(&s, None).await;
    assert_eq!(notices(&s, "ada@example.com", "new_device").await.len(), before + 1);
}

#[tokio::test]
async fn a_password_change_and_a_reset_are_told_without_a_code() {
    let s = TestServer::start_with(|c| c.rate_limit.enabled = false).await;
    let ada = s.signup("ada@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(access(&ada))
        .post(
            "/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(status, 204);
    let told = notices(&s, "ada@example.com", "password_changed").await;
    assert_eq!(told.len(), 1);
    assert!(body(&told[0]).contains("The password of your account was changed on "));
    assert_eq!(told[0]["code"], "", "a notice carries no code");

    s.post("/v1/auth/password/forgot", json!({"email": "ada@example.com"}))
        .await;
    let code = s.last_code("ada@example.com").await;
    let (status, _) = s
        .post(
            "/v1/auth/password/reset",
            json!({"email": "ada@example.com", "code": code, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 204);
    let told = notices(&s, "ada@example.com", "password_changed").await;
    assert_eq!(told.len(), 2);
    // The dev outbox lists the newest first.
    assert!(body(&told[0]).contains("was reset with a code"), "{}", body(&told[0]));
    assert!(!body(&told[0]).contains(&code), "a notice never carries the code");
}

#[tokio::test]
async fn a_factor_added_and_an_account_disabled_are_told() {
    let s = TestServer::start_with(|c| c.rate_limit.enabled = false).await;
    let ada = s.signup("ada@example.com", PASSWORD).await;
    enrol(&s, access(&ada), "phone").await;
    let told = notices(&s, "ada@example.com", "factor_changed").await;
    assert_eq!(told.len(), 1);
    assert!(
        body(&told[0]).contains("A second factor was added"),
        "{}",
        body(&told[0])
    );

    let admin = s.admin("root@example.com", PASSWORD).await;
    let id = ada["user"]["id"].as_str().unwrap();
    let (status, _) = s
        .as_user(access(&admin))
        .patch(&format!("/v1/users/{id}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, 200);
    let told = notices(&s, "ada@example.com", "account_disabled").await;
    assert_eq!(told.len(), 1);
    assert!(body(&told[0]).contains("An administrator disabled your account"));
    assert!(body(&told[0]).contains("contact your administrator"));
}
