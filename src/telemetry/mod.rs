//! Logging setup: text or JSON lines on stderr (stdout carries only the
//! `forge listening on` line), level from `log.level` or `RUST_LOG`.
//!
//! Colour codes only when stderr is a terminal: a log file, journald or a
//! container runtime gets plain text. JSON is one object per line with the
//! event's own fields at the top level (the access line carries `method`,
//! `route`, `request_id`, `status`, `latency_ms` and `user_id` itself, so
//! Loki or `jq` need no span lookups for it).

pub mod metrics;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogConfig, LogFormat, redact_url_password};

pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What an operator needs to know about a start, on one line: which build,
/// which file (or none: built-in defaults and `FORGE_*` variables), which
/// database and cache (passwords shown as `***`) and where it listens.
pub fn log_startup(config: &Config, file: Option<&Path>, listening: SocketAddr) {
    let StartupFacts {
        version,
        config_file,
        database,
        cache,
    } = StartupFacts::of(config, file);
    tracing::info!(version, config_file, database, cache, %listening, "forge started");
}

/// The start-up line's values, apart so the redaction is testable.
struct StartupFacts {
    version: &'static str,
    config_file: String,
    database: String,
    cache: String,
}

impl StartupFacts {
    fn of(config: &Config, file: Option<&Path>) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            config_file: file
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "defaults".to_owned()),
            database: redact_url_password(&config.database.url),
            cache: redact_url_password(&config.cache.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_facts_redact_url_passwords() {
        let mut config = Config::default();
        config.database.url = "postgres://forge:hunter2-db@db.internal:5432/forge".into();
        config.cache.url = "redis://:hunter2-cache@cache:6379/0".into();
        let facts = StartupFacts::of(&config, Some(Path::new("/data/forge.toml")));
        assert_eq!(facts.database, "postgres://forge:***@db.internal:5432/forge");
        assert_eq!(facts.cache, "redis://:***@cache:6379/0");
        assert_eq!(facts.config_file, "/data/forge.toml");
        assert_eq!(facts.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(StartupFacts::of(&Config::default(), None).config_file, "defaults");
    }
}
