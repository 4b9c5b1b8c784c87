//! Roles and permissions as they are right now, for forge's own endpoints and
//! forward-auth.
//!
//! Access tokens carry the roles they were minted with; forge's own checks
//! use the current roles instead, read through a short-lived per-user cache
//! that every role change invalidates, so a revoked role stops working at
//! once without a database round trip on every request.

use std::sync::Arc;

use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::service::sessions::Principal;
use crate::state::AppState;
use crate::store::Access;

/// The caller's current roles and permissions.
pub async fn access(state: &AppState, principal: &Principal) -> AppResult<Arc<Access>> {
    if let Some(a) = state.access.get(&principal.user_id) {
        return Ok(a);
    }
    let access = state
        .store
        .access_of(principal.tenant.id, principal.user_id)
        .await?
        .ok_or_else(AppError::invalid_token)?;
    let access = Arc::new(access);
    state.access.insert(principal.user_id, access.clone());
    Ok(access)
}

pub async fn effective_roles(state: &AppState, principal: &Principal) -> AppResult<Vec<String>> {
    Ok(access(state, principal).await?.roles.clone())
}

pub async fn has_permission(state: &AppState, principal: &Principal, required: &str) -> AppResult<bool> {
    let access = access(state, principal).await?;
    Ok(access
        .permissions
        .iter()
        .filter_map(|p| Permission::parse(p).ok())
        .any(|p| p.grants(required)))
}

/// Forgets cached access after a change to one user's roles.
pub fn invalidate_user(state: &AppState, user_id: uuid::Uuid) {
    state.access.invalidate(&user_id);
}

/// Forgets all cached access after a role's permissions changed.
pub fn invalidate_all(state: &AppState) {
    state.access.invalidate_all();
}
