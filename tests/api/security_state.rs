//! Security state versus attacker-created load: revocations survive a flood
//! of fresh client addresses and a restart, and rate-limit memory stays
//! bounded (issue 9, item 7).

use forge::config::Config;
use forge::testing::TestServer;
use futures::StreamExt;
use serde_json::json;

use crate::{PASSWORD, access};

/// `GET /v1/auth/verify` and `GET /v1/users/me` statuses for `token`.
async fn token_status(s: &TestServer, token: &str) -> (u16, u16) {
    let verify = s.as_user(token).get("/v1/auth/verify").await.0.as_u16();
    let me = s.as_user(token).get("/v1/users/me").await.0.as_u16();
    (verify, me)
}

/// Whether introspection calls `token` active. It answers from the token
/// and the deny list alone (no user lookup), so it is what a missing
/// revocation shows in; `/v1/auth/verify` and `/v1/users/me` also refuse
/// tokens of users that no longer exist. (If introspection requires the
/// caller to authenticate, an unauthenticated call is refused: also not
/// active.)
async fn introspects_active(s: &TestServer, token: &str) -> bool {
    let resp = s
        .request(reqwest::Method::POST, "/v1/auth/introspect")
        .form([("token", token)])
        .response()
        .await;
    let ok = resp.status() == 200;
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    ok && body["active"] == true
}

/// Keys the test's cache holds: security entries in process, or every key
/// under the test's prefix in Redis.
async fn cache_keys(s: &TestServer) -> u64 {
    if let Some(f) = s.state().cache.footprint() {
        return f.security_entries;
    }
    #[cfg(feature = "postgres")]
    {
        let url = s.state().config.cache.url.clone();
        return tokio::task::spawn_blocking(move || forge::cache::redis::count_prefix_blocking(&url))
            .await
            .unwrap()
            .unwrap();
    }
    #[allow(unreachable_code)]
    0
}

/// The attack of the review: sign out, then flood `POST /v1/auth/refresh`
/// from a fresh client address per request (IPv4 and many IPv6 /64s behind
/// a trusted proxy). Before the fix every address became an entry of the
/// one size-bounded cache that also held the deny list, so enough of them
/// evicted the revocation and the signed-out token worked again. Now no
/// flood request adds an entry to the security state (the deny list stays
/// put whatever the volume), the rate-limit memory is the fixed sketch, and
/// many addresses inside one IPv6 /64 share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_client_addresses_neither_revives_a_signed_out_token_nor_grows_memory() {
    let s = TestServer::start_with(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let session = s.signup("flood@example.com", PASSWORD).await;
    let token = access(&session).to_string();
    assert_eq!(
        s.as_user(&token)
            .request(reqwest::Method::POST, "/v1/auth/logout")
            .await
            .0,
        204
    );
    assert_eq!(token_status(&s, &token).await, (401, 401));
    let keys_before = cache_keys(&s).await;

    const FLOOD: u32 = 6_000;
    let address = |i: u32| match i % 3 {
        0 => format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        // A fresh /64 per request.
        1 => format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff),
        _ => format!("2a00:{:x}:{:x}:{:x}:1:2:3:4", i >> 16, (i >> 8) & 255, i & 255),
    };
    let statuses: Vec<u16> = futures::stream::iter(0..FLOOD)
        .map(|i| {
            let req = s
                .client()
                .post(s.url("/v1/auth/refresh"))
                .header("x-forwarded-for", address(i))
                .json(&json!({"refresh_token": format!("{i:0>43}")}))
                .send();
            async move { req.await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|&st| st == 401),
        "every flood request is a plain invalid_grant: {:?}",
        statuses.iter().filter(|&&st| st != 401).take(5).collect::<Vec<_>>()
    );

    assert_eq!(
        token_status(&s, &token).await,
        (401, 401),
        "the signed-out token works again after the flood"
    );
    let keys_after = cache_keys(&s).await;
    // Redis holds the refresh budget's sketch (two generations at most).
    assert!(
        keys_after <= keys_before + 2,
        "the flood added cache entries: {keys_before} -> {keys_after}"
    );
    if let Some(f) = s.state().cache.footprint() {
        assert_eq!(f.security_entries, keys_before);
        assert!(
            f.rate_limit_bytes <= 2 * forge::cache::sketch::SKETCH_BYTES as u64,
            "rate-limit memory {} B",
            f.rate_limit_bytes
        );
    }

    // Addresses inside one /64 share one budget (refresh_per_ip: 120/1m).
    let mut limited = 0;
    for i in 0..130u32 {
        let resp = s
            .post("/v1/auth/refresh", json!({"refresh_token": "x"}))
            .header("x-forwarded-for", &format!("2001:db8:ffff:1:{i:x}::9"))
            .response()
            .await;
        if resp.status() == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 10, "one /64 got {limited} refusals in 130 requests");
}

/// A config two servers can share as "before" and "after" a restart: a
/// database file for SQLite (PostgreSQL: the test's schema), and the
/// in-process cache, which a restart empties, so only the database can say
/// what is revoked.
fn restartable(dir: &tempfile::TempDir) -> Config {
    let mut config = TestServer::config();
    if config.database.url.starts_with("sqlite:") {
        config.database.url = format!("sqlite://{}", dir.path().join("forge.db").display());
    }
    config.cache.url = "memory".to_string();
    config
}

/// A deleted user's access token stays dead after a restart: deleting the
/// user cascades away the session rows the deny-list refill used to read,
/// so the tombstone the deletion records is what denies it now.
#[tokio::test]
async fn a_deleted_users_token_stays_inactive_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = restartable(&dir);
    let a = TestServer::start_config(config.clone()).await;
    let session = a.signup("deleted@example.com", PASSWORD).await;
    let token = access(&session).to_string();
    assert_eq!(a.as_user(&token).delete("/v1/users/me").await.0, 204);
    assert_eq!(token_status(&a, &token).await, (401, 401));
    // The restarted process: a fresh in-process cache over the same database.
    let b = TestServer::start_config(config).await;
    assert_eq!(
        token_status(&b, &token).await,
        (401, 401),
        "a deleted user's token works again after a restart"
    );
    assert!(
        !introspects_active(&b, &token).await,
        "a deleted user's token introspects active after a restart"
    );
    b.stop().await;
    a.stop().await;
}

/// The same for every user of a deleted tenant, even once a new tenant
/// takes the old slug.
#[tokio::test]
async fn a_deleted_tenants_tokens_stay_inactive_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = restartable(&dir);
    let a = TestServer::start_config(config.clone()).await;
    let admin = a.admin("root@example.com", PASSWORD).await;
    let admin_token = access(&admin).to_string();
    let create = |s: &TestServer| {
        s.as_user(&admin_token).post(
            "/v1/tenants",
            json!({"slug": "gone", "name": "Gone",
                          "admin": {"email": "boss@gone.example", "password": PASSWORD}}),
        )
    };
    assert_eq!(create(&a).await.0, 201);
    let resp = a
        .post(
            "/v1/auth/login",
            json!({"email": "boss@gone.example", "password": PASSWORD}),
        )
        .tenant("gone")
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    let member: serde_json::Value = resp.json().await.unwrap();
    let token = access(&member).to_string();
    assert_eq!(a.as_user(&admin_token).delete("/v1/tenants/gone").await.0, 204);
    let b = TestServer::start_config(config).await;
    assert_eq!(create(&b).await.0, 201, "the slug is free again");
    assert_eq!(
        token_status(&b, &token).await,
        (401, 401),
        "a deleted tenant's token works in the new tenant of the same slug"
    );
    assert!(
        !introspects_active(&b, &token).await,
        "a deleted tenant's token introspects active after a restart"
    );
    b.stop().await;
    a.stop().await;
}
