//! The admin site over HTTP, as a browser without JavaScript would use it:
//! sign-in and sign-out, session expiry, every page rendering with its
//! security headers, every action working and audited with the acting
//! administrator, CSRF and Fetch-Metadata refusals (403) on every POST,
//! non-admins refused, tenant admins confined to their tenant, user data
//! escaped, and the users page staying fast with 100,000 users.
//!
//! The client (`support::site_client`) follows no redirects and keeps
//! cookies by hand, so each test sees the exact `Set-Cookie` and `Location`
//! headers.

use std::time::{Duration, Instant};

use forge::store::{AuditQuery, DEFAULT_TENANT_ID, MessageKind, NewOutboxMessage, OutboxChannel};
use forge::testing::TestServer;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::raw_db::RawDb;
use crate::support::site_client::{Browser, Page};
use crate::support::{make_role, provision};
use crate::{PASSWORD, access};

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admin.insecure_cookies = true).await
}

/// A server whose database the test can also write (`support::raw_db`),
/// for rows the API refuses to create (an email with `<script>`, 100,000
/// users at once): a SQLite file in `dir`, or the test's own PostgreSQL
/// schema when the suite runs on PostgreSQL.
async fn server_with_raw_db(dir: &tempfile::TempDir) -> (TestServer, RawDb) {
    let file = format!("sqlite://{}", dir.path().join("forge.db").display());
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
        if c.database.url.starts_with("sqlite:") {
            c.database.url = file;
        }
    })
    .await;
    let db = RawDb::of(&s);
    (s, db)
}

/// Creates the operator `root@example.com` and returns their user id.
async fn operator(s: &TestServer) -> (String, String) {
    let root = s.admin("root@example.com", PASSWORD).await;
    (
        root["user"]["id"].as_str().unwrap().to_string(),
        access(&root).to_string(),
    )
}

fn assert_security_headers(page: &Page, what: &str) {
    let h = &page.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    // No script may run, but the passkey script on the pages that offer
    // passkeys: allowed by this response's nonce, and the page's only one.
    if let Some(scripts) = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src")) {
        let nonce = scripts
            .strip_prefix("script-src 'nonce-")
            .and_then(|n| n.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{what}: scripts only by nonce: {csp}"));
        assert_eq!(page.body.matches("<script").count(), 1, "{what}: one script tag");
        assert!(
            page.body
                .contains(&format!("<script nonce=\"{nonce}\" src=\"/admin/static/passkey.js?v=")),
            "{what}: the script tag carries the nonce"
        );
    } else {
        assert!(!page.body.contains("<script"), "{what}: no script may run");
    }
    assert!(!csp.contains("unsafe-"), "{what}: {csp}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert!(h.contains_key("cache-control"), "{what}");
}

async fn audit_rows(s: &TestServer, tenant_id: Uuid, event: &str) -> Vec<forge::store::AuditEvent> {
    s.state()
        .store
        .list_audit(AuditQuery {
            tenant_id,
            user_id: None,
            event: Some(event.to_string()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap()
}

async fn actor_of_last(s: &TestServer, event: &str) -> Option<String> {
    audit_rows(s, DEFAULT_TENANT_ID, event)
        .await
        .first()
        .and_then(|e| e.actor_id)
        .map(|a| a.to_string())
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it() {
    let s = server().await;
    let (root_id, _) = operator(&s).await;
    let mut b = Browser::new(&s);

    let form = b.get("/admin/login").await;
    assert_security_headers(&form, "login form");
    assert!(form.body.contains("Sign in"));
    let signed_in = b.sign_in("root@example.com", PASSWORD).await;
    let cookie = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("forge_admin="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "insecure_cookies drops Secure: {cookie}");
    // The token is 256 random bits, and the server keeps only its hash.
    let token = b.cookies["forge_admin"].clone();
    assert_eq!(token.len(), 43);
    assert_eq!(
        s.state().cache.get(&format!("admin:session:{token}")).await.unwrap(),
        None
    );

    let dashboard = b.get("/admin").await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("root@example.com"));
    let login_again = b.get("/admin/login").await;
    assert_eq!((login_again.status.as_u16(), login_again.location()), (303, "/admin"));
    assert_eq!(actor_of_last(&s, "admin_login").await, Some(root_id.clone()));

    let out = b.act("/admin/logout", &[]).await;
    assert_eq!((out.status.as_u16(), out.location()), (303, "/admin/login"));
    assert!(
        out.set_cookies()
            .iter()
            .any(|c| c.starts_with("forge_admin=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(actor_of_last(&s, "admin_logout").await, Some(root_id));
    // The old cookie is dead on the server, not only in this browser.
    b.cookies.insert("forge_admin".into(), token);
    let after = b.get("/admin").await;
    assert_eq!((after.status.as_u16(), after.location()), (303, "/admin/login"));

    // Without insecure_cookies the cookie is Secure.
    let secure = TestServer::start().await;
    secure.admin("root@example.com", PASSWORD).await;
    let mut b = Browser::new(&secure);
    let page = b.sign_in("root@example.com", PASSWORD).await;
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("forge_admin=") && c.contains("; Secure"))
    );
}

#[tokio::test]
async fn wrong_passwords_get_one_generic_answer_and_next_stays_on_the_site() {
    let s = server().await;
    operator(&s).await;
    let mut b = Browser::new(&s);
    let wrong = b.sign_in_to("", "root@example.com", "not the password").await;
    let unknown = b.sign_in_to("", "nobody@example.com", PASSWORD).await;
    let no_tenant = b.sign_in_to("nope", "root@example.com", PASSWORD).await;
    for page in [&wrong, &unknown, &no_tenant] {
        assert_eq!(page.status, 401);
        assert!(page.body.contains("Wrong email, password or tenant."));
        assert!(!b.cookies.contains_key("forge_admin"));
    }
    let failures = audit_rows(&s, DEFAULT_TENANT_ID, "login_failed").await;
    assert_eq!(failures.len(), 2, "one row per failure in a known tenant");

    // The sign-in form's own token: missing or wrong is 403.
    let form = b.get("/admin/login").await;
    let good = form.csrf();
    for token in ["", "forged"] {
        let page = b
            .post(
                "/admin/login",
                &[
                    ("csrf", token),
                    ("identifier", "root@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, 403, "token {token:?}");
    }
    // `next` returns to an admin page, never elsewhere.
    let page = b
        .post(
            "/admin/login",
            &[
                ("csrf", good.as_str()),
                ("identifier", "root@example.com"),
                ("password", PASSWORD),
                ("next", "https://evil.example/admin"),
            ],
        )
        .await;
    assert_eq!((page.status.as_u16(), page.location()), (303, "/admin"));
    b.cookies.clear();
    let redirect = b.get("/admin/users?q=ann").await;
    assert_eq!(redirect.location(), "/admin/login?next=%2Fadmin%2Fusers%3Fq%3Dann");
    let form = b.get(redirect.location()).await;
    assert!(form.body.contains("value=\"/admin/users?q=ann\""));
    let token = form.csrf();
    let page = b
        .post(
            "/admin/login",
            &[
                ("csrf", token.as_str()),
                ("identifier", "root@example.com"),
                ("password", PASSWORD),
                ("next", "/admin/users?q=ann"),
            ],
        )
        .await;
    assert_eq!(page.location(), "/admin/users?q=ann");
}

#[tokio::test]
async fn sign_in_is_rate_limited_with_the_api_budget() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.login_failures_per_account = "4/15m".parse().unwrap();
    })
    .await;
    operator(&s).await;
    // Two failures through the API and two through the form share one budget.
    for _ in 0..2 {
        assert_eq!(
            s.post(
                "/v1/auth/login",
                json!({"email": "root@example.com", "password": "wrong password"})
            )
            .await
            .0,
            401
        );
    }
    let mut b = Browser::new(&s);
    for _ in 0..2 {
        assert_eq!(b.sign_in_to("", "root@example.com", "wrong password").await.status, 401);
    }
    let limited = b.sign_in_to("", "root@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.body.contains("Too many attempts"));
}

/// Issue 9, item 8, on the admin site (it shares the password check): the
/// browser that signed in before keeps its `forge_device` cookie and signs
/// in while an attacker holds the account locked; a browser without one
/// gets 429.
#[tokio::test]
async fn the_admins_own_browser_signs_in_while_the_account_is_locked() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.login_failures_per_account = "3/15m".parse().unwrap();
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    operator(&s).await;
    let mut own = Browser::new(&s);
    let page = own.sign_in("root@example.com", PASSWORD).await;
    let device = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("forge_device="))
        .expect("a forge_device cookie");
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Strict"),
        "{device}"
    );
    for i in 0..3 {
        assert_eq!(
            s.post(
                "/v1/auth/login",
                json!({"email": "root@example.com", "password": "wrong password"})
            )
            .header("x-forwarded-for", &format!("2001:db8:{i}::1"))
            .await
            .0,
            401
        );
    }
    let mut stranger = Browser::new(&s);
    assert_eq!(stranger.sign_in_to("", "root@example.com", PASSWORD).await.status, 429);
    // Signed out (the session cookie gone), only the device cookie is kept.
    own.cookies.retain(|name, _| name == "forge_device");
    own.sign_in("root@example.com", PASSWORD).await;
}

#[tokio::test]
async fn every_page_requires_sign_in() {
    let s = server().await;
    let mut b = Browser::new(&s);
    let id = Uuid::now_v7();
    let gets = [
        "/admin".to_string(),
        "/admin/users".into(),
        "/admin/users?q=a".into(),
        format!("/admin/users/{id}"),
        format!("/admin/users/{id}/delete"),
        format!("/admin/users/{id}/factors/reset"),
        "/admin/roles".into(),
        "/admin/roles/admin".into(),
        "/admin/roles/x/delete".into(),
        "/admin/audit".into(),
        "/admin/messages".into(),
        "/admin/keys".into(),
        "/admin/tenants".into(),
        "/admin/tenants/acme/delete".into(),
        "/admin/no-such-page".into(),
    ];
    for path in &gets {
        let page = b.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(
            page.location().starts_with("/admin/login"),
            "{path}: {}",
            page.location()
        );
        assert_security_headers(&page, path);
    }
    for path in post_paths(&id.to_string(), &id.to_string(), "x", "acme") {
        let page = b.post(&path, &[("csrf", "whatever")]).await;
        assert_eq!((page.status.as_u16(), page.location()), (303, "/admin/login"), "{path}");
    }
    // A forged or stale cookie is the same as none, and is cleared.
    b.cookies.insert("forge_admin".into(), "forged".into());
    let page = b.get("/admin").await;
    assert_eq!(page.location(), "/admin/login");
    assert!(!b.cookies.contains_key("forge_admin"));
}

fn post_paths(user: &str, message: &str, role: &str, tenant: &str) -> Vec<String> {
    vec![
        "/admin/users".into(),
        format!("/admin/users/{user}/roles"),
        format!("/admin/users/{user}/roles/remove"),
        format!("/admin/users/{user}/sessions/revoke"),
        format!("/admin/users/{user}/sessions/revoke-all"),
        format!("/admin/users/{user}/disable"),
        format!("/admin/users/{user}/enable"),
        format!("/admin/users/{user}/delete"),
        format!("/admin/users/{user}/factors/reset"),
        "/admin/roles".into(),
        format!("/admin/roles/{role}"),
        format!("/admin/roles/{role}/delete"),
        format!("/admin/messages/{message}/resend"),
        "/admin/keys/rotate".into(),
        "/admin/tenants".into(),
        format!("/admin/tenants/{tenant}/delete"),
        "/admin/tenant".into(),
        "/admin/logout".into(),
    ]
}

#[tokio::test]
async fn non_admins_are_refused_and_lose_access_when_demoted_or_disabled() {
    let s = server().await;
    let (_, op) = operator(&s).await;
    make_role(&s, &op, "support", &["users:read", "users:write", "audit:read"]).await;
    provision(&s, &op, "helper@example.com", &["support"]).await;
    let mut b = Browser::new(&s);
    let page = b.sign_in_to("", "helper@example.com", PASSWORD).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("does not hold the admin role"), "{}", page.body);
    assert!(!b.cookies.contains_key("forge_admin"));
    assert_eq!(audit_rows(&s, DEFAULT_TENANT_ID, "admin_login_denied").await.len(), 1);

    // An admin who loses the role is out on the next click.
    let second = provision(&s, &op, "second@example.com", &["admin"]).await;
    let mut b = Browser::new(&s);
    b.sign_in("second@example.com", PASSWORD).await;
    assert_eq!(b.get("/admin/users").await.status, 200);
    let (status, _) = s.as_user(&op).delete(&format!("/v1/users/{second}/roles/admin")).await;
    assert_eq!(status, 204);
    let page = b.get("/admin/users").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("no longer holds the admin role"));
    assert!(!b.cookies.contains_key("forge_admin"));

    // So is a disabled one.
    let third = provision(&s, &op, "third@example.com", &["admin"]).await;
    let mut b = Browser::new(&s);
    b.sign_in("third@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(&op)
        .patch(&format!("/v1/users/{third}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, 200);
    let page = b.get("/admin").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("disabled"));
    // And a disabled admin cannot sign in at all.
    let page = b.sign_in_to("", "third@example.com", PASSWORD).await;
    assert_eq!(page.status, 403);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_after_the_absolute_limit() {
    let s = server().await;
    operator(&s).await;
    let idle = s.state().config.admin.session_idle.as_secs() as i64;
    let absolute = s.state().config.admin.session_absolute.as_secs() as i64;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    s.clock().advance(idle - 60);
    assert_eq!(b.get("/admin").await.status, 200, "use refreshes the idle clock");
    s.clock().advance(idle - 60);
    assert_eq!(b.get("/admin").await.status, 200);
    s.clock().advance(idle + 1);
    let page = b.get("/admin").await;
    assert_eq!((page.status.as_u16(), page.location()), (303, "/admin/login"));

    b.sign_in("root@example.com", PASSWORD).await;
    let mut elapsed = 0;
    while elapsed + idle / 2 < absolute {
        s.clock().advance(idle / 2);
        elapsed += idle / 2;
        assert_eq!(b.get("/admin").await.status, 200, "at {elapsed} s");
    }
    s.clock().advance(absolute - elapsed);
    let page = b.get("/admin").await;
    assert_eq!(
        page.location(),
        "/admin/login",
        "the absolute limit holds however busy the session"
    );
}

#[tokio::test]
async fn every_page_renders_with_the_security_headers() {
    let s = server().await;
    let (_, op) = operator(&s).await;
    make_role(&s, &op, "support", &["users:read"]).await;
    let user = provision(&s, &op, "ann@example.com", &["support"]).await;
    s.login("ann@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(&op)
        .post("/v1/tenants", json!({"slug": "acme", "name": "Acme"}))
        .await;
    assert_eq!(status, 201);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    for (path, expect) in [
        ("/admin".to_string(), "Sign-ins"),
        ("/admin/users".into(), "ann@example.com"),
        ("/admin/users?q=ann".into(), "ann@example.com"),
        ("/admin/users?q=%2B1415".into(), "No user matches"),
        (format!("/admin/users/{user}"), "Recent activity"),
        (format!("/admin/users/{user}/delete"), "Delete this user?"),
        (
            format!("/admin/users/{user}/factors/reset"),
            "recovery code of ann@example.com will be removed",
        ),
        ("/admin/roles".into(), "support"),
        ("/admin/roles/support".into(), "users:read"),
        ("/admin/roles/admin".into(), "built-in"),
        ("/admin/roles/support/delete".into(), "Delete the role support?"),
        ("/admin/audit".into(), "admin_login"),
        ("/admin/audit?event=login".into(), "ann@example.com"),
        ("/admin/messages".into(), "No messages"),
        ("/admin/keys".into(), "current"),
        ("/admin/tenants".into(), "acme"),
        ("/admin/tenants/acme/delete".into(), "Delete the tenant acme?"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_security_headers(&page, &path);
        assert_eq!(page.headers["cache-control"], "no-store", "{path}");
        assert!(
            page.headers["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        assert!(page.body.contains(expect), "{path} lacks {expect:?}");
        assert!(!page.body.contains("<script"), "{path} has a script");
        assert!(
            !page.body.contains(" style=\""),
            "{path} has an inline style the CSP would block"
        );
    }
    // Errors are pages too, with the same headers.
    for (path, status) in [
        ("/admin/users/not-a-uuid".to_string(), 404),
        (format!("/admin/users/{}", Uuid::now_v7()), 404),
        ("/admin/roles/nope".into(), 404),
        ("/admin/roles/admin/delete".into(), 403),
        ("/admin/tenants/default/delete".into(), 403),
        ("/admin/nothing-here".into(), 404),
        ("/admin/users?cursor=garbage".into(), 200),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, status, "{path}");
        assert_security_headers(&page, &path);
        assert!(page.body.contains("<html"), "{path}");
    }
    // The stylesheet is cacheable for a year under a content-hashed URL.
    let dashboard = b.get("/admin").await;
    let start = dashboard.body.find("/admin/static/admin.css?v=").unwrap();
    let href = &dashboard.body[start..start + dashboard.body[start..].find('"').unwrap()];
    let css = b.get(href).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers["cache-control"], "public, max-age=31536000, immutable");
    assert!(css.body.contains(".btn"));
}

#[tokio::test]
async fn posts_without_or_with_a_wrong_csrf_token_are_refused() {
    let s = server().await;
    let (_, op) = operator(&s).await;
    make_role(&s, &op, "support", &["users:read"]).await;
    let user = provision(&s, &op, "ann@example.com", &["support"]).await;
    let ann = s.login("ann@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(&op)
        .post("/v1/tenants", json!({"slug": "acme", "name": "Acme"}))
        .await;
    assert_eq!(status, 201);
    let keys_before = s.state().store.signing_keys().await.unwrap().len();
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let real = b.get("/admin").await.csrf();
    let wrong = format!("{}x", &real[..real.len() - 1]);
    let session = s
        .state()
        .store
        .list_sessions(DEFAULT_TENANT_ID, user.parse().unwrap(), s.clock().now());
    let session_id = session.await.unwrap()[0].id.to_string();
    for path in post_paths(&user, &Uuid::now_v7().to_string(), "support", "acme") {
        let fields = [
            ("role", "support"),
            ("session", session_id.as_str()),
            ("slug", "acme"),
            ("name", "x"),
            ("permissions", "*"),
            ("force", "1"),
            ("email", "new@example.com"),
        ];
        let mut without = fields.to_vec();
        without.retain(|(k, _)| *k != "csrf");
        let page = b.post(&path, &without).await;
        assert_eq!(page.status, 403, "{path} without a token");
        assert!(page.body.contains("security token"), "{path}");
        assert_security_headers(&page, &path);
        let mut forged = vec![("csrf", wrong.as_str())];
        forged.extend_from_slice(&fields);
        assert_eq!(b.post(&path, &forged).await.status, 403, "{path} with a wrong token");
        let mut empty = vec![("csrf", "")];
        empty.extend_from_slice(&fields);
        assert_eq!(b.post(&path, &empty).await.status, 403, "{path} with an empty token");
    }
    // Nothing changed: still signed in, user, role, session, tenant and keys intact.
    assert_eq!(b.get("/admin").await.status, 200);
    let (status, body) = s.as_user(&op).get(&format!("/v1/users/{user}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["disabled"], false);
    assert_eq!(body["roles"], json!(["support"]));
    assert_eq!(s.as_user(access(&ann)).get("/v1/users/me").await.0, 200);
    assert_eq!(s.as_user(&op).get("/v1/roles/support").await.0, 200);
    assert_eq!(s.as_user(&op).get("/v1/tenants/acme").await.0, 200);
    assert_eq!(s.state().store.signing_keys().await.unwrap().len(), keys_before);
    assert_eq!(s.as_user(&op).get("/v1/users?q=new@").await.1["items"], json!([]));
    assert!(audit_rows(&s, DEFAULT_TENANT_ID, "mfa_reset").await.is_empty());
    // Another session's token is no good either.
    let mut other = Browser::new(&s);
    other.sign_in("root@example.com", PASSWORD).await;
    let page = b
        .post(
            &format!("/admin/users/{user}/disable"),
            &[("csrf", &other.get("/admin").await.csrf())],
        )
        .await;
    assert_eq!(page.status, 403);
}

#[tokio::test]
async fn cross_site_posts_are_refused_by_fetch_metadata() {
    let s = server().await;
    let (_, op) = operator(&s).await;
    let user = provision(&s, &op, "ann@example.com", &[]).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let token = b.get("/admin").await.csrf();
    let path = format!("/admin/users/{user}/disable");
    for site in ["cross-site", "same-site", "garbage"] {
        let req = b
            .request(Method::POST, &path)
            .header("sec-fetch-site", site)
            .form(&[("csrf", token.as_str())]);
        let page = b.send(req).await;
        assert_eq!(page.status, 403, "{site}");
        assert!(page.body.contains("another site"));
        assert_security_headers(&page, site);
    }
    // The sign-in form too.
    let req = b
        .request(Method::POST, "/admin/login")
        .header("sec-fetch-site", "cross-site")
        .form(&[("identifier", "root@example.com"), ("password", PASSWORD)]);
    assert_eq!(b.send(req).await.status, 403);
    assert_eq!(
        s.as_user(&op).get(&format!("/v1/users/{user}")).await.1["disabled"],
        false
    );
    // `none` (typed by the user) and no header at all (older clients) pass.
    for site in [Some("none"), None] {
        let mut req = b.request(Method::POST, &path).form(&[("csrf", token.as_str())]);
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        assert_eq!(b.send(req).await.status, 303, "{site:?}");
    }
    // A GET from another site is a plain navigation and fine.
    let req = b.request(Method::GET, "/admin").header("sec-fetch-site", "cross-site");
    assert_eq!(b.send(req).await.status, 200);
}

#[tokio::test]
async fn user_pages_search_page_and_change_users_with_audit_rows() {
    let s = server().await;
    let (root_id, op) = operator(&s).await;
    make_role(&s, &op, "support", &["users:read"]).await;
    for i in 0..60 {
        provision(&s, &op, &format!("user-{i:02}@example.com"), &[]).await;
    }
    let ann = provision(&s, &op, "ann@example.com", &[]).await;
    let first = s.login("ann@example.com", PASSWORD).await;
    let second = s.login("ann@example.com", PASSWORD).await;
    let third = s.login("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;

    // Keyset paging: 50, then the rest, no overlap.
    let page1 = b.get("/admin/users").await;
    assert_eq!(page1.body.matches("href=\"/admin/users/").count(), 50);
    let start = page1
        .body
        .find("id=\"next-page\"")
        .map(|_| page1.body.find("/admin/users?cursor=").unwrap());
    let start = start.expect("a next page link");
    let href = page1.body[start..start + page1.body[start..].find('"').unwrap()].replace("&amp;", "&");
    let page2 = b.get(&href).await;
    assert_eq!(page2.status, 200);
    assert_eq!(page2.body.matches("href=\"/admin/users/").count(), 12);
    assert!(!page2.body.contains("id=\"next-page\""));
    // Prefix search, case-insensitive.
    let found = b.get("/admin/users?q=USER-5").await;
    assert_eq!(found.body.matches("href=\"/admin/users/").count(), 10);
    assert!(found.body.contains("user-59@example.com"));
    assert!(!found.body.contains("user-49@example.com"));

    let detail = format!("/admin/users/{ann}");
    let page = b.get(&detail).await;
    assert_eq!(page.body.matches("class=\"btn small revoke-session\"").count(), 3);

    // Assign and remove a role.
    let page = b
        .act(&format!("/admin/users/{ann}/roles"), &[("role", "support")])
        .await;
    assert_eq!((page.status.as_u16(), page.location()), (303, detail.as_str()));
    assert!(b.flash(&detail).await.contains("Role support assigned"));
    assert_eq!(
        s.as_user(&op).get(&format!("/v1/users/{ann}")).await.1["roles"],
        json!(["support"])
    );
    assert_eq!(actor_of_last(&s, "role_assigned").await, Some(root_id.clone()));
    b.act(&format!("/admin/users/{ann}/roles/remove"), &[("role", "support")])
        .await;
    assert_eq!(
        s.as_user(&op).get(&format!("/v1/users/{ann}")).await.1["roles"],
        json!([])
    );
    assert_eq!(actor_of_last(&s, "role_removed").await, Some(root_id.clone()));
    let page = b.act(&format!("/admin/users/{ann}/roles"), &[("role", "ghost")]).await;
    assert_eq!(page.status, 303);
    assert!(b.flash(&detail).await.contains("not found"), "unknown role");

    // Revoke one session: its token dies, the others live.
    let sessions = s
        .state()
        .store
        .list_sessions(DEFAULT_TENANT_ID, ann.parse().unwrap(), s.clock().now())
        .await
        .unwrap();
    let claims = crate::support::claims(access(&first));
    let sid = claims["sid"].as_str().unwrap();
    assert!(sessions.iter().any(|x| x.id.to_string() == sid));
    b.act(&format!("/admin/users/{ann}/sessions/revoke"), &[("session", sid)])
        .await;
    assert!(b.flash(&detail).await.contains("Session revoked"));
    assert_eq!(s.as_user(access(&first)).get("/v1/users/me").await.0, 401);
    assert_eq!(s.as_user(access(&second)).get("/v1/users/me").await.0, 200);
    assert_eq!(actor_of_last(&s, "session_revoked").await, Some(root_id.clone()));
    // Then all of them.
    b.act(&format!("/admin/users/{ann}/sessions/revoke-all"), &[]).await;
    assert!(b.flash(&detail).await.contains("Every session"));
    assert_eq!(s.as_user(access(&third)).get("/v1/users/me").await.0, 401);
    assert!(b.get(&detail).await.body.contains("No live sessions."));

    // Disable (tokens die at once), enable.
    let fresh = s.login("ann@example.com", PASSWORD).await;
    b.act(&format!("/admin/users/{ann}/disable"), &[]).await;
    assert!(b.flash(&detail).await.contains("User disabled"));
    assert_eq!(s.as_user(access(&fresh)).get("/v1/users/me").await.0, 401);
    assert_eq!(actor_of_last(&s, "user_disabled").await, Some(root_id.clone()));
    assert!(b.get("/admin/users?q=ann").await.body.contains("disabled"));
    b.act(&format!("/admin/users/{ann}/enable"), &[]).await;
    assert_eq!(actor_of_last(&s, "user_enabled").await, Some(root_id.clone()));
    s.login("ann@example.com", PASSWORD).await;

    // The administrator cannot lock themselves out.
    b.act(&format!("/admin/users/{root_id}/disable"), &[]).await;
    assert!(
        b.flash(&format!("/admin/users/{root_id}"))
            .await
            .contains("your own account")
    );
    b.act(&format!("/admin/users/{root_id}/roles/remove"), &[("role", "admin")])
        .await;
    assert!(b.flash("/admin").await.contains("your own account"));
    b.act(&format!("/admin/users/{root_id}/delete"), &[]).await;
    assert_eq!(b.get("/admin").await.status, 200);

    // Create a user, then delete them through the confirmation page.
    let page = b
        .act(
            "/admin/users",
            &[
                ("email", "New.Person@example.com"),
                ("role", "support"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let created = page.location().trim_start_matches("/admin/users/").to_string();
    assert!(b.flash(page.location()).await.contains("User created"));
    let (_, body) = s.as_user(&op).get(&format!("/v1/users/{created}")).await;
    assert_eq!(body["email"], "new.person@example.com");
    assert_eq!(body["roles"], json!(["support"]));
    assert_eq!(actor_of_last(&s, "user_created").await, Some(root_id.clone()));
    let bad = b.act("/admin/users", &[("email", "not an email")]).await;
    assert_eq!(bad.location(), "/admin/users");
    assert!(b.flash("/admin/users").await.contains("email"));

    let confirm = b.get(&format!("/admin/users/{created}/delete")).await;
    assert!(confirm.body.contains("new.person@example.com will be deleted"));
    let page = b.act(&format!("/admin/users/{created}/delete"), &[]).await;
    assert_eq!(page.location(), "/admin/users");
    assert!(b.flash("/admin/users").await.contains("User deleted"));
    assert_eq!(s.as_user(&op).get(&format!("/v1/users/{created}")).await.0, 404);
    assert_eq!(actor_of_last(&s, "user_deleted").await, Some(root_id));

    // The detail page lists the user's recent audit events.
    let page = b.get(&detail).await;
    for event in [
        "user_enabled",
        "user_disabled",
        "session_revoked",
        "role_removed",
        "role_assigned",
        "login",
    ] {
        assert!(page.body.contains(event), "{event} missing from the user's activity");
    }
}

#[tokio::test]
async fn roles_are_created_edited_and_deleted_but_never_admin() {
    let s = server().await;
    let (root_id, op) = operator(&s).await;
    let ann = provision(&s, &op, "ann@example.com", &[]).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;

    let page = b
        .act(
            "/admin/roles",
            &[
                ("name", "support"),
                ("permissions", "users:read\naudit:read, users:read"),
            ],
        )
        .await;
    assert_eq!((page.status.as_u16(), page.location()), (303, "/admin/roles/support"));
    assert!(b.flash("/admin/roles/support").await.contains("Role support created"));
    let (_, role) = s.as_user(&op).get("/v1/roles/support").await;
    assert_eq!(role["permissions"], json!(["audit:read", "users:read"]));
    assert_eq!(actor_of_last(&s, "role_created").await, Some(root_id.clone()));

    // Edit: takes effect for a holder at once.
    let (status, _) = s
        .as_user(&op)
        .request(reqwest::Method::PUT, &format!("/v1/users/{ann}/roles/support"))
        .await;
    assert_eq!(status, 204);
    let ann_token = s.login("ann@example.com", PASSWORD).await;
    assert_eq!(s.as_user(access(&ann_token)).get("/v1/roles").await.0, 403);
    b.act("/admin/roles/support", &[("permissions", "users:read roles:read")])
        .await;
    assert!(b.flash("/admin/roles/support").await.contains("saved"));
    assert_eq!(s.as_user(access(&ann_token)).get("/v1/roles").await.0, 200);
    assert_eq!(actor_of_last(&s, "role_updated").await, Some(root_id.clone()));

    // Bad input is explained, nothing changes.
    b.act("/admin/roles/support", &[("permissions", "users")]).await;
    assert!(b.flash("/admin/roles/support").await.contains("permissions"));
    b.act("/admin/roles", &[("name", "Bad Name"), ("permissions", "")])
        .await;
    assert!(b.flash("/admin/roles").await.contains("name"));
    b.act("/admin/roles", &[("name", "support"), ("permissions", "")]).await;
    assert!(b.flash("/admin/roles").await.contains("role with that name exists"));

    // admin is built in.
    let page = b.get("/admin/roles/admin").await;
    assert!(!page.body.contains("id=\"save-role\""));
    b.act("/admin/roles/admin", &[("permissions", "users:read")]).await;
    assert!(b.flash("/admin/roles/admin").await.contains("built-in"));
    b.act("/admin/roles/admin/delete", &[]).await;
    assert!(b.flash("/admin/roles/admin").await.contains("built-in"));
    assert_eq!(s.as_user(&op).get("/v1/roles/admin").await.0, 200);

    let page = b.act("/admin/roles/support/delete", &[]).await;
    assert_eq!(page.location(), "/admin/roles");
    assert!(b.flash("/admin/roles").await.contains("Role support deleted"));
    assert_eq!(s.as_user(&op).get("/v1/roles/support").await.0, 404);
    assert_eq!(s.as_user(access(&ann_token)).get("/v1/roles").await.0, 403);
    assert_eq!(actor_of_last(&s, "role_deleted").await, Some(root_id));
}

#[tokio::test]
async fn the_audit_log_filters_by_event_and_user_and_pages() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
    })
    .await;
    let (_, op) = operator(&s).await;
    provision(&s, &op, "ann@example.com", &[]).await;
    for _ in 0..55 {
        s.login("ann@example.com", PASSWORD).await;
    }
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin/audit?event=login").await;
    assert_eq!(page.body.matches(">login</a>").count(), 50);
    assert!(!page.body.contains(">admin_login</a>"));
    let start = page.body.find("/admin/audit?cursor=").expect("an older page");
    let href = page.body[start..start + page.body[start..].find('"').unwrap()].replace("&amp;", "&");
    assert!(href.contains("event=login"));
    let older = b.get(&href).await;
    assert_eq!(
        older.body.matches(">login</a>").count(),
        6,
        "55 API sign-ins and the operator's own"
    );

    let by_user = b.get("/admin/audit?user=ann%40example.com&event=login").await;
    assert_eq!(by_user.body.matches(">login</a>").count(), 50);
    let by_root = b.get("/admin/audit?user=root%40example.com").await;
    assert!(by_root.body.contains(">admin_login</a>"));
    assert!(
        !by_root.body.contains(">user_created</a>"),
        "ann's creation is ann's event"
    );
    for bad in ["event=DROP%20TABLE", "user=nobody%40example.com", "cursor=garbage"] {
        let page = b.get(&format!("/admin/audit?{bad}")).await;
        assert_eq!(page.status, 200, "{bad}");
        assert!(page.body.contains("class=\"flash err\""), "{bad}");
    }
}

fn message(tenant_id: Uuid, to: &str, now: i64) -> NewOutboxMessage {
    NewOutboxMessage {
        tenant_id,
        channel: OutboxChannel::Email,
        kind: MessageKind::PasswordReset,
        recipient: to.into(),
        subject: "Reset your password".into(),
        body: forge::secret::Secret::new("your code is 123456"),
        html: None,
        code: forge::secret::Secret::new("123456"),
        next_attempt_at: now + 3_600,
        created_at: now,
        expires_at: now + 600,
    }
}

#[tokio::test]
async fn messages_list_the_outbox_and_resend_a_failed_one() {
    let s = server().await;
    let (root_id, _) = operator(&s).await;
    let now = s.clock().now();
    let store = &s.state().store;
    store
        .enqueue(message(DEFAULT_TENANT_ID, "pending@example.com", now))
        .await
        .unwrap();
    // Failed for good, but its code is still valid: it can be sent again.
    let failed = store
        .enqueue(message(DEFAULT_TENANT_ID, "failed@example.com", now))
        .await
        .unwrap();
    store.mark_failed(failed, "smtp said no", now).await.unwrap();
    // Expired: failed and erased; nothing to send any more.
    let mut old = message(DEFAULT_TENANT_ID, "expired@example.com", now - 900);
    old.expires_at = now - 1;
    let expired = store.enqueue(old).await.unwrap();
    store.expire(now).await.unwrap();

    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin/messages").await;
    for text in [
        "pending@example.com",
        "expired@example.com",
        "failed@example.com",
        "smtp said no",
        "password_reset",
    ] {
        assert!(page.body.contains(text), "{text}");
    }
    assert!(!page.body.contains("123456"), "codes never reach a page");
    let failed_only = b.get("/admin/messages?status=failed").await;
    assert!(!failed_only.body.contains("pending@example.com"));
    assert_eq!(failed_only.body.matches(">Resend</button>").count(), 1);
    assert!(failed_only.body.contains("code expired"));
    assert_eq!(b.get("/admin/messages?status=bogus").await.status, 400);
    assert!(
        b.get("/admin")
            .await
            .body
            .contains("Failed messages</span><span class=\"value\">2<")
    );

    let page = b.act(&format!("/admin/messages/{failed}/resend"), &[]).await;
    assert_eq!(page.location(), "/admin/messages");
    assert!(b.flash("/admin/messages").await.contains("queued again"));
    let rows = store.list(DEFAULT_TENANT_ID, None, 10, None).await.unwrap();
    let resent = rows.iter().find(|m| m.id == failed).unwrap();
    assert_ne!(resent.status, forge::store::OutboxStatus::Failed);
    assert_eq!(actor_of_last(&s, "message_resent").await, Some(root_id));
    // An expired one cannot be: the page says why.
    b.act(&format!("/admin/messages/{expired}/resend"), &[]).await;
    let flash = b.flash("/admin/messages").await;
    assert!(flash.contains("cannot be sent again"), "{flash}");
    assert_eq!(audit_rows(&s, DEFAULT_TENANT_ID, "message_resent").await.len(), 1);
}

#[tokio::test]
async fn keys_rotate_and_old_tokens_keep_verifying() {
    let s = server().await;
    let (root_id, op) = operator(&s).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let jwks = |s: &TestServer| {
        let url = s.url("/.well-known/jwks.json");
        let client = s.client().clone();
        async move {
            let v: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let before = s.state().store.signing_keys().await.unwrap();
    let of = |algorithm: &str, state: &str| {
        before
            .iter()
            .find(|k| k.state.as_str() == state && k.algorithm == algorithm)
            .unwrap()
            .kid
            .clone()
    };
    let (old_current, old_next) = (of("EdDSA", "current"), of("EdDSA", "next"));
    let (old_rsa_current, old_rsa_next) = (of("RS256", "current"), of("RS256", "next"));
    let page = b.get("/admin/keys").await;
    assert!(page.body.contains(&old_current) && page.body.contains(&old_next));
    assert!(page.body.contains("Rotate anyway"), "the next key is brand new");

    // Too soon after the next key was published: refused unless forced.
    b.act("/admin/keys/rotate", &[]).await;
    assert!(b.flash("/admin/keys").await.contains("wait"));
    assert_eq!(s.state().store.signing_keys().await.unwrap().len(), 4);

    s.clock().advance(forge::service::keys::JWKS_MAX_AGE_SECS as i64 + 1);
    let page = b.act("/admin/keys/rotate", &[]).await;
    assert_eq!(page.location(), "/admin/keys");
    assert!(b.flash("/admin/keys").await.contains("Keys rotated"));
    let after = s.state().store.signing_keys().await.unwrap();
    let state_of = |kid: &str| after.iter().find(|k| k.kid == kid).unwrap().state.as_str();
    assert_eq!(state_of(&old_next), "current");
    assert_eq!(state_of(&old_current), "retired");
    // The RS256 keys rotate with the Ed25519 ones.
    assert_eq!(state_of(&old_rsa_next), "current");
    assert_eq!(state_of(&old_rsa_current), "retired");
    assert_eq!(after.len(), 6);
    assert_eq!(actor_of_last(&s, "key_rotated").await, Some(root_id));
    // The old key stays published; a token it signed still works; new tokens use the new key.
    let published = jwks(&s).await;
    assert_eq!(published.len(), 6);
    assert!(published.contains(&old_current) && published.contains(&old_rsa_current));
    assert_eq!(s.as_user(&op).get("/v1/users/me").await.0, 200);
    let fresh = s.login("root@example.com", PASSWORD).await;
    let header: Value = {
        use base64::Engine;
        let h = access(&fresh).split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    assert_eq!(header["kid"], old_next);
    let page = b.get("/admin/keys").await;
    assert!(page.body.contains("published until"));

    // Forced right away: allowed, audited as forced.
    b.act("/admin/keys/rotate", &[("force", "1")]).await;
    assert!(b.flash("/admin/keys").await.contains("Keys rotated"));
    let forced = audit_rows(&s, DEFAULT_TENANT_ID, "key_rotated").await;
    assert_eq!(forced[0].detail["forced"], true);
    // Once the old key's tokens have expired, it leaves the JWKS.
    s.clock()
        .advance(s.state().config.jwt.access_ttl.as_secs() as i64 + 120);
    s.state().signing_keys.reload().await.unwrap();
    let published = jwks(&s).await;
    assert!(!published.contains(&old_current) && !published.contains(&old_rsa_current));
}

#[tokio::test]
async fn tenants_are_created_shown_read_only_and_deleted_by_operators_only() {
    let s = server().await;
    let (root_id, _) = operator(&s).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b
        .act(
            "/admin/tenants",
            &[
                ("slug", "acme"),
                ("name", "Acme Inc."),
                ("admin_email", "boss@acme.io"),
                ("admin_password", "acme admin passphrase 4 tests"),
            ],
        )
        .await;
    assert_eq!(page.location(), "/admin/tenants");
    assert!(
        b.flash("/admin/tenants")
            .await
            .contains("created with its first administrator")
    );
    assert_eq!(actor_of_last(&s, "tenant_created").await, Some(root_id.clone()));
    b.act("/admin/tenants", &[("slug", "acme")]).await;
    assert!(b.flash("/admin/tenants").await.contains("tenant with that slug exists"));
    b.act("/admin/tenants", &[("slug", "x"), ("admin_email", "a@b.io")])
        .await;
    assert!(b.flash("/admin/tenants").await.contains("both"));

    // Show acme: its users, read-only.
    let page = b.act("/admin/tenant", &[("slug", "acme")]).await;
    assert_eq!(page.location(), "/admin");
    let dashboard = b.get("/admin").await;
    assert!(dashboard.body.contains("read-only"));
    assert!(dashboard.body.contains("Acme Inc."));
    let users = b.get("/admin/users").await;
    assert!(users.body.contains(">boss@acme.io</a>"));
    assert!(!users.body.contains(">root@example.com</a>"));
    assert!(!users.body.contains("New user"));
    let start = users.body.find("href=\"/admin/users/").unwrap() + "href=\"/admin/users/".len();
    let boss = users.body[start..start + 36].to_string();
    let detail = b.get(&format!("/admin/users/{boss}")).await;
    assert_eq!(detail.status, 200);
    assert!(!detail.body.contains("id=\"disable-user\""));
    b.act(&format!("/admin/users/{boss}/disable"), &[]).await;
    assert!(b.flash("/admin").await.contains("read-only"));
    assert_eq!(
        audit_rows(&s, DEFAULT_TENANT_ID, "admin_tenant_switched").await.len(),
        1
    );
    // Back to default.
    b.act("/admin/tenant", &[("slug", "default")]).await;
    assert!(b.get("/admin/users").await.body.contains(">root@example.com</a>"));

    // acme's own admin signs in to acme, sees only acme, and no operator pages.
    let mut boss_browser = Browser::new(&s);
    let page = boss_browser
        .sign_in_to("acme", "boss@acme.io", "acme admin passphrase 4 tests")
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let users = boss_browser.get("/admin/users").await;
    assert!(users.body.contains(">boss@acme.io</a>") && !users.body.contains(">root@example.com</a>"));
    assert!(!users.body.contains("href=\"/admin/keys\""));
    for path in ["/admin/keys", "/admin/tenants", "/admin/tenants/acme/delete"] {
        assert_eq!(boss_browser.get(path).await.status, 403, "{path}");
    }
    for path in [
        "/admin/keys/rotate",
        "/admin/tenant",
        "/admin/tenants",
        "/admin/tenants/acme/delete",
    ] {
        assert_eq!(
            boss_browser.act(path, &[("slug", "default")]).await.status,
            403,
            "{path}"
        );
    }
    assert_eq!(boss_browser.get(&format!("/admin/users/{root_id}")).await.status, 404);
    // The operator's password does not open acme.
    let mut wrong = Browser::new(&s);
    assert_eq!(wrong.sign_in_to("acme", "root@example.com", PASSWORD).await.status, 401);

    // Delete acme through the confirmation page; its admin's session ends.
    let confirm = b.get("/admin/tenants/acme/delete").await;
    assert!(confirm.body.contains("Acme Inc. (acme) will be deleted"));
    let page = b.act("/admin/tenants/acme/delete", &[]).await;
    assert_eq!(page.location(), "/admin/tenants");
    assert!(b.flash("/admin/tenants").await.contains("Tenant acme deleted"));
    assert_eq!(actor_of_last(&s, "tenant_deleted").await, Some(root_id));
    let page = boss_browser.get("/admin").await;
    assert_eq!(page.status, 403);
    b.act("/admin/tenants/default/delete", &[]).await;
    assert!(b.flash("/admin/tenants").await.contains("cannot be deleted"));
}

#[tokio::test]
async fn the_dashboard_counts_and_charts_sign_ins() {
    let s = server().await;
    let (_, op) = operator(&s).await;
    provision(&s, &op, "ann@example.com", &[]).await;
    for _ in 0..3 {
        s.login("ann@example.com", PASSWORD).await;
    }
    for _ in 0..2 {
        assert_eq!(
            s.post(
                "/v1/auth/login",
                json!({"email": "ann@example.com", "password": "wrong password"})
            )
            .await
            .0,
            401
        );
    }
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin").await;
    let stat = |label: &str| -> String {
        let marker = format!("{label}</span><span class=\"value\">");
        let start = page.body.find(&marker).unwrap_or_else(|| panic!("{label}")) + marker.len();
        page.body[start..start + page.body[start..].find('<').unwrap()].to_string()
    };
    assert_eq!(stat("Users"), "2");
    // root's API login (from `operator`) and ann's three.
    assert_eq!(stat("Active sessions"), "4");
    // Those four, plus root's admin-site sign-in.
    assert_eq!(stat("Sign-ins, 24 h"), "5");
    assert_eq!(stat("Failed sign-ins, 24 h"), "2");
    assert_eq!(stat("Pending messages"), "0");
    assert_eq!(page.body.matches("<svg").count(), 2);
    assert_eq!(page.body.matches("<rect class=\"ok\"").count(), 24 + 30);
    assert!(page.body.contains("5 sign-ins, 2 failed"), "the current hour's tooltip");
    assert!(page.body.contains("5 sign-ins and 2 failures in total"));
    // A day later (and signed in again) the hourly chart holds only the new
    // sign-in, and the daily one still counts everything.
    s.clock().advance(86_400);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin").await;
    assert!(
        page.body
            .contains("per hour over the last 24 hours: 1 sign-in and 0 failures in total")
    );
    assert!(
        page.body
            .contains("per day over the last 30 days: 6 sign-ins and 2 failures in total")
    );
}

#[tokio::test]
async fn user_data_is_escaped_on_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let (s, db) = server_with_raw_db(&dir).await;
    let (_, op) = operator(&s).await;
    let evil = "<script>alert(1)</script>@x.io";
    let id = Uuid::now_v7();
    let now = s.clock().now();
    // The email parser refuses this address, so it goes straight into the table.
    let metadata = json!({"note": "<script>alert(2)</script>", "\"><img src=x onerror=alert(3)>": 1});
    db.execute(
        "INSERT INTO users (id, tenant_id, email, phone, metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $5)",
        vec![
            id.into(),
            DEFAULT_TENANT_ID.into(),
            evil.into(),
            metadata.to_string().into(),
            now.into(),
        ],
    )
    .await;
    db.execute(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at, user_agent, ip) \
         VALUES ($1, $2, $3, $4, $4, $5, '<script>alert(4)</script>', '<b>ip</b>')",
        vec![
            Uuid::now_v7().into(),
            DEFAULT_TENANT_ID.into(),
            id.into(),
            now.into(),
            (now + 3600).into(),
        ],
    )
    .await;
    // An audit row about them with a hostile user agent and detail, as a client can send.
    assert_eq!(
        s.post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": "<script>alert(6)</script>"})
        )
        .header("user-agent", "<script>alert(5)</script>")
        .await
        .0,
        401
    );
    provision(&s, &op, "ann@example.com", &[]).await;

    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    for path in [
        "/admin".to_string(),
        "/admin/users".into(),
        "/admin/users?q=%3Cscript%3E".into(),
        "/admin/users?q=%22%3E%3Cscript%3Ealert(7)%3C%2Fscript%3E".into(),
        format!("/admin/users/{id}"),
        format!("/admin/users/{id}/delete"),
        "/admin/audit".into(),
        "/admin/audit?event=%3Cscript%3E".into(),
        "/admin/audit?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40x.io".into(),
    ] {
        let page = b.get(&path).await;
        assert!(page.status.is_success(), "{path}: {}", page.status);
        assert!(!page.body.contains("<script"), "{path} echoes a raw <script>");
        assert!(!page.body.contains("<img"), "{path} echoes a raw <img>");
        assert!(!page.body.contains("<b>ip"), "{path} echoes raw markup");
    }
    let list = b.get("/admin/users?q=%3Cscript%3E").await;
    // askama writes `<` and `>` as numeric character references.
    let escaped = |raw: &str| raw.replace('<', "&#60;").replace('>', "&#62;");
    assert!(list.body.contains(&escaped(evil)), "{}", list.body);
    let detail = b.get(&format!("/admin/users/{id}")).await;
    assert!(detail.body.contains(&escaped("<script>alert(4)</script>")));
    assert!(detail.body.contains(&escaped("<script>alert(2)</script>")));
    let audit = b.get("/admin/audit").await;
    assert!(audit.body.contains(&escaped("<script>alert(5)</script>")));
    assert!(
        !audit.body.contains("alert(6)"),
        "a password never reaches the audit log"
    );
    // The login form echoes what was typed, escaped.
    let mut other = Browser::new(&s);
    let page = other
        .sign_in_to("\"><script>alert(8)</script>", "\"><script>x</script>", "pw")
        .await;
    assert_eq!(page.status, 400);
    assert!(!page.body.contains("<script>"));
    assert_eq!(
        page.body.matches("<script").count(),
        1,
        "only the passkey script's own tag"
    );
}

/// The users page and a search with 100,000 users: prints the medians of 20
/// renders over HTTP (run with `--nocapture` to see them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_page_and_search_stay_fast_with_100k_users() {
    let dir = tempfile::tempdir().unwrap();
    let (s, db) = server_with_raw_db(&dir).await;
    operator(&s).await;
    let inserted = Instant::now();
    // 1,000 rows a statement, in one transaction: the same few round trips
    // on both backends.
    const ROWS: u32 = 1_000;
    let values: Vec<String> = (0..ROWS)
        .map(|r| {
            let p = |i: u32| format!("${}", r * 5 + i);
            format!("({}, {}, {}, {}, '{{}}', {}, {})", p(1), p(2), p(3), p(4), p(5), p(5))
        })
        .collect();
    let sql = format!(
        "INSERT INTO users (id, tenant_id, email, phone, metadata, created_at, updated_at) VALUES {}",
        values.join(", ")
    );
    let chunks = (0..100_000u32 / ROWS)
        .map(|chunk| {
            (chunk * ROWS..(chunk + 1) * ROWS)
                .flat_map(|i| {
                    vec![
                        Uuid::now_v7().into(),
                        DEFAULT_TENANT_ID.into(),
                        format!("user-{i}@example.com").into(),
                        format!("+1415{:07}", i).into(),
                        (1_700_000_000 + i64::from(i)).into(),
                    ]
                })
                .collect()
        })
        .collect();
    db.execute_many(&sql, chunks).await;
    eprintln!("inserted 100,000 users in {:?} on {}", inserted.elapsed(), db.backend());
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let mut medians = Vec::new();
    for path in ["/admin/users", "/admin/users?q=user-5"] {
        // Warm up the connection and the statement caches.
        let page = b.get(path).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.body.matches("href=\"/admin/users/").count(), 50, "{path}");
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let page = b.get(path).await;
            times.push(started.elapsed());
            assert_eq!(page.status, 200);
        }
        times.sort();
        let median = (times[9] + times[10]) / 2;
        eprintln!(
            "{path}: median {median:?} over 20 renders (min {:?}, max {:?})",
            times[0], times[19]
        );
        medians.push(median);
    }
    // A generous bound: the target is 100 ms on a release build.
    for m in medians {
        assert!(m < Duration::from_millis(1_000), "median {m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_keys_list_and_rotate_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = server_with_raw_db(&dir).await;
    // The command line opens the server's database: its SQLite file or its
    // PostgreSQL schema.
    let config = dir.path().join("forge.toml");
    let url = &s.state().config.database.url;
    std::fs::write(&config, format!("[database]\nurl = \"{url}\"\n")).unwrap();
    let forge = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_forge"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("FORGE_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let keys = s.state().store.signing_keys().await.unwrap();
    let of = |algorithm: &str, state: &str| {
        keys.iter()
            .find(|k| k.state.as_str() == state && k.algorithm == algorithm)
            .unwrap()
            .kid
            .clone()
    };
    let (current, next) = (of("EdDSA", "current"), of("EdDSA", "next"));
    let rsa_next = of("RS256", "next");

    let (code, out, _) = forge(&["keys", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("KID"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&current) && l.contains(" current ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&next) && l.contains(" next ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&rsa_next) && l.contains(" next ") && l.contains(" RS256 ")),
        "{out}"
    );

    // The next key is brand new (by the wall clock): refused without --force.
    let (code, _, err) = forge(&["keys", "rotate"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(s.state().store.signing_keys().await.unwrap().len(), 4);

    let (code, out, err) = forge(&["keys", "rotate", "--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("signing keys rotated"));
    assert!(
        out.lines().any(|l| l.starts_with(&next) && l.contains(" current ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&current) && l.contains(" retired ")),
        "{out}"
    );
    let rows = audit_rows(&s, DEFAULT_TENANT_ID, "key_rotated").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].detail["via"], "cli");
    assert_eq!(rows[0].actor_id, None);
    // The running server signs with the new key after its next reload.
    operator(&s).await;
    s.state().signing_keys.reload().await.unwrap();
    let token = s.login("root@example.com", PASSWORD).await;
    assert_eq!(s.state().keys.current().current_kid(), next);
    assert_eq!(s.as_user(access(&token)).get("/v1/users/me").await.0, 200);
}

// ---- every session dies together (credential epoch) ----

const NEW_PASSWORD: &str = "another horse battery staple";

/// An administrator `second@example.com` (besides the operator) signed in to
/// the admin site; returns the server, the operator's token, the second
/// admin's id and browser.
async fn second_admin_in_the_site() -> (TestServer, String, String, Browser) {
    let s = server().await;
    let (_, op) = operator(&s).await;
    let id = provision(&s, &op, "second@example.com", &["admin"]).await;
    let mut b = Browser::new(&s);
    b.sign_in("second@example.com", PASSWORD).await;
    assert_eq!(b.get("/admin/users").await.status, 200);
    (s, op, id, b)
}

/// The admin cookie obtained before the event no longer opens a page: the
/// browser is sent to the sign-in page (or refused) and the cookie cleared.
/// The cookie is then replayed by hand, to prove the server forgot it.
async fn assert_admin_session_ended(b: &mut Browser, cookie: &str, what: &str) {
    let page = b.get("/admin/users").await;
    assert_ne!(page.status, 200, "{what}: the old admin cookie still works");
    assert!(
        page.set_cookies().iter().any(|c| c.starts_with("forge_admin=;")),
        "{what}: the cookie is cleared"
    );
    b.cookies.insert("forge_admin".into(), cookie.to_string());
    let page = b.get("/admin").await;
    assert_eq!(
        (page.status.as_u16(), page.location()),
        (303, "/admin/login"),
        "{what}: replaying the old cookie"
    );
}

#[tokio::test]
async fn a_password_reset_ends_admin_sessions() {
    let (s, _, _, mut b) = second_admin_in_the_site().await;
    let cookie = b.cookies["forge_admin"].clone();
    assert_eq!(
        s.post("/v1/auth/password/forgot", json!({"email": "second@example.com"}))
            .await
            .0,
        202
    );
    let code = s.last_code("second@example.com").await;
    let reset = s
        .post(
            "/v1/auth/password/reset",
            json!({"email": "second@example.com", "code": code, "new_password": NEW_PASSWORD}),
        )
        .response()
        .await;
    assert_eq!(reset.status(), 204);
    assert_admin_session_ended(&mut b, &cookie, "after a password reset").await;
    // A new sign-in with the new password works.
    b.sign_in("second@example.com", NEW_PASSWORD).await;
    assert_eq!(b.get("/admin/users").await.status, 200);
}

#[tokio::test]
async fn signing_out_everywhere_ends_admin_sessions_but_one_session_does_not() {
    let (s, op, id, mut b) = second_admin_in_the_site().await;
    let cookie = b.cookies["forge_admin"].clone();
    // Signing out one API session leaves the admin site alone.
    let one = s.login("second@example.com", PASSWORD).await;
    let (status, _) = s.as_user(access(&one)).post("/v1/auth/logout", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(b.get("/admin/users").await.status, 200);

    // The user's own "sign out everywhere".
    let all = s.login("second@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(access(&all))
        .post("/v1/auth/logout", json!({"scope": "all"}))
        .await;
    assert_eq!(status, 204);
    assert_admin_session_ended(&mut b, &cookie, "after logout scope=all").await;

    // An administrator's "end all sessions" of the user.
    b.sign_in("second@example.com", PASSWORD).await;
    let cookie = b.cookies["forge_admin"].clone();
    let (status, _) = s.as_user(&op).delete(&format!("/v1/users/{id}/sessions")).await;
    assert_eq!(status, 204);
    assert_admin_session_ended(&mut b, &cookie, "after DELETE /v1/users/{id}/sessions").await;
}

#[tokio::test]
async fn a_password_change_ends_admin_sessions() {
    let (s, _, _, mut b) = second_admin_in_the_site().await;
    let cookie = b.cookies["forge_admin"].clone();
    let api = s.login("second@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&api))
        .post(
            "/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_admin_session_ended(&mut b, &cookie, "after a password change").await;
}

#[tokio::test]
async fn a_disabled_admin_stays_out_after_being_enabled_again() {
    let (s, op, id, mut b) = second_admin_in_the_site().await;
    let cookie = b.cookies["forge_admin"].clone();
    let path = format!("/v1/users/{id}");
    let (status, _) = s.as_user(&op).patch(&path, json!({"disabled": true})).await;
    assert_eq!(status, 200);
    let (status, _) = s.as_user(&op).patch(&path, json!({"disabled": false})).await;
    assert_eq!(status, 200);
    // Without the epoch, the cookie would work again for the rest of its 12 h.
    assert_admin_session_ended(&mut b, &cookie, "after disable and enable").await;
}

#[tokio::test]
async fn a_deleted_admin_loses_the_admin_site() {
    let (s, op, id, mut b) = second_admin_in_the_site().await;
    let cookie = b.cookies["forge_admin"].clone();
    let (status, _) = s.as_user(&op).delete(&format!("/v1/users/{id}")).await;
    assert_eq!(status, 204);
    assert_admin_session_ended(&mut b, &cookie, "after delete").await;
}

// ---- tenant settings ----

async fn signup_status(s: &TestServer, tenant: &str, email: &str) -> u16 {
    s.post("/v1/auth/signup", json!({"email": email, "password": PASSWORD}))
        .tenant(tenant)
        .await
        .0
        .as_u16()
}

#[tokio::test]
async fn tenant_admins_set_the_signup_policy_and_operators_choose_it_at_creation() {
    let s = server().await;
    let (root_id, _) = operator(&s).await;
    let mut op = Browser::new(&s);
    op.sign_in("root@example.com", PASSWORD).await;
    // The operator creates acme closed to sign-up from the tenants form.
    let page = op
        .act(
            "/admin/tenants",
            &[
                ("slug", "acme"),
                ("name", "Acme"),
                ("admin_email", "boss@acme.io"),
                ("admin_password", "acme admin passphrase 4 tests"),
                ("signup_mode", "closed"),
                ("signup_domains", ""),
            ],
        )
        .await;
    assert_eq!(page.location(), "/admin/tenants");
    assert!(op.flash("/admin/tenants").await.contains("created"));
    assert_eq!(signup_status(&s, "acme", "eve@example.com").await, 403);
    // An invalid policy is refused with the reason, and creates nothing.
    op.act(
        "/admin/tenants",
        &[
            ("slug", "bad"),
            ("signup_mode", "domains"),
            ("signup_domains", "ann@acme.io"),
        ],
    )
    .await;
    assert!(op.flash("/admin/tenants").await.contains("domain"));
    assert_eq!(signup_status(&s, "bad", "eve@example.com").await, 404);

    // Acme's admin sees the policy and changes it (CSRF-protected, audited).
    let mut boss = Browser::new(&s);
    let page = boss
        .sign_in_to("acme", "boss@acme.io", "acme admin passphrase 4 tests")
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let settings = boss.get("/admin/settings").await;
    assert_eq!(settings.status, 200);
    assert_security_headers(&settings, "settings page");
    assert!(settings.body.contains("value=\"closed\" checked"), "{}", settings.body);
    let refused = boss.post("/admin/settings", &[("mode", "open"), ("domains", "")]).await;
    assert_eq!(refused.status, 403, "no CSRF token");
    let page = boss
        .act(
            "/admin/settings",
            &[("mode", "domains"), ("domains", "Acme.io\nexample.org")],
        )
        .await;
    assert_eq!(page.location(), "/admin/settings");
    assert!(boss.flash("/admin/settings").await.contains("domains"));
    let settings = boss.get("/admin/settings").await;
    assert!(settings.body.contains("value=\"domains\" checked"));
    assert!(settings.body.contains("acme.io\nexample.org"));
    assert_eq!(signup_status(&s, "acme", "ann@acme.io").await, 201);
    assert_eq!(signup_status(&s, "acme", "eve@evil.io").await, 403);
    let acme_id = s.state().store.tenant_by_slug("acme").await.unwrap().unwrap().id;
    let rows = audit_rows(&s, acme_id, "settings_updated").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].detail["signup"]["mode"], "domains");
    // A bad domain is refused and changes nothing.
    boss.act("/admin/settings", &[("mode", "domains"), ("domains", "bücher.example")])
        .await;
    assert!(boss.flash("/admin/settings").await.contains("punycode"));
    assert_eq!(audit_rows(&s, acme_id, "settings_updated").await.len(), 1);

    // The operator looking at acme sees its policy read-only.
    op.act("/admin/tenant", &[("slug", "acme")]).await;
    let shown = op.get("/admin/settings").await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("id=\"signup-mode\">domains<"), "{}", shown.body);
    assert!(!shown.body.contains("id=\"save-signup\""));
    op.act("/admin/settings", &[("mode", "open"), ("domains", "")]).await;
    assert!(op.flash("/admin/settings").await.contains("read-only"));
    assert_eq!(signup_status(&s, "acme", "eve@evil.io").await, 403);
    // Back home, the operator's own tenant follows the server default.
    op.act("/admin/tenant", &[("slug", "default")]).await;
    assert!(op.get("/admin/settings").await.body.contains("value=\"open\" checked"));
    assert_eq!(actor_of_last(&s, "tenant_created").await, Some(root_id));
}

#[tokio::test]
async fn automatic_linking_of_upstream_sign_ins_is_a_checkbox_on_the_settings_page() {
    let s = server().await;
    operator(&s).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin/settings").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"save-federation\""), "{}", page.body);
    assert!(
        page.body
            .contains("Link upstream sign-ins to an existing account when the provider says the email is verified"),
        "{}",
        page.body
    );
    assert!(page.body.contains("trusts each provider"), "{}", page.body);
    assert!(!page.body.contains("id=\"auto-link\" checked"), "off by default");
    let refused = b
        .post("/admin/settings/federation", &[("auto_link_verified_email", "1")])
        .await;
    assert_eq!(refused.status, 403, "no CSRF token");
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let auto_link = || async {
        s.state()
            .settings
            .federation_of(&tenant)
            .await
            .unwrap()
            .auto_link_verified_email
    };
    assert!(!auto_link().await);

    // Ticked: on, audited; the page shows it checked.
    let page = b
        .act("/admin/settings/federation", &[("auto_link_verified_email", "1")])
        .await;
    assert_eq!(page.location(), "/admin/settings");
    assert!(b.flash("/admin/settings").await.contains("now link"));
    assert!(auto_link().await);
    assert!(b.get("/admin/settings").await.body.contains("id=\"auto-link\" checked"));
    let rows = audit_rows(&s, DEFAULT_TENANT_ID, "settings_updated").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].detail["parts"], json!(["federation"]));
    assert_eq!(rows[0].detail["federation"]["auto_link_verified_email"], true);

    // Unticked (the browser sends no field): off again.
    b.act("/admin/settings/federation", &[]).await;
    assert!(b.flash("/admin/settings").await.contains("no longer"));
    assert!(!auto_link().await);
    assert!(!b.get("/admin/settings").await.body.contains("id=\"auto-link\" checked"));
    let rows = audit_rows(&s, DEFAULT_TENANT_ID, "settings_updated").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].detail["federation"]["auto_link_verified_email"], false);
}

#[tokio::test]
async fn security_notices_are_switched_on_the_settings_page() {
    let s = server().await;
    operator(&s).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin/settings").await;
    assert!(page.body.contains("id=\"notice-new-device\" checked"), "on by default");
    // Every box but the new-device one ticked.
    let page = b
        .act(
            "/admin/settings/notices",
            &[
                ("password_changed", "1"),
                ("email_changed", "1"),
                ("factor_changed", "1"),
                ("recovery_code_used", "1"),
            ],
        )
        .await;
    assert_eq!(page.location(), "/admin/settings");
    assert!(b.flash("/admin/settings").await.contains("Security notices saved"));
    let notices = s.state().settings.notices_of(DEFAULT_TENANT_ID).await.unwrap();
    assert!(!notices.new_device && notices.password_changed && notices.recovery_code_used);
    assert!(
        !b.get("/admin/settings")
            .await
            .body
            .contains("id=\"notice-new-device\" checked")
    );
    let rows = audit_rows(&s, DEFAULT_TENANT_ID, "settings_updated").await;
    assert_eq!(rows[0].detail["parts"], json!(["notices"]));
    assert_eq!(rows[0].detail["notices"]["new_device"], false);
}

#[tokio::test]
async fn branding_is_edited_on_the_settings_page_escaped_and_validated() {
    let s = server().await;
    operator(&s).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let page = b.get("/admin/settings").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"save-branding\""), "{}", page.body);
    assert!(page.body.contains("value=\"#4f46e5\""), "{}", page.body);
    let refused = b
        .post("/admin/settings/branding", &[("name", "X"), ("accent", "#000000")])
        .await;
    assert_eq!(refused.status, 403, "no CSRF token");

    let page = b
        .act(
            "/admin/settings/branding",
            &[
                ("name", "<b>Acme</b>"),
                ("logo_url", "https://cdn.acme.io/logo.svg"),
                ("accent", "#12ab9f"),
            ],
        )
        .await;
    assert_eq!(page.location(), "/admin/settings");
    assert!(b.flash("/admin/settings").await.contains("branding is saved"));
    let page = b.get("/admin/settings").await;
    assert!(
        page.body.contains("value=\"&#60;b&#62;Acme&#60;/b&#62;\"")
            || page.body.contains("value=\"&lt;b&gt;Acme&lt;/b&gt;\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<b>Acme</b>"));
    assert!(page.body.contains("value=\"#12ab9f\""));
    assert!(page.body.contains("https://cdn.acme.io/logo.svg"));
    let rows = audit_rows(&s, DEFAULT_TENANT_ID, "settings_updated").await;
    assert_eq!(rows[0].detail["branding"]["accent"], "#12ab9f");

    // An insecure logo URL is refused with the reason; an empty one removes it.
    b.act(
        "/admin/settings/branding",
        &[
            ("name", "Acme"),
            ("logo_url", "http://cdn.acme.io/l.png"),
            ("accent", "#12ab9f"),
        ],
    )
    .await;
    assert!(b.flash("/admin/settings").await.contains("https://"));
    b.act(
        "/admin/settings/branding",
        &[("name", "Acme"), ("logo_url", ""), ("accent", "#12ab9f")],
    )
    .await;
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let branding = s.state().settings.branding_of(&tenant).await.unwrap();
    assert_eq!((branding.name.as_str(), branding.logo_url), ("Acme", None));
}
