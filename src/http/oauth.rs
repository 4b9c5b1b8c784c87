//! The OpenID Connect protocol endpoints: `GET /oauth/authorize` (and the
//! consent page's `POST /consent`), `GET|POST /oauth/userinfo`,
//! `POST /oauth/revoke` and `GET /oauth/logout`. The token endpoint stays
//! `POST /v1/auth/token` (`http::api::auth::token`). Each handler parses,
//! calls one use case of [`crate::service::oidc`], and answers.
//!
//! The browser-facing ones (authorize, consent, logout) get the hosted
//! pages' headers (CSP, no framing, no caching); the consent POST is
//! refused when Fetch Metadata says another site sent it, and carries the
//! SSO session's CSRF token, which the use case checks.

use askama::Template;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::domain::oauth::AuthorizeQuery;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::{ClientMeta, JsonOrForm, bearer};
use crate::http::hosted::cookie;
use crate::http::hosted::page::{Frame, HostedError, HostedTenant};
use crate::secret::Secret;
use crate::service::oidc::{Authorized, ClientAuth, ConsentDecision, ConsentPrompt, LoggedOut, LogoutPrompt};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/consent", post(consent))
        .route("/oauth/logout", get(logout).post(logout_confirmed))
        .layer(axum::middleware::from_fn(page_headers));
    Router::new()
        .merge(pages)
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .route("/oauth/revoke", post(revoke))
}

/// The hosted pages' headers on every browser-facing answer, and Fetch
/// Metadata on the consent POST.
async fn page_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == axum::http::Method::POST
        && request
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site != "same-origin" && site != "none")
    {
        return AppError::forbidden(ErrorCode::CrossSite, "cross-site form posts are refused").into_response();
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::http::hosted::page::CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[derive(Template)]
#[template(path = "hosted/consent.html")]
struct ConsentPage {
    f: Frame,
    client_name: String,
    scopes: Vec<String>,
    csrf: String,
    return_to: String,
}

#[derive(Template)]
#[template(path = "hosted/logout_confirm.html")]
struct LogoutConfirmPage {
    f: Frame,
    csrf: String,
    id_token_hint: String,
    client_id: String,
    post_logout_redirect_uri: String,
    state: String,
}

#[derive(Template)]
#[template(path = "hosted/oauth_error.html")]
struct ErrorPage {
    f: Frame,
    message: &'static str,
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => AppError::internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page("The application's address cannot be used."),
    }
}

fn error_page(message: &'static str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        &ErrorPage {
            f: Frame::plain("Cannot continue"),
            message,
        },
    )
}

/// What a scope lets the application do, in words for the consent page.
fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account id)".into(),
        "profile" => "See your name".into(),
        "email" => "See your email address".into(),
        "phone" => "See your phone number".into(),
        "offline_access" => "Keep access while you are not using it".into(),
        "roles" => "See your roles".into(),
        "tenant" => "See which organisation your account belongs to".into(),
        other => format!("Use \u{201c}{other}\u{201d}"),
    }
}

async fn answer(state: &AppState, outcome: Authorized) -> Response {
    match outcome {
        Authorized::ErrorPage(message) => error_page(message),
        Authorized::Redirect(location) => see_other(&location),
        Authorized::Consent(prompt) => consent_page(state, *prompt).await,
    }
}

async fn consent_page(state: &AppState, prompt: ConsentPrompt) -> Response {
    // The page wears the tenant's branding.
    let tenant = match HostedTenant::load(state, prompt.tenant).await {
        Ok(tenant) => tenant,
        Err(e) => return HostedError(e).into_response(),
    };
    let page = ConsentPage {
        f: Frame::new(&tenant, format!("Allow {}?", prompt.client_name)),
        client_name: prompt.client_name,
        scopes: prompt.scopes.iter().map(|s| describe(s)).collect(),
        csrf: prompt.csrf,
        return_to: prompt.return_to,
    };
    html(StatusCode::OK, &page)
}

/// `GET /oauth/authorize`: the authorization request (RFC 6749 4.1.1).
async fn authorize(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
) -> Response {
    let raw = raw.unwrap_or_default();
    // A parameter given twice, or not UTF-8, fails here: a page, since the
    // client is not validated yet.
    let Ok(query) = serde_urlencoded::from_str::<AuthorizeQuery>(&raw) else {
        return error_page("The request is malformed (a parameter is repeated or not readable).");
    };
    let sso = cookie::read(&state, &headers);
    match state
        .oidc
        .authorize(&query, &raw, sso, ConsentDecision::Ask, None, &meta)
        .await
    {
        Ok(outcome) => answer(&state, outcome).await,
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    csrf: String,
    return_to: String,
    decision: String,
    remember: Option<String>,
}

/// `POST /consent`: the user's answer on the consent page.
async fn consent(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    form: Result<axum::Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return error_page("The form is malformed.");
    };
    let Some(raw) = form.return_to.strip_prefix("/oauth/authorize?") else {
        return error_page("The form is malformed.");
    };
    let Ok(query) = serde_urlencoded::from_str::<AuthorizeQuery>(raw) else {
        return error_page("The form is malformed.");
    };
    let decision = match form.decision.as_str() {
        "allow" => ConsentDecision::Allow {
            remember: form.remember.is_some(),
        },
        "deny" => ConsentDecision::Deny,
        _ => return error_page("The form is malformed."),
    };
    let sso = cookie::read(&state, &headers);
    match state
        .oidc
        .authorize(&query, raw, sso, decision, Some(&form.csrf), &meta)
        .await
    {
        Ok(outcome) => answer(&state, outcome).await,
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /oauth/userinfo` (OpenID Connect Core 5.3) with the bearer
/// access token of a client session granted `openid`.
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let token = bearer(&headers).ok_or_else(AppError::invalid_token)?;
    let principal = state.sessions.authenticate(token).await?;
    let body = state.oidc.userinfo(&principal).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

/// The client authentication of a token or revocation request:
/// `client_secret_basic` (HTTP Basic of the form-urlencoded id and secret,
/// RFC 6749 2.3.1), `client_secret_post`, or `none` (a public client's
/// `client_id` in the body). Two methods at once are refused (2.3).
pub fn client_auth(
    headers: &HeaderMap,
    client_id: Option<&str>,
    client_secret: Option<&Secret>,
) -> Result<ClientAuth, AppError> {
    let invalid_request = |d: &str| AppError::OAuth {
        status: StatusCode::BAD_REQUEST,
        code: ErrorCode::InvalidRequest,
        description: d.to_string(),
    };
    match crate::http::extract::basic_credentials(headers) {
        Some(basic) => {
            if client_secret.is_some() {
                return Err(invalid_request("use one client authentication method"));
            }
            let Some((id, secret)) = basic else {
                return Err(basic_failure());
            };
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
            };
            let (Ok(id), Ok(secret)) = (decode(&id), decode(&secret)) else {
                return Err(basic_failure());
            };
            if client_id.is_some_and(|c| c != id) {
                return Err(invalid_request("client_id differs from the authenticated client"));
            }
            Ok(ClientAuth {
                client_id: id,
                secret: Some(Secret::new(secret)),
                basic: true,
            })
        }
        None => {
            let client_id = client_id
                .filter(|c| !c.is_empty())
                .ok_or_else(crate::service::oidc::invalid_client)?;
            Ok(ClientAuth {
                client_id: client_id.to_string(),
                secret: client_secret.cloned(),
                basic: false,
            })
        }
    }
}

/// A failed HTTP Basic client authentication: 401 `invalid_client` with
/// `WWW-Authenticate: Basic` (RFC 6749 5.2).
pub fn basic_failure() -> AppError {
    crate::service::oidc::invalid_client()
}

/// Adds `WWW-Authenticate: Basic` to a 401 answered to a client that
/// authenticated with HTTP Basic.
pub fn with_basic_challenge(mut response: Response, basic: bool) -> Response {
    if basic && response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"forge\""),
        );
    }
    response
}

#[derive(Deserialize)]
struct RevokeRequest {
    token: String,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
}

/// `POST /oauth/revoke` (RFC 7009): 200 whatever the token was, once the
/// client authenticated.
async fn revoke(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    body: Result<JsonOrForm<RevokeRequest>, AppError>,
) -> Response {
    let basic = crate::http::extract::basic_credentials(&headers).is_some();
    let result = async {
        let JsonOrForm(req) = body.map_err(|_| AppError::OAuth {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::InvalidRequest,
            description: "the request is missing a parameter or is malformed".into(),
        })?;
        let auth = client_auth(&headers, req.client_id.as_deref(), req.client_secret.as_ref())?;
        state.oidc.revoke(&auth, &req.token, &meta).await
    }
    .await;
    let response = match result {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(e) => e.into_response(),
    };
    with_basic_challenge(response, basic)
}

#[derive(Deserialize)]
struct LogoutQuery {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// The confirmation form's fields: the request's parameters, carried
/// through, and the SSO session's CSRF token.
#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    query: LogoutQuery,
}

/// `GET /oauth/logout` (RP-Initiated Logout 1.0).
async fn logout(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Ok(query) = serde_urlencoded::from_str::<LogoutQuery>(raw.as_deref().unwrap_or_default()) else {
        return error_page("The request is malformed (a parameter is repeated or not readable).");
    };
    end_sessions(&state, &meta, &headers, query, None).await
}

/// `POST /oauth/logout`: the confirmation page's form (same-origin only,
/// by Fetch Metadata; the CSRF token is checked by the use case).
async fn logout_confirmed(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    form: Result<axum::Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return error_page("The form is malformed.");
    };
    end_sessions(&state, &meta, &headers, form.query, Some(&form.csrf)).await
}

async fn end_sessions(
    state: &AppState,
    meta: &crate::service::RequestMeta,
    headers: &HeaderMap,
    query: LogoutQuery,
    csrf: Option<&str>,
) -> Response {
    let sso = cookie::read(state, headers);
    let outcome = state
        .oidc
        .logout(
            query.id_token_hint.as_deref(),
            query.client_id.as_deref(),
            query.post_logout_redirect_uri.as_deref(),
            query.state.as_deref(),
            sso,
            csrf,
            meta,
        )
        .await;
    let mut response = match outcome {
        Ok(LoggedOut::Redirect(location)) => see_other(&location),
        Ok(LoggedOut::Page(tenant)) => {
            let location = match tenant {
                Some(slug) => format!(
                    "/logged-out?{}",
                    serde_urlencoded::to_string([("tenant", slug)]).unwrap_or_default()
                ),
                None => "/logged-out".to_string(),
            };
            see_other(&location)
        }
        Ok(LoggedOut::Confirm(prompt)) => {
            let LogoutPrompt { tenant, csrf } = *prompt;
            let tenant = match HostedTenant::load(state, tenant).await {
                Ok(tenant) => tenant,
                Err(e) => return HostedError(e).into_response(),
            };
            let f = Frame::new(&tenant, format!("Sign out of {}?", tenant.brand.name));
            return html(
                StatusCode::OK,
                &LogoutConfirmPage {
                    f,
                    csrf,
                    id_token_hint: query.id_token_hint.unwrap_or_default(),
                    client_id: query.client_id.unwrap_or_default(),
                    post_logout_redirect_uri: query.post_logout_redirect_uri.unwrap_or_default(),
                    state: query.state.unwrap_or_default(),
                },
            );
        }
        Err(e) => return HostedError(e).into_response(),
    };
    response.headers_mut().append(header::SET_COOKIE, cookie::clear(state));
    response
}
