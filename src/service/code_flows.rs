//! What every flow that sends a one-time code to an address goes through:
//! the per-IP send budget and the address's resend cooldown, issuing and
//! checking the code, the message, the proof rules once the code checks out,
//! and the sessions it signs in or out. Address changes
//! ([`super::address`]) and email verification and recovery
//! ([`super::recovery`]) share one value of it, built once in
//! `app::build_state`, so that list is written once and the two flows cannot
//! drift apart on the budget they spend or the answer a spent code gets.

use super::RequestMeta;
use super::limits::ip_key;
use super::notices::Notices;
use crate::cache::RateBucket;
use crate::config::{OtpConfig, RateLimitConfig};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::notify::Notifier;
use crate::service::codes::Codes;
use crate::service::limits::Limits;
use crate::service::otp::Otp;
use crate::service::proof::Proof;
use crate::service::sessions::Sessions;
use crate::service::sign_in::SignInGate;
use crate::store::Tenant;

/// The services and settings a code flow goes through. Read by the flows
/// directly; the rules both flows share are its methods.
pub struct CodeFlows {
    pub(super) notifier: Notifier,
    /// Security notices (address and password changes).
    pub(super) notices: Notices,
    pub(super) limits: Limits,
    pub(super) codes: Codes,
    /// For its resend cooldown, shared with sign-in codes.
    pub(super) otp: Otp,
    pub(super) proof: Proof,
    pub(super) sessions: Sessions,
    /// What a sign-in does after its first factor (email verification signs in).
    pub(super) gate: SignInGate,
    pub(super) rate_limit: RateLimitConfig,
    pub(super) otp_config: OtpConfig,
}

impl CodeFlows {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        notifier: Notifier,
        limits: Limits,
        codes: Codes,
        otp: Otp,
        proof: Proof,
        sessions: Sessions,
        gate: SignInGate,
        rate_limit: RateLimitConfig,
        otp_config: OtpConfig,
        notices: Notices,
    ) -> Self {
        Self {
            notifier,
            notices,
            limits,
            codes,
            otp,
            proof,
            sessions,
            gate,
            rate_limit,
            otp_config,
        }
    }

    /// Before a code goes to `address`: the caller's per-IP send budget, then
    /// the address's resend cooldown (see `otp::request` for that order).
    pub(super) async fn before_send(&self, tenant: &Tenant, address: &str, meta: &RequestMeta) -> AppResult<()> {
        self.limits
            .spend(
                RateBucket::OtpSendIp,
                &ip_key(meta.ip.as_deref()),
                self.rate_limit.otp_send_per_ip,
            )
            .await?;
        self.otp.cooldown(tenant, address).await
    }

    /// The answer to a code whose attempts are spent: 429 until the attempt
    /// window has passed.
    pub(super) fn burned(&self) -> AppError {
        AppError::RateLimited {
            retry_after_secs: self.otp_config.attempt_window.as_secs(),
        }
    }
}

/// The answer to a wrong or expired code.
pub(super) fn invalid_code() -> AppError {
    AppError::bad_request(ErrorCode::InvalidCode, "the code is wrong or expired")
}
