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
    let signed_up = s.signup("ada@example.com", PASSWORD).await;
    let device = signed_up["device_token"].as_str().unwrap().to_owned();
    let first = login_from(&s, Some(&device)).await;
    assert!(
        notices(&s, "ada@example.com", "new_device").await.is_empty(),
        "the device that signed up is known"
    );
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

/// Every way of signing in ends in the same device check (a one-time code,
/// a password with a second factor, the hosted pages): a client without a
/// device token of the account is told about, one that shows the token it
/// got last time is not.
#[tokio::test]
async fn every_sign_in_path_tells_of_a_new_device() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.admin.insecure_cookies = true;
    })
    .await;
    let told = |to: &'static str| {
        let s = &s;
        async move { notices(s, to, "new_device").await.len() }
    };

    // A one-time code.
    s.signup_verified("ada@example.com", PASSWORD).await;
    let otp = |device: Option<String>| {
        let s = &s;
        async move {
            s.clock().advance(61);
            let (status, _) = s.post("/v1/auth/otp", json!({"email": "ada@example.com"})).await;
            assert_eq!(status, 202);
            let code = s.last_code("ada@example.com").await;
            let mut call = s.post("/v1/auth/otp/verify", json!({"email": "ada@example.com", "code": code}));
            if let Some(d) = &device {
                call = call.header("x-forge-device", d);
            }
            let resp = call.response().await;
            let cookie = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|v| v.to_str().unwrap().starts_with("forge_device="));
            let (status, body) = crate::parts(resp).await;
            assert_eq!(status, 200, "{body}");
            assert!(cookie, "a browser keeps the device token as a cookie");
            body["device_token"].as_str().unwrap().to_owned()
        }
    };
    otp(None).await;
    let before = told("ada@example.com").await;
    let device = otp(None).await;
    assert_eq!(told("ada@example.com").await, before + 1, "a code from a new device");
    otp(Some(device)).await;
    assert_eq!(told("ada@example.com").await, before + 1, "a known device");

    // A password and a second factor: the device token of the request
    // that completes the sign-in counts.
    let bob = s.signup_verified("bob@example.com", PASSWORD).await;
    let (_, _, app) = enrol(&s, access(&bob), "phone").await;
    let mfa = |device: Option<String>| {
        let s = &s;
        let app = &app;
        async move {
            let with = |mut call: forge::testing::Call| {
                if let Some(d) = &device {
                    call = call.header("x-forge-device", d);
                }
                call
            };
            let (status, first) = with(s.post(
                "/v1/auth/login",
                json!({"email": "bob@example.com", "password": PASSWORD}),
            ))
            .await;
            assert_eq!(status, 200, "{first}");
            s.clock().advance(31);
            let code = crate::factors::code_now(s, app);
            let (status, body) = with(s.post(
                "/v1/auth/mfa/verify",
                json!({"mfa_token": first["mfa_token"], "totp": code}),
            ))
            .await;
            assert_eq!(status, 200, "{body}");
            body["device_token"].as_str().unwrap().to_owned()
        }
    };
    let before = told("bob@example.com").await;
    let device = mfa(None).await;
    assert_eq!(
        told("bob@example.com").await,
        before + 1,
        "a second factor from a new device"
    );
    mfa(Some(device)).await;
    assert_eq!(told("bob@example.com").await, before + 1, "a known device");

    // The hosted pages: a new browser is told about; the same browser,
    // holding its device cookie, is not.
    let before = told("ada@example.com").await;
    let mut b = crate::hosted::signed_in(&s, "ada@example.com").await;
    assert_eq!(told("ada@example.com").await, before + 1, "a new browser");
    b.cookies.remove(crate::hosted::SSO);
    let page = crate::hosted::sign_in_with(&mut b, "", "ada@example.com", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(told("ada@example.com").await, before + 1, "the same browser");
}
