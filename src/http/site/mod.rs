//! `/admin`: the server-rendered admin site (askama templates, one embedded
//! stylesheet, no JavaScript but for passkeys).
//!
//! Every admin response passes [`guard::security_headers`] (CSP without any
//! script, except the first-party passkey script on the pages that offer
//! passkeys (the sign-in steps and Settings), allowed there by a per-response nonce:
//! [`guard::ScriptNonce`]; `X-Frame-Options: DENY`, `Referrer-Policy:
//! same-origin`, `Cache-Control: no-store` unless the handler chose
//! otherwise) and
//! [`guard::fetch_metadata`] (a state-changing request whose
//! `Sec-Fetch-Site` is present and neither `same-origin` nor `none` is
//! refused with 403). Every page but the sign-in forms and the static assets sit
//! behind [`guard::require_admin`], which loads and re-checks the session
//! (see `service::site::sessions`) and, for every non-GET request, compares the
//! form's `csrf` field with the session's token in constant time before any
//! handler runs, so no handler can forget the check. State changes are POSTs
//! that answer with a redirect (post/redirect/get) and leave a one-time
//! message in the session.
//!
//! Handlers are thin like the API's: parse the form, call one use case, map
//! the outcome. All output goes through askama's HTML escaping; no template
//! marks user data safe. The SVG chart is drawn by the templates from numbers
//! ([`chart`]).

pub mod chart;
mod clients;
mod dashboard;
pub mod guard;
pub(crate) mod login;
mod operations;
mod providers;
mod records;
mod roles;
mod settings;
mod templates;
mod users;
pub mod views;
mod webhooks;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::state::AppState;

/// The admin router, merged into the main router when `admin.enabled`.
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/admin", get(dashboard::show))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/logout", post(login::sign_out))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{id}", get(users::show))
        .route("/admin/users/{id}/roles", post(users::assign_role))
        .route("/admin/users/{id}/roles/remove", post(users::remove_role))
        .route("/admin/users/{id}/sessions/revoke", post(users::revoke_session))
        .route(
            "/admin/users/{id}/sessions/revoke-all",
            post(users::revoke_all_sessions),
        )
        .route("/admin/users/{id}/disable", post(users::disable))
        .route("/admin/users/{id}/enable", post(users::enable))
        .route(
            "/admin/users/{id}/delete",
            get(users::confirm_delete).post(users::delete),
        )
        .route(
            "/admin/users/{id}/factors/reset",
            get(users::confirm_reset_factors).post(users::reset_factors),
        )
        .route("/admin/roles", get(roles::list).post(roles::create))
        .route("/admin/roles/{name}", get(roles::show).post(roles::update))
        .route(
            "/admin/roles/{name}/delete",
            get(roles::confirm_delete).post(roles::delete),
        )
        .route("/admin/clients", get(clients::list).post(clients::create))
        .route("/admin/clients/new", get(clients::new_form))
        .route("/admin/clients/{client_id}", get(clients::show).post(clients::update))
        .route(
            "/admin/clients/{client_id}/secret",
            get(clients::confirm_rotate).post(clients::rotate),
        )
        .route(
            "/admin/clients/{client_id}/delete",
            get(clients::confirm_delete).post(clients::delete),
        )
        .route("/admin/providers", get(providers::list).post(providers::create))
        .route("/admin/providers/new", get(providers::new_form))
        .route("/admin/providers/{id}", get(providers::show).post(providers::update))
        .route(
            "/admin/providers/{id}/delete",
            get(providers::confirm_delete).post(providers::delete),
        )
        .route("/admin/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/admin/webhooks/{id}", get(webhooks::show))
        .route("/admin/webhooks/{id}/enabled", post(webhooks::toggle))
        .route("/admin/webhooks/{id}/secret", post(webhooks::rotate))
        .route(
            "/admin/webhooks/{id}/delete",
            get(webhooks::confirm_delete).post(webhooks::delete),
        )
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery_id}/replay",
            post(webhooks::replay),
        )
        .route("/admin/audit", get(records::audit))
        .route("/admin/messages", get(records::messages))
        .route("/admin/messages/{id}/resend", post(records::resend))
        .route("/admin/templates", get(templates::show))
        .route("/admin/templates/html", get(templates::html))
        .route("/admin/settings", get(settings::show).post(settings::update))
        .route("/admin/settings/mfa", post(settings::update_mfa))
        .route("/admin/settings/federation", post(settings::update_federation))
        .route("/admin/settings/notices", post(settings::update_notices))
        .route("/admin/settings/branding", post(settings::update_branding))
        .route("/admin/settings/passkeys", post(settings::add_passkey))
        .route("/admin/settings/passkeys/options", post(settings::passkey_options))
        .route("/admin/settings/passkeys/{id}/remove", post(settings::remove_passkey))
        .route("/admin/keys", get(operations::keys))
        .route("/admin/keys/rotate", post(operations::rotate))
        .route(
            "/admin/tenants",
            get(operations::tenants).post(operations::create_tenant),
        )
        .route(
            "/admin/tenants/{slug}/delete",
            get(operations::confirm_delete_tenant).post(operations::delete_tenant),
        )
        .route("/admin/tenant", post(operations::switch_tenant))
        .route("/admin/{*rest}", get(views::not_found).post(views::not_found))
        .route_layer(axum::middleware::from_fn_with_state(state, guard::require_admin));
    Router::new()
        .merge(signed_in)
        .route("/admin/login", get(login::form).post(login::sign_in))
        .route("/admin/login/mfa", post(login::second_step))
        .route("/admin/login/enrol", post(login::enrol))
        .route("/admin/login/enrol/passkey", post(login::enrol_passkey))
        .route("/admin/login/enrol/passkey/options", post(login::enrol_passkey_options))
        .route("/admin/login/mfa/passkey", post(login::second_step_passkey))
        .route(
            "/admin/login/mfa/passkey/options",
            post(login::second_step_passkey_options),
        )
        .route("/admin/login/passkey", post(login::passkey_sign_in))
        .route("/admin/login/passkey/options", post(login::passkey_options))
        .route(views::STYLESHEET_PATH, get(views::stylesheet))
        .route(views::PASSKEY_SCRIPT_PATH, get(views::passkey_script))
        // One stack, outside in (see `http::router` for why one call).
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn(guard::security_headers))
                .layer(axum::middleware::from_fn(guard::fetch_metadata)),
        )
}
