//! Passkeys over HTTP: registering one as a factor
//! (`/v1/users/me/factors/webauthn*`), the options of a passkey as the
//! second step of a sign-in or a step-up (`/v1/auth/mfa/webauthn/options`;
//! the answer goes to `POST /v1/auth/mfa/verify`, see [`super::mfa`]) and
//! passwordless sign-in with a discoverable credential
//! (`/v1/auth/passkey/*`). The rules live in `service::passkey_factors`.
//!
//! Every ceremony is two calls: the options call answers `{request_id,
//! publicKey}` (hand `publicKey` to `navigator.credentials.create/get`,
//! binary fields in base64url), and the finish call sends the browser's
//! `PublicKeyCredential.toJSON()` back as `credential` with the
//! `request_id`, which is single use and lives five minutes. The credential
//! is bounded by the global body limit (`server.max_body_bytes`); the
//! request id is refused at the edge past [`MAX_REQUEST_ID`] characters.
//! With `webauthn.rp_id` unset, passkeys are off and the ceremonies answer
//! 404.
//!
//! Beyond API.md: registration also takes `current_password` or `code` (the
//! same proof a TOTP enrolment asks for) and an `enrollment_token` as the
//! bearer, in which case the 201 answer also holds the token response of
//! the sign-in it completes, as the TOTP confirmation does; the first
//! passkey brings ten recovery codes.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::dto::TokenResponse;
use super::factors::{ConfirmedFactorView, FactorView, StartFactorRequest};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, CurrentTenant, Enroller, Json, MaybeAuth};
use crate::service::passkey_factors::PasskeyOptions;
use crate::state::AppState;

/// The longest `request_id` taken (the server issues 43 characters).
pub const MAX_REQUEST_ID: usize = 128;

/// A ceremony's options: give `publicKey` to the browser, keep `request_id`
/// for the finish call.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOptionsView {
    /// Single use, valid for five minutes.
    pub request_id: String,
    /// The `publicKey` member of `navigator.credentials.create()` or
    /// `.get()` (WebAuthn options in JSON form, binary fields base64url).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: Value,
}

impl IntoResponse for PasskeyOptionsView {
    /// The challenge is for this client only: never cached.
    fn into_response(self) -> Response {
        ([(header::CACHE_CONTROL, "no-store")], axum::Json(self)).into_response()
    }
}

impl From<PasskeyOptions> for PasskeyOptionsView {
    fn from(options: PasskeyOptions) -> Self {
        Self {
            request_id: options.request_id,
            public_key: options.public_key,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishPasskeyRequest {
    /// From the options call.
    #[schema(max_length = 128)]
    pub request_id: String,
    /// Overrides the name given at the options call.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// The browser's `PublicKeyCredential.toJSON()` of
    /// `navigator.credentials.create()`.
    #[schema(value_type = Object)]
    pub credential: Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaPasskeyOptionsRequest {
    /// From the sign-in's `mfa_required` answer. Leave out for a step-up
    /// (send `Authorization: Bearer` instead).
    #[schema(max_length = 128)]
    pub mfa_token: Option<String>,
}

/// Passwordless options take nothing: they name no user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInOptionsRequest {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInRequest {
    /// From `POST /v1/auth/passkey/options`.
    #[schema(max_length = 128)]
    pub request_id: String,
    /// The browser's `PublicKeyCredential.toJSON()` of
    /// `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    pub credential: Value,
}

/// Bounds a request id before any work: longer was never issued.
pub(crate) fn request_id(raw: &str) -> AppResult<&str> {
    if raw.chars().count() > MAX_REQUEST_ID {
        return Err(AppError::validation("request_id", "too long"));
    }
    Ok(raw)
}

/// Creation options for a new passkey of the caller. Needs the current
/// password (or a reauthentication code), and `aal` 2 when the caller has a
/// factor already; with an `enrollment_token` as the bearer (a sign-in past
/// its tenant's MFA grace), the token is the proof. The authenticator is
/// told which of the caller's passkeys it must not duplicate.
#[utoipa::path(post, path = "/v1/users/me/factors/webauthn/options", tag = "users",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug (with an enrollment_token: of the sign-in)")),
    request_body = StartFactorRequest,
    responses(
        (status = 200, description = "creation options; the ceremony lives five minutes", body = PasskeyOptionsView),
        (status = 400, description = "invalid name, or a wrong reauthentication code (invalid_code)", body = ErrorBody),
        (status = 401, description = "no or bad bearer, or reauthentication_required / invalid_credentials", body = ErrorBody),
        (status = 403, description = "mfa_required: the caller has a factor and the session is below aal 2", body = ErrorBody),
        (status = 404, description = "passkeys are off (webauthn.rp_id is not set)", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn start_registration(
    State(state): State<AppState>,
    caller: Enroller,
    Json(req): Json<StartFactorRequest>,
) -> AppResult<PasskeyOptionsView> {
    let options = match caller {
        Enroller::Session(principal) => {
            let (name, proof) = req.into_parts();
            state
                .passkey_factors
                .start_registration(&principal, name, &proof)
                .await?
        }
        Enroller::Token { tenant, challenge, .. } => {
            state
                .passkey_factors
                .start_registration_enrolling(&tenant, challenge.user_id, req.name)
                .await?
        }
    };
    Ok(options.into())
}

/// Register a passkey: the browser's answer to the options of
/// `request_id`, which must be the caller's own. The passkey is confirmed at
/// once; the caller's first factor brings ten recovery codes. With an
/// `enrollment_token` as the bearer, the token is spent and the answer also
/// holds the token response of the sign-in it completes (`aal` 2, `amr`
/// with `mfa` and the passkey's `hwk` or `swk` and `user`).
#[utoipa::path(post, path = "/v1/users/me/factors/webauthn", tag = "users",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug (with an enrollment_token: of the sign-in)")),
    request_body = FinishPasskeyRequest,
    responses(
        (status = 201, description = "the new factor, the recovery codes when it is the first, and with an enrollment_token the token response", body = ConfirmedFactorView),
        (status = 400, description = "a refused or malformed credential, or an invalid name", body = ErrorBody),
        (status = 401, description = "no or bad bearer, or an enrollment_token spent meanwhile (invalid_token)", body = ErrorBody),
        (status = 404, description = "an unknown, spent, expired or another user's request_id; or passkeys are off (webauthn.rp_id is not set)", body = ErrorBody),
        (status = 409, description = "conflict: this passkey is registered already; too_many_factors", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn finish_registration(
    State(state): State<AppState>,
    caller: Enroller,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<FinishPasskeyRequest>,
) -> AppResult<Response> {
    let request_id = request_id(&req.request_id)?;
    let (tenant_id, user_id) = match &caller {
        Enroller::Session(principal) => (principal.tenant.id, principal.user_id),
        Enroller::Token { tenant, challenge, .. } => (tenant.id, challenge.user_id),
    };
    let (enrolled, methods) = state
        .passkey_factors
        .finish_registration(tenant_id, user_id, request_id, req.name, req.credential, &meta)
        .await?;
    let tokens = match caller {
        Enroller::Session(_) => None,
        Enroller::Token { tenant, token, .. } => {
            let (user, tokens) = state
                .mfa_policies
                .finish_enrollment(&tenant, token.expose(), &methods, &meta)
                .await?;
            Some(TokenResponse::new(user, &tenant, tokens))
        }
    };
    let body = ConfirmedFactorView {
        factor: FactorView::new(enrolled.factor),
        recovery_codes: enrolled.recovery_codes,
        tokens,
    };
    // Recovery codes and tokens are shown this once.
    let no_store = [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];
    Ok((StatusCode::CREATED, no_store, axum::Json(body)).into_response())
}

/// Request options naming the passkeys of the user of `mfa_token` (the
/// second step of a sign-in; the token is not spent), or, with a bearer
/// instead, of the caller (a step-up). Send the browser's answer to
/// `POST /v1/auth/mfa/verify` with the `request_id`.
#[utoipa::path(post, path = "/v1/auth/mfa/webauthn/options", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug (of the sign-in)")),
    request_body = MfaPasskeyOptionsRequest,
    responses(
        (status = 200, description = "request options for the user's passkeys", body = PasskeyOptionsView),
        (status = 400, description = "no mfa_token without a bearer", body = ErrorBody),
        (status = 401, description = "invalid_mfa: an unknown, spent, expired or burned mfa_token; invalid_token for a bad bearer", body = ErrorBody),
        (status = 404, description = "passkeys are off (webauthn.rp_id is not set)", body = ErrorBody),
        (status = 409, description = "no_factor: the user has no passkey", body = ErrorBody),
        (status = 429, description = "the client address's sign-in budget is spent (options hold server state)", body = ErrorBody),
    ),
    security(("bearer" = []), ()))]
pub async fn mfa_options(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    MaybeAuth(principal): MaybeAuth,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<MfaPasskeyOptionsRequest>,
) -> AppResult<PasskeyOptionsView> {
    let options = match (req.mfa_token.as_deref(), principal) {
        (Some(token), _) => state.mfa.passkey_options(&tenant, token, &meta).await?,
        (None, Some(principal)) => state.mfa.step_up_passkey_options(&principal, &meta).await?,
        (None, None) => return Err(AppError::validation("mfa_token", "is required without a bearer token")),
    };
    Ok(options.into())
}

/// Options for a passwordless sign-in with a discoverable credential: they
/// name no user. Rate-limited per client address with the sign-ins.
#[utoipa::path(post, path = "/v1/auth/passkey/options", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = PasskeySignInOptionsRequest,
    responses(
        (status = 200, description = "request options for any passkey of this relying party", body = PasskeyOptionsView),
        (status = 404, description = "passkeys are off (webauthn.rp_id is not set)", body = ErrorBody),
        (status = 429, description = "rate limited (rate_limit.login_per_ip)", body = ErrorBody),
    ))]
pub async fn sign_in_options(
    State(state): State<AppState>,
    CurrentTenant(_tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(_req): Json<PasskeySignInOptionsRequest>,
) -> AppResult<PasskeyOptionsView> {
    Ok(state.passkey_factors.start_sign_in(&meta).await?.into())
}

/// Sign in with a passkey: the browser's answer to the options of
/// `request_id`. The session has `amr` `hwk` (device-bound) or `swk`
/// (synced) with `user` and `mfa`, at `aal` 2 (every ceremony requires user
/// verification).
#[utoipa::path(post, path = "/v1/auth/passkey/verify", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = PasskeySignInRequest,
    responses(
        (status = 200, description = "signed in", body = TokenResponse),
        (status = 400, description = "the credential is not a WebAuthn credential, or request_id is too long", body = ErrorBody),
        (status = 401, description = "invalid_credentials: any refusal (unknown, spent or expired request_id, unknown passkey, wrong origin, no user verification, a cloned authenticator)", body = ErrorBody),
        (status = 403, description = "user_disabled", body = ErrorBody),
        (status = 404, description = "passkeys are off (webauthn.rp_id is not set)", body = ErrorBody),
        (status = 429, description = "the account's failure budget (shared with passwords) is spent", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<PasskeySignInRequest>,
) -> AppResult<Response> {
    let request_id = request_id(&req.request_id)?;
    let (user, tokens) = state
        .passkey_factors
        .sign_in(&tenant, request_id, req.credential, &meta)
        .await?;
    Ok(crate::http::api::auth::tokens_answer(&state, user, &tenant, tokens))
}
