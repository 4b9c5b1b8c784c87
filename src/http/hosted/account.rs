//! `/account`: the signed-in user's own page (profile with the email or
//! phone change of `PATCH /v1/users/me` and its code to the new address,
//! password, second factors, sessions, connected apps with their consent
//! taken back as `DELETE /v1/users/me/consents/{client_id}` does), behind
//! [`require_sso`].
//!
//! [`require_sso`] loads and re-checks the SSO session (see `service::sso`)
//! and, for every state-changing request, compares the form's `csrf` field
//! with the session's token in constant time before any handler runs (as
//! the admin site's guard does); without a session a page redirects to
//! `/login` with `return_to` set, a form post is 401. Every action goes
//! through the same use case as its API call, with a principal built from
//! the SSO session (its assurance is how the user signed in here), so the
//! API's rules (current password, aal 2 for factor changes, the tenant's
//! policy keeping one factor) hold here as well.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::cookie;
use super::page::{self, Frame, HostedError, HostedTenant, render};
use crate::domain::{Email, Phone};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::http::site::{guard, views};
use crate::secret::Secret;
use crate::service::accounts::ProfileChange;
use crate::service::address::Reauthentication;
use crate::service::sessions::Principal;
use crate::service::sso::SsoSession;
use crate::state::AppState;
use crate::store::IdentifierKind;
use crate::store::{Tenant, User};

/// The signed-in user of a hosted request, re-checked by [`require_sso`].
pub struct SignedUser {
    pub session: SsoSession,
    pub user: User,
    pub tenant: HostedTenant,
    pub principal: Principal,
}

/// Extractor of the [`SignedUser`] that [`require_sso`] put in the request.
pub struct Signed(pub Arc<SignedUser>);

impl<S: Send + Sync> FromRequestParts<S> for Signed {
    type Rejection = HostedError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, HostedError> {
        parts
            .extensions
            .get::<Arc<SignedUser>>()
            .cloned()
            .map(Signed)
            .ok_or_else(|| HostedError(AppError::internal(anyhow::anyhow!("hosted page without its guard"))))
    }
}

/// The SSO session and CSRF gate in front of the signed-in hosted pages.
pub async fn require_sso(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let current = match cookie::read(&state, &parts.headers) {
        Some(token) => state.sso.current(token).await,
        None => Ok(None),
    };
    let (session, user, tenant) = match current {
        Ok(Some(found)) => found,
        Ok(None) => return to_login(&state, &parts),
        Err(e) => return HostedError(e).into_response(),
    };
    let body = if guard::changes_state(&parts.method) {
        match guard::checked_body(body, state.config.server.max_body_bytes, &session.csrf).await {
            Ok(body) => body,
            Err(e) => return HostedError(e).into_response(),
        }
    } else {
        body
    };
    crate::http::LoggedUser::note(&parts.extensions, user.id);
    let principal = state.sso.principal(&session, &user, &tenant);
    let tenant = match HostedTenant::load(&state, tenant).await {
        Ok(tenant) => tenant,
        Err(e) => return HostedError(e).into_response(),
    };
    parts.extensions.insert(Arc::new(SignedUser {
        session,
        user,
        tenant,
        principal,
    }));
    next.run(Request::from_parts(parts, body)).await
}

/// Without a live session: a page goes to `/login` (and back here after),
/// a form post is refused; a stale cookie is deleted.
fn to_login(state: &AppState, parts: &Parts) -> Response {
    let mut response = if parts.method == Method::GET {
        let tenant = tenant_param(parts.uri.query());
        let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(page::ACCOUNT);
        guard::see_other(&page::login_url(&tenant, &page::return_to(Some(here))))
    } else {
        HostedError(AppError::unauthorized(
            ErrorCode::InvalidToken,
            "Your session has ended. Sign in again.",
        ))
        .into_response()
    };
    if cookie::read(state, &parts.headers).is_some() {
        response.headers_mut().append(header::SET_COOKIE, cookie::clear(state));
    }
    response
}

/// The `tenant` query parameter (`default` when absent).
fn tenant_param(query: Option<&str>) -> String {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "tenant").map(|(_, v)| v))
        .unwrap_or_else(|| "default".into())
}

/// A linked upstream identity.
struct IdentityRow {
    id: String,
    provider: String,
    provider_name: String,
    email: String,
    linked_at: String,
}

/// An OpenID Connect client the user granted access to.
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub scopes: String,
    pub granted_at: String,
}

/// The user's connected apps: the OpenID Connect clients they consented
/// to (`Consents::list`, the API's `GET /v1/users/me/consents`).
async fn connected_apps(state: &AppState, principal: &Principal) -> Result<Vec<ConnectedApp>, AppError> {
    let apps = state.consents.list(principal).await?;
    Ok(apps
        .into_iter()
        .map(|a| ConnectedApp {
            client_id: a.client_id,
            name: a.name,
            scopes: a.scopes.join(" "),
            granted_at: views::time(a.granted_at),
        })
        .collect())
}

struct SessionRow {
    id: String,
    created: String,
    last_used: String,
    device: String,
}

struct FactorRow {
    id: String,
    kind: &'static str,
    name: String,
    added: String,
}

#[derive(Template)]
#[template(path = "hosted/account.html")]
struct AccountPage {
    f: Frame,
    csrf: String,
    email: String,
    email_verified: bool,
    phone: String,
    signed_in_at: String,
    aal: u8,
    message: Option<(bool, String)>,
    sessions: Vec<SessionRow>,
    factors: Vec<FactorRow>,
    recovery_codes_left: u64,
    apps: Vec<ConnectedApp>,
    identities: Vec<IdentityRow>,
    /// Enabled providers not linked yet.
    linkable: Vec<super::page::ProviderLink>,
    /// A new email address waiting for its code.
    pending_email: String,
    /// A new phone number waiting for its code.
    pending_phone: String,
}

#[derive(Template)]
#[template(path = "hosted/account_totp.html")]
struct TotpPage {
    f: Frame,
    csrf: String,
    factor: String,
    qr: Option<String>,
    secret: Option<String>,
    otpauth: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted/account_codes.html")]
struct CodesPage {
    f: Frame,
    recovery_codes: Vec<String>,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
    /// A provider just linked (the end of a link flow).
    linked: Option<String>,
    /// A link flow's failure code (only known codes are shown, never the
    /// text that came with it).
    error: Option<String>,
}

/// The message of `?done=...` after an action (post/redirect/get).
fn done_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "password" => "Your password was changed. Your other sessions were signed out.",
        "session" => "The session was signed out.",
        "factor-removed" => "The second factor was removed.",
        "factor-added" => "The authenticator app was added.",
        "address-sent" => "We sent a code to the new address. Enter it below to finish the change.",
        "address-changed" => "Your address was changed. Your other sessions were signed out.",
        "app-revoked" => "The app's access was taken back, and its sessions were signed out.",
        "identity-removed" => "The provider was unlinked from your account.",
        _ => return None,
    })
}

/// What a failed link flow (`?error=CODE`) tells the user.
fn link_error_text(code: &str) -> &'static str {
    match code {
        "identity_taken" => "That account at the provider is already linked to another account here.",
        "access_denied" => "Linking was cancelled at the provider.",
        "temporarily_unavailable" => "The provider could not be reached. Try again in a moment.",
        _ => "The provider could not be linked. Try again.",
    }
}

/// `GET /account`.
pub async fn show(
    State(state): State<AppState>,
    Signed(me): Signed,
    query: Result<Query<AccountQuery>, QueryRejection>,
) -> Response {
    let query = query.ok().map(|Query(q)| q);
    let message = query.and_then(|q| {
        if let Some(error) = q.error.as_deref() {
            return Some((false, link_error_text(error).to_owned()));
        }
        if q.linked.is_some() {
            return Some((true, "The provider was linked to your account.".to_owned()));
        }
        q.done.as_deref().and_then(done_text).map(|t| (true, t.to_owned()))
    });
    account_page(&state, &me, StatusCode::OK, message).await
}

async fn account_page(
    state: &AppState,
    me: &SignedUser,
    status: StatusCode,
    message: Option<(bool, String)>,
) -> Response {
    let p = &me.principal;
    let sessions = match state.sessions.list(p).await {
        Ok(s) => s,
        Err(e) => return HostedError(e).into_response(),
    };
    let factors = match state.factors.list(p).await {
        Ok(f) => f,
        Err(e) => return HostedError(e).into_response(),
    };
    let apps = match connected_apps(state, p).await {
        Ok(a) => a,
        Err(e) => return HostedError(e).into_response(),
    };
    let identities = match state.federation.identities(p).await {
        Ok(i) => i,
        Err(e) => return HostedError(e).into_response(),
    };
    let name_of = |id: &str| {
        me.tenant
            .providers
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_owned(), |p| p.name.clone())
    };
    let linkable = me
        .tenant
        .providers
        .iter()
        .filter(|p| !identities.iter().any(|i| i.provider.as_str() == p.id))
        .cloned()
        .collect();
    let identities = identities
        .into_iter()
        .map(|i| IdentityRow {
            id: i.id.to_string(),
            provider_name: name_of(i.provider.as_str()),
            provider: i.provider.to_string(),
            email: i.email.unwrap_or_default(),
            linked_at: views::time(i.created_at),
        })
        .collect();
    let mut pending = [String::new(), String::new()];
    for (slot, kind) in pending.iter_mut().zip([IdentifierKind::Email, IdentifierKind::Phone]) {
        match state.address.pending(&me.tenant, me.user.id, kind).await {
            Ok(found) => *slot = found.map(|i| i.as_str().to_string()).unwrap_or_default(),
            Err(e) => return HostedError(e).into_response(),
        }
    }
    let [pending_email, pending_phone] = pending;
    let page = AccountPage {
        f: Frame::new(&me.tenant, "Your account"),
        csrf: me.session.csrf.clone(),
        email: me.user.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        email_verified: me.user.email_verified,
        phone: me.user.phone.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        signed_in_at: views::time(me.session.auth_time),
        aal: me.session.assurance.aal.as_u8(),
        message,
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                id: s.id.to_string(),
                created: views::time(s.created_at),
                last_used: views::time(s.last_used_at),
                device: s.user_agent.clone().unwrap_or_else(|| "Unknown device".into()),
            })
            .collect(),
        factors: factors
            .factors
            .iter()
            .filter(|f| f.confirmed_at.is_some())
            .map(|f| FactorRow {
                id: f.id.to_string(),
                kind: f.kind.as_str(),
                name: f.name.clone(),
                added: views::time(f.created_at),
            })
            .collect(),
        recovery_codes_left: factors.recovery_codes.remaining,
        apps,
        identities,
        linkable,
        pending_email,
        pending_phone,
    };
    render(status, &page)
}

/// An action's failure: the account page again with what went wrong.
async fn failed(state: &AppState, me: &SignedUser, e: AppError) -> Response {
    match e {
        e @ (AppError::Internal(_) | AppError::Unavailable) => HostedError(e).into_response(),
        e => {
            let status = e.status();
            let text = match &e {
                AppError::Unauthorized {
                    code: ErrorCode::InvalidCredentials | ErrorCode::ReauthenticationRequired,
                    ..
                } => "Your current password is not right.".to_string(),
                AppError::Forbidden {
                    code: ErrorCode::MfaRequired,
                    ..
                } => "This change needs a second factor: sign out and sign in again with it.".to_string(),
                other => views::describe(other),
            };
            account_page(state, me, status, Some((false, text))).await
        }
    }
}

fn back(tenant: &Tenant, done: &str) -> Response {
    guard::see_other(&format!(
        "/account?tenant={}&done={done}",
        page::urlencode(tenant.slug.as_str())
    ))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /account/password`: through `Recovery::change` (current password,
/// the policy, aal 2 for a user with a factor). The new password moves the
/// credential epoch on, which ends every SSO session of the user (this one
/// too) and every API session; this browser is signed in again with a
/// fresh session at the assurance it had.
pub async fn change_password(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    axum::Form(form): axum::Form<PasswordForm>,
) -> Response {
    let current = Secret::new(form.current_password);
    let new = Secret::new(form.new_password);
    if let Err(e) = state.recovery.change(&me.principal, &current, &new, &meta).await {
        return failed(&state, &me, e).await;
    }
    let user = match state.store.get_user(me.tenant.id, me.user.id).await {
        Ok(Some(user)) => user,
        Ok(None) => return HostedError(AppError::invalid_token()).into_response(),
        Err(e) => return HostedError(e.into()).into_response(),
    };
    let token = match state
        .sso
        .start(&me.tenant, &user, me.session.assurance.clone(), &meta)
        .await
    {
        Ok(started) => started.token,
        Err(e) => return HostedError(e).into_response(),
    };
    let mut response = back(&me.tenant, "password");
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie::set(&state, &token));
    response
}

/// `POST /account/sessions/{id}/revoke`.
pub async fn revoke_session(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return HostedError(AppError::not_found("session")).into_response();
    };
    match state.sessions.revoke_own(&me.principal, id, &meta).await {
        Ok(()) => back(&me.tenant, "session"),
        Err(e) => failed(&state, &me, e).await,
    }
}

/// `POST /account/factors/{id}/remove`: the tenant's policy may keep the
/// last one (409 `last_factor_required`).
pub async fn remove_factor(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return HostedError(AppError::not_found("factor")).into_response();
    };
    let keep_one = match state.mfa_policies.keep_one(me.tenant.id, me.user.id).await {
        Ok(k) => k,
        Err(e) => return HostedError(e).into_response(),
    };
    match state.factors.remove(&me.principal, id, keep_one, &meta).await {
        Ok(()) => back(&me.tenant, "factor-removed"),
        Err(e) => failed(&state, &me, e).await,
    }
}

/// `POST /account/apps/{client_id}/revoke`: takes back the consent given
/// to a connected app and signs out its sessions (`Consents::revoke`, the
/// API's `DELETE /v1/users/me/consents/{client_id}`; 404 when there was
/// none).
pub async fn revoke_app(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    Path(client_id): Path<String>,
) -> Response {
    match state.consents.revoke(&me.principal, &client_id, &meta).await {
        Ok(()) => back(&me.tenant, "app-revoked"),
        Err(e) => failed(&state, &me, e).await,
    }
}

#[derive(Deserialize)]
pub struct AddressForm {
    /// `email` or `phone`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    current_password: String,
}

/// `POST /account/address`: asks to change the email address or phone
/// number, through the API's use case (`Accounts::update_me`, as `PATCH
/// /v1/users/me`): the current password, aal 2 for a user with a factor,
/// the address free; a code goes to the new address, and the change waits
/// for it (`/account/address/confirm`).
pub async fn change_address(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    axum::Form(form): axum::Form<AddressForm>,
) -> Response {
    let raw = form.address.trim();
    let (email, phone) = match form.kind.as_str() {
        "email" => match Email::parse(raw) {
            Ok(e) => (Some(e), None),
            Err(e) => return failed(&state, &me, AppError::validation("email", e)).await,
        },
        "phone" => match Phone::parse(raw) {
            Ok(p) => (None, Some(Some(p))),
            Err(e) => return failed(&state, &me, AppError::validation("phone", e)).await,
        },
        _ => {
            return HostedError(AppError::bad_request(ErrorCode::InvalidRequest, "unknown address kind"))
                .into_response();
        }
    };
    let change = ProfileChange {
        email,
        phone,
        metadata: None,
        proof: Reauthentication {
            current_password: Some(Secret::new(form.current_password)),
            code: None,
        },
    };
    match state.accounts.update_me(&me.principal, change, &meta).await {
        Ok(update) if update.pending_email.is_some() || update.pending_phone.is_some() => {
            back(&me.tenant, "address-sent")
        }
        Ok(_) => back(&me.tenant, "address-unchanged"),
        Err(e) => failed(&state, &me, e).await,
    }
}

#[derive(Deserialize)]
pub struct AddressConfirmForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    code: String,
}

/// `POST /account/address/confirm`: the code sent to the new address
/// completes the change (`Address::complete`, as the API's verify calls):
/// the new address replaces the old one, proven, the old one is told, and
/// the user's other sessions end. When that moved the credential epoch on,
/// this browser is signed in again with a fresh session.
pub async fn confirm_address(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    axum::Form(form): axum::Form<AddressConfirmForm>,
) -> Response {
    let kind = match form.kind.as_str() {
        "email" => IdentifierKind::Email,
        "phone" => IdentifierKind::Phone,
        _ => {
            return HostedError(AppError::bad_request(ErrorCode::InvalidRequest, "unknown address kind"))
                .into_response();
        }
    };
    let code = form.code.trim();
    if code.is_empty() || code.len() > 16 {
        return failed(&state, &me, AppError::validation("code", "enter the code we sent")).await;
    }
    match state.address.complete(&me.principal, kind, code, &meta).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return failed(&state, &me, AppError::not_found("address change")).await;
        }
        Err(e) => return failed(&state, &me, e).await,
    }
    // Read afresh: signing out the other sessions may move the epoch on.
    let user = match state.store.get_user(me.tenant.id, me.user.id).await {
        Ok(Some(user)) => user,
        Ok(None) => return HostedError(AppError::invalid_token()).into_response(),
        Err(e) => return HostedError(e.into()).into_response(),
    };
    let mut response = back(&me.tenant, "address-changed");
    if user.credential_epoch != me.session.epoch {
        let token = match state
            .sso
            .start(&me.tenant, &user, me.session.assurance.clone(), &meta)
            .await
        {
            Ok(started) => started.token,
            Err(e) => return HostedError(e).into_response(),
        };
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie::set(&state, &token));
    }
    response
}

#[derive(Deserialize)]
pub struct TotpStartForm {
    #[serde(default)]
    current_password: String,
}

/// `POST /account/factors/totp`: a pending TOTP factor (after the current
/// password), shown with its QR code and a confirm form.
pub async fn start_totp(
    State(state): State<AppState>,
    Signed(me): Signed,
    axum::Form(form): axum::Form<TotpStartForm>,
) -> Response {
    let proof = Reauthentication {
        current_password: Some(Secret::new(form.current_password)),
        code: None,
    };
    match state.factors.start_totp(&me.principal, None, &proof).await {
        Ok(enrolment) => {
            use base64::Engine;
            let svg = base64::engine::general_purpose::STANDARD.encode(enrolment.qr_svg.as_bytes());
            let page = TotpPage {
                f: Frame::new(&me.tenant, "Add an authenticator app"),
                csrf: me.session.csrf.clone(),
                factor: enrolment.factor.id.to_string(),
                qr: Some(format!("data:image/svg+xml;base64,{svg}")),
                secret: Some(enrolment.secret.to_base32()),
                otpauth: Some(enrolment.otpauth_uri.clone()),
                error: None,
            };
            render(StatusCode::OK, &page)
        }
        Err(e) => failed(&state, &me, e).await,
    }
}

#[derive(Deserialize)]
pub struct TotpConfirmForm {
    #[serde(default)]
    factor: String,
    #[serde(default)]
    code: String,
}

/// `POST /account/factors/totp/confirm`: the pending factor's first code;
/// the first factor of an account shows its recovery codes once.
pub async fn confirm_totp(
    State(state): State<AppState>,
    Signed(me): Signed,
    ClientMeta(meta): ClientMeta,
    axum::Form(form): axum::Form<TotpConfirmForm>,
) -> Response {
    let retry = |error: &str| {
        let page = TotpPage {
            f: Frame::new(&me.tenant, "Add an authenticator app"),
            csrf: me.session.csrf.clone(),
            factor: form.factor.chars().take(36).collect(),
            qr: None,
            secret: None,
            otpauth: None,
            error: Some(error.to_string()),
        };
        render(StatusCode::BAD_REQUEST, &page)
    };
    let Ok(id) = Uuid::parse_str(form.factor.trim()) else {
        return retry("Start again: that authenticator setup is unknown.");
    };
    match state
        .factors
        .confirm_totp(&me.principal, id, form.code.trim(), &meta)
        .await
    {
        Ok(enrolled) => match enrolled.recovery_codes {
            Some(recovery_codes) => render(
                StatusCode::OK,
                &CodesPage {
                    f: Frame::new(&me.tenant, "Save your recovery codes"),
                    recovery_codes,
                },
            ),
            None => back(&me.tenant, "factor-added"),
        },
        Err(AppError::BadRequest {
            code: ErrorCode::InvalidCode,
            ..
        }) => retry("Wrong or expired code. Try the current one."),
        Err(e) => failed(&state, &me, e).await,
    }
}
