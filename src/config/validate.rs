//! Validation: the rules between and within keys that types cannot
//! express, each failure naming its key (the loader adds where the value
//! came from).

use super::{Config, ConfigError, JwtAlgorithm, NotifyChannel, ProviderConfig, trimmed_provider_secret};
use crate::domain::TenantSlug;
use crate::domain::providers::{AppleKey, ClaimMap, ProviderId, ProviderKind, ProviderSpec};
use crate::secret::Secret;

impl Config {
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
        if !server.allowed_redirects.iter().all(|entry| redirect_entry_ok(entry)) {
            return fail(
                "server.allowed_redirects",
                "each entry must be an origin like \"https://app.example.com\" or an absolute http(s) URL without user info or fragment",
            );
        }
        let login_url = &self.forward_auth.login_url;
        if !login_url.is_empty() && !redirect_entry_ok(login_url) {
            return fail(
                "forward_auth.login_url",
                "must be empty or an absolute http:// or https:// URL without user info or fragment",
            );
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

        if let Some((key, problem)) = webauthn_problem(&self.webauthn) {
            return fail(key, problem);
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

        if let Some((key, problem)) = backup_problem(self) {
            return fail(key, problem);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let (_, id, _) = p
                .to_spec()
                .map_err(|(field, message)| ConfigError::invalid(&format!("providers[{i}].{field}"), &message))?;
            if !seen.insert((p.tenant.trim().to_owned(), id)) {
                return fail(
                    &format!("providers[{i}].id"),
                    "another [[providers]] entry of this tenant has this id",
                );
            }
        }
        Ok(())
    }
}

impl ProviderConfig {
    /// The tenant, id and validated spec of this entry; `Err` names the
    /// key at fault (without the `providers[i].` prefix) and why, never
    /// repeating the secret.
    pub fn to_spec(&self) -> Result<(TenantSlug, ProviderId, ProviderSpec), (&'static str, String)> {
        let tenant = TenantSlug::parse(self.tenant.trim()).map_err(|e| ("tenant", e.to_string()))?;
        let id = ProviderId::parse(&self.id).map_err(|e| ("id", e.to_owned()))?;
        let kind = ProviderKind::parse(&self.kind).map_err(|e| ("kind", e.to_owned()))?;
        trimmed_provider_secret(self.client_secret.expose()).map_err(|e| ("client_secret", e))?;
        let mut spec = ProviderSpec::new(kind, self.name.clone(), self.client_id.clone());
        spec.issuer = self.issuer.clone();
        spec.authorize_url = self.authorize_url.clone();
        spec.token_url = self.token_url.clone();
        spec.userinfo_url = self.userinfo_url.clone();
        spec.scopes = self.scopes.clone();
        if let Some(c) = &self.claims {
            let d = ClaimMap::default();
            spec.claims = ClaimMap {
                subject: c.subject.clone(),
                email: c.email.clone().or(d.email),
                email_verified: c.email_verified.clone().or(d.email_verified),
                name: c.name.clone().or(d.name),
            };
        }
        spec.apple = match (&self.team_id, &self.key_id) {
            (None, None) => None,
            (team_id, key_id) => Some(AppleKey {
                team_id: team_id.clone().unwrap_or_default(),
                key_id: key_id.clone().unwrap_or_default(),
            }),
        };
        spec.enabled = self.enabled;
        spec.validate().map_err(|e| (e.field, e.reason))?;
        Ok((tenant, id, spec))
    }
}

/// Scheduled backups copy a SQLite file. PostgreSQL is refused rather than
/// ignored: an operator who set a schedule expects copies, and a warning in
/// a start-up log is easy to miss; backing PostgreSQL up is the database's
/// job (`pg_dump`, WAL archiving).
fn backup_problem(config: &Config) -> Option<(&'static str, &'static str)> {
    let backup = &config.backup;
    if backup.keep < 1 {
        return Some(("backup.keep", "must be at least 1"));
    }
    if backup.dir.trim().is_empty() {
        return Some(("backup.dir", "must not be empty"));
    }
    let schedule = backup.schedule?;
    if schedule < std::time::Duration::from_secs(1) {
        return Some(("backup.schedule", "must be at least 1s, or \"off\""));
    }
    let url = &config.database.url;
    if !url.starts_with("sqlite:") {
        return Some((
            "backup.schedule",
            "scheduled backups copy a SQLite database; back PostgreSQL up with pg_dump or WAL archiving",
        ));
    }
    if url == "sqlite::memory:" {
        return Some(("backup.schedule", "an in-memory database has nothing to back up"));
    }
    None
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

/// Why the relying party cannot work: `rp_id` must be a domain name (not
/// an IP address, not a URL), and every origin an `http(s)://host[:port]`
/// origin on `rp_id` or below it, because browsers refuse any other
/// combination (and webauthn-rs checks the same when it is built).
fn webauthn_problem(webauthn: &crate::config::WebauthnConfig) -> Option<(&'static str, &'static str)> {
    let rp_id = webauthn.rp_id.as_str();
    if rp_id.is_empty() {
        return (!webauthn.origins.is_empty()).then_some((
            "webauthn.origins",
            "needs webauthn.rp_id (server.public_url's host is an IP address, which cannot be a relying-party id)",
        ));
    }
    let domain_like = rp_id.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    if !domain_like || rp_id.len() > 253 || rp_id.parse::<std::net::IpAddr>().is_ok() {
        return Some((
            "webauthn.rp_id",
            "must be a lower-case domain name such as \"example.com\" (no scheme, port or path, not an IP address)",
        ));
    }
    let within = |origin: &String| {
        url::Url::parse(origin).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.origin().ascii_serialization() == *origin
                && url
                    .domain()
                    .is_some_and(|host| host == rp_id || host.ends_with(&format!(".{rp_id}")))
        })
    };
    if webauthn.origins.is_empty() {
        return Some(("webauthn.origins", "must name at least one origin"));
    }
    (!webauthn.origins.iter().all(within)).then_some((
        "webauthn.origins",
        "each entry must be an origin like \"https://auth.example.com\" (no path or trailing slash) whose host is webauthn.rp_id or below it",
    ))
}

/// An allowed redirect (or the sign-in page): an absolute http(s) URL with a
/// host, no user info (`https://good@evil` reads as `good` to a person and
/// as `evil` to a browser) and no fragment.
fn redirect_entry_ok(entry: &str) -> bool {
    url::Url::parse(entry).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
    })
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

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
            ("[webauthn]\nrp_id = \"https://example.com\"", "webauthn.rp_id"),
            (
                "[server]\nallowed_redirects = [\"app.example.com\"]",
                "server.allowed_redirects",
            ),
            (
                "[server]\nallowed_redirects = [\"https://good.example@evil.example\"]",
                "server.allowed_redirects",
            ),
            (
                "[server]\nallowed_redirects = [\"ftp://a.example\"]",
                "server.allowed_redirects",
            ),
            ("[forward_auth]\nlogin_url = \"/login\"", "forward_auth.login_url"),
            (
                "[forward_auth]\nlogin_url = \"https://a.example/#x\"",
                "forward_auth.login_url",
            ),
            ("[webauthn]\nrp_id = \"Example.com\"", "webauthn.rp_id"),
            ("[webauthn]\nrp_id = \"10.0.0.1\"", "webauthn.rp_id"),
            ("[webauthn]\nrp_id = \"example.com\"", "webauthn.origins"),
            (
                "[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://example.com/\"]",
                "webauthn.origins",
            ),
            (
                "[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://notexample.com\"]",
                "webauthn.origins",
            ),
            (
                "[server]\npublic_url = \"http://10.0.0.1:8080\"\n[webauthn]\norigins = [\"http://10.0.0.1:8080\"]",
                "webauthn.origins",
            ),
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
    fn the_relying_party_defaults_from_the_public_url() {
        let c = file("[server]\npublic_url = \"https://Auth.Example.com/forge/\"").unwrap();
        assert_eq!(c.webauthn.rp_id, "auth.example.com");
        assert_eq!(c.webauthn.origins, ["https://auth.example.com"]);
        // A parent domain covers its subdomains' origins.
        let c = file(
            "[server]\npublic_url = \"https://auth.example.com\"\n[webauthn]\nrp_id = \"example.com\"\n\
             origins = [\"https://auth.example.com\", \"https://app.example.com:8443\"]",
        )
        .unwrap();
        assert_eq!(c.webauthn.rp_id, "example.com");
        assert_eq!(c.webauthn.origins.len(), 2);
        let c = Config::from_sources(
            None,
            env(&[
                ("FORGE_SERVER__PUBLIC_URL", "https://id.example.org"),
                (
                    "FORGE_WEBAUTHN__ORIGINS",
                    "https://id.example.org, https://www.id.example.org",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.webauthn.rp_id, "id.example.org");
        assert_eq!(
            c.webauthn.origins,
            ["https://id.example.org", "https://www.id.example.org"]
        );
        // An IP address cannot be a relying party: passkeys are off, the rest starts.
        let c = file("[server]\npublic_url = \"http://192.168.1.5:8080\"").unwrap();
        assert_eq!(c.webauthn.rp_id, "");
        assert!(c.webauthn.origins.is_empty());
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
    fn backup_keys_parse_and_refuse_what_cannot_be_backed_up() {
        let c = file("").unwrap();
        assert_eq!(c.backup.schedule, None);
        assert_eq!((c.backup.dir.as_str(), c.backup.keep), ("backups", 7));
        assert!(c.redacted_toml().contains("schedule = \"off\""));
        let c = file("[backup]\nschedule = \"6h\"\nkeep = 3").unwrap();
        assert_eq!(c.backup.schedule, Some(std::time::Duration::from_secs(6 * 3_600)));
        assert!(c.redacted_toml().contains("schedule = \"6h\""));
        let c = Config::from_sources(None, env(&[("FORGE_BACKUP__SCHEDULE", "90s")])).unwrap();
        assert_eq!(c.backup.schedule, Some(std::time::Duration::from_secs(90)));
        assert!(file_err("[backup]\nschedule = \"soon\"").contains("backup.schedule"));
        assert!(file_err("[backup]\nkeep = 0").contains("backup.keep"));
        assert!(
            file_err("[backup]\nschedule = \"6h\"\n[database]\nurl = \"sqlite::memory:\"").contains("backup.schedule")
        );
        #[cfg(feature = "postgres")]
        assert!(file_err("[backup]\nschedule = \"6h\"\n[database]\nurl = \"postgres://db/forge\"").contains("pg_dump"));
    }
}
