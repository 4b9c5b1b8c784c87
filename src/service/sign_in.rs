//! The one decision every sign-in reaches once its first factor succeeded
//! (a password, a one-time code, an emailed verification code): open a
//! session and hand out tokens now, or answer with a second step first.
//!
//! Today the rule is the user's own: whoever holds a confirmed second factor
//! gets an `mfa_token` ([`ChallengeKind::SecondFactor`]) and the list of
//! factors to choose from instead of tokens, and no session exists until
//! `POST /v1/auth/mfa/verify` completes it. The callers only match on
//! [`Gate`], so every way in follows the same rule. The tenant's MFA policy
//! (grace, required enrolment: `service::mfa_policy::MfaPolicies::gate`)
//! belongs here too and is not applied yet: that hook is the next step.
//!
//! Nothing is said about factors before the first factor succeeded: the
//! callers come here only after it did, and every failure before this point
//! answers as it did without second factors.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use super::challenges::{ChallengeKind, Challenges};
use super::sessions::Principal;
use crate::domain::{Aal, Assurance};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::store::{Factor, Store, Tenant, User};

/// A sign-in whose first factor succeeded but that needs a second: the
/// single-use `mfa_token` (shown once) and the factors the user may answer
/// with (never a secret).
#[derive(Debug)]
pub struct SecondStep {
    pub mfa_token: Secret,
    pub factors: Vec<Factor>,
}

/// What a sign-in does after its first factor.
#[derive(Debug)]
pub enum Gate {
    /// Open the session now, at the first factor's assurance.
    Proceed,
    /// Answer with a second step instead of tokens; no session yet.
    SecondFactor(SecondStep),
}

/// A sign-in's outcome as the sign-in use cases return it: tokens, or the
/// second step.
pub enum SignedIn<T> {
    Complete(T),
    SecondFactor(SecondStep),
}

/// The decision after a first factor, over the factors store and the
/// challenges. Held by every sign-in use case (accounts, one-time codes,
/// email verification).
#[derive(Clone)]
pub struct SignInGate {
    store: Arc<dyn Store>,
    challenges: Challenges,
}

impl SignInGate {
    pub fn new(store: Arc<dyn Store>, challenges: Challenges) -> Self {
        Self { store, challenges }
    }

    /// Decides what a sign-in of `user` in `tenant` whose first factor
    /// proved `first` does next. A second step's challenge keeps `first`
    /// and the request's address and user agent for the session it opens.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn after_first_factor(
        &self,
        tenant: &Tenant,
        user: &User,
        first: &Assurance,
        meta: &RequestMeta,
    ) -> AppResult<Gate> {
        let factors = self.usable_factors(tenant.id, user.id).await?;
        if factors.is_empty() {
            return Ok(Gate::Proceed);
        }
        let mfa_token = self
            .challenges
            .issue(ChallengeKind::SecondFactor, tenant.id, user.id, first.clone(), meta)
            .await?;
        Ok(Gate::SecondFactor(SecondStep { mfa_token, factors }))
    }

    /// The rule for changing how one signs in (email, phone, password,
    /// factors): a user with a confirmed second factor does it only from a
    /// session at `aal` 2 (else 403 `mfa_required`: step up at
    /// `POST /v1/auth/mfa/verify` with the bearer, then retry), so a stolen
    /// password alone, or a session opened before the factor existed, cannot
    /// take the account over. Without a factor there is nothing to step up
    /// with, and the change's own proof (current password) is what counts.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn require_assurance_for_change(&self, principal: &Principal) -> AppResult<()> {
        if principal.assurance().meets(Aal::Two) {
            return Ok(());
        }
        if self
            .usable_factors(principal.tenant.id, principal.user_id)
            .await?
            .is_empty()
        {
            return Ok(());
        }
        Err(AppError::forbidden(
            ErrorCode::MfaRequired,
            "this change needs a second factor: step up at POST /v1/auth/mfa/verify, then retry with the new token",
        ))
    }

    /// The user's confirmed factors, oldest first (pending enrolments
    /// cannot sign in).
    pub async fn usable_factors(&self, tenant_id: Uuid, user_id: Uuid) -> AppResult<Vec<Factor>> {
        Ok(self
            .store
            .list_factors(tenant_id, user_id)
            .await?
            .into_iter()
            .filter(Factor::is_confirmed)
            .collect())
    }
}
