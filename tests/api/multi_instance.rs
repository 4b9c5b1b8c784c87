//! Several forge instances over one PostgreSQL schema and one Redis prefix
//! (compiled with the `postgres` feature only). Two servers started from the
//! same [`TestServer::config`] share the database and the cache, as two
//! instances behind a load balancer do; every check acts on one and looks at
//! the other right away, with no sleep in between: "at once" means the very
//! next request.
//!
//! These tests need `FORGE_TEST_DATABASE_URL` and `FORGE_TEST_CACHE_URL`
//! and fail (not skip) without them: a build with the feature on is meant
//! to be tested against the real backends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use forge::clock::Clock;
use forge::config::{Config, NotifyChannel};
use forge::notify::{MessageKind, Recipient};
use forge::secret::Secret;
use forge::store::{DEFAULT_TENANT_ID, OutboxStatus};
use forge::testing::{TestServer, shared};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{make_role, provision};
use crate::{PASSWORD, access, assert_error, parts, refresh};

/// A config whose servers share one fresh schema and key prefix.
fn shared_config() -> Config {
    assert!(
        shared::configured(),
        "the multi-instance tests need {} and {} (a PostgreSQL server and a Redis)",
        shared::DATABASE_ENV,
        shared::CACHE_ENV
    );
    let config = TestServer::config();
    assert!(config.database.url.starts_with("postgres"), "{}", config.database.url);
    assert!(config.cache.url.starts_with("redis"), "{}", config.cache.url);
    config
}

/// Two instances over the same database and cache.
async fn pair(configure: impl Fn(&mut Config)) -> (TestServer, TestServer) {
    let mut config = shared_config();
    configure(&mut config);
    let a = TestServer::start_config(config.clone()).await;
    let b = TestServer::start_config(config).await;
    (a, b)
}

async fn post(s: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    s.post(path, &body).await
}

async fn verify(s: &TestServer, token: &str, query: &str) -> StatusCode {
    s.as_user(token).get(&format!("/v1/auth/verify{query}")).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_on_one_instance_and_log_in_on_the_other() {
    let (a, b) = pair(|_| {}).await;
    let signed_up = a.signup("ann@example.com", PASSWORD).await;
    let logged_in = b.login("ann@example.com", PASSWORD).await;
    assert_eq!(logged_in["user"]["id"], signed_up["user"]["id"]);
    // Tokens minted by one instance are accepted by the other: one keyring.
    assert_eq!(verify(&a, access(&logged_in), "").await, 200);
    assert_eq!(verify(&b, access(&signed_up), "").await, 200);
    // The email is taken for both.
    let (status, body) = post(
        &b,
        "/v1/auth/signup",
        json!({"email": "ann@example.com", "password": PASSWORD}),
    )
    .await;
    assert_error(status, &body, 409, "email_taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reuse_on_the_other_instance_revokes_the_session() {
    // No grace window: presenting a rotated token again is reuse at once.
    let (a, b) = pair(|c| c.jwt.refresh_reuse_grace = Duration::ZERO).await;
    let first = a.signup("ben@example.com", PASSWORD).await;
    let (status, second) = post(&a, "/v1/auth/refresh", json!({"refresh_token": refresh(&first)})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(verify(&b, access(&second), "").await, 200);

    let (status, body) = post(&b, "/v1/auth/refresh", json!({"refresh_token": refresh(&first)})).await;
    assert_error(status, &body, 401, "invalid_grant");
    // The whole session is gone, on both instances, for both tokens.
    let (status, body) = post(&a, "/v1/auth/refresh", json!({"refresh_token": refresh(&second)})).await;
    assert_error(status, &body, 401, "invalid_grant");
    assert_eq!(verify(&a, access(&second), "").await, 401);
    assert_eq!(verify(&b, access(&second), "").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_fails_verify_on_the_other_at_once() {
    let (a, b) = pair(|_| {}).await;
    let session = a.signup("cy@example.com", PASSWORD).await;
    assert_eq!(
        verify(&b, access(&session), "").await,
        200,
        "and now cached as verified on b"
    );
    assert_eq!(
        a.as_user(access(&session))
            .request(reqwest::Method::POST, "/v1/auth/logout")
            .await
            .0,
        204
    );
    assert_eq!(verify(&b, access(&session), "").await, 401);
    assert_eq!(b.as_user(access(&session)).get("/v1/users/me").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sent_by_one_instance_verifies_on_the_other_and_tries_count_on_both() {
    let (a, b) = pair(|_| {}).await;
    // Requested on a, proved on b.
    let (status, _) = post(&a, "/v1/auth/otp", json!({"phone": "+14155550170"})).await;
    assert_eq!(status, 202);
    let code = a.last_code("+14155550170").await;
    let (status, session) = post(
        &b,
        "/v1/auth/otp/verify",
        json!({"phone": "+14155550170", "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    // Single use across instances too.
    let (status, body) = post(
        &a,
        "/v1/auth/otp/verify",
        json!({"phone": "+14155550170", "code": code}),
    )
    .await;
    assert_error(status, &body, 401, "invalid_otp");
    // The resend cooldown is shared.
    let (status, _) = post(&b, "/v1/auth/otp", json!({"phone": "+14155550170"})).await;
    assert_eq!(status, 429, "inside the cooldown started on a");

    // Three wrong tries (otp.max_attempts), alternating instances, burn the code.
    let (status, _) = post(&a, "/v1/auth/otp", json!({"email": "dee@example.com"})).await;
    assert_eq!(status, 202);
    let code = a.last_code("dee@example.com").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = post(
        &a,
        "/v1/auth/otp/verify",
        json!({"email": "dee@example.com", "code": wrong}),
    )
    .await;
    assert_error(status, &body, 401, "invalid_otp");
    let (status, body) = post(
        &b,
        "/v1/auth/otp/verify",
        json!({"email": "dee@example.com", "code": wrong}),
    )
    .await;
    assert_error(status, &body, 401, "invalid_otp");
    let (status, body) = post(
        &a,
        "/v1/auth/otp/verify",
        json!({"email": "dee@example.com", "code": wrong}),
    )
    .await;
    assert_error(status, &body, 429, "rate_limited");
    let (status, _) = post(
        &b,
        "/v1/auth/otp/verify",
        json!({"email": "dee@example.com", "code": code}),
    )
    .await;
    assert_eq!(status, 429, "the right code is burned on every instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rate_limit_budget_across_instances() {
    let (a, b) = pair(|c| c.rate_limit.login_per_ip = "4/1m".parse().unwrap()).await;
    a.signup("eve@example.com", PASSWORD).await;
    // Four password sign-ins from this client: two on each instance.
    for (i, s) in [&a, &b, &a, &b].into_iter().enumerate() {
        let (status, body) = post(
            s,
            "/v1/auth/login",
            json!({"email": "eve@example.com", "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 200, "attempt {i}: {body}");
    }
    // The fifth is over the budget whichever instance gets it.
    for s in [&a, &b] {
        let resp = s
            .post(
                "/v1/auth/login",
                json!({"email": "eve@example.com", "password": PASSWORD}),
            )
            .response()
            .await;
        assert_eq!(resp.status(), 429);
        assert!(resp.headers().contains_key("retry-after"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_or_removing_a_role_on_one_instance_counts_on_the_other_at_once() {
    let (a, b) = pair(|c| c.rate_limit.enabled = false).await;
    let admin = a.admin("root@example.com", PASSWORD).await;
    let admin = access(&admin);
    make_role(&a, admin, "auditor", &["audit:read"]).await;
    let id = provision(&a, admin, "fay@example.com", &["auditor"]).await;
    let fay = b.login("fay@example.com", PASSWORD).await;
    let fay = access(&fay);

    // b answers from its own state; warm it before the change.
    assert_eq!(verify(&b, fay, "?permission=audit:read").await, 200);
    assert_eq!(verify(&b, fay, "?role=auditor").await, 200);
    let (status, _) = b.as_user(fay).get("/v1/audit").await;
    assert_eq!(status, 200);

    let (status, body) = a.as_user(admin).delete(&format!("/v1/users/{id}/roles/auditor")).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(verify(&b, fay, "?permission=audit:read").await, 403);
    assert_eq!(verify(&b, fay, "?role=auditor").await, 403);
    let (status, body) = b.as_user(fay).get("/v1/audit").await;
    assert_error(status, &body, 403, "forbidden");

    // Back again, then the role's permissions change on a.
    let (status, body) = a
        .as_user(admin)
        .request(reqwest::Method::PUT, &format!("/v1/users/{id}/roles/auditor"))
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(verify(&b, fay, "?permission=audit:read").await, 200);
    let (status, body) = a
        .as_user(admin)
        .put("/v1/roles/auditor", json!({"permissions": ["users:read"]}))
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(verify(&b, fay, "?permission=audit:read").await, 403);
    assert_eq!(verify(&b, fay, "?permission=users:read").await, 200);

    // Disabled on a: refused on b from the next request.
    let (status, body) = a
        .as_user(admin)
        .patch(&format!("/v1/users/{id}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(verify(&b, fay, "").await, 401);
    let (status, body) = post(
        &b,
        "/v1/auth/login",
        json!({"email": "fay@example.com", "password": PASSWORD}),
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_and_recreated_on_one_instance_is_the_new_one_on_the_other() {
    let (a, b) = pair(|c| c.rate_limit.enabled = false).await;
    let root = a.admin("root@example.com", PASSWORD).await;
    let root = access(&root);
    let create = |s: &'static str| json!({"slug": s, "name": "Acme", "admin": {"email": "boss@acme.test", "password": PASSWORD}});
    let (status, body) = a.as_user(root).post("/v1/tenants", create("acme")).await;
    assert_eq!(status, 201, "{body}");
    // b resolves (and, alone, would cache) the tenant.
    let first = crate::support::login_in(&b, "acme", "boss@acme.test", PASSWORD).await;
    let (status, body) = a.as_user(root).delete("/v1/tenants/acme").await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(verify(&b, access(&first), "?tenant=acme").await, 401);
    let (status, body) = a.as_user(root).post("/v1/tenants", create("acme")).await;
    assert_eq!(status, 201, "{body}");
    let second = crate::support::login_in(&b, "acme", "boss@acme.test", PASSWORD).await;
    assert_ne!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(verify(&b, access(&second), "?tenant=acme").await, 200);
}

// ---------------------------------------------------------------- outbox

const WEBHOOK_SECRET: &str = "multi-instance-webhook-secret";

/// A webhook receiver counting deliveries per message id.
async fn receiver() -> (SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counter = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let counter = counter.clone();
            async move {
                let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = payload["id"].as_str().unwrap_or("?").to_string();
                *counter.lock().unwrap().entry(id).or_default() += 1;
                StatusCode::OK
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_messages_are_delivered_exactly_once_by_two_workers() {
    let (hook, seen) = receiver().await;
    let (a, b) = pair(|c| {
        c.notify.channel = NotifyChannel::Webhook;
        c.notify.webhook.url = format!("http://{hook}/hook");
        c.notify.webhook.secret = Some(Secret::new(WEBHOOK_SECRET));
    })
    .await;
    // Ten queued through each instance; both workers run and poll.
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.state()
            .notifier
            .send(
                DEFAULT_TENANT_ID,
                Recipient::Phone(format!("+141555502{i:02}")),
                MessageKind::Otp,
                &Secret::new("123456"),
                Duration::from_secs(300),
            )
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = a
            .state()
            .store
            .list(DEFAULT_TENANT_ID, Some(OutboxStatus::Delivered), 100, None)
            .await
            .unwrap();
        if delivered.len() == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of 20 delivered", delivered.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a duplicate, if any, time to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "a message was sent twice: {seen:?}");
    let all = b.state().store.list(DEFAULT_TENANT_ID, None, 100, None).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(
        all.iter()
            .all(|m| m.status == OutboxStatus::Delivered && m.body.is_none() && m.attempts == 1)
    );
}

// ---------------------------------------------------------------- outages

/// A TCP proxy to Redis that the test can cut and restore, on a fixed port.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the port and every connection through it.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens on the same port again.
    async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot listen on {} again: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
    }
}

/// `host:port` of a `redis://` URL.
fn redis_address(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    }
}

async fn ready(s: &TestServer) -> (StatusCode, Value) {
    s.get("/health/ready").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_mid_run_gives_503_and_service_comes_back() {
    let mut config = shared_config();
    let proxy = Proxy::start(redis_address(&config.cache.url)).await;
    let prefix = config
        .cache
        .url
        .split_once("prefix=")
        .map(|(_, p)| p.to_string())
        .unwrap();
    config.cache.url = format!("redis://{}/?prefix={prefix}", proxy.addr);
    let s = TestServer::start_config(config).await;
    let session = s.signup("gus@example.com", PASSWORD).await;
    assert_eq!(ready(&s).await.0, 200);

    proxy.cut();
    let (status, body) = ready(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["cache"], "unavailable", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    // Requests that need the cache answer 503 with the one error shape,
    // quickly, and again and again while it is down.
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = post(
            &s,
            "/v1/auth/login",
            json!({"email": "gus@example.com", "password": PASSWORD}),
        )
        .await;
        assert_error(status, &body, 503, "unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let resp = s.as_user(access(&session)).get("/v1/users/me").response().await;
        let (status, body) = parts(resp).await;
        assert_error(status, &body, 503, "unavailable");
    }
    // What needs no cache still works.
    assert_eq!(s.get("/health").await.0, 200);

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready(&s).await;
        if status == 200 {
            assert_eq!(body["cache"], "ok");
            break;
        }
        assert!(Instant::now() < deadline, "the cache did not come back: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.login("gus@example.com", PASSWORD).await;
    assert_eq!(s.as_user(access(&session)).get("/v1/users/me").await.0, 200);
    s.stop().await;
}

/// `host:port` of a `postgres://` URL.
fn postgres_address(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_mid_run_gives_503_and_service_comes_back() {
    let mut config = shared_config();
    let address = postgres_address(&config.database.url);
    let proxy = Proxy::start(address.clone()).await;
    config.database.url = config.database.url.replacen(&address, &proxy.addr.to_string(), 1);
    let s = TestServer::start_config(config).await;
    let session = s.signup("hal@example.com", PASSWORD).await;
    assert_eq!(ready(&s).await.0, 200);

    proxy.cut();
    let (status, body) = ready(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unavailable", "{body}");
    assert_eq!(body["cache"], "ok", "{body}");
    let (status, body) = post(
        &s,
        "/v1/auth/login",
        json!({"email": "hal@example.com", "password": PASSWORD}),
    )
    .await;
    assert_error(status, &body, 503, "unavailable");
    // Verifying a token needs no database (the tenant aside, which it reads):
    // whatever it answers, it is a clean answer, never a dropped connection.
    let status = verify(&s, access(&session), "").await;
    assert!(status == 200 || status == 503, "{status}");

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = ready(&s).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the database did not come back: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.login("hal@example.com", PASSWORD).await;
    assert_eq!(verify(&s, access(&session), "").await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_or_cache_at_start_is_retried_then_reported_in_one_line() {
    let base = shared_config();
    for (what, configure) in [
        (
            "PostgreSQL",
            Box::new(|c: &mut Config| c.database.url = "postgres://postgres@127.0.0.1:1/postgres".into())
                as Box<dyn Fn(&mut Config)>,
        ),
        (
            "Redis",
            Box::new(|c: &mut Config| {
                c.database.url = "sqlite::memory:".into();
                c.cache.url = "redis://127.0.0.1:1".into();
            }),
        ),
    ] {
        let mut config = base.clone();
        configure(&mut config);
        let started = Instant::now();
        let result = forge::app::build_state_with_patience(config, Clock::system(), Duration::from_millis(1200)).await;
        let Err(err) = result else {
            panic!("{what} at a closed port was accepted");
        };
        let message = format!("{err:#}");
        assert!(message.contains(&format!("cannot reach {what}")), "{message}");
        assert!(message.contains("gave up after"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(
            !message.contains("postgres@"),
            "the URL's user stays out of it: {message}"
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1000), "it retried for a while: {took:?}");
        assert!(took < Duration::from_secs(15), "then gave up: {took:?}");
    }
}

// ---------------------------------------------------------------- the adapter

/// The Redis adapter's operations, atomic under concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_cache_is_atomic() {
    use forge::cache::redis::{RedisCache, purge_prefix_blocking};
    use forge::cache::{Cache, CodeCheck, RateBucket};
    let url = shared_config().cache.url;
    let c = Arc::new(RedisCache::open(&url).await.unwrap());
    assert!(c.prefix().starts_with(shared::NAME_PREFIX));

    c.set("a", b"1", Duration::from_millis(80)).await.unwrap();
    assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(c.get("a").await.unwrap(), None, "expired");

    assert!(c.set_if_absent("b", b"x", Duration::from_secs(5)).await.unwrap());
    assert!(!c.set_if_absent("b", b"y", Duration::from_secs(5)).await.unwrap());
    assert!(c.any_exists(&["none", "b"]).await.unwrap());
    assert!(c.any_exists(&["b", "none"]).await.unwrap());
    c.delete("b").await.unwrap();
    assert_eq!(c.get("b").await.unwrap(), None);
    assert!(
        !c.any_exists(&["none", "b", "a"]).await.unwrap(),
        "deleted, expired, never set"
    );

    // A single-use value goes to exactly one of many concurrent takers.
    for round in 0..5 {
        c.set("once", b"state", Duration::from_secs(60)).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move { c.take("once").await.unwrap() }));
        }
        let mut taken = Vec::new();
        for t in tasks {
            taken.extend(t.await.unwrap());
        }
        assert_eq!(taken, [b"state".to_vec()], "round {round}");
    }
    assert_eq!(c.take("never-set").await.unwrap(), None);

    // Rate-limit counters: concurrent hits are never lost.
    let digest = [7u8; 32];
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.count(RateBucket::LoginIp, &digest, Duration::from_secs(3600), true)
                .await
                .unwrap()
                .count
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    let peek = c
        .count(RateBucket::LoginIp, &digest, Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert_eq!(peek.count, 100);
    assert!((1..=3600).contains(&peek.retry_after_secs));

    // Only one of many concurrent consumers takes a code.
    c.put_code("code", b"digest", Duration::from_secs(60)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.try_code("code", b"digest", 3, Duration::from_secs(60)).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap() == CodeCheck::Valid);
    }
    assert_eq!(won, 1);
    assert_eq!(
        c.get("code").await.unwrap(),
        None,
        "consumed, and wrong guesses stored nothing"
    );

    // Many concurrent wrong guesses get `max_attempts` tries between them.
    c.put_code("code", b"right", Duration::from_secs(60)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let guess = format!("wrong{i}");
            c.try_code("code", guess.as_bytes(), 3, Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut invalid = 0;
    for t in tasks {
        invalid += usize::from(t.await.unwrap() == CodeCheck::Invalid);
    }
    assert_eq!(invalid, 2, "the third wrong try burns the code");
    assert_eq!(
        c.try_code("code", b"right", 3, Duration::from_secs(60)).await.unwrap(),
        CodeCheck::Burned
    );
    c.ping().await.unwrap();

    let purged = tokio::task::spawn_blocking(move || purge_prefix_blocking(&url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(purged, 2, "the sketch and the burned code were left");
}
