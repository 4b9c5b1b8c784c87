//! The admin site's Clients pages over HTTP, as a browser without
//! JavaScript uses them: registering confidential and public clients (the
//! secret shown once, in the answer to the post, and on no other page, in
//! no flash and no redirect), validation errors naming the field on the
//! form (never a 500, nothing created), editing, rotating a secret and
//! deleting through confirmation pages (the client's sessions end), CSRF
//! refusals, tenant isolation and the operator's read-only view of
//! another tenant.

use forge::store::{AuditQuery, DEFAULT_TENANT_ID};
use forge::testing::TestServer;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clients::{client_session, refreshes, works};
use crate::support::site_client::{Browser, Page};
use crate::support::{login_in, make_role, provision};
use crate::{PASSWORD, access};

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
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

/// The text between `start` and the next `end` in `body`.
fn between<'a>(body: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = body.find(start)? + start.len();
    let to = body[from..].find(end)?;
    Some(&body[from..from + to])
}

fn shown_client_id(page: &Page) -> String {
    between(&page.body, "<code id=\"client-id\">", "</code>")
        .unwrap_or_else(|| panic!("no client id: {}", page.body))
        .to_string()
}

fn shown_secret(page: &Page) -> Option<String> {
    between(&page.body, "<code class=\"secret\" id=\"client-secret\">", "</code>").map(str::to_string)
}

/// A registration form: the given fields over a confidential client with
/// the default grants.
fn form<'a>(fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = vec![
        ("name", "Grafana"),
        ("type", "confidential"),
        ("redirect_uris", "https://grafana.example.com/login/generic_oauth"),
        ("post_logout_redirect_uris", ""),
        ("scopes", ""),
        ("grant_authorization_code", "1"),
        ("grant_refresh_token", "1"),
        ("backchannel_logout_uri", ""),
        ("id_token_alg", "EdDSA"),
    ];
    for (k, v) in fields {
        out.retain(|(name, _)| name != k);
        if !v.is_empty() || !k.starts_with("grant_") {
            out.push((k, v));
        }
    }
    out
}

/// Registers a client through the site; its id and secret.
async fn register(b: &mut Browser, fields: &[(&str, &str)]) -> (String, Option<String>) {
    let page = b.act("/admin/clients", &form(fields)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    (shown_client_id(&page), shown_secret(&page))
}

async fn api_client(s: &TestServer, admin: &str, id: &str) -> (u16, Value) {
    let (status, body) = s.as_user(admin).get(&format!("/v1/clients/{id}")).await;
    (status.as_u16(), body)
}

async fn audit_text(s: &TestServer, tenant_id: Uuid) -> String {
    let rows = s
        .state()
        .store
        .list_audit(AuditQuery {
            tenant_id,
            user_id: None,
            event: None,
            before: None,
            limit: 500,
        })
        .await
        .unwrap();
    format!("{rows:?}")
}

fn assert_page_headers(page: &Page, what: &str) {
    assert_eq!(page.headers["cache-control"], "no-store", "{what}");
    assert_eq!(page.headers["x-frame-options"], "DENY", "{what}");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{what}: {csp}"
    );
    assert!(!page.body.contains("<script"), "{what}");
    assert!(!page.body.contains(" style=\""), "{what}: inline style");
}

#[tokio::test]
async fn a_confidential_client_is_registered_and_its_secret_shown_once() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    let list = b.get("/admin/clients").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("href=\"/admin/clients\" aria-current=\"page\">Clients</a>")
    );
    assert!(list.body.contains("No clients yet."));
    let new = b.get("/admin/clients/new").await;
    assert_eq!(new.status, 200);
    assert_page_headers(&new, "new client form");
    assert!(new.body.contains("id=\"create-client\""));

    let page = b
        .act(
            "/admin/clients",
            &form(&[(
                "redirect_uris",
                "https://grafana.example.com/login/generic_oauth\r\n\r\nhttp://127.0.0.1/callback\r\n",
            )]),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_page_headers(&page, "registration result");
    assert!(page.location().is_empty() && page.set_cookies().is_empty());
    let id = shown_client_id(&page);
    let secret = shown_secret(&page).expect("a confidential client's secret");
    assert_eq!(secret.len(), 43);
    assert!(page.body.contains("shown this once"));
    let client = s.state().clients.authenticate(&id, Some(&secret)).await.unwrap();
    assert_eq!(client.name, "Grafana");

    // Stored as typed: both URIs, the default scopes and grants.
    let (status, view) = api_client(&s, &op, &id).await;
    assert_eq!(status, 200);
    assert_eq!(
        view["redirect_uris"],
        json!([
            "https://grafana.example.com/login/generic_oauth",
            "http://127.0.0.1/callback"
        ])
    );
    assert_eq!(
        view["scopes"],
        json!(["openid", "profile", "email", "phone", "offline_access"])
    );
    assert_eq!(view["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(view["first_party"], false);
    assert_eq!(view["id_token_signed_response_alg"], "EdDSA");

    // Never again: not in the list, the detail, the confirmation pages, a
    // flash, or the audit log.
    let list = b.get("/admin/clients").await;
    assert!(list.body.contains(&id) && list.body.contains(">Grafana</a>"));
    assert!(list.body.contains("<td>2</td>"), "two redirect URIs");
    let mut pages = Vec::new();
    for path in [
        "/admin/clients".to_string(),
        format!("/admin/clients/{id}"),
        format!("/admin/clients/{id}/secret"),
        format!("/admin/clients/{id}/delete"),
        "/admin".into(),
        "/admin/audit".into(),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_page_headers(&page, &path);
        pages.push(page);
    }
    for page in &pages {
        assert!(!page.body.contains(&secret));
        assert!(!page.body.contains("class=\"flash"), "no flash after a registration");
    }
    assert!(!audit_text(&s, DEFAULT_TENANT_ID).await.contains(&secret));
    let detail = &pages[1];
    assert!(detail.body.contains("id=\"save-client\""));
    assert!(detail.body.contains("id=\"rotate-secret\""));
    assert!(detail.body.contains("client_secret_basic"));
}

#[tokio::test]
async fn a_public_client_has_no_secret_to_show_or_rotate() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    let (id, secret) = register(
        &mut b,
        &[
            ("name", "CLI"),
            ("type", "public"),
            ("redirect_uris", "com.example.cli:/callback\nhttp://[::1]/cb"),
            ("scopes", "openid  offline_access"),
            ("first_party", "1"),
            ("id_token_alg", "RS256"),
        ],
    )
    .await;
    assert_eq!(secret, None);
    s.state().clients.authenticate(&id, None).await.unwrap();
    let (_, view) = api_client(&s, &op, &id).await;
    assert_eq!(view["type"], "public");
    assert_eq!(view["token_endpoint_auth_method"], "none");
    assert_eq!(view["scopes"], json!(["openid", "offline_access"]));
    assert_eq!(view["first_party"], true);
    assert_eq!(view["id_token_signed_response_alg"], "RS256");
    let detail = b.get(&format!("/admin/clients/{id}")).await;
    assert!(!detail.body.contains("id=\"rotate-secret\""));
    assert!(detail.body.contains("value=\"openid offline_access\""));
    assert!(detail.body.contains("<option value=\"RS256\" selected>"));
    assert_eq!(b.get(&format!("/admin/clients/{id}/secret")).await.status, 400);
    let page = b.act(&format!("/admin/clients/{id}/secret"), &[]).await;
    assert_eq!(page.location(), format!("/admin/clients/{id}"));
    assert!(
        b.flash(&format!("/admin/clients/{id}"))
            .await
            .contains("public client has no secret")
    );
}

#[tokio::test]
async fn an_invalid_registration_comes_back_naming_the_field_and_creates_nothing() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    for (fields, label, marked) in [
        (
            vec![("redirect_uris", "http://app.example.com/cb")],
            "Redirect URIs: &#34;http://app.example.com/cb&#34;",
            "id=\"client-redirect-uris\" aria-invalid=\"true\"",
        ),
        (
            vec![("redirect_uris", "javascript:alert(1)//")],
            "Redirect URIs:",
            "id=\"client-redirect-uris\" aria-invalid=\"true\"",
        ),
        (
            vec![("redirect_uris", "")],
            "Redirect URIs: at least one redirect URI",
            "aria-invalid",
        ),
        (
            vec![("post_logout_redirect_uris", "https://x.example/#frag")],
            "Post-logout redirect URIs:",
            "id=\"client-post-logout-uris\" aria-invalid=\"true\"",
        ),
        (
            vec![("name", "   ")],
            "Name: must be 1 to 100",
            "id=\"client-name\" aria-invalid=\"true\"",
        ),
        (
            vec![("scopes", "openid \"quoted\"")],
            "Scopes:",
            "id=\"client-scopes\" aria-invalid=\"true\"",
        ),
        (
            vec![("type", "public"), ("grant_client_credentials", "1")],
            "Grant types: a public client has no secret",
            "<fieldset aria-invalid=\"true\">",
        ),
        (
            vec![("grant_authorization_code", ""), ("grant_refresh_token", "")],
            "Grant types: at least one grant type",
            "<fieldset aria-invalid=\"true\">",
        ),
        (
            vec![("backchannel_logout_uri", "ftp://x.example/logout")],
            "Back-channel logout URI:",
            "id=\"client-backchannel-uri\" aria-invalid=\"true\"",
        ),
        (vec![("id_token_alg", "HS256")], "ID token algorithm:", "role=\"alert\""),
        (vec![("type", "sometimes")], "Type:", "<fieldset aria-invalid=\"true\">"),
    ] {
        let page = b.act("/admin/clients", &form(&fields)).await;
        assert_eq!(page.status, 400, "{fields:?}: {}", page.body);
        assert!(page.body.contains(label), "{fields:?} lacks {label:?}: {}", page.body);
        assert!(page.body.contains(marked), "{fields:?} lacks {marked:?}");
        assert!(page.body.contains("id=\"create-client\""), "the form again");
        assert!(shown_secret(&page).is_none());
        assert_page_headers(&page, "invalid registration");
    }
    // What was typed comes back.
    let page = b
        .act(
            "/admin/clients",
            &form(&[
                ("name", "Keep <me>"),
                ("redirect_uris", "http://app.example.com/cb"),
                ("scopes", "openid email"),
                ("type", "public"),
            ]),
        )
        .await;
    assert!(page.body.contains("value=\"Keep &#60;me&#62;\""), "{}", page.body);
    assert!(page.body.contains(">http://app.example.com/cb</textarea>"));
    assert!(page.body.contains("value=\"openid email\""));
    assert!(page.body.contains("value=\"public\" id=\"type-public\" checked"));
    // A form that does not even parse is a 4xx page, not a 500.
    let page = b
        .act("/admin/clients", &[("first_party", "1"), ("first_party", "2")])
        .await;
    assert!(page.status.is_client_error(), "{}", page.status);

    assert_eq!(s.as_user(&op).get("/v1/clients").await.1["items"], json!([]));
    let list = b.get("/admin/clients").await;
    assert!(list.body.contains("No clients yet."));
}

#[tokio::test]
async fn an_admin_edits_a_client_and_a_bad_edit_changes_nothing() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    let (id, _) = register(&mut b, &[]).await;
    let path = format!("/admin/clients/{id}");
    let fields = [
        ("name", "Grafana (prod)"),
        (
            "redirect_uris",
            "https://grafana.example.com/cb\nhttps://grafana.example.com/cb2",
        ),
        ("post_logout_redirect_uris", "https://grafana.example.com/bye"),
        ("scopes", "openid email"),
        ("grant_authorization_code", "1"),
        ("grant_client_credentials", "1"),
        ("first_party", "1"),
        ("backchannel_logout_uri", "https://grafana.example.com/backchannel"),
        ("id_token_alg", "RS256"),
    ];
    let page = b.act(&path, &fields).await;
    assert_eq!((page.status.as_u16(), page.location()), (303, path.as_str()));
    assert!(b.flash(&path).await.contains("Client Grafana (prod) saved."));
    let (_, view) = api_client(&s, &op, &id).await;
    assert_eq!(view["name"], "Grafana (prod)");
    assert_eq!(view["redirect_uris"].as_array().unwrap().len(), 2);
    assert_eq!(
        view["post_logout_redirect_uris"],
        json!(["https://grafana.example.com/bye"])
    );
    assert_eq!(view["scopes"], json!(["openid", "email"]));
    assert_eq!(view["grant_types"], json!(["authorization_code", "client_credentials"]));
    assert_eq!(view["first_party"], true);
    assert_eq!(
        view["backchannel_logout_uri"],
        "https://grafana.example.com/backchannel"
    );
    assert_eq!(view["id_token_signed_response_alg"], "RS256");
    assert_eq!(view["type"], "confidential", "the type never changes");
    let detail = b.get(&path).await;
    assert!(detail.body.contains("id=\"grant-client-credentials\" checked"));
    assert!(!detail.body.contains("id=\"grant-refresh-token\" checked"));

    // A custom scheme is for public clients only: the form comes back,
    // as typed, naming the field, and nothing changes.
    let mut bad = fields.to_vec();
    bad[0] = ("name", "Renamed");
    bad[1] = ("redirect_uris", "com.example.app:/cb");
    let page = b.act(&path, &bad).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("Redirect URIs: &#34;com.example.app:/cb&#34;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"Renamed\""));
    assert!(page.body.contains("id=\"save-client\""));
    let (_, after) = api_client(&s, &op, &id).await;
    assert_eq!(after, view);
    // Removing the back-channel URI (blank) and going back to defaults.
    let page = b
        .act(
            &path,
            &[
                ("name", "Grafana"),
                ("redirect_uris", "https://grafana.example.com/cb"),
                ("scopes", ""),
                ("grant_authorization_code", "1"),
                ("grant_refresh_token", "1"),
                ("id_token_alg", "EdDSA"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let (_, view) = api_client(&s, &op, &id).await;
    assert_eq!(view["backchannel_logout_uri"], Value::Null);
    assert_eq!(view["first_party"], false);
    assert_eq!(view["scopes"].as_array().unwrap().len(), 5);
    assert_eq!(view["post_logout_redirect_uris"], json!([]));
    // An unknown or malformed client id is a 404 page.
    for bad in ["nope", "not%20one", "x".repeat(65).as_str()] {
        assert_eq!(b.get(&format!("/admin/clients/{bad}")).await.status, 404, "{bad}");
    }
}

/// `client_credentials` at the token endpoint with HTTP Basic: status
/// and OAuth error code.
async fn client_token(s: &TestServer, id: &str, secret: &str) -> (u16, Option<String>) {
    let resp = s
        .client()
        .post(s.url("/v1/auth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn rotating_shows_the_new_secret_once_and_stops_the_old_one_and_the_sessions() {
    let s = server().await;
    let (mut b, _) = signed_in(&s).await;
    let (id, old) = register(&mut b, &[("grant_client_credentials", "1")]).await;
    let old = old.unwrap();
    assert_eq!(client_token(&s, &id, &old).await, (200, None));
    let ann = s.signup("ann@example.com", PASSWORD).await;
    let (client_access, client_refresh) = client_session(&s, &ann, &id).await;
    assert!(works(&s, &client_access).await);

    let confirm = b.get(&format!("/admin/clients/{id}/secret")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Rotate the secret of Grafana?"));
    assert!(confirm.body.contains("Every session opened through this client ends"));
    assert!(confirm.body.contains(&format!("action=\"/admin/clients/{id}/secret\"")));
    let page = b.act(&format!("/admin/clients/{id}/secret"), &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_page_headers(&page, "rotation result");
    let new = shown_secret(&page).expect("the new secret");
    assert_ne!(new, old);
    assert_eq!(shown_client_id(&page), id);

    let e = s.state().clients.authenticate(&id, Some(&old)).await.unwrap_err();
    assert_eq!((e.status().as_u16(), e.code().as_str()), (401, "invalid_client"));
    s.state().clients.authenticate(&id, Some(&new)).await.unwrap();
    assert_eq!(
        client_token(&s, &id, &old).await,
        (401, Some("invalid_client".into())),
        "the token endpoint refuses the old secret"
    );
    assert_eq!(client_token(&s, &id, &new).await, (200, None));
    assert!(!works(&s, &client_access).await);
    assert!(!refreshes(&s, &client_refresh).await);
    assert!(works(&s, access(&ann)).await, "the user's own session goes on");
    let detail = b.get(&format!("/admin/clients/{id}")).await;
    assert!(!detail.body.contains(&new));
    assert!(!audit_text(&s, DEFAULT_TENANT_ID).await.contains(&new));
}

#[tokio::test]
async fn deleting_asks_first_and_ends_the_clients_sessions() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    let (doomed, _) = register(&mut b, &[("name", "Doomed")]).await;
    let (kept, _) = register(&mut b, &[("name", "Kept")]).await;
    let ann = s.signup("ann@example.com", PASSWORD).await;
    let (doomed_access, doomed_refresh) = client_session(&s, &ann, &doomed).await;
    let (kept_access, _) = client_session(&s, &ann, &kept).await;

    let confirm = b.get(&format!("/admin/clients/{doomed}/delete")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete the client Doomed?"));
    assert!(confirm.body.contains("Every session opened through it ends at once"));
    let page = b.act(&format!("/admin/clients/{doomed}/delete"), &[]).await;
    assert_eq!((page.status.as_u16(), page.location()), (303, "/admin/clients"));
    assert!(
        b.flash("/admin/clients")
            .await
            .contains("Client Doomed deleted; its sessions have ended.")
    );
    assert_eq!(api_client(&s, &op, &doomed).await.0, 404);
    assert_eq!(b.get(&format!("/admin/clients/{doomed}")).await.status, 404);
    assert!(!works(&s, &doomed_access).await);
    assert!(!refreshes(&s, &doomed_refresh).await);
    assert!(works(&s, &kept_access).await);
    let list = b.get("/admin/clients").await;
    assert!(list.body.contains(">Kept</a>") && !list.body.contains(">Doomed</a>"));
    // Deleting it again says it is gone.
    let page = b.act(&format!("/admin/clients/{doomed}/delete"), &[]).await;
    assert_eq!(page.location(), format!("/admin/clients/{doomed}"));
    assert!(b.flash("/admin/clients").await.contains("not found"));
}

#[tokio::test]
async fn client_posts_without_a_valid_csrf_token_are_refused() {
    let s = server().await;
    let (mut b, op) = signed_in(&s).await;
    let (id, secret) = register(&mut b, &[]).await;
    let secret = secret.unwrap();
    let real = b.get("/admin").await.csrf();
    let wrong = format!("{}x", &real[..real.len() - 1]);
    let fields = form(&[("name", "Pwned")]);
    for path in [
        "/admin/clients".to_string(),
        format!("/admin/clients/{id}"),
        format!("/admin/clients/{id}/secret"),
        format!("/admin/clients/{id}/delete"),
    ] {
        let page = b.post(&path, &fields).await;
        assert_eq!(page.status, 403, "{path} without a token");
        assert!(page.body.contains("security token"), "{path}");
        for token in [wrong.as_str(), ""] {
            let mut forged = vec![("csrf", token)];
            forged.extend_from_slice(&fields);
            assert_eq!(b.post(&path, &forged).await.status, 403, "{path} with {token:?}");
        }
    }
    // Nothing changed: one client, its name and secret intact.
    let (_, list) = s.as_user(&op).get("/v1/clients").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["name"], "Grafana");
    s.state().clients.authenticate(&id, Some(&secret)).await.unwrap();
    // Unsigned-in posts go to the sign-in page.
    let mut stranger = Browser::new(&s);
    for path in ["/admin/clients".to_string(), format!("/admin/clients/{id}/delete")] {
        let page = stranger.post(&path, &[("csrf", "x")]).await;
        assert_eq!(page.location(), "/admin/login", "{path}");
    }
    assert_eq!(
        stranger.get("/admin/clients").await.location(),
        "/admin/login?next=%2Fadmin%2Fclients"
    );
}

#[tokio::test]
async fn tenants_see_only_their_own_clients_and_operators_see_others_read_only() {
    let s = server().await;
    let (mut root, op) = signed_in(&s).await;
    let (status, body) = s
        .as_user(&op)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "admin": {"email": "boss@acme.test", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (ours, _) = register(&mut root, &[("name", "Ours")]).await;
    let mut boss = Browser::new(&s);
    let page = boss.sign_in_to("acme", "boss@acme.test", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let (theirs, their_secret) = register(&mut boss, &[("name", "Theirs")]).await;
    let their_secret = their_secret.unwrap();
    let boss_token = access(&login_in(&s, "acme", "boss@acme.test", PASSWORD).await).to_string();

    // Each tenant's admin sees only their own clients.
    let list = boss.get("/admin/clients").await;
    assert!(list.body.contains(">Theirs</a>") && !list.body.contains(&ours));
    let list = root.get("/admin/clients").await;
    assert!(list.body.contains(">Ours</a>") && !list.body.contains(&theirs));
    for path in [
        format!("/admin/clients/{ours}"),
        format!("/admin/clients/{ours}/secret"),
        format!("/admin/clients/{ours}/delete"),
    ] {
        assert_eq!(boss.get(&path).await.status, 404, "{path}");
    }
    for path in [
        format!("/admin/clients/{ours}"),
        format!("/admin/clients/{ours}/secret"),
        format!("/admin/clients/{ours}/delete"),
    ] {
        let page = boss.act(&path, &form(&[("name", "Pwned")])).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(shown_secret(&page).is_none());
        assert!(boss.flash("/admin").await.contains("not found"), "{path}");
    }
    let (status, still) = api_client(&s, &op, &ours).await;
    assert_eq!((status, still["name"].as_str()), (200, Some("Ours")));

    // A user holding clients:* but not the admin role gets no site at all.
    make_role(&s, &op, "integrator", &["clients:read", "clients:write"]).await;
    provision(&s, &op, "integrator@example.com", &["integrator"]).await;
    let mut integrator = Browser::new(&s);
    assert_eq!(
        integrator
            .sign_in_to("", "integrator@example.com", PASSWORD)
            .await
            .status,
        403
    );
    assert_eq!(integrator.get("/admin/clients").await.status, 303);

    // The operator looking at acme sees its clients, read-only.
    root.act("/admin/tenant", &[("slug", "acme")]).await;
    let list = root.get("/admin/clients").await;
    assert!(list.body.contains(">Theirs</a>") && !list.body.contains(">Ours</a>"));
    assert!(!list.body.contains("id=\"new-client\"") && !list.body.contains("Delete…"));
    let detail = root.get(&format!("/admin/clients/{theirs}")).await;
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("read-only"));
    assert!(detail.body.contains("https://grafana.example.com/login/generic_oauth"));
    assert!(!detail.body.contains("id=\"save-client\"") && !detail.body.contains("id=\"rotate-secret\""));
    assert!(!detail.body.contains(&their_secret));
    assert_eq!(root.get("/admin/clients/new").await.status, 403);
    let page = root.act("/admin/clients", &form(&[("name", "Sneaky")])).await;
    assert_eq!(page.status, 303);
    assert!(root.flash("/admin/clients").await.contains("read-only"));
    for path in [
        format!("/admin/clients/{theirs}"),
        format!("/admin/clients/{theirs}/secret"),
        format!("/admin/clients/{theirs}/delete"),
    ] {
        let page = root.act(&path, &form(&[("name", "Pwned")])).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(shown_secret(&page).is_none(), "{path}");
        assert!(root.flash("/admin/clients").await.contains("read-only"), "{path}");
    }
    let (_, list) = s.as_user(&boss_token).get("/v1/clients").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["name"], "Theirs");
    s.state()
        .clients
        .authenticate(&theirs, Some(&their_secret))
        .await
        .unwrap();
}
