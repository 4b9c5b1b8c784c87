//! The `/v1` API. Routes are registered through utoipa-axum, so a route
//! cannot exist without its OpenAPI entry.

pub mod audit;
pub mod auth;
pub mod clients;
pub mod contract;
pub mod directory;
pub mod dto;
pub mod factors;
pub mod federation;
pub mod identity;
pub mod mfa;
pub mod passkeys;
pub mod providers;
pub mod roles;
pub mod settings;
pub mod tenants;
pub mod users;
pub mod webhooks;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "forge", description = "Authentication as infrastructure: accounts, tokens, sessions, roles, tenants."),
    modifiers(&BearerAuth),
    tags(
        (name = "identity", description = "Sign-up, sign-in, tokens and sign-out"),
        (name = "users", description = "Accounts and sessions"),
        (name = "sidecar", description = "Forward-auth and token introspection"),
        (name = "admin", description = "User administration in the caller's tenant (users:read, users:write)"),
        (name = "roles", description = "Roles, permissions and their assignment"),
        (name = "tenants", description = "Tenant management (operators: admins of the default tenant)"),
        (name = "audit", description = "The audit log of the caller's tenant"),
        (name = "clients", description = "OAuth clients of the caller's tenant (clients:read, clients:write)"),
        (name = "federation", description = "Sign-in through upstream identity providers, and linked identities"),
        (name = "providers", description = "Upstream identity providers of the caller's tenant (providers:read, providers:write)"),
        (name = "webhooks", description = "Webhook endpoints of the caller's tenant and their deliveries (webhooks:read, webhooks:write)"),
        (name = "development", description = "Only with dev.outbox = true"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "introspection_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "introspection.username and introspection.secret from the configuration",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every `/v1` route and the OpenAPI document describing them.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::token))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::verify))
        .routes(routes!(auth::introspect))
        .routes(routes!(mfa::verify))
        .routes(routes!(passkeys::mfa_options))
        .routes(routes!(passkeys::sign_in_options))
        .routes(routes!(passkeys::sign_in))
        .routes(routes!(federation::list_enabled))
        .routes(routes!(federation::start))
        .routes(routes!(federation::callback, federation::callback_post))
        .routes(routes!(federation::exchange))
        .routes(routes!(federation::my_identities))
        .routes(routes!(federation::link))
        .routes(routes!(federation::unlink))
        .routes(routes!(identity::request_otp))
        .routes(routes!(identity::verify_otp))
        .routes(routes!(identity::request_verification))
        .routes(routes!(identity::verify_email))
        .routes(routes!(identity::verify_phone))
        .routes(routes!(identity::reauthenticate))
        .routes(routes!(identity::forgot))
        .routes(routes!(identity::reset))
        .routes(routes!(identity::change))
        .routes(routes!(identity::dev_outbox))
        .routes(routes!(users::get_me, users::patch_me, users::delete_me))
        .routes(routes!(users::list_sessions))
        .routes(routes!(users::delete_session))
        .routes(routes!(factors::list_factors))
        .routes(routes!(factors::start_totp))
        .routes(routes!(factors::confirm_totp))
        .routes(routes!(passkeys::start_registration))
        .routes(routes!(passkeys::finish_registration))
        .routes(routes!(factors::rename_factor, factors::remove_factor))
        .routes(routes!(factors::regenerate_recovery_codes))
        .routes(routes!(factors::list_user_factors, factors::reset_user_factors))
        .routes(routes!(directory::list_users, directory::create_user))
        .routes(routes!(
            directory::get_user,
            directory::patch_user,
            directory::delete_user
        ))
        .routes(routes!(directory::list_user_sessions, directory::delete_user_sessions))
        .routes(routes!(directory::delete_user_session))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(roles::get_role, roles::update_role, roles::delete_role))
        .routes(routes!(roles::assign_role, roles::remove_role))
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(tenants::get_tenant, tenants::delete_tenant))
        .routes(routes!(settings::get_settings, settings::patch_settings))
        .routes(routes!(audit::list_audit))
        .routes(routes!(clients::list_clients, clients::create_client))
        .routes(routes!(
            clients::get_client,
            clients::patch_client,
            clients::delete_client
        ))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(clients::list_consents))
        .routes(routes!(clients::revoke_consent))
        .routes(routes!(providers::list_providers, providers::create_provider))
        .routes(routes!(
            providers::get_provider,
            providers::patch_provider,
            providers::delete_provider
        ))
        .routes(routes!(providers::list_user_identities))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::patch_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::replay_delivery))
        .split_for_parts()
}
