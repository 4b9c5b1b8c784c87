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

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
use crate::config::OtpConfig;
use crate::crypto::tokens::{hmac_sha256_hex, random_digits};
use crate::error::AppResult;
use crate::secret::Secret;

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

/// One-time codes over the cache, keyed under the server key.
#[derive(Clone)]
pub struct Codes {
    cache: Arc<dyn Cache>,
    refresh_key: Arc<Vec<u8>>,
    otp: OtpConfig,
}

impl Codes {
    pub fn new(cache: Arc<dyn Cache>, refresh_key: Arc<Vec<u8>>, otp: OtpConfig) -> Self {
        Self {
            cache,
            refresh_key,
            otp,
        }
    }

    fn digest(&self, purpose: Purpose, identifier: &str, code: &str) -> Vec<u8> {
        let message = format!("{}\0{identifier}\0{code}", purpose.as_str());
        hmac_sha256_hex(&self.refresh_key, message.as_bytes()).into_bytes()
    }

    /// Creates a fresh code for `identifier`, replacing any earlier one, its
    /// wrong tries and a burn.
    #[tracing::instrument(skip_all, fields(purpose = ?purpose, tenant_id = %tenant_id))]
    pub async fn issue(&self, purpose: Purpose, tenant_id: Uuid, identifier: &str, ttl: Duration) -> AppResult<Secret> {
        let code = random_digits(CODE_DIGITS);
        let stored = self.digest(purpose, identifier, &code);
        self.cache
            .put_code(&CacheKey::code(purpose.as_str(), tenant_id, identifier), &stored, ttl)
            .await?;
        Ok(Secret::new(code))
    }

    /// Presents a code: consumed if it matches (exactly once, even under
    /// concurrency); a wrong one, well-formed or not, counts as a try.
    #[tracing::instrument(skip_all, fields(purpose = ?purpose, tenant_id = %tenant_id))]
    pub async fn consume(&self, purpose: Purpose, tenant_id: Uuid, identifier: &str, code: &str) -> AppResult<Check> {
        Ok(self
            .cache
            .try_code(
                &CacheKey::code(purpose.as_str(), tenant_id, identifier),
                &self.digest(purpose, identifier, code),
                self.otp.max_attempts,
                self.otp.attempt_window,
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    fn codes() -> Codes {
        Codes::new(
            test_ports::cache(),
            Arc::new(b"server key".to_vec()),
            crate::config::Config::default().otp,
        )
    }

    const TTL: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn a_code_works_once_and_only_for_its_purpose() {
        let codes = codes();
        let tenant = Uuid::new_v4();
        let code = codes
            .issue(Purpose::SignIn, tenant, "a@example.com", TTL)
            .await
            .unwrap();
        let code = code.expose();
        let other_purpose = codes
            .consume(Purpose::PasswordReset, tenant, "a@example.com", code)
            .await
            .unwrap();
        assert_eq!(other_purpose, Check::Invalid);
        let ok = codes
            .consume(Purpose::SignIn, tenant, "a@example.com", code)
            .await
            .unwrap();
        assert_eq!(ok, Check::Valid);
        let again = codes
            .consume(Purpose::SignIn, tenant, "a@example.com", code)
            .await
            .unwrap();
        assert_eq!(again, Check::Invalid);
    }

    #[tokio::test]
    async fn wrong_tries_burn_the_code_at_max_attempts() {
        let codes = codes();
        let tenant = Uuid::new_v4();
        let code = codes
            .issue(Purpose::SignIn, tenant, "a@example.com", TTL)
            .await
            .unwrap();
        let wrong = if code.expose() == "000000" { "111111" } else { "000000" };
        let mut last = Check::Valid;
        for _ in 0..codes.otp.max_attempts {
            last = codes
                .consume(Purpose::SignIn, tenant, "a@example.com", wrong)
                .await
                .unwrap();
        }
        assert_eq!(last, Check::Burned);
        let right = codes
            .consume(Purpose::SignIn, tenant, "a@example.com", code.expose())
            .await
            .unwrap();
        assert_eq!(right, Check::Burned);
    }
}
