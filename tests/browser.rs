//! The admin site in a real browser: headless Chromium (Debian `chromium`
//! and `chromium-driver`) driven over WebDriver by `fantoccini`.
//!
//! Each test starts its own forge (`TestServer`) and its own `chromedriver`
//! on a free port, with a fresh profile directory, and clicks through the
//! site as an operator would: sign in, search a user, assign a role, revoke
//! a session, register an OAuth client, rotate the signing keys, sign out.
//! JavaScript is switched off in the browser, so every step proves the site
//! needs none. Each step saves a screenshot under
//! `target/browser-screenshots/` for a person to look at.
//!
//! The one exception is passkeys, which only a script can reach: that test
//! switches JavaScript on and gives the browser a virtual authenticator
//! through the WebDriver WebAuthn extension (CTAP2, internal, resident keys,
//! user verification), adds a passkey on Settings, answers the second step
//! of a password sign-in with it, signs in with it alone, removes it and
//! sees it refused. WebAuthn needs a secure context and a
//! domain as relying-party id, so that test's server is reached as
//! `http://localhost:PORT` with `webauthn.rp_id = "localhost"`.
//!
//! The hosted pages (`/login`, `/account`) get one pass too: a user signs
//! in on the hosted login page, lands on the account page and signs out.
//!
//! Not part of a plain `cargo test` (it needs the browser): run it with
//! `cargo test --test browser`, which `scripts/test` does after installing
//! Chromium. A missing `/usr/bin/chromedriver` is a failure, not a skip.

// Test code: a failed unwrap is a failed test (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_browser;

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use forge::testing::TestServer;
use serde_json::{Value, json};
use support_browser::{
    Driver, browser, browser_with, click, click_element, fill, free_port, path_of, shot, start_driver,
};

const PASSWORD: &str = "correct horse battery staple";

async fn flash(c: &Client) -> String {
    c.find(Locator::Css(".flash")).await.unwrap().text().await.unwrap()
}

async fn api(s: &TestServer, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let mut req = s.client().request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_users_and_keys_in_chromium() {
    let s = TestServer::start_with(|c| c.admin.insecure_cookies = true).await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = root["access_token"].as_str().unwrap().to_string();
    api(
        &s,
        reqwest::Method::POST,
        "/v1/roles",
        &op,
        Some(json!({"name": "support", "permissions": ["users:read", "audit:read"]})),
    )
    .await;
    for email in [
        "ann@example.com",
        "anna.k@example.com",
        "bob@example.com",
        "carol@example.org",
    ] {
        api(
            &s,
            reqwest::Method::POST,
            "/v1/users",
            &op,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    }
    // Ann signs in from two devices; one session will be revoked.
    let phone = s.login("ann@example.com", PASSWORD).await;
    let laptop = s.login("ann@example.com", PASSWORD).await;
    let failed = s
        .client()
        .post(s.url("/v1/auth/login"))
        .json(&json!({"email": "bob@example.com", "password": "not it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);

    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let base = s.base_url().to_string();

    // Sign in.
    c.goto(&format!("{base}/admin")).await.unwrap();
    assert_eq!(path_of(&c).await, "/admin/login");
    shot(&c, "01-sign-in").await;
    fill(&c, "identifier", "root@example.com").await;
    fill(&c, "password", PASSWORD).await;
    click(&c, "#sign-in").await;
    assert_eq!(path_of(&c).await, "/admin");
    let body = c.source().await.unwrap();
    assert!(body.contains("Active sessions"));
    assert!(body.contains("<svg"));
    shot(&c, "02-dashboard").await;

    // The stylesheet applied under the CSP (no inline styles anywhere).
    let side = c.find(Locator::Css("aside.side")).await.unwrap();
    assert_eq!(side.css_value("background-color").await.unwrap(), "rgba(17, 24, 39, 1)");

    // Search a user.
    click(&c, "a[href=\"/admin/users\"]").await;
    assert_eq!(path_of(&c).await, "/admin/users");
    shot(&c, "03-users").await;
    fill(&c, "q", "ann").await;
    click(&c, "form.search button[type=submit]").await;
    assert_eq!(path_of(&c).await, "/admin/users?q=ann");
    let rows = c.find_all(Locator::Css("table.table tbody a.strong")).await.unwrap();
    let mut found = Vec::new();
    for r in &rows {
        found.push(r.text().await.unwrap());
    }
    assert_eq!(found, vec!["ann@example.com", "anna.k@example.com"]);
    shot(&c, "04-search").await;
    click_element(&c, rows[0].clone(), "the first result").await;
    assert!(path_of(&c).await.starts_with("/admin/users/"));
    let user_page = path_of(&c).await;
    assert_eq!(c.find_all(Locator::Css(".revoke-session")).await.unwrap().len(), 2);
    shot(&c, "05-user").await;

    // Assign a role.
    c.find(Locator::Css("#assign-role"))
        .await
        .unwrap()
        .select_by_value("support")
        .await
        .unwrap();
    click(&c, "#assign-role-button").await;
    assert_eq!(path_of(&c).await, user_page);
    assert_eq!(flash(&c).await, "Role support assigned.");
    let ann = api(
        &s,
        reqwest::Method::GET,
        &user_page.replace("/admin/users/", "/v1/users/"),
        &op,
        None,
    )
    .await;
    assert_eq!(ann["roles"], json!(["support"]));
    shot(&c, "06-role-assigned").await;

    // Revoke a session: the newest (the laptop's) is listed first.
    click(&c, ".revoke-session").await;
    assert_eq!(flash(&c).await, "Session revoked; its tokens stopped working.");
    assert_eq!(c.find_all(Locator::Css(".revoke-session")).await.unwrap().len(), 1);
    let me = |token: &Value| {
        s.client()
            .get(s.url("/v1/users/me"))
            .bearer_auth(token["access_token"].as_str().unwrap().to_string())
            .send()
    };
    assert_eq!(me(&laptop).await.unwrap().status(), 401);
    assert_eq!(me(&phone).await.unwrap().status(), 200);
    shot(&c, "07-session-revoked").await;

    // Register an OAuth client: its secret shows once, on the answer only.
    click(&c, "a[href=\"/admin/clients\"]").await;
    assert_eq!(path_of(&c).await, "/admin/clients");
    click(&c, "#new-client").await;
    assert_eq!(path_of(&c).await, "/admin/clients/new");
    fill(&c, "name", "Grafana").await;
    fill(&c, "redirect_uris", "https://grafana.example.com/login/generic_oauth").await;
    c.find(Locator::Css("#client-first-party"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shot(&c, "07a-new-client").await;
    click(&c, "#create-client").await;
    assert_eq!(path_of(&c).await, "/admin/clients");
    let client_id = c.find(Locator::Css("#client-id")).await.unwrap().text().await.unwrap();
    let secret = c
        .find(Locator::Css("#client-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let client = s.state().clients.authenticate(&client_id, Some(&secret)).await.unwrap();
    assert!(client.first_party);
    shot(&c, "07b-client-registered").await;
    click(&c, "#to-client").await;
    assert_eq!(path_of(&c).await, format!("/admin/clients/{client_id}"));
    assert!(!c.source().await.unwrap().contains(&secret));
    shot(&c, "07c-client").await;

    // Rotate the signing keys (a few minutes after start, as in real life).
    s.clock().advance(forge::service::keys::JWKS_MAX_AGE_SECS as i64 + 60);
    click(&c, "a[href=\"/admin/keys\"]").await;
    shot(&c, "08-keys").await;
    let before: Vec<String> = {
        let mut kids = Vec::new();
        for cell in c.find_all(Locator::Css("td.mono")).await.unwrap() {
            kids.push(cell.text().await.unwrap());
        }
        kids
    };
    // An Ed25519 pair (current, next) signs every token; an RS256 pair the
    // ID tokens of clients that ask for RS256. They rotate together.
    assert_eq!(before.len(), 4);
    click(&c, "#rotate-keys").await;
    assert_eq!(path_of(&c).await, "/admin/keys");
    assert!(flash(&c).await.starts_with("Keys rotated."));
    let mut states: Vec<(String, String)> = Vec::new();
    for row in c.find_all(Locator::Css("table.table tbody tr")).await.unwrap() {
        let state = row.find(Locator::Css(".badge")).await.unwrap().text().await.unwrap();
        let alg = row
            .find(Locator::Css(".badge + .muted"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        states.push((alg, state));
    }
    for alg in ["EdDSA", "RS256"] {
        let of_alg: Vec<&str> = states
            .iter()
            .filter(|(a, _)| a == alg)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(
            of_alg,
            vec!["next", "current", "retired"],
            "{alg}, newest first: {states:?}"
        );
    }
    let jwks: Value = s
        .client()
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        6,
        "the retired keys stay published"
    );
    shot(&c, "09-keys-rotated").await;

    // The other pages, for the record.
    for (path, name) in [
        ("/admin/audit", "10-audit"),
        ("/admin/roles", "11-roles"),
        ("/admin/roles/support", "12-role"),
        ("/admin/messages", "13-messages"),
        ("/admin/tenants", "14-tenants"),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        assert_eq!(path_of(&c).await, path);
        shot(&c, name).await;
    }
    c.goto(&format!("{base}{user_page}/delete")).await.unwrap();
    shot(&c, "15-confirm-delete").await;

    // The message templates, then an email's HTML part as its reader would
    // see it: opened under its own policy, its inline styles apply.
    click(&c, "a[href=\"/admin/templates\"]").await;
    assert_eq!(path_of(&c).await, "/admin/templates");
    assert!(c.find(Locator::Css("#part-HTML")).await.is_ok());
    shot(&c, "16-templates").await;
    c.goto(&format!("{base}/admin/templates/html?kind=otp")).await.unwrap();
    assert_eq!(path_of(&c).await, "/admin/templates/html?kind=otp");
    let code = c.find(Locator::XPath("//p[contains(., '123456')]")).await.unwrap();
    assert_eq!(code.css_value("font-size").await.unwrap(), "28px");
    shot(&c, "17-template-html").await;
    c.goto(&format!("{base}/admin")).await.unwrap();

    // Sign out: back to the form, and the pages are closed again.
    click(&c, "#sign-out").await;
    assert_eq!(path_of(&c).await, "/admin/login");
    shot(&c, "16-signed-out").await;
    c.goto(&format!("{base}/admin/users")).await.unwrap();
    assert_eq!(path_of(&c).await, "/admin/login?next=%2Fadmin%2Fusers");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_a_non_admin_are_turned_away_in_chromium() {
    let s = TestServer::start_with(|c| c.admin.insecure_cookies = true).await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = root["access_token"].as_str().unwrap().to_string();
    api(
        &s,
        reqwest::Method::POST,
        "/v1/users",
        &op,
        Some(json!({"email": "ann@example.com", "password": PASSWORD})),
    )
    .await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let base = s.base_url().to_string();

    c.goto(&format!("{base}/admin/login")).await.unwrap();
    fill(&c, "identifier", "root@example.com").await;
    fill(&c, "password", "wrong password").await;
    click(&c, "#sign-in").await;
    assert_eq!(path_of(&c).await, "/admin/login");
    assert_eq!(flash(&c).await, "Wrong email, password or tenant.");
    // What was typed stays, the password does not.
    let identifier = c.find(Locator::Css("[name=identifier]")).await.unwrap();
    assert_eq!(
        identifier.prop("value").await.unwrap().as_deref(),
        Some("root@example.com")
    );
    let password = c.find(Locator::Css("[name=password]")).await.unwrap();
    assert_eq!(password.prop("value").await.unwrap().as_deref(), Some(""));
    shot(&c, "20-wrong-password").await;

    fill(&c, "identifier", "ann@example.com").await;
    fill(&c, "password", PASSWORD).await;
    click(&c, "#sign-in").await;
    assert!(flash(&c).await.contains("does not hold the admin role"));
    shot(&c, "21-not-an-admin").await;
    c.goto(&format!("{base}/admin")).await.unwrap();
    assert_eq!(path_of(&c).await, "/admin/login");
    c.close().await.unwrap();
}

/// The hosted pages in Chromium without JavaScript: a wrong password is
/// refused with the generic message, the right one lands on `return_to`
/// (here the account page, the default), and signing out ends there.
#[tokio::test]
async fn a_user_signs_in_on_the_hosted_login_page_in_chromium() {
    let s = TestServer::start_with(|c| c.admin.insecure_cookies = true).await;
    let (status, body) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let base = s.base_url().to_string();

    c.goto(&format!("{base}/login?tenant=default")).await.unwrap();
    fill(&c, "identifier", "ann@example.com").await;
    fill(&c, "password", "wrong password").await;
    click(&c, "#sign-in").await;
    assert_eq!(flash(&c).await, "Wrong email, phone or password.");
    shot(&c, "40-hosted-wrong-password").await;

    fill(&c, "password", PASSWORD).await;
    click(&c, "#sign-in").await;
    assert_eq!(path_of(&c).await, "/account");
    let email = c.find(Locator::Css("#email")).await.unwrap().text().await.unwrap();
    assert!(email.contains("ann@example.com"), "{email}");
    shot(&c, "41-hosted-account").await;

    click(&c, "#sign-out").await;
    assert_eq!(path_of(&c).await, "/logged-out?tenant=default");
    c.goto(&format!("{base}/account")).await.unwrap();
    assert!(path_of(&c).await.starts_with("/login?"));
    c.close().await.unwrap();
}

/// The WebDriver WebAuthn extension, which fantoccini does not wrap: its
/// endpoints under the browser session, called on chromedriver directly.
struct VirtualAuthenticators {
    http: reqwest::Client,
    session: String,
}

impl VirtualAuthenticators {
    async fn of(driver: &Driver, c: &Client) -> Self {
        let id = c.session_id().await.unwrap().expect("a WebDriver session id");
        Self {
            http: reqwest::Client::new(),
            session: format!("{}/session/{id}/webauthn", driver.url),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "webauthn{path}: {status} {body}");
        body["value"].clone()
    }

    /// A platform authenticator that holds discoverable credentials and
    /// verifies its user without asking; answers its id.
    async fn add(&self) -> String {
        let id = self
            .call(
                reqwest::Method::POST,
                "/authenticator",
                Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                    "automaticPresenceSimulation": true,
                })),
            )
            .await;
        id.as_str().unwrap().to_string()
    }

    async fn credentials(&self, authenticator: &str) -> Vec<Value> {
        let list = self
            .call(
                reqwest::Method::GET,
                &format!("/authenticator/{authenticator}/credentials"),
                None,
            )
            .await;
        list.as_array().unwrap().clone()
    }

    async fn remove(&self, authenticator: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/authenticator/{authenticator}"),
            None,
        )
        .await;
    }
}

/// Clicks a button whose script runs a passkey ceremony and then submits a
/// form, and waits for the page that answers; when none comes, the
/// script's own error message (element `error`) says why.
async fn click_passkey(c: &Client, css: &str, error: &str) {
    let before = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while before.tag_name().await.is_ok() {
        if Instant::now() >= deadline {
            let shown = match c.find(Locator::Id(error)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("{css}: the passkey ceremony loaded no new page; the page says: {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_signs_in_with_a_passkey_in_chromium() {
    // The relying party is `localhost` (the test configuration's); the
    // origin needs the port, so the server binds a port chosen up front.
    let port = free_port();
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        c.webauthn.rp_id = "localhost".into();
        c.webauthn.origins = vec![format!("http://localhost:{port}")];
    })
    .await;
    s.admin("root@example.com", PASSWORD).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser_with(&driver, profile.path(), true).await;
    let authenticators = VirtualAuthenticators::of(&driver, &c).await;
    let authenticator = authenticators.add().await;
    let base = format!("http://localhost:{port}");

    // Sign in with the password (no factor yet).
    c.goto(&format!("{base}/admin/login")).await.unwrap();
    let button = c.find(Locator::Id("passkey-sign-in")).await.unwrap();
    assert!(
        button.is_displayed().await.unwrap(),
        "the script shows the passkey button"
    );
    shot(&c, "30-sign-in-with-passkey-offered").await;
    fill(&c, "identifier", "root@example.com").await;
    fill(&c, "password", PASSWORD).await;
    click(&c, "#sign-in").await;
    assert_eq!(path_of(&c).await, "/admin");

    // Add a passkey on Settings: the authenticator makes it.
    c.goto(&format!("{base}/admin/settings")).await.unwrap();
    assert!(c.find(Locator::Id("no-passkeys")).await.is_ok());
    let name = c.find(Locator::Id("passkey-name")).await.unwrap();
    name.send_keys("Laptop").await.unwrap();
    let password = c.find(Locator::Id("passkey-password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    c.execute("document.getElementById('passkeys').scrollIntoView()", vec![])
        .await
        .unwrap();
    shot(&c, "31-add-passkey").await;
    click_passkey(&c, "#add-passkey", "passkey-add-error").await;
    assert_eq!(path_of(&c).await, "/admin/settings/passkeys");
    let heading = c.find(Locator::Css("#passkey-added h2")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Passkey Laptop added");
    assert_eq!(c.find_all(Locator::Css("#recovery-codes li")).await.unwrap().len(), 10);
    shot(&c, "32-passkey-added").await;
    let held = authenticators.credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], true, "a discoverable credential");
    click(&c, "#passkey-done").await;
    assert_eq!(c.find_all(Locator::Css(".remove-passkey")).await.unwrap().len(), 1);

    // The password now asks for the second step, which the passkey answers.
    click(&c, "#sign-out").await;
    fill(&c, "identifier", "root@example.com").await;
    fill(&c, "password", PASSWORD).await;
    click(&c, "#sign-in").await;
    assert_eq!(path_of(&c).await, "/admin/login");
    assert!(
        c.find(Locator::Css("[name=challenge]")).await.is_ok(),
        "the second step"
    );
    shot(&c, "33-second-step-offers-passkey").await;
    click_passkey(&c, "#passkey-sign-in", "passkey-error").await;
    assert_eq!(path_of(&c).await, "/admin");

    // Sign out, then in with the passkey alone.
    click(&c, "#sign-out").await;
    assert_eq!(path_of(&c).await, "/admin/login");
    click_passkey(&c, "#passkey-sign-in", "passkey-error").await;
    assert_eq!(path_of(&c).await, "/admin");
    assert!(c.source().await.unwrap().contains("Active sessions"));
    shot(&c, "34-signed-in-with-passkey").await;

    // Remove it (the passkey session is aal 2, which changing factors needs).
    c.goto(&format!("{base}/admin/settings")).await.unwrap();
    click(&c, ".remove-passkey").await;
    assert_eq!(flash(&c).await, "Passkey removed.");
    assert!(c.find_all(Locator::Css(".remove-passkey")).await.unwrap().is_empty());
    shot(&c, "35-passkey-removed").await;

    // The authenticator still offers the credential; forge refuses it now.
    click(&c, "#sign-out").await;
    click_passkey(&c, "#passkey-sign-in", "passkey-error").await;
    assert_eq!(path_of(&c).await, "/admin/login/passkey");
    assert_eq!(
        flash(&c).await,
        "The passkey was not accepted. Try again, or sign in with your password."
    );
    shot(&c, "36-removed-passkey-refused").await;
    c.goto(&format!("{base}/admin")).await.unwrap();
    assert_eq!(path_of(&c).await, "/admin/login");

    authenticators.remove(&authenticator).await;
    c.close().await.unwrap();
}
