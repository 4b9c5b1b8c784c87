//! The hosted pages over HTTP, as a browser without JavaScript uses them:
//! sign-in with a password (the SSO cookie, `return_to`, generic failures),
//! login CSRF and Fetch Metadata, session fixation, the second step, the
//! account page and its actions, sign-out, and the security headers.
//!
//! The client (`support::site_client::Browser`) follows no redirects and
//! keeps cookies by hand, so each test sees the exact `Set-Cookie` and
//! `Location` headers.

use forge::testing::TestServer;
use totp_rs::TOTP;

use crate::PASSWORD;
use crate::access;
use crate::support::site_client::{Browser, Page};

pub(crate) const SSO: &str = "forge_sso";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admin.insecure_cookies = true).await
}

fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).expect("the hidden field") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    page.body[start..start + end].to_string()
}

/// A hidden field's value as the browser submits it (askama escapes `&`,
/// `<`, `>`, `"` and `'` as numeric or named entities).
fn unescape(html: &str) -> String {
    html.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
}

/// The `Set-Cookie` line of cookie `name`, if the response sets it.
fn set_cookie(page: &Page, name: &str) -> Option<String> {
    page.set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Opens `/login?query` and posts the password form; the response of the
/// post.
pub(crate) async fn sign_in_with(b: &mut Browser, query: &str, identifier: &str, password: &str) -> Page {
    let form = b.get(&format!("/login?{query}")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();
    let tenant = hidden(&form, "tenant");
    let return_to = unescape(&hidden(&form, "return_to"));
    b.post(
        "/login",
        &[
            ("csrf", csrf.as_str()),
            ("tenant", tenant.as_str()),
            ("return_to", return_to.as_str()),
            ("identifier", identifier),
            ("password", password),
        ],
    )
    .await
}

pub(crate) async fn signed_in(s: &TestServer, email: &str) -> Browser {
    let mut b = Browser::new(s);
    let page = sign_in_with(&mut b, "", email, PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(b.cookies.contains_key(SSO));
    b
}

/// Posts a signed-in form with the session's CSRF token (read from the
/// account page).
async fn act(b: &mut Browser, path: &str, form: &[(&str, &str)]) -> Page {
    let account = b.get("/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    let csrf = account.csrf();
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    b.post(path, &fields).await
}

#[tokio::test]
async fn a_password_sign_in_sets_the_sso_cookie_and_goes_to_return_to() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let page = sign_in_with(
        &mut b,
        "tenant=default&return_to=%2Foauth%2Fauthorize%3Fclient_id%3Dx%26state%3Dy",
        "ann@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/oauth/authorize?client_id=x&state=y");
    let cookie = set_cookie(&page, SSO).expect("the SSO cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "insecure mode: {cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
    // The form's token is dropped with the sign-in.
    assert!(set_cookie(&page, "forge_sso_form").is_some_and(|c| c.contains("Max-Age=0")));
    let account = b.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("ann@example.com"));
    // Signed in already: the form goes straight on, unless forced.
    let again = b.get("/login?return_to=%2Faccount%3Fx%3D1").await;
    assert_eq!(again.status, 303);
    assert_eq!(again.location(), "/account?x=1");
    assert_eq!(b.get("/login?force=1").await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_secure() {
    let s = TestServer::start().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let page = sign_in_with(&mut b, "", "ann@example.com", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let cookie = set_cookie(&page, "__Host-forge_sso").expect("the __Host- cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(set_cookie(&page, SSO).is_none());
    s.stop().await;
}

#[tokio::test]
async fn an_external_return_to_falls_back_to_the_account_page() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example%2Fx",
        "%2F%5Cevil.example",
        "javascript%3Aalert(1)",
    ] {
        let mut b = Browser::new(&s);
        let page = sign_in_with(&mut b, &format!("return_to={evil}"), "ann@example.com", PASSWORD).await;
        assert_eq!(page.status, 303, "{evil}: {}", page.body);
        assert_eq!(page.location(), "/account", "{evil}");
    }
    // A forged form field is checked the same way.
    let mut b = Browser::new(&s);
    let form = b.get("/login").await;
    let csrf = form.csrf();
    let page = b
        .post(
            "/login",
            &[
                ("csrf", csrf.as_str()),
                ("tenant", "default"),
                ("return_to", "//evil.example"),
                ("identifier", "ann@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.location(), "/account");
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_account_read_the_same() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let wrong = sign_in_with(&mut b, "", "ann@example.com", "not the password at all").await;
    let unknown = sign_in_with(&mut b, "", "nobody@example.com", PASSWORD).await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, 401);
        assert!(page.body.contains("Wrong email, phone or password."), "{}", page.body);
        assert!(set_cookie(page, SSO).is_none());
    }
    assert!(!b.cookies.contains_key(SSO));
    // The failures are the API's: audited as `login_failed` via hosted.
    let rows = s
        .state()
        .store
        .list_audit(forge::store::AuditQuery {
            tenant_id: forge::store::DEFAULT_TENANT_ID,
            user_id: None,
            event: Some("login_failed".into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(
        rows.iter().any(|r| r.detail["via"] == "hosted"),
        "{:?}",
        rows.iter().map(|r| &r.detail).collect::<Vec<_>>()
    );
    s.stop().await;
}

#[tokio::test]
async fn login_csrf_is_refused() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let fields = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("tenant", "default"),
            ("return_to", "/account"),
            ("identifier", "ann@example.com"),
            ("password", PASSWORD),
        ]
    };
    // No form cookie (another site posting the attacker's credentials).
    let mut b = Browser::new(&s);
    let page = b.post("/login", &fields("guessed")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!b.cookies.contains_key(SSO));
    // A cookie that does not match the field.
    b.get("/login").await;
    let page = b.post("/login", &fields("guessed")).await;
    assert_eq!(page.status, 403);
    assert!(!b.cookies.contains_key(SSO));
    // A right token from a cross-site form: refused by Fetch Metadata.
    let form = b.get("/login").await;
    let csrf = form.csrf();
    let mut all = fields("x");
    all[0] = ("csrf", csrf.as_str());
    let req = b
        .request(reqwest::Method::POST, "/login")
        .header("sec-fetch-site", "cross-site")
        .form(&all);
    let page = b.send(req).await;
    assert_eq!(page.status, 403);
    assert!(!b.cookies.contains_key(SSO));
    s.stop().await;
}

#[tokio::test]
async fn every_sign_in_mints_a_new_session_and_drops_the_old_one() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    // A token planted by an attacker is never adopted.
    b.cookies.insert(SSO.into(), "planted-by-attacker".into());
    let page = sign_in_with(&mut b, "", "ann@example.com", PASSWORD).await;
    assert_eq!(page.status, 303);
    let first = b.cookies[SSO].clone();
    assert_ne!(first, "planted-by-attacker");
    let page = sign_in_with(&mut b, "force=1", "ann@example.com", PASSWORD).await;
    assert_eq!(page.status, 303);
    let second = b.cookies[SSO].clone();
    assert_ne!(first, second, "a new token at every sign-in");
    // The first session ended with the second sign-in.
    let mut old = Browser::new(&s);
    old.cookies.insert(SSO.into(), first);
    let page = old.get("/account").await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with("/login"));
    s.stop().await;
}

async fn post_owned(b: &mut Browser, path: &str, fields: &[(String, String)]) -> Page {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    b.post(path, &fields).await
}

fn code_at(s: &TestServer, app: &TOTP) -> String {
    app.generate(u64::try_from(s.clock().now()).unwrap())
}

#[tokio::test]
async fn a_user_with_a_factor_signs_in_through_the_second_step() {
    let s = server().await;
    let session = s.signup("ann@example.com", PASSWORD).await;
    let (_, _, app) = crate::factors::enrol(&s, access(&session), "phone").await;
    s.clock().advance(30);
    let mut b = Browser::new(&s);
    let step = sign_in_with(&mut b, "return_to=%2Faccount%3Fstep%3D2", "ann@example.com", PASSWORD).await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(step.body.contains("action=\"/mfa\""));
    assert!(set_cookie(&step, SSO).is_none(), "no session before the second step");
    let challenge = hidden(&step, "challenge");
    let csrf = step.csrf();
    let post = |code: String| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("tenant".to_string(), "default".to_string()),
            ("return_to".to_string(), "/account?step=2".to_string()),
            ("challenge".to_string(), challenge.clone()),
            ("code".to_string(), code),
        ]
    };
    let wrong = post_owned(&mut b, "/mfa", &post("000000".into())).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(!b.cookies.contains_key(SSO));
    let csrf2 = wrong.csrf();
    let mut fields = post(code_at(&s, &app));
    fields[0].1 = csrf2;
    let done = post_owned(&mut b, "/mfa", &fields).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/account?step=2");
    assert!(b.cookies.contains_key(SSO));
    let account = b.get("/account").await;
    assert!(account.body.contains("with a second factor"), "{}", account.body);
    s.stop().await;
}

#[tokio::test]
async fn the_account_page_needs_a_session() {
    let s = server().await;
    let mut b = Browser::new(&s);
    let page = b.get("/account").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/login?tenant=default&return_to=%2Faccount");
    // A form post without a session is refused outright.
    let page = b.post("/account/password", &[("csrf", "x")]).await;
    assert_eq!(page.status, 401);
    // A signed-in post without the session's token is refused.
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = signed_in(&s, "ann@example.com").await;
    let page = b
        .post(
            "/account/password",
            &[("csrf", "wrong"), ("current_password", PASSWORD), ("new_password", "x")],
        )
        .await;
    assert_eq!(page.status, 403);
    s.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_the_other_sso_sessions() {
    let s = server().await;
    let session = s.signup("ann@example.com", PASSWORD).await;
    let mut here = signed_in(&s, "ann@example.com").await;
    let mut there = signed_in(&s, "ann@example.com").await;
    let before = here.cookies[SSO].clone();
    let new_password = "a different horse battery staple";
    let page = act(
        &mut here,
        "/account/password",
        &[("current_password", PASSWORD), ("new_password", new_password)],
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location().starts_with("/account"));
    // This browser goes on with a fresh session.
    assert_ne!(here.cookies[SSO], before);
    let account = here.get(page.location()).await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("Your password was changed"));
    // The other browser is signed out, and so are the API's sessions.
    let page = there.get("/account").await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with("/login"));
    let (status, _) = s
        .post(
            "/v1/auth/refresh",
            serde_json::json!({ "refresh_token": session["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 401);
    // A wrong current password changes nothing and says so.
    let page = act(
        &mut here,
        "/account/password",
        &[
            ("current_password", "wrong"),
            ("new_password", "yet another horse battery"),
        ],
    )
    .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("current password is not right"));
    s.stop().await;
}

#[tokio::test]
async fn signing_out_clears_the_cookie_and_ends_the_session() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = signed_in(&s, "ann@example.com").await;
    let token = b.cookies[SSO].clone();
    let page = act(&mut b, "/logout", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/logged-out?tenant=default");
    assert!(set_cookie(&page, SSO).is_some_and(|c| c.contains("Max-Age=0")));
    assert!(!b.cookies.contains_key(SSO));
    let out = b.get("/logged-out?tenant=default").await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("signed out"));
    let mut old = Browser::new(&s);
    old.cookies.insert(SSO.into(), token);
    assert_eq!(old.get("/account").await.status, 303);
    s.stop().await;
}

#[tokio::test]
async fn hosted_pages_carry_the_security_headers() {
    let s = server().await;
    let mut b = Browser::new(&s);
    for path in ["/login", "/logged-out", "/login?tenant=nope"] {
        let page = b.get(path).await;
        let h = &page.headers;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    assert_eq!(b.get("/login?tenant=nope").await.status, 404);
    let css = b.get("/hosted/brand.css?tenant=default").await;
    assert_eq!(css.status, 200);
    assert!(css.body.contains("--accent:#4f46e5"));
    s.stop().await;
}

async fn form_post(b: &mut Browser, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
    let form = b.get(page_path).await;
    assert_eq!(form.status, 200, "{page_path}: {}", form.body);
    let csrf = form.csrf();
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post(action, &all).await
}

#[tokio::test]
async fn signup_opens_a_session_where_the_tenant_allows_it() {
    let s = server().await;
    let mut b = Browser::new(&s);
    let page = form_post(
        &mut b,
        "/signup?return_to=%2Fwelcome",
        "/signup",
        &[
            ("tenant", "default"),
            ("return_to", "/welcome"),
            ("email", "new@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/welcome");
    assert!(b.cookies.contains_key(SSO));
    // The API sees the account, and no API session was opened for it.
    let login = s.login("new@example.com", PASSWORD).await;
    let (status, sessions) = s.as_user(access(&login)).get("/v1/users/me/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    // A weak password is refused with the policy's reason.
    let mut b = Browser::new(&s);
    let page = form_post(
        &mut b,
        "/signup",
        "/signup",
        &[
            ("tenant", "default"),
            ("email", "weak@example.com"),
            ("password", "password"),
        ],
    )
    .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("too weak"));
    assert!(!b.cookies.contains_key(SSO));
    s.stop().await;
}

#[tokio::test]
async fn signup_is_refused_where_the_tenant_closed_it() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&root))
        .patch("/v1/tenant/settings", serde_json::json!({"signup": {"mode": "closed"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut b = Browser::new(&s);
    assert_eq!(b.get("/signup").await.status, 403);
    // A post made anyway (with a valid form token from the login page).
    let page = form_post(
        &mut b,
        "/login",
        "/signup",
        &[
            ("tenant", "default"),
            ("email", "new@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!b.cookies.contains_key(SSO));
    let (status, _) = s
        .post(
            "/v1/auth/login",
            serde_json::json!({"email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "no account was created");
    s.stop().await;
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_the_emailed_code() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut other = signed_in(&s, "ann@example.com").await;
    let mut b = Browser::new(&s);
    let sent = form_post(
        &mut b,
        "/reset",
        "/reset",
        &[("tenant", "default"), ("email", "ann@example.com")],
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("we sent it a code"));
    // Unknown addresses read the same.
    let unknown = form_post(
        &mut b,
        "/reset",
        "/reset",
        &[("tenant", "default"), ("email", "nobody@example.com")],
    )
    .await;
    assert_eq!(unknown.status, 200);
    assert!(unknown.body.contains("we sent it a code"));
    let code = s.last_code("ann@example.com").await;
    let new_password = "a brand new horse battery staple";
    let done = form_post(
        &mut b,
        "/reset",
        "/reset",
        &[
            ("tenant", "default"),
            ("email", "ann@example.com"),
            ("code", code.as_str()),
            ("new_password", new_password),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().starts_with("/login?tenant=default"));
    // The reset ended the SSO session elsewhere; the new password works.
    assert_eq!(other.get("/account").await.status, 303);
    let page = sign_in_with(&mut b, "", "ann@example.com", new_password).await;
    assert_eq!(page.status, 303, "{}", page.body);
    s.stop().await;
}

#[tokio::test]
async fn an_account_held_back_for_verification_signs_in_with_the_emailed_code() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.signup.require_email_verification = true;
    })
    .await;
    let mut b = Browser::new(&s);
    let page = form_post(
        &mut b,
        "/signup",
        "/signup",
        &[
            ("tenant", "default"),
            ("email", "new@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("action=\"/verify-email\""));
    assert!(!b.cookies.contains_key(SSO));
    // Not before the proof.
    let early = sign_in_with(&mut b, "", "new@example.com", PASSWORD).await;
    assert_eq!(early.status, 403, "{}", early.body);
    let code = s.last_code("new@example.com").await;
    let wrong = form_post(
        &mut b,
        "/verify-email?email=new%40example.com",
        "/verify-email",
        &[("tenant", "default"), ("email", "new@example.com"), ("code", "000000")],
    )
    .await;
    assert_eq!(wrong.status, 400);
    let done = form_post(
        &mut b,
        "/verify-email?email=new%40example.com",
        "/verify-email",
        &[
            ("tenant", "default"),
            ("email", "new@example.com"),
            ("code", code.as_str()),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/account");
    let account = b.get("/account").await;
    assert!(account.body.contains("(verified)"), "{}", account.body);
    // The password shown with the code was kept.
    let mut again = Browser::new(&s);
    assert_eq!(
        sign_in_with(&mut again, "", "new@example.com", PASSWORD).await.status,
        303
    );
    s.stop().await;
}

/// The authenticator app of a page showing an `otpauth://` link.
fn app_of(page: &Page) -> TOTP {
    let start = page.body.find("href=\"otpauth").expect("an otpauth link") + "href=\"".len();
    let end = page.body[start..].find('"').unwrap();
    let uri = unescape(&page.body[start..start + end])
        .replace("&#x2f;", "/")
        .replace("&#47;", "/");
    TOTP::from_url(&uri).unwrap()
}

#[tokio::test]
async fn a_tenant_policy_makes_a_user_without_a_factor_enrol_one_first() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&root))
        .patch(
            "/v1/tenant/settings",
            serde_json::json!({"mfa": {"policy": "all", "grace": "0s"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut b = Browser::new(&s);
    let step = sign_in_with(&mut b, "", "ann@example.com", PASSWORD).await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(step.body.contains("action=\"/mfa/enrol\""));
    assert!(!b.cookies.contains_key(SSO));
    let app = app_of(&step);
    let csrf = step.csrf();
    let challenge = hidden(&step, "challenge");
    let factor = hidden(&step, "factor");
    let code = code_at(&s, &app);
    let done = b
        .post(
            "/mfa/enrol",
            &[
                ("csrf", csrf.as_str()),
                ("tenant", "default"),
                ("return_to", "/account"),
                ("challenge", challenge.as_str()),
                ("factor", factor.as_str()),
                ("code", code.as_str()),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("recovery codes"));
    assert!(b.cookies.contains_key(SSO));
    let account = b.get("/account").await;
    assert!(account.body.contains("totp"), "{}", account.body);
    s.stop().await;
}

#[tokio::test]
async fn the_account_page_adds_and_removes_an_authenticator_app() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = signed_in(&s, "ann@example.com").await;
    let wrong = act(&mut b, "/account/factors/totp", &[("current_password", "wrong")]).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let started = act(&mut b, "/account/factors/totp", &[("current_password", PASSWORD)]).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let app = app_of(&started);
    let factor = hidden(&started, "factor");
    let code = code_at(&s, &app);
    let codes = act(
        &mut b,
        "/account/factors/totp/confirm",
        &[("factor", factor.as_str()), ("code", code.as_str())],
    )
    .await;
    assert_eq!(codes.status, 200, "{}", codes.body);
    assert!(codes.body.contains("recovery codes"));
    let account = b.get("/account").await;
    assert!(account.body.contains(&format!("/account/factors/{factor}/remove")));
    // This session signed in with the password alone: removing the factor
    // needs a second factor, as in the API.
    let refused = act(&mut b, &format!("/account/factors/{factor}/remove"), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    s.stop().await;
}

#[tokio::test]
async fn a_branded_tenant_shows_its_name_logo_and_accent_escaped() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&root))
        .patch(
            "/v1/tenant/settings",
            serde_json::json!({"branding": {
                "name": "Acme <script>alert(1)</script> & \"Co\"",
                "logo_url": "https://cdn.example.com/logo.png?a=1&b=2",
                "accent": "#FF0000",
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut b = Browser::new(&s);
    let page = b.get("/login?tenant=default").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("\"Co\""), "{}", page.body);
    let name = "Acme &#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;Co&#34;";
    let alt = unescape(name);
    assert_eq!(alt, "Acme <script>alert(1)</script> & \"Co\"");
    assert!(
        page.body.contains(name) || page.body.contains("Acme &lt;script&gt;"),
        "{}",
        page.body
    );
    // The logo is the header's image, named by the brand.
    let img = page.body.find("<img src=\"").expect("the logo");
    let tag = &page.body[img..img + page.body[img..].find('>').unwrap()];
    assert!(
        unescape(tag).contains("src=\"https://cdn.example.com/logo.png?a=1&b=2\""),
        "{tag}"
    );
    assert!(unescape(tag).contains(&format!("alt=\"{alt}\"")), "{tag}");
    assert!(page.body.contains("/hosted/brand.css?tenant=default"));
    // The CSP lets the https: logo load.
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("img-src 'self' data: https:"), "{csp}");
    // The accent comes from the brand stylesheet, lower-cased.
    let css = b.get("/hosted/brand.css?tenant=default").await;
    assert_eq!(css.status, 200);
    assert!(css.body.contains("--accent:#ff0000"), "{}", css.body);
    // Other hosted pages carry the brand too.
    let reset = b.get("/reset?tenant=default").await;
    assert!(reset.body.contains("cdn.example.com/logo.png"), "{}", reset.body);
    s.stop().await;
}

/// Posts the code request form of `/login` ("Email me a code" or "Text me
/// a code").
async fn request_code(b: &mut Browser, identifier: &str, via: &str) -> Page {
    let form = b.get("/login?tenant=default&return_to=%2Fwelcome").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("action=\"/login/code\""), "{}", form.body);
    let csrf = form.csrf();
    b.post(
        "/login/code",
        &[
            ("csrf", csrf.as_str()),
            ("tenant", "default"),
            ("return_to", "/welcome"),
            ("identifier", identifier),
            ("via", via),
        ],
    )
    .await
}

async fn enter_code(b: &mut Browser, step: &Page, identifier: &str, code: &str) -> Page {
    let csrf = step.csrf();
    b.post(
        "/login/code/verify",
        &[
            ("csrf", csrf.as_str()),
            ("tenant", "default"),
            ("return_to", "/welcome"),
            ("identifier", identifier),
            ("code", code),
        ],
    )
    .await
}

#[tokio::test]
async fn signing_in_with_an_emailed_code() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let step = request_code(&mut b, "ann@example.com", "email").await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(step.body.contains("action=\"/login/code/verify\""), "{}", step.body);
    assert!(step.body.contains("we sent it a code"));
    let code = s.last_code("ann@example.com").await;
    assert!(!step.body.contains(&code), "the code is never on a page");
    // A wrong code reads as generic, and opens nothing.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = enter_code(&mut b, &step, "ann@example.com", wrong).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("Wrong or expired code."));
    assert!(!b.cookies.contains_key(SSO));
    let done = enter_code(&mut b, &refused, "ann@example.com", &code).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/welcome");
    assert!(!done.location().contains(&code));
    assert!(b.cookies.contains_key(SSO));
    let account = b.get("/account").await;
    assert!(account.body.contains("ann@example.com"));
    // The code is spent.
    let mut other = Browser::new(&s);
    let again = request_code(&mut other, "bob@example.com", "sms").await;
    assert_eq!(again.status, 400, "a text needs a phone number: {}", again.body);
    let replay = enter_code(&mut other, &again, "ann@example.com", &code).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    // No API session was opened by the hosted sign-in.
    let (_, log) = s
        .as_user(access(&s.admin("root@example.com", PASSWORD).await))
        .get("/v1/audit?event=otp_verified")
        .await;
    assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log}");
    assert!(log["items"][0]["detail"].get("session_id").is_none(), "{log}");
    s.stop().await;
}

#[tokio::test]
async fn a_code_for_an_unknown_address_reads_the_same_and_resends_are_limited() {
    let s = server().await;
    s.signup("ann@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let known = request_code(&mut b, "ann@example.com", "email").await;
    let unknown = request_code(&mut b, "+14155550100", "sms").await;
    assert_eq!(known.status, 200);
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert!(unknown.body.contains("we sent it a code"));
    // The API's resend cooldown holds here too.
    let soon = request_code(&mut b, "ann@example.com", "email").await;
    assert_eq!(soon.status, 429, "{}", soon.body);
    assert!(soon.headers.contains_key("retry-after"));
    assert_eq!(s.outbox("ann@example.com").await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_code_sign_in_goes_through_the_second_step() {
    let s = server().await;
    let session = s.signup("ann@example.com", PASSWORD).await;
    let (_, _, app) = crate::factors::enrol(&s, access(&session), "phone").await;
    s.clock().advance(30);
    let mut b = Browser::new(&s);
    let step = request_code(&mut b, "ann@example.com", "email").await;
    let code = s.last_code("ann@example.com").await;
    let mfa = enter_code(&mut b, &step, "ann@example.com", &code).await;
    assert_eq!(mfa.status, 200, "{}", mfa.body);
    assert!(mfa.body.contains("action=\"/mfa\""), "{}", mfa.body);
    assert!(!b.cookies.contains_key(SSO), "no session before the second step");
    let fields = [
        ("csrf", mfa.csrf()),
        ("tenant", "default".to_string()),
        ("return_to", "/welcome".to_string()),
        ("challenge", hidden(&mfa, "challenge")),
        ("code", code_at(&s, &app)),
    ];
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let done = post_owned(&mut b, "/mfa", &fields).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/welcome");
    assert!(b.cookies.contains_key(SSO));
    s.stop().await;
}

#[tokio::test]
async fn connected_apps_are_listed_and_their_access_taken_back() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (status, created) = s
        .as_user(access(&root))
        .post(
            "/v1/clients",
            serde_json::json!({
                "name": "Grafana <b>",
                "type": "confidential",
                "redirect_uris": ["https://grafana.example.com/cb"],
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let client_id = created["client_id"].as_str().unwrap().to_string();
    let ann = s.signup("ann@example.com", PASSWORD).await;
    let ann_id: uuid::Uuid = ann["user"]["id"].as_str().unwrap().parse().unwrap();
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let scopes = vec!["openid".to_string(), "email".to_string()];
    s.state()
        .consents
        .grant(
            tenant.id,
            ann_id,
            &client_id,
            &scopes,
            &forge::service::RequestMeta::default(),
        )
        .await
        .unwrap();
    let (app_token, _) = crate::clients::client_session(&s, &ann, &client_id).await;
    assert!(crate::clients::works(&s, &app_token).await);

    let mut b = signed_in(&s, "ann@example.com").await;
    let account = b.get("/account").await;
    assert!(account.body.contains("Grafana &#60;b&#62;") || account.body.contains("Grafana &lt;b&gt;"));
    assert!(account.body.contains("openid email"), "{}", account.body);
    let action = format!("/account/apps/{client_id}/revoke");
    assert!(
        account.body.contains(&format!("action=\"{action}\"")),
        "{}",
        account.body
    );
    // Without the session's CSRF token the revoke is refused.
    let forged = b.post(&action, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(crate::clients::works(&s, &app_token).await);
    let done = act(&mut b, &action, &[]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().contains("done=app-revoked"));
    assert!(!crate::clients::works(&s, &app_token).await, "the app's session ends");
    let account = b.get("/account").await;
    assert!(account.body.contains("No app has access to your account."));
    // Nothing left to take back.
    let again = act(&mut b, &action, &[]).await;
    assert_eq!(again.status, 404, "{}", again.body);
    s.stop().await;
}

/// A passwordless passkey ceremony on `/login` with `key`; the answer of
/// the post.
async fn passkey_sign_in(b: &mut Browser, key: &mut forge::testing::passkey::SoftPasskey) -> Page {
    let form = b.get("/login?tenant=default&return_to=%2Fwelcome").await;
    assert_eq!(form.status, 200);
    let csp = form.headers["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("'nonce-"), "the passkey script may run: {csp}");
    let csrf = form.csrf();
    let options = b.post("/login/passkey/options", &[("csrf", &csrf)]).await;
    assert_eq!(options.status, 200, "{}", options.body);
    let options: serde_json::Value = serde_json::from_str(&options.body).unwrap();
    let credential = key.sign_in(&options["publicKey"]);
    b.post(
        "/login/passkey",
        &[
            ("csrf", csrf.as_str()),
            ("tenant", "default"),
            ("return_to", "/welcome"),
            ("request_id", options["request_id"].as_str().unwrap()),
            ("credential", &credential.to_string()),
        ],
    )
    .await
}

#[tokio::test]
async fn a_passkey_alone_signs_in_on_the_hosted_login_page() {
    let s = server().await;
    let mut key = crate::passkeys::authenticator();
    crate::passkeys::user_with_passkey(&s, "ann@example.com", &mut key).await;
    // A passkey answering a phishing page's origin is refused.
    let mut phished = key.clone();
    phished.set_origin("https://forge.evil.example");
    let mut b = Browser::new(&s);
    let refused = passkey_sign_in(&mut b, &mut phished).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("The passkey was not accepted"));
    assert!(!b.cookies.contains_key(SSO));
    let done = passkey_sign_in(&mut b, &mut key).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/welcome");
    assert!(b.cookies.contains_key(SSO));
    let account = b.get("/account").await;
    assert!(account.body.contains("ann@example.com"));
    assert!(account.body.contains("with a second factor"), "{}", account.body);
    s.stop().await;
}

#[tokio::test]
async fn the_account_page_changes_the_email_through_a_code_to_the_new_address() {
    let s = server().await;
    s.signup_verified("ann@example.com", PASSWORD).await;
    let mut b = signed_in(&s, "ann@example.com").await;
    // The current password is required.
    let wrong = act(
        &mut b,
        "/account/address",
        &[
            ("kind", "email"),
            ("address", "new@example.com"),
            ("current_password", "nope"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("Your current password is not right."));
    let bad = act(
        &mut b,
        "/account/address",
        &[
            ("kind", "email"),
            ("address", "not an email"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let sent = act(
        &mut b,
        "/account/address",
        &[
            ("kind", "email"),
            ("address", "new@example.com"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(sent.location().contains("done=address-sent"));
    let account = b.get("/account").await;
    assert!(
        account.body.contains("Code sent to new@example.com"),
        "{}",
        account.body
    );
    assert!(account.body.contains("id=\"email\">ann@example.com"), "not changed yet");
    let code = s.last_code("new@example.com").await;
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let refused = act(
        &mut b,
        "/account/address/confirm",
        &[("kind", "email"), ("code", wrong_code)],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let done = act(
        &mut b,
        "/account/address/confirm",
        &[("kind", "email"), ("code", code.as_str())],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().contains("done=address-changed"));
    let account = b.get("/account").await;
    assert_eq!(account.status, 200, "still signed in");
    assert!(
        account.body.contains("id=\"email\">new@example.com"),
        "{}",
        account.body
    );
    // The new address signs in; the old one no more.
    let mut other = Browser::new(&s);
    assert_eq!(
        sign_in_with(&mut other, "", "new@example.com", PASSWORD).await.status,
        303
    );
    let mut old = Browser::new(&s);
    assert_eq!(
        sign_in_with(&mut old, "", "ann@example.com", PASSWORD).await.status,
        401
    );
    s.stop().await;
}
