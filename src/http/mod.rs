//! The HTTP surface: router assembly and the layers every request passes.
//!
//! Order of the layers, outside in: CORS (when an origin is allowed),
//! request id, the access log and metrics (method, matched route, status,
//! latency, request id and the authenticated user's id; never a header or
//! body), security headers, panic catcher, body size limit. The panic
//! catcher sits inside the access log so a panicking handler's request is
//! still logged, counted and given its request id: it becomes the standard
//! JSON 500 and costs that one request only. That needs unwinding, so the
//! release profile must never say `panic = "abort"` (a test guards
//! Cargo.toml).

pub mod api;
pub mod extract;
pub mod hosted;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod permission;
pub mod site;
pub mod wellknown;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Extensions, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn_with_state(state.clone(), access_log))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
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

/// Who the request authenticated as, for its access-log line. The access
/// log puts an empty one in the request's extensions; the extractors that
/// verify a caller ([`extract::Auth`], the admin site's guard) fill it.
#[derive(Clone, Default)]
pub struct LoggedUser(Arc<OnceLock<Uuid>>);

impl LoggedUser {
    /// Notes `user_id` on the request whose extensions these are (the first
    /// caller verified wins; outside the access log, nothing happens).
    pub fn note(extensions: &Extensions, user_id: Uuid) {
        if let Some(slot) = extensions.get::<LoggedUser>() {
            let _ = slot.0.set(user_id);
        }
    }
}

/// One span and one log line per request, and the request metrics. The line
/// is written after the span closes and carries every field itself, so in
/// JSON they are top-level keys of that one object.
async fn access_log(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Both bounded (see `metrics`): the raw method and path are the client's.
    let method = metrics::method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| metrics::UNMATCHED_ROUTE.into());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_string();
    let user = LoggedUser::default();
    request.extensions_mut().insert(user.clone());
    let span = tracing::info_span!("request", method, %route, request_id);
    let response = next.run(request).instrument(span).await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    state.metrics.request(method, &route, status, latency.as_secs_f64());
    tracing::info!(
        method,
        %route,
        request_id,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        user_id = user.0.get().map(tracing::field::display),
        "request"
    );
    response
}
