//! Sign-in with a second factor, end to end through HTTP: the
//! `mfa_required` answer of every first factor, `POST /v1/auth/mfa/verify`
//! (TOTP, recovery codes), the OAuth2 `mfa` grant, step-up with a bearer,
//! and credential changes that need aal 2. TOTP codes are computed here
//! independently with `totp-rs`, at the server's (manual) clock.

use forge::testing::TestServer;
use serde_json::{Value, json};
use totp_rs::TOTP;

use crate::support::{claims, forward_auth};
use crate::{PASSWORD, access, assert_error};

fn code_at(app: &TOTP, at: i64) -> String {
    app.generate(u64::try_from(at).unwrap())
}

use crate::factors::code_now;

/// A six-digit code that is not `app`'s for any step within two of now.
fn wrong_code(s: &TestServer, app: &TOTP) -> String {
    let now = s.clock().now();
    let near: Vec<String> = (-2..=2).map(|k| code_at(app, now + 30 * k)).collect();
    (0..)
        .map(|n| format!("{:06}", 234_567 + n))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// A verified user with a confirmed TOTP factor: (access token of the
/// enrolling aal-1 session, the authenticator app, the recovery codes).
/// The clock is moved past the confirming code's step.
async fn user_with_totp(s: &TestServer, email: &str) -> (String, TOTP, Vec<String>) {
    let token = access(&s.signup_verified(email, PASSWORD).await).to_string();
    let (_, confirmed, app) = crate::factors::enrol(s, &token, "phone").await;
    let codes = serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap();
    s.clock().advance(60);
    (token, app, codes)
}

async fn login(s: &TestServer, email: &str, password: &str) -> (reqwest::StatusCode, Value) {
    s.post("/v1/auth/login", json!({"email": email, "password": password}))
        .await
}

/// Signs in with the password and asserts the second step is asked for.
async fn mfa_token(s: &TestServer, email: &str) -> String {
    let (status, body) = login(s, email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    body["mfa_token"].as_str().unwrap().to_string()
}

async fn verify(s: &TestServer, body: Value) -> (reqwest::StatusCode, Value) {
    s.post("/v1/auth/mfa/verify", body).await
}

#[tokio::test]
async fn password_sign_in_with_a_factor_asks_for_it_and_totp_completes_it() {
    let s = TestServer::start().await;
    let (_, app, _) = user_with_totp(&s, "ann@example.com").await;
    s.signup_verified("bob@example.com", PASSWORD).await;

    // A wrong password answers exactly as for a user without factors.
    let (status_a, body_a) = login(&s, "ann@example.com", "wrong password here").await;
    let (status_b, body_b) = login(&s, "bob@example.com", "wrong password here").await;
    assert_error(status_a, &body_a, 401, "invalid_credentials");
    assert_eq!((status_a, &body_a), (status_b, &body_b));

    // The right one: no tokens, the second step and the factors to choose.
    let (status, body) = login(&s, "ann@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true);
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
    let factors = body["factors"].as_array().unwrap();
    assert_eq!(factors.len(), 1, "{body}");
    assert_eq!(factors[0]["type"], "totp");
    assert_eq!(factors[0]["name"], "phone");
    assert!(factors[0]["id"].is_string());
    let token = body["mfa_token"].as_str().unwrap().to_string();
    // A user without a factor still gets tokens at once.
    let (status, body) = login(&s, "bob@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());

    // A wrong code: 401 invalid_mfa, the token lives on.
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": wrong_code(&s, &app)})).await;
    assert_error(status, &body, 401, "invalid_mfa");
    let code = code_now(&s, &app);
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code})).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(access(&body));
    assert_eq!(c["aal"], 2, "{c}");
    let amr: Vec<&str> = c["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for m in ["pwd", "otp", "mfa"] {
        assert!(amr.contains(&m), "{amr:?}");
    }
    assert!(body["refresh_token"].is_string());
    assert_eq!(s.as_user(access(&body)).get("/v1/users/me").await.0, 200);
    // The session keeps aal 2 across a refresh.
    let (status, next) = s
        .post("/v1/auth/refresh", json!({"refresh_token": body["refresh_token"]}))
        .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(claims(access(&next))["aal"], 2);

    // The mfa_token is single use; the code cannot be replayed either.
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code})).await;
    assert_error(status, &body, 401, "invalid_mfa");
    let again = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, json!({"mfa_token": again, "totp": code})).await;
    assert_error(status, &body, 401, "invalid_mfa");

    // Bad input is a 400.
    let (status, body) = verify(&s, json!({"mfa_token": again})).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = verify(&s, json!({"mfa_token": again, "totp": "1", "recovery_code": "2"})).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = verify(&s, json!({"totp": "123456"})).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = verify(&s, json!({"mfa_token": again, "totp": 7})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = verify(&s, json!({"mfa_token": "nonsense", "totp": "123456"})).await;
    assert_error(status, &body, 401, "invalid_mfa");
}

#[tokio::test]
async fn clock_skew_of_one_step_is_accepted_two_are_not() {
    let s = TestServer::start().await;
    let (_, app, _) = user_with_totp(&s, "ann@example.com").await;
    let now = s.clock().now();
    for k in [-2, 2] {
        let token = mfa_token(&s, "ann@example.com").await;
        let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code_at(&app, now + 30 * k)})).await;
        assert_error(status, &body, 401, "invalid_mfa");
    }
    // One step behind, then (a newer step) one ahead.
    let token = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code_at(&app, now - 30)})).await;
    assert_eq!(status, 200, "{body}");
    let token = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code_at(&app, now + 30)})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn recovery_codes_complete_a_sign_in_once() {
    let s = TestServer::start().await;
    let (_, _, codes) = user_with_totp(&s, "ann@example.com").await;
    let token = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, json!({"mfa_token": token, "recovery_code": codes[0]})).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(access(&body));
    assert_eq!(c["aal"], 2);
    assert!(c["amr"].as_array().unwrap().contains(&json!("mfa")), "{c}");
    let token = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, json!({"mfa_token": token, "recovery_code": codes[0]})).await;
    assert_error(status, &body, 401, "invalid_mfa");
    let (status, body) = verify(&s, json!({"mfa_token": token, "recovery_code": codes[1]})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_mfa_token_expires_after_five_minutes_and_burns_after_five_wrong_codes() {
    let s = TestServer::start().await;
    let (_, app, _) = user_with_totp(&s, "ann@example.com").await;

    let token = mfa_token(&s, "ann@example.com").await;
    s.clock().advance(301);
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code_now(&s, &app)})).await;
    assert_error(status, &body, 401, "invalid_mfa");

    s.clock().advance(60);
    let token = mfa_token(&s, "ann@example.com").await;
    for _ in 0..5 {
        let (status, body) = verify(&s, json!({"mfa_token": token, "totp": wrong_code(&s, &app)})).await;
        assert_error(status, &body, 401, "invalid_mfa");
    }
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code_now(&s, &app)})).await;
    assert_error(status, &body, 401, "invalid_mfa");
    // A new sign-in works (the account's budget is not spent by five).
    let token = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, json!({"mfa_token": token, "totp": code_now(&s, &app)})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn one_time_code_sign_in_with_a_factor_asks_for_it() {
    // No resend cooldown (the cache's own time): the verification email
    // went to the same address a moment ago.
    let s = TestServer::start_with(|c| c.otp.resend_cooldown = std::time::Duration::ZERO).await;
    let (_, app, _) = user_with_totp(&s, "ann@example.com").await;
    let (status, body) = s.post("/v1/auth/otp", json!({"email": "ann@example.com"})).await;
    assert_eq!(status, 202, "{body}");
    let messages = s.outbox("ann@example.com").await;
    let otp = messages.iter().find(|m| m["kind"] == "otp").unwrap();
    let code = otp["code"].as_str().unwrap().to_string();
    let (status, body) = s
        .post("/v1/auth/otp/verify", json!({"email": "ann@example.com", "code": code}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none());
    let (status, body) = verify(&s, json!({"mfa_token": body["mfa_token"], "totp": code_now(&s, &app)})).await;
    assert_eq!(status, 200, "{body}");
    let amr = claims(access(&body))["amr"].clone();
    assert_eq!(amr, json!(["mfa", "otp"]), "an emailed code then a TOTP code");
}

#[tokio::test]
async fn the_oauth_password_grant_asks_for_the_mfa_grant() {
    let s = TestServer::start().await;
    let (_, app, _) = user_with_totp(&s, "ann@example.com").await;
    let (status, body) = s
        .post(
            "/v1/auth/token",
            json!({"grant_type": "password", "username": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "mfa_required");
    let token = body["mfa_token"].as_str().unwrap().to_string();
    // A wrong code is an RFC 6749 invalid_grant.
    let (status, body) = s
        .request(reqwest::Method::POST, "/v1/auth/token")
        .form([
            ("grant_type", "urn:forge:params:oauth:grant-type:mfa"),
            ("mfa_token", token.as_str()),
            ("otp", wrong_code(&s, &app).as_str()),
        ])
        .await;
    assert_error(status, &body, 400, "invalid_grant");
    let (status, body) = s
        .request(reqwest::Method::POST, "/v1/auth/token")
        .form([
            ("grant_type", "urn:forge:params:oauth:grant-type:mfa"),
            ("mfa_token", token.as_str()),
            ("otp", code_now(&s, &app).as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(access(&body))["aal"], 2);
    let (status, body) = s
        .post(
            "/v1/auth/token",
            json!({"grant_type": "urn:forge:params:oauth:grant-type:mfa", "mfa_token": token}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
}

#[tokio::test]
async fn step_up_raises_the_session_and_credential_changes_need_it() {
    let s = TestServer::start().await;
    let (enrolling, app, _) = user_with_totp(&s, "ann@example.com").await;

    // The session that enrolled is aal 1: forward auth ?aal=2 refuses it,
    // and so does an email change (403 mfa_required, before any password
    // check), a password change and another factor.
    let resp = forward_auth(&s, &enrolling, "aal=2").await;
    assert_eq!(resp.status(), 403);
    let (status, body) = s
        .as_user(&enrolling)
        .patch(
            "/v1/users/me",
            json!({"email": "new@example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "mfa_required");
    let (status, body) = s
        .as_user(&enrolling)
        .post(
            "/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "another good passphrase 42"}),
        )
        .await;
    assert_error(status, &body, 403, "mfa_required");
    let (status, body) = s
        .as_user(&enrolling)
        .post("/v1/users/me/factors/totp", json!({"current_password": PASSWORD}))
        .await;
    assert_error(status, &body, 403, "mfa_required");
    // Metadata is no credential.
    let (status, body) = s
        .as_user(&enrolling)
        .patch("/v1/users/me", json!({"metadata": {"theme": "dark"}}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Step-up with a wrong code, then the right one.
    let (status, body) = s
        .as_user(&enrolling)
        .post("/v1/auth/mfa/verify", json!({"totp": wrong_code(&s, &app)}))
        .await;
    assert_error(status, &body, 401, "invalid_mfa");
    let (status, body) = s
        .as_user(&enrolling)
        .post("/v1/auth/mfa/verify", json!({"totp": code_now(&s, &app)}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["aal"], 2);
    assert!(body.get("refresh_token").is_none(), "{body}");
    let raised = access(&body).to_string();
    assert_eq!(claims(&raised)["sid"], claims(&enrolling)["sid"], "the same session");
    let resp = forward_auth(&s, &raised, "aal=2").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-forge-aal"], "2");

    let (status, body) = s
        .as_user(&raised)
        .patch(
            "/v1/users/me",
            json!({"email": "new@example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pending_email"], "new@example.com", "{body}");

    // A user without a factor changes credentials at aal 1 as before.
    let bob = access(&s.signup_verified("bob@example.com", PASSWORD).await).to_string();
    let (status, body) = s
        .as_user(&bob)
        .patch(
            "/v1/users/me",
            json!({"email": "bob2@example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_openapi_document_covers_the_second_step() {
    let s = TestServer::start().await;
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    let verify = &doc["paths"]["/v1/auth/mfa/verify"]["post"];
    for code in ["200", "400", "401", "429"] {
        assert!(verify["responses"].get(code).is_some(), "{code} missing: {verify}");
    }
    assert!(doc["paths"]["/v1/auth/token"]["post"]["responses"].get("403").is_some());
    // Every schema the new answers name is in the document.
    let text = doc.to_string();
    for name in [
        "SignInResponse",
        "MfaRequiredResponse",
        "FactorChoice",
        "MfaVerifyRequest",
        "MfaVerifyResponse",
        "StepUpResponse",
        "OAuthMfaRequired",
    ] {
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{name} is not in components"
        );
    }
    let refs: Vec<&str> = text
        .split("\"$ref\":\"#/components/schemas/")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
        .collect();
    for r in refs {
        assert!(doc["components"]["schemas"].get(r).is_some(), "dangling $ref {r}");
    }
}

#[tokio::test]
async fn the_email_verification_sign_in_asks_for_the_factor_too() {
    let s = TestServer::start_with(|c| c.otp.resend_cooldown = std::time::Duration::ZERO).await;
    // Signed up (email not proven yet), then a factor enrolled.
    let token = access(&s.signup("ann@example.com", PASSWORD).await).to_string();
    let (status, started) = s
        .as_user(&token)
        .post("/v1/users/me/factors/totp", json!({"current_password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{started}");
    let app = TOTP::from_url(started["otpauth_uri"].as_str().unwrap()).unwrap();
    let path = format!("/v1/users/me/factors/totp/{}/confirm", started["id"].as_str().unwrap());
    let (status, body) = s.as_user(&token).post(&path, json!({"code": code_now(&s, &app)})).await;
    assert_eq!(status, 200, "{body}");
    s.clock().advance(60);

    let (status, body) = s
        .post("/v1/auth/email/verify/request", json!({"email": "ann@example.com"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let code = s.last_code("ann@example.com").await;
    let (status, body) = s
        .post(
            "/v1/auth/email/verify",
            json!({"email": "ann@example.com", "code": code, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    let (status, body) = verify(&s, json!({"mfa_token": body["mfa_token"], "totp": code_now(&s, &app)})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email_verified"], true, "{body}");
    assert_eq!(claims(access(&body))["aal"], 2);
}
