//! The `/v1` API. Routes are registered through utoipa-axum, so a route
//! cannot exist without its OpenAPI entry.

pub mod auth;
pub mod dto;
pub mod users;

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
        .routes(routes!(users::get_me, users::patch_me, users::delete_me))
        .routes(routes!(users::list_sessions))
        .routes(routes!(users::delete_session))
        .split_for_parts()
}
