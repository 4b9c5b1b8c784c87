//! What every hosted page shares: the tenant's branding, the page frame's
//! data, rendering, the error page, the assets, and the `return_to` rule.
//! The consent page (OpenID Connect) renders inside the same frame:
//! [`Frame`], [`render`], [`with_script`] and the sign-in CSRF helpers of
//! [`super::login`] are its building blocks.

use std::sync::LazyLock;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::{AppError, AppResult};
use crate::http::site::views;
use crate::state::AppState;
use crate::store::Tenant;

/// The hosted stylesheet's path (its link adds `?v=<content hash>`).
pub const STYLESHEET_PATH: &str = "/hosted/static/hosted.css";
const STYLESHEET: &str = include_str!("../../../static/hosted.css");
/// The passkey script (the admin site's, served here too: the admin site
/// may be switched off).
pub const PASSKEY_SCRIPT_PATH: &str = "/hosted/static/passkey.js";
/// The tenant's accent colour as a stylesheet (`?tenant=SLUG`): the CSP
/// allows no inline style, so the colour comes from our own origin.
pub const BRAND_CSS_PATH: &str = "/hosted/brand.css";

static STYLESHEET_URL: LazyLock<String> = LazyLock::new(|| views::versioned(STYLESHEET_PATH, STYLESHEET));
static PASSKEY_SCRIPT_URL: LazyLock<String> =
    LazyLock::new(|| views::versioned(PASSKEY_SCRIPT_PATH, views::PASSKEY_SCRIPT));

/// `GET /hosted/static/hosted.css`.
pub async fn stylesheet() -> Response {
    views::immutable_asset("text/css; charset=utf-8", STYLESHEET)
}

/// `GET /hosted/static/passkey.js`: runs only where a page's CSP names the
/// nonce of its script tag.
pub async fn passkey_script() -> Response {
    views::immutable_asset("text/javascript; charset=utf-8", views::PASSKEY_SCRIPT)
}

/// The CSP of the hosted pages: the admin site's, but images may come from
/// an `https:` logo URL, and no `form-action`: a sign-in or consent form
/// ends in a redirect to the OpenID Connect client (another origin), which
/// browsers check against `form-action` too.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data: https:; \
                       frame-ancestors 'none'; base-uri 'none'";

/// How a tenant presents its hosted pages.
#[derive(Clone, Debug)]
pub struct Brand {
    pub name: String,
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub accent: String,
}

/// The default accent colour (indigo, 4.5:1 or better on white).
pub const DEFAULT_ACCENT: &str = "#4f46e5";

/// The branding of `tenant`'s pages: its `branding` setting
/// ([`crate::service::settings::Settings::branding_of`]; by default the
/// tenant's name, no logo and [`DEFAULT_ACCENT`]). The setting was
/// validated when written (name without control characters, logo
/// `https://`, accent `#rrggbb`); askama escapes name and URL in the page.
pub async fn brand(state: &AppState, tenant: &Tenant) -> AppResult<Brand> {
    let branding = state.settings.branding_of(tenant).await?;
    Ok(Brand {
        name: branding.name,
        logo_url: branding.logo_url,
        accent: branding.accent,
    })
}

/// The tenant of a hosted page with its branding, read once per request.
#[derive(Clone, Debug)]
pub struct HostedTenant {
    pub tenant: Tenant,
    pub brand: Brand,
    /// The upstream providers its people may sign in with (the buttons).
    pub providers: Vec<ProviderLink>,
}

/// An upstream provider's button.
#[derive(Clone, Debug)]
pub struct ProviderLink {
    pub id: String,
    pub name: String,
}

impl HostedTenant {
    /// `tenant` with its branding and providers.
    pub async fn load(state: &AppState, tenant: Tenant) -> AppResult<Self> {
        let brand = brand(state, &tenant).await?;
        let providers = state
            .federation
            .enabled(&tenant)
            .await?
            .into_iter()
            .map(|p| ProviderLink {
                id: p.id.to_string(),
                name: p.name,
            })
            .collect();
        Ok(Self {
            tenant,
            brand,
            providers,
        })
    }
}

impl std::ops::Deref for HostedTenant {
    type Target = Tenant;
    fn deref(&self) -> &Tenant {
        &self.tenant
    }
}

/// The data of the page frame (`templates/hosted/base.html`).
pub struct Frame {
    pub title: String,
    pub brand: Brand,
    /// The tenant's slug, carried in links and forms.
    pub tenant: String,
    pub css: &'static str,
    pub brand_css: String,
    pub script: &'static str,
    /// The nonce of the page's one script tag (empty: no script).
    pub nonce: String,
}

impl Frame {
    pub fn new(tenant: &HostedTenant, title: impl Into<String>) -> Self {
        let slug = tenant.slug.to_string();
        Self {
            title: title.into(),
            brand: tenant.brand.clone(),
            brand_css: format!("{BRAND_CSS_PATH}?tenant={}", urlencode(&slug)),
            tenant: slug,
            css: STYLESHEET_URL.as_str(),
            script: PASSKEY_SCRIPT_URL.as_str(),
            nonce: String::new(),
        }
    }

    /// The frame for a page of an unknown tenant (an error page).
    pub fn plain(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            brand: Brand {
                name: "forge".into(),
                logo_url: None,
                accent: DEFAULT_ACCENT.into(),
            },
            tenant: String::new(),
            css: STYLESHEET_URL.as_str(),
            brand_css: BRAND_CSS_PATH.into(),
            script: PASSKEY_SCRIPT_URL.as_str(),
            nonce: String::new(),
        }
    }

    /// Gives the page a script nonce; [`with_script`] the response with it.
    pub fn allow_script(&mut self) -> String {
        let nonce = views::script_nonce();
        self.nonce = nonce.clone();
        nonce
    }
}

/// Marks `response` as running the one script with `nonce` (the security
/// headers widen its CSP to that script).
pub fn with_script(response: Response, nonce: String) -> Response {
    views::with_script(response, nonce)
}

/// Renders a page with `status`.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => HostedError(AppError::internal(anyhow::anyhow!("template: {e}"))).into_response(),
    }
}

/// `GET /hosted/brand.css?tenant=SLUG`: the accent colour (validated
/// `#rrggbb`, so nothing else can reach the stylesheet).
pub fn brand_css(brand: &Brand) -> Response {
    let accent = if is_colour(&brand.accent) {
        brand.accent.as_str()
    } else {
        DEFAULT_ACCENT
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        format!(":root{{--accent:{accent}}}\n"),
    )
        .into_response()
}

fn is_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Template)]
#[template(path = "hosted/error.html")]
struct ErrorPage {
    f: Frame,
    status: u16,
    message: String,
}

/// An [`AppError`] shown as a hosted HTML page with its status.
#[derive(Debug)]
pub struct HostedError(pub AppError);

impl From<AppError> for HostedError {
    fn from(e: AppError) -> Self {
        HostedError(e)
    }
}

impl IntoResponse for HostedError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if let AppError::Internal(err) = &self.0 {
            tracing::error!(error = ?err, "internal error on a hosted page");
        }
        let title = match status.as_u16() {
            400 => "That did not work",
            401 => "Sign in again",
            403 => "Not allowed",
            404 => "Not found",
            429 => "Too many attempts",
            503 => "Unavailable",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            f: Frame::plain(title),
            status: status.as_u16(),
            message: views::describe(&self.0),
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

/// Where a hosted page may send the browser after it: a same-origin
/// relative path (`/` then not `/` or `\`, no control characters, at most
/// 4096 bytes), else `/account`. So `return_to` is never an open redirect.
pub fn return_to(raw: Option<&str>) -> String {
    let Some(raw) = raw.map(str::trim) else {
        return ACCOUNT.into();
    };
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && !raw.contains('\\')
        && raw.len() <= 4096
        && !raw.chars().any(char::is_control);
    if ok { raw.to_string() } else { ACCOUNT.into() }
}

/// The account page, where a sign-in lands without a `return_to`.
pub const ACCOUNT: &str = "/account";

/// A query-string value, percent-encoded.
pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// `/login?tenant=..&return_to=..`.
pub fn login_url(tenant: &str, return_to: &str) -> String {
    format!("/login?tenant={}&return_to={}", urlencode(tenant), urlencode(return_to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_origin() {
        assert_eq!(return_to(Some("/oauth/authorize?a=b")), "/oauth/authorize?a=b");
        assert_eq!(return_to(Some("/account")), "/account");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "evil",
            "",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(return_to(Some(bad)), "/account", "{bad:?}");
        }
        assert_eq!(return_to(None), "/account");
    }

    #[test]
    fn brand_css_accepts_only_colours() {
        assert!(is_colour("#4f46e5"));
        assert!(!is_colour("red;}body{"));
        assert!(!is_colour("#12345"));
    }
}
