//! Tenant settings: reading and changing one tenant's settings document, the
//! signup policy every sign-up path asks before it creates an account, the
//! second-factor policy (`mfa`) the sign-in path asks (see
//! `service::mfa_policy`), and the federation settings the upstream
//! sign-in flows ask ([`Settings::federation_of`]).
//!
//! Who. `settings:read` / `settings:write` in the caller's own tenant (the
//! `admin` role's `*` covers both), on that tenant. Naming another tenant
//! (`X-Forge-Tenant` on the API) is for operators only, admins of the
//! `default` tenant holding the permission there; anyone else gets 403
//! before the name is even looked up, so the answer says nothing about
//! which tenants exist.
//!
//! Changes. A change sends only the parts it changes; a part is validated
//! into its typed value (400 with `fields` named `signup.mode`,
//! `signup.domains`, `mfa.policy`, `mfa.roles`, `mfa.grace`, `branding.name`,
//! `branding.logo_url`, `branding.accent`; `federation` holds only a
//! boolean, so its only refusals are the body's own: a wrong type or an
//! unknown field) and stored whole, in one transaction with its
//! audit row (`settings_updated` in the tenant's log, and in the operator's
//! when an operator changed another tenant). The audit detail holds the
//! new values of the changed parts: none of today's parts holds a secret,
//! and a future part that does must leave it out of [`audit_detail`].
//!
//! Enforcement. The policy is read from the store on every account creation
//! by sign-up (no cache), so closing a tenant takes effect at once on every
//! instance. Admin provisioning does not ask it.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use crate::clock::Clock;
use crate::domain::mfa_policy::{MfaPolicy, MfaRequirement, format_grace, parse_grace};
use crate::domain::settings::{
    Branding, FederationSettings, NoticeSettings, SignupMode, SignupPolicy, SignupRefusal, TenantSettings,
};
use crate::domain::{AuditEvent, Identifier, TenantSlug, Timestamp};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::rbac::Rbac;
use crate::service::sessions::{Principal, Sessions};
use crate::store::{NewAuditEvent, Store, StoreError, Tenant};

/// A change to the signup part: omitted fields keep their current value.
#[derive(Clone, Debug, Default)]
pub struct SignupChange {
    pub mode: Option<String>,
    pub domains: Option<Vec<String>>,
}

/// A change to the mfa part: omitted fields keep their current value.
#[derive(Clone, Debug, Default)]
pub struct MfaChange {
    /// `optional`, `roles` or `all`.
    pub policy: Option<String>,
    pub roles: Option<Vec<String>>,
    /// A humantime duration (`7d`), 0 to 90 days.
    pub grace: Option<String>,
}

/// A change to the branding part: omitted fields keep their current value.
#[derive(Clone, Debug, Default)]
pub struct BrandingChange {
    pub name: Option<String>,
    /// `Some(None)` removes the logo.
    pub logo_url: Option<Option<String>>,
    /// `#rrggbb`.
    pub accent: Option<String>,
}

/// A change to the federation part: omitted fields keep their current value.
#[derive(Clone, Debug, Default)]
pub struct FederationChange {
    pub auto_link_verified_email: Option<bool>,
}

/// A change to the notice switches: omitted switches keep their value.
#[derive(Clone, Debug, Default)]
pub struct NoticesChange {
    pub new_device: Option<bool>,
    pub password_changed: Option<bool>,
    pub email_changed: Option<bool>,
    pub factor_changed: Option<bool>,
    pub recovery_code_used: Option<bool>,
}

/// A change to a tenant's settings: only the parts present change.
#[derive(Clone, Debug, Default)]
pub struct SettingsChange {
    pub signup: Option<SignupChange>,
    pub mfa: Option<MfaChange>,
    pub federation: Option<FederationChange>,
    pub branding: Option<BrandingChange>,
    pub notices: Option<NoticesChange>,
}

/// The settings in force for a tenant: every part, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub signup: SignupPolicy,
    pub mfa: MfaPolicy,
    pub federation: FederationSettings,
    pub branding: Branding,
    pub notices: NoticeSettings,
}

/// Tenant settings over the store, the permission checks, and the tenant
/// lookup an operator's `slug` goes through; `signup_enabled` is the
/// server-wide `signup.enabled` every tenant's policy yields to.
#[derive(Clone)]
pub struct Settings {
    store: Arc<dyn Store>,
    clock: Clock,
    rbac: Rbac,
    sessions: Sessions,
    signup_enabled: bool,
}

fn invalid(field: &str, reason: impl Into<String>) -> AppError {
    AppError::validation(&format!("signup.{field}"), reason)
}

/// Validates a signup change against the policy in force (omitted fields
/// keep their value). Also used at tenant creation, against the default.
pub fn signup_policy(current: &SignupPolicy, change: SignupChange) -> AppResult<SignupPolicy> {
    let mode = match change.mode.as_deref() {
        Some(m) => SignupMode::parse(m).map_err(|reason| invalid("mode", reason))?,
        None => current.mode,
    };
    let domains = change.domains.unwrap_or_else(|| current.domains.clone());
    SignupPolicy::parse(mode, &domains).map_err(|(field, reason)| invalid(field, reason))
}

/// Validates an mfa change against the policy in force (omitted fields keep
/// their value); `now` becomes the policy's `since` when the set of users
/// it applies to changes (see `domain::mfa_policy`).
pub fn mfa_policy(current: &MfaPolicy, change: MfaChange, now: Timestamp) -> AppResult<MfaPolicy> {
    let bad = |field: &str, reason: String| AppError::validation(&format!("mfa.{field}"), reason);
    let requirement = match change.policy.as_deref() {
        Some(p) => MfaRequirement::parse(p).map_err(|reason| bad("policy", reason.into()))?,
        None => current.requirement,
    };
    let roles = change.roles.unwrap_or_else(|| current.roles.clone());
    let grace = match change.grace.as_deref() {
        Some(g) => parse_grace(g).map_err(|reason| bad("grace", reason))?,
        None => current.grace,
    };
    let policy = MfaPolicy::parse(requirement, &roles, grace).map_err(|(field, reason)| bad(field, reason))?;
    Ok(policy.changed_from(current, now))
}

/// Validates a branding change against the branding in force (omitted
/// fields keep their value; a `null` logo removes it).
pub fn branding(current: &Branding, change: BrandingChange) -> AppResult<Branding> {
    let name = change.name.unwrap_or_else(|| current.name.clone());
    let logo_url = change.logo_url.unwrap_or_else(|| current.logo_url.clone());
    let accent = change.accent.unwrap_or_else(|| current.accent.clone());
    Branding::parse(&name, logo_url.as_deref(), &accent)
        .map_err(|(field, reason)| AppError::validation(&format!("branding.{field}"), reason))
}

/// Applies a federation change to the settings in force (omitted fields
/// keep their value; there is nothing to validate beyond the types).
pub fn federation(current: FederationSettings, change: FederationChange) -> FederationSettings {
    FederationSettings {
        auto_link_verified_email: change
            .auto_link_verified_email
            .unwrap_or(current.auto_link_verified_email),
    }
}

/// Applies a change of notice switches to the switches in force.
pub fn notices(current: NoticeSettings, change: NoticesChange) -> NoticeSettings {
    NoticeSettings {
        new_device: change.new_device.unwrap_or(current.new_device),
        password_changed: change.password_changed.unwrap_or(current.password_changed),
        email_changed: change.email_changed.unwrap_or(current.email_changed),
        factor_changed: change.factor_changed.unwrap_or(current.factor_changed),
        recovery_code_used: change.recovery_code_used.unwrap_or(current.recovery_code_used),
    }
}

/// What an audit row says about a change: the parts and their new values
/// (no part holds a secret today; see the module docs).
fn audit_detail(tenant: &Tenant, parts: &TenantSettings) -> serde_json::Value {
    let mut detail = serde_json::json!({ "tenant": tenant.slug.as_str(), "parts": parts.parts() });
    if let Some(signup) = &parts.signup {
        detail["signup"] = serde_json::json!({ "mode": signup.mode.as_str(), "domains": signup.domains });
    }
    if let Some(mfa) = &parts.mfa {
        detail["mfa"] = serde_json::json!({
            "policy": mfa.requirement.as_str(),
            "roles": mfa.roles,
            "grace": format_grace(mfa.grace),
        });
    }
    if let Some(federation) = &parts.federation {
        detail["federation"] = serde_json::json!({
            "auto_link_verified_email": federation.auto_link_verified_email,
        });
    }
    if let Some(notices) = &parts.notices {
        detail["notices"] = serde_json::to_value(notices).unwrap_or_default();
    }
    if let Some(branding) = &parts.branding {
        detail["branding"] = serde_json::json!({
            "name": branding.name,
            "logo_url": branding.logo_url,
            "accent": branding.accent,
        });
    }
    detail
}

impl Settings {
    pub fn new(store: Arc<dyn Store>, clock: Clock, rbac: Rbac, sessions: Sessions, signup_enabled: bool) -> Self {
        Self {
            store,
            clock,
            rbac,
            sessions,
            signup_enabled,
        }
    }

    fn effective(&self, tenant: &Tenant, stored: &TenantSettings) -> Effective {
        Effective {
            signup: stored.signup_policy(self.signup_enabled),
            mfa: stored.mfa_policy(),
            federation: stored.federation(),
            branding: stored.branding(&tenant.name),
            notices: stored.notices(),
        }
    }

    /// The tenant a caller acts on, checked: their own, or (operators only)
    /// the one `slug` names.
    async fn target(&self, caller: &Principal, slug: Option<&TenantSlug>, permission: &str) -> AppResult<Tenant> {
        let other = slug.filter(|s| s.as_str() != caller.tenant.slug.as_str());
        let Some(slug) = other else {
            if !self.rbac.has_permission(caller, permission).await? {
                return Err(AppError::forbidden(
                    ErrorCode::Forbidden,
                    format!("requires permission {permission}"),
                ));
            }
            return Ok(caller.tenant.clone());
        };
        if !self.rbac.is_operator(caller, permission).await? {
            return Err(AppError::forbidden(
                ErrorCode::Forbidden,
                format!(
                    "only operators (holders of {permission} in the default tenant) act on another tenant's settings"
                ),
            ));
        }
        self.sessions
            .tenant(slug.as_str())
            .await?
            .ok_or_else(|| AppError::NotFound {
                code: ErrorCode::UnknownTenant,
                message: "no such tenant".into(),
            })
    }

    async fn stored(&self, tenant: &Tenant) -> AppResult<TenantSettings> {
        self.store
            .tenant_settings(tenant.id)
            .await?
            .ok_or_else(|| AppError::NotFound {
                code: ErrorCode::UnknownTenant,
                message: "no such tenant".into(),
            })
    }

    /// `GET /v1/tenant/settings`: the tenant and its settings in force.
    #[tracing::instrument(skip_all, fields(tenant_id = %caller.tenant.id, user_id = %caller.user_id))]
    pub async fn get(&self, caller: &Principal, slug: Option<&TenantSlug>) -> AppResult<(Tenant, Effective)> {
        let tenant = self.target(caller, slug, "settings:read").await?;
        let stored = self.stored(&tenant).await?;
        let effective = self.effective(&tenant, &stored);
        Ok((tenant, effective))
    }

    /// `PATCH /v1/tenant/settings`: changes the parts sent, audited as
    /// `settings_updated`; a part sent unchanged is not written. Returns the
    /// settings in force afterwards.
    #[tracing::instrument(skip_all, fields(tenant_id = %caller.tenant.id, user_id = %caller.user_id))]
    pub async fn update(
        &self,
        caller: &Principal,
        slug: Option<&TenantSlug>,
        change: SettingsChange,
        meta: &RequestMeta,
    ) -> AppResult<(Tenant, Effective)> {
        let tenant = self.target(caller, slug, "settings:write").await?;
        let current = self.stored(&tenant).await?;
        let in_force = self.effective(&tenant, &current);
        let mut parts = TenantSettings::default();
        if let Some(signup) = change.signup {
            let policy = signup_policy(&in_force.signup, signup)?;
            if current.signup.as_ref() != Some(&policy) {
                parts.signup = Some(policy);
            }
        }
        let now = self.clock.now();
        if let Some(mfa) = change.mfa {
            let policy = mfa_policy(&in_force.mfa, mfa, now)?;
            if policy != in_force.mfa {
                parts.mfa = Some(policy);
            }
        }
        if let Some(change) = change.federation {
            let settings = federation(in_force.federation, change);
            if settings != in_force.federation {
                parts.federation = Some(settings);
            }
        }
        if let Some(change) = change.branding {
            let branding = branding(&in_force.branding, change)?;
            if branding != in_force.branding {
                parts.branding = Some(branding);
            }
        }
        if let Some(change) = change.notices {
            let switches = notices(in_force.notices, change);
            if switches != in_force.notices {
                parts.notices = Some(switches);
            }
        }
        if parts.parts().is_empty() {
            return Ok((tenant, in_force));
        }
        let detail = audit_detail(&tenant, &parts);
        let mut audit: Vec<NewAuditEvent> = Vec::new();
        let mut row = meta.audit(tenant.id, now, AuditEvent::SettingsUpdated, None, Some(caller.user_id));
        row.detail = detail.clone();
        audit.push(row);
        if tenant.id != caller.tenant.id {
            let mut row = meta.audit(
                caller.tenant.id,
                now,
                AuditEvent::SettingsUpdated,
                None,
                Some(caller.user_id),
            );
            row.detail = detail;
            audit.push(row);
        }
        let updated = self
            .store
            .update_tenant_settings(tenant.id, parts, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::NotFound {
                    code: ErrorCode::UnknownTenant,
                    message: "no such tenant".into(),
                },
                other => other.into(),
            })?;
        let effective = self.effective(&tenant, &updated);
        Ok((tenant, effective))
    }

    /// The second-factor policy in force for `tenant`, read from the store
    /// on every call (no cache: a tightened policy holds at once on every
    /// instance).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn mfa_policy_of(&self, tenant: &Tenant) -> AppResult<MfaPolicy> {
        Ok(self.stored(tenant).await?.mfa_policy())
    }

    /// The branding in force for `tenant` (for the hosted pages), read
    /// from the store.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn branding_of(&self, tenant: &Tenant) -> AppResult<Branding> {
        Ok(self.stored(tenant).await?.branding(&tenant.name))
    }

    /// The federation settings in force for `tenant` (for the upstream
    /// sign-in flows: may a first sign-in whose email the provider marks
    /// verified link to the existing account?), read from the store on
    /// every call (no cache: switching linking off holds at once on every
    /// instance).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn federation_of(&self, tenant: &Tenant) -> AppResult<FederationSettings> {
        Ok(self.stored(tenant).await?.federation())
    }

    /// Which security notices `tenant` sends, read from the store on every
    /// call (a switch holds at once on every instance).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn notices_of(&self, tenant_id: Uuid) -> AppResult<NoticeSettings> {
        let stored = self.store.tenant_settings(tenant_id).await?.unwrap_or_default();
        Ok(stored.notices())
    }

    /// The signup policy in force for `tenant`, read from the store.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn signup_policy_of(&self, tenant: &Tenant) -> AppResult<SignupPolicy> {
        Ok(self.stored(tenant).await?.signup_policy(self.signup_enabled))
    }

    /// Refuses an account creation by sign-up that the tenant's policy does not
    /// admit: 403 `signup_disabled` (closed) or 403 `signup_domain_not_allowed`
    /// (`domains` mode and not an email address of a listed domain).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn check_signup(&self, tenant: &Tenant, identifier: &Identifier) -> AppResult<()> {
        self.signup_policy_of(tenant)
            .await?
            .admits(identifier)
            .map_err(refused_signup)
    }

    /// [`Self::check_signup`] for an account created with no proven address
    /// (an upstream sign-in whose provider vouches for no email): only an
    /// open tenant admits it, since `domains` mode needs an address to judge.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn check_signup_without_address(&self, tenant: &Tenant) -> AppResult<()> {
        let refusal = match self.signup_policy_of(tenant).await?.mode {
            SignupMode::Open => return Ok(()),
            SignupMode::Closed => SignupRefusal::Closed,
            SignupMode::Domains => SignupRefusal::DomainNotAllowed,
        };
        Err(refused_signup(refusal))
    }

    /// Whether the policy admits `identifier` (for requests that answer the
    /// same either way, like sending a sign-in code).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn signup_admits(&self, tenant: &Tenant, identifier: &Identifier) -> AppResult<bool> {
        Ok(self.signup_policy_of(tenant).await?.admits(identifier).is_ok())
    }
}

/// The answer to a sign-up the tenant's policy refuses: 403
/// `signup_disabled` (closed) or 403 `signup_domain_not_allowed`.
fn refused_signup(refusal: SignupRefusal) -> AppError {
    match refusal {
        SignupRefusal::Closed => AppError::forbidden(ErrorCode::SignupDisabled, "sign-up is closed in this tenant"),
        SignupRefusal::DomainNotAllowed => AppError::forbidden(
            ErrorCode::SignupDomainNotAllowed,
            "this tenant admits sign-up only with an email address of its own domains",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::service::test_ports;
    use crate::state::AppState;

    #[tokio::test]
    async fn the_server_wide_switch_closes_sign_up_in_every_tenant() {
        let (store, cache, clock) = (test_ports::store(), test_ports::cache(), test_ports::clock());
        let sessions = test_ports::sessions(&store, &cache, &clock).await;
        let rbac = Rbac::new(
            store.clone(),
            AppState::access_cache(&crate::cache::epoch::Epoch::local(), 100),
        );
        let open = Settings::new(store.clone(), clock.clone(), rbac.clone(), sessions.clone(), true);
        let closed = Settings::new(store.clone(), clock, rbac, sessions, false);
        let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
        let who = Identifier::Email(Email::parse("a@example.com").unwrap());

        assert!(open.signup_admits(&tenant, &who).await.unwrap());
        open.check_signup(&tenant, &who).await.unwrap();
        assert!(!closed.signup_admits(&tenant, &who).await.unwrap());
        let refused = closed.check_signup(&tenant, &who).await.unwrap_err();
        assert!(
            matches!(
                refused,
                AppError::Forbidden {
                    code: ErrorCode::SignupDisabled,
                    ..
                }
            ),
            "{refused:?}"
        );
    }
}
