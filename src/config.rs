//! Typed configuration: built-in defaults, overridden by one TOML file, overridden
//! by `FORGE_<SECTION>__<KEY>` environment variables, then checked by
//! [`Config::validate`]. The invariants: every key has a safe default (an empty
//! file runs a local trial); a bad start-up input is a [`ConfigError`] whose
//! `Display` is one line naming the dotted key and where it came from (the file
//! or the variable), never a panic, a multi-line parser excerpt or a secret;
//! and the only serialised form of a config is the redacted one, because
//! [`Secret`] serialises as `***`.
//!
//! Why the errors are found key by key: serde and `toml` report the first
//! failure with a message but no key path. On failure the merged tree is
//! re-deserialised one key at a time (every field has a default, so a tree
//! holding a single key is a valid config on its own), which pins the culprit
//! to its full dotted path without another dependency.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use toml::{Table, Value};

use crate::secret::Secret;

/// Prefix that marks an environment variable as a key override (together with `__`).
const ENV_PREFIX: &str = "FORGE_";
/// Separates path segments in an override's name: `FORGE_NOTIFY__SMTP__HOST`.
const ENV_SEPARATOR: &str = "__";
/// Below this, a secret is too short to search for in an error message without
/// mangling it; such a secret is also far too weak to matter.
const MIN_SCRUBBED_SECRET: usize = 4;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub cache: CacheConfig,
    pub jwt: JwtConfig,
    pub password: PasswordConfig,
    pub signup: SignupConfig,
    pub otp: OtpConfig,
    pub rate_limit: RateLimitConfig,
    pub notify: NotifyConfig,
    pub admin: AdminConfig,
    pub dev: DevConfig,
    pub audit: AuditConfig,
    pub introspection: IntrospectionConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Port 0 picks a free port; the application reports the real address.
    pub bind: SocketAddr,
    /// Stored without a trailing `/` so callers can append paths.
    pub public_url: String,
    /// Only these peers' `X-Forwarded-For` is believed; bare IPs are accepted as /32 or /128.
    #[serde(with = "ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    pub max_body_bytes: usize,
    /// Browser origins allowed by CORS (`scheme://host[:port]`), or `["*"]`
    /// for any origin. Credentials are never allowed cross-origin (forge
    /// takes bearer tokens, not cookies, from other origins), which is what
    /// makes `*` safe to support.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://localhost:8080".to_owned(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 65_536,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite::memory:`, `sqlite://PATH`, or `postgres://...` with the `postgres` feature.
    pub url: String,
    pub pool_size: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://forge.db".to_owned(),
            pool_size: 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `memory`, or `redis://`/`rediss://` with the `postgres` feature.
    pub url: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            url: "memory".to_owned(),
        }
    }
}

/// The serde names are the JOSE `alg` values, so the config reads like the token header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    EdDSA,
    HS256,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    /// Required (32+ bytes) only for HS256; EdDSA keys live in the keyring.
    pub secret: Option<Secret>,
    /// Empty means "the public URL", filled in by [`Config::from_sources`].
    pub issuer: String,
    pub audience: String,
    #[serde(with = "duration")]
    pub access_ttl: Duration,
    #[serde(with = "duration")]
    pub refresh_ttl: Duration,
    /// The absolute lifetime of a session, however often it refreshes: a
    /// refresh after `created_at + session_max_age` fails and no refresh
    /// token outlives it. `refresh_ttl` is the sliding (idle) limit.
    #[serde(with = "duration")]
    pub session_max_age: Duration,
    /// A just-rotated refresh token presented again within this window is a
    /// client race (two tabs), not theft.
    #[serde(with = "duration")]
    pub refresh_reuse_grace: Duration,
    /// Clock skew tolerated when checking `exp`/`nbf`.
    #[serde(with = "duration")]
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::EdDSA,
            secret: None,
            issuer: String::new(),
            audience: "forge".to_owned(),
            access_ttl: minutes(15),
            refresh_ttl: days(30),
            session_max_age: days(90),
            refresh_reuse_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    pub min_length: usize,
    /// Caps the argon2 input so a huge password cannot buy CPU time.
    pub max_length: usize,
    /// zxcvbn-style score 0..=4.
    pub min_strength: u8,
    pub require_classes: bool,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        // The argon2id values are OWASP's minimum recommendation (19 MiB, t=2, p=1).
        Self {
            min_length: 8,
            max_length: 128,
            min_strength: 2,
            require_classes: false,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignupConfig {
    pub enabled: bool,
    pub require_email_verification: bool,
}

impl Default for SignupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            require_email_verification: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtpConfig {
    #[serde(with = "duration")]
    pub ttl: Duration,
    pub max_attempts: u32,
    #[serde(with = "duration")]
    pub attempt_window: Duration,
    #[serde(with = "duration")]
    pub resend_cooldown: Duration,
}

impl Default for OtpConfig {
    fn default() -> Self {
        Self {
            ttl: minutes(5),
            max_attempts: 3,
            attempt_window: minutes(15),
            resend_cooldown: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `false` turns every budget off (benchmarks, trusted networks).
    pub enabled: bool,
    pub login_per_ip: Rate,
    pub login_failures_per_account: Rate,
    pub signup_per_ip: Rate,
    pub otp_send_per_identifier: Rate,
    pub otp_send_per_ip: Rate,
    pub otp_verify_per_ip: Rate,
    pub recovery_per_identifier: Rate,
    pub refresh_per_ip: Rate,
    /// Failed logins per device token: a device that signed in to the
    /// account before has this budget of its own instead of the account's.
    pub login_failures_per_device: Rate,
    /// How long a device token (cookie `forge_device`) stays valid.
    #[serde(with = "duration")]
    pub device_token_ttl: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            login_per_ip: Rate::new(30, minutes(1)),
            login_failures_per_account: Rate::new(10, minutes(15)),
            signup_per_ip: Rate::new(20, hours(1)),
            otp_send_per_identifier: Rate::new(5, hours(1)),
            otp_send_per_ip: Rate::new(30, hours(1)),
            otp_verify_per_ip: Rate::new(30, minutes(5)),
            recovery_per_identifier: Rate::new(5, hours(1)),
            refresh_per_ip: Rate::new(120, minutes(1)),
            login_failures_per_device: Rate::new(5, minutes(15)),
            device_token_ttl: days(180),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyChannel {
    /// Prints messages to the log: a local trial needs no mail server.
    #[default]
    Log,
    /// Keeps messages for `/v1/dev/outbox` (tests).
    Memory,
    Smtp,
    Webhook,
    Twilio,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    pub channel: NotifyChannel,
    /// Named in message texts ("Your forge code is ...").
    pub product_name: String,
    /// Delivery attempts by the durable outbox worker before a message is dropped.
    pub max_attempts: u32,
    pub smtp: SmtpConfig,
    pub webhook: WebhookConfig,
    pub twilio: TwilioConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            channel: NotifyChannel::Log,
            product_name: "forge".to_owned(),
            max_attempts: 8,
            smtp: SmtpConfig::default(),
            webhook: WebhookConfig::default(),
            twilio: TwilioConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on localhost or a test server.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: String::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs each delivery so the receiver can tell forge from anyone else.
    pub secret: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Option<Secret>,
    pub from: String,
    /// Overridable so tests can point at a fake Twilio.
    pub base_url: String,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            account_sid: String::new(),
            auth_token: None,
            from: String::new(),
            base_url: "https://api.twilio.com".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub enabled: bool,
    /// Drops `Secure` from the admin cookie so plain-HTTP development works.
    pub insecure_cookies: bool,
    #[serde(with = "duration")]
    pub session_idle: Duration,
    #[serde(with = "duration")]
    pub session_absolute: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            insecure_cookies: false,
            session_idle: minutes(30),
            session_absolute: hours(12),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevConfig {
    /// Serves `GET /v1/dev/outbox`; exposes one-time codes, so never in production.
    pub outbox: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(with = "duration")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention: days(90) }
    }
}

/// HTTP Basic credentials for `POST /v1/auth/introspect` (RFC 7662 section
/// 2.1), for resource servers that hold no user token of their own. Without
/// a secret, only bearer callers holding `tokens:introspect` may introspect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The Basic user name that goes with the secret.
    pub username: String,
    /// At least 32 bytes; compared in constant time.
    pub secret: Option<Secret>,
}

impl Default for IntrospectionConfig {
    fn default() -> Self {
        Self {
            username: "introspect".to_owned(),
            secret: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter directive: `info`, `forge=debug,tower_http=info`, ...
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3_600)
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

// ---------------------------------------------------------------------------
// Rate

/// A budget of `count` events per `period`, written `COUNT/PERIOD` (`5/15m`).
/// Parsing guarantees `count >= 1` and a non-zero period, so limiters never divide by zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    const fn new(count: u32, period: Duration) -> Self {
        Self { count, period }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseRateError(String);

impl FromStr for Rate {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ParseRateError(format!(
                "invalid rate {s:?}: {why} (expected COUNT/PERIOD such as \"5/15m\")"
            ))
        };
        let (count, period) = s.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        let period = period.trim();
        // "30/m" reads naturally as "30 per minute".
        let period = if period.starts_with(|c: char| c.is_ascii_alphabetic()) {
            humantime::parse_duration(&format!("1{period}"))
        } else {
            humantime::parse_duration(period)
        }
        .map_err(|e| bad(&format!("bad period ({e})")))?;
        if period.is_zero() {
            return Err(bad("the period must be longer than zero"));
        }
        Ok(Self { count, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.period))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"5/15m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(RateVisitor)
    }
}

/// The shortest exact form (`90d`, `15m`, `10s`): humantime's own formatter
/// writes 90 days as `2months 29days 2h 52m 48s`, which is exact but unreadable
/// in `forge config check`. Both forms parse back to the same value.
fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return humantime::format_duration(d).to_string();
    }
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(len) {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

/// `Duration` as a human string (`900s`, `15m`, `30d`).
mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"15m\" or \"30d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime::parse_duration(v.trim()).map_err(|e| E::custom(format!("invalid duration {v:?} ({e})")))
            }
        }
        d.deserialize_str(DurationVisitor)
    }
}

/// CIDR list that also takes bare addresses, since operators write `10.0.0.5`
/// for a single proxy far more often than `10.0.0.5/32`.
mod ip_nets {
    use super::*;
    use std::net::IpAddr;

    pub fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|raw| {
                let raw = raw.trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| de::Error::custom(format!("invalid CIDR or IP address {raw:?}")))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Errors

/// Why the configuration was refused. `Display` is always one line naming the
/// source (file name or environment variable) and the dotted key, and never
/// contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration file: {error}")]
    Read { path: String, error: std::io::Error },
    /// The file is not TOML; the position replaces the parser's multi-line excerpt.
    #[error("{origin}: line {line}, column {column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: unknown key `{key}`{}", did_you_mean(.suggestion))]
    UnknownKey {
        origin: String,
        key: String,
        suggestion: Option<String>,
    },
    /// A value of the wrong type or form (`invalid duration "abc"`).
    #[error("{origin}: {key}: {message}")]
    InvalidValue {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{var}: the value is not valid UTF-8")]
    NotUnicode { var: String },
    /// Well-formed values that break a rule (`validate`). `origin` is unknown
    /// when `validate` runs on a config built in code.
    #[error("{}{key}: {message}", origin_prefix(.origin))]
    Invalid {
        origin: Option<String>,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The dotted key at fault, when there is one (not for an unreadable file).
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. } | Self::InvalidValue { key, .. } | Self::Invalid { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } | Self::NotUnicode { .. } => None,
        }
    }

    fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            origin: None,
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn origin_prefix(origin: &Option<String>) -> String {
    origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default()
}

/// Parser and serde messages may span lines; the contract is one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

// ---------------------------------------------------------------------------
// Loading

/// Where each part of the merged tree came from, to name it in errors.
struct Origins {
    file: Option<String>,
    /// Override paths with the variable that set them, in the order applied.
    env: Vec<(Vec<String>, String)>,
}

impl Origins {
    /// The variable that set `path` (or a key inside or around it), else the file.
    fn of(&self, path: &[String]) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(env_path, _)| env_path.starts_with(path) || path.starts_with(env_path))
            .map(|(_, var)| var.clone())
            .or_else(|| self.file.clone())
    }
}

impl Config {
    /// Reads the TOML file if given (`None` = defaults only), applies `FORGE_*__*`
    /// overrides from the process environment, fills derived values and validates.
    /// Fails on an unreadable file, bad TOML, an unknown key, a bad value, a
    /// non-UTF-8 override, or a rule broken in [`Config::validate`].
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => {
                let name = path.display().to_string();
                match std::fs::read_to_string(path) {
                    Ok(text) => Some((name, text)),
                    Err(error) => return Err(ConfigError::Read { path: name, error }),
                }
            }
            None => None,
        };
        // `std::env::vars` panics on a non-UTF-8 variable anywhere in the
        // environment; only overrides need to be text, and only they can fail.
        let mut env = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            match value.into_string() {
                Ok(value) => env.push((key.to_owned(), value)),
                Err(_) if is_override(key) => {
                    return Err(ConfigError::NotUnicode { var: key.to_owned() });
                }
                Err(_) => {}
            }
        }
        Self::from_sources(text.as_ref().map(|(n, t)| (n.as_str(), t.as_str())), env)
    }

    /// [`Config::load`] with explicit inputs: `file` is `(display_name, toml_text)`;
    /// `env` may hold any variables, only `FORGE_<SECTION>__<KEY>` ones are used.
    pub fn from_sources(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some((name, text)) => parse_file(name, text)?,
            None => Table::new(),
        };
        let mut origins = Origins {
            file: file.map(|(name, _)| name.to_owned()),
            env: Vec::new(),
        };

        let schema = schema();
        let mut overrides: Vec<(String, String)> = env.into_iter().filter(|(key, _)| is_override(key)).collect();
        // Deterministic whatever order the environment lists variables in.
        overrides.sort();
        for (var, raw) in overrides {
            let path = override_path(&var);
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::UnknownKey {
                    key: path.join("."),
                    origin: var,
                    suggestion: None,
                });
            }
            let value = override_value(&raw, lookup(&schema, &path));
            insert(&mut tree, &path, value);
            origins.env.push((path, var));
        }

        let mut config = match Value::Table(tree.clone()).try_into::<Config>() {
            Ok(config) => config,
            Err(whole) => return Err(explain(&tree, &whole, &origins, &schema)),
        };
        config.resolve();
        config.validate().map_err(|err| match err {
            ConfigError::Invalid {
                origin: None,
                key,
                message,
            } => {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                ConfigError::Invalid {
                    origin: origins.of(&path),
                    key,
                    message,
                }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// Defaults for an in-process test server: fresh in-memory store, free port,
    /// messages kept for the dev outbox.
    pub fn for_tests() -> Config {
        let mut config = Config::default();
        config.database.url = "sqlite::memory:".to_owned();
        config.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.notify.channel = NotifyChannel::Memory;
        config.dev.outbox = true;
        config.resolve();
        config
    }

    /// Normalises and derives values that depend on other keys.
    fn resolve(&mut self) {
        let trimmed = self.server.public_url.trim_end_matches('/');
        if trimmed.len() != self.server.public_url.len() {
            self.server.public_url = trimmed.to_owned();
        }
        if self.jwt.issuer.is_empty() {
            self.jwt.issuer = self.server.public_url.clone();
        }
    }

    /// Checks the rules between and within keys that types cannot express.
    /// The error names the key; it never repeats a secret or a database URL
    /// (which may carry a password).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: &str| Err(ConfigError::invalid(key, message));

        let server = &self.server;
        if !is_http_url(&server.public_url) {
            return fail("server.public_url", "must be an absolute http:// or https:// URL");
        }
        if server.max_body_bytes < 1024 {
            return fail("server.max_body_bytes", "must be at least 1024");
        }
        if let Some(problem) = cors_origins_problem(&server.cors_origins) {
            return fail("server.cors_origins", problem);
        }

        if let Some(problem) = database_url_problem(&self.database.url) {
            return fail("database.url", problem);
        }
        if self.database.pool_size < 1 {
            return fail("database.pool_size", "must be at least 1");
        }
        if let Some(problem) = cache_url_problem(&self.cache.url) {
            return fail("cache.url", problem);
        }

        let jwt = &self.jwt;
        if jwt.algorithm == JwtAlgorithm::HS256 {
            match &jwt.secret {
                None => return fail("jwt.secret", "required when jwt.algorithm is HS256"),
                Some(secret) if secret.expose().len() < 32 => {
                    return fail("jwt.secret", "must be at least 32 bytes for HS256");
                }
                Some(_) => {}
            }
        }
        if jwt.audience.is_empty() {
            return fail("jwt.audience", "must not be empty");
        }
        if jwt.access_ttl.is_zero() {
            return fail("jwt.access_ttl", "must be longer than zero");
        }
        if jwt.refresh_ttl <= jwt.access_ttl {
            return fail("jwt.refresh_ttl", "must be longer than jwt.access_ttl");
        }
        if jwt.session_max_age <= jwt.access_ttl {
            return fail("jwt.session_max_age", "must be longer than jwt.access_ttl");
        }

        let pw = &self.password;
        if pw.min_length < 1 {
            return fail("password.min_length", "must be at least 1");
        }
        if pw.max_length > 1024 {
            return fail("password.max_length", "must be at most 1024");
        }
        if pw.min_length > pw.max_length {
            return fail("password.min_length", "must not exceed password.max_length");
        }
        if pw.min_strength > 4 {
            return fail("password.min_strength", "must be between 0 and 4");
        }
        if pw.argon2_iterations < 1 {
            return fail("password.argon2_iterations", "must be at least 1");
        }
        if pw.argon2_parallelism < 1 {
            return fail("password.argon2_parallelism", "must be at least 1");
        }
        // argon2's own floor: 8 KiB per lane.
        if u64::from(pw.argon2_memory_kib) < 8 * u64::from(pw.argon2_parallelism) {
            return fail(
                "password.argon2_memory_kib",
                "must be at least 8 x password.argon2_parallelism",
            );
        }

        if self.otp.ttl.is_zero() {
            return fail("otp.ttl", "must be longer than zero");
        }
        if self.rate_limit.device_token_ttl.is_zero() {
            return fail("rate_limit.device_token_ttl", "must be longer than 0s");
        }
        if self.otp.max_attempts < 1 {
            return fail("otp.max_attempts", "must be at least 1");
        }

        let notify = &self.notify;
        match notify.channel {
            NotifyChannel::Log | NotifyChannel::Memory => {}
            NotifyChannel::Smtp => {
                if notify.smtp.host.is_empty() {
                    return fail("notify.smtp.host", "required when notify.channel is smtp");
                }
                if notify.smtp.from.is_empty() {
                    return fail("notify.smtp.from", "required when notify.channel is smtp");
                }
            }
            NotifyChannel::Webhook => {
                if notify.webhook.url.is_empty() {
                    return fail("notify.webhook.url", "required when notify.channel is webhook");
                }
                if !is_http_url(&notify.webhook.url) {
                    return fail("notify.webhook.url", "must be an http:// or https:// URL");
                }
                if notify.webhook.secret.as_ref().is_none_or(Secret::is_empty) {
                    return fail("notify.webhook.secret", "required when notify.channel is webhook");
                }
            }
            NotifyChannel::Twilio => {
                if notify.twilio.account_sid.is_empty() {
                    return fail("notify.twilio.account_sid", "required when notify.channel is twilio");
                }
                if notify.twilio.auth_token.as_ref().is_none_or(Secret::is_empty) {
                    return fail("notify.twilio.auth_token", "required when notify.channel is twilio");
                }
                if notify.twilio.from.is_empty() {
                    return fail("notify.twilio.from", "required when notify.channel is twilio");
                }
                if !is_http_url(&notify.twilio.base_url) {
                    return fail("notify.twilio.base_url", "must be an http:// or https:// URL");
                }
            }
        }

        if self.admin.session_idle.is_zero() {
            return fail("admin.session_idle", "must be longer than zero");
        }
        if self.admin.session_absolute < self.admin.session_idle {
            return fail("admin.session_absolute", "must not be shorter than admin.session_idle");
        }

        let introspection = &self.introspection;
        if introspection.username.is_empty() || introspection.username.contains(':') {
            return fail("introspection.username", "must be non-empty and contain no `:`");
        }
        if let Some(secret) = &introspection.secret
            && secret.expose().len() < 32
        {
            return fail("introspection.secret", "must be at least 32 bytes");
        }
        Ok(())
    }

    /// The effective config as TOML for `forge config check`: secrets print as
    /// `***` and so do passwords inside database and cache URLs.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url_password(&shown.database.url);
        shown.cache.url = redact_url_password(&shown.cache.url);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# the configuration cannot be shown as TOML: {e}\n"))
    }
}

/// Why `url` names no compiled-in store. Never echoes the URL: it may carry a password.
fn database_url_problem(url: &str) -> Option<&'static str> {
    if url == "sqlite::memory:" {
        None
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        path.is_empty()
            .then_some("sqlite:// needs a file path, e.g. sqlite://forge.db")
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (!cfg!(feature = "postgres")).then_some("postgres:// needs a forge built with --features postgres")
    } else {
        Some("unsupported database; use sqlite::memory:, sqlite://PATH or postgres://... (with --features postgres)")
    }
}

/// Why `url` names no compiled-in cache. Never echoes the URL: it may carry a password.
fn cache_url_problem(url: &str) -> Option<&'static str> {
    if url == "memory" {
        None
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        (!cfg!(feature = "postgres")).then_some("redis:// needs a forge built with --features postgres")
    } else {
        Some("unsupported cache; use memory or redis://... (with --features postgres)")
    }
}

/// Why a `server.cors_origins` list cannot be served: `*` only alone, every
/// other entry an origin as browsers send it (`https://app.example.com`, no
/// path, no trailing slash, ASCII), since anything else never matches and
/// would silently allow nothing.
fn cors_origins_problem(origins: &[String]) -> Option<&'static str> {
    if origins.iter().any(|o| o == "*") {
        return (origins.len() > 1).then_some("\"*\" (any origin) must be the only entry");
    }
    origins.iter().find_map(|origin| {
        let rest = ["http://", "https://"]
            .iter()
            .find_map(|scheme| origin.strip_prefix(scheme));
        let valid = rest.is_some_and(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
        (!valid).then_some("each entry must be an origin like \"https://app.example.com\" (no path) or \"*\" alone")
    })
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
}

/// `postgres://user:pw@host/db` -> `postgres://user:***@host/db`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

fn is_override(var: &str) -> bool {
    var.starts_with(ENV_PREFIX) && var.contains(ENV_SEPARATOR)
}

/// `FORGE_NOTIFY__SMTP__HOST` -> `["notify", "smtp", "host"]`.
fn override_path(var: &str) -> Vec<String> {
    var.strip_prefix(ENV_PREFIX)
        .unwrap_or(var)
        .split(ENV_SEPARATOR)
        .map(str::to_lowercase)
        .collect()
}

/// Turns an override's text into a TOML value of the type its key expects:
/// string keys take the text verbatim (so a numeric secret stays a string),
/// list keys take a TOML array or a comma-separated list, everything else is
/// read as a TOML value and falls back to a string.
fn override_value(raw: &str, expected: Option<&Value>) -> Value {
    match expected {
        Some(Value::String(_)) => Value::String(raw.to_owned()),
        Some(Value::Array(_)) => match parse_toml_value(raw) {
            Some(array @ Value::Array(_)) => array,
            _ => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            ),
        },
        _ => parse_toml_value(raw).unwrap_or_else(|| Value::String(raw.to_owned())),
    }
}

fn parse_toml_value(raw: &str) -> Option<Value> {
    let mut table: Table = toml::from_str(&format!("v = {raw}")).ok()?;
    // A value with a newline could smuggle in more keys; refuse it as TOML.
    if table.len() != 1 {
        return None;
    }
    table.remove("v")
}

/// Every key with a value of its type, options included, so an override's
/// expected type can be looked up without a hand-kept list.
fn schema() -> Table {
    let mut probe = Config::default();
    probe.jwt.secret = Some(Secret::default());
    probe.notify.smtp.username = Some(String::new());
    probe.notify.smtp.password = Some(Secret::default());
    probe.notify.webhook.secret = Some(Secret::default());
    probe.notify.twilio.auth_token = Some(Secret::default());
    probe.introspection.secret = Some(Secret::default());
    match Value::try_from(&probe) {
        Ok(Value::Table(table)) => table,
        // Unreachable in practice; overrides then fall back to TOML typing.
        _ => Table::new(),
    }
}

fn lookup<'a>(table: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get(first)?;
    match (rest.is_empty(), value) {
        (true, value) => Some(value),
        (false, Value::Table(inner)) => lookup(inner, rest),
        (false, _) => None,
    }
}

/// The `***` leaves of the schema: secrets serialise redacted.
fn is_secret_path(schema: &Table, path: &[String]) -> bool {
    (1..=path.len()).any(|n| matches!(lookup(schema, &path[..n]), Some(Value::String(s)) if s == "***"))
}

fn insert(root: &mut Table, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = root;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        current = next;
    }
    current.insert(last.clone(), value);
}

fn parse_file(name: &str, text: &str) -> Result<Table, ConfigError> {
    toml::from_str::<Table>(text).map_err(|err| {
        let start = err.span().map_or(0, |span| span.start).min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::Syntax {
            origin: name.to_owned(),
            line,
            column,
            message: one_line(err.message()),
        }
    })
}

/// Turns a failed deserialisation of the merged tree into an error naming the key.
fn explain(tree: &Table, whole: &toml::de::Error, origins: &Origins, schema: &Table) -> ConfigError {
    let (path, message) = match locate(tree, &mut Vec::new()) {
        Some(found) => found,
        None => (Vec::new(), whole.message().to_owned()),
    };
    let origin = origins.of(&path).unwrap_or_else(|| "configuration".to_owned());
    let key = if path.is_empty() {
        "(root)".to_owned()
    } else {
        path.join(".")
    };

    if let (Some(field), Some(last)) = (unknown_field(&message), path.last())
        && field == last
    {
        let suggestion = suggest(last, &message).map(|s| {
            let mut full = path[..path.len() - 1].to_vec();
            full.push(s);
            full.join(".")
        });
        return ConfigError::UnknownKey {
            origin,
            key,
            suggestion,
        };
    }

    let message = if is_secret_path(schema, &path) {
        "invalid value (not shown: this key holds a secret)".to_owned()
    } else {
        scrub_secrets(&one_line(&message), tree, schema)
    };
    ConfigError::InvalidValue { origin, key, message }
}

/// Finds the first key (depth first, in key order) that fails on its own,
/// descending into tables so the error names the deepest culprit.
fn locate(table: &Table, path: &mut Vec<String>) -> Option<(Vec<String>, String)> {
    for (key, value) in table {
        path.push(key.clone());
        if let Err(err) = deserialize_alone(path, value) {
            let message = err.message().to_owned();
            let unknown_here = unknown_field(&message).is_some_and(|f| f == key);
            if !unknown_here
                && let Value::Table(inner) = value
                && let Some(found) = locate(inner, path)
            {
                return Some(found);
            }
            return Some((path.clone(), message));
        }
        path.pop();
    }
    None
}

/// Deserialises a config holding only `path = value`; every other key defaults.
fn deserialize_alone(path: &[String], value: &Value) -> Result<Config, toml::de::Error> {
    let mut tree = value.clone();
    for segment in path.iter().rev() {
        let mut table = Table::new();
        table.insert(segment.clone(), tree);
        tree = Value::Table(table);
    }
    tree.try_into()
}

/// The field in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")?
        .split_once('`')
        .map(|(field, _)| field)
}

/// The closest known key from serde's "expected one of `a`, `b`" list, if close.
fn suggest(unknown: &str, message: &str) -> Option<String> {
    let (_, expected) = message.split_once("expected")?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        // Close enough to be a typo, not just another short word.
        .filter(|(distance, _)| *distance <= (unknown.chars().count() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Belt and braces: a secret typed into the wrong key could be echoed by a
/// type error, so blank out every secret value present in the tree.
fn scrub_secrets(message: &str, tree: &Table, schema: &Table) -> String {
    let mut message = message.to_owned();
    let mut secrets = Vec::new();
    collect_secrets(tree, schema, &mut Vec::new(), &mut secrets);
    for secret in secrets {
        if secret.len() >= MIN_SCRUBBED_SECRET {
            message = message.replace(&secret, "***");
        }
    }
    message
}

fn collect_secrets(table: &Table, schema: &Table, path: &mut Vec<String>, out: &mut Vec<String>) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            Value::Table(inner) => collect_secrets(inner, schema, path, out),
            Value::String(s) if is_secret_path(schema, path) => out.push(s.clone()),
            _ => {}
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-value-that-is-long-enough-for-hs256";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn file(text: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some(("forge.toml", text)), Vec::new())
    }

    fn file_err(text: &str) -> String {
        let err = file(text).unwrap_err().to_string();
        assert!(!err.contains('\n'), "multi-line error: {err}");
        err
    }

    fn resolved_default() -> Config {
        let mut config = Config::default();
        config.resolve();
        config
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::default();
        assert_eq!(c.server.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.server.public_url, "http://localhost:8080");
        assert!(c.server.trusted_proxies.is_empty());
        assert_eq!(c.server.max_body_bytes, 65_536);
        assert!(c.server.cors_origins.is_empty());
        assert_eq!(c.database.url, "sqlite://forge.db");
        assert_eq!(c.database.pool_size, 8);
        assert_eq!(c.cache.url, "memory");
        assert_eq!(c.jwt.algorithm, JwtAlgorithm::EdDSA);
        assert_eq!(c.jwt.secret, None);
        assert_eq!(c.jwt.issuer, "");
        assert_eq!(c.jwt.audience, "forge");
        assert_eq!(c.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(c.jwt.refresh_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(c.jwt.session_max_age, Duration::from_secs(90 * 86_400));
        assert_eq!(c.jwt.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(c.jwt.leeway, Duration::from_secs(30));
        assert_eq!(c.password.min_length, 8);
        assert_eq!(c.password.max_length, 128);
        assert_eq!(c.password.min_strength, 2);
        assert!(!c.password.require_classes);
        assert_eq!(c.password.argon2_memory_kib, 19_456);
        assert_eq!(c.password.argon2_iterations, 2);
        assert_eq!(c.password.argon2_parallelism, 1);
        assert!(c.signup.enabled);
        assert!(!c.signup.require_email_verification);
        assert_eq!(c.otp.ttl, Duration::from_secs(300));
        assert_eq!(c.otp.max_attempts, 3);
        assert_eq!(c.otp.attempt_window, Duration::from_secs(900));
        assert_eq!(c.otp.resend_cooldown, Duration::from_secs(60));
        let r = &c.rate_limit;
        assert!(r.enabled);
        for (rate, text) in [
            (r.login_per_ip, "30/1m"),
            (r.login_failures_per_account, "10/15m"),
            (r.signup_per_ip, "20/1h"),
            (r.otp_send_per_identifier, "5/1h"),
            (r.otp_send_per_ip, "30/1h"),
            (r.otp_verify_per_ip, "30/5m"),
            (r.recovery_per_identifier, "5/1h"),
            (r.login_failures_per_device, "5/15m"),
            (r.refresh_per_ip, "120/1m"),
        ] {
            assert_eq!(rate, text.parse().unwrap(), "{text}");
        }
        assert_eq!(c.notify.channel, NotifyChannel::Log);
        assert_eq!(c.notify.product_name, "forge");
        assert_eq!(c.notify.max_attempts, 8);
        assert_eq!(c.notify.smtp.host, "");
        assert_eq!(c.notify.smtp.port, 587);
        assert_eq!(c.notify.smtp.security, SmtpSecurity::Starttls);
        assert_eq!(c.notify.smtp.username, None);
        assert_eq!(c.notify.smtp.password, None);
        assert_eq!(c.notify.smtp.from, "");
        assert_eq!(c.notify.webhook, WebhookConfig::default());
        assert_eq!(c.notify.twilio.base_url, "https://api.twilio.com");
        assert!(c.admin.enabled);
        assert!(!c.admin.insecure_cookies);
        assert_eq!(c.admin.session_idle, Duration::from_secs(1_800));
        assert_eq!(c.admin.session_absolute, Duration::from_secs(12 * 3_600));
        assert!(!c.dev.outbox);
        assert_eq!(c.audit.retention, Duration::from_secs(90 * 86_400));
        assert_eq!(c.log.level, "info");
        assert_eq!(c.log.format, LogFormat::Text);
        c.validate().unwrap();
    }

    #[test]
    fn empty_file_and_no_file_give_defaults_with_issuer() {
        let expected = resolved_default();
        assert_eq!(expected.jwt.issuer, "http://localhost:8080");
        assert_eq!(file("").unwrap(), expected);
        assert_eq!(Config::from_sources(None, Vec::new()).unwrap(), expected);
    }

    #[test]
    fn sample_file_is_the_defaults() {
        let sample = include_str!("../forge.toml");
        let loaded = Config::from_sources(Some(("forge.toml", sample)), Vec::new()).unwrap();
        assert_eq!(loaded, resolved_default());
    }

    #[test]
    fn file_overrides_defaults() {
        let c = file(
            r#"
            [server]
            bind = "0.0.0.0:9000"
            public_url = "https://auth.example.com/"
            trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "::1"]
            [jwt]
            access_ttl = "900s"
            audience = "api"
            [rate_limit]
            login_per_ip = "5/15m"
            [notify]
            channel = "smtp"
            [notify.smtp]
            host = "mail.example.com"
            from = "auth@example.com"
            security = "tls"
            [log]
            format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.server.public_url, "https://auth.example.com");
        assert_eq!(c.jwt.issuer, "https://auth.example.com");
        let proxies: Vec<String> = c.server.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
        assert_eq!(c.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(c.jwt.audience, "api");
        assert_eq!(c.rate_limit.login_per_ip, Rate::new(5, minutes(15)));
        assert_eq!(c.notify.channel, NotifyChannel::Smtp);
        assert_eq!(c.notify.smtp.security, SmtpSecurity::Tls);
        assert_eq!(c.log.format, LogFormat::Json);
        // untouched keys keep their defaults
        assert_eq!(c.database, DatabaseConfig::default());
    }

    #[test]
    fn explicit_issuer_is_kept() {
        let c = file("[jwt]\nissuer = \"forge-issuer\"").unwrap();
        assert_eq!(c.jwt.issuer, "forge-issuer");
    }

    #[test]
    fn env_overrides_file() {
        let c = Config::from_sources(
            Some((
                "forge.toml",
                "[database]\npool_size = 2\n[server]\npublic_url = \"http://a\"",
            )),
            env(&[
                ("FORGE_SERVER__PUBLIC_URL", "https://b.example"),
                ("FORGE_DATABASE__POOL_SIZE", "16"),
                ("FORGE_SIGNUP__ENABLED", "false"),
                ("FORGE_SERVER__TRUSTED_PROXIES", r#"["10.0.0.0/8", "127.0.0.1"]"#),
                ("FORGE_SERVER__CORS_ORIGINS", "https://x.example, https://y.example"),
                ("FORGE_NOTIFY__SMTP__HOST", "12345"),
                ("FORGE_RATE_LIMIT__LOGIN_PER_IP", "7/1m"),
                ("FORGE_JWT__ACCESS_TTL", "10m"),
                ("FORGE_JWT__ALGORITHM", "HS256"),
                ("FORGE_JWT__SECRET", "12345678901234567890123456789012"),
                // not overrides: ignored
                ("FORGE_CONFIG", "/nonexistent.toml"),
                ("FORGE_ADMIN_EMAIL", "a@example.com"),
                ("FORGE_TEST_DATABASE_URL", "postgres://x"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.public_url, "https://b.example");
        assert_eq!(c.jwt.issuer, "https://b.example");
        assert_eq!(c.database.pool_size, 16);
        assert!(!c.signup.enabled);
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert_eq!(c.server.cors_origins, ["https://x.example", "https://y.example"]);
        // a numeric-looking value for a string key stays a string
        assert_eq!(c.notify.smtp.host, "12345");
        assert_eq!(c.rate_limit.login_per_ip, Rate::new(7, minutes(1)));
        assert_eq!(c.jwt.access_ttl, minutes(10));
        assert_eq!(c.jwt.algorithm, JwtAlgorithm::HS256);
        assert_eq!(
            c.jwt.secret.as_ref().map(Secret::expose),
            Some("12345678901234567890123456789012")
        );
    }

    #[test]
    fn unknown_key_in_file_names_key_and_file() {
        let err = file_err("[server]\nbnd = \"0.0.0.0:1\"\n");
        assert_eq!(
            err,
            "forge.toml: unknown key `server.bnd` (did you mean `server.bind`?)"
        );
        assert!(err.starts_with("forge.toml: unknown key `server.bnd`"));
        let err = file_err("[notify.smtpx]\nhost = \"x\"\n");
        assert!(err.starts_with("forge.toml: unknown key `notify.smtpx`"), "{err}");
        let err = file_err("[bogus]\nx = 1\n");
        assert_eq!(err, "forge.toml: unknown key `bogus`");
        let err = file_err("top = 1\n");
        assert_eq!(err, "forge.toml: unknown key `top`");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = file_err("[jwt]\naccess_ttl = \"abc\"\n");
        assert!(
            err.starts_with(r#"forge.toml: jwt.access_ttl: invalid duration "abc""#),
            "{err}"
        );
        let err = file_err("[jwt]\naccess_ttl = 900\n");
        assert!(err.starts_with("forge.toml: jwt.access_ttl: invalid type"), "{err}");
        let err = file_err("[notify.smtp]\nport = 70000\n");
        assert!(err.starts_with("forge.toml: notify.smtp.port: "), "{err}");
        let err = file_err("[rate_limit]\nsignup_per_ip = \"0/1h\"\n");
        assert!(
            err.starts_with("forge.toml: rate_limit.signup_per_ip: invalid rate"),
            "{err}"
        );
        let err = file_err("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
        assert!(err.starts_with("forge.toml: server.trusted_proxies: "), "{err}");
        let err = file_err("[notify]\nchannel = \"pigeon\"\n");
        assert!(
            err.starts_with("forge.toml: notify.channel: unknown variant `pigeon`"),
            "{err}"
        );
        let err = file_err("server = 5\n");
        assert!(err.starts_with("forge.toml: server: invalid type"), "{err}");
    }

    #[test]
    fn syntax_error_is_one_line_with_position() {
        let err = file_err("[server]\nbind = \"unterminated\n");
        assert!(err.starts_with("forge.toml: line 2, column "), "{err}");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = Config::from_sources(None, env(&[("FORGE_SERVER__BND", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("FORGE_SERVER__BND: unknown key `server.bnd`"), "{err}");
        let err = Config::from_sources(None, env(&[("FORGE_NOPE__X", "1")]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "FORGE_NOPE__X: unknown key `nope`");
        let err = Config::from_sources(Some(("forge.toml", "")), env(&[("FORGE_JWT__ACCESS_TTL", "abc")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(r#"FORGE_JWT__ACCESS_TTL: jwt.access_ttl: invalid duration "abc""#),
            "{err}"
        );
        let err = Config::from_sources(None, env(&[("FORGE_DATABASE__POOL_SIZE", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("FORGE_DATABASE__POOL_SIZE: database.pool_size: "),
            "{err}"
        );
        let err = Config::from_sources(None, env(&[("FORGE_JWT__", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("FORGE_JWT__: unknown key"), "{err}");
    }

    #[test]
    fn a_file_error_is_blamed_on_the_file_not_an_unrelated_override() {
        let err = Config::from_sources(
            Some(("forge.toml", "[jwt]\nleeway = \"x\"\n")),
            env(&[("FORGE_JWT__AUDIENCE", "a")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("forge.toml: jwt.leeway: "), "{err}");
    }

    #[test]
    fn hs256_needs_a_long_secret() {
        let err = file_err("[jwt]\nalgorithm = \"HS256\"\n");
        assert_eq!(err, "forge.toml: jwt.secret: required when jwt.algorithm is HS256");
        let err = file_err("[jwt]\nalgorithm = \"HS256\"\nsecret = \"too-short-secret\"\n");
        assert!(err.contains("jwt.secret"), "{err}");
        assert!(!err.contains("too-short-secret"), "{err}");
        let err = Config::from_sources(
            Some(("forge.toml", "[jwt]\nalgorithm = \"HS256\"\n")),
            env(&[("FORGE_JWT__SECRET", "short-env-secret")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "FORGE_JWT__SECRET: jwt.secret: must be at least 32 bytes for HS256"
        );
        let ok = Config::from_sources(
            None,
            env(&[("FORGE_JWT__ALGORITHM", "HS256"), ("FORGE_JWT__SECRET", SECRET)]),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn secrets_never_appear_in_output_or_errors() {
        let text = format!(
            r#"
            [jwt]
            algorithm = "HS256"
            secret = "{SECRET}"
            [notify]
            channel = "webhook"
            [notify.webhook]
            url = "https://hooks.example.com/forge"
            secret = "webhook-{SECRET}"
            [notify.smtp]
            password = "smtp-{SECRET}"
            [notify.twilio]
            auth_token = "twilio-{SECRET}"
            [database]
            url = "sqlite://forge.db"
            "#
        );
        let c = file(&text).unwrap();
        let shown = c.redacted_toml();
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("secret = \"***\""), "{shown}");
        assert!(!format!("{c:?}").contains(SECRET));
        // The redacted view is itself a loadable config (secrets aside).
        let reparsed: Config = toml::from_str(&shown).unwrap();
        assert_eq!(reparsed.jwt.access_ttl, c.jwt.access_ttl);
        assert_eq!(reparsed.audit.retention, c.audit.retention);

        // wrong type at a secret key: the value is not echoed
        let err = file_err("[jwt]\nsecret = 123456789012345678\n");
        assert!(err.starts_with("forge.toml: jwt.secret: "), "{err}");
        assert!(!err.contains("123456789012345678"), "{err}");
        // a secret value next to a broken key is not echoed either
        let err = file_err(&format!("[jwt]\nsecret = \"{SECRET}\"\nleeway = [\"{SECRET}\"]\n"));
        assert!(err.starts_with("forge.toml: jwt.leeway: "), "{err}");
        assert!(!err.contains(SECRET), "{err}");
        // a syntax error on the secret's line
        let err = file_err(&format!("[jwt]\nsecret = \"{SECRET}\n"));
        assert!(!err.contains(SECRET), "{err}");
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://forge:pw@db:5432/forge"),
            "postgres://forge:***@db:5432/forge"
        );
        assert_eq!(redact_url_password("redis://:pw@cache"), "redis://:***@cache");
        assert_eq!(redact_url_password("sqlite://forge.db"), "sqlite://forge.db");
        assert_eq!(redact_url_password("memory"), "memory");
        assert_eq!(redact_url_password("postgres://forge@db/x"), "postgres://forge@db/x");
    }

    #[test]
    fn backend_urls_follow_the_features() {
        let postgres = "[database]\nurl = \"postgres://u:pw@h/db\"\n";
        let redis = "[cache]\nurl = \"rediss://:pw@h\"\n";
        if cfg!(feature = "postgres") {
            assert!(file(postgres).is_ok());
            assert!(file(redis).is_ok());
        } else {
            assert_eq!(
                file_err(postgres),
                "forge.toml: database.url: postgres:// needs a forge built with --features postgres"
            );
            assert_eq!(
                file_err(redis),
                "forge.toml: cache.url: redis:// needs a forge built with --features postgres"
            );
        }
        let err = file_err("[database]\nurl = \"mysql://u:pw@h/db\"\n");
        assert!(err.starts_with("forge.toml: database.url: unsupported"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        assert!(file("[database]\nurl = \"sqlite::memory:\"\n").is_ok());
        assert!(file_err("[database]\nurl = \"sqlite://\"\n").contains("database.url"));
    }

    #[test]
    fn validate_rules_name_their_key() {
        let cases: &[(&str, &str)] = &[
            ("[database]\npool_size = 0", "database.pool_size"),
            ("[password]\nmin_length = 0", "password.min_length"),
            ("[password]\nmin_length = 20\nmax_length = 10", "password.min_length"),
            ("[password]\nmax_length = 2000", "password.max_length"),
            ("[password]\nmin_strength = 5", "password.min_strength"),
            (
                "[password]\nargon2_memory_kib = 15\nargon2_parallelism = 2",
                "password.argon2_memory_kib",
            ),
            ("[password]\nargon2_iterations = 0", "password.argon2_iterations"),
            ("[password]\nargon2_parallelism = 0", "password.argon2_parallelism"),
            ("[server]\nmax_body_bytes = 10", "server.max_body_bytes"),
            ("[introspection]\nsecret = \"too short\"", "introspection.secret"),
            ("[introspection]\nusername = \"a:b\"", "introspection.username"),
            (
                "[server]\ncors_origins = [\"*\", \"https://a.example\"]",
                "server.cors_origins",
            ),
            (
                "[server]\ncors_origins = [\"https://a.example/\"]",
                "server.cors_origins",
            ),
            ("[server]\ncors_origins = [\"a.example\"]", "server.cors_origins"),
            ("[server]\ncors_origins = [\"https://\"]", "server.cors_origins"),
            ("[server]\npublic_url = \"ftp://x\"", "server.public_url"),
            ("[server]\npublic_url = \"http://\"", "server.public_url"),
            ("[jwt]\naccess_ttl = \"0s\"", "jwt.access_ttl"),
            ("[jwt]\nrefresh_ttl = \"15m\"", "jwt.refresh_ttl"),
            ("[jwt]\nsession_max_age = \"10m\"", "jwt.session_max_age"),
            ("[notify]\nchannel = \"smtp\"", "notify.smtp.host"),
            ("[notify]\nchannel = \"smtp\"\nsmtp.host = \"h\"", "notify.smtp.from"),
            ("[notify]\nchannel = \"webhook\"", "notify.webhook.url"),
            (
                "[notify]\nchannel = \"webhook\"\nwebhook.url = \"https://h\"",
                "notify.webhook.secret",
            ),
            ("[notify]\nchannel = \"twilio\"", "notify.twilio.account_sid"),
            (
                "[notify]\nchannel = \"twilio\"\ntwilio.account_sid = \"AC1\"",
                "notify.twilio.auth_token",
            ),
            (
                "[notify]\nchannel = \"twilio\"\ntwilio.account_sid = \"AC1\"\ntwilio.auth_token = \"t\"",
                "notify.twilio.from",
            ),
        ];
        for (text, key) in cases {
            let err = file(text).unwrap_err();
            assert_eq!(err.key(), Some(*key), "{text}: {err}");
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("forge.toml: {key}: ")), "{shown}");
            assert!(!shown.contains('\n'));
        }
        // validate() on a config built in code has no source to name
        let mut c = Config::for_tests();
        c.database.pool_size = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "database.pool_size: must be at least 1"
        );
    }

    #[test]
    fn cors_origins_accept_any_or_a_list_of_origins() {
        let c = file("[server]\ncors_origins = [\"*\"]").unwrap();
        assert_eq!(c.server.cors_origins, ["*"]);
        let c =
            file("[server]\ncors_origins = [\"https://a.example\", \"http://localhost:3000\", \"http://[::1]:8080\"]")
                .unwrap();
        assert_eq!(c.server.cors_origins.len(), 3);
    }

    #[test]
    fn introspection_secret_is_checked_and_redacted() {
        const LONG: &str = "introspection-secret-0123456789abcdef";
        let c = file(&format!("[introspection]\nsecret = \"{LONG}\"")).unwrap();
        assert_eq!(c.introspection.secret.as_ref().map(Secret::expose), Some(LONG));
        assert_eq!(c.introspection.username, "introspect");
        let shown = c.redacted_toml();
        assert!(!shown.contains(LONG), "{shown}");
        assert!(shown.contains("[introspection]"), "{shown}");
        let err = file_err("[introspection]\nsecret = \"short-secret-value\"\n");
        assert_eq!(err, "forge.toml: introspection.secret: must be at least 32 bytes");
        // A numeric secret from the environment stays a string.
        let c = Config::from_sources(
            None,
            env(&[("FORGE_INTROSPECTION__SECRET", "123456789012345678901234567890123")]),
        )
        .unwrap();
        assert_eq!(
            c.introspection.secret.as_ref().map(Secret::expose),
            Some("123456789012345678901234567890123")
        );
    }

    #[test]
    fn for_tests_is_valid_and_in_memory() {
        let c = Config::for_tests();
        c.validate().unwrap();
        assert_eq!(c.database.url, "sqlite::memory:");
        assert_eq!(c.server.bind.port(), 0);
        assert_eq!(c.notify.channel, NotifyChannel::Memory);
        assert!(c.dev.outbox);
        assert_eq!(c.jwt.issuer, c.server.public_url);
    }

    #[test]
    fn rate_round_trips_and_rejects_nonsense() {
        for text in ["5/15m", "30/1m", "120/1m", "20/1h", "1/1d", "3/90s", "7/1m 30s"] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(rate.to_string().parse::<Rate>().unwrap(), rate, "{text}");
        }
        assert_eq!("5/15m".parse::<Rate>().unwrap().to_string(), "5/15m");
        assert_eq!("3/90s".parse::<Rate>().unwrap().to_string(), "3/90s");
        assert_eq!(" 30 / m ".parse::<Rate>().unwrap(), Rate::new(30, minutes(1)));
        for bad in ["", "5", "0/1m", "-1/1m", "x/1m", "5/", "5/0s", "5/abc", "5/15m/2"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations_print_in_the_shortest_exact_unit() {
        for (secs, text) in [
            (0, "0s"),
            (10, "10s"),
            (90, "90s"),
            (900, "15m"),
            (43_200, "12h"),
            (7_776_000, "90d"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), d);
        }
        let d = Duration::from_millis(1_500);
        assert_eq!(humantime::parse_duration(&format_duration(d)).unwrap(), d);
    }

    #[test]
    fn schema_probe_covers_every_key() {
        // serde_json writes `None` as null, TOML drops it: if a new Option field
        // is not filled in schema(), overrides for it lose their type and a
        // numeric secret could be read as a number.
        fn json_keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
            if let serde_json::Value::Object(map) = v {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    json_keys(v, &path, out);
                    out.push(path);
                }
            }
        }
        fn toml_keys(t: &Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if let Value::Table(inner) = v {
                    toml_keys(inner, &path, out);
                }
                out.push(path);
            }
        }
        let (mut from_json, mut from_schema) = (Vec::new(), Vec::new());
        json_keys(&serde_json::to_value(Config::default()).unwrap(), "", &mut from_json);
        let schema = schema();
        toml_keys(&schema, "", &mut from_schema);
        from_json.sort();
        from_schema.sort();
        assert_eq!(from_json, from_schema);

        for path in [
            "jwt.secret",
            "notify.smtp.password",
            "notify.webhook.secret",
            "notify.twilio.auth_token",
        ] {
            let path: Vec<String> = path.split('.').map(str::to_owned).collect();
            assert!(is_secret_path(&schema, &path), "{path:?}");
        }
        assert!(!is_secret_path(
            &schema,
            &["notify".into(), "smtp".into(), "username".into()]
        ));
    }

    #[test]
    fn load_reports_an_unreadable_file() {
        let err = Config::load(Some(Path::new("/nonexistent/forge.toml"))).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("/nonexistent/forge.toml: cannot read"), "{shown}");
        assert!(!shown.contains('\n'));
    }
}
