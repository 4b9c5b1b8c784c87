//! Roles and permissions through HTTP: every protected route refuses a
//! plain user and admits exactly its permission, wildcards match, role
//! changes apply to tokens already issued (forge's endpoints and
//! `/v1/auth/verify`), the built-in `admin` role is protected, and nobody
//! grants more than they hold.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{claims, forward_auth, make_role, provision, send, server, user_with};
use crate::{PASSWORD, access, assert_error, parts};

/// Every protected route: (method, path, body, permission). `{u}` is a
/// fresh user, `{r}` a fresh role without permissions, `{t}` a fresh tenant.
const ROUTES: &[(&str, &str, Option<&str>, &str)] = &[
    ("GET", "/v1/users", None, "users:read"),
    ("GET", "/v1/users?q=a", None, "users:read"),
    (
        "POST",
        "/v1/users",
        Some(r#"{"email": "new-{n}@example.com"}"#),
        "users:write",
    ),
    ("GET", "/v1/users/{u}", None, "users:read"),
    (
        "PATCH",
        "/v1/users/{u}",
        Some(r#"{"metadata": {"k": 1}}"#),
        "users:write",
    ),
    ("DELETE", "/v1/users/{u}", None, "users:write"),
    ("GET", "/v1/users/{u}/sessions", None, "users:read"),
    ("DELETE", "/v1/users/{u}/sessions", None, "users:write"),
    (
        "DELETE",
        "/v1/users/{u}/sessions/0190a0b0-0000-7000-8000-000000000001",
        None,
        "users:write",
    ),
    ("PUT", "/v1/users/{u}/roles/{r}", None, "roles:assign"),
    ("DELETE", "/v1/users/{u}/roles/{r}", None, "roles:assign"),
    ("GET", "/v1/roles", None, "roles:read"),
    (
        "POST",
        "/v1/roles",
        Some(r#"{"name": "new-{n}", "permissions": []}"#),
        "roles:write",
    ),
    ("GET", "/v1/roles/{r}", None, "roles:read"),
    ("PUT", "/v1/roles/{r}", Some(r#"{"permissions": []}"#), "roles:write"),
    ("DELETE", "/v1/roles/{r}", None, "roles:write"),
    ("GET", "/v1/audit", None, "audit:read"),
    ("GET", "/v1/tenants", None, "tenants:read"),
    ("GET", "/v1/tenants/{t}", None, "tenants:read"),
    (
        "POST",
        "/v1/tenants",
        Some(r#"{"slug": "new-{n}", "name": "New"}"#),
        "tenants:write",
    ),
    ("DELETE", "/v1/tenants/{t}", None, "tenants:write"),
    (
        "POST",
        "/v1/auth/introspect",
        Some(r#"{"token": "x"}"#),
        "tokens:introspect",
    ),
    ("GET", "/v1/tenant/settings", None, "settings:read"),
    (
        "PATCH",
        "/v1/tenant/settings",
        Some(r#"{"signup": {"mode": "open"}}"#),
        "settings:write",
    ),
    ("GET", "/v1/clients", None, "clients:read"),
    (
        "POST",
        "/v1/clients",
        Some(r#"{"name": "App {n}", "type": "public", "redirect_uris": ["https://app.example.com/cb"]}"#),
        "clients:write",
    ),
    ("GET", "/v1/clients/unknown-client", None, "clients:read"),
    (
        "PATCH",
        "/v1/clients/unknown-client",
        Some(r#"{"name": "x"}"#),
        "clients:write",
    ),
    ("DELETE", "/v1/clients/unknown-client", None, "clients:write"),
    ("POST", "/v1/clients/unknown-client/secret", None, "clients:write"),
];

#[tokio::test]
async fn every_protected_route_needs_exactly_its_permission() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let plain = s.signup("plain@example.com", PASSWORD).await;
    let mut holders = std::collections::HashMap::new();
    for (_, _, _, perm) in ROUTES {
        if !holders.contains_key(perm) {
            let role = perm.replace(':', "-");
            let session = user_with(&s, &admin, &role, &[perm]).await;
            holders.insert(*perm, access(&session).to_string());
        }
    }
    for (n, (method, path, body, perm)) in ROUTES.iter().enumerate() {
        // Fresh objects per route, so destructive routes have a victim.
        let u = provision(&s, &admin, &format!("victim-{n}@example.com"), &[]).await;
        let r = format!("victim-{n}");
        make_role(&s, &admin, &r, &[]).await;
        let t = format!("victim-{n}");
        let (status, _) = s
            .as_user(&admin)
            .post("/v1/tenants", json!({"slug": t, "name": "V"}))
            .await;
        assert_eq!(status, 201);
        let fill = |x: &str| {
            x.replace("{u}", &u)
                .replace("{r}", &r)
                .replace("{t}", &t)
                .replace("{n}", &n.to_string())
        };
        let path = fill(path);
        let body = body.map(|b| serde_json::from_str::<Value>(&fill(b)).unwrap());

        let (status, err) = send(&s, method, &path, access(&plain), body.clone()).await;
        assert_error(status, &err, 403, "forbidden");
        let (status, _) = s
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), &path)
            .await;
        assert_eq!(status, 401, "{method} {path} without a token");
        // Holders of other permissions are refused too.
        for (other, token) in &holders {
            if other != perm {
                let (status, _) = send(&s, method, &path, token, body.clone()).await;
                assert_eq!(status, 403, "{method} {path} with {other}");
            }
        }
        let (status, answer) = send(&s, method, &path, &holders[perm], body.clone()).await;
        assert!(
            status.is_success() || status == 404,
            "{method} {path} with {perm}: {status} {answer}"
        );
    }
}

#[tokio::test]
async fn wildcards_match_within_their_scope() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let users_all = user_with(&s, &admin, "user-admin", &["users:*"]).await;
    let reader = user_with(&s, &admin, "reader", &["*:read"]).await;
    let t = access(&users_all);
    assert_eq!(s.as_user(t).get("/v1/users").await.0, 200);
    let (status, _) = s.as_user(t).post("/v1/users", json!({"email": "w@example.com"})).await;
    assert_eq!(status, 201);
    assert_eq!(s.as_user(t).get("/v1/roles").await.0, 403);
    assert_eq!(s.as_user(t).get("/v1/audit").await.0, 403);

    let t = access(&reader);
    for path in ["/v1/users", "/v1/roles", "/v1/audit", "/v1/roles/admin"] {
        assert_eq!(s.as_user(t).get(path).await.0, 200, "{path}");
    }
    let (status, _) = s
        .as_user(t)
        .post("/v1/roles", json!({"name": "x", "permissions": []}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(forward_auth(&s, t, "permission=billing:read").await.status(), 200);
    assert_eq!(forward_auth(&s, t, "permission=billing:write").await.status(), 403);
    // `*:read` is a default-tenant permission that covers `tenants:read`.
    assert_eq!(s.as_user(t).get("/v1/tenants").await.0, 200);
}

#[tokio::test]
async fn role_changes_apply_to_tokens_already_issued() {
    role_changes_apply_on(server().await).await;
}

/// `cache.local_entries = 0`: nothing is kept in process, every lookup
/// reads the database, and the behaviour is the same.
#[tokio::test]
async fn without_in_process_copies_role_changes_apply_the_same() {
    let s = forge::testing::TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        c.cache.local_entries = 0;
    })
    .await;
    role_changes_apply_on(s).await;
}

async fn role_changes_apply_on(s: forge::testing::TestServer) {
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let session = s.signup("eve@example.com", PASSWORD).await;
    let id = session["user"]["id"].as_str().unwrap().to_string();
    let token = access(&session).to_string();
    let forbidden_now = |status: StatusCode| assert_eq!(status, 403);

    forbidden_now(s.as_user(&token).get("/v1/users").await.0);
    forbidden_now(forward_auth(&s, &token, "permission=users:read").await.status());
    make_role(&s, &admin, "viewer", &["users:read"]).await;

    // Assign: effective at once, on forge's endpoints and on verify.
    let (status, _) = s
        .as_user(&admin)
        .request(reqwest::Method::PUT, &format!("/v1/users/{id}/roles/viewer"))
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .as_user(&admin)
        .request(reqwest::Method::PUT, &format!("/v1/users/{id}/roles/viewer"))
        .await;
    assert_eq!(status, 204, "assigning twice is idempotent");
    assert_eq!(s.as_user(&token).get("/v1/users").await.0, 200);
    let resp = forward_auth(&s, &token, "permission=users:read").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-forge-roles"], "viewer");
    assert_eq!(forward_auth(&s, &token, "role=viewer").await.status(), 200);
    // The user object and a refreshed token carry the role.
    let (_, me) = s.as_user(&token).get("/v1/users/me").await;
    assert_eq!(me["roles"], json!(["viewer"]));
    let (status, refreshed) = s
        .post("/v1/auth/refresh", json!({"refresh_token": session["refresh_token"]}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(claims(access(&refreshed))["roles"], json!(["viewer"]));
    assert_eq!(claims(&token)["roles"], json!([]), "the old token's claim is stale...");
    assert_eq!(s.as_user(&token).get("/v1/users").await.0, 200, "...but not trusted");

    // Permission edit: effective at once.
    let (status, role) = s
        .as_user(&admin)
        .put("/v1/roles/viewer", json!({"permissions": ["audit:read"]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(role["permissions"], json!(["audit:read"]));
    forbidden_now(s.as_user(&token).get("/v1/users").await.0);
    forbidden_now(forward_auth(&s, &token, "permission=users:read").await.status());
    assert_eq!(s.as_user(&token).get("/v1/audit").await.0, 200);
    assert_eq!(forward_auth(&s, &token, "permission=audit:read").await.status(), 200);

    // Removal: effective at once; removing again is idempotent.
    let (status, _) = s.as_user(&admin).delete(&format!("/v1/users/{id}/roles/viewer")).await;
    assert_eq!(status, 204);
    let (status, _) = s.as_user(&admin).delete(&format!("/v1/users/{id}/roles/viewer")).await;
    assert_eq!(status, 204);
    forbidden_now(s.as_user(&token).get("/v1/audit").await.0);
    forbidden_now(forward_auth(&s, &token, "role=viewer").await.status());
    assert_eq!(forward_auth(&s, &token, "").await.headers()["x-forge-roles"], "");

    // Role deletion: effective at once.
    s.as_user(&admin)
        .request(reqwest::Method::PUT, &format!("/v1/users/{id}/roles/viewer"))
        .await;
    assert_eq!(s.as_user(&token).get("/v1/audit").await.0, 200);
    let (status, _) = s.as_user(&admin).delete("/v1/roles/viewer").await;
    assert_eq!(status, 204);
    forbidden_now(s.as_user(&token).get("/v1/audit").await.0);
    forbidden_now(forward_auth(&s, &token, "permission=audit:read").await.status());
    forbidden_now(forward_auth(&s, &token, "role=viewer").await.status());
    assert_eq!(s.as_user(&admin).get("/v1/roles/viewer").await.0, 404);
}

#[tokio::test]
async fn the_admin_role_is_built_in_and_roles_are_validated() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let (status, list) = s.as_user(&admin).get("/v1/roles").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["name"], "admin");
    assert_eq!(list["items"][0]["permissions"], json!(["*"]));
    assert_eq!(list["items"][0]["builtin"], true);

    let (status, body) = s
        .as_user(&admin)
        .put("/v1/roles/admin", json!({"permissions": []}))
        .await;
    assert_error(status, &body, 403, "builtin_role");
    let (status, body) = s.as_user(&admin).delete("/v1/roles/admin").await;
    assert_error(status, &body, 403, "builtin_role");
    let (status, body) = s
        .as_user(&admin)
        .post("/v1/roles", json!({"name": "admin", "permissions": []}))
        .await;
    assert_error(status, &body, 409, "role_exists");

    let resp = s
        .as_user(&admin)
        .post(
            "/v1/roles",
            json!({"name": "support", "permissions": ["users:read", "users:read", "audit:*"]}),
        )
        .response()
        .await;
    assert_eq!(resp.headers()["location"], "/v1/roles/support");
    let (status, role) = parts(resp).await;
    assert_eq!(status, 201);
    assert_eq!(role["permissions"], json!(["audit:*", "users:read"]));
    assert_eq!(role["builtin"], false);
    assert!(role["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, body) = s
        .as_user(&admin)
        .post("/v1/roles", json!({"name": "support", "permissions": []}))
        .await;
    assert_error(status, &body, 409, "role_exists");
    for bad in [
        json!({"name": "Bad Name", "permissions": []}),
        json!({"name": "ok", "permissions": ["users"]}),
        json!({"name": "ok", "permissions": ["users:read:x"]}),
        json!({"name": "ok"}),
        json!({"name": "ok", "permissions": [], "extra": 1}),
    ] {
        let (status, body) = s.as_user(&admin).post("/v1/roles", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    assert_eq!(s.as_user(&admin).get("/v1/roles/nope").await.0, 404);
    assert_eq!(s.as_user(&admin).get("/v1/roles/NOT%20VALID").await.0, 404);
    let (status, _) = s
        .as_user(&admin)
        .put("/v1/roles/nope", json!({"permissions": []}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(s.as_user(&admin).delete("/v1/roles/nope").await.0, 404);
    let id = provision(&s, &admin, "x@example.com", &[]).await;
    let (status, body) = s
        .as_user(&admin)
        .request(reqwest::Method::PUT, &format!("/v1/users/{id}/roles/nope"))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = s
        .as_user(&admin)
        .request(reqwest::Method::PUT, "/v1/users/not-a-uuid/roles/support")
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .as_user(&admin)
        .request(
            reqwest::Method::PUT,
            "/v1/users/0190a0b0-0000-7000-8000-000000000001/roles/support",
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn nobody_grants_more_than_they_hold() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let root_id = root["user"]["id"].as_str().unwrap().to_string();
    // An assigner can hand out a harmless role but not `admin`, not even to themselves.
    make_role(&s, &admin, "harmless", &[]).await;
    let assigner = user_with(&s, &admin, "assigner", &["roles:assign"]).await;
    let me = assigner["user"]["id"].as_str().unwrap().to_string();
    let t = access(&assigner);
    let (status, body) = s
        .as_user(t)
        .request(reqwest::Method::PUT, &format!("/v1/users/{me}/roles/admin"))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = s
        .as_user(t)
        .request(reqwest::Method::PUT, &format!("/v1/users/{me}/roles/harmless"))
        .await;
    assert_eq!(status, 204);
    // ...nor take `admin` away from the operator.
    let (status, _) = s.as_user(t).delete(&format!("/v1/users/{root_id}/roles/admin")).await;
    assert_eq!(status, 403);
    assert_eq!(forward_auth(&s, &admin, "role=admin").await.status(), 200);

    // A role writer cannot mint a role with more than they hold.
    let writer = user_with(&s, &admin, "writer", &["roles:*"]).await;
    let t = access(&writer);
    for perms in [json!(["*"]), json!(["users:write"]), json!(["roles:*", "audit:read"])] {
        let (status, _) = s
            .as_user(t)
            .post("/v1/roles", json!({"name": "mine", "permissions": perms}))
            .await;
        assert_eq!(status, 403, "{perms}");
    }
    let (status, _) = s
        .as_user(t)
        .post("/v1/roles", json!({"name": "mine", "permissions": ["roles:read"]}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = s.as_user(t).put("/v1/roles/mine", json!({"permissions": ["*"]})).await;
    assert_eq!(status, 403);

    // A user writer cannot disable, re-address or delete an administrator.
    let users = user_with(&s, &admin, "helpdesk", &["users:*"]).await;
    let t = access(&users);
    for (method, body) in [
        ("PATCH", Some(json!({"disabled": true}))),
        ("PATCH", Some(json!({"email": "mallory@example.com"}))),
        ("DELETE", None),
    ] {
        let (status, _) = send(&s, method, &format!("/v1/users/{root_id}"), t, body).await;
        assert_eq!(status, 403);
    }
    let (status, _) = s.as_user(t).delete(&format!("/v1/users/{root_id}/sessions")).await;
    assert_eq!(status, 403);
    // ...nor provision an account holding roles (that needs roles:assign).
    let (status, _) = s
        .as_user(t)
        .post("/v1/users", json!({"email": "sneaky@example.com", "roles": ["admin"]}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(s.as_user(&admin).get("/v1/users/me").await.0, 200);
}

#[tokio::test]
async fn openapi_lists_the_admin_routes() {
    let s = server().await;
    let doc: Value = s.get("/openapi.json").response().await.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("get", "/v1/users"),
        ("post", "/v1/users"),
        ("get", "/v1/users/{id}"),
        ("patch", "/v1/users/{id}"),
        ("delete", "/v1/users/{id}"),
        ("get", "/v1/users/{id}/sessions"),
        ("delete", "/v1/users/{id}/sessions"),
        ("delete", "/v1/users/{id}/sessions/{session_id}"),
        ("put", "/v1/users/{id}/roles/{role}"),
        ("delete", "/v1/users/{id}/roles/{role}"),
        ("get", "/v1/roles"),
        ("post", "/v1/roles"),
        ("get", "/v1/roles/{name}"),
        ("put", "/v1/roles/{name}"),
        ("delete", "/v1/roles/{name}"),
        ("get", "/v1/tenants"),
        ("post", "/v1/tenants"),
        ("get", "/v1/tenants/{slug}"),
        ("delete", "/v1/tenants/{slug}"),
        ("get", "/v1/audit"),
    ];
    for (method, path) in expected {
        let op = paths.get(path).and_then(|p| p.get(method));
        assert!(op.is_some(), "{method} {path} missing");
        assert!(op.unwrap()["security"].is_array(), "{method} {path} without security");
    }
}
