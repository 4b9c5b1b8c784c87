//! `/v1/tenants*`: operators list, create, read and delete tenants. An
//! operator holds `tenants:read` / `tenants:write` (the `admin` role's `*`
//! covers both) in the `default` tenant; the same permissions held in any
//! other tenant answer 403. Lists page like the user list (`limit`,
//! `cursor`, `{items, next_cursor}`), in creation order.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::UserView;
use super::settings::SignupModeName;
use crate::domain::{Email, TenantSlug, rfc3339};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, Json, Query};
use crate::http::permission::{RequirePermission, TenantsRead, TenantsWrite};
use crate::service::settings::SignupChange;
use crate::service::tenants::FirstAdmin;
use crate::state::AppState;
use crate::store::Tenant;

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub slug: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id,
            slug: t.slug.to_string(),
            name: t.name,
            created_at: rfc3339(t.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub items: Vec<TenantView>,
    pub next_cursor: Option<String>,
}

/// A new tenant, and with `admin`, its first administrator.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub slug: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    pub admin: Option<UserView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTenantsQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantAdminRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: crate::secret::Secret,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// 1-63 lowercase letters, digits or `-`; what clients send in `X-Forge-Tenant`.
    pub slug: String,
    /// A display name, 1-200 characters.
    pub name: String,
    /// Creates this account in the new tenant holding its `admin` role.
    pub admin: Option<TenantAdminRequest>,
    /// The tenant's signup policy; without it the tenant follows the
    /// server's `signup.enabled` until its administrators choose one.
    pub signup: Option<NewTenantSignup>,
}

/// A new tenant's signup policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantSignup {
    /// `open`, `closed` or `domains`.
    #[schema(value_type = SignupModeName)]
    pub mode: String,
    /// Email domains admitted in `domains` mode (an empty list admits no one).
    #[schema(max_items = 100)]
    pub domains: Option<Vec<String>>,
}

fn display_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AppError::validation("name", "must be 1-200 printable characters"));
    }
    Ok(name.to_string())
}

/// Every tenant, in creation order (operators only).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    params(ListTenantsQuery),
    responses((status = 200, body = TenantList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<TenantsRead>,
    Query(query): Query<ListTenantsQuery>,
) -> AppResult<axum::Json<TenantList>> {
    let page = state
        .tenants
        .list(&caller, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(TenantList {
        items: page.items.into_iter().map(TenantView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a tenant with its `admin` role and, optionally, its first administrator.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, body = CreatedTenant, headers(("location" = String, description = "/v1/tenants/{slug}"))),
        (status = 400, description = "invalid slug, name, email, weak password, or invalid signup policy (`fields` `signup.mode`, `signup.domains`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 409, description = "tenant_exists", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<TenantsWrite>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CreateTenantRequest>,
) -> AppResult<Response> {
    let slug = TenantSlug::parse(req.slug.trim()).map_err(|e| AppError::validation("slug", e))?;
    let name = display_name(&req.name)?;
    let admin = match req.admin {
        None => None,
        Some(a) => Some(FirstAdmin {
            email: Email::parse(&a.email).map_err(|e| AppError::validation("admin.email", e))?,
            password: a.password,
        }),
    };
    let signup = req.signup.map(|s| SignupChange {
        mode: Some(s.mode),
        domains: s.domains,
    });
    let (tenant, admin) = state.tenants.create(&caller, slug, name, admin, signup, &meta).await?;
    let location = HeaderValue::from_str(&format!("/v1/tenants/{}", tenant.slug)).map_err(AppError::internal)?;
    let admin = admin.map(|u| UserView::new(u, &tenant));
    let view = TenantView::from(tenant);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(CreatedTenant {
            id: view.id,
            slug: view.slug,
            name: view.name,
            created_at: view.created_at,
            admin,
        }),
    )
        .into_response())
}

/// One tenant (operators only).
#[utoipa::path(get, path = "/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "tenant slug")),
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<TenantsRead>,
    Path(slug): Path<String>,
) -> AppResult<axum::Json<TenantView>> {
    let slug = TenantSlug::parse(&slug).map_err(|_| AppError::not_found("tenant"))?;
    Ok(axum::Json(state.tenants.get(&caller, slug.as_str()).await?.into()))
}

/// Delete a tenant with its users, sessions, roles and audit log (not `default`).
#[utoipa::path(delete, path = "/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "tenant slug")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not an operator, or default_tenant", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<TenantsWrite>,
    ClientMeta(meta): ClientMeta,
    Path(slug): Path<String>,
) -> AppResult<StatusCode> {
    state.tenants.delete(&caller, &slug, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
