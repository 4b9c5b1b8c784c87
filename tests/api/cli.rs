//! The `forge` binary as an operator uses it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::binary::{forge, listening};

#[test]
fn version() {
    let out = forge().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("forge "));
}

#[test]
fn a_bad_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forge.toml");
    std::fs::write(&file, "[server]\nbnd = \"127.0.0.1:1\"\n").unwrap();
    let out = forge()
        .args(["--config", file.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.bnd"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&file, "[jwt]\naccess_ttl = \"soon\"\n").unwrap();
    let out = forge().args(["--config", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwt.access_ttl"));

    let out = forge()
        .args(["config", "check"])
        .env("FORGE_SERVER__PORTT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FORGE_SERVER__PORTT"));
}

#[test]
fn config_check_redacts_secrets() {
    let out = forge()
        .args(["config", "check"])
        .env("FORGE_JWT__ALGORITHM", "HS256")
        .env("FORGE_JWT__SECRET", "super-secret-value-that-is-32-bytes-long")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HS256") && text.contains("***"), "{text}");
    assert!(!text.contains("super-secret"), "{text}");
}

#[test]
fn the_sample_config_is_valid() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/forge.toml");
    let out = forge().args(["--config", sample, "config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Serve, create an admin while it is down, restart, sign in, stop with SIGTERM.
#[test]
fn migrate_admin_create_serve_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("forge.db").display());
    let out = forge().arg("migrate").env("FORGE_DATABASE__URL", &db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut child = forge()
        .args(["admin", "create", "--email", "ops@example.com", "--password-stdin"])
        .env("FORGE_DATABASE__URL", &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Weak passwords are refused with exit 2.
    let mut child = forge()
        .args(["admin", "create", "--email", "weak@example.com", "--password-stdin"])
        .env("FORGE_DATABASE__URL", &db)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"password\n").unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(2));

    let mut server = forge()
        .env("FORGE_DATABASE__URL", &db)
        .env("FORGE_SERVER__BIND", "127.0.0.1:0")
        .env("FORGE_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listening(&mut server, String::new);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{addr}/v1/auth/login"))
            .json(&serde_json::json!({"email": "ops@example.com", "password": "correct horse battery staple"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["user"]["roles"], serde_json::json!(["admin"]));
    });

    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the real binary with debug logs through every flow that handles a
/// secret, then checks that no password, code or token reached the log.
#[test]
fn no_secret_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("forge.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = forge()
        .env("FORGE_DATABASE__URL", "sqlite::memory:")
        .env("FORGE_SERVER__BIND", "127.0.0.1:0")
        .env("FORGE_NOTIFY__CHANNEL", "memory")
        .env("FORGE_DEV__OUTBOX", "true")
        .env("FORGE_LOG__LEVEL", "debug")
        .env("FORGE_PASSWORD__ARGON2_MEMORY_KIB", "1024")
        .env("FORGE_PASSWORD__ARGON2_ITERATIONS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = listening(&mut server, String::new);
    let password = "log-canary correct horse battery";
    let new_password = "log-canary another fine passphrase";
    let mut secrets: Vec<String> = vec![password.into(), new_password.into(), "wrong-canary password x".into()];

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let post = |path: &str, body: serde_json::Value| c.post(format!("{base}{path}")).json(&body).send();
        let code_for = |to: &'static str| {
            let c = c.clone();
            let base = base.clone();
            async move {
                let v: serde_json::Value = c
                    .get(format!("{base}/v1/dev/outbox"))
                    .query(&[("to", to)])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v[0]["code"].as_str().unwrap().to_string()
            }
        };
        let signup: serde_json::Value = post(
            "/v1/auth/signup",
            serde_json::json!({"email": "log@example.com", "password": password}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        secrets.push(signup["access_token"].as_str().unwrap().into());
        secrets.push(signup["refresh_token"].as_str().unwrap().into());
        post(
            "/v1/auth/login",
            serde_json::json!({"email": "log@example.com", "password": "wrong-canary password x"}),
        )
        .await
        .unwrap();
        let refreshed: serde_json::Value = post(
            "/v1/auth/refresh",
            serde_json::json!({"refresh_token": signup["refresh_token"]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        secrets.push(refreshed["refresh_token"].as_str().unwrap().into());
        post("/v1/auth/otp", serde_json::json!({"phone": "+14155550199"}))
            .await
            .unwrap();
        let code = code_for("+14155550199").await;
        post(
            "/v1/auth/otp/verify",
            serde_json::json!({"phone": "+14155550199", "code": code}),
        )
        .await
        .unwrap();
        secrets.push(code);
        post(
            "/v1/auth/password/forgot",
            serde_json::json!({"email": "log@example.com"}),
        )
        .await
        .unwrap();
        let code = code_for("log@example.com").await;
        let resp = post(
            "/v1/auth/password/reset",
            serde_json::json!({"email": "log@example.com", "code": code, "new_password": new_password}),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 204);
        secrets.push(code);
    });
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("/v1/auth/login"), "the request log is there: {logs}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the log: {secret}");
    }
}

/// `forge clients add|list|rotate-secret|remove` against a SQLite file: the
/// secret is printed once, rotation replaces it, removal forgets the client,
/// and bad input exits 2 naming what was wrong.
#[test]
fn clients_add_list_rotate_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let run = subcommand(&dir, "clients");

    let (code, out, err) = run(&[
        "add",
        "--name",
        "Gitea",
        "--redirect-uri",
        "https://git.example.com/user/oauth2/forge/callback",
        "--first-party",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id = field(&out, "client_id");
    let secret = field(&out, "client_secret");
    assert_eq!((id.len(), secret.len()), (22, 43));

    let (code, out, err) = run(&[
        "add",
        "--name",
        "CLI",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "com.example.cli:/cb",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let public_id = field(&out, "client_id");
    assert!(!out.contains("client_secret"), "{out}");

    let (code, out, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&id) && out.contains("Gitea") && out.contains("confidential"),
        "{out}"
    );
    assert!(out.contains(&public_id) && out.contains("com.example.cli:/cb"), "{out}");
    assert!(!out.contains(&secret), "the list never shows a secret: {out}");

    let (code, out, err) = run(&["rotate-secret", &id]);
    assert_eq!(code, Some(0), "{err}");
    let new = field(&out, "client_secret");
    assert_ne!(new, secret);
    let (code, _, err) = run(&["rotate-secret", &public_id]);
    assert_eq!(code, Some(2), "{err}");

    // Everything a client like Grafana needs, from the command line.
    let (code, out, err) = run(&[
        "add",
        "--name",
        "Grafana",
        "--redirect-uri",
        "https://grafana.example.com/login/generic_oauth",
        "--post-logout-redirect-uri",
        "https://grafana.example.com/login",
        "--scope",
        "openid",
        "--scope",
        "roles",
        "--grant-type",
        "authorization_code",
        "--id-token-alg",
        "RS256",
        "--backchannel-logout-uri",
        "https://grafana.example.com/backchannel",
    ]);
    assert_eq!(code, Some(0), "{err}");
    field(&out, "client_secret");
    let (code, _, err) = run(&[
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        "https://a.example/cb",
        "--id-token-alg",
        "HS256",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--id-token-alg"), "{err}");
    let (code, _, err) = run(&[
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        "https://a.example/cb",
        "--grant-type",
        "implicit",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--grant-type"), "{err}");

    // A client_id is base64url and may begin with `-`: still an argument.
    let (code, _, err) = run(&["rotate-secret", "-9Zq7xYpL2mNwR4tV8bC1dE"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no client") || err.contains("not found") || err.contains("client"),
        "{err}"
    );
    assert!(!err.contains("unexpected argument"), "{err}");

    // Refused input: exit 2, one clear line, nothing registered.
    let (code, _, err) = run(&["add", "--name", "Bad", "--redirect-uri", "http://example.com/cb"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("redirect_uris"), "{err}");
    let (code, _, err) = run(&[
        "add",
        "--name",
        "X",
        "--redirect-uri",
        "https://a.example/cb",
        "--tenant",
        "nope",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no tenant nope"), "{err}");

    let (code, _, err) = run(&["remove", &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["remove", &id]);
    assert_eq!(code, Some(2), "{err}");
    let (_, out, _) = run(&["list"]);
    assert!(!out.contains(&id) && out.contains(&public_id), "{out}");
}

/// Runs `forge <name> ARGS` on a database in `dir`: exit code, stdout, stderr.
fn subcommand<'a>(dir: &tempfile::TempDir, name: &'a str) -> impl Fn(&[&str]) -> (Option<i32>, String, String) + 'a {
    let db = format!("sqlite://{}", dir.path().join("forge.db").display());
    move |args: &[&str]| {
        let out = forge()
            .arg(name)
            .args(args)
            .env("FORGE_DATABASE__URL", &db)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The value of the `name: value` line of a command's output.
fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn webhooks_add_list_rotate_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let run = subcommand(&dir, "webhooks");

    let (code, out, err) = run(&[
        "add",
        "--url",
        "https://app.example.com/forge-events",
        "--event",
        "user.*",
        "--event",
        "session.created",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id = field(&out, "id");
    let secret = field(&out, "secret");
    assert!(secret.starts_with("whsec_"), "{out}");

    // The SSRF guard holds at the command line too; a bad pattern is named.
    let (code, _, err) = run(&["add", "--url", "https://127.0.0.1/x", "--event", "*"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("may not point at"), "{err}");
    let (code, _, err) = run(&["add", "--url", "https://app.example.com/x", "--event", "user.creatd"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("events"), "{err}");

    let (code, out, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&id) && out.contains("user.* session.created") && out.contains("enabled"),
        "{out}"
    );
    assert!(!out.contains(&secret), "the list never shows a secret: {out}");

    let (code, out, err) = run(&["rotate-secret", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(field(&out, "secret"), secret);

    let (code, _, err) = run(&["remove", &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["remove", &id]);
    assert_eq!(code, Some(2), "{err}");
    let (_, out, _) = run(&["list"]);
    assert!(!out.contains(&id), "{out}");
}
