//! The admin site's middleware: security headers, the Fetch-Metadata check,
//! and the session + CSRF gate in front of every signed-in page.
//!
//! The CSRF token is per session, travels as the hidden `csrf` field of
//! every form, and is compared in constant time here, on the buffered
//! `application/x-www-form-urlencoded` body, before the handler runs; the
//! body is then handed on unchanged. A missing or wrong token is 403. The
//! cookie is `SameSite=Strict` as well, so a cross-site form post does not
//! even carry the session; the token is what protects browsers (and
//! same-site subdomains) that the cookie attribute alone would not.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::views::{self, PageError};
use crate::crypto::tokens::constant_time_eq;
use crate::error::{AppError, ErrorCode};
use crate::service::site::sessions::{Loaded, SiteAdmin};
use crate::state::AppState;

/// The session cookie.
pub const COOKIE: &str = "forge_admin";
/// The sign-in form's own CSRF cookie (there is no session yet).
pub const LOGIN_COOKIE: &str = "forge_admin_login";

/// No script at all, styles only from our own stylesheet, forms only to us,
/// never framed. (The pages with the passkey script add that one script by
/// nonce: [`ScriptNonce`].)
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The one script a page may run: the response of a page that embeds the
/// site's passkey script carries its per-response nonce here, and
/// [`security_headers`] widens that page's CSP to exactly this script (and
/// same-origin `fetch`, which the script uses). Every other response keeps
/// [`CSP`], which allows no script at all.
#[derive(Clone, Debug)]
pub struct ScriptNonce(pub String);

/// A response that is not a page of the site but a document shown beside
/// it (the preview of an email's HTML part) carries its own policy here,
/// which [`with_security_headers`] sends instead of the base one.
#[derive(Clone, Copy, Debug)]
pub struct OwnCsp(pub &'static str);

/// [`CSP`] plus the nonce of the page's one script.
pub fn csp_with_nonce(nonce: &str) -> String {
    script_csp(CSP, nonce)
}

/// `base` plus the nonce of the page's one script (and same-origin
/// `fetch`, which the passkey script uses).
pub fn script_csp(base: &str, nonce: &str) -> String {
    format!("{base}; script-src 'nonce-{nonce}'; connect-src 'self'")
}

/// Sets the admin site's security headers on every response under `/admin`.
pub async fn security_headers(request: Request, next: Next) -> Response {
    with_security_headers(next.run(request).await, CSP)
}

/// The security headers of forge's server-rendered pages (the admin site,
/// the hosted pages) on `response`: the CSP `base` (widened to the page's
/// one script when the response carries a [`ScriptNonce`]), no framing, no
/// referrer off the origin, isolation from other origins, and
/// `Cache-Control: no-store` unless the handler chose otherwise.
pub fn with_security_headers(mut response: Response, base: &str) -> Response {
    let base = response.extensions_mut().remove::<OwnCsp>().map_or(base, |own| own.0);
    let csp = match response.extensions_mut().remove::<ScriptNonce>() {
        Some(ScriptNonce(nonce)) => HeaderValue::from_str(&script_csp(base, &nonce)).ok(),
        None => HeaderValue::from_str(base).ok(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        csp.unwrap_or_else(|| HeaderValue::from_static(CSP)),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a state-changing request that a browser says came from another
/// site (`Sec-Fetch-Site` other than `same-origin` or `none`, the latter
/// being a user typing or bookmarking). Clients that send no Fetch Metadata
/// (older browsers, curl) rely on the CSRF token alone.
pub async fn fetch_metadata(request: Request, next: Next) -> Response {
    if is_cross_site(&request) {
        return PageError(AppError::forbidden(
            ErrorCode::CrossSite,
            "This request came from another site, so it was refused. Use the admin site's own forms.",
        ))
        .into_response();
    }
    next.run(request).await
}

/// A state-changing request a browser says came from another site (see
/// [`fetch_metadata`]).
pub fn is_cross_site(request: &Request) -> bool {
    changes_state(request.method())
        && request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|site| !matches!(site.to_str(), Ok("same-origin" | "none")))
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict`, `Secure` unless the
/// configuration allows plain HTTP. `max_age` 0 deletes the cookie.
pub fn set_cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    cookie_with(state, name, value, path, max_age, "Strict")
}

/// [`set_cookie`] with another `SameSite` value (`Lax` for the hosted
/// pages' session, which a sign-in started by another site must find).
pub fn cookie_with(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    same_site: &str,
) -> HeaderValue {
    let secure = if state.config.admin.insecure_cookies {
        ""
    } else {
        "; Secure"
    };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("forge_admin=; Max-Age=0"))
}

/// A form carrying a CSRF token in its `csrf` field.
pub trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// Implements [`CsrfForm`] for forms with a `csrf: String` field.
#[macro_export]
macro_rules! csrf_forms {
    ($($form:ty),+ $(,)?) => {
        $(impl $crate::http::site::guard::CsrfForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })+
    };
}

/// A form posted before there is a session (sign-in steps): a malformed
/// form is 400, and its `csrf` must equal the value of the cookie
/// `cookie_name` that the page set (double submit), or it is 403.
pub fn double_submit<F: CsrfForm>(
    headers: &HeaderMap,
    cookie_name: &str,
    form: Result<axum::Form<F>, axum::extract::rejection::FormRejection>,
) -> Result<F, AppError> {
    let Ok(axum::Form(form)) = form else {
        return Err(AppError::bad_request(
            ErrorCode::InvalidRequest,
            "the form is malformed",
        ));
    };
    let expected = cookie(headers, cookie_name).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf().as_bytes()) {
        return Err(AppError::forbidden(
            ErrorCode::Csrf,
            "The form expired or cookies are blocked. Reload the page and try again.",
        ));
    }
    Ok(form)
}

/// Buffers a state-changing request's form body and checks that its `csrf`
/// field equals `expected` (constant time), handing the body back for the
/// handler; 413 for a body over `limit`, 403 `csrf` for a missing or wrong
/// token.
pub async fn checked_body(body: Body, limit: usize, expected: &str) -> Result<Body, AppError> {
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(AppError::PayloadTooLarge);
    };
    let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
    if !sent.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes())) {
        return Err(AppError::forbidden(
            ErrorCode::Csrf,
            "The form's security token is missing or out of date. Go back, reload the page and try again.",
        ));
    }
    Ok(Body::from(bytes))
}

/// Deletes the session cookie.
pub fn clear_session_cookie(state: &AppState) -> HeaderValue {
    set_cookie(state, COOKIE, "", "/admin", 0)
}

/// Where the sign-in page sends an administrator back to: a path under
/// `/admin` only, so the parameter cannot become an open redirect.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let ok = (next == "/admin" || next.starts_with("/admin/"))
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && !next.starts_with("/admin/login")
        && !next.starts_with("/admin/logout");
    ok.then(|| next.to_string())
}

fn to_login(state: &AppState, parts: &Parts, had_cookie: bool) -> Response {
    let mut target = "/admin/login".to_string();
    if parts.method == Method::GET {
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/admin");
        if let Some(next) = safe_next(Some(path)).filter(|n| n != "/admin") {
            target = format!("/admin/login?next={}", urlencode(&next));
        }
    }
    let mut response = Redirect::to(&target).into_response();
    if had_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, clear_session_cookie(state));
    }
    response
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Loads and re-checks the session, then checks the CSRF token of a
/// state-changing request; the handler finds the [`SiteAdmin`] in the
/// request's extensions (extractor [`Admin`]).
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let token = cookie(&parts.headers, COOKIE).map(str::to_string);
    let Some(token) = token else {
        return to_login(&state, &parts, false);
    };
    let is_page = parts.method == Method::GET;
    let admin = match state.site_sessions.load(&token, is_page).await {
        Ok(Loaded::Valid(admin)) => admin,
        Ok(Loaded::Expired) => return to_login(&state, &parts, true),
        Ok(Loaded::Revoked(reason)) => {
            let message = match reason {
                "not_admin" => "Your account no longer holds the admin role, so your admin session has ended.",
                "user_disabled" => "Your account is disabled, so your admin session has ended.",
                _ => "Your account or its tenant no longer exists, so your admin session has ended.",
            };
            let mut response = PageError(AppError::forbidden(ErrorCode::SessionRevoked, message)).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_session_cookie(&state));
            return response;
        }
        Err(e) => return PageError(e).into_response(),
    };
    let body = if changes_state(&parts.method) {
        match checked_body(body, state.config.server.max_body_bytes, admin.csrf()).await {
            Ok(body) => body,
            Err(e) => return PageError(e).into_response(),
        }
    } else {
        body
    };
    crate::http::LoggedUser::note(&parts.extensions, admin.own.user_id);
    parts.extensions.insert(Arc::<SiteAdmin>::from(admin));
    next.run(Request::from_parts(parts, body)).await
}

/// The signed-in administrator of this request (put there by
/// [`require_admin`]).
pub struct Admin(pub Arc<SiteAdmin>);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<Arc<SiteAdmin>>()
            .cloned()
            .map(Admin)
            .ok_or_else(|| {
                PageError(AppError::internal(anyhow::anyhow!(
                    "admin page without the admin guard"
                )))
            })
    }
}

/// Answers 403 unless the administrator is an operator.
pub fn require_operator(admin: &SiteAdmin) -> Result<(), PageError> {
    if admin.operator {
        Ok(())
    } else {
        Err(PageError(AppError::forbidden(
            ErrorCode::Forbidden,
            "Only operators (administrators of the default tenant) can open this page.",
        )))
    }
}

/// 303 to `to`; the status every successful form post answers with.
pub fn see_other(to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

/// Leaves the outcome of an action as a message for the next page and
/// redirects there: the success text, or what went wrong.
pub async fn done(state: &AppState, admin: &SiteAdmin, to: &str, outcome: Result<String, AppError>) -> Response {
    let (ok, text) = match outcome {
        Ok(text) => (true, text),
        Err(e) => (false, views::describe(&e)),
    };
    if let Err(e) = state.site_sessions.flash(admin, ok, text).await {
        return PageError(e).into_response();
    }
    see_other(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_admin_site() {
        assert_eq!(safe_next(Some("/admin/users?q=a")), Some("/admin/users?q=a".into()));
        assert_eq!(safe_next(Some("/admin")), Some("/admin".into()));
        for bad in [
            "https://evil.example/admin",
            "//evil.example/admin",
            "/admin//evil",
            "/admin\\..\\x",
            "/administrator",
            "/v1/users",
            "/admin/login?next=/admin",
            "/admin/x\ny",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
        assert_eq!(safe_next(None), None);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; forge_admin=tok; b=2"));
        assert_eq!(cookie(&headers, COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "forge_admin_login"), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("forge_admin="));
        assert_eq!(cookie(&headers, COOKIE), None);
    }

    #[test]
    fn urlencode_escapes_query_values() {
        assert_eq!(urlencode("/admin/users?q=a&b"), "%2Fadmin%2Fusers%3Fq%3Da%26b");
    }
}
