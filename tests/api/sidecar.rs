use forge::testing::TestServer;
use serde_json::json;

use crate::support::claims;
use crate::{PASSWORD, access, assert_error, parts};

#[tokio::test]
async fn verify_sets_identity_headers() {
    let s = TestServer::start().await;
    let session = s.signup_verified("sam@example.com", PASSWORD).await;
    let resp = s.as_user(access(&session)).get("/v1/auth/verify").response().await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-forge-user-id"], session["user"]["id"].as_str().unwrap());
    assert_eq!(h["x-forge-tenant"], "default");
    assert_eq!(
        h["x-forge-session-id"],
        claims(access(&session))["sid"].as_str().unwrap()
    );
    assert_eq!(h["x-forge-roles"], "");
    assert_eq!(h["remote-email"], "sam@example.com");
    assert_eq!(h["remote-user"], "sam@example.com");
    assert!(h.contains_key("remote-groups"));

    // The forge_session cookie works instead of a bearer.
    assert_eq!(
        s.get("/v1/auth/verify")
            .header("cookie", &format!("theme=dark; forge_session={}", access(&session)))
            .await
            .0,
        200
    );
    assert_eq!(s.get("/v1/auth/verify").await.0, 401);
}

#[tokio::test]
async fn verify_checks_roles_and_permissions() {
    let s = TestServer::start().await;
    let admin = s.admin("root@example.com", PASSWORD).await;
    let user = s.signup("plain@example.com", PASSWORD).await;
    let check = |t: &str, q: &str| s.as_user(t).get(&format!("/v1/auth/verify?{q}"));
    assert_eq!(check(access(&admin), "role=admin").await.0, 200);
    assert_eq!(check(access(&admin), "permission=users:read").await.0, 200);
    let resp = check(access(&admin), "").response().await;
    assert_eq!(resp.headers()["x-forge-roles"], "admin");
    assert_eq!(check(access(&user), "role=admin").await.0, 403);
    assert_eq!(check(access(&user), "permission=users:read").await.0, 403);
}

/// Introspects `token` as the caller `auth` describes.
async fn introspect(s: &TestServer, auth: Caller<'_>, token: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let req = s.client().post(s.url("/v1/auth/introspect")).form(&[("token", token)]);
    let req = match auth {
        Caller::Anonymous => req,
        Caller::Bearer(t) => req.bearer_auth(t),
        Caller::Basic(user, secret) => req.basic_auth(user, Some(secret)),
    };
    parts(req.send().await.unwrap()).await
}

#[derive(Clone, Copy)]
enum Caller<'a> {
    Anonymous,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

const INTROSPECTION_SECRET: &str = "0123456789abcdef0123456789abcdef-introspection";

#[tokio::test]
async fn introspection() {
    let s = TestServer::start().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let caller = Caller::Bearer(access(&root));
    let session = s.signup("tara@example.com", PASSWORD).await;
    let (status, body) = introspect(&s, caller, access(&session)).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], session["user"]["id"]);
    assert_eq!(body["tid"], "default");
    assert!(body["exp"].is_i64() && body["sid"].is_string());

    for token in ["garbage", session["refresh_token"].as_str().unwrap()] {
        let (_, body) = s
            .as_user(access(&root))
            .post("/v1/auth/introspect", json!({"token": token}))
            .await;
        assert_eq!(body, json!({"active": false}));
    }
    s.as_user(access(&session))
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .await;
    let (_, body) = introspect(&s, caller, access(&session)).await;
    assert_eq!(body["active"], false, "revoked tokens are inactive");
}

/// RFC 7662 section 2.1: before, anyone could ask whether a token was live
/// and whose it was. Now the caller authenticates, with a bearer token that
/// holds `tokens:introspect` or with the configured Basic secret.
#[tokio::test]
async fn introspection_requires_an_authenticated_caller() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.introspection.secret = Some(forge::secret::Secret::new(INTROSPECTION_SECRET));
    })
    .await;
    let victim = s.signup("victim@example.com", PASSWORD).await;
    let token = access(&victim);

    // Nobody, a garbage bearer, the victim's own token, wrong Basic credentials.
    let (status, body) = introspect(&s, Caller::Anonymous, token).await;
    assert_error(status, &body, 401, "invalid_token");
    let (status, body) = introspect(&s, Caller::Bearer("garbage"), token).await;
    assert_error(status, &body, 401, "invalid_token");
    let (status, body) = introspect(&s, Caller::Bearer(token), token).await;
    assert_error(status, &body, 403, "forbidden");
    assert!(body.get("active").is_none() && body.get("sub").is_none(), "{body}");
    for (user, secret) in [
        ("introspect", "0123456789abcdef0123456789abcdef-introspectioN"),
        ("introspect", ""),
        ("someone", INTROSPECTION_SECRET),
    ] {
        let (status, body) = introspect(&s, Caller::Basic(user, secret), token).await;
        assert_error(status, &body, 401, "invalid_client");
    }
    let resp = s
        .request(reqwest::Method::POST, "/v1/auth/introspect")
        .header("authorization", "Basic !!!not-base64")
        .form([("token", token)])
        .response()
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"forge\", charset=\"UTF-8\""
    );

    // A 401 offers both ways in.
    let resp = s
        .request(reqwest::Method::POST, "/v1/auth/introspect")
        .form([("token", token)])
        .response()
        .await;
    let challenges: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(challenges.iter().any(|c| c.starts_with("Bearer")), "{challenges:?}");
    assert!(challenges.iter().any(|c| c.starts_with("Basic")), "{challenges:?}");

    // The configured client, and a user holding the permission.
    let (status, body) = introspect(&s, Caller::Basic("introspect", INTROSPECTION_SECRET), token).await;
    assert_eq!((status.as_u16(), &body["active"]), (200, &json!(true)), "{body}");
    let root = s.admin("root@example.com", PASSWORD).await;
    let rs = crate::support::user_with(&s, access(&root), "resource-server", &["tokens:introspect"]).await;
    let (status, body) = introspect(&s, Caller::Bearer(access(&rs)), token).await;
    assert_eq!((status.as_u16(), &body["active"]), (200, &json!(true)), "{body}");
    assert_eq!(body["sub"], victim["user"]["id"]);
}

#[tokio::test]
async fn introspection_basic_is_off_without_a_secret() {
    let s = TestServer::start().await;
    let victim = s.signup("victim@example.com", PASSWORD).await;
    for secret in ["", INTROSPECTION_SECRET] {
        let (status, body) = introspect(&s, Caller::Basic("introspect", secret), access(&victim)).await;
        assert_error(status, &body, 401, "invalid_client");
    }
    let resp = s
        .request(reqwest::Method::POST, "/v1/auth/introspect")
        .form([("token", access(&victim))])
        .response()
        .await;
    assert_eq!(resp.status(), 401);
    let challenges: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(challenges[0].starts_with("Bearer"), "{challenges:?}");
}

/// A tenant's introspector (even its admin) sees other tenants' tokens as
/// inactive; the operator's Basic client sees every tenant.
#[tokio::test]
async fn introspection_is_bound_to_the_callers_tenant() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.introspection.secret = Some(forge::secret::Secret::new(INTROSPECTION_SECRET));
    })
    .await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&root))
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme",
                    "admin": {"email": "boss@acme.io", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let boss = crate::support::login_in(&s, "acme", "boss@acme.io", PASSWORD).await;
    let default_user = s.signup("someone@example.com", PASSWORD).await;

    let (status, body) = introspect(&s, Caller::Bearer(access(&boss)), access(&default_user)).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"active": false}), "acme's admin sees default's token");
    let (_, body) = introspect(&s, Caller::Bearer(access(&root)), access(&boss)).await;
    assert_eq!(body, json!({"active": false}), "default's admin sees acme's token");
    // Each sees its own tenant's tokens.
    let (_, body) = introspect(&s, Caller::Bearer(access(&boss)), access(&boss)).await;
    assert_eq!(
        (&body["active"], &body["tid"]),
        (&json!(true), &json!("acme")),
        "{body}"
    );
    let (_, body) = introspect(&s, Caller::Bearer(access(&root)), access(&default_user)).await;
    assert_eq!(body["active"], true, "{body}");
    // The configured client answers for every tenant.
    let basic = Caller::Basic("introspect", INTROSPECTION_SECRET);
    let (_, body) = introspect(&s, basic, access(&boss)).await;
    assert_eq!(
        (&body["active"], &body["tid"]),
        (&json!(true), &json!("acme")),
        "{body}"
    );
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const LOGIN_URL: &str = "https://auth.example.com/login";

async fn forward_auth_server() -> TestServer {
    TestServer::start_with(|c| {
        c.forward_auth.login_url = LOGIN_URL.to_owned();
        c.server.allowed_redirects = vec!["https://app.example.com".to_owned()];
    })
    .await
}

/// GET `path` with `headers`, not following redirects (the sign-in page is
/// on a host the test cannot reach).
async fn check(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.get(s.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

const FORWARDED: [(&str, &str); 4] = [
    ("accept", BROWSER_ACCEPT),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "app.example.com"),
    ("x-forwarded-uri", "/wiki/page?a=1"),
];

/// A browser without a session is sent to the sign-in page with the page it
/// asked for; a program gets the 401, and so does everyone while no sign-in
/// page is configured.
#[tokio::test]
async fn verify_sends_browsers_to_sign_in() {
    let s = forward_auth_server().await;
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = FORWARDED.to_vec();
        all.extend_from_slice(extra);
        all
    };
    let resp = check(&s, "/v1/auth/verify", &FORWARDED).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fwiki%2Fpage%3Fa%3D1"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // A form post: 303, so the browser follows with a GET.
    let resp = check(&s, "/v1/auth/verify", &with(&[("x-forwarded-method", "POST")])).await;
    assert_eq!(resp.status(), 303);
    // `rd` on the check wins over the headers.
    let resp = check(
        &s,
        "/v1/auth/verify?rd=https%3A%2F%2Fapp.example.com%2Fother",
        &FORWARDED,
    )
    .await;
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("rd=https%3A%2F%2Fapp.example.com%2Fother"),
        "{:?}",
        resp.headers()["location"]
    );
    // nginx: a 401 carrying the Location, the original URL from X-Original-URL.
    let resp = check(
        &s,
        "/v1/auth/verify?mode=auth_request",
        &[
            ("accept", BROWSER_ACCEPT),
            ("x-original-url", "https://app.example.com/x"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["location"],
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fx"
    );
    let (status, body) = s.get("/v1/auth/verify?mode=nginx").await;
    assert_error(status, &body, 400, "validation_failed");

    // A signed-out session is a browser without a session.
    let session = s.signup("pat@example.com", PASSWORD).await;
    s.as_user(access(&session))
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .await;
    let cookie = format!("forge_session={}", access(&session));
    let resp = check(&s, "/v1/auth/verify", &with(&[("cookie", cookie.leak())])).await;
    assert_eq!(resp.status(), 302);
    let (status, _) = s.as_user(access(&session)).get("/v1/auth/verify").await;
    assert_eq!(status, 401);

    // Programs and scripts: 401 without a Location.
    for extra in [("accept", "application/json"), ("x-requested-with", "XMLHttpRequest")] {
        let mut headers = with(&[extra]);
        if extra.0 == "accept" {
            headers.remove(0);
        }
        let resp = check(&s, "/v1/auth/verify", &headers).await;
        assert_eq!(resp.status(), 401, "{extra:?}");
        assert!(resp.headers().get("location").is_none(), "{extra:?}");
        assert!(resp.headers().contains_key("www-authenticate"), "{extra:?}");
    }

    // No sign-in page configured: no redirect for anyone.
    let plain = TestServer::start().await;
    let resp = check(
        &plain,
        "/v1/auth/verify",
        &[
            ("accept", BROWSER_ACCEPT),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "localhost:8080"),
            ("x-forwarded-uri", "/"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
}

/// Open redirect: whatever page the request claims to come from, forge
/// sends the browser only to pages in `server.allowed_redirects`.
#[tokio::test]
async fn verify_never_redirects_outside_the_allow_list() {
    let s = forward_auth_server().await;
    let attempts: &[(&str, &[(&str, &str)])] = &[
        ("/v1/auth/verify?rd=https%3A%2F%2Fevil.example%2F", &[]),
        ("/v1/auth/verify?rd=%2F%2Fevil.example", &[]),
        (
            "/v1/auth/verify?rd=https%3A%2F%2Fapp.example.com%40evil.example%2F",
            &[],
        ),
        (
            "/v1/auth/verify",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-uri", "/"),
            ],
        ),
        (
            "/v1/auth/verify",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
                ("x-forwarded-uri", "@evil.example/"),
            ],
        ),
        (
            "/v1/auth/verify",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com.evil.example"),
                ("x-forwarded-uri", "/"),
            ],
        ),
        (
            "/v1/auth/verify?mode=auth_request",
            &[("x-original-url", "https://evil.example/")],
        ),
        (
            "/v1/auth/verify?mode=auth_request",
            &[("x-original-url", "https://app.example.com\\@evil.example/")],
        ),
    ];
    for (path, headers) in attempts {
        let mut all = vec![("accept", BROWSER_ACCEPT)];
        all.extend_from_slice(headers);
        let resp = check(&s, path, &all).await;
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        // Refused (401), or the sign-in page without that page as `rd`
        // when the headers do not even form a URL.
        assert!(
            resp.status() == 401 || location == LOGIN_URL,
            "{path} {headers:?} -> {} {location}",
            resp.status()
        );
        assert!(!location.contains("evil"), "{path} {headers:?} -> {location}");
    }
}
