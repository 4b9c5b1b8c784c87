//! The tenant's second-factor policy (`mfa` in `/v1/tenant/settings`): read
//! and changed by administrators (validated, audited) and shown on the
//! admin site. The sign-in rules it drives are tested where the sign-in
//! second step lives.

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
async fn the_admin_site_refuses_administrators_without_a_factor_under_the_policy() {
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

    // An administrator without a factor is refused, and told what to do.
    let mut b = Browser::new(&s);
    let page = b.sign_in_to("", "second@example.com", PASSWORD).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("second factor"), "{}", page.body);
    assert!(!b.cookies.contains_key("forge_admin"));
    let (_, audit) = s.as_user(&op).get("/v1/audit?event=admin_login_denied").await;
    assert_eq!(
        audit["items"][0]["detail"]["reason"], "mfa_enrollment_required",
        "{audit}"
    );
    // With a factor, the policy no longer refuses: the site goes on to the
    // second step (tests/api/site_mfa.rs completes it).
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
