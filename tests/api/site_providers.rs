//! The admin site's Providers pages over HTTP, as a browser without
//! JavaScript uses them: adding a provider (the client secret taken in a
//! password field and shown on no page), editing it (an empty secret keeps
//! the stored one), deleting it through a confirmation page, validation
//! errors naming the field on the form (never a 500, nothing created),
//! configured providers read-only, CSRF and non-admin refusals, and a
//! user's linked identities on the user page.

use forge::config::ProviderConfig;
use forge::domain::providers::{NewIdentity, ProviderId};
use forge::secret::Secret;
use forge::store::DEFAULT_TENANT_ID;
use forge::testing::TestServer;

use crate::support::site_client::{Browser, Page};
use crate::support::{make_role, provision};
use crate::{PASSWORD, access};

const SECRET: &str = "upstream-client-secret-value-0123456789";

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
        c.providers.push(ProviderConfig {
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
        });
    })
    .await
}

/// The operator `root@example.com`, signed in to the site; their API token.
async fn signed_in(s: &TestServer) -> (Browser, String) {
    let root = s.admin("root@example.com", PASSWORD).await;
    let mut b = Browser::new(s);
    b.sign_in("root@example.com", PASSWORD).await;
    (b, access(&root).to_string())
}

/// An add form: the given fields over an enabled OpenID Connect provider.
fn form<'a>(fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = vec![
        ("id", "corp"),
        ("kind", "oidc"),
        ("name", "Corp SSO"),
        ("client_id", "forge-at-corp"),
        ("client_secret", SECRET),
        ("issuer", "https://idp.corp.example"),
        ("authorize_url", ""),
        ("token_url", ""),
        ("userinfo_url", ""),
        ("scopes", "openid email"),
        ("team_id", ""),
        ("key_id", ""),
        ("enabled", "1"),
    ];
    for (k, v) in fields {
        out.retain(|(name, _)| name != k);
        if !v.is_empty() || *k != "enabled" {
            out.push((k, v));
        }
    }
    out
}

async fn stored_secret(s: &TestServer, id: &str) -> Option<String> {
    s.state()
        .providers
        .resolve(DEFAULT_TENANT_ID, id)
        .await
        .unwrap()
        .map(|(_, secret)| secret.expose().to_owned())
}

fn assert_no_secret(page: &Page, what: &str) {
    assert!(!page.body.contains(SECRET), "{what}: the secret is shown");
    assert!(!page.body.contains("configured-secret-value"), "{what}");
}

#[tokio::test]
async fn a_provider_is_added_edited_keeping_its_secret_and_deleted_after_confirmation() {
    let s = server().await;
    let (mut b, _) = signed_in(&s).await;
    let list = b.get("/admin/providers").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("href=\"/admin/providers\" aria-current=\"page\">Providers</a>")
    );
    // The configured provider is listed, from config, with no edit link.
    assert!(list.body.contains(">Google</a>") && list.body.contains(">config</span>"));
    assert!(!list.body.contains("/admin/providers/google/delete"));
    let new = b.get("/admin/providers/new").await;
    assert_eq!(new.status, 200);
    assert!(new.body.contains("type=\"password\" name=\"client_secret\""));
    assert!(new.body.contains("<option value=\"apple\">apple</option>"));

    let page = b.act("/admin/providers", &form(&[])).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/admin/providers/corp");
    assert!(b.flash("/admin/providers").await.contains("Corp SSO added"));
    assert_eq!(stored_secret(&s, "corp").await.as_deref(), Some(SECRET));
    let list = b.get("/admin/providers").await;
    assert!(list.body.contains(">Corp SSO</a>") && list.body.contains(">api</span>"));
    assert!(list.body.contains(">enabled</span>"));

    let detail = b.get("/admin/providers/corp").await;
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("id=\"save-provider\""));
    assert!(detail.body.contains("value=\"https://idp.corp.example/\""));
    let public_url = s.state().config.server.public_url.trim_end_matches('/').to_string();
    assert!(
        detail
            .body
            .contains(&format!("{public_url}/v1/auth/providers/corp/callback")),
        "{}",
        detail.body
    );

    // An empty secret keeps the stored one; the other fields change.
    let page = b
        .act(
            "/admin/providers/corp",
            &form(&[("name", "Corp Login"), ("client_secret", ""), ("enabled", "")]),
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(b.flash("/admin/providers").await.contains("Corp Login saved"));
    let p = s
        .state()
        .providers
        .get_as(forge::service::providers::Actor::operator(DEFAULT_TENANT_ID), "corp")
        .await
        .unwrap();
    assert_eq!(p.name, "Corp Login");
    assert!(!p.enabled);
    assert_eq!(stored_secret(&s, "corp").await.as_deref(), Some(SECRET));
    // A new secret replaces it.
    let page = b
        .act(
            "/admin/providers/corp",
            &form(&[("client_secret", "another-secret-1234")]),
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(stored_secret(&s, "corp").await.as_deref(), Some("another-secret-1234"));

    // Delete: the GET only asks.
    let confirm = b.get("/admin/providers/corp/delete").await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete the provider"));
    assert!(stored_secret(&s, "corp").await.is_some());
    let page = b.act("/admin/providers/corp/delete", &[]).await;
    assert_eq!(page.location(), "/admin/providers");
    assert!(b.flash("/admin/providers").await.contains("deleted"));
    assert!(stored_secret(&s, "corp").await.is_none());
    assert_eq!(b.get("/admin/providers/corp").await.status, 404);
}

#[tokio::test]
async fn the_client_secret_is_on_no_page() {
    let s = server().await;
    let (mut b, _) = signed_in(&s).await;
    let page = b.act("/admin/providers", &form(&[])).await;
    assert_eq!(page.status, 303);
    assert_no_secret(&page, "the redirect");
    for path in [
        "/admin/providers",
        "/admin/providers/corp",
        "/admin/providers/corp/delete",
        "/admin/providers/google",
        "/admin",
        "/admin/audit",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.headers["cache-control"], "no-store", "{path}");
        assert_no_secret(&page, path);
    }
    // Nor on a form that comes back with an error.
    let page = b
        .act("/admin/providers", &form(&[("id", "other"), ("issuer", "ftp://x")]))
        .await;
    assert_eq!(page.status, 400);
    assert_no_secret(&page, "the refused form");
    let page = b.act("/admin/providers/corp", &form(&[("issuer", "ftp://x")])).await;
    assert_eq!(page.status, 400);
    assert_no_secret(&page, "the refused edit");
}

#[tokio::test]
async fn invalid_forms_come_back_with_the_field_named() {
    let s = server().await;
    let (mut b, _) = signed_in(&s).await;
    for (fields, field, text) in [
        (vec![("id", "Not A Slug")], "provider-id", "ID:"),
        (vec![("issuer", "http://idp.example.com")], "provider-issuer", "Issuer:"),
        (vec![("kind", "facebook")], "provider-kind", "Kind:"),
        (
            vec![("kind", "oauth2"), ("issuer", "")],
            "provider-authorize-url",
            "Authorize URL:",
        ),
        (vec![("client_secret", "")], "provider-client-secret", "Client secret:"),
        (vec![("kind", "apple"), ("issuer", "")], "provider-team-id", "Team ID:"),
        (vec![("name", "")], "provider-name", "Name:"),
    ] {
        let page = b.act("/admin/providers", &form(&fields)).await;
        assert_eq!(page.status, 400, "{fields:?}: {}", page.body);
        assert!(page.body.contains("id=\"form-error\""), "{fields:?}");
        assert!(page.body.contains(text), "{fields:?}: {}", page.body);
        assert!(
            page.body.contains(&format!("id=\"{field}\" aria-invalid=\"true\"")),
            "{fields:?}: {field}"
        );
    }
    // Nothing was created; the form keeps what was typed.
    let page = b
        .act("/admin/providers", &form(&[("name", "Kept Name"), ("issuer", "nope")]))
        .await;
    assert!(page.body.contains("value=\"Kept Name\""));
    assert!(!b.get("/admin/providers").await.body.contains("/admin/providers/corp\""));
    // Edits too.
    assert_eq!(b.act("/admin/providers", &form(&[])).await.status, 303);
    let page = b
        .act("/admin/providers/corp", &form(&[("token_url", "javascript:alert(1)")]))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Token URL:"));
    assert!(page.body.contains("id=\"provider-token-url\" aria-invalid=\"true\""));
    // A duplicate id is refused without a 500.
    let page = b.act("/admin/providers", &form(&[])).await;
    assert_eq!(page.status, 303);
    assert!(b.flash("/admin/providers").await.contains("exists"));
}

#[tokio::test]
async fn configured_providers_are_read_only() {
    let s = server().await;
    let (mut b, _) = signed_in(&s).await;
    let page = b.get("/admin/providers/google").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("forge.toml"));
    assert!(!page.body.contains("id=\"save-provider\""));
    assert!(page.body.contains("/v1/auth/providers/google/callback"));
    let page = b
        .act("/admin/providers/google", &form(&[("kind", "google"), ("issuer", "")]))
        .await;
    assert_eq!(page.status, 303);
    assert!(b.flash("/admin/providers").await.contains("configuration file"));
    let page = b.act("/admin/providers/google/delete", &[]).await;
    assert_eq!(page.status, 303);
    assert!(stored_secret(&s, "google").await.is_some());
}

#[tokio::test]
async fn provider_posts_without_a_valid_csrf_token_or_by_a_non_admin_are_refused() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    assert_eq!(b.act("/admin/providers", &form(&[])).await.status, 303);
    let real = b.get("/admin").await.csrf();
    let wrong = format!("{}x", &real[..real.len() - 1]);
    let fields = form(&[("id", "pwned"), ("name", "Pwned"), ("client_secret", "")]);
    for path in [
        "/admin/providers",
        "/admin/providers/corp",
        "/admin/providers/corp/delete",
    ] {
        let page = b.post(path, &fields).await;
        assert_eq!(page.status, 403, "{path} without a token");
        for token in [wrong.as_str(), ""] {
            let mut forged = vec![("csrf", token)];
            forged.extend_from_slice(&fields);
            assert_eq!(b.post(path, &forged).await.status, 403, "{path} with {token:?}");
        }
    }
    let list = b.get("/admin/providers").await;
    assert!(list.body.contains(">Corp SSO</a>") && !list.body.contains("Pwned"));
    assert_eq!(stored_secret(&s, "corp").await.as_deref(), Some(SECRET));

    // A user holding providers:* but not the admin role gets no site.
    make_role(&s, &op, "integrator", &["providers:read", "providers:write"]).await;
    provision(&s, &op, "integrator@example.com", &["integrator"]).await;
    let mut integrator = Browser::new(&s);
    assert_eq!(
        integrator
            .sign_in_to("", "integrator@example.com", PASSWORD)
            .await
            .status,
        403
    );
    assert_eq!(integrator.get("/admin/providers").await.status, 303);
    let page = integrator.post("/admin/providers", &form(&[("id", "sneaky")])).await;
    assert_eq!(page.location(), "/admin/login");
    assert!(stored_secret(&s, "sneaky").await.is_none());
}

#[tokio::test]
async fn the_user_page_lists_linked_identities() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    let ann = provision(&s, &op, "ann@example.com", &[]).await;
    let ann_id: uuid::Uuid = ann.parse().unwrap();
    let page = b.get(&format!("/admin/users/{ann}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Linked identities") && page.body.contains("No linked identities."));

    let meta = forge::service::RequestMeta::default();
    s.state()
        .store
        .link_identity(
            NewIdentity {
                id: uuid::Uuid::now_v7(),
                tenant_id: DEFAULT_TENANT_ID,
                user_id: ann_id,
                provider: ProviderId::parse("google").unwrap(),
                subject: "248289761001".into(),
                email: Some("ann@corp.example".into()),
                now: s.state().clock.now(),
            },
            meta.audit(
                DEFAULT_TENANT_ID,
                0,
                forge::domain::AuditEvent::IdentityLinked,
                Some(ann_id),
                None,
            ),
        )
        .await
        .unwrap();
    let page = b.get(&format!("/admin/users/{ann}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("No linked identities."));
    assert!(page.body.contains("<code>google</code>"), "{}", page.body);
    assert!(page.body.contains("<code>248289761001</code>"));
    assert!(page.body.contains("ann@corp.example"));
    assert!(page.body.contains("class=\"identity\""));
}
