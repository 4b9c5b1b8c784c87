//! The admin site's passkeys, driven over HTTP with the software
//! authenticator: an administrator adds a passkey on Settings (with the
//! current password), signs in with it alone (no password, no second step)
//! at aal 2, and removes it. The attacks: a non-admin's passkey, a post
//! without the sign-in form's CSRF token or from another site, a replayed
//! assertion. The sign-in page (and Settings) allow exactly their one script
//! by a per-response CSP nonce; every other page allows none.

use forge::testing::TestServer;
use forge::testing::passkey::SoftPasskey;
use serde_json::Value;

use crate::PASSWORD;
use crate::support::provision;
use crate::support::site_client::{Browser, Page};

/// The origin the test configuration trusts (`Config::for_tests`).
const ORIGIN: &str = "http://localhost:8080";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admin.insecure_cookies = true).await
}

fn json(page: &Page) -> Value {
    serde_json::from_str(&page.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", page.status, page.body))
}

fn has_session(page: &Page) -> bool {
    page.set_cookies()
        .iter()
        .any(|c| c.starts_with("forge_admin=") && !c.starts_with("forge_admin=;"))
}

fn csp(page: &Page) -> String {
    page.headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// The `nonce-...` source of a CSP, if it has one.
fn csp_nonce(csp: &str) -> Option<String> {
    let start = csp.find("'nonce-")? + "'nonce-".len();
    let end = csp[start..].find('\'')?;
    Some(csp[start..start + end].to_string())
}

/// Adds a passkey on Settings for the signed-in browser `b`; answers the
/// answer page.
async fn add_passkey(b: &mut Browser, key: &mut SoftPasskey, name: &str) -> Page {
    let csrf = b.get("/admin/settings").await.csrf();
    let options = b
        .post(
            "/admin/settings/passkeys/options",
            &[("csrf", &csrf), ("name", name), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let options = json(&options);
    let credential = key.register(&options["publicKey"]);
    b.post(
        "/admin/settings/passkeys",
        &[
            ("csrf", &csrf),
            ("request_id", options["request_id"].as_str().unwrap()),
            ("name", name),
            ("credential", &credential.to_string()),
        ],
    )
    .await
}

/// The sign-in form's token (and cookie) and a passwordless ceremony's
/// options: (csrf, request_id, publicKey).
async fn passkey_options(b: &mut Browser) -> (String, String, Value) {
    let csrf = b.get("/admin/login").await.csrf();
    let page = b.post("/admin/login/passkey/options", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let options = json(&page);
    (
        csrf,
        options["request_id"].as_str().unwrap().to_string(),
        options["publicKey"].clone(),
    )
}

async fn post_assertion(b: &mut Browser, csrf: &str, request_id: &str, credential: &Value) -> Page {
    b.post(
        "/admin/login/passkey",
        &[
            ("csrf", csrf),
            ("request_id", request_id),
            ("credential", &credential.to_string()),
            ("tenant", ""),
            ("next", ""),
        ],
    )
    .await
}

/// A whole passkey sign-in in a fresh browser.
async fn sign_in_with(s: &TestServer, key: &mut SoftPasskey) -> (Browser, Page) {
    let mut b = Browser::new(s);
    let (csrf, request_id, options) = passkey_options(&mut b).await;
    let credential = key.sign_in(&options);
    let page = post_assertion(&mut b, &csrf, &request_id, &credential).await;
    (b, page)
}

/// The passkey rows' remove actions on Settings.
fn remove_actions(page: &Page) -> Vec<String> {
    page.body
        .match_indices("action=\"/admin/settings/passkeys/")
        .filter_map(|(i, m)| {
            let rest = &page.body[i + m.len() - "/admin/settings/passkeys/".len()..];
            let end = rest.find('"')?;
            let action = &rest[..end];
            action.ends_with("/remove").then(|| action.to_string())
        })
        .collect()
}

#[tokio::test]
async fn an_administrator_adds_a_passkey_signs_in_with_it_alone_and_removes_it() {
    let s = server().await;
    s.admin("root@example.com", PASSWORD).await;
    let mut key = SoftPasskey::new(ORIGIN);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;

    // Adding asks for the current password.
    let csrf = b.get("/admin/settings").await.csrf();
    let wrong = b
        .post(
            "/admin/settings/passkeys/options",
            &[("csrf", &csrf), ("name", "Laptop"), ("password", "not my password")],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(json(&wrong)["message"], "That is not your current password.");

    // The first factor: the answer shows the recovery codes once.
    let added = add_passkey(&mut b, &mut key, "Laptop").await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("Passkey Laptop added"), "{}", added.body);
    assert_eq!(added.body.matches("<li>").count(), 10, "ten recovery codes");
    let settings = b.get("/admin/settings").await;
    assert!(settings.body.contains("Laptop"));
    assert_eq!(remove_actions(&settings).len(), 1);

    // A passkey alone signs in, straight to the dashboard.
    let (mut other, page) = sign_in_with(&s, &mut key).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/admin");
    assert!(has_session(&page));
    assert!(
        page.set_cookies().iter().any(|c| c.starts_with("forge_admin_login=;")),
        "the form's token is dropped"
    );
    assert_eq!(other.get("/admin").await.status, 200);

    // The password session (aal 1) may not remove the factor...
    let action = remove_actions(&settings).remove(0);
    b.act(&action, &[]).await;
    let refused = b.flash("/admin/settings").await;
    assert!(refused.contains("second factor"), "{refused}");
    // ... the passkey session (aal 2) may.
    let removed = other.act(&action, &[]).await;
    assert_eq!(removed.status, 303);
    assert_eq!(other.flash("/admin/settings").await, "Passkey removed.");
    assert!(remove_actions(&other.get("/admin/settings").await).is_empty());

    // And the removed passkey signs in no more.
    let (_, page) = sign_in_with(&s, &mut key).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(!has_session(&page));
    assert!(page.body.contains("The passkey was not accepted"), "{}", page.body);
}

fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).expect("the hidden field") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    page.body[start..start + end].to_string()
}

/// The second step answered with `key`: (the step's options answer, the
/// answer page).
async fn second_step_with(b: &mut Browser, step: &Page, key: &mut SoftPasskey) -> Page {
    let csrf = step.csrf();
    let challenge = hidden(step, "challenge");
    let options = b
        .post(
            "/admin/login/mfa/passkey/options",
            &[("csrf", &csrf), ("challenge", &challenge), ("tenant", "")],
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let options = json(&options);
    let credential = key.sign_in(&options["publicKey"]);
    b.post(
        "/admin/login/mfa/passkey",
        &[
            ("csrf", &csrf),
            ("challenge", &challenge),
            ("request_id", options["request_id"].as_str().unwrap()),
            ("credential", &credential.to_string()),
            ("tenant", ""),
            ("next", ""),
        ],
    )
    .await
}

#[tokio::test]
async fn a_passkey_also_answers_the_second_step_after_the_password() {
    let s = server().await;
    s.admin("root@example.com", PASSWORD).await;
    let mut key = SoftPasskey::new(ORIGIN);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    add_passkey(&mut b, &mut key, "Laptop").await;

    // The password alone now leads to the second step, which offers the
    // passkey.
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "root@example.com", PASSWORD).await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(!has_session(&step));
    assert!(step.body.contains("/admin/login/mfa/passkey"));
    assert!(csp_nonce(&csp(&step)).is_some());

    // A passkey from another origin (a phishing page): refused, counted,
    // and the step stays open.
    let mut phished = key.clone();
    phished.set_origin("http://evil.example");
    let refused = second_step_with(&mut b, &step, &mut phished).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(!has_session(&refused));
    assert!(refused.body.contains("The passkey was not accepted"));
    assert!(refused.body.contains("name=\"challenge\""));

    // The real one signs in, at aal 2: it may remove the passkey.
    let ok = second_step_with(&mut b, &refused, &mut key).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(has_session(&ok));
    assert_eq!(ok.location(), "/admin");
    let action = remove_actions(&b.get("/admin/settings").await).remove(0);
    b.act(&action, &[]).await;
    assert_eq!(b.flash("/admin/settings").await, "Passkey removed.");

    // A spent challenge gives no more options.
    let mut late = Browser::new(&s);
    let csrf = late.get("/admin/login").await.csrf();
    let gone = late
        .post(
            "/admin/login/mfa/passkey/options",
            &[
                ("csrf", &csrf),
                ("challenge", &hidden(&step, "challenge")),
                ("tenant", ""),
            ],
        )
        .await;
    assert_eq!(gone.status, 401, "{}", gone.body);
}

#[tokio::test]
async fn an_administrator_with_an_authenticator_app_adds_a_passkey_after_the_second_step() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (_, _, app) = crate::factors::enrol(&s, crate::access(&root), "phone").await;
    s.clock().advance(30);
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "root@example.com", PASSWORD).await;
    let code = crate::factors::code_now(&s, &app);
    let signed_in = b
        .post(
            "/admin/login/mfa",
            &[
                ("csrf", &step.csrf()),
                ("challenge", &hidden(&step, "challenge")),
                ("code", &code),
                ("tenant", ""),
                ("next", ""),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    // Password and code: aal 2, so the account's factors may change. Not
    // the first factor: no recovery codes this time, back to Settings.
    let mut key = SoftPasskey::new(ORIGIN);
    let added = add_passkey(&mut b, &mut key, "Laptop").await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.location(), "/admin/settings");
    assert_eq!(b.flash("/admin/settings").await, "Passkey Laptop added.");
    let (_, page) = sign_in_with(&s, &mut key).await;
    assert_eq!(page.status, 303, "{}", page.body);
}

#[tokio::test]
async fn a_non_admin_s_passkey_is_turned_away() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let ann = provision(&s, crate::access(&root), "ann@example.com", &["admin"]).await;
    let mut key = SoftPasskey::new(ORIGIN);
    let mut b = Browser::new(&s);
    b.sign_in("ann@example.com", PASSWORD).await;
    assert_eq!(add_passkey(&mut b, &mut key, "Phone").await.status, 200);
    // Ann loses the admin role; her passkey still identifies her, but the
    // site is for administrators.
    let mut operator = Browser::new(&s);
    operator.sign_in("root@example.com", PASSWORD).await;
    operator
        .act(&format!("/admin/users/{ann}/roles/remove"), &[("role", "admin")])
        .await;
    let (mut browser, page) = sign_in_with(&s, &mut key).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("does not hold the admin role"), "{}", page.body);
    assert!(!has_session(&page));
    assert_eq!(browser.get("/admin").await.status, 303);
}

#[tokio::test]
async fn passkey_posts_without_the_form_token_or_from_another_site_are_refused() {
    let s = server().await;
    s.admin("root@example.com", PASSWORD).await;
    let mut key = SoftPasskey::new(ORIGIN);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    add_passkey(&mut b, &mut key, "Laptop").await;

    // Options: no cookie, or a field that does not match it.
    let mut attacker = Browser::new(&s);
    let page = attacker
        .post("/admin/login/passkey/options", &[("csrf", "guessed")])
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(json(&page)["error"], "csrf");
    attacker.get("/admin/login").await;
    let page = attacker
        .post("/admin/login/passkey/options", &[("csrf", "guessed")])
        .await;
    assert_eq!(page.status, 403);

    // A valid assertion posted by another page (login CSRF: signing the
    // victim's browser in to the attacker's account): the victim's browser
    // holds no form cookie, so the post is refused, and no session is made.
    let mut victim = Browser::new(&s);
    let (csrf, request_id, options) = passkey_options(&mut attacker).await;
    let credential = key.sign_in(&options);
    let page = post_assertion(&mut victim, &csrf, &request_id, &credential).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!has_session(&page));
    // The same from a cross-site page of a browser that sends Fetch Metadata.
    let req = attacker
        .request(reqwest::Method::POST, "/admin/login/passkey")
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf", csrf.as_str()),
            ("request_id", request_id.as_str()),
            ("credential", &credential.to_string()),
        ]);
    let page = attacker.send(req).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!has_session(&page));
    let req = attacker
        .request(reqwest::Method::POST, "/admin/login/passkey/options")
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())]);
    assert_eq!(attacker.send(req).await.status, 403);
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let s = server().await;
    s.admin("root@example.com", PASSWORD).await;
    let mut key = SoftPasskey::new(ORIGIN);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    add_passkey(&mut b, &mut key, "Laptop").await;

    let mut first = Browser::new(&s);
    let (csrf, request_id, options) = passkey_options(&mut first).await;
    let credential = key.sign_in(&options);
    let page = post_assertion(&mut first, &csrf, &request_id, &credential).await;
    assert_eq!(page.status, 303, "{}", page.body);

    // The same answer again, to the same (spent) ceremony.
    let mut thief = Browser::new(&s);
    let csrf = thief.get("/admin/login").await.csrf();
    let page = post_assertion(&mut thief, &csrf, &request_id, &credential).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(!has_session(&page));
    // And to a fresh ceremony: its challenge is not the one signed.
    let (csrf, fresh, _) = passkey_options(&mut thief).await;
    let page = post_assertion(&mut thief, &csrf, &fresh, &credential).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(!has_session(&page));
    assert!(page.body.contains("The passkey was not accepted"));
}

#[tokio::test]
async fn only_the_passkey_pages_allow_their_one_script_by_nonce() {
    let s = server().await;
    s.admin("root@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let login = b.get("/admin/login").await;
    let policy = csp(&login);
    let nonce = csp_nonce(&policy).expect("a nonce on the sign-in page");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains(&format!("script-src 'nonce-{nonce}'")), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(login.body.matches("<script").count(), 1, "one script tag");
    assert!(
        login
            .body
            .contains(&format!("<script nonce=\"{nonce}\" src=\"/admin/static/passkey.js?v=")),
        "{}",
        login.body
    );
    assert!(login.body.contains("id=\"passkey-sign-in\""));
    // A new nonce on every response.
    let again = csp_nonce(&csp(&b.get("/admin/login").await)).unwrap();
    assert_ne!(again, nonce);

    // The script itself is served by forge, as a script.
    let start = login.body.find("/admin/static/passkey.js?v=").unwrap();
    let end = login.body[start..].find('"').unwrap();
    let script = b.get(&login.body[start..start + end]).await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.body.contains("navigator.credentials.get"));

    // Signed in: Settings (which adds passkeys) has its nonce; the other
    // pages allow no script at all.
    b.sign_in("root@example.com", PASSWORD).await;
    let settings = b.get("/admin/settings").await;
    let nonce = csp_nonce(&csp(&settings)).expect("a nonce on Settings");
    assert!(settings.body.contains(&format!("<script nonce=\"{nonce}\"")));
    for path in [
        "/admin",
        "/admin/users",
        "/admin/audit",
        "/admin/roles",
        "/admin/nowhere",
    ] {
        let page = b.get(path).await;
        let policy = csp(&page);
        assert!(!policy.contains("script-src"), "{path}: {policy}");
        assert!(csp_nonce(&policy).is_none(), "{path}: {policy}");
        assert!(!page.body.contains("<script"), "{path}");
    }
}

#[tokio::test]
async fn without_a_relying_party_the_sign_in_page_has_no_passkey_and_no_script() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.webauthn.rp_id = String::new();
        c.webauthn.origins = Vec::new();
    })
    .await;
    let mut b = Browser::new(&s);
    let login = b.get("/admin/login").await;
    assert!(!csp(&login).contains("script-src"));
    assert!(!login.body.contains("<script"));
    assert!(!login.body.contains("passkey-sign-in"));
    let csrf = login.csrf();
    let page = b.post("/admin/login/passkey/options", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 404, "{}", page.body);
}
