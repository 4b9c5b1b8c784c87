//! forge as an OpenID Connect provider, checked by a real relying-party
//! library: the certified `openid-client` (npm, pinned in
//! `tests/rp/package-lock.json`) in the small web app `tests/rp/rp.mjs`,
//! against the real `forge` binary, with the browser part in headless
//! Chromium over WebDriver (`tests/support_browser`).
//!
//! Each test starts its own forge (a fresh SQLite file, plain HTTP on a
//! loopback port chosen up front, so that the issuer is known before it
//! starts), provisions a user and a client, starts the relying party with
//! that client and clicks through: the RP's `/start` (discovery, PKCE S256,
//! state, nonce) → forge's hosted `/login` → `/consent` (unless the client
//! is first-party) → the RP's `/callback`, where openid-client exchanges the
//! code, validates the ID token (signature with the client's registered
//! algorithm, iss, aud, nonce, iat/exp) and the RFC 9207 `iss` parameter,
//! refreshes (rotation), calls userinfo (expected sub) and revokes the
//! refresh token (RFC 7009), which is then refused. The test then
//! asserts what the library handed back, and logs out through the RP
//! (RP-initiated logout with id_token_hint, post_logout_redirect_uri and
//! state), after which the hosted session is gone.
//!
//! The library does the protocol checks; a forge endpoint that misbehaves
//! shows up as `{ok: false, error, ...}` in the RP's page, which the failed
//! assertion prints with both processes' logs.
//!
//! Not part of a plain `cargo test` (it needs Node, the npm packages and the
//! browser): run `npm ci --prefix tests/rp` then `cargo test --test rp`,
//! which `scripts/test` does. Anything missing is a failure, not a skip.

// Test code: a failed unwrap is a failed test (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/support/binary.rs"]
mod binary;
mod support_browser;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use support_browser::{browser, click, fill, free_port, path_of, shot, start_driver};

const PASSWORD: &str = "correct horse battery staple";
const ADMIN: &str = "root@example.com";
const USER: &str = "ann@example.com";
const SCOPE: &str = "openid profile email offline_access";
/// The hosted consent page's "allow" button.
const CONSENT_ALLOW: &str = "button[name=decision][value=allow]";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn rp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rp")
}

/// The forge binary serving a fresh SQLite file on a loopback port, its log
/// in a file; killed (by its own pid) when dropped.
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

/// `forge` configured for these tests: the database, the public URL (the
/// issuer), plain-HTTP cookies, cheap password hashing.
fn forge_cmd(db: &str, base: &str) -> Command {
    let mut cmd = binary::forge();
    cmd.env("FORGE_DATABASE__URL", db)
        .env("FORGE_SERVER__PUBLIC_URL", base)
        .env("FORGE_ADMIN__INSECURE_COOKIES", "true")
        .env("FORGE_PASSWORD__ARGON2_MEMORY_KIB", "1024")
        .env("FORGE_PASSWORD__ARGON2_ITERATIONS", "1");
    cmd
}

/// Runs `forge ARGS` to completion (stdin `input` if any); its stdout.
fn forge_run(db: &str, base: &str, args: &[&str], input: Option<&str>) -> String {
    let mut child = forge_cmd(db, base)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "forge {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Forge {
    /// Migrates a fresh database and creates the administrator; the server
    /// is not started yet (`serve`), so command-line set-up can run first.
    fn prepare() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("forge.db").display());
        let base = format!("http://127.0.0.1:{}", free_port());
        forge_run(&db, &base, &["migrate"], None);
        forge_run(
            &db,
            &base,
            &["admin", "create", "--email", ADMIN, "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        );
        (dir, db, base)
    }

    fn serve(dir: tempfile::TempDir, db: String, base: String) -> Forge {
        let log = dir.path().join("forge.log");
        let bind = base.strip_prefix("http://").unwrap().to_string();
        let mut child = forge_cmd(&db, &base)
            .env("FORGE_SERVER__BIND", &bind)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let listening = binary::listening(&mut child, || std::fs::read_to_string(&log).unwrap_or_default());
        assert_eq!(listening, base, "forge listens where its issuer says");
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

    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new().request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} {body:?}: {status} {text}\nforge log:\n{}",
            self.log()
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// The administrator's access token.
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

    /// A user with a verified email; answers its id.
    async fn user(&self, admin: &str, email: &str) -> String {
        let user = self
            .call(
                reqwest::Method::POST,
                "/v1/users",
                Some(admin),
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        let id = user["id"].as_str().unwrap().to_string();
        self.call(
            reqwest::Method::PATCH,
            &format!("/v1/users/{id}"),
            Some(admin),
            Some(json!({"email_verified": true})),
        )
        .await;
        id
    }
}

/// The relying party (`node tests/rp/rp.mjs`), killed when dropped.
struct Rp {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Rp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_node_modules() {
    assert!(
        rp_dir().join("node_modules/openid-client/package.json").exists(),
        "the relying-party tests need openid-client: npm ci --prefix tests/rp (scripts/test does this)"
    );
}

/// `node tests/rp/rp.mjs ARGS` with the relying party's configuration.
fn node(env: &[(&str, &str)]) -> Command {
    require_node_modules();
    let mut cmd = Command::new("node");
    cmd.arg(rp_dir().join("rp.mjs")).current_dir(rp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl Rp {
    fn start(port: u16, env: &[(&str, &str)]) -> Rp {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("rp.log");
        let port = port.to_string();
        let mut child = node(env)
            .env("RP_PORT", &port)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start node (Node.js 20 or later must be installed)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("rp listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "the relying party did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        assert_eq!(base, format!("http://127.0.0.1:{port}"));
        Rp {
            child,
            base,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How a test registers its client.
#[derive(Clone, Copy)]
struct Case {
    /// Screenshot prefix.
    name: &'static str,
    public: bool,
    /// For a confidential client: client_secret_basic or client_secret_post.
    auth: &'static str,
    alg: &'static str,
    first_party: bool,
    /// `forge clients add` before the server starts, rather than the API.
    by_cli: bool,
}

/// A client as the relying party needs it.
struct Registered {
    client_id: String,
    client_secret: Option<String>,
}

/// The `client_id` and `client_secret` that `forge clients add` prints, as
/// `key: value`, `key=value` or `key value` lines.
fn printed_credentials(out: &str) -> Registered {
    let field = |key: &str| {
        out.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(key)?;
            let value = rest.trim_start_matches([':', '=', ' ', '\t']).trim();
            (!value.is_empty() && rest.len() > value.len()).then(|| value.to_string())
        })
    };
    Registered {
        client_id: field("client_id").unwrap_or_else(|| panic!("no client_id in {out:?}")),
        client_secret: field("client_secret"),
    }
}

/// One forge, one user, one client and its relying party.
struct World {
    forge: Forge,
    rp: Rp,
    user_id: String,
    client: Registered,
    case: Case,
}

impl World {
    async fn new(case: Case) -> World {
        let rp_port = free_port();
        let rp_base = format!("http://127.0.0.1:{rp_port}");
        let redirect_uri = format!("{rp_base}/callback");
        let (dir, db, base) = Forge::prepare();
        let cli_client = case.by_cli.then(|| {
            let mut args = vec!["clients", "add", "--name", "RP by CLI", "--redirect-uri", &redirect_uri];
            if case.public {
                args.push("--public");
            }
            if case.first_party {
                args.push("--first-party");
            }
            printed_credentials(&forge_run(&db, &base, &args, None))
        });
        let forge = Forge::serve(dir, db, base);
        let admin = forge.admin_token().await;
        let user_id = forge.user(&admin, USER).await;
        let post_logout = json!([format!("{rp_base}/bye")]);
        let client = match cli_client {
            Some(registered) => {
                // The command line registers no logout URI nor algorithm: the API adds them.
                forge
                    .call(
                        reqwest::Method::PATCH,
                        &format!("/v1/clients/{}", registered.client_id),
                        Some(&admin),
                        Some(
                            json!({"post_logout_redirect_uris": post_logout, "id_token_signed_response_alg": case.alg}),
                        ),
                    )
                    .await;
                registered
            }
            None => {
                let created = forge
                    .call(
                        reqwest::Method::POST,
                        "/v1/clients",
                        Some(&admin),
                        Some(json!({
                            "name": format!("RP {}", case.name),
                            "type": if case.public { "public" } else { "confidential" },
                            "redirect_uris": [redirect_uri],
                            "post_logout_redirect_uris": post_logout,
                            "first_party": case.first_party,
                            "id_token_signed_response_alg": case.alg,
                        })),
                    )
                    .await;
                Registered {
                    client_id: created["client_id"].as_str().unwrap().to_string(),
                    client_secret: created["client_secret"].as_str().map(str::to_string),
                }
            }
        };
        assert_eq!(
            client.client_secret.is_some(),
            !case.public,
            "a secret for confidential clients only"
        );
        let mut env = vec![
            ("ISSUER", forge.base.as_str()),
            ("CLIENT_ID", client.client_id.as_str()),
            ("SCOPE", SCOPE),
            ("ID_TOKEN_ALG", case.alg),
        ];
        if let Some(secret) = &client.client_secret {
            env.push(("CLIENT_SECRET", secret.as_str()));
            env.push(("CLIENT_AUTH", case.auth));
        }
        let rp = Rp::start(rp_port, &env);
        World {
            forge,
            rp,
            user_id,
            client,
            case,
        }
    }

    /// Both processes' logs, for a failed assertion.
    fn logs(&self) -> String {
        format!("--- forge log:\n{}\n--- rp log:\n{}", self.forge.log(), self.rp.log())
    }

    /// The JSON the RP shows in `<pre id="result">`.
    async fn result(&self, c: &Client) -> Value {
        let url = c.current_url().await.unwrap();
        let pre = match c.find(Locator::Id("result")).await {
            Ok(pre) => pre,
            Err(_) => panic!(
                "not an RP page: {url}\n{}\n{}",
                c.source().await.unwrap_or_default(),
                self.logs()
            ),
        };
        let text = pre.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
    }

    /// The page is the RP's, at `path`.
    async fn assert_at_rp(&self, c: &Client, path: &str, step: &str) {
        let url = c.current_url().await.unwrap();
        if !url.as_str().starts_with(&format!("{}{path}", self.rp.base)) {
            panic!(
                "{step}: expected the RP's {path}, at {url}\npage:\n{}\n{}",
                c.source().await.unwrap_or_default(),
                self.logs()
            );
        }
    }

    /// The page is forge's, at `path`.
    async fn assert_at_forge(&self, c: &Client, path: &str, step: &str) {
        let url = c.current_url().await.unwrap();
        if !url.as_str().starts_with(&format!("{}{path}", self.forge.base)) {
            panic!(
                "{step}: expected forge's {path}, at {url}\npage:\n{}\n{}",
                c.source().await.unwrap_or_default(),
                self.logs()
            );
        }
    }

    /// From the RP's /start through sign-in (and consent) to its /callback;
    /// the callback's result, which must be ok.
    async fn sign_in(&self, c: &Client, shots: &str) -> Value {
        c.goto(&format!("{}/start", self.rp.base)).await.unwrap();
        self.assert_at_forge(c, "/login", "the RP's /start").await;
        shot(c, &format!("{shots}-1-login")).await;
        fill(c, "identifier", USER).await;
        fill(c, "password", PASSWORD).await;
        click(c, "#sign-in").await;
        if !self.case.first_party {
            // The consent page answers /oauth/authorize itself; its form posts to /consent.
            self.assert_at_forge(c, "/oauth/authorize", "after signing in").await;
            assert!(
                c.find(Locator::Css("form[action=\"/consent\"]")).await.is_ok(),
                "the consent page: {}",
                c.source().await.unwrap_or_default()
            );
            let page = c.source().await.unwrap();
            assert!(
                page.contains(&format!("RP {}", self.case.name)),
                "the client's name: {page}"
            );
            shot(c, &format!("{shots}-2-consent")).await;
            click(c, CONSENT_ALLOW).await;
        }
        self.assert_at_rp(c, "/callback", "after signing in").await;
        shot(c, &format!("{shots}-3-callback")).await;
        let result = self.result(c).await;
        assert_eq!(result["ok"], true, "{result:#}\n{}", self.logs());
        result
    }

    /// What openid-client handed back after the code grant, the refresh and
    /// userinfo (it has already checked signature, iss, aud, nonce, iat,
    /// exp, state, PKCE, the `iss` parameter and userinfo's sub).
    fn check(&self, r: &Value, since: i64) {
        let ctx = format!("{r:#}");
        let issuer = self.forge.base.as_str();
        assert_eq!(r["sub"], self.user_id.as_str(), "{ctx}");
        let claims = &r["claims"];
        assert_eq!(claims["iss"], issuer, "{ctx}");
        assert_eq!(claims["sub"], self.user_id.as_str(), "{ctx}");
        let aud = &claims["aud"];
        assert!(
            aud == self.client.client_id.as_str() || *aud == json!([self.client.client_id]),
            "aud is the client: {ctx}"
        );
        assert!(claims["nonce"].as_str().is_some_and(|n| !n.is_empty()), "{ctx}");
        let iat = claims["iat"].as_i64().unwrap();
        let exp = claims["exp"].as_i64().unwrap();
        assert!(exp > iat, "{ctx}");
        let auth_time = claims["auth_time"].as_i64().expect("auth_time");
        assert!(
            auth_time >= since - 5 && auth_time <= now() + 5,
            "auth_time is this sign-in: {ctx}"
        );
        assert!(
            claims["amr"].as_array().is_some_and(|amr| amr.contains(&json!("pwd"))),
            "amr says password: {ctx}"
        );
        assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()), "sid: {ctx}");
        assert_eq!(r["id_token_header"]["alg"], self.case.alg, "{ctx}");
        assert_eq!(r["iss_param"], issuer, "RFC 9207 iss in the response: {ctx}");
        assert_eq!(
            r["token_type"].as_str().map(str::to_ascii_lowercase).as_deref(),
            Some("bearer"),
            "{ctx}"
        );
        assert_eq!(r["refreshed"], true, "offline_access gives a refresh token: {ctx}");
        assert_eq!(r["rotated"], true, "the refresh token rotates: {ctx}");
        if r["refresh_id_token"] == true {
            assert_eq!(r["refreshed_claims"]["sub"], self.user_id.as_str(), "{ctx}");
            assert_eq!(r["refreshed_claims"]["auth_time"], claims["auth_time"], "{ctx}");
        }
        let userinfo = &r["userinfo"];
        assert_eq!(userinfo["sub"], self.user_id.as_str(), "{ctx}");
        assert_eq!(userinfo["email"], USER, "{ctx}");
        assert_eq!(userinfo["email_verified"], true, "{ctx}");
        assert_eq!(
            r["revocation"]["ok"], true,
            "the revoked refresh token is refused: {ctx}"
        );
    }

    /// RP-initiated logout: the RP's /logout → forge's end-session
    /// endpoint → the RP's /bye with the state; then the hosted session is
    /// gone (the RP's /start asks for the password again).
    async fn log_out(&self, c: &Client, shots: &str) {
        c.goto(&format!("{}/logout", self.rp.base)).await.unwrap();
        let url = c.current_url().await.unwrap();
        if url.as_str().starts_with(&self.forge.base) {
            // forge asked to confirm (allowed by RP-Initiated Logout 1.0 §2).
            shot(c, &format!("{shots}-4-confirm-logout")).await;
            click(c, "form button[type=submit]").await;
        }
        self.assert_at_rp(c, "/bye", "after logging out").await;
        shot(c, &format!("{shots}-5-bye")).await;
        let bye = self.result(c).await;
        assert_eq!(bye["ok"], true, "the state came back: {bye:#}\n{}", self.logs());

        c.goto(&format!("{}/start", self.rp.base)).await.unwrap();
        self.assert_at_forge(c, "/login", "signing in again after logging out")
            .await;
        assert!(
            c.find(Locator::Css("[name=password]")).await.is_ok(),
            "the password is asked again: {}",
            path_of(c).await
        );
    }
}

async fn full_flow(case: Case) {
    let w = World::new(case).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let since = now();
    let shots = format!("rp-{}", case.name);
    let result = w.sign_in(&c, &shots).await;
    w.check(&result, since);
    w.log_out(&c, &shots).await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_client_with_eddsa_id_tokens() {
    full_flow(Case {
        name: "confidential-eddsa",
        public: false,
        auth: "client_secret_basic",
        alg: "EdDSA",
        first_party: false,
        by_cli: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_with_pkce_and_rs256_id_tokens() {
    full_flow(Case {
        name: "public-rs256",
        public: true,
        auth: "none",
        alg: "RS256",
        first_party: false,
        by_cli: false,
    })
    .await;
}

/// A first-party client registered with `forge clients add --first-party`,
/// authenticating with client_secret_post: no consent page; a second sign-in at the RP rides the hosted session
/// (no password, the same `sid` and `auth_time`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_party_client_from_the_cli_skips_consent_and_reuses_the_session() {
    let case = Case {
        name: "first-party",
        public: false,
        auth: "client_secret_post",
        alg: "EdDSA",
        first_party: true,
        by_cli: true,
    };
    let w = World::new(case).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let since = now();
    let shots = format!("rp-{}", case.name);
    let first = w.sign_in(&c, &shots).await;
    w.check(&first, since);

    c.goto(&format!("{}/start", w.rp.base)).await.unwrap();
    w.assert_at_rp(&c, "/callback", "a second sign-in with the hosted session")
        .await;
    let second = w.result(&c).await;
    assert_eq!(second["ok"], true, "{second:#}\n{}", w.logs());
    w.check(&second, since);
    assert_eq!(
        second["claims"]["sid"], first["claims"]["sid"],
        "the same hosted session"
    );
    assert_eq!(
        second["claims"]["auth_time"], first["claims"]["auth_time"],
        "no new authentication"
    );
    assert_ne!(
        second["claims"]["nonce"], first["claims"]["nonce"],
        "a nonce per request"
    );

    w.log_out(&c, &shots).await;
    c.close().await.unwrap();
}

/// `prompt=none` without a hosted session: forge answers the RP with
/// `login_required`, which openid-client reports as the OAuth error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_none_without_a_session_is_login_required() {
    let w = World::new(Case {
        name: "prompt-none",
        public: true,
        auth: "none",
        alg: "EdDSA",
        first_party: false,
        by_cli: false,
    })
    .await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.goto(&format!("{}/start?prompt=none", w.rp.base)).await.unwrap();
    w.assert_at_rp(&c, "/callback", "prompt=none").await;
    let r = w.result(&c).await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["error"], "login_required", "{r:#}\n{}", w.logs());
    c.close().await.unwrap();
}

/// The discovery document as openid-client reads it: what the flows above
/// use is advertised, and the issuer is the one the library checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_reads_the_discovery_document() {
    let (dir, db, base) = Forge::prepare();
    let forge = Forge::serve(dir, db, base);
    let out = node(&[("ISSUER", forge.base.as_str())])
        .arg("discover")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openid-client discovery failed: {text}\n{}\nforge log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        forge.log()
    );
    let m: Value = serde_json::from_str(&text).unwrap();
    let url = |path: &str| json!(forge.url(path));
    assert_eq!(m["issuer"], json!(forge.base), "{m:#}");
    assert_eq!(m["authorization_endpoint"], url("/oauth/authorize"), "{m:#}");
    assert_eq!(m["token_endpoint"], url("/v1/auth/token"), "{m:#}");
    assert_eq!(m["userinfo_endpoint"], url("/oauth/userinfo"), "{m:#}");
    assert_eq!(m["end_session_endpoint"], url("/oauth/logout"), "{m:#}");
    assert_eq!(m["jwks_uri"], url("/.well-known/jwks.json"), "{m:#}");
    assert_eq!(m["revocation_endpoint"], url("/oauth/revoke"), "{m:#}");
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]), "{m:#}");
    assert_eq!(m["authorization_response_iss_parameter_supported"], true, "{m:#}");
    let has = |key: &str, values: &[&str]| {
        let list = m[key].as_array().unwrap_or_else(|| panic!("{key}: {m:#}"));
        for v in values {
            assert!(list.contains(&json!(v)), "{key} lacks {v}: {m:#}");
        }
    };
    has("response_types_supported", &["code"]);
    has(
        "grant_types_supported",
        &["authorization_code", "refresh_token", "client_credentials"],
    );
    has(
        "token_endpoint_auth_methods_supported",
        &["client_secret_basic", "client_secret_post", "none"],
    );
    has("id_token_signing_alg_values_supported", &["EdDSA", "RS256"]);
    has(
        "scopes_supported",
        &["openid", "profile", "email", "phone", "offline_access"],
    );
    has("subject_types_supported", &["public"]);
}

/// A confidential client with the `client_credentials` grant gets a token
/// for itself through openid-client: `sub` is its client_id, no refresh
/// token, no ID token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_client_gets_a_token_by_client_credentials() {
    let (dir, db, base) = Forge::prepare();
    let forge = Forge::serve(dir, db, base);
    let admin = forge.admin_token().await;
    let created = forge
        .call(
            reqwest::Method::POST,
            "/v1/clients",
            Some(&admin),
            Some(json!({
                "name": "Service",
                "type": "confidential",
                "redirect_uris": ["http://127.0.0.1/unused"],
                "grant_types": ["client_credentials"],
                "scopes": ["reports:read"],
            })),
        )
        .await;
    let client_id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let out = node(&[
        ("ISSUER", forge.base.as_str()),
        ("CLIENT_ID", client_id),
        ("CLIENT_SECRET", secret),
        ("SCOPE", "reports:read"),
    ])
    .arg("client-credentials")
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client_credentials failed: {text}\n{}\nforge log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        forge.log()
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["refresh_token"], false, "{r:#}");
    assert_eq!(r["id_token"], false, "{r:#}");
    assert_eq!(r["claims"]["sub"], client_id, "{r:#}");
    assert!(r["expires_in"].as_i64().is_some_and(|s| s > 0), "{r:#}");
}
