//! Accounts: sign-up, password sign-in, the caller's own profile, and the
//! creation of administrators.
//!
//! Failed sign-ins are generic: an unknown account, a wrong password and an
//! account without a password all cost one argon2 verification and give the
//! same `invalid_credentials`. Only a caller who proved the password learns
//! that the account is disabled or unverified.

use std::sync::Arc;

use uuid::Uuid;

use super::limits::ip_key;
use super::{RequestMeta, off_runtime, sessions};
use crate::cache::RateBucket;
use crate::clock::Clock;
use crate::config::RateLimitConfig;
use crate::crypto::password::{PasswordHasher, Verification};
use crate::domain::{AuditEvent, Email, Identifier, PasswordPolicy, Phone, RoleName, TenantSlug, Timestamp};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::address::Address;
use crate::service::denylist::DenyList;
use crate::service::devices::Devices;
use crate::service::limits::Limits;
use crate::service::recovery::Recovery;
use crate::service::sessions::{SessionStart, Sessions};
use crate::service::settings::Settings;
use crate::service::sign_in::{EnrollmentStep, SignInGate, SignedIn};
use crate::store::{NewUser, Store, StoreError, Tenant, User, UserPatch};
use crate::telemetry::metrics::Metrics;

/// Checks the password policy off the runtime (zxcvbn takes milliseconds).
#[tracing::instrument(skip_all)]
pub async fn check_password(
    policy: &Arc<PasswordPolicy>,
    password: &Secret,
    user_inputs: Vec<String>,
) -> AppResult<()> {
    let policy = policy.clone();
    let password = password.clone();
    off_runtime(move || {
        let inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
        policy.check(password.expose(), &inputs)
    })
    .await?
    .map_err(|reason| AppError::validation("password", reason))
}

fn hint_inputs(email: Option<&Email>) -> Vec<String> {
    let mut inputs = vec!["forge".to_string()];
    if let Some(e) = email {
        inputs.push(e.as_str().to_string());
        if let Some((local, _)) = e.as_str().split_once('@') {
            inputs.push(local.to_string());
        }
    }
    inputs
}

pub struct SignupInput {
    pub email: Email,
    pub password: Secret,
    pub phone: Option<Phone>,
    pub metadata: serde_json::Value,
}

/// The outcome of a sign-up: tokens, unless email verification must come first.
pub enum SignedUp {
    /// Signed in; `enrollment_due`: the end of the tenant policy's grace
    /// when the policy wants a second factor.
    WithTokens {
        user: User,
        tokens: sessions::Tokens,
        enrollment_due: Option<Timestamp>,
    },
    PendingVerification(User),
    /// The tenant's policy wants a factor before any session (no grace):
    /// the account exists, and the enrolment token is its way in.
    EnrollmentRequired(User, EnrollmentStep),
}

/// A password proven for a sign-in: the user, and whether the stored hash
/// uses outdated parameters.
pub struct ProvenPassword {
    pub user: User,
    pub needs_rehash: bool,
}

/// The caller's own account, read afresh. A free function over the store
/// alone: address changes and recovery read it too. An account deleted since
/// the token was issued answers like a bad token.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
pub async fn me(store: &dyn Store, principal: &sessions::Principal) -> AppResult<User> {
    store
        .get_user(principal.tenant.id, principal.user_id)
        .await?
        .ok_or_else(AppError::invalid_token)
}

/// A change to one's own profile. A new email or phone needs proof of
/// ownership and waits for the new address to prove itself (see
/// [`super::address`]); metadata changes at once.
#[derive(Default)]
pub struct ProfileChange {
    pub email: Option<Email>,
    pub phone: Option<Option<Phone>>,
    pub metadata: Option<serde_json::Value>,
    pub proof: super::address::Reauthentication,
}

/// The profile after a change, and the address changes still waiting for
/// their code.
pub struct ProfileUpdate {
    pub user: User,
    pub pending_email: Option<Email>,
    pub pending_phone: Option<Phone>,
}

/// Sign-up, password sign-in, one's own profile and the creation of
/// administrators, over the ports they touch and the services they go
/// through (budgets, the signup policy, sessions and device tokens, address
/// changes, the verification email, sign-outs).
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    clock: Clock,
    passwords: PasswordHasher,
    policy: Arc<PasswordPolicy>,
    metrics: Arc<Metrics>,
    limits: Limits,
    settings: Settings,
    sessions: Sessions,
    devices: Devices,
    deny: DenyList,
    address: Address,
    recovery: Recovery,
    gate: SignInGate,
    rate_limit: RateLimitConfig,
    /// `signup.require_email_verification`.
    require_email_verification: bool,
}

impl Accounts {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        passwords: PasswordHasher,
        policy: Arc<PasswordPolicy>,
        metrics: Arc<Metrics>,
        limits: Limits,
        settings: Settings,
        sessions: Sessions,
        devices: Devices,
        deny: DenyList,
        address: Address,
        recovery: Recovery,
        gate: SignInGate,
        rate_limit: RateLimitConfig,
        require_email_verification: bool,
    ) -> Self {
        Self {
            store,
            clock,
            passwords,
            policy,
            metrics,
            limits,
            settings,
            sessions,
            devices,
            deny,
            address,
            recovery,
            gate,
            rate_limit,
            require_email_verification,
        }
    }

    /// What every sign-up checks before the account exists: the per-IP
    /// budget, the tenant's sign-up policy, the password rules; the hash.
    async fn admit(&self, tenant: &Tenant, input: &SignupInput, meta: &RequestMeta) -> AppResult<String> {
        self.limits
            .spend(
                RateBucket::SignupIp,
                &ip_key(meta.ip.as_deref()),
                self.rate_limit.signup_per_ip,
            )
            .await?;
        // The tenant's own policy (its default follows `signup.enabled`).
        self.settings
            .check_signup(tenant, &Identifier::Email(input.email.clone()))
            .await?;
        check_password(&self.policy, &input.password, hint_inputs(Some(&input.email))).await?;
        self.passwords.hash(&input.password).await.map_err(AppError::internal)
    }

    /// A sign-up that opens no API session (the hosted pages open their own
    /// SSO session after it): the same checks and audit as [`Self::signup`],
    /// and the verification email when `signup.require_email_verification`
    /// holds the account back (then `true`: sign-in waits for the proof).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn register(&self, tenant: &Tenant, input: SignupInput, meta: &RequestMeta) -> AppResult<(User, bool)> {
        let hash = self.admit(tenant, &input, meta).await?;
        let user_id = Uuid::now_v7();
        let now = self.clock.now();
        let user = self
            .store
            .create_user(
                NewUser {
                    id: user_id,
                    tenant_id: tenant.id,
                    email: Some(input.email),
                    email_verified: false,
                    phone: input.phone,
                    phone_verified: false,
                    password_hash: Some(hash),
                    metadata: input.metadata,
                    roles: vec![],
                    now,
                },
                None,
                meta.audit(tenant.id, now, AuditEvent::Signup, Some(user_id), Some(user_id)),
            )
            .await?;
        let hold_back = self.require_email_verification;
        if hold_back {
            self.recovery.send_verification(tenant, &user).await?;
        }
        Ok((user, hold_back))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn signup(&self, tenant: &Tenant, input: SignupInput, meta: &RequestMeta) -> AppResult<SignedUp> {
        let hash = self.admit(tenant, &input, meta).await?;
        let hold_back = self.require_email_verification;
        let enrol_first = !hold_back && self.gate.signup_needs_enrollment(tenant).await?;
        let (session, refresh) = self.sessions.new_session(meta);
        let user_id = Uuid::now_v7();
        let now = self.clock.now();
        let user = self
            .store
            .create_user(
                NewUser {
                    id: user_id,
                    tenant_id: tenant.id,
                    email: Some(input.email),
                    email_verified: false,
                    phone: input.phone,
                    phone_verified: false,
                    password_hash: Some(hash),
                    metadata: input.metadata,
                    roles: vec![],
                    now,
                },
                (!hold_back && !enrol_first).then(|| session.clone()),
                meta.audit(tenant.id, now, AuditEvent::Signup, Some(user_id), Some(user_id)),
            )
            .await?;
        if hold_back {
            self.recovery.send_verification(tenant, &user).await?;
            return Ok(SignedUp::PendingVerification(user));
        }
        if enrol_first {
            let step = self
                .gate
                .signup_enrollment(tenant, &user, &crate::domain::Assurance::password(), meta)
                .await?;
            return Ok(SignedUp::EnrollmentRequired(user, step));
        }
        let enrollment_due = self.gate.signup_enrollment_due(tenant, &user).await?;
        let mut tokens = self.sessions.tokens_for(&user, session.id, tenant, refresh)?;
        // The device that signed up is known from the start: signing in
        // from it later is no news to its owner.
        tokens.device_token = Some(self.devices.issue(tenant.id, user.id));
        Ok(SignedUp::WithTokens {
            user,
            tokens,
            enrollment_due,
        })
    }

    /// The one password check of every sign-in (API and admin site): the per-IP
    /// budget, the failure throttle (per account whatever the address, or per
    /// device for a request carrying a valid device token of this account, see
    /// [`super::devices`]), one argon2 verification
    /// whether or not the account exists (`tenant: None`, an unknown tenant, is
    /// a failure like any other), the `login_failed` audit row, and the answers
    /// only a caller who proved the password may see (disabled, unverified).
    /// `tenant_key` names the tenant in the throttle keys. `via` tags the audit.
    #[tracing::instrument(skip_all, fields(tenant_id = ?tenant.map(|t| t.id), via = via))]
    pub async fn check_password_sign_in(
        &self,
        tenant: Option<&Tenant>,
        tenant_key: &str,
        identifier: &Identifier,
        password: &Secret,
        meta: &RequestMeta,
        via: &'static str,
    ) -> AppResult<ProvenPassword> {
        let rl = &self.rate_limit;
        let ip = ip_key(meta.ip.as_deref());
        self.limits.spend(RateBucket::LoginIp, &ip, rl.login_per_ip).await?;
        let found = match tenant {
            Some(t) => self.store.find_for_login(t.id, identifier).await?,
            None => None,
        };
        // Failures count per account from every address (NIST SP 800-63B
        // 5.2.2): by user id, so email and phone share one budget, or by the
        // name tried when there is no such account, which then locks the same
        // way. A valid device token of this account swaps in the device's own
        // budget, so the account's lockout never locks its owner out.
        let device = match (tenant, &found, meta.device_token.as_deref()) {
            (Some(t), Some((user, _)), Some(token)) => self.devices.verify(token, t.id, user.id),
            _ => None,
        };
        let (bucket, failure_key, budget) = match (&device, &found) {
            (Some(device), _) => (
                RateBucket::LoginFailDevice,
                device.to_string(),
                rl.login_failures_per_device,
            ),
            (None, Some((user, _))) => (
                RateBucket::LoginFail,
                user.id.to_string(),
                rl.login_failures_per_account,
            ),
            (None, None) => (
                RateBucket::LoginFail,
                format!("{tenant_key}:{}", identifier.as_str()),
                rl.login_failures_per_account,
            ),
        };
        self.limits.check_failures(bucket, &failure_key, budget).await?;
        let stored_hash = found.as_ref().and_then(|(_, h)| h.as_deref());
        let verification = self
            .passwords
            .verify(password, stored_hash)
            .await
            .map_err(AppError::internal)?;
        let (user, needs_rehash) = match (found, verification) {
            (Some((user, _)), Verification::Match { needs_rehash }) => (user, needs_rehash),
            (found, _) => {
                self.metrics.login("failure");
                if let Some(tenant) = tenant {
                    let user_id = found.map(|(u, _)| u.id);
                    let mut audit = meta.audit(tenant.id, self.clock.now(), AuditEvent::LoginFailed, user_id, None);
                    audit.detail = serde_json::json!({ "method": "password", "via": via });
                    self.store.record_audit(audit).await?;
                }
                self.limits.record_failure(bucket, &failure_key, budget).await?;
                return Err(AppError::invalid_credentials());
            }
        };
        if user.disabled {
            self.metrics.login("disabled");
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        if self.require_email_verification && user.email.is_some() && !user.email_verified {
            self.metrics.login("unverified");
            return Err(AppError::forbidden(
                ErrorCode::EmailNotVerified,
                "verify your email address before signing in",
            ));
        }
        Ok(ProvenPassword { user, needs_rehash })
    }

    /// Password sign-in by email or phone: tokens, or the second step or
    /// the enrolment token instead, as [`SignInGate`] decides once the
    /// password checked out.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn login(
        &self,
        tenant: &Tenant,
        identifier: &Identifier,
        password: &Secret,
        meta: &RequestMeta,
    ) -> AppResult<SignedIn<(User, sessions::Tokens)>> {
        let ProvenPassword { user, needs_rehash } = self
            .check_password_sign_in(Some(tenant), &tenant.id.to_string(), identifier, password, meta, "api")
            .await?;
        let first = crate::domain::Assurance::password();
        let proceed = match self
            .gate
            .after_first_factor(tenant, &user, &first, meta)
            .await?
            .proceed()
        {
            Ok(proceed) => proceed,
            Err(answer) => {
                self.metrics.login(answer.outcome());
                return Ok(answer);
            }
        };
        let rehash = if needs_rehash {
            Some(self.passwords.hash(password).await.map_err(AppError::internal)?)
        } else {
            None
        };
        let start = SessionStart {
            rehash,
            ..SessionStart::new(first, serde_json::json!({ "method": "password" }))
        };
        let (user, tokens) = self.sessions.start(tenant, user.id, meta, start).await?;
        let signed_in = SignedIn::complete((user, tokens), proceed);
        self.metrics.login(signed_in.outcome());
        Ok(signed_in)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn update_me(
        &self,
        principal: &sessions::Principal,
        change: ProfileChange,
        meta: &RequestMeta,
    ) -> AppResult<ProfileUpdate> {
        let tenant = &principal.tenant;
        let current = me(self.store.as_ref(), principal).await?;
        let new_email = change.email.filter(|e| Some(e) != current.email.as_ref());
        let new_phone = change.phone.filter(|p| p.as_ref() != current.phone.as_ref());
        if new_email.is_some() || new_phone.is_some() {
            self.gate.require_assurance_for_change(principal).await?;
            self.address.reauthenticate(tenant, &current, &change.proof).await?;
        }
        let now = self.clock.now();
        let mut patch = UserPatch {
            now,
            metadata: change.metadata,
            ..Default::default()
        };
        let mut changed = Vec::new();
        if patch.metadata.is_some() {
            changed.push("metadata");
        }
        // Removing the phone needs no new proof, but must leave a way in.
        if let Some(None) = new_phone {
            if current.email.is_none() {
                return Err(AppError::validation(
                    "phone",
                    "cannot remove the only address of the account",
                ));
            }
            patch.phone = Some(None);
            patch.phone_verified = Some(false);
            changed.push("phone");
        }
        let user = if changed.is_empty() {
            current
        } else {
            let mut audit = meta.audit(
                tenant.id,
                now,
                AuditEvent::UserUpdated,
                Some(principal.user_id),
                Some(principal.user_id),
            );
            audit.detail = serde_json::json!({ "fields": changed });
            self.store
                .update_user(tenant.id, principal.user_id, patch, audit)
                .await?
        };
        if let Some(email) = &new_email {
            self.address
                .start(tenant, &user, &Identifier::Email(email.clone()), meta)
                .await?;
        }
        if let Some(Some(phone)) = &new_phone {
            self.address
                .start(tenant, &user, &Identifier::Phone(phone.clone()), meta)
                .await?;
        }
        Ok(ProfileUpdate {
            user,
            pending_email: new_email,
            pending_phone: new_phone.flatten(),
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn delete_me(&self, principal: &sessions::Principal, meta: &RequestMeta) -> AppResult<()> {
        let audit = meta.audit(
            principal.tenant.id,
            self.clock.now(),
            AuditEvent::UserDeleted,
            Some(principal.user_id),
            Some(principal.user_id),
        );
        let sessions = self
            .store
            .delete_user(principal.tenant.id, principal.user_id, audit)
            .await?;
        self.deny.deny_sessions(&sessions).await?;
        self.deny.deny_user(principal.user_id).await?;
        Ok(())
    }

    /// Creates an administrator of `tenant` (CLI `forge admin create`, first-start
    /// bootstrap). The password must pass the policy like anyone else's.
    #[tracing::instrument(skip_all, fields(tenant = %tenant_slug.as_str()))]
    pub async fn create_admin(&self, tenant_slug: &TenantSlug, email: Email, password: Secret) -> AppResult<User> {
        let tenant = self
            .sessions
            .tenant(tenant_slug.as_str())
            .await?
            .ok_or_else(|| AppError::NotFound {
                code: ErrorCode::UnknownTenant,
                message: format!("no tenant {tenant_slug}"),
            })?;
        check_password(&self.policy, &password, hint_inputs(Some(&email))).await?;
        let hash = self.passwords.hash(&password).await.map_err(AppError::internal)?;
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let mut audit = RequestMeta::default().audit(tenant.id, now, AuditEvent::RoleAssigned, Some(id), None);
        audit.detail = serde_json::json!({ "role": RoleName::ADMIN, "via": "cli" });
        self.store
            .create_user(
                NewUser {
                    id,
                    tenant_id: tenant.id,
                    email: Some(email),
                    email_verified: true,
                    phone: None,
                    phone_verified: false,
                    password_hash: Some(hash),
                    metadata: serde_json::json!({}),
                    roles: vec![RoleName::admin()],
                    now,
                },
                None,
                audit,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::internal(anyhow::anyhow!("tenant {tenant_slug} has no admin role")),
                other => other.into(),
            })
    }

    /// First start: with an empty user table and `FORGE_ADMIN_EMAIL` /
    /// `FORGE_ADMIN_PASSWORD` set, creates the operator account.
    #[tracing::instrument(skip_all)]
    pub async fn bootstrap_admin(&self, email: Option<String>, password: Option<String>) -> anyhow::Result<()> {
        let (Some(email), Some(password)) = (email, password) else {
            return Ok(());
        };
        if self.store.count_users().await? > 0 {
            return Ok(());
        }
        let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("FORGE_ADMIN_EMAIL {e}"))?;
        match self
            .create_admin(&TenantSlug::default_tenant(), email.clone(), Secret::new(password))
            .await
        {
            Ok(_) => {
                tracing::info!(email = %email, "created the first administrator");
                Ok(())
            }
            Err(AppError::Validation { fields, .. }) => Err(anyhow::anyhow!(
                "FORGE_ADMIN_PASSWORD is not accepted: {}",
                fields.values().cloned().collect::<Vec<_>>().join(", ")
            )),
            Err(AppError::Conflict { .. }) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("cannot create the first administrator: {e}")),
        }
    }
}
