//! Loading: built-in defaults < the TOML file < `FORGE_<SECTION>__<KEY>`
//! environment variables, merged as TOML trees while remembering which
//! source set each key ([`Origins`]), so every error can say where the bad
//! value came from.

use std::net::SocketAddr;
use std::path::Path;

use toml::{Table, Value};

use super::error::{explain, one_line};
use super::{Config, ConfigError, NotifyChannel};
use crate::secret::Secret;

/// Prefix that marks an environment variable as a key override (together with `__`).
const ENV_PREFIX: &str = "FORGE_";
/// Separates path segments in an override's name: `FORGE_NOTIFY__SMTP__HOST`.
const ENV_SEPARATOR: &str = "__";

/// Where each part of the merged tree came from, to name it in errors.
pub(super) struct Origins {
    file: Option<String>,
    /// Override paths with the variable that set them, in the order applied.
    env: Vec<(Vec<String>, String)>,
}

impl Origins {
    /// The variable that set `path` (or a key inside or around it), else the file.
    pub(super) fn of(&self, path: &[String]) -> Option<String> {
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
    pub(super) fn resolve(&mut self) {
        let trimmed = self.server.public_url.trim_end_matches('/');
        if trimmed.len() != self.server.public_url.len() {
            self.server.public_url = trimmed.to_owned();
        }
        if self.jwt.issuer.is_empty() {
            self.jwt.issuer = self.server.public_url.clone();
        }
        // The relying party defaults to the public URL's host and origin;
        // a bad URL is left for `validate` to name.
        let public = url::Url::parse(&self.server.public_url).ok();
        let webauthn = &mut self.webauthn;
        if webauthn.rp_id.is_empty()
            && let Some(domain) = public.as_ref().and_then(|u| u.domain())
        {
            webauthn.rp_id = domain.to_ascii_lowercase();
        }
        if webauthn.origins.is_empty()
            && !webauthn.rp_id.is_empty()
            && let Some(public) = &public
        {
            webauthn.origins = vec![public.origin().ascii_serialization()];
        }
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
pub(super) fn schema() -> Table {
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

pub(super) fn lookup<'a>(table: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get(first)?;
    match (rest.is_empty(), value) {
        (true, value) => Some(value),
        (false, Value::Table(inner)) => lookup(inner, rest),
        (false, _) => None,
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::error::is_secret_path;
    use crate::config::test_support::*;
    use crate::config::values::minutes;
    use crate::config::*;

    #[test]
    fn empty_file_and_no_file_give_defaults_with_issuer() {
        let expected = resolved_default();
        assert_eq!(expected.jwt.issuer, "http://localhost:8080");
        assert_eq!(file("").unwrap(), expected);
        assert_eq!(Config::from_sources(None, Vec::new()).unwrap(), expected);
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
