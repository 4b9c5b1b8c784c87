//! Sign-in with a one-time code sent to a phone or an email address.
//!
//! Requesting a code answers the same whether or not the account exists; a
//! code goes out only to an existing, enabled account or, when the tenant's
//! signup policy admits it, to a new address (whose account is created on first verification,
//! already verified: the code proved the address). Floods are stopped by a
//! resend cooldown and per-identifier and per-IP budgets; guessing by the
//! burn after `otp.max_attempts` wrong codes.

use std::sync::Arc;

use uuid::Uuid;

use super::codes::{Check, Purpose};
use super::limits::ip_key;
use super::{RequestMeta, proof, sessions};
use crate::cache::Cache;
use crate::cache::{CacheKey, RateBucket};
use crate::clock::Clock;
use crate::config::{OtpConfig, RateLimitConfig};
use crate::domain::{Assurance, AuditEvent, Identifier};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::notify::{MessageKind, Notifier, Recipient};
use crate::service::codes::Codes;
use crate::service::limits::Limits;
use crate::service::proof::Proof;
use crate::service::sessions::Sessions;
use crate::service::settings::Settings;
use crate::service::sign_in::{Proceed, SignInGate, SignedIn};
use crate::store::{IdentifierKind, NewUser, SignIn, Store, Tenant, User};

fn recipient(identifier: &Identifier) -> Recipient {
    match identifier {
        Identifier::Email(e) => Recipient::from(e),
        Identifier::Phone(p) => Recipient::from(p),
    }
}

fn kind(identifier: &Identifier) -> IdentifierKind {
    match identifier {
        Identifier::Email(_) => IdentifierKind::Email,
        Identifier::Phone(_) => IdentifierKind::Phone,
    }
}

/// One-time codes by email or SMS over what they touch: the cache (the
/// resend cooldown), the limits, the codes and the notifier, the store, and
/// the services a verified code signs in through.
#[derive(Clone)]
pub struct Otp {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    clock: Clock,
    notifier: Notifier,
    limits: Limits,
    codes: Codes,
    settings: Settings,
    proof: Proof,
    sessions: Sessions,
    gate: SignInGate,
    rate_limit: RateLimitConfig,
    otp: OtpConfig,
    /// `signup.require_email_verification`.
    require_email_verification: bool,
}

impl Otp {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        clock: Clock,
        notifier: Notifier,
        limits: Limits,
        codes: Codes,
        settings: Settings,
        proof: Proof,
        sessions: Sessions,
        gate: SignInGate,
        rate_limit: RateLimitConfig,
        otp: OtpConfig,
        require_email_verification: bool,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
            notifier,
            limits,
            codes,
            settings,
            proof,
            sessions,
            gate,
            rate_limit,
            otp,
            require_email_verification,
        }
    }

    /// Enforces the resend cooldown for `identifier`: one message per
    /// `otp.resend_cooldown`, whatever the purpose.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn cooldown(&self, tenant: &Tenant, identifier: &str) -> AppResult<()> {
        if !self.rate_limit.enabled {
            return Ok(());
        }
        let period = self.otp.resend_cooldown;
        let key = CacheKey::cooldown(tenant.id, identifier);
        if !self.cache.set_if_absent(&key, b"1", period).await? {
            return Err(AppError::RateLimited {
                retry_after_secs: period.as_secs(),
            });
        }
        Ok(())
    }

    /// `POST /v1/auth/otp`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn request(&self, tenant: &Tenant, identifier: &Identifier, meta: &RequestMeta) -> AppResult<()> {
        let limits_config = &self.rate_limit;
        self.limits
            .spend(
                RateBucket::OtpSendIp,
                &ip_key(meta.ip.as_deref()),
                limits_config.otp_send_per_ip,
            )
            .await?;
        // The cooldown first: a request it refuses sends nothing, so it must not
        // spend the identifier's budget (else a few requests an hour would lock
        // the owner out of codes). Past the cooldown the budget is spent whether
        // or not the account exists, so the answers stay the same for both.
        self.cooldown(tenant, identifier.as_str()).await?;
        let target = format!("{}:{}", tenant.id, identifier.as_str());
        self.limits
            .spend(RateBucket::OtpSendId, &target, limits_config.otp_send_per_identifier)
            .await?;

        let existing = self.store.find_for_login(tenant.id, identifier).await?.map(|(u, _)| u);
        let deliver = match &existing {
            Some(user) => !user.disabled,
            // A new address gets a code only when the tenant's signup policy
            // would admit it, so the answer stays the same either way.
            None => self.settings.signup_admits(tenant, identifier).await?,
        };
        if !deliver {
            return Ok(());
        }
        let ttl = self.otp.ttl;
        let code = self
            .codes
            .issue(Purpose::SignIn, tenant.id, identifier.as_str(), ttl)
            .await?;
        self.notifier
            .send(tenant.id, recipient(identifier), MessageKind::Otp, &code, ttl)
            .await?;
        let user_id = existing.map(|u| u.id);
        let mut audit = meta.audit(tenant.id, self.clock.now(), AuditEvent::OtpSent, user_id, user_id);
        audit.detail = serde_json::json!({ "channel": recipient(identifier).channel() });
        self.store.record_audit(audit).await?;
        Ok(())
    }

    /// `POST /v1/auth/otp/verify`: signs in (creating the account on first
    /// verification when the tenant's signup policy admits the identifier; a
    /// phone number never passes a `domains` policy, since it proves no email
    /// domain). Failures are `invalid_otp`, 429 once the code is burned, or 403
    /// `signup_disabled` / `signup_domain_not_allowed` for a new account the
    /// policy refuses.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn verify(
        &self,
        tenant: &Tenant,
        identifier: &Identifier,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn<(User, sessions::Tokens)>> {
        let now = self.clock.now();
        self.spend_code(tenant, identifier, code, meta).await?;
        let assurance = match identifier {
            Identifier::Email(_) => Assurance::email_code(),
            Identifier::Phone(_) => Assurance::phone_code(),
        };
        let (session, refresh) = self.sessions.new_session_with(meta, assurance.clone());
        // An account this code creates has no factor; the tenant's policy
        // decides as for a sign-up (`SignInGate::signup_needs_enrollment`).
        let mut proceed = Proceed::default();
        let (user, before) = match self.store.find_for_login(tenant.id, identifier).await?.map(|(u, _)| u) {
            Some(user) => {
                let user = self.admit(tenant, &user, identifier, meta).await?;
                // The code proved the address (kept above); a second factor,
                // if the user has one, or the tenant's policy comes before
                // any session.
                proceed = match self
                    .gate
                    .after_first_factor(tenant, &user, &assurance, meta)
                    .await?
                    .proceed()
                {
                    Ok(proceed) => proceed,
                    Err(answer) => return Ok(answer),
                };
                let mut audit = meta.audit(tenant.id, now, AuditEvent::OtpVerified, Some(user.id), Some(user.id));
                audit.detail = serde_json::json!({ "session_id": session.id });
                let sign_in = SignIn {
                    session: session.clone(),
                    rehash: None,
                    verified: Some(kind(identifier)),
                };
                self.store.sign_in(tenant.id, user.id, sign_in, audit).await?
            }
            None => {
                // The policy may have changed since the code was sent.
                self.settings.check_signup(tenant, identifier).await?;
                let id = Uuid::now_v7();
                let (email, phone) = match identifier {
                    Identifier::Email(e) => (Some(e.clone()), None),
                    Identifier::Phone(p) => (None, Some(p.clone())),
                };
                let enrol_first = self.gate.signup_needs_enrollment(tenant).await?;
                let mut audit = meta.audit(tenant.id, now, AuditEvent::OtpVerified, Some(id), Some(id));
                audit.detail = match enrol_first {
                    false => serde_json::json!({ "session_id": session.id, "signup": true }),
                    true => serde_json::json!({ "signup": true }),
                };
                let user = self
                    .store
                    .create_user(
                        NewUser {
                            id,
                            tenant_id: tenant.id,
                            email_verified: email.is_some(),
                            phone_verified: phone.is_some(),
                            email,
                            phone,
                            password_hash: None,
                            metadata: serde_json::json!({}),
                            roles: vec![],
                            now,
                        },
                        (!enrol_first).then(|| session.clone()),
                        audit,
                    )
                    .await?;
                if enrol_first {
                    let step = self.gate.signup_enrollment(tenant, &user, &assurance, meta).await?;
                    return Ok(SignedIn::EnrollmentRequired(step));
                }
                proceed.enrollment_due = self.gate.signup_enrollment_due(tenant, &user).await?;
                (user, None)
            }
        };
        let mut tokens = self.sessions.session_tokens(&user, &session, tenant, refresh)?;
        tokens.device_token = Some(self.sessions.device(tenant.id, &user, before, meta).await?);
        Ok(SignedIn::complete((user, tokens), proceed))
    }

    /// The code part of a verification: the per-IP budget, then the code
    /// spent; a wrong one is audited `otp_failed` and answered
    /// `invalid_otp`, 429 once the code is burned.
    async fn spend_code(
        &self,
        tenant: &Tenant,
        identifier: &Identifier,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let now = self.clock.now();
        self.limits
            .spend(
                RateBucket::OtpVerifyIp,
                &ip_key(meta.ip.as_deref()),
                self.rate_limit.otp_verify_per_ip,
            )
            .await?;
        let invalid = || AppError::unauthorized(ErrorCode::InvalidOtp, "the code is wrong or expired");
        match self
            .codes
            .consume(Purpose::SignIn, tenant.id, identifier.as_str(), code)
            .await?
        {
            Check::Valid => {}
            outcome => {
                let user_id = self
                    .store
                    .find_for_login(tenant.id, identifier)
                    .await?
                    .map(|(u, _)| u.id);
                let mut audit = meta.audit(tenant.id, now, AuditEvent::OtpFailed, user_id, None);
                audit.detail = serde_json::json!({ "burned": outcome == Check::Burned });
                self.store.record_audit(audit).await?;
                return Err(match outcome {
                    Check::Burned => AppError::RateLimited {
                        retry_after_secs: self.otp.attempt_window.as_secs(),
                    },
                    _ => invalid(),
                });
            }
        }
        Ok(())
    }

    /// The proof part of [`Self::verify`], for the hosted pages (which open
    /// their own kind of session): spends the code under the same budgets,
    /// applies the same account rules (disabled, unverified email behind a
    /// phone code, the tenant's signup policy for a new address, whose
    /// account is created already verified) and answers the user and what
    /// the code proved, audited `otp_verified`. No API session is opened;
    /// the caller goes through the second-factor and policy gate.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn prove(
        &self,
        tenant: &Tenant,
        identifier: &Identifier,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<(User, Assurance)> {
        let now = self.clock.now();
        self.spend_code(tenant, identifier, code, meta).await?;
        let assurance = match identifier {
            Identifier::Email(_) => Assurance::email_code(),
            Identifier::Phone(_) => Assurance::phone_code(),
        };
        let user = match self.store.find_for_login(tenant.id, identifier).await?.map(|(u, _)| u) {
            Some(user) => {
                let user = self.admit(tenant, &user, identifier, meta).await?;
                let audit = meta.audit(tenant.id, now, AuditEvent::OtpVerified, Some(user.id), Some(user.id));
                self.store.record_audit(audit).await?;
                user
            }
            None => {
                self.settings.check_signup(tenant, identifier).await?;
                let id = Uuid::now_v7();
                let (email, phone) = match identifier {
                    Identifier::Email(e) => (Some(e.clone()), None),
                    Identifier::Phone(p) => (None, Some(p.clone())),
                };
                let mut audit = meta.audit(tenant.id, now, AuditEvent::OtpVerified, Some(id), Some(id));
                audit.detail = serde_json::json!({ "signup": true });
                self.store
                    .create_user(
                        NewUser {
                            id,
                            tenant_id: tenant.id,
                            email_verified: email.is_some(),
                            phone_verified: phone.is_some(),
                            email,
                            phone,
                            password_hash: None,
                            metadata: serde_json::json!({}),
                            roles: vec![],
                            now,
                        },
                        None,
                        audit,
                    )
                    .await?
            }
        };
        Ok((user, assurance))
    }

    /// The rules an existing account passes before a verified code signs
    /// it in, and the address marked proven.
    async fn admit(
        &self,
        tenant: &Tenant,
        user: &User,
        identifier: &Identifier,
        meta: &RequestMeta,
    ) -> AppResult<User> {
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        // Every way in honours the setting: a phone code must not open
        // an account whose (possibly someone else's) email is unproven.
        if matches!(identifier, Identifier::Phone(_))
            && self.require_email_verification
            && user.email.is_some()
            && !user.email_verified
        {
            return Err(AppError::forbidden(
                ErrorCode::EmailNotVerified,
                "verify your email address before signing in",
            ));
        }
        self.proof
            .prove(tenant, user, kind(identifier), proof::Keep::default(), meta)
            .await
    }
}
