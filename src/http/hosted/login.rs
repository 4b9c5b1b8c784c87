//! Signing in on the hosted pages: `/login` (password, a passkey, or a
//! one-time code: `/login/code` sends it by email or SMS through the API's
//! `Otp::request`, `/login/code/verify` checks it through
//! `Sso::sign_in_code`; the code travels only in POST bodies), the
//! second step `/mfa` (TOTP, recovery code, passkey), the first-factor
//! enrolment the tenant's policy may require (`/mfa/enrol`), and signing
//! out (`/logout`, `/logged-out`).
//!
//! Login CSRF. There is no session yet, so every sign-in form carries its
//! own token: a random value in a short-lived `SameSite=Strict`
//! `__Host-forge_sso_form` cookie, repeated in the hidden `csrf` field and
//! compared in constant time (double submit, as the admin site's sign-in
//! does: `guard::double_submit`). With the Fetch-Metadata check this keeps
//! another site from signing a browser in to an account of its choosing.
//!
//! Fixation. Every completed sign-in mints a new session token
//! (`Sso::start`), forgets the browser's previous session and sets the new
//! cookie before the 303 to `return_to`.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::cookie;
use super::page::{self, Frame, HostedError, HostedTenant, render, with_script};
use crate::crypto::tokens::random_token;
use crate::domain::Identifier;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::http::site::guard::{self, CsrfForm};
use crate::http::site::login::{options_answer, parse_identifier, with_retry_after};
use crate::http::site::views;
use crate::secret::Secret;
use crate::service::factors::MfaProof;
use crate::service::sso::{EnrolledSignIn, HostedEnrolment, HostedSignIn, SignedIn};
use crate::state::AppState;

pub(super) type FormResult<F> = Result<axum::Form<F>, axum::extract::rejection::FormRejection>;

#[derive(Template)]
#[template(path = "hosted/login.html")]
pub struct LoginPage {
    f: Frame,
    csrf: String,
    return_to: String,
    identifier: String,
    error: Option<String>,
    passkeys: bool,
    providers: Vec<super::page::ProviderLink>,
}

#[derive(Template)]
#[template(path = "hosted/mfa.html")]
pub struct MfaPage {
    f: Frame,
    csrf: String,
    return_to: String,
    challenge: String,
    error: Option<String>,
    passkeys: bool,
}

#[derive(Template)]
#[template(path = "hosted/enrol.html")]
pub struct EnrolPage {
    f: Frame,
    csrf: String,
    return_to: String,
    challenge: String,
    factor: String,
    qr: Option<String>,
    secret: Option<String>,
    otpauth: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted/enrolled.html")]
pub struct EnrolledPage {
    f: Frame,
    return_to: String,
    recovery_codes: Vec<String>,
}

#[derive(Template)]
#[template(path = "hosted/code.html")]
pub struct CodePage {
    f: Frame,
    csrf: String,
    return_to: String,
    identifier: String,
    error: Option<String>,
}

impl SignInStep for CodePage {
    fn set_csrf(&mut self, token: String) {
        self.csrf = token;
    }
    fn script_frame(&mut self) -> Option<&mut Frame> {
        None
    }
}

#[derive(Template)]
#[template(path = "hosted/logged_out.html")]
pub struct LoggedOutPage {
    f: Frame,
}

/// A page of the sign-in flow: it gets a fresh form token (and cookie) and,
/// when it offers passkeys, a script nonce.
pub(super) trait SignInStep: Template {
    fn set_csrf(&mut self, token: String);
    /// The frame, when the page runs the passkey script.
    fn script_frame(&mut self) -> Option<&mut Frame>;
}

impl SignInStep for LoginPage {
    fn set_csrf(&mut self, token: String) {
        self.csrf = token;
    }
    fn script_frame(&mut self) -> Option<&mut Frame> {
        self.passkeys.then_some(&mut self.f)
    }
}

impl SignInStep for MfaPage {
    fn set_csrf(&mut self, token: String) {
        self.csrf = token;
    }
    fn script_frame(&mut self) -> Option<&mut Frame> {
        self.passkeys.then_some(&mut self.f)
    }
}

impl SignInStep for EnrolPage {
    fn set_csrf(&mut self, token: String) {
        self.csrf = token;
    }
    fn script_frame(&mut self) -> Option<&mut Frame> {
        None
    }
}

/// Renders a sign-in step with a fresh double-submit token.
pub(super) fn step<P: SignInStep>(state: &AppState, status: StatusCode, mut page: P) -> Response {
    let token = random_token();
    page.set_csrf(token.clone());
    let nonce = page.script_frame().map(Frame::allow_script);
    let mut response = render(status, &page);
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie::form(state, Some(&token)));
    match nonce {
        Some(nonce) => with_script(response, nonce),
        None => response,
    }
}

fn login_page(
    state: &AppState,
    tenant: &HostedTenant,
    return_to: &str,
    identifier: &str,
    error: Option<String>,
) -> LoginPage {
    LoginPage {
        f: Frame::new(tenant, "Sign in"),
        csrf: String::new(),
        return_to: return_to.to_string(),
        identifier: identifier.chars().take(254).collect(),
        error,
        passkeys: state.passkey_factors.is_enabled(),
        providers: tenant.providers.clone(),
    }
}

/// The sign-in page again with what went wrong (an upstream sign-in that
/// failed, or could not start).
pub(super) fn login_failure(
    state: &AppState,
    tenant: &HostedTenant,
    return_to: &str,
    status: StatusCode,
    message: &str,
) -> Response {
    step(
        state,
        status,
        login_page(state, tenant, return_to, "", Some(message.to_owned())),
    )
}

fn code_page(tenant: &HostedTenant, return_to: &str, identifier: &str, error: Option<String>) -> CodePage {
    CodePage {
        f: Frame::new(tenant, "Enter your code"),
        csrf: String::new(),
        return_to: return_to.to_string(),
        identifier: identifier.chars().take(254).collect(),
        error,
    }
}

fn mfa_page(
    state: &AppState,
    tenant: &HostedTenant,
    return_to: &str,
    challenge: &str,
    error: Option<String>,
) -> MfaPage {
    MfaPage {
        f: Frame::new(tenant, "Second step"),
        csrf: String::new(),
        return_to: return_to.to_string(),
        challenge: challenge.chars().take(64).collect(),
        error,
        passkeys: state.passkey_factors.is_enabled(),
    }
}

fn enrol_page(
    tenant: &HostedTenant,
    return_to: &str,
    challenge: &str,
    factor: &str,
    error: Option<String>,
) -> EnrolPage {
    EnrolPage {
        f: Frame::new(tenant, "Set up a second factor"),
        csrf: String::new(),
        return_to: return_to.to_string(),
        challenge: challenge.chars().take(64).collect(),
        factor: factor.chars().take(36).collect(),
        qr: None,
        secret: None,
        otpauth: None,
        error,
    }
}

fn enrol_started(tenant: &HostedTenant, return_to: &str, enrolment: &HostedEnrolment) -> EnrolPage {
    use base64::Engine;
    let svg = base64::engine::general_purpose::STANDARD.encode(enrolment.totp.qr_svg.as_bytes());
    EnrolPage {
        qr: Some(format!("data:image/svg+xml;base64,{svg}")),
        secret: Some(enrolment.totp.secret.to_base32()),
        otpauth: Some(enrolment.totp.otpauth_uri.clone()),
        ..enrol_page(
            tenant,
            return_to,
            enrolment.token.expose(),
            &enrolment.totp.factor.id.to_string(),
            None,
        )
    }
}

/// The tenant a page names; an unknown one is a 404 page.
pub async fn tenant_of(state: &AppState, slug: Option<&str>) -> Result<HostedTenant, HostedError> {
    match state.sso.tenant(slug.unwrap_or_default()).await {
        Ok(Some(tenant)) => HostedTenant::load(state, tenant).await.map_err(HostedError),
        Ok(None) => Err(HostedError(AppError::not_found("tenant"))),
        Err(e) => Err(HostedError(e)),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    tenant: Option<String>,
    return_to: Option<String>,
    login_hint: Option<String>,
    /// `1`: ask again even with a live session (`prompt=login`).
    force: Option<String>,
    /// An upstream sign-in's failure code (shown as a fixed sentence).
    error: Option<String>,
}

/// `GET /login`: the form, or straight on to `return_to` for a browser
/// signed in to this tenant already (unless `force=1`).
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return HostedError(AppError::bad_request(ErrorCode::InvalidRequest, "malformed query")).into_response();
    };
    let tenant = match tenant_of(&state, query.tenant.as_deref()).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let return_to = page::return_to(query.return_to.as_deref());
    let force = query.force.as_deref() == Some("1");
    if !force
        && let Some(token) = cookie::read(&state, &headers)
        && let Ok(Some((session, _, _))) = state.sso.current(token).await
        && session.tenant_id == tenant.id
    {
        return guard::see_other(&return_to);
    }
    let hint = query.login_hint.unwrap_or_default();
    let error = query
        .error
        .as_deref()
        .and_then(super::federation::failure_text)
        .map(str::to_owned);
    step(
        &state,
        StatusCode::OK,
        login_page(&state, &tenant, &return_to, &hint, error),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    factor: String,
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
pub struct PasskeyOptionsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    challenge: String,
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    credential: String,
}

#[derive(Deserialize)]
pub struct CodeRequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    identifier: String,
    /// `email` or `sms`: the button pressed.
    #[serde(default)]
    via: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    code: String,
}

crate::csrf_forms!(CodeRequestForm, CodeForm);
crate::csrf_forms!(LoginForm, MfaForm, EnrolForm, PasskeyOptionsForm, PasskeyForm);

/// A sign-in form's edge: 400 when malformed, 403 without the right
/// double-submit token, 404 for an unknown tenant.
pub(super) async fn checked<F: CsrfForm + HasTenant>(
    state: &AppState,
    headers: &HeaderMap,
    form: FormResult<F>,
) -> Result<(F, HostedTenant), Response> {
    let form =
        guard::double_submit(headers, cookie::form_name(state), form).map_err(|e| HostedError(e).into_response())?;
    let tenant = tenant_of(state, Some(form.tenant()))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((form, tenant))
}

/// A form naming its tenant.
pub(super) trait HasTenant {
    fn tenant(&self) -> &str;
}

macro_rules! has_tenant {
    ($($form:ty),+) => {
        $(impl $crate::http::hosted::login::HasTenant for $form {
            fn tenant(&self) -> &str {
                &self.tenant
            }
        })+
    };
}

pub(super) use has_tenant;

has_tenant!(CodeRequestForm, CodeForm);
has_tenant!(LoginForm, MfaForm, EnrolForm, PasskeyOptionsForm, PasskeyForm);

/// The 303 of a completed sign-in: the new session's cookie (and the
/// device cookie), the form's cookie dropped, the browser's previous
/// session forgotten.
async fn signed_in(state: &AppState, headers: &HeaderMap, return_to: &str, signed_in: &SignedIn) -> Response {
    with_session(state, headers, guard::see_other(return_to), signed_in).await
}

async fn with_session(state: &AppState, headers: &HeaderMap, mut response: Response, signed_in: &SignedIn) -> Response {
    if let Some(old) = cookie::read(state, headers)
        && let Err(e) = state.sso.discard(old).await
    {
        return HostedError(e).into_response();
    }
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookie::set(state, &signed_in.token));
    headers.append(header::SET_COOKIE, cookie::form(state, None));
    headers.append(
        header::SET_COOKIE,
        crate::http::api::auth::device_cookie(state, &signed_in.device_token),
    );
    response
}

/// Where a first step leads: the session (303 to `return_to`), or the
/// second step's or the enrolment's page.
pub(super) async fn next_step(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &HostedTenant,
    return_to: &str,
    outcome: HostedSignIn,
) -> Response {
    match outcome {
        HostedSignIn::Done(done) => signed_in(state, headers, return_to, &done).await,
        HostedSignIn::SecondFactor { token } => step(
            state,
            StatusCode::OK,
            mfa_page(state, tenant, return_to, token.expose(), None),
        ),
        HostedSignIn::Enrol(enrolment) => step(state, StatusCode::OK, enrol_started(tenant, return_to, &enrolment)),
    }
}

/// One message for every refused password: it says nothing of which part
/// was wrong, or whether the account exists.
const WRONG_PASSWORD: &str = "Wrong email, phone or password.";

/// `POST /login`.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<LoginForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status: StatusCode, error: &str| {
        step(
            &state,
            status,
            login_page(&state, &tenant, &return_to, &form.identifier, Some(error.to_string())),
        )
    };
    let Some(identifier) = parse_identifier(&form.identifier) else {
        return retry(
            StatusCode::BAD_REQUEST,
            "Enter your email address, or your phone number starting with +.",
        );
    };
    if form.password.is_empty() {
        return retry(StatusCode::BAD_REQUEST, "Enter your password.");
    }
    let password = Secret::new(form.password.clone());
    match state
        .sso
        .sign_in_password(tenant.slug.as_str(), &identifier, &password, &meta)
        .await
    {
        Ok(outcome) => next_step(&state, &headers, &tenant, &return_to, outcome).await,
        Err(AppError::Unauthorized { .. }) => retry(StatusCode::UNAUTHORIZED, WRONG_PASSWORD),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, &views::describe(&e)), &e)
        }
        Err(e @ AppError::Forbidden { .. }) => retry(StatusCode::FORBIDDEN, &views::describe(&e)),
        Err(e) => HostedError(e).into_response(),
    }
}

/// `POST /login/code`: sends a one-time sign-in code ("Email me a code",
/// "Text me a code") through the API's use case (`Otp::request`: resend
/// cooldown, per-IP and per-address budgets; a code only for an account
/// that may sign in, or a new address the tenant's signup policy admits)
/// and shows the code step. The answer is the same whether or not the
/// account exists.
pub async fn request_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<CodeRequestForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status: StatusCode, error: &str| {
        step(
            &state,
            status,
            login_page(&state, &tenant, &return_to, &form.identifier, Some(error.to_string())),
        )
    };
    let identifier = match (form.via.as_str(), parse_identifier(&form.identifier)) {
        ("email", Some(identifier @ Identifier::Email(_))) => identifier,
        ("sms", Some(identifier @ Identifier::Phone(_))) => identifier,
        ("sms", _) => {
            return retry(
                StatusCode::BAD_REQUEST,
                "Enter your phone number starting with + to get a text.",
            );
        }
        _ => return retry(StatusCode::BAD_REQUEST, "Enter your email address to get an email."),
    };
    match state.otp.request(&tenant, &identifier, &meta).await {
        Ok(()) => step(
            &state,
            StatusCode::OK,
            code_page(&tenant, &return_to, identifier.as_str(), None),
        ),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, &views::describe(&e)), &e)
        }
        Err(e) => HostedError(e).into_response(),
    }
}

/// `POST /login/code/verify`: the code step. A right code signs in
/// through the same gate as a password (second step, the tenant's policy)
/// via [`crate::service::sso::Sso::sign_in_code`]; a wrong or expired one
/// reads the same, and a burned code is 429 (the API's rules).
pub async fn verify_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<CodeForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status: StatusCode, error: &str| {
        step(
            &state,
            status,
            code_page(&tenant, &return_to, &form.identifier, Some(error.to_string())),
        )
    };
    let Some(identifier) = parse_identifier(&form.identifier) else {
        return step(
            &state,
            StatusCode::BAD_REQUEST,
            login_page(
                &state,
                &tenant,
                &return_to,
                "",
                Some("Enter your email address, or your phone number starting with +.".into()),
            ),
        );
    };
    let code = form.code.trim();
    if code.is_empty() || code.len() > 16 {
        return retry(StatusCode::BAD_REQUEST, "Enter the code we sent you.");
    }
    match state
        .sso
        .sign_in_code(&state.otp, &tenant, &identifier, code, &meta)
        .await
    {
        Ok(outcome) => next_step(&state, &headers, &tenant, &return_to, outcome).await,
        Err(AppError::Unauthorized { .. }) => retry(StatusCode::UNAUTHORIZED, WRONG_CODE),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, &views::describe(&e)), &e)
        }
        Err(e @ AppError::Forbidden { .. }) => retry(StatusCode::FORBIDDEN, &views::describe(&e)),
        Err(e) => HostedError(e).into_response(),
    }
}

/// One message for every refused code.
const WRONG_CODE: &str = "Wrong or expired code.";

/// How a step behind a sign-in challenge shows a refusal: the step again
/// for a wrong answer, the sign-in form once the attempt is over.
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
        }
        | AppError::Validation { .. } => retry(StatusCode::UNAUTHORIZED, wrong.into()),
        AppError::Unauthorized { .. } => again(
            StatusCode::UNAUTHORIZED,
            "The sign-in attempt expired. Sign in again.".into(),
        ),
        e @ AppError::RateLimited { .. } => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, views::describe(&e)), &e)
        }
        e @ AppError::Forbidden { .. } => again(StatusCode::FORBIDDEN, views::describe(&e)),
        e => HostedError(e).into_response(),
    }
}

/// `POST /mfa`: the second step with a code from an authenticator app or
/// a recovery code. The challenge (hidden field) binds it server-side to
/// the proven password.
pub async fn second_step(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<MfaForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status, error| {
        step(
            &state,
            status,
            mfa_page(&state, &tenant, &return_to, &form.challenge, Some(error)),
        )
    };
    let again = |status, error| step(&state, status, login_page(&state, &tenant, &return_to, "", Some(error)));
    let code = form.code.trim();
    if code.is_empty() || code.len() > 64 {
        return retry(StatusCode::BAD_REQUEST, "Enter the code.".into());
    }
    let proof = if code.bytes().all(|b| b.is_ascii_digit()) {
        MfaProof::Totp(code)
    } else {
        MfaProof::RecoveryCode(code)
    };
    match state
        .sso
        .sign_in_second_factor(tenant.slug.as_str(), &form.challenge, proof, &meta)
        .await
    {
        Ok(done) => signed_in(&state, &headers, &return_to, &done).await,
        Err(e) => step_refusal(e, "Wrong or already used code.", retry, again),
    }
}

/// `POST /mfa/enrol`: the first code of the factor the tenant's policy
/// required; the answer shows the recovery codes once, with the session.
pub async fn enrol(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<EnrolForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status, error| {
        step(
            &state,
            status,
            enrol_page(&tenant, &return_to, &form.challenge, &form.factor, Some(error)),
        )
    };
    let again = |status, error| step(&state, status, login_page(&state, &tenant, &return_to, "", Some(error)));
    let code = form.code.trim();
    if code.is_empty() || code.len() > 16 {
        return retry(
            StatusCode::BAD_REQUEST,
            "Enter the code from your authenticator app.".into(),
        );
    }
    let outcome = state
        .sso
        .sign_in_enrolling(tenant.slug.as_str(), &form.challenge, &form.factor, code, &meta)
        .await;
    match outcome {
        Ok(EnrolledSignIn {
            signed_in: done,
            recovery_codes: Some(recovery_codes),
        }) => {
            let page = EnrolledPage {
                f: Frame::new(&tenant, "Save your recovery codes"),
                return_to,
                recovery_codes,
            };
            with_session(&state, &headers, render(StatusCode::OK, &page), &done).await
        }
        Ok(EnrolledSignIn { signed_in: done, .. }) => signed_in(&state, &headers, &return_to, &done).await,
        Err(e) => step_refusal(e, "Wrong or expired code. Try the current one.", retry, again),
    }
}

/// `POST /login/passkey/options`: the options of a passwordless ceremony,
/// as JSON for the passkey script.
pub async fn passkey_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<PasskeyOptionsForm>,
) -> Response {
    if let Err(e) = guard::double_submit(&headers, cookie::form_name(&state), form) {
        return e.into_response();
    }
    options_answer(state.passkey_factors.start_sign_in(&meta).await)
}

/// `POST /login/passkey`: the authenticator's answer, submitted as a form.
pub async fn passkey_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<PasskeyForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let refused = "The passkey was not accepted. Try again, or sign in with your password.";
    let retry = |status: StatusCode, error: &str| {
        step(
            &state,
            status,
            login_page(&state, &tenant, &return_to, "", Some(error.to_string())),
        )
    };
    let Ok(credential) = serde_json::from_str::<serde_json::Value>(&form.credential) else {
        return retry(StatusCode::BAD_REQUEST, refused);
    };
    match state
        .sso
        .sign_in_passkey(tenant.slug.as_str(), &form.request_id, credential, &meta)
        .await
    {
        Ok(done) => signed_in(&state, &headers, &return_to, &done).await,
        Err(AppError::Unauthorized { .. } | AppError::Validation { .. }) => retry(StatusCode::UNAUTHORIZED, refused),
        Err(e @ AppError::RateLimited { .. }) => {
            with_retry_after(retry(StatusCode::TOO_MANY_REQUESTS, &views::describe(&e)), &e)
        }
        Err(e @ AppError::Forbidden { .. }) => retry(StatusCode::FORBIDDEN, &views::describe(&e)),
        Err(e) => HostedError(e).into_response(),
    }
}

/// `POST /mfa/passkey/options`: options naming the passkeys of the user
/// whose password the challenge proved.
pub async fn second_step_passkey_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<PasskeyOptionsForm>,
) -> Response {
    let form = match guard::double_submit(&headers, cookie::form_name(&state), form) {
        Ok(form) => form,
        Err(e) => return e.into_response(),
    };
    options_answer(
        state
            .sso
            .second_factor_passkey_options(&form.tenant, &form.challenge, &meta)
            .await,
    )
}

/// `POST /mfa/passkey`: the second step answered with a passkey.
pub async fn second_step_passkey(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    form: FormResult<PasskeyForm>,
) -> Response {
    let (form, tenant) = match checked(&state, &headers, form).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let return_to = page::return_to(Some(&form.return_to));
    let retry = |status, error| {
        step(
            &state,
            status,
            mfa_page(&state, &tenant, &return_to, &form.challenge, Some(error)),
        )
    };
    let again = |status, error| step(&state, status, login_page(&state, &tenant, &return_to, "", Some(error)));
    let refused = "The passkey was not accepted. Try again, or enter a code.";
    let Ok(credential) = serde_json::from_str::<serde_json::Value>(&form.credential) else {
        return retry(StatusCode::BAD_REQUEST, refused.into());
    };
    match state
        .sso
        .sign_in_second_factor_passkey(
            tenant.slug.as_str(),
            &form.challenge,
            &form.request_id,
            credential,
            &meta,
        )
        .await
    {
        Ok(done) => signed_in(&state, &headers, &return_to, &done).await,
        Err(e) => step_refusal(e, refused, retry, again),
    }
}

/// `POST /logout` (signed in, CSRF-checked by the guard): ends the
/// session, deletes the cookie, and shows the signed-out page.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    super::account::Signed(signed): super::account::Signed,
) -> Response {
    if let Some(token) = cookie::read(&state, &headers) {
        match state.sso.end(token, &meta).await {
            // The OAuth clients' sessions opened from it end too, and the
            // clients with a back channel are told (OpenID Connect
            // Back-Channel Logout).
            Ok(Some(ended)) => {
                if let Err(e) = state.oidc.end_sso_sessions(ended.tenant_id, ended.id, &meta).await {
                    return HostedError(e).into_response();
                }
            }
            Ok(None) => {}
            Err(e) => return HostedError(e).into_response(),
        }
    }
    let mut response = guard::see_other(&format!(
        "/logged-out?tenant={}",
        page::urlencode(signed.tenant.slug.as_str())
    ));
    response.headers_mut().append(header::SET_COOKIE, cookie::clear(&state));
    response
}

#[derive(Deserialize)]
pub struct TenantQuery {
    tenant: Option<String>,
}

/// `GET /logged-out`: the signed-out page (and the cookie deleted, for a
/// browser that arrives here with one).
pub async fn logged_out(State(state): State<AppState>, query: Result<Query<TenantQuery>, QueryRejection>) -> Response {
    let slug = query.ok().and_then(|Query(q)| q.tenant);
    let tenant = match tenant_of(&state, slug.as_deref()).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let mut response = render(
        StatusCode::OK,
        &LoggedOutPage {
            f: Frame::new(&tenant, "Signed out"),
        },
    );
    response.headers_mut().append(header::SET_COOKIE, cookie::clear(&state));
    response
}

/// `GET /hosted/brand.css?tenant=SLUG`.
pub async fn brand_css(State(state): State<AppState>, query: Result<Query<TenantQuery>, QueryRejection>) -> Response {
    let slug = query.ok().and_then(|Query(q)| q.tenant);
    match tenant_of(&state, slug.as_deref()).await {
        Ok(tenant) => page::brand_css(&tenant.brand),
        Err(_) => page::brand_css(&Frame::plain("").brand),
    }
}
