//! Webhooks through HTTP, received by a real HTTP endpoint in this process
//! that checks every signature with its own implementation of the Standard
//! Webhooks scheme (checked first against the scheme's published test
//! vector): registration and its secret, events for changes, retries in
//! per-user order, a failing endpoint turned off, secret rotation, replay,
//! the SSRF guard at registration and at delivery, permissions and tenants,
//! and an event committed just before a kill -9.

use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use forge::testing::TestServer;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::binary::{forge, listening};
use crate::support::{login_in, user_with};
use crate::{PASSWORD, access, assert_error};

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// The test's webhook endpoint: records every request and answers with
/// the status it is told to.
#[derive(Clone)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state((got.clone(), status.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { got, status, url }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (10 s at most) until `n` requests arrived; returns them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "only {} of {n} deliveries: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The requests of `kind` so far.
    fn of(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.json()["type"] == kind)
            .collect()
    }
}

type Shared = (Arc<Mutex<Vec<Received>>>, Arc<AtomicU16>);

async fn record(State((got, status)): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    got.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
}

/// The Standard Webhooks check, written here from the specification and
/// independent of forge's signer: which of the header's `v1,` entries is
/// HMAC-SHA256 of `id.timestamp.body` under the decoded `whsec_` secret.
fn signed_by(secret: &str, id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|sig| sig == want)
}

fn verifies(secret: &str, r: &Received) -> bool {
    signed_by(secret, &r.id, &r.timestamp, &r.body, &r.signature)
}

#[test]
fn the_receivers_check_passes_the_published_test_vector() {
    assert!(signed_by(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        r#"{"test": 2432232314}"#,
        "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ));
    assert!(!signed_by(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265331",
        r#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ));
}

async fn open_server() -> TestServer {
    TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.webhooks.allow_private = true;
    })
    .await
}

/// `POST /v1/webhooks`: the status and body, whatever they are.
async fn try_register(s: &TestServer, admin: &str, url: &str, events: &[&str]) -> (reqwest::StatusCode, Value) {
    s.as_user(admin)
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": events, "description": "app"}),
        )
        .await
}

async fn register(s: &TestServer, admin: &str, url: &str, events: &[&str]) -> Value {
    let (status, created) = try_register(s, admin, url, events).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn deliveries(s: &TestServer, admin: &str, webhook: &str) -> Vec<Value> {
    let (status, body) = s
        .as_user(admin)
        .get(&format!("/v1/webhooks/{webhook}/deliveries"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn changes_reach_the_endpoint_signed_and_only_the_events_it_wants() {
    let s = open_server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let hook = Receiver::start().await;

    let created = register(&s, &admin, &hook.url, &["user.*", "session.created"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["events"], json!(["user.*", "session.created"]));
    // The secret is shown once: never in a read.
    let (_, read) = s.as_user(&admin).get(&format!("/v1/webhooks/{id}")).await;
    assert!(
        !read.to_string().contains(&secret) && read.get("secret").is_none(),
        "{read}"
    );
    let (_, list) = s.as_user(&admin).get("/v1/webhooks").await;
    assert!(!list.to_string().contains(&secret), "{list}");
    assert_eq!(list["items"][0]["id"], id.as_str());

    let user = s.signup("ada@example.com", PASSWORD).await;
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    s.login("ada@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(access(&user))
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .await;
    assert!(status.is_success(), "{status}");

    let got = hook.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let got_all = hook.received();
    assert_eq!(got_all.len(), 2, "session.revoked is not subscribed: {got_all:?}");
    for r in &got {
        assert!(verifies(&secret, r), "a signature that does not verify: {r:?}");
        let body = r.json();
        assert_eq!(body["id"], r.id.as_str());
        assert_eq!(body["tenant"]["slug"], "default");
        assert_eq!(body["version"], 1);
        assert!(!r.body.contains(PASSWORD), "a secret in the payload");
        assert!(!r.body.contains("password_hash"));
    }
    let created_event = &hook.of("user.created")[0];
    let body = created_event.json();
    assert_eq!(body["data"]["user"]["id"], user_id.as_str());
    assert_eq!(body["data"]["user"]["email"], "ada@example.com");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(hook.of("session.created").len(), 1);

    let items = deliveries(&s, &admin, &id).await;
    assert_eq!(items.len(), 2, "{items:?}");
    for d in &items {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["last_status_code"], 200);
    }
    // Deleting the endpoint stops everything.
    let (status, _) = s.as_user(&admin).delete(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, 204);
    s.signup("bob@example.com", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hook.received().len(), 2);
}

#[tokio::test]
async fn failures_are_retried_in_order_and_a_dead_endpoint_is_turned_off() {
    let s = open_server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let hook = Receiver::start().await;
    let created = register(&s, &admin, &hook.url, &["*"]).await;
    let id = created["id"].as_str().unwrap().to_owned();

    hook.answer(500);
    let user = s.signup("ada@example.com", PASSWORD).await;
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "user.created");
    // A second event of the same user waits behind the first.
    let (status, _) = s
        .as_user(access(&user))
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .await;
    assert!(status.is_success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.received().len(), 1, "the later event overtook the failed one");
    let items = deliveries(&s, &admin, &id).await;
    let first = items.iter().find(|d| d["type"] == "user.created").unwrap();
    assert_eq!(first["status"], "pending");
    assert_eq!(first["last_status_code"], 500);
    assert_eq!(first["last_error"], "the endpoint answered 500");

    // The retry falls due after 5 s (and at most a tenth more).
    hook.answer(204);
    s.state().clock.advance(6);
    let got = hook.wait_for(3).await;
    assert_eq!(got[1].json()["type"], "user.created");
    assert_eq!(got[1].id, got[0].id, "a retry keeps its webhook-id");
    assert_eq!(got[2].json()["type"], "session.revoked");
    let (_, read) = s.as_user(&admin).get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(
        read["failing_since"],
        Value::Null,
        "a success clears the failure record"
    );

    // Failing for more than webhooks.disable_after (5 days) turns it off.
    hook.answer(503);
    s.signup("bob@example.com", PASSWORD).await;
    hook.wait_for(4).await;
    // The receiver has the request before the dispatcher records its
    // failure: move the clock only once the failure is on record, or it
    // would be recorded as starting on the moved clock.
    let started = Instant::now();
    loop {
        let (_, read) = s.as_user(&admin).get(&format!("/v1/webhooks/{id}")).await;
        if read["failing_since"] != Value::Null {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failure never recorded: {read}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.state().clock.advance(6 * 86_400);
    hook.wait_for(5).await;
    // Access tokens live 15 minutes; sign in again on the moved clock.
    let admin = access(&s.login("root@example.com", PASSWORD).await).to_string();
    let started = Instant::now();
    let read = loop {
        let (_, read) = s.as_user(&admin).get(&format!("/v1/webhooks/{id}")).await;
        if read["enabled"] == false {
            break read;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never disabled: {read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(read["disabled_reason"], "failing");
    let (_, audit) = s.as_user(&admin).get("/v1/audit?event=webhook_disabled").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    // The tenant's administrator is told, with the origin only (the path
    // and query of an endpoint may hold a token).
    let told = loop {
        let told: Vec<Value> = s
            .outbox("root@example.com")
            .await
            .into_iter()
            .filter(|m| m["kind"] == "webhook_disabled")
            .collect();
        if !told.is_empty() {
            break told;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the administrator was not told"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let body = told[0]["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("The webhook endpoint {id} at http://127.0.0.1:")),
        "{body}"
    );
    assert!(body.contains("failed for 5 days without a single success"), "{body}");
    assert!(!body.contains("/hook"), "{body}");
    assert_eq!(told[0]["subject"], "A forge webhook endpoint was turned off");
    // Nothing goes to a disabled endpoint; enabling it resumes in order.
    s.state().clock.advance(86_400);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hook.received().len(), 5);
    let admin = access(&s.login("root@example.com", PASSWORD).await).to_string();
    hook.answer(200);
    let (status, read) = s
        .as_user(&admin)
        .patch(&format!("/v1/webhooks/{id}"), json!({"enabled": true}))
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["disabled_reason"], Value::Null);
    let got = hook.wait_for(6).await;
    assert_eq!(got[5].json()["data"]["user"]["email"], "bob@example.com");
}

#[tokio::test]
async fn a_rotation_signs_with_both_secrets_for_a_day_and_replay_sends_again() {
    let s = open_server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let hook = Receiver::start().await;
    let created = register(&s, &admin, &hook.url, &["user.created"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();

    let (status, rotated) = s
        .as_user(&admin)
        .request(reqwest::Method::POST, &format!("/v1/webhooks/{id}/secret"))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");

    s.signup("ada@example.com", PASSWORD).await;
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].signature.split(' ').count(), 2, "{:?}", got[0]);
    assert!(verifies(&old, &got[0]) && verifies(&new, &got[0]));

    s.state().clock.advance(24 * 3600 + 1);
    s.signup("bob@example.com", PASSWORD).await;
    let got = hook.wait_for(2).await;
    assert_eq!(got[1].signature.split(' ').count(), 1, "{:?}", got[1]);
    assert!(verifies(&new, &got[1]) && !verifies(&old, &got[1]));
    let admin = access(&s.login("root@example.com", PASSWORD).await).to_string();

    // Replay: the same event again, with its id.
    let items = deliveries(&s, &admin, &id).await;
    let last = items[0]["id"].as_str().unwrap();
    let (status, _) = s
        .as_user(&admin)
        .request(
            reqwest::Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{last}/replay"),
        )
        .await;
    assert_eq!(status, 202);
    let got = hook.wait_for(3).await;
    assert_eq!(got[2].id, got[1].id);
    assert!(verifies(&new, &got[2]));
    let (status, body) = s
        .as_user(&admin)
        .request(
            reqwest::Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{id}/replay"),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
}

/// The SSRF guard, on a server with the default `allow_private = false`.
#[tokio::test]
async fn endpoints_inside_the_network_are_refused_at_registration_and_at_delivery() {
    let s = TestServer::start_with(|c| c.rate_limit.enabled = false).await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let hook = Receiver::start().await;
    let port = hook
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let forge_itself = format!("{}/v1/auth/login", s.base_url()).replace("http://", "https://");
    for url in [
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://[::1]/hook".to_owned(),
        "https://[::ffff:10.0.0.1]/hook".to_owned(),
        "https://192.168.0.10/hook".to_owned(),
        forge_itself,
    ] {
        let (status, body) = try_register(&s, &admin, &url, &["*"]).await;
        assert_error(status, &body, 400, "forbidden_target");
    }
    // Plain http is for internal networks only.
    let (status, body) = try_register(&s, &admin, "http://hooks.example.net/x", &["*"]).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = try_register(&s, &admin, "https://hooks.example.net/x", &["user.creatd"]).await;
    assert_error(status, &body, 400, "validation_failed");
    assert!(body["fields"]["events"].is_string(), "{body}");

    // A row that did not come through the API (or rules that changed since)
    // is checked again at delivery: the receiver hears nothing.
    let store = s.state().store.clone();
    let tenant = forge::store::DEFAULT_TENANT_ID;
    let now = s.state().clock.now();
    let audit = forge::store::NewAuditEvent {
        tenant_id: tenant,
        at: now,
        event: forge::domain::AuditEvent::WebhookCreated,
        user_id: None,
        actor_id: None,
        ip: None,
        user_agent: None,
        detail: json!({}),
    };
    let webhook = store
        .create_webhook(
            forge::store::NewWebhook {
                id: uuid::Uuid::now_v7(),
                tenant_id: tenant,
                url: hook.url.clone(),
                events: forge::domain::webhooks::EventFilter::parse(&["*".into()]).unwrap(),
                description: None,
                sealed_secret: vec![1, 2, 3],
                now,
            },
            audit,
        )
        .await
        .unwrap();
    s.signup("ada@example.com", PASSWORD).await;
    let started = Instant::now();
    let delivery = loop {
        let items = deliveries(&s, &admin, &webhook.id.to_string()).await;
        if items
            .first()
            .is_some_and(|d| d["attempts"] == 1 && d["last_error"].is_string())
        {
            break items[0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no attempt: {items:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        delivery["last_error"].as_str().unwrap().starts_with("forbidden_target"),
        "{delivery}"
    );
    assert!(hook.received().is_empty());
}

#[tokio::test]
async fn webhooks_need_their_permissions_and_stay_in_their_tenant() {
    let s = open_server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let hook = Receiver::start().await;
    let created = register(&s, &admin, &hook.url, &["*"]).await;
    let id = created["id"].as_str().unwrap().to_owned();

    let reader = user_with(&s, &admin, "hook-reader", &["webhooks:read"]).await;
    let reader = access(&reader);
    let (status, _) = s.as_user(reader).get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, 200);
    let (status, body) = try_register(&s, reader, &hook.url, &["*"]).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s.as_user(reader).delete(&format!("/v1/webhooks/{id}")).await;
    assert_error(status, &body, 403, "forbidden");

    // Another tenant's administrator sees nothing of it, and its changes
    // reach only its own endpoints.
    let (status, body) = s
        .as_user(&admin)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "admin": {"email": "boss@acme.example", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let boss = login_in(&s, "acme", "boss@acme.example", PASSWORD).await;
    let boss = access(&boss);
    let (status, body) = s.as_user(boss).get(&format!("/v1/webhooks/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (_, list) = s.as_user(boss).get("/v1/webhooks").await;
    assert_eq!(list["items"], json!([]));
    let before = hook.received().len();
    s.signup_in(Some("acme"), "ada@acme.example", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after: Vec<Value> = hook.received()[before..].iter().map(Received::json).collect();
    assert!(
        after.iter().all(|e| e["tenant"]["slug"] == "default"),
        "another tenant's event reached this endpoint: {after:?}"
    );
}

/// An event committed just before a kill -9 is delivered after the restart,
/// once.
#[test]
fn an_event_committed_before_a_kill_9_is_delivered_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("forge.db").display());
    let serve = || {
        let mut child = forge()
            .env("FORGE_DATABASE__URL", &db)
            .env("FORGE_SERVER__BIND", "127.0.0.1:0")
            .env("FORGE_LOG__LEVEL", "warn")
            .env("FORGE_RATE_LIMIT__ENABLED", "false")
            .env("FORGE_WEBHOOKS__ALLOW_PRIVATE", "true")
            .env("FORGE_ADMIN_EMAIL", "root@example.com")
            .env("FORGE_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = listening(&mut child, String::new);
        (child, base)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hook = Receiver::start().await;
        let client = reqwest::Client::new();
        let (mut server, base) = serve();
        let login: Value = client
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"email": "root@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let resp = client
            .post(format!("{base}/v1/webhooks"))
            .bearer_auth(access(&login))
            .json(&json!({"url": hook.url, "events": ["user.created"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let resp = client
            .post(format!("{base}/v1/auth/signup"))
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        // SIGKILL at once: the worker polls every second, so the event is
        // almost always still in the database.
        server.kill().unwrap();
        server.wait().unwrap();
        let before = hook.received().len();

        let (mut server, _) = serve();
        let got = hook.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill().unwrap();
        server.wait().unwrap();
        let got_all = hook.received();
        assert_eq!(
            got_all.len(),
            1,
            "delivered {} times (before the kill: {before})",
            got_all.len()
        );
        assert_eq!(got[0].json()["data"]["user"]["email"], "ada@example.com");
    });
}
