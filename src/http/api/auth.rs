//! `/v1/auth/*`: sign-up, sign-in, tokens, sign-out, forward-auth and
//! introspection. Each handler parses, calls one use case, and answers.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::dto::*;
use crate::domain::{Aal, Email, Identifier, Phone, TenantSlug};
use crate::error::{AppError, AppResult, ErrorBody, ErrorCode};
use crate::http::extract::{ClientMeta, CurrentTenant, Json, JsonOrForm, MaybeAuth, Query, bearer, session_cookie};
use crate::http::permission::IntrospectionCaller;
use crate::service::accounts::{SignedUp, SignupInput};
use crate::service::forward_auth::{self, Challenge, Mode, OriginalRequest};
use crate::service::mfa::SecondFactor;
use crate::service::sessions::LogoutScope;
use crate::service::sign_in::SignedIn;
use crate::state::AppState;

/// Create an account with email and password.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug, default `default`")),
    request_body = SignupRequest,
    responses(
        (status = 201, description = "signed up and signed in (with `mfa_enrollment_due` while a tenant policy's grace runs); with email verification required, `{user}` only; under a policy that requires a second factor at once, `{mfa_enrollment_required, enrollment_token}` and no session", body = TokenResponse),
        (status = 400, description = "invalid email or weak password", body = ErrorBody),
        (status = 403, description = "signup_disabled", body = ErrorBody),
        (status = 404, description = "unknown_tenant", body = ErrorBody),
        (status = 409, description = "email_taken", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<SignupRequest>,
) -> AppResult<Response> {
    let email = Email::parse(&req.email).map_err(|e| AppError::validation("email", e))?;
    let phone = req
        .phone
        .as_deref()
        .map(Phone::parse)
        .transpose()
        .map_err(|e| AppError::validation("phone", e))?;
    let input = SignupInput {
        email,
        password: req.password,
        phone,
        metadata: metadata(req.metadata)?.unwrap_or_else(|| serde_json::json!({})),
    };
    Ok(match state.accounts.signup(&tenant, input, &meta).await? {
        SignedUp::WithTokens {
            user,
            tokens,
            enrollment_due,
        } => {
            let device = tokens.device_token.clone();
            with_device_cookie(
                &state,
                device.as_deref(),
                (
                    StatusCode::CREATED,
                    TokenResponse::signed_in(user, &tenant, tokens, enrollment_due),
                ),
            )
        }
        SignedUp::EnrollmentRequired(_, step) => (
            StatusCode::CREATED,
            SignInResponse::MfaEnrollmentRequired(MfaEnrollmentRequiredResponse::new(step)),
        )
            .into_response(),
        SignedUp::PendingVerification(user) => (
            StatusCode::CREATED,
            axum::Json(PendingUser {
                user: UserView::new(user, &tenant),
            }),
        )
            .into_response(),
    })
}

/// Sets the `forge_device` cookie: `HttpOnly` (scripts never see it),
/// `Secure` unless `admin.insecure_cookies`, and `SameSite=Strict`: it is
/// only ever needed on a sign-in POST from forge's own origin, so no
/// cross-site request has any reason to carry it (Lax would add top-level
/// cross-site navigations, which never sign in). Path `/` so the API and
/// the admin sign-in share it.
pub fn device_cookie(state: &AppState, token: &str) -> HeaderValue {
    let max_age = state.config.rate_limit.device_token_ttl.as_secs();
    crate::http::site::guard::set_cookie(state, crate::service::devices::COOKIE, token, "/", max_age)
}

/// A sign-in's answer with the `forge_device` cookie of the device token it
/// hands out, if any: browsers keep the cookie, API clients read
/// `device_token` and send it back in `X-Forge-Device`.
pub fn with_device_cookie(state: &AppState, device_token: Option<&str>, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    if let Some(token) = device_token {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, device_cookie(state, token));
    }
    response
}

/// The tokens of a completed sign-in, with its device cookie.
pub fn tokens_answer(
    state: &AppState,
    user: crate::store::User,
    tenant: &crate::store::Tenant,
    tokens: crate::service::sessions::Tokens,
) -> Response {
    let device = tokens.device_token.clone();
    with_device_cookie(state, device.as_deref(), TokenResponse::new(user, tenant, tokens))
}

/// The answer to a sign-in that may stop at a second step, with the device
/// cookie when it completed.
pub fn sign_in_answer(
    state: &AppState,
    outcome: crate::service::sign_in::SignedIn<(crate::store::User, crate::service::sessions::Tokens)>,
    tenant: &crate::store::Tenant,
) -> Response {
    let device = outcome.tokens().and_then(|(_, tokens)| tokens.device_token.clone());
    with_device_cookie(state, device.as_deref(), SignInResponse::new(outcome, tenant))
}

/// Sign in with email or phone and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "identity",
    params(
        ("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug"),
        ("X-Forge-Device" = Option<String>, Header, description = "device token of an earlier sign-in (or the `forge_device` cookie, or `device_token` in the body)"),
    ),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "signed in (also sets the `forge_device` cookie; `mfa_enrollment_due` while the tenant's second-factor policy gives a grace), or, for a user with a second factor, `{mfa_required, mfa_token, factors}` to complete at /v1/auth/mfa/verify, or, for a user without one past the policy's grace, `{mfa_enrollment_required, enrollment_token}` to enrol a factor with", body = SignInResponse),
        (status = 400, description = "neither email nor phone given", body = ErrorBody),
        (status = 401, description = "invalid_credentials", body = ErrorBody),
        (status = 403, description = "user_disabled or email_not_verified", body = ErrorBody),
        (status = 429, description = "rate limited", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(mut meta): ClientMeta,
    Json(req): Json<LoginRequest>,
) -> AppResult<Response> {
    let identifier = match (req.email.as_deref(), req.phone.as_deref()) {
        (Some(e), None) => Identifier::Email(Email::parse(e).map_err(|e| AppError::validation("email", e))?),
        (None, Some(p)) => Identifier::Phone(Phone::parse(p).map_err(|e| AppError::validation("phone", e))?),
        _ => return Err(AppError::validation("email", "give either email or phone")),
    };
    if req.device_token.is_some() {
        meta.device_token = req.device_token;
    }
    let outcome = state.accounts.login(&tenant, &identifier, &req.password, &meta).await?;
    Ok(sign_in_answer(&state, outcome, &tenant))
}

fn oauth(status: StatusCode, code: ErrorCode, description: &str) -> AppError {
    AppError::OAuth {
        status,
        code,
        description: description.to_string(),
    }
}

/// Maps a use-case error to its RFC 6749 section 5.2 form.
fn to_oauth(err: AppError) -> AppError {
    match err {
        AppError::Unauthorized { .. } | AppError::Forbidden { .. } => oauth(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidGrant,
            "the credentials or refresh token are invalid",
        ),
        AppError::Validation { .. }
        | AppError::BadRequest { .. }
        | AppError::UnsupportedMediaType(_)
        | AppError::PayloadTooLarge => oauth(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "the request is missing a parameter or is malformed",
        ),
        other => other,
    }
}

/// The grant that completes a password grant answered with 403
/// `mfa_required` (after Auth0's `http://auth0.com/oauth/grant-type/mfa-otp`).
pub const MFA_GRANT: &str = "urn:forge:params:oauth:grant-type:mfa";

/// OAuth2 token endpoint: `password`, `refresh_token` and (second step)
/// `urn:forge:params:oauth:grant-type:mfa` grants of forge's own API, and
/// the OAuth client grants `authorization_code`, `client_credentials` and
/// `refresh_token` with client authentication (whose tenant is the
/// client's, whatever `X-Forge-Tenant` says).
#[utoipa::path(post, path = "/v1/auth/token", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded", description = "form or JSON"),
    responses(
        (status = 200, description = "tokens: `TokenResponse` for forge's own grants, `ClientTokenResponse` for an OAuth client's", body = TokenResponse),
        (status = 400, description = "RFC 6749 error: invalid_request, invalid_grant (also a wrong second factor or mfa_token, a reused, expired or foreign code, a wrong redirect_uri or code_verifier), invalid_scope, unauthorized_client, unsupported_grant_type", body = ErrorBody),
        (status = 401, description = "invalid_client (with `WWW-Authenticate: Basic` when HTTP Basic was used)", body = ErrorBody),
        (status = 403, description = "mfa_required: the password grant of a user with a second factor; complete it with the mfa grant and this mfa_token; or mfa_enrollment_required: a user without one past the grace of the tenant's second-factor policy; enrol a factor with the enrollment_token as the bearer", body = OAuthNextStep),
        (status = 429, description = "rate limited", body = ErrorBody),
    ))]
pub async fn token(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(mut meta): ClientMeta,
    headers: HeaderMap,
    body: Result<JsonOrForm<TokenRequest>, AppError>,
) -> AppResult<Response> {
    let JsonOrForm(req) = body.map_err(to_oauth)?;
    // The grants of OAuth clients: their tenant is the client's.
    let client_grant = matches!(req.grant_type.as_str(), "authorization_code" | "client_credentials")
        || (req.grant_type == "refresh_token"
            && (req.client_id.is_some() || crate::http::extract::basic_credentials(&headers).is_some()));
    if client_grant {
        return Ok(client_token(&state, &headers, req, &meta).await);
    }
    if req.device_token.is_some() {
        meta.device_token = req.device_token.clone();
    }
    let missing = |what: &str| {
        oauth(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            &format!("missing {what}"),
        )
    };
    let mut enrollment_due = None;
    let (user, tokens) = match req.grant_type.as_str() {
        "password" => {
            let username = req.username.as_deref().ok_or_else(|| missing("username"))?;
            let password = req.password.as_ref().ok_or_else(|| missing("password"))?;
            let identifier = Identifier::parse(username).map_err(|_| {
                oauth(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidGrant,
                    "the credentials or refresh token are invalid",
                )
            })?;
            match state
                .accounts
                .login(&tenant, &identifier, password, &meta)
                .await
                .map_err(to_oauth)?
            {
                SignedIn::Complete(signed_in) => signed_in,
                SignedIn::EnrollmentDue { signed_in, until } => {
                    enrollment_due = Some(until);
                    signed_in
                }
                SignedIn::SecondFactor(step) => return Ok(oauth_mfa_required(step)),
                SignedIn::EnrollmentRequired(step) => return Ok(oauth_mfa_enrollment_required(step)),
            }
        }
        "refresh_token" => {
            let token = req.refresh_token.as_deref().ok_or_else(|| missing("refresh_token"))?;
            state.sessions.refresh(&tenant, token, &meta).await.map_err(to_oauth)?
        }
        MFA_GRANT => {
            let token = req.mfa_token.as_deref().ok_or_else(|| missing("mfa_token"))?;
            let factor = match (&req.otp, &req.recovery_code) {
                (Some(code), None) if code.expose().len() <= 32 => SecondFactor::Totp(code.expose()),
                (None, Some(code)) if code.expose().len() <= 64 => SecondFactor::RecoveryCode(code.expose()),
                _ => return Err(missing("exactly one of otp or recovery_code")),
            };
            state
                .mfa
                .complete(&tenant, token, factor, &meta)
                .await
                .map_err(to_oauth)?
        }
        _ => {
            return Err(oauth(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code, client_credentials, refresh_token, password or urn:forge:params:oauth:grant-type:mfa",
            ));
        }
    };
    Ok(TokenResponse::signed_in(user, &tenant, tokens, enrollment_due).into_response())
}

/// The grants of OAuth clients (`authorization_code`, `client_credentials`,
/// and `refresh_token` with client authentication): the client
/// authenticates, the tenant is the client's, errors are RFC 6749's, and a
/// failed HTTP Basic authentication answers `WWW-Authenticate: Basic`.
async fn client_token(
    state: &AppState,
    headers: &HeaderMap,
    req: TokenRequest,
    meta: &crate::service::RequestMeta,
) -> Response {
    use crate::http::oauth::{client_auth, with_basic_challenge};
    let basic = crate::http::extract::basic_credentials(headers).is_some();
    let missing = |what: &str| {
        oauth(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            &format!("missing {what}"),
        )
    };
    let result = async {
        let auth = client_auth(headers, req.client_id.as_deref(), req.client_secret.as_ref())?;
        let oidc = &state.oidc;
        match req.grant_type.as_str() {
            "authorization_code" => {
                let code = req.code.as_ref().ok_or_else(|| missing("code"))?;
                oidc.exchange_code(
                    &auth,
                    code.expose(),
                    req.redirect_uri.as_deref(),
                    req.code_verifier.as_ref().map(|v| v.expose()),
                    meta,
                )
                .await
            }
            "client_credentials" => oidc.client_credentials(&auth, req.scope.as_deref()).await,
            _ => {
                let token = req.refresh_token.as_deref().ok_or_else(|| missing("refresh_token"))?;
                oidc.refresh(&auth, token, meta).await
            }
        }
    }
    .await;
    let response = match result {
        Ok(tokens) => ClientTokenResponse::from(tokens).into_response(),
        Err(e) => e.into_response(),
    };
    with_basic_challenge(response, basic)
}

/// The password grant of a user past the grace of the tenant's policy
/// without a factor: 403 `mfa_enrollment_required` in the same shape as
/// [`oauth_mfa_required`], with the `enrollment_token` instead.
fn oauth_mfa_enrollment_required(step: crate::service::sign_in::EnrollmentStep) -> Response {
    OAuthNextStep::MfaEnrollmentRequired(OAuthMfaEnrollmentRequired {
        error: ErrorCode::MfaEnrollmentRequired.as_str(),
        error_description: "the tenant requires a second factor: enrol one with the enrollment_token as the bearer",
        message: "enrol a second factor to sign in",
        enrollment_token: step.enrollment_token.expose().to_string(),
    })
    .into_response()
}

/// The password grant of a user with a second factor, the OAuth2 way (as
/// Auth0 answers it): 403 `mfa_required` with the `mfa_token` the `mfa`
/// grant completes.
fn oauth_mfa_required(step: crate::service::sign_in::SecondStep) -> Response {
    OAuthNextStep::MfaRequired(OAuthMfaRequired {
        error: ErrorCode::MfaRequired.as_str(),
        error_description: "a second factor is required: use grant_type urn:forge:params:oauth:grant-type:mfa",
        message: "a second factor is required",
        mfa_token: step.mfa_token.expose().to_string(),
    })
    .into_response()
}

/// Rotate a refresh token: the old one stops working, a new pair is returned.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_grant (reuse outside the grace window also revokes the session)", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<RefreshRequest>,
) -> AppResult<TokenResponse> {
    let (user, tokens) = state.sessions.refresh(&tenant, &req.refresh_token, &meta).await?;
    Ok(TokenResponse::new(user, &tenant, tokens))
}

/// Sign out this session (or, with `scope: all`, every session of the user).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "identity",
    params(("X-Forge-Tenant" = Option<String>, Header, description = "tenant slug")),
    request_body(content = Option<LogoutRequest>, description = "optional; `refresh_token` alone signs out without a bearer"),
    responses((status = 204, description = "signed out"), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn logout(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    MaybeAuth(principal): MaybeAuth,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AppResult<StatusCode> {
    // The body is optional: a bare POST with a bearer signs out.
    let req: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        let is_json = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(AppError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        // `null` is no body, as the document's nullable schema says.
        serde_json::from_slice::<Option<LogoutRequest>>(&body)
            .map_err(|_| AppError::bad_request(ErrorCode::InvalidRequest, "invalid logout body"))?
            .unwrap_or_default()
    };
    let scope = match req.scope.as_deref() {
        None | Some("session") => LogoutScope::Session,
        Some("all") => LogoutScope::All,
        Some(_) => return Err(AppError::validation("scope", "must be session or all")),
    };
    // The token's tenant wins; the header cannot redirect a sign-out.
    let tenant = principal.as_ref().map(|p| p.tenant.clone()).unwrap_or(tenant);
    state
        .sessions
        .logout(&tenant, principal.as_ref(), req.refresh_token.as_deref(), scope, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forward-auth for reverse proxies: 200 with identity headers, 401, or 403;
/// a browser without a session is sent to `forward_auth.login_url` instead
/// of the 401 (see [`crate::service::forward_auth`] for who counts as one).
#[utoipa::path(get, path = "/v1/auth/verify", tag = "sidecar",
    params(VerifyQuery),
    responses(
        (status = 200, description = "authenticated in the expected tenant; identity in X-Forge-User-Id, X-Forge-Tenant, X-Forge-Session-Id, X-Forge-Roles, X-Forge-Aal (1 or 2), X-Forge-Amr (RFC 8176 values, comma-separated, absent when unknown), Remote-User (verified email, else verified phone, else user id), Remote-Email (only a verified email), Remote-Groups; all ASCII"),
        (status = 302, description = "a browser (its Accept prefers text/html) without a valid session, when forward_auth.login_url is set: Location is the sign-in page with the original URL as `rd` (only when that URL is in server.allowed_redirects)"),
        (status = 303, description = "as 302, after an original request with a method other than GET or HEAD (X-Forwarded-Method / X-Original-Method)"),
        (status = 400, description = "the tenant parameter is not a valid slug, aal is not 1 or 2, or mode is unknown", body = ErrorBody),
        (status = 401, description = "no, bad, expired or revoked token; in mode=auth_request a browser's sign-in redirect is this 401 with a Location header (nginx turns it into the 302)", body = ErrorBody),
        (status = 403, description = "a token of another tenant (wrong_tenant), lacks the requested role or permission (forbidden), or is below the requested aal (mfa_required)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    Query(query): Query<VerifyQuery>,
    // The request itself, not a `HeaderMap` (axum's extractor clones the
    // map): forward auth is a hot path.
    request: axum::extract::Request,
) -> AppResult<Response> {
    let request_headers = request.headers();
    let expected = match query.tenant.as_deref() {
        Some(slug) => TenantSlug::parse(slug).map_err(|e| AppError::validation("tenant", e))?,
        None => TenantSlug::default_tenant(),
    };
    let required_aal = query
        .aal
        .as_deref()
        .map(Aal::parse)
        .transpose()
        .map_err(|e| AppError::validation("aal", e))?;
    let mode = query
        .mode
        .as_deref()
        .map(Mode::parse)
        .transpose()
        .map_err(|e| AppError::validation("mode", e))?
        .unwrap_or_default();
    let authenticated = match bearer(request_headers).or_else(|| session_cookie(request_headers)) {
        Some(token) => state.sessions.authenticate(token).await,
        None => Err(AppError::invalid_token()),
    };
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(err) if err.status() == StatusCode::UNAUTHORIZED => {
            return Ok(unauthenticated(&state, &query, mode, request_headers, err));
        }
        Err(err) => return Err(err),
    };
    // The answer is about one tenant: an `admin` of another tenant is
    // nobody here.
    if principal.tenant.slug != expected {
        return Err(AppError::forbidden(
            ErrorCode::WrongTenant,
            "the token belongs to another tenant",
        ));
    }
    let roles = state.rbac.effective_roles(&principal).await?;
    if let Some(role) = &query.role
        && !roles.iter().any(|r| r == role)
    {
        return Err(AppError::forbidden(ErrorCode::Forbidden, "missing the required role"));
    }
    if let Some(permission) = &query.permission
        && !state.rbac.has_permission(&principal, permission).await?
    {
        return Err(AppError::forbidden(
            ErrorCode::Forbidden,
            "missing the required permission",
        ));
    }
    // Last: a user who lacks the role gains nothing by a second factor.
    let assurance = principal.assurance();
    if let Some(required) = required_aal
        && !assurance.meets(required)
    {
        return Err(AppError::forbidden(
            ErrorCode::MfaRequired,
            "this needs a second factor: complete one and present the new token",
        ));
    }
    // Straight into the response's own map, sized once, under names made
    // at compile time: this is forward auth's hot path. Room for the nine
    // below, `cache-control`, and the access layer's request id and
    // `nosniff`.
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.reserve(12);
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    let claims = &principal.claims;
    let roles = roles.join(",");
    put(forwarded::USER_ID, &claims.sub);
    put(forwarded::TENANT, &claims.tid);
    put(forwarded::SESSION_ID, &claims.sid);
    put(forwarded::ROLES, &roles);
    put(forwarded::AAL, &assurance.aal.to_string());
    if !assurance.amr.is_empty() {
        put(forwarded::AMR, &assurance.amr_column());
    }
    // Tokens carry only proven identifiers (see `sessions::mint_access`);
    // headers carry only ASCII, so an internationalised address is left out.
    let email = claims
        .email
        .as_deref()
        .filter(|e| claims.email_verified && e.is_ascii());
    let phone = claims
        .phone
        .as_deref()
        .filter(|p| claims.phone_verified && p.is_ascii());
    put(forwarded::REMOTE_USER, email.or(phone).unwrap_or(&claims.sub));
    if let Some(email) = email {
        put(forwarded::REMOTE_EMAIL, email);
    }
    put(forwarded::REMOTE_GROUPS, &roles);
    headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The headers a successful forward-auth check answers with.
mod forwarded {
    use axum::http::HeaderName;

    pub const USER_ID: HeaderName = HeaderName::from_static("x-forge-user-id");
    pub const TENANT: HeaderName = HeaderName::from_static("x-forge-tenant");
    pub const SESSION_ID: HeaderName = HeaderName::from_static("x-forge-session-id");
    pub const ROLES: HeaderName = HeaderName::from_static("x-forge-roles");
    pub const AAL: HeaderName = HeaderName::from_static("x-forge-aal");
    pub const AMR: HeaderName = HeaderName::from_static("x-forge-amr");
    pub const REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
    pub const REMOTE_EMAIL: HeaderName = HeaderName::from_static("remote-email");
    pub const REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
}

/// The answer to a check without a valid session: the 401 itself, or the
/// sign-in redirect [`forward_auth::challenge`] decides on.
fn unauthenticated(state: &AppState, query: &VerifyQuery, mode: Mode, headers: &HeaderMap, err: AppError) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = OriginalRequest {
        mode,
        rd: query.rd.as_deref(),
        accept: header("accept"),
        requested_with: header("x-requested-with"),
        method: header("x-forwarded-method").or_else(|| header("x-original-method")),
        original_url: header("x-original-url"),
        forwarded_proto: header("x-forwarded-proto"),
        forwarded_host: header("x-forwarded-host"),
        forwarded_uri: header("x-forwarded-uri"),
    };
    let Challenge::SignIn { location, see_other } = forward_auth::challenge(&state.config, &request) else {
        return err.into_response();
    };
    let Ok(location) = HeaderValue::from_str(location.as_str()) else {
        return err.into_response();
    };
    let mut response = match mode {
        Mode::AuthRequest => err.into_response(),
        Mode::ForwardAuth if see_other => StatusCode::SEE_OTHER.into_response(),
        Mode::ForwardAuth => StatusCode::FOUND.into_response(),
    };
    let h = response.headers_mut();
    h.insert(axum::http::header::LOCATION, location);
    h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// RFC 7662 token introspection of an access token. The caller authenticates
/// (section 2.1): a bearer token whose user holds `tokens:introspect` (then
/// tokens of other tenants are `{"active": false}`), or HTTP Basic with
/// `introspection.username` / `introspection.secret` (any tenant).
#[utoipa::path(post, path = "/v1/auth/introspect", tag = "sidecar",
    request_body(content = IntrospectRequest, description = "form or JSON"),
    responses(
        (status = 200, description = "the token's claims, or only `{\"active\": false}`", body = IntrospectResponse),
        (status = 400, description = "invalid body", body = ErrorBody),
        (status = 401, description = "the caller is not authenticated (no, bad or revoked bearer token; wrong Basic credentials)", body = ErrorBody),
        (status = 403, description = "the caller lacks the permission tokens:introspect", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "neither JSON nor a form", body = ErrorBody),
    ),
    security(("bearer" = []), ("introspection_basic" = [])))]
pub async fn introspect(
    State(state): State<AppState>,
    caller: IntrospectionCaller,
    JsonOrForm(req): JsonOrForm<IntrospectRequest>,
) -> AppResult<axum::Json<IntrospectResponse>> {
    let Ok(principal) = state.sessions.authenticate(&req.token).await else {
        return Ok(axum::Json(IntrospectResponse::default()));
    };
    // A tenant's introspector learns nothing about other tenants' tokens,
    // not even that they are live.
    if let IntrospectionCaller::User(caller) = &caller
        && caller.tenant.id != principal.tenant.id
    {
        return Ok(axum::Json(IntrospectResponse::default()));
    }
    let c = &principal.claims;
    Ok(axum::Json(IntrospectResponse {
        active: true,
        sub: Some(c.sub.clone()),
        tid: Some(c.tid.clone()),
        sid: Some(c.sid.clone()),
        roles: Some(c.roles.clone()),
        exp: Some(c.exp),
        iat: Some(c.iat),
        iss: Some(c.iss.clone()),
        aud: Some(c.aud.clone()),
        jti: Some(c.jti.clone()),
        token_type: Some("access_token"),
        amr: (!c.amr.is_empty()).then(|| c.assurance().amr_names()),
        aal: Some(c.aal.as_u8()),
    }))
}
