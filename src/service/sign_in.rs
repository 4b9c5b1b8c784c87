//! The one decision every sign-in reaches once its first factor succeeded
//! (a password, a one-time code, an emailed verification code): open a
//! session and hand out tokens now, or answer with a second step first.
//!
//! Two rules meet here, in this order:
//!
//! 1. The user's own: whoever holds a confirmed second factor gets an
//!    `mfa_token` ([`ChallengeKind::SecondFactor`]) and the list of factors
//!    to choose from instead of tokens, and no session exists until
//!    `POST /v1/auth/mfa/verify` completes it. Holding a factor is all the
//!    tenant's policy asks, so it is not consulted then.
//! 2. The tenant's (`service::mfa_policy::MfaPolicies::gate`), for a user
//!    without a factor: nothing ([`Gate::Proceed`]); tokens marked
//!    "enrolment due" while the grace runs ([`Gate::ProceedEnrollmentDue`]);
//!    past it, no session but an `enrollment_token` that only the factor
//!    enrolment calls accept ([`Gate::EnrollmentRequired`]). Confirming the
//!    first factor with it opens the session the sign-in could not.
//!
//! The callers hand the [`Gate`] to [`Gate::proceed`] and either go on to
//! open the session or return the answer it gives them unchanged, so every
//! way in (password, one-time code, email verification, the OAuth2 password
//! grant over the first) follows the same rules and none matches the cases
//! on its own.
//!
//! Nothing is said about factors before the first factor succeeded: the
//! callers come here only after it did, and every failure before this point
//! answers as it did without second factors.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use super::challenges::{ChallengeKind, Challenges};
use super::mfa_policy::{MfaPolicies, PolicyGate};
use super::sessions::Principal;
use crate::domain::mfa_policy::MfaDecision;
use crate::domain::{Aal, Assurance, Timestamp};
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

/// A sign-in past the tenant policy's grace by a user without a factor:
/// the single-use `enrollment_token` (shown once), a bearer that only the
/// factor enrolment calls accept.
#[derive(Debug)]
pub struct EnrollmentStep {
    pub enrollment_token: Secret,
}

/// What a sign-in does after its first factor.
#[derive(Debug)]
pub enum Gate {
    /// Open the session now, at the first factor's assurance.
    Proceed,
    /// Open the session now, but say that the tenant's policy wants a
    /// factor enrolled by `until` (the end of the grace).
    ProceedEnrollmentDue { until: Timestamp },
    /// Answer with a second step instead of tokens; no session yet.
    SecondFactor(SecondStep),
    /// Answer with the enrolment token instead of tokens; no session.
    EnrollmentRequired(EnrollmentStep),
}

/// What a caller carries from a [`Gate`] that lets it open the session
/// into the answer ([`SignedIn::complete`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Proceed {
    /// The end of the policy's grace, when enrolment is due.
    pub enrollment_due: Option<Timestamp>,
}

impl Gate {
    /// `Ok` when the sign-in opens its session now, else the answer it
    /// gives instead (second step or enrolment token), for the caller to
    /// return as it is.
    pub fn proceed<T>(self) -> Result<Proceed, SignedIn<T>> {
        match self {
            Gate::Proceed => Ok(Proceed::default()),
            Gate::ProceedEnrollmentDue { until } => Ok(Proceed {
                enrollment_due: Some(until),
            }),
            Gate::SecondFactor(step) => Err(SignedIn::SecondFactor(step)),
            Gate::EnrollmentRequired(step) => Err(SignedIn::EnrollmentRequired(step)),
        }
    }
}

/// A sign-in's outcome as the sign-in use cases return it: tokens (perhaps
/// with enrolment due), the second step, or the enrolment token.
pub enum SignedIn<T> {
    Complete(T),
    /// Tokens, with the policy's grace running until `until`.
    EnrollmentDue {
        signed_in: T,
        until: Timestamp,
    },
    SecondFactor(SecondStep),
    EnrollmentRequired(EnrollmentStep),
}

impl<T> SignedIn<T> {
    /// The answer of a sign-in that opened its session as `proceed` said.
    pub fn complete(signed_in: T, proceed: Proceed) -> Self {
        match proceed.enrollment_due {
            None => SignedIn::Complete(signed_in),
            Some(until) => SignedIn::EnrollmentDue { signed_in, until },
        }
    }

    /// What the session handed out, if one was opened.
    pub fn tokens(&self) -> Option<&T> {
        match self {
            SignedIn::Complete(signed_in) | SignedIn::EnrollmentDue { signed_in, .. } => Some(signed_in),
            SignedIn::SecondFactor(_) | SignedIn::EnrollmentRequired(_) => None,
        }
    }

    /// A stable name of the outcome, for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            SignedIn::Complete(_) | SignedIn::EnrollmentDue { .. } => "success",
            SignedIn::SecondFactor(_) => "mfa_required",
            SignedIn::EnrollmentRequired(_) => "mfa_enrollment_required",
        }
    }
}

/// The decision after a first factor, over the factors store, the
/// challenges and the tenant's policy. Held by every sign-in use case
/// (accounts, one-time codes, email verification).
#[derive(Clone)]
pub struct SignInGate {
    store: Arc<dyn Store>,
    challenges: Challenges,
    policies: MfaPolicies,
}

impl SignInGate {
    pub fn new(store: Arc<dyn Store>, challenges: Challenges, policies: MfaPolicies) -> Self {
        Self {
            store,
            challenges,
            policies,
        }
    }

    /// Decides what a sign-in of `user` in `tenant` whose first factor
    /// proved `first` does next (see the module docs). A second step's
    /// challenge, and an enrolment token, keep `first` and the request's
    /// address and user agent for the session they open.
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
            return Ok(match self.policies.gate(tenant, user, false, first, meta).await? {
                PolicyGate::AsUsual => Gate::Proceed,
                PolicyGate::EnrollmentDue { until } => Gate::ProceedEnrollmentDue { until },
                PolicyGate::EnrollmentRequired { enrollment_token } => {
                    Gate::EnrollmentRequired(EnrollmentStep { enrollment_token })
                }
            });
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

    /// Whether the tenant's policy wants a factor of a new account before
    /// its first session (it applies to everyone and has no grace): the
    /// sign-up then creates the account without a session and answers
    /// [`Self::signup_enrollment`]'s token instead of tokens.
    pub async fn signup_needs_enrollment(&self, tenant: &Tenant) -> AppResult<bool> {
        Ok(matches!(
            self.policies.for_new_account(tenant).await?,
            MfaDecision::Required
        ))
    }

    /// The enrolment token of a sign-up that [`Self::signup_needs_enrollment`]
    /// held back from a session; `first`: what the sign-up proved (the
    /// password, or the one-time code that created the account).
    pub async fn signup_enrollment(
        &self,
        tenant: &Tenant,
        user: &User,
        first: &Assurance,
        meta: &RequestMeta,
    ) -> AppResult<EnrollmentStep> {
        let enrollment_token = self.policies.enrollment_token(tenant, user, first, meta).await?;
        Ok(EnrollmentStep { enrollment_token })
    }

    /// After a sign-up opened its session: the end of the policy's grace
    /// when enrolment is due (the grace starts now, stamped on the account).
    pub async fn signup_enrollment_due(&self, tenant: &Tenant, user: &User) -> AppResult<Option<Timestamp>> {
        Ok(match self.policies.decide(tenant, user, false).await? {
            MfaDecision::Due { until } => Some(until),
            _ => None,
        })
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
