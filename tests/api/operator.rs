//! What an operator sees of the running binary: its logs written to a file
//! (no colour codes), `log.format = "json"` (one object per line, the
//! access line with its own request fields), the start-up line (secrets
//! redacted), and `forge health` as Docker's HEALTHCHECK runs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::binary::{forge, listening};

/// The binary serving on a free port, its stderr going to a file (not a TTY).
struct Served {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Served {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join("forge.log");
        let mut cmd = forge();
        cmd.current_dir(dir)
            .args(args)
            .env("FORGE_SERVER__BIND", "127.0.0.1:0")
            .env("FORGE_PASSWORD__ARGON2_MEMORY_KIB", "1024")
            .env("FORGE_PASSWORD__ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let base = listening(&mut child, || std::fs::read_to_string(&log).unwrap_or_default());
        Self { child, base, log }
    }

    /// SIGTERM, wait for the exit, and the whole log.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(20), "no exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}")))
        .collect()
}

#[test]
fn a_log_file_gets_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &[], &[("FORGE_DATABASE__URL", "sqlite::memory:")]);
    block_on(async {
        let resp = reqwest::get(format!("{}/health/ready", server.base)).await.unwrap();
        assert_eq!(resp.status(), 200);
        // An error line too: levels and errors are where colour used to go.
        let resp = reqwest::get(format!("{}/v1/users/me", server.base)).await.unwrap();
        assert_eq!(resp.status(), 401);
    });
    let log = server.stop();
    assert!(log.contains("forge started"), "{log}");
    assert!(log.contains("/health/ready"), "{log}");
    assert!(!log.contains("\x1b["), "escape codes in a log file: {log:?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        dir.path(),
        &[],
        &[
            ("FORGE_DATABASE__URL", "sqlite::memory:"),
            ("FORGE_LOG__FORMAT", "json"),
        ],
    );
    let other = uuid::Uuid::new_v4().to_string();
    let user_id = block_on(async {
        let c = reqwest::Client::new();
        let signup: serde_json::Value = c
            .post(format!("{}/v1/auth/signup", server.base))
            .json(&serde_json::json!({"email": "json-log@example.com", "password": "json log correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = signup["access_token"].as_str().unwrap().to_string();
        let resp = c
            .get(format!("{}/v1/users/me", server.base))
            .bearer_auth(&token)
            .header("x-request-id", "log-test-me")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // A route with a parameter: the line names the template, never the raw path.
        let resp = c
            .get(format!("{}/v1/users/{other}", server.base))
            .bearer_auth(&token)
            .header("x-request-id", "log-test-param")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let resp = c
            .get(format!("{}/v1/users/me", server.base))
            .header("x-request-id", "log-test-anonymous")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        signup["user"]["id"].as_str().unwrap().to_string()
    });
    let log = server.stop();
    assert!(!log.contains("\x1b["), "{log:?}");
    let lines = json_lines(&log);
    let request = |id: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "request" && l["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line with request_id {id}: {log}"))
            .clone()
    };

    let me = request("log-test-me");
    assert_eq!(me["method"], "GET");
    assert_eq!(me["route"], "/v1/users/me");
    assert_eq!(me["status"], 200);
    assert!(me["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{me}");
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["level"], "INFO");
    assert!(me["timestamp"].is_string(), "{me}");

    let param = request("log-test-param");
    assert_eq!(param["route"], "/v1/users/{id}");
    assert_eq!(param["status"], 403);
    assert_eq!(param["user_id"], user_id.as_str());
    assert!(
        !param.to_string().contains(&other),
        "the raw path reached the line: {param}"
    );

    let anonymous = request("log-test-anonymous");
    assert_eq!(anonymous["status"], 401);
    assert!(anonymous.get("user_id").is_none(), "{anonymous}");

    assert!(lines.iter().any(|l| l["message"] == "forge started"), "{log}");
}

/// The start-up line names the version, the config file, the database and
/// cache (a password in the database URL shown as `***`) and the address.
#[test]
fn the_startup_line_says_what_runs_and_redacts_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    // A SQLite URL whose authority looks like credentials: a relative path
    // under a directory named `forge:canary-pw@db`, so the real binary
    // starts with a password-bearing URL and no database server.
    std::fs::create_dir(dir.path().join("forge:canary-pw@db")).unwrap();
    let config = dir.path().join("forge.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite://forge:canary-pw@db/forge.db\"\n\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let server = Served::start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let listening = server.base.trim_start_matches("http://").to_string();
    let log = server.stop();
    assert!(dir.path().join("forge:canary-pw@db/forge.db").exists());
    assert!(
        !log.contains("canary-pw"),
        "the database password reached the log: {log}"
    );
    let lines = json_lines(&log);
    let started = lines
        .iter()
        .find(|l| l["message"] == "forge started")
        .unwrap_or_else(|| panic!("no start-up line: {log}"));
    assert_eq!(started["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(started["config_file"], config.to_str().unwrap());
    assert_eq!(started["database"], "sqlite://forge:***@db/forge.db");
    assert_eq!(started["cache"], "memory");
    assert_eq!(started["listening"], listening.as_str());

    // No file: the line says so.
    let server = Served::start(dir.path(), &[], &[("FORGE_LOG__FORMAT", "json")]);
    let log = server.stop();
    let lines = json_lines(&log);
    let started = lines.iter().find(|l| l["message"] == "forge started").unwrap();
    assert_eq!(started["config_file"], "defaults");
    assert_eq!(started["database"], "sqlite://forge.db");
}

/// `forge health`: 0 for a ready server (by `--url` or by the
/// configuration's `server.bind`), 1 for anything else, never 2.
#[test]
fn health_exits_0_when_ready_and_1_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &[], &[("FORGE_DATABASE__URL", "sqlite::memory:")]);
    let bind = server.base.trim_start_matches("http://").to_string();

    let out = forge().args(["health", "--url", &server.base]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("200"));

    // No --url: the configuration's bind address, as in the container.
    let out = forge().arg("health").env("FORGE_SERVER__BIND", &bind).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    server.stop();

    // Nothing listens there any more.
    let out = forge().arg("health").env("FORGE_SERVER__BIND", &bind).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));

    // A configuration that does not load is unhealthy (1), not Docker's reserved 2.
    let out = forge().arg("health").env("FORGE_SERVER__BINDD", "x").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Port 0 names no server.
    let out = forge()
        .arg("health")
        .env("FORGE_SERVER__BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
}

/// The README shows the proxy configurations the proxy tests run, verbatim.
#[test]
fn the_readme_shows_the_tested_proxy_configs_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for file in [
        "deploy/nginx/forge.conf",
        "deploy/caddy/Caddyfile",
        "deploy/traefik/forge.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(readme.contains(&text), "README.md does not show {file} as it is");
    }
}
