//! Extractors: the only code that reads headers and bodies. Handlers receive
//! typed values or an [`AppError`] has already been answered.
//!
//! - [`Json`] and [`JsonOrForm`] turn every body problem (malformed JSON,
//!   wrong types, missing fields, wrong content type, too large) into the one
//!   error body; serde messages are stripped of the values they quote, so a
//!   rejected body never echoes a password.
//! - [`ClientMeta`] believes `X-Forwarded-For` only from a trusted proxy.
//! - [`CurrentTenant`] resolves `X-Forge-Tenant` (default `default`).
//! - [`Auth`] verifies the bearer token and the deny list.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, USER_AGENT};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::TenantSlug;
use crate::error::AppError;
use crate::service::RequestMeta;
use crate::service::sessions::{self, Principal};
use crate::state::AppState;
use crate::store::Tenant;

pub const TENANT_HEADER: &str = "x-forge-tenant";
pub const SESSION_COOKIE: &str = "forge_session";

/// Removes quoted values from a serde message, keeping field names
/// (which serde puts in backticks) so the client learns what was wrong.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    for c in message.chars() {
        match c {
            '"' if !in_quotes => {
                in_quotes = true;
                out.push_str("\"…");
            }
            '"' => {
                in_quotes = false;
                out.push('"');
            }
            _ if in_quotes => {}
            _ => out.push(c),
        }
    }
    out
}

fn body_error(status: axum::http::StatusCode, detail: String) -> AppError {
    use axum::http::StatusCode;
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(detail),
        _ => AppError::bad_request("invalid_request", detail),
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        let detail = match &r {
            JsonRejection::MissingJsonContentType(_) => "expected Content-Type: application/json".to_string(),
            JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON".to_string(),
            JsonRejection::JsonDataError(e) => scrub(&format!(
                "invalid body: {}",
                std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_default()
            )),
            _ => scrub(&r.body_text()),
        };
        body_error(r.status(), detail)
    }
}

impl From<FormRejection> for AppError {
    fn from(r: FormRejection) -> Self {
        body_error(r.status(), scrub(&r.body_text()))
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::bad_request("invalid_request", scrub(&r.body_text()))
    }
}

/// `axum::Json` with forge's error body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(v))
    }
}

/// `axum::extract::Query` with forge's error body.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// A body that may be JSON or `application/x-www-form-urlencoded` (the
/// OAuth2 token endpoint takes both).
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let axum::Form(v) = axum::Form::<T>::from_request(req, state).await?;
            Ok(JsonOrForm(v))
        } else {
            let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
            Ok(JsonOrForm(v))
        }
    }
}

/// The client's IP and user agent, for rate limits and the audit log.
pub struct ClientMeta(pub RequestMeta);

impl ClientMeta {
    pub fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }
}

/// The client IP: the peer address, or, when the peer is a trusted proxy, the
/// right-most address in `X-Forwarded-For` that is not itself trusted.
pub fn client_ip(parts: &Parts, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer))
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta
where
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let app = AppState::from_ref(state);
        let ip = client_ip(parts, &app.config.server.trusted_proxies).map(|ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        // A device token from the header (API clients) or the cookie
        // (browsers); a body field, where an endpoint has one, overrides it.
        let device_token = parts
            .headers
            .get("x-forge-device")
            .and_then(|v| v.to_str().ok())
            .or_else(|| crate::http::admin::guard::cookie(&parts.headers, crate::service::devices::COOKIE))
            .map(|s| s.chars().take(512).collect());
        Ok(ClientMeta(RequestMeta {
            ip,
            user_agent,
            device_token,
        }))
    }
}

/// The tenant named by `X-Forge-Tenant`, or `default`. 404 `unknown_tenant`.
pub struct CurrentTenant(pub Tenant);

impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant
where
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let app = AppState::from_ref(state);
        let unknown = || AppError::NotFound {
            code: "unknown_tenant",
            message: "no such tenant".into(),
        };
        let slug = match parts.headers.get(TENANT_HEADER) {
            None => TenantSlug::default_tenant(),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| TenantSlug::parse(s.trim()).ok())
                .ok_or_else(unknown)?,
        };
        let tenant = crate::service::accounts::tenant(&app, slug.as_str())
            .await?
            .ok_or_else(unknown)?;
        Ok(CurrentTenant(tenant))
    }
}

/// The bearer token of the request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The `forge_session` cookie, which forward-auth accepts instead of a bearer.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// An authenticated caller. 401 with `WWW-Authenticate` otherwise.
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let app = AppState::from_ref(state);
        let token = bearer(&parts.headers).ok_or_else(AppError::invalid_token)?;
        Ok(Auth(sessions::authenticate(&app, token).await?))
    }
}

/// Like [`Auth`] but absent when there is no `Authorization` header (logout
/// with only a refresh token). A present but bad token is still 401.
pub struct MaybeAuth(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuth
where
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        if parts.headers.get(AUTHORIZATION).is_none() {
            return Ok(MaybeAuth(None));
        }
        let Auth(p) = Auth::from_request_parts(parts, state).await?;
        Ok(MaybeAuth(Some(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_quoted_values() {
        assert_eq!(
            scrub("invalid type: string \"hunter2\", expected u32 at `password`"),
            "invalid type: string \"…\", expected u32 at `password`"
        );
    }

    fn parts_from(peer: &str, xff: Option<&str>) -> Parts {
        let mut builder = axum::http::Request::builder();
        if let Some(x) = xff {
            builder = builder.header("x-forwarded-for", x);
        }
        let (mut parts, _) = builder.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        parts
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |peer, xff| client_ip(&parts_from(peer, xff), &trusted).unwrap().to_string();
        assert_eq!(ip("1.2.3.4:5", Some("9.9.9.9")), "1.2.3.4");
        assert_eq!(ip("10.0.0.1:5", Some("9.9.9.9")), "9.9.9.9");
        assert_eq!(ip("10.0.0.1:5", Some("6.6.6.6, 9.9.9.9, 10.0.0.2")), "9.9.9.9");
        assert_eq!(ip("10.0.0.1:5", Some("garbage")), "10.0.0.1");
    }
}
