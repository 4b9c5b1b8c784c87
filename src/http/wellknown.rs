//! Discovery documents: the JWKS and the OpenID-style configuration.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::domain::oauth::{Prompt, STANDARD_SCOPES};
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
        axum::Json(state.keys.complete().await.jwks()),
    )
}

/// The OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414).
/// It lists exactly what the endpoints do: every value here is exercised
/// by `tests/api/oidc.rs` (`the_discovery_document_lists_what_works`).
async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    let base = &state.config.server.public_url;
    let keys = state.keys.complete().await;
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    axum::Json(serde_json::json!({
        "issuer": keys.issuer(),
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/v1/auth/token"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "end_session_endpoint": format!("{base}/oauth/logout"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/v1/auth/introspect"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        // What this keyring can sign (EdDSA, and RS256 once its key
        // exists; none with an HS256 keyring, which has no public key).
        "id_token_signing_alg_values_supported": keys.id_token_algs().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": CLAIMS,
        "subject_types_supported": ["public"],
        "prompt_values_supported": Prompt::SUPPORTED,
        "acr_values_supported": ["1", "2"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

/// The claims an ID token or the userinfo answer can carry.
pub const CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "azp",
    "at_hash",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "name",
    "roles",
    "tenant",
];
