//! One-time codes, email verification and password recovery endpoints.
//! Requests naming an address always get the same 202 body.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::{SignInResponse, UserView};
use crate::domain::{Email, Identifier, Phone};
use crate::error::{AppError, AppResult, ErrorBody, ErrorCode};
use crate::http::extract::{Auth, ClientMeta, CurrentTenant, Json, MaybeAuth, Query};
use crate::notify::OutboxEntry;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::IdentifierKind;

/// The one answer to every request that may send a message.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub status: &'static str,
    pub message: &'static str,
}

fn accepted() -> (StatusCode, axum::Json<Accepted>) {
    (
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted",
            message: "if the address can receive messages, a code is on its way",
        }),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerifyRequest {
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = String)]
    pub code: Secret,
}

fn identifier(email: Option<&str>, phone: Option<&str>) -> AppResult<Identifier> {
    match (email, phone) {
        (Some(e), None) => Ok(Identifier::Email(
            Email::parse(e).map_err(|e| AppError::validation("email", e))?,
        )),
        (None, Some(p)) => Ok(Identifier::Phone(
            Phone::parse(p).map_err(|e| AppError::validation("phone", e))?,
        )),
        _ => Err(AppError::validation("email", "give either email or phone")),
    }
}

fn email(value: &str) -> AppResult<Email> {
    Email::parse(value).map_err(|e| AppError::validation("email", e))
}

/// Send a one-time sign-in code to a phone (SMS) or email address.
#[utoipa::path(post, path = "/v1/auth/otp", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = OtpRequest,
    responses(
        (status = 202, description = "always the same, whether or not the account exists", body = Accepted),
        (status = 400, description = "invalid phone or email", body = ErrorBody),
        (status = 429, description = "cooldown or budget exhausted", body = ErrorBody),
    ))]
pub async fn request_otp(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<OtpRequest>,
) -> AppResult<impl IntoResponse> {
    let identifier = identifier(req.email.as_deref(), req.phone.as_deref())?;
    state.otp.request(&tenant, &identifier, &meta).await?;
    Ok(accepted())
}

/// Exchange a one-time code for tokens; creates the account on first use when sign-up is open.
#[utoipa::path(post, path = "/v1/auth/otp/verify", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = OtpVerifyRequest,
    responses(
        (status = 200, description = "signed in (`mfa_enrollment_due` while the tenant's second-factor policy gives a grace), or, for a user with a second factor, `{mfa_required, mfa_token, factors}`, or, for a user without one past the policy's grace, `{mfa_enrollment_required, enrollment_token}`", body = SignInResponse),
        (status = 401, description = "invalid_otp", body = ErrorBody),
        (status = 429, description = "code burned after too many wrong tries", body = ErrorBody),
    ))]
pub async fn verify_otp(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<OtpVerifyRequest>,
) -> AppResult<Response> {
    let identifier = identifier(req.email.as_deref(), req.phone.as_deref())?;
    let outcome = state
        .otp
        .verify(&tenant, &identifier, req.code.expose().trim(), &meta)
        .await?;
    Ok(crate::http::api::auth::sign_in_answer(&state, outcome, &tenant))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    /// Required without a bearer token.
    pub email: Option<String>,
}

/// Parses an optional JSON body: empty or `null` means `T::default()`.
fn optional_json<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> AppResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // `null` is "no body" too, as the document's nullable schema says.
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|_| {
            AppError::bad_request(
                ErrorCode::InvalidRequest,
                "the body is not valid JSON for this endpoint",
            )
        })
}

/// Send an email verification code: to the caller's email with a bearer, or to `{email}`.
#[utoipa::path(post, path = "/v1/auth/email/verify/request", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body(content = Option<VerificationRequest>),
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn request_verification(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    MaybeAuth(principal): MaybeAuth,
    ClientMeta(meta): ClientMeta,
    body: axum::body::Bytes,
) -> AppResult<impl IntoResponse> {
    let req: VerificationRequest = optional_json(&body)?;
    // An address is checked even where the bearer makes it unneeded: bad
    // input is refused, never silently ignored.
    let address = req.email.as_deref().map(email).transpose()?;
    match (principal, address) {
        (Some(p), _) => state.recovery.request_own_verification(&p, &meta).await?,
        (None, Some(e)) => state.recovery.request_verification(&tenant, &e, &meta).await?,
        (None, None) => return Err(AppError::invalid_token()),
    }
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// Required without a bearer token.
    pub email: Option<String>,
    #[schema(value_type = String)]
    pub code: Secret,
    /// Without a bearer token: the password the account was signed up with.
    /// The first proof of an address drops a password the prover does not
    /// show (it may have been set by someone else: pre-hijacking).
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<Secret>,
}

/// Confirm an email address. With a bearer: 200 with the user. With `{email, code}`: 200 with tokens.
#[utoipa::path(post, path = "/v1/auth/email/verify", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "the user (with a bearer) or a token response (without; `mfa_enrollment_due` in it while the tenant's second-factor policy gives a grace; `{mfa_required, mfa_token, factors}` for a user with a second factor; `{mfa_enrollment_required, enrollment_token}` for a user without one past the policy's grace)", body = UserView),
        (status = 400, description = "invalid_code", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []), ()))]
pub async fn verify_email(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    MaybeAuth(principal): MaybeAuth,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<VerifyEmailRequest>,
) -> AppResult<Response> {
    let code = req.code.expose().trim();
    let address = req.email.as_deref().map(email).transpose()?;
    match (principal, address) {
        (Some(p), _) => {
            // A pending email change takes the code first; else the code
            // verifies the current address.
            let user = match state.address.complete(&p, IdentifierKind::Email, code, &meta).await? {
                Some(user) => user,
                None => state.recovery.confirm_own(&p, code, &meta).await?,
            };
            Ok(axum::Json(UserView::new(user, &p.tenant)).into_response())
        }
        (None, Some(e)) => {
            let outcome = state
                .recovery
                .confirm_and_sign_in(&tenant, &e, code, req.password.as_ref(), &meta)
                .await?;
            Ok(crate::http::api::auth::sign_in_answer(&state, outcome, &tenant))
        }
        (None, None) => Err(AppError::validation("email", "is required without a bearer token")),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    #[schema(value_type = String)]
    pub code: Secret,
}

/// Confirm a pending phone change with the code sent to the new number.
#[utoipa::path(post, path = "/v1/auth/phone/verify", tag = "identity",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "the user with the new phone, verified", body = UserView),
        (status = 400, description = "invalid_code (also when no change is pending)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "phone_taken", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn verify_phone(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CodeRequest>,
) -> AppResult<axum::Json<UserView>> {
    let user = state
        .address
        .complete(&principal, IdentifierKind::Phone, req.code.expose().trim(), &meta)
        .await?
        .ok_or_else(|| AppError::bad_request(ErrorCode::InvalidCode, "the code is wrong or expired"))?;
    Ok(axum::Json(UserView::new(user, &principal.tenant)))
}

/// Send a one-time code to the caller's verified address, to prove it is them before changing
/// how they sign in (accounts without a password).
#[utoipa::path(post, path = "/v1/auth/reauthenticate", tag = "identity",
    responses(
        (status = 202, body = Accepted),
        (status = 400, description = "no_proven_address", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn reauthenticate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
) -> AppResult<impl IntoResponse> {
    state.address.send_reauthentication(&principal, &meta).await?;
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    pub email: String,
}

/// Send a password reset code.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = ForgotRequest,
    responses((status = 202, description = "always the same", body = Accepted), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn forgot(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<ForgotRequest>,
) -> AppResult<impl IntoResponse> {
    state.recovery.forgot(&tenant, &email(&req.email)?, &meta).await?;
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub code: Secret,
    #[schema(value_type = String, format = Password)]
    pub new_password: Secret,
}

/// Set a new password with a reset code; every session of the user ends.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = ResetRequest,
    responses((status = 204), (status = 400, description = "invalid_code or weak password", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn reset(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<ResetRequest>,
) -> AppResult<StatusCode> {
    let email = email(&req.email)?;
    state
        .recovery
        .reset(&tenant, &email, req.code.expose().trim(), &req.new_password, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: Secret,
    #[schema(value_type = String, format = Password)]
    pub new_password: Secret,
}

/// Change the password; every other session ends.
#[utoipa::path(post, path = "/v1/auth/password/change", tag = "identity",
    request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "mfa_required: the user has a second factor and the token is below aal 2", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn change(
    State(state): State<AppState>,
    crate::http::extract::Auth(principal): crate::http::extract::Auth,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    state
        .recovery
        .change(&principal, &req.current_password, &req.new_password, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct OutboxQuery {
    /// An email address or phone number, as sent.
    pub to: String,
}

/// Development only (`dev.outbox = true` with `notify.channel = "memory"`):
/// the messages sent to an address, newest first, with their codes.
#[utoipa::path(get, path = "/v1/dev/outbox", tag = "development",
    params(OutboxQuery),
    responses((status = 200, description = "`[{to, channel, kind, code, subject, body, html?, at}]`"), (status = 404, description = "the dev outbox is off", body = ErrorBody)))]
pub async fn dev_outbox(
    State(state): State<AppState>,
    Query(q): Query<OutboxQuery>,
) -> AppResult<axum::Json<Vec<OutboxEntry>>> {
    let memory = state
        .config
        .dev
        .outbox
        .then(|| state.notifier.memory())
        .flatten()
        .ok_or_else(|| AppError::not_found("route"))?;
    let to = match Identifier::parse(&q.to) {
        Ok(id) => id.as_str().to_string(),
        Err(_) => q.to.trim().to_string(),
    };
    Ok(axum::Json(memory.messages_to(&to)))
}
