//! Extractors: the only code that reads headers and bodies. Handlers receive
//! typed values or an [`AppError`] has already been answered.
//!
//! - [`Json`] and [`JsonOrForm`] turn every body problem (malformed JSON,
//!   wrong types, missing fields, wrong content type, too large) into the one
//!   error body; serde messages are stripped of the values they quote, so a
//!   rejected body never echoes a password.
//! - [`ClientMeta`] believes `X-Forwarded-For` only from a trusted proxy.
//! - [`CurrentTenant`] resolves `X-Forge-Tenant` (default `default`);
//!   [`TenantOverride`] reads it unresolved for operator-only overrides.
//! - [`Auth`] verifies the bearer token and the deny list.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, USER_AGENT};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::TenantSlug;
use crate::error::{AppError, ErrorCode};
use crate::service::RequestMeta;
use crate::service::sessions::Principal;
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
        _ => AppError::bad_request(ErrorCode::InvalidRequest, detail),
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
        AppError::bad_request(ErrorCode::InvalidRequest, scrub(&r.body_text()))
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

/// The client IP: the peer address, or, when the peer is a trusted proxy,
/// the address found by walking `X-Forwarded-For` from the right (the entry
/// our own proxy wrote) to the left: the first entry that is not itself a
/// trusted proxy is the client.
///
/// Only the entries right of the first untrusted one can be believed; an
/// entry that does not parse as an IP address (`1.2.3.4:5678`, `unknown`,
/// garbage, a non-ASCII header) ends the walk, and the client is then the
/// last address we could still trust: the proxy that handed us that entry.
/// Skipping it instead would let a client who can smuggle a malformed entry
/// past a proxy pick the address we believe. When every entry is a trusted
/// proxy, the client is the left-most one (a machine inside the trusted
/// network). IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a
/// dual-stack socket reports) are compared as the IPv4 address they carry.
pub fn client_ip(parts: &Parts, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut entries: Vec<Option<IpAddr>> = Vec::new();
    for value in parts.headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(text) => entries.extend(text.split(',').map(|s| s.trim().parse::<IpAddr>().ok())),
            Err(_) => entries.push(None),
        }
    }
    let mut client = peer;
    for entry in entries.into_iter().rev() {
        let Some(ip) = entry.map(|ip| ip.to_canonical()) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
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
            .or_else(|| crate::http::site::guard::cookie(&parts.headers, crate::service::devices::COOKIE))
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
            code: ErrorCode::UnknownTenant,
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
        let tenant = app.sessions.tenant(slug.as_str()).await?.ok_or_else(unknown)?;
        Ok(CurrentTenant(tenant))
    }
}

/// `X-Forge-Tenant` as named by an authenticated caller who may act on
/// another tenant (operators): the slug, not yet looked up, so the use case
/// can refuse a non-operator before revealing whether the tenant exists.
/// Absent: None. A value that is no valid slug is 404 `unknown_tenant`.
pub struct TenantOverride(pub Option<TenantSlug>);

impl<S: Send + Sync> FromRequestParts<S> for TenantOverride {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let Some(value) = parts.headers.get(TENANT_HEADER) else {
            return Ok(TenantOverride(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|s| TenantSlug::parse(s.trim()).ok())
            .map(|slug| TenantOverride(Some(slug)))
            .ok_or_else(|| AppError::NotFound {
                code: ErrorCode::UnknownTenant,
                message: "no such tenant".into(),
            })
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

/// HTTP Basic credentials (`Authorization: Basic base64(user:password)`):
/// `None` when the request uses no Basic scheme, `Some(None)` when it does
/// but the value is not valid base64 of UTF-8 `user:password`. The parts are
/// compared as sent (no form-decoding, RFC 6749 section 2.3.1): use secrets
/// without reserved characters, e.g. hex.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    use base64::Engine;
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    Some(decoded.and_then(|text| {
        text.split_once(':')
            .map(|(user, password)| (user.to_string(), password.to_string()))
    }))
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
        let principal = app.sessions.authenticate(token).await?;
        crate::http::LoggedUser::note(&parts.extensions, principal.user_id);
        Ok(Auth(principal))
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

/// The bearer of the factor enrolment calls (and only those): an access
/// token as [`Auth`] takes it, or else an `enrollment_token` (a sign-in past
/// its tenant's MFA grace; see `service::mfa_policy`), looked up in the
/// tenant `X-Forge-Tenant` names (as at sign-in; `default` when absent). An
/// enrolment token is not a JWT, so every other endpoint's [`Auth`] refuses
/// it; this extractor is the one place that knows it.
pub enum Enroller {
    Session(Principal),
    Token {
        tenant: Tenant,
        challenge: crate::service::challenges::Challenge,
        token: crate::secret::Secret,
    },
}

impl<S: Send + Sync> FromRequestParts<S> for Enroller
where
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let app = AppState::from_ref(state);
        let token = bearer(&parts.headers).ok_or_else(AppError::invalid_token)?;
        // An access token is three dot-separated parts; an enrolment token
        // is base64url without dots.
        if token.contains('.') {
            let principal = app.sessions.authenticate(token).await?;
            crate::http::LoggedUser::note(&parts.extensions, principal.user_id);
            return Ok(Enroller::Session(principal));
        }
        let token = token.to_owned();
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::invalid_token())?;
        let challenge = app
            .challenges
            .open(crate::service::challenges::ChallengeKind::Enrollment, tenant.id, &token)
            .await?
            .ok_or_else(AppError::invalid_token)?;
        Ok(Enroller::Token {
            tenant,
            challenge,
            token: crate::secret::Secret::new(token),
        })
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

    fn ip_of(peer: &str, xff: Option<&str>) -> String {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        client_ip(&parts_from(peer, xff), &trusted).unwrap().to_string()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        assert_eq!(ip_of("1.2.3.4:5", Some("9.9.9.9")), "1.2.3.4");
        assert_eq!(ip_of("10.0.0.1:5", Some("9.9.9.9")), "9.9.9.9");
        assert_eq!(ip_of("10.0.0.1:5", None), "10.0.0.1");
    }

    #[test]
    fn forwarded_for_spoofed_left_entries_are_ignored() {
        // The client wrote 6.6.6.6 itself; our proxy appended the real 9.9.9.9.
        assert_eq!(ip_of("10.0.0.1:5", Some("6.6.6.6, 9.9.9.9, 10.0.0.2")), "9.9.9.9");
        assert_eq!(ip_of("10.0.0.1:5", Some("1.1.1.1, 6.6.6.6, 9.9.9.9")), "9.9.9.9");
    }

    #[test]
    fn forwarded_for_garbage_ends_the_walk_at_the_last_trusted_hop() {
        assert_eq!(ip_of("10.0.0.1:5", Some("garbage")), "10.0.0.1");
        // Skipping the garbage would have believed the spoofed 6.6.6.6.
        assert_eq!(ip_of("10.0.0.1:5", Some("6.6.6.6, garbage")), "10.0.0.1");
        assert_eq!(ip_of("10.0.0.1:5", Some("6.6.6.6, unknown, 10.0.0.2")), "10.0.0.2");
        assert_eq!(ip_of("10.0.0.1:5", Some("6.6.6.6, , 10.0.0.2")), "10.0.0.2");
    }

    #[test]
    fn forwarded_for_ip_with_port_ends_the_walk() {
        assert_eq!(ip_of("10.0.0.1:5", Some("6.6.6.6, 9.9.9.9:4321")), "10.0.0.1");
        assert_eq!(
            ip_of("10.0.0.1:5", Some("6.6.6.6, [2001:db8::1]:443, 10.0.0.3")),
            "10.0.0.3"
        );
    }

    #[test]
    fn forwarded_for_all_trusted_chain_gives_the_left_most_hop() {
        assert_eq!(ip_of("10.0.0.1:5", Some("10.1.1.1, 10.0.0.2")), "10.1.1.1");
    }

    #[test]
    fn forwarded_for_ipv6() {
        assert_eq!(ip_of("[fd00::1]:5", Some("6.6.6.6, 2001:db8::7")), "2001:db8::7");
        assert_eq!(
            ip_of("[fd00::1]:5", Some("2001:db8::6, 2001:db8::7, fd00::2")),
            "2001:db8::7"
        );
        assert_eq!(ip_of("[2001:db8::9]:5", Some("9.9.9.9")), "2001:db8::9");
        // A dual-stack socket reports an IPv4 proxy as ::ffff:10.0.0.1.
        assert_eq!(ip_of("[::ffff:10.0.0.1]:5", Some("9.9.9.9")), "9.9.9.9");
        assert_eq!(ip_of("10.0.0.1:5", Some("::ffff:9.9.9.9")), "9.9.9.9");
    }
}
