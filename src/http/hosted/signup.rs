//! Becoming and recovering an account on the hosted pages: `/signup`
//! (when the tenant's sign-up policy allows it), `/verify-email` (the
//! emailed code, as `POST /v1/auth/email/verify` does it) and `/reset`
//! (forgot password: the emailed code, then a new password, through
//! `Recovery`). Every form carries the sign-in forms' double-submit token;
//! requests naming an address answer the same whether or not an account
//! exists.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::login::{FormResult, SignInStep, checked, next_step, step, tenant_of};
use super::page::{self, Frame, HostedError, HostedTenant};
use crate::domain::Email;
use crate::domain::settings::SignupMode;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::http::site::login::with_retry_after;
use crate::http::site::{guard, views};
use crate::secret::Secret;
use crate::service::accounts::SignupInput;
use crate::state::AppState;

/// A page with a form and the double-submit token, no script.
macro_rules! form_page {
    ($($page:ty),+) => {
        $(impl SignInStep for $page {
            fn set_csrf(&mut self, token: String) {
                self.csrf = token;
            }
            fn script_frame(&mut self) -> Option<&mut Frame> {
                None
            }
        })+
    };
}

#[derive(Template)]
#[template(path = "hosted/signup.html")]
pub struct SignupPage {
    f: Frame,
    csrf: String,
    return_to: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted/verify_email.html")]
pub struct VerifyPage {
    f: Frame,
    csrf: String,
    return_to: String,
    email: String,
    /// Shown above the form (a sign-up waiting for its proof).
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted/reset.html")]
pub struct ResetPage {
    f: Frame,
    csrf: String,
    email: String,
    /// The code was sent: ask for it and the new password.
    sent: bool,
    error: Option<String>,
}

form_page!(SignupPage, VerifyPage, ResetPage);

#[derive(Deserialize)]
pub struct PageQuery {
    tenant: Option<String>,
    return_to: Option<String>,
    email: Option<String>,
}

/// The sign-up policy lets anyone (or some domains) in.
async fn signup_open(state: &AppState, tenant: &HostedTenant) -> Result<bool, AppError> {
    Ok(!matches!(
        state.settings.signup_policy_of(tenant).await?.mode,
        SignupMode::Closed
    ))
}

fn closed() -> Response {
    HostedError(AppError::forbidden(
        ErrorCode::SignupDisabled,
        "Sign-up is closed here. Ask an administrator for an account.",
    ))
    .into_response()
}

async fn page_tenant(
    state: &AppState,
    query: &Result<Query<PageQuery>, QueryRejection>,
) -> Result<HostedTenant, Response> {
    let slug = query.as_ref().ok().and_then(|Query(q)| q.tenant.clone());
    tenant_of(state, slug.as_deref())
        .await
        .map_err(IntoResponse::into_response)
}

fn query_field(query: &Result<Query<PageQuery>, QueryRejection>, pick: fn(&PageQuery) -> Option<&String>) -> String {
    query
        .as_ref()
        .ok()
        .and_then(|Query(q)| pick(q).cloned())
        .unwrap_or_default()
        .chars()
        .take(254)
        .collect()
}

/// `GET /signup`.
pub async fn signup_form(State(state): State<AppState>, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let tenant = match page_tenant(&state, &query).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match signup_open(&state, &tenant).await {
        Ok(true) => {}
        Ok(false) => return closed(),
        Err(e) => return HostedError(e).into_response(),
    }
    let return_to = page::return_to(query.as_ref().ok().and_then(|Query(q)| q.return_to.as_deref()));
    step(
        &state,
        StatusCode::OK,
        SignupPage {
            f: Frame::new(&tenant, "Create an account"),
            csrf: String::new(),
            return_to,
            email: String::new(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    new_password: String,
}

crate::csrf_forms!(SignupForm, VerifyForm, ResetForm);
super::login::has_tenant!(SignupForm, VerifyForm, ResetForm);

/// `POST /signup`: through the sign-up use case (policy, password rules,
/// budget). A closed tenant is refused (403) like the API.
pub async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<SignupForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status: StatusCode, error: String| {
        step(
            &state,
            status,
            SignupPage {
                f: Frame::new(&tenant, "Create an account"),
                csrf: String::new(),
                return_to: return_to.clone(),
                email: form.email.chars().take(254).collect(),
                error: Some(error),
            },
        )
    };
    let Ok(email) = Email::parse(form.email.trim()) else {
        return retry(StatusCode::BAD_REQUEST, "Enter a valid email address.".into());
    };
    let input = SignupInput {
        email: email.clone(),
        password: Secret::new(form.password.clone()),
        phone: None,
        metadata: serde_json::json!({}),
    };
    match state.sso.sign_up(&tenant, input, &meta).await {
        Ok(Some(outcome)) => next_step(&state, &headers, &tenant, &return_to, outcome).await,
        Ok(None) => step(
            &state,
            StatusCode::OK,
            VerifyPage {
                f: Frame::new(&tenant, "Check your email"),
                csrf: String::new(),
                return_to,
                email: email.to_string(),
                notice: Some(format!("We sent a code to {email}. Enter it to finish signing up.")),
                error: None,
            },
        ),
        Err(AppError::Forbidden {
            code: ErrorCode::SignupDisabled,
            ..
        }) => closed(),
        // An address already taken reads like any refusal of it, so the
        // form does not tell who has an account.
        Err(AppError::Conflict { .. }) => retry(
            StatusCode::CONFLICT,
            "This email address cannot be used to sign up. Sign in instead, or reset your password.".into(),
        ),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, views::describe(&e)), &e)
        }
        Err(e @ (AppError::Validation { .. } | AppError::Forbidden { .. } | AppError::BadRequest { .. })) => {
            retry(e.status(), views::describe(&e))
        }
        Err(e) => HostedError(e).into_response(),
    }
}

/// `GET /verify-email?email=..`: the code form.
pub async fn verify_form(State(state): State<AppState>, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let tenant = match page_tenant(&state, &query).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let return_to = page::return_to(query.as_ref().ok().and_then(|Query(q)| q.return_to.as_deref()));
    step(
        &state,
        StatusCode::OK,
        VerifyPage {
            f: Frame::new(&tenant, "Verify your email"),
            csrf: String::new(),
            return_to,
            email: query_field(&query, |q| q.email.as_ref()),
            notice: None,
            error: None,
        },
    )
}

/// `POST /verify-email`: the emailed code proves the address and signs in
/// (the password, when given, is kept: see `Recovery::confirm_email`).
pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<VerifyForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status: StatusCode, error: String| {
        step(
            &state,
            status,
            VerifyPage {
                f: Frame::new(&tenant, "Verify your email"),
                csrf: String::new(),
                return_to: return_to.clone(),
                email: form.email.chars().take(254).collect(),
                notice: None,
                error: Some(error),
            },
        )
    };
    let Ok(email) = Email::parse(form.email.trim()) else {
        return retry(StatusCode::BAD_REQUEST, "Enter your email address.".into());
    };
    let password = (!form.password.is_empty()).then(|| Secret::new(form.password.clone()));
    match state
        .sso
        .verify_email(
            &state.recovery,
            &tenant,
            &email,
            form.code.trim(),
            password.as_ref(),
            &meta,
        )
        .await
    {
        Ok(outcome) => next_step(&state, &headers, &tenant, &return_to, outcome).await,
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, views::describe(&e)), &e)
        }
        Err(e @ AppError::Forbidden { .. }) => retry(StatusCode::FORBIDDEN, views::describe(&e)),
        Err(AppError::BadRequest { .. } | AppError::Unauthorized { .. } | AppError::Validation { .. }) => retry(
            StatusCode::BAD_REQUEST,
            "Wrong or expired code. Ask for a new one if it keeps failing.".into(),
        ),
        Err(e) => HostedError(e).into_response(),
    }
}

/// `GET /reset`: forgot password, the address form.
pub async fn reset_form(State(state): State<AppState>, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let tenant = match page_tenant(&state, &query).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    step(
        &state,
        StatusCode::OK,
        ResetPage {
            f: Frame::new(&tenant, "Reset your password"),
            csrf: String::new(),
            email: query_field(&query, |q| q.email.as_ref()),
            sent: false,
            error: None,
        },
    )
}

/// `POST /reset`: without a code, sends one (the same answer whether or
/// not the account exists); with a code and a new password, resets
/// (every session of the user ends) and goes to the sign-in page.
pub async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<ResetForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let page = |status: StatusCode, sent: bool, error: Option<String>| {
        step(
            &state,
            status,
            ResetPage {
                f: Frame::new(&tenant, "Reset your password"),
                csrf: String::new(),
                email: form.email.chars().take(254).collect(),
                sent,
                error,
            },
        )
    };
    let Ok(email) = Email::parse(form.email.trim()) else {
        return page(StatusCode::BAD_REQUEST, false, Some("Enter your email address.".into()));
    };
    if form.code.trim().is_empty() {
        return match state.recovery.forgot(&tenant, &email, &meta).await {
            Ok(()) => page(StatusCode::OK, true, None),
            Err(e @ AppError::RateLimited { .. }) => with_retry_after(
                page(StatusCode::TOO_MANY_REQUESTS, false, Some(views::describe(&e))),
                &e,
            ),
            Err(e) => HostedError(e).into_response(),
        };
    }
    let new_password = Secret::new(form.new_password.clone());
    match state
        .recovery
        .reset(&tenant, &email, form.code.trim(), &new_password, &meta)
        .await
    {
        Ok(()) => guard::see_other(&format!(
            "/login?tenant={}&login_hint={}",
            page::urlencode(tenant.slug.as_str()),
            page::urlencode(email.as_str())
        )),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(page(StatusCode::TOO_MANY_REQUESTS, true, Some(views::describe(&e))), &e)
        }
        Err(e @ AppError::Validation { .. }) => page(StatusCode::BAD_REQUEST, true, Some(views::describe(&e))),
        Err(AppError::BadRequest { .. } | AppError::Unauthorized { .. }) => page(
            StatusCode::BAD_REQUEST,
            true,
            Some("Wrong or expired code. Ask for a new one if it keeps failing.".into()),
        ),
        Err(e) => HostedError(e).into_response(),
    }
}
