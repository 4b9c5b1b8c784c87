//! `/v1/users` and `/v1/users/{id}*`: user administration inside the
//! caller's token tenant (permissions `users:read` / `users:write`).
//!
//! Beyond API.md, administrators can see and end a user's sessions:
//! `GET /v1/users/{id}/sessions` (`users:read`), and
//! `DELETE /v1/users/{id}/sessions/{session_id}` or
//! `DELETE /v1/users/{id}/sessions` for all of them (`users:write`). A user
//! id of another tenant, or a malformed one, is 404 like an unknown one.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::{SessionView, UserView, double_option, metadata};
use crate::domain::{Email, Phone, RoleName};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, Json, Query};
use crate::http::permission::{RequirePermission, UsersRead, UsersWrite};
use crate::service::directory::{AccountChange, NewAccount};
use crate::state::AppState;

/// A page of users and the cursor of the next page (absent on the last).
#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Email prefix (case-insensitive), or a phone prefix starting with `+`.
    /// Search results come in email (or phone) order, the full list in
    /// creation order.
    pub q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Admin provisioning. At least one of `email` and `phone`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Optional: without one the user signs in with a one-time code or sets
    /// a password through the reset flow. The password policy applies.
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<crate::secret::Secret>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub phone_verified: bool,
    /// Role names to give; needs `roles:assign` and the roles' permissions.
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserRequest {
    /// `true` revokes every session and denies the user's tokens at once.
    pub disabled: Option<bool>,
    /// A new email becomes unverified unless `email_verified` says otherwise.
    pub email: Option<String>,
    /// A phone number, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub email_verified: Option<bool>,
    pub phone_verified: Option<bool>,
}

fn user_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::not_found("user"))
}

fn email(raw: Option<&str>) -> AppResult<Option<Email>> {
    raw.map(Email::parse)
        .transpose()
        .map_err(|e| AppError::validation("email", e))
}

fn phone(raw: Option<&str>) -> AppResult<Option<Phone>> {
    raw.map(Phone::parse)
        .transpose()
        .map_err(|e| AppError::validation("phone", e))
}

/// List or search the tenant's users, with keyset paging.
#[utoipa::path(get, path = "/v1/users", tag = "admin",
    params(ListUsersQuery),
    responses(
        (status = 200, body = UserList),
        (status = 400, description = "bad limit, q or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs users:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersRead>,
    Query(query): Query<ListUsersQuery>,
) -> AppResult<axum::Json<UserList>> {
    let page = state
        .directory
        .list(&caller, query.q.as_deref(), query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(UserList {
        items: page
            .items
            .into_iter()
            .map(|u| UserView::new(u, &caller.tenant))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a user in the caller's tenant (admin provisioning).
#[utoipa::path(post, path = "/v1/users", tag = "admin",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserView, headers(("location" = String, description = "/v1/users/{id}"))),
        (status = 400, description = "invalid field or weak password", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs users:write (and roles:assign with roles)", body = ErrorBody),
        (status = 404, description = "unknown_role: a role in `roles` does not exist in the tenant", body = ErrorBody),
        (status = 409, description = "email_taken or phone_taken", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersWrite>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CreateUserRequest>,
) -> AppResult<Response> {
    let roles = req
        .roles
        .iter()
        .map(|r| RoleName::parse(r).map_err(|e| AppError::validation("roles", e)))
        .collect::<AppResult<Vec<_>>>()?;
    let new = NewAccount {
        email: email(req.email.as_deref())?,
        phone: phone(req.phone.as_deref())?,
        password: req.password,
        metadata: metadata(req.metadata)?.unwrap_or_else(|| serde_json::json!({})),
        email_verified: req.email_verified,
        phone_verified: req.phone_verified,
        roles,
    };
    let user = state.directory.create(&caller, new, &meta).await?;
    let location = HeaderValue::from_str(&format!("/v1/users/{}", user.id)).map_err(AppError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(UserView::new(user, &caller.tenant)),
    )
        .into_response())
}

/// A user of the caller's tenant.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<UserView>> {
    let user = state.directory.get(&caller, user_id(&id)?).await?;
    Ok(axum::Json(UserView::new(user, &caller.tenant)))
}

/// Change, disable or enable a user. Disabling ends every session at once.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    request_body = PatchUserRequest,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs users:write and the target's permissions", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_user(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(req): Json<PatchUserRequest>,
) -> AppResult<axum::Json<UserView>> {
    let id = user_id(&id)?;
    let change = AccountChange {
        disabled: req.disabled,
        email: email(req.email.as_deref())?,
        phone: match req.phone {
            None => None,
            Some(p) => Some(phone(p.as_deref())?),
        },
        metadata: metadata(req.metadata)?,
        email_verified: req.email_verified,
        phone_verified: req.phone_verified,
    };
    let user = state.directory.update(&caller, id, change, &meta).await?;
    Ok(axum::Json(UserView::new(user, &caller.tenant)))
}

/// Delete a user; their tokens stop working at once.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.directory.delete(&caller, user_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's live sessions, newest first (extension).
#[utoipa::path(get, path = "/v1/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_user_sessions(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Vec<SessionView>>> {
    let sessions = state.directory.sessions(&caller, user_id(&id)?).await?;
    Ok(axum::Json(
        sessions
            .into_iter()
            .map(|s| SessionView::new(s, caller.session_id))
            .collect(),
    ))
}

/// End every session of a user (extension).
#[utoipa::path(delete, path = "/v1/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user_sessions(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state
        .directory
        .revoke_sessions(&caller, user_id(&id)?, None, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End one session of a user (extension).
#[utoipa::path(delete, path = "/v1/users/{id}/sessions/{session_id}", tag = "admin",
    params(("id" = String, Path, description = "user id"), ("session_id" = String, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user_session(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersWrite>,
    ClientMeta(meta): ClientMeta,
    Path((id, session_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let id = user_id(&id)?;
    let session_id = Uuid::parse_str(&session_id).map_err(|_| AppError::not_found("session"))?;
    state
        .directory
        .revoke_sessions(&caller, id, Some(session_id), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
