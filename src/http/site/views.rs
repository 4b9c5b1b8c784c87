//! What every admin page shares: the layout's data, rendering a template
//! into a response, error pages, the stylesheet, and formatting helpers.
//!
//! Templates receive plain strings and numbers prepared here and by the
//! handlers, and askama escapes every one of them; nothing is marked safe.
//! The stylesheet and the passkey script are compiled into the binary and
//! served under URLs that carry their content hash, so they can be cached
//! for a year and still change with a new release.

use std::sync::LazyLock;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::guard::ScriptNonce;
use crate::error::{AppError, ErrorCode};
use crate::service::site::sessions::{Flash, SiteAdmin};

/// The stylesheet's path (its link adds `?v=<content hash>`).
pub const STYLESHEET_PATH: &str = "/admin/static/admin.css";

const STYLESHEET: &str = include_str!("../../../static/admin.css");

/// The passkey script's path: the site's one script, run only by the pages
/// that offer passkeys, each allowing it by a per-response nonce.
pub const PASSKEY_SCRIPT_PATH: &str = "/admin/static/passkey.js";

pub(crate) const PASSKEY_SCRIPT: &str = include_str!("../../../static/passkey.js");

/// `path?v=<content hash>`, so an asset can be cached for a year and still
/// change with a new release.
pub(crate) fn versioned(path: &str, content: &str) -> String {
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    format!("{path}?v={}", &digest[..12])
}

/// The stylesheet's URL with its content hash, computed once.
static STYLESHEET_URL: LazyLock<String> = LazyLock::new(|| versioned(STYLESHEET_PATH, STYLESHEET));

static PASSKEY_SCRIPT_URL: LazyLock<String> = LazyLock::new(|| versioned(PASSKEY_SCRIPT_PATH, PASSKEY_SCRIPT));

pub fn stylesheet_url() -> &'static str {
    STYLESHEET_URL.as_str()
}

pub fn passkey_script_url() -> &'static str {
    PASSKEY_SCRIPT_URL.as_str()
}

pub(crate) fn immutable_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /admin/static/admin.css`: immutable for a year (the URL changes
/// with the content).
pub async fn stylesheet() -> Response {
    immutable_asset("text/css; charset=utf-8", STYLESHEET)
}

/// `GET /admin/static/passkey.js`: like the stylesheet. Loading it runs
/// nothing: only a page whose CSP names the nonce of its `<script>` tag
/// executes it.
pub async fn passkey_script() -> Response {
    immutable_asset("text/javascript; charset=utf-8", PASSKEY_SCRIPT)
}

/// A fresh nonce for one response's script tag (256 random bits).
pub fn script_nonce() -> String {
    crate::crypto::tokens::random_token()
}

/// Marks `response` as the page whose script tag carries `nonce`: the
/// security headers then allow exactly that script ([`ScriptNonce`]).
pub fn with_script(mut response: Response, nonce: String) -> Response {
    response.extensions_mut().insert(ScriptNonce(nonce));
    response
}

/// The data of the page frame: navigation, who is signed in, which tenant
/// the page shows, the CSRF token for the sign-out form, the flash message.
pub struct Layout {
    pub title: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    pub css: &'static str,
    pub admin: String,
    pub operator: bool,
    pub tenant_slug: String,
    pub tenant_name: String,
    /// An operator looking at another tenant than `default`.
    pub switched: bool,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Layout {
    pub fn new(admin: &SiteAdmin, section: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            section,
            css: stylesheet_url(),
            admin: admin.email(),
            operator: admin.operator,
            tenant_slug: admin.tenant().slug.to_string(),
            tenant_name: admin.tenant().name.clone(),
            switched: admin.switched(),
            csrf: admin.csrf().to_string(),
            flash: admin.flash.clone(),
        }
    }

    /// `aria-current` for the navigation entry `name`.
    pub fn current(&self, name: &str) -> &'static str {
        if self.section == name { "page" } else { "false" }
    }
}

/// Renders a template as a 200 HTML page.
pub fn page<T: Template>(template: &T) -> Response {
    page_with(StatusCode::OK, template)
}

pub fn page_with<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => PageError(AppError::internal(anyhow::anyhow!("template: {e}"))).into_response(),
    }
}

/// What an administrator reads when something fails: the error's own
/// message (never a secret: see `AppError`), each invalid field, or a
/// generic text for server-side failures.
pub fn describe(e: &AppError) -> String {
    match e {
        AppError::Validation { fields, .. } => fields
            .iter()
            .map(|(field, reason)| format!("{}: {reason}", field.replace('_', " ")))
            .collect::<Vec<_>>()
            .join("; "),
        AppError::Internal(_) => "Something went wrong on the server; the details are in its log.".into(),
        AppError::Unavailable => "The database or cache is unavailable; try again shortly.".into(),
        AppError::RateLimited { retry_after_secs } => {
            format!(
                "Too many attempts. Try again in {}.",
                duration(*retry_after_secs as i64)
            )
        }
        AppError::Unauthorized {
            code: ErrorCode::InvalidToken,
            ..
        } => "Your access changed while the page was loading; reload and try again.".into(),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            let mut sentence = match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => return text,
            };
            if !sentence.ends_with(['.', '!', '?']) {
                sentence.push('.');
            }
            sentence
        }
    }
}

#[derive(Template)]
#[template(path = "site/error.html")]
struct ErrorPage {
    css: &'static str,
    status: u16,
    title: &'static str,
    message: String,
}

/// An [`AppError`] shown as an HTML page with its status.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if let AppError::Internal(err) = &self.0 {
            tracing::error!(error = ?err, "internal error on an admin page");
        }
        let title = match status.as_u16() {
            400 => "That did not work",
            401 => "Sign in again",
            403 => "Not allowed",
            404 => "Not found",
            409 => "Conflict",
            413 => "Too large",
            429 => "Too many attempts",
            503 => "Unavailable",
            _ => "Server error",
        };
        let page = ErrorPage {
            css: stylesheet_url(),
            status: status.as_u16(),
            title,
            message: describe(&self.0),
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, "error").into_response(),
        };
        if let AppError::RateLimited { retry_after_secs } = self.0 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        response
    }
}

/// Unknown `/admin/...` paths (signed-in only, so they reveal nothing).
pub async fn not_found() -> PageError {
    PageError(AppError::not_found("page"))
}

/// `axum::extract::Query` whose rejection is an HTML error page.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, PageError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| PageError(AppError::from(e)))?;
        Ok(PageQuery(v))
    }
}

/// `axum::Form` whose rejection is an HTML error page.
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, PageError> {
        let axum::Form(v) = axum::Form::<T>::from_request(req, state)
            .await
            .map_err(|e| PageError(AppError::from(e)))?;
        Ok(PageForm(v))
    }
}

/// A UUID from a path segment; anything else is a 404 (like an unknown id).
pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(raw).map_err(|_| PageError(AppError::not_found(what)))
}

/// An empty form field as `None`, others trimmed.
pub fn non_empty(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// `2026-03-15 14:03 UTC`; a dash for 0, the time of rows created by the
/// first migration (the `default` tenant, its `admin` role).
pub fn time(ts: i64) -> String {
    if ts <= 0 {
        return "—".into();
    }
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// An optional time, or a dash.
pub fn time_or_dash(ts: Option<i64>) -> String {
    ts.map(time).unwrap_or_else(|| "—".into())
}

/// A span in the largest fitting unit: `45 s`, `12 min`, `3 h`, `9 d`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..86_400 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// `3 h ago`, `just now`, or `in 5 min` for a future time.
pub fn relative(now: i64, ts: i64) -> String {
    if (0..60).contains(&(now - ts)) {
        "just now".into()
    } else if ts <= now {
        format!("{} ago", duration(now - ts))
    } else {
        format!("in {}", duration(ts - now))
    }
}

/// A shortened UUID for tables (the full one is in the link and title).
pub fn short_id(id: &uuid::Uuid) -> String {
    id.to_string().chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_durations() {
        assert_eq!(time(1_795_430_000), "2026-11-23 10:33 UTC");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(7_200), "2 h");
        assert_eq!(duration(3 * 86_400 + 5), "3 d");
        assert_eq!(relative(100, 40), "1 min ago");
        assert_eq!(relative(100, 70), "just now");
        assert_eq!(time(0), "—");
        assert_eq!(relative(100, 400), "in 5 min");
    }

    #[test]
    fn describes_errors_for_people() {
        assert_eq!(describe(&AppError::not_found("user")), "User not found.");
        assert_eq!(
            describe(&AppError::forbidden(ErrorCode::Forbidden, "Done already.")),
            "Done already."
        );
        let v = AppError::validation("permissions", "\"x\" is bad");
        assert_eq!(describe(&v), "permissions: \"x\" is bad");
        assert!(describe(&AppError::internal(anyhow::anyhow!("secret cause"))).contains("server"));
    }

    #[test]
    fn the_stylesheet_url_carries_a_hash() {
        assert!(stylesheet_url().starts_with("/admin/static/admin.css?v="));
        assert_eq!(stylesheet_url().len(), STYLESHEET_PATH.len() + 3 + 12);
    }
}
