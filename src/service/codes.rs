//! One-time codes: six digits from a CSPRNG, kept only in the cache as an
//! HMAC under a server key (a leaked cache does not give the code away by a
//! million hashes), and checked by one atomic step of the cache
//! ([`crate::cache::Cache::try_code`]) that compares, counts the wrong try
//! and burns the code at `otp.max_attempts` wrong tries, so parallel guesses
//! never get more tries than that. A burned code answers 429 for
//! `otp.attempt_window` or until a new code is issued. Wrong tries live with
//! the code: a guess at an address without a code stores nothing.
//!
//! Keys name the purpose, the tenant and the identifier, so a sign-in code
//! never verifies an email and a reset code never signs anyone in.

use std::time::Duration;

use uuid::Uuid;

use crate::cache::CacheKey;
use crate::crypto::tokens::{hmac_sha256_hex, random_digits};
use crate::error::AppResult;
use crate::secret::Secret;
use crate::state::AppState;

pub const CODE_DIGITS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    SignIn,
    EmailVerification,
    PasswordReset,
    /// Proves a signed-in user is the account's owner before a change of
    /// how they sign in (accounts without a password).
    Reauthentication,
    /// Proves the new address of a pending email or phone change.
    AddressChange,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "otp",
            Purpose::EmailVerification => "verify",
            Purpose::PasswordReset => "reset",
            Purpose::Reauthentication => "reauth",
            Purpose::AddressChange => "address",
        }
    }
}

/// The outcome of presenting a code.
pub use crate::cache::CodeCheck as Check;

fn digest(state: &AppState, purpose: Purpose, identifier: &str, code: &str) -> Vec<u8> {
    let message = format!("{}\0{identifier}\0{code}", purpose.as_str());
    hmac_sha256_hex(&state.refresh_key, message.as_bytes()).into_bytes()
}

/// Creates a fresh code for `identifier`, replacing any earlier one, its
/// wrong tries and a burn.
#[tracing::instrument(skip_all, fields(purpose = ?purpose, tenant_id = %tenant_id))]
pub async fn issue(
    state: &AppState,
    purpose: Purpose,
    tenant_id: Uuid,
    identifier: &str,
    ttl: Duration,
) -> AppResult<Secret> {
    let code = random_digits(CODE_DIGITS);
    let stored = digest(state, purpose, identifier, &code);
    state
        .cache
        .put_code(&CacheKey::code(purpose.as_str(), tenant_id, identifier), &stored, ttl)
        .await?;
    Ok(Secret::new(code))
}

/// Presents a code: consumed if it matches (exactly once, even under
/// concurrency); a wrong one, well-formed or not, counts as a try.
#[tracing::instrument(skip_all, fields(purpose = ?purpose, tenant_id = %tenant_id))]
pub async fn consume(
    state: &AppState,
    purpose: Purpose,
    tenant_id: Uuid,
    identifier: &str,
    code: &str,
) -> AppResult<Check> {
    Ok(state
        .cache
        .try_code(
            &CacheKey::code(purpose.as_str(), tenant_id, identifier),
            &digest(state, purpose, identifier, code),
            state.config.otp.max_attempts,
            state.config.otp.attempt_window,
        )
        .await?)
}
