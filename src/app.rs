//! Building and running the server.
//!
//! [`Application::build`] opens the store, creates signing keys on first
//! start, binds the listener (so port 0 is resolved before anyone asks) and
//! assembles the router; [`Application::run_until_stopped`] serves until the
//! shutdown future completes, then drains in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cache::Cache;
use crate::cache::moka::MokaStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::password::{Argon2Params, PasswordHasher, PasswordPolicy};
use crate::crypto::tokens::random_token;
use crate::http::metrics::Metrics;
use crate::notify::Notifier;
use crate::service::{denylist, keys};
use crate::state::{AppState, Keys};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

/// Opens the store named by `database.url`. A URL for a backend that is not
/// compiled in was already refused by `Config::validate`.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = &config.database.url;
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::open(url, config.database.pool_size)?));
    }
    anyhow::bail!("database.url: unsupported database URL scheme")
}

/// Opens the cache named by `cache.url`.
pub fn open_cache(config: &Config) -> anyhow::Result<Arc<dyn Cache>> {
    match config.cache.url.as_str() {
        "memory" => Ok(Arc::new(MokaStore::default())),
        _ => anyhow::bail!("cache.url: unsupported cache URL"),
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let state = build_state(config, clock).await?;
        let listener = TcpListener::bind(state.config.server.bind)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.server.bind))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.state.config.server.bind)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting connections
    /// and waits for in-flight requests to finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let maintenance = tokio::spawn(maintenance(state.clone()));
        let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
        let worker = state.notifier.spawn_worker(worker_stopped);
        let router = crate::http::router(state);
        let result = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        maintenance.abort();
        // Requests are drained; let the worker finish the sends under way.
        let _ = stop_worker.send(true);
        let _ = worker.await;
        result
    }
}

/// Everything the handlers share, wired from the configuration.
pub async fn build_state(config: Config, clock: Clock) -> anyhow::Result<AppState> {
    let config = Arc::new(config);
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_store(&config)).await??
    };
    let cache = open_cache(&config)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let passwords = PasswordHasher::new(
        Argon2Params {
            memory_kib: config.password.argon2_memory_kib,
            iterations: config.password.argon2_iterations,
            parallelism: config.password.argon2_parallelism,
        },
        cores,
    )?;
    let policy = Arc::new(PasswordPolicy {
        min_length: config.password.min_length,
        max_length: config.password.max_length,
        min_strength: config.password.min_strength,
        require_classes: config.password.require_classes,
    });
    let now = clock.now();
    let stored_keys = keys::ensure_keys(store.as_ref(), now).await?;
    let keyring = keys::keyring_from(&config, &stored_keys, now)?;
    let refresh_key = store
        .server_secret("refresh_successor_key", random_token().into_bytes(), now)
        .await?;
    let notifier = Notifier::new(&config, store.clone(), clock.clone());
    let state = AppState {
        verified_tokens: AppState::verified_token_cache(config.jwt.access_ttl + config.jwt.leeway),
        access: AppState::access_cache(),
        tenants: AppState::tenant_cache(),
        config,
        store,
        cache,
        passwords,
        policy,
        keys: Keys::new(keyring),
        clock,
        metrics: Arc::new(Metrics::default()),
        notifier,
        refresh_key: Arc::new(refresh_key),
    };
    denylist::warm(&state).await?;
    Ok(state)
}

/// Periodic housekeeping: reload keys so expired retired keys leave the JWKS
/// (and a rotation made by another process is picked up).
async fn maintenance(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    let mut minutes: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = keys::reload(&state).await {
            tracing::warn!(error = %e, "cannot reload signing keys");
        }
        // Audit retention: a minute after start, then hourly.
        if minutes.is_multiple_of(60) {
            crate::service::audit::sweep_logged(&state).await;
        }
        minutes += 1;
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
