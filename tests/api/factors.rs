//! Second factors through HTTP (`/v1/users/me/factors*`,
//! `/v1/users/me/recovery-codes`, `/v1/users/{id}/factors`) and the
//! verification functions the sign-in second step will call
//! (`state.factors.verify_totp`, `use_recovery_code`, `verify`). TOTP codes
//! are computed here independently, with the `totp-rs` crate, at the
//! server's (manual) clock.

use forge::service::RequestMeta;
use forge::service::factors::MfaProof;
use forge::service::sessions::Principal;
use forge::store::Tenant;
use forge::testing::TestServer;
use serde_json::{Value, json};
use totp_rs::TOTP;

use crate::support::{login_in, server, user_with};
use crate::{PASSWORD, access, assert_error};

/// The authenticator app of an enrolment answer, from its `otpauth://` URI.
pub(crate) fn app(enrolment: &Value) -> TOTP {
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    let totp = TOTP::from_url(uri).unwrap();
    // The same secret as the base32 field.
    let secret = totp_rs::Secret::Encoded(enrolment["secret"].as_str().unwrap().to_string())
        .to_bytes()
        .unwrap();
    assert_eq!(totp.secret, secret);
    totp
}

pub(crate) fn code_now(s: &TestServer, app: &TOTP) -> String {
    app.generate(u64::try_from(s.clock().now()).unwrap())
}

/// A six-digit code that is not `app`'s code for any step around now.
fn wrong_code(s: &TestServer, app: &TOTP) -> String {
    let now = u64::try_from(s.clock().now()).unwrap();
    let near: Vec<String> = [now - 30, now, now + 30].iter().map(|t| app.generate(*t)).collect();
    (0..)
        .map(|n| format!("{:06}", 123_456 + n))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn default_tenant(s: &TestServer) -> Tenant {
    s.state().store.tenant_by_slug("default").await.unwrap().unwrap()
}

async fn principal(s: &TestServer, token: &str) -> Principal {
    s.state().sessions.authenticate(token).await.unwrap()
}

/// Starts a TOTP enrolment as `token`, asserting 200.
async fn start(s: &TestServer, token: &str, name: &str) -> Value {
    let (status, body) = s
        .as_user(token)
        .post(
            "/v1/users/me/factors/totp",
            json!({"name": name, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Enrols and confirms a TOTP factor; returns (enrolment, confirmation).
pub(crate) async fn enrol(s: &TestServer, token: &str, name: &str) -> (Value, Value, TOTP) {
    let started = start(s, token, name).await;
    let app = app(&started);
    let path = format!("/v1/users/me/factors/totp/{}/confirm", started["id"].as_str().unwrap());
    let (status, confirmed) = s.as_user(token).post(&path, json!({"code": code_now(s, &app)})).await;
    assert_eq!(status, 200, "{confirmed}");
    (started, confirmed, app)
}

/// Steps the session of `token` up to aal 2 with `app`'s code of a step
/// no code was used at yet (factor changes need it once a factor exists);
/// returns the new access token.
pub(crate) async fn step_up(s: &TestServer, token: &str, app: &TOTP) -> String {
    s.clock().advance(90);
    let (status, body) = s
        .as_user(token)
        .post("/v1/auth/mfa/verify", json!({"totp": code_now(s, app)}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["aal"], 2, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn list(s: &TestServer, token: &str) -> Vec<Value> {
    let (status, body) = s.as_user(token).get("/v1/users/me/factors").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_totp_factor_is_enrolled_confirmed_listed_renamed_and_removed() {
    let s = TestServer::start().await;
    let ann = s.signup_verified("ann@example.com", PASSWORD).await;
    let token = access(&ann).to_string();
    let tenant = default_tenant(&s).await;
    let me = principal(&s, &token).await;

    // Adding a factor needs the current password.
    let (status, body) = s.as_user(&token).post("/v1/users/me/factors/totp", json!({})).await;
    assert_error(status, &body, 401, "reauthentication_required");
    let (status, body) = s
        .as_user(&token)
        .post(
            "/v1/users/me/factors/totp",
            json!({"current_password": "not the password at all"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");

    let started = start(&s, &token, "phone").await;
    let uri = started["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/forge:ann%40example.com?secret="),
        "{uri}"
    );
    assert!(uri.contains("&issuer=forge&algorithm=SHA1&digits=6&period=30"), "{uri}");
    assert!(started["qr_svg"].as_str().unwrap().contains("<svg"));
    let app = app(&started);
    let id = started["id"].as_str().unwrap().to_string();

    // Pending: not listed, and signs nobody in.
    assert!(list(&s, &token).await.is_empty());
    let good = code_now(&s, &app);
    let verified = s.state().factors.verify_totp(&tenant, me.user_id, &good).await.unwrap();
    assert!(verified.is_none());

    // A wrong code leaves it pending; the right one confirms it, once.
    let confirm = format!("/v1/users/me/factors/totp/{id}/confirm");
    let (status, body) = s
        .as_user(&token)
        .post(&confirm, json!({"code": wrong_code(&s, &app)}))
        .await;
    assert_error(status, &body, 400, "invalid_code");
    let (status, confirmed) = s.as_user(&token).post(&confirm, json!({"code": good})).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["factor"]["id"], id.as_str());
    assert_eq!(confirmed["factor"]["type"], "totp");
    assert_eq!(confirmed["factor"]["name"], "phone");
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(
        codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'),
        "{codes:?}"
    );
    let (status, body) = s.as_user(&token).post(&confirm, json!({"code": good})).await;
    assert_error(status, &body, 404, "not_found");

    // The confirming code is spent: it cannot sign in afterwards.
    let replay = s.state().factors.verify_totp(&tenant, me.user_id, &good).await.unwrap();
    assert!(replay.is_none(), "the confirming code was accepted again");

    // The next step's code signs in once; a replay of it does not.
    s.clock().advance(30);
    let next = code_now(&s, &app);
    let used = s.state().factors.verify_totp(&tenant, me.user_id, &next).await.unwrap();
    assert_eq!(used.unwrap().id.to_string(), id);
    let replay = s.state().factors.verify_totp(&tenant, me.user_id, &next).await.unwrap();
    assert!(replay.is_none(), "a replayed code was accepted");
    // Clock skew: the code of one step ahead is accepted, then refused.
    let ahead = app.generate(u64::try_from(s.clock().now() + 30).unwrap());
    assert!(
        s.state()
            .factors
            .verify_totp(&tenant, me.user_id, &ahead)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.state()
            .factors
            .verify_totp(&tenant, me.user_id, &next)
            .await
            .unwrap()
            .is_none()
    );

    let items = list(&s, &token).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["id"], id.as_str());
    assert!(items[0]["last_used_at"].is_string(), "{items:?}");
    assert_eq!(items[1]["type"], "recovery_codes");
    assert_eq!(items[1]["remaining"], 10);
    for item in &items {
        for key in ["id", "type", "name", "created_at", "last_used_at"] {
            assert!(item.get(key).is_some(), "{key} missing from {item}");
        }
    }

    // Rename.
    let path = format!("/v1/users/me/factors/{id}");
    let (status, body) = s.as_user(&token).patch(&path, json!({"name": "  Work phone "})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Work phone");
    let (status, body) = s.as_user(&token).patch(&path, json!({"name": "   "})).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = s.as_user(&token).patch(&path, json!({"name": "a\u{7}b"})).await;
    assert_error(status, &body, 400, "validation_failed");
    let unknown = format!("/v1/users/me/factors/{}", uuid::Uuid::now_v7());
    let (status, body) = s.as_user(&token).patch(&unknown, json!({"name": "x"})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .as_user(&token)
        .patch("/v1/users/me/factors/not-a-uuid", json!({"name": "x"}))
        .await;
    assert_error(status, &body, 404, "not_found");

    // A second factor (from a session at aal 2): no new recovery codes.
    let token = step_up(&s, &token, &app).await;
    let (_, second, _) = enrol(&s, &token, "tablet").await;
    assert!(second.get("recovery_codes").is_none(), "{second}");
    assert_eq!(list(&s, &token).await.len(), 3);

    // Removing both takes the recovery codes with the last one.
    let second_id = second["factor"]["id"].as_str().unwrap();
    let (status, _) = s
        .as_user(&token)
        .delete(&format!("/v1/users/me/factors/{second_id}"))
        .await;
    assert_eq!(status, 204);
    let (status, _) = s.as_user(&token).delete(&path).await;
    assert_eq!(status, 204);
    let (status, body) = s.as_user(&token).delete(&path).await;
    assert_error(status, &body, 404, "not_found");
    assert!(list(&s, &token).await.is_empty());
    let code = RequestMeta::default();
    assert!(
        !s.state()
            .factors
            .use_recovery_code(&tenant, &me_user(&s, &me).await, &codes[0], &code)
            .await
            .unwrap()
    );
}

async fn me_user(s: &TestServer, me: &Principal) -> forge::store::User {
    s.state()
        .store
        .get_user(me.tenant.id, me.user_id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_pending_enrolment_is_replaced_by_the_next_one() {
    let s = TestServer::start().await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let first = start(&s, &token, "one").await;
    let second = start(&s, &token, "two").await;
    assert_ne!(first["secret"], second["secret"]);
    let app_one = app(&first);
    let path = format!("/v1/users/me/factors/totp/{}/confirm", first["id"].as_str().unwrap());
    let (status, body) = s
        .as_user(&token)
        .post(&path, json!({"code": code_now(&s, &app_one)}))
        .await;
    assert_error(status, &body, 404, "not_found");
    // A body the schema refuses is a 400, not a 500.
    let (status, body) = s
        .as_user(&token)
        .post(
            "/v1/users/me/factors/totp",
            json!({"name": 7, "current_password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = s
        .as_user(&token)
        .post(
            "/v1/users/me/factors/totp",
            json!({"name": "x".repeat(65), "current_password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = s.as_user(&token).post(&path, json!({"code": "1", "extra": true})).await;
    assert_error(status, &body, 400, "invalid_request");
}

#[tokio::test]
async fn recovery_codes_are_single_use_told_and_replaced_by_regeneration() {
    let s = TestServer::start().await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let tenant = default_tenant(&s).await;
    let me = principal(&s, &token).await;
    let user = me_user(&s, &me).await;
    let meta = RequestMeta {
        ip: Some("198.51.100.7".into()),
        ..Default::default()
    };

    // No factor yet: nothing to regenerate.
    let (status, body) = s
        .as_user(&token)
        .post("/v1/users/me/recovery-codes", json!({"current_password": PASSWORD}))
        .await;
    assert_error(status, &body, 409, "no_factor");

    let (_, confirmed, app) = enrol(&s, &token, "phone").await;
    let token = step_up(&s, &token, &app).await;
    let codes: Vec<String> = serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap();
    let factors = &s.state().factors;

    // Single use; forgiving of case and dashes.
    let typed = codes[0].to_uppercase().replace('-', " ");
    assert!(factors.use_recovery_code(&tenant, &user, &typed, &meta).await.unwrap());
    assert!(
        !factors
            .use_recovery_code(&tenant, &user, &codes[0], &meta)
            .await
            .unwrap()
    );
    assert!(
        !factors
            .use_recovery_code(&tenant, &user, "not a code", &meta)
            .await
            .unwrap()
    );
    // `verify` answers the one generic failure.
    let err = factors
        .verify(&tenant, &user, MfaProof::RecoveryCode(&codes[0]), &meta)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_mfa");
    assert_eq!(err.status().as_u16(), 401);
    let method = factors
        .verify(&tenant, &user, MfaProof::RecoveryCode(&codes[1]), &meta)
        .await
        .unwrap();
    assert_eq!(method.as_str(), "recovery_code");

    // The user is told, with where from and what is left; never the code.
    let told: Vec<Value> = s
        .outbox("ann@example.com")
        .await
        .into_iter()
        .filter(|m| m["kind"] == "recovery_code_used")
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    let body = told[0]["body"].as_str().unwrap();
    assert!(
        body.contains("198.51.100.7") && body.contains("8 unused codes"),
        "{body}"
    );
    assert!(codes.iter().all(|c| !body.contains(c.as_str())), "{body}");
    let items = list(&s, &token).await;
    assert_eq!(items[1]["remaining"], 8);
    assert!(items[1]["last_used_at"].is_string(), "{items:?}");

    // Regenerating needs the password and replaces every old code.
    let (status, body) = s.as_user(&token).post("/v1/users/me/recovery-codes", json!({})).await;
    assert_error(status, &body, 401, "reauthentication_required");
    let (status, body) = s
        .as_user(&token)
        .post("/v1/users/me/recovery-codes", json!({"current_password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh: Vec<String> = serde_json::from_value(body["recovery_codes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(
        !factors
            .use_recovery_code(&tenant, &user, &codes[2], &meta)
            .await
            .unwrap()
    );
    assert!(
        factors
            .use_recovery_code(&tenant, &user, &fresh[0], &meta)
            .await
            .unwrap()
    );
    assert_eq!(list(&s, &token).await[1]["remaining"], 9);

    // The metrics count outcomes by method.
    let metrics = s.get("/metrics").response().await.text().await.unwrap();
    assert!(
        metrics.contains(r#"forge_mfa_verifications_total{method="recovery_code",outcome="success"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"forge_mfa_verifications_total{method="recovery_code",outcome="failure"} 4"#),
        "{metrics}"
    );

    // The audit log has every event and neither a secret nor a code.
    let admin = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let (status, log) = s
        .as_user(&admin)
        .get(&format!("/v1/audit?limit=200&user_id={}", me.user_id))
        .await;
    assert_eq!(status, 200, "{log}");
    let text = log.to_string();
    for event in ["mfa_enrolled", "recovery_code_used", "recovery_codes_regenerated"] {
        assert!(text.contains(event), "{event} missing: {text}");
    }
    for secret in codes.iter().chain(fresh.iter()) {
        assert!(!text.contains(secret.as_str()) && !text.contains(&secret.replace('-', "")));
    }
}

#[tokio::test]
async fn wrong_second_factors_spend_the_password_failure_budget() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.login_failures_per_account = "3/15m".parse().unwrap();
    })
    .await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let (_, _, app) = enrol(&s, &token, "phone").await;
    let tenant = default_tenant(&s).await;
    let me = principal(&s, &token).await;
    let factors = &s.state().factors;
    let wrong = wrong_code(&s, &app);
    assert!(
        factors
            .verify_totp(&tenant, me.user_id, &wrong)
            .await
            .unwrap()
            .is_none()
    );
    assert!(factors.verify_totp(&tenant, me.user_id, "12").await.unwrap().is_none());
    // One wrong password: the budget (3) is spent across both.
    let (status, _) = s
        .post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": "a wrong guess here"}),
        )
        .await;
    assert_eq!(status, 401);
    // Now even the right code is refused before it is checked.
    s.clock().advance(30);
    let right = code_now(&s, &app);
    let err = factors.verify_totp(&tenant, me.user_id, &right).await.unwrap_err();
    assert_eq!(err.code().as_str(), "rate_limited");
    let (status, body) = s
        .post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 429, "rate_limited");
}

#[tokio::test]
async fn the_last_factor_is_kept_when_the_caller_says_one_is_required() {
    let s = TestServer::start().await;
    let token = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let (started, _, app) = enrol(&s, &token, "phone").await;
    let token = step_up(&s, &token, &app).await;
    let me = principal(&s, &token).await;
    let id = uuid::Uuid::parse_str(started["id"].as_str().unwrap()).unwrap();
    let err = s
        .state()
        .factors
        .remove(&me, id, true, &RequestMeta::default())
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "last_factor_required");
    assert_eq!(err.status().as_u16(), 409);
    assert_eq!(list(&s, &token).await.len(), 2);
    s.state()
        .factors
        .remove(&me, id, false, &RequestMeta::default())
        .await
        .unwrap();
    assert!(list(&s, &token).await.is_empty());
}

#[tokio::test]
async fn administrators_list_and_reset_factors_in_their_tenant_only() {
    let s = server().await;
    let admin = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let ann = access(&s.signup_verified("ann@example.com", PASSWORD).await).to_string();
    let (started, confirmed, _) = enrol(&s, &ann, "phone").await;
    let ann_id = principal(&s, &ann).await.user_id;
    let path = format!("/v1/users/{ann_id}/factors");

    // Permissions: users:read lists, users:write resets.
    let reader = access(&user_with(&s, &admin, "reader", &["users:read"]).await).to_string();
    let (status, body) = s.as_user(&reader).get(&path).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.as_user(&reader).delete(&path).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.as_user(&ann).get(&path).await;
    assert_error(status, &body, 403, "forbidden");

    let (status, body) = s.as_user(&admin).get(&path).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{body}");
    assert_eq!(items[0]["id"], started["id"]);
    let text = body.to_string();
    assert!(!text.contains(started["secret"].as_str().unwrap()) && !text.contains("otpauth"));

    // Another tenant's administrator finds nobody.
    let (status, body) = s
        .as_user(&admin)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme",
                   "admin": {"email": "boss@acme.io", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let boss = access(&login_in(&s, "acme", "boss@acme.io", PASSWORD).await).to_string();
    let (status, body) = s.as_user(&boss).get(&path).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.as_user(&boss).delete(&path).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s.as_user(&admin).get("/v1/users/not-a-uuid/factors").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .as_user(&admin)
        .delete(&format!("/v1/users/{}/factors", uuid::Uuid::now_v7()))
        .await;
    assert_error(status, &body, 404, "not_found");

    // Not one's own: that goes through self-service.
    let admin_id = principal(&s, &admin).await.user_id;
    let (status, body) = s.as_user(&admin).delete(&format!("/v1/users/{admin_id}/factors")).await;
    assert_error(status, &body, 403, "self");

    // The reset: everything goes, audited with the actor, and Ann is told.
    let (status, _) = s.as_user(&admin).delete(&path).await;
    assert_eq!(status, 204);
    assert!(list(&s, &ann).await.is_empty());
    let told = s.outbox("ann@example.com").await;
    assert!(told.iter().any(|m| m["kind"] == "factor_changed"), "{told:?}");
    let (status, log) = s
        .as_user(&admin)
        .get(&format!("/v1/audit?limit=200&user_id={ann_id}&event=mfa_reset"))
        .await;
    assert_eq!(status, 200, "{log}");
    let rows = log["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0]["actor_id"], admin_id.to_string());
    // Nothing secret anywhere in the log.
    let (_, all) = s.as_user(&admin).get("/v1/audit?limit=200").await;
    let text = all.to_string();
    assert!(!text.contains(started["secret"].as_str().unwrap()));
    for code in confirmed["recovery_codes"].as_array().unwrap() {
        assert!(!text.contains(code.as_str().unwrap()));
    }
}

#[tokio::test]
async fn openapi_lists_the_factor_routes() {
    let s = TestServer::start().await;
    let doc: Value = s.get("/openapi.json").response().await.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in [
        ("get", "/v1/users/me/factors"),
        ("post", "/v1/users/me/factors/totp"),
        ("post", "/v1/users/me/factors/totp/{id}/confirm"),
        ("patch", "/v1/users/me/factors/{id}"),
        ("delete", "/v1/users/me/factors/{id}"),
        ("post", "/v1/users/me/recovery-codes"),
        ("get", "/v1/users/{id}/factors"),
        ("delete", "/v1/users/{id}/factors"),
    ] {
        let op = paths.get(path).and_then(|p| p.get(method));
        assert!(op.is_some(), "{method} {path} missing");
        assert!(op.unwrap()["security"].is_array(), "{method} {path} without security");
    }
}
