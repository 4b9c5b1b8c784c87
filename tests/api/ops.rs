use forge::testing::TestServer;
use serde_json::Value;

use crate::PASSWORD;

#[tokio::test]
async fn health_and_readiness() {
    let s = TestServer::start().await;
    let resp = s.get("/health").response().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let (status, body) = s.get("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "ok");
    assert_eq!(body["cache"], "ok");
    assert_eq!(body["notifier_queue_depth"], 0);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = TestServer::start().await;
    s.signup("mo@example.com", PASSWORD).await;
    s.login("mo@example.com", PASSWORD).await;
    let text = s.get("/metrics").response().await.text().await.unwrap();
    assert!(
        text.contains("forge_http_requests_total{method=\"POST\",route=\"/v1/auth/signup\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(text.contains("forge_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("forge_logins_total{outcome=\"success\"} 1"), "{text}");
    assert!(text.contains("forge_argon2_queue_depth"), "{text}");
    assert!(text.contains("forge_db_pool_connections"), "{text}");
    assert!(text.contains("forge_outbox_pending"), "{text}");
}

#[tokio::test]
async fn openapi_lists_every_v1_route() {
    let s = TestServer::start().await;
    let doc: Value = s.get("/openapi.json").response().await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("post", "/v1/auth/signup"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/token"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("get", "/v1/auth/verify"),
        ("post", "/v1/auth/introspect"),
        ("get", "/v1/users/me"),
        ("patch", "/v1/users/me"),
        ("delete", "/v1/users/me"),
        ("get", "/v1/users/me/sessions"),
        ("delete", "/v1/users/me/sessions/{id}"),
    ];
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // Every documented path is routed (no 404 `route not found` for it).
    for path in paths.keys() {
        assert!(path.starts_with("/v1/"), "{path}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let html = s.get("/docs").response().await.text().await.unwrap();
    assert!(html.contains("/v1/auth/signup") && html.contains("<html"), "{html}");
}

#[tokio::test]
async fn discovery_documents() {
    let s = TestServer::start().await;
    let resp = s.get("/.well-known/jwks.json").response().await;
    let cache = resp.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cache.contains("max-age=300"), "{cache}");
    let jwks: Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        4,
        "current and next key of Ed25519 and of RS256 are published: {jwks}"
    );
    let (ed, rsa): (Vec<&Value>, Vec<&Value>) = keys.iter().partition(|k| k["kty"] == "OKP");
    assert_eq!((ed.len(), rsa.len()), (2, 2), "{jwks}");
    assert!(
        ed.iter()
            .all(|k| k["crv"] == "Ed25519" && k["alg"] == "EdDSA" && k["use"] == "sig" && k["kid"].is_string())
    );
    assert!(rsa.iter().all(|k| k["kty"] == "RSA"
        && k["alg"] == "RS256"
        && k["use"] == "sig"
        && k["e"] == "AQAB"
        && k["n"].as_str().is_some_and(|n| n.len() == 342)
        && k["kid"].is_string()));
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(keys.iter().all(|k| k.get(private).is_none()), "{private} published");
    }
    let session = s.signup("kid@example.com", PASSWORD).await;
    let kid = {
        use base64::Engine;
        let header = session["access_token"].as_str().unwrap().split('.').next().unwrap();
        let h: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        h["kid"].clone()
    };
    assert!(keys.iter().any(|k| k["kid"] == kid));

    let conf: Value = s
        .get("/.well-known/openid-configuration")
        .response()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(conf["issuer"], "http://localhost:8080");
    assert!(conf["jwks_uri"].as_str().unwrap().ends_with("/.well-known/jwks.json"));
    assert!(conf["token_endpoint"].as_str().unwrap().ends_with("/v1/auth/token"));
}

#[tokio::test]
async fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("forge.db").display());
    let a = TestServer::start_with(|c| c.database.url = url.clone()).await;
    let session = a.signup("persist@example.com", PASSWORD).await;
    a.stop().await;
    let b = TestServer::start_with(|c| c.database.url = url.clone()).await;
    assert_eq!(
        b.as_user(session["access_token"].as_str().unwrap())
            .get("/v1/users/me")
            .await
            .0,
        200,
        "a token survives a restart: the key is stored"
    );
    b.login("persist@example.com", PASSWORD).await;
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("forge.db").display());
    let a = TestServer::start_with(|c| c.database.url = url.clone()).await;
    let session = a.signup("gone@example.com", PASSWORD).await;
    let token = session["access_token"].as_str().unwrap().to_string();
    a.as_user(&token)
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .await;
    a.stop().await;
    let b = TestServer::start_with(|c| c.database.url = url.clone()).await;
    assert_eq!(b.as_user(&token).get("/v1/users/me").await.0, 401);
}

/// Made-up methods and paths must not become metrics labels: the Prometheus
/// client keeps every label value it sees, so before the fix each of these
/// requests added series (~2 KB each, times the histogram buckets) to every
/// scrape and to the process for good.
#[tokio::test]
async fn metrics_labels_stay_bounded_under_random_methods_and_paths() {
    use futures::StreamExt;
    use rand::Rng;
    use rand::distributions::{Alphanumeric, DistString, Uniform};

    let s = TestServer::start().await;
    let scrape = || async { s.get("/metrics").response().await.text().await.unwrap() };
    let random_method = || -> String {
        let mut rng = rand::thread_rng();
        (0..2048)
            .map(|_| char::from(rng.sample(Uniform::new_inclusive(b'A', b'Z'))))
            .collect()
    };
    let random_path = || format!("/{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 2048));

    // One request of each kind first, so the series the flood may use exist.
    let warm = [
        (random_method(), "/v1/auth/login".to_string()),
        (random_method(), random_path()),
        ("GET".to_string(), random_path()),
    ];
    for (method, path) in &warm {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        s.request(method, path).await;
    }
    let before = scrape().await;
    assert!(before.contains("method=\"other\",route=\"unmatched\""), "{before}");
    assert!(before.contains("method=\"other\",route=\"/v1/auth/login\""), "{before}");

    let mut sent = Vec::new();
    for i in 0..300 {
        let method = if i % 3 == 0 { "GET".to_string() } else { random_method() };
        let path = if i % 3 == 1 {
            "/v1/auth/login".to_string()
        } else {
            random_path()
        };
        sent.push((method, path));
    }
    let s = &s;
    let statuses: Vec<u16> = futures::stream::iter(sent.iter())
        .map(|(method, path)| async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            s.request(method, path).await.0.as_u16()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 404 || *s == 405), "{statuses:?}");

    let after = scrape().await;
    for raw in sent.iter().chain(warm.iter()).flat_map(|(m, p)| [m, p]) {
        if raw.len() > 64 {
            assert!(!after.contains(&raw[..64]), "a raw method or path became a label");
        }
    }
    // Same series as before the flood: only counter values changed.
    assert!(
        after.len() < before.len() + 2048,
        "{} -> {} bytes",
        before.len(),
        after.len()
    );
    assert!(after.len() < 64 * 1024, "scrape is {} bytes", after.len());
}

/// `cors_origins = ["*"]` used to panic the server on start (tower-http's
/// `AllowOrigin::list` refuses `*`); now it allows any origin, without
/// credentials.
#[tokio::test]
async fn cors_any_origin_serves_and_answers_preflights() {
    let s = TestServer::start_with(|c| c.server.cors_origins = vec!["*".into()]).await;
    let resp = s
        .request(reqwest::Method::OPTIONS, "/v1/auth/login")
        .header("origin", "https://anywhere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .response()
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(!resp.headers().contains_key("access-control-allow-credentials"));
    let resp = s
        .get("/health")
        .header("origin", "https://other.example")
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

/// With no origin allowed (the default) forge has no CORS layer: no
/// response carries CORS or `Vary` headers, and a preflight is not granted.
#[tokio::test]
async fn without_cors_origins_nothing_cross_origin_is_granted() {
    let s = TestServer::start().await;
    let resp = s
        .request(reqwest::Method::OPTIONS, "/v1/auth/login")
        .header("origin", "https://anywhere.example")
        .header("access-control-request-method", "POST")
        .response()
        .await;
    assert_eq!(resp.status(), 405);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = s
        .get("/health")
        .header("origin", "https://anywhere.example")
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert!(!resp.headers().contains_key("vary"));
}

/// A panicking handler costs its own request (the standard JSON 500, the
/// panic message kept out of the body) and nothing else: the server keeps
/// serving, requests in flight included.
#[tokio::test]
async fn a_panicking_handler_gives_one_500_and_the_server_keeps_serving() {
    use axum::routing::get;

    async fn boom() -> &'static str {
        panic!("secret detail 4711 from the panicking handler")
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        "done"
    }
    let routes = axum::Router::new()
        .route("/test/panic", get(boom))
        .route("/test/slow", get(slow));
    let s = TestServer::start_with_routes(TestServer::config(), routes).await;

    let in_flight = s.get("/test/slow").response();
    let panicking = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        s.get("/test/panic").response().await
    };
    let (in_flight, resp) = tokio::join!(in_flight, panicking);
    assert_eq!(resp.status(), 500);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let text = resp.text().await.unwrap();
    assert!(!text.contains("4711") && !text.contains("secret"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "internal_error");
    assert_eq!(body["message"], "internal server error");

    assert_eq!(in_flight.status(), 200);
    assert_eq!(in_flight.text().await.unwrap(), "done");

    for _ in 0..3 {
        assert_eq!(s.get("/test/panic").await.0, 500);
        let (status, body) = s.get("/health").await;
        assert_eq!((status.as_u16(), body["status"].as_str()), (200, Some("ok")));
    }
    let metrics = s.get("/metrics").response().await.text().await.unwrap();
    assert!(
        metrics.contains("forge_http_requests_total{method=\"GET\",route=\"/test/panic\",status=\"500\"} 4"),
        "{metrics}"
    );
}

/// `panic = "abort"` in the release profile would make the panic catcher a
/// no-op in production builds (one panic would end every request in flight),
/// while every debug-build test above still passed.
#[test]
fn release_profile_unwinds_on_panic() {
    let manifest: toml::Table = include_str!("../../Cargo.toml").parse().unwrap();
    let profiles = manifest
        .get("profile")
        .and_then(|p| p.as_table())
        .cloned()
        .unwrap_or_default();
    for (name, profile) in &profiles {
        let panic = profile.get("panic").and_then(|p| p.as_str());
        assert_ne!(panic, Some("abort"), "profile.{name} must unwind on panic");
    }
    assert!(profiles.contains_key("release"), "the release profile moved?");
}
