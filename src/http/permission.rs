//! [`RequirePermission`]: the extractor every protected route takes. It
//! authenticates like [`Auth`] (401 for a missing, bad, expired or revoked
//! token) and then checks the caller's *current* permissions, not the roles
//! claim of the token, through `service::rbac` (cached per user, invalidated
//! on every role change), answering 403 `forbidden` when they fall short.
//!
//! The permission is a type parameter, one marker type per permission, so a
//! handler's signature says what it needs and cannot forget to check:
//!
//! ```ignore
//! async fn list(RequirePermission(caller, ..): RequirePermission<UsersRead>) { ... }
//! ```
//!
//! Markers for tenant management are *operator* permissions: they count only
//! when held in the `default` tenant, so a tenant's own `admin` (`*` in its
//! tenant) never manages tenants. Put this extractor before any body
//! extractor, so a caller without the permission learns nothing about the
//! body's validity.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::error::AppError;
use crate::http::extract::Auth;
use crate::service::rbac;
use crate::service::sessions::Principal;
use crate::state::AppState;

/// A permission a route requires, named at the type level.
pub trait PermissionName: Send + Sync + 'static {
    /// The `resource:action` string checked against the caller's permissions.
    const NAME: &'static str;
    /// Only counts when held in the `default` tenant (tenant management).
    const OPERATOR: bool = false;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $ty:ident = $name:literal $(, $operator:ident)?;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;

            impl PermissionName for $ty {
                const NAME: &'static str = $name;
                $(const OPERATOR: bool = permissions!(@$operator);)?
            }
        )*
    };
    (@operator) => { true };
}

permissions! {
    /// List, search and read users.
    UsersRead = "users:read";
    /// Provision, change, disable and delete users; end their sessions.
    UsersWrite = "users:write";
    /// List and read roles.
    RolesRead = "roles:read";
    /// Create, change and delete roles.
    RolesWrite = "roles:write";
    /// Give roles to users and take them away.
    RolesAssign = "roles:assign";
    /// Read the audit log.
    AuditRead = "audit:read";
    /// Read the tenant's settings.
    SettingsRead = "settings:read";
    /// Change the tenant's settings (its signup policy, ...).
    SettingsWrite = "settings:write";
    /// List and read tenants (operators only).
    TenantsRead = "tenants:read", operator;
    /// Create and delete tenants (operators only).
    TenantsWrite = "tenants:write", operator;
}

/// An authenticated caller who currently holds permission `P`.
pub struct RequirePermission<P: PermissionName>(pub Principal, pub PhantomData<fn() -> P>);

impl<P: PermissionName> RequirePermission<P> {
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

impl<S, P> FromRequestParts<S> for RequirePermission<P>
where
    S: Send + Sync,
    P: PermissionName,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        let app = AppState::from_ref(state);
        let allowed = if P::OPERATOR {
            rbac::is_operator(&app, &principal, P::NAME).await?
        } else {
            rbac::has_permission(&app, &principal, P::NAME).await?
        };
        if !allowed {
            let message = if P::OPERATOR {
                format!("requires permission {} in the default tenant (operators only)", P::NAME)
            } else {
                format!("requires permission {}", P::NAME)
            };
            return Err(AppError::forbidden("forbidden", message));
        }
        Ok(RequirePermission(principal, PhantomData))
    }
}
