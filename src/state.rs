//! The application state: every port and shared service behind an `Arc`,
//! passed to handlers as axum `State`. Nothing here is global, so two servers
//! in one test process never see each other.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cache::Cache;
use crate::cache::epoch::{Epoch, EpochCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::jwt::{AccessClaims, Keyring};
use crate::crypto::password::PasswordHasher;
use crate::domain::PasswordPolicy;
use crate::service::accounts::Accounts;
use crate::service::address::Address;
use crate::service::audit::AuditLog;
use crate::service::challenges::Challenges;
use crate::service::clients::{Clients, Consents};
use crate::service::codes::Codes;
use crate::service::denylist::DenyList;
use crate::service::devices::Devices;
use crate::service::directory::Directory;
use crate::service::factors::Factors;
use crate::service::keys::SigningKeys;
use crate::service::limits::Limits;
use crate::service::mfa_policy::MfaPolicies;
use crate::service::otp::Otp;
use crate::service::passkey_factors::PasskeyFactors;
use crate::service::proof::Proof;
use crate::service::rbac::Rbac;
use crate::service::recovery::Recovery;
use crate::service::roles::Roles;
use crate::service::sessions::Sessions;
use crate::service::settings::Settings;
use crate::service::site::dashboard::SiteDashboard;
use crate::service::site::messages::SiteMessages;
use crate::service::site::sessions::SiteSessions;
use crate::service::sso::Sso;
use crate::service::tenants::Tenants;
use crate::store::{Store, Tenant};
use crate::telemetry::metrics::Metrics;

/// What every handler gets as `State`: one `Arc`, so the clone axum makes
/// for each extractor and middleware of every request is one reference
/// count, not a copy of every service (the profile of `GET /health` showed
/// that copy, and the drops after it, as most of the request's own time).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Every port and service, built once by `app::build_state`.
pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub passwords: PasswordHasher,
    pub policy: Arc<PasswordPolicy>,
    pub keys: Keys,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub notifier: crate::notify::Notifier,
    pub tenants: Tenants,
    /// Derives a refresh token's successor from the token itself, so a retry
    /// inside the grace window gets the same successor with nothing stored
    /// in plaintext.
    pub refresh_key: Arc<Vec<u8>>,
    /// Seals TOTP secrets and hashes recovery codes; derived once from the
    /// `factor_key` server secret (see `crypto` module docs).
    pub factor_keys: Arc<crate::crypto::FactorKeys>,
    pub deny: DenyList,
    pub sessions: Sessions,
    pub proof: Proof,
    pub settings: Settings,
    pub otp: Otp,
    pub address: Address,
    /// Behind an `Arc`, like `site_sessions`: both hold several other
    /// services by value, and services clone them into themselves.
    pub accounts: Arc<Accounts>,
    pub recovery: Recovery,
    pub directory: Directory,
    /// Behind an `Arc`: it holds an `Address` (and so most other services),
    /// and a copy inline made `AppState` big enough to overflow a test
    /// thread's stack in a debug build.
    pub factors: Arc<Factors>,
    pub site_dashboard: SiteDashboard,
    pub site_messages: SiteMessages,
    pub site_sessions: Arc<SiteSessions>,
    /// The hosted pages' single sign-on sessions and sign-in steps.
    pub sso: Arc<Sso>,
    pub roles: Roles,
    pub audit: AuditLog,
    pub signing_keys: SigningKeys,
    pub rbac: Rbac,
    pub devices: Devices,
    pub codes: Codes,
    pub limits: Limits,
    /// Second-step challenges (`mfa_token`, `enrollment_token`).
    pub challenges: Challenges,
    /// The second step of sign-in and step-up (`/v1/auth/mfa/*`).
    pub mfa: crate::service::mfa::Mfa,
    /// The tenant's second-factor policy, applied.
    pub mfa_policies: MfaPolicies,
    /// Passkeys: registration, second factor, passwordless sign-in.
    pub passkey_factors: Arc<PasskeyFactors>,
    /// The schedule and the newest copy, for readiness and the dashboard.
    pub backups: Arc<crate::service::backups::Backups>,
    /// Registered OAuth clients: administration and client authentication.
    pub clients: Arc<Clients>,
    /// The consents users gave OAuth clients (their connected apps).
    pub consents: Arc<Consents>,
    /// The OpenID Connect provider: authorization, client grants,
    /// userinfo, revocation, logout.
    pub oidc: Arc<crate::service::oidc::Oidc>,
    /// Upstream identity providers ("sign in with"): administration, the
    /// enabled ones, and their client secrets for the flows.
    pub providers: Arc<crate::service::providers::Providers>,
    /// Webhook endpoints: administration.
    pub webhooks: crate::service::webhooks::Webhooks,
    /// Webhook delivery (its worker runs beside the server).
    pub dispatcher: crate::webhooks::Dispatcher,
    /// Sign-in through those providers, and the identities it links.
    pub federation: Arc<crate::service::federation::Federation>,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }

    pub fn verified_token_cache(ttl: Duration, entries: u64) -> moka::sync::Cache<[u8; 32], Arc<AccessClaims>> {
        moka::sync::Cache::builder()
            .max_capacity(entries)
            .time_to_live(ttl)
            .build()
    }

    /// The per-user access cache (see [`EpochCache`]).
    pub fn access_cache(epoch: &Epoch, entries: u64) -> EpochCache<uuid::Uuid, Arc<crate::store::Access>> {
        EpochCache::new(epoch.clone(), entries, Duration::from_secs(30))
    }

    /// The tenant cache, by slug (see [`EpochCache`]).
    pub fn tenant_cache(epoch: &Epoch, entries: u64) -> EpochCache<String, Tenant> {
        EpochCache::new(epoch.clone(), entries, Duration::from_secs(60))
    }
}

/// The signing keyring, swapped whole on rotation.
///
/// Start-up builds it with the Ed25519 keys only when the RS256 ones do not
/// exist yet (two RSA key generations would hold up the first start by a
/// few hundred milliseconds); [`crate::service::keys::SigningKeys::complete`]
/// makes them once the server listens. Whatever shows or signs with them
/// (the JWKS, the discovery document, ID and logout tokens) asks for
/// [`Keys::complete`], which waits for that; access tokens never do.
#[derive(Clone)]
pub struct Keys {
    ring: Arc<RwLock<Arc<Keyring>>>,
    complete: Arc<tokio::sync::watch::Sender<bool>>,
}

/// How long [`Keys::complete`] waits for the keys start-up left out before
/// it answers with the ring as it is (which then cannot sign RS256).
const KEY_CREATION_PATIENCE: Duration = Duration::from_secs(10);

impl Keys {
    /// A ring that holds every key it will hold.
    pub fn new(keyring: Keyring) -> Self {
        Self::with_complete(keyring, true)
    }

    /// A ring still waiting for keys that are being made ([`Keys::settle`]
    /// says when they are).
    pub fn incomplete(keyring: Keyring) -> Self {
        Self::with_complete(keyring, false)
    }

    fn with_complete(keyring: Keyring, complete: bool) -> Self {
        Self {
            ring: Arc::new(RwLock::new(Arc::new(keyring))),
            complete: Arc::new(tokio::sync::watch::Sender::new(complete)),
        }
    }

    /// The ring as it is: what access tokens are signed and checked with.
    pub fn current(&self) -> Arc<Keyring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The ring once the keys start-up left out exist (at once, except in
    /// the first moments of a first start).
    pub async fn complete(&self) -> Arc<Keyring> {
        let mut done = self.complete.subscribe();
        let _ = tokio::time::timeout(KEY_CREATION_PATIENCE, done.wait_for(|done| *done)).await;
        self.current()
    }

    pub fn replace(&self, keyring: Keyring) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keyring);
    }

    /// Marks the ring complete (or given up on: waiters then take it as
    /// it is), waking whoever waits in [`Keys::complete`].
    pub fn settle(&self) {
        self.complete.send_replace(true);
    }
}
