//! Passkeys end to end through HTTP, with the software authenticator
//! (`forge::testing::passkey::SoftPasskey`) playing the browser: registration
//! as a factor (`/v1/users/me/factors/webauthn*`), the second step of a
//! sign-in and step-up (`/v1/auth/mfa/webauthn/options`, then
//! `/v1/auth/mfa/verify`) and passwordless sign-in (`/v1/auth/passkey/*`),
//! and the attacks each must refuse: replays, another user's ceremony or
//! passkey, a wrong origin, no user verification, a cloned authenticator, a
//! passkey registered twice and racing finishes.
//!
//! The test configuration's relying party is `localhost` with the origin
//! `http://localhost:8080` (`Config::for_tests`), which is where the
//! authenticators here say they run.

use forge::store::AuditQuery;
use forge::testing::TestServer;
use forge::testing::passkey::SoftPasskey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::claims;
use crate::{PASSWORD, access, assert_error};

const ORIGIN: &str = "http://localhost:8080";

pub(crate) fn authenticator() -> SoftPasskey {
    SoftPasskey::new(ORIGIN)
}

/// The sorted `amr` of an access token.
fn amr(token: &str) -> Vec<String> {
    let mut amr: Vec<String> = claims(token)["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    amr.sort();
    amr
}

/// Creation options for the caller (`token`), who proves it with the
/// password; asserts 200.
async fn creation_options(s: &TestServer, token: &str) -> Value {
    let (status, body) = s
        .as_user(token)
        .post(
            "/v1/users/me/factors/webauthn/options",
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    body
}

async fn finish(s: &TestServer, token: &str, request_id: &Value, credential: Value) -> (StatusCode, Value) {
    s.as_user(token)
        .post(
            "/v1/users/me/factors/webauthn",
            json!({"request_id": request_id, "name": "laptop", "credential": credential}),
        )
        .await
}

/// Registers `key` as a passkey of the caller; asserts 201 and returns the
/// answer.
async fn register(s: &TestServer, token: &str, key: &mut SoftPasskey) -> Value {
    let options = creation_options(s, token).await;
    let credential = key.register(&options["publicKey"]);
    let (status, body) = finish(s, token, &options["request_id"], credential).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// A verified user with one registered passkey: (aal-1 access token, the
/// registration answer).
pub(crate) async fn user_with_passkey(s: &TestServer, email: &str, key: &mut SoftPasskey) -> (String, Value) {
    let token = access(&s.signup_verified(email, PASSWORD).await).to_string();
    let registered = register(s, &token, key).await;
    (token, registered)
}

/// Signs in with the password and asserts the second step is asked for.
async fn mfa_token(s: &TestServer, email: &str) -> (String, Value) {
    let (status, body) = s
        .post("/v1/auth/login", json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    (body["mfa_token"].as_str().unwrap().to_string(), body)
}

/// Request options for the user of `mfa_token`; asserts 200.
async fn assertion_options(s: &TestServer, mfa_token: &str) -> Value {
    let (status, body) = s
        .post("/v1/auth/mfa/webauthn/options", json!({"mfa_token": mfa_token}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn verify(s: &TestServer, mfa_token: &str, request_id: &Value, credential: Value) -> (StatusCode, Value) {
    s.post(
        "/v1/auth/mfa/verify",
        json!({"mfa_token": mfa_token, "request_id": request_id, "credential": credential}),
    )
    .await
}

/// Passwordless options; asserts 200.
async fn sign_in_options(s: &TestServer) -> Value {
    let (status, body) = s.post("/v1/auth/passkey/options", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn sign_in(s: &TestServer, request_id: &Value, credential: Value) -> (StatusCode, Value) {
    s.post(
        "/v1/auth/passkey/verify",
        json!({"request_id": request_id, "credential": credential}),
    )
    .await
}

/// Steps the session of `token` up with `key`; returns the new token.
async fn step_up(s: &TestServer, token: &str, key: &mut SoftPasskey) -> String {
    let (status, options) = s.as_user(token).post("/v1/auth/mfa/webauthn/options", json!({})).await;
    assert_eq!(status, 200, "{options}");
    let credential = key.sign_in(&options["publicKey"]);
    let (status, body) = s
        .as_user(token)
        .post(
            "/v1/auth/mfa/verify",
            json!({"request_id": options["request_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn factors(s: &TestServer, token: &str) -> Vec<Value> {
    let (status, body) = s.as_user(token).get("/v1/users/me/factors").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// `options` without the list of credentials the authenticator should (not)
/// use, as an attacker's own client would send them.
fn without(options: &Value, list: &str) -> Value {
    let mut options = options["publicKey"].clone();
    options.as_object_mut().unwrap().remove(list);
    options
}

#[tokio::test]
async fn a_first_passkey_brings_recovery_codes_and_completes_a_password_sign_in() {
    let s = TestServer::start().await;
    let mut key = authenticator();
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();

    // The options ask for the same proof as a TOTP enrolment.
    let (status, body) = s
        .as_user(&token)
        .post("/v1/users/me/factors/webauthn/options", json!({}))
        .await;
    assert_error(status, &body, 401, "reauthentication_required");
    let options = creation_options(&s, &token).await;
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost", "{options}");
    assert_eq!(public_key["user"]["name"], "ann@example.com", "{options}");
    let credential = key.register(public_key);
    let response = s
        .as_user(&token)
        .post(
            "/v1/users/me/factors/webauthn",
            json!({"request_id": options["request_id"], "name": "laptop", "credential": credential}),
        )
        .response()
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, registered) = crate::parts(response).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["factor"]["type"], "webauthn", "{registered}");
    assert_eq!(registered["factor"]["name"], "laptop");
    assert_eq!(
        registered["recovery_codes"].as_array().unwrap().len(),
        10,
        "{registered}"
    );
    assert!(registered.get("access_token").is_none(), "{registered}");
    let factor_id = registered["factor"]["id"].clone();

    let listed = factors(&s, &token).await;
    let passkey = listed.iter().find(|f| f["id"] == factor_id).unwrap();
    assert_eq!(passkey["type"], "webauthn");
    assert!(passkey["last_used_at"].is_null(), "{passkey}");
    assert!(listed.iter().any(|f| f["type"] == "recovery_codes"), "{listed:?}");

    // A password sign-in now asks for the passkey.
    let (mfa, step) = mfa_token(&s, "ann@example.com").await;
    let offered = step["factors"].as_array().unwrap();
    assert!(
        offered.iter().any(|f| f["type"] == "webauthn" && f["id"] == factor_id),
        "{step}"
    );
    let options = assertion_options(&s, &mfa).await;
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "{options}");
    assert_eq!(allowed[0]["id"], key.credential_id());
    let assertion = key.sign_in(&options["publicKey"]);
    let (status, tokens) = verify(&s, &mfa, &options["request_id"], assertion.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(claims(access(&tokens))["aal"], 2);
    assert_eq!(amr(access(&tokens)), ["hwk", "mfa", "pwd", "user"]);
    assert!(tokens["refresh_token"].is_string());
    let (status, _) = s.as_user(access(&tokens)).get("/v1/users/me").await;
    assert_eq!(status, 200);

    // The use is stamped.
    let listed = factors(&s, &token).await;
    let passkey = listed.iter().find(|f| f["id"] == factor_id).unwrap();
    assert!(passkey["last_used_at"].is_string(), "{passkey}");

    // Replayed: the same request id and answer with a fresh sign-in.
    let (again, _) = mfa_token(&s, "ann@example.com").await;
    let (status, body) = verify(&s, &again, &options["request_id"], assertion).await;
    assert_error(status, &body, 401, "invalid_mfa");
}

#[tokio::test]
async fn passwordless_sign_in_with_device_bound_and_synced_passkeys() {
    let s = TestServer::start().await;
    let mut ann_key = authenticator();
    let mut bob_key = authenticator().synced();
    user_with_passkey(&s, "ann@example.com", &mut ann_key).await;
    user_with_passkey(&s, "bob@example.com", &mut bob_key).await;

    let options = sign_in_options(&s).await;
    // No user is named.
    let allowed = options["publicKey"]["allowCredentials"].as_array();
    assert!(allowed.is_none_or(Vec::is_empty), "{options}");
    let assertion = ann_key.sign_in(&options["publicKey"]);
    let response = s
        .post(
            "/v1/auth/passkey/verify",
            json!({"request_id": options["request_id"], "credential": assertion.clone()}),
        )
        .response()
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, tokens) = crate::parts(response).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], "ann@example.com");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(claims(access(&tokens))["aal"], 2);
    assert_eq!(amr(access(&tokens)), ["hwk", "mfa", "user"]);
    let (status, me) = s.as_user(access(&tokens)).get("/v1/users/me").await;
    assert_eq!((status.as_u16(), &me["email"]), (200, &json!("ann@example.com")));

    // Replayed: refused.
    let (status, body) = sign_in(&s, &options["request_id"], assertion).await;
    assert_error(status, &body, 401, "invalid_credentials");

    // A synced passkey says so.
    let options = sign_in_options(&s).await;
    let (status, tokens) = sign_in(&s, &options["request_id"], bob_key.sign_in(&options["publicKey"])).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], "bob@example.com");
    assert_eq!(amr(access(&tokens)), ["mfa", "swk", "user"]);
}

#[tokio::test]
async fn step_up_with_a_passkey_raises_the_session_and_allows_another_passkey() {
    let s = TestServer::start().await;
    let mut key = authenticator();
    let (token, _) = user_with_passkey(&s, "ann@example.com", &mut key).await;

    // With a factor, another one needs aal 2.
    let (status, body) = s
        .as_user(&token)
        .post(
            "/v1/users/me/factors/webauthn/options",
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "mfa_required");

    // Options without a token or bearer name nobody.
    let (status, body) = s.post("/v1/auth/mfa/webauthn/options", json!({})).await;
    assert_error(status, &body, 400, "validation_failed");

    let raised = step_up(&s, &token, &mut key).await;
    assert_eq!(claims(&raised)["aal"], 2);
    let amr = amr(&raised);
    for m in ["hwk", "mfa", "pwd", "user"] {
        assert!(amr.iter().any(|a| a == m), "{amr:?}");
    }

    // The second passkey: the first is excluded, and no new codes.
    let mut second = authenticator();
    let options = creation_options(&s, &raised).await;
    let excluded = options["publicKey"]["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1, "{options}");
    assert_eq!(excluded[0]["id"], key.credential_id());
    let (status, body) = finish(
        &s,
        &raised,
        &options["request_id"],
        second.register(&options["publicKey"]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("recovery_codes").is_none(), "{body}");
    let listed = factors(&s, &raised).await;
    assert_eq!(
        listed.iter().filter(|f| f["type"] == "webauthn").count(),
        2,
        "{listed:?}"
    );
}

#[tokio::test]
async fn the_same_authenticator_is_not_registered_twice() {
    let s = TestServer::start().await;
    let mut key = authenticator();
    let (token, _) = user_with_passkey(&s, "ann@example.com", &mut key).await;
    let raised = step_up(&s, &token, &mut key).await;

    // An authenticator that ignores excludeCredentials is refused anyway:
    // the ceremony remembers what it excluded.
    let options = creation_options(&s, &raised).await;
    let credential = key.register(&without(&options, "excludeCredentials"));
    let (status, body) = finish(&s, &raised, &options["request_id"], credential).await;
    assert_error(status, &body, 400, "validation_failed");

    // So is the same credential under another account of the tenant.
    let bob = access(&s.signup_verified("bob@example.com", PASSWORD).await).to_string();
    let mut copy = key.clone();
    let options = creation_options(&s, &bob).await;
    let (status, body) = finish(&s, &bob, &options["request_id"], copy.register(&options["publicKey"])).await;
    assert_error(status, &body, 409, "conflict");
    assert!(factors(&s, &bob).await.is_empty());
    assert_eq!(
        factors(&s, &raised)
            .await
            .iter()
            .filter(|f| f["type"] == "webauthn")
            .count(),
        1
    );
}

#[tokio::test]
async fn another_users_registration_request_finishes_nothing() {
    let s = TestServer::start().await;
    let ann = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let bob = access(&s.signup_verified("bob@example.com", PASSWORD).await).to_string();

    let bobs = creation_options(&s, &bob).await;
    let mut key = authenticator();
    let credential = key.register(&bobs["publicKey"]);
    let (status, body) = finish(&s, &ann, &bobs["request_id"], credential.clone()).await;
    assert_error(status, &body, 404, "not_found");
    assert!(factors(&s, &ann).await.is_empty());
    // The request is used up by the attempt: Bob starts again.
    let (status, body) = finish(&s, &bob, &bobs["request_id"], credential).await;
    assert_error(status, &body, 404, "not_found");
    assert!(factors(&s, &bob).await.is_empty());

    // A passwordless or second-factor request id is no registration either.
    let options = sign_in_options(&s).await;
    let credential = authenticator().register(&creation_options(&s, &ann).await["publicKey"]);
    let (status, body) = finish(&s, &ann, &options["request_id"], credential).await;
    assert_error(status, &body, 404, "not_found");
    assert!(factors(&s, &ann).await.is_empty());
}

#[tokio::test]
async fn another_users_passkey_does_not_complete_a_sign_in() {
    let s = TestServer::start().await;
    let mut ann_key = authenticator();
    let mut bob_key = authenticator();
    user_with_passkey(&s, "ann@example.com", &mut ann_key).await;
    let (bob, _) = user_with_passkey(&s, "bob@example.com", &mut bob_key).await;

    // Bob answers Ann's options with his own passkey.
    let (mfa, _) = mfa_token(&s, "ann@example.com").await;
    let options = assertion_options(&s, &mfa).await;
    let forged = bob_key.sign_in(&without(&options, "allowCredentials"));
    let (status, body) = verify(&s, &mfa, &options["request_id"], forged).await;
    assert_error(status, &body, 401, "invalid_mfa");

    // Or with his own step-up ceremony, bound to him.
    let (status, bobs) = s.as_user(&bob).post("/v1/auth/mfa/webauthn/options", json!({})).await;
    assert_eq!(status, 200, "{bobs}");
    let (status, body) = verify(&s, &mfa, &bobs["request_id"], bob_key.sign_in(&bobs["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_mfa");

    // Ann's token still works with Ann's passkey (two wrong answers of five).
    let options = assertion_options(&s, &mfa).await;
    let (status, body) = verify(&s, &mfa, &options["request_id"], ann_key.sign_in(&options["publicKey"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "ann@example.com");
}

#[tokio::test]
async fn a_wrong_origin_or_no_user_verification_is_refused() {
    let s = TestServer::start().await;
    let mut key = authenticator();
    user_with_passkey(&s, "ann@example.com", &mut key).await;

    let mut phished = key.clone();
    phished.set_origin("http://localhost.evil.example");
    let (mfa, _) = mfa_token(&s, "ann@example.com").await;
    let options = assertion_options(&s, &mfa).await;
    let (status, body) = verify(&s, &mfa, &options["request_id"], phished.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_mfa");
    let options = sign_in_options(&s).await;
    let (status, body) = sign_in(&s, &options["request_id"], phished.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_credentials");

    let mut lazy = key.clone();
    lazy.skip_user_verification();
    let options = assertion_options(&s, &mfa).await;
    let (status, body) = verify(&s, &mfa, &options["request_id"], lazy.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_mfa");
    let options = sign_in_options(&s).await;
    let (status, body) = sign_in(&s, &options["request_id"], lazy.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_credentials");

    // Registration is held to the same rules.
    let bob = access(&s.signup_verified("bob@example.com", PASSWORD).await).to_string();
    let mut elsewhere = SoftPasskey::new("http://localhost.evil.example");
    let options = creation_options(&s, &bob).await;
    let (status, body) = finish(
        &s,
        &bob,
        &options["request_id"],
        elsewhere.register(&options["publicKey"]),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    let mut unverified = authenticator();
    unverified.skip_user_verification();
    let options = creation_options(&s, &bob).await;
    let (status, body) = finish(
        &s,
        &bob,
        &options["request_id"],
        unverified.register(&options["publicKey"]),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert!(factors(&s, &bob).await.is_empty());
}

#[tokio::test]
async fn a_cloned_authenticator_is_refused_and_audited() {
    let s = TestServer::start().await;
    let mut key = authenticator();
    user_with_passkey(&s, "ann@example.com", &mut key).await;
    let mut clone = key.clone();

    // The original is used (its counter moves on)...
    let (mfa, _) = mfa_token(&s, "ann@example.com").await;
    let options = assertion_options(&s, &mfa).await;
    let (status, body) = verify(&s, &mfa, &options["request_id"], key.sign_in(&options["publicKey"])).await;
    assert_eq!(status, 200, "{body}");
    // ... then the copy answers with an older counter.
    clone.set_counter(0);
    let (mfa, _) = mfa_token(&s, "ann@example.com").await;
    let options = assertion_options(&s, &mfa).await;
    let (status, body) = verify(&s, &mfa, &options["request_id"], clone.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_mfa");
    let options = sign_in_options(&s).await;
    let (status, body) = sign_in(&s, &options["request_id"], clone.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_credentials");

    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let rows = s
        .state()
        .store
        .list_audit(AuditQuery {
            tenant_id: tenant.id,
            user_id: None,
            event: Some("mfa_failed".to_string()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    let cloned = rows
        .iter()
        .filter(|r| r.detail["reason"] == "possibly_cloned" && r.detail["method"] == "webauthn")
        .count();
    assert_eq!(cloned, 2, "{rows:?}");
}

#[tokio::test]
async fn passwordless_with_an_unknown_passkey_is_invalid_credentials() {
    let s = TestServer::start().await;
    let mut ann_key = authenticator();
    user_with_passkey(&s, "ann@example.com", &mut ann_key).await;

    // A passkey of another server (same relying party id), and one that
    // was never registered anywhere.
    let other = TestServer::start().await;
    let mut stranger = authenticator();
    user_with_passkey(&other, "ann@example.com", &mut stranger).await;
    for mut key in [stranger, authenticator()] {
        let options = sign_in_options(&s).await;
        let (status, body) = sign_in(&s, &options["request_id"], key.sign_in(&options["publicKey"])).await;
        assert_error(status, &body, 401, "invalid_credentials");
    }
    // A made-up request id too.
    let options = sign_in_options(&s).await;
    let (status, body) = sign_in(&s, &json!("made-up"), ann_key.sign_in(&options["publicKey"])).await;
    assert_error(status, &body, 401, "invalid_credentials");
}

#[tokio::test]
async fn passwordless_options_are_rate_limited_per_address() {
    let s = TestServer::start_with(|c| c.rate_limit.login_per_ip = "3/1m".parse().unwrap()).await;
    for _ in 0..3 {
        sign_in_options(&s).await;
    }
    let response = s.post("/v1/auth/passkey/options", json!({})).response().await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = crate::parts(response).await;
    assert_error(status, &body, 429, "rate_limited");
}

#[tokio::test]
async fn second_factor_options_spend_the_address_budget_too() {
    // Each options call keeps ceremony state; a holder of one mfa_token
    // must not be able to mint them without bound.
    let s = TestServer::start_with(|c| c.rate_limit.login_per_ip = "5/1m".parse().unwrap()).await;
    let mut key = authenticator();
    user_with_passkey(&s, "ann@example.com", &mut key).await;
    let (mfa_token, _) = mfa_token(&s, "ann@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = s
            .post("/v1/auth/mfa/webauthn/options", json!({"mfa_token": mfa_token}))
            .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 1, "{statuses:?}");
}

#[tokio::test]
async fn concurrent_finishes_of_one_registration_store_one_passkey() {
    let s = TestServer::start().await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let options = creation_options(&s, &token).await;
    let credential = authenticator().register(&options["publicKey"]);
    let (a, b) = tokio::join!(
        finish(&s, &token, &options["request_id"], credential.clone()),
        finish(&s, &token, &options["request_id"], credential.clone()),
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 404], "{a:?} {b:?}");
    let listed = factors(&s, &token).await;
    assert_eq!(
        listed.iter().filter(|f| f["type"] == "webauthn").count(),
        1,
        "{listed:?}"
    );
}

#[tokio::test]
async fn an_enrollment_token_enrols_a_passkey_and_completes_the_sign_in() {
    let s = crate::support::server().await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let me = s.state().sessions.authenticate(&token).await.unwrap();
    let user = s
        .state()
        .store
        .get_user(me.tenant.id, me.user_id)
        .await
        .unwrap()
        .unwrap();
    let enrollment = s
        .state()
        .mfa_policies
        .enrollment_token(
            &me.tenant,
            &user,
            &forge::domain::Assurance::password(),
            &forge::service::RequestMeta::default(),
        )
        .await
        .unwrap();
    let enrollment = enrollment.expose().to_string();

    // No password needed: the token is the proof.
    let (status, options) = s
        .as_user(&enrollment)
        .post("/v1/users/me/factors/webauthn/options", json!({"name": "phone"}))
        .await;
    assert_eq!(status, 200, "{options}");
    let mut key = authenticator();
    let credential = key.register(&options["publicKey"]);
    let (status, done) = s
        .as_user(&enrollment)
        .post(
            "/v1/users/me/factors/webauthn",
            json!({"request_id": options["request_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["factor"]["type"], "webauthn");
    assert_eq!(done["factor"]["name"], "phone", "the options' name is kept");
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10, "{done}");
    assert_eq!(done["token_type"], "Bearer");
    assert_eq!(claims(access(&done))["aal"], 2);
    assert_eq!(amr(access(&done)), ["hwk", "mfa", "pwd", "user"]);
    let (status, _) = s.as_user(access(&done)).get("/v1/users/me").await;
    assert_eq!(status, 200);

    // Spent: single use.
    let (status, body) = s
        .as_user(&enrollment)
        .post("/v1/users/me/factors/webauthn/options", json!({}))
        .await;
    assert_error(status, &body, 401, "invalid_token");
}

#[tokio::test]
async fn passkeys_are_off_without_a_relying_party() {
    let s = TestServer::start_with(|c| {
        c.webauthn.rp_id = String::new();
        c.webauthn.origins = Vec::new();
    })
    .await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let (status, body) = s
        .as_user(&token)
        .post(
            "/v1/users/me/factors/webauthn/options",
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.post("/v1/auth/passkey/options", json!({})).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn malformed_answers_are_400_never_500() {
    let s = TestServer::start().await;
    let mut key = authenticator();
    let (token, _) = user_with_passkey(&s, "ann@example.com", &mut key).await;
    let strong = step_up(&s, &token, &mut key).await;
    let (mfa, _) = mfa_token(&s, "ann@example.com").await;
    let options = assertion_options(&s, &mfa).await;
    let registration = creation_options(&s, &strong).await;
    let sign_in = sign_in_options(&s).await;
    let long = "x".repeat(129);

    // Malformed requests, and credentials that do not parse as answers to
    // live ceremonies (which they use up).
    let cases: Vec<(&str, Option<&str>, Value)> = vec![
        (
            "/v1/auth/passkey/verify",
            None,
            json!({"request_id": sign_in["request_id"], "credential": {}}),
        ),
        (
            "/v1/auth/passkey/verify",
            None,
            json!({"request_id": long, "credential": {}}),
        ),
        ("/v1/auth/passkey/verify", None, json!({"request_id": "r"})),
        ("/v1/auth/passkey/options", None, json!({"extra": 1})),
        (
            "/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa, "request_id": options["request_id"], "credential": {"id": 1}}),
        ),
        (
            "/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa, "request_id": long, "credential": {}}),
        ),
        (
            "/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa, "request_id": "r"}),
        ),
        ("/v1/auth/mfa/verify", None, json!({"mfa_token": mfa, "credential": {}})),
        (
            "/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa, "totp": "123456", "request_id": "r", "credential": {}}),
        ),
        (
            "/v1/users/me/factors/webauthn",
            Some(&strong),
            json!({"request_id": long, "credential": {}}),
        ),
        (
            "/v1/users/me/factors/webauthn",
            Some(&strong),
            json!({"request_id": registration["request_id"], "credential": "x"}),
        ),
    ];
    for (path, bearer, body) in cases {
        let call = match bearer {
            Some(t) => s.as_user(t).post(path, body.clone()),
            None => s.post(path, body.clone()),
        };
        let (status, answer) = call.await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
    }
    // A request id forge never issued is no malformed request: the answer
    // finds no ceremony, whatever the credential holds.
    let (status, body) = s
        .post("/v1/auth/passkey/verify", json!({"request_id": "r", "credential": {}}))
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = s
        .as_user(&strong)
        .post(
            "/v1/users/me/factors/webauthn",
            json!({"request_id": "r", "credential": "x"}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    // The sign-in survives the malformed answers: nothing was counted.
    let options = assertion_options(&s, &mfa).await;
    let (status, body) = verify(&s, &mfa, &options["request_id"], key.sign_in(&options["publicKey"])).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_openapi_document_states_the_passkey_routes() {
    let s = TestServer::start().await;
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    let routes: [(&str, &[&str]); 5] = [
        (
            "/v1/users/me/factors/webauthn/options",
            &["200", "400", "401", "403", "404", "429"],
        ),
        ("/v1/users/me/factors/webauthn", &["201", "400", "401", "404", "409"]),
        ("/v1/auth/mfa/webauthn/options", &["200", "400", "401", "404", "409"]),
        ("/v1/auth/passkey/options", &["200", "400", "404", "429"]),
        ("/v1/auth/passkey/verify", &["200", "400", "401", "403", "404", "429"]),
    ];
    for (path, statuses) in routes {
        let op = &doc["paths"][path]["post"];
        for code in statuses {
            assert!(op["responses"].get(code).is_some(), "{path}: {code} missing: {op}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    for name in ["PasskeyOptionsView", "FinishPasskeyRequest", "PasskeySignInRequest"] {
        assert!(schemas.get(name).is_some(), "{name} is not in components");
    }
    assert_eq!(
        schemas["PasskeySignInRequest"]["properties"]["request_id"]["maxLength"],
        128
    );
    assert_eq!(
        schemas["FinishPasskeyRequest"]["properties"]["request_id"]["maxLength"],
        128
    );
    let forms = schemas["MfaVerifyRequest"]["oneOf"].as_array().unwrap();
    let required: Vec<&Value> = forms.iter().map(|f| &f["required"]).collect();
    assert_eq!(
        required,
        [
            &json!(["totp"]),
            &json!(["recovery_code"]),
            &json!(["request_id", "credential"])
        ]
    );
    assert!(
        forms.iter().all(|f| f["not"]["anyOf"].as_array().unwrap().len() >= 2),
        "{forms:?}"
    );
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let r = r.split('"').next().unwrap();
        assert!(schemas.get(r).is_some(), "dangling $ref {r}");
    }
}
