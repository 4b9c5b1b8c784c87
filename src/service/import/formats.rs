//! The input formats of `forge users import`, each read as a stream and
//! turned, row by row, into forge's JSON Lines shape ([`RawUser`]).
//!
//! Every reader takes one record at a time from its source (a line, a CSV
//! row, an element of Firebase's `users` array, a page of PocketBase's
//! `users` table) and hands it to `emit` with its line (or record) number;
//! nothing holds more than one record, so memory stays flat however large
//! the file. A record that cannot be read is passed on as an `Err(reason)`
//! (reported, never fatal); only an unreadable source stops the import.
//!
//! Shapes, from each system's documentation:
//! - JSON Lines / CSV: API.md's `{"email"?, "phone"?, "password_hash"?,
//!   "email_verified"?, "phone_verified"?, "metadata"?, "roles"?,
//!   "created_at"?}`; in CSV the same header names, `metadata` as JSON text,
//!   `roles` separated by commas or spaces.
//! - Auth0 (NDJSON user export, or the password-hash export support hands
//!   out): `email`, `email_verified`, `user_id` (or `_id.$oid`),
//!   `created_at` (or `{"$date": ..}`), `passwordHash` (bcrypt),
//!   `phone_number`, `phone_verified`, `user_metadata`, `app_metadata`.
//! - Supabase / GoTrue `auth.users` from `COPY ... CSV HEADER` or one
//!   `row_to_json` object a line: `email`, `encrypted_password` (bcrypt),
//!   `email_confirmed_at`, `phone` (E.164 without `+`),
//!   `phone_confirmed_at`, `raw_user_meta_data`, `created_at`.
//! - PocketBase: its `data.db`, opened read-only, table `users`: `email`,
//!   `verified`, `password` (`passwordHash` before v0.23; bcrypt),
//!   `created`, `id`, `name`.
//! - Firebase `auth:export` JSON: `{"users": [{localId, email,
//!   emailVerified, passwordHash, salt, phoneNumber, createdAt (ms),
//!   displayName, ...}]}`; scrypt hashes are combined with the project's
//!   hash configuration into forge's `$firebase-scrypt$` form.

use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::crypto::password::firebase_scrypt_string;

/// The format of an import file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Auth0,
    Supabase,
    Pocketbase,
    Firebase,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "jsonl" | "ndjson" => Self::Jsonl,
            "csv" => Self::Csv,
            "auth0" => Self::Auth0,
            "supabase" => Self::Supabase,
            "pocketbase" => Self::Pocketbase,
            "firebase" => Self::Firebase,
            _ => return None,
        })
    }

    /// The format when `--format` is not given: by extension, JSON Lines
    /// unless the file ends in `.csv` or `.db`.
    pub fn guess(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Self::Csv,
            Some("db") => Self::Pocketbase,
            _ => Self::Jsonl,
        }
    }
}

/// Firebase's project-wide password hash parameters (Authentication, Users,
/// "Password hash parameters"), as base64 and numbers.
#[derive(Clone, Debug)]
pub struct FirebaseHashConfig {
    pub signer_key: String,
    pub salt_separator: String,
    pub rounds: u32,
    pub mem_cost: u8,
}

/// The JSON Lines shape; every format becomes this before validation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub email_verified: Option<bool>,
    pub phone_verified: Option<bool>,
    pub metadata: Option<Value>,
    pub roles: Option<Vec<String>>,
    /// RFC 3339 (or PostgreSQL's `2024-01-02 03:04:05+00`) or Unix seconds.
    pub created_at: Option<Value>,
}

impl RawUser {
    /// The row's identifier as written, for the report.
    pub fn who(&self) -> Option<String> {
        self.email.clone().or_else(|| self.phone.clone())
    }
}

/// A record read from the source: its line (or record) number and the
/// user, or why it could not be read.
pub type Emit<'a> = dyn FnMut(u64, Result<RawUser, String>) -> bool + 'a;

/// Reads `input` in `format`, calling `emit` per record until it answers
/// false (the import stopped) or the input ends. Err: the source itself is
/// unreadable (I/O error, a CSV without a header, a Firebase file that is
/// not `{"users": [...]}`, a Firebase hash without `--firebase-*`).
pub fn read_stream(
    format: Format,
    input: &mut dyn BufRead,
    firebase: Option<&FirebaseHashConfig>,
    emit: &mut Emit<'_>,
) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => json_lines(input, emit, |v| serde_json::from_value(v).map_err(|e| e.to_string())),
        Format::Auth0 => json_lines(input, emit, auth0_user),
        Format::Csv => csv_rows(input, emit, csv_user),
        Format::Supabase => {
            let first = input.fill_buf()?.iter().copied().find(|b| !b.is_ascii_whitespace());
            if first == Some(b'{') {
                json_lines(input, emit, supabase_user)
            } else {
                csv_rows(input, emit, |row| supabase_user(Value::Object(row)))
            }
        }
        Format::Firebase => firebase_users(input, firebase, emit),
        Format::Pocketbase => anyhow::bail!("a PocketBase import reads data.db, not a stream"),
    }
}

fn json_lines(
    input: &mut dyn BufRead,
    emit: &mut Emit<'_>,
    convert: impl Fn(Value) -> Result<RawUser, String>,
) -> anyhow::Result<()> {
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let user = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(&convert);
        if !emit(number, user) {
            return Ok(());
        }
    }
}

/// CSV rows as JSON objects of strings (empty cells left out), keyed by
/// the header row.
fn csv_rows(
    input: &mut dyn BufRead,
    emit: &mut Emit<'_>,
    convert: impl Fn(Map<String, Value>) -> Result<RawUser, String>,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader.headers()?.clone();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                let row = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.trim().to_owned(), Value::String(v.to_owned())))
                    .collect();
                if !emit(line, convert(row)) {
                    return Ok(());
                }
            }
            // A row that is not valid CSV (bad UTF-8, say) is reported;
            // an I/O error stops the import.
            Err(e) if e.is_io_error() => return Err(e.into()),
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                if !emit(line, Err(format!("not valid CSV: {e}"))) {
                    return Ok(());
                }
            }
        }
    }
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A flag from JSON (`true`) or CSV/PostgreSQL text (`true`, `t`, `1`).
fn flag(row: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" => Ok(Some(true)),
            "false" | "f" | "0" | "no" | "" => Ok(Some(false)),
            _ => Err(format!("{key} is not true or false")),
        },
        Some(_) => Err(format!("{key} is not true or false")),
    }
}

/// A JSON object given as an object or as JSON text (a CSV cell).
fn object(row: &Map<String, Value>, key: &str) -> Result<Option<Map<String, Value>>, String> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(Value::Null) => Ok(None),
            _ => Err(format!("{key} is not a JSON object")),
        },
        Some(_) => Err(format!("{key} is not a JSON object")),
    }
}

fn csv_user(row: Map<String, Value>) -> Result<RawUser, String> {
    if let Some(unknown) = row.keys().find(|k| {
        ![
            "email",
            "phone",
            "password_hash",
            "email_verified",
            "phone_verified",
            "metadata",
            "roles",
            "created_at",
        ]
        .contains(&k.as_str())
    }) {
        return Err(format!("unknown column {unknown}"));
    }
    Ok(RawUser {
        email: text(&row, "email"),
        phone: text(&row, "phone"),
        password_hash: text(&row, "password_hash"),
        email_verified: flag(&row, "email_verified")?,
        phone_verified: flag(&row, "phone_verified")?,
        metadata: object(&row, "metadata")?.map(Value::Object),
        roles: text(&row, "roles").map(|r| {
            r.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        created_at: row.get("created_at").cloned(),
    })
}

fn auth0_user(v: Value) -> Result<RawUser, String> {
    let Value::Object(row) = v else {
        return Err("not a JSON object".into());
    };
    let id = text(&row, "user_id").or_else(|| {
        row.get("_id")
            .and_then(|i| i.get("$oid"))
            .and_then(|o| o.as_str().map(str::to_owned))
    });
    let mut metadata = object(&row, "user_metadata")?.unwrap_or_default();
    let mut auth0 = Map::new();
    if let Some(id) = id {
        auth0.insert("user_id".into(), Value::String(id));
    }
    if let Some(app) = object(&row, "app_metadata")? {
        auth0.insert("app_metadata".into(), Value::Object(app));
    }
    if !auth0.is_empty() {
        metadata.insert("auth0".into(), Value::Object(auth0));
    }
    let created_at = match row.get("created_at") {
        Some(Value::Object(d)) => d.get("$date").cloned(),
        other => other.cloned(),
    };
    Ok(RawUser {
        email: text(&row, "email"),
        phone: text(&row, "phone_number"),
        password_hash: text(&row, "passwordHash"),
        email_verified: flag(&row, "email_verified")?,
        phone_verified: flag(&row, "phone_verified")?,
        metadata: Some(Value::Object(metadata)),
        roles: None,
        created_at,
    })
}

fn supabase_user(v: Value) -> Result<RawUser, String> {
    let Value::Object(row) = v else {
        return Err("not a JSON object".into());
    };
    let confirmed = |key: &str| text(&row, key).is_some();
    let mut metadata = object(&row, "raw_user_meta_data")?.unwrap_or_default();
    if let Some(id) = text(&row, "id") {
        metadata.insert("supabase_id".into(), Value::String(id));
    }
    Ok(RawUser {
        email: text(&row, "email"),
        // GoTrue keeps phones as digits without the `+`.
        phone: text(&row, "phone").map(|p| if p.starts_with('+') { p } else { format!("+{p}") }),
        password_hash: text(&row, "encrypted_password"),
        email_verified: Some(confirmed("email_confirmed_at")),
        phone_verified: Some(confirmed("phone_confirmed_at")),
        metadata: Some(Value::Object(metadata)),
        roles: None,
        created_at: row.get("created_at").cloned(),
    })
}

/// Firebase's base64 (standard, sometimes web-safe or unpadded) as
/// standard padded base64.
fn standard_base64(s: &str) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

fn firebase_user(v: Value, config: Option<&FirebaseHashConfig>) -> Result<Result<RawUser, String>, String> {
    let Value::Object(row) = v else {
        return Ok(Err("not a JSON object".into()));
    };
    let password_hash = match (text(&row, "passwordHash"), text(&row, "salt")) {
        (Some(hash), Some(salt)) => {
            let Some(c) = config else {
                return Err("Firebase password hashes need the project's hash parameters: \
                     --firebase-signer-key, --firebase-salt-separator, --firebase-rounds, --firebase-mem-cost"
                    .into());
            };
            Some(firebase_scrypt_string(
                c.mem_cost,
                c.rounds,
                &standard_base64(&salt),
                &standard_base64(&c.salt_separator),
                &standard_base64(&c.signer_key),
                &standard_base64(&hash),
            ))
        }
        (Some(_), None) => return Ok(Err("passwordHash without salt".into())),
        _ => None,
    };
    let mut metadata = Map::new();
    if let Some(id) = text(&row, "localId") {
        metadata.insert("firebase_uid".into(), Value::String(id));
    }
    if let Some(name) = text(&row, "displayName") {
        metadata.insert("display_name".into(), Value::String(name));
    }
    // createdAt is milliseconds since the epoch, as a string.
    let created_at = match text(&row, "createdAt").map(|ms| ms.parse::<i64>()) {
        Some(Ok(ms)) => Some(Value::from(ms.div_euclid(1000))),
        Some(Err(_)) => return Ok(Err("createdAt is not milliseconds".into())),
        None => None,
    };
    let flags = flag(&row, "emailVerified");
    Ok(flags.map(|email_verified| RawUser {
        email: text(&row, "email"),
        phone: text(&row, "phoneNumber"),
        password_hash,
        email_verified,
        // Firebase signs in by phone only after verifying it by SMS.
        phone_verified: text(&row, "phoneNumber").map(|_| true),
        metadata: Some(Value::Object(metadata)),
        roles: None,
        created_at,
    }))
}

/// Streams the `users` array of `{"users": [...]}` one element at a time.
fn firebase_users(
    input: &mut dyn BufRead,
    config: Option<&FirebaseHashConfig>,
    emit: &mut Emit<'_>,
) -> anyhow::Result<()> {
    use serde::de::{DeserializeSeed, Deserializer as _, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct File<'e, 'a> {
        config: Option<&'e FirebaseHashConfig>,
        emit: &'e mut Emit<'a>,
    }
    struct Users<'f, 'e, 'a>(&'f mut File<'e, 'a>);

    impl<'de> Visitor<'de> for &mut File<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(r#"a Firebase export: {"users": [...]}"#)
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "users" {
                    map.next_value_seed(Users(self))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Users<'_, '_, '_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Users<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of users")
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
            let mut number = 0u64;
            while let Some(user) = seq.next_element::<Value>()? {
                number += 1;
                let user = firebase_user(user, self.0.config).map_err(S::Error::custom)?;
                if !(self.0.emit)(number, user) {
                    return Err(S::Error::custom(STOPPED));
                }
            }
            Ok(())
        }
    }
    const STOPPED: &str = "import stopped";

    let mut file = File { config, emit };
    let mut de = serde_json::Deserializer::from_reader(input);
    match (&mut de).deserialize_map(&mut file) {
        Ok(()) => Ok(de.end()?),
        Err(e) if e.to_string().starts_with(STOPPED) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("not a Firebase auth:export file: {e}")),
    }
}

/// Reads PocketBase's `users` auth collection from its `data.db`, opened
/// read-only, a page of rows at a time. `total` receives the row count
/// first (for the progress bar).
pub fn read_pocketbase(path: &Path, total: &mut dyn FnMut(u64), emit: &mut Emit<'_>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use rusqlite::OpenFlags;
    let conn =
        rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_context(|| format!("cannot open PocketBase database {}", path.display()))?;
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('users')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!columns.is_empty(), "no `users` collection in {}", path.display());
    // v0.23 renamed `passwordHash` to `password`.
    let password = if columns.iter().any(|c| c == "password") {
        "password"
    } else if columns.iter().any(|c| c == "passwordHash") {
        "passwordHash"
    } else {
        anyhow::bail!("the `users` table has no password column: is it an auth collection?");
    };
    let name = if columns.iter().any(|c| c == "name") {
        "name"
    } else {
        "NULL"
    };
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    total(u64::try_from(count).unwrap_or(0));
    let sql = format!(
        "SELECT rowid, id, email, verified, \"{password}\", created, {name} FROM users \
         WHERE rowid > ?1 ORDER BY rowid LIMIT 1000"
    );
    let mut stmt = conn.prepare(&sql)?;
    let (mut after, mut number) = (i64::MIN, 0u64);
    loop {
        let page: Vec<(i64, RawUser)> = stmt
            .query_map([after], |r| {
                let text = |i: usize| -> rusqlite::Result<Option<String>> {
                    Ok(r.get::<_, Option<String>>(i)?.filter(|s| !s.is_empty()))
                };
                let mut metadata = Map::new();
                if let Some(id) = text(1)? {
                    metadata.insert("pocketbase_id".into(), Value::String(id));
                }
                if let Some(n) = text(6)? {
                    metadata.insert("name".into(), Value::String(n));
                }
                Ok((
                    r.get(0)?,
                    RawUser {
                        email: text(2)?,
                        email_verified: Some(r.get::<_, Option<bool>>(3)?.unwrap_or(false)),
                        password_hash: text(4)?,
                        created_at: text(5)?.map(Value::String),
                        metadata: Some(Value::Object(metadata)),
                        ..RawUser::default()
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = *last;
        for (_, user) in page {
            number += 1;
            if !emit(number, Ok(user)) {
                return Ok(());
            }
        }
    }
}
