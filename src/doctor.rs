//! `forge doctor`: the checks a self-hoster runs when something is off,
//! each one line with `ok`, `warn`, `fail` or `skip` (not checked, with
//! the reason), as text or as one JSON object. Any `fail` makes the command
//! exit 1.
//!
//! The doctor looks, it does not change: it reads the database's migration
//! history with a connection of its own before anything could migrate it,
//! and opens the store (which applies pending migrations) only when the
//! history is already current. Mail credentials are checked by connecting
//! and authenticating without sending; Twilio's by reading the account
//! (which sends nothing); a webhook is not called, since any call would be
//! a delivery. The client address shown for a sample `X-Forwarded-For` comes
//! from the very function requests go through (`http::extract::client_ip`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::config::{Config, JwtAlgorithm, NotifyChannel};
use crate::service::backups::Plan;
use crate::store::backup;
use crate::store::sqlite::{SqliteStore, SqliteTarget};

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
            Level::Skip => "skip",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Level,
    pub detail: String,
}

/// Every check, in the order they ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

/// The check names, in order: the keys of the JSON output.
pub const CHECKS: [&str; 10] = [
    "config",
    "database",
    "migrations",
    "signing_keys",
    "backup",
    "outbox",
    "email",
    "sms",
    "trusted_proxies",
    "clock",
];

impl Report {
    fn add(&mut self, name: &'static str, status: Level, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            status,
            detail: detail.into(),
        });
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Level::Fail)
    }

    /// `{"ok": bool, "checks": {"config": {"status", "detail"}, ...}}`.
    pub fn to_json(&self) -> String {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|c| (c.name.to_owned(), json!({"status": c.status, "detail": c.detail})))
            .collect();
        json!({"ok": !self.failed(), "checks": checks}).to_string()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{:<4}  {:<16}  {}\n", c.status.as_str(), c.name, c.detail));
        }
        out
    }
}

/// What the database said.
#[derive(Default)]
struct DbFacts {
    version: String,
    /// `None`: no migration history (a new database).
    applied: Option<Vec<(i64, String)>>,
    /// The database's clock, Unix seconds.
    now: Option<f64>,
}

/// Runs every check. `config_path` is the file given on the command line.
pub async fn run(config: &Config, config_path: Option<&Path>, forwarded_for: &str) -> Report {
    let mut report = Report::default();
    config_check(&mut report, config_path);

    let facts = database_facts(config).await;
    let known = SqliteStore::known_migrations();
    let mut current = false;
    match &facts {
        Err(e) => {
            report.add("database", Level::Fail, e.clone());
            report.add("migrations", Level::Skip, "not checked: no database");
        }
        Ok(facts) => {
            report.add("database", Level::Ok, facts.version.clone());
            let newest = known.iter().map(|(v, _)| *v).max().unwrap_or(0);
            match &facts.applied {
                None => report.add(
                    "migrations",
                    Level::Warn,
                    format!(
                        "none applied yet, {} known: the server applies them at start (or run forge migrate)",
                        known.len()
                    ),
                ),
                Some(applied) => {
                    let pending: Vec<_> = known.iter().filter(|k| !applied.contains(k)).collect();
                    let unknown: Vec<_> = applied.iter().filter(|a| !known.contains(a)).collect();
                    if let Some((v, n)) = unknown.first() {
                        report.add(
                            "migrations",
                            Level::Fail,
                            format!("V{v}__{n} is not known to this binary (it knows up to V{newest}): a newer forge wrote this database"),
                        );
                    } else if !pending.is_empty() {
                        report.add(
                            "migrations",
                            Level::Warn,
                            format!(
                                "{} of {} applied, {} pending: the server applies them at start (or run forge migrate)",
                                applied.len(),
                                known.len(),
                                pending.len()
                            ),
                        );
                    } else {
                        current = true;
                        report.add(
                            "migrations",
                            Level::Ok,
                            format!("current: {} of {} applied (V{newest})", applied.len(), known.len()),
                        );
                    }
                }
            }
        }
    }

    let store = if current {
        let config = config.clone();
        match tokio::task::spawn_blocking(move || crate::app::open_store(&config)).await {
            Ok(Ok(store)) => Some(store),
            Ok(Err(e)) => {
                report.add("signing_keys", Level::Fail, format!("cannot open the store: {e:#}"));
                None
            }
            Err(e) => {
                report.add("signing_keys", Level::Fail, format!("cannot open the store: {e}"));
                None
            }
        }
    } else {
        None
    };
    let now = crate::clock::Clock::system().now();
    match &store {
        Some(store) => keys_check(&mut report, store.as_ref(), config, now).await,
        None if !report.checks.iter().any(|c| c.name == "signing_keys") => {
            report.add("signing_keys", Level::Skip, "not checked: the database is not current")
        }
        None => {}
    }
    backup_check(&mut report, config, now).await;
    match &store {
        Some(store) => match store.pending_count().await {
            Ok(0) => report.add("outbox", Level::Ok, "empty"),
            Ok(n) if n < 100 => report.add("outbox", Level::Ok, format!("{n} message(s) waiting")),
            Ok(n) => report.add(
                "outbox",
                Level::Warn,
                format!("{n} messages waiting: is delivery working? (see the email and sms checks)"),
            ),
            Err(e) => report.add("outbox", Level::Fail, format!("cannot count: {e}")),
        },
        None => report.add("outbox", Level::Skip, "not checked: the database is not current"),
    }
    notify_checks(&mut report, config).await;
    proxies_check(&mut report, config, forwarded_for);
    match facts.as_ref().ok().and_then(|f| f.now) {
        Some(db_now) => {
            let local = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let skew = local - db_now;
            let detail = format!("this machine is {skew:+.1} s from the database's clock");
            let level = match skew.abs() {
                s if s <= 2.0 => Level::Ok,
                s if s <= 30.0 => Level::Warn,
                _ => Level::Fail,
            };
            report.add("clock", level, detail);
        }
        None => report.add("clock", Level::Skip, "not checked: no database time"),
    }
    report
}

fn config_check(report: &mut Report, path: Option<&Path>) {
    let mut overrides: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("FORGE_") && k.contains("__"))
        .collect();
    overrides.sort();
    let source = match path {
        Some(p) => format!("loaded from {}", p.display()),
        None => "built-in defaults (no --config / FORGE_CONFIG)".to_owned(),
    };
    let detail = if overrides.is_empty() {
        source
    } else {
        format!("{source}, overridden by {}", overrides.join(", "))
    };
    report.add("config", Level::Ok, detail);
}

async fn database_facts(config: &Config) -> Result<DbFacts, String> {
    let url = config.database.url.clone();
    tokio::task::spawn_blocking(move || database_facts_blocking(&url))
        .await
        .map_err(|e| format!("the check failed: {e}"))?
}

fn database_facts_blocking(url: &str) -> Result<DbFacts, String> {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres_facts(url);
    }
    match SqliteTarget::from_url(url) {
        Some(SqliteTarget::Memory) => Ok(DbFacts {
            version: format!(
                "SQLite {} in memory: nothing is kept after the process ends",
                rusqlite::version()
            ),
            applied: None,
            now: None,
        }),
        Some(SqliteTarget::File(path)) => {
            if !path.exists() {
                return Err(format!(
                    "{} does not exist yet (the server creates it at first start)",
                    path.display()
                ));
            }
            let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
            let applied =
                backup::applied_migrations(&conn).map_err(|e| format!("cannot read {}: {e:#}", path.display()))?;
            let now: f64 = conn
                .query_row("SELECT (julianday('now') - 2440587.5) * 86400.0", [], |r| r.get(0))
                .map_err(|e| format!("cannot read the time: {e}"))?;
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Ok(DbFacts {
                version: format!(
                    "SQLite {} at {} ({} KiB)",
                    rusqlite::version(),
                    path.display(),
                    bytes / 1024
                ),
                applied,
                now: Some(now),
            })
        }
        None => Err("database.url names no database this binary supports".to_owned()),
    }
}

#[cfg(feature = "postgres")]
fn postgres_facts(url: &str) -> Result<DbFacts, String> {
    let mut config: ::postgres::Config = url
        .parse()
        .map_err(|e| format!("database.url is not a valid postgres:// URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    let mut client = config
        .connect(::postgres::NoTls)
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let version: String = client
        .query_one("SHOW server_version", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| format!("cannot read the version: {e}"))?;
    let now: f64 = client
        .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| format!("cannot read the time: {e}"))?;
    let has_history: bool = client
        .query_one("SELECT to_regclass('refinery_schema_history') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| format!("cannot read the migration history: {e}"))?;
    let applied = if has_history {
        let rows = client
            .query(
                "SELECT version::int8, name FROM refinery_schema_history ORDER BY version",
                &[],
            )
            .map_err(|e| format!("cannot read the migration history: {e}"))?;
        Some(
            rows.iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?)))
                .collect::<Result<Vec<_>, ::postgres::Error>>()
                .map_err(|e| format!("cannot read the migration history: {e}"))?,
        )
    } else {
        None
    };
    Ok(DbFacts {
        version: format!("PostgreSQL {version}"),
        applied,
        now: Some(now),
    })
}

async fn keys_check(report: &mut Report, store: &dyn crate::store::Store, config: &Config, now: i64) {
    use crate::store::KeyState;
    if config.jwt.algorithm == JwtAlgorithm::HS256 {
        report.add(
            "signing_keys",
            Level::Ok,
            "jwt.algorithm is HS256: tokens are signed with jwt.secret",
        );
        return;
    }
    let keys = match crate::service::keys::list_keys(store, config, now).await {
        Ok(keys) => keys,
        Err(e) => return report.add("signing_keys", Level::Fail, format!("cannot read: {e}")),
    };
    let age = |t: i64| crate::http::site::views::duration(now - t);
    let Some(current) = keys.iter().find(|k| k.state == KeyState::Current) else {
        return report.add(
            "signing_keys",
            Level::Warn,
            "no signing key yet: the server creates one at first start",
        );
    };
    let since = current.activated_at.unwrap_or(current.created_at);
    let mut detail = format!("signing with {} for {}", current.kid, age(since));
    if let Some(next) = keys.iter().find(|k| k.state == KeyState::Next) {
        detail.push_str(&format!("; next key published {} ago", age(next.created_at)));
    }
    let retired = keys
        .iter()
        .filter(|k| k.state == KeyState::Retired && k.published)
        .count();
    if retired > 0 {
        detail.push_str(&format!("; {retired} retired key(s) still in the JWKS"));
    }
    // A year without rotation is worth a nudge, not an alarm.
    let level = if now - since > 365 * 86_400 {
        detail.push_str(" (consider forge keys rotate)");
        Level::Warn
    } else {
        Level::Ok
    };
    report.add("signing_keys", level, detail);
}

async fn backup_check(report: &mut Report, config: &Config, now: i64) {
    let url = &config.database.url;
    let Some(plan) = Plan::from_config(config) else {
        let (level, detail) = if backup::database_file(url).is_some() {
            (
                Level::Warn,
                "backup.schedule is off: no scheduled copies (forge backup FILE takes one by hand)".to_owned(),
            )
        } else if url.starts_with("sqlite:") {
            (Level::Ok, "an in-memory database: nothing to back up".to_owned())
        } else {
            (
                Level::Ok,
                "PostgreSQL: backups are the database's job (pg_dump, WAL archiving)".to_owned(),
            )
        };
        return report.add("backup", level, detail);
    };
    let dir = plan.dir.clone();
    let newest = tokio::task::spawn_blocking(move || backup::list(&dir)).await;
    let newest = match newest {
        Ok(Ok(mut files)) => files.pop(),
        Ok(Err(e)) => {
            return report.add(
                "backup",
                Level::Fail,
                format!("cannot read {}: {e}", plan.dir.display()),
            );
        }
        Err(e) => return report.add("backup", Level::Fail, format!("the check failed: {e}")),
    };
    let every = crate::http::site::views::duration(i64::try_from(plan.schedule.as_secs()).unwrap_or(i64::MAX));
    let Some(file) = newest else {
        return report.add(
            "backup",
            Level::Warn,
            format!(
                "no copy yet in {} (every {every}; the server takes them)",
                plan.dir.display()
            ),
        );
    };
    let age = now - file.taken_at;
    let stale = u64::try_from(age).unwrap_or(0) > plan.schedule.as_secs().saturating_mul(2);
    report.add(
        "backup",
        if stale { Level::Warn } else { Level::Ok },
        format!(
            "newest copy {} old ({}), every {every}, keeping {}{}",
            crate::http::site::views::duration(age),
            file.path.display(),
            plan.keep,
            if stale {
                ": older than twice the schedule, is the server running?"
            } else {
                ""
            }
        ),
    );
}

async fn notify_checks(report: &mut Report, config: &Config) {
    let notify = &config.notify;
    match notify.channel {
        NotifyChannel::Smtp => match crate::notify::test_smtp(&notify.smtp).await {
            Ok(()) => report.add(
                "email",
                Level::Ok,
                format!(
                    "{}:{} accepted the connection{} (nothing sent)",
                    notify.smtp.host,
                    notify.smtp.port,
                    if notify.smtp.username.is_some() {
                        " and the credentials"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => report.add(
                "email",
                Level::Fail,
                format!("{}:{}: {e}", notify.smtp.host, notify.smtp.port),
            ),
        },
        NotifyChannel::Webhook => report.add(
            "email",
            Level::Skip,
            "not checked: notify.channel is webhook, and any call would deliver",
        ),
        NotifyChannel::Log | NotifyChannel::Memory => report.add(
            "email",
            Level::Warn,
            format!(
                "notify.channel is {}: messages are not delivered to anyone",
                serde_json::to_value(notify.channel)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
        ),
        NotifyChannel::Twilio => report.add("email", Level::Skip, "not checked: notify.channel is twilio"),
    }
    match notify.channel {
        NotifyChannel::Twilio => twilio_check(report, config).await,
        NotifyChannel::Webhook => report.add("sms", Level::Skip, "not checked: a webhook call would deliver"),
        _ => report.add("sms", Level::Skip, "not checked: notify.channel is not twilio"),
    }
}

/// Reads the Twilio account (`GET /2010-04-01/Accounts/{sid}.json`): it
/// proves the credentials and sends nothing.
async fn twilio_check(report: &mut Report, config: &Config) {
    let twilio = &config.notify.twilio;
    let url = format!(
        "{}/2010-04-01/Accounts/{}.json",
        twilio.base_url.trim_end_matches('/'),
        twilio.account_sid
    );
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return report.add("sms", Level::Fail, format!("cannot build an HTTP client: {e}")),
    };
    let answer = client
        .get(&url)
        .basic_auth(
            &twilio.account_sid,
            twilio.auth_token.as_ref().map(|t| t.expose().to_owned()),
        )
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => {
            report.add("sms", Level::Ok, "Twilio accepted the credentials (nothing sent)")
        }
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED || r.status() == reqwest::StatusCode::FORBIDDEN => {
            report.add(
                "sms",
                Level::Fail,
                format!("Twilio refused the credentials ({})", r.status()),
            )
        }
        Ok(r) => report.add("sms", Level::Warn, format!("Twilio answered {}", r.status())),
        // Without the URL: reqwest's error may carry it, and the sid with it.
        Err(e) => report.add("sms", Level::Fail, format!("cannot reach Twilio: {}", e.without_url())),
    }
}

fn proxies_check(report: &mut Report, config: &Config, forwarded_for: &str) {
    let trusted = &config.server.trusted_proxies;
    // The peer is the first trusted proxy when there is one (what the
    // sample header would come through), else an outside address.
    let peer: IpAddr = trusted
        .first()
        .map(|net| net.addr())
        .unwrap_or(IpAddr::from([192, 0, 2, 1]));
    let request = axum::http::Request::builder()
        .header("x-forwarded-for", forwarded_for)
        .extension(axum::extract::ConnectInfo(SocketAddr::new(peer, 443)))
        .body(());
    let Ok(request) = request else {
        return report.add(
            "trusted_proxies",
            Level::Fail,
            "the sample X-Forwarded-For is not a valid header value",
        );
    };
    let (parts, ()) = request.into_parts();
    let client = crate::http::extract::client_ip(&parts, trusted)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    if trusted.is_empty() {
        return report.add(
            "trusted_proxies",
            Level::Ok,
            format!(
                "none: X-Forwarded-For is ignored and the client is the connecting address (from {peer} with X-Forwarded-For: {forwarded_for} -> {client})"
            ),
        );
    }
    let everyone = trusted.iter().any(|net| net.prefix_len() == 0);
    let shown: Vec<String> = trusted.iter().map(ToString::to_string).collect();
    let detail = format!(
        "{}: from {peer} with X-Forwarded-For: {forwarded_for} -> client {client}",
        shown.join(", ")
    );
    if everyone {
        report.add(
            "trusted_proxies",
            Level::Warn,
            format!("{detail}; a network of every address is trusted, so any client can choose its address"),
        );
    } else {
        report.add("trusted_proxies", Level::Ok, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_check_uses_the_real_extraction() {
        let mut config = Config::for_tests();
        config.server.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        let mut report = Report::default();
        proxies_check(&mut report, &config, "203.0.113.7, 10.0.0.2");
        assert!(
            report.checks[0].detail.ends_with("-> client 203.0.113.7"),
            "{:?}",
            report.checks
        );
        config.server.trusted_proxies = vec![];
        let mut report = Report::default();
        proxies_check(&mut report, &config, "203.0.113.7");
        assert!(report.checks[0].detail.contains("-> 192.0.2.1"), "{:?}", report.checks);
    }
}
