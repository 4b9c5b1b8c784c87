//! The HTTP side of the metrics: turning a request's method and route into
//! label values from a closed set (see `telemetry::metrics` for why every
//! label must be bounded). The recorder itself lives in `telemetry` so the
//! use cases need nothing from `http`.

/// The route label of a request no route matched: one series for every
/// unknown path, whatever the path was.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The metrics label for an HTTP method: one of the nine standard methods,
/// else `other`, so a client sending made-up methods adds no series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn only_standard_methods_are_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::TRACE), "TRACE");
        for raw in ["FOO", "get", "PROPFIND", &"X".repeat(2048)] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{raw}");
        }
    }
}
