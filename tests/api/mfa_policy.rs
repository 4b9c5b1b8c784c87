//! The tenant's second-factor policy (`mfa` in `/v1/tenant/settings`): read
//! and changed by administrators (validated, audited) and shown on the
//! admin site, and what it does to every sign-in of a user without a
//! factor (password, one-time code, email verification, the OAuth2
//! password grant): nothing, tokens marked `mfa_enrollment_due` during the
//! grace, and past it an `enrollment_token` instead of tokens.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::server;
use crate::{PASSWORD, access, assert_error};

async fn patch_mfa(s: &forge::testing::TestServer, admin: &str, mfa: Value) -> (StatusCode, Value) {
    s.as_user(admin)
        .patch("/v1/tenant/settings", json!({ "mfa": mfa }))
        .await
}

#[tokio::test]
async fn the_default_is_optional_and_a_change_is_kept_and_audited() {
    let s = server().await;
    let admin = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let (status, body) = s.as_user(&admin).get("/v1/tenant/settings").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa"], json!({"policy": "optional", "roles": [], "grace": "7d"}));

    let (status, body) = patch_mfa(
        &s,
        &admin,
        json!({"policy": "roles", "roles": ["admin"], "grace": "36h"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["mfa"],
        json!({"policy": "roles", "roles": ["admin"], "grace": "36h"})
    );
    assert_eq!(body["signup"]["mode"], "open", "the other part is untouched");
    // Omitted fields keep their value; a grace of 48h reads back as 2d.
    let (status, body) = patch_mfa(&s, &admin, json!({"grace": "48h"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["mfa"],
        json!({"policy": "roles", "roles": ["admin"], "grace": "2d"})
    );
    let (_, read) = s.as_user(&admin).get("/v1/tenant/settings").await;
    assert_eq!(read["mfa"], body["mfa"]);

    let (_, audit) = s.as_user(&admin).get("/v1/audit?event=settings_updated").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    assert_eq!(items[0]["detail"]["parts"], json!(["mfa"]));
    assert_eq!(
        items[0]["detail"]["mfa"],
        json!({"policy": "roles", "roles": ["admin"], "grace": "2d"})
    );
    // An unchanged part is not written (nor audited).
    patch_mfa(&s, &admin, json!({"grace": "2d"})).await;
    let (_, audit) = s.as_user(&admin).get("/v1/audit?event=settings_updated").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_policies_are_400_naming_the_field() {
    let s = server().await;
    let admin = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    for (mfa, field) in [
        (json!({"policy": "sometimes"}), "mfa.policy"),
        (json!({"policy": "roles", "roles": []}), "mfa.roles"),
        (json!({"policy": "roles"}), "mfa.roles"),
        (json!({"roles": ["Not A Role"]}), "mfa.roles"),
        (json!({"roles": ["x".repeat(65)]}), "mfa.roles"),
        (
            json!({"roles": (0..33).map(|i| format!("r{i}")).collect::<Vec<_>>()}),
            "mfa.roles",
        ),
        (json!({"grace": "91d"}), "mfa.grace"),
        (json!({"grace": "-1d"}), "mfa.grace"),
        (json!({"grace": "soon"}), "mfa.grace"),
        (json!({"grace": ""}), "mfa.grace"),
        (json!({"grace": "1.5s"}), "mfa.grace"),
    ] {
        let (status, body) = patch_mfa(&s, &admin, mfa.clone()).await;
        assert_error(status, &body, 400, "validation_failed");
        assert!(body["fields"][field].is_string(), "{mfa} -> {body}");
    }
    for bad in [
        json!({"mfa": {"policy": "all", "extra": 1}}),
        json!({"mfa": {"grace": 7}}),
        json!({"mfa": "all"}),
    ] {
        let (status, body) = s.as_user(&admin).patch("/v1/tenant/settings", bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (_, read) = s.as_user(&admin).get("/v1/tenant/settings").await;
    assert_eq!(read["mfa"]["policy"], "optional", "nothing was stored");
    // The bounds themselves are fine.
    let (status, body) = patch_mfa(&s, &admin, json!({"policy": "all", "grace": "90d"})).await;
    assert_eq!(
        (status, &body["mfa"]["grace"]),
        (StatusCode::OK, &json!("90d")),
        "{body}"
    );
    let (status, body) = patch_mfa(&s, &admin, json!({"grace": "0s"})).await;
    assert_eq!(
        (status, &body["mfa"]["grace"]),
        (StatusCode::OK, &json!("0s")),
        "{body}"
    );
}

#[tokio::test]
async fn a_user_without_settings_write_cannot_change_it() {
    let s = server().await;
    let admin = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let reader = crate::support::user_with(&s, &admin, "auditor", &["settings:read"]).await;
    let (status, body) = patch_mfa(&s, access(&reader), json!({"policy": "all"})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.as_user(access(&reader)).get("/v1/tenant/settings").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa"]["policy"], "optional");
}

/// A confirmed TOTP factor put straight into the store (the site has no
/// enrolment of its own; the API's is tested with the factors).
async fn give_factor(s: &forge::testing::TestServer, user_id: &str) {
    use forge::store::{ConfirmFactor, NewFactor, NewFactorMaterial};
    let store = &s.state().store;
    let user_id = uuid::Uuid::parse_str(user_id).unwrap();
    let tenant_id = forge::store::DEFAULT_TENANT_ID;
    let now = s.clock().now();
    let factor = store
        .create_factor(NewFactor {
            id: uuid::Uuid::now_v7(),
            tenant_id,
            user_id,
            name: "phone".into(),
            now,
            material: NewFactorMaterial::Totp {
                sealed_secret: vec![0; 40],
            },
        })
        .await
        .unwrap();
    let audit = forge::service::RequestMeta::default().audit(
        tenant_id,
        now,
        forge::domain::AuditEvent::MfaEnrolled,
        Some(user_id),
        Some(user_id),
    );
    store
        .confirm_factor(
            tenant_id,
            user_id,
            factor.id,
            ConfirmFactor {
                now,
                totp_step: None,
                recovery_code_hashes: vec![],
                audit,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_admin_site_enrols_administrators_without_a_factor_under_the_policy() {
    use crate::support::site_client::Browser;
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = access(&root).to_string();
    let other = crate::support::provision(&s, &op, "second@example.com", &["admin"]).await;

    // Set on the site's Settings page.
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin/settings").await;
    assert!(
        page.body.contains("id=\"mfa-grace\" required") && page.body.contains("value=\"7d\""),
        "{}",
        page.body
    );
    let page = b
        .act(
            "/admin/settings/mfa",
            &[("policy", "roles"), ("roles", "admin"), ("grace", "3d")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let (_, read) = s.as_user(&op).get("/v1/tenant/settings").await;
    assert_eq!(
        read["mfa"],
        json!({"policy": "roles", "roles": ["admin"], "grace": "3d"})
    );
    let page = b
        .act(
            "/admin/settings/mfa",
            &[("policy", "roles"), ("roles", ""), ("grace", "3d")],
        )
        .await;
    assert_eq!(page.status, 303);
    assert!(b.flash("/admin/settings").await.contains("mfa.roles"));

    // An administrator without a factor gets no session but the enrolment
    // step (tests/api/site_mfa.rs completes it).
    let mut b = Browser::new(&s);
    let page = b.sign_in_to("", "second@example.com", PASSWORD).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("second factor"), "{}", page.body);
    assert!(page.body.contains("action=\"/admin/login/enrol\""), "{}", page.body);
    assert!(!b.cookies.contains_key("forge_admin"));
    let (_, audit) = s.as_user(&op).get("/v1/audit?event=admin_login_denied").await;
    assert_eq!(audit["items"], json!([]), "{audit}");
    // With a factor, the site goes on to the second step (tests/api/site_mfa.rs completes it).
    give_factor(&s, &other).await;
    let mut b = Browser::new(&s);
    let page = b.sign_in_to("", "second@example.com", PASSWORD).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("/admin/login/mfa"), "{}", page.body);
    // Optional again: no factor needed.
    let (status, _) = patch_mfa(&s, &op, json!({"policy": "optional"})).await;
    assert_eq!(status, 200);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
}

#[tokio::test]
async fn the_last_factor_stays_under_a_policy_that_requires_it() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    let ann = access(&s.login("ann@example.com", PASSWORD).await).to_string();
    let (_, first, app) = crate::factors::enrol(&s, &ann, "phone").await;
    // Factor changes need aal 2 once a factor exists.
    let ann = crate::factors::step_up(&s, &ann, &app).await;
    let (_, second, _) = crate::factors::enrol(&s, &ann, "laptop").await;
    let path = |f: &Value| format!("/v1/users/me/factors/{}", f["factor"]["id"].as_str().unwrap());

    // `roles: [admin]` does not apply to ann: removing her last factor is fine...
    patch_mfa(&s, &op, json!({"policy": "roles", "roles": ["admin"]})).await;
    assert_eq!(s.as_user(&ann).delete(&path(&second)).await.0, 204);
    let (_, again, _) = crate::factors::enrol(&s, &ann, "laptop").await;
    // ... `all` does: one of two goes, the last one stays.
    patch_mfa(&s, &op, json!({"policy": "all"})).await;
    assert_eq!(s.as_user(&ann).delete(&path(&again)).await.0, 204);
    let (status, body) = s.as_user(&ann).delete(&path(&first)).await;
    assert_error(status, &body, 409, "last_factor_required");
    // Optional again: it may go.
    patch_mfa(&s, &op, json!({"policy": "optional"})).await;
    assert_eq!(s.as_user(&ann).delete(&path(&first)).await.0, 204);
}

#[tokio::test]
async fn an_enrollment_token_enrols_a_first_factor_and_nothing_else() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let id = crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    // Minted as a sign-in past the grace mints it.
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let user = s
        .state()
        .store
        .get_user(tenant.id, uuid::Uuid::parse_str(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let token = s
        .state()
        .mfa_policies
        .enrollment_token(
            &tenant,
            &user,
            &forge::domain::Assurance::password(),
            &forge::service::RequestMeta::default(),
        )
        .await
        .unwrap();
    let token = token.expose().to_string();

    // Nowhere else: it is no access token.
    for path in ["/v1/users/me", "/v1/users/me/factors", "/v1/tenant/settings"] {
        let (status, body) = s.as_user(&token).get(path).await;
        assert_error(status, &body, 401, "invalid_token");
    }
    let (status, body) = s.as_user(&token).post("/v1/users/me/recovery-codes", json!({})).await;
    assert_error(status, &body, 401, "invalid_token");
    assert_eq!(crate::support::forward_auth(&s, &token, "").await.status(), 401);
    // Not in another tenant either.
    let (status, body) = s
        .as_user(&token)
        .post("/v1/users/me/factors/totp", json!({}))
        .tenant("nope")
        .await;
    assert_error(status, &body, 401, "invalid_token");

    // Enrolment: no password needed, the token is the proof.
    let (status, started) = s.as_user(&token).post("/v1/users/me/factors/totp", json!({})).await;
    assert_eq!(status, 200, "{started}");
    let app = crate::factors::app(&started);
    let confirm = format!("/v1/users/me/factors/totp/{}/confirm", started["id"].as_str().unwrap());
    let (status, body) = s.as_user(&token).post(&confirm, json!({"code": "000000x"})).await;
    assert_error(status, &body, 400, "invalid_code");
    let (status, done) = s
        .as_user(&token)
        .post(&confirm, json!({"code": crate::factors::code_now(&s, &app)}))
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10, "{done}");
    assert_eq!(done["factor"]["type"], "totp");
    assert_eq!(done["token_type"], "Bearer");
    assert_eq!(done["user"]["id"], id);
    let claims = crate::support::claims(access(&done));
    assert_eq!(claims["aal"], 2, "{claims}");
    assert_eq!(claims["amr"], json!(["mfa", "otp", "pwd"]), "{claims}");
    let (status, me) = s.as_user(access(&done)).get("/v1/users/me").await;
    assert_eq!(status, 200, "{me}");
    // The refresh token works as any sign-in's.
    let (status, refreshed) = s
        .post("/v1/auth/refresh", json!({"refresh_token": done["refresh_token"]}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(crate::support::claims(access(&refreshed))["aal"], 2);

    // Spent: single use.
    let (status, body) = s.as_user(&token).post("/v1/users/me/factors/totp", json!({})).await;
    assert_error(status, &body, 401, "invalid_token");
}

/// Sets the policy (as `admin`), asserting 200.
async fn set_policy(s: &forge::testing::TestServer, admin: &str, mfa: Value) {
    let (status, body) = patch_mfa(s, admin, mfa).await;
    assert_eq!(status, 200, "{body}");
}

/// A password sign-in of `email`, asserting 200 (tokens or not).
async fn sign_in(s: &forge::testing::TestServer, email: &str) -> Value {
    let (status, body) = s
        .post("/v1/auth/login", json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asserts a past-the-grace answer: the enrolment token and nothing else.
fn enrollment_token(body: &Value) -> String {
    assert_eq!(body["mfa_enrollment_required"], true, "{body}");
    for absent in ["access_token", "refresh_token", "mfa_token", "device_token", "user"] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
    body["enrollment_token"].as_str().unwrap().to_string()
}

/// Enrols TOTP with an enrolment token as the bearer; returns the confirm
/// answer (the tokens beside the recovery codes).
async fn enrol_with(s: &forge::testing::TestServer, token: &str) -> Value {
    let (status, started) = s.as_user(token).post("/v1/users/me/factors/totp", json!({})).await;
    assert_eq!(status, 200, "{started}");
    let app = crate::factors::app(&started);
    let confirm = format!("/v1/users/me/factors/totp/{}/confirm", started["id"].as_str().unwrap());
    let (status, done) = s
        .as_user(token)
        .post(&confirm, json!({"code": crate::factors::code_now(s, &app)}))
        .await;
    assert_eq!(status, 200, "{done}");
    done
}

#[tokio::test]
async fn an_optional_policy_signs_in_as_before() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    // The default, and set explicitly after a stricter one.
    let body = sign_in(&s, "ann@example.com").await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("mfa_enrollment_due").is_none(), "{body}");
    assert!(body.get("mfa_enrollment_due_at").is_none(), "{body}");
    set_policy(&s, &op, json!({"policy": "all", "grace": "1h"})).await;
    set_policy(&s, &op, json!({"policy": "optional"})).await;
    s.clock().advance(7_200);
    let body = sign_in(&s, "ann@example.com").await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("mfa_enrollment_due").is_none(), "{body}");
}

#[tokio::test]
async fn under_all_sign_in_is_due_during_the_grace_and_needs_enrolment_after_it() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let id = crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    set_policy(&s, &op, json!({"policy": "all", "grace": "1d"})).await;

    // During the grace: tokens, marked due; the grace runs from this first
    // sign-in and does not move on the next.
    let first_at = s.clock().now();
    let resp = s
        .post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .response()
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = crate::parts(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");
    let due_at = forge::domain::rfc3339(first_at + 86_400);
    assert_eq!(body["mfa_enrollment_due_at"], due_at, "{body}");
    assert_eq!(crate::support::claims(access(&body))["aal"], 1);
    s.clock().advance(86_399);
    let body = sign_in(&s, "ann@example.com").await;
    assert_eq!(body["mfa_enrollment_due_at"], due_at, "{body}");
    // A refresh is no sign-in: no mark.
    let (status, refreshed) = s
        .post("/v1/auth/refresh", json!({"refresh_token": body["refresh_token"]}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed.get("mfa_enrollment_due").is_none(), "{refreshed}");

    // Past it: no tokens, no cookie, no session; an enrolment token.
    s.clock().advance(1);
    let resp = s
        .post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .response()
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers().get("set-cookie").is_none());
    let (status, body) = crate::parts(resp).await;
    assert_eq!(status, 200, "{body}");
    let token = enrollment_token(&body);

    // The attack: the enrolment token as anything but an enrolment bearer.
    let (status, me) = s.as_user(&token).get("/v1/users/me").await;
    assert_error(status, &me, 401, "invalid_token");
    let (status, sessions) = s.as_user(&token).get("/v1/users/me/sessions").await;
    assert_error(status, &sessions, 401, "invalid_token");
    assert_eq!(crate::support::forward_auth(&s, &token, "").await.status(), 401);
    let (status, body) = s
        .post("/v1/auth/mfa/verify", json!({"mfa_token": token, "totp": "123456"}))
        .await;
    assert!(
        status.is_client_error() && body.get("access_token").is_none(),
        "{status} {body}"
    );
    let (status, body) = s.post("/v1/auth/refresh", json!({"refresh_token": token})).await;
    assert!(
        status.is_client_error() && body.get("access_token").is_none(),
        "{status} {body}"
    );

    // Enrolment with it answers the tokens, at aal 2.
    let done = enrol_with(&s, &token).await;
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10, "{done}");
    assert_eq!(done["user"]["id"], id);
    let claims = crate::support::claims(access(&done));
    assert_eq!(claims["aal"], 2, "{claims}");
    assert_eq!(claims["amr"], json!(["mfa", "otp", "pwd"]), "{claims}");
    let (status, me) = s.as_user(access(&done)).get("/v1/users/me").await;
    assert_eq!(status, 200, "{me}");
    // Spent.
    let (status, body) = s.as_user(&token).post("/v1/users/me/factors/totp", json!({})).await;
    assert_error(status, &body, 401, "invalid_token");
    // From now on the factor is asked for: the policy is satisfied.
    let body = sign_in(&s, "ann@example.com").await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("mfa_enrollment_required").is_none(), "{body}");
}

#[tokio::test]
async fn enrolling_during_the_grace_ends_the_mark() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    set_policy(&s, &op, json!({"policy": "all", "grace": "1h"})).await;
    let body = sign_in(&s, "ann@example.com").await;
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");
    crate::factors::enrol(&s, access(&body), "phone").await;
    s.clock().advance(7_200);
    let body = sign_in(&s, "ann@example.com").await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("mfa_enrollment_due").is_none(), "{body}");
}

#[tokio::test]
async fn a_roles_policy_gates_only_the_holders_of_its_roles() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    crate::support::provision(&s, &op, "boss@example.com", &["admin"]).await;
    set_policy(&s, &op, json!({"policy": "roles", "roles": ["admin"], "grace": "1h"})).await;

    let body = sign_in(&s, "boss@example.com").await;
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");
    let body = sign_in(&s, "ann@example.com").await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("mfa_enrollment_due").is_none(), "{body}");

    s.clock().advance(3_600);
    let body = sign_in(&s, "boss@example.com").await;
    let token = enrollment_token(&body);
    let body = sign_in(&s, "ann@example.com").await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("mfa_enrollment_due").is_none(), "{body}");
    // The administrator's way back in is the enrolment.
    let done = enrol_with(&s, &token).await;
    assert_eq!(crate::support::claims(access(&done))["aal"], 2);
    assert_eq!(crate::support::claims(access(&done))["roles"], json!(["admin"]));
}

#[tokio::test]
async fn a_user_with_a_factor_gets_the_second_step_not_enrolment() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    let ann = access(&sign_in(&s, "ann@example.com").await).to_string();
    crate::factors::enrol(&s, &ann, "phone").await;
    set_policy(&s, &op, json!({"policy": "all", "grace": "0s"})).await;
    let body = sign_in(&s, "ann@example.com").await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body["mfa_token"].is_string(), "{body}");
    for absent in [
        "mfa_enrollment_required",
        "enrollment_token",
        "mfa_enrollment_due",
        "access_token",
    ] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
}

#[tokio::test]
async fn one_time_code_sign_in_honours_the_policy() {
    let s = forge::testing::TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.otp.resend_cooldown = std::time::Duration::ZERO;
    })
    .await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    set_policy(&s, &op, json!({"policy": "all", "grace": "1h"})).await;
    let code_sign_in = || async {
        let (status, body) = s.post("/v1/auth/otp", json!({"email": "ann@example.com"})).await;
        assert_eq!(status, 202, "{body}");
        let code = s.last_code("ann@example.com").await;
        let (status, body) = s
            .post("/v1/auth/otp/verify", json!({"email": "ann@example.com", "code": code}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let body = code_sign_in().await;
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");
    s.clock().advance(3_600);
    let body = code_sign_in().await;
    let token = enrollment_token(&body);
    let done = enrol_with(&s, &token).await;
    let claims = crate::support::claims(access(&done));
    assert_eq!(
        (claims["aal"].clone(), claims["amr"].clone()),
        (json!(2), json!(["mfa", "otp"]))
    );
}

#[tokio::test]
async fn email_verification_sign_in_honours_the_policy() {
    let s = forge::testing::TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.signup.require_email_verification = true;
    })
    .await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    // No grace: the first sign-in that finds the policy applying is past it.
    set_policy(&s, &op, json!({"policy": "all", "grace": "0s"})).await;
    let (status, body) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "xena@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let code = s.last_code("xena@example.com").await;
    let (status, body) = s
        .post(
            "/v1/auth/email/verify",
            json!({"email": "xena@example.com", "code": code, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = enrollment_token(&body);
    let done = enrol_with(&s, &token).await;
    assert_eq!(crate::support::claims(access(&done))["aal"], 2);
    assert_eq!(done["user"]["email_verified"], true, "{done}");
}

#[tokio::test]
async fn the_oauth_password_grant_honours_the_policy() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    crate::support::provision(&s, &op, "ann@example.com", &[]).await;
    set_policy(&s, &op, json!({"policy": "all", "grace": "1h"})).await;
    let grant = || {
        s.request(reqwest::Method::POST, "/v1/auth/token").form([
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", PASSWORD),
        ])
    };
    let (status, body) = grant().await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");
    assert!(body["mfa_enrollment_due_at"].is_string(), "{body}");

    s.clock().advance(3_600);
    let resp = grant().response().await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = crate::parts(resp).await;
    assert_error(status, &body, 403, "mfa_enrollment_required");
    assert!(body["error_description"].is_string(), "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    let token = body["enrollment_token"].as_str().unwrap().to_string();
    // Not a grant of its own: the mfa grant refuses it.
    let (status, body) = s
        .request(reqwest::Method::POST, "/v1/auth/token")
        .form([
            ("grant_type", "urn:forge:params:oauth:grant-type:mfa"),
            ("mfa_token", token.as_str()),
            ("otp", "123456"),
        ])
        .await;
    assert_error(status, &body, 400, "invalid_grant");
    let done = enrol_with(&s, &token).await;
    assert_eq!(crate::support::claims(access(&done))["aal"], 2);
}

#[tokio::test]
async fn the_openapi_document_describes_the_policy_answers() {
    let s = server().await;
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    let schemas = &doc["components"]["schemas"];
    let required = &schemas["MfaEnrollmentRequiredResponse"];
    assert_eq!(
        required["required"],
        json!(["mfa_enrollment_required", "enrollment_token"]),
        "{required}"
    );
    assert!(schemas["TokenResponse"]["properties"]["mfa_enrollment_due"].is_object());
    assert!(schemas["TokenResponse"]["properties"]["mfa_enrollment_due_at"].is_object());
    let one_of = schemas["SignInResponse"].to_string();
    assert!(one_of.contains("MfaEnrollmentRequiredResponse"), "{one_of}");
    let next = schemas["OAuthNextStep"].to_string();
    assert!(
        next.contains("OAuthMfaRequired") && next.contains("OAuthMfaEnrollmentRequired"),
        "{next}"
    );
    assert!(schemas["OAuthMfaEnrollmentRequired"]["properties"]["enrollment_token"].is_object());
    for path in ["/v1/auth/login", "/v1/auth/otp/verify", "/v1/auth/email/verify"] {
        let ok = doc["paths"][path]["post"]["responses"]["200"]["description"].to_string();
        assert!(ok.contains("mfa_enrollment_required"), "{path}: {ok}");
    }
    let token = doc["paths"]["/v1/auth/token"]["post"]["responses"]["403"].to_string();
    assert!(token.contains("OAuthNextStep"), "{token}");
}

#[tokio::test]
async fn signup_honours_the_policy() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let signup = |email: &'static str| {
        let s = &s;
        async move {
            let (status, body) = s
                .post("/v1/auth/signup", json!({"email": email, "password": PASSWORD}))
                .await;
            assert_eq!(status, 201, "{body}");
            body
        }
    };
    // With a grace: signed in, marked due from the sign-up on.
    set_policy(&s, &op, json!({"policy": "all", "grace": "1d"})).await;
    let signed_up_at = s.clock().now();
    let body = signup("ann@example.com").await;
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");
    let due_at = forge::domain::rfc3339(signed_up_at + 86_400);
    assert_eq!(body["mfa_enrollment_due_at"], due_at, "{body}");
    s.clock().advance(3_600);
    assert_eq!(sign_in(&s, "ann@example.com").await["mfa_enrollment_due_at"], due_at);

    // Without one: the account exists but gets no session, only the
    // enrolment token, which enrols the first factor and signs in at aal 2.
    let op = access(&s.login("root@example.com", PASSWORD).await).to_string();
    set_policy(&s, &op, json!({"policy": "all", "grace": "0s"})).await;
    let body = signup("bob@example.com").await;
    let token = enrollment_token(&body);
    let (status, _) = s.as_user(&token).get("/v1/users/me").await;
    assert_eq!(status, 401, "an enrolment token is no access token");
    let done = enrol_with(&s, &token).await;
    assert_eq!(crate::support::claims(access(&done))["aal"], 2);
    assert_eq!(done["user"]["email"], "bob@example.com", "{done}");
    // The sign-up opened no session of its own: only the enrolment's.
    let (_, sessions) = s.as_user(access(&done)).get("/v1/users/me/sessions").await;
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
}

#[tokio::test]
async fn an_account_made_by_its_first_one_time_code_honours_the_policy() {
    let s = forge::testing::TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
    })
    .await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let new_by_code = |email: &'static str| {
        let s = &s;
        async move {
            let (status, body) = s.post("/v1/auth/otp", json!({"email": email})).await;
            assert_eq!(status, 202, "{body}");
            let code = s.last_code(email).await;
            let (status, body) = s
                .post("/v1/auth/otp/verify", json!({"email": email, "code": code}))
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    set_policy(&s, &op, json!({"policy": "all", "grace": "1h"})).await;
    let body = new_by_code("ann@example.com").await;
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["mfa_enrollment_due"], true, "{body}");

    set_policy(&s, &op, json!({"policy": "all", "grace": "0s"})).await;
    let token = enrollment_token(&new_by_code("bob@example.com").await);
    let done = enrol_with(&s, &token).await;
    let claims = crate::support::claims(access(&done));
    assert_eq!(
        (claims["aal"].clone(), claims["amr"].clone()),
        (json!(2), json!(["mfa", "otp"]))
    );
    assert_eq!(done["user"]["email_verified"], true, "{done}");
}
