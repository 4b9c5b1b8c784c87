//! Email verification and password recovery.
//!
//! Requests that name an address (`{email}` without a bearer) answer the same
//! whether or not an account exists, and are budgeted per address
//! (`rate_limit.recovery_per_identifier`) and per IP. A reset revokes every
//! session of the user; a change revokes every session but the caller's.

use std::sync::Arc;
use std::time::Duration;

use super::code_flows::{CodeFlows, invalid_code};
use super::codes::{Check, Purpose};
use super::notices::Notice;
use super::{RequestMeta, accounts, proof, sessions};
use crate::cache::RateBucket;
use crate::clock::Clock;
use crate::crypto::password::PasswordHasher;
use crate::crypto::password::Verification;
use crate::domain::PasswordPolicy;
use crate::domain::{Amr, Assurance, AuditEvent, Email, Identifier};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::notify::{MessageKind, Recipient};
use crate::secret::Secret;
use crate::service::sign_in::SignedIn;
use crate::store::{EndSessions, IdentifierKind, Store, Tenant, User, UserPatch};

/// Verification and reset codes travel by email and may sit unread for a
/// while, so they live longer than a sign-in code.
pub const RECOVERY_CODE_TTL: Duration = Duration::from_secs(15 * 60);

/// Email verification and password recovery over the ports they touch, the
/// password rules, and the code flows they go through (the resend cooldown,
/// the proof rules, sessions).
#[derive(Clone)]
pub struct Recovery {
    store: Arc<dyn Store>,
    clock: Clock,
    passwords: PasswordHasher,
    policy: Arc<PasswordPolicy>,
    flows: Arc<CodeFlows>,
}

impl Recovery {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        passwords: PasswordHasher,
        policy: Arc<PasswordPolicy>,
        flows: Arc<CodeFlows>,
    ) -> Self {
        Self {
            store,
            clock,
            passwords,
            policy,
            flows,
        }
    }

    async fn budget(&self, tenant: &Tenant, email: &Email, meta: &RequestMeta) -> AppResult<()> {
        // The cooldown before the address's budget: see `otp::request`.
        self.flows.before_send(tenant, email.as_str(), meta).await?;
        self.flows
            .limits
            .spend(
                RateBucket::Recovery,
                &format!("{}:{email}", tenant.id),
                self.flows.rate_limit.recovery_per_identifier,
            )
            .await
    }

    async fn find_by_email(&self, tenant: &Tenant, email: &Email) -> AppResult<Option<User>> {
        Ok(self
            .store
            .find_for_login(tenant.id, &Identifier::Email(email.clone()))
            .await?
            .map(|(u, _)| u))
    }

    async fn send(&self, tenant: &Tenant, email: &Email, purpose: Purpose, kind: MessageKind) -> AppResult<()> {
        let code = self
            .flows
            .codes
            .issue(purpose, tenant.id, email.as_str(), RECOVERY_CODE_TTL)
            .await?;
        self.flows
            .notifier
            .send(tenant.id, Recipient::from(email), kind, &code, RECOVERY_CODE_TTL)
            .await?;
        Ok(())
    }

    /// Sends a verification code to an unverified user's email. Used after
    /// sign-up and by `POST /v1/auth/email/verify/request`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn send_verification(&self, tenant: &Tenant, user: &User) -> AppResult<()> {
        match &user.email {
            Some(email) if !user.email_verified && !user.disabled => {
                self.send(
                    tenant,
                    email,
                    Purpose::EmailVerification,
                    MessageKind::EmailVerification,
                )
                .await
            }
            _ => Ok(()),
        }
    }

    /// `POST /v1/auth/email/verify/request` with `{email}` and no bearer.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn request_verification(&self, tenant: &Tenant, email: &Email, meta: &RequestMeta) -> AppResult<()> {
        self.budget(tenant, email, meta).await?;
        if let Some(user) = self.find_by_email(tenant, email).await? {
            self.send_verification(tenant, &user).await?;
        }
        Ok(())
    }

    /// `POST /v1/auth/email/verify/request` with a bearer.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn request_own_verification(&self, principal: &sessions::Principal, meta: &RequestMeta) -> AppResult<()> {
        let user = accounts::me(self.store.as_ref(), principal).await?;
        if let Some(email) = &user.email {
            self.budget(&principal.tenant, email, meta).await?;
            self.send_verification(&principal.tenant, &user).await?;
        }
        Ok(())
    }

    async fn consume(&self, tenant: &Tenant, email: &Email, purpose: Purpose, code: &str) -> AppResult<()> {
        match self
            .flows
            .codes
            .consume(purpose, tenant.id, email.as_str(), code)
            .await?
        {
            Check::Valid => Ok(()),
            Check::Invalid => Err(invalid_code()),
            Check::Burned => Err(self.flows.burned()),
        }
    }

    /// `POST /v1/auth/email/verify` with a bearer: marks the caller's email verified.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn confirm_own(
        &self,
        principal: &sessions::Principal,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<User> {
        let user = accounts::me(self.store.as_ref(), principal).await?;
        let email = user.email.clone().ok_or_else(invalid_code)?;
        self.consume(&principal.tenant, &email, Purpose::EmailVerification, code)
            .await?;
        // The prover is signed in to this account and received the code: they
        // own the address, and (having a session) set or know the password.
        let keep = proof::Keep {
            password: true,
            session: Some(principal.session_id),
        };
        self.flows
            .proof
            .prove(&principal.tenant, &user, IdentifierKind::Email, keep, meta)
            .await
    }

    /// `POST /v1/auth/email/verify` with `{email, code}`: verifies and signs in
    /// (the way in when sign-up requires a verified email).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn confirm_and_sign_in(
        &self,
        tenant: &Tenant,
        email: &Email,
        code: &str,
        password: Option<&Secret>,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn<(User, sessions::Tokens)>> {
        let (user, assurance) = self.confirm_email(tenant, email, code, password, meta).await?;
        let proceed = match self
            .flows
            .gate
            .after_first_factor(tenant, &user, &assurance, meta)
            .await?
            .proceed()
        {
            Ok(proceed) => proceed,
            Err(answer) => return Ok(answer),
        };
        let start = sessions::SessionStart {
            verified: Some(IdentifierKind::Email),
            ..sessions::SessionStart::new(assurance, serde_json::json!({ "method": "email_code" }))
        };
        let signed_in = self.flows.sessions.start(tenant, user.id, meta, start).await?;
        Ok(SignedIn::complete(signed_in, proceed))
    }

    /// The proof part of [`Self::confirm_and_sign_in`]: spends the code,
    /// marks the address verified (keeping the password only when it is
    /// shown on a first proof) and answers the user and what the sign-in
    /// proved, for the caller to open its own kind of session (the hosted
    /// pages' SSO session).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn confirm_email(
        &self,
        tenant: &Tenant,
        email: &Email,
        code: &str,
        password: Option<&Secret>,
        meta: &RequestMeta,
    ) -> AppResult<(User, Assurance)> {
        self.consume(tenant, email, Purpose::EmailVerification, code).await?;
        let user = self.find_by_email(tenant, email).await?.ok_or_else(invalid_code)?;
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        // Whoever reads the mailbox proves the address, not that they chose
        // the password it was signed up with: that password survives the first
        // proof only if the prover shows it here.
        // Only a first proof can drop the password: spend an argon2 check on
        // the shown password only then.
        let shows_password = match password {
            Some(password) if proof::unowned(&user) => {
                let stored = self.store.password_hash(tenant.id, user.id).await?;
                stored.is_some()
                    && matches!(
                        self.passwords
                            .verify(password, stored.as_deref())
                            .await
                            .map_err(AppError::internal)?,
                        Verification::Match { .. }
                    )
            }
            _ => false,
        };
        let keep = proof::Keep {
            password: shows_password,
            session: None,
        };
        let user = self
            .flows
            .proof
            .prove(tenant, &user, IdentifierKind::Email, keep, meta)
            .await?;
        // The emailed code signs in; a password shown beside it is named too,
        // but an emailed code is no second factor: aal 1 either way.
        let mut assurance = Assurance::email_code();
        if shows_password {
            assurance.amr.insert(Amr::Pwd);
        }
        Ok((user, assurance))
    }

    /// `POST /v1/auth/password/forgot`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn forgot(&self, tenant: &Tenant, email: &Email, meta: &RequestMeta) -> AppResult<()> {
        self.budget(tenant, email, meta).await?;
        if let Some(user) = self.find_by_email(tenant, email).await?
            && !user.disabled
        {
            self.send(tenant, email, Purpose::PasswordReset, MessageKind::PasswordReset)
                .await?;
        }
        Ok(())
    }

    /// Stores a new password hash and signs the user out everywhere (all
    /// sessions, or all but `keep`); the admin site's sessions end as well,
    /// since the patch moves the credential epoch on with the new password.
    async fn set_password(
        &self,
        tenant: &Tenant,
        user: &User,
        password: &Secret,
        keep: Option<uuid::Uuid>,
        event: AuditEvent,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let hash = self.passwords.hash(password).await.map_err(AppError::internal)?;
        let now = self.clock.now();
        let patch = UserPatch {
            password_hash: Some(Some(hash)),
            end_sessions: EndSessions::Epoch,
            now,
            ..Default::default()
        };
        let audit = meta.audit(tenant.id, now, event, Some(user.id), Some(user.id));
        let user = self.store.update_user(tenant.id, user.id, patch, audit).await?;
        self.flows
            .sessions
            .sign_out_everywhere(tenant.id, user.id, keep, None)
            .await?;
        let notice = match event {
            AuditEvent::PasswordReset => Notice::PasswordReset,
            _ => Notice::PasswordChanged,
        };
        self.flows.notices.send(tenant.id, &user, notice, meta).await?;
        Ok(())
    }

    /// `POST /v1/auth/password/reset`: the weak-password check comes first so a
    /// rejected password does not use up the code.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn reset(
        &self,
        tenant: &Tenant,
        email: &Email,
        code: &str,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        accounts::check_password(&self.policy, new_password, vec![email.to_string()]).await?;
        self.consume(tenant, email, Purpose::PasswordReset, code).await?;
        let user = self.find_by_email(tenant, email).await?.ok_or_else(invalid_code)?;
        // A reset code arrived by email: the address is proven, and the new
        // password is the prover's own.
        let keep = proof::Keep {
            password: true,
            session: None,
        };
        let user = self
            .flows
            .proof
            .prove(tenant, &user, IdentifierKind::Email, keep, meta)
            .await?;
        self.set_password(tenant, &user, new_password, None, AuditEvent::PasswordReset, meta)
            .await
    }

    /// `POST /v1/auth/password/change`: proves the current password, then
    /// revokes every other session.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn change(
        &self,
        principal: &sessions::Principal,
        current: &Secret,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let tenant = &principal.tenant;
        let user = accounts::me(self.store.as_ref(), principal).await?;
        self.flows.gate.require_assurance_for_change(principal).await?;
        let stored = self.store.password_hash(tenant.id, user.id).await?;
        if self
            .passwords
            .verify(current, stored.as_deref())
            .await
            .map_err(AppError::internal)?
            == Verification::Mismatch
        {
            return Err(AppError::invalid_credentials());
        }
        let hints = user.email.iter().map(|e| e.to_string()).collect();
        accounts::check_password(&self.policy, new_password, hints).await?;
        self.set_password(
            tenant,
            &user,
            new_password,
            Some(principal.session_id),
            AuditEvent::PasswordChanged,
            meta,
        )
        .await
    }
}
