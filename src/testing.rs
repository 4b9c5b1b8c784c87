//! A test harness for apps that authenticate against forge, and for forge's
//! own integration tests.
//!
//! ```no_run
//! # async fn demo() {
//! let server = forge::testing::TestServer::start().await;
//! let session = server.signup("alice@example.com", "correct horse battery staple").await;
//! let token = session["access_token"].as_str().unwrap();
//! let (status, me) = server.as_user(token).get("/v1/users/me").await;
//! assert_eq!(status, 200);
//! assert_eq!(me["email"], "alice@example.com");
//! # }
//! ```
//!
//! Requests read like the API: [`TestServer::get`], [`TestServer::post`]
//! and the other verbs (or [`TestServer::as_user`] to send a bearer token)
//! give a [`Call`] that, awaited, answers the status and the JSON body.
//! Tests that need headers, cookies or raw bodies take
//! [`Call::response`] or [`TestServer::client`] instead.
//!
//! Each [`TestServer`] is the real router on `127.0.0.1:0` with its own
//! in-memory SQLite database, in-process cache and signing keys: tests
//! running in parallel never share state. Start-up takes milliseconds.
//! Messages go to the `memory` channel and `GET /v1/dev/outbox` is on, so a
//! test can read the codes forge sends. Argon2 uses small parameters so
//! sign-ups are fast; everything else is the production configuration.
//!
//! The helpers panic on failure: they are meant for tests.
//!
//! With the `postgres` feature and `FORGE_TEST_DATABASE_URL` /
//! `FORGE_TEST_CACHE_URL` set (e.g. `postgres://postgres@127.0.0.1:5432/postgres`
//! and `redis://127.0.0.1:6379`), [`TestServer::config`] points each server
//! at a fresh PostgreSQL schema (`forge_t_<uuid>`, through
//! `options=-csearch_path=...` in the URL) and a fresh Redis key prefix
//! instead, so the same tests run against the scale-out backends. Servers
//! started from one such config share the schema and prefix (that is how
//! the multi-instance tests run two servers over one database); when the
//! last of them is stopped or dropped, the schema is dropped and the keys
//! are deleted.

// The harness is test code shipped in the library (apps test against it):
// a server that cannot start or a response a test did not expect must fail
// that test on the spot, so unwrapping is the point here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod passkey;
pub mod upstream;

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::Application;
use crate::clock::Clock;
use crate::config::Config;
use crate::state::AppState;

pub struct TestServer {
    base_url: String,
    state: AppState,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The schema and key prefix this server uses, shared with the other
    /// servers of the same config; cleaned up when the last one goes.
    #[cfg(feature = "postgres")]
    backing: Option<std::sync::Arc<shared::Backing>>,
}

impl TestServer {
    /// The configuration `start` uses: in-memory store, port 0, memory
    /// notifier with the dev outbox, fast argon2.
    ///
    /// With the `postgres` feature and the `FORGE_TEST_*_URL` variables set,
    /// a fresh PostgreSQL schema and Redis key prefix instead (see the module
    /// documentation); each call gives new ones.
    pub fn config() -> Config {
        let mut config = Config::for_tests();
        config.password.argon2_memory_kib = 1024;
        config.password.argon2_iterations = 1;
        #[cfg(feature = "postgres")]
        shared::isolate(&mut config);
        config
    }

    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with [`TestServer::config`] changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Self::config();
        configure(&mut config);
        Self::start_config(config).await
    }

    pub async fn start_config(config: Config) -> Self {
        Self::start_with_routes(config, axum::Router::new()).await
    }

    /// Starts with `config` and `routes` merged into forge's router (see
    /// [`Application::with_routes`]): a test can mount a handler of its own,
    /// such as one that panics, behind all of forge's layers.
    pub async fn start_with_routes(config: Config, routes: axum::Router<AppState>) -> Self {
        if std::env::var_os("FORGE_TEST_LOG").is_some() {
            crate::telemetry::init(&config.log);
        }
        #[cfg(feature = "postgres")]
        let backing = shared::claim(&config).await;
        let now = Clock::system().now();
        let app = Application::build_with_clock(config, Clock::manual(now))
            .await
            .unwrap_or_else(|e| panic!("forge test server failed to start: {e:#}"))
            .with_routes(routes);
        let base_url = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until_stopped(async {
                    let _ = rx.await;
                })
                .await;
        });
        // The RS256 keys are made once the server listens; tests read the
        // stored keys directly, so they start from the complete set.
        state.keys.complete().await;
        Self {
            base_url,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            #[cfg(feature = "postgres")]
            backing,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A request to `path` (e.g. `/v1/users/me`) without a body; awaiting
    /// it answers the status and the JSON body.
    pub fn request(&self, method: Method, path: &str) -> Call {
        Call {
            builder: self.client.request(method, self.url(path)),
            path: path.to_string(),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// A `POST` with `body` as JSON; for one without a body, use
    /// [`TestServer::request`].
    pub fn post(&self, path: &str, body: impl Serialize) -> Call {
        self.request(Method::POST, path).json(body)
    }

    pub fn put(&self, path: &str, body: impl Serialize) -> Call {
        self.request(Method::PUT, path).json(body)
    }

    pub fn patch(&self, path: &str, body: impl Serialize) -> Call {
        self.request(Method::PATCH, path).json(body)
    }

    /// The same requests, each with `Authorization: Bearer <token>`: what a
    /// signed-in client sends.
    pub fn as_user(&self, token: impl Into<String>) -> AsUser<'_> {
        AsUser {
            server: self,
            token: token.into(),
        }
    }

    /// The server's state: its store, cache, config and keys.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The server's clock; `advance` moves it forward.
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Signs up in the default tenant and returns the token response.
    pub async fn signup(&self, email: &str, password: &str) -> Value {
        self.signup_in(None, email, password).await
    }

    pub async fn signup_in(&self, tenant: Option<&str>, email: &str, password: &str) -> Value {
        let mut call = self.post("/v1/auth/signup", json!({ "email": email, "password": password }));
        if let Some(t) = tenant {
            call = call.tenant(t);
        }
        let (status, body) = call.await;
        assert_eq!(status, 201, "signup of {email} failed: {body}");
        body
    }

    /// Proves the email of a signed-in user with the code forge sends, then
    /// refreshes the session: the returned token response asserts the
    /// verified address (only proven identifiers go into tokens).
    pub async fn verify_email(&self, session: &Value) -> Value {
        let access = session["access_token"].as_str().expect("access_token");
        let email = session["user"]["email"].as_str().expect("the user has an email");
        let user = self.as_user(access);
        let (status, _) = user.request(Method::POST, "/v1/auth/email/verify/request").await;
        assert_eq!(status, 202, "verification request for {email}");
        let code = self.last_code(email).await;
        let (status, _) = user.post("/v1/auth/email/verify", json!({ "code": code })).await;
        assert_eq!(status, 200, "verification of {email}");
        let (status, body) = self
            .post("/v1/auth/refresh", json!({ "refresh_token": session["refresh_token"] }))
            .tenant(session["user"]["tenant"].as_str().unwrap_or("default"))
            .await;
        assert_eq!(status, 200, "refresh after verifying {email}: {body}");
        body
    }

    /// Signs up in the default tenant, proves the email and returns a token
    /// response that asserts it.
    pub async fn signup_verified(&self, email: &str, password: &str) -> Value {
        let session = self.signup(email, password).await;
        self.verify_email(&session).await
    }

    /// Signs in with a password and returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post("/v1/auth/login", json!({ "email": email, "password": password }))
            .await;
        assert_eq!(status, 200, "login of {email} failed: {body}");
        body
    }

    /// Creates an administrator of the default tenant and signs them in.
    pub async fn admin(&self, email: &str, password: &str) -> Value {
        let email_parsed = crate::domain::Email::parse(email).expect("admin email");
        self.state
            .accounts
            .create_admin(
                &crate::domain::TenantSlug::default_tenant(),
                email_parsed,
                crate::secret::Secret::new(password),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot create admin {email}: {e}"));
        self.login(email, password).await
    }

    /// The messages sent to `to` (an email or phone), newest first, as
    /// `GET /v1/dev/outbox` shows them.
    pub async fn outbox(&self, to: &str) -> Vec<Value> {
        let resp = self
            .client
            .get(self.url("/v1/dev/outbox"))
            .query(&[("to", to)])
            .send()
            .await
            .expect("outbox request");
        assert_eq!(resp.status(), 200, "the dev outbox is off");
        resp.json().await.expect("outbox body")
    }

    /// The code of the newest message sent to `to`; panics if there is none.
    pub async fn last_code(&self, to: &str) -> String {
        let messages = self.outbox(to).await;
        let first = messages
            .first()
            .unwrap_or_else(|| panic!("no message was sent to {to}"));
        first["code"].as_str().expect("code").to_string()
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // The cleanup (if this was the last server of its schema) blocks on
        // the network: run it off the async workers.
        #[cfg(feature = "postgres")]
        if let Some(backing) = self.backing.take() {
            let _ = tokio::task::spawn_blocking(move || drop(backing)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One request of a test, built like a `reqwest` request. Awaiting it
/// answers `(status, JSON body)`, the body `Value::Null` when it is not
/// JSON, which is all most tests look at; [`Call::response`] gives the
/// whole response to those that read headers.
#[must_use = "a request does nothing until it is awaited"]
pub struct Call {
    builder: reqwest::RequestBuilder,
    /// For the panic message when the server cannot be reached.
    path: String,
}

impl Call {
    pub fn bearer(self, token: impl std::fmt::Display) -> Self {
        Self {
            builder: self.builder.bearer_auth(token),
            ..self
        }
    }

    /// Names the tenant with `X-Forge-Tenant`, as operators and clients of
    /// a tenant without its own host do.
    pub fn tenant(self, slug: &str) -> Self {
        self.header("x-forge-tenant", slug)
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        Self {
            builder: self.builder.header(name, value),
            ..self
        }
    }

    /// Sends `body` as JSON (it replaces any body set before).
    pub fn json(self, body: impl Serialize) -> Self {
        Self {
            builder: self.builder.json(&body),
            ..self
        }
    }

    /// Sends `form` as `application/x-www-form-urlencoded`.
    pub fn form(self, form: impl Serialize) -> Self {
        Self {
            builder: self.builder.form(&form),
            ..self
        }
    }

    /// Sends the request and returns the whole response.
    pub async fn response(self) -> reqwest::Response {
        let path = self.path;
        self.builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"))
    }
}

impl IntoFuture for Call {
    type Output = (StatusCode, Value);
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let resp = self.response().await;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }
}

/// [`TestServer`]'s requests as one signed-in user: each carries the
/// user's bearer token (see [`TestServer::as_user`]).
#[derive(Clone)]
pub struct AsUser<'a> {
    server: &'a TestServer,
    token: String,
}

impl AsUser<'_> {
    pub fn request(&self, method: Method, path: &str) -> Call {
        self.server.request(method, path).bearer(&self.token)
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    pub fn post(&self, path: &str, body: impl Serialize) -> Call {
        self.request(Method::POST, path).json(body)
    }

    pub fn put(&self, path: &str, body: impl Serialize) -> Call {
        self.request(Method::PUT, path).json(body)
    }

    pub fn patch(&self, path: &str, body: impl Serialize) -> Call {
        self.request(Method::PATCH, path).json(body)
    }
}

/// The tests' shared PostgreSQL and Redis: a fresh schema and key prefix per
/// [`TestServer::config`], created when the first server of that config
/// starts and removed when the last one is gone.
#[cfg(feature = "postgres")]
pub mod shared {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, Weak};

    use crate::config::Config;

    /// The PostgreSQL server the tests may use, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
    pub const DATABASE_ENV: &str = "FORGE_TEST_DATABASE_URL";
    /// The Redis the tests may use, e.g. `redis://127.0.0.1:6379`.
    pub const CACHE_ENV: &str = "FORGE_TEST_CACHE_URL";
    /// Every test schema and key prefix starts with this.
    pub const NAME_PREFIX: &str = "forge_t_";
    const SEARCH_PATH: &str = "options=-csearch_path%3D";

    fn env(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    /// Whether the tests were given a PostgreSQL server and a Redis.
    pub fn configured() -> bool {
        env(DATABASE_ENV).is_some() && env(CACHE_ENV).is_some()
    }

    fn with_param(url: &str, param: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{param}")
    }

    /// Points `config` at a fresh schema and key prefix, for each backend the
    /// environment names.
    pub fn isolate(config: &mut Config) {
        let name = format!("{NAME_PREFIX}{}", uuid::Uuid::new_v4().simple());
        if let Some(base) = env(DATABASE_ENV) {
            config.database.url = with_param(&base, &format!("{SEARCH_PATH}{name}"));
            // Tests run in parallel: keep each server's pool small.
            config.database.pool_size = 4;
        }
        if let Some(base) = env(CACHE_ENV) {
            config.cache.url = with_param(&base, &format!("prefix={name}:"));
        }
    }

    /// The test schema a database URL names, if it is one of ours.
    fn schema_of(url: &str) -> Option<(String, String)> {
        let at = url.find(SEARCH_PATH)?;
        let name: String = url[at + SEARCH_PATH.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.starts_with(NAME_PREFIX) {
            return None;
        }
        let base = url[..at].trim_end_matches(['?', '&']).to_string();
        Some((base, name))
    }

    /// What one family of servers uses; dropping it removes both.
    pub struct Backing {
        /// (server URL without the search path, schema name)
        schema: Option<(String, String)>,
        /// The cache URL with its `prefix=` parameter.
        cache_url: Option<String>,
    }

    impl Drop for Backing {
        fn drop(&mut self) {
            let schema = self.schema.take();
            let cache_url = self.cache_url.take();
            // The sync clients must not run on an async worker: a thread of
            // their own, waited for so the test leaves nothing behind.
            let cleanup = std::thread::spawn(move || {
                if let Some((base, name)) = schema
                    && let Err(e) = drop_schema(&base, &name)
                {
                    eprintln!("forge test harness: cannot drop schema {name}: {e:#}");
                }
                if let Some(url) = cache_url
                    && let Err(e) = crate::cache::redis::purge_prefix_blocking(&url)
                {
                    eprintln!("forge test harness: cannot delete test keys: {e:#}");
                }
            });
            let _ = cleanup.join();
        }
    }

    fn connect(base: &str) -> anyhow::Result<postgres::Client> {
        let mut config: postgres::Config = base.parse()?;
        config.connect_timeout(std::time::Duration::from_secs(5));
        Ok(config.connect(postgres::NoTls)?)
    }

    fn create_schema(base: &str, name: &str) -> anyhow::Result<()> {
        let mut client = connect(base)?;
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{name}\""))?;
        Ok(())
    }

    fn drop_schema(base: &str, name: &str) -> anyhow::Result<()> {
        let mut client = connect(base)?;
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))?;
        Ok(())
    }

    fn live() -> &'static Mutex<HashMap<String, Weak<Backing>>> {
        static LIVE: OnceLock<Mutex<HashMap<String, Weak<Backing>>>> = OnceLock::new();
        LIVE.get_or_init(Default::default)
    }

    /// Creates the config's schema if needed and returns the handle every
    /// server of the config shares; `None` when it names no test backend.
    pub async fn claim(config: &Config) -> Option<Arc<Backing>> {
        let schema = schema_of(&config.database.url);
        let cache_url = config
            .cache
            .url
            .contains(&format!("prefix={NAME_PREFIX}"))
            .then(|| config.cache.url.clone());
        let key = match (&schema, &cache_url) {
            (Some((_, name)), _) => name.clone(),
            (None, Some(url)) => url.clone(),
            (None, None) => return None,
        };
        if let Some((base, name)) = schema.clone() {
            tokio::task::spawn_blocking(move || create_schema(&base, &name))
                .await
                .expect("schema task")
                .unwrap_or_else(|e| panic!("cannot create the test schema: {e:#}"));
        }
        let mut live = live().lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = live.get(&key).and_then(Weak::upgrade) {
            return Some(existing);
        }
        let backing = Arc::new(Backing { schema, cache_url });
        live.insert(key, Arc::downgrade(&backing));
        Some(backing)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_the_schema_in_the_url() {
            assert_eq!(
                schema_of("postgres://p@h:5432/db?options=-csearch_path%3Dforge_t_abc12"),
                Some(("postgres://p@h:5432/db".to_string(), "forge_t_abc12".to_string()))
            );
            assert_eq!(
                schema_of("postgres://p@h/db?sslmode=disable&options=-csearch_path%3Dforge_t_x&a=b"),
                Some(("postgres://p@h/db?sslmode=disable".to_string(), "forge_t_x".to_string()))
            );
            assert_eq!(schema_of("postgres://p@h/db?options=-csearch_path%3Dpublic"), None);
            assert_eq!(schema_of("sqlite::memory:"), None);
        }
    }
}
