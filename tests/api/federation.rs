//! Sign-in through upstream providers, over HTTP, against real providers
//! on 127.0.0.1: a second forge as the OpenID Connect upstream (its own
//! hosted login and authorization endpoint), the `FakeOidcProvider`
//! fixture for the attacks a real provider would never make (wrong
//! audience, nonce, expiry, unknown key), and the `FakeGithub` stand-in
//! for GitHub's OAuth 2 endpoints.
//!
//! The [`Wanderer`] is a browser without JavaScript across several
//! origins: it keeps cookies per origin, follows redirects by hand, and
//! stops at a page or at a URL outside the servers it knows (the app's
//! `redirect_to`).

use std::collections::HashMap;

use forge::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::PASSWORD;
use crate::support::site_client::Page;

/// The app's `redirect_to`: never served, the wanderer stops there.
const APP: &str = "http://app.test/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-federation";

fn challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A forge listening where its `public_url` says, so another server can
/// reach the URLs it publishes (discovery, redirects).
pub async fn forge_at_own_url(configure: impl FnOnce(&mut forge::config::Config)) -> TestServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    TestServer::start_with(|c| {
        c.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        c.server.public_url = format!("http://127.0.0.1:{port}");
        c.jwt.issuer = c.server.public_url.clone();
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
        c.server.allowed_redirects = vec!["http://app.test".into()];
        configure(c);
    })
    .await
}

/// A browser across origins (see the module docs).
pub struct Wanderer {
    client: reqwest::Client,
    /// Cookies by origin (`http://127.0.0.1:PORT`).
    pub cookies: HashMap<String, HashMap<String, String>>,
    /// The origins it follows redirects into.
    known: Vec<String>,
}

fn origin_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.origin().ascii_serialization()
}

impl Wanderer {
    pub fn new(known: &[&str]) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            known: known.iter().map(|k| origin_of(k)).collect(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Page {
        let origin = origin_of(url);
        let jar = self.cookies.entry(origin.clone()).or_default();
        let mut req = req;
        if !jar.is_empty() {
            let header = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", header);
        }
        let resp = req.send().await.unwrap();
        let page = Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: String::new(),
        };
        let body = resp.text().await.unwrap();
        let page = Page { body, ..page };
        let jar = self.cookies.entry(origin).or_default();
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap_or_default();
            let (name, value) = first.split_once('=').unwrap();
            if c.contains("Max-Age=0") || value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
        page
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let req = self.client.get(url);
        self.send(req, url).await
    }

    /// A GET with one more header (what a proxy in front could add).
    pub async fn get_with(&mut self, url: &str, name: &str, value: &str) -> Page {
        let req = self.client.get(url).header(name, value);
        self.send(req, url).await
    }

    /// A same-origin form post, as a browser sends it.
    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(url).header("sec-fetch-site", "same-origin").form(form);
        self.send(req, url).await
    }

    /// A form post from another site (a provider's `form_post` answer).
    pub async fn post_from_afar(&mut self, url: &str, body: &str) -> Page {
        let req = self
            .client
            .post(url)
            .header("sec-fetch-site", "cross-site")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        self.send(req, url).await
    }

    /// Follows redirects from `url` while they stay on known origins;
    /// answers the last URL and its page (a page, or a redirect out).
    pub async fn follow(&mut self, url: &str) -> (String, Page) {
        let mut url = url.to_string();
        for _ in 0..20 {
            let page = self.get(&url).await;
            if !page.status.is_redirection() {
                return (url, page);
            }
            let next = url::Url::parse(&url)
                .unwrap()
                .join(page.location())
                .unwrap()
                .to_string();
            if !self.known.contains(&origin_of(&next)) {
                return (next, page);
            }
            url = next;
        }
        panic!("too many redirects from {url}");
    }

    /// The redirect target of a response to `from`.
    pub fn next_of(from: &str, page: &Page) -> String {
        url::Url::parse(from)
            .unwrap()
            .join(page.location())
            .unwrap()
            .to_string()
    }
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

fn param(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A second forge as the upstream: a first-party client whose redirect
/// URI is `down`'s callback for provider `id`, and a person with a
/// verified email. Answers `(client_id, client_secret)`.
async fn upstream_client(up: &TestServer, down: &TestServer, id: &str) -> (String, String) {
    let admin = up.admin("root@up.example", PASSWORD).await;
    let token = admin["access_token"].as_str().unwrap();
    let (status, created) = up
        .as_user(token)
        .post(
            "/v1/clients",
            json!({
                "name": "Downstream",
                "type": "confidential",
                "first_party": true,
                "redirect_uris": [format!("{}/v1/auth/providers/{id}/callback", down.base_url())],
                "scopes": ["openid", "email", "profile"],
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    (
        created["client_id"].as_str().unwrap().to_string(),
        created["client_secret"].as_str().unwrap().to_string(),
    )
}

/// Registers a provider on `down` as its administrator (`admin` token).
async fn register(down: &TestServer, admin: &str, body: Value) {
    let (status, created) = down.as_user(admin).post("/v1/providers", body).await;
    assert_eq!(status, 201, "{created}");
    assert!(created.get("client_secret").is_none(), "{created}");
}

/// Two forges: `up` the provider with `ann@up.example` (verified), `down`
/// with provider `upstream` pointing at it. Answers `(up, down, down's
/// admin token)`.
async fn pair(configure_down: impl FnOnce(&mut forge::config::Config)) -> (TestServer, TestServer, String) {
    let up = forge_at_own_url(|_| {}).await;
    let down = forge_at_own_url(configure_down).await;
    let (client_id, secret) = upstream_client(&up, &down, "upstream").await;
    up.signup_verified("ann@up.example", PASSWORD).await;
    let admin = down.admin("root@down.example", PASSWORD).await;
    let admin = admin["access_token"].as_str().unwrap().to_string();
    register(
        &down,
        &admin,
        json!({
            "id": "upstream", "kind": "oidc", "name": "Upstream forge",
            "client_id": client_id, "client_secret": secret,
            "issuer": up.base_url(),
        }),
    )
    .await;
    (up, down, admin)
}

/// Posts the upstream forge's sign-in form (`page`) as `who`; answers
/// where its 303 goes.
async fn sign_in_upstream(w: &mut Wanderer, up: &TestServer, page: &Page, who: &str) -> String {
    let posted = w
        .post(
            &up.url("/login"),
            &[
                ("csrf", hidden(page, "csrf").as_str()),
                ("tenant", hidden(page, "tenant").as_str()),
                ("return_to", hidden(page, "return_to").as_str()),
                ("identifier", who),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    Wanderer::next_of(&up.url("/login"), &posted)
}

/// The API flow through the upstream forge's own sign-in page, as `who`:
/// answers the URL the browser ends at (the app's, with `code` or
/// `error`).
async fn api_flow(w: &mut Wanderer, up: &TestServer, down: &TestServer, who: &str) -> String {
    let start = format!(
        "{}/v1/auth/providers/upstream/start?redirect_to={}&code_challenge={}",
        down.base_url(),
        APP,
        challenge(VERIFIER)
    );
    let (at, page) = w.follow(&start).await;
    if !at.starts_with(up.base_url()) || page.status != 200 {
        return at;
    }
    // The upstream's sign-in page (unless the browser is signed in there).
    assert!(at.contains("/login"), "{at}");
    let next = sign_in_upstream(w, up, &page, who).await;
    let (at, _) = w.follow(&next).await;
    at
}

async fn exchange(down: &TestServer, code: &str, verifier: &str) -> (StatusCode, Value) {
    down.post("/v1/auth/exchange", json!({"code": code, "code_verifier": verifier}))
        .await
}

#[tokio::test]
async fn a_second_forge_signs_people_in_and_the_identity_is_the_key() {
    let (up, down, admin) = pair(|_| {}).await;
    let mut w = Wanderer::new(&[up.base_url(), down.base_url()]);
    let at = api_flow(&mut w, &up, &down, "ann@up.example").await;
    assert!(at.starts_with(APP), "{at}");
    let code = param(&at, "code").unwrap_or_else(|| panic!("no code in {at}"));

    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = crate::support::claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["fed"]), "{claims}");
    assert_eq!(tokens["user"]["email"], "ann@up.example");
    assert_eq!(tokens["user"]["email_verified"], true, "the upstream vouched for it");
    let user_id = tokens["user"]["id"].as_str().unwrap().to_string();

    // The code was single use.
    let (status, again) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(again["error"], "invalid_code");

    let (status, ids) = down
        .as_user(tokens["access_token"].as_str().unwrap())
        .get("/v1/users/me/identities")
        .await;
    assert_eq!(status, 200, "{ids}");
    assert_eq!(ids["items"].as_array().unwrap().len(), 1, "{ids}");
    assert_eq!(ids["items"][0]["provider"], "upstream");
    assert_eq!(ids["items"][0]["email"], "ann@up.example");

    // A second sign-in (the browser is signed in upstream now: no page)
    // reaches the same account.
    let at = api_flow(&mut w, &up, &down, "ann@up.example").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("no code in {at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["id"], user_id.as_str());

    // Administrators see the identity.
    let (status, seen) = down
        .as_user(&admin)
        .get(&format!("/v1/users/{user_id}/identities"))
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["items"][0]["provider"], "upstream");
}

#[tokio::test]
async fn the_exchange_needs_the_apps_verifier_and_a_wrong_one_burns_the_code() {
    let (up, down, _) = pair(|_| {}).await;
    let mut w = Wanderer::new(&[up.base_url(), down.base_url()]);
    let at = api_flow(&mut w, &up, &down, "ann@up.example").await;
    let code = param(&at, "code").unwrap();
    let (status, body) = exchange(&down, &code, &VERIFIER.replace('d', "e")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_code");
    let (status, _) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 400, "a code stolen from the URL is spent by its first try");
}

#[tokio::test]
async fn a_callback_from_another_browser_or_with_another_state_is_refused() {
    let (up, down, admin) = pair(|_| {}).await;
    let mut w = Wanderer::new(&[up.base_url(), down.base_url()]);
    // Stop at the callback: the upstream's redirect into `down`.
    let start = api_start(&down, "upstream");
    let first = w.get(&start).await;
    assert_eq!(first.status, 302);
    let authorize = Wanderer::next_of(&start, &first);
    let (_, page) = w.follow(&authorize).await;
    let back = sign_in_upstream(&mut w, &up, &page, "ann@up.example").await;
    let to_authorize = w.get(&back).await;
    let callback = Wanderer::next_of(&back, &to_authorize);
    assert!(callback.starts_with(down.base_url()), "{callback}");

    // The attacker's browser (no flow cookie) cannot finish it ...
    let mut attacker = Wanderer::new(&[down.base_url()]);
    let refused = attacker.get(&callback).await;
    assert_eq!(refused.status, 303, "{}", refused.body);
    assert!(
        refused.location().contains("error=invalid_request"),
        "{}",
        refused.location()
    );
    // ... nor can this browser with a state it did not start with.
    let forged = callback.replace("state=", "state=x");
    let refused = w.get(&forged).await;
    assert_eq!(refused.status, 303, "{}", refused.body);
    assert!(refused.location().starts_with("/login?"), "{}", refused.location());
    assert!(
        refused.location().contains("error=invalid_request"),
        "{}",
        refused.location()
    );
    let page = w.get(&down.url(refused.location())).await;
    assert!(page.body.contains("started in another browser"), "{}", page.body);
    // No account was created by either.
    let (_, users) = down.as_user(&admin).get("/v1/users?q=ann").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 0, "{users}");
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let (up, down, _) = pair(|_| {}).await;
    let mut w = Wanderer::new(&[up.base_url(), down.base_url()]);
    let start = api_start(&down, "upstream");
    // Sign in upstream first, so the authorization redirects straight back.
    let at = api_flow(&mut w, &up, &down, "ann@up.example").await;
    assert!(param(&at, "code").is_some(), "{at}");
    let first = w.get(&start).await;
    let flow_cookie = w.cookies[&origin_of(down.base_url())]["forge_fed"].clone();
    let authorize = Wanderer::next_of(&start, &first);
    let to_callback = w.get(&authorize).await;
    let callback = Wanderer::next_of(&authorize, &to_callback);
    let done = w.get(&callback).await;
    assert_eq!(done.status, 302);
    assert!(param(&Wanderer::next_of(&callback, &done), "code").is_some());
    // The same callback again, even with the flow cookie put back.
    w.cookies
        .get_mut(&origin_of(down.base_url()))
        .unwrap()
        .insert("forge_fed".into(), flow_cookie);
    let replay = w.get(&callback).await;
    let replay_at = if replay.status.is_redirection() {
        Wanderer::next_of(&callback, &replay)
    } else {
        String::new()
    };
    assert!(
        param(&replay_at, "code").is_none() || replay_at.is_empty(),
        "a replay got a code: {replay_at}"
    );
}

#[tokio::test]
async fn start_checks_redirect_to_and_the_challenge_and_names_only_enabled_providers() {
    let (_up, down, _) = pair(|_| {}).await;
    let bad = [
        (
            403,
            format!(
                "redirect_to=https://evil.example/cb&code_challenge={}",
                challenge(VERIFIER)
            ),
        ),
        (403, format!("code_challenge={}", challenge(VERIFIER))),
        (400, format!("redirect_to={APP}")),
        (400, format!("redirect_to={APP}&code_challenge=short")),
        (401, "link_ticket=fl1.forged.ticket".to_string()),
    ];
    for (expected, query) in bad {
        let resp = down
            .get(&format!("/v1/auth/providers/upstream/start?{query}"))
            .response()
            .await;
        assert_eq!(resp.status(), expected, "{query}");
        assert!(resp.headers().get("location").is_none());
    }
    let resp = down
        .get(&format!(
            "/v1/auth/providers/nope/start?redirect_to={APP}&code_challenge={}",
            challenge(VERIFIER)
        ))
        .response()
        .await;
    assert_eq!(resp.status(), 404);
    let (status, list) = down.get("/v1/auth/providers").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["items"],
        json!([{"id": "upstream", "name": "Upstream forge", "kind": "oidc"}])
    );
    // Another tenant has none.
    let resp = down.get("/v1/auth/providers?tenant=nosuch").response().await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn an_unreachable_provider_is_a_clear_answer_not_a_500() {
    let down = forge_at_own_url(|_| {}).await;
    let admin = down.admin("root@down.example", PASSWORD).await;
    let admin = admin["access_token"].as_str().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    register(
        &down,
        admin,
        json!({"id": "gone", "kind": "oidc", "name": "Gone", "client_id": "c", "client_secret": "s",
               "issuer": format!("http://127.0.0.1:{closed}")}),
    )
    .await;
    let resp = down
        .get(&format!(
            "/v1/auth/providers/gone/start?redirect_to={APP}&code_challenge={}",
            challenge(VERIFIER)
        ))
        .response()
        .await;
    assert_eq!(resp.status(), 503);
    let mut w = Wanderer::new(&[down.base_url()]);
    let page = w.get(&down.url("/login/provider/gone")).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("cannot be reached"), "{}", page.body);
    let metrics = down.get("/metrics").response().await.text().await.unwrap();
    assert!(metrics.contains("forge_upstream_failures_total"), "{metrics}");
}

#[tokio::test]
async fn the_hosted_button_signs_in_to_the_account_page() {
    let (up, down, _) = pair(|_| {}).await;
    let mut w = Wanderer::new(&[up.base_url(), down.base_url()]);
    let login = w.get(&down.url("/login")).await;
    assert!(login.body.contains("data-provider=\"upstream\""), "{}", login.body);
    let (at, page) = w.follow(&down.url("/login/provider/upstream")).await;
    assert!(at.starts_with(up.base_url()), "{at}");
    let back = sign_in_upstream(&mut w, &up, &page, "ann@up.example").await;
    let (at, account) = w.follow(&back).await;
    assert_eq!(at, down.url("/account"));
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains("data-identity=\"upstream\""), "{}", account.body);
    assert!(account.body.contains("ann@up.example"));
}

#[tokio::test]
async fn an_existing_account_is_never_linked_without_the_tenants_consent() {
    let (up, down, admin) = pair(|_| {}).await;
    // ann has a password account on `down` already, with the same email.
    let own = down.signup_verified("ann@up.example", PASSWORD).await;
    let own_id = own["user"]["id"].as_str().unwrap().to_string();
    let mut w = Wanderer::new(&[up.base_url(), down.base_url()]);
    let at = api_flow(&mut w, &up, &down, "ann@up.example").await;
    assert_eq!(param(&at, "error").as_deref(), Some("account_exists"), "{at}");

    // With automatic linking on, the verified email links.
    allow_auto_link(&down, &admin).await;
    let at = api_flow(&mut w, &up, &down, "ann@up.example").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["id"], own_id.as_str());
    let (_, audit) = down.as_user(&admin).get("/v1/audit?event=identity_linked").await;
    assert!(audit.to_string().contains("upstream"), "{audit}");
}

use forge::testing::upstream::{FakeGithub, FakeOidcProvider, GithubUser, Misbehaviour, Person};

/// `down` with provider `fake` on a [`FakeOidcProvider`] whose person is
/// already signed in there (its `/authorize` answers at once). Answers
/// `(op, down, admin token)`.
async fn fake() -> (FakeOidcProvider, TestServer, String) {
    let down = forge_at_own_url(|_| {}).await;
    let op = FakeOidcProvider::start("forge-client", "op-secret").await;
    let admin = down.admin("root@down.example", PASSWORD).await;
    let admin = admin["access_token"].as_str().unwrap().to_string();
    register(
        &down,
        &admin,
        json!({"id": "fake", "kind": "oidc", "name": "Fake", "client_id": "forge-client",
               "client_secret": "op-secret", "issuer": op.issuer().as_str().trim_end_matches('/')}),
    )
    .await;
    (op, down, admin)
}

/// Runs the API flow with `provider` to its end: the app's URL.
async fn flow_through(w: &mut Wanderer, down: &TestServer, provider: &str) -> String {
    let start = api_start(down, provider);
    let (at, page) = w.follow(&start).await;
    assert!(!page.status.is_server_error(), "{at}: {}", page.body);
    at
}

/// The start URL of the API flow with `provider`.
fn api_start(down: &TestServer, provider: &str) -> String {
    format!(
        "{}/v1/auth/providers/{provider}/start?redirect_to={APP}&code_challenge={}",
        down.base_url(),
        challenge(VERIFIER)
    )
}

/// Turns on the tenant's automatic linking by verified email.
async fn allow_auto_link(down: &TestServer, admin: &str) {
    let (status, body) = down
        .as_user(admin)
        .patch(
            "/v1/tenant/settings",
            json!({"federation": {"auto_link_verified_email": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn user_count(down: &TestServer, admin: &str) -> usize {
    let (status, users) = down.as_user(admin).get("/v1/users?limit=200").await;
    assert_eq!(status, 200, "{users}");
    users["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn id_tokens_that_prove_nothing_sign_nobody_in() {
    let (op, down, admin) = fake().await;
    let before = user_count(&down, &admin).await;
    for mode in [
        Misbehaviour::WrongAudience,
        Misbehaviour::WrongNonce,
        Misbehaviour::Expired,
        Misbehaviour::UnknownKey,
        Misbehaviour::WrongIssuer,
    ] {
        op.set_misbehaviour(Some(mode));
        let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
        let at = flow_through(&mut w, &down, "fake").await;
        assert!(at.starts_with(APP), "{mode:?}: {at}");
        assert_eq!(param(&at, "error").as_deref(), Some("server_error"), "{mode:?}: {at}");
        assert!(param(&at, "code").is_none(), "{mode:?}");
    }
    assert_eq!(
        user_count(&down, &admin).await,
        before,
        "no account from a token that proves nothing"
    );
    let (_, audit) = down.as_user(&admin).get("/v1/audit?event=federated_login_failed").await;
    assert!(audit["items"].as_array().unwrap().len() >= 5, "{audit}");

    op.set_misbehaviour(None);
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let at = flow_through(&mut w, &down, "fake").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], "jane@example.com");
}

#[tokio::test]
async fn a_rotated_provider_key_is_followed() {
    let (op, down, _) = fake().await;
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let at = flow_through(&mut w, &down, "fake").await;
    assert!(param(&at, "code").is_some(), "{at}");
    op.rotate_key();
    let at = flow_through(&mut w, &down, "fake").await;
    assert!(param(&at, "code").is_some(), "after rotation: {at}");
}

#[tokio::test]
async fn an_unverified_upstream_email_never_reaches_an_existing_account() {
    let (op, down, admin) = fake().await;
    let victim = down.signup_verified("jane@example.com", PASSWORD).await;
    let victim_id = victim["user"]["id"].as_str().unwrap().to_string();
    allow_auto_link(&down, &admin).await;
    // The attacker's upstream account claims the victim's address, unverified.
    op.set_person(Person {
        sub: "attacker-1".into(),
        email: Some("jane@example.com".into()),
        email_verified: false,
        name: None,
    });
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let at = flow_through(&mut w, &down, "fake").await;
    assert_eq!(param(&at, "error").as_deref(), Some("account_exists"), "{at}");
    let (_, ids) = down
        .as_user(&admin)
        .get(&format!("/v1/users/{victim_id}/identities"))
        .await;
    assert_eq!(ids["items"], json!([]), "nothing linked to the victim");

    // A new address, unverified upstream: an account, but the address is
    // not claimed on it.
    op.set_person(Person {
        sub: "someone-2".into(),
        email: Some("new@example.com".into()),
        email_verified: false,
        name: Some("Someone".into()),
    });
    let at = flow_through(&mut w, &down, "fake").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], Value::Null, "{tokens}");
    assert_eq!(tokens["user"]["metadata"]["name"], "Someone");
    // Its only way in is the identity: it cannot be unlinked.
    let token = tokens["access_token"].as_str().unwrap();
    let (_, ids) = down.as_user(token).get("/v1/users/me/identities").await;
    let id = ids["items"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = down
        .as_user(token)
        .delete(&format!("/v1/users/me/identities/{id}"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "last_sign_in_method");
}

#[tokio::test]
async fn a_user_with_a_second_factor_still_answers_it() {
    let (op, down, admin) = fake().await;
    allow_auto_link(&down, &admin).await;
    let jane = down.signup_verified("jane@example.com", PASSWORD).await;
    crate::factors::enrol(&down, jane["access_token"].as_str().unwrap(), "phone").await;
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let at = flow_through(&mut w, &down, "fake").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, answer) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["mfa_required"], true, "{answer}");
    assert!(answer.get("access_token").is_none());
}

#[tokio::test]
async fn linking_from_the_api_adds_an_identity_once_and_unlinking_removes_it() {
    let (op, down, _) = fake().await;
    let me = down.signup_verified("owner@example.com", PASSWORD).await;
    let token = me["access_token"].as_str().unwrap();
    let resp = down
        .as_user(token)
        .get(&format!("/v1/users/me/identities/fake/link?redirect_to={APP}"))
        .header("accept", "application/json")
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    let url = resp.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_string();
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let (at, _) = w.follow(&url).await;
    assert_eq!(param(&at, "linked").as_deref(), Some("fake"), "{at}");
    // The ticket was single use.
    let again = w.get(&url).await;
    assert_eq!(again.status, 401, "{}", again.body);

    let (_, ids) = down.as_user(token).get("/v1/users/me/identities").await;
    assert_eq!(ids["items"].as_array().unwrap().len(), 1, "{ids}");
    let id = ids["items"][0]["id"].as_str().unwrap().to_string();
    // Signing in with it reaches this account.
    let at = flow_through(&mut w, &down, "fake").await;
    let (status, tokens) = exchange(&down, &param(&at, "code").unwrap(), VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["id"], me["user"]["id"]);

    let (status, _) = down
        .as_user(token)
        .delete(&format!("/v1/users/me/identities/{id}"))
        .await;
    assert_eq!(status, 204);
    let (_, ids) = down.as_user(token).get("/v1/users/me/identities").await;
    assert_eq!(ids["items"], json!([]));
    // Someone else's identity id is 404.
    let (status, _) = down
        .as_user(token)
        .delete(&format!("/v1/users/me/identities/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn github_signs_in_with_its_primary_verified_email() {
    let down = forge_at_own_url(|_| {}).await;
    let gh = FakeGithub::start("gh-client", "gh-secret").await;
    let admin = down.admin("root@down.example", PASSWORD).await;
    let admin = admin["access_token"].as_str().unwrap();
    let base = gh.base_url();
    register(
        &down,
        admin,
        json!({"id": "github", "kind": "github", "name": "GitHub", "client_id": "gh-client",
               "client_secret": "gh-secret",
               "authorize_url": base.join("login/oauth/authorize").unwrap().as_str(),
               "token_url": base.join("login/oauth/access_token").unwrap().as_str(),
               "userinfo_url": base.join("user").unwrap().as_str()}),
    )
    .await;
    let mut w = Wanderer::new(&[down.base_url(), base.as_str()]);
    let at = flow_through(&mut w, &down, "github").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], "octocat@github.com");
    assert_eq!(tokens["user"]["email_verified"], true);

    // Another GitHub user whose primary address is unverified: no email.
    gh.set_user(GithubUser {
        id: 42,
        login: "newbie".into(),
        name: None,
    });
    gh.set_emails(vec![
        json!({"email": "newbie@example.com", "primary": true, "verified": false, "visibility": "private"}),
    ]);
    let at = flow_through(&mut w, &down, "github").await;
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], Value::Null);
}

#[tokio::test]
async fn a_provider_failing_at_the_token_endpoint_ends_on_a_clear_error() {
    let (op, down, admin) = fake().await;
    let before = user_count(&down, &admin).await;
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    // Discovery is cached by the first start; then the provider breaks.
    let callback = to_callback(&mut w, &api_start(&down, "fake")).await;
    op.set_failing(true);
    let done = w.get(&callback).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let at = Wanderer::next_of(&callback, &done);
    assert_eq!(param(&at, "error").as_deref(), Some("temporarily_unavailable"), "{at}");
    assert_eq!(user_count(&down, &admin).await, before);
    let metrics = down.get("/metrics").response().await.text().await.unwrap();
    assert!(metrics.contains("forge_upstream_failures_total{"), "{metrics}");
}

/// Apple answers with `response_mode=form_post`: the same answer as a
/// cross-site form post to the callback signs in; a body that is no such
/// form (empty, without a state, a field twice) is refused and creates
/// nothing.
#[tokio::test]
async fn the_callback_takes_the_answer_as_a_form_post() {
    let (op, down, admin) = fake().await;
    let before = user_count(&down, &admin).await;
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let callback = url::Url::parse(&to_callback(&mut w, &api_start(&down, "fake")).await).unwrap();
    assert!(callback.as_str().starts_with(down.base_url()), "{callback}");
    let mut target = callback.clone();
    target.set_query(None);
    let answer: Vec<(String, String)> = callback.query_pairs().into_owned().collect();

    // A tenant that cannot exist is 404, as on every browser-facing endpoint.
    let page = w.get(&format!("{callback}&tenant=no.such")).await;
    assert_eq!(page.status, 404, "{}", page.body);
    for no_answer in ["", "code=&error=&error_description=", "state=a&state=b"] {
        let page = w.post_from_afar(target.as_str(), no_answer).await;
        assert_eq!(page.status, 400, "{no_answer}: {}", page.body);
    }
    assert_eq!(user_count(&down, &admin).await, before);

    // The provider's real answer, posted (with a field forge ignores): signed in.
    let mut answer = answer;
    answer.push(("id_token".into(), "ignored".into()));
    let body = serde_urlencoded::to_string(&answer).unwrap();
    let page = w.post_from_afar(target.as_str(), &body).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let at = Wanderer::next_of(target.as_str(), &page);
    let code = param(&at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(&down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["email"], "jane@example.com");
}

/// The callback URL the provider sends this browser to after `start` (a
/// provider that answers at once, like the fakes).
async fn to_callback(w: &mut Wanderer, start: &str) -> String {
    let first = w.get(start).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let authorize = Wanderer::next_of(start, &first);
    let back = w.get(&authorize).await;
    assert!(back.status.is_redirection(), "{}", back.body);
    Wanderer::next_of(&authorize, &back)
}

/// Providers are a tenant's own. Another tenant's start (API or hosted)
/// naming one is 404 and sets no flow cookie, a link ticket is good only in
/// its tenant, and a callback carrying one tenant's flow while naming
/// another tenant is refused. Two tenants may each have a provider of the
/// same id, so the same callback path: each flow finishes with its own
/// tenant's provider, in its own tenant.
#[tokio::test]
async fn a_provider_of_one_tenant_is_no_way_into_another() {
    let (op, down, admin) = fake().await;
    let (status, body) = down
        .as_user(&admin)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "admin": {"email": "boss@acme.test", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let boss = crate::support::login_in(&down, "acme", "boss@acme.test", PASSWORD).await;
    let boss = boss["access_token"].as_str().unwrap().to_string();
    let default_users = user_count(&down, &admin).await;
    let acme_users = user_count(&down, &boss).await;
    let no_fed_cookie = |w: &Wanderer| {
        w.cookies
            .get(&origin_of(down.base_url()))
            .is_none_or(|jar| !jar.contains_key("forge_fed"))
    };

    // acme lists none of default's providers, and starting one there is 404.
    let (status, list) = down.get("/v1/auth/providers?tenant=acme").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"], json!([]));
    let api_start = format!(
        "/v1/auth/providers/fake/start?redirect_to={APP}&code_challenge={}",
        challenge(VERIFIER)
    );
    for resp in [
        down.get(&format!("{api_start}&tenant=acme")).response().await,
        down.get(&api_start).tenant("acme").response().await,
    ] {
        assert_eq!(resp.status(), 404);
        assert!(resp.headers().get("location").is_none());
        assert!(resp.headers().get("set-cookie").is_none());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{body}");
    }
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let page = w.get(&down.url("/login/provider/fake?tenant=acme")).await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.headers.get("location").is_none());
    assert!(no_fed_cookie(&w));

    // acme registers a provider of the same id, on another upstream.
    let op2 = FakeOidcProvider::start("acme-client", "acme-secret").await;
    op2.set_person(Person {
        sub: "acme-person".into(),
        email: Some("jo@acme.test".into()),
        email_verified: true,
        name: Some("Jo".into()),
    });
    register(
        &down,
        &boss,
        json!({"id": "fake", "kind": "oidc", "name": "Acme's", "client_id": "acme-client",
               "client_secret": "acme-secret", "issuer": op2.issuer().as_str().trim_end_matches('/')}),
    )
    .await;

    // A callback of default's flow naming acme, by query or header: refused,
    // back to the flow's own app with an error.
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str(), op2.issuer().as_str()]);
    for by_header in [false, true] {
        let callback = to_callback(&mut w, &down.url(&api_start)).await;
        assert!(
            callback.starts_with(&down.url("/v1/auth/providers/fake/callback")),
            "{callback}"
        );
        let page = if by_header {
            w.get_with(&callback, "x-forge-tenant", "acme").await
        } else {
            w.get(&format!("{callback}&tenant=acme")).await
        };
        assert_eq!(page.status, 302, "{}", page.body);
        let at = Wanderer::next_of(&callback, &page);
        assert!(at.starts_with(APP), "{at}");
        assert_eq!(param(&at, "error").as_deref(), Some("invalid_request"), "{at}");
        assert!(param(&at, "code").is_none(), "{at}");
        assert!(no_fed_cookie(&w), "the flow is spent");
    }
    // The hosted pages' flow likewise: back to default's sign-in page.
    let callback = to_callback(&mut w, &down.url("/login/provider/fake")).await;
    let page = w.get(&format!("{callback}&tenant=acme")).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location().starts_with("/login?"), "{}", page.location());
    assert!(page.location().contains("tenant=default"), "{}", page.location());
    assert!(page.location().contains("error=invalid_request"), "{}", page.location());
    assert!(
        !page
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("forge_sso=") && !c.contains("Max-Age=0")),
        "no session: {:?}",
        page.set_cookies()
    );
    assert_eq!(user_count(&down, &admin).await, default_users, "nobody new in default");
    assert_eq!(user_count(&down, &boss).await, acme_users, "nobody new in acme");

    // A link ticket of default is no good in acme (nor after that: spent).
    let me = down.signup_verified("owner@example.com", PASSWORD).await;
    let resp = down
        .as_user(me["access_token"].as_str().unwrap())
        .get(&format!("/v1/users/me/identities/fake/link?redirect_to={APP}"))
        .header("accept", "application/json")
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    let link = resp.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_string();
    assert!(link.contains("tenant=default"), "{link}");
    let page = w.get(&link.replace("tenant=default", "tenant=acme")).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(no_fed_cookie(&w));

    // Untouched, each tenant's flow on the one callback path finishes with
    // its own provider, in its own tenant.
    for (tenant, email) in [("default", "jane@example.com"), ("acme", "jo@acme.test")] {
        let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str(), op2.issuer().as_str()]);
        let (at, _) = w.follow(&down.url(&format!("{api_start}&tenant={tenant}"))).await;
        let code = param(&at, "code").unwrap_or_else(|| panic!("{tenant}: {at}"));
        let (status, tokens) = exchange(&down, &code, VERIFIER).await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(tokens["user"]["email"], email);
        assert_eq!(tokens["user"]["tenant"], tenant, "{tokens}");
        let claims = crate::support::claims(tokens["access_token"].as_str().unwrap());
        assert_eq!(claims["tid"], tenant, "{claims}");
    }
    assert_eq!(user_count(&down, &boss).await, acme_users + 1);
}

/// A user with a second factor who signs in with the hosted pages'
/// provider button gets the hosted second step, not the account page: no
/// session until the code is answered (a wrong one opens none), then on to
/// `return_to`, signed in with the second factor.
#[tokio::test]
async fn the_hosted_button_leads_a_user_with_a_factor_through_the_second_step() {
    let (op, down, admin) = fake().await;
    allow_auto_link(&down, &admin).await;
    let jane = down.signup_verified("jane@example.com", PASSWORD).await;
    let (_, _, app) = crate::factors::enrol(&down, jane["access_token"].as_str().unwrap(), "phone").await;
    down.clock().advance(30);
    let code_now = || app.generate(u64::try_from(down.clock().now()).unwrap());
    let origin = origin_of(down.base_url());

    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let (at, step) = w
        .follow(&down.url("/login/provider/fake?return_to=%2Faccount%3Fstep%3D2"))
        .await;
    assert!(at.starts_with(&down.url("/v1/auth/providers/fake/callback")), "{at}");
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(step.body.contains("action=\"/mfa\""), "{}", step.body);
    assert!(
        !w.cookies[&origin].contains_key("forge_sso"),
        "no session before the second step"
    );
    assert!(!w.cookies[&origin].contains_key("forge_fed"), "the flow is spent");
    assert_eq!(hidden(&step, "return_to"), "/account?step=2");
    assert_eq!(hidden(&step, "tenant"), "default");
    let answer = |page: &Page, code: String| {
        vec![
            ("csrf".to_string(), page.csrf()),
            ("tenant".to_string(), hidden(page, "tenant")),
            ("return_to".to_string(), hidden(page, "return_to")),
            ("challenge".to_string(), hidden(page, "challenge")),
            ("code".to_string(), code),
        ]
    };
    let post = async |w: &mut Wanderer, fields: Vec<(String, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        w.post(&down.url("/mfa"), &fields).await
    };

    // A wrong code: the step again, still no session.
    let wrong: String = code_now()
        .chars()
        .map(|c| char::from_digit((c.to_digit(10).unwrap() + 1) % 10, 10).unwrap())
        .collect();
    let again = post(&mut w, answer(&step, wrong)).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert!(again.body.contains("action=\"/mfa\""), "{}", again.body);
    assert!(!w.cookies[&origin].contains_key("forge_sso"));
    let account = w.get(&down.url("/account")).await;
    assert_eq!(account.status, 303, "not signed in yet: {}", account.body);
    assert!(account.location().starts_with("/login"), "{}", account.location());

    // The right code: signed in, on to return_to.
    let done = post(&mut w, answer(&again, code_now())).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/account?step=2");
    assert!(w.cookies[&origin].contains_key("forge_sso"));
    let account = w.get(&down.url("/account?step=2")).await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains("with a second factor"), "{}", account.body);
    assert!(account.body.contains("data-identity=\"fake\""), "{}", account.body);
}

/// Runs the API flow with `provider` to the provider's answer, then posts
/// that answer to the callback as a cross-site form (Apple's `form_post`)
/// with `extra` fields; answers where the callback sends the browser.
async fn form_post_flow(w: &mut Wanderer, down: &TestServer, provider: &str, extra: &[(&str, &str)]) -> String {
    let callback = url::Url::parse(&to_callback(w, &api_start(down, provider)).await).unwrap();
    let mut target = callback.clone();
    target.set_query(None);
    let mut answer: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    answer.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let page = w
        .post_from_afar(target.as_str(), &serde_urlencoded::to_string(&answer).unwrap())
        .await;
    assert_eq!(page.status, 302, "{}", page.body);
    Wanderer::next_of(target.as_str(), &page)
}

/// The signed-in answer of a flow that ended at the app's URL `at`.
async fn tokens_of(down: &TestServer, at: &str) -> Value {
    let code = param(at, "code").unwrap_or_else(|| panic!("{at}"));
    let (status, tokens) = exchange(down, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// Apple names the person only in the unsigned `user` field of its first
/// form-post answer. A provider of kind `apple` (the fake acting as Apple:
/// form post asked for, the client secret an ES256 JWT of the registered
/// key) takes the name from it when the ID token has none, and nothing
/// else: not its email (the account's address and any linking come from
/// the ID token alone), not a later answer's name, not a malformed field
/// (ignored, never an error), not for another kind of provider.
#[tokio::test]
async fn apples_user_field_names_a_new_account_and_its_email_is_never_used() {
    use forge::testing::upstream::TestKey;
    const RELAY: &str = "x1y2z3@privaterelay.appleid.com";

    let down = forge_at_own_url(|_| {}).await;
    let admin = down.admin("root@down.example", PASSWORD).await;
    let admin = admin["access_token"].as_str().unwrap().to_string();
    allow_auto_link(&down, &admin).await;
    let victim = down.signup_verified("victim@example.com", PASSWORD).await;
    let victim_id = victim["user"]["id"].as_str().unwrap().to_string();

    let apple = FakeOidcProvider::start("com.example.web", "unused").await;
    let pem = apple.act_as_apple("TEAM123456", &TestKey::generate("KEY1234567"));
    apple.set_person(Person {
        sub: "001234.abcdef.0987".into(),
        email: Some(RELAY.into()),
        email_verified: true,
        name: None,
    });
    register(
        &down,
        &admin,
        json!({"id": "apple", "kind": "apple", "name": "Apple", "client_id": "com.example.web",
               "client_secret": pem, "team_id": "TEAM123456", "key_id": "KEY1234567",
               "issuer": apple.issuer().as_str().trim_end_matches('/')}),
    )
    .await;
    let mut w = Wanderer::new(&[down.base_url(), apple.issuer().as_str()]);
    let start = w.get(&api_start(&down, "apple")).await;
    assert_eq!(start.status, 302, "{}", start.body);
    assert_eq!(param(start.location(), "response_mode").as_deref(), Some("form_post"));

    // The first answer, with the name and someone else's address.
    let user = json!({"name": {"firstName": " Jane ", "lastName": "Doe"}, "email": "victim@example.com"});
    let at = form_post_flow(&mut w, &down, "apple", &[("user", &user.to_string())]).await;
    let tokens = tokens_of(&down, &at).await;
    let user_id = tokens["user"]["id"].as_str().unwrap().to_string();
    assert_ne!(user_id, victim_id, "the field's address links nothing");
    assert_eq!(tokens["user"]["email"], RELAY, "the ID token's address");
    assert_eq!(tokens["user"]["metadata"]["name"], "Jane Doe");
    let (status, seen) = down.as_user(&admin).get(&format!("/v1/users/{user_id}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["metadata"]["name"], "Jane Doe");
    assert_eq!(seen["email"], RELAY);
    let (status, ids) = down
        .as_user(&admin)
        .get(&format!("/v1/users/{user_id}/identities"))
        .await;
    assert_eq!(status, 200, "{ids}");
    assert_eq!(ids["items"].as_array().unwrap().len(), 1, "{ids}");
    assert_eq!(ids["items"][0]["provider"], "apple");
    assert_eq!(ids["items"][0]["subject"], "001234.abcdef.0987");
    assert_eq!(ids["items"][0]["email"], RELAY);
    assert!(!ids.to_string().contains("victim@"), "{ids}");
    let (_, theirs) = down
        .as_user(&admin)
        .get(&format!("/v1/users/{victim_id}/identities"))
        .await;
    assert_eq!(theirs["items"], json!([]), "nothing linked to the victim");

    // Later answers sign in to the same account; their `user` field, good
    // or not, changes nothing.
    for field in [
        json!({"name": {"firstName": "Mallory"}}).to_string(),
        "not json".to_string(),
        json!({"name": {"firstName": "Jane\u{7}"}}).to_string(),
        "x".repeat(5000),
    ] {
        let at = form_post_flow(&mut w, &down, "apple", &[("user", &field)]).await;
        let tokens = tokens_of(&down, &at).await;
        assert_eq!(tokens["user"]["id"], user_id.as_str());
        assert_eq!(tokens["user"]["metadata"]["name"], "Jane Doe");
    }

    // A malformed field on a first answer: signed in, without a name.
    apple.set_person(Person {
        sub: "002".into(),
        email: None,
        email_verified: false,
        name: None,
    });
    let at = form_post_flow(&mut w, &down, "apple", &[("user", "{\"name\":")]).await;
    let tokens = tokens_of(&down, &at).await;
    assert_eq!(tokens["user"]["metadata"].get("name"), None, "{tokens}");
    assert_eq!(tokens["user"]["email"], Value::Null);

    // A name in the ID token wins over the field.
    apple.set_person(Person {
        sub: "003".into(),
        email: None,
        email_verified: false,
        name: Some("Signed Name".into()),
    });
    let at = form_post_flow(&mut w, &down, "apple", &[("user", &user.to_string())]).await;
    assert_eq!(tokens_of(&down, &at).await["user"]["metadata"]["name"], "Signed Name");

    // Another kind of provider never takes the field.
    let (op, plain) = (FakeOidcProvider::start("forge-client", "op-secret").await, "plain");
    op.set_person(Person {
        sub: "plain-1".into(),
        email: None,
        email_verified: false,
        name: None,
    });
    register(
        &down,
        &admin,
        json!({"id": plain, "kind": "oidc", "name": "Plain", "client_id": "forge-client",
               "client_secret": "op-secret", "issuer": op.issuer().as_str().trim_end_matches('/')}),
    )
    .await;
    let mut w = Wanderer::new(&[down.base_url(), op.issuer().as_str()]);
    let at = form_post_flow(&mut w, &down, plain, &[("user", &user.to_string())]).await;
    assert_eq!(tokens_of(&down, &at).await["user"]["metadata"].get("name"), None);
}
