//! The hosted pages' side of upstream sign-in: the provider buttons'
//! start (`GET /login/provider/{id}`), the answer of a callback whose flow
//! began on these pages (the SSO session, through the same second-factor
//! gate as the password), its failures as the sign-in page with a
//! sentence, and the account page's link and unlink.
//!
//! The flow cookie (see `service::federation::flow`) is
//! `__Host-forge_fed`, `SameSite=None; Secure`: a provider answering with
//! a form post from its own site (Apple's `response_mode=form_post`) must
//! still bring it. It binds nothing but the flow, carries no session, and
//! the callback deletes it. In plain-HTTP development it is `forge_fed`,
//! `SameSite=Lax` (browsers drop `None` without `Secure`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::account::Signed;
use super::login::{login_failure, next_step, tenant_of};
use super::page::{self, HostedError, HostedTenant};
use crate::error::AppError;
use crate::http::extract::ClientMeta;
use crate::http::site::guard;
use crate::service::RequestMeta;
use crate::service::federation::flow::{FLOW_TTL_SECS, Purpose};
use crate::service::federation::{Failed, Started};
use crate::state::AppState;
use crate::store::{Tenant, User};

const FLOW_SECURE_NAME: &str = "__Host-forge_fed";
const FLOW_INSECURE_NAME: &str = "forge_fed";

fn flow_cookie(state: &AppState) -> (&'static str, &'static str) {
    if state.config.admin.insecure_cookies {
        (FLOW_INSECURE_NAME, "Lax")
    } else {
        (FLOW_SECURE_NAME, "None")
    }
}

/// The flow cookie's value, if the request carries one.
pub fn read_flow<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    guard::cookie(headers, flow_cookie(state).0)
}

/// The 302 to the provider, setting the flow cookie.
pub fn to_provider(state: &AppState, started: Started) -> Response {
    let (name, same_site) = flow_cookie(state);
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(started.location.as_str()) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.append(
        header::SET_COOKIE,
        guard::cookie_with(state, name, &started.cookie, "/", FLOW_TTL_SECS as u64, same_site),
    );
    response
}

/// `response` with the flow cookie deleted (every callback ends its flow).
pub fn drop_flow_cookie(state: &AppState, mut response: Response) -> Response {
    let (name, same_site) = flow_cookie(state);
    response.headers_mut().append(
        header::SET_COOKIE,
        guard::cookie_with(state, name, "", "/", 0, same_site),
    );
    response
}

#[derive(Deserialize)]
pub struct StartQuery {
    tenant: Option<String>,
    return_to: Option<String>,
}

/// `GET /login/provider/{id}`: a provider button.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return HostedError(AppError::bad_request(
            crate::error::ErrorCode::InvalidRequest,
            "malformed query",
        ))
        .into_response();
    };
    let tenant = match tenant_of(&state, query.tenant.as_deref()).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let return_to = page::return_to(query.return_to.as_deref());
    let purpose = Purpose::Hosted {
        return_to: return_to.clone(),
    };
    match state.federation.start(&tenant, &id, purpose).await {
        Ok(started) => to_provider(&state, started),
        Err(AppError::Unavailable) => login_failure(
            &state,
            &tenant,
            &return_to,
            StatusCode::SERVICE_UNAVAILABLE,
            "That provider cannot be reached right now. Try again in a moment, or sign in another way.",
        ),
        Err(e) => HostedError(e).into_response(),
    }
}

/// A callback of a hosted flow that proved `user`: the session (or the
/// second step), then `return_to`.
pub async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    meta: &RequestMeta,
    tenant: Tenant,
    user: User,
    return_to: &str,
) -> Response {
    let tenant = match HostedTenant::load(state, tenant).await {
        Ok(t) => t,
        Err(e) => return HostedError(e).into_response(),
    };
    let return_to = page::return_to(Some(return_to));
    match state.sso.sign_in_federated(&tenant, &user, meta).await {
        Ok(outcome) => next_step(state, headers, &tenant, &return_to, outcome).await,
        Err(e) => HostedError(e).into_response(),
    }
}

/// A failed callback that has no redirect of its own to answer with: back
/// to the sign-in page (of the flow's tenant, when known), which says what
/// went wrong from the code alone (`?error=CODE`, see
/// [`failure_text`]), so nothing a provider or a link carries is shown.
pub async fn failed(state: &AppState, failed: &Failed) -> Response {
    let tenant = match failed.tenant_id {
        Some(id) => state.store.tenant_by_id(id).await.ok().flatten(),
        None => None,
    };
    let slug = tenant.map_or_else(|| "default".to_owned(), |t| t.slug.to_string());
    let return_to = match &failed.purpose {
        Some(Purpose::Hosted { return_to }) => return_to.clone(),
        _ => page::ACCOUNT.to_owned(),
    };
    guard::see_other(&format!(
        "{}&error={}",
        page::login_url(&slug, &return_to),
        page::urlencode(failed.code)
    ))
}

/// The sentence the sign-in page shows for an upstream sign-in's failure
/// code; `None` for a code it does not know (then it shows nothing).
pub fn failure_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_request" => "That sign-in expired or was started in another browser. Start again.",
        "access_denied" => "The sign-in was cancelled or refused at the provider.",
        "temporarily_unavailable" => {
            "The provider could not be reached. Try again in a moment, or sign in another way."
        }
        "account_exists" => {
            "An account with this email address already exists. Sign in to it, then link the provider from your account page."
        }
        "identity_taken" => "That account at the provider is already linked to another account here.",
        "user_disabled" => "This account is disabled.",
        "signup_disabled" => "New accounts cannot be created here.",
        "signup_domain_not_allowed" => "New accounts here need an email address of the organisation's own domains.",
        "server_error" => "The provider's answer could not be trusted, so you were not signed in. Try again.",
        _ => return None,
    })
}

/// `POST /account/identities/{provider}/link`: starts linking a provider
/// to the signed-in user; the answer comes back to the account page.
pub async fn link(State(state): State<AppState>, Signed(me): Signed, Path(provider): Path<String>) -> Response {
    let purpose = match state.federation.hosted_link(&me.principal).await {
        Ok(p) => p,
        Err(e) => return HostedError(e).into_response(),
    };
    match state.federation.start(&me.tenant, &provider, purpose).await {
        Ok(started) => {
            let mut response = to_provider(&state, started);
            // After a form post: 303, so the browser GETs the provider.
            *response.status_mut() = StatusCode::SEE_OTHER;
            response
        }
        Err(e) => HostedError(e).into_response(),
    }
}

/// `POST /account/identities/{id}/unlink`.
pub async fn unlink(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return HostedError(AppError::not_found("identity")).into_response();
    };
    match state.federation.unlink(&me.principal, id, &meta).await {
        Ok(()) => guard::see_other(&format!("{}?done=identity-removed", page::ACCOUNT)),
        Err(e) => HostedError(e).into_response(),
    }
}
