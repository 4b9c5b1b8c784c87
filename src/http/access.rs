//! The access layer: what forge does around every request, in one service.
//!
//! Per request it takes the caller's `x-request-id` or makes one (a UUID),
//! runs the rest of the stack inside a `request` span, then puts the id and
//! `x-content-type-options: nosniff` on the response (unless the handler set
//! them), counts the request in the metrics and writes one access-log line
//! (method, matched route, status, latency, request id and the
//! authenticated user's id; never a header or body).
//!
//! It is one hand-written service rather than tower-http's request-id pair,
//! a `from_fn` middleware and a header layer because, on `GET /health`,
//! those four levels (their futures moved into each other, the middleware's
//! boxed future and its clone of the inner service) were a visible part of
//! what forge spends beyond axum itself. Its future is a plain state
//! machine around the inner one: nothing is boxed and, with logging below
//! `info`, nothing is formatted and no user is noted.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response, header};
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::Level;
use tracing::instrument::Instrumented;
use uuid::Uuid;

use super::metrics::{UNMATCHED_ROUTE, method_label};
use crate::telemetry::metrics::Metrics;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Who the request authenticated as, for its access-log line. The access
/// layer puts an empty one in the request's extensions; the extractors that
/// verify a caller ([`super::extract::Auth`], the admin site's guard) fill
/// it.
#[derive(Clone, Default)]
pub struct LoggedUser(Arc<OnceLock<Uuid>>);

impl LoggedUser {
    /// Notes `user_id` on the request whose extensions these are (the first
    /// caller verified wins; outside the access layer, nothing happens).
    pub fn note(extensions: &axum::http::Extensions, user_id: Uuid) {
        if let Some(slot) = extensions.get::<LoggedUser>() {
            let _ = slot.0.set(user_id);
        }
    }
}

/// Wraps each route in an [`Access`] service counting into `metrics`.
#[derive(Clone)]
pub struct AccessLayer {
    metrics: Arc<Metrics>,
}

impl AccessLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        AccessLayer { metrics }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request> for Access<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = AccessFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = match request.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        // Both bounded (see `telemetry::metrics`): the raw method and path
        // are the client's.
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        // Only a request whose line is written needs to learn its user.
        let user = tracing::enabled!(Level::INFO).then(LoggedUser::default);
        if let Some(user) = &user {
            request.extensions_mut().insert(user.clone());
        }
        let span = tracing::info_span!(
            "request",
            method,
            route = %route_label(route.as_ref()),
            request_id = request_id.to_str().unwrap_or_default(),
        );
        AccessFuture {
            inner: self.inner.call(request).instrument(span),
            done: Some(Done {
                started,
                method,
                route,
                request_id,
                user,
                metrics: self.metrics.clone(),
            }),
        }
    }
}

/// A fresh request id: a random UUID in its hyphenated form (always a
/// valid header value).
fn new_request_id() -> HeaderValue {
    let mut buf = Uuid::encode_buffer();
    let text = Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

fn route_label(route: Option<&MatchedPath>) -> &str {
    route.map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

pin_project_lite::pin_project! {
    /// The inner service's future, then the response's finishing touches.
    pub struct AccessFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        done: Option<Done>,
    }
}

/// What the access layer still needs once the response is there.
struct Done {
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
    request_id: HeaderValue,
    user: Option<LoggedUser>,
    metrics: Arc<Metrics>,
}

impl<F, B, E> Future for AccessFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(done)) = (&mut result, this.done.take()) {
            done.finish(response);
        }
        Poll::Ready(result)
    }
}

impl Done {
    fn finish<B>(self, response: &mut Response<B>) {
        let headers = response.headers_mut();
        headers.entry(REQUEST_ID).or_insert(self.request_id.clone());
        headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(NOSNIFF);
        let status = response.status().as_u16();
        let latency = self.started.elapsed();
        let route = route_label(self.route.as_ref());
        self.metrics.request(self.method, route, status, latency.as_secs_f64());
        // Written after the span closed, carrying every field itself, so in
        // JSON they are top-level keys of this one object.
        tracing::info!(
            method = self.method,
            %route,
            request_id = self.request_id.to_str().unwrap_or_default(),
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            user_id = self.user.as_ref().and_then(|u| u.0.get()).map(tracing::field::display),
            "request"
        );
    }
}
