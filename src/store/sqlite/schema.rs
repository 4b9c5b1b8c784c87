//! Bringing a database to this binary's schema.
//!
//! An existing database runs its pending migrations (`migrations/sqlite`),
//! as refinery records them. A new, empty one instead gets the schema those
//! migrations end in, in one transaction (`migrations/sqlite-squashed.sql`,
//! generated from them), and refinery records the migrations it covers as
//! applied; any later migration then runs as usual. Replaying sixteen
//! migrations, with their table rebuilds, was most of forge's start on an
//! empty data directory and of every in-memory test server's start: about
//! 20 ms against 2.
//!
//! The squashed file is generated, never edited: a unit test compares it
//! with what the migrations make and rewrites it when run with
//! `FORGE_BLESS_SCHEMA=1` (see the README's "Changing the schema").

use anyhow::Context;
use refinery::{SchemaVersion, Target};
use rusqlite::Connection;

use super::embedded;

/// The schema after the migrations up to the version in its first line.
const SQUASHED: &str = include_str!("../../../migrations/sqlite-squashed.sql");

/// How the squashed file's first line begins; the version follows.
const HEADER: &str = "-- forge's SQLite schema after migration V";

/// Applies what this database lacks of the schema; returns how many
/// migrations that was (all of them for a new database).
pub(super) fn migrate(conn: &mut Connection) -> anyhow::Result<usize> {
    migrate_with(conn, SQUASHED)
}

fn migrate_with(conn: &mut Connection, squashed_schema: &str) -> anyhow::Result<usize> {
    let covered = if is_empty(conn)? {
        let version = squashed_version(squashed_schema).context("the squashed schema has no version line")?;
        apply_squashed(conn, version, squashed_schema)?
    } else if !has_history(conn)? {
        anyhow::bail!(
            "the database holds tables but no migration history: it was not made by forge, \
             or its first start was cut short (then move it away and start again)"
        );
    } else {
        0
    };
    let report = embedded::migrations::runner()
        .run(conn)
        .context("cannot apply database migrations")?;
    Ok(covered + report.applied_migrations().len())
}

/// A database with nothing in it: no table, index or migration history.
fn is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) = 0 FROM sqlite_master", [], |r| r.get(0))
}

fn has_history(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
        [],
        |r| r.get(0),
    )
}

/// The version a squashed schema stands at, from its first line.
fn squashed_version(text: &str) -> Option<SchemaVersion> {
    let rest = text.lines().next()?.strip_prefix(HEADER)?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// Creates the schema as of `version` and records the migrations up to it
/// as applied; returns how many those are. The two steps are two
/// transactions (refinery opens its own): a start cut short between them
/// leaves tables without a history, which the next start refuses rather
/// than guess at.
fn apply_squashed(conn: &mut Connection, version: SchemaVersion, sql: &str) -> anyhow::Result<usize> {
    let tx = conn.transaction()?;
    tx.execute_batch(sql).context("cannot create the database schema")?;
    tx.commit()?;
    let runner = embedded::migrations::runner();
    // Counted here: a fake run reports nothing applied, since it runs nothing.
    let covered = runner
        .get_migrations()
        .iter()
        .filter(|m| m.version() <= version)
        .count();
    runner
        .set_target(Target::FakeVersion(version))
        .run(conn)
        .context("cannot record the database's migrations")?;
    Ok(covered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated(target: Target) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        embedded::migrations::runner()
            .set_target(target)
            .run(&mut conn)
            .unwrap();
        conn
    }

    fn last_version() -> SchemaVersion {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| m.version())
            .max()
            .unwrap()
    }

    /// A database's schema and rows (not its migration history) as SQL
    /// that recreates them, objects in the order they were made.
    fn dump(conn: &Connection) -> String {
        let mut out = String::new();
        let mut stmt = conn
            .prepare(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL \
                 AND name NOT LIKE 'sqlite_%' AND name <> 'refinery_schema_history' ORDER BY rowid",
            )
            .unwrap();
        let objects: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (_, _, sql) in &objects {
            out.push_str(sql);
            out.push_str(";\n");
        }
        for (_, table, _) in objects.iter().filter(|(kind, _, _)| kind == "table") {
            let mut rows = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = rows.column_count();
            let mut rows = rows.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let values: Vec<String> = (0..columns).map(|i| literal(row.get_ref(i).unwrap())).collect();
                out.push_str(&format!("INSERT INTO \"{table}\" VALUES ({});\n", values.join(", ")));
            }
        }
        out
    }

    fn literal(value: rusqlite::types::ValueRef<'_>) -> String {
        use rusqlite::types::ValueRef;
        match value {
            ValueRef::Null => "NULL".into(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => format!("{f:?}"),
            ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
            ValueRef::Blob(b) => format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        }
    }

    fn squashed_at(version: SchemaVersion) -> String {
        format!(
            "{HEADER}{version}, generated from migrations/sqlite.\n\
             -- Do not edit: `FORGE_BLESS_SCHEMA=1 cargo test --lib store::sqlite::schema` rewrites it.\n{}",
            dump(&migrated(Target::Version(version)))
        )
    }

    #[test]
    fn the_squashed_schema_is_what_the_migrations_make() {
        let expected = squashed_at(last_version());
        if std::env::var_os("FORGE_BLESS_SCHEMA").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite-squashed.sql");
            std::fs::write(path, &expected).unwrap();
            return;
        }
        assert!(
            SQUASHED == expected,
            "migrations/sqlite-squashed.sql is not what the migrations make; \
             regenerate it with `FORGE_BLESS_SCHEMA=1 cargo test --lib store::sqlite::schema`"
        );
    }

    #[test]
    fn a_new_database_gets_the_migrations_schema_and_their_history() {
        let mut conn = Connection::open_in_memory().unwrap();
        let all = embedded::migrations::runner().get_migrations().len();
        assert_eq!(migrate_with(&mut conn, &squashed_at(last_version())).unwrap(), all);
        assert_eq!(dump(&conn), dump(&migrated(Target::Latest)));
        let history: i64 = conn
            .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(history as usize, all);
        // The next start finds nothing to do, and refinery accepts the history.
        assert_eq!(migrate_with(&mut conn, SQUASHED).unwrap(), 0);
    }

    #[test]
    fn a_squashed_schema_behind_the_migrations_is_brought_up_to_date() {
        let behind = last_version() - 1;
        let mut conn = Connection::open_in_memory().unwrap();
        let all = embedded::migrations::runner().get_migrations().len();
        assert_eq!(migrate_with(&mut conn, &squashed_at(behind)).unwrap(), all);
        assert_eq!(dump(&conn), dump(&migrated(Target::Latest)));
    }

    #[test]
    fn tables_without_a_migration_history_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
        let err = migrate_with(&mut conn, SQUASHED).unwrap_err();
        assert!(err.to_string().contains("no migration history"), "{err}");
    }
}
