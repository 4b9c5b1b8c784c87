//! Signing keys: created on first start, stored in the database, loaded into
//! the in-memory [`Keyring`].
//!
//! With EdDSA there is always a `current` key that signs and a `next` key that
//! is already published in the JWKS but signs nothing yet, so a verifier that
//! caches the JWKS knows a key before any token carries its `kid`. Rotation
//! promotes `next` to `current`, retires `current` (kept for verification
//! until its last token expires) and creates a new `next`.

use crate::config::JwtAlgorithm;
use crate::crypto::jwt::{KeyMaterial, Keyring, VerifierSettings, generate_ed25519};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::{KeyState, SigningKeyRecord, Store};

/// How long the JWKS may be cached. Rotations must be at least this far apart
/// for a cached JWKS to always hold the signing key.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// How often every instance reloads the keyring from the store.
pub const KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn new_record(state: KeyState, now: i64) -> SigningKeyRecord {
    let key = generate_ed25519();
    SigningKeyRecord {
        kid: key.kid.clone(),
        algorithm: "EdDSA".into(),
        private_key: key.private_pkcs8.clone(),
        public_key: key.public_raw.clone(),
        activated_at: (state == KeyState::Current).then_some(now),
        state,
        created_at: now,
        retired_at: None,
    }
}

fn material(r: &SigningKeyRecord) -> KeyMaterial {
    KeyMaterial {
        kid: r.kid.clone(),
        private_pkcs8: r.private_key.clone(),
        public_raw: r.public_key.clone(),
    }
}

/// Ensures a current and a next key exist (creating them on first start) and
/// returns every stored key.
pub async fn ensure_keys(store: &dyn Store, now: i64) -> anyhow::Result<Vec<SigningKeyRecord>> {
    store
        .insert_signing_key_if_absent(new_record(KeyState::Current, now))
        .await?;
    Ok(store
        .insert_signing_key_if_absent(new_record(KeyState::Next, now))
        .await?)
}

/// Builds the keyring from stored keys: the current key signs; next and the
/// retired keys whose tokens may still be alive verify.
pub fn keyring_from(config: &crate::config::Config, keys: &[SigningKeyRecord], now: i64) -> anyhow::Result<Keyring> {
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
            let current = keys
                .iter()
                .filter(|k| k.state == KeyState::Current)
                .max_by_key(|k| k.activated_at)
                .ok_or_else(|| anyhow::anyhow!("no current signing key"))?;
            // Another instance learns of a rotation only at its next reload, and
            // until then still signs with the retired key: keep that key
            // verifiable for a reload interval beyond its last token's life.
            let horizon = (config.jwt.access_ttl + config.jwt.leeway + KEY_RELOAD_INTERVAL).as_secs() as i64;
            let others = keys
                .iter()
                .filter(|k| k.kid != current.kid)
                .filter(|k| match k.state {
                    KeyState::Next | KeyState::Current => true,
                    KeyState::Retired => k.retired_at.is_some_and(|r| r + horizon > now),
                })
                .map(material)
                .collect();
            Ok(Keyring::eddsa(material(current), others, settings)?)
        }
    }
}

/// Reloads the keyring from the store (after a rotation, or periodically so
/// expired retired keys leave the JWKS).
pub async fn reload(state: &AppState) -> anyhow::Result<()> {
    let keys = state.store.signing_keys().await?;
    state
        .keys
        .replace(keyring_from(&state.config, &keys, state.clock.now())?);
    Ok(())
}
