//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document
//! and its human-readable reference page.

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;
use crate::telemetry::metrics::Gauges;

/// `openapi` is the finished document (`api::contract::complete`).
pub fn router(openapi: serde_json::Value) -> axum::Router<AppState> {
    let json = openapi.to_string();
    // The reference page only lists paths and answers, which the typed
    // model reads back intact.
    let page = serde_json::from_value::<utoipa::openapi::OpenApi>(openapi)
        .map(|doc| docs_page(&doc))
        .unwrap_or_else(|_| Html("API reference unavailable; see /openapi.json".into()));
    axum::Router::new()
        .route("/health", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = page.clone();
                async move { page }
            }),
        )
}

async fn ready(State(state): State<AppState>) -> Response {
    let database = state.store.ping().await.is_ok();
    let cache = state.cache.ping().await.is_ok();
    let queue = state.notifier.pending_count().await.ok();
    let status = if database && cache {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        axum::Json(json!({
            "status": word(database && cache),
            "database": word(database),
            "cache": word(cache),
            "notifier_queue_depth": queue,
            // Scheduled backups: never fails readiness, at most "warning".
            "backup": state.backups.status(),
        })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (db_connections, db_idle) = state.store.pool_state();
    let body = state.metrics.render(Gauges {
        argon2_queue: state.passwords.queue_depth(),
        db_connections,
        db_idle,
        outbox_pending: state.notifier.pending_count().await.unwrap_or(0),
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

struct Operation {
    method: String,
    path: String,
    summary: String,
    tag: String,
    responses: Vec<(String, String)>,
    secured: bool,
}

#[derive(Template)]
#[template(path = "docs.html")]
struct DocsPage {
    title: String,
    version: String,
    operations: Vec<Operation>,
}

/// Renders the reference once at start-up: it only depends on the code.
fn docs_page(doc: &utoipa::openapi::OpenApi) -> Html<String> {
    let mut operations = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            operations.push(Operation {
                method: method.to_string(),
                path: path.clone(),
                summary: op
                    .summary
                    .clone()
                    .or_else(|| op.description.clone())
                    .unwrap_or_default(),
                tag: op.tags.as_ref().and_then(|t| t.first().cloned()).unwrap_or_default(),
                responses: op
                    .responses
                    .responses
                    .iter()
                    .map(|(code, r)| {
                        let desc = match r {
                            utoipa::openapi::RefOr::T(r) => r.description.clone(),
                            utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
                        };
                        (code.clone(), desc)
                    })
                    .collect(),
                secured: op.security.as_ref().is_some_and(|s| !s.is_empty()),
            });
        }
    }
    operations.sort_by(|a, b| (&a.tag, &a.path).cmp(&(&b.tag, &b.path)));
    let page = DocsPage {
        title: doc.info.title.clone(),
        version: doc.info.version.clone(),
        operations,
    };
    Html(
        page.render()
            .unwrap_or_else(|_| "API reference unavailable; see /openapi.json".into()),
    )
}
