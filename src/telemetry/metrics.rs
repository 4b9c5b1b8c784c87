//! The Prometheus recorder, kept in the application state (no global
//! registry, so two servers in one process count separately). It lives
//! outside `http` so use cases can count things without depending on the
//! web layer; `http::metrics` turns requests into its bounded labels and
//! `http::ops` serves the scrape.
//!
//! Invariant: every label value comes from a small closed set. The
//! Prometheus client keeps every label combination it ever saw, so a value
//! a client controls (a raw method, a raw path) would let anyone grow the
//! process and every scrape without bound. Methods outside the standard
//! nine are counted as `other` (`http::metrics::method_label`), routes are
//! the matched template or `unmatched` (see `http::access_log`), statuses
//! are numbers, and login and MFA outcomes are constants chosen by forge.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    kind: &'static str,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MfaLabels {
    method: &'static str,
    outcome: &'static str,
}

/// A second factor's kind, as the `method` label of `forge_mfa_verifications`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaMethod {
    Totp,
    RecoveryCode,
    WebAuthn,
}

impl MfaMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::RecoveryCode => "recovery_code",
            MfaMethod::WebAuthn => "webauthn",
        }
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    logins: Family<OutcomeLabels, Counter>,
    mfa: Family<MfaLabels, Counter>,
    upstream_failures: Family<UpstreamLabels, Counter>,
    argon2_queue: Gauge,
    db_connections: Gauge,
    db_idle: Gauge,
    outbox_pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("forge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let logins = Family::<OutcomeLabels, Counter>::default();
        let mfa = Family::<MfaLabels, Counter>::default();
        let upstream_failures = Family::<UpstreamLabels, Counter>::default();
        let argon2_queue = Gauge::default();
        let db_connections = Gauge::default();
        let db_idle = Gauge::default();
        let outbox_pending = Gauge::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register("logins", "Password sign-ins by outcome", logins.clone());
        registry.register(
            "mfa_verifications",
            "Second-factor checks (sign-in and step-up) by method and outcome",
            mfa.clone(),
        );
        registry.register(
            "upstream_failures",
            "Failed exchanges with upstream identity providers by provider kind and stage",
            upstream_failures.clone(),
        );
        registry.register(
            "argon2_queue_depth",
            "Password hashes waiting for the argon2 pool",
            argon2_queue.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database read connections",
            db_connections.clone(),
        );
        registry.register("db_pool_idle", "Idle database read connections", db_idle.clone());
        registry.register(
            "outbox_pending",
            "Notifications waiting to be delivered",
            outbox_pending.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            logins,
            mfa,
            upstream_failures,
            argon2_queue,
            db_connections,
            db_idle,
            outbox_pending,
        }
    }
}

/// Point-in-time values read when `/metrics` is scraped.
#[derive(Default)]
pub struct Gauges {
    pub argon2_queue: usize,
    pub db_connections: u32,
    pub db_idle: u32,
    pub outbox_pending: u64,
}

impl Metrics {
    /// Counts one request. `method` comes from `http::metrics::method_label`;
    /// `route` must be a route template or `http::metrics::UNMATCHED_ROUTE`,
    /// never a raw path.
    pub fn request(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method,
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// Counts a sign-in; `outcome` is a constant (`success`, `failure`, ...).
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a second-factor check: `method` is closed, `success` picks
    /// `success` or `failure`, so the family has at most six series.
    pub fn mfa(&self, method: MfaMethod, success: bool) {
        let outcome = if success { "success" } else { "failure" };
        self.mfa
            .get_or_create(&MfaLabels {
                method: method.as_str(),
                outcome,
            })
            .inc();
    }

    /// Counts a failed exchange with an upstream provider: `kind` is a
    /// `ProviderKind::as_str`, `stage` one of the constants of
    /// `upstream::UpstreamError::stage`, so the family stays small.
    pub fn upstream_failure(&self, kind: &'static str, stage: &'static str) {
        self.upstream_failures
            .get_or_create(&UpstreamLabels { kind, stage })
            .inc();
    }

    /// How many upstream failures of this kind and stage were counted (tests).
    pub fn upstream_failures(&self, kind: &'static str, stage: &'static str) -> u64 {
        self.upstream_failures
            .get_or_create(&UpstreamLabels { kind, stage })
            .get()
    }

    pub fn render(&self, gauges: Gauges) -> String {
        self.argon2_queue.set(gauges.argon2_queue as i64);
        self.db_connections.set(gauges.db_connections.into());
        self.db_idle.set(gauges.db_idle.into());
        self.outbox_pending.set(gauges.outbox_pending as i64);
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
