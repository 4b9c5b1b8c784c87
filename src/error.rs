//! The one error type every handler returns.
//!
//! Each variant has a stable snake_case code and one status; the body is
//! always `{"error", "message"}` (plus `fields` for validation failures and
//! `error_description` on the OAuth2 token endpoint). A 5xx never carries its
//! cause to the client: the cause is logged inside the request span and the
//! client sees a generic message.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Declares [`ErrorCode`] and its names from one table.
macro_rules! error_codes {
    ($($variant:ident => $name:literal,)+) => {
        /// The stable, machine-readable `error` of every error body (and the
        /// `error` of `WWW-Authenticate`). Clients branch on these strings,
        /// so a variant's name never changes; adding one is a documented
        /// API change.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the names.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    AccountExists => "account_exists",
    BuiltinRole => "builtin_role",
    Conflict => "conflict",
    CrossSite => "cross_site",
    Csrf => "csrf",
    DefaultTenant => "default_tenant",
    EmailNotVerified => "email_not_verified",
    EmailTaken => "email_taken",
    Forbidden => "forbidden",
    ForbiddenTarget => "forbidden_target",
    IdentityTaken => "identity_taken",
    Internal => "internal_error",
    InvalidClient => "invalid_client",
    InvalidCode => "invalid_code",
    InvalidCredentials => "invalid_credentials",
    InvalidCursor => "invalid_cursor",
    InvalidGrant => "invalid_grant",
    InvalidMfa => "invalid_mfa",
    InvalidOtp => "invalid_otp",
    InvalidRequest => "invalid_request",
    InvalidScope => "invalid_scope",
    InvalidToken => "invalid_token",
    KeyTooNew => "key_too_new",
    LastFactorRequired => "last_factor_required",
    LastIdentifier => "last_identifier",
    LastSignInMethod => "last_sign_in_method",
    MethodNotAllowed => "method_not_allowed",
    MfaEnrollmentRequired => "mfa_enrollment_required",
    MfaRequired => "mfa_required",
    NoFactor => "no_factor",
    NoNextKey => "no_next_key",
    NoPhone => "no_phone",
    NoProvenAddress => "no_proven_address",
    NoSigningKeys => "no_signing_keys",
    NotAdmin => "not_admin",
    NotFound => "not_found",
    NotResendable => "not_resendable",
    PayloadTooLarge => "payload_too_large",
    PhoneTaken => "phone_taken",
    RateLimited => "rate_limited",
    ReadOnly => "read_only",
    ReauthenticationRequired => "reauthentication_required",
    RoleExists => "role_exists",
    SelfAction => "self",
    SessionRevoked => "session_revoked",
    SignupDisabled => "signup_disabled",
    SignupDomainNotAllowed => "signup_domain_not_allowed",
    TenantExists => "tenant_exists",
    TooManyFactors => "too_many_factors",
    UnauthorizedClient => "unauthorized_client",
    Unavailable => "unavailable",
    UnknownRole => "unknown_role",
    UnknownTenant => "unknown_tenant",
    UnsupportedGrantType => "unsupported_grant_type",
    UnsupportedMediaType => "unsupported_media_type",
    UnsupportedTokenType => "unsupported_token_type",
    UserDisabled => "user_disabled",
    ValidationFailed => "validation_failed",
    WrongTenant => "wrong_tenant",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 with per-field reasons (`fields`).
    #[error("{message}")]
    Validation {
        message: String,
        fields: BTreeMap<String, String>,
    },
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("{message}")]
    Unauthorized { code: ErrorCode, message: String },
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("a dependency is unavailable")]
    Unavailable,
    /// RFC 6749 section 5.2 errors of the token endpoint.
    #[error("{description}")]
    OAuth {
        status: StatusCode,
        code: ErrorCode,
        description: String,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(field: &str, reason: impl Into<String>) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(field.to_string(), reason.into());
        AppError::Validation {
            message: "the request has invalid fields".into(),
            fields,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// The one answer to every failed password or code check: it says nothing
    /// about which part was wrong or whether the account exists.
    pub fn invalid_credentials() -> Self {
        Self::unauthorized(ErrorCode::InvalidCredentials, "invalid credentials")
    }

    /// The one answer to every failed second-factor check (wrong, replayed
    /// or used code, no such factor): it says nothing about which.
    pub fn invalid_mfa() -> Self {
        Self::unauthorized(
            ErrorCode::InvalidMfa,
            "the second factor is wrong, expired or already used",
        )
    }

    pub fn invalid_token() -> Self {
        Self::unauthorized(ErrorCode::InvalidToken, "missing, invalid or expired access token")
    }

    pub fn invalid_grant() -> Self {
        Self::unauthorized(
            ErrorCode::InvalidGrant,
            "the refresh token is invalid, expired or revoked",
        )
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        AppError::NotFound {
            code: ErrorCode::NotFound,
            message: format!("{what} not found"),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } | AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::OAuth { status, .. } => *status,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Validation { .. } => ErrorCode::ValidationFailed,
            AppError::BadRequest { code, .. }
            | AppError::Unauthorized { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::OAuth { code, .. } => *code,
            AppError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            AppError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            AppError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::Unavailable => ErrorCode::Unavailable,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The wire shape of every error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub error: String,
    /// Human-readable explanation; never contains a secret.
    pub message: String,
    /// Per-field reasons for validation failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// RFC 6749 description, on the OAuth2 token endpoint only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            AppError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                "internal server error".to_string()
            }
            AppError::Unavailable => "a dependency is unavailable; try again shortly".to_string(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: self.code().to_string(),
            error_description: matches!(self, AppError::OAuth { .. }).then(|| message.clone()),
            message,
            fields: match &self {
                AppError::Validation { fields, .. } => Some(fields.clone()),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            AppError::Unauthorized { code, .. } => {
                let value = format!("Bearer realm=\"forge\", error=\"{code}\"");
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            AppError::OAuth { status, .. } if *status == StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"forge\""),
                );
            }
            AppError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from((*retry_after_secs).max(1)));
            }
            _ => {}
        }
        if matches!(self, AppError::OAuth { .. }) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AppError::not_found("resource"),
            StoreError::Conflict { field } => match field {
                "email" => AppError::conflict(ErrorCode::EmailTaken, "that email is already registered"),
                "phone" => AppError::conflict(ErrorCode::PhoneTaken, "that phone number is already registered"),
                "slug" => AppError::conflict(ErrorCode::TenantExists, "a tenant with that slug exists"),
                "name" => AppError::conflict(ErrorCode::RoleExists, "a role with that name exists"),
                other => AppError::conflict(ErrorCode::Conflict, format!("{other} already exists")),
            },
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "store unavailable");
                AppError::Unavailable
            }
            StoreError::Internal(cause) => AppError::Internal(cause),
        }
    }
}

impl From<crate::cache::CacheError> for AppError {
    fn from(err: crate::cache::CacheError) -> Self {
        tracing::error!(error = %err, "cache unavailable");
        AppError::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients branch on these strings: the list changes only by adding.
    #[test]
    fn error_codes_keep_their_names() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "account_exists",
                "builtin_role",
                "conflict",
                "cross_site",
                "csrf",
                "default_tenant",
                "email_not_verified",
                "email_taken",
                "forbidden",
                "forbidden_target",
                "identity_taken",
                "internal_error",
                "invalid_client",
                "invalid_code",
                "invalid_credentials",
                "invalid_cursor",
                "invalid_grant",
                "invalid_mfa",
                "invalid_otp",
                "invalid_request",
                "invalid_scope",
                "invalid_token",
                "key_too_new",
                "last_factor_required",
                "last_identifier",
                "last_sign_in_method",
                "method_not_allowed",
                "mfa_enrollment_required",
                "mfa_required",
                "no_factor",
                "no_next_key",
                "no_phone",
                "no_proven_address",
                "no_signing_keys",
                "not_admin",
                "not_found",
                "not_resendable",
                "payload_too_large",
                "phone_taken",
                "rate_limited",
                "read_only",
                "reauthentication_required",
                "role_exists",
                "self",
                "session_revoked",
                "signup_disabled",
                "signup_domain_not_allowed",
                "tenant_exists",
                "too_many_factors",
                "unauthorized_client",
                "unavailable",
                "unknown_role",
                "unknown_tenant",
                "unsupported_grant_type",
                "unsupported_media_type",
                "unsupported_token_type",
                "user_disabled",
                "validation_failed",
                "wrong_tenant",
            ]
        );
        for code in ErrorCode::ALL {
            assert_eq!(code.to_string(), code.as_str());
        }
    }

    #[test]
    fn fixed_variants_answer_their_codes() {
        assert_eq!(AppError::validation("f", "bad").code().as_str(), "validation_failed");
        assert_eq!(
            AppError::RateLimited { retry_after_secs: 1 }.code().as_str(),
            "rate_limited"
        );
        assert_eq!(
            AppError::internal(anyhow::anyhow!("x")).code().as_str(),
            "internal_error"
        );
        assert_eq!(AppError::not_found("user").code().as_str(), "not_found");
        assert_eq!(AppError::invalid_grant().code().as_str(), "invalid_grant");
    }
}
