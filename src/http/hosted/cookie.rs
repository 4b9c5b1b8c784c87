//! The hosted pages' cookies: the SSO session cookie and the sign-in
//! forms' double-submit CSRF cookie.
//!
//! The session cookie is `__Host-forge_sso` (`HttpOnly; Secure;
//! SameSite=Lax; Path=/`, no `Domain`, as the `__Host-` prefix demands), so
//! no sibling subdomain can plant or read it; `Lax` so that a sign-in that
//! another site's redirect starts (an OpenID Connect client sending the
//! browser to `/oauth/authorize`) still finds it. With
//! `admin.insecure_cookies = true` (plain-HTTP development) it is
//! `forge_sso` without `Secure`, since browsers refuse a `__Host-` cookie
//! without it. The forms' cookie follows the same naming and is
//! `SameSite=Strict`.

use axum::http::{HeaderMap, HeaderValue};

use crate::http::site::guard;
use crate::state::AppState;

/// The session cookie's name over HTTPS.
pub const SECURE_NAME: &str = "__Host-forge_sso";
/// The session cookie's name in plain-HTTP development.
pub const INSECURE_NAME: &str = "forge_sso";
/// The sign-in forms' CSRF cookie, over HTTPS and in development.
const FORM_SECURE_NAME: &str = "__Host-forge_sso_form";
const FORM_INSECURE_NAME: &str = "forge_sso_form";

/// How long a sign-in form stays usable.
pub const FORM_TTL_SECS: u64 = 3_600;

/// The session cookie's name under this configuration.
pub fn name(state: &AppState) -> &'static str {
    if state.config.admin.insecure_cookies {
        INSECURE_NAME
    } else {
        SECURE_NAME
    }
}

/// The forms' CSRF cookie's name under this configuration.
pub fn form_name(state: &AppState) -> &'static str {
    if state.config.admin.insecure_cookies {
        FORM_INSECURE_NAME
    } else {
        FORM_SECURE_NAME
    }
}

/// The SSO cookie's token, if the request carries one.
pub fn read<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    guard::cookie(headers, name(state))
}

/// `Set-Cookie` for a new session's token.
pub fn set(state: &AppState, token: &str) -> HeaderValue {
    guard::cookie_with(state, name(state), token, "/", state.sso.cookie_max_age(), "Lax")
}

/// `Set-Cookie` deleting the session cookie.
pub fn clear(state: &AppState) -> HeaderValue {
    guard::cookie_with(state, name(state), "", "/", 0, "Lax")
}

/// `Set-Cookie` for a sign-in form's token (`None`: delete it).
pub fn form(state: &AppState, token: Option<&str>) -> HeaderValue {
    match token {
        Some(token) => guard::set_cookie(state, form_name(state), token, "/", FORM_TTL_SECS),
        None => guard::set_cookie(state, form_name(state), "", "/", 0),
    }
}
