//! `GET /v1/audit`: the caller's tenant's audit log, newest first, filtered
//! by user and event, with keyset paging (`audit:read`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::rfc3339;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::Query;
use crate::http::permission::{AuditRead, RequirePermission};
use crate::service::audit::{self, Filter};
use crate::state::AppState;
use crate::store::AuditEvent;

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub at: String,
    /// e.g. `login`, `user_disabled`, `role_assigned`.
    pub event: String,
    /// The user the event is about.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<uuid::Uuid>,
    /// Who did it (the user themselves, or an administrator).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub actor_id: Option<uuid::Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Ids, names and outcomes; never a secret.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            event: e.event,
            user_id: e.user_id,
            actor_id: e.actor_id,
            ip: e.ip,
            user_agent: e.user_agent,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQueryParams {
    /// Only events about this user.
    pub user_id: Option<String>,
    /// Only this event, e.g. `login_failed`.
    pub event: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The audit log of the caller's tenant, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(AuditQueryParams),
    responses(
        (status = 200, body = AuditList),
        (status = 400, description = "bad user_id, event, limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs audit:read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<AuditRead>,
    Query(query): Query<AuditQueryParams>,
) -> AppResult<axum::Json<AuditList>> {
    let filter = Filter {
        user_id: query
            .user_id
            .as_deref()
            .map(|u| uuid::Uuid::parse_str(u.trim()))
            .transpose()
            .map_err(|_| AppError::validation("user_id", "must be a user id"))?,
        event: query.event.as_deref().map(audit::parse_event).transpose()?,
    };
    let page = state
        .audit
        .list(&caller, filter, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(AuditList {
        items: page.items.into_iter().map(AuditView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
