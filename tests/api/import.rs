//! `forge users import` and `export` through the real binary on a SQLite
//! file: one test per input format, each with fixtures written here from the
//! format's documentation and hashes made by other code than forge's
//! verifier (the `bcrypt` crate's hashing, PBKDF2 and Firebase's scrypt
//! assembled here step by step). Each imported user then signs in to the
//! real server with the original password, and the stored hash is argon2id
//! afterwards: the upgrade, observed in the database.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::support::binary::{forge, listening};

/// A migrated SQLite file in its own directory.
struct Db {
    dir: tempfile::TempDir,
    url: String,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("forge.db").display());
        let out = forge()
            .arg("migrate")
            .env("FORGE_DATABASE__URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self { dir, url }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn forge(&self, args: &[&str]) -> Output {
        forge()
            .args(args)
            .env("FORGE_DATABASE__URL", &self.url)
            .env("FORGE_LOG__LEVEL", "warn")
            .output()
            .unwrap()
    }

    fn import(&self, args: &[&str]) -> String {
        let out = self.forge(&[&["users", "import"], args].concat());
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn sql<T: rusqlite::types::FromSql>(&self, query: &str, param: &str) -> Option<T> {
        let conn = rusqlite::Connection::open(self.file("forge.db")).unwrap();
        conn.query_row(query, [param], |r| r.get(0)).ok()
    }

    fn hash_of(&self, identifier: &str) -> Option<String> {
        self.sql(
            "SELECT pc.hash FROM users u JOIN password_credentials pc ON pc.user_id = u.id \
             WHERE u.email = ?1 OR u.phone = ?1",
            identifier,
        )
    }

    fn users(&self) -> i64 {
        self.sql("SELECT COUNT(*) FROM users WHERE ?1 = ?1", "").unwrap()
    }
}

/// The real server on the database; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Db) -> Server {
    let mut child = forge()
        .env("FORGE_DATABASE__URL", &db.url)
        .env("FORGE_SERVER__BIND", "127.0.0.1:0")
        .env("FORGE_LOG__LEVEL", "warn")
        .env("FORGE_PASSWORD__ARGON2_MEMORY_KIB", "1024")
        .env("FORGE_PASSWORD__ARGON2_ITERATIONS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = listening(&mut child, String::new);
    Server { child, base }
}

/// Signs each (identifier, password) in through the real server, then
/// checks its stored hash became argon2id; a wrong password fails first.
fn sign_in_upgrades(db: &Db, users: &[(&str, &str)]) {
    for (who, _) in users {
        let before = db.hash_of(who).unwrap_or_else(|| panic!("{who} has no password"));
        assert!(!before.starts_with("$argon2id$"), "{who}: {before}");
    }
    let server = serve(db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        for (who, password) in users {
            let key = if who.contains('@') { "email" } else { "phone" };
            let login = |password: String| {
                c.post(format!("{}/v1/auth/login", server.base))
                    .json(&json!({key: who, "password": password}))
                    .send()
            };
            let wrong = login(format!("{password}x")).await.unwrap();
            assert_eq!(wrong.status(), 401, "{who}");
            let resp = login(password.to_string()).await.unwrap();
            assert_eq!(resp.status(), 200, "{who}: {}", resp.text().await.unwrap());
        }
    });
    drop(server);
    for (who, _) in users {
        let after = db.hash_of(who).unwrap();
        assert!(after.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{who}: {after}");
    }
}

fn bcrypt_hash(password: &str, version: bcrypt::Version) -> String {
    bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(version)
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 of the key>`.
fn django_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    format!("pbkdf2_sha256${iterations}${salt}${}", B64.encode(key))
}

fn argon2i_hash(password: &str) -> String {
    use argon2::PasswordHasher as _;
    let salt = argon2::password_hash::SaltString::encode_b64(b"imported salt 16").unwrap();
    argon2::Argon2::new(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        argon2::Params::new(2048, 2, 1, None).unwrap(),
    )
    .hash_password(password.as_bytes(), &salt)
    .unwrap()
    .to_string()
}

fn write(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn jsonl_imports_every_hash_kind_then_dry_runs_reruns_and_reports() {
    let db = Db::new();
    let file = db.file("users.jsonl");
    let report = db.file("report.jsonl");
    let bcrypt = bcrypt_hash("bcrypt horse battery", bcrypt::Version::TwoB);
    let rows = [
        json!({"email": "Bee@Example.com", "password_hash": bcrypt, "email_verified": true,
               "metadata": {"plan": "pro"}, "roles": ["admin"], "created_at": "2021-03-04T05:06:07Z"}),
        json!({"email": "django@example.com", "phone": "+14155550100", "phone_verified": true,
               "password_hash": django_hash("django horse battery", "pepper123", 1000)}),
        json!({"email": "argon@example.com", "password_hash": argon2i_hash("argon horse battery"), "created_at": 1_600_000_000}),
        json!({"email": "no-at-sign", "password_hash": bcrypt}),
        json!({"email": "md5@example.com", "password_hash": "md5$deadbeef$cafe"}),
        json!({"email": "role@example.com", "roles": ["nosuchrole"]}),
    ];
    write(&file, &rows);
    let f = file.to_str().unwrap();
    let r = report.to_str().unwrap();

    // A dry run checks everything and writes nothing.
    let out = db.import(&[f, "--dry-run", "--report", r]);
    assert!(out.contains("3 created") && out.contains("3 rejected"), "{out}");
    assert_eq!(db.users(), 0, "a dry run writes nothing");

    let out = db.import(&[f, "--report", r]);
    assert!(
        out.contains("6 rows read: 3 created, 0 already there, 3 rejected"),
        "{out}"
    );
    let report_text = std::fs::read_to_string(&report).unwrap();
    let reported: Vec<Value> = report_text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        reported.iter().map(|r| r["line"].as_u64().unwrap()).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert!(
        reported[0]["reason"].as_str().unwrap().starts_with("email"),
        "{report_text}"
    );
    assert!(
        reported[1]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown password hash"),
        "{report_text}"
    );
    assert!(
        reported[2]["reason"].as_str().unwrap().contains("nosuchrole"),
        "{report_text}"
    );
    assert!(
        !report_text.contains("$2b$") && !report_text.contains("deadbeef"),
        "no hash in the report: {report_text}"
    );

    // Carried over: verified flags, phone, metadata, roles, creation time.
    let exported = db.forge(&["users", "export"]);
    assert!(exported.status.success());
    let exported: Vec<Value> = String::from_utf8(exported.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bee = exported.iter().find(|u| u["email"] == "bee@example.com").unwrap();
    assert_eq!(bee["email_verified"], true);
    assert_eq!(bee["metadata"], json!({"plan": "pro"}));
    assert_eq!(bee["roles"], json!(["admin"]));
    assert_eq!(bee["created_at"], "2021-03-04T05:06:07Z");
    assert!(bee.get("password_hash").is_none(), "hashes only with --include-hashes");
    let django = exported.iter().find(|u| u["email"] == "django@example.com").unwrap();
    assert_eq!(
        (django["phone"].as_str(), django["phone_verified"].as_bool()),
        (Some("+14155550100"), Some(true))
    );
    let with_hashes = db.forge(&["users", "export", "--include-hashes"]);
    assert!(String::from_utf8_lossy(&with_hashes.stdout).contains(&bcrypt));

    // A re-run skips what is there; a conflicting row is reported, not written.
    let out = db.import(&[f]);
    assert!(out.contains("0 created, 3 already there, 3 rejected"), "{out}");
    let conflict = db.file("conflict.jsonl");
    write(
        &conflict,
        &[json!({"email": "bee@example.com", "password_hash": bcrypt_hash("another one", bcrypt::Version::TwoB)})],
    );
    let out = db.import(&[conflict.to_str().unwrap(), "--report", r]);
    assert!(out.contains("0 created, 0 already there, 1 rejected"), "{out}");
    let report_text = std::fs::read_to_string(&report).unwrap();
    assert!(report_text.contains("email belongs to another user"), "{report_text}");
    assert!(!report_text.contains("$2b$"), "{report_text}");
    assert_eq!(
        db.hash_of("bee@example.com").as_deref(),
        Some(bcrypt.as_str()),
        "not overwritten"
    );

    // An export re-imports into another database as the same users.
    let other = Db::new();
    let dump = other.file("dump.jsonl");
    std::fs::write(&dump, &with_hashes.stdout).unwrap();
    let out = other.import(&[dump.to_str().unwrap()]);
    assert!(out.contains("3 created, 0 already there, 0 rejected"), "{out}");

    sign_in_upgrades(
        &db,
        &[
            ("bee@example.com", "bcrypt horse battery"),
            ("+14155550100", "django horse battery"),
            ("argon@example.com", "argon horse battery"),
        ],
    );
}

#[test]
fn csv_with_the_same_columns_imports_and_upgrades() {
    let db = Db::new();
    let file = db.file("users.csv");
    let hash = bcrypt_hash("csv horse battery", bcrypt::Version::TwoY);
    let text = format!(
        "email,phone,password_hash,email_verified,phone_verified,metadata,roles,created_at\n\
         csv@example.com,,{hash},true,,\"{{\"\"team\"\":\"\"blue\"\"}}\",admin,2022-01-01T00:00:00Z\n\
         ,+14155550199,{django},,1,,,\n\
         broken@,,,,,,,\n",
        django = django_hash("csv phone battery", "salt", 1000)
    );
    std::fs::write(&file, text).unwrap();
    let out = db.import(&[file.to_str().unwrap()]);
    assert!(
        out.contains("3 rows read: 2 created, 0 already there, 1 rejected"),
        "{out}"
    );
    let meta: String = db
        .sql("SELECT metadata FROM users WHERE email = ?1", "csv@example.com")
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&meta).unwrap(), json!({"team": "blue"}));
    sign_in_upgrades(
        &db,
        &[
            ("csv@example.com", "csv horse battery"),
            ("+14155550199", "csv phone battery"),
        ],
    );
}

/// Auth0's user export (NDJSON), with `passwordHash` as in the export of
/// password hashes Auth0 provides.
#[test]
fn auth0_export_imports_and_upgrades() {
    let db = Db::new();
    let file = db.file("auth0.ndjson");
    write(
        &file,
        &[
            json!({"user_id": "auth0|5f7c8ec7c33c6c004bbafe82", "email": "zero@example.com", "email_verified": true,
                   "created_at": "2020-10-06T15:51:35.123Z", "passwordHash": bcrypt_hash("auth0 horse battery", bcrypt::Version::TwoB),
                   "user_metadata": {"theme": "dark"}, "app_metadata": {"plan": "gold"}, "name": "Zero"}),
            json!({"_id": {"$oid": "60425da9a2e3d6006a8b2f7d"}, "email": "legacy@example.com", "email_verified": false,
                   "created_at": {"$date": "2021-03-05T16:20:25.000Z"},
                   "passwordHash": bcrypt_hash("legacy horse battery", bcrypt::Version::TwoA)}),
        ],
    );
    let out = db.import(&[file.to_str().unwrap(), "--format", "auth0"]);
    assert!(out.contains("2 created"), "{out}");
    let meta: String = db
        .sql("SELECT metadata FROM users WHERE email = ?1", "zero@example.com")
        .unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["theme"], "dark");
    assert_eq!(meta["auth0"]["app_metadata"]["plan"], "gold");
    assert_eq!(meta["auth0"]["user_id"], "auth0|5f7c8ec7c33c6c004bbafe82");
    let created: i64 = db
        .sql("SELECT created_at FROM users WHERE email = ?1", "legacy@example.com")
        .unwrap();
    assert_eq!(created, 1_614_961_225);
    sign_in_upgrades(
        &db,
        &[
            ("zero@example.com", "auth0 horse battery"),
            ("legacy@example.com", "legacy horse battery"),
        ],
    );
}

/// Supabase's `auth.users`, once from `\copy ... to 'f.csv' csv header`
/// and once as `row_to_json` lines.
#[test]
fn supabase_auth_users_as_csv_and_json_import_and_upgrade() {
    let db = Db::new();
    let csv = db.file("auth_users.csv");
    let hash = bcrypt_hash("supa horse battery", bcrypt::Version::TwoA);
    std::fs::write(
        &csv,
        format!(
            "instance_id,id,aud,role,email,encrypted_password,email_confirmed_at,invited_at,phone,phone_confirmed_at,raw_app_meta_data,raw_user_meta_data,created_at,updated_at\n\
             00000000-0000-0000-0000-000000000000,8d1b1b1e-1111-4c1e-9a1a-000000000001,authenticated,authenticated,supa@example.com,{hash},2023-05-01 10:00:00.123456+00,,14155550111,2023-05-01 10:00:00+00,\"{{\"\"provider\"\":\"\"email\"\"}}\",\"{{\"\"full_name\"\":\"\"Supa Base\"\"}}\",2023-04-30 09:08:07.654321+00,2023-05-01 10:00:00+00\n"
        ),
    )
    .unwrap();
    let out = db.import(&[csv.to_str().unwrap(), "--format", "supabase"]);
    assert!(out.contains("1 created"), "{out}");
    let created: i64 = db
        .sql("SELECT created_at FROM users WHERE email = ?1", "supa@example.com")
        .unwrap();
    assert_eq!(created, 1_682_845_687);
    let verified: bool = db
        .sql("SELECT phone_verified FROM users WHERE phone = ?1", "+14155550111")
        .unwrap();
    assert!(verified);

    let json_file = db.file("auth_users.json");
    write(
        &json_file,
        &[
            json!({"id": "8d1b1b1e-1111-4c1e-9a1a-000000000002", "email": "json@example.com",
                 "encrypted_password": bcrypt_hash("json horse battery", bcrypt::Version::TwoA),
                 "email_confirmed_at": null, "phone": null, "raw_user_meta_data": {"full_name": "Jay"},
                 "created_at": "2023-04-30T09:08:07.654321+00:00"}),
        ],
    );
    let out = db.import(&[json_file.to_str().unwrap(), "--format", "supabase"]);
    assert!(out.contains("1 created"), "{out}");
    let verified: bool = db
        .sql("SELECT email_verified FROM users WHERE email = ?1", "json@example.com")
        .unwrap();
    assert!(!verified, "email_confirmed_at null: not verified");
    sign_in_upgrades(
        &db,
        &[
            ("supa@example.com", "supa horse battery"),
            ("json@example.com", "json horse battery"),
        ],
    );
}

/// PocketBase's `data.db` with its `users` auth collection (v0.23 columns).
#[test]
fn pocketbase_data_db_imports_and_upgrades() {
    let db = Db::new();
    let pb = db.file("data.db");
    let conn = rusqlite::Connection::open(&pb).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL, \
         avatar TEXT DEFAULT '' NOT NULL, created TEXT DEFAULT '' NOT NULL, email TEXT DEFAULT '' NOT NULL, \
         emailVisibility BOOLEAN DEFAULT FALSE NOT NULL, name TEXT DEFAULT '' NOT NULL, \
         password TEXT DEFAULT '' NOT NULL, tokenKey TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL, \
         verified BOOLEAN DEFAULT FALSE NOT NULL)",
    )
    .unwrap();
    for (id, email, password, verified) in [
        ("pbuser0000001", "pocket@example.com", "pocket horse battery", true),
        ("pbuser0000002", "base@example.com", "base horse battery", false),
    ] {
        conn.execute(
            "INSERT INTO users (id, email, password, verified, name, created, updated, tokenKey) \
             VALUES (?1, ?2, ?3, ?4, 'PB', '2024-02-03 04:05:06.789Z', '2024-02-03 04:05:06.789Z', 'k')",
            rusqlite::params![id, email, bcrypt_hash(password, bcrypt::Version::TwoA), verified],
        )
        .unwrap();
    }
    drop(conn);
    let out = db.import(&[pb.to_str().unwrap(), "--format", "pocketbase"]);
    assert!(out.contains("2 created"), "{out}");
    let verified: bool = db
        .sql(
            "SELECT email_verified FROM users WHERE email = ?1",
            "pocket@example.com",
        )
        .unwrap();
    assert!(verified);
    let meta: String = db
        .sql("SELECT metadata FROM users WHERE email = ?1", "base@example.com")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&meta).unwrap()["pocketbase_id"],
        "pbuser0000002"
    );
    sign_in_upgrades(
        &db,
        &[
            ("pocket@example.com", "pocket horse battery"),
            ("base@example.com", "base horse battery"),
        ],
    );
}

/// Firebase's scrypt, assembled here from its documented steps: scrypt of
/// the password over salt + separator (N = 2^mem_cost, r = rounds, p = 1),
/// then AES-256-CTR with the first 32 bytes as key over the signer key.
fn firebase_hash(
    password: &str,
    salt: &[u8],
    separator: &[u8],
    signer_key: &[u8],
    rounds: u32,
    mem_cost: u8,
) -> Vec<u8> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    let mut derived = [0u8; 64];
    let salted = [salt, separator].concat();
    scrypt::scrypt(
        password.as_bytes(),
        &salted,
        &scrypt::Params::new(mem_cost, rounds, 1, 64).unwrap(),
        &mut derived,
    )
    .unwrap();
    let mut out = signer_key.to_vec();
    ctr::Ctr128BE::<aes::Aes256>::new(derived[..32].into(), &[0u8; 16].into()).apply_keystream(&mut out);
    out
}

#[test]
fn firebase_auth_export_imports_with_the_project_hash_config_and_upgrades() {
    let db = Db::new();
    let file = db.file("firebase.json");
    let signer_key = b"a project signer key of 64 bytes, as Firebase's are, give or ta";
    let separator = [7u8];
    let salt = b"user salt 01";
    let hash = firebase_hash("fire horse battery", salt, &separator, signer_key, 8, 14);
    let export = json!({"users": [
        {"localId": "fb0001", "email": "fire@example.com", "emailVerified": true,
         "passwordHash": B64.encode(&hash), "salt": B64.encode(salt), "displayName": "Fire",
         "createdAt": "1600000000123", "lastSignedInAt": "1600000001000", "providerUserInfo": []},
        {"localId": "fb0002", "phoneNumber": "+14155550177", "createdAt": "1600000000000", "providerUserInfo": []},
    ]});
    std::fs::write(&file, serde_json::to_vec_pretty(&export).unwrap()).unwrap();
    let f = file.to_str().unwrap();

    // Without the project's hash parameters the import refuses to start.
    let out = db.forge(&["users", "import", f, "--format", "firebase"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--firebase-signer-key"));

    let signer_b64 = B64.encode(signer_key);
    let separator_b64 = B64.encode(separator);
    let out = db.import(&[
        f,
        "--format",
        "firebase",
        "--firebase-signer-key",
        &signer_b64,
        "--firebase-salt-separator",
        &separator_b64,
        "--firebase-rounds",
        "8",
        "--firebase-mem-cost",
        "14",
    ]);
    assert!(out.contains("2 rows read: 2 created"), "{out}");
    assert!(
        db.hash_of("fire@example.com")
            .unwrap()
            .starts_with("$firebase-scrypt$m=14,r=8$")
    );
    let created: i64 = db
        .sql("SELECT created_at FROM users WHERE email = ?1", "fire@example.com")
        .unwrap();
    assert_eq!(created, 1_600_000_000);
    let verified: bool = db
        .sql("SELECT phone_verified FROM users WHERE phone = ?1", "+14155550177")
        .unwrap();
    assert!(verified);
    sign_in_upgrades(&db, &[("fire@example.com", "fire horse battery")]);
}
