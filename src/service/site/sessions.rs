//! The admin site's sessions: signing administrators in and out of the
//! `/admin` pages, keeping their server-side sessions and CSRF tokens, and
//! switching the tenant the pages show.
//!
//! Sessions. A sign-in mints a random token (256 bits) that only the
//! browser holds, in the `forge_admin` cookie; the server keeps the session
//! in the [`Cache`](crate::cache::Cache) port under the token's SHA-256, so
//! a leaked cache dump cannot be replayed and, with Redis, every instance
//! sees the same sessions. A session expires when idle for
//! `admin.session_idle` (refreshed on use) and in any case
//! `admin.session_absolute` after sign-in; both are checked against the
//! application [`Clock`](crate::clock::Clock), the cache TTL is only the
//! backstop that frees the memory. Each session carries its own CSRF token.
//! Every request re-reads the user and their roles (through the `rbac`
//! cache, which role changes invalidate): a user who is disabled, deleted or
//! loses the `admin` role is out on their next click, whatever their cookie.
//! The session also records the user's credential epoch at sign-in; a
//! password reset or change, "sign out everywhere" (the user's or an
//! administrator's) and a disable bump the stored epoch in their own
//! transaction, so the session dies with the user's API sessions and stays
//! dead after a re-enable. Sessions live in the cache, not in the
//! `sessions` table, so the epoch (one integer on the user row, which every
//! request reads anyway) is what reaches them without listing them.
//!
//! Who may sign in: holders of the `admin` role in the tenant they sign in
//! to. Admins of the `default` tenant are *operators*: they also manage the
//! set of tenants and the signing keys, and may switch the pages to another
//! tenant. Every other tenant's admin sees only their own tenant.
//!
//! Another tenant, read-only. An operator may switch the pages to another
//! tenant to *look* at it: its users, roles, audit log, messages and
//! dashboard. Changes there are refused ([`SiteAdmin::acting`]), as in the
//! API, where an operator manages tenants, not the users inside them: the
//! use cases check the caller's permissions in the caller's own tenant
//! (`Rbac::access` reads the user's roles in `principal.tenant`), so there
//! is no sound way to hand them an operator acting elsewhere; a tenant's
//! users are changed by that tenant's administrators.
//!
//! Second factor. A user with a confirmed factor is not signed in by the
//! password alone: the password step answers [`SiteSignIn::SecondFactor`]
//! with a short-lived challenge token ([`ChallengeKind::SiteSecondFactor`],
//! bound server-side to the tenant and user), and only
//! [`SiteSessions::sign_in_second_factor`] with that token and a right
//! TOTP or recovery code, or one of the user's passkeys
//! ([`SiteSessions::sign_in_second_factor_passkey`]), opens the session. A
//! wrong code or refused passkey counts against the challenge (the fifth
//! burns it) and against the account's failure budget (through
//! `Factors::verify` and `PasskeyFactors::verify_assertion`).
//!
//! First factor enrolment. When the tenant's policy (`mfa`: `roles`
//! naming `admin`, or `all`) requires a factor of an administrator who has
//! none, the password step does not open a session: once the password is
//! proven and the user is known to hold `admin` (a non-admin is refused
//! before anything is offered), it starts a pending TOTP factor and answers
//! [`SiteSignIn::Enrol`] with the QR code, the secret and a challenge of its
//! own kind ([`ChallengeKind::SiteEnrollment`]: an API `enrollment_token`
//! is no good here, nor this token there). Only
//! [`SiteSessions::sign_in_enrolling`] with that token and the factor's
//! first correct code confirms the factor (audited `mfa_enrolled` by
//! `Factors`) and opens the session, at aal 2 like the second step; a wrong
//! code leaves the factor pending and counts against the challenge (the
//! fifth burns it). The policy's grace changes nothing here: the site asks
//! for the factor at once.
//!
//! Passkeys. An administrator may instead sign in with a passkey alone
//! ([`SiteSessions::sign_in_passkey`]): a discoverable credential whose
//! ceremony verified the user (a PIN or biometric) is two factors by itself
//! (see `service::passkey_factors`), so it skips the password and the
//! second step and goes through the same admin and policy checks.
//!
//! Assurance. Each session records how its administrator signed in
//! ([`SiteSession::assurance`]): `pwd` at aal 1 for a password alone, the
//! password stepped up to aal 2 after the second step, the passkey's methods
//! at aal 2. The site principal carries it, so the factor rules the API
//! applies to access tokens (changing factors needs aal 2 once the user has
//! one) apply to the site's own passkey settings as well.
//!
//! Password checks follow `Accounts::login`: one argon2 verification on the
//! bounded pool whether or not the account exists, one generic failure, and
//! the same rate-limit buckets as the API (`login-ip`, `login-fail`), so
//! alternating between the API and the form buys an attacker nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
use crate::clock::Clock;
use crate::config::AdminConfig;
use crate::crypto::tokens::random_token;
use crate::domain::{Amr, Assurance, AuditEvent, Identifier, RoleName, TenantSlug, Timestamp};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::RequestMeta;
use crate::service::accounts::Accounts;
use crate::service::challenges::{ChallengeKind, Challenges, WrongAttempt};
use crate::service::factors::{Factors, MfaProof, TotpEnrolment};
use crate::service::mfa_policy::MfaPolicies;
use crate::service::notices::Notices;
use crate::service::passkey_factors::{PasskeyFactors, PasskeyOptions};
use crate::service::rbac::Rbac;
use crate::service::sessions::{Principal, Sessions};
use crate::service::tenants::Tenants;
use crate::store::{DEFAULT_TENANT_ID, Store, Tenant, User};
use crate::telemetry::metrics::Metrics;

/// The audience of the synthetic claims an admin-site principal carries;
/// no token with it is ever signed.
const SITE_AUDIENCE: &str = "forge-admin-site";

/// A session is written back at most this often when only its idle clock
/// moves, so browsing does not write the cache on every click.
const TOUCH_EVERY_SECS: i64 = 15;

/// A message for the next page the administrator sees (post/redirect/get).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// What the cache holds for one admin session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteSession {
    /// Names the session in audit rows (the token itself is never logged).
    pub id: Uuid,
    pub user_id: Uuid,
    /// The tenant the administrator signed in to.
    pub tenant_slug: String,
    /// The tenant the pages show, when an operator switched away from
    /// `default`.
    pub viewing: Option<String>,
    /// Compared in constant time with the `csrf` field of every POST.
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
    pub flash: Option<Flash>,
    /// The user's credential epoch at sign-in. Every event that ends all of
    /// the user's sessions (password reset or change, sign-out everywhere,
    /// disable) moves the stored epoch on, and the session ends on its next
    /// request. No default: a session cached before this field existed
    /// fails to load and its administrator signs in again.
    pub credential_epoch: i64,
    /// How the administrator signed in. A session cached before this field
    /// existed reads as the lowest assurance (aal 1, no methods), which only
    /// ever asks for more.
    #[serde(default)]
    pub assurance: Assurance,
}

/// A signed-in administrator, re-checked on this request.
#[derive(Clone, Debug)]
pub struct SiteAdmin {
    /// The cache key of the session (SHA-256 of the cookie's token).
    key: CacheKey,
    pub session: SiteSession,
    pub user: User,
    /// The administrator in their own tenant.
    pub own: Principal,
    /// The administrator acting in the tenant the pages show.
    acting: Principal,
    /// An admin of the `default` tenant.
    pub operator: bool,
    /// The flash taken from the session for this (GET) request.
    pub flash: Option<Flash>,
}

impl SiteAdmin {
    /// An administrator signed in as `own`, for unit tests of the site's
    /// use cases.
    #[cfg(test)]
    pub(crate) fn for_tests(user: User, own: Principal, operator: bool) -> Self {
        let session = SiteSession {
            id: Uuid::new_v4(),
            user_id: user.id,
            tenant_slug: own.tenant.slug.as_str().to_string(),
            viewing: None,
            csrf: String::new(),
            created_at: 0,
            last_seen: 0,
            flash: None,
            credential_epoch: user.credential_epoch,
            assurance: Assurance::password(),
        };
        Self {
            key: CacheKey::site_session("test"),
            session,
            user,
            acting: own.clone(),
            own,
            operator,
            flash: None,
        }
    }

    /// The tenant the pages show.
    pub fn tenant(&self) -> &Tenant {
        &self.acting.tenant
    }

    /// Whether an operator is looking at another tenant than `default`.
    pub fn switched(&self) -> bool {
        self.acting.tenant.id != self.own.tenant.id
    }

    /// The principal for reading the shown tenant (lists, details, audit).
    pub fn viewing(&self) -> &Principal {
        &self.acting
    }

    /// The principal for changing something in the shown tenant. An
    /// operator looking at another tenant is refused (403 `read_only`): see
    /// the module docs.
    pub fn acting(&self) -> AppResult<&Principal> {
        if self.switched() {
            return Err(AppError::forbidden(
                ErrorCode::ReadOnly,
                format!(
                    "tenant {} is shown read-only: operators manage tenants, not the users inside them. \
                     Switch back to default, or sign in as an administrator of {}",
                    self.acting.tenant.slug, self.acting.tenant.slug
                ),
            ));
        }
        Ok(&self.acting)
    }

    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }

    pub fn email(&self) -> String {
        self.user
            .email
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| self.user.phone.as_ref().map(|p| p.to_string()))
            .unwrap_or_else(|| self.user.id.to_string())
    }
}

/// Why a cookie did not lead to a usable session.
#[derive(Debug)]
pub enum Loaded {
    Valid(Box<SiteAdmin>),
    /// No such session, or it expired: sign in again.
    Expired,
    /// The user is disabled, deleted, or no longer holds `admin`; the
    /// session is gone.
    Revoked(&'static str),
}

/// What the password step of a sign-in led to.
pub enum SiteSignIn {
    /// Signed in (the user has no second factor).
    Done(Box<SignedIn>),
    /// The password is proven and the user has a factor: the form asks for
    /// it and hands this token back to [`SiteSessions::sign_in_second_factor`].
    SecondFactor { token: Secret },
    /// The password is proven, the user holds `admin` and the tenant's
    /// policy requires a factor they do not have: the form shows this
    /// pending TOTP factor and hands its first code and the token back to
    /// [`SiteSessions::sign_in_enrolling`].
    Enrol(Box<SiteEnrolment>),
}

/// A first factor enrolment the password step started.
pub struct SiteEnrolment {
    /// The [`ChallengeKind::SiteEnrollment`] challenge, for the hidden field.
    pub token: Secret,
    /// The pending factor, its secret, `otpauth://` URI and QR code.
    pub totp: TotpEnrolment,
}

/// A sign-in the enrolment step completed: the session, and the recovery
/// codes of the first factor, shown once.
pub struct EnrolledSignIn {
    pub signed_in: SignedIn,
    pub recovery_codes: Option<Vec<String>>,
}

/// A new session: its cookie token and what the server keeps.
pub struct SignedIn {
    pub token: String,
    pub session: SiteSession,
    /// For the `forge_device` cookie (see `service::devices`).
    pub device_token: String,
}

/// The challenge between the password and the second step.
const SECOND_STEP: ChallengeKind = ChallengeKind::SiteSecondFactor;

/// The challenge between the password and the first factor's confirmation.
const ENROL_STEP: ChallengeKind = ChallengeKind::SiteEnrollment;

/// An enrolment step's answer: the pending TOTP factor's first code, or a
/// new passkey's registration.
enum EnrolStep<'a> {
    Totp {
        factor_id: &'a str,
        code: &'a str,
    },
    Passkey {
        request_id: &'a str,
        credential: serde_json::Value,
    },
}

/// A second step's answer: a code, or a passkey's assertion.
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

/// The tenant slug typed in the sign-in form (`default` when empty).
fn form_slug(tenant: &str) -> Option<TenantSlug> {
    match tenant.trim() {
        "" => Some(TenantSlug::default_tenant()),
        s => TenantSlug::parse(s).ok(),
    }
}

fn tenant_name_key(slug: Option<&TenantSlug>) -> String {
    slug.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
}

/// The admin site's sessions over the cache that keeps them, the store and
/// the services a sign-in and every request's re-check go through (the
/// password check of `accounts`, the tenant lookup, `rbac`, device tokens).
#[derive(Clone)]
pub struct SiteSessions {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// `admin.session_idle` and `admin.session_absolute`.
    admin: AdminConfig,
    /// `jwt.issuer`, for the synthetic claims of a site principal.
    issuer: String,
    accounts: Arc<Accounts>,
    sessions: Sessions,
    rbac: Rbac,
    notices: Notices,
    tenants: Tenants,
    /// The tenant's second-factor policy: administrators it applies to
    /// need a factor to use the site.
    mfa: MfaPolicies,
    factors: Arc<Factors>,
    challenges: Challenges,
    /// Passkeys: passwordless sign-in, and the second step.
    passkeys: Arc<PasskeyFactors>,
}

impl SiteSessions {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        clock: Clock,
        metrics: Arc<Metrics>,
        admin: AdminConfig,
        issuer: String,
        accounts: Arc<Accounts>,
        sessions: Sessions,
        rbac: Rbac,
        notices: Notices,
        tenants: Tenants,
        mfa: MfaPolicies,
        factors: Arc<Factors>,
        challenges: Challenges,
        passkeys: Arc<PasskeyFactors>,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
            metrics,
            admin,
            issuer,
            accounts,
            sessions,
            rbac,
            notices,
            tenants,
            mfa,
            factors,
            challenges,
            passkeys,
        }
    }

    fn cache_ttl(&self, session: &SiteSession, now: Timestamp) -> Option<Duration> {
        let cfg = &self.admin;
        let absolute_end = session
            .created_at
            .saturating_add(i64::try_from(cfg.session_absolute.as_secs()).unwrap_or(i64::MAX));
        let left = u64::try_from(absolute_end.saturating_sub(now))
            .ok()
            .filter(|s| *s > 0)?;
        Some(Duration::from_secs(left).min(cfg.session_idle))
    }

    async fn save(&self, key: &str, session: &SiteSession, now: Timestamp) -> AppResult<()> {
        let Some(ttl) = self.cache_ttl(session, now) else {
            self.cache.delete(key).await?;
            return Ok(());
        };
        let bytes = serde_json::to_vec(session).map_err(AppError::internal)?;
        self.cache.set(key, &bytes, ttl).await?;
        Ok(())
    }

    /// A principal for the admin site's calls into the other use cases. Its
    /// claims are synthetic (never signed); the use cases read only the ids
    /// and the tenant.
    fn principal(&self, session: &SiteSession, user: &User, tenant: &Tenant) -> Principal {
        Principal::for_page_session(
            &self.issuer,
            SITE_AUDIENCE,
            session.id,
            session.created_at,
            &session.assurance,
            user,
            tenant,
            self.clock.now(),
        )
    }

    async fn is_admin(&self, principal: &Principal) -> AppResult<bool> {
        Ok(self
            .rbac
            .access(principal)
            .await?
            .roles
            .iter()
            .any(|r| r == RoleName::ADMIN))
    }

    /// The admin site's share of the tenant's second-factor policy, as the
    /// last check before a session opens: an administrator the policy
    /// applies to (roles `admin`, or `all`) and who holds no confirmed factor
    /// is refused (403 `mfa_enrollment_required`, audited
    /// `admin_login_denied`), whatever the grace. The password step sends
    /// such an administrator to the enrolment step instead
    /// ([`SiteSignIn::Enrol`]), and the other ways in hold a factor already,
    /// so this stays as the backstop of every path into a session.
    async fn require_factor_if_policy(
        &self,
        tenant: &Tenant,
        user: &User,
        meta: &RequestMeta,
        now: Timestamp,
    ) -> AppResult<()> {
        if !self.mfa.applies(tenant.id, &user.roles).await? {
            return Ok(());
        }
        if self.factors.has_factor(tenant.id, user.id).await? {
            return Ok(());
        }
        self.denied(tenant, user, meta, now, "mfa_enrollment_required").await?;
        Err(AppError::forbidden(
            ErrorCode::MfaEnrollmentRequired,
            "This tenant requires administrators to have a second factor. Sign in with your password \
             to set one up.",
        ))
    }

    /// Signs an administrator in with a password. `tenant` is the slug typed in
    /// the form (`default` when empty). Failures: 401 `invalid_credentials`
    /// (wrong password, unknown account or tenant: one answer), 429, 403
    /// `user_disabled`, 403 `not_admin` (only once the password is proven,
    /// and for a user with a factor only after the second step). An
    /// administrator the tenant's policy requires a factor of, who has none,
    /// gets [`SiteSignIn::Enrol`] instead of a session.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn sign_in(
        &self,
        tenant: &str,
        identifier: &Identifier,
        password: &Secret,
        meta: &RequestMeta,
    ) -> AppResult<SiteSignIn> {
        let slug = form_slug(tenant);
        let tenant = match &slug {
            Some(slug) => self.sessions.tenant(slug.as_str()).await?,
            None => None,
        };
        // An unknown tenant still costs a verification and counts failures
        // under its name, so it reads exactly like a wrong password.
        let tenant_key = tenant
            .as_ref()
            .map(|t| t.id.to_string())
            .unwrap_or_else(|| format!("unknown:{}", tenant_name_key(slug.as_ref())));
        let proven = self
            .accounts
            .check_password_sign_in(tenant.as_ref(), &tenant_key, identifier, password, meta, "admin_site")
            .await?;
        let user = proven.user;
        // A proven password implies a known tenant.
        let Some(tenant) = tenant else {
            return Err(AppError::invalid_credentials());
        };
        if self.factors.has_factor(tenant.id, user.id).await? {
            let token = self
                .challenges
                .issue(SECOND_STEP, tenant.id, user.id, Assurance::password(), meta)
                .await?;
            return Ok(SiteSignIn::SecondFactor { token });
        }
        if self.mfa.applies(tenant.id, &user.roles).await? {
            // Only an administrator is offered a factor here: a non-admin is
            // refused (and audited) exactly as a session would refuse them.
            let now = self.clock.now();
            let scratch = self.new_session(&tenant, &user, Assurance::password(), now);
            self.require_admin(&tenant, &user, &scratch, meta, now).await?;
            let totp = self.factors.start_totp_enrolling(&tenant, user.id, None).await?;
            let token = self
                .challenges
                .issue(ENROL_STEP, tenant.id, user.id, Assurance::password(), meta)
                .await?;
            return Ok(SiteSignIn::Enrol(Box::new(SiteEnrolment { token, totp })));
        }
        self.open_session(&tenant, &user, Assurance::password(), meta)
            .await
            .map(|signed_in| SiteSignIn::Done(Box::new(signed_in)))
    }

    /// The second step of a sign-in whose password step answered
    /// [`SiteSignIn::SecondFactor`]: `token` is that answer's token,
    /// `tenant` the slug of the form. Failures: 401 `invalid_mfa` for a
    /// wrong, replayed or malformed code (counted against the challenge and
    /// the account); 401 `invalid_token` once the challenge is unknown,
    /// expired, spent or burned (sign in again); 429; 403 `user_disabled`,
    /// 403 `not_admin`.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn sign_in_second_factor(
        &self,
        tenant: &str,
        token: &str,
        proof: MfaProof<'_>,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        self.second_step(tenant, token, SecondStep::Code(proof), meta).await
    }

    /// Request options naming the user's passkeys, for the second step of
    /// the sign-in behind `token` (the password is proven). 401
    /// `invalid_token` once the challenge is gone; 409 `no_factor` when the
    /// user has no passkey.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn second_factor_passkey_options(
        &self,
        tenant: &str,
        token: &str,
        meta: &RequestMeta,
    ) -> AppResult<PasskeyOptions> {
        let (_, user) = self.challenged(tenant, token).await?;
        self.passkeys.start_assertion(&user, meta).await
    }

    /// [`Self::sign_in_second_factor`] with a passkey: `request_id` names
    /// the ceremony of [`Self::second_factor_passkey_options`], `credential`
    /// is the browser's answer. A refused passkey counts like a wrong code.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn sign_in_second_factor_passkey(
        &self,
        tenant: &str,
        token: &str,
        request_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let step = SecondStep::Passkey { request_id, credential };
        self.second_step(tenant, token, step, meta).await
    }

    /// The enrolment step of a sign-in whose password step answered
    /// [`SiteSignIn::Enrol`]: `token` is that answer's token, `factor_id`
    /// the pending factor it showed, `code` the authenticator's first code
    /// and `tenant` the slug of the form. The right code confirms the factor
    /// and opens the session at aal 2, with the recovery codes of the first
    /// factor. Failures: 401 `invalid_mfa` for a wrong code or factor (the
    /// factor stays pending; counted against the challenge, the fifth burns
    /// it); 401 `invalid_token` once the challenge is unknown, expired,
    /// spent or burned (sign in again); 403 `user_disabled`, 403
    /// `not_admin`.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn sign_in_enrolling(
        &self,
        tenant: &str,
        token: &str,
        factor_id: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<EnrolledSignIn> {
        self.enrol_step(tenant, token, EnrolStep::Totp { factor_id, code }, meta)
            .await
    }

    /// Creation options for a passkey as the first factor instead of TOTP,
    /// for the enrolment step behind `token` (the password is proven). 401
    /// `invalid_token` once the challenge is gone; 403 `not_admin`.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn enrol_passkey_options(
        &self,
        tenant: &str,
        token: &str,
        meta: &RequestMeta,
    ) -> AppResult<PasskeyOptions> {
        let (tenant, user) = self.challenged_as(ENROL_STEP, tenant, token).await?;
        let now = self.clock.now();
        let scratch = self.new_session(&tenant, &user, Assurance::password(), now);
        self.require_admin(&tenant, &user, &scratch, meta, now).await?;
        self.passkeys.start_registration_enrolling(&tenant, user.id, None).await
    }

    /// [`Self::sign_in_enrolling`] with a new passkey: `request_id` names
    /// the ceremony of [`Self::enrol_passkey_options`], `credential` is the
    /// browser's answer. The session opens at the passkey's methods stepped
    /// up from the password (aal 2). A refused registration counts like a
    /// wrong code.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn sign_in_enrolling_passkey(
        &self,
        tenant: &str,
        token: &str,
        request_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> AppResult<EnrolledSignIn> {
        let step = EnrolStep::Passkey { request_id, credential };
        self.enrol_step(tenant, token, step, meta).await
    }

    async fn enrol_step(
        &self,
        tenant: &str,
        token: &str,
        step: EnrolStep<'_>,
        meta: &RequestMeta,
    ) -> AppResult<EnrolledSignIn> {
        let (tenant, user) = self.challenged_as(ENROL_STEP, tenant, token).await?;
        // Roles may have changed since the password step: a factor is
        // confirmed here only for an administrator.
        let now = self.clock.now();
        let scratch = self.new_session(&tenant, &user, Assurance::password(), now);
        self.require_admin(&tenant, &user, &scratch, meta, now).await?;
        let confirmed = match step {
            EnrolStep::Totp { factor_id, code } => match Uuid::parse_str(factor_id.trim()) {
                Ok(id) => self
                    .factors
                    .confirm_totp_of(tenant.id, user.id, id, code, meta)
                    .await
                    .map(|enrolled| (enrolled, vec![Amr::Otp])),
                Err(_) => Err(AppError::not_found("pending factor")),
            },
            EnrolStep::Passkey { request_id, credential } => {
                self.passkeys
                    .finish_registration(tenant.id, user.id, request_id, None, credential, meta)
                    .await
            }
        };
        let (enrolled, methods) = match confirmed {
            Ok(confirmed) => confirmed,
            // A wrong code, a factor that is not this user's pending one, a
            // spent ceremony or a refused credential: one wrong attempt.
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
        // Exactly one of concurrent right answers opens the session (the
        // factor is confirmed once anyway: a loser signs in again and meets
        // the second step).
        let Some(challenge) = self.challenges.consume(ENROL_STEP, tenant.id, token).await? else {
            return Err(sign_in_again());
        };
        let assurance = challenge.first_factor.stepped_up(methods);
        let signed_in = self.open_session(&tenant, &user, assurance, meta).await?;
        Ok(EnrolledSignIn {
            signed_in,
            recovery_codes: enrolled.recovery_codes,
        })
    }

    /// The tenant and user of a live second-step challenge; 401
    /// `invalid_token` otherwise.
    async fn challenged(&self, tenant: &str, token: &str) -> AppResult<(Tenant, User)> {
        self.challenged_as(SECOND_STEP, tenant, token).await
    }

    /// The tenant and user of a live challenge of `kind`; 401
    /// `invalid_token` otherwise.
    async fn challenged_as(&self, kind: ChallengeKind, tenant: &str, token: &str) -> AppResult<(Tenant, User)> {
        let Some(slug) = form_slug(tenant) else {
            return Err(sign_in_again());
        };
        let Some(tenant) = self.sessions.tenant(slug.as_str()).await? else {
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

    async fn second_step(
        &self,
        tenant: &str,
        token: &str,
        step: SecondStep<'_>,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let (tenant, user) = self.challenged(tenant, token).await?;
        let proven = match step {
            // A TOTP or a recovery code: both are `otp` (as in `service::mfa`).
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
        self.open_session(&tenant, &user, assurance, meta).await
    }

    /// Signs an administrator in with a passkey alone: `request_id` names
    /// the ceremony [`PasskeyFactors::start_sign_in`] started, `credential`
    /// is the browser's answer (its `toJSON()` form) and `tenant` the slug of
    /// the form. The session opens at the passkey's assurance (aal 2, the
    /// ceremony verified the user). Failures: 401 `invalid_credentials` for
    /// every refused passkey, unknown tenant or spent ceremony (one answer);
    /// 400 for an answer that is not a WebAuthn credential; 429; 403
    /// `user_disabled`, 403 `not_admin`, 403 `mfa_enrollment_required`.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn sign_in_passkey(
        &self,
        tenant: &str,
        request_id: &str,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let Some(slug) = form_slug(tenant) else {
            return Err(AppError::invalid_credentials());
        };
        let Some(tenant) = self.sessions.tenant(slug.as_str()).await? else {
            return Err(AppError::invalid_credentials());
        };
        let (user, proof) = self.passkeys.identify(&tenant, request_id, credential, meta).await?;
        self.open_session(&tenant, &user, proof.assurance(), meta).await
    }

    /// The session of a proven sign-in at `assurance`: the `admin` role
    /// checked (403 `not_admin` audited otherwise), the tenant's factor
    /// policy applied, the session saved and audited with its methods.
    async fn open_session(
        &self,
        tenant: &Tenant,
        user: &User,
        assurance: Assurance,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn> {
        let now = self.clock.now();
        let session = self.new_session(tenant, user, assurance, now);
        self.require_admin(tenant, user, &session, meta, now).await?;
        self.require_factor_if_policy(tenant, user, meta, now).await?;
        let token = random_token();
        self.save(&CacheKey::site_session(&token), &session, now).await?;
        let mut audit = meta.audit(tenant.id, now, AuditEvent::AdminLogin, Some(user.id), Some(user.id));
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

    /// A session of `user` at `assurance`, not yet saved.
    fn new_session(&self, tenant: &Tenant, user: &User, assurance: Assurance, now: Timestamp) -> SiteSession {
        SiteSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            tenant_slug: tenant.slug.to_string(),
            viewing: None,
            csrf: random_token(),
            created_at: now,
            last_seen: now,
            flash: None,
            credential_epoch: user.credential_epoch,
            assurance,
        }
    }

    /// Audits a refused admin-site sign-in (`admin_login_denied`) and why.
    async fn denied(
        &self,
        tenant: &Tenant,
        user: &User,
        meta: &RequestMeta,
        now: Timestamp,
        reason: &'static str,
    ) -> AppResult<()> {
        let mut audit = meta.audit(
            tenant.id,
            now,
            AuditEvent::AdminLoginDenied,
            Some(user.id),
            Some(user.id),
        );
        audit.detail = serde_json::json!({ "reason": reason });
        Ok(self.store.record_audit(audit).await?)
    }

    /// The `admin` role, checked for `user` as `session` would carry them:
    /// 403 `not_admin` otherwise, audited `admin_login_denied`.
    async fn require_admin(
        &self,
        tenant: &Tenant,
        user: &User,
        session: &SiteSession,
        meta: &RequestMeta,
        now: Timestamp,
    ) -> AppResult<()> {
        let own = self.principal(session, user, tenant);
        if !self.is_admin(&own).await? {
            self.denied(tenant, user, meta, now, "not_admin").await?;
            return Err(AppError::forbidden(
                ErrorCode::NotAdmin,
                "this account does not hold the admin role, so it cannot use the admin site",
            ));
        }
        Ok(())
    }

    /// Forgets the session behind a cookie token, if there is one (a browser
    /// signing in again: its old session must not linger).
    #[tracing::instrument(skip_all)]
    pub async fn discard(&self, token: &str) -> AppResult<()> {
        Ok(self.cache.delete(&CacheKey::site_session(token)).await?)
    }

    /// The session behind a cookie token, re-checked: not expired (idle and
    /// absolute, by the application clock), the user still present, enabled
    /// and holding `admin`. `take_flash` removes the pending flash (for pages;
    /// a POST leaves it for the page it redirects to).
    #[tracing::instrument(skip_all)]
    pub async fn load(&self, token: &str, take_flash: bool) -> AppResult<Loaded> {
        let key = CacheKey::site_session(token);
        let Some(raw) = self.cache.get(&key).await? else {
            return Ok(Loaded::Expired);
        };
        let Ok(mut session) = serde_json::from_slice::<SiteSession>(&raw) else {
            self.cache.delete(&key).await?;
            return Ok(Loaded::Expired);
        };
        let now = self.clock.now();
        let cfg = &self.admin;
        let idle = i64::try_from(cfg.session_idle.as_secs()).unwrap_or(i64::MAX);
        let absolute = i64::try_from(cfg.session_absolute.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(session.last_seen) > idle || now.saturating_sub(session.created_at) >= absolute {
            self.cache.delete(&key).await?;
            return Ok(Loaded::Expired);
        }
        let Some(own_tenant) = self.sessions.tenant(&session.tenant_slug).await? else {
            return self.revoked(&key, "tenant_deleted").await;
        };
        let Some(user) = self.store.get_user(own_tenant.id, session.user_id).await? else {
            return self.revoked(&key, "user_deleted").await;
        };
        if user.disabled {
            return self.revoked(&key, "user_disabled").await;
        }
        if user.credential_epoch != session.credential_epoch {
            // Signed out everywhere (or a new password) since this session
            // opened: it ends like an expired one, back to the sign-in page.
            self.cache.delete(&key).await?;
            return Ok(Loaded::Expired);
        }
        let own = self.principal(&session, &user, &own_tenant);
        if !self.is_admin(&own).await? {
            return self.revoked(&key, "not_admin").await;
        }
        let operator = own_tenant.id == DEFAULT_TENANT_ID;
        let mut changed = false;
        let viewed = match (&session.viewing, operator) {
            (Some(slug), true) => self.sessions.tenant(slug).await?,
            _ => None,
        };
        if session.viewing.is_some() && viewed.is_none() {
            // The viewed tenant was deleted (or the admin is no operator).
            session.viewing = None;
            changed = true;
        }
        let acting = match &viewed {
            Some(t) => self.principal(&session, &user, t),
            None => own.clone(),
        };
        let flash = if take_flash { session.flash.take() } else { None };
        changed |= flash.is_some();
        if now - session.last_seen >= TOUCH_EVERY_SECS {
            session.last_seen = now;
            changed = true;
        }
        if changed {
            self.save(&key, &session, now).await?;
        }
        Ok(Loaded::Valid(Box::new(SiteAdmin {
            key,
            session,
            user,
            own,
            acting,
            operator,
            flash,
        })))
    }

    async fn revoked(&self, key: &str, reason: &'static str) -> AppResult<Loaded> {
        self.cache.delete(key).await?;
        Ok(Loaded::Revoked(reason))
    }

    /// Leaves a message for the next page.
    /// The session is re-read first, so a change the action itself made to it
    /// (a tenant switch) is kept; a session that ended meanwhile stays ended.
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id))]
    pub async fn flash(&self, admin: &SiteAdmin, ok: bool, text: impl Into<String>) -> AppResult<()> {
        let Some(raw) = self.cache.get(&admin.key).await? else {
            return Ok(());
        };
        let Ok(mut session) = serde_json::from_slice::<SiteSession>(&raw) else {
            return Ok(());
        };
        session.flash = Some(Flash { ok, text: text.into() });
        self.save(&admin.key, &session, self.clock.now()).await
    }

    /// Ends the session behind `admin` (sign-out).
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id))]
    pub async fn sign_out(&self, admin: &SiteAdmin, meta: &RequestMeta) -> AppResult<()> {
        self.cache.delete(&admin.key).await?;
        let mut audit = meta.audit(
            admin.own.tenant.id,
            self.clock.now(),
            AuditEvent::AdminLogout,
            Some(admin.user.id),
            Some(admin.user.id),
        );
        audit.detail = serde_json::json!({ "session": admin.session.id });
        self.store.record_audit(audit).await?;
        Ok(())
    }

    /// Shows another tenant's pages (operators only); `default` (or the empty
    /// slug) goes back to the operator's own tenant. Audited in the operator's
    /// log as `admin_tenant_switched`.
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id, to = %slug))]
    pub async fn switch_tenant(&self, admin: &SiteAdmin, slug: &str, meta: &RequestMeta) -> AppResult<Tenant> {
        let slug = slug.trim();
        let target = if slug.is_empty() || slug == TenantSlug::DEFAULT {
            self.tenants.get(&admin.own, TenantSlug::DEFAULT).await?
        } else {
            self.tenants.get(&admin.own, slug).await?
        };
        let mut session = admin.session.clone();
        session.viewing = (target.id != admin.own.tenant.id).then(|| target.slug.to_string());
        let now = self.clock.now();
        self.save(&admin.key, &session, now).await?;
        let mut audit = meta.audit(
            admin.own.tenant.id,
            now,
            AuditEvent::AdminTenantSwitched,
            None,
            Some(admin.user.id),
        );
        audit.detail = serde_json::json!({ "tenant": target.slug.as_str() });
        self.store.record_audit(audit).await?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_hash_the_token() {
        let token = random_token();
        let key = CacheKey::site_session(&token);
        assert!(key.starts_with("admin:session:"));
        assert!(!key.contains(&token));
        assert_eq!(key, CacheKey::site_session(&token));
    }
}
