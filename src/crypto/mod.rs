//! Cryptography for forge, kept apart from HTTP and storage so each
//! primitive is chosen and reviewed in one place: argon2id password hashing
//! on a bounded pool ([`password`]; the policy on which passwords are
//! acceptable is [`crate::domain::password_policy`]), JWT signing and
//! strict verification with a rotating keyring and its JWKS ([`jwt`]),
//! random opaque tokens, codes and their stored hashes ([`tokens`]), and the
//! second-factor primitives ([`totp`], [`seal`], [`recovery_codes`]).
//! Nothing here logs or returns a secret; callers get typed results and
//! errors that are safe to log.
//!
//! # How the second-factor pieces fit together
//!
//! One server secret (`server_secrets` row `factor_key`, created on first
//! start) yields two independent keys through HKDF-SHA256 with distinct
//! labels ([`FactorKeys`], built once in `app::build_state`): the
//! [`seal::SealingKey`] and the [`recovery_codes::RecoveryCodeKey`].
//!
//! - **TOTP enrolment:** choose the factor id, [`totp::TotpSecret::generate`],
//!   seal its bytes with the factor id as associated data, store the pending
//!   factor (`FactorStore::create_factor`), and show the user the base32
//!   secret, [`totp::otpauth_uri`] and [`totp::qr_svg`] of that URI. The
//!   first correct code ([`totp::verify`] gives its step) confirms it
//!   (`FactorStore::confirm_factor`, with that step and the hashes of ten
//!   fresh [`recovery_codes::generate`] codes, which are shown only when
//!   the store says this was the user's first factor).
//! - **TOTP sign-in:** load the factor (`FactorStore::factor_secret`), open
//!   the sealed secret, [`totp::verify`] the code, then
//!   `FactorStore::advance_totp_step` with the matched step: only `true`
//!   there accepts the code (replay protection is the store's single
//!   conditional `UPDATE`, never an in-memory check).
//! - **Recovery code:** [`recovery_codes::RecoveryCode::parse`] what was
//!   typed, hash it with the [`recovery_codes::RecoveryCodeKey`], and
//!   `FactorStore::use_recovery_code` spends it (again one conditional
//!   `UPDATE`).

pub mod jwt;
pub mod password;
pub mod recovery_codes;
pub mod seal;
pub mod tokens;
pub mod totp;

use hkdf::Hkdf;
use sha2::Sha256;

/// The name of the server secret the factor keys derive from.
pub const FACTOR_SECRET_NAME: &str = "factor_key";

/// The keys second factors use, derived once from the `factor_key` server
/// secret. `Debug` prints neither.
#[derive(Clone, Debug)]
pub struct FactorKeys {
    /// Seals TOTP secrets (the factor id as associated data).
    pub seal: seal::SealingKey,
    /// Hashes recovery codes for storage and lookup.
    pub recovery: recovery_codes::RecoveryCodeKey,
}

impl FactorKeys {
    pub fn derive(server_secret: &[u8]) -> Self {
        Self {
            seal: seal::SealingKey::derive(server_secret),
            recovery: recovery_codes::RecoveryCodeKey::derive(server_secret),
        }
    }
}

/// A 256-bit key for one purpose (`label`, the HKDF `info`) from a server
/// secret: keys with different labels are independent, so one stored
/// secret serves several uses without one key doing two jobs.
pub(crate) fn derive_key(server_secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    // Infallible: HKDF-SHA256 expands up to 255 * 32 bytes; this asks for 32.
    #[allow(clippy::expect_used)]
    Hkdf::<Sha256>::new(None, server_secret)
        .expand(label, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 test case 3 (SHA-256, no salt, no info), so the derivation
    /// is HKDF as specified.
    #[test]
    fn derive_key_is_rfc5869_hkdf() {
        let ikm = [0x0bu8; 22];
        let okm = derive_key(&ikm, b"");
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
        assert_ne!(derive_key(&ikm, b"a"), derive_key(&ikm, b"b"));
    }
}
