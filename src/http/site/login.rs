//! Signing in to and out of the admin site.
//!
//! The sign-in form has no session to carry a CSRF token yet, so it gets
//! its own: a random token in a short-lived `SameSite=Strict` cookie scoped
//! to `/admin/login`, repeated in a hidden field and compared in constant
//! time (double submit). With the Fetch-Metadata check this keeps another
//! site from signing a browser in to an account of the attacker's choosing.
//! Sign-in mints a fresh session token every time (no fixation) and drops
//! the form's token.
//!
//! Passkeys. When `webauthn.rp_id` is set the form also offers "Sign in with
//! a passkey", driven by the site's one script (`static/passkey.js`, served
//! by forge and allowed by a per-response CSP nonce on this page only). The
//! script asks `/admin/login/passkey/options` for the options and submits
//! the authenticator's answer to `/admin/login/passkey` as a form: both
//! carry the same double-submit token as the password form, and the answer
//! goes through the same admin checks and session creation
//! (`SiteSessions::sign_in_passkey`). The second step offers "Use a
//! passkey" the same way (`/admin/login/mfa/passkey/options`, then
//! `/admin/login/mfa/passkey`, bound to the step's challenge), so an
//! administrator whose factor is a passkey can also sign in with the
//! password and the passkey.
//!
//! First factor. An administrator whose tenant's policy requires a factor
//! they do not have gets, after the password, the enrolment step instead
//! of a session: a QR code (an SVG drawn server-side, shown as a `data:`
//! image so no markup of it is trusted) and the secret for manual entry,
//! and a code field posting to `/admin/login/enrol` with the same
//! double-submit token and the step's challenge. The right code confirms
//! the factor and signs in; the answer shows the recovery codes once,
//! sets the session cookie and links on, instead of redirecting. With
//! passkeys on, the step also offers "Use a passkey instead"
//! (`/admin/login/enrol/passkey/options`, then `/admin/login/enrol/passkey`,
//! bound to the same challenge and token).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::guard::{self, Admin, COOKIE, CsrfForm, LOGIN_COOKIE};
use super::views::{self, PageError, page_with};
use crate::crypto::tokens::random_token;
use crate::domain::{Email, Identifier, Phone};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::secret::Secret;
use crate::service::factors::MfaProof;
use crate::service::passkey_factors::PasskeyOptions;
use crate::service::site::sessions::{EnrolledSignIn, Loaded, SignedIn, SiteEnrolment, SiteSignIn};
use crate::state::AppState;

/// How long a sign-in form stays usable.
const FORM_TTL_SECS: u64 = 3_600;

#[derive(Template)]
#[template(path = "site/login.html")]
struct LoginPage {
    css: &'static str,
    csrf: String,
    next: String,
    identifier: String,
    tenant: String,
    error: Option<String>,
    /// Offer "Sign in with a passkey" (`webauthn.rp_id` is set).
    passkeys: bool,
    script: &'static str,
    /// The nonce of this rendering's script tag.
    nonce: String,
}

impl LoginPage {
    fn new(state: &AppState, next: Option<String>, identifier: &str, tenant: &str, error: Option<String>) -> Self {
        Self {
            css: views::stylesheet_url(),
            csrf: String::new(),
            next: next.unwrap_or_default(),
            identifier: identifier.chars().take(254).collect(),
            tenant: tenant.chars().take(63).collect(),
            error,
            passkeys: state.passkey_factors.is_enabled(),
            script: views::passkey_script_url(),
            nonce: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "site/login_mfa.html")]
struct SecondStepPage {
    css: &'static str,
    csrf: String,
    next: String,
    tenant: String,
    challenge: String,
    error: Option<String>,
    /// Offer "Use a passkey" (`webauthn.rp_id` is set).
    passkeys: bool,
    script: &'static str,
    nonce: String,
}

impl SecondStepPage {
    fn new(state: &AppState, next: Option<String>, tenant: &str, challenge: &str, error: Option<String>) -> Self {
        Self {
            css: views::stylesheet_url(),
            csrf: String::new(),
            next: next.unwrap_or_default(),
            tenant: tenant.chars().take(63).collect(),
            challenge: challenge.chars().take(64).collect(),
            error,
            passkeys: state.passkey_factors.is_enabled(),
            script: views::passkey_script_url(),
            nonce: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "site/login_enrol.html")]
struct EnrolPage {
    css: &'static str,
    csrf: String,
    next: String,
    tenant: String,
    challenge: String,
    /// The pending factor's id.
    factor: String,
    /// The QR code as a `data:` URI; only on the page that starts the
    /// enrolment (the secret is not kept anywhere it could be shown again).
    qr: Option<String>,
    /// The secret in base32, for manual entry; with the QR code only.
    secret: Option<String>,
    /// The `otpauth://` URI, a link for an authenticator app on this device.
    otpauth: Option<String>,
    error: Option<String>,
    /// Offer "Use a passkey instead" (`webauthn.rp_id` is set).
    passkeys: bool,
    script: &'static str,
    nonce: String,
}

impl EnrolPage {
    fn started(state: &AppState, next: Option<String>, tenant: &str, enrolment: &SiteEnrolment) -> Self {
        use base64::Engine;
        let svg = base64::engine::general_purpose::STANDARD.encode(enrolment.totp.qr_svg.as_bytes());
        Self {
            qr: Some(format!("data:image/svg+xml;base64,{svg}")),
            secret: Some(enrolment.totp.secret.to_base32()),
            otpauth: Some(enrolment.totp.otpauth_uri.clone()),
            ..Self::retry(
                state,
                next,
                tenant,
                enrolment.token.expose(),
                &enrolment.totp.factor.id.to_string(),
                None,
            )
        }
    }

    fn retry(
        state: &AppState,
        next: Option<String>,
        tenant: &str,
        challenge: &str,
        factor: &str,
        error: Option<String>,
    ) -> Self {
        Self {
            css: views::stylesheet_url(),
            csrf: String::new(),
            next: next.unwrap_or_default(),
            tenant: tenant.chars().take(63).collect(),
            challenge: challenge.chars().take(64).collect(),
            factor: factor.chars().take(36).collect(),
            qr: None,
            secret: None,
            otpauth: None,
            error,
            passkeys: state.passkey_factors.is_enabled(),
            script: views::passkey_script_url(),
            nonce: String::new(),
        }
    }
}

/// The first factor's recovery codes, shown once as the session opens.
#[derive(Template)]
#[template(path = "site/login_enrolled.html")]
struct EnrolledPage {
    css: &'static str,
    next: String,
    recovery_codes: Vec<String>,
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    factor: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

/// The enrolment step's request for passkey creation options.
#[derive(Deserialize)]
pub struct EnrolPasskeyOptionsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    tenant: String,
}

/// The enrolment step answered with a new passkey.
#[derive(Deserialize)]
pub struct EnrolPasskeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    /// The pending TOTP factor, kept for the step shown again.
    #[serde(default)]
    factor: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct SecondStepForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

/// The passkey script's request for options: the form's token only.
#[derive(Deserialize)]
pub struct PasskeyOptionsForm {
    #[serde(default)]
    csrf: String,
}

/// The passkey form the script submits once the authenticator answered.
#[derive(Deserialize)]
pub struct PasskeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request_id: String,
    /// The browser's answer in its JSON form.
    #[serde(default)]
    credential: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

/// The second step's request for passkey options.
#[derive(Deserialize)]
pub struct SecondPasskeyOptionsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    tenant: String,
}

/// The second step answered with a passkey.
#[derive(Deserialize)]
pub struct SecondPasskeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    next: String,
}

fn form_response(state: &AppState, status: StatusCode, mut page: LoginPage) -> Response {
    // A fresh form token on every rendering of the form.
    let token = random_token();
    page.csrf = token.clone();
    if !page.passkeys {
        return with_form_cookie(state, page_with(status, &page), &token);
    }
    // And a fresh nonce: the passkey script runs under this page's CSP only.
    let nonce = views::script_nonce();
    page.nonce = nonce.clone();
    views::with_script(with_form_cookie(state, page_with(status, &page), &token), nonce)
}

fn second_step_response(state: &AppState, status: StatusCode, mut page: SecondStepPage) -> Response {
    let token = random_token();
    page.csrf = token.clone();
    if !page.passkeys {
        return with_form_cookie(state, page_with(status, &page), &token);
    }
    let nonce = views::script_nonce();
    page.nonce = nonce.clone();
    views::with_script(with_form_cookie(state, page_with(status, &page), &token), nonce)
}

fn enrol_response(state: &AppState, status: StatusCode, mut page: EnrolPage) -> Response {
    let token = random_token();
    page.csrf = token.clone();
    if !page.passkeys {
        return with_form_cookie(state, page_with(status, &page), &token);
    }
    let nonce = views::script_nonce();
    page.nonce = nonce.clone();
    views::with_script(with_form_cookie(state, page_with(status, &page), &token), nonce)
}

fn with_form_cookie(state: &AppState, mut response: Response, token: &str) -> Response {
    response.headers_mut().append(
        header::SET_COOKIE,
        guard::set_cookie(state, LOGIN_COOKIE, token, "/admin/login", FORM_TTL_SECS),
    );
    response
}

/// `GET /admin/login`: the form, or the dashboard for someone signed in.
pub async fn form(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = guard::safe_next(query.next.as_deref());
    if let Some(token) = guard::cookie(&headers, COOKIE)
        && let Ok(Loaded::Valid(_)) = state.site_sessions.load(token, false).await
    {
        return guard::see_other(next.as_deref().unwrap_or("/admin"));
    }
    form_response(&state, StatusCode::OK, LoginPage::new(&state, next, "", "", None))
}

pub(crate) fn parse_identifier(input: &str) -> Option<Identifier> {
    let input = input.trim();
    if input.starts_with('+') {
        Phone::parse(input).ok().map(Identifier::Phone)
    } else {
        Email::parse(input).ok().map(Identifier::Email)
    }
}

/// Every sign-in form's edge: a malformed form is 400, and the form's
/// `csrf` must equal the login cookie (double submit) or it is 403.
fn checked_form<F: CsrfForm>(
    headers: &axum::http::HeaderMap,
    form: Result<axum::Form<F>, axum::extract::rejection::FormRejection>,
) -> Result<F, PageError> {
    guard::double_submit(headers, LOGIN_COOKIE, form).map_err(PageError)
}

crate::csrf_forms!(
    LoginForm,
    SecondStepForm,
    EnrolForm,
    EnrolPasskeyOptionsForm,
    EnrolPasskeyForm,
    PasskeyOptionsForm,
    PasskeyForm,
    SecondPasskeyOptionsForm,
    SecondPasskeyForm,
);

/// `POST /admin/login`.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let next = guard::safe_next(Some(&form.next));
    let retry = |status: StatusCode, error: String| {
        form_response(
            &state,
            status,
            LoginPage::new(&state, next.clone(), &form.identifier, &form.tenant, Some(error)),
        )
    };
    let Some(identifier) = parse_identifier(&form.identifier) else {
        return retry(
            StatusCode::BAD_REQUEST,
            "Enter your email address, or your phone number starting with +.".into(),
        );
    };
    if form.password.is_empty() {
        return retry(StatusCode::BAD_REQUEST, "Enter your password.".into());
    }
    let password = Secret::new(form.password.clone());
    match state
        .site_sessions
        .sign_in(&form.tenant, &identifier, &password, &meta)
        .await
    {
        Ok(SiteSignIn::Done(signed_in)) => signed_in_response(&state, &headers, next.as_deref(), &signed_in).await,
        Ok(SiteSignIn::SecondFactor { token }) => second_step_response(
            &state,
            StatusCode::OK,
            SecondStepPage::new(&state, next.clone(), &form.tenant, token.expose(), None),
        ),
        Ok(SiteSignIn::Enrol(enrolment)) => enrol_response(
            &state,
            StatusCode::OK,
            EnrolPage::started(&state, next.clone(), &form.tenant, &enrolment),
        ),
        Err(AppError::Unauthorized { .. }) => {
            retry(StatusCode::UNAUTHORIZED, "Wrong email, password or tenant.".into())
        }
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, views::describe(&e)), &e)
        }
        Err(e @ AppError::Forbidden { .. }) => retry(StatusCode::FORBIDDEN, views::describe(&e)),
        Err(e) => PageError(e).into_response(),
    }
}

/// The JSON the passkey script reads (`{request_id, publicKey}`), or the
/// error it shows: the same words for every ceremony behind a sign-in step.
pub(crate) fn options_answer(outcome: AppResult<PasskeyOptions>) -> Response {
    match outcome {
        Ok(options) => axum::Json(serde_json::json!({
            "request_id": options.request_id,
            "publicKey": options.public_key,
        }))
        .into_response(),
        Err(AppError::Conflict {
            code: ErrorCode::NoFactor,
            ..
        }) => AppError::conflict(
            ErrorCode::NoFactor,
            "This account has no passkey: enter a code instead.",
        )
        .into_response(),
        Err(AppError::Unauthorized { .. }) => {
            AppError::unauthorized(ErrorCode::InvalidToken, "The sign-in attempt expired. Sign in again.")
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// How a step behind a sign-in challenge (the second factor, enrolment)
/// shows a refusal: the step again (`retry`) for a wrong answer (`wrong`)
/// or a spent budget, the sign-in form (`again`) once the attempt is over.
fn step_refusal(
    e: AppError,
    wrong: &str,
    retry: impl Fn(StatusCode, String) -> Response,
    again: impl Fn(StatusCode, String) -> Response,
) -> Response {
    match e {
        AppError::Unauthorized {
            code: ErrorCode::InvalidMfa,
            ..
        } => retry(StatusCode::UNAUTHORIZED, wrong.into()),
        AppError::Validation { .. } => retry(StatusCode::BAD_REQUEST, wrong.into()),
        AppError::Unauthorized { .. } => again(
            StatusCode::UNAUTHORIZED,
            "The sign-in attempt expired. Sign in again.".into(),
        ),
        e @ AppError::RateLimited { .. } => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, views::describe(&e)), &e)
        }
        e @ AppError::Forbidden { .. } => again(StatusCode::FORBIDDEN, views::describe(&e)),
        e => PageError(e).into_response(),
    }
}

/// A rate-limited attempt's page, with the `Retry-After` of the limit.
pub(crate) fn with_retry_after(mut response: Response, e: &AppError) -> Response {
    if let AppError::RateLimited { retry_after_secs } = e {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, (*retry_after_secs).max(1).into());
    }
    response
}

/// The redirect that sets the new session's cookie and drops the form's.
async fn signed_in_response(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    next: Option<&str>,
    signed_in: &SignedIn,
) -> Response {
    let response = guard::see_other(next.unwrap_or("/admin"));
    with_session(state, headers, response, signed_in).await
}

/// `response` setting the new session's cookie (and the device cookie),
/// dropping the form's, and forgetting the browser's previous session.
async fn with_session(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    mut response: Response,
    signed_in: &SignedIn,
) -> Response {
    if let Some(old) = guard::cookie(headers, COOKIE)
        && let Err(e) = state.site_sessions.discard(old).await
    {
        return PageError(e).into_response();
    }
    let max_age = state.config.admin.session_absolute.as_secs();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        guard::set_cookie(state, COOKIE, &signed_in.token, "/admin", max_age),
    );
    headers.append(
        header::SET_COOKIE,
        guard::set_cookie(state, LOGIN_COOKIE, "", "/admin/login", 0),
    );
    headers.append(
        header::SET_COOKIE,
        crate::http::api::auth::device_cookie(state, &signed_in.device_token),
    );
    response
}

/// `POST /admin/login/mfa`: the second step of a sign-in for a user with a
/// factor. Same double-submit CSRF as the password form; the challenge
/// token (hidden field) binds it server-side to the proven password.
pub async fn second_step(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<SecondStepForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let next = guard::safe_next(Some(&form.next));
    let tenant: String = form.tenant.chars().take(63).collect();
    let retry = |status: StatusCode, error: String| {
        second_step_response(
            &state,
            status,
            SecondStepPage::new(&state, next.clone(), &tenant, &form.challenge, Some(error)),
        )
    };
    let again = |status: StatusCode, error: String| {
        form_response(
            &state,
            status,
            LoginPage::new(&state, next.clone(), "", &tenant, Some(error)),
        )
    };
    let code = form.code.trim();
    if code.is_empty() || code.len() > 64 {
        return retry(StatusCode::BAD_REQUEST, "Enter the code.".into());
    }
    // Authenticator codes are digits; recovery codes are not.
    let proof = if code.bytes().all(|b| b.is_ascii_digit()) {
        MfaProof::Totp(code)
    } else {
        MfaProof::RecoveryCode(code)
    };
    match state
        .site_sessions
        .sign_in_second_factor(&form.tenant, &form.challenge, proof, &meta)
        .await
    {
        Ok(signed_in) => signed_in_response(&state, &headers, next.as_deref(), &signed_in).await,
        Err(e) => step_refusal(e, "Wrong or already used code.", retry, again),
    }
}

/// `POST /admin/login/enrol`: the first code of the factor the password
/// step started for an administrator the tenant's policy covers. Same
/// double-submit CSRF as the password form; the challenge token (hidden
/// field) binds it server-side to the proven password. The right code
/// answers with the recovery codes (shown once) and the session cookie; a
/// wrong one shows the step again, the factor still pending.
pub async fn enrol(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<EnrolForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let next = guard::safe_next(Some(&form.next));
    let tenant: String = form.tenant.chars().take(63).collect();
    let retry = |status: StatusCode, error: String| {
        enrol_response(
            &state,
            status,
            EnrolPage::retry(
                &state,
                next.clone(),
                &tenant,
                &form.challenge,
                &form.factor,
                Some(error),
            ),
        )
    };
    let again = |status: StatusCode, error: String| {
        form_response(
            &state,
            status,
            LoginPage::new(&state, next.clone(), "", &tenant, Some(error)),
        )
    };
    let code = form.code.trim();
    if code.is_empty() || code.len() > 16 {
        return retry(
            StatusCode::BAD_REQUEST,
            "Enter the code from your authenticator app.".into(),
        );
    }
    let outcome = state
        .site_sessions
        .sign_in_enrolling(&form.tenant, &form.challenge, &form.factor, code, &meta)
        .await;
    let wrong = "Wrong or expired code. Try the current one.";
    enrolled_response(&state, &headers, next.clone(), outcome, wrong, retry, again).await
}

/// What an enrolment step's outcome shows: the recovery codes with the new
/// session, the step again (`retry`) or the sign-in form (`again`).
async fn enrolled_response(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    next: Option<String>,
    outcome: Result<EnrolledSignIn, AppError>,
    wrong: &str,
    retry: impl Fn(StatusCode, String) -> Response,
    again: impl Fn(StatusCode, String) -> Response,
) -> Response {
    match outcome {
        Ok(done) => match done.recovery_codes {
            Some(recovery_codes) => {
                let page = EnrolledPage {
                    css: views::stylesheet_url(),
                    next: next.unwrap_or_else(|| "/admin".into()),
                    recovery_codes,
                };
                with_session(state, headers, page_with(StatusCode::OK, &page), &done.signed_in).await
            }
            None => signed_in_response(state, headers, next.as_deref(), &done.signed_in).await,
        },
        Err(e) => step_refusal(e, wrong, retry, again),
    }
}

/// `POST /admin/login/enrol/passkey/options`: creation options for a
/// passkey as the first factor of the enrolment step behind the challenge,
/// as JSON for the passkey script.
pub async fn enrol_passkey_options(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<EnrolPasskeyOptionsForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(PageError(refused)) => return refused.into_response(),
    };
    options_answer(
        state
            .site_sessions
            .enrol_passkey_options(&form.tenant, &form.challenge, &meta)
            .await,
    )
}

/// `POST /admin/login/enrol/passkey`: the enrolment step answered with a
/// new passkey (the script submits it as a form); a refused registration
/// counts against the challenge like a wrong code.
pub async fn enrol_passkey(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<EnrolPasskeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let next = guard::safe_next(Some(&form.next));
    let tenant: String = form.tenant.chars().take(63).collect();
    let refused = "The passkey was not added. Try again, or set up an authenticator app.";
    let retry = |status: StatusCode, error: String| {
        enrol_response(
            &state,
            status,
            EnrolPage::retry(
                &state,
                next.clone(),
                &tenant,
                &form.challenge,
                &form.factor,
                Some(error),
            ),
        )
    };
    let again = |status: StatusCode, error: String| {
        form_response(
            &state,
            status,
            LoginPage::new(&state, next.clone(), "", &tenant, Some(error)),
        )
    };
    let Ok(credential) = serde_json::from_str::<serde_json::Value>(&form.credential) else {
        return retry(StatusCode::BAD_REQUEST, refused.into());
    };
    let outcome = state
        .site_sessions
        .sign_in_enrolling_passkey(&form.tenant, &form.challenge, &form.request_id, credential, &meta)
        .await;
    enrolled_response(&state, &headers, next.clone(), outcome, refused, retry, again).await
}

/// `POST /admin/login/passkey/options`: the options of a passwordless
/// ceremony (discoverable credential, no user named), as JSON for the
/// passkey script. Same double-submit CSRF and Fetch-Metadata rules as the
/// password form; rate-limited per client address with the sign-ins.
pub async fn passkey_options(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<PasskeyOptionsForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(PageError(refused)) = checked_form(&headers, form) {
        return refused.into_response();
    }
    options_answer(state.passkey_factors.start_sign_in(&meta).await)
}

/// `POST /admin/login/passkey`: the authenticator's answer (the script
/// submits it as a form). Success is the redirect of any sign-in; every
/// refusal shows the sign-in form again with one generic message.
pub async fn passkey_sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<PasskeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let next = guard::safe_next(Some(&form.next));
    let retry = |status: StatusCode, error: String| {
        form_response(
            &state,
            status,
            LoginPage::new(&state, next.clone(), "", &form.tenant, Some(error)),
        )
    };
    let refused = "The passkey was not accepted. Try again, or sign in with your password.";
    let Ok(credential) = serde_json::from_str::<serde_json::Value>(&form.credential) else {
        return retry(StatusCode::BAD_REQUEST, refused.into());
    };
    match state
        .site_sessions
        .sign_in_passkey(&form.tenant, &form.request_id, credential, &meta)
        .await
    {
        Ok(signed_in) => signed_in_response(&state, &headers, next.as_deref(), &signed_in).await,
        Err(AppError::Unauthorized { .. }) => retry(StatusCode::UNAUTHORIZED, refused.into()),
        Err(AppError::Validation { .. }) => retry(StatusCode::BAD_REQUEST, refused.into()),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, views::describe(&e)), &e)
        }
        Err(e @ AppError::Forbidden { .. }) => retry(StatusCode::FORBIDDEN, views::describe(&e)),
        Err(e) => PageError(e).into_response(),
    }
}

/// `POST /admin/login/mfa/passkey/options`: options naming the passkeys of
/// the user whose password the challenge proved, as JSON for the script.
pub async fn second_step_passkey_options(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<SecondPasskeyOptionsForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(PageError(refused)) => return refused.into_response(),
    };
    options_answer(
        state
            .site_sessions
            .second_factor_passkey_options(&form.tenant, &form.challenge, &meta)
            .await,
    )
}

/// `POST /admin/login/mfa/passkey`: the second step answered with a
/// passkey; refusals count against the challenge like wrong codes.
pub async fn second_step_passkey(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: Result<axum::Form<SecondPasskeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match checked_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    let next = guard::safe_next(Some(&form.next));
    let retry = |status: StatusCode, error: String| {
        second_step_response(
            &state,
            status,
            SecondStepPage::new(&state, next.clone(), &form.tenant, &form.challenge, Some(error)),
        )
    };
    let again = |status: StatusCode, error: String| {
        form_response(
            &state,
            status,
            LoginPage::new(&state, next.clone(), "", &form.tenant, Some(error)),
        )
    };
    let refused = "The passkey was not accepted. Try again, or enter a code.";
    let Ok(credential) = serde_json::from_str::<serde_json::Value>(&form.credential) else {
        return retry(StatusCode::BAD_REQUEST, refused.into());
    };
    match state
        .site_sessions
        .sign_in_second_factor_passkey(&form.tenant, &form.challenge, &form.request_id, credential, &meta)
        .await
    {
        Ok(signed_in) => signed_in_response(&state, &headers, next.as_deref(), &signed_in).await,
        Err(e) => step_refusal(e, refused, retry, again),
    }
}

/// `POST /admin/logout`.
pub async fn sign_out(State(state): State<AppState>, Admin(admin): Admin, ClientMeta(meta): ClientMeta) -> Response {
    if let Err(e) = state.site_sessions.sign_out(&admin, &meta).await {
        return PageError(e).into_response();
    }
    let mut response = guard::see_other("/admin/login");
    response
        .headers_mut()
        .append(header::SET_COOKIE, guard::clear_session_cookie(&state));
    response
}
