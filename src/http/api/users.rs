//! `/v1/users/me*`: the caller's own account and sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::dto::*;
use crate::domain::{Email, Phone};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{Auth, ClientMeta, Json};
use crate::service::accounts::{self, ProfileChange};
use crate::service::address::Reauthentication;
use crate::state::AppState;

/// The caller's user object.
#[utoipa::path(get, path = "/v1/users/me", tag = "users",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_me(State(state): State<AppState>, Auth(principal): Auth) -> AppResult<axum::Json<UserView>> {
    let user = accounts::me(state.store.as_ref(), &principal).await?;
    Ok(axum::Json(UserView::new(user, &principal.tenant)))
}

/// Change email, phone or metadata. Changing email or phone needs the current password (or a
/// reauthentication code) and stays pending until the new address confirms it.
#[utoipa::path(patch, path = "/v1/users/me", tag = "users",
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "the user; a new email or phone is pending until confirmed", body = UpdateMeResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "no token, or reauthentication_required / invalid_credentials for an email or phone change", body = ErrorBody),
        (status = 403, description = "mfa_required: an email or phone change by a user with a second factor needs a token at aal 2", body = ErrorBody),
        (status = 409, description = "email_taken or phone_taken", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_me(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<UpdateMeRequest>,
) -> AppResult<axum::Json<UpdateMeResponse>> {
    let change = ProfileChange {
        email: req
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()
            .map_err(|e| AppError::validation("email", e))?,
        phone: match req.phone {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(Phone::parse(&p).map_err(|e| AppError::validation("phone", e))?)),
        },
        metadata: metadata(req.metadata)?,
        proof: Reauthentication {
            current_password: req.current_password,
            code: req.code,
        },
    };
    let update = state.accounts.update_me(&principal, change, &meta).await?;
    Ok(axum::Json(UpdateMeResponse {
        user: UserView::new(update.user, &principal.tenant),
        pending_email: update.pending_email.map(|e| e.to_string()),
        pending_phone: update.pending_phone.map(|p| p.to_string()),
    }))
}

/// Delete the caller's account; every session ends at once.
#[utoipa::path(delete, path = "/v1/users/me", tag = "users",
    responses((status = 204), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_me(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
) -> AppResult<StatusCode> {
    state.accounts.delete_me(&principal, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/v1/users/me/sessions", tag = "users",
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> AppResult<axum::Json<Vec<SessionView>>> {
    let sessions = state.sessions.list(&principal).await?;
    Ok(axum::Json(
        sessions
            .into_iter()
            .map(|s| SessionView::new(s, principal.session_id))
            .collect(),
    ))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/users/me/sessions/{id}", tag = "users",
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_session(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| AppError::not_found("session"))?;
    state.sessions.revoke_own(&principal, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
