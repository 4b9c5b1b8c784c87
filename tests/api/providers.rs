//! Upstream identity providers through HTTP: registration and its
//! validation, the client secret kept sealed and never shown, permissions,
//! tenant isolation, providers from the configuration file (read-only),
//! and administrators reading a user's linked identities.

use forge::config::ProviderConfig;
use forge::domain::providers::{NewIdentity, ProviderId};
use forge::secret::Secret;
use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::support::{login_in, provision, server, user_with};
use crate::{PASSWORD, access, assert_error, parts};

const SECRET: &str = "upstream-client-secret-value-0123456789";

fn corp() -> Value {
    json!({
        "id": "corp",
        "kind": "oidc",
        "name": "Corp SSO",
        "client_id": "forge-at-corp",
        "client_secret": SECRET,
        "issuer": "https://idp.corp.example",
    })
}

async fn register(s: &TestServer, admin: &str, body: Value) -> Value {
    let (status, created) = s.as_user(admin).post("/v1/providers", body).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn assert_no_secret(body: &Value, secret: &str) {
    let text = body.to_string();
    assert!(!text.contains(secret), "the secret leaked: {text}");
}

/// A provider as answered: no secret, and no field that could hold one.
fn assert_no_secret_field(body: &Value, secret: &str) {
    assert_no_secret(body, secret);
    let text = body.to_string();
    assert!(!text.contains("client_secret"), "a secret field: {text}");
}

#[tokio::test]
async fn an_admin_registers_reads_changes_and_deletes_a_provider() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();

    let resp = s.as_user(&admin).post("/v1/providers", corp()).response().await;
    assert_eq!(resp.headers()["location"], "/v1/providers/corp");
    let (status, created) = parts(resp).await;
    assert_eq!(status, 201, "{created}");
    assert_no_secret_field(&created, SECRET);
    assert_eq!(created["id"], "corp");
    assert_eq!(created["kind"], "oidc");
    assert_eq!(created["name"], "Corp SSO");
    assert_eq!(created["client_id"], "forge-at-corp");
    assert_eq!(created["issuer"], "https://idp.corp.example/");
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["source"], "api");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["scopes"], json!([]));
    assert_eq!(created["claims"]["subject"], "sub");

    let (status, list) = s.as_user(&admin).get("/v1/providers").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_no_secret_field(&list, SECRET);
    let (status, one) = s.as_user(&admin).get("/v1/providers/corp").await;
    assert_eq!(status, 200);
    assert_eq!(one, created);

    // The flows get the secret back, unsealed; the store holds it sealed.
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let (provider, secret) = s.state().providers.resolve(tenant.id, "corp").await.unwrap().unwrap();
    assert_eq!(secret.expose(), SECRET);
    assert_eq!(provider.client_id, "forge-at-corp");
    let stored = s
        .state()
        .store
        .provider_secret(tenant.id, &ProviderId::parse("corp").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored
            .sealed_secret
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );

    // A change of some fields; an absent secret is kept.
    let (status, changed) = s
        .as_user(&admin)
        .patch(
            "/v1/providers/corp",
            json!({"name": "Corp", "enabled": false, "scopes": ["openid", "email"]}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Corp");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["scopes"], json!(["openid", "email"]));
    assert_eq!(changed["issuer"], "https://idp.corp.example/");
    let (_, secret) = s.state().providers.resolve(tenant.id, "corp").await.unwrap().unwrap();
    assert_eq!(secret.expose(), SECRET);
    assert!(s.state().providers.enabled(tenant.id).await.unwrap().is_empty());

    // A new secret replaces it.
    let (status, changed) = s
        .as_user(&admin)
        .patch(
            "/v1/providers/corp",
            json!({"client_secret": "the-new-one", "enabled": true}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_no_secret(&changed, "the-new-one");
    let (_, secret) = s.state().providers.resolve(tenant.id, "corp").await.unwrap().unwrap();
    assert_eq!(secret.expose(), "the-new-one");
    let enabled = s.state().providers.enabled(tenant.id).await.unwrap();
    assert_eq!(enabled.len(), 1);

    // The same id again conflicts.
    let (status, err) = s.as_user(&admin).post("/v1/providers", corp()).await;
    assert_error(status, &err, 409, "conflict");

    // The audit log has every change, and never a secret.
    let (status, log) = s.as_user(&admin).get("/v1/audit?limit=200").await;
    assert_eq!(status, 200);
    let events: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("provider_"))
        .collect();
    assert_eq!(events, ["provider_updated", "provider_updated", "provider_created"]);
    let text = log.to_string();
    assert!(!text.contains(SECRET) && !text.contains("the-new-one"), "{text}");

    assert_eq!(s.as_user(&admin).delete("/v1/providers/corp").await.0, 204);
    let (status, err) = s.as_user(&admin).get("/v1/providers/corp").await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.as_user(&admin).delete("/v1/providers/corp").await;
    assert_error(status, &err, 404, "not_found");
    assert!(s.state().providers.resolve(tenant.id, "corp").await.unwrap().is_none());
    let (_, log) = s.as_user(&admin).get("/v1/audit?event=provider_deleted").await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn presets_and_plain_oauth2_register_with_what_they_need() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let github = register(
        &s,
        &admin,
        json!({"id": "github", "kind": "github", "name": "GitHub", "client_id": "Iv1.x", "client_secret": "s"}),
    )
    .await;
    assert!(github["issuer"].is_null());
    let apple = register(
        &s,
        &admin,
        json!({"id": "apple", "kind": "apple", "name": "Apple", "client_id": "com.example.web",
               "client_secret": "-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----",
               "team_id": "TEAM123456", "key_id": "KEY1234567"}),
    )
    .await;
    assert_eq!(apple["team_id"], "TEAM123456");
    assert_eq!(apple["key_id"], "KEY1234567");
    let plain = register(
        &s,
        &admin,
        json!({"id": "legacy", "kind": "oauth2", "name": "Legacy", "client_id": "c", "client_secret": "s",
               "authorize_url": "https://legacy.example/oauth/authorize",
               "token_url": "https://legacy.example/oauth/token",
               "userinfo_url": "https://legacy.example/api/me",
               "claims": {"subject": "id", "email_verified": ""}}),
    )
    .await;
    assert_eq!(plain["claims"]["subject"], "id");
    assert_eq!(plain["claims"]["email"], "email");
    assert!(plain["claims"]["email_verified"].is_null());
    // Patching one half of Apple's key keeps the other.
    let (status, patched) = s
        .as_user(&admin)
        .patch("/v1/providers/apple", json!({"key_id": "KEY7654321"}))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["team_id"].as_str(), patched["key_id"].as_str()),
        (Some("TEAM123456"), Some("KEY7654321"))
    );
    let (_, list) = s.as_user(&admin).get("/v1/providers").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["apple", "github", "legacy"]);
}

#[tokio::test]
async fn invalid_registrations_are_400_naming_the_field() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let with = |patch: Value| {
        let mut body = corp();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases = [
        (json!({"id": "Not A Slug"}), "id"),
        (json!({"kind": "facebook"}), "kind"),
        (json!({"name": "  "}), "name"),
        (json!({"client_id": ""}), "client_id"),
        (json!({"client_secret": " "}), "client_secret"),
        (json!({"issuer": null}), "issuer"),
        (json!({"issuer": "http://idp.corp.example"}), "issuer"),
        (json!({"issuer": "https://user:pw@idp.corp.example"}), "issuer"),
        (json!({"issuer": "not a url"}), "issuer"),
        (json!({"scopes": ["openid", "bad scope"]}), "scopes"),
        (json!({"claims": {"subject": ""}}), "claims"),
        (json!({"team_id": "T1", "key_id": "K1"}), "team_id"),
        (
            json!({"kind": "oauth2", "issuer": null, "authorize_url": "https://x.example/a"}),
            "token_url",
        ),
        (json!({"kind": "apple", "issuer": null}), "team_id"),
    ];
    for (patch, field) in cases {
        let (status, err) = s.as_user(&admin).post("/v1/providers", with(patch.clone())).await;
        assert_error(status, &err, 400, "validation_failed");
        assert!(err["fields"][field].is_string(), "{patch}: {err}");
        assert_no_secret(&err, SECRET);
    }
    // Unknown fields are refused.
    let (status, err) = s
        .as_user(&admin)
        .post("/v1/providers", with(json!({"secret": "x"})))
        .await;
    assert_eq!(status, 400, "{err}");
    // A patch is validated as a whole.
    register(&s, &admin, corp()).await;
    let (status, err) = s
        .as_user(&admin)
        .patch("/v1/providers/corp", json!({"issuer": null}))
        .await;
    assert_error(status, &err, 400, "validation_failed");
    assert!(err["fields"]["issuer"].is_string(), "{err}");
    let (status, err) = s
        .as_user(&admin)
        .patch("/v1/providers/corp", json!({"client_secret": ""}))
        .await;
    assert_error(status, &err, 400, "validation_failed");
    let (_, one) = s.as_user(&admin).get("/v1/providers/corp").await;
    assert_eq!(one["issuer"], "https://idp.corp.example/");
}

#[tokio::test]
async fn providers_need_their_permissions() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    register(&s, &admin, corp()).await;
    let nobody = s.signup("ann@example.com", PASSWORD).await;
    let reader = user_with(&s, &admin, "provider-reader", &["providers:read"]).await;
    let writer = user_with(&s, &admin, "provider-writer", &["providers:read", "providers:write"]).await;
    let (n, r, w) = (access(&nobody), access(&reader), access(&writer));

    for token in [n] {
        let (status, err) = s.as_user(token).get("/v1/providers").await;
        assert_error(status, &err, 403, "forbidden");
        let (status, err) = s.as_user(token).get("/v1/providers/corp").await;
        assert_error(status, &err, 403, "forbidden");
    }
    assert_eq!(s.as_user(r).get("/v1/providers").await.0, 200);
    assert_eq!(s.as_user(r).get("/v1/providers/corp").await.0, 200);
    for token in [n, r] {
        let mut body = corp();
        body["id"] = json!("other");
        let (status, err) = s.as_user(token).post("/v1/providers", body).await;
        assert_error(status, &err, 403, "forbidden");
        let (status, err) = s.as_user(token).patch("/v1/providers/corp", json!({"name": "x"})).await;
        assert_error(status, &err, 403, "forbidden");
        let (status, err) = s.as_user(token).delete("/v1/providers/corp").await;
        assert_error(status, &err, 403, "forbidden");
    }
    // Without a token: 401.
    let (status, _) = s.get("/v1/providers").await;
    assert_eq!(status, 401);
    let (status, _) = s.as_user(w).patch("/v1/providers/corp", json!({"name": "Corp"})).await;
    assert_eq!(status, 200);
    assert_eq!(s.as_user(w).delete("/v1/providers/corp").await.0, 204);
}

#[tokio::test]
async fn another_tenants_provider_is_not_found() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = access(&root).to_string();
    let (status, body) = s
        .as_user(&op)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "admin": {"email": "boss@acme.test", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let boss = login_in(&s, "acme", "boss@acme.test", PASSWORD).await;
    let acme_admin = access(&boss).to_string();
    register(&s, &acme_admin, corp()).await;

    let (_, list) = s.as_user(&op).get("/v1/providers").await;
    assert_eq!(list["items"], json!([]));
    let (status, err) = s.as_user(&op).get("/v1/providers/corp").await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s
        .as_user(&op)
        .patch("/v1/providers/corp", json!({"name": "pwned"}))
        .await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.as_user(&op).delete("/v1/providers/corp").await;
    assert_error(status, &err, 404, "not_found");
    let (status, still) = s.as_user(&acme_admin).get("/v1/providers/corp").await;
    assert_eq!(status, 200);
    assert_eq!(still["name"], "Corp SSO");
    // The same id is free in the default tenant.
    register(&s, &op, corp()).await;
    let default = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let acme = s.state().store.tenant_by_slug("acme").await.unwrap().unwrap();
    assert!(s.state().providers.resolve(default.id, "corp").await.unwrap().is_some());
    let (theirs, _) = s.state().providers.resolve(acme.id, "corp").await.unwrap().unwrap();
    assert_eq!(theirs.tenant_id, acme.id);
}

fn configured() -> ProviderConfig {
    ProviderConfig {
        tenant: "default".into(),
        id: "google".into(),
        kind: "google".into(),
        name: "Google".into(),
        client_id: "123.apps.googleusercontent.com".into(),
        client_secret: Secret::new("configured-secret-value"),
        issuer: None,
        authorize_url: None,
        token_url: None,
        userinfo_url: None,
        scopes: vec![],
        claims: None,
        team_id: None,
        key_id: None,
        enabled: true,
    }
}

#[tokio::test]
async fn providers_from_the_configuration_are_listed_and_read_only() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.providers.push(configured());
    })
    .await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    register(&s, &admin, corp()).await;

    let (status, list) = s.as_user(&admin).get("/v1/providers").await;
    assert_eq!(status, 200);
    assert_no_secret(&list, "configured-secret-value");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["id"].as_str(), items[0]["source"].as_str()),
        (Some("corp"), Some("api"))
    );
    assert_eq!(
        (items[1]["id"].as_str(), items[1]["source"].as_str()),
        (Some("google"), Some("config"))
    );
    assert_eq!(items[1]["has_secret"], true);

    let (status, err) = s
        .as_user(&admin)
        .patch("/v1/providers/google", json!({"name": "G"}))
        .await;
    assert_error(status, &err, 409, "read_only");
    let (status, err) = s.as_user(&admin).delete("/v1/providers/google").await;
    assert_error(status, &err, 409, "read_only");
    let mut again = corp();
    again["id"] = json!("google");
    let (status, err) = s.as_user(&admin).post("/v1/providers", again).await;
    assert_error(status, &err, 409, "conflict");

    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let (google, secret) = s.state().providers.resolve(tenant.id, "google").await.unwrap().unwrap();
    assert!(google.from_config);
    assert_eq!(secret.expose(), "configured-secret-value");
    let enabled = s.state().providers.enabled(tenant.id).await.unwrap();
    assert_eq!(
        enabled.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["corp", "google"]
    );

    // The configuration check prints no secret.
    let shown = s.state().config.redacted_toml();
    assert!(shown.contains("[[providers]]"), "{shown}");
    assert!(!shown.contains("configured-secret-value"), "{shown}");
}

#[test]
fn a_bad_configured_provider_stops_the_start_naming_the_key() {
    let file = r#"
[[providers]]
id = "corp"
kind = "oidc"
name = "Corp"
client_id = "c"
client_secret = "s"
"#;
    let err = forge::config::Config::from_sources(Some(("forge.toml", file)), Vec::new()).unwrap_err();
    assert_eq!(err.key(), Some("providers[0].issuer"), "{err}");
    let file = r#"
[[providers]]
id = "corp"
kind = "oidc"
name = "Corp"
client_id = "c"
client_secret = "top-secret-value"
issuer = "https://idp.example.com"
[[providers]]
id = "corp"
kind = "github"
name = "Again"
client_id = "c"
client_secret = "top-secret-value"
"#;
    let err = forge::config::Config::from_sources(Some(("forge.toml", file)), Vec::new()).unwrap_err();
    assert_eq!(err.key(), Some("providers[1].id"), "{err}");
    assert!(!err.to_string().contains("top-secret-value"));
    let ok = file.replace("id = \"corp\"\nkind = \"github\"", "id = \"github\"\nkind = \"github\"");
    let config = forge::config::Config::from_sources(Some(("forge.toml", &ok)), Vec::new()).unwrap();
    assert_eq!(config.providers.len(), 2);
    assert_eq!(config.providers[0].tenant, "default");
    assert!(config.providers[1].enabled);
    assert!(!config.redacted_toml().contains("top-secret-value"));
}

#[tokio::test]
async fn administrators_read_a_users_linked_identities() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let ann = provision(&s, &admin, "ann@example.com", &[]).await;
    let ann_id: uuid::Uuid = ann.parse().unwrap();
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let meta = forge::service::RequestMeta::default();
    s.state()
        .store
        .link_identity(
            NewIdentity {
                id: uuid::Uuid::now_v7(),
                tenant_id: tenant.id,
                user_id: ann_id,
                provider: ProviderId::parse("corp").unwrap(),
                subject: "248289761001".into(),
                email: Some("ann@corp.example".into()),
                now: s.state().clock.now(),
            },
            meta.audit(
                tenant.id,
                0,
                forge::domain::AuditEvent::IdentityLinked,
                Some(ann_id),
                None,
            ),
        )
        .await
        .unwrap();

    let path = format!("/v1/users/{ann}/identities");
    let (status, list) = s.as_user(&admin).get(&path).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["provider"], "corp");
    assert_eq!(items[0]["subject"], "248289761001");
    assert_eq!(items[0]["email"], "ann@corp.example");
    assert!(items[0]["created_at"].is_string());
    assert!(items[0]["last_used_at"].is_string());

    let reader = user_with(&s, &admin, "user-reader", &["users:read"]).await;
    assert_eq!(s.as_user(access(&reader)).get(&path).await.0, 200);
    let nobody = s.signup("bob@example.com", PASSWORD).await;
    let (status, err) = s.as_user(access(&nobody)).get(&path).await;
    assert_error(status, &err, 403, "forbidden");
    let (status, err) = s
        .as_user(&admin)
        .get(&format!("/v1/users/{}/identities", uuid::Uuid::now_v7()))
        .await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.as_user(&admin).get("/v1/users/not-a-uuid/identities").await;
    assert_error(status, &err, 404, "not_found");
}
