//! Forward auth behind real reverse proxies: nginx (`auth_request`) and
//! Caddy (`forward_auth`) from the Debian packages, each started on a free
//! loopback port in front of a small upstream app that echoes the headers
//! it receives, with forge (`TestServer`) answering the checks.
//!
//! The proxies run the configs the README shows, `deploy/nginx/forge.conf`
//! and `deploy/caddy/Caddyfile`, changed only where they name addresses
//! (forge's, the app's, the one to listen on); each replacement is asserted
//! to happen, so an edited file cannot silently fall out of the test. nginx
//! gets a minimal main config around the server block (temp paths, pid and
//! logs in a fresh directory); Caddy gets global options (no admin
//! endpoint, no automatic HTTPS) and its own data directories.
//!
//! Not part of a plain `cargo test` (it needs nginx and Caddy): run it with
//! `cargo test --test proxies`, which `scripts/test` does after installing
//! both. A proxy that is missing or does not start is a failure, not a skip.

// Test code: a failed unwrap is a failed test (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use forge::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Map, Value};

const NGINX: &str = "/usr/sbin/nginx";
const CADDY: &str = "/usr/bin/caddy";
const PASSWORD: &str = "correct horse battery staple";
const LOGIN_URL: &str = "https://login.example.test/sign-in";
/// The identity headers forge asserts, all of which the proxies must set or
/// remove, never pass on from the client.
const IDENTITY: [&str; 9] = [
    "remote-user",
    "remote-email",
    "remote-groups",
    "x-forge-user-id",
    "x-forge-tenant",
    "x-forge-roles",
    "x-forge-session-id",
    "x-forge-aal",
    "x-forge-amr",
];
const FIREFOX_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// `text` with every `from` replaced, which must occur.
fn replace_all(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the config no longer contains {from:?}; update tests/proxies.rs"
    );
    text.replace(from, to)
}

/// A fresh directory under target/, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A proxy process, killed (by its own pid) when dropped, and its files.
struct Proxy {
    name: &'static str,
    child: Child,
    base: String,
    dir: TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.0.join(name)) {
                out.push_str(&text);
            }
        }
        out
    }

    /// Waits until the proxy accepts connections; a proxy that exits or
    /// never listens fails the test with its log.
    async fn wait_until_listening(mut self, port: u16) -> Proxy {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited with {status} before listening:\n{}", self.name, self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{port}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn require(binary: &str, package: &str) {
    assert!(
        Path::new(binary).exists(),
        "the proxy tests need {binary}: apt-get install {package} (scripts/test does this)"
    );
}

fn spawn(name: &'static str, dir: TempDir, command: &mut Command) -> (Child, TempDir) {
    let stderr = std::fs::File::create(dir.0.join("stderr.log")).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    (child, dir)
}

async fn start_nginx(port: u16, forge: &str, upstream: &str) -> Proxy {
    require(NGINX, "nginx");
    let dir = TempDir::new("nginx");
    let server = repo_file("deploy/nginx/forge.conf");
    let server = replace_all(&server, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let server = replace_all(&server, "http://127.0.0.1:8080", &format!("http://{forge}"));
    let server = replace_all(&server, "http://127.0.0.1:3000", &format!("http://{upstream}"));
    std::fs::write(dir.0.join("forge.conf"), server).unwrap();
    let d = dir.0.display();
    // The minimal main config a distribution's nginx.conf would be.
    let main = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/forge.conf;\n}}\n"
    );
    std::fs::write(dir.0.join("nginx.conf"), main).unwrap();
    let mut command = Command::new(NGINX);
    command
        .arg("-p")
        .arg(&dir.0)
        .arg("-c")
        .arg(dir.0.join("nginx.conf"))
        .args(["-e", "stderr", "-g", "daemon off; master_process off;"]);
    let (child, dir) = spawn("nginx", dir, &mut command);
    Proxy {
        name: "nginx",
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
    .wait_until_listening(port)
    .await
}

async fn start_caddy(port: u16, forge: &str, upstream: &str) -> Proxy {
    require(CADDY, "caddy");
    let dir = TempDir::new("caddy");
    let site = repo_file("deploy/caddy/Caddyfile");
    let site = replace_all(&site, "app.example.com {", &format!("http://127.0.0.1:{port} {{"));
    let site = replace_all(&site, "forward_auth 127.0.0.1:8080", &format!("forward_auth {forge}"));
    let site = replace_all(
        &site,
        "reverse_proxy 127.0.0.1:3000",
        &format!("reverse_proxy {upstream}"),
    );
    let config = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}");
    std::fs::write(dir.0.join("Caddyfile"), config).unwrap();
    let mut command = Command::new(CADDY);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.0.join("Caddyfile"))
        .env("HOME", &dir.0)
        .env("XDG_DATA_HOME", dir.0.join("data"))
        .env("XDG_CONFIG_HOME", dir.0.join("config"));
    let (child, dir) = spawn("caddy", dir, &mut command);
    Proxy {
        name: "caddy",
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
    .wait_until_listening(port)
    .await
}

/// The app behind the proxy: answers every request with the headers it
/// received, as a JSON object of lower-case names to values.
async fn start_upstream() -> String {
    async fn echo(headers: HeaderMap) -> axum::Json<Value> {
        let mut seen = Map::new();
        for (name, value) in &headers {
            seen.insert(
                name.as_str().to_owned(),
                Value::String(value.to_str().unwrap_or("<binary>").to_owned()),
            );
        }
        axum::Json(Value::Object(seen))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

/// forge, the upstream app and one proxy in front of both.
struct Stack {
    forge: TestServer,
    proxy: Proxy,
    client: reqwest::Client,
}

#[derive(Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
}

/// Starts the three. The proxy's port is chosen first so that forge's
/// `server.allowed_redirects` can name the proxy's origin when
/// `allow_proxy_origin` (else the list is empty: only forge's own origin).
async fn stack(kind: Kind, allow_proxy_origin: bool) -> Stack {
    let upstream = start_upstream().await;
    let port = free_port();
    let forge = TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.forward_auth.login_url = LOGIN_URL.to_owned();
        if allow_proxy_origin {
            c.server.allowed_redirects = vec![format!("http://127.0.0.1:{port}")];
        }
    })
    .await;
    let forge_addr = forge.base_url().trim_start_matches("http://").to_owned();
    let proxy = match kind {
        Kind::Nginx => start_nginx(port, &forge_addr, &upstream).await,
        Kind::Caddy => start_caddy(port, &forge_addr, &upstream).await,
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Stack { forge, proxy, client }
}

impl Stack {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.proxy.base))
    }

    /// What the upstream app saw, when the proxy let the request through.
    async fn seen(&self, request: reqwest::RequestBuilder) -> Map<String, Value> {
        let resp = request.send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{}: {body}\n{}", self.proxy.name, self.proxy.log());
        match serde_json::from_str(&body).unwrap() {
            Value::Object(seen) => seen,
            other => panic!("{other}"),
        }
    }

    async fn status(&self, request: reqwest::RequestBuilder) -> StatusCode {
        request.send().await.unwrap().status()
    }
}

fn access(session: &Value) -> &str {
    session["access_token"].as_str().unwrap()
}

/// Every case, through one proxy.
async fn forward_auth_through(kind: Kind) {
    let s = stack(kind, false).await;
    let name = s.proxy.name;

    // No token, an API call (or a script): 401, whatever it sends along.
    for accept in ["application/json", "*/*"] {
        let status = s.status(s.get("/docs/page?x=1").header("accept", accept)).await;
        assert_eq!(status, 401, "{name}: {accept}");
    }
    let resp = s
        .get("/docs/page")
        .header("accept", FIREFOX_ACCEPT)
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{name}: a script's request is not a browser's");

    // A browser: 302 to the sign-in page, with the page it asked for as `rd`
    // only once that page's origin is allowed (the test server's allow list
    // is empty: only forge's own origin).
    let resp = s
        .get("/docs/page?x=1&y=2")
        .header("accept", FIREFOX_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "{name}: a page outside the allow list is never passed on"
    );
    assert!(resp.headers().get("location").is_none(), "{name}");
    drop(s);

    let s = stack(kind, true).await;
    let resp = s
        .get("/docs/page?x=1&y=2")
        .header("accept", FIREFOX_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "{name}: {}", s.proxy.log());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let expected_rd = format!("{}/docs/page?x=1&y=2", s.proxy.base);
    let expected = url::Url::parse_with_params(LOGIN_URL, [("rd", expected_rd.as_str())]).unwrap();
    assert_eq!(location, expected.as_str(), "{name}");

    // Open redirect: the client names another host, in Host or in the
    // forwarding headers; forge never sends the browser there.
    for (header, value) in [
        ("host", "evil.example"),
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "https://evil.example/phish"),
    ] {
        let resp = s
            .get("/docs/page")
            .header("accept", FIREFOX_ACCEPT)
            .header(header, value)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(!location.contains("evil"), "{name}: {header}: {value} -> {location}");
        // Caddy answers a Host no site claims with an empty 200 of its own;
        // either way the app is never reached without a session.
        let body = resp.text().await.unwrap();
        assert!(
            matches!(status.as_u16(), 302 | 401) || (status == 200 && body.is_empty()),
            "{name}: {header}: {status} {body}"
        );
    }

    // A valid token: the app sees who it is.
    let sam = s.forge.signup_verified("sam@example.com", PASSWORD).await;
    let seen = s.seen(s.get("/docs/page").bearer_auth(access(&sam))).await;
    assert_eq!(seen["remote-user"], "sam@example.com", "{name}: {seen:?}");
    assert_eq!(seen["remote-email"], "sam@example.com", "{name}");
    assert_eq!(seen["x-forge-user-id"], sam["user"]["id"], "{name}");
    assert_eq!(seen["x-forge-tenant"], "default", "{name}");
    assert_eq!(seen["x-forge-aal"], "1", "{name}");
    // The forge_session cookie works as well as the bearer.
    let seen = s
        .seen(
            s.get("/docs/page")
                .header("cookie", format!("theme=dark; forge_session={}", access(&sam))),
        )
        .await;
    assert_eq!(seen["x-forge-user-id"], sam["user"]["id"], "{name}");

    // Spoofed identity: a user whose email is unverified (so forge asserts
    // no Remote-Email) sends every identity header of an administrator
    // itself. The app sees forge's answer and nothing of the client's.
    let mallory = s.forge.signup("mallory@example.com", PASSWORD).await;
    let mut spoofed = s.get("/docs/page").bearer_auth(access(&mallory));
    for header in IDENTITY {
        spoofed = spoofed.header(header, "admin@example.com");
    }
    let seen = s
        .seen(
            spoofed
                .header("remote_user", "admin@example.com")
                .header("remote-name", "x"),
        )
        .await;
    for header in IDENTITY {
        assert_ne!(
            seen.get(header).and_then(Value::as_str),
            Some("admin@example.com"),
            "{name}: the client's {header} reached the app: {seen:?}"
        );
    }
    assert!(!seen.contains_key("remote-email"), "{name}: {seen:?}");
    assert!(!seen.contains_key("remote_user"), "{name}: {seen:?}");
    assert_eq!(seen["remote-user"], mallory["user"]["id"], "{name}");
    // No roles: an empty header, which nginx does not send at all.
    assert!(seen.get("x-forge-roles").is_none_or(|r| r == ""), "{name}: {seen:?}");
    // And without a token, the spoofed headers buy nothing.
    let mut anonymous = s.get("/docs/page").header("accept", "application/json");
    for header in IDENTITY {
        anonymous = anonymous.header(header, "admin@example.com");
    }
    assert_eq!(s.status(anonymous).await, 401, "{name}");

    // The role check: /admin/ needs `admin`.
    assert_eq!(
        s.status(s.get("/admin/users").bearer_auth(access(&sam))).await,
        403,
        "{name}: a user without the role"
    );
    let root = s.forge.admin("root@example.com", PASSWORD).await;
    let seen = s.seen(s.get("/admin/users").bearer_auth(access(&root))).await;
    assert_eq!(seen["x-forge-roles"], "admin", "{name}");

    // Signed out: the same token is refused at once.
    let (status, _) = s
        .forge
        .as_user(access(&sam))
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .await;
    assert_eq!(status, 204);
    let status = s.status(s.get("/docs/page").bearer_auth(access(&sam))).await;
    assert_eq!(status, 401, "{name}: a signed-out session");
}

#[tokio::test]
async fn nginx_auth_request() {
    forward_auth_through(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_forward_auth() {
    forward_auth_through(Kind::Caddy).await;
}
