//! `/v1/users/me/factors*`, `/v1/users/me/recovery-codes` and the
//! administrators' `/v1/users/{id}/factors`: second factors and recovery
//! codes; TOTP enrolment here, passkey registration in [`super::passkeys`].
//! The rules live in `service::factors`.
//!
//! Beyond API.md: the listing has one `recovery_codes` item (with
//! `remaining`) when the user holds unused codes; pending enrolments are not
//! listed; enrolment also takes `code` (a reauthentication code) for
//! accounts without a password; regenerating recovery codes needs the same
//! proof (`current_password` or `code`) and answers 409 `no_factor` without
//! a confirmed factor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Amr;
use crate::domain::ts;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::api::dto::TokenResponse;
use crate::http::extract::{Auth, ClientMeta, Enroller, Json};
use crate::http::permission::{RequirePermission, UsersRead, UsersWrite};
use crate::secret::Secret;
use crate::service::address::Reauthentication;
use crate::service::factors::FactorList;
use crate::state::AppState;
use crate::store::Factor;

/// What a factor name may hold (`service::factors::parse_name`): no control
/// characters, at least one that is not white space. Spelled out in the
/// `name` attributes below (utoipa takes a literal); the test checks both.
#[cfg(test)]
const NAME_PATTERN: &str =
    r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// One of the user's second factors, or their recovery codes as one item.
/// Never a secret.
#[derive(Serialize, ToSchema)]
pub struct FactorView {
    /// The factor's id; `recovery_codes` for the recovery-code item.
    pub id: String,
    /// `totp`, `webauthn` or `recovery_codes`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    #[serde(with = "ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "ts::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    /// Unused codes left, on the `recovery_codes` item only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

impl FactorView {
    pub fn new(f: Factor) -> Self {
        Self {
            id: f.id.to_string(),
            kind: f.kind.as_str(),
            name: f.name,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
            remaining: None,
        }
    }
}

/// A user's confirmed factors, oldest first, then the recovery-code item.
#[derive(Serialize, ToSchema)]
pub struct FactorListView {
    pub items: Vec<FactorView>,
}

impl FactorListView {
    fn new(list: FactorList) -> Self {
        let mut items: Vec<FactorView> = list.factors.into_iter().map(FactorView::new).collect();
        let codes = list.recovery_codes;
        if codes.remaining > 0 {
            items.push(FactorView {
                id: "recovery_codes".to_owned(),
                kind: "recovery_codes",
                name: "Recovery codes".to_owned(),
                created_at: codes.created_at.unwrap_or_default(),
                last_used_at: codes.last_used_at,
                remaining: Some(codes.remaining),
            });
        }
        Self { items }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartFactorRequest {
    /// Shown in the factor list; "Authenticator app" or "Passkey" when
    /// absent (a passkey's finish call may give another).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// Required when the account has a password.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<Secret>,
    /// For accounts without a password: the code sent by
    /// `POST /v1/auth/reauthenticate`.
    #[schema(value_type = Option<String>)]
    pub code: Option<Secret>,
}

impl StartFactorRequest {
    /// The name asked for, and the proof a session must give.
    pub fn into_parts(self) -> (Option<String>, Reauthentication) {
        let proof = Reauthentication {
            current_password: self.current_password,
            code: self.code,
        };
        (self.name, proof)
    }
}

/// A pending TOTP factor: scan `qr_svg` (or enter `secret`) in an
/// authenticator app, then confirm with its first code. The secret is shown
/// this once.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Base32 (RFC 4648, no padding).
    pub secret: String,
    /// `otpauth://totp/...` (SHA-1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotpRequest {
    /// The authenticator app's current code (6 digits).
    #[schema(max_length = 64)]
    pub code: String,
}

/// A confirmed factor, and the recovery codes when it is the user's first
/// (ten, single use, shown this once).
#[derive(Serialize, ToSchema)]
pub struct ConfirmedFactorView {
    pub factor: FactorView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
    /// With an `enrollment_token` only: the token response of the sign-in
    /// this enrolment completes (`access_token`, `refresh_token`, ... with
    /// `aal` 2), beside the factor and the recovery codes.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenResponse>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameFactorRequest {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

/// The proof regenerating recovery codes needs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCodesRequest {
    /// Required when the account has a password.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<Secret>,
    /// For accounts without a password: the code sent by
    /// `POST /v1/auth/reauthenticate`.
    #[schema(value_type = Option<String>)]
    pub code: Option<Secret>,
}

/// Ten new single-use recovery codes (`xxxxx-xxxxx`), shown this once; the
/// old ones no longer work.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesView {
    pub recovery_codes: Vec<String>,
}

/// A malformed id is as unknown as an id of someone else's factor.
fn factor_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::not_found("factor"))
}

fn user_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::not_found("user"))
}

/// The caller's second factors (confirmed ones) and recovery-code count.
#[utoipa::path(get, path = "/v1/users/me/factors", tag = "users",
    responses((status = 200, body = FactorListView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_factors(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> AppResult<axum::Json<FactorListView>> {
    let list = state.factors.list(&principal).await?;
    Ok(axum::Json(FactorListView::new(list)))
}

/// Start a TOTP enrolment: a pending factor, its secret, `otpauth://` URI
/// and QR code. Needs the current password (or a reauthentication code);
/// with an `enrollment_token` as the bearer (a sign-in past its tenant's
/// MFA grace), the token is the proof and no password is needed. A new
/// enrolment replaces a pending one.
#[utoipa::path(post, path = "/v1/users/me/factors/totp", tag = "users",
    request_body = StartFactorRequest,
    responses(
        (status = 200, body = TotpEnrolmentView),
        (status = 400, description = "invalid name, or a wrong reauthentication code (invalid_code)", body = ErrorBody),
        (status = 401, description = "no token, or reauthentication_required / invalid_credentials", body = ErrorBody),
        (status = 403, description = "mfa_required: the caller has a factor and the session is below aal 2", body = ErrorBody),
        (status = 409, description = "too_many_factors", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn start_totp(
    State(state): State<AppState>,
    caller: Enroller,
    Json(req): Json<StartFactorRequest>,
) -> AppResult<axum::Json<TotpEnrolmentView>> {
    let started = match caller {
        Enroller::Session(principal) => {
            let (name, proof) = req.into_parts();
            state.factors.start_totp(&principal, name, &proof).await?
        }
        Enroller::Token { tenant, challenge, .. } => {
            state
                .factors
                .start_totp_enrolling(&tenant, challenge.user_id, req.name)
                .await?
        }
    };
    Ok(axum::Json(TotpEnrolmentView {
        id: started.factor.id,
        secret: started.secret.to_base32(),
        otpauth_uri: started.otpauth_uri,
        qr_svg: started.qr_svg,
    }))
}

/// Confirm a pending TOTP factor with its first code. Returns ten recovery
/// codes when it is the caller's first factor. With an `enrollment_token`
/// as the bearer, the token is spent and the answer also holds the token
/// response of the sign-in it completes (`aal` 2, `amr` with `mfa`).
#[utoipa::path(post, path = "/v1/users/me/factors/totp/{id}/confirm", tag = "users",
    params(("id" = String, Path, description = "the pending factor's id")),
    request_body = ConfirmTotpRequest,
    responses(
        (status = 200, body = ConfirmedFactorView),
        (status = 400, description = "invalid_code: the code is wrong or expired", body = ErrorBody),
        (status = 401, description = "no or bad bearer, or an enrollment_token spent meanwhile (invalid_token)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such pending factor of the caller", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    caller: Enroller,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(req): Json<ConfirmTotpRequest>,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = factor_id(&id)?;
    match caller {
        Enroller::Session(principal) => {
            let enrolled = state.factors.confirm_totp(&principal, id, &req.code, &meta).await?;
            Ok(axum::Json(ConfirmedFactorView {
                factor: FactorView::new(enrolled.factor),
                recovery_codes: enrolled.recovery_codes,
                tokens: None,
            })
            .into_response())
        }
        Enroller::Token {
            tenant,
            challenge,
            token,
        } => {
            let enrolled = state
                .factors
                .confirm_totp_of(tenant.id, challenge.user_id, id, &req.code, &meta)
                .await?;
            let (user, tokens) = state
                .mfa_policies
                .finish_enrollment(&tenant, token.expose(), &[Amr::Otp], &meta)
                .await?;
            let body = ConfirmedFactorView {
                factor: FactorView::new(enrolled.factor),
                recovery_codes: enrolled.recovery_codes,
                tokens: Some(TokenResponse::new(user, &tenant, tokens)),
            };
            let no_store = [
                (axum::http::header::CACHE_CONTROL, "no-store"),
                (axum::http::header::PRAGMA, "no-cache"),
            ];
            Ok((no_store, axum::Json(body)).into_response())
        }
    }
}

/// Rename one of the caller's factors.
#[utoipa::path(patch, path = "/v1/users/me/factors/{id}", tag = "users",
    params(("id" = String, Path, description = "factor id")),
    request_body = RenameFactorRequest,
    responses(
        (status = 200, body = FactorView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn rename_factor(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(req): Json<RenameFactorRequest>,
) -> AppResult<axum::Json<FactorView>> {
    let id = factor_id(&id)?;
    let factor = state.factors.rename(&principal, id, &req.name, &meta).await?;
    Ok(axum::Json(FactorView::new(factor)))
}

/// Remove one of the caller's factors (a pending one too). Removing the
/// last factor also removes the recovery codes; under a tenant policy that
/// requires a second factor the last one is refused.
#[utoipa::path(delete, path = "/v1/users/me/factors/{id}", tag = "users",
    params(("id" = String, Path, description = "factor id")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "last_factor_required", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn remove_factor(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let id = factor_id(&id)?;
    // Under a tenant policy that requires a factor of this user, the last
    // one stays (409 last_factor_required).
    let keep_one = state
        .mfa_policies
        .keep_one(principal.tenant.id, principal.user_id)
        .await?;
    state.factors.remove(&principal, id, keep_one, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the caller's recovery codes with ten new ones. Needs the current
/// password (or a reauthentication code) and a confirmed factor.
#[utoipa::path(post, path = "/v1/users/me/recovery-codes", tag = "users",
    request_body = RecoveryCodesRequest,
    responses(
        (status = 200, body = RecoveryCodesView),
        (status = 400, description = "a wrong reauthentication code (invalid_code)", body = ErrorBody),
        (status = 401, description = "no token, or reauthentication_required / invalid_credentials", body = ErrorBody),
        (status = 409, description = "no_factor: the caller has no confirmed second factor", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<RecoveryCodesRequest>,
) -> AppResult<axum::Json<RecoveryCodesView>> {
    let proof = Reauthentication {
        current_password: req.current_password,
        code: req.code,
    };
    let recovery_codes = state
        .factors
        .regenerate_recovery_codes(&principal, &proof, &meta)
        .await?;
    Ok(axum::Json(RecoveryCodesView { recovery_codes }))
}

/// A user's second factors (never a secret).
#[utoipa::path(get, path = "/v1/users/{id}/factors", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses(
        (status = 200, body = FactorListView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs users:read", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_user_factors(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<FactorListView>> {
    let list = state.factors.list_for(&caller, user_id(&id)?).await?;
    Ok(axum::Json(FactorListView::new(list)))
}

/// Remove every second factor and recovery code of a user (who lost their
/// device). Audited `mfa_reset`; the user is told.
#[utoipa::path(delete, path = "/v1/users/{id}/factors", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs users:write and the user's permissions; `self` for the caller's own", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn reset_user_factors(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.factors.reset(&caller, user_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::factors::MAX_NAME_CHARS;

    #[test]
    fn the_schema_states_the_name_rule() {
        use utoipa::PartialSchema;
        assert_eq!(MAX_NAME_CHARS, 64);
        for schema in [StartFactorRequest::schema(), RenameFactorRequest::schema()] {
            let json = serde_json::to_value(schema).unwrap();
            let name = &json["properties"]["name"];
            assert_eq!(name["pattern"], NAME_PATTERN, "{json}");
            assert_eq!(name["maxLength"], 64, "{json}");
        }
        let pattern = regex_lite_match;
        for ok in ["phone", " phone ", "Büro-Handy", "a"] {
            assert!(crate::service::factors::parse_name(ok).is_ok(), "{ok}");
            assert!(pattern(ok), "{ok}");
        }
        for bad in ["", "   ", "a\nb", "a\u{85}b", "\u{2003}"] {
            assert!(crate::service::factors::parse_name(bad).is_err(), "{bad:?}");
            assert!(!pattern(bad), "{bad:?}");
        }
        assert!(crate::service::factors::parse_name(&"x".repeat(65)).is_err());
    }

    /// [`NAME_PATTERN`] spelled out: no control character, and one that is
    /// not white space.
    fn regex_lite_match(s: &str) -> bool {
        !s.chars().any(|c| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
            && s.chars().any(|c| !c.is_whitespace())
    }
}
