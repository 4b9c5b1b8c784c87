//! Wire shapes of the `/v1` API: what API.md documents, with OpenAPI schemas.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Timestamp, rfc3339, ts};
use crate::service::sessions::Tokens;
use crate::store::{Session, Tenant, User};

/// The user object.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub tenant: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub phone_verified: bool,
    pub roles: Vec<String>,
    pub disabled: bool,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    #[serde(with = "ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    #[serde(with = "ts::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sign_in_at: Option<i64>,
}

impl UserView {
    pub fn new(user: User, tenant: &Tenant) -> Self {
        Self {
            id: user.id,
            tenant: tenant.slug.to_string(),
            email: user.email.map(|e| e.to_string()),
            email_verified: user.email_verified,
            phone: user.phone.map(|p| p.to_string()),
            phone_verified: user.phone_verified,
            roles: user.roles,
            disabled: user.disabled,
            metadata: user.metadata,
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_sign_in_at: user.last_sign_in_at,
        }
    }
}

/// Returned by every sign-in and refresh.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (EdDSA by default) for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single use; rotate it at `/v1/auth/refresh`.
    pub refresh_token: String,
    /// After a password sign-in only: this device's token. Send it back on
    /// the next password sign-in (`X-Forge-Device` header or `device_token`
    /// field; browsers get it as the `forge_device` cookie too) and failed
    /// attempts by others can't lock you out of the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Only on a sign-in while the tenant's second-factor policy gives this
    /// user a grace: `true`. Enrol a factor (`POST /v1/users/me/factors/totp`)
    /// before `mfa_enrollment_due_at`; after it, sign-in answers
    /// `{mfa_enrollment_required, enrollment_token}` instead of tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment_due: Option<bool>,
    /// With `mfa_enrollment_due`: when the grace ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub mfa_enrollment_due_at: Option<String>,
    pub user: UserView,
}

impl TokenResponse {
    pub fn new(user: User, tenant: &Tenant, tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            device_token: tokens.device_token,
            mfa_enrollment_due: None,
            mfa_enrollment_due_at: None,
            user: UserView::new(user, tenant),
        }
    }

    /// The answer of a sign-in that succeeded: tokens, marked when the
    /// policy's grace runs (`None` for the answers that are no sign-in).
    pub fn signed_in(user: User, tenant: &Tenant, tokens: Tokens, enrollment_due: Option<Timestamp>) -> Self {
        Self {
            mfa_enrollment_due: enrollment_due.map(|_| true),
            mfa_enrollment_due_at: enrollment_due.map(rfc3339),
            ..Self::new(user, tenant, tokens)
        }
    }
}

/// RFC 6749 5.1: token responses must not be cached.
impl axum::response::IntoResponse for TokenResponse {
    fn into_response(self) -> axum::response::Response {
        use axum::http::header;
        (
            [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
            axum::Json(self),
        )
            .into_response()
    }
}

/// Sign-up answer when email verification must come first: no tokens.
#[derive(Serialize, ToSchema)]
pub struct PendingUser {
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// True for the session of the token making this request.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: Session, current: uuid::Uuid) -> Self {
        Self {
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.id == current,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: crate::secret::Secret,
    pub phone: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// `email` or `phone`, and the password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = String, format = Password)]
    pub password: crate::secret::Secret,
    /// The device token of an earlier sign-in to this account (or send it
    /// as the `X-Forge-Device` header): this device then has its own failure
    /// budget and is not blocked when the account is locked.
    pub device_token: Option<String>,
}

/// OAuth2 token request (RFC 6749 sections 4.3 and 6), as form or JSON.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password`, `refresh_token` or `urn:forge:params:oauth:grant-type:mfa`.
    pub grant_type: String,
    pub username: Option<String>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<crate::secret::Secret>,
    pub refresh_token: Option<String>,
    /// `client_credentials` grant: the scopes asked for (a subset of the
    /// client's); ignored by the other grants.
    pub scope: Option<String>,
    /// `password` grant: the device token of an earlier sign-in (see `LoginRequest`).
    pub device_token: Option<String>,
    /// `urn:forge:params:oauth:grant-type:mfa` grant: the `mfa_token` of the
    /// password grant's 403 `mfa_required` answer.
    pub mfa_token: Option<String>,
    /// `mfa` grant: a code of the user's authenticator app.
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<crate::secret::Secret>,
    /// `mfa` grant: one of the user's recovery codes.
    #[schema(value_type = Option<String>, format = Password)]
    pub recovery_code: Option<crate::secret::Secret>,
    /// `authorization_code` grant: the code from the redirect.
    #[schema(value_type = Option<String>, format = Password)]
    pub code: Option<crate::secret::Secret>,
    /// `authorization_code` grant: the redirect URI of the authorization
    /// request (required when it named one).
    pub redirect_uri: Option<String>,
    /// `authorization_code` grant: the PKCE verifier (RFC 7636).
    #[schema(value_type = Option<String>, format = Password)]
    pub code_verifier: Option<crate::secret::Secret>,
    /// OAuth client grants: the client (`client_secret_post`, or a public
    /// client's `none`); with HTTP Basic, the `Authorization` header instead.
    pub client_id: Option<String>,
    /// `client_secret_post`.
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<crate::secret::Secret>,
}

/// The token response of an OAuth client's grant (RFC 6749 5.1, OpenID
/// Connect Core 3.1.3.3).
#[derive(Serialize, ToSchema)]
pub struct ClientTokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Only with `offline_access` granted to a client allowed `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Only with the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The granted scopes, space-separated.
    pub scope: String,
}

impl From<crate::service::oidc::ClientTokens> for ClientTokenResponse {
    fn from(t: crate::service::oidc::ClientTokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            id_token: t.id_token,
            scope: t.scope,
        }
    }
}

/// RFC 6749 5.1: token responses must not be cached.
impl axum::response::IntoResponse for ClientTokenResponse {
    fn into_response(self) -> axum::response::Response {
        use axum::http::header;
        (
            [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
            axum::Json(self),
        )
            .into_response()
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Sign out without an access token (e.g. it expired).
    pub refresh_token: Option<String>,
    /// `session` (default) or `all`.
    pub scope: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    pub email: Option<String>,
    /// A phone number, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Required to change email or phone when the account has a password.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<crate::secret::Secret>,
    /// For accounts without a password: the code sent by
    /// `POST /v1/auth/reauthenticate`.
    #[schema(value_type = Option<String>)]
    pub code: Option<crate::secret::Secret>,
}

/// `PATCH /v1/users/me`: the user (an email or phone change is not applied
/// yet) and the addresses waiting for their code.
#[derive(Serialize, ToSchema)]
pub struct UpdateMeResponse {
    #[serde(flatten)]
    pub user: UserView,
    /// The new email, until `POST /v1/auth/email/verify` confirms it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<String>,
    /// The new phone, until `POST /v1/auth/phone/verify` confirms it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_phone: Option<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// RFC 7662 token introspection request.
#[derive(Deserialize, ToSchema)]
pub struct IntrospectRequest {
    pub token: String,
    pub token_type_hint: Option<String>,
}

/// RFC 7662 answer; only `active` when the token is not active.
#[derive(Serialize, ToSchema, Default)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// How the session's holder signed in (RFC 8176 values); absent for
    /// sessions from before forge recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<&'static str>>,
    /// The session's assurance level, 1 or 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aal: Option<u8>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct VerifyQuery {
    /// The tenant the protected app belongs to (default `default`): a token
    /// of any other tenant is refused with 403, whatever roles it holds.
    pub tenant: Option<String>,
    /// Answer 403 unless the user holds this role.
    pub role: Option<String>,
    /// Answer 403 unless the user holds this permission.
    pub permission: Option<String>,
    /// Answer 403 `mfa_required` unless the token's assurance level (`aal`
    /// claim) is at least this: `1` or `2` (anything else is 400).
    #[param(pattern = "^[12]$")]
    pub aal: Option<String>,
    /// The page the client asked the proxy for, where the sign-in page
    /// sends the browser back to (`?rd=` there). Default: from the proxy's
    /// headers (`X-Forwarded-Proto`/`-Host`/`-Uri`, or `X-Original-URL` in
    /// `auth_request` mode). Only used when it is in `server.allowed_redirects`.
    pub rd: Option<String>,
    /// `forward_auth` (Caddy, Traefik; the default) or `auth_request`
    /// (nginx: a browser's sign-in redirect comes as 401 with `Location`,
    /// since nginx only understands 2xx, 401 and 403; the original URL is
    /// read from `X-Original-URL`).
    #[param(pattern = "^(forward_auth|auth_request)$")]
    pub mode: Option<String>,
}

/// Parses `metadata`: a JSON object of at most 4 KiB.
pub fn metadata(value: Option<serde_json::Value>) -> Result<Option<serde_json::Value>, crate::error::AppError> {
    match value {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(_)) if v.to_string().len() <= 4096 => Ok(Some(v)),
        Some(serde_json::Value::Object(_)) => Err(crate::error::AppError::validation(
            "metadata",
            "must be at most 4096 bytes",
        )),
        Some(_) => Err(crate::error::AppError::validation("metadata", "must be a JSON object")),
    }
}

/// A factor as a sign-in's second step offers it: never a secret.
#[derive(Serialize, ToSchema)]
pub struct FactorChoice {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// `totp` or `webauthn`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
}

/// A sign-in whose first factor succeeded, for a user with a second
/// factor: no tokens yet. Complete it at `POST /v1/auth/mfa/verify`.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, lives 5 minutes, bound to this sign-in attempt.
    pub mfa_token: String,
    pub factors: Vec<FactorChoice>,
}

impl MfaRequiredResponse {
    pub fn new(step: crate::service::sign_in::SecondStep) -> Self {
        Self {
            mfa_required: true,
            mfa_token: step.mfa_token.expose().to_string(),
            factors: step
                .factors
                .into_iter()
                .map(|f| FactorChoice {
                    id: f.id,
                    kind: f.kind.as_str(),
                    name: f.name,
                })
                .collect(),
        }
    }
}

/// A sign-in whose first factor succeeded, for a user without a factor
/// past the grace of the tenant's policy: no tokens, no session. Enrol a
/// factor with the `enrollment_token` as the bearer
/// (`POST /v1/users/me/factors/totp`, then its `confirm`, which answers
/// the tokens, at `aal` 2, beside the recovery codes).
#[derive(Serialize, ToSchema)]
pub struct MfaEnrollmentRequiredResponse {
    /// Always `true`.
    pub mfa_enrollment_required: bool,
    /// Single use, short-lived; accepted only by the factor enrolment calls.
    pub enrollment_token: String,
}

impl MfaEnrollmentRequiredResponse {
    pub fn new(step: crate::service::sign_in::EnrollmentStep) -> Self {
        Self {
            mfa_enrollment_required: true,
            enrollment_token: step.enrollment_token.expose().to_string(),
        }
    }
}

/// What a sign-in answers: tokens, the second step, or the enrolment token.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInResponse {
    Tokens(Box<TokenResponse>),
    MfaRequired(MfaRequiredResponse),
    MfaEnrollmentRequired(MfaEnrollmentRequiredResponse),
}

impl SignInResponse {
    pub fn new(outcome: crate::service::sign_in::SignedIn<(User, Tokens)>, tenant: &Tenant) -> Self {
        use crate::service::sign_in::SignedIn;
        match outcome {
            SignedIn::Complete((user, tokens)) => {
                SignInResponse::Tokens(Box::new(TokenResponse::signed_in(user, tenant, tokens, None)))
            }
            SignedIn::EnrollmentDue {
                signed_in: (user, tokens),
                until,
            } => SignInResponse::Tokens(Box::new(TokenResponse::signed_in(user, tenant, tokens, Some(until)))),
            SignedIn::SecondFactor(step) => SignInResponse::MfaRequired(MfaRequiredResponse::new(step)),
            SignedIn::EnrollmentRequired(step) => {
                SignInResponse::MfaEnrollmentRequired(MfaEnrollmentRequiredResponse::new(step))
            }
        }
    }
}

/// No answer may be cached (RFC 6749 5.1; the `mfa_token` and the
/// `enrollment_token` are secrets).
impl axum::response::IntoResponse for SignInResponse {
    fn into_response(self) -> axum::response::Response {
        use axum::http::header;
        (
            [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
            axum::Json(self),
        )
            .into_response()
    }
}

/// The token endpoint's answer to the password grant of a user with a
/// second factor (403).
#[derive(Serialize, ToSchema)]
pub struct OAuthMfaRequired {
    /// `mfa_required`.
    pub error: &'static str,
    pub error_description: &'static str,
    pub message: &'static str,
    /// Complete with `grant_type=urn:forge:params:oauth:grant-type:mfa`.
    pub mfa_token: String,
}

/// The token endpoint's 403 to a password grant that needs another step
/// before tokens: the second factor, or (past the tenant policy's grace,
/// without a factor) its enrolment.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OAuthNextStep {
    MfaRequired(OAuthMfaRequired),
    MfaEnrollmentRequired(OAuthMfaEnrollmentRequired),
}

/// Neither answer may be cached: both carry a single-use secret.
impl axum::response::IntoResponse for OAuthNextStep {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{StatusCode, header};
        (
            StatusCode::FORBIDDEN,
            [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
            axum::Json(self),
        )
            .into_response()
    }
}

/// The token endpoint's answer to the password grant of a user without a
/// factor past the grace of the tenant's policy (403): no tokens.
#[derive(Serialize, ToSchema)]
pub struct OAuthMfaEnrollmentRequired {
    /// `mfa_enrollment_required`.
    pub error: &'static str,
    pub error_description: &'static str,
    pub message: &'static str,
    /// Single use, short-lived: the bearer of the factor enrolment calls
    /// (`POST /v1/users/me/factors/totp`, then its `confirm`, which answers
    /// the tokens).
    pub enrollment_token: String,
}
