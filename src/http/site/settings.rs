//! The tenant settings page: the signup and second-factor policies of the
//! tenant the pages show, and (for its own administrators) the forms that
//! change them. An operator
//! looking at another tenant sees its policy read-only, like every other
//! page of a switched tenant; the API (`X-Forge-Tenant`) is the operator's
//! way to change it. The change goes through `service::settings`, which
//! checks `settings:write` and writes the `settings_updated` audit row.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Admin, done};
use super::views::{Layout, PageError, PageForm, page};
use crate::domain::mfa_policy::format_grace;
use crate::http::extract::ClientMeta;
use crate::service::settings::{MfaChange, SettingsChange, SignupChange};
use crate::state::AppState;

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
}

/// `GET /admin/settings`.
pub async fn show(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    let other = admin.switched().then(|| admin.tenant().slug.clone());
    let (_, effective) = state.settings.get(&admin.own, other.as_ref()).await?;
    Ok(page(&SettingsPage {
        l: Layout::new(&admin, "settings", "Tenant settings"),
        mode: effective.signup.mode.as_str(),
        domains: effective.signup.domains.join("\n"),
        default_mode: if state.config.signup.enabled { "open" } else { "closed" },
        mfa_policy: effective.mfa.requirement.as_str(),
        mfa_roles: effective.mfa.roles.join(" "),
        mfa_grace: format_grace(effective.mfa.grace),
    }))
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
