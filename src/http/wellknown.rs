//! Discovery documents: the JWKS and the OpenID-style configuration.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::keys::JWKS_MAX_AGE_SECS;
use crate::state::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(openid_configuration))
}

/// Public keys. Cached no longer than the pre-publication delay of a new key,
/// so a verifier never meets an unknown `kid` after a rotation.
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, format!("public, max-age={JWKS_MAX_AGE_SECS}"))],
        axum::Json(state.keys.current().jwks()),
    )
}

async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    let base = &state.config.server.public_url;
    let keys = state.keys.current();
    axum::Json(serde_json::json!({
        "issuer": keys.issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/v1/auth/token"),
        "introspection_endpoint": format!("{base}/v1/auth/introspect"),
        "userinfo_endpoint": format!("{base}/v1/users/me"),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "id_token_signing_alg_values_supported": [keys.algorithm_name()],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "aud", "sub", "sid", "tid", "roles", "email", "iat", "exp", "jti"],
    }))
}
