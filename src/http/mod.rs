//! The HTTP surface: router assembly and the layers every request passes.
//!
//! Order of the layers, outside in: CORS (when an origin is allowed), the
//! [`access`] layer (request id, access log and metrics, `nosniff`), panic
//! catcher, body size limit. The panic catcher sits inside the access layer
//! so a panicking handler's request is still logged, counted and given its
//! request id: it becomes the standard JSON 500 and costs that one request
//! only. That needs unwinding, so the release profile must never say
//! `panic = "abort"` (a test guards Cargo.toml).

pub mod access;
pub mod api;
pub mod extract;
pub mod hosted;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod permission;
pub mod site;
pub mod wellknown;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::AppError;
use crate::state::AppState;

pub use access::LoggedUser;

/// forge's router with `extra` (an embedder's own routes, see
/// `Application::with_routes`) merged in, behind the same layers.
pub fn router(state: AppState, extra: axum::Router<AppState>) -> axum::Router {
    let (api, openapi) = api::router();
    let max_body = state.config.server.max_body_bytes;
    let cors = cors(&state.config.server.cors_origins);
    let site = if state.config.admin.enabled {
        site::router(state.clone())
    } else {
        axum::Router::new()
    };
    axum::Router::new()
        .merge(api)
        .merge(site)
        .merge(hosted::router(state.clone()))
        .merge(wellknown::router())
        .merge(oauth::router())
        .merge(ops::router(openapi))
        .merge(extra)
        .fallback(|| async { AppError::not_found("route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        // One `layer` call: axum boxes each route once per call and clones
        // every box level per request, so a stack of separate calls cost a
        // boxed clone per layer per request. `ServiceBuilder` lists the
        // layers outside in.
        .layer(
            ServiceBuilder::new()
                .option_layer(cors)
                .layer(access::AccessLayer::new(state.metrics.clone()))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(DefaultBodyLimit::max(max_body)),
        )
        .with_state(state)
}

/// `None` when no origin is allowed: the layer would only add `Vary`
/// headers to every response and answer preflights that allow nothing.
/// `["*"]` allows any origin (never with credentials: tower-http refuses
/// that pair, and forge's cross-origin callers send bearer tokens). `*`
/// must not reach `AllowOrigin::list`, which panics on it; config
/// validation keeps it the only entry.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(extract::TENANT_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600));
    Some(layer)
}

/// A caught panic: logged with its message inside the request span, answered
/// with the generic JSON 500 (`AppError::Internal`), which never carries the
/// message to the client.
fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    AppError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
