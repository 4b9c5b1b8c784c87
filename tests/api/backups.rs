//! Scheduled backups, `forge restore` and `forge doctor`, and what a kill -9
//! leaves of acknowledged writes, through the real binary on a file
//! database (the patterns of `cli.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::PASSWORD;
use crate::support::binary::{self, listening};

fn forge() -> Command {
    let mut cmd = binary::forge();
    cmd.env("FORGE_PASSWORD__ARGON2_MEMORY_KIB", "1024")
        .env("FORGE_PASSWORD__ARGON2_ITERATIONS", "1");
    cmd
}

fn url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// A server on `db`; returns it and its base URL.
fn serve(db: &Path, extra: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = forge();
    cmd.env("FORGE_DATABASE__URL", url(db))
        .env("FORGE_SERVER__BIND", "127.0.0.1:0")
        .env("FORGE_LOG__LEVEL", "warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut server = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let base = listening(&mut server, String::new);
    (server, base)
}

fn stop(mut server: Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    while server.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn restore(db: &Path, file: &Path) -> std::process::Output {
    forge()
        .args(["restore", file.to_str().unwrap()])
        .env("FORGE_DATABASE__URL", url(db))
        .output()
        .unwrap()
}

fn copies(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with("forge-") && name.ends_with(".db")
    });
    files.sort();
    files
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sign_in(base: &str, email: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
}

/// A 1 s schedule writes checked copies and keeps two; readiness shows the
/// age; restore refuses a live server and damaged files, then brings the
/// copy into a fresh server's database, where the user signs in.
#[test]
fn scheduled_backups_restore_into_a_fresh_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("forge.db");
    let backups = dir.path().join("backups");
    let (server, base) = serve(&db, &[("FORGE_BACKUP__SCHEDULE", "1s"), ("FORGE_BACKUP__KEEP", "2")]);
    let rt = runtime();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{base}/v1/auth/signup"))
            .json(&json!({"email": "kept@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    });
    // Copies keep coming (more than `keep` of them), and only two stay. A
    // new copy is renamed into place before the oldest is pruned, so for a
    // moment there are three.
    let signed_up = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 4 {
        assert!(
            signed_up.elapsed() < Duration::from_secs(30),
            "too few backups: {seen:?}"
        );
        let now = copies(&backups);
        assert!(now.len() <= 3, "retention: {now:?}");
        seen.extend(now);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Between two copies the directory settles to the two kept copies and
    // nothing else: no stray temporary files stay.
    let settled = Instant::now();
    loop {
        let entries = std::fs::read_dir(&backups).unwrap().count();
        if entries == 2 && copies(&backups).len() == 2 {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(10),
            "never settled to the two kept copies: {:?}",
            std::fs::read_dir(&backups)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let ready: Value = rt.block_on(async {
        reqwest::get(format!("{base}/health/ready"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(ready["status"], "ok", "{ready}");
    assert_eq!(ready["backup"]["status"], "ok", "{ready}");
    assert_eq!(ready["backup"]["schedule_seconds"], 1, "{ready}");
    assert!(ready["backup"]["age_seconds"].as_i64().unwrap() <= 3, "{ready}");
    assert!(ready["backup"]["last_at"].is_string(), "{ready}");

    // Taken well after the sign-up (copies are one second apart).
    let newest = copies(&backups).pop().unwrap();
    let kept = dir.path().join("kept.db");
    std::fs::copy(&newest, &kept).unwrap();

    // Not while the server runs on the database.
    let out = restore(&db, &kept);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running forge server"), "{err}");
    stop(server);

    // A damaged copy and a file that is not a database are refused, and
    // leave no database behind.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_db = fresh.path().join("forge.db");
    let mut bytes = std::fs::read(&kept).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle - 2048..middle + 2048] {
        *b = 0xa5;
    }
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = restore(&fresh_db, &damaged);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged") || err.contains("malformed"), "{err}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database at all, just text\n".repeat(200)).unwrap();
    assert_eq!(restore(&fresh_db, &junk).status.code(), Some(1));
    assert!(!fresh_db.exists());

    // The good copy goes into a fresh server's database.
    let out = restore(&fresh_db, &kept);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (server, base) = serve(&fresh_db, &[]);
    rt.block_on(async {
        assert_eq!(sign_in(&base, "kept@example.com").await, 200);
        assert_eq!(sign_in(&base, "nobody@example.com").await, 401);
    });
    stop(server);

    // Over an existing database, the old one is kept aside.
    let out = restore(&fresh_db, &kept);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let aside: Vec<_> = std::fs::read_dir(fresh.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("forge.db.before-restore-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

/// Group commit answers a write only once its batch has committed: every
/// sign-up answered with success before a kill -9 in the middle of a flood
/// of them is there after a restart (the user signs in), and the database
/// file is whole.
#[test]
fn acknowledged_writes_survive_a_kill_9_in_a_write_flood() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("forge.db");
    let no_limits = [("FORGE_RATE_LIMIT__ENABLED", "false")];
    let (mut server, base) = serve(&db, &no_limits);
    let rt = runtime();
    let acknowledged = rt.block_on(async {
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..24 {
            let (acked, base) = (acked.clone(), base.clone());
            writers.spawn(async move {
                let client = reqwest::Client::new();
                for i in 0.. {
                    let email = format!("flood-{w}-{i}@example.com");
                    let sent = client
                        .post(format!("{base}/v1/auth/signup"))
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status().is_success() => acked.lock().unwrap().push(email),
                        Ok(resp) => panic!("sign-up refused before the kill: {}", resp.status()),
                        // The server is gone: what was in flight is unknown.
                        Err(_) => break,
                    }
                }
            });
        }
        let started = Instant::now();
        while acked.lock().unwrap().len() < 150 {
            assert!(started.elapsed() < Duration::from_secs(60), "the flood stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.kill().unwrap(); // SIGKILL, with writes in flight
        server.wait().unwrap();
        while let Some(writer) = writers.join_next().await {
            writer.unwrap();
        }
        std::mem::take(&mut *acked.lock().unwrap())
    });

    let integrity: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let (server, base) = serve(&db, &no_limits);
    rt.block_on(async {
        for email in &acknowledged {
            assert_eq!(sign_in(&base, email).await, 200, "{email} was acknowledged, then lost");
        }
    });
    stop(server);
}

/// A server refuses `backup.schedule` on an in-memory database (exit 2).
#[test]
fn a_schedule_needs_a_database_file() {
    let out = forge()
        .env("FORGE_DATABASE__URL", "sqlite::memory:")
        .env("FORGE_BACKUP__SCHEDULE", "6h")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backup.schedule"));
}

/// `forge doctor` names every check in text, and the JSON has them all.
#[test]
fn doctor_reports_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("forge.db");
    let out = forge()
        .arg("migrate")
        .env("FORGE_DATABASE__URL", url(&db))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doctor = |json: bool| {
        let mut cmd = forge();
        cmd.arg("doctor")
            .env("FORGE_DATABASE__URL", url(&db))
            .env("FORGE_BACKUP__SCHEDULE", "6h")
            .env("FORGE_SERVER__TRUSTED_PROXIES", "10.0.0.0/8");
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = doctor(false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in forge::doctor::CHECKS {
        assert!(text.lines().any(|l| l.contains(name)), "{name} missing: {text}");
    }
    assert!(text.contains("-> client 203.0.113.7"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("fail")), "{text}");

    let out = doctor(true);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    for name in forge::doctor::CHECKS {
        let status = v["checks"][name]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {v}"));
        assert!(["ok", "warn", "skip"].contains(&status), "{name}: {v}");
    }
    assert_eq!(v["checks"]["migrations"]["status"], "ok", "{v}");
    assert_eq!(v["checks"]["backup"]["status"], "warn", "no copy yet: {v}");

    // No database there: a failure, exit 1.
    let out = forge()
        .args(["doctor", "--json"])
        .env("FORGE_DATABASE__URL", url(&dir.path().join("missing.db")))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"]["database"]["status"], "fail", "{v}");
}

/// The doctor checks SMTP credentials by connecting, and sends nothing.
#[tokio::test]
async fn doctor_connects_to_smtp_without_sending() {
    let (addr, mails) = crate::notify::smtp_server("250 OK\r\n").await;
    let mut config = forge::config::Config::for_tests();
    config.notify.channel = forge::config::NotifyChannel::Smtp;
    config.notify.smtp.host = addr.ip().to_string();
    config.notify.smtp.port = addr.port();
    config.notify.smtp.security = forge::config::SmtpSecurity::None;
    config.notify.smtp.from = "forge <noreply@example.test>".into();
    let report = forge::doctor::run(&config, None, "203.0.113.7").await;
    let email = report.checks.iter().find(|c| c.name == "email").unwrap();
    assert_eq!(email.status, forge::doctor::Level::Ok, "{email:?}");
    assert!(mails.lock().unwrap().is_empty(), "nothing was sent");

    // Nobody listening: a failure.
    config.notify.smtp.port = 1;
    let report = forge::doctor::run(&config, None, "203.0.113.7").await;
    assert!(report.failed());
}

/// The dashboard and readiness show the last backup's age.
#[tokio::test]
async fn the_dashboard_shows_the_last_backup() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}", dir.path().join("forge.db").display());
    let s = forge::testing::TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        if c.database.url.starts_with("sqlite:") {
            c.database.url = file;
            c.backup.schedule = Some(Duration::from_secs(3_600));
        }
    })
    .await;
    if s.state().backups.plan().is_none() {
        return; // PostgreSQL: scheduled backups are refused there.
    }
    s.admin("root@example.com", PASSWORD).await;
    let mut b = crate::support::site_client::Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    // The schedule takes a first copy at start (there is none); the hook
    // takes one more now.
    let copy = s.state().backups.run_once().await.unwrap();
    assert!(copy.path.starts_with(dir.path().join("backups")));
    let page = b.get("/admin").await;
    assert!(
        page.body.contains("Last backup") && page.body.contains(" s ago"),
        "{}",
        page.body
    );
    let (_, ready) = s.get("/health/ready").await;
    assert_eq!(ready["backup"]["status"], "ok", "{ready}");
}
