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
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{AppError, ErrorCode};
use crate::http::extract::{Auth, basic_credentials};
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
    /// Introspect access tokens of the caller's tenant (`POST /v1/auth/introspect`).
    TokensIntrospect = "tokens:introspect";
    /// Read the tenant's settings.
    SettingsRead = "settings:read";
    /// Change the tenant's settings (its signup policy, ...).
    SettingsWrite = "settings:write";
    /// List and read the tenant's OAuth clients (never their secrets).
    ClientsRead = "clients:read";
    /// Register, change and delete OAuth clients; rotate their secrets.
    ClientsWrite = "clients:write";
    /// List and read the tenant's upstream identity providers (never their secrets).
    ProvidersRead = "providers:read";
    /// Register, change and delete upstream identity providers.
    ProvidersWrite = "providers:write";
    /// List webhook endpoints and their deliveries.
    WebhooksRead = "webhooks:read";
    /// Register, change and delete webhook endpoints; rotate their secrets; replay deliveries.
    WebhooksWrite = "webhooks:write";
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
            app.rbac.is_operator(&principal, P::NAME).await?
        } else {
            app.rbac.has_permission(&principal, P::NAME).await?
        };
        if !allowed {
            let message = if P::OPERATOR {
                format!("requires permission {} in the default tenant (operators only)", P::NAME)
            } else {
                format!("requires permission {}", P::NAME)
            };
            return Err(AppError::forbidden(ErrorCode::Forbidden, message));
        }
        Ok(RequirePermission(principal, PhantomData))
    }
}

/// Who called `POST /v1/auth/introspect`. RFC 7662 section 2.1 requires the
/// caller to authenticate, or the endpoint is an oracle for anyone holding a
/// stolen token (and tells them whose it is). Two ways in:
pub enum IntrospectionCaller {
    /// HTTP Basic with `introspection.username` and `introspection.secret`:
    /// a resource server trusted by the operator, for tokens of any tenant.
    Client,
    /// A bearer access token whose user currently holds `tokens:introspect`:
    /// answers only about tokens of the caller's own tenant.
    User(Principal),
}

/// A refused introspection caller: the error body, and on 401 a Basic
/// challenge next to (or, after a Basic attempt, instead of) the Bearer one.
pub struct IntrospectionRejection {
    error: AppError,
    basic: Challenge,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Challenge {
    /// Basic is not configured: only the Bearer challenge.
    None,
    /// Basic is configured: offered next to Bearer.
    Also,
    /// The caller tried Basic: answer in kind.
    Only,
}

impl IntoResponse for IntrospectionRejection {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if response.status() == StatusCode::UNAUTHORIZED {
            let basic = HeaderValue::from_static("Basic realm=\"forge\", charset=\"UTF-8\"");
            match self.basic {
                Challenge::None => {}
                Challenge::Also => {
                    response.headers_mut().append(header::WWW_AUTHENTICATE, basic);
                }
                Challenge::Only => {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, basic);
                }
            }
        }
        response
    }
}

/// Whether `given` equals `expected`, in time that depends on neither (both
/// are hashed first, so not even the length leaks).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(given).ct_eq(&Sha256::digest(expected)).into()
}

impl<S> FromRequestParts<S> for IntrospectionCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = IntrospectionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, IntrospectionRejection> {
        let app = AppState::from_ref(state);
        let config = &app.config.introspection;
        if let Some(basic) = basic_credentials(&parts.headers) {
            let refused = || IntrospectionRejection {
                error: AppError::unauthorized(ErrorCode::InvalidClient, "invalid client credentials"),
                basic: Challenge::Only,
            };
            let (username, password) = basic.ok_or_else(refused)?;
            let secret = config.secret.as_ref().ok_or_else(refused)?;
            // Both compared, always, so timing tells nothing about which was wrong.
            let user_ok = same_secret(username.as_bytes(), config.username.as_bytes());
            let secret_ok = same_secret(password.as_bytes(), secret.expose().as_bytes());
            return if user_ok & secret_ok {
                Ok(IntrospectionCaller::Client)
            } else {
                Err(refused())
            };
        }
        let basic = if config.secret.is_some() {
            Challenge::Also
        } else {
            Challenge::None
        };
        let reject = |error| IntrospectionRejection { error, basic };
        let Auth(principal) = Auth::from_request_parts(parts, state).await.map_err(reject)?;
        if !app
            .rbac
            .has_permission(&principal, TokensIntrospect::NAME)
            .await
            .map_err(reject)?
        {
            return Err(reject(AppError::forbidden(
                ErrorCode::Forbidden,
                format!("requires permission {}", TokensIntrospect::NAME),
            )));
        }
        Ok(IntrospectionCaller::User(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_compares_whole_values() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"abc"));
    }
}
