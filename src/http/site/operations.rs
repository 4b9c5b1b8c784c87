//! Operators' pages: the signing keys (list, rotate) and the tenants (list,
//! create, delete, and switch which tenant the other pages show).
//!
//! Only operators, admins of the `default` tenant, open these; a tenant's
//! own admin gets 403. The use cases check again (`tenants::*` require an
//! operator principal, `SigningKeys::rotate_keys_now` too).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Admin, done, require_operator};
use super::users::ConfirmPage;
use super::views::{self, Layout, PageError, PageForm, PageQuery, non_empty, page};
use crate::config::JwtAlgorithm;
use crate::domain::{Email, TenantSlug};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::secret::Secret;
use crate::service::keys::{self, JWKS_MAX_AGE_SECS};
use crate::service::settings::SignupChange;
use crate::service::tenants::FirstAdmin;
use crate::state::AppState;
use crate::store::KeyState;

struct KeyRow {
    kid: String,
    state: &'static str,
    algorithm: String,
    created: String,
    age: String,
    activated: String,
    retired: String,
    jwks: String,
}

#[derive(Template)]
#[template(path = "site/keys.html")]
struct KeysPage {
    l: Layout,
    keys: Vec<KeyRow>,
    hs256: bool,
    /// Seconds until `next` has been published for a full JWKS cache life.
    wait: i64,
    wait_text: String,
    jwks_max_age: String,
    horizon: String,
}

/// `GET /admin/keys`.
pub async fn keys(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let now = state.clock.now();
    let keys = keys::list_keys(state.store.as_ref(), &state.config, now).await?;
    let wait = keys::next_key_wait(&keys, now);
    Ok(page(&KeysPage {
        l: Layout::new(&admin, "keys", "Signing keys"),
        hs256: state.config.jwt.algorithm == JwtAlgorithm::HS256,
        wait,
        wait_text: views::duration(wait),
        jwks_max_age: views::duration(JWKS_MAX_AGE_SECS as i64),
        horizon: views::duration(keys::retirement_horizon(&state.config)),
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                state: k.state.as_str(),
                algorithm: k.algorithm,
                created: views::time(k.created_at),
                age: views::duration(now - k.created_at),
                activated: views::time_or_dash(k.activated_at),
                retired: views::time_or_dash(k.retired_at),
                jwks: match (k.state, k.unpublished_at) {
                    (KeyState::Retired, Some(until)) if k.published => {
                        format!("published until {}", views::time(until))
                    }
                    (KeyState::Retired, _) => "withdrawn".into(),
                    (KeyState::Next, _) => "published, not signing yet".into(),
                    (KeyState::Current, _) => "published, signing".into(),
                },
                kid: k.kid,
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
pub struct RotateForm {
    force: Option<String>,
}

/// `POST /admin/keys/rotate`.
pub async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<RotateForm>,
) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let outcome = state
        .signing_keys
        .rotate_keys_now(&admin, form.force.is_some(), &meta)
        .await
        .map(|keys| {
            let current = keys
                .iter()
                .find(|k| k.state == KeyState::Current)
                .map(|k| k.kid.clone())
                .unwrap_or_default();
            format!(
                "Keys rotated. {current} signs from now on; the previous key stays in the JWKS until its tokens expire."
            )
        });
    Ok(done(&state, &admin, "/admin/keys", outcome).await)
}

struct TenantRow {
    slug: String,
    name: String,
    created: String,
    default: bool,
    shown: bool,
}

#[derive(Template)]
#[template(path = "site/tenants.html")]
struct TenantsPage {
    l: Layout,
    tenants: Vec<TenantRow>,
    next: Option<String>,
    first_page: bool,
    /// What a tenant created without a signup policy follows.
    default_signup: &'static str,
}

#[derive(Deserialize)]
pub struct TenantsQuery {
    cursor: Option<String>,
}

/// `GET /admin/tenants?cursor=`.
pub async fn tenants(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageQuery(query): PageQuery<TenantsQuery>,
) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let page_rows = state
        .tenants
        .list(&admin.own, Some(100), query.cursor.as_deref())
        .await?;
    let shown = admin.tenant().id;
    Ok(page(&TenantsPage {
        l: Layout::new(&admin, "tenants", "Tenants"),
        tenants: page_rows
            .items
            .into_iter()
            .map(|t| TenantRow {
                default: t.slug.is_default(),
                shown: t.id == shown,
                slug: t.slug.to_string(),
                name: t.name,
                created: views::time(t.created_at),
            })
            .collect(),
        next: page_rows.next_cursor.map(|c| {
            format!(
                "/admin/tenants?{}",
                serde_urlencoded::to_string([("cursor", c)]).unwrap_or_default()
            )
        }),
        first_page: query.cursor.is_none(),
        default_signup: if state.config.signup.enabled { "open" } else { "closed" },
    }))
}

#[derive(Deserialize)]
pub struct CreateTenantForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    admin_email: String,
    #[serde(default)]
    admin_password: String,
    /// Empty: follow the server's `signup.enabled`.
    #[serde(default)]
    signup_mode: String,
    #[serde(default)]
    signup_domains: String,
}

/// `POST /admin/tenants`.
pub async fn create_tenant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<CreateTenantForm>,
) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let outcome = async {
        let slug = TenantSlug::parse(form.slug.trim()).map_err(|reason| AppError::validation("slug", reason))?;
        let name = non_empty(&form.name).unwrap_or(slug.as_str()).to_string();
        if name.chars().count() > 200 {
            return Err(AppError::validation("name", "must be at most 200 characters"));
        }
        let first_admin = match (non_empty(&form.admin_email), form.admin_password.is_empty()) {
            (None, true) => None,
            (Some(email), false) => Some(FirstAdmin {
                email: Email::parse(email).map_err(|reason| AppError::validation("admin_email", reason))?,
                password: Secret::new(form.admin_password.clone()),
            }),
            _ => {
                return Err(AppError::validation(
                    "admin_email",
                    "give both the first administrator's email and password, or neither",
                ));
            }
        };
        let signup = non_empty(&form.signup_mode).map(|mode| SignupChange {
            mode: Some(mode.to_string()),
            domains: Some(super::settings::domain_list(&form.signup_domains)),
        });
        let (tenant, first) = state
            .tenants
            .create(&admin.own, slug, name, first_admin, signup, &meta)
            .await?;
        Ok(match first {
            Some(_) => format!("Tenant {} created with its first administrator.", tenant.slug),
            None => format!("Tenant {} created.", tenant.slug),
        })
    }
    .await;
    Ok(done(&state, &admin, "/admin/tenants", outcome).await)
}

/// `GET /admin/tenants/{slug}/delete`: asks first.
pub async fn confirm_delete_tenant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let tenant = state.tenants.get(&admin.own, &slug).await?;
    if tenant.slug.is_default() {
        return Err(PageError(AppError::forbidden(
            ErrorCode::DefaultTenant,
            "the default tenant cannot be deleted",
        )));
    }
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "tenants", "Delete tenant"),
        heading: format!("Delete the tenant {}?", tenant.slug),
        question: format!(
            "{} ({}) will be deleted with everything it owns.",
            tenant.name, tenant.slug
        ),
        consequences: vec![
            "All of its users, sessions, roles, messages and its audit log are deleted.".into(),
            "Every access token of the tenant stops working at once.".into(),
            "This cannot be undone.".into(),
        ],
        action: format!("/admin/tenants/{}/delete", tenant.slug),
        button: "Delete tenant".into(),
        cancel: "/admin/tenants".into(),
    }))
}

/// `POST /admin/tenants/{slug}/delete`.
pub async fn delete_tenant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let outcome = state
        .tenants
        .delete(&admin.own, &slug, &meta)
        .await
        .map(|()| format!("Tenant {slug} deleted."));
    Ok(done(&state, &admin, "/admin/tenants", outcome).await)
}

#[derive(Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    slug: String,
}

/// `POST /admin/tenant`: show another tenant's pages.
pub async fn switch_tenant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<SwitchForm>,
) -> Result<Response, PageError> {
    require_operator(&admin)?;
    let outcome = state
        .site_sessions
        .switch_tenant(&admin, &form.slug, &meta)
        .await
        .map(|t| format!("The pages now show tenant {} ({}).", t.name, t.slug));
    let to = if outcome.is_ok() { "/admin" } else { "/admin/tenants" };
    Ok(done(&state, &admin, to, outcome).await)
}
