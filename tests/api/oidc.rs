//! forge as an OpenID Connect provider, over HTTP, driven by hand the way a
//! relying party and a browser without JavaScript drive it: register a
//! client, send the browser to `/oauth/authorize`, sign in on `/login`,
//! consent, follow the redirects, exchange the code at the token endpoint,
//! call userinfo, refresh, revoke and sign out, each rule of RFC 6749
//! section 4.1, RFC 7636 and OpenID Connect checked by an attack on it.

use std::sync::{Arc, Mutex};

use base64::Engine;
use forge::testing::TestServer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::PASSWORD;
use crate::support::claims;
use crate::support::site_client::{Browser, Page};

const SSO: &str = "forge_sso";
const REDIRECT: &str = "https://app.example/cb";
const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more-0123456789";

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
    })
    .await
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An administrator's token, to register clients with.
async fn admin(s: &TestServer) -> String {
    s.admin("root@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Registers a client through the API (`POST /v1/clients` as an
/// administrator); returns `(client_id, client_secret)` (no secret for a
/// public client).
async fn client(s: &TestServer, admin: &str, spec: Value) -> (String, Option<String>) {
    let mut body = json!({
        "name": "App",
        "type": "confidential",
        "redirect_uris": [REDIRECT],
        "scopes": ["openid", "profile", "email", "phone", "offline_access", "roles", "tenant"],
    });
    for (k, v) in spec.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = s.as_user(admin).post("/v1/clients", body).await;
    assert_eq!(status, 201, "{created}");
    (
        created["client_id"].as_str().unwrap().to_string(),
        created["client_secret"].as_str().map(str::to_string),
    )
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    serde_urlencoded::from_str(query).unwrap()
}

fn param(location: &str, name: &str) -> Option<String> {
    query_of(location).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn authorize_path(client_id: &str, extra: &[(&str, &str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email offline_access"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(key, _)| key != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    format!("/oauth/authorize?{}", serde_urlencoded::to_string(params).unwrap())
}

fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).expect("the hidden field") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    page.body[start..start + end]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#61;", "=")
        .replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

/// Signs in on the page `/login` sent us to; the response of the post.
async fn sign_in_at(b: &mut Browser, login: &str, email: &str) -> Page {
    let form = b.get(login).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();
    let tenant = hidden(&form, "tenant");
    let return_to = hidden(&form, "return_to");
    b.post(
        "/login",
        &[
            ("csrf", csrf.as_str()),
            ("tenant", tenant.as_str()),
            ("return_to", return_to.as_str()),
            ("identifier", email),
            ("password", PASSWORD),
        ],
    )
    .await
}

/// Runs the browser part of the flow from `path` to the client's redirect:
/// sign-in when asked, consent (allowed, remembered) when asked. Returns
/// the redirect's location.
async fn browse(b: &mut Browser, path: &str, email: &str) -> String {
    let mut page = b.get(path).await;
    for _ in 0..6 {
        if page.status == 200 && page.body.contains("action=\"/consent\"") {
            let csrf = page.csrf();
            let return_to = hidden(&page, "return_to");
            page = b
                .post(
                    "/consent",
                    &[
                        ("csrf", csrf.as_str()),
                        ("return_to", return_to.as_str()),
                        ("decision", "allow"),
                        ("remember", "1"),
                    ],
                )
                .await;
            continue;
        }
        assert_eq!(page.status, 303, "{}", page.body);
        let location = page.location().to_string();
        if location.starts_with(REDIRECT) || location.starts_with("https://") {
            return location;
        }
        page = if location.starts_with("/login") {
            sign_in_at(b, &location, email).await
        } else {
            b.get(&location).await
        };
    }
    panic!("the flow did not end at the client");
}

/// A token request with HTTP Basic client authentication.
async fn token_basic(
    s: &TestServer,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = s
        .client()
        .post(s.url("/v1/auth/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

async fn token_form(s: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = s
        .client()
        .post(s.url("/v1/auth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn exchange(s: &TestServer, id: &str, secret: &str, code: &str, verifier: &str) -> (u16, Value) {
    let (status, body, _) = token_basic(
        s,
        id,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (status, body)
}

async fn userinfo(s: &TestServer, token: &str) -> (u16, Value) {
    let resp = s
        .client()
        .get(s.url("/oauth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

struct Setup {
    s: TestServer,
    admin: String,
    id: String,
    secret: String,
}

async fn setup(spec: Value) -> Setup {
    let s = server().await;
    let admin = admin(&s).await;
    s.signup_verified("ann@example.com", PASSWORD).await;
    let (id, secret) = client(&s, &admin, spec).await;
    Setup {
        s,
        admin,
        id,
        secret: secret.unwrap_or_default(),
    }
}

/// A browser signed in as ann that went through the flow once; the code.
async fn code_for(t: &Setup, b: &mut Browser, extra: &[(&str, &str)]) -> String {
    let location = browse(b, &authorize_path(&t.id, extra), "ann@example.com").await;
    assert!(location.starts_with(REDIRECT), "{location}");
    param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

#[tokio::test]
async fn the_code_flow_with_pkce_signs_in_consents_and_gives_tokens() {
    let t = setup(json!({})).await;
    let s = &t.s;
    let mut b = Browser::new(s);

    // No session: the sign-in page, coming back to this very request.
    let first = b.get(&authorize_path(&t.id, &[])).await;
    assert_eq!(first.status, 303);
    let login = first.location().to_string();
    assert!(login.starts_with("/login?"), "{login}");
    assert_eq!(param(&login, "tenant").as_deref(), Some("default"));
    let return_to = param(&login, "return_to").unwrap();
    assert!(return_to.starts_with("/oauth/authorize?"), "{return_to}");

    let signed = sign_in_at(&mut b, &login, "ann@example.com").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert!(b.cookies.contains_key(SSO));
    // Back at authorize: consent for a client that is not first-party.
    let consent = b.get(signed.location()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("App"));
    assert!(consent.body.contains("See your email address"));
    assert_eq!(
        consent.headers.get("x-frame-options").unwrap(),
        "DENY",
        "the consent page is never framed"
    );
    let csrf = consent.csrf();
    let return_to = hidden(&consent, "return_to");
    let allowed = b
        .post(
            "/consent",
            &[
                ("csrf", csrf.as_str()),
                ("return_to", return_to.as_str()),
                ("decision", "allow"),
                ("remember", "1"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    let location = allowed.location();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(param(location, "state").as_deref(), Some("st-1"));
    assert_eq!(param(location, "iss").as_deref(), Some("http://localhost:8080"));
    let code = param(location, "code").unwrap();
    assert_eq!(code.len(), 43);

    let (status, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid email offline_access");
    assert!(tokens["refresh_token"].is_string(), "offline_access gives one");
    let access = tokens["access_token"].as_str().unwrap();
    let at = claims(access);
    assert_eq!(at["client_id"], t.id.as_str());
    assert_eq!(at["scope"], "openid email offline_access");
    let id_token = tokens["id_token"].as_str().unwrap();
    let id = claims(id_token);
    assert_eq!(id["aud"], t.id.as_str());
    assert_eq!(id["azp"], t.id.as_str());
    assert_eq!(id["iss"], "http://localhost:8080");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["acr"], "1");
    assert_eq!(id["amr"], json!(["pwd"]));
    assert_eq!(id["email"], "ann@example.com");
    assert_eq!(id["email_verified"], true);
    assert!(id["auth_time"].is_i64() && id["sid"].is_string() && id["at_hash"].is_string());
    assert_eq!(id["sub"], at["sub"]);

    // Userinfo by the granted scopes.
    let (status, info) = userinfo(s, access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], at["sub"]);
    assert_eq!(info["email"], "ann@example.com");
    assert!(info.get("phone_number").is_none() && info.get("roles").is_none());

    // Consent remembered: the next request goes straight back with a code.
    let again = b.get(&authorize_path(&t.id, &[])).await;
    assert_eq!(again.status, 303);
    assert!(again.location().starts_with(REDIRECT), "{}", again.location());

    // The code is audited, never written.
    let rows = s
        .state()
        .store
        .list_audit(forge::store::AuditQuery {
            tenant_id: forge::store::DEFAULT_TENANT_ID,
            user_id: None,
            event: Some("authorization_code_issued".to_string()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(!rows.iter().any(|r| format!("{r:?}").contains(&code)));
    assert!(rows.iter().all(|r| r.detail["client_id"] == t.id.as_str()));
}

#[tokio::test]
async fn errors_before_the_redirect_is_valid_are_pages_and_after_it_redirects() {
    let t = setup(json!({})).await;
    let s = &t.s;
    let mut b = Browser::new(s);
    for path in [
        authorize_path(&t.id, &[("redirect_uri", "https://evil.example/cb")]),
        authorize_path("unknown-client", &[]),
        authorize_path("", &[]),
        format!("{}&state=twice", authorize_path(&t.id, &[])),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.headers.get("location").is_none(), "never redirected: {path}");
        assert!(!page.body.contains("evil.example"));
    }
    for (extra, error) in [
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (vec![("request", "eyJhbGciOiJub25lIn0.e30.")], "request_not_supported"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("prompt", "none")], "login_required"),
    ] {
        let page = b.get(&authorize_path(&t.id, &extra)).await;
        assert_eq!(page.status, 303, "{extra:?}");
        let location = page.location();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(param(location, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(param(location, "state").as_deref(), Some("st-1"));
        assert_eq!(param(location, "iss").as_deref(), Some("http://localhost:8080"));
        assert!(param(location, "code").is_none());
    }
    // Signed in, prompt=none without consent: consent_required; denying: access_denied.
    let mut b = Browser::new(s);
    let login = b.get(&authorize_path(&t.id, &[])).await.location().to_string();
    let signed = sign_in_at(&mut b, &login, "ann@example.com").await;
    let page = b.get(&authorize_path(&t.id, &[("prompt", "none")])).await;
    assert_eq!(param(page.location(), "error").as_deref(), Some("consent_required"));
    let consent = b.get(signed.location()).await;
    assert_eq!(consent.status, 200);
    let csrf = consent.csrf();
    let return_to = hidden(&consent, "return_to");
    let denied = b
        .post(
            "/consent",
            &[
                ("csrf", csrf.as_str()),
                ("return_to", return_to.as_str()),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(param(denied.location(), "error").as_deref(), Some("access_denied"));
    // A consent form without this session's CSRF token is refused.
    let forged = b
        .post(
            "/consent",
            &[
                ("csrf", "forged"),
                ("return_to", return_to.as_str()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(forged.status, 400);
    assert!(forged.headers.get("location").is_none());
}

#[tokio::test]
async fn a_code_is_single_use_bound_to_its_client_redirect_and_verifier_and_short_lived() {
    let t = setup(json!({"first_party": true})).await;
    let s = &t.s;
    let (other, other_secret) = client(s, &t.admin, json!({"name": "Other", "first_party": true})).await;
    let other_secret = other_secret.unwrap();
    let mut b = Browser::new(s);

    // Reused code: refused, and the tokens of its first use are revoked.
    let code = code_for(&t, &mut b, &[]).await;
    let (status, first) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(userinfo(s, first["access_token"].as_str().unwrap()).await.0, 401);
    let (status, refreshed, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!((status, refreshed["error"].as_str()), (400, Some("invalid_grant")));

    // Missing and wrong verifier.
    let code = code_for(&t, &mut b, &[]).await;
    let (status, body, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let code = code_for(&t, &mut b, &[]).await;
    let wrong = format!("{VERIFIER}x");
    assert_eq!(exchange(s, &t.id, &t.secret, &code, &wrong).await.0, 400);

    // Wrong redirect_uri.
    let code = code_for(&t, &mut b, &[]).await;
    let (status, body, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // The code of another client.
    let code = code_for(&t, &mut b, &[]).await;
    let (status, body) = exchange(s, &other, &other_secret, &code, VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Expired: 60 seconds.
    let code = code_for(&t, &mut b, &[]).await;
    s.clock().advance(61);
    let (status, body) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // A wrong secret: 401 invalid_client with a Basic challenge.
    let code = code_for(&t, &mut b, &[]).await;
    let (status, body, headers) = token_basic(
        s,
        &t.id,
        "wrong",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(
        headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // client_secret_post works as well.
    let (status, body) = token_form(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &t.id),
            ("client_secret", &t.secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_public_client_must_use_pkce_and_no_secret() {
    let t = setup(json!({"type": "public", "first_party": true})).await;
    let s = &t.s;
    let mut b = Browser::new(s);
    let page = b
        .get(&authorize_path(
            &t.id,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ))
        .await;
    assert_eq!(param(page.location(), "error").as_deref(), Some("invalid_request"));
    let code = code_for(&t, &mut b, &[]).await;
    let (status, body) = token_form(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &t.id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_credentials_again() {
    let t = setup(json!({"first_party": true})).await;
    let s = &t.s;
    let mut b = Browser::new(s);
    code_for(&t, &mut b, &[]).await;
    for extra in [vec![("prompt", "login")], vec![("max_age", "0")]] {
        s.clock().advance(2);
        let page = b.get(&authorize_path(&t.id, &extra)).await;
        let login = page.location().to_string();
        assert!(login.starts_with("/login?"), "{extra:?}: {login}");
        assert_eq!(param(&login, "force").as_deref(), Some("1"));
        assert!(!param(&login, "return_to").unwrap().contains("prompt=login"), "no loop");
    }
    // login_hint is passed on.
    let mut fresh = Browser::new(s);
    let page = fresh
        .get(&authorize_path(&t.id, &[("login_hint", "ann@example.com")]))
        .await;
    assert_eq!(param(page.location(), "login_hint").as_deref(), Some("ann@example.com"));
}

#[tokio::test]
async fn client_credentials_give_a_token_for_the_client_only() {
    let t = setup(json!({
        "grant_types": ["client_credentials"],
        "scopes": ["reports:read", "reports:write"],
        "redirect_uris": [],
    }))
    .await;
    let s = &t.s;
    let (status, body, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[("grant_type", "client_credentials"), ("scope", "reports:read")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    assert_eq!(body["scope"], "reports:read");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], t.id.as_str());
    assert_eq!(c["client_id"], t.id.as_str());
    assert!(c.get("email").is_none());
    let (status, body, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[("grant_type", "client_credentials"), ("scope", "admin")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    // A client without the grant may not.
    let (other, other_secret) = client(s, &t.admin, json!({"name": "Web"})).await;
    let (status, body, _) = token_basic(
        s,
        &other,
        &other_secret.unwrap(),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
}

#[tokio::test]
async fn a_client_refresh_token_rotates_only_with_its_client() {
    let t = setup(json!({"first_party": true})).await;
    let s = &t.s;
    let (other, other_secret) = client(s, &t.admin, json!({"name": "Other"})).await;
    let mut b = Browser::new(s);
    let code = code_for(&t, &mut b, &[]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let (status, _) = s.post("/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(status, 401, "/v1/auth/refresh refuses a client's token");
    let (status, body) = token_form(s, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body, _) = token_basic(
        s,
        &other,
        &other_secret.unwrap(),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    let (status, rotated, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let c = claims(rotated["access_token"].as_str().unwrap());
    assert_eq!(c["client_id"], t.id.as_str());
    assert_eq!(c["scope"], "openid email offline_access");
    assert_eq!(userinfo(s, rotated["access_token"].as_str().unwrap()).await.0, 200);

    // Without offline_access: no refresh token.
    let code = code_for(&t, &mut b, &[("scope", "openid")]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
}

#[tokio::test]
async fn userinfo_answers_by_scope() {
    let t = setup(json!({"first_party": true})).await;
    let s = &t.s;
    let mut b = Browser::new(s);
    let code = code_for(&t, &mut b, &[("scope", "openid roles tenant")]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let (status, info) = userinfo(s, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{info}");
    assert!(info.get("email").is_none());
    assert_eq!(info["roles"], json!([]));
    assert_eq!(info["tenant"], "default");
    // POST works too; an API token (no client) is refused.
    let resp = s
        .client()
        .post(s.url("/oauth/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let api = s.login("ann@example.com", PASSWORD).await;
    assert_eq!(userinfo(s, api["access_token"].as_str().unwrap()).await.0, 401);
}

/// The attack: sign up with someone else's address (never proving it) and
/// sign in to an app that links accounts by email. forge hands the app no
/// address the user did not prove, in the ID token or at userinfo.
#[tokio::test]
async fn an_unproven_email_is_never_asserted_to_a_client() {
    let s = server().await;
    let admin = admin(&s).await;
    s.signup("victim@example.com", PASSWORD).await;
    let (id, secret) = client(&s, &admin, json!({"first_party": true})).await;
    let secret = secret.unwrap();
    let mut b = Browser::new(&s);
    let location = browse(
        &mut b,
        &authorize_path(&id, &[("scope", "openid email phone")]),
        "victim@example.com",
    )
    .await;
    let code = param(&location, "code").unwrap();
    let (status, tokens) = exchange(&s, &id, &secret, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    let (_, info) = userinfo(&s, tokens["access_token"].as_str().unwrap()).await;
    for asserted in [&id_token, &info] {
        assert!(asserted.get("email").is_none(), "{asserted}");
        assert_eq!(asserted["email_verified"], false, "{asserted}");
        assert!(!asserted.to_string().contains("victim@example.com"), "{asserted}");
    }
}

#[tokio::test]
async fn revocation_ends_the_client_session_and_always_answers_200() {
    let t = setup(json!({"first_party": true})).await;
    let s = &t.s;
    let mut b = Browser::new(s);
    let code = code_for(&t, &mut b, &[]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let revoke = |token: String| {
        let (id, secret) = (t.id.clone(), t.secret.clone());
        let client = s.client().clone();
        let url = s.url("/oauth/revoke");
        async move {
            client
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke("not-a-token".into()).await, 200);
    assert_eq!(revoke(tokens["refresh_token"].as_str().unwrap().into()).await, 200);
    assert_eq!(userinfo(s, tokens["access_token"].as_str().unwrap()).await.0, 401);
    let resp = s
        .client()
        .post(s.url("/oauth/revoke"))
        .basic_auth(&t.id, Some("wrong"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A local back-channel receiver: the logout tokens POSTed to it.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let app = axum::Router::new().route(
        "/bc",
        axum::routing::post(
            move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let store = store.clone();
                async move {
                    store
                        .lock()
                        .unwrap()
                        .push(form.get("logout_token").cloned().unwrap_or_default());
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://127.0.0.1:{}/bc", addr.port()), got)
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_sessions_and_tells_the_back_channel() {
    let (uri, got) = receiver().await;
    let t = setup(json!({
        "first_party": true,
        "post_logout_redirect_uris": ["https://app.example/bye"],
        "backchannel_logout_uri": uri,
    }))
    .await;
    let s = &t.s;
    let mut b = Browser::new(s);
    let code = code_for(&t, &mut b, &[]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = claims(id_token)["sid"].as_str().unwrap().to_string();

    // An unregistered post_logout_redirect_uri is not followed.
    let path = format!(
        "/oauth/logout?{}",
        serde_urlencoded::to_string([
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .unwrap()
    );
    let page = b.get(&path).await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with("/logged-out"), "{}", page.location());
    assert!(!b.cookies.contains_key(SSO), "the SSO cookie is cleared");
    assert_eq!(userinfo(s, tokens["access_token"].as_str().unwrap()).await.0, 401);

    // The back channel got a signed logout token for that session.
    let mut token = None;
    for _ in 0..100 {
        if let Some(t) = got.lock().unwrap().first().cloned() {
            token = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let token = token.expect("a logout token was delivered");
    verify_signature(s, &token).await;
    let c = claims(&token);
    assert_eq!(c["aud"], t.id.as_str());
    assert_eq!(c["sid"], sid.as_str());
    assert!(c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(c.get("nonce").is_none());

    // A registered one is followed, with state.
    let code = code_for(&t, &mut b, &[]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let path = format!(
        "/oauth/logout?{}",
        serde_urlencoded::to_string([
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", "https://app.example/bye"),
            ("state", "s2"),
        ])
        .unwrap()
    );
    let page = b.get(&path).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "https://app.example/bye?state=s2");
}

/// Checks a token's EdDSA signature against the published JWKS.
async fn verify_signature(s: &TestServer, token: &str) {
    let jwks: Value = s.get("/.well-known/jwks.json").response().await.json().await.unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the signing key is published");
    assert_eq!(key["kty"], "OKP");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_ed_der(&x);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["iss"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation).expect("a valid signature");
}

#[tokio::test]
async fn the_discovery_document_lists_what_works() {
    let s = server().await;
    let conf: Value = s
        .get("/.well-known/openid-configuration")
        .response()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(conf["response_types_supported"], json!(["code"]));
    assert_eq!(conf["response_modes_supported"], json!(["query"]));
    assert_eq!(conf["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        conf["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(conf["id_token_signing_alg_values_supported"], json!(["EdDSA", "RS256"]));
    assert_eq!(conf["prompt_values_supported"], json!(["none", "login", "consent"]));
    assert_eq!(conf["subject_types_supported"], json!(["public"]));
    assert_eq!(conf["authorization_response_iss_parameter_supported"], true);
    assert_eq!(conf["backchannel_logout_supported"], true);
    assert_eq!(conf["backchannel_logout_session_supported"], true);
    assert_eq!(conf["frontchannel_logout_supported"], false);
    assert_eq!(
        conf["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials", "password"])
    );
    // Every endpoint answers (not 404) at the address advertised.
    let base = "http://localhost:8080";
    for (name, method) in [
        ("authorization_endpoint", "GET"),
        ("token_endpoint", "POST"),
        ("userinfo_endpoint", "GET"),
        ("end_session_endpoint", "GET"),
        ("revocation_endpoint", "POST"),
        ("jwks_uri", "GET"),
        ("introspection_endpoint", "POST"),
    ] {
        let url = conf[name].as_str().unwrap();
        let path = url.strip_prefix(base).unwrap_or_else(|| panic!("{name}: {url}"));
        let resp = s
            .client()
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), s.url(path))
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 404, "{name}");
    }

    // Every advertised scope and claim is one the flow gives: one client
    // asking for all of them, with an ID token signed by each algorithm.
    let admin = admin(&s).await;
    s.signup_verified("ann@example.com", PASSWORD).await;
    let scopes: Vec<String> = conf["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut seen_claims = std::collections::BTreeSet::new();
    for alg in ["EdDSA", "RS256"] {
        let (id, secret) = client(
            &s,
            &admin,
            json!({"first_party": true, "scopes": scopes, "id_token_signed_response_alg": alg}),
        )
        .await;
        let secret = secret.unwrap();
        let mut b = Browser::new(&s);
        let location = browse(
            &mut b,
            &authorize_path(&id, &[("scope", &scopes.join(" "))]),
            "ann@example.com",
        )
        .await;
        let code = param(&location, "code").unwrap();
        let (status, tokens) = exchange(&s, &id, &secret, &code, VERIFIER).await;
        assert_eq!(status, 200, "{tokens}");
        let id_token = tokens["id_token"].as_str().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id_token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg);
        seen_claims.extend(claims(id_token).as_object().unwrap().keys().cloned());
        let (_, info) = userinfo(&s, tokens["access_token"].as_str().unwrap()).await;
        seen_claims.extend(info.as_object().unwrap().keys().cloned());
    }
    // phone_number needs a phone; name needs one in the metadata: those
    // two are checked by `user_claims` unit tests.
    for claim in conf["claims_supported"].as_array().unwrap() {
        let claim = claim.as_str().unwrap();
        if ["phone_number", "phone_number_verified", "name"].contains(&claim) {
            continue;
        }
        assert!(seen_claims.contains(claim), "claim {claim} advertised but never given");
    }
    // The password grant (advertised) works as ever.
    let (status, body) = token_form(
        &s,
        &[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn signing_out_on_the_hosted_pages_ends_the_client_sessions_too() {
    let t = setup(json!({"first_party": true})).await;
    let s = &t.s;
    let mut b = Browser::new(s);
    let code = code_for(&t, &mut b, &[]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(s, access).await.0, 200);
    let account = b.get("/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    let csrf = account.csrf();
    let out = b.post("/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(userinfo(s, access).await.0, 401);
    let (status, _, _) = token_basic(
        s,
        &t.id,
        &t.secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn logout_without_a_hint_of_this_session_asks_first_and_only_the_confirmed_post_ends_it() {
    let t = setup(json!({
        "first_party": true,
        "post_logout_redirect_uris": ["https://app.example/bye"],
    }))
    .await;
    let s = &t.s;
    let mut b = Browser::new(s);
    let code = code_for(&t, &mut b, &[]).await;
    let (_, tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    // Another browser's session of the same user: its ID token is a valid
    // hint, but of another session.
    let mut other = Browser::new(s);
    let code = code_for(&t, &mut other, &[]).await;
    let (_, other_tokens) = exchange(s, &t.id, &t.secret, &code, VERIFIER).await;

    let attacks = [
        serde_urlencoded::to_string([
            ("client_id", t.id.as_str()),
            ("post_logout_redirect_uri", "https://app.example/bye"),
            ("state", "s1"),
        ])
        .unwrap(),
        serde_urlencoded::to_string([("id_token_hint", "not.a.token")]).unwrap(),
        serde_urlencoded::to_string([("id_token_hint", other_tokens["id_token"].as_str().unwrap())]).unwrap(),
    ];
    let mut confirm = None;
    for query in &attacks {
        // A link or image on another site: the browser sends its cookie.
        let req = b
            .request(reqwest::Method::GET, &format!("/oauth/logout?{query}"))
            .header("sec-fetch-site", "cross-site");
        let page = b.send(req).await;
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        assert!(page.body.contains("Sign out of"), "{}", page.body);
        assert!(
            page.set_cookies().iter().all(|c| !c.starts_with(SSO)),
            "the SSO cookie is kept"
        );
        assert!(b.cookies.contains_key(SSO));
        assert_eq!(userinfo(s, &access).await.0, 200, "the client session is alive");
        assert_eq!(b.get("/account").await.status, 200, "the SSO session is alive");
        confirm.get_or_insert(page);
    }
    let confirm = confirm.unwrap();
    let csrf = confirm.csrf();
    assert_eq!(hidden(&confirm, "post_logout_redirect_uri"), "https://app.example/bye");

    // A POST without the CSRF token, or with a wrong one, or from another site.
    let fields = [
        ("client_id", t.id.as_str()),
        ("post_logout_redirect_uri", "https://app.example/bye"),
        ("state", "s1"),
    ];
    let page = b.post("/oauth/logout", &fields).await;
    assert_eq!(page.status, 403, "{}", page.body);
    let mut wrong = vec![("csrf", "wrong")];
    wrong.extend_from_slice(&fields);
    assert_eq!(b.post("/oauth/logout", &wrong).await.status, 403);
    let mut with_csrf = vec![("csrf", csrf.as_str())];
    with_csrf.extend_from_slice(&fields);
    let req = b
        .request(reqwest::Method::POST, "/oauth/logout")
        .header("sec-fetch-site", "cross-site")
        .form(&with_csrf);
    assert_eq!(b.send(req).await.status, 403);
    assert_eq!(userinfo(s, &access).await.0, 200, "still alive");
    assert!(b.cookies.contains_key(SSO));

    // The user's own confirmation ends the sessions and follows the
    // registered redirect with state.
    let page = b.post("/oauth/logout", &with_csrf).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "https://app.example/bye?state=s1");
    assert!(!b.cookies.contains_key(SSO), "the SSO cookie is cleared");
    assert_eq!(userinfo(s, &access).await.0, 401);
    // The other browser's session is untouched.
    assert_eq!(userinfo(s, other_tokens["access_token"].as_str().unwrap()).await.0, 200);
}
