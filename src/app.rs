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
use crate::cache::epoch::Epoch;
use crate::cache::moka::MokaStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::password::{Argon2Params, PasswordHasher};
use crate::crypto::tokens::random_token;
use crate::crypto::{FACTOR_SECRET_NAME, FactorKeys};
use crate::domain::PasswordPolicy;
use crate::notify::Notifier;
use crate::service::accounts::Accounts;
use crate::service::address::Address;
use crate::service::audit::AuditLog;
use crate::service::challenges::Challenges;
use crate::service::clients::{Clients, Consents};
use crate::service::code_flows::CodeFlows;
use crate::service::codes::Codes;
use crate::service::denylist::DenyList;
use crate::service::devices::Devices;
use crate::service::directory::Directory;
use crate::service::factors::Factors;
use crate::service::keys::{self, SigningKeys};
use crate::service::limits::Limits;
use crate::service::mfa_policy::MfaPolicies;
use crate::service::otp::Otp;
use crate::service::passkey_factors::PasskeyFactors;
use crate::service::passkeys::{Ceremonies, Passkeys};
use crate::service::proof::Proof;
use crate::service::rbac::Rbac;
use crate::service::recovery::Recovery;
use crate::service::roles::Roles;
use crate::service::sessions::Sessions;
use crate::service::settings::Settings;
use crate::service::sign_in::SignInGate;
use crate::service::site::dashboard::SiteDashboard;
use crate::service::site::messages::SiteMessages;
use crate::service::site::sessions::SiteSessions;
use crate::service::tenants::Tenants;
use crate::state::{AppState, Keys, Services};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::telemetry::metrics::Metrics;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Routes an embedder added with [`Application::with_routes`].
    extra_routes: axum::Router<AppState>,
    /// Held while the server lives, so `forge restore` refuses to run
    /// (SQLite files only; see `store::backup`).
    _serving: Option<crate::store::backup::ServerLock>,
}

/// How long start-up waits for a database or cache that does not answer,
/// retrying with backoff, before it gives up with a one-line error (exit 1).
/// Internal: [`build_state_with_patience`] takes another value (tests).
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// The outcome of one attempt to open a backend at start-up.
enum Opening<T> {
    Ready(T),
    /// The server did not answer: worth another try until the patience runs
    /// out. Only network backends (the `postgres` feature) are ever unreachable.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Unreachable(String),
    /// Anything else (a failed migration, a URL the driver refuses): final.
    Failed(anyhow::Error),
}

/// Whether `cache.url` names a cache shared by several instances, so
/// process-local copies of database rows must check the epoch there (see
/// `cache::epoch`).
pub fn cache_is_shared(config: &Config) -> bool {
    config.cache.url != "memory"
}

/// Opens the store named by `database.url`, once: no retry. Blocking (the
/// PostgreSQL client must not run on an async worker): call it from
/// `spawn_blocking`. A URL for a backend that is not compiled in was already
/// refused by `Config::validate`.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match open_store_once(config) {
        Opening::Ready(store) => Ok(store),
        Opening::Unreachable(message) => Err(anyhow::anyhow!(message)),
        Opening::Failed(e) => Err(e),
    }
}

fn open_store_once(config: &Config) -> Opening<Arc<dyn Store>> {
    let url = &config.database.url;
    if url.starts_with("sqlite:") {
        return match SqliteStore::open(url, config.database.pool_size) {
            Ok(store) => Opening::Ready(Arc::new(store)),
            Err(e) => Opening::Failed(e),
        };
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        use crate::store::postgres::{OpenError, PgStore};
        return match PgStore::open(url, config.database.pool_size) {
            Ok(store) => Opening::Ready(Arc::new(store)),
            Err(e @ OpenError::Unreachable { .. }) => Opening::Unreachable(e.to_string()),
            Err(OpenError::Failed(e)) => Opening::Failed(e),
        };
    }
    Opening::Failed(anyhow::anyhow!("database.url: unsupported database URL scheme"))
}

/// Opens the cache named by `cache.url`, once: no retry.
pub async fn open_cache(config: &Config) -> anyhow::Result<Arc<dyn Cache>> {
    match open_cache_once(config).await {
        Opening::Ready(cache) => Ok(cache),
        Opening::Unreachable(message) => Err(anyhow::anyhow!(message)),
        Opening::Failed(e) => Err(e),
    }
}

async fn open_cache_once(config: &Config) -> Opening<Arc<dyn Cache>> {
    let url = config.cache.url.as_str();
    if url == "memory" {
        return Opening::Ready(Arc::new(MokaStore::default()));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        use crate::cache::redis::{OpenError, RedisCache};
        return match RedisCache::open(url).await {
            Ok(cache) => Opening::Ready(Arc::new(cache)),
            Err(e @ OpenError::Unreachable { .. }) => Opening::Unreachable(e.to_string()),
            Err(e @ OpenError::Invalid(_)) => Opening::Failed(e.into()),
        };
    }
    Opening::Failed(anyhow::anyhow!("cache.url: unsupported cache URL"))
}

/// Runs `attempt` until it is ready, fails for good, or `patience` has passed
/// since the first try (then the last cause, in one line). Each wait is
/// logged so an operator sees why the server is not listening yet.
async fn patiently<T, F, Fut>(what: &str, patience: Duration, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Opening<T>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut tries: u32 = 1;
    loop {
        match attempt().await {
            Opening::Ready(value) => {
                if tries > 1 {
                    tracing::info!(attempts = tries, "{what} is reachable");
                }
                return Ok(value);
            }
            Opening::Failed(e) => return Err(e),
            Opening::Unreachable(message) => {
                let waited = started.elapsed();
                if waited >= patience {
                    anyhow::bail!("{message} (gave up after {} s)", waited.as_secs().max(1));
                }
                let pause = delay.min(patience - waited);
                tracing::warn!(
                    attempt = tries,
                    "{what} not reachable yet: {message}; retrying in {} ms",
                    pause.as_millis()
                );
                tokio::time::sleep(pause).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                tries += 1;
            }
        }
    }
}

/// Applies pending migrations to the database `database.url` names and
/// reports how many ran (`forge migrate`), for either backend.
pub fn migrate(config: &Config) -> anyhow::Result<usize> {
    let url = &config.database.url;
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return crate::store::postgres::PgStore::migrate(url);
    }
    SqliteStore::migrate(url)
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let serving = serving_lock(&config).await?;
        let state = build_state(config, clock).await?;
        let listener = TcpListener::bind(state.config.server.bind)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.server.bind))?;
        Ok(Self {
            listener,
            state,
            extra_routes: axum::Router::new(),
            _serving: serving,
        })
    }

    /// Adds routes of the embedder's own next to forge's: they share the
    /// state ([`AppState`] as `State`) and pass the same layers (request id,
    /// access log and metrics, panic catcher, CORS, body limit). Their paths
    /// must not overlap forge's routes: axum refuses an overlap by panicking
    /// when the router is assembled, a programming error seen on first start.
    /// Forge's own tests use this to mount a deliberately panicking handler.
    pub fn with_routes(mut self, routes: axum::Router<AppState>) -> Self {
        self.extra_routes = self.extra_routes.merge(routes);
        self
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
        let backups = state
            .backups
            .plan()
            .is_some()
            .then(|| tokio::spawn(state.backups.clone().run()));
        // Upstream providers' metadata and keys, kept fresh in the background.
        let upstream_refresher = state.federation.spawn_refresher();
        let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
        let webhook_worker = state.dispatcher.spawn(worker_stopped.clone());
        let worker = state.notifier.spawn_worker(worker_stopped);
        let complete_keys = state.signing_keys.clone();
        let router = crate::http::router(state, self.extra_routes);
        // Once the router is made: on a first start the RS256 keys take
        // tens of milliseconds of a core, which making it need not share.
        let key_creation = tokio::spawn(async move {
            if let Err(e) = complete_keys.complete().await {
                tracing::warn!(error = %e, "cannot create the RS256 signing keys; retrying within a minute");
            }
        });
        let result = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        maintenance.abort();
        key_creation.abort();
        upstream_refresher.abort();
        if let Some(backups) = backups {
            backups.abort();
        }
        // Requests are drained; let the worker finish the sends under way.
        let _ = stop_worker.send(true);
        let _ = worker.await;
        let _ = webhook_worker.await;
        result
    }
}

/// Everything the handlers share, wired from the configuration. A database
/// or cache that does not answer is retried for [`CONNECT_PATIENCE`].
pub async fn build_state(config: Config, clock: Clock) -> anyhow::Result<AppState> {
    build_state_with_patience(config, clock, CONNECT_PATIENCE).await
}

/// [`build_state`], waiting at most `patience` for the database and cache.
pub async fn build_state_with_patience(config: Config, clock: Clock, patience: Duration) -> anyhow::Result<AppState> {
    let config = Arc::new(config);
    let store = patiently("database", patience, || {
        let config = config.clone();
        async move {
            match tokio::task::spawn_blocking(move || open_store_once(&config)).await {
                Ok(opening) => opening,
                Err(e) => Opening::Failed(anyhow::anyhow!("opening the store failed: {e}")),
            }
        }
    })
    .await?;
    let cache = patiently("cache", patience, || open_cache_once(&config)).await?;
    let shared = cache_is_shared(&config);
    if !shared && !config.database.url.starts_with("sqlite:") {
        tracing::warn!(
            "cache.url is \"memory\": revocations, codes and rate limits stay inside this process, \
             so run a single instance, or point cache.url at Redis"
        );
    }
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
    let stored_keys = keys::ensure_keys(store.as_ref(), now, &keys::AT_START).await?;
    let keyring = keys::keyring_from(&config, &stored_keys, now)?;
    let keyring = if keys::all_present(&stored_keys) {
        Keys::new(keyring)
    } else {
        Keys::incomplete(keyring)
    };
    let refresh_key = store
        .server_secret("refresh_successor_key", random_token().into_bytes(), now)
        .await?;
    let refresh_key = Arc::new(refresh_key);
    let factor_secret = store
        .server_secret(FACTOR_SECRET_NAME, random_token().into_bytes(), now)
        .await?;
    let factor_keys = Arc::new(FactorKeys::derive(&factor_secret));
    let notifier = Notifier::new(&config, store.clone(), clock.clone()).map_err(anyhow::Error::msg)?;
    let metrics = Arc::new(Metrics::default());
    let deny = DenyList::new(store.clone(), cache.clone(), clock.clone(), config.jwt.clone());
    let limits = Limits::new(cache.clone(), refresh_key.clone(), config.rate_limit.clone());
    let codes = Codes::new(cache.clone(), refresh_key.clone(), config.otp.clone());
    let challenges = Challenges::new(cache.clone(), clock.clone(), refresh_key.clone());
    let devices = Devices::new(clock.clone(), refresh_key.clone(), config.rate_limit.device_token_ttl);
    // One epoch for every process-local copy of directory rows, kept where
    // every instance reads it (see `cache::epoch`).
    let epoch = if shared {
        Epoch::shared(cache.clone())
    } else {
        Epoch::local()
    };
    let rbac = Rbac::new(
        store.clone(),
        AppState::access_cache(&epoch, config.cache.local_entries),
    );
    let signing_keys = SigningKeys::new(store.clone(), config.clone(), clock.clone(), keyring.clone());
    let audit = AuditLog::new(store.clone(), clock.clone(), config.audit.clone());
    let roles = Roles::new(store.clone(), clock.clone(), rbac.clone());
    let site_messages = SiteMessages::new(store.clone(), clock.clone());
    let site_dashboard = SiteDashboard::new(store.clone(), clock.clone());
    let tenants = AppState::tenant_cache(&epoch, config.cache.local_entries);
    let notices =
        crate::service::notices::Notices::new(notifier.clone(), store.clone(), clock.clone(), devices.clone());
    let sessions = Sessions::new(
        store.clone(),
        clock.clone(),
        notices.clone(),
        keyring.clone(),
        config.jwt.clone(),
        config.rate_limit.refresh_per_ip,
        refresh_key.clone(),
        tenants.clone(),
        limits.clone(),
        deny.clone(),
        config.cache.local_entries,
    );
    let mfa_policies = MfaPolicies::new(store.clone(), clock.clone(), challenges.clone(), sessions.clone());
    let proof = Proof::new(store.clone(), clock.clone(), sessions.clone());
    let gate = SignInGate::new(store.clone(), challenges.clone(), mfa_policies.clone());
    let settings = Settings::new(
        store.clone(),
        clock.clone(),
        rbac.clone(),
        sessions.clone(),
        config.signup.enabled,
    );
    let otp = Otp::new(
        store.clone(),
        cache.clone(),
        clock.clone(),
        notifier.clone(),
        limits.clone(),
        codes.clone(),
        settings.clone(),
        proof.clone(),
        sessions.clone(),
        gate.clone(),
        config.rate_limit.clone(),
        config.otp.clone(),
        config.signup.require_email_verification,
    );
    let code_flows = Arc::new(CodeFlows::new(
        notifier.clone(),
        limits.clone(),
        codes.clone(),
        otp.clone(),
        proof.clone(),
        sessions.clone(),
        gate.clone(),
        config.rate_limit.clone(),
        config.otp.clone(),
        notices.clone(),
    ));
    let address = Address::new(
        store.clone(),
        cache.clone(),
        clock.clone(),
        passwords.clone(),
        code_flows.clone(),
    );
    let recovery = Recovery::new(
        store.clone(),
        clock.clone(),
        passwords.clone(),
        policy.clone(),
        code_flows,
    );
    let directory = Directory::new(
        store.clone(),
        clock.clone(),
        rbac.clone(),
        deny.clone(),
        passwords.clone(),
        policy.clone(),
        sessions.clone(),
        notices.clone(),
    );
    let factors = Arc::new(Factors::new(
        store.clone(),
        clock.clone(),
        factor_keys.clone(),
        limits.clone(),
        notices.clone(),
        address.clone(),
        rbac.clone(),
        metrics.clone(),
        config.rate_limit.clone(),
        config.notify.product_name.clone(),
    ));
    let passkey_factors = Arc::new(PasskeyFactors::new(
        store.clone(),
        clock.clone(),
        Passkeys::new(&config.webauthn)?,
        Ceremonies::new(cache.clone()),
        factors.clone(),
        sessions.clone(),
        limits.clone(),
        metrics.clone(),
        config.rate_limit.clone(),
    ));
    let mfa = crate::service::mfa::Mfa::new(
        store.clone(),
        clock.clone(),
        challenges.clone(),
        sessions.clone(),
        factors.clone(),
        passkey_factors.clone(),
        metrics.clone(),
    );
    let tenants_service = Tenants::new(
        store.clone(),
        clock.clone(),
        rbac.clone(),
        deny.clone(),
        passwords.clone(),
        policy.clone(),
        tenants,
        config.signup.enabled,
    );
    let accounts = Arc::new(Accounts::new(
        store.clone(),
        clock.clone(),
        passwords.clone(),
        policy.clone(),
        metrics.clone(),
        limits.clone(),
        settings.clone(),
        sessions.clone(),
        devices.clone(),
        deny.clone(),
        address.clone(),
        recovery.clone(),
        gate.clone(),
        config.rate_limit.clone(),
        config.signup.require_email_verification,
    ));
    let site_sessions = Arc::new(SiteSessions::new(
        store.clone(),
        cache.clone(),
        clock.clone(),
        metrics.clone(),
        config.admin.clone(),
        config.jwt.issuer.clone(),
        accounts.clone(),
        sessions.clone(),
        rbac.clone(),
        notices.clone(),
        tenants_service.clone(),
        mfa_policies.clone(),
        factors.clone(),
        challenges.clone(),
        passkey_factors.clone(),
    ));
    let sso = Arc::new(crate::service::sso::Sso::new(
        store.clone(),
        cache.clone(),
        clock.clone(),
        metrics.clone(),
        config.jwt.refresh_ttl,
        config.jwt.session_max_age,
        config.jwt.issuer.clone(),
        accounts.clone(),
        sessions.clone(),
        notices.clone(),
        mfa_policies.clone(),
        factors.clone(),
        challenges.clone(),
        passkey_factors.clone(),
    ));
    let backups = Arc::new(crate::service::backups::Backups::new(&config, clock.clone()).await);
    let clients = Arc::new(Clients::new(store.clone(), clock.clone(), deny.clone()));
    let consents = Arc::new(Consents::new(store.clone(), clock.clone(), deny.clone()));
    let oidc = Arc::new(crate::service::oidc::Oidc::new(
        store.clone(),
        clock.clone(),
        keyring.clone(),
        config.jwt.clone(),
        sessions.clone(),
        clients.clone(),
        consents.clone(),
        sso.clone(),
        crate::service::auth_codes::AuthCodes::new(cache.clone(), clock.clone(), refresh_key.clone()),
        notifier.clone(),
        deny.clone(),
    ));
    let configured_providers =
        crate::service::providers::Providers::from_config(&config, store.as_ref(), clock.now()).await?;
    let providers = Arc::new(crate::service::providers::Providers::new(
        store.clone(),
        clock.clone(),
        crate::crypto::seal::SealingKey::provider_secrets(&factor_secret),
        configured_providers,
    ));
    let webhook_guard = crate::webhooks::Guard::new(config.webhooks.allow_private, &config.server.public_url);
    let webhook_key = crate::crypto::seal::SealingKey::webhook_secrets(&factor_secret);
    let webhooks = crate::service::webhooks::Webhooks::new(
        store.clone(),
        clock.clone(),
        webhook_key.clone(),
        webhook_guard.clone(),
    );
    let dispatcher = crate::webhooks::Dispatcher::new(
        store.clone(),
        clock.clone(),
        webhook_key,
        webhook_guard,
        config.webhooks.disable_after,
        notices.clone(),
    )?;
    let federation = Arc::new(crate::service::federation::Federation::new(
        store.clone(),
        providers.clone(),
        crate::upstream::Upstream::new(clock.clone(), metrics.clone()),
        settings.clone(),
        sessions.clone(),
        gate.clone(),
        crate::service::federation::flow::FlowSeal::new(refresh_key.clone()),
        crate::service::federation::codes::FlowCodes::new(cache.clone(), clock.clone(), refresh_key.clone()),
        crate::service::redirects::RedirectPolicy::new(&config.server),
        clock.clone(),
        &config.server.public_url,
    ));
    let state = AppState::new(Services {
        oidc,
        providers,
        webhooks,
        dispatcher,
        federation,
        clients,
        consents,
        backups,
        tenants: tenants_service,
        passkey_factors,
        config,
        store,
        cache,
        passwords,
        policy,
        keys: keyring,
        clock,
        metrics,
        notifier,
        refresh_key: refresh_key.clone(),
        factor_keys,
        deny,
        sessions,
        proof,
        settings,
        otp,
        address,
        accounts,
        recovery,
        directory,
        factors,
        site_dashboard,
        site_messages,
        site_sessions,
        sso,
        roles,
        audit,
        signing_keys,
        rbac,
        devices,
        codes,
        limits,
        mfa,
        mfa_policies,
        challenges,
    });
    state.deny.warm().await?;
    Ok(state)
}

/// The shared lock a server holds on a SQLite database file, which keeps
/// `forge restore` out while it runs (and keeps the server out while a
/// restore runs). None for other databases.
async fn serving_lock(config: &Config) -> anyhow::Result<Option<crate::store::backup::ServerLock>> {
    let Some(database) = crate::store::backup::database_file(&config.database.url) else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || crate::store::backup::ServerLock::serving(&database).map(Some))
        .await
        .context("cannot take the server lock")?
}

/// `forge restore`: replaces the SQLite database with a verified copy.
/// Blocking. Refused while a server runs on the database.
pub fn restore(config: &Config, from: &std::path::Path) -> anyhow::Result<crate::store::backup::Restored> {
    let Some(database) = crate::store::backup::database_file(&config.database.url) else {
        anyhow::bail!("forge restore replaces a SQLite database file; restore PostgreSQL with its own tools");
    };
    crate::store::backup::restore(&database, from, &SqliteStore::known_migrations())
}

/// Periodic housekeeping: reload keys so expired retired keys leave the JWKS
/// (and a rotation made by another process is picked up), creating any
/// that are missing.
async fn maintenance(state: AppState) {
    let mut tick = tokio::time::interval(keys::KEY_RELOAD_INTERVAL);
    tick.tick().await;
    let mut minutes: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = state.signing_keys.complete().await {
            tracing::warn!(error = %e, "cannot reload signing keys");
        }
        // Audit retention: a minute after start, then hourly.
        if minutes.is_multiple_of(60) {
            state.audit.sweep_logged().await;
            let before = state
                .clock
                .now()
                .saturating_sub(crate::webhooks::DELIVERY_RETENTION_SECS);
            if let Err(e) = state.store.prune_deliveries(before).await {
                tracing::warn!(error = %e, "cannot prune old webhook deliveries");
            }
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
