//! The hosted pages' single sign-on (SSO) session: who is signed in to
//! forge's own sign-in pages (`/login`, `/account`, and the OpenID Connect
//! flows that start there), and the sign-in steps that open it.
//!
//! Sessions. Built like the admin site's (`service::site::sessions`): a
//! sign-in mints a random token (256 bits) that only the browser holds, in
//! the `__Host-forge_sso` cookie (`forge_sso` in plain-HTTP development);
//! the [`Cache`] keeps the session under the token's SHA-256, so a cache
//! dump replays nothing and, with Redis, every instance sees it. A session
//! ends when idle for `jwt.refresh_ttl` (refreshed on use) and in any case
//! `jwt.session_max_age` after sign-in, the limits of the API's sessions,
//! both checked against the application [`Clock`]; the cache TTL only
//! frees the memory. Every sign-in mints a new token (no fixation), and
//! the handlers drop the browser's previous session.
//!
//! The session records the user's credential epoch at sign-in. A password
//! reset or change, "sign out everywhere" and a disable move the stored
//! epoch on in their own transaction, so every SSO session of the user ends
//! on its next request ([`Sso::current`]), whatever its cookie. A password
//! change made *from* the account page ends this browser's session too;
//! the page then signs it in again with a fresh token.
//!
//! Sign-in. The steps mirror the admin site's and go through the same use
//! cases, so rate limits, lockout and audit are shared with the API:
//! [`Accounts::check_password_sign_in`] for the password (one argon2
//! verification whether or not the account exists, one generic failure),
//! then the user's own second factor (a hosted challenge,
//! [`ChallengeKind::HostedSecondFactor`], answered with a TOTP or recovery
//! code through [`Factors::verify`] or a passkey through
//! [`PasskeyFactors::verify_assertion`]), then the tenant's policy (past
//! its grace, a user without a factor enrols a TOTP factor first,
//! [`ChallengeKind::HostedEnrollment`]). A discoverable passkey that
//! verified the user signs in alone ([`Sso::sign_in_passkey`]). A one-time
//! code sent by email or SMS is a first factor like the password
//! ([`Sso::sign_in_code`], through `Otp::prove`: the API's budgets, burn
//! and account rules, no API session) and meets the same gate.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
use crate::clock::Clock;
use crate::crypto::tokens::random_token;
use crate::domain::mfa_policy::MfaDecision;
use crate::domain::{Amr, Assurance, AuditEvent, Identifier, TenantSlug, Timestamp};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::RequestMeta;
use crate::service::accounts::Accounts;
use crate::service::challenges::{ChallengeKind, Challenges, WrongAttempt};
use crate::service::factors::{Factors, MfaProof, TotpEnrolment};
use crate::service::mfa_policy::MfaPolicies;
use crate::service::notices::Notices;
use crate::service::passkey_factors::{PasskeyFactors, PasskeyOptions};
use crate::service::sessions::{Principal, Sessions};
use crate::store::{Store, Tenant, User};
use crate::telemetry::metrics::Metrics;

/// The audience of the synthetic claims an SSO principal carries; no token
/// with it is ever signed.
const SSO_AUDIENCE: &str = "forge-hosted-pages";

/// A session is written back at most this often when only its idle clock
/// moves.
const TOUCH_EVERY_SECS: i64 = 15;

const SECOND_STEP: ChallengeKind = ChallengeKind::HostedSecondFactor;
const ENROL_STEP: ChallengeKind = ChallengeKind::HostedEnrollment;

/// What the cache holds for one SSO session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SsoSession {
    /// Names the session in audit rows and, later, the `sid` of ID tokens
    /// (the cookie's token itself is never logged).
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// For the tenant lookup (through the tenant cache).
    pub tenant_slug: String,
    pub user_id: Uuid,
    /// When the user last proved who they are (`auth_time` of ID tokens).
    pub auth_time: Timestamp,
    /// How they signed in (`amr`, `acr` of ID tokens).
    pub assurance: Assurance,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
    /// The user's credential epoch at sign-in (see the module docs).
    pub epoch: i64,
    /// Compared in constant time with the `csrf` field of every signed-in
    /// form.
    pub csrf: String,
}

/// A new session: its cookie token and what the server keeps.
pub struct SignedIn {
    pub token: String,
    pub session: SsoSession,
    /// For the `forge_device` cookie (see `service::devices`).
    pub device_token: String,
}

/// What the first step of a hosted sign-in led to.
pub enum HostedSignIn {
    /// Signed in.
    Done(Box<SignedIn>),
    /// The user has a factor: `/mfa` asks for it with this token.
    SecondFactor { token: Secret },
    /// The tenant's policy requires a factor the user does not have: the
    /// page shows this pending TOTP factor and takes its first code.
    Enrol(Box<HostedEnrolment>),
}

/// A first-factor enrolment a sign-in started.
pub struct HostedEnrolment {
    pub token: Secret,
    pub totp: TotpEnrolment,
}

/// A sign-in the enrolment step completed, and the recovery codes of the
/// first factor (shown once).
pub struct EnrolledSignIn {
    pub signed_in: SignedIn,
    pub recovery_codes: Option<Vec<String>>,
}

/// A second step's answer.
enum SecondStep<'a> {
    Code(MfaProof<'a>),
    Passkey {
        request_id: &'a str,
        credential: serde_json::Value,
    },
}

fn sign_in_again() -> AppError {
    AppError::unauthorized(ErrorCode::InvalidToken, "the sign-in attempt expired: sign in again")
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The hosted sessions over the cache that keeps them and the use cases a
/// sign-in goes through.
#[derive(Clone)]
pub struct Sso {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// `jwt.refresh_ttl`: the idle limit.
    idle: Duration,
    /// `jwt.session_max_age`: the absolute limit.
    absolute: Duration,
    /// `jwt.issuer`, for the synthetic claims of a principal.
    issuer: String,
    accounts: Arc<Accounts>,
    sessions: Sessions,
    notices: Notices,
    policies: MfaPolicies,
    factors: Arc<Factors>,
    challenges: Challenges,
    passkeys: Arc<PasskeyFactors>,
}

impl Sso {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        clock: Clock,
        metrics: Arc<Metrics>,
        idle: Duration,
        absolute: Duration,
        issuer: String,
        accounts: Arc<Accounts>,
        sessions: Sessions,
        notices: Notices,
        policies: MfaPolicies,
        factors: Arc<Factors>,
        challenges: Challenges,
        passkeys: Arc<PasskeyFactors>,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
            metrics,
            idle,
            absolute,
            issuer,
            accounts,
            sessions,
            notices,
            policies,
            factors,
            challenges,
            passkeys,
        }
    }

    /// How long the cookie may live: the absolute limit.
    pub fn cookie_max_age(&self) -> u64 {
        self.absolute.as_secs()
    }

    /// The tenant a hosted page names (`?tenant=SLUG`, `default` when
    /// empty); `None` for a malformed or unknown slug.
    #[tracing::instrument(skip_all)]
    pub async fn tenant(&self, slug: &str) -> AppResult<Option<Tenant>> {
        let slug = match slug.trim() {
            "" => TenantSlug::default_tenant(),
            s => match TenantSlug::parse(s) {
                Ok(slug) => slug,
                Err(_) => return Ok(None),
            },
        };
        self.sessions.tenant(slug.as_str()).await
    }

    fn ttl(&self, session: &SsoSession, now: Timestamp) -> Option<Duration> {
        let end = session.created_at.saturating_add(secs(self.absolute));
        let left = u64::try_from(end.saturating_sub(now)).ok().filter(|s| *s > 0)?;
        Some(Duration::from_secs(left).min(self.idle))
    }

    async fn save(&self, key: &str, session: &SsoSession, now: Timestamp) -> AppResult<()> {
        let Some(ttl) = self.ttl(session, now) else {
            self.cache.delete(key).await?;
            return Ok(());
        };
        let bytes = serde_json::to_vec(session).map_err(AppError::internal)?;
        self.cache.set(key, &bytes, ttl).await?;
        Ok(())
    }

    /// Opens a session for `user`, who just proved who they are at
    /// `assurance`: a fresh token (never reused, so no fixation), audited
    /// `sso_login` with its methods.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn start(
        &self,
        tenant: &Tenant,
        user: &User,
        assurance: Assurance,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        let now = self.clock.now();
        let session = SsoSession {
            id: Uuid::now_v7(),
            tenant_id: tenant.id,
            tenant_slug: tenant.slug.to_string(),
            user_id: user.id,
            auth_time: now,
            assurance,
            created_at: now,
            last_seen: now,
            epoch: user.credential_epoch,
            csrf: random_token(),
        };
        let token = random_token();
        self.save(&CacheKey::sso_session(&token), &session, now).await?;
        let mut audit = meta.audit(tenant.id, now, AuditEvent::SsoLogin, Some(user.id), Some(user.id));
        audit.detail = serde_json::json!({ "session": session.id, "amr": session.assurance.amr_names() });
        let before = self.store.record_sign_in(tenant.id, user.id, now, audit).await?;
        self.metrics.login("success");
        let device_token = self.notices.signed_in(tenant.id, user, before, meta).await?;
        Ok(SignedIn {
            token,
            session,
            device_token,
        })
    }

    /// The session behind a cookie token, re-checked: not expired (idle and
    /// absolute), its tenant and user still there, the user enabled and
    /// their credential epoch unchanged. Anything else deletes it and
    /// answers `None` (sign in again).
    #[tracing::instrument(skip_all)]
    pub async fn current(&self, token: &str) -> AppResult<Option<(SsoSession, User, Tenant)>> {
        let key = CacheKey::sso_session(token);
        let Some(raw) = self.cache.get(&key).await? else {
            return Ok(None);
        };
        let Ok(mut session) = serde_json::from_slice::<SsoSession>(&raw) else {
            return self.forget(&key).await;
        };
        let now = self.clock.now();
        if now.saturating_sub(session.last_seen) > secs(self.idle)
            || now.saturating_sub(session.created_at) >= secs(self.absolute)
        {
            return self.forget(&key).await;
        }
        let Some(tenant) = self.sessions.tenant(&session.tenant_slug).await? else {
            return self.forget(&key).await;
        };
        if tenant.id != session.tenant_id {
            return self.forget(&key).await;
        }
        let Some(user) = self.store.get_user(tenant.id, session.user_id).await? else {
            return self.forget(&key).await;
        };
        if user.disabled || user.credential_epoch != session.epoch {
            return self.forget(&key).await;
        }
        if now - session.last_seen >= TOUCH_EVERY_SECS {
            session.last_seen = now;
            self.save(&key, &session, now).await?;
        }
        Ok(Some((session, user, tenant)))
    }

    async fn forget(&self, key: &str) -> AppResult<Option<(SsoSession, User, Tenant)>> {
        self.cache.delete(key).await?;
        Ok(None)
    }

    /// Ends the session behind a cookie token (sign-out), audited
    /// `sso_logout`; `None` when there was none.
    #[tracing::instrument(skip_all)]
    pub async fn end(&self, token: &str, meta: &RequestMeta) -> AppResult<Option<SsoSession>> {
        let key = CacheKey::sso_session(token);
        let Some(raw) = self.cache.get(&key).await? else {
            return Ok(None);
        };
        self.cache.delete(&key).await?;
        let Ok(session) = serde_json::from_slice::<SsoSession>(&raw) else {
            return Ok(None);
        };
        let mut audit = meta.audit(
            session.tenant_id,
            self.clock.now(),
            AuditEvent::SsoLogout,
            Some(session.user_id),
            Some(session.user_id),
        );
        audit.detail = serde_json::json!({ "session": session.id });
        self.store.record_audit(audit).await?;
        Ok(Some(session))
    }

    /// Forgets the session behind a token without an audit row: a browser
    /// signing in again must not keep its previous session.
    #[tracing::instrument(skip_all)]
    pub async fn discard(&self, token: &str) -> AppResult<()> {
        Ok(self.cache.delete(&CacheKey::sso_session(token)).await?)
    }

    /// A principal for the account page's calls into the other use cases
    /// (synthetic claims: see [`Principal::for_page_session`]).
    pub fn principal(&self, session: &SsoSession, user: &User, tenant: &Tenant) -> Principal {
        Principal::for_page_session(
            &self.issuer,
            SSO_AUDIENCE,
            session.id,
            session.created_at,
            &session.assurance,
            user,
            tenant,
            self.clock.now(),
        )
    }

    /// Signs in with a password. Failures are those of
    /// [`Accounts::check_password_sign_in`]: 401 `invalid_credentials` for a
    /// wrong password, an unknown account or tenant (one answer), 429, and,
    /// once the password is proven, 403 `user_disabled` /
    /// `email_not_verified`.
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn sign_in_password(
        &self,
        slug: &str,
        identifier: &Identifier,
        password: &Secret,
        meta: &RequestMeta,
    ) -> AppResult<HostedSignIn> {
        let tenant = self.tenant(slug).await?;
        let tenant_key = tenant
            .as_ref()
            .map(|t| t.id.to_string())
            .unwrap_or_else(|| format!("unknown:{}", slug.trim()));
        let proven = self
            .accounts
            .check_password_sign_in(tenant.as_ref(), &tenant_key, identifier, password, meta, "hosted")
            .await?;
        let Some(tenant) = tenant else {
            return Err(AppError::invalid_credentials());
        };
        self.after_first_factor(&tenant, &proven.user, Assurance::password(), meta)
            .await
    }

    /// What a sign-in whose first factor proved `first` does next: the
    /// second step for a user with a factor; the enrolment step when the
    /// tenant's policy requires one (past its grace); else the session.
    async fn after_first_factor(
        &self,
        tenant: &Tenant,
        user: &User,
        first: Assurance,
        meta: &RequestMeta,
    ) -> AppResult<HostedSignIn> {
        if self.factors.has_factor(tenant.id, user.id).await? {
            let token = self
                .challenges
                .issue(SECOND_STEP, tenant.id, user.id, first, meta)
                .await?;
            return Ok(HostedSignIn::SecondFactor { token });
        }
        if let MfaDecision::Required = self.policies.decide(tenant, user, false).await? {
            let totp = self.factors.start_totp_enrolling(tenant, user.id, None).await?;
            let token = self
                .challenges
                .issue(ENROL_STEP, tenant.id, user.id, first, meta)
                .await?;
            return Ok(HostedSignIn::Enrol(Box::new(HostedEnrolment { token, totp })));
        }
        Ok(HostedSignIn::Done(Box::new(
            self.start(tenant, user, first, meta).await?,
        )))
    }

    /// The tenant and user of a live challenge of `kind`; 401
    /// `invalid_token` otherwise.
    async fn challenged(&self, kind: ChallengeKind, slug: &str, token: &str) -> AppResult<(Tenant, User)> {
        let Some(tenant) = self.tenant(slug).await? else {
            return Err(sign_in_again());
        };
        let Some(challenge) = self.challenges.open(kind, tenant.id, token).await? else {
            return Err(sign_in_again());
        };
        let Some(user) = self.store.get_user(tenant.id, challenge.user_id).await? else {
            return Err(sign_in_again());
        };
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        Ok((tenant, user))
    }

    /// The second step with a TOTP or recovery code. Failures: 401
    /// `invalid_mfa` (counted against the challenge and the account), 401
    /// `invalid_token` once the challenge is gone (sign in again), 429.
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn sign_in_second_factor(
        &self,
        slug: &str,
        token: &str,
        proof: MfaProof<'_>,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        self.second_step(slug, token, SecondStep::Code(proof), meta).await
    }

    /// Request options naming the user's passkeys for the second step.
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn second_factor_passkey_options(
        &self,
        slug: &str,
        token: &str,
        meta: &RequestMeta,
    ) -> AppResult<PasskeyOptions> {
        let (_, user) = self.challenged(SECOND_STEP, slug, token).await?;
        self.passkeys.start_assertion(&user, meta).await
    }

    /// The second step with a passkey; a refused one counts like a wrong
    /// code.
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn sign_in_second_factor_passkey(
        &self,
        slug: &str,
        token: &str,
        request_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let step = SecondStep::Passkey { request_id, credential };
        self.second_step(slug, token, step, meta).await
    }

    async fn second_step(
        &self,
        slug: &str,
        token: &str,
        step: SecondStep<'_>,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let (tenant, user) = self.challenged(SECOND_STEP, slug, token).await?;
        let proven = match step {
            SecondStep::Code(proof) => self
                .factors
                .verify(&tenant, &user, proof, meta)
                .await
                .map(|_| vec![Amr::Otp]),
            SecondStep::Passkey { request_id, credential } => self
                .passkeys
                .verify_assertion(&user, request_id, credential, meta)
                .await
                .map(|proof| proof.methods),
        };
        let methods = match proven {
            Ok(methods) => methods,
            Err(e @ AppError::Unauthorized { .. }) => {
                return match self.challenges.fail(SECOND_STEP, tenant.id, token).await? {
                    WrongAttempt::Counted => Err(e),
                    WrongAttempt::Burned => Err(sign_in_again()),
                };
            }
            Err(e) => return Err(e),
        };
        // Exactly one of concurrent right answers opens the session.
        let Some(challenge) = self.challenges.consume(SECOND_STEP, tenant.id, token).await? else {
            return Err(sign_in_again());
        };
        let assurance = challenge.first_factor.stepped_up(methods);
        self.start(&tenant, &user, assurance, meta).await
    }

    /// The enrolment step: the first code of the pending TOTP factor the
    /// first step started. The right code confirms the factor (audited
    /// `mfa_enrolled` by `Factors`) and opens the session at aal 2, with the
    /// recovery codes. A wrong code leaves the factor pending and counts
    /// against the challenge (401 `invalid_mfa`; the fifth burns it).
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn sign_in_enrolling(
        &self,
        slug: &str,
        token: &str,
        factor_id: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<EnrolledSignIn> {
        let (tenant, user) = self.challenged(ENROL_STEP, slug, token).await?;
        let confirmed = match Uuid::parse_str(factor_id.trim()) {
            Ok(id) => self.factors.confirm_totp_of(tenant.id, user.id, id, code, meta).await,
            Err(_) => Err(AppError::not_found("pending factor")),
        };
        let enrolled = match confirmed {
            Ok(enrolled) => enrolled,
            Err(
                AppError::BadRequest {
                    code: ErrorCode::InvalidCode,
                    ..
                }
                | AppError::NotFound { .. }
                | AppError::Validation { .. },
            ) => {
                return match self.challenges.fail(ENROL_STEP, tenant.id, token).await? {
                    WrongAttempt::Counted => Err(AppError::unauthorized(
                        ErrorCode::InvalidMfa,
                        "the code is wrong or expired",
                    )),
                    WrongAttempt::Burned => Err(sign_in_again()),
                };
            }
            Err(e) => return Err(e),
        };
        let Some(challenge) = self.challenges.consume(ENROL_STEP, tenant.id, token).await? else {
            return Err(sign_in_again());
        };
        let assurance = challenge.first_factor.stepped_up([Amr::Otp]);
        let user = self
            .store
            .get_user(tenant.id, user.id)
            .await?
            .ok_or_else(sign_in_again)?;
        Ok(EnrolledSignIn {
            signed_in: self.start(&tenant, &user, assurance, meta).await?,
            recovery_codes: enrolled.recovery_codes,
        })
    }

    /// Signs up on the hosted pages through [`Accounts::register`] (the
    /// tenant's sign-up policy, the password rules, the per-IP budget):
    /// `None` when the account waits for its email to be verified, else
    /// what a password sign-in of the new account leads to (a session, or
    /// the enrolment step when the tenant's policy requires a factor).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn sign_up(
        &self,
        tenant: &Tenant,
        input: crate::service::accounts::SignupInput,
        meta: &RequestMeta,
    ) -> AppResult<Option<HostedSignIn>> {
        let (user, held_back) = self.accounts.register(tenant, input, meta).await?;
        if held_back {
            return Ok(None);
        }
        Ok(Some(
            self.after_first_factor(tenant, &user, Assurance::password(), meta)
                .await?,
        ))
    }

    /// Verifies an email address with the emailed code (through
    /// [`crate::service::recovery::Recovery::confirm_email`]: the address
    /// proven, the password kept only when shown) and signs in as that
    /// proof allows: the second step for a user with a factor, else the
    /// session (at aal 1).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn verify_email(
        &self,
        recovery: &crate::service::recovery::Recovery,
        tenant: &Tenant,
        email: &crate::domain::Email,
        code: &str,
        password: Option<&Secret>,
        meta: &RequestMeta,
    ) -> AppResult<HostedSignIn> {
        let (user, assurance) = recovery.confirm_email(tenant, email, code, password, meta).await?;
        // Read afresh: the proof may have moved the credential epoch on.
        let user = self
            .store
            .get_user(tenant.id, user.id)
            .await?
            .ok_or_else(AppError::invalid_credentials)?;
        self.after_first_factor(tenant, &user, assurance, meta).await
    }

    /// Signs in with a one-time code sent by email or SMS (through
    /// [`crate::service::otp::Otp::prove`]: the API's budgets, burn and
    /// account rules; a new address the tenant admits gets its account)
    /// and goes on as the proof allows: the second step for a user with a
    /// factor, the enrolment step the tenant's policy may require, else the
    /// session (at aal 1).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn sign_in_code(
        &self,
        otp: &crate::service::otp::Otp,
        tenant: &Tenant,
        identifier: &Identifier,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<HostedSignIn> {
        let (user, assurance) = otp.prove(tenant, identifier, code, meta).await?;
        // Read afresh: the proof may have moved the credential epoch on.
        let user = self
            .store
            .get_user(tenant.id, user.id)
            .await?
            .ok_or_else(AppError::invalid_credentials)?;
        self.after_first_factor(tenant, &user, assurance, meta).await
    }

    /// Goes on from an upstream sign-in that `service::federation` proved
    /// and resolved to `user` (amr `fed`): the same gate as the password,
    /// so a user with a factor still answers the second step here.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn sign_in_federated(&self, tenant: &Tenant, user: &User, meta: &RequestMeta) -> AppResult<HostedSignIn> {
        self.after_first_factor(tenant, user, Assurance::federated(), meta)
            .await
    }

    /// Signs in with a discoverable passkey alone (its ceremony verified
    /// the user, so it counts as two factors). 401 `invalid_credentials` for
    /// every refused passkey or unknown tenant; 429; 403 `user_disabled`.
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn sign_in_passkey(
        &self,
        slug: &str,
        request_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let Some(tenant) = self.tenant(slug).await? else {
            return Err(AppError::invalid_credentials());
        };
        let (user, proof) = self.passkeys.identify(&tenant, request_id, credential, meta).await?;
        self.start(&tenant, &user, proof.assurance(), meta).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_hash_the_token() {
        let token = random_token();
        let key = CacheKey::sso_session(&token);
        assert!(key.starts_with("sso:session:"));
        assert!(!key.contains(&token));
        assert_ne!(key, CacheKey::site_session(&token));
    }
}
