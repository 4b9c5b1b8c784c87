//! Sign-in through upstream providers (`/v1/auth/providers*`,
//! `/v1/auth/exchange`) and the caller's linked identities
//! (`/v1/users/me/identities*`). The rules are in `service::federation`.
//!
//! The start and callback endpoints are for browsers, which navigate to
//! them and cannot send headers: the tenant may be named with `?tenant=`
//! as well as `X-Forge-Tenant`, and their answers are redirects (or, for a
//! flow that cannot say where to go, an HTML page).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::SignInResponse;
use super::providers::IdentityView;
use crate::domain::TenantSlug;
use crate::domain::providers::Provider;
use crate::error::{AppError, AppResult, ErrorBody, ErrorCode};
use crate::http::extract::{Auth, ClientMeta, Json, Query};
use crate::http::hosted;
use crate::service::federation::{CallbackParams, Finished};
use crate::state::AppState;
use crate::store::Tenant;
use crate::upstream::apple;

/// A provider people may sign in with.
#[derive(Serialize, ToSchema)]
pub struct ProviderButton {
    pub id: String,
    pub name: String,
    /// `oidc`, `oauth2`, `github`, `google`, `microsoft`, `gitlab` or `apple`.
    pub kind: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderButtons {
    pub items: Vec<ProviderButton>,
}

impl From<&Provider> for ProviderButton {
    fn from(p: &Provider) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            kind: p.kind.as_str().to_owned(),
        }
    }
}

/// `?tenant=` for endpoints browsers navigate to.
#[derive(Deserialize, IntoParams)]
pub struct TenantParam {
    /// Tenant slug (else `X-Forge-Tenant`, else `default`).
    pub tenant: Option<String>,
}

/// The tenant slug a browser-facing request names: `?tenant=`, else the
/// `X-Forge-Tenant` header; `None` when it names none. One that is no slug:
/// 404 `unknown_tenant`.
fn named_tenant(headers: &HeaderMap, param: Option<&str>) -> AppResult<Option<TenantSlug>> {
    let header = headers
        .get(crate::http::extract::TENANT_HEADER)
        .and_then(|v| v.to_str().ok());
    param
        .or(header)
        .map(|s| TenantSlug::parse(s.trim()).map_err(|_| unknown_tenant()))
        .transpose()
}

fn unknown_tenant() -> AppError {
    AppError::NotFound {
        code: ErrorCode::UnknownTenant,
        message: "no such tenant".into(),
    }
}

/// The tenant a browser-facing request names ([`named_tenant`]), else
/// `default`. Unknown: 404 `unknown_tenant`.
async fn tenant_of(state: &AppState, headers: &HeaderMap, param: Option<&str>) -> AppResult<Tenant> {
    let slug = named_tenant(headers, param)?.unwrap_or_else(TenantSlug::default_tenant);
    state.sessions.tenant(slug.as_str()).await?.ok_or_else(unknown_tenant)
}

/// List the upstream providers enabled for the tenant.
#[utoipa::path(get, path = "/v1/auth/providers", tag = "federation",
    params(TenantParam, ("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    responses((status = 200, body = ProviderButtons), (status = 404, body = ErrorBody)))]
pub async fn list_enabled(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(param): Query<TenantParam>,
) -> AppResult<axum::Json<ProviderButtons>> {
    let tenant = tenant_of(&state, &headers, param.tenant.as_deref()).await?;
    let items = state.federation.enabled(&tenant).await?;
    Ok(axum::Json(ProviderButtons {
        items: items.iter().map(ProviderButton::from).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct StartParams {
    /// Where the answer goes (`?code=` or `?error=`): an allowed origin
    /// (`server.allowed_redirects`).
    pub redirect_to: Option<String>,
    /// `S256` PKCE challenge of a verifier the app keeps for `POST /v1/auth/exchange`.
    pub code_challenge: Option<String>,
    /// Tenant slug (else `X-Forge-Tenant`, else `default`).
    pub tenant: Option<String>,
    /// From `GET /v1/users/me/identities/{provider}/link`: starts linking instead of signing in.
    pub link_ticket: Option<String>,
}

/// Start signing in with an upstream provider: redirects the browser there.
#[utoipa::path(get, path = "/v1/auth/providers/{id}/start", tag = "federation",
    params(("id" = String, Path, description = "provider id"), StartParams),
    responses(
        (status = 302, description = "to the provider; sets the flow cookie that binds the callback to this browser"),
        (status = 400, description = "code_challenge missing or malformed", body = ErrorBody),
        (status = 401, description = "link_ticket unknown, expired or used", body = ErrorBody),
        (status = 403, description = "redirect_to is not on an allowed origin (server.allowed_redirects)", body = ErrorBody),
        (status = 404, description = "no such provider enabled in the tenant", body = ErrorBody),
        (status = 503, description = "the provider cannot be reached", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<StartParams>,
) -> AppResult<Response> {
    let tenant = tenant_of(&state, &headers, params.tenant.as_deref()).await?;
    state.federation.ensure_enabled(&tenant, &id).await?;
    let purpose = match params.link_ticket.as_deref() {
        Some(ticket) => state.federation.spend_ticket(&tenant, &id, ticket).await?,
        None => state
            .federation
            .api_purpose(params.redirect_to.as_deref(), params.code_challenge.as_deref())?,
    };
    let started = state.federation.start(&tenant, &id, purpose).await?;
    Ok(hosted::federation::to_provider(&state, started))
}

/// What a provider sends back, in the query (or, for `response_mode=form_post`, the body).
#[derive(Deserialize, IntoParams, ToSchema, Default)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Not needed: the flow knows its tenant. A tenant named here (or in
    /// `X-Forge-Tenant`) must be the flow's, or the flow fails with
    /// `invalid_request`.
    pub tenant: Option<String>,
}

/// The provider's answer (registered with the provider as the redirect URI).
#[utoipa::path(get, path = "/v1/auth/providers/{id}/callback", tag = "federation",
    params(("id" = String, Path, description = "provider id"), CallbackQuery),
    responses(
        (status = 302, description = "the API flow: to redirect_to with `code` (single use, 60 s) or `error`; a link: with `linked` or `error`"),
        (status = 303, description = "the hosted pages: signed in, on to return_to; or, for a flow that expired, was replayed or started in another browser, to the sign-in page with `error`"),
        (status = 404, description = "`unknown_tenant`: the tenant named is no tenant slug", body = ErrorBody),
    ))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let params = CallbackParams {
        code: query.code,
        state: query.state,
        error: query.error,
        tenant: None,
        user_name: None,
    };
    finish_callback(&state, &headers, &meta, &id, query.tenant.as_deref(), params).await
}

/// A provider's answer as a form post: the same fields, and a state, which
/// every answer to forge's request carries.
#[derive(Deserialize, ToSchema)]
pub struct CallbackForm {
    pub code: Option<String>,
    pub state: String,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Apple, first authorization only: JSON `{"name": {"firstName",
    /// "lastName"}, "email"}`. Only the name is read, for an Apple
    /// identity whose ID token has none (the field is unsigned; its email
    /// is never used); a field over 2 KiB, malformed, or with control
    /// characters in the name is ignored.
    pub user: Option<String>,
}

/// The provider's answer as a form post (Apple's `response_mode=form_post`).
#[utoipa::path(post, path = "/v1/auth/providers/{id}/callback", tag = "federation",
    params(("id" = String, Path, description = "provider id"),
        ("tenant" = Option<String>, Query, description = "as the GET callback's")),
    request_body(content = CallbackForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 302, description = "as the GET callback"),
        (status = 303, description = "as the GET callback"),
        (status = 400, description = "a body that is not such a form", body = ErrorBody),
        (status = 404, description = "as the GET callback", body = ErrorBody),
    ))]
pub async fn callback_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Query(param): Query<TenantParam>,
    body: axum::body::Bytes,
) -> Response {
    let Some(form) = parse_form(&body) else {
        return AppError::bad_request(
            ErrorCode::InvalidRequest,
            "the body is not a form of the provider's answer",
        )
        .into_response();
    };
    let params = CallbackParams {
        code: form.code,
        state: Some(form.state),
        error: form.error,
        tenant: None,
        user_name: form.user.as_deref().and_then(apple::user_name),
    };
    finish_callback(&state, &headers, &meta, &id, param.tenant.as_deref(), params).await
}

/// The form of a provider's answer: `name=value` pairs naming a state (a
/// piece without `=` is no form, though `serde_urlencoded` would read it as
/// an empty field). Other fields (Apple adds `id_token`) are ignored.
fn parse_form(body: &[u8]) -> Option<CallbackForm> {
    let pairs_only = body
        .split(|b| *b == b'&')
        .filter(|piece| !piece.is_empty())
        .all(|piece| piece.contains(&b'='));
    if !pairs_only {
        return None;
    }
    serde_urlencoded::from_bytes(body).ok()
}

/// Finishes a callback; `tenant` is the `?tenant=` it was given, which with
/// the header fills `params.tenant`.
async fn finish_callback(
    state: &AppState,
    headers: &HeaderMap,
    meta: &crate::service::RequestMeta,
    id: &str,
    tenant: Option<&str>,
    mut params: CallbackParams,
) -> Response {
    // A named tenant that cannot exist is answered as on every other
    // browser-facing endpoint, before any flow is touched.
    params.tenant = match named_tenant(headers, tenant) {
        Ok(named) => named,
        Err(e) => return e.into_response(),
    };
    let cookie = hosted::federation::read_flow(state, headers);
    let outcome = state.federation.callback(id, params, cookie, meta).await;
    let response = match outcome {
        Ok(Finished::Redirect(url)) => found(url.as_str()),
        Ok(Finished::Hosted {
            tenant,
            user,
            return_to,
        }) => hosted::federation::signed_in(state, headers, meta, tenant, user, &return_to).await,
        Err(failed) => match state.federation.failure_redirect(&failed) {
            Some(url) => found(url.as_str()),
            None => hosted::federation::failed(state, &failed).await,
        },
    };
    hosted::federation::drop_flow_cookie(state, response)
}

fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The `code` the callback added to `redirect_to`.
    pub code: String,
    /// The PKCE verifier of the `code_challenge` given at the start.
    pub code_verifier: String,
}

/// Trade the code of an upstream sign-in for tokens.
#[utoipa::path(post, path = "/v1/auth/exchange", tag = "federation",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "signed in (amr `fed`), or the second step for a user with a factor", body = SignInResponse),
        (status = 400, description = "invalid_code: the code is unknown, expired, used, or the verifier does not match", body = ErrorBody),
        (status = 403, description = "user_disabled", body = ErrorBody),
    ))]
pub async fn exchange(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<ExchangeRequest>,
) -> AppResult<Response> {
    let (tenant, outcome) = state.federation.exchange(&req.code, &req.code_verifier, &meta).await?;
    Ok(crate::http::api::auth::sign_in_answer(&state, outcome, &tenant))
}

#[derive(Serialize, ToSchema)]
pub struct IdentityList {
    pub items: Vec<IdentityView>,
}

/// The caller's linked upstream identities.
#[utoipa::path(get, path = "/v1/users/me/identities", tag = "federation",
    responses((status = 200, body = IdentityList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn my_identities(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> AppResult<axum::Json<IdentityList>> {
    let items = state.federation.identities(&principal).await?;
    Ok(axum::Json(IdentityList {
        items: items.into_iter().map(IdentityView::from).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct LinkParams {
    /// Where the answer goes (`?linked=PROVIDER` or `?error=`): an allowed origin.
    pub redirect_to: Option<String>,
}

/// The URL to open in the browser to link a provider to the caller's account.
#[derive(Serialize, ToSchema)]
pub struct LinkStart {
    pub url: String,
}

/// Link an upstream identity to the caller's account: 302 to forge's start
/// endpoint with a single-use link ticket (two minutes), which the app opens
/// in the browser; with `Accept: application/json`, 200 `{url}` instead.
#[utoipa::path(get, path = "/v1/users/me/identities/{id}/link", tag = "federation",
    params(("id" = String, Path, description = "provider id (the `{provider}` of the contract)"), LinkParams),
    responses(
        (status = 302, description = "to the start endpoint with a link ticket"),
        (status = 200, description = "with Accept: application/json", body = LinkStart),
        (status = 401, body = ErrorBody),
        (status = 403, description = "redirect_to not on an allowed origin, or mfa_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn link(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(params): Query<LinkParams>,
) -> AppResult<Response> {
    let url = state
        .federation
        .link_ticket(&principal, &provider, params.redirect_to.as_deref())
        .await?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return Ok(axum::Json(LinkStart { url: url.to_string() }).into_response());
    }
    Ok(found(url.as_str()))
}

/// Unlink one of the caller's identities.
#[utoipa::path(delete, path = "/v1/users/me/identities/{id}", tag = "federation",
    params(("id" = String, Path, description = "identity id")),
    responses(
        (status = 204), (status = 401, body = ErrorBody),
        (status = 403, description = "mfa_required", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "last_sign_in_method", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn unlink(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::not_found("identity"))?;
    state.federation.unlink(&principal, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::parse_form;

    #[test]
    fn a_form_is_name_value_pairs_and_other_fields_are_ignored() {
        let q = parse_form(b"code=c&state=s&id_token=t&user=%7B%7D").unwrap();
        assert_eq!((q.code.as_deref(), q.state.as_str()), (Some("c"), "s"));
        assert_eq!(q.user.as_deref(), Some("{}"));
        assert!(parse_form(b"&state=s&").is_some());
    }

    #[test]
    fn a_body_without_a_state_with_a_bare_word_or_a_field_twice_is_no_form() {
        for body in [
            &b""[..],
            b"code=&error=&error_description=",
            b"AAA",
            b"state=s&x",
            b"{\"state\":\"s\"}",
            b"state=a&state=b",
        ] {
            assert!(parse_form(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }
}
