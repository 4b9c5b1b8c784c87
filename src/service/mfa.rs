//! The second step of a sign-in and step-up: `POST /v1/auth/mfa/verify`
//! (and the OAuth2 `mfa` grant) with an `mfa_token` from
//! [`super::sign_in::SignInGate`], or with a bearer to raise the caller's
//! session to `aal` 2.
//!
//! Rules kept here:
//!
//! - **The challenge decides whose factor is checked.** The `mfa_token` is
//!   opened (not spent) to learn the user; the factor is checked; only then
//!   is the challenge spent, so exactly one request ends in a session, and
//!   a concurrent second request with the same token gets `invalid_mfa`.
//! - **Wrong answers count twice**: on the challenge (the fifth burns it;
//!   the user signs in again) and, through [`Factors`], on the account's
//!   failure budget shared with passwords, so a second factor adds no fresh
//!   guesses. Every failure answers the same 401 `invalid_mfa`.
//! - **The session starts here**, from the challenge's first factor
//!   [stepped up](crate::domain::Assurance::stepped_up) with the second one,
//!   and from the sign-in's request (address, user agent).

use std::sync::Arc;

use serde_json::Value;

use super::RequestMeta;
use super::challenges::{ChallengeKind, Challenges, WrongAttempt};
use super::factors::{Factors, MfaProof};
use super::passkey_factors::{PasskeyFactors, PasskeyOptions};
use super::sessions::{self, AccessToken, Principal, SessionStart, Sessions};
use crate::clock::Clock;
use crate::domain::{Amr, Assurance, AuditEvent};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::{Store, Tenant, User};
use crate::telemetry::metrics::{Metrics, MfaMethod};

/// A second factor as the client offers it.
pub enum SecondFactor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
    /// A WebAuthn assertion answering the passkey options of `request_id`.
    Passkey {
        request_id: &'a str,
        credential: Value,
    },
}

impl SecondFactor<'_> {
    /// The factor kind, for the audit of a wrong answer.
    fn name(&self) -> &'static str {
        match self {
            SecondFactor::Totp(_) => MfaMethod::Totp.as_str(),
            SecondFactor::RecoveryCode(_) => MfaMethod::RecoveryCode.as_str(),
            SecondFactor::Passkey { .. } => MfaMethod::WebAuthn.as_str(),
        }
    }
}

/// The second step over the challenges, the factor checks, sessions and
/// the store (the sign-in it completes is written like any other).
#[derive(Clone)]
pub struct Mfa {
    store: Arc<dyn Store>,
    clock: Clock,
    challenges: Challenges,
    sessions: Sessions,
    factors: Arc<Factors>,
    passkeys: Arc<PasskeyFactors>,
    metrics: Arc<Metrics>,
}

impl Mfa {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        challenges: Challenges,
        sessions: Sessions,
        factors: Arc<Factors>,
        passkeys: Arc<PasskeyFactors>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            clock,
            challenges,
            sessions,
            factors,
            passkeys,
            metrics,
        }
    }

    /// The user a live `mfa_token` of `tenant` belongs to (disabled since:
    /// none), without spending it.
    pub(crate) async fn challenged_user(&self, tenant: &Tenant, mfa_token: &str) -> AppResult<User> {
        let challenge = self
            .challenges
            .open(ChallengeKind::SecondFactor, tenant.id, mfa_token)
            .await?
            .ok_or_else(AppError::invalid_mfa)?;
        self.store
            .get_user(tenant.id, challenge.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(AppError::invalid_mfa)
    }

    /// Counts a wrong answer on the challenge (and audits it); the error to
    /// answer is the factor check's own.
    pub(crate) async fn wrong_answer(
        &self,
        tenant: &Tenant,
        user: &User,
        mfa_token: &str,
        method: &'static str,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let outcome = self
            .challenges
            .fail(ChallengeKind::SecondFactor, tenant.id, mfa_token)
            .await?;
        let mut audit = meta.audit(
            tenant.id,
            self.clock.now(),
            AuditEvent::MfaFailed,
            Some(user.id),
            Some(user.id),
        );
        audit.detail = serde_json::json!({ "method": method, "burned": outcome == WrongAttempt::Burned });
        self.store.record_audit(audit).await?;
        self.metrics.login("mfa_failed");
        Ok(())
    }

    /// Completes a sign-in: checks `factor` for the user of `mfa_token`,
    /// spends the token and opens the session at `aal` 2. 401
    /// `invalid_mfa` for a wrong factor or a token that is unknown, spent,
    /// expired or burned; 429 once the account's failure budget is spent.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn complete(
        &self,
        tenant: &Tenant,
        mfa_token: &str,
        factor: SecondFactor<'_>,
        meta: &RequestMeta,
    ) -> AppResult<(User, sessions::Tokens)> {
        let user = self.challenged_user(tenant, mfa_token).await?;
        let name = factor.name();
        let (method, methods) = match self.check(tenant, &user, factor, meta).await {
            Ok(passed) => passed,
            Err(e) if e.code() == ErrorCode::InvalidMfa => {
                self.wrong_answer(tenant, &user, mfa_token, name, meta).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.finish(tenant, &user, mfa_token, method.as_str(), &methods, meta)
            .await
    }

    /// Spends the challenge after a second factor proved `methods` and
    /// opens the session; `second` names the factor kind in the audit.
    async fn finish(
        &self,
        tenant: &Tenant,
        user: &User,
        mfa_token: &str,
        second: &'static str,
        methods: &[Amr],
        meta: &RequestMeta,
    ) -> AppResult<(User, sessions::Tokens)> {
        let challenge = self
            .challenges
            .consume(ChallengeKind::SecondFactor, tenant.id, mfa_token)
            .await?
            .filter(|c| c.user_id == user.id)
            .ok_or_else(AppError::invalid_mfa)?;
        // The session is the sign-in attempt's: its client, its first factor
        // stepped up with the second.
        let start = SessionStart::new(
            challenge.first_factor.stepped_up(methods.iter().copied()),
            serde_json::json!({
                "method": "mfa",
                "first_factor": challenge.first_factor.amr_names(),
                "second_factor": second,
            }),
        );
        let signed_in = self
            .sessions
            .start(tenant, user.id, &challenge.meta(meta), start)
            .await?;
        self.metrics.login("success");
        Ok(signed_in)
    }

    /// Step-up: checks `factor` for the caller and raises their session to
    /// `aal` 2 (audited `mfa_step_up`). 401 `invalid_mfa` for a wrong
    /// factor (counted on the account's failure budget).
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn step_up(
        &self,
        principal: &Principal,
        factor: SecondFactor<'_>,
        meta: &RequestMeta,
    ) -> AppResult<(User, Assurance, AccessToken)> {
        let tenant = &principal.tenant;
        let user = super::accounts::me(self.store.as_ref(), principal).await?;
        let (method, methods) = self.check(tenant, &user, factor, meta).await?;
        self.raise(principal, method.as_str(), &methods, meta).await
    }

    /// `POST /v1/auth/mfa/webauthn/options` with an `mfa_token`: request
    /// options naming the passkeys of the token's user (the token is not
    /// spent). 401 `invalid_mfa` for a dead token.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn passkey_options(
        &self,
        tenant: &Tenant,
        mfa_token: &str,
        meta: &RequestMeta,
    ) -> AppResult<PasskeyOptions> {
        let user = self.challenged_user(tenant, mfa_token).await?;
        self.passkeys.start_assertion(&user, meta).await
    }

    /// The same options for a step-up of the caller's session.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn step_up_passkey_options(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> AppResult<PasskeyOptions> {
        let user = super::accounts::me(self.store.as_ref(), principal).await?;
        self.passkeys.start_assertion(&user, meta).await
    }

    /// Checks `factor` for `user`: which kind passed, and the RFC 8176
    /// methods it adds (a TOTP or recovery code is a one-time password,
    /// `otp`; a passkey says where its key lives and that the user was
    /// present).
    async fn check(
        &self,
        tenant: &Tenant,
        user: &User,
        factor: SecondFactor<'_>,
        meta: &RequestMeta,
    ) -> AppResult<(MfaMethod, Vec<Amr>)> {
        match factor {
            SecondFactor::Totp(code) => {
                let method = self.factors.verify(tenant, user, MfaProof::Totp(code), meta).await?;
                Ok((method, vec![Amr::Otp]))
            }
            SecondFactor::RecoveryCode(code) => {
                let method = self
                    .factors
                    .verify(tenant, user, MfaProof::RecoveryCode(code), meta)
                    .await?;
                Ok((method, vec![Amr::Otp]))
            }
            SecondFactor::Passkey { request_id, credential } => {
                let proof = self
                    .passkeys
                    .verify_assertion(user, request_id, credential, meta)
                    .await?;
                Ok((MfaMethod::WebAuthn, proof.methods))
            }
        }
    }

    /// Raises the caller's session after a second factor proved `methods`.
    pub(crate) async fn raise(
        &self,
        principal: &Principal,
        second: &'static str,
        methods: &[Amr],
        meta: &RequestMeta,
    ) -> AppResult<(User, Assurance, AccessToken)> {
        let mut audit = meta.audit(
            principal.tenant.id,
            self.clock.now(),
            AuditEvent::MfaStepUp,
            Some(principal.user_id),
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "second_factor": second, "session_id": principal.session_id });
        self.sessions.step_up(principal, methods, Some(audit)).await
    }
}
