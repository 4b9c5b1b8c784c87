//! Changing how you sign in: a new email or phone needs proof twice over.
//!
//! A leaked access token must not become a permanent takeover (change the
//! email, then reset the password through it). So a change of email or
//! phone needs the current password, or for an account without one a fresh
//! one-time code sent to its current proven address (`POST
//! /v1/auth/reauthenticate`); and it is only *pending* until the new address
//! proves itself with the code sent there. Then the old address is told,
//! with the time and the client IP, and every other session ends.
//!
//! A pending change lives in the cache next to its code (one per user and
//! kind, replaced by a newer request), for as long as the code does.

use std::sync::Arc;

use uuid::Uuid;

use super::code_flows::{CodeFlows, invalid_code};
use super::codes::{Check, Purpose};
use super::notices::Notice;
use super::recovery::RECOVERY_CODE_TTL;
use super::{RequestMeta, accounts, proof, sessions};
use crate::cache::Cache;
use crate::cache::{CacheKey, RateBucket};
use crate::clock::Clock;
use crate::crypto::password::PasswordHasher;
use crate::crypto::password::Verification;
use crate::domain::{AuditEvent, Email, Identifier, Phone};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::notify::{MessageKind, Recipient};
use crate::secret::Secret;
use crate::store::{IdentifierKind, Store, StoreError, Tenant, User, UserPatch};

/// The proof a caller offers that they are the account's owner.
#[derive(Default)]
pub struct Reauthentication {
    pub current_password: Option<Secret>,
    pub code: Option<Secret>,
}

fn reauthentication_required() -> AppError {
    AppError::unauthorized(
        ErrorCode::ReauthenticationRequired,
        "changing how you sign in needs your current password (or a code from POST /v1/auth/reauthenticate)",
    )
}

/// The address a reauthentication code goes to: the proven email, else the
/// proven phone.
fn proven_address(user: &User) -> Option<Identifier> {
    match (&user.email, &user.phone) {
        (Some(e), _) if user.email_verified => Some(Identifier::Email(e.clone())),
        (_, Some(p)) if user.phone_verified => Some(Identifier::Phone(p.clone())),
        _ => None,
    }
}

fn recipient(identifier: &Identifier) -> Recipient {
    match identifier {
        Identifier::Email(e) => Recipient::from(e),
        Identifier::Phone(p) => Recipient::from(p),
    }
}

/// The code of a change is bound to the user and the new address both.
fn code_subject(user_id: Uuid, address: &str) -> String {
    format!("{user_id}:{address}")
}

/// Address changes and reauthentication over the ports they touch (the
/// cache keeps a pending change) and the code flows they go through (the
/// resend cooldown, the proof rules, the sign-out of other sessions).
#[derive(Clone)]
pub struct Address {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    clock: Clock,
    passwords: PasswordHasher,
    flows: Arc<CodeFlows>,
}

impl Address {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        clock: Clock,
        passwords: PasswordHasher,
        flows: Arc<CodeFlows>,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
            passwords,
            flows,
        }
    }

    /// `POST /v1/auth/reauthenticate`: a code to the caller's proven address.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn send_reauthentication(&self, principal: &sessions::Principal, meta: &RequestMeta) -> AppResult<()> {
        let tenant = &principal.tenant;
        let user = accounts::me(self.store.as_ref(), principal).await?;
        let Some(to) = proven_address(&user) else {
            return Err(AppError::bad_request(
                ErrorCode::NoProvenAddress,
                "the account has no verified email or phone to send a code to",
            ));
        };
        self.flows.before_send(tenant, to.as_str(), meta).await?;
        let code = self
            .flows
            .codes
            .issue(
                Purpose::Reauthentication,
                tenant.id,
                &user.id.to_string(),
                self.flows.otp_config.ttl,
            )
            .await?;
        self.flows
            .notifier
            .send(
                tenant.id,
                recipient(&to),
                MessageKind::Otp,
                &code,
                self.flows.otp_config.ttl,
            )
            .await?;
        Ok(())
    }

    /// Checks the caller's proof of ownership: the current password when the
    /// account has one (wrong guesses count against a per-account budget), else
    /// a reauthentication code.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn reauthenticate(&self, tenant: &Tenant, user: &User, proof: &Reauthentication) -> AppResult<()> {
        let stored = self.store.password_hash(tenant.id, user.id).await?;
        let rate = self.flows.rate_limit.login_failures_per_account;
        let key = format!("{}:{}", tenant.id, user.id);
        match (stored, &proof.current_password, &proof.code) {
            (Some(hash), Some(password), _) => {
                self.flows
                    .limits
                    .check_failures(RateBucket::ReauthFail, &key, rate)
                    .await?;
                match self
                    .passwords
                    .verify(password, Some(&hash))
                    .await
                    .map_err(AppError::internal)?
                {
                    Verification::Match { .. } => Ok(()),
                    Verification::Mismatch => {
                        self.flows
                            .limits
                            .record_failure(RateBucket::ReauthFail, &key, rate)
                            .await?;
                        Err(AppError::invalid_credentials())
                    }
                }
            }
            (None, _, Some(code)) => {
                match self
                    .flows
                    .codes
                    .consume(
                        Purpose::Reauthentication,
                        tenant.id,
                        &user.id.to_string(),
                        code.expose().trim(),
                    )
                    .await?
                {
                    Check::Valid => Ok(()),
                    Check::Invalid => Err(invalid_code()),
                    Check::Burned => Err(self.flows.burned()),
                }
            }
            _ => Err(reauthentication_required()),
        }
    }

    /// Starts a change to `new`: remembers it as pending and sends the code to
    /// the new address. The caller has already reauthenticated.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn start(&self, tenant: &Tenant, user: &User, new: &Identifier, meta: &RequestMeta) -> AppResult<()> {
        let (kind, taken) = match new {
            Identifier::Email(_) => (IdentifierKind::Email, "email"),
            Identifier::Phone(_) => (IdentifierKind::Phone, "phone"),
        };
        if let Some((other, _)) = self.store.find_for_login(tenant.id, new).await?
            && other.id != user.id
        {
            return Err(StoreError::Conflict { field: taken }.into());
        }
        self.flows.before_send(tenant, new.as_str(), meta).await?;
        self.cache
            .set(
                &CacheKey::pending_address(kind, tenant.id, user.id),
                new.as_str().as_bytes(),
                RECOVERY_CODE_TTL,
            )
            .await?;
        let code = self
            .flows
            .codes
            .issue(
                Purpose::AddressChange,
                tenant.id,
                &code_subject(user.id, new.as_str()),
                RECOVERY_CODE_TTL,
            )
            .await?;
        self.flows
            .notifier
            .send(
                tenant.id,
                recipient(new),
                MessageKind::EmailVerification,
                &code,
                RECOVERY_CODE_TTL,
            )
            .await?;
        Ok(())
    }

    /// The pending change of `kind`, if one waits for its code.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user_id, kind = ?kind))]
    pub async fn pending(&self, tenant: &Tenant, user_id: Uuid, kind: IdentifierKind) -> AppResult<Option<Identifier>> {
        let Some(raw) = self
            .cache
            .get(&CacheKey::pending_address(kind, tenant.id, user_id))
            .await?
        else {
            return Ok(None);
        };
        let address = String::from_utf8(raw).unwrap_or_default();
        Ok(match kind {
            IdentifierKind::Email => Email::parse(&address).ok().map(Identifier::Email),
            IdentifierKind::Phone => Phone::parse(&address).ok().map(Identifier::Phone),
        })
    }

    /// Completes a pending change with the code sent to the new address: the
    /// new address replaces the old one, proven; the old one is told; every
    /// other session ends. `None` when no change of `kind` is pending.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, kind = ?kind))]
    pub async fn complete(
        &self,
        principal: &sessions::Principal,
        kind: IdentifierKind,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<Option<User>> {
        let tenant = &principal.tenant;
        let Some(new) = self.pending(tenant, principal.user_id, kind).await? else {
            return Ok(None);
        };
        let subject = code_subject(principal.user_id, new.as_str());
        match self
            .flows
            .codes
            .consume(Purpose::AddressChange, tenant.id, &subject, code)
            .await?
        {
            Check::Valid => {}
            Check::Invalid => return Err(invalid_code()),
            Check::Burned => {
                self.cache
                    .delete(&CacheKey::pending_address(kind, tenant.id, principal.user_id))
                    .await?;
                return Err(self.flows.burned());
            }
        }
        self.cache
            .delete(&CacheKey::pending_address(kind, tenant.id, principal.user_id))
            .await?;
        let before = accounts::me(self.store.as_ref(), principal).await?;
        let now = self.clock.now();
        let mut patch = UserPatch {
            now,
            ..Default::default()
        };
        let (old, what, event) = match &new {
            Identifier::Email(e) => {
                patch.email = Some(Some(e.clone()));
                patch.email_verified = Some(false);
                let old = before
                    .email
                    .clone()
                    .filter(|_| before.email_verified)
                    .map(Identifier::Email);
                (old, "email address", AuditEvent::EmailChanged)
            }
            Identifier::Phone(p) => {
                patch.phone = Some(Some(p.clone()));
                patch.phone_verified = Some(false);
                let old = before
                    .phone
                    .clone()
                    .filter(|_| before.phone_verified)
                    .map(Identifier::Phone);
                (old, "phone number", AuditEvent::PhoneChanged)
            }
        };
        let audit = meta.audit(tenant.id, now, event, Some(before.id), Some(before.id));
        let changed = self.store.update_user(tenant.id, before.id, patch, audit).await?;
        // The new address is proven by the code; the caller reauthenticated
        // (password or code) when asking for the change, so nothing is dropped.
        let keep = proof::Keep {
            password: true,
            session: Some(principal.session_id),
        };
        let user = self.flows.proof.prove(tenant, &changed, kind, keep, meta).await?;
        self.flows
            .sessions
            .sign_out_everywhere(tenant.id, user.id, Some(principal.session_id), None)
            .await?;
        if let Some(old) = old {
            self.flows
                .notices
                .send_to(tenant.id, recipient(&old), Notice::AddressChanged { what }, meta)
                .await?;
        }
        Ok(Some(user))
    }
}
