//! Scale: a SQLite store holding a million users lists a page and searches
//! by email or phone prefix through an index, never a full scan. The plans
//! are asserted with `EXPLAIN QUERY PLAN` on the exact statements the store
//! runs, both without statistics (a fresh database) and after `ANALYZE`
//! (the planner may change its mind once it knows the table sizes), and the
//! measured time of one page and one search is printed.
//!
//! Its own test binary, so the API suite stays fast and this can be run
//! alone: `cargo test --release --test store_scale -- --nocapture`.

// Test code: a failed unwrap is a failed test (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use forge::store::sqlite::SqliteStore;
use forge::store::{DEFAULT_TENANT_ID, DirectoryStore, User, UserQuery, UserSeek};
use uuid::Uuid;

const USERS: u32 = 1_000_000;

/// Fills the database through a connection of its own, in one transaction:
/// a million users of the default tenant (ids in creation order, emails
/// whose first letter cycles so email order differs from id order), and a
/// thousand of another tenant sharing the same emails.
fn bulk_insert(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         INSERT INTO tenants (id, slug, name, created_at) VALUES ('01900000-0000-7000-8000-ffffffffffff', 'other', 'Other', 0);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {USERS})
         INSERT INTO users (id, tenant_id, email, phone, metadata, created_at, updated_at)
         SELECT printf('01900000-0000-7000-8000-%012x', i),
                '{DEFAULT_TENANT_ID}',
                substr('abcdefghijklmnopqrstuvwxyz', (i * 7919) % 26 + 1, 1) || printf('%07d@example.com', i),
                printf('+1415%07d', i),
                '{{}}', i, i
         FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO users (id, tenant_id, email, phone, metadata, created_at, updated_at)
         SELECT printf('01900000-0000-7000-9000-%012x', i),
                '01900000-0000-7000-8000-ffffffffffff',
                substr('abcdefghijklmnopqrstuvwxyz', (i * 7919) % 26 + 1, 1) || printf('%07d@example.com', i),
                printf('+1415%07d', i),
                '{{}}', i, i
         FROM n;
         COMMIT;"
    ))
    .unwrap();
}

async fn assert_plans_use_indexes(store: &SqliteStore, when: &str) {
    for (name, plan) in store.explain_directory_queries().await.unwrap() {
        eprintln!("plan {name} ({when}):\n  {}", plan.join("\n  "));
        for line in &plan {
            assert!(
                !line.starts_with("SCAN"),
                "{name} ({when}) scans instead of searching an index: {line}"
            );
            assert!(!line.contains("TEMP B-TREE"), "{name} ({when}) sorts: {line}");
        }
        let users = plan.iter().find(|l| l.starts_with("SEARCH u ")).unwrap_or_else(|| {
            panic!("{name} ({when}) does not search users: {plan:?}");
        });
        let index = if name.starts_with("email") {
            "users_tenant_email"
        } else if name.starts_with("phone") {
            "users_tenant_phone"
        } else {
            "users_tenant_id"
        };
        assert!(users.contains(index), "{name} ({when}) uses the wrong index: {users}");
    }
}

/// The median time of a few runs of one query, and its last result.
async fn timed(store: &SqliteStore, query: UserQuery) -> (Duration, Vec<User>) {
    let mut times = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        rows = store.list_users(query.clone()).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], rows)
}

fn query(seek: UserSeek) -> UserQuery {
    UserQuery {
        tenant_id: DEFAULT_TENANT_ID,
        seek,
        limit: 51,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_users_list_and_search_through_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scale.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()), 4).unwrap();
    let started = Instant::now();
    bulk_insert(&path);
    eprintln!("inserted {USERS} users in {:?}", started.elapsed());

    assert_plans_use_indexes(&store, "no statistics").await;

    let (first_page, rows) = timed(&store, query(UserSeek::All { after: None })).await;
    assert_eq!(rows.len(), 51);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    assert!(rows.iter().all(|u| u.tenant_id == DEFAULT_TENANT_ID));
    // Deep in the table: a cursor near the end costs what the first page does.
    let deep = Uuid::parse_str(&format!("01900000-0000-7000-8000-{:012x}", 900_000)).unwrap();
    let (deep_page, rows) = timed(&store, query(UserSeek::All { after: Some(deep) })).await;
    assert_eq!(rows.len(), 51);
    assert!(rows[0].id > deep);

    let (broad_search, rows) = timed(
        &store,
        query(UserSeek::EmailPrefix {
            prefix: "k".into(),
            after: None,
        }),
    )
    .await;
    assert_eq!(rows.len(), 51);
    assert!(rows.iter().all(|u| u.email.as_ref().unwrap().as_str().starts_with('k')));
    let last = rows[49].email.as_ref().unwrap().to_string();
    let (next_search_page, rows) = timed(
        &store,
        query(UserSeek::EmailPrefix {
            prefix: "k".into(),
            after: Some(last.clone()),
        }),
    )
    .await;
    assert!(rows[0].email.as_ref().unwrap().as_str() > last.as_str());
    let (narrow_search, rows) = timed(
        &store,
        query(UserSeek::EmailPrefix {
            prefix: "k00123".into(),
            after: None,
        }),
    )
    .await;
    assert!(!rows.is_empty() && rows.len() <= 10, "{}", rows.len());
    let (phone_search, rows) = timed(
        &store,
        query(UserSeek::PhonePrefix {
            prefix: "+1415099999".into(),
            after: None,
        }),
    )
    .await;
    assert_eq!(rows.len(), 10);
    eprintln!(
        "with {USERS} users (median of 7): first page of 50 {first_page:?}; page after row 900000 {deep_page:?}; \
         email prefix 'k' (~38k matches) first page {broad_search:?}, next page {next_search_page:?}; \
         email prefix 'k00123' {narrow_search:?}; phone prefix {phone_search:?}"
    );
    for t in [
        first_page,
        deep_page,
        broad_search,
        next_search_page,
        narrow_search,
        phone_search,
    ] {
        assert!(t < Duration::from_millis(250), "a page took {t:?}");
    }

    // With statistics the planner must still choose the same indexes.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    drop(conn);
    // Pooled connections load the statistics when they next prepare.
    assert_plans_use_indexes(&store, "after ANALYZE").await;
}
