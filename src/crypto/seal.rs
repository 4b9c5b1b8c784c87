//! Authenticated encryption of secrets forge must read back (TOTP secrets,
//! upstream identity providers' client secrets).
//!
//! Passwords and tokens are stored as hashes because forge only ever
//! compares them; a TOTP secret must be read to compute codes, so it is
//! stored sealed instead: XChaCha20-Poly1305 (RustCrypto) under a key
//! derived with HKDF-SHA256 from a server secret kept in the database
//! (`server_secrets`, created on first start, see `app::build_state`).
//!
//! - A fresh random 192-bit nonce per seal: XChaCha's nonce is long enough
//!   that random nonces never repeat in practice, so there is no counter to
//!   keep consistent across instances.
//! - The caller's associated data (the factor's id; a provider's tenant and
//!   id) is authenticated, so a sealed secret copied into another row fails
//!   to open there.
//! - Each purpose has its own key (its own HKDF label, [`FACTOR_LABEL`],
//!   [`PROVIDER_SECRET_LABEL`]) from the same server secret, so a value
//!   sealed for one purpose never opens as another's.
//! - The sealed form starts with a version byte, so a later key or cipher
//!   change can tell old values apart.
//!
//! A database dump alone therefore reveals no secret; an attacker needs the
//! `server_secrets` row too (which lives in the same database: sealing
//! protects backups and partial leaks of the factors table, not a full
//! compromise of the database).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::rngs::OsRng;

use super::derive_key;

/// The first byte of every sealed value.
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;
/// The HKDF `info` of the key sealing TOTP secrets. A new purpose gets a
/// new label; a label never changes once values were sealed under it.
pub const FACTOR_LABEL: &[u8] = b"forge factor sealing v1";
/// The HKDF `info` of the key sealing upstream providers' client secrets.
pub const PROVIDER_SECRET_LABEL: &[u8] = b"forge provider secret sealing v1";
/// The HKDF `info` of the key sealing webhook signing secrets.
pub const WEBHOOK_SECRET_LABEL: &[u8] = b"forge webhook secret sealing v1";

/// A sealed value could not be opened (wrong key, wrong associated data,
/// tampered or truncated), or sealing failed. Says nothing more, on purpose.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value cannot be opened")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// A key that seals secrets of one purpose. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl SealingKey {
    /// The key sealing factor secrets, from this server secret.
    pub fn derive(server_secret: &[u8]) -> Self {
        Self::derive_for(server_secret, FACTOR_LABEL)
    }

    /// The key sealing upstream providers' client secrets, from this server
    /// secret (associated data: tenant id and provider id).
    pub fn provider_secrets(server_secret: &[u8]) -> Self {
        Self::derive_for(server_secret, PROVIDER_SECRET_LABEL)
    }

    /// The key sealing webhook signing secrets, from this server secret
    /// (associated data: tenant id and webhook id).
    pub fn webhook_secrets(server_secret: &[u8]) -> Self {
        Self::derive_for(server_secret, WEBHOOK_SECRET_LABEL)
    }

    /// The sealing key of one purpose (`label`, the HKDF `info`) from this
    /// server secret (HKDF-SHA256).
    pub fn derive_for(server_secret: &[u8], label: &[u8]) -> Self {
        let key = derive_key(server_secret, label);
        Self(XChaCha20Poly1305::new(&key.into()))
    }

    /// `version || nonce || ciphertext+tag` of `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .0
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// The plaintext of a [`SealingKey::seal`] output under the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Open)?;
        if version != VERSION || rest.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Open)?;
        self.0
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| SealError::Open)
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::derive(b"a server secret of some length")
    }

    #[test]
    fn a_sealed_value_opens_under_the_same_key_and_aad() {
        let k = key();
        let sealed = k.seal(b"the secret", b"factor-1").unwrap();
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_BYTES + b"the secret".len() + 16);
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(k.open(&sealed, b"factor-1").unwrap(), b"the secret");
        // The same key derived again (another instance, a restart) opens it.
        assert_eq!(key().open(&sealed, b"factor-1").unwrap(), b"the secret");
        assert_eq!(k.open(&k.seal(b"", b"").unwrap(), b"").unwrap(), b"");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let k = key();
        assert_ne!(k.seal(b"x", b"a").unwrap(), k.seal(b"x", b"a").unwrap());
    }

    #[test]
    fn tampering_anywhere_is_refused() {
        let k = key();
        let sealed = k.seal(b"the secret", b"factor-1").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(k.open(&bad, b"factor-1"), Err(SealError::Open), "byte {i}");
        }
        assert_eq!(k.open(&sealed[..sealed.len() - 1], b"factor-1"), Err(SealError::Open));
        assert_eq!(k.open(&sealed[..10], b"factor-1"), Err(SealError::Open));
        assert_eq!(k.open(&[], b"factor-1"), Err(SealError::Open));
    }

    #[test]
    fn another_aad_or_key_cannot_open_it() {
        let k = key();
        let sealed = k.seal(b"the secret", b"factor-1").unwrap();
        assert_eq!(k.open(&sealed, b"factor-2"), Err(SealError::Open));
        assert_eq!(k.open(&sealed, b""), Err(SealError::Open));
        let other = SealingKey::derive(b"another server secret");
        assert_eq!(other.open(&sealed, b"factor-1"), Err(SealError::Open));
    }

    #[test]
    fn each_purpose_has_its_own_key() {
        let secret = b"a server secret of some length";
        let factor = SealingKey::derive(secret);
        let provider = SealingKey::provider_secrets(secret);
        let sealed = provider.seal(b"client secret", b"tenant/provider").unwrap();
        assert_eq!(provider.open(&sealed, b"tenant/provider").unwrap(), b"client secret");
        assert_eq!(factor.open(&sealed, b"tenant/provider"), Err(SealError::Open));
        let again = SealingKey::derive_for(secret, FACTOR_LABEL);
        assert_eq!(again.open(&factor.seal(b"x", b"a").unwrap(), b"a").unwrap(), b"x");
    }

    #[test]
    fn the_key_is_never_printed() {
        assert_eq!(format!("{:?}", key()), "SealingKey(***)");
    }
}
