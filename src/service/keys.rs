//! Signing keys: created on first start, stored in the database, loaded into
//! the in-memory [`Keyring`], listed and rotated (by `forge keys` and by
//! operators on the admin site).
//!
//! With EdDSA there is always a `current` key that signs and a `next` key that
//! is already published in the JWKS but signs nothing yet, so a verifier that
//! caches the JWKS knows a key before any token carries its `kid`. Rotation
//! promotes `next` to `current`, retires `current` (kept for verification
//! until its last token expires) and creates a new `next`.
//!
//! Beside the Ed25519 keys live RS256 keys (RSA 2048, algorithm `RS256` in
//! `signing_keys`) for the ID and logout tokens of OpenID Connect clients
//! that cannot verify EdDSA. They have the same next/current/retired life,
//! rotate with the Ed25519 ones in the same transaction, and are published
//! in the same JWKS; forge's own tokens are never signed with them. On a
//! first start they are made just after the server listens (see
//! [`AT_START`]), and what needs them waits for them ([`Keys::complete`]).

use std::sync::Arc;

use uuid::Uuid;

use crate::clock::Clock;

use crate::config::{Config, JwtAlgorithm};
use crate::crypto::jwt::{KeyMaterial, Keyring, VerifierSettings, generate_ed25519, generate_rs256};
use crate::domain::{AuditEvent, Timestamp};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::RequestMeta;
use crate::service::site::sessions::SiteAdmin;
use crate::state::Keys;
use crate::store::{DEFAULT_TENANT_ID, KeyRotation, KeyState, SigningKeyRecord, Store};

/// How long the JWKS may be cached. Rotations must be at least this far apart
/// for a cached JWKS to always hold the signing key.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// How often every instance reloads the keyring from the store.
pub const KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The `algorithm` column of Ed25519 keys.
pub const EDDSA: &str = "EdDSA";
/// The `algorithm` column of RSA keys (ID and logout tokens only).
pub const RS256: &str = "RS256";

/// Every key algorithm forge keeps, in the order keys are created.
pub const ALGORITHMS: [&str; 2] = [EDDSA, RS256];

/// The keys start-up makes before it listens: Ed25519 signs every access
/// token. Two RSA-2048 generations take a few hundred milliseconds, so the
/// RS256 keys are made after the server listens ([`SigningKeys::complete`]).
pub const AT_START: [&str; 1] = [EDDSA];

fn new_record(algorithm: &str, state: KeyState, now: i64) -> anyhow::Result<SigningKeyRecord> {
    let key = match algorithm {
        RS256 => generate_rs256()?,
        _ => generate_ed25519(),
    };
    Ok(SigningKeyRecord {
        kid: key.kid.clone(),
        algorithm: algorithm.into(),
        private_key: key.private_pkcs8.clone(),
        public_key: key.public_raw.clone(),
        activated_at: (state == KeyState::Current).then_some(now),
        state,
        created_at: now,
        retired_at: None,
    })
}

fn material(r: &SigningKeyRecord) -> KeyMaterial {
    KeyMaterial {
        kid: r.kid.clone(),
        private_pkcs8: r.private_key.clone(),
        public_raw: r.public_key.clone(),
    }
}

/// Ensures a current and a next key of each of `algorithms` exist, creating
/// them on first start (and those of an algorithm on the first start of a
/// version that has it), and returns every stored key. Key generation runs
/// off the async runtime.
#[tracing::instrument(skip_all)]
pub async fn ensure_keys(
    store: &dyn Store,
    now: i64,
    algorithms: &[&'static str],
) -> anyhow::Result<Vec<SigningKeyRecord>> {
    let mut stored = store.signing_keys().await?;
    for &algorithm in algorithms {
        for state in [KeyState::Current, KeyState::Next] {
            if !stored.iter().any(|k| k.algorithm == algorithm && k.state == state) {
                let record = tokio::task::spawn_blocking(move || new_record(algorithm, state, now)).await??;
                stored = store.insert_signing_key_if_absent(record).await?;
            }
        }
    }
    Ok(stored)
}

/// Whether `keys` hold a current key of every algorithm: the keyring built
/// from them lacks nothing [`SigningKeys::complete`] would add.
pub fn all_present(keys: &[SigningKeyRecord]) -> bool {
    ALGORITHMS
        .iter()
        .all(|a| keys.iter().any(|k| k.algorithm == *a && k.state == KeyState::Current))
}

/// The signing key of `algorithm` and its verify-only keys (next, and the
/// retired ones whose tokens may still be alive); `None` without a current key.
fn ring_keys(
    keys: &[SigningKeyRecord],
    algorithm: &str,
    horizon: i64,
    now: i64,
) -> Option<(KeyMaterial, Vec<KeyMaterial>)> {
    let current = keys
        .iter()
        .filter(|k| k.algorithm == algorithm && k.state == KeyState::Current)
        .max_by_key(|k| k.activated_at)?;
    let others = keys
        .iter()
        .filter(|k| k.algorithm == algorithm && k.kid != current.kid)
        .filter(|k| match k.state {
            KeyState::Next | KeyState::Current => true,
            KeyState::Retired => k.retired_at.is_some_and(|r| r + horizon > now),
        })
        .map(material)
        .collect();
    Some((material(current), others))
}

/// Builds the keyring from stored keys: the current key of each algorithm
/// signs; next and the retired keys whose tokens may still be alive verify.
/// Without RS256 keys (until [`SigningKeys::complete`] has made them) the
/// ring signs ID tokens with EdDSA only.
pub fn keyring_from(config: &Config, keys: &[SigningKeyRecord], now: i64) -> anyhow::Result<Keyring> {
    let settings = VerifierSettings {
        issuer: config.jwt.issuer.clone(),
        audience: config.jwt.audience.clone(),
        leeway_secs: config.jwt.leeway.as_secs(),
    };
    match config.jwt.algorithm {
        JwtAlgorithm::HS256 => {
            let secret = config.jwt.secret.clone().unwrap_or_else(|| Secret::new(""));
            Ok(Keyring::hs256(&secret, settings)?)
        }
        JwtAlgorithm::EdDSA => {
            // Another instance learns of a rotation only at its next reload, and
            // until then still signs with the retired key: keep that key
            // verifiable for a reload interval beyond its last token's life.
            let horizon = (config.jwt.access_ttl + config.jwt.leeway + KEY_RELOAD_INTERVAL).as_secs() as i64;
            let (current, others) =
                ring_keys(keys, EDDSA, horizon, now).ok_or_else(|| anyhow::anyhow!("no current signing key"))?;
            let ring = Keyring::eddsa(current, others, settings)?;
            match ring_keys(keys, RS256, horizon, now) {
                Some((current, others)) => Ok(ring.with_rs256(current, others)?),
                // Not made yet ([`SigningKeys::complete`] adds them).
                None => Ok(ring),
            }
        }
    }
}

/// The signing keys of a running server: the store that keeps them and the
/// in-memory keyring that signs with them.
#[derive(Clone)]
pub struct SigningKeys {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    clock: Clock,
    keys: Keys,
}

impl SigningKeys {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, clock: Clock, keys: Keys) -> Self {
        Self {
            store,
            config,
            clock,
            keys,
        }
    }

    /// Creates the keys start-up left out ([`AT_START`]), reloads the
    /// keyring and marks it complete. Run once the server listens, and by
    /// the maintenance loop in place of a plain reload, so a failure here
    /// (logged) is retried within a minute.
    #[tracing::instrument(skip_all)]
    pub async fn complete(&self) -> anyhow::Result<()> {
        let made = ensure_keys(self.store.as_ref(), self.clock.now(), &ALGORITHMS).await;
        let reloaded = match made {
            Ok(keys) => self.load(&keys),
            Err(e) => Err(e),
        };
        // Waiters take the ring as it is rather than wait for a retry.
        self.keys.settle();
        reloaded
    }

    fn load(&self, keys: &[SigningKeyRecord]) -> anyhow::Result<()> {
        self.keys.replace(keyring_from(&self.config, keys, self.clock.now())?);
        Ok(())
    }

    /// Reloads the keyring from the store (after a rotation, or periodically so
    /// expired retired keys leave the JWKS).
    #[tracing::instrument(skip_all)]
    pub async fn reload(&self) -> anyhow::Result<()> {
        let keys = self.store.signing_keys().await?;
        self.load(&keys)
    }
}

/// A signing key as the keys page and `forge keys list` show it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
    /// Published in the JWKS now (next, current, and retired keys whose
    /// tokens may still be alive).
    pub published: bool,
    /// For a retired key: when it leaves the JWKS.
    pub unpublished_at: Option<Timestamp>,
}

/// How long after retirement a key still verifies: the longest an access
/// token signed just before the rotation lives, plus the leeway.
pub fn retirement_horizon(config: &Config) -> i64 {
    i64::try_from((config.jwt.access_ttl + config.jwt.leeway).as_secs()).unwrap_or(i64::MAX)
}

/// Every stored signing key with its place in the JWKS: next, current,
/// then the retired ones, most recently retired first.
#[tracing::instrument(skip_all)]
pub async fn list_keys(store: &dyn Store, config: &Config, now: Timestamp) -> AppResult<Vec<KeyInfo>> {
    let horizon = retirement_horizon(config);
    let mut keys: Vec<KeyInfo> = store
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| {
            let unpublished_at = k.retired_at.map(|r| r.saturating_add(horizon));
            let published = match k.state {
                KeyState::Next | KeyState::Current => true,
                KeyState::Retired => unpublished_at.is_some_and(|u| u > now),
            };
            KeyInfo {
                kid: k.kid,
                algorithm: k.algorithm,
                state: k.state,
                created_at: k.created_at,
                activated_at: k.activated_at,
                retired_at: k.retired_at,
                published,
                unpublished_at,
            }
        })
        .collect();
    // The order of their lives: next, current, then retired keys newest first.
    let rank = |s: &KeyState| match s {
        KeyState::Next => 0,
        KeyState::Current => 1,
        KeyState::Retired => 2,
    };
    keys.sort_by(|a, b| {
        rank(&a.state)
            .cmp(&rank(&b.state))
            .then_with(|| b.retired_at.cmp(&a.retired_at))
            .then_with(|| b.created_at.cmp(&a.created_at))
            .then_with(|| a.kid.cmp(&b.kid))
    });
    Ok(keys)
}

/// Seconds until the `next` key has been published long enough to sign
/// (0 when it may sign now), for the keys page.
pub fn next_key_wait(keys: &[KeyInfo], now: Timestamp) -> i64 {
    keys.iter()
        .filter(|k| k.state == KeyState::Next)
        .map(|k| (k.created_at + JWKS_MAX_AGE_SECS as i64 - now).max(0))
        .max()
        .unwrap_or(0)
}

/// Rotates the signing keys of every algorithm (Ed25519, RS256) in one
/// transaction: each algorithm's `next` starts signing, `current` retires (it stays in the JWKS until its tokens have
/// expired), a new `next` is published. Unless `force`, refuses while the
/// `next` key is younger than the JWKS cache lifetime (409
/// `key_too_new`), since a verifier holding a cached JWKS would not know
/// it yet. Audited as `key_rotated` in the `default` tenant's log with
/// `actor` (none from the command line). Refused with HS256 (409
/// `no_signing_keys`): the secret is the key. This does not reload the
/// keyring of a running server: [`rotate_keys_now`] does, and other
/// processes pick the change up within a minute (their maintenance loop).
#[tracing::instrument(skip_all, fields(force = force, actor = ?actor, via = via))]
pub async fn rotate_keys(
    store: &dyn Store,
    config: &Config,
    now: Timestamp,
    force: bool,
    actor: Option<Uuid>,
    via: &'static str,
    meta: &RequestMeta,
) -> AppResult<Vec<SigningKeyRecord>> {
    if config.jwt.algorithm == JwtAlgorithm::HS256 {
        return Err(AppError::conflict(
            ErrorCode::NoSigningKeys,
            "jwt.algorithm is HS256: tokens are signed with jwt.secret, so there are no keys to rotate",
        ));
    }
    // Every algorithm that has keys rotates, in one transaction.
    let stored = store.signing_keys().await?;
    let mut new_next = Vec::new();
    for algorithm in ALGORITHMS {
        if stored.iter().any(|k| k.algorithm == algorithm) {
            new_next.push(new_record(algorithm, KeyState::Next, now).map_err(AppError::internal)?);
        }
    }
    let kids: Vec<&str> = new_next.iter().map(|k| k.kid.as_str()).collect();
    let kids = kids.join(",");
    let mut audit = meta.audit(DEFAULT_TENANT_ID, now, AuditEvent::KeyRotated, None, actor);
    let new_next_kid = new_next.first().map(|k| k.kid.clone()).unwrap_or_default();
    let new_next_kids: Vec<serde_json::Value> = new_next
        .iter()
        .map(|k| serde_json::json!({ "kid": k.kid, "algorithm": k.algorithm }))
        .collect();
    audit.detail = serde_json::json!({
        "new_next_kid": new_next_kid,
        "new_next": new_next_kids,
        "forced": force,
        "via": via,
    });
    let not_after = (!force).then(|| now - JWKS_MAX_AGE_SECS as i64);
    match store.rotate_signing_keys(new_next, now, not_after, audit).await? {
        KeyRotation::Rotated(keys) => {
            tracing::info!(new_next = %kids, "signing keys rotated");
            Ok(keys)
        }
        KeyRotation::NextTooYoung { next_created_at } => {
            let age = now - next_created_at;
            let wait = JWKS_MAX_AGE_SECS as i64 - age;
            Err(AppError::conflict(
                ErrorCode::KeyTooNew,
                format!(
                    "the next key was published {age} s ago and verifiers may cache the JWKS for \
                     {JWKS_MAX_AGE_SECS} s; wait {wait} s, or force the rotation (\"Rotate anyway\", \
                     or forge keys rotate --force)"
                ),
            ))
        }
        KeyRotation::NoNextKey => Err(AppError::conflict(
            ErrorCode::NoNextKey,
            "there is no next key to promote; restart forge to create one",
        )),
    }
}

impl SigningKeys {
    /// [`rotate_keys`] from the admin site (operators only), then reloads this
    /// process's keyring so the new current key signs at once.
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id, force = force))]
    pub async fn rotate_keys_now(
        &self,
        admin: &SiteAdmin,
        force: bool,
        meta: &RequestMeta,
    ) -> AppResult<Vec<SigningKeyRecord>> {
        if !admin.operator {
            return Err(AppError::forbidden(
                ErrorCode::Forbidden,
                "only operators rotate the signing keys",
            ));
        }
        let keys = rotate_keys(
            self.store.as_ref(),
            &self.config,
            self.clock.now(),
            force,
            Some(admin.user.id),
            "admin_site",
            meta,
        )
        .await?;
        self.reload().await.map_err(AppError::internal)?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::IdTokenAlg;
    use crate::service::test_ports;

    #[tokio::test]
    async fn reloading_after_a_rotation_signs_with_the_promoted_key() {
        let store = test_ports::store();
        let clock = test_ports::clock();
        let mut config = Config::default();
        config.jwt.issuer = "https://forge.test".into();
        config.jwt.audience = "forge".into();
        let config = Arc::new(config);
        let stored = ensure_keys(store.as_ref(), clock.now(), &ALGORITHMS).await.unwrap();
        let keyring = Keys::new(keyring_from(&config, &stored, clock.now()).unwrap());
        let signing = SigningKeys::new(store.clone(), config.clone(), clock.clone(), keyring.clone());
        let before = keyring.current().current_kid().to_string();
        let rsa_before = keyring.current().current_rs256_kid().unwrap().to_string();
        let next_of = |algorithm: &str| {
            stored
                .iter()
                .find(|k| k.state == KeyState::Next && k.algorithm == algorithm)
                .unwrap()
                .kid
                .clone()
        };
        let (next, rsa_next) = (next_of(EDDSA), next_of(RS256));
        assert_eq!(stored.len(), 4, "a current and a next key of each algorithm");

        rotate_keys(
            store.as_ref(),
            &config,
            clock.now(),
            true,
            None,
            "test",
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        assert_eq!(keyring.current().current_kid(), before, "not before a reload");
        signing.reload().await.unwrap();
        assert_eq!(keyring.current().current_kid(), next);
        // The RS256 keys rotated with them; the retired ones stay published.
        assert_eq!(keyring.current().current_rs256_kid(), Some(rsa_next.as_str()));
        let jwks = keyring.current().jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 6, "{kids:?}");
        assert!(kids.contains(&rsa_before.as_str()) && kids.contains(&before.as_str()));
        let stored = store.signing_keys().await.unwrap();
        for algorithm in [EDDSA, RS256] {
            for state in [KeyState::Current, KeyState::Next, KeyState::Retired] {
                let n = stored
                    .iter()
                    .filter(|k| k.algorithm == algorithm && k.state == state)
                    .count();
                assert_eq!(n, 1, "{algorithm} {state:?}");
            }
        }
    }

    #[tokio::test]
    async fn start_up_makes_ed25519_keys_only_and_the_rs256_ones_are_waited_for() {
        let store = test_ports::store();
        let clock = test_ports::clock();
        let mut config = Config::default();
        config.jwt.issuer = "https://forge.test".into();
        let config = Arc::new(config);
        let stored = ensure_keys(store.as_ref(), clock.now(), &AT_START).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|k| k.algorithm == EDDSA));
        assert!(!all_present(&stored));
        let keys = Keys::incomplete(keyring_from(&config, &stored, clock.now()).unwrap());
        assert_eq!(keys.current().id_token_algs(), [IdTokenAlg::EdDSA]);
        let waiter = tokio::spawn({
            let keys = keys.clone();
            async move { keys.complete().await.id_token_algs() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits until the ring is complete");

        let signing = SigningKeys::new(store.clone(), config.clone(), clock.clone(), keys.clone());
        signing.complete().await.unwrap();
        assert_eq!(waiter.await.unwrap(), [IdTokenAlg::EdDSA, IdTokenAlg::RS256]);
        assert!(all_present(&store.signing_keys().await.unwrap()));
        // Completing again (the maintenance loop) makes nothing new.
        signing.complete().await.unwrap();
        assert_eq!(store.signing_keys().await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn hs256_servers_keep_no_rsa_signing_key_in_the_ring() {
        let store = test_ports::store();
        let clock = test_ports::clock();
        let mut config = Config::default();
        config.jwt.issuer = "https://forge.test".into();
        config.jwt.audience = "forge".into();
        config.jwt.algorithm = JwtAlgorithm::HS256;
        config.jwt.secret = Some(Secret::new("s".repeat(32)));
        let stored = ensure_keys(store.as_ref(), clock.now(), &ALGORITHMS).await.unwrap();
        let ring = keyring_from(&config, &stored, clock.now()).unwrap();
        assert!(ring.id_token_algs().is_empty());
        assert_eq!(ring.current_rs256_kid(), None);
    }

    fn info(state: KeyState, created_at: i64) -> KeyInfo {
        KeyInfo {
            kid: "k".into(),
            algorithm: "EdDSA".into(),
            state,
            created_at,
            activated_at: None,
            retired_at: None,
            published: true,
            unpublished_at: None,
        }
    }

    #[test]
    fn next_key_wait_counts_down_to_zero() {
        let keys = vec![info(KeyState::Current, 0), info(KeyState::Next, 1_000)];
        assert_eq!(next_key_wait(&keys, 1_000), JWKS_MAX_AGE_SECS as i64);
        assert_eq!(next_key_wait(&keys, 1_100), JWKS_MAX_AGE_SECS as i64 - 100);
        assert_eq!(next_key_wait(&keys, 10_000), 0);
        assert_eq!(next_key_wait(&[], 0), 0);
    }
}
