//! The typed configuration: every key, its type and its built-in default
//! (`forge.toml` documents the same values), and the redacted form
//! `forge config check` prints.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::formats::{Rate, duration, ip_nets, optional_duration};
use crate::secret::Secret;

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
    pub webauthn: WebauthnConfig,
    pub log: LogConfig,
    pub backup: BackupConfig,
    pub forward_auth: ForwardAuthConfig,
    pub webhooks: WebhooksConfig,
    /// Upstream identity providers declared here (`[[providers]]`): read-only
    /// through the API and the admin site, merged with the stored ones.
    /// Last, so the TOML form puts the array of tables after every section.
    pub providers: Vec<ProviderConfig>,
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
    /// Where a browser may be sent back to after signing in (`rd`):
    /// origins (`scheme://host[:port]`, any path on them) or exact URLs.
    /// Empty means the origin of `public_url` only, so a fresh install
    /// never redirects anywhere else.
    pub allowed_redirects: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://localhost:8080".to_owned(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 65_536,
            cors_origins: Vec::new(),
            allowed_redirects: Vec::new(),
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
    /// The most entries each process-local cache keeps: access tokens
    /// whose signature was checked, users' roles and permissions, tenants.
    /// Each is a bounded LRU: a full cache costs lookups, never
    /// correctness; 0 keeps nothing.
    pub local_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            url: "memory".to_owned(),
            local_entries: 100_000,
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
    /// A directory of operator templates that replace the built-in message
    /// texts (see `notify::overrides`); empty: the built-ins only.
    pub templates_dir: String,
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
            templates_dir: String::new(),
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

/// The passkey relying party (WebAuthn). Browsers bind each passkey to the
/// `rp_id` it was created under, so changing it later orphans every passkey
/// already registered; origins may be added at any time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnConfig {
    /// A domain: the host of every origin or a parent of it. Empty means
    /// the host of `server.public_url`, filled in by the loader; when that
    /// host is an IP address it stays empty and passkeys are off (browsers
    /// refuse IP addresses as relying-party ids).
    pub rp_id: String,
    /// The origins (`scheme://host[:port]`) whose pages may run ceremonies.
    /// Empty means the origin of `server.public_url` (when `rp_id` is set).
    pub origins: Vec<String>,
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

/// Scheduled online backups of a SQLite database (`store::backup`).
/// PostgreSQL and in-memory databases refuse a schedule (`validate`):
/// backing PostgreSQL up is the database's own job (`pg_dump`, WAL archiving).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// How often a copy is taken (`6h`); `off` (the default) takes none.
    #[serde(with = "optional_duration")]
    pub schedule: Option<Duration>,
    /// Where the copies go. A relative path is taken from the directory of
    /// the database file (the data directory), so `backups` next to
    /// `/data/forge.db` is `/data/backups`.
    pub dir: String,
    /// How many copies to keep; older ones are deleted after each new copy.
    pub keep: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            schedule: None,
            dir: "backups".to_owned(),
            keep: 7,
        }
    }
}

/// `GET /v1/auth/verify` behind a reverse proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// The sign-in page a browser without a session is sent to, with the
    /// page it asked for as `?rd=`. Empty (the default, because forge has
    /// no sign-in page for end users yet and the admin site's admits only
    /// operators) means no redirect: browsers get the same 401 as API calls.
    pub login_url: String,
}

/// Webhook endpoints (`/v1/webhooks`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Let endpoints use plain `http` and point at loopback, private,
    /// link-local or metadata addresses, or at forge itself (tests,
    /// internal networks). Off, such endpoints are refused at registration
    /// and never reached at delivery.
    pub allow_private: bool,
    /// An endpoint whose deliveries have failed this long without a single
    /// success is turned off.
    #[serde(with = "duration")]
    pub disable_after: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            disable_after: days(5),
        }
    }
}

/// The longest client secret a provider may declare, in characters as JSON
/// Schema counts them (an Apple PEM key is about 250).
pub const MAX_PROVIDER_SECRET_LEN: usize = 8192;

/// A provider's client secret as given, trimmed: 1 to
/// [`MAX_PROVIDER_SECRET_LEN`] characters (the rule of the API, the admin
/// site and the configuration file).
pub fn trimmed_provider_secret(secret: &str) -> Result<&str, String> {
    let s = secret.trim();
    if s.is_empty() || s.chars().count() > MAX_PROVIDER_SECRET_LEN {
        return Err(format!("must be 1 to {MAX_PROVIDER_SECRET_LEN} characters"));
    }
    Ok(s)
}

/// One `[[providers]]` entry: an upstream identity provider of a tenant,
/// checked at load with the rules of `domain::providers::ProviderSpec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The tenant's slug.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub id: String,
    /// `oidc`, `oauth2`, `github`, `google`, `microsoft`, `gitlab` or `apple`.
    pub kind: String,
    pub name: String,
    pub client_id: String,
    /// Printed as `***` by `forge config check`. Apple: the PKCS#8 PEM key.
    pub client_secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_url: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Userinfo field names (`oauth2`): `subject`, `email`,
    /// `email_verified`, `name`; the OpenID Connect names by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// The `claims` table of a `[[providers]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsConfig {
    #[serde(default = "default_subject_claim")]
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn default_tenant() -> String {
    "default".to_owned()
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

const fn yes() -> bool {
    true
}

pub(super) const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

pub(super) const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3_600)
}

pub(super) const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

impl Config {
    /// The effective config as TOML for `forge config check`: secrets print as
    /// `***` and so do passwords inside database and cache URLs.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url_password(&shown.database.url);
        shown.cache.url = redact_url_password(&shown.cache.url);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# the configuration cannot be shown as TOML: {e}\n"))
    }
}

/// `postgres://user:pw@host/db` -> `postgres://user:***@host/db`. Public for
/// the start-up log line (`telemetry::log_startup`), which names the same URLs.
/// A `password=` query parameter (libpq style) is shown as `***` too.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = redact_password_parameter(tail);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return format!("{scheme}://{authority}{tail}");
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// `/db?sslmode=require&password=pw` -> `/db?sslmode=require&password=***`.
fn redact_password_parameter(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

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
        assert_eq!(c.webauthn, WebauthnConfig::default());
        assert_eq!(c.log.level, "info");
        assert_eq!(c.log.format, LogFormat::Text);
        c.validate().unwrap();
    }
    #[test]
    fn sample_file_is_the_defaults() {
        let sample = include_str!("../../forge.toml");
        let loaded = Config::from_sources(Some(("forge.toml", sample)), Vec::new()).unwrap();
        assert_eq!(loaded, resolved_default());
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
        assert_eq!(
            redact_url_password("postgres://forge@db/x?sslmode=disable&password=pw"),
            "postgres://forge@db/x?sslmode=disable&password=***"
        );
        assert_eq!(
            redact_url_password("postgres://forge:pw@db?password=pw"),
            "postgres://forge:***@db?password=***"
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
        assert_eq!(c.webauthn.rp_id, "localhost");
        assert_eq!(c.webauthn.origins, ["http://localhost:8080"]);
    }
}
