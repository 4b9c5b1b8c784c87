//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document
//! and its human-readable reference page.

use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::config::Config;
use crate::state::AppState;
use crate::telemetry::metrics::Gauges;

/// `openapi` is the document the routes generated; `/openapi.json` serves
/// it completed (`api::contract::complete`).
pub fn router(openapi: utoipa::openapi::OpenApi) -> axum::Router<AppState> {
    let reference = Arc::new(Reference {
        generated: openapi,
        made: OnceLock::new(),
    });
    let page = reference.clone();
    axum::Router::new()
        // A constant: liveness is asked often and says only that forge answers.
        .route(
            "/health",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move |State(state): State<AppState>| async move {
                let json = reference.get(&state.config).json.clone();
                ([(header::CONTENT_TYPE, "application/json")], json)
            }),
        )
        .route(
            "/docs",
            get(move |State(state): State<AppState>| async move { page.get(&state.config).page.clone() }),
        )
}

/// The served OpenAPI document and its reference page, made on the first
/// request for either. Both depend only on the code and the configuration;
/// making them at start-up (completing the document, serialising it, and
/// reading it back for the page) was a third of the time to the first
/// answer, about 10 ms, for pages most servers never serve. The first
/// request makes them on its runtime thread, once.
struct Reference {
    generated: utoipa::openapi::OpenApi,
    made: OnceLock<Made>,
}

/// Shared bytes: each answer is a reference count, not a copy.
struct Made {
    json: Bytes,
    page: Html<Bytes>,
}

impl Reference {
    fn get(&self, config: &Config) -> &Made {
        self.made.get_or_init(|| {
            let openapi = crate::http::api::contract::complete(&self.generated, config);
            let json = Bytes::from(openapi.to_string());
            // The reference page only lists paths and answers, which the
            // typed model reads back intact.
            let page = serde_json::from_value::<utoipa::openapi::OpenApi>(openapi)
                .map(|doc| docs_page(&doc))
                .unwrap_or_else(|_| "API reference unavailable; see /openapi.json".to_owned());
            Made {
                json,
                page: Html(Bytes::from(page)),
            }
        })
    }
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

fn docs_page(doc: &utoipa::openapi::OpenApi) -> String {
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
    page.render()
        .unwrap_or_else(|_| "API reference unavailable; see /openapi.json".into())
}
