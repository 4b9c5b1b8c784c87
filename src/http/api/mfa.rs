//! `/v1/auth/mfa/verify`: the second step of a sign-in (with the
//! `mfa_token` a sign-in answered instead of tokens) and step-up (with a
//! bearer), by a TOTP code, a recovery code or a passkey's answer to the
//! options of `/v1/auth/mfa/webauthn/options` (in [`super::passkeys`]). The
//! rules live in `service::mfa`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::dto::{TokenResponse, UserView};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, CurrentTenant, Json, MaybeAuth};
use crate::secret::Secret;
use crate::service::mfa::SecondFactor;
use crate::state::AppState;

/// `{mfa_token, totp}`, `{mfa_token, recovery_code}` or `{mfa_token,
/// request_id, credential}` (a passkey); with a bearer instead of
/// `mfa_token`, a step-up of the caller's session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    /// From the sign-in's `mfa_required` answer. Leave out for a step-up
    /// (send `Authorization: Bearer` instead).
    #[schema(max_length = 128)]
    pub mfa_token: Option<String>,
    /// A code of the user's authenticator app.
    #[schema(value_type = Option<String>, format = Password, max_length = 32)]
    pub totp: Option<Secret>,
    /// One of the user's recovery codes (single use).
    #[schema(value_type = Option<String>, format = Password, max_length = 64)]
    pub recovery_code: Option<Secret>,
    /// With `credential`: the `request_id` of `POST
    /// /v1/auth/mfa/webauthn/options`.
    #[schema(max_length = 128)]
    pub request_id: Option<String>,
    /// With `request_id`: the browser's `PublicKeyCredential.toJSON()` of
    /// `navigator.credentials.get()` with those options.
    #[schema(value_type = Option<Object>)]
    pub credential: Option<Value>,
}

/// A step-up's answer: a new access token of the same session at `aal` 2
/// (the refresh token stays as it is; refreshes keep the raised level).
#[derive(Serialize, ToSchema)]
pub struct StepUpResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_in: u64,
    /// `2`.
    pub aal: u8,
    /// RFC 8176 methods of the session, e.g. `["mfa", "otp", "pwd"]`.
    pub amr: Vec<&'static str>,
    pub user: UserView,
}

/// Tokens after a completed sign-in, or a step-up's new access token.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum MfaVerifyResponse {
    Tokens(Box<TokenResponse>),
    StepUp(Box<StepUpResponse>),
}

/// Takes the one factor the request offers, and bounds the codes and the
/// request id before any work: longer is never a code or an id we issued.
fn factor(req: &mut MfaVerifyRequest) -> AppResult<SecondFactor<'_>> {
    let passkey = match (req.request_id.as_deref(), req.credential.take()) {
        (None, None) => None,
        (Some(request_id), Some(credential)) => Some((super::passkeys::request_id(request_id)?, credential)),
        (Some(_), None) => return Err(AppError::validation("credential", "is required with request_id")),
        (None, Some(_)) => return Err(AppError::validation("request_id", "is required with credential")),
    };
    match (&req.totp, &req.recovery_code, passkey) {
        (Some(code), None, None) if code.expose().len() <= 32 => Ok(SecondFactor::Totp(code.expose())),
        (None, Some(code), None) if code.expose().len() <= 64 => Ok(SecondFactor::RecoveryCode(code.expose())),
        (None, None, Some((request_id, credential))) => Ok(SecondFactor::Passkey { request_id, credential }),
        (Some(_), None, None) => Err(AppError::validation("totp", "too long")),
        (None, Some(_), None) => Err(AppError::validation("recovery_code", "too long")),
        _ => Err(AppError::validation(
            "totp",
            "give exactly one of totp, recovery_code or request_id with credential",
        )),
    }
}

/// Complete a sign-in with a second factor, or step up the current session.
#[utoipa::path(post, path = "/v1/auth/mfa/verify", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug (of the sign-in)")),
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "with mfa_token: a token response whose access token has aal 2 and amr with mfa; with a bearer: a new access token of the same session at aal 2", body = MfaVerifyResponse),
        (status = 400, description = "not exactly one of totp, recovery_code and request_id with credential; a credential that is not a WebAuthn credential; or no mfa_token without a bearer", body = ErrorBody),
        (status = 401, description = "invalid_mfa: wrong, replayed or expired factor (a passkey: refused, another user's, an unknown or spent request_id, a cloned authenticator), or an unknown, spent, expired or burned mfa_token (five wrong answers burn it); invalid_token for a bad bearer", body = ErrorBody),
        (status = 429, description = "the account's failure budget (shared with passwords) is spent", body = ErrorBody),
    ),
    security(("bearer" = []), ()))]
pub async fn verify(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    MaybeAuth(principal): MaybeAuth,
    ClientMeta(meta): ClientMeta,
    Json(mut req): Json<MfaVerifyRequest>,
) -> AppResult<Response> {
    let mfa_token = req.mfa_token.take();
    let second = factor(&mut req)?;
    match (mfa_token.as_deref(), principal) {
        (Some(token), _) => {
            let (user, tokens) = state.mfa.complete(&tenant, token, second, &meta).await?;
            Ok(crate::http::api::auth::tokens_answer(&state, user, &tenant, tokens))
        }
        (None, Some(principal)) => {
            let (user, assurance, access) = state.mfa.step_up(&principal, second, &meta).await?;
            let body = StepUpResponse {
                access_token: access.access_token,
                token_type: "Bearer",
                expires_in: access.expires_in,
                aal: assurance.aal.as_u8(),
                amr: assurance.amr_names(),
                user: UserView::new(user, &principal.tenant),
            };
            Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
        }
        (None, None) => Err(AppError::validation("mfa_token", "is required without a bearer token")),
    }
}
