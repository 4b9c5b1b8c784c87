//! `/v1/roles*` and `/v1/users/{id}/roles/{role}`: the caller's tenant's
//! roles and their assignment (`roles:read`, `roles:write`, `roles:assign`).
//!
//! `PUT /v1/roles/{name}` changes an existing role's permissions (404 when
//! absent; create with `POST /v1/roles`). The built-in `admin` role answers
//! 403 `builtin_role` to changes and deletion. A name that is not a valid
//! role name in a path is 404, like an unknown role.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{RoleName, rfc3339};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, Json};
use crate::http::permission::{RequirePermission, RolesAssign, RolesRead, RolesWrite};
use crate::service::roles;
use crate::state::AppState;
use crate::store::Role;

#[derive(Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    /// `resource:action` strings; `*` wildcards allowed.
    pub permissions: Vec<String>,
    /// Built-in roles (`admin`) cannot be changed or deleted.
    pub builtin: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            name: r.name,
            permissions: r.permissions,
            builtin: r.builtin,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 1-64 lowercase letters, digits, `-`, `_` or `.`; unique in the tenant.
    pub name: String,
    pub permissions: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    /// Replaces the role's permissions.
    pub permissions: Vec<String>,
}

fn role_name(raw: &str) -> AppResult<RoleName> {
    RoleName::parse(raw).map_err(|_| AppError::not_found("role"))
}

/// The tenant's roles, by name.
#[utoipa::path(get, path = "/v1/roles", tag = "roles",
    responses((status = 200, body = RoleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_roles(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesRead>,
) -> AppResult<axum::Json<RoleList>> {
    let items = state.roles.list(&caller).await?;
    Ok(axum::Json(RoleList {
        items: items.into_iter().map(RoleView::from).collect(),
    }))
}

/// Create a role.
#[utoipa::path(post, path = "/v1/roles", tag = "roles",
    request_body = CreateRoleRequest,
    responses(
        (status = 201, body = RoleView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs roles:write and every permission given", body = ErrorBody),
        (status = 409, description = "role_exists", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_role(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesWrite>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CreateRoleRequest>,
) -> AppResult<Response> {
    let name = RoleName::parse(req.name.trim()).map_err(|e| AppError::validation("name", e))?;
    let permissions = roles::parse_permissions(&req.permissions)?;
    let role = state.roles.create(&caller, name, permissions, &meta).await?;
    let location = HeaderValue::from_str(&format!("/v1/roles/{}", role.name)).map_err(AppError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(RoleView::from(role)),
    )
        .into_response())
}

/// One role.
#[utoipa::path(get, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "role name")),
    responses((status = 200, body = RoleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_role(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesRead>,
    Path(name): Path<String>,
) -> AppResult<axum::Json<RoleView>> {
    let name = role_name(&name)?;
    Ok(axum::Json(state.roles.get(&caller, name.as_str()).await?.into()))
}

/// Replace a role's permissions; effective at once for its holders.
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "role name")),
    request_body = UpdateRoleRequest,
    responses(
        (status = 200, body = RoleView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "builtin_role, or lacks roles:write or the permissions involved", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn update_role(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesWrite>,
    ClientMeta(meta): ClientMeta,
    Path(name): Path<String>,
    Json(req): Json<UpdateRoleRequest>,
) -> AppResult<axum::Json<RoleView>> {
    let name = role_name(&name)?;
    let permissions = roles::parse_permissions(&req.permissions)?;
    Ok(axum::Json(
        state.roles.update(&caller, &name, permissions, &meta).await?.into(),
    ))
}

/// Delete a role (not `admin`); its holders lose it at once.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "role name")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "builtin_role, or lacks roles:write or the role's permissions", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete_role(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesWrite>,
    ClientMeta(meta): ClientMeta,
    Path(name): Path<String>,
) -> AppResult<StatusCode> {
    state.roles.delete(&caller, &role_name(&name)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn assignment(id: &str, role: &str) -> AppResult<(Uuid, RoleName)> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::not_found("user"))?;
    Ok((id, role_name(role)?))
}

/// Give a user a role (idempotent).
#[utoipa::path(put, path = "/v1/users/{id}/roles/{role}", tag = "roles",
    params(("id" = String, Path, description = "user id"), ("role" = String, Path, description = "role name")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "lacks roles:assign or the role's permissions", body = ErrorBody),
        (status = 404, description = "no such user or role in the tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn assign_role(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesAssign>,
    ClientMeta(meta): ClientMeta,
    Path((id, role)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let (id, role) = assignment(&id, &role)?;
    state.roles.assign(&caller, id, &role, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a role from a user (idempotent).
#[utoipa::path(delete, path = "/v1/users/{id}/roles/{role}", tag = "roles",
    params(("id" = String, Path, description = "user id"), ("role" = String, Path, description = "role name")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "lacks roles:assign or the role's permissions", body = ErrorBody),
        (status = 404, description = "no such user or role in the tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn remove_role(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<RolesAssign>,
    ClientMeta(meta): ClientMeta,
    Path((id, role)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let (id, role) = assignment(&id, &role)?;
    state.roles.remove(&caller, id, &role, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
