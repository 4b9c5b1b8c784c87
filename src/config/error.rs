//! Configuration errors: one line each, naming the dotted key and where
//! its value came from (the file or the variable), never a secret. When
//! serde refuses the merged tree it names no key, so `explain` pins the
//! failure to one by re-reading the tree a key at a time.

use toml::{Table, Value};

use super::Config;
use super::load::{Origins, lookup};

/// Below this, a secret is too short to search for in an error message without
/// mangling it; such a secret is also far too weak to matter.
const MIN_SCRUBBED_SECRET: usize = 4;

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

    pub(super) fn invalid(key: &str, message: impl Into<String>) -> Self {
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
pub(super) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns a failed deserialisation of the merged tree into an error naming the key.
pub(super) fn explain(tree: &Table, whole: &toml::de::Error, origins: &Origins, schema: &Table) -> ConfigError {
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

/// The `***` leaves of the schema: secrets serialise redacted.
pub(super) fn is_secret_path(schema: &Table, path: &[String]) -> bool {
    (1..=path.len()).any(|n| matches!(lookup(schema, &path[..n]), Some(Value::String(s)) if s == "***"))
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
    use crate::config::test_support::*;

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
}
