//! What more than one test module uses and is not a test: the API helpers
//! of the admin and tenant tests (a server without rate limits, roles,
//! provisioned users, sign-in to a tenant, token claims, forward auth), the
//! admin site's browser and raw SQL against a test server's database.

pub mod binary;
pub mod raw_db;
pub mod site_client;

use base64::Engine;
use forge::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::PASSWORD;

/// A test server without rate limits: these tests sign in many times.
pub async fn server() -> TestServer {
    TestServer::start_with(|c| c.rate_limit.enabled = false).await
}

/// One request with a bearer token and an optional JSON body, for the
/// route tables whose method is data.
pub async fn send(s: &TestServer, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut call = s.as_user(token).request(method, path);
    if let Some(b) = body {
        call = call.json(b);
    }
    call.await
}

/// Creates a role (as `admin`), asserting 201.
pub async fn make_role(s: &TestServer, admin: &str, name: &str, permissions: &[&str]) {
    let (status, body) = s
        .as_user(admin)
        .post("/v1/roles", json!({"name": name, "permissions": permissions}))
        .await;
    assert_eq!(status, 201, "create role {name}: {body}");
}

/// Provisions a user with a password and roles (as `admin`); returns the id.
pub async fn provision(s: &TestServer, admin: &str, email: &str, roles: &[&str]) -> String {
    let (status, body) = s
        .as_user(admin)
        .post(
            "/v1/users",
            json!({"email": email, "password": PASSWORD, "roles": roles}),
        )
        .await;
    assert_eq!(status, 201, "provision {email}: {body}");
    body["id"].as_str().unwrap().to_string()
}

/// A signed-in user holding one role with exactly `permissions`.
pub async fn user_with(s: &TestServer, admin: &str, role: &str, permissions: &[&str]) -> Value {
    make_role(s, admin, role, permissions).await;
    let email = format!("{role}@example.com");
    provision(s, admin, &email, &[role]).await;
    s.login(&email, PASSWORD).await
}

/// Signs in to a tenant named by `X-Forge-Tenant`.
pub async fn login_in(s: &TestServer, tenant: &str, email: &str, password: &str) -> Value {
    let (status, body) = s
        .post("/v1/auth/login", json!({"email": email, "password": password}))
        .tenant(tenant)
        .await;
    assert_eq!(status, 200, "login of {email} in {tenant}: {body}");
    body
}

/// The claims of a JWT, unverified (the server verified it).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `GET /v1/auth/verify?{query}` with `token`, as a reverse proxy asks it.
pub async fn forward_auth(s: &TestServer, token: &str, query: &str) -> reqwest::Response {
    s.as_user(token)
        .get(&format!("/v1/auth/verify?{query}"))
        .response()
        .await
}
