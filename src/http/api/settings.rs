//! `/v1/tenant/settings`: a tenant's settings, read (`settings:read`) and
//! changed (`settings:write`) by its administrators; operators add
//! `X-Forge-Tenant` to act on another tenant. The `signup`, `mfa`,
//! `federation` and `branding` parts exist so far; a PATCH sends only the
//! parts it changes.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::double_option;
use crate::domain::mfa_policy::{MfaPolicy, MfaRequirement, format_grace};
use crate::domain::settings::{Branding, FederationSettings, NoticeSettings, SignupMode, SignupPolicy};
use crate::error::{AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, Json, TenantOverride};
use crate::http::permission::{RequirePermission, SettingsRead, SettingsWrite};
use crate::service::settings::{
    BrandingChange, Effective, FederationChange, MfaChange, NoticesChange, SettingsChange, SignupChange,
};
use crate::state::AppState;

/// Who may create an account by signing up.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum SignupModeName {
    Open,
    Closed,
    Domains,
}

impl From<SignupMode> for SignupModeName {
    fn from(m: SignupMode) -> Self {
        match m {
            SignupMode::Open => SignupModeName::Open,
            SignupMode::Closed => SignupModeName::Closed,
            SignupMode::Domains => SignupModeName::Domains,
        }
    }
}

/// The signup policy in force.
#[derive(Serialize, ToSchema)]
pub struct SignupPolicyView {
    pub mode: SignupModeName,
    /// Email domains (lowercase ASCII, IDNA domains as punycode) admitted in
    /// `domains` mode; kept but unused in the other modes.
    pub domains: Vec<String>,
}

impl From<SignupPolicy> for SignupPolicyView {
    fn from(p: SignupPolicy) -> Self {
        Self {
            mode: p.mode.into(),
            domains: p.domains,
        }
    }
}

/// Who must hold a second factor.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicyName {
    Optional,
    Roles,
    All,
}

impl From<MfaRequirement> for MfaPolicyName {
    fn from(m: MfaRequirement) -> Self {
        match m {
            MfaRequirement::Optional => MfaPolicyName::Optional,
            MfaRequirement::Roles => MfaPolicyName::Roles,
            MfaRequirement::All => MfaPolicyName::All,
        }
    }
}

/// The second-factor policy in force.
#[derive(Serialize, ToSchema)]
pub struct MfaPolicyView {
    /// `optional` (nobody must), `roles` (holders of `roles` must) or `all`.
    pub policy: MfaPolicyName,
    /// The roles a `roles` policy names; kept but unused otherwise.
    pub roles: Vec<String>,
    /// How long a user the policy newly applies to may still sign in
    /// without a factor (`"7d"`, `"36h"`, `"0s"`).
    pub grace: String,
}

impl From<MfaPolicy> for MfaPolicyView {
    fn from(p: MfaPolicy) -> Self {
        Self {
            policy: p.requirement.into(),
            roles: p.roles,
            grace: format_grace(p.grace),
        }
    }
}

/// How sign-ins through an upstream identity provider meet existing accounts.
#[derive(Serialize, ToSchema)]
pub struct FederationView {
    /// Whether a first upstream sign-in links to the existing account with
    /// the same email when the provider says that email is verified
    /// (default `false`: the user signs in to the existing account first and
    /// links the provider from there). Turning it on trusts every provider
    /// of the tenant to verify emails honestly.
    pub auto_link_verified_email: bool,
}

impl From<FederationSettings> for FederationView {
    fn from(f: FederationSettings) -> Self {
        Self {
            auto_link_verified_email: f.auto_link_verified_email,
        }
    }
}

/// How the hosted pages present the tenant.
#[derive(Serialize, ToSchema)]
pub struct BrandingView {
    /// The name shown on the hosted pages (default: the tenant's name).
    #[schema(example = "Acme", min_length = 1, max_length = 80)]
    pub name: String,
    /// The logo's URL, or `null` for none.
    #[schema(example = "https://cdn.acme.io/logo.svg")]
    pub logo_url: Option<String>,
    /// The accent colour, `#rrggbb` (default `#4f46e5`).
    #[schema(example = "#4f46e5", pattern = "^#[0-9a-f]{6}$")]
    pub accent: String,
}

impl From<Branding> for BrandingView {
    fn from(b: Branding) -> Self {
        Self {
            name: b.name,
            logo_url: b.logo_url,
            accent: b.accent,
        }
    }
}

/// A tenant's settings in force (parts never set show their defaults; the
/// signup default follows the server's `signup.enabled`, the mfa default is
/// `optional` with a 7-day grace, the federation default links nothing
/// automatically, the branding default is the tenant's name, no logo and
/// the accent `#4f46e5`).
#[derive(Serialize, ToSchema)]
pub struct TenantSettingsView {
    pub signup: SignupPolicyView,
    pub mfa: MfaPolicyView,
    pub federation: FederationView,
    pub branding: BrandingView,
    pub notices: NoticesView,
}

/// Which security notices the tenant's people get (all on by default).
/// `email_changed` covers a changed phone number too; a notice that an
/// administrator disabled the account is always sent.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoticesView {
    /// A sign-in from a device that never signed in to the account before.
    pub new_device: Option<bool>,
    pub password_changed: Option<bool>,
    /// To the old address, when the email address or phone number changes.
    pub email_changed: Option<bool>,
    /// A second factor added or removed.
    pub factor_changed: Option<bool>,
    pub recovery_code_used: Option<bool>,
}

impl From<NoticeSettings> for NoticesView {
    fn from(n: NoticeSettings) -> Self {
        Self {
            new_device: Some(n.new_device),
            password_changed: Some(n.password_changed),
            email_changed: Some(n.email_changed),
            factor_changed: Some(n.factor_changed),
            recovery_code_used: Some(n.recovery_code_used),
        }
    }
}

impl From<NoticesView> for NoticesChange {
    fn from(n: NoticesView) -> Self {
        Self {
            new_device: n.new_device,
            password_changed: n.password_changed,
            email_changed: n.email_changed,
            factor_changed: n.factor_changed,
            recovery_code_used: n.recovery_code_used,
        }
    }
}

impl From<Effective> for TenantSettingsView {
    fn from(e: Effective) -> Self {
        Self {
            signup: e.signup.into(),
            mfa: e.mfa.into(),
            federation: e.federation.into(),
            branding: e.branding.into(),
            notices: e.notices.into(),
        }
    }
}

/// Federation settings to set. Omitted fields keep their current value.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FederationPatch {
    /// Link a first upstream sign-in to the existing account with the same
    /// email when the provider says the email is verified.
    pub auto_link_verified_email: Option<bool>,
}

impl From<FederationPatch> for FederationChange {
    fn from(p: FederationPatch) -> Self {
        FederationChange {
            auto_link_verified_email: p.auto_link_verified_email,
        }
    }
}

/// A branding to set. Omitted fields keep their current value.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BrandingPatch {
    /// 1 to 80 characters (trimmed), no control characters.
    #[schema(min_length = 1, max_length = 80)]
    pub name: Option<String>,
    /// An `https://` URL of an image (`http://` only for 127.0.0.1,
    /// localhost or [::1]), without credentials; `null` removes the logo.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub logo_url: Option<Option<String>>,
    /// `#rrggbb` (hex digits, stored lowercase).
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub accent: Option<String>,
}

impl From<BrandingPatch> for BrandingChange {
    fn from(p: BrandingPatch) -> Self {
        BrandingChange {
            name: p.name,
            logo_url: p.logo_url,
            accent: p.accent,
        }
    }
}

/// A signup policy to set. Omitted fields keep their current value.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SignupPolicyPatch {
    /// `open`, `closed` or `domains`.
    #[schema(value_type = Option<SignupModeName>)]
    pub mode: Option<String>,
    /// Email domains admitted in `domains` mode (an empty list admits no one):
    /// host names in ASCII (`xn--` for IDNA domains), compared exactly with
    /// an address's domain part. Replaces the list.
    #[schema(max_items = 100)]
    pub domains: Option<Vec<String>>,
}

impl From<SignupPolicyPatch> for SignupChange {
    fn from(p: SignupPolicyPatch) -> Self {
        SignupChange {
            mode: p.mode,
            domains: p.domains,
        }
    }
}

/// A second-factor policy to set. Omitted fields keep their current value.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicyPatch {
    /// `optional`, `roles` or `all`.
    #[schema(value_type = Option<MfaPolicyName>)]
    pub policy: Option<String>,
    /// Role names (1-64 lowercase letters, digits, `-`, `_`, `.`); a `roles`
    /// policy needs at least one. Replaces the list.
    #[schema(max_items = 32)]
    pub roles: Option<Vec<String>>,
    /// A duration such as `"7d"`, `"36h"` or `"0s"`, at most `"90d"`.
    #[schema(max_length = 64)]
    pub grace: Option<String>,
}

impl From<MfaPolicyPatch> for MfaChange {
    fn from(p: MfaPolicyPatch) -> Self {
        MfaChange {
            policy: p.policy,
            roles: p.roles,
            grace: p.grace,
        }
    }
}

/// The parts of the settings to change; parts left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettingsPatch {
    pub signup: Option<SignupPolicyPatch>,
    pub mfa: Option<MfaPolicyPatch>,
    pub federation: Option<FederationPatch>,
    pub branding: Option<BrandingPatch>,
    /// Switches to set; omitted ones keep their value.
    pub notices: Option<NoticesView>,
}

/// The settings of the caller's tenant (operators: of the tenant named by `X-Forge-Tenant`).
#[utoipa::path(get, path = "/v1/tenant/settings", tag = "tenants",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "another tenant's slug (operators only); default: the caller's tenant")),
    responses(
        (status = 200, body = TenantSettingsView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "no settings:read, or another tenant named by a non-operator", body = ErrorBody),
        (status = 404, description = "unknown_tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<SettingsRead>,
    TenantOverride(slug): TenantOverride,
) -> AppResult<axum::Json<TenantSettingsView>> {
    let (_, settings) = state.settings.get(&caller, slug.as_ref()).await?;
    Ok(axum::Json(settings.into()))
}

/// Change parts of the tenant's settings; audited as `settings_updated`.
#[utoipa::path(patch, path = "/v1/tenant/settings", tag = "tenants",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "another tenant's slug (operators only); default: the caller's tenant")),
    request_body = TenantSettingsPatch,
    responses(
        (status = 200, description = "the settings in force after the change", body = TenantSettingsView),
        (status = 400, description = "invalid body, or an invalid mode or domain (`fields`: `signup.mode`, `signup.domains`, `mfa.policy`, `mfa.roles`, `mfa.grace`, `branding.name`, `branding.logo_url`, `branding.accent`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "no settings:write, or another tenant named by a non-operator", body = ErrorBody),
        (status = 404, description = "unknown_tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_settings(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<SettingsWrite>,
    TenantOverride(slug): TenantOverride,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<TenantSettingsPatch>,
) -> AppResult<axum::Json<TenantSettingsView>> {
    let change = SettingsChange {
        signup: req.signup.map(SignupChange::from),
        mfa: req.mfa.map(MfaChange::from),
        federation: req.federation.map(FederationChange::from),
        branding: req.branding.map(BrandingChange::from),
        notices: req.notices.map(NoticesChange::from),
    };
    let (_, settings) = state.settings.update(&caller, slug.as_ref(), change, &meta).await?;
    Ok(axum::Json(settings.into()))
}
