//! Tenant settings: reading and changing one tenant's settings document, and
//! the signup policy every sign-up path asks before it creates an account.
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
//! `signup.domains`, ...) and stored whole, in one transaction with its
//! audit row (`settings_updated` in the tenant's log, and in the operator's
//! when an operator changed another tenant). The audit detail holds the
//! new values of the changed parts: none of today's parts holds a secret,
//! and a future part that does must leave it out of [`audit_detail`].
//!
//! Enforcement. The policy is read from the store on every account creation
//! by sign-up (no cache), so closing a tenant takes effect at once on every
//! instance. Admin provisioning does not ask it.

use super::RequestMeta;
use crate::domain::settings::{SignupMode, SignupPolicy, SignupRefusal, TenantSettings};
use crate::domain::{AuditEvent, Identifier, TenantSlug};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::sessions::Principal;
use crate::state::AppState;
use crate::store::{NewAuditEvent, StoreError, Tenant};

/// A change to the signup part: omitted fields keep their current value.
#[derive(Clone, Debug, Default)]
pub struct SignupChange {
    pub mode: Option<String>,
    pub domains: Option<Vec<String>>,
}

/// A change to a tenant's settings: only the parts present change.
#[derive(Clone, Debug, Default)]
pub struct SettingsChange {
    pub signup: Option<SignupChange>,
}

/// The settings in force for a tenant: every part, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub signup: SignupPolicy,
}

fn effective(state: &AppState, stored: &TenantSettings) -> Effective {
    Effective {
        signup: stored.signup_policy(state.config.signup.enabled),
    }
}

/// The tenant a caller acts on, checked: their own, or (operators only)
/// the one `slug` names.
async fn target(
    state: &AppState,
    caller: &Principal,
    slug: Option<&TenantSlug>,
    permission: &str,
) -> AppResult<Tenant> {
    let other = slug.filter(|s| s.as_str() != caller.tenant.slug.as_str());
    let Some(slug) = other else {
        if !state.rbac.has_permission(caller, permission).await? {
            return Err(AppError::forbidden(
                ErrorCode::Forbidden,
                format!("requires permission {permission}"),
            ));
        }
        return Ok(caller.tenant.clone());
    };
    if !state.rbac.is_operator(caller, permission).await? {
        return Err(AppError::forbidden(
            ErrorCode::Forbidden,
            format!("only operators (holders of {permission} in the default tenant) act on another tenant's settings"),
        ));
    }
    super::accounts::tenant(state, slug.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound {
            code: ErrorCode::UnknownTenant,
            message: "no such tenant".into(),
        })
}

async fn stored(state: &AppState, tenant: &Tenant) -> AppResult<TenantSettings> {
    state
        .store
        .tenant_settings(tenant.id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            code: ErrorCode::UnknownTenant,
            message: "no such tenant".into(),
        })
}

/// `GET /v1/tenant/settings`: the tenant and its settings in force.
#[tracing::instrument(skip_all, fields(tenant_id = %caller.tenant.id, user_id = %caller.user_id))]
pub async fn get(state: &AppState, caller: &Principal, slug: Option<&TenantSlug>) -> AppResult<(Tenant, Effective)> {
    let tenant = target(state, caller, slug, "settings:read").await?;
    let stored = stored(state, &tenant).await?;
    Ok((tenant, effective(state, &stored)))
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

/// What an audit row says about a change: the parts and their new values
/// (no part holds a secret today; see the module docs).
fn audit_detail(tenant: &Tenant, parts: &TenantSettings) -> serde_json::Value {
    let mut detail = serde_json::json!({ "tenant": tenant.slug.as_str(), "parts": parts.parts() });
    if let Some(signup) = &parts.signup {
        detail["signup"] = serde_json::json!({ "mode": signup.mode.as_str(), "domains": signup.domains });
    }
    detail
}

/// `PATCH /v1/tenant/settings`: changes the parts sent, audited as
/// `settings_updated`; a part sent unchanged is not written. Returns the
/// settings in force afterwards.
#[tracing::instrument(skip_all, fields(tenant_id = %caller.tenant.id, user_id = %caller.user_id))]
pub async fn update(
    state: &AppState,
    caller: &Principal,
    slug: Option<&TenantSlug>,
    change: SettingsChange,
    meta: &RequestMeta,
) -> AppResult<(Tenant, Effective)> {
    let tenant = target(state, caller, slug, "settings:write").await?;
    let current = stored(state, &tenant).await?;
    let in_force = effective(state, &current);
    let mut parts = TenantSettings::default();
    if let Some(signup) = change.signup {
        let policy = signup_policy(&in_force.signup, signup)?;
        if current.signup.as_ref() != Some(&policy) {
            parts.signup = Some(policy);
        }
    }
    if parts.parts().is_empty() {
        return Ok((tenant, in_force));
    }
    let now = state.clock.now();
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
    let updated = state
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
    Ok((tenant, effective(state, &updated)))
}

/// The signup policy in force for `tenant`, read from the store.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn signup_policy_of(state: &AppState, tenant: &Tenant) -> AppResult<SignupPolicy> {
    Ok(effective(state, &stored(state, tenant).await?).signup)
}

/// Refuses an account creation by sign-up that the tenant's policy does not
/// admit: 403 `signup_disabled` (closed) or 403 `signup_domain_not_allowed`
/// (`domains` mode and not an email address of a listed domain).
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn check_signup(state: &AppState, tenant: &Tenant, identifier: &Identifier) -> AppResult<()> {
    signup_policy_of(state, tenant)
        .await?
        .admits(identifier)
        .map_err(|refusal| match refusal {
            SignupRefusal::Closed => AppError::forbidden(ErrorCode::SignupDisabled, "sign-up is closed in this tenant"),
            SignupRefusal::DomainNotAllowed => AppError::forbidden(
                ErrorCode::SignupDomainNotAllowed,
                "this tenant admits sign-up only with an email address of its own domains",
            ),
        })
}

/// Whether the policy admits `identifier` (for requests that answer the
/// same either way, like sending a sign-in code).
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn signup_admits(state: &AppState, tenant: &Tenant, identifier: &Identifier) -> AppResult<bool> {
    Ok(signup_policy_of(state, tenant).await?.admits(identifier).is_ok())
}
