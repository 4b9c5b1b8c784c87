//! A test harness for apps that authenticate against forge, and for forge's
//! own integration tests.
//!
//! ```no_run
//! # async fn demo() {
//! let server = forge::testing::TestServer::start().await;
//! let session = server.signup("alice@example.com", "correct horse battery staple").await;
//! let token = session["access_token"].as_str().unwrap();
//! let me = server.client().get(server.url("/v1/users/me")).bearer_auth(token).send().await.unwrap();
//! assert_eq!(me.status(), 200);
//! # }
//! ```
//!
//! Each [`TestServer`] is the real router on `127.0.0.1:0` with its own
//! in-memory SQLite database, in-process cache and signing keys: tests
//! running in parallel never share state. Start-up takes milliseconds.
//! Messages go to the `memory` channel and `GET /v1/dev/outbox` is on, so a
//! test can read the codes forge sends. Argon2 uses small parameters so
//! sign-ups are fast; everything else is the production configuration.
//!
//! The helpers panic on failure: they are meant for tests.

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
}

impl TestServer {
    /// The configuration `start` uses: in-memory store, port 0, memory
    /// notifier with the dev outbox, fast argon2.
    pub fn config() -> Config {
        let mut config = Config::for_tests();
        config.password.argon2_memory_kib = 1024;
        config.password.argon2_iterations = 1;
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
        if std::env::var_os("FORGE_TEST_LOG").is_some() {
            crate::telemetry::init(&config.log);
        }
        let now = Clock::system().now();
        let app = Application::build_with_clock(config, Clock::manual(now))
            .await
            .unwrap_or_else(|e| panic!("forge test server failed to start: {e:#}"));
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
        Self {
            base_url,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
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
        let mut req = self
            .client
            .post(self.url("/v1/auth/signup"))
            .json(&json!({ "email": email, "password": password }));
        if let Some(t) = tenant {
            req = req.header("x-forge-tenant", t);
        }
        let resp = req.send().await.expect("signup request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "signup of {email} failed: {body}");
        body
    }

    /// Signs in with a password and returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let resp = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "login of {email} failed: {body}");
        body
    }

    /// Creates an administrator of the default tenant and signs them in.
    pub async fn admin(&self, email: &str, password: &str) -> Value {
        let email_parsed = crate::domain::Email::parse(email).expect("admin email");
        crate::service::accounts::create_admin(
            &self.state,
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
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
