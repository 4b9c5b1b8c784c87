//! The tenant settings page: the signup and second-factor policies, the
//! federation setting (automatic linking of upstream sign-ins) and the
//! branding (name, logo, accent colour of the hosted pages) of the tenant
//! the pages show, and (for its own administrators) the forms that
//! change them. An operator
//! looking at another tenant sees its policy read-only, like every other
//! page of a switched tenant; the API (`X-Forge-Tenant`) is the operator's
//! way to change it. The change goes through `service::settings`, which
//! checks `settings:write` and writes the `settings_updated` audit row.
//!
//! The page also holds the administrator's own passkeys (whatever tenant
//! the pages show: they belong to the account, not the tenant): the list,
//! "Add a passkey" and "Remove". Adding asks for the current password, as
//! the API does (`PasskeyFactors::start_registration`), and runs through the
//! site's passkey script, which this page allows by a per-response CSP
//! nonce; the options come back as JSON, the authenticator's answer goes
//! to `/admin/settings/passkeys` as an ordinary form (CSRF-checked by the
//! guard like every other POST). The first factor brings recovery codes,
//! shown once on the answer page. Changing factors once the account has one
//! needs a session that proved a second factor (aal 2: a passkey sign-in,
//! or the password with its second step), as `Factors::require_fresh_proof`
//! requires of access tokens.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::guard::{Admin, done};
use super::views::{self, Layout, PageError, PageForm, page};
use crate::domain::mfa_policy::format_grace;
use crate::domain::settings::NoticeSettings;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::secret::Secret;
use crate::service::address::Reauthentication;
use crate::service::settings::{
    BrandingChange, FederationChange, MfaChange, NoticesChange, SettingsChange, SignupChange,
};
use crate::state::AppState;
use crate::store::FactorKind;

#[derive(Template)]
#[template(path = "site/settings.html")]
struct SettingsPage {
    l: Layout,
    mode: &'static str,
    domains: String,
    /// The server default a tenant without its own policy follows.
    default_mode: &'static str,
    mfa_policy: &'static str,
    /// The roles a `roles` policy names, space-separated.
    mfa_roles: String,
    mfa_grace: String,
    /// `federation.auto_link_verified_email`.
    auto_link: bool,
    /// The notice switches in force.
    notices: NoticeSettings,
    brand_name: String,
    /// The logo URL, or empty.
    brand_logo: String,
    brand_accent: String,
    /// Passkeys are on (`webauthn.rp_id` is set).
    passkeys_enabled: bool,
    /// The administrator's own passkeys.
    passkeys: Vec<PasskeyRow>,
    script: &'static str,
    /// The nonce of this rendering's script tag.
    nonce: String,
}

struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "site/passkey_added.html")]
struct PasskeyAddedPage {
    l: Layout,
    name: String,
    recovery_codes: Vec<String>,
}

/// `GET /admin/settings`.
pub async fn show(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    let other = admin.switched().then(|| admin.tenant().slug.clone());
    let (_, effective) = state.settings.get(&admin.own, other.as_ref()).await?;
    let passkeys = state
        .factors
        .list(&admin.own)
        .await?
        .factors
        .into_iter()
        .filter(|f| f.kind == FactorKind::WebAuthn)
        .map(|f| PasskeyRow {
            id: f.id.to_string(),
            name: f.name,
            created: views::time(f.created_at),
            last_used: views::time_or_dash(f.last_used_at),
        })
        .collect();
    let passkeys_enabled = state.passkey_factors.is_enabled();
    let nonce = if passkeys_enabled {
        views::script_nonce()
    } else {
        String::new()
    };
    let response = page(&SettingsPage {
        l: Layout::new(&admin, "settings", "Tenant settings"),
        mode: effective.signup.mode.as_str(),
        domains: effective.signup.domains.join("\n"),
        default_mode: if state.config.signup.enabled { "open" } else { "closed" },
        mfa_policy: effective.mfa.requirement.as_str(),
        mfa_roles: effective.mfa.roles.join(" "),
        mfa_grace: format_grace(effective.mfa.grace),
        auto_link: effective.federation.auto_link_verified_email,
        notices: effective.notices,
        brand_name: effective.branding.name.clone(),
        brand_logo: effective.branding.logo_url.clone().unwrap_or_default(),
        brand_accent: effective.branding.accent.clone(),
        passkeys_enabled,
        passkeys,
        script: views::passkey_script_url(),
        nonce: nonce.clone(),
    });
    Ok(if passkeys_enabled {
        views::with_script(response, nonce)
    } else {
        response
    })
}

#[derive(Deserialize)]
pub struct PasskeyOptionsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/settings/passkeys/options`: creation options for a new
/// passkey of the signed-in administrator, as JSON for the passkey script,
/// once the current password checks out. Errors are the API's JSON error
/// body, with the site's wording where the API's would point elsewhere.
pub async fn passkey_options(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageForm(form): PageForm<PasskeyOptionsForm>,
) -> Response {
    if form.password.is_empty() {
        return AppError::validation("password", "enter your current password").into_response();
    }
    let proof = Reauthentication {
        current_password: Some(Secret::new(form.password.clone())),
        code: None,
    };
    let name = views::non_empty(&form.name).map(str::to_owned);
    match state.passkey_factors.start_registration(&admin.own, name, &proof).await {
        Ok(options) => axum::Json(serde_json::json!({
            "request_id": options.request_id,
            "publicKey": options.public_key,
        }))
        .into_response(),
        Err(AppError::Unauthorized { .. }) => {
            AppError::unauthorized(ErrorCode::InvalidCredentials, "That is not your current password.").into_response()
        }
        Err(e) => in_site_words(e).into_response(),
    }
}

/// The factor rule's refusal, pointing to what the site offers rather than
/// to the API's step-up.
fn in_site_words(e: AppError) -> AppError {
    match e {
        AppError::Forbidden {
            code: ErrorCode::MfaRequired,
            ..
        } => AppError::forbidden(
            ErrorCode::MfaRequired,
            "Changing passkeys needs a session that used a second factor: sign out, then sign in with a \
             passkey or with your password and second factor.",
        ),
        other => other,
    }
}

#[derive(Deserialize)]
pub struct PasskeyFinishForm {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    name: String,
    /// The browser's answer in its JSON form.
    #[serde(default)]
    credential: String,
}

/// `POST /admin/settings/passkeys`: stores the passkey the authenticator
/// made for the registration `request_id`. The first factor's recovery
/// codes are shown on this answer, once; otherwise back to Settings.
pub async fn add_passkey(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<PasskeyFinishForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let credential = serde_json::from_str::<serde_json::Value>(&form.credential)
            .map_err(|_| AppError::validation("credential", "is not a WebAuthn credential"))?;
        let name = views::non_empty(&form.name).map(str::to_owned);
        state
            .passkey_factors
            .finish_registration(
                admin.own.tenant.id,
                admin.user.id,
                &form.request_id,
                name,
                credential,
                &meta,
            )
            .await
    }
    .await;
    match outcome {
        Ok((enrolled, _)) => match enrolled.recovery_codes {
            Some(recovery_codes) => Ok(page(&PasskeyAddedPage {
                l: Layout::new(&admin, "settings", "Passkey added"),
                name: enrolled.factor.name,
                recovery_codes,
            })),
            None => {
                let text = format!("Passkey {} added.", enrolled.factor.name);
                Ok(done(&state, &admin, "/admin/settings", Ok(text)).await)
            }
        },
        Err(e) => Ok(done(&state, &admin, "/admin/settings", Err(e)).await),
    }
}

/// `POST /admin/settings/passkeys/{id}/remove`: removes one of the
/// administrator's own passkeys (audited `mfa_removed`); the last factor
/// stays when the tenant's policy requires one.
pub async fn remove_passkey(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "passkey")?;
    let outcome = async {
        let own = &admin.own;
        let listed = state.factors.list(own).await?;
        if !listed
            .factors
            .iter()
            .any(|f| f.id == id && f.kind == FactorKind::WebAuthn)
        {
            return Err(AppError::not_found("passkey"));
        }
        let keep_one = state.mfa_policies.keep_one(own.tenant.id, own.user_id).await?;
        state.factors.remove(own, id, keep_one, &meta).await?;
        Ok("Passkey removed.".to_string())
    }
    .await
    .map_err(in_site_words);
    Ok(done(&state, &admin, "/admin/settings", outcome).await)
}

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    domains: String,
}

/// Splits a textarea of domains: one per line, or separated by commas or spaces.
pub fn domain_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST /admin/settings`: sets the signup policy.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<SignupForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let change = SettingsChange {
            signup: Some(SignupChange {
                mode: Some(form.mode.clone()),
                domains: Some(domain_list(&form.domains)),
            }),
            ..SettingsChange::default()
        };
        let (_, effective) = state.settings.update(admin.acting()?, None, change, &meta).await?;
        Ok(format!("Sign-up is now {}.", effective.signup.mode.as_str()))
    }
    .await;
    Ok(done(&state, &admin, "/admin/settings", outcome).await)
}

#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    policy: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    grace: String,
}

/// `POST /admin/settings/mfa`: sets the second-factor policy.
pub async fn update_mfa(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<MfaForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let change = SettingsChange {
            mfa: Some(MfaChange {
                policy: Some(form.policy.clone()),
                // The same separators as the domain list.
                roles: Some(domain_list(&form.roles)),
                grace: Some(form.grace.clone()),
            }),
            ..SettingsChange::default()
        };
        let (_, effective) = state.settings.update(admin.acting()?, None, change, &meta).await?;
        Ok(format!(
            "The second-factor policy is now {}.",
            effective.mfa.requirement.as_str()
        ))
    }
    .await;
    Ok(done(&state, &admin, "/admin/settings", outcome).await)
}

#[derive(Deserialize)]
pub struct FederationForm {
    /// The checkbox: present (any value) when ticked, absent otherwise.
    auto_link_verified_email: Option<String>,
}

/// `POST /admin/settings/federation`: sets whether upstream sign-ins link
/// to an existing account when the provider says the email is verified.
pub async fn update_federation(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<FederationForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let change = SettingsChange {
            federation: Some(FederationChange {
                auto_link_verified_email: Some(form.auto_link_verified_email.is_some()),
            }),
            ..SettingsChange::default()
        };
        let (_, effective) = state.settings.update(admin.acting()?, None, change, &meta).await?;
        Ok(if effective.federation.auto_link_verified_email {
            "Upstream sign-ins with a verified email now link to the existing account.".to_string()
        } else {
            "Upstream sign-ins no longer link to an existing account by email.".to_string()
        })
    }
    .await;
    Ok(done(&state, &admin, "/admin/settings", outcome).await)
}

/// The notice switches: each checkbox present (any value) when ticked.
#[derive(Deserialize)]
pub struct NoticesForm {
    new_device: Option<String>,
    password_changed: Option<String>,
    email_changed: Option<String>,
    factor_changed: Option<String>,
    recovery_code_used: Option<String>,
}

/// `POST /admin/settings/notices`: which security notices people get.
pub async fn update_notices(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<NoticesForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let change = SettingsChange {
            notices: Some(NoticesChange {
                new_device: Some(form.new_device.is_some()),
                password_changed: Some(form.password_changed.is_some()),
                email_changed: Some(form.email_changed.is_some()),
                factor_changed: Some(form.factor_changed.is_some()),
                recovery_code_used: Some(form.recovery_code_used.is_some()),
            }),
            ..SettingsChange::default()
        };
        state.settings.update(admin.acting()?, None, change, &meta).await?;
        Ok("Security notices saved.".to_string())
    }
    .await;
    Ok(done(&state, &admin, "/admin/settings", outcome).await)
}

#[derive(Deserialize)]
pub struct BrandingForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    logo_url: String,
    #[serde(default)]
    accent: String,
}

/// `POST /admin/settings/branding`: sets the branding of the hosted pages
/// (an empty logo URL removes the logo).
pub async fn update_branding(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<BrandingForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let change = SettingsChange {
            branding: Some(BrandingChange {
                name: Some(form.name.clone()),
                logo_url: Some(views::non_empty(&form.logo_url).map(str::to_owned)),
                accent: Some(form.accent.clone()),
            }),
            ..SettingsChange::default()
        };
        state.settings.update(admin.acting()?, None, change, &meta).await?;
        Ok("The branding is saved.".to_string())
    }
    .await;
    Ok(done(&state, &admin, "/admin/settings", outcome).await)
}
