//! Signing in to forge with an upstream OpenID Connect provider (issue 13),
//! checked against a provider forge did not write: the certified
//! `oidc-provider` (npm, pinned in `tests/rp/package-lock.json`) in
//! `tests/rp/op.mjs`, on a loopback port, with the real `forge` binary and
//! the browser part in headless Chromium over WebDriver
//! (`tests/support_browser`).
//!
//! Each test starts its own provider (one static client whose redirect URI
//! is forge's `/v1/auth/providers/nodeop/callback`, PKCE S256 required,
//! email and profile claims for one person) and its own forge (in-memory
//! SQLite, plain HTTP on a port chosen up front so that the callback URL is
//! known before either starts, an administrator from `FORGE_ADMIN_EMAIL`),
//! registers the provider through the API as the administrator, and clicks
//! through:
//!
//! - the hosted pages: `/login` → "Continue with Node OP" → the provider's
//!   login and consent → back at forge's `/account`, signed in, the identity
//!   listed; sign out, the button again (the provider remembers its session
//!   and grant, so it may send the browser straight back), the same
//!   account: exactly one user has the provider's email;
//! - the API flow: `/v1/auth/providers/nodeop/start?redirect_to=…&
//!   code_challenge=…` in the browser, through the provider, to a tiny local
//!   page with `?code=`; `POST /v1/auth/exchange` with the verifier gives
//!   tokens whose `amr` says `fed`, once only.
//!
//! A third test drives the provider alone (no forge): if it fails, the
//! fixture is broken, not forge.
//!
//! By default the provider puts the email and profile claims in userinfo
//! only, as OpenID Connect Core 5.4 says for `response_type=code` (the ID
//! token has `sub` and the protocol claims), so forge must read userinfo.
//!
//! Not part of a plain `cargo test` (it needs Node, the npm packages and the
//! browser): run `npm ci --prefix tests/rp` then `cargo test --test
//! upstream`, which `scripts/test` does. Anything missing is a failure, not
//! a skip. `FORGE_TEST_BINARY` selects another forge build (CI: the static
//! release binary).

// Test code: a failed unwrap is a failed test (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/support/binary.rs"]
mod binary;
mod support_browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support_browser::{browser, click, fill, free_port, path_of, shot, start_driver};

const ADMIN: &str = "root@example.com";
const PASSWORD: &str = "correct horse battery staple";
/// The provider's id in forge (and in the callback URL).
const PROVIDER: &str = "nodeop";
const PROVIDER_NAME: &str = "Node OP";
/// The person the provider signs in, and the subject typed at its login.
const PERSON_EMAIL: &str = "fed-ann@example.com";
const PERSON_NAME: &str = "Ann Federated";
const PERSON_SUBJECT: &str = "ann-at-the-op";
const OP_PASSWORD: &str = "op password";

fn rp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rp")
}

/// A random URL-safe string of `bytes` random bytes.
fn random(bytes: usize) -> String {
    let data: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(data)
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = random(48);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A JWT's payload, unverified (what forge or the provider issued, read
/// back by the test).
fn jwt_payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Reads a child's first stdout line, which must be `{prefix}URL`; the URL.
fn ready_line(child: &mut Child, prefix: &str, log: &Path) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| {
            panic!(
                "no {prefix:?} line: {line:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .to_string()
}

/// `node tests/rp/op.mjs`: the certified provider, killed when dropped.
struct Op {
    child: Child,
    issuer: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client forge is at the provider.
struct OpClient {
    id: String,
    secret: String,
    redirect_uri: String,
}

impl Op {
    fn start(client: &OpClient) -> Op {
        assert!(
            rp_dir().join("node_modules/oidc-provider/package.json").exists(),
            "the upstream tests need oidc-provider: npm ci --prefix tests/rp (scripts/test does this)"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("op.log");
        let mut child = Command::new("node")
            .arg(rp_dir().join("op.mjs"))
            .current_dir(rp_dir())
            .env("OP_CLIENT_ID", &client.id)
            .env("OP_CLIENT_SECRET", &client.secret)
            .env("OP_REDIRECT_URI", &client.redirect_uri)
            .env("OP_EMAIL", PERSON_EMAIL)
            .env("OP_EMAIL_VERIFIED", "true")
            .env("OP_NAME", PERSON_NAME)
            .env("OP_PASSWORD", OP_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start node (Node.js 20 or later must be installed)");
        let issuer = ready_line(&mut child, "op listening on ", &log);
        assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
        Op {
            child,
            issuer,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A tiny page on a loopback port answering every GET with 200 and
/// remembering the URLs it was asked for: where the API flow's
/// `redirect_to` points. Stopped when dropped.
struct Landing {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Landing {
    async fn start() -> Landing {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(uri.to_string());
                axum::response::Html("<!DOCTYPE html><title>landed</title><p id=\"landed\">landed</p>")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Landing { base, hits, task }
    }
}

/// The forge binary on a loopback port (in-memory SQLite, messages kept
/// in memory, plain-HTTP cookies, the administrator from the environment);
/// killed when dropped.
struct Forge {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Forge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Forge {
    /// Serves on `port`; `allowed_redirects` is `server.allowed_redirects`.
    fn start(port: u16, allowed_redirects: &[&str]) -> Forge {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("forge.log");
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = binary::forge();
        cmd.arg("serve")
            .env("FORGE_DATABASE__URL", "sqlite::memory:")
            .env("FORGE_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("FORGE_SERVER__PUBLIC_URL", &base)
            .env("FORGE_NOTIFY__CHANNEL", "memory")
            .env("FORGE_DEV__OUTBOX", "true")
            .env("FORGE_ADMIN__INSECURE_COOKIES", "true")
            .env("FORGE_PASSWORD__ARGON2_MEMORY_KIB", "1024")
            .env("FORGE_PASSWORD__ARGON2_ITERATIONS", "1")
            .env("FORGE_ADMIN_EMAIL", ADMIN)
            .env("FORGE_ADMIN_PASSWORD", PASSWORD);
        if !allowed_redirects.is_empty() {
            cmd.env("FORGE_SERVER__ALLOWED_REDIRECTS", allowed_redirects.join(","));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let listening = binary::listening(&mut child, || std::fs::read_to_string(&log).unwrap_or_default());
        assert_eq!(listening, base, "forge listens where its public URL says");
        Forge {
            child,
            base,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with an optional bearer and JSON body: the status and
    /// the JSON answer (`Null` when empty).
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut req = reqwest::Client::new().request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Like `request`, but a non-2xx answer fails the test.
    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let (status, value) = self.request(method.clone(), path, token, body.clone()).await;
        assert!(
            status.is_success(),
            "{method} {path} {body:?}: {status} {value}\nforge log:\n{}",
            self.log()
        );
        value
    }

    async fn admin_token(&self) -> String {
        let signed_in = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": ADMIN, "password": PASSWORD})),
            )
            .await;
        signed_in["access_token"].as_str().unwrap().to_string()
    }

    /// The users whose email is exactly `email` (the admin search matches
    /// substrings).
    async fn users_with_email(&self, admin: &str, email: &str) -> Vec<Value> {
        let q: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
        let found = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/users?q={q}&limit=200"),
                Some(admin),
                None,
            )
            .await;
        found["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items: {found}"))
            .iter()
            .filter(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
            .cloned()
            .collect()
    }
}

/// forge, the provider registered in it, and the browser's driver.
struct World {
    forge: Forge,
    op: Op,
    landing: Landing,
    admin: String,
}

impl World {
    async fn new() -> World {
        let landing = Landing::start().await;
        let forge_port = free_port();
        let client = OpClient {
            id: format!("forge-{}", random(6)),
            // URL-safe, so that client_secret_basic's form-encoding before
            // Base64 (RFC 6749 2.3.1) changes nothing either way.
            secret: random(32),
            redirect_uri: format!("http://127.0.0.1:{forge_port}/v1/auth/providers/{PROVIDER}/callback"),
        };
        let op = Op::start(&client);
        let forge = Forge::start(forge_port, &[landing.base.as_str()]);
        let admin = forge.admin_token().await;
        let (status, created) = forge
            .request(
                reqwest::Method::POST,
                "/v1/providers",
                Some(&admin),
                Some(json!({
                    "id": PROVIDER,
                    "kind": "oidc",
                    "name": PROVIDER_NAME,
                    "client_id": client.id,
                    "client_secret": client.secret,
                    "issuer": op.issuer,
                    "scopes": ["openid", "email", "profile"],
                })),
            )
            .await;
        assert!(
            status.is_success(),
            "registering the provider: {status} {created}\nforge log:\n{}\nop log:\n{}",
            forge.log(),
            op.log()
        );
        assert!(
            !created.to_string().contains(&client.secret),
            "the client secret is never returned: {created}"
        );
        let listed = forge.call(reqwest::Method::GET, "/v1/auth/providers", None, None).await;
        assert!(
            listed["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|p| p["id"] == PROVIDER && p["name"] == PROVIDER_NAME)),
            "the public list has the provider: {listed}"
        );
        World {
            forge,
            op,
            landing,
            admin,
        }
    }

    fn logs(&self) -> String {
        format!("--- forge log:\n{}\n--- op log:\n{}", self.forge.log(), self.op.log())
    }

    /// Fails the test with the page and both logs; `T` fits any arm.
    async fn fail<T>(&self, c: &Client, what: &str) -> T {
        let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        panic!(
            "{what}: at {url}\npage:\n{}\n{}",
            c.source().await.unwrap_or_default(),
            self.logs()
        )
    }

    async fn assert_at(&self, c: &Client, base: &str, path: &str, step: &str) {
        let url = c.current_url().await.unwrap();
        if !url.as_str().starts_with(&format!("{base}{path}")) {
            self.fail::<()>(c, &format!("{step}: expected {base}{path}")).await;
        }
    }

    /// While the browser is at the provider: signs in there (as
    /// `PERSON_SUBJECT`) and allows what forge asked for. Answers how many
    /// provider pages it went through (0 when the provider's session and
    /// grant sent the browser straight back).
    async fn through_op(&self, c: &Client, shots: &str) -> usize {
        let mut pages = 0;
        loop {
            let url = c.current_url().await.unwrap();
            if !url.as_str().starts_with(&self.op.issuer) {
                return pages;
            }
            pages += 1;
            if pages > 4 {
                self.fail::<()>(c, "still at the provider after four pages").await;
            }
            if c.find(Locator::Id("op-login")).await.is_ok() {
                shot(c, &format!("{shots}-op-login")).await;
                fill(c, "login", PERSON_SUBJECT).await;
                fill(c, "password", OP_PASSWORD).await;
                click(c, "#op-sign-in").await;
            } else if c.find(Locator::Id("op-consent")).await.is_ok() {
                let scopes = c.find(Locator::Id("op-scopes")).await.unwrap().text().await.unwrap();
                for scope in ["email", "profile"] {
                    assert!(scopes.contains(scope), "forge asks for {scope}: {scopes}");
                }
                shot(c, &format!("{shots}-op-consent")).await;
                click(c, "#op-allow").await;
            } else {
                self.fail::<()>(c, "a provider page that is neither login nor consent")
                    .await;
            }
        }
    }

    /// At forge's `/account`: the provider's email is the account's, and the
    /// identity is listed once.
    async fn assert_account(&self, c: &Client, step: &str) {
        self.assert_at(c, &self.forge.base, "/account", step).await;
        let email = c.find(Locator::Id("email")).await.unwrap().text().await.unwrap();
        assert!(
            email.contains(PERSON_EMAIL),
            "{step}: the account has the provider's email: {email}\n{}",
            self.logs()
        );
        let identities = c
            .find_all(Locator::Css(&format!("[data-identity=\"{PROVIDER}\"]")))
            .await
            .unwrap();
        if identities.len() != 1 {
            self.fail::<()>(
                c,
                &format!("{step}: {} identities of {PROVIDER} listed, not 1", identities.len()),
            )
            .await;
        }
    }

    /// `/login` → the provider's button → the provider → `/account`.
    /// Answers how many provider pages were shown.
    async fn sign_in_with_button(&self, c: &Client, shots: &str) -> usize {
        c.goto(&self.forge.url("/login")).await.unwrap();
        self.assert_at(c, &self.forge.base, "/login", "the hosted login page")
            .await;
        let css = format!("a.provider[data-provider=\"{PROVIDER}\"]");
        let button = match c.find(Locator::Css(&css)).await {
            Ok(button) => button,
            Err(_) => self.fail(c, &format!("no {css} on /login")).await,
        };
        let label = button.text().await.unwrap();
        assert!(label.contains(&format!("Continue with {PROVIDER_NAME}")), "{label}");
        let href = button.attr("href").await.unwrap().unwrap_or_default();
        assert!(href.starts_with(&format!("/login/provider/{PROVIDER}")), "{href}");
        shot(c, &format!("{shots}-1-login")).await;
        click(c, &css).await;
        let pages = self.through_op(c, shots).await;
        self.assert_account(c, "after the provider").await;
        shot(c, &format!("{shots}-2-account")).await;
        pages
    }
}

/// The hosted pages: the first sign-in with the provider creates the
/// account (signup is open), lands on `/account` with the identity listed;
/// after signing out, the button signs in to the same account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_signs_in_with_the_npm_provider_and_again_into_the_same_account() {
    let w = World::new().await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    let first = w.sign_in_with_button(&c, "upstream-hosted-first").await;
    assert!(first >= 1, "a fresh browser signs in at the provider");
    let users = w.forge.users_with_email(&w.admin, PERSON_EMAIL).await;
    assert_eq!(users.len(), 1, "one account: {users:#?}\n{}", w.logs());
    let user_id = users[0]["id"].clone();

    click(&c, "#sign-out").await;
    let after = path_of(&c).await;
    assert!(after.starts_with("/logged-out"), "signed out: {after}");
    c.goto(&w.forge.url("/account")).await.unwrap();
    assert!(
        path_of(&c).await.starts_with("/login"),
        "the account page needs a session again"
    );

    // The provider still has its own session and the grant: it may answer
    // without a page; either way forge must find the same account.
    w.sign_in_with_button(&c, "upstream-hosted-again").await;
    let users = w.forge.users_with_email(&w.admin, PERSON_EMAIL).await;
    assert_eq!(users.len(), 1, "still one account: {users:#?}\n{}", w.logs());
    assert_eq!(users[0]["id"], user_id, "the same account");
    c.close().await.unwrap();
}

impl World {
    /// The API flow in the browser up to `redirect_to`: starts it with the
    /// S256 `challenge`, goes through the provider (its pages, if it shows
    /// any) and answers the `code` forge put on the landing page's URL.
    async fn api_code(&self, c: &Client, challenge: &str, shots: &str) -> String {
        let redirect_to = format!("{}/signed-in", self.landing.base);
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_to", &redirect_to)
            .append_pair("code_challenge", challenge)
            .finish();
        c.goto(&self.forge.url(&format!("/v1/auth/providers/{PROVIDER}/start?{q}")))
            .await
            .unwrap();
        self.through_op(c, shots).await;
        self.assert_at(c, &self.landing.base, "/signed-in", "after the provider")
            .await;
        shot(c, &format!("{shots}-landed")).await;
        let url = c.current_url().await.unwrap();
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        if query.iter().any(|(k, _)| k == "error") {
            self.fail::<()>(c, "forge answered an error").await;
        }
        assert!(
            self.landing
                .hits
                .lock()
                .unwrap()
                .iter()
                .any(|h| h.starts_with("/signed-in?")),
            "the page itself was reached"
        );
        match query.into_iter().find(|(k, _)| k == "code") {
            Some((_, code)) => code,
            None => self.fail(c, "no code").await,
        }
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (reqwest::StatusCode, Value) {
        self.forge
            .request(
                reqwest::Method::POST,
                "/v1/auth/exchange",
                None,
                Some(json!({"code": code, "code_verifier": verifier})),
            )
            .await
    }
}

/// The API flow in a browser: start → the provider → `redirect_to?code=`;
/// the code and the PKCE verifier give forge's tokens (`amr` has `fed`),
/// once; a code with another verifier gives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_flow_through_the_npm_provider_gives_tokens_with_amr_fed() {
    let w = World::new().await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    let (verifier, challenge) = pkce();
    let code = w.api_code(&c, &challenge, "upstream-api").await;
    let (status, tokens) = w.exchange(&code, &verifier).await;
    assert!(status.is_success(), "{status} {tokens:#}\n{}", w.logs());
    let access = tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token response: {tokens:#}\n{}", w.logs()));
    assert!(
        tokens["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{tokens:#}"
    );
    let claims = jwt_payload(access);
    assert!(
        claims["amr"].as_array().is_some_and(|amr| amr.contains(&json!("fed"))),
        "amr records the upstream: {claims:#}"
    );
    let (status, replay) = w.exchange(&code, &verifier).await;
    assert!(status.is_client_error(), "a replayed code: {status} {replay}");

    // The account and its identity, as the user sees them.
    let me = w
        .forge
        .call(reqwest::Method::GET, "/v1/users/me", Some(access), None)
        .await;
    assert_eq!(me["email"], PERSON_EMAIL, "{me:#}");
    assert_eq!(claims["sub"], me["id"], "{claims:#}");
    let identities = w
        .forge
        .call(reqwest::Method::GET, "/v1/users/me/identities", Some(access), None)
        .await;
    let items = identities["items"].as_array().unwrap_or_else(|| panic!("{identities}"));
    assert_eq!(items.len(), 1, "{identities:#}");
    assert_eq!(items[0]["provider"], PROVIDER, "{identities:#}");
    assert_eq!(items[0]["subject"], PERSON_SUBJECT, "{identities:#}");
    assert_eq!(items[0]["email"], PERSON_EMAIL, "{identities:#}");

    // Again (the provider may answer from its session): the same account,
    // and a code is only good with its own verifier.
    let (_, challenge) = pkce();
    let code = w.api_code(&c, &challenge, "upstream-api-again").await;
    let (status, refused) = w.exchange(&code, &verifier).await;
    assert!(
        status.is_client_error(),
        "another flow's verifier is refused: {status} {refused}"
    );
    assert_eq!(
        w.forge.users_with_email(&w.admin, PERSON_EMAIL).await.len(),
        1,
        "one account\n{}",
        w.logs()
    );
    c.close().await.unwrap();
}

/// The fixture alone, no forge: the provider's discovery, its login and
/// consent pages in Chromium, the code at the redirect URI, the token
/// endpoint (client_secret_basic, PKCE), the ID token and userinfo. When
/// this fails, the other tests' failures say nothing about forge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_provider_alone_signs_in_in_chromium() {
    let landing = Landing::start().await;
    let client = OpClient {
        id: "alone".into(),
        secret: random(32),
        redirect_uri: format!("{}/cb", landing.base),
    };
    let op = Op::start(&client);
    let http = reqwest::Client::new();
    let meta: Value = http
        .get(format!("{}/.well-known/openid-configuration", op.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], op.issuer.as_str(), "{meta:#}");
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]), "{meta:#}");
    let endpoint = |key: &str| {
        meta[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {meta:#}"))
            .to_string()
    };

    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let (verifier, challenge) = pkce();
    let nonce = random(12);
    let state = random(12);
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client.id)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let fail = |what: String| -> String { format!("{what}\n--- op log:\n{}", op.log()) };
    c.goto(&format!("{}?{q}", endpoint("authorization_endpoint")))
        .await
        .unwrap();
    assert!(
        c.find(Locator::Id("op-login")).await.is_ok(),
        "{}",
        fail(c.source().await.unwrap_or_default())
    );
    shot(&c, "upstream-op-alone-1-login").await;
    fill(&c, "login", PERSON_SUBJECT).await;
    fill(&c, "password", "not the password").await;
    click(&c, "#op-sign-in").await;
    assert!(
        c.find(Locator::Id("op-login-error")).await.is_ok(),
        "a wrong password is refused: {}",
        fail(c.source().await.unwrap_or_default())
    );
    c.back().await.unwrap();
    fill(&c, "login", PERSON_SUBJECT).await;
    fill(&c, "password", OP_PASSWORD).await;
    click(&c, "#op-sign-in").await;
    assert!(
        c.find(Locator::Id("op-consent")).await.is_ok(),
        "{}",
        fail(c.source().await.unwrap_or_default())
    );
    shot(&c, "upstream-op-alone-2-consent").await;
    click(&c, "#op-allow").await;
    let url = c.current_url().await.unwrap();
    assert!(
        url.as_str().starts_with(&client.redirect_uri),
        "{}",
        fail(format!("at {url}"))
    );
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {url}"))
    };
    assert_eq!(param("state"), state);
    assert_eq!(param("iss"), op.issuer, "RFC 9207");
    let code = param("code");
    c.close().await.unwrap();

    let token = |verifier: String| {
        http.post(endpoint("token_endpoint"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", client.redirect_uri.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
    };
    let resp = token(verifier.clone()).await.unwrap();
    let status = resp.status();
    let tokens: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "{}", fail(format!("{status} {tokens:#}")));
    let id = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], op.issuer.as_str(), "{id:#}");
    assert_eq!(id["aud"], client.id.as_str(), "{id:#}");
    assert_eq!(id["sub"], PERSON_SUBJECT, "{id:#}");
    assert_eq!(id["nonce"], nonce.as_str(), "{id:#}");
    assert!(id.get("email").is_none(), "scope claims in userinfo only: {id:#}");
    let userinfo: Value = http
        .get(endpoint("userinfo_endpoint"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        userinfo,
        json!({"sub": PERSON_SUBJECT, "email": PERSON_EMAIL, "email_verified": true, "name": PERSON_NAME}),
    );
    let replay = token(verifier).await.unwrap();
    assert_eq!(replay.status(), 400, "a code is single use");
}
