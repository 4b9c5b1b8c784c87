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

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 with per-field reasons (`fields`).
    #[error("{message}")]
    Validation {
        message: String,
        fields: BTreeMap<String, String>,
    },
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
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
        code: &'static str,
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

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// The one answer to every failed password or code check: it says nothing
    /// about which part was wrong or whether the account exists.
    pub fn invalid_credentials() -> Self {
        Self::unauthorized("invalid_credentials", "invalid credentials")
    }

    pub fn invalid_token() -> Self {
        Self::unauthorized("invalid_token", "missing, invalid or expired access token")
    }

    pub fn invalid_grant() -> Self {
        Self::unauthorized("invalid_grant", "the refresh token is invalid, expired or revoked")
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        AppError::NotFound {
            code: "not_found",
            message: format!("{what} not found"),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
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

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation_failed",
            AppError::BadRequest { code, .. }
            | AppError::Unauthorized { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::OAuth { code, .. } => code,
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal_error",
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
                "email" => AppError::conflict("email_taken", "that email is already registered"),
                "phone" => AppError::conflict("phone_taken", "that phone number is already registered"),
                "slug" => AppError::conflict("tenant_exists", "a tenant with that slug exists"),
                "name" => AppError::conflict("role_exists", "a role with that name exists"),
                other => AppError::conflict("conflict", format!("{other} already exists")),
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
