//! One-time codes: six digits from a CSPRNG, kept only in the cache as an
//! HMAC under a server key (a leaked cache does not give the code away by a
//! million hashes), consumed by one atomic compare-and-delete, and burned
//! after `otp.max_attempts` wrong tries within `otp.attempt_window`.
//!
//! Keys name the purpose, the tenant and the identifier, so a sign-in code
//! never verifies an email and a reset code never signs anyone in.

use std::time::Duration;

use uuid::Uuid;

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
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Valid,
    /// Wrong, expired, or never issued.
    Invalid,
    /// Too many wrong tries: the code is gone; a new one must be requested.
    Burned,
}

fn code_key(purpose: Purpose, tenant_id: Uuid, identifier: &str) -> String {
    format!("code:{}:{tenant_id}:{identifier}", purpose.as_str())
}

fn attempts_key(purpose: Purpose, tenant_id: Uuid, identifier: &str) -> String {
    format!("code-tries:{}:{tenant_id}:{identifier}", purpose.as_str())
}

fn digest(state: &AppState, purpose: Purpose, identifier: &str, code: &str) -> Vec<u8> {
    let message = format!("{}\0{identifier}\0{code}", purpose.as_str());
    hmac_sha256_hex(&state.refresh_key, message.as_bytes()).into_bytes()
}

/// Creates a fresh code for `identifier`, replacing any earlier one and
/// clearing its wrong-try count.
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
        .set(&code_key(purpose, tenant_id, identifier), &stored, ttl)
        .await?;
    state
        .cache
        .delete(&attempts_key(purpose, tenant_id, identifier))
        .await?;
    Ok(Secret::new(code))
}

/// Consumes the code if it matches (exactly once, even under concurrency).
pub async fn consume(
    state: &AppState,
    purpose: Purpose,
    tenant_id: Uuid,
    identifier: &str,
    code: &str,
) -> AppResult<Check> {
    let max = u64::from(state.config.otp.max_attempts);
    let tries_key = attempts_key(purpose, tenant_id, identifier);
    let code_key = code_key(purpose, tenant_id, identifier);
    if let Some(raw) = state.cache.get(&tries_key).await? {
        let mut buf = [0u8; 8];
        if raw.len() == 8 {
            buf.copy_from_slice(&raw);
        }
        if u64::from_be_bytes(buf) >= max {
            return Ok(Check::Burned);
        }
    }
    let well_formed = code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit());
    if well_formed
        && state
            .cache
            .take_if_equals(&code_key, &digest(state, purpose, identifier, code))
            .await?
    {
        state.cache.delete(&tries_key).await?;
        return Ok(Check::Valid);
    }
    let (tries, _) = state.cache.incr(&tries_key, state.config.otp.attempt_window).await?;
    if tries >= max {
        state.cache.delete(&code_key).await?;
        return Ok(Check::Burned);
    }
    Ok(Check::Invalid)
}
