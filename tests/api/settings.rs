//! Tenant settings (`/v1/tenant/settings`) and the per-tenant signup policy:
//! read and changed by the tenant's administrators (audited), isolated
//! between tenants (operators act elsewhere with `X-Forge-Tenant`), set at
//! tenant creation, and enforced by password sign-up and by the account
//! creation of a first one-time-code sign-in. Admin provisioning ignores it.

use forge::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::login_in;
use crate::{PASSWORD, access, assert_error};

const BOSS_PASSWORD: &str = "acme admin passphrase 4 tests";

async fn signup_in(s: &TestServer, tenant: &str, email: &str) -> (StatusCode, Value) {
    let body = json!({"email": email, "password": PASSWORD});
    s.post("/v1/auth/signup", body).tenant(tenant).await
}

/// The operator's token, and a tenant `slug` (with `signup` if given) whose
/// first administrator `boss@<slug>.io` is signed in: (operator, boss).
async fn tenant_with_admin(s: &TestServer, op: &str, slug: &str, signup: Option<Value>) -> String {
    let mut body = json!({
        "slug": slug, "name": slug,
        "admin": {"email": format!("boss@{slug}.io"), "password": BOSS_PASSWORD},
    });
    if let Some(p) = signup {
        body["signup"] = p;
    }
    let (status, created) = s.as_user(op).post("/v1/tenants", body).await;
    assert_eq!(status, 201, "{created}");
    let boss = login_in(s, slug, &format!("boss@{slug}.io"), BOSS_PASSWORD).await;
    access(&boss).to_string()
}

async fn operator(s: &TestServer) -> String {
    access(&s.admin("root@example.com", PASSWORD).await).to_string()
}

#[tokio::test]
async fn signup_into_a_closed_tenant_is_403() {
    let s = TestServer::start().await;
    let op = operator(&s).await;
    // On 0.1.0 the header alone was enough: 201 into any tenant.
    let (status, body) = s
        .as_user(&op)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "signup": {"mode": "closed"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = signup_in(&s, "acme", "mallory@example.com").await;
    assert_error(status, &body, 403, "signup_disabled");
    // A tenant that never chose follows signup.enabled (true here).
    s.as_user(&op)
        .post("/v1/tenants", json!({"slug": "beta", "name": "Beta"}))
        .await;
    assert_eq!(signup_in(&s, "beta", "ann@example.com").await.0, 201);
    // Administrators still provision accounts in a closed tenant.
    let boss = tenant_with_admin(&s, &op, "gamma", Some(json!({"mode": "closed"}))).await;
    let (status, body) = s
        .as_user(&boss)
        .post("/v1/users", json!({"email": "hire@gamma.io", "password": PASSWORD}))
        .await;
    assert_eq!(status, 201, "{body}");

    // With signup.enabled = false, tenants without a policy are closed, and
    // a tenant that chose open is open.
    let s = TestServer::start_with(|c| c.signup.enabled = false).await;
    let op = operator(&s).await;
    s.as_user(&op)
        .post("/v1/tenants", json!({"slug": "beta", "name": "Beta"}))
        .await;
    let (status, body) = signup_in(&s, "beta", "ann@example.com").await;
    assert_error(status, &body, 403, "signup_disabled");
    let (status, body) = signup_in(&s, "default", "ann@example.com").await;
    assert_error(status, &body, 403, "signup_disabled");
    let body = json!({"slug": "open", "name": "Open", "signup": {"mode": "open"}});
    assert_eq!(s.as_user(&op).post("/v1/tenants", body).await.0, 201);
    assert_eq!(signup_in(&s, "open", "ann@example.com").await.0, 201);
    // An invalid policy at creation is a 400 naming the field.
    let body = json!({"slug": "bad", "name": "Bad", "signup": {"mode": "domains", "domains": ["ann@acme.io"]}});
    let (status, body) = s.as_user(&op).post("/v1/tenants", body).await;
    assert_error(status, &body, 400, "validation_failed");
    assert!(body["fields"]["signup.domains"].is_string(), "{body}");
}

#[tokio::test]
async fn a_tenants_admin_reads_and_changes_its_settings_audited() {
    let s = TestServer::start().await;
    let op = operator(&s).await;
    let boss = tenant_with_admin(&s, &op, "acme", None).await;
    let get = || s.as_user(&boss).get("/v1/tenant/settings");
    let (status, body) = get().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "signup": {"mode": "open", "domains": []},
            "mfa": {"policy": "optional", "roles": [], "grace": "7d"},
            "federation": {"auto_link_verified_email": false},
            "branding": {"name": "acme", "logo_url": null, "accent": "#4f46e5"},
            "notices": {"new_device": true, "password_changed": true, "email_changed": true,
                        "factor_changed": true, "recovery_code_used": true},
        })
    );

    let patch = |body: Value| s.as_user(&boss).patch("/v1/tenant/settings", body);
    let (status, body) =
        patch(json!({"signup": {"mode": "domains", "domains": ["Acme.io", "xn--bcher-kva.example"]}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signup"]["mode"], "domains");
    assert_eq!(body["signup"]["domains"], json!(["acme.io", "xn--bcher-kva.example"]));
    assert_eq!(get().await.1, body);

    // Enforced: only listed domains, exactly (no subdomains, no phones).
    assert_eq!(signup_in(&s, "acme", "ann@acme.io").await.0, 201);
    for email in ["eve@evil.io", "eve@sub.acme.io", "eve@acme.io.evil.io"] {
        let (status, body) = signup_in(&s, "acme", email).await;
        assert_error(status, &body, 403, "signup_domain_not_allowed");
    }

    // Omitted fields keep their value; an empty PATCH changes nothing.
    let (status, body) = patch(json!({"signup": {"mode": "closed"}})).await;
    assert_eq!(status, 200);
    assert_eq!(body["signup"]["domains"], json!(["acme.io", "xn--bcher-kva.example"]));
    let (status, _) = patch(json!({})).await;
    assert_eq!(status, 200);
    let (status, body) = signup_in(&s, "acme", "bob@acme.io").await;
    assert_error(status, &body, 403, "signup_disabled");

    // Every change is audited in the tenant's log, without secrets.
    let (status, audit) = s.as_user(&boss).get("/v1/audit?event=settings_updated").await;
    assert_eq!(status, 200);
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    assert_eq!(items[0]["detail"]["signup"]["mode"], "closed");
    assert_eq!(items[0]["detail"]["parts"], json!(["signup"]));
    assert!(items[0]["actor_id"].is_string());

    // Validation: 400 with fields.
    for (bad, field) in [
        (json!({"signup": {"mode": "sometimes"}}), "signup.mode"),
        (json!({"signup": {"domains": ["bücher.example"]}}), "signup.domains"),
        (json!({"signup": {"domains": ["ann@acme.io"]}}), "signup.domains"),
    ] {
        let (status, body) = patch(bad.clone()).await;
        assert_error(status, &body, 400, "validation_failed");
        assert!(body["fields"][field].is_string(), "{bad}: {body}");
    }
    let (status, body) = patch(json!({"unknown": {}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(get().await.1["signup"]["mode"], "closed", "nothing invalid was stored");

    // A user of the tenant without the permissions gets 403.
    let plain = login_in(&s, "acme", "ann@acme.io", PASSWORD).await;
    let (status, body) = s.as_user(access(&plain)).get("/v1/tenant/settings").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = s.get("/v1/tenant/settings").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn settings_are_isolated_between_tenants_and_operators_use_the_header() {
    let s = TestServer::start().await;
    let op = operator(&s).await;
    let a = tenant_with_admin(&s, &op, "alpha", None).await;
    tenant_with_admin(&s, &op, "beta", Some(json!({"mode": "closed"}))).await;
    let closed = json!({"signup": {"mode": "closed"}});
    let open = json!({"signup": {"mode": "open"}});

    // An admin of alpha cannot read or change beta's (or default's) settings,
    // and cannot tell an existing tenant from a missing one.
    for other in ["beta", "default", "nowhere"] {
        let (status, body) = s.as_user(&a).get("/v1/tenant/settings").tenant(other).await;
        assert_error(status, &body, 403, "forbidden");
        let (status, body) = s
            .as_user(&a)
            .patch("/v1/tenant/settings", open.clone())
            .tenant(other)
            .await;
        assert_error(status, &body, 403, "forbidden");
    }
    assert_eq!(signup_in(&s, "beta", "x@example.com").await.0, 403, "beta stays closed");
    // Naming its own tenant is fine.
    let (status, _) = s
        .as_user(&a)
        .patch("/v1/tenant/settings", closed.clone())
        .tenant("alpha")
        .await;
    assert_eq!(status, 200);

    // The operator: own tenant without the header, others with it.
    let (status, body) = s.as_user(&op).get("/v1/tenant/settings").await;
    assert_eq!((status.as_u16(), &body["signup"]["mode"]), (200, &json!("open")));
    let (status, body) = s.as_user(&op).get("/v1/tenant/settings").tenant("beta").await;
    assert_eq!((status.as_u16(), &body["signup"]["mode"]), (200, &json!("closed")));
    let (status, _) = s.as_user(&op).patch("/v1/tenant/settings", open).tenant("beta").await;
    assert_eq!(status, 200);
    assert_eq!(signup_in(&s, "beta", "x@example.com").await.0, 201);
    let (status, body) = s.as_user(&op).get("/v1/tenant/settings").tenant("nowhere").await;
    assert_error(status, &body, 404, "unknown_tenant");
    // Alpha's change did not touch default, and the operator's change of
    // beta is audited in beta's log and the operator's.
    assert_eq!(signup_in(&s, "default", "y@example.com").await.0, 201);
    let (_, audit) = s.as_user(&op).get("/v1/audit?event=settings_updated").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["items"][0]["detail"]["tenant"], "beta");
}

async fn otp(s: &TestServer, tenant: &str, body: Value) -> (StatusCode, Value) {
    s.post("/v1/auth/otp", body).tenant(tenant).await
}

async fn otp_verify(s: &TestServer, tenant: &str, mut body: Value, code: &str) -> (StatusCode, Value) {
    body["code"] = json!(code);
    s.post("/v1/auth/otp/verify", body).tenant(tenant).await
}

#[tokio::test]
async fn one_time_code_sign_up_follows_the_tenants_policy() {
    let s = TestServer::start_with(|c| c.otp.resend_cooldown = std::time::Duration::from_millis(1)).await;
    let op = operator(&s).await;
    let boss = tenant_with_admin(
        &s,
        &op,
        "acme",
        Some(json!({"mode": "domains", "domains": ["acme.io"]})),
    )
    .await;
    let phone = json!({"phone": "+14155550171"});
    let outsider = json!({"email": "eve@evil.io"});
    let insider = json!({"email": "ann@acme.io"});

    // No code goes to an address the policy would not admit (same 202).
    assert_eq!(otp(&s, "acme", phone.clone()).await.0, 202);
    assert!(s.outbox("+14155550171").await.is_empty(), "a phone proves no domain");
    assert_eq!(otp(&s, "acme", outsider.clone()).await.0, 202);
    assert!(s.outbox("eve@evil.io").await.is_empty());
    assert_eq!(otp(&s, "acme", insider.clone()).await.0, 202);
    let code = s.last_code("ann@acme.io").await;
    let (status, body) = otp_verify(&s, "acme", insider, &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "ann@acme.io");

    // A code sent while the tenant was open does not create an account after
    // it closed to phones: the first verify checks the policy again.
    let patch = |b: Value| s.as_user(&boss).patch("/v1/tenant/settings", b);
    assert_eq!(patch(json!({"signup": {"mode": "open"}})).await.0, 200);
    assert_eq!(otp(&s, "acme", phone.clone()).await.0, 202);
    let code = s.last_code("+14155550171").await;
    assert_eq!(patch(json!({"signup": {"mode": "domains"}})).await.0, 200);
    let (status, body) = otp_verify(&s, "acme", phone, &code).await;
    assert_error(status, &body, 403, "signup_domain_not_allowed");
    // Closed: no code to a new address, and a pending code creates nothing.
    assert_eq!(patch(json!({"signup": {"mode": "open"}})).await.0, 200);
    assert_eq!(otp(&s, "acme", outsider.clone()).await.0, 202);
    let code = s.last_code("eve@evil.io").await;
    assert_eq!(patch(json!({"signup": {"mode": "closed"}})).await.0, 200);
    let (status, body) = otp_verify(&s, "acme", outsider, &code).await;
    assert_error(status, &body, 403, "signup_disabled");
    // Existing accounts still sign in with a code.
    assert_eq!(otp(&s, "acme", json!({"email": "ann@acme.io"})).await.0, 202);
    let code = s.last_code("ann@acme.io").await;
    assert_eq!(
        otp_verify(&s, "acme", json!({"email": "ann@acme.io"}), &code).await.0,
        200
    );
}

#[tokio::test]
async fn branding_defaults_to_the_tenant_name_and_is_patched_validated_and_audited() {
    let s = TestServer::start().await;
    let op = operator(&s).await;
    let body = json!({
        "slug": "brand", "name": "Brand & Co",
        "admin": {"email": "boss@brand.io", "password": BOSS_PASSWORD},
    });
    assert_eq!(s.as_user(&op).post("/v1/tenants", body).await.0, 201);
    let boss = login_in(&s, "brand", "boss@brand.io", BOSS_PASSWORD).await;
    let boss = access(&boss).to_string();
    let get = || s.as_user(&boss).get("/v1/tenant/settings");
    let patch = |body: Value| s.as_user(&boss).patch("/v1/tenant/settings", body);
    assert_eq!(
        get().await.1["branding"],
        json!({"name": "Brand & Co", "logo_url": null, "accent": "#4f46e5"})
    );

    let (status, body) = patch(json!({"branding": {
        "name": " Brand ", "logo_url": "https://cdn.brand.io/logo.svg", "accent": "#12AB9f",
    }}))
    .await;
    assert_eq!(status, 200, "{body}");
    let set = json!({"name": "Brand", "logo_url": "https://cdn.brand.io/logo.svg", "accent": "#12ab9f"});
    assert_eq!(body["branding"], set);
    assert_eq!(get().await.1["branding"], set);
    // The other parts are untouched; omitted branding fields keep their value.
    assert_eq!(body["signup"]["mode"], "open");
    let (status, body) = patch(json!({"branding": {"accent": "#000000"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["branding"]["name"], "Brand");
    assert_eq!(body["branding"]["logo_url"], "https://cdn.brand.io/logo.svg");
    // `null` removes the logo; loopback http is accepted for development.
    let (_, body) = patch(json!({"branding": {"logo_url": null}})).await;
    assert_eq!(body["branding"]["logo_url"], Value::Null);
    let (status, body) = patch(json!({"branding": {"logo_url": "http://127.0.0.1:9000/l.png"}})).await;
    assert_eq!(status, 200, "{body}");
    // The same value again writes nothing.
    let (status, _) = patch(json!({"branding": {"accent": "#000000"}})).await;
    assert_eq!(status, 200);

    // Audited with the new values.
    let (_, audit) = s.as_user(&boss).get("/v1/audit?event=settings_updated").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{audit}");
    assert_eq!(items[0]["detail"]["parts"], json!(["branding"]));
    assert_eq!(
        items[0]["detail"]["branding"]["logo_url"],
        "http://127.0.0.1:9000/l.png"
    );
    assert_eq!(items[3]["detail"]["branding"]["accent"], "#12ab9f");

    // Invalid values: 400 naming the field, nothing stored. Markup and
    // script URLs are refused, not stored for the pages to escape.
    for (bad, field) in [
        (json!({"branding": {"name": ""}}), "branding.name"),
        (json!({"branding": {"name": "x".repeat(81)}}), "branding.name"),
        (json!({"branding": {"name": "a\u{0}b"}}), "branding.name"),
        (
            json!({"branding": {"logo_url": "http://cdn.brand.io/l.png"}}),
            "branding.logo_url",
        ),
        (
            json!({"branding": {"logo_url": "javascript:alert(1)"}}),
            "branding.logo_url",
        ),
        (
            json!({"branding": {"logo_url": "data:image/svg+xml,<svg onload=alert(1)>"}}),
            "branding.logo_url",
        ),
        (
            json!({"branding": {"logo_url": "https://u:p@cdn.brand.io/l.png"}}),
            "branding.logo_url",
        ),
        (
            json!({"branding": {"logo_url": "http://localhost.evil.io/l.png"}}),
            "branding.logo_url",
        ),
        (json!({"branding": {"accent": "red"}}), "branding.accent"),
        (json!({"branding": {"accent": "#fff\"><script>"}}), "branding.accent"),
    ] {
        let (status, body) = patch(bad.clone()).await;
        assert_error(status, &body, 400, "validation_failed");
        assert!(body["fields"][field].is_string(), "{bad}: {body}");
    }
    let (status, _) = patch(json!({"branding": {"colour": "#000000"}})).await;
    assert_eq!(status, 400);
    let (status, _) = patch(json!({"branding": {"accent": 5}})).await;
    assert_eq!(status, 400);
    assert_eq!(get().await.1["branding"]["accent"], "#000000");

    // Another tenant's branding is its own; a plain user may not change it.
    let (_, default) = s.as_user(&op).get("/v1/tenant/settings").await;
    assert_eq!(default["branding"]["accent"], "#4f46e5");
    assert_eq!(signup_in(&s, "brand", "ann@brand.io").await.0, 201);
    let plain = login_in(&s, "brand", "ann@brand.io", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&plain))
        .patch("/v1/tenant/settings", json!({"branding": {"name": "Pwned"}}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(get().await.1["branding"]["name"], "Brand");
    // The read path the hosted pages use sees the same.
    let tenant = s.state().store.tenant_by_slug("brand").await.unwrap().unwrap();
    let branding = s.state().settings.branding_of(&tenant).await.unwrap();
    assert_eq!(branding.accent, "#000000");
}

#[tokio::test]
async fn federation_auto_linking_is_off_by_default_patched_and_audited() {
    let s = TestServer::start().await;
    let op = operator(&s).await;
    let boss = tenant_with_admin(&s, &op, "fed", None).await;
    let get = || s.as_user(&boss).get("/v1/tenant/settings");
    let patch = |body: Value| s.as_user(&boss).patch("/v1/tenant/settings", body);
    let tenant = s.state().store.tenant_by_slug("fed").await.unwrap().unwrap();
    let off = json!({"auto_link_verified_email": false});
    let on = json!({"auto_link_verified_email": true});
    assert_eq!(get().await.1["federation"], off);
    assert!(
        !s.state()
            .settings
            .federation_of(&tenant)
            .await
            .unwrap()
            .auto_link_verified_email
    );
    // Turning it off while it is off (the default) writes nothing.
    assert_eq!(patch(json!({"federation": off.clone()})).await.0, 200);

    let (status, body) = patch(json!({"federation": on.clone()})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["federation"], on);
    assert_eq!(body["signup"]["mode"], "open", "the other parts are untouched");
    assert_eq!(get().await.1["federation"], on);
    // The read path the upstream sign-in flows use sees the same.
    let federation = s.state().settings.federation_of(&tenant).await.unwrap();
    assert!(federation.auto_link_verified_email);
    // An empty federation part (or a null field) keeps the value; another
    // part's change leaves it alone.
    assert_eq!(patch(json!({"federation": {}})).await.1["federation"], on);
    let (_, body) = patch(json!({"federation": {"auto_link_verified_email": null}})).await;
    assert_eq!(body["federation"], on);
    assert_eq!(patch(json!({"signup": {"mode": "closed"}})).await.1["federation"], on);
    let (status, body) = patch(json!({"federation": off.clone()})).await;
    assert_eq!((status.as_u16(), &body["federation"]), (200, &off));
    // Another tenant is untouched.
    assert_eq!(s.as_user(&op).get("/v1/tenant/settings").await.1["federation"], off);

    // Audited with the new value: on, the signup change, off (the unchanged
    // writes are not rows).
    let (_, audit) = s.as_user(&boss).get("/v1/audit?event=settings_updated").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{audit}");
    assert_eq!(items[0]["detail"]["parts"], json!(["federation"]));
    assert_eq!(items[0]["detail"]["federation"], off);
    assert_eq!(items[1]["detail"]["parts"], json!(["signup"]));
    assert!(items[1]["detail"].get("federation").is_none(), "{audit}");
    assert_eq!(items[2]["detail"]["federation"], on);
    assert_eq!(items[2]["detail"]["tenant"], "fed");

    // An unknown field or a wrong type is a 400, and nothing is stored.
    for bad in [
        json!({"federation": {"auto_link": true}}),
        json!({"federation": {"auto_link_verified_email": "true"}}),
        json!({"federation": {"auto_link_verified_email": 1}}),
        json!({"federation": true}),
        json!({"federation": {"auto_link_verified_email": true, "trust": "all"}}),
    ] {
        let (status, body) = patch(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request", "{bad}: {body}");
    }
    assert_eq!(get().await.1["federation"], off, "nothing invalid was stored");

    // A user without the permissions may neither read nor change it.
    assert_eq!(patch(json!({"signup": {"mode": "open"}})).await.0, 200);
    assert_eq!(signup_in(&s, "fed", "ann@fed.io").await.0, 201);
    let plain = login_in(&s, "fed", "ann@fed.io", PASSWORD).await;
    let plain = access(&plain);
    let (status, body) = s
        .as_user(plain)
        .patch("/v1/tenant/settings", json!({"federation": on.clone()}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.as_user(plain).get("/v1/tenant/settings").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = s.patch("/v1/tenant/settings", json!({"federation": on.clone()})).await;
    assert_eq!(status, 401);
    assert_eq!(get().await.1["federation"], off);

    // An operator changes it with the header, audited in both logs.
    let (status, body) = s
        .as_user(&op)
        .patch("/v1/tenant/settings", json!({"federation": on.clone()}))
        .tenant("fed")
        .await;
    assert_eq!((status.as_u16(), &body["federation"]), (200, &on));
    assert!(
        s.state()
            .settings
            .federation_of(&tenant)
            .await
            .unwrap()
            .auto_link_verified_email
    );
    let (_, audit) = s.as_user(&op).get("/v1/audit?event=settings_updated").await;
    assert_eq!(audit["items"][0]["detail"]["federation"], on, "{audit}");
}
