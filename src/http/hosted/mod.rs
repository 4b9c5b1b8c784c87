//! The hosted pages: forge's own sign-in pages for people (not operators),
//! at top-level paths so OpenID Connect clients can send browsers here:
//! `/login`, `/mfa`, `/signup`, `/verify-email`, `/reset`, `/logged-out`,
//! `/account` (the consent page joins them
//! from the protocol side). Server-rendered with askama, no JavaScript but
//! the passkey script (allowed by a per-response CSP nonce on the pages
//! that offer passkeys), branded per tenant (`?tenant=SLUG`, default
//! `default`).
//!
//! The admin site's rules apply, through its shared pieces
//! (`http::site::guard`): every response gets the security headers
//! ([`page::CSP`], `X-Frame-Options: DENY`, `Cache-Control: no-store`), a
//! state-changing request that a browser says came from another site is
//! refused (Fetch Metadata), the sign-in forms carry a double-submit CSRF
//! token (`login`), and the signed-in forms the session's own token
//! (`account::require_sso`). Sign-in goes through `service::sso`, so rate
//! limits, lockout and audit are the API's.

pub mod account;
pub mod cookie;
pub mod federation;
pub mod login;
pub mod page;
pub mod signup;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::{AppError, ErrorCode};
use crate::http::site::guard;
use crate::state::AppState;

/// The hosted pages' router.
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/sessions/{id}/revoke", post(account::revoke_session))
        .route("/account/factors/{id}/remove", post(account::remove_factor))
        .route("/account/address", post(account::change_address))
        .route("/account/address/confirm", post(account::confirm_address))
        .route("/account/apps/{client_id}/revoke", post(account::revoke_app))
        .route("/account/identities/{id}/link", post(federation::link))
        .route("/account/identities/{id}/unlink", post(federation::unlink))
        .route("/account/factors/totp", post(account::start_totp))
        .route("/account/factors/totp/confirm", post(account::confirm_totp))
        .route("/logout", post(login::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(state, account::require_sso));
    Router::new()
        .merge(signed_in)
        .route("/login", get(login::form).post(login::sign_in))
        .route("/login/code", post(login::request_code))
        .route("/login/provider/{id}", get(federation::start))
        .route("/login/code/verify", post(login::verify_code))
        .route("/login/passkey/options", post(login::passkey_options))
        .route("/login/passkey", post(login::passkey_sign_in))
        .route("/mfa", post(login::second_step))
        .route("/mfa/enrol", post(login::enrol))
        .route("/mfa/passkey/options", post(login::second_step_passkey_options))
        .route("/mfa/passkey", post(login::second_step_passkey))
        .route("/logged-out", get(login::logged_out))
        .route("/signup", get(signup::signup_form).post(signup::signup))
        .route("/verify-email", get(signup::verify_form).post(signup::verify))
        .route("/reset", get(signup::reset_form).post(signup::reset))
        .route(page::BRAND_CSS_PATH, get(login::brand_css))
        .route(page::STYLESHEET_PATH, get(page::stylesheet))
        .route(page::PASSKEY_SCRIPT_PATH, get(page::passkey_script))
        // One stack, outside in (see `http::router` for why one call).
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn(security_headers))
                .layer(axum::middleware::from_fn(fetch_metadata)),
        )
}

/// The hosted pages' security headers (see [`guard::with_security_headers`]).
async fn security_headers(request: Request, next: Next) -> Response {
    guard::with_security_headers(next.run(request).await, page::CSP)
}

/// Refuses a state-changing request from another site (see
/// [`guard::is_cross_site`]).
async fn fetch_metadata(request: Request, next: Next) -> Response {
    if guard::is_cross_site(&request) {
        return page::HostedError(AppError::forbidden(
            ErrorCode::CrossSite,
            "This request came from another site, so it was refused. Use this site's own forms.",
        ))
        .into_response();
    }
    next.run(request).await
}
