//! Tenants through HTTP: operators create, list and delete them; a tenant's
//! token never reaches another tenant's data (404, as if absent), even as
//! that tenant's `admin`; one email can hold an account in each tenant.

use serde_json::json;

use crate::support::{claims, login_in, make_role, provision, send, server};
use crate::{PASSWORD, access, assert_error, parts};

const ACME_ADMIN_PASSWORD: &str = "acme admin passphrase 4 tests";

#[tokio::test]
async fn operators_create_list_and_delete_tenants() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = access(&root).to_string();

    let resp = s
        .as_user(&op)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme Inc.",
                      "admin": {"email": "Boss@Acme.io", "password": ACME_ADMIN_PASSWORD}}),
        )
        .response()
        .await;
    assert_eq!(resp.headers()["location"], "/v1/tenants/acme");
    let (status, created) = parts(resp).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["slug"], "acme");
    assert_eq!(created["name"], "Acme Inc.");
    assert_eq!(created["admin"]["email"], "boss@acme.io");
    assert_eq!(created["admin"]["tenant"], "acme");
    assert_eq!(created["admin"]["roles"], json!(["admin"]));

    // The new admin signs in to acme, with a token of acme holding admin there.
    let boss = login_in(&s, "acme", "boss@acme.io", ACME_ADMIN_PASSWORD).await;
    assert_eq!(claims(access(&boss))["tid"], "acme");
    assert_eq!(claims(access(&boss))["roles"], json!(["admin"]));
    let (status, roles) = s.as_user(access(&boss)).get("/v1/roles").await;
    assert_eq!(status, 200);
    assert_eq!(roles["items"].as_array().unwrap().len(), 1);
    assert_eq!(roles["items"][0]["builtin"], true);

    // A tenant without a first admin, then the list.
    let (status, bare) = s
        .as_user(&op)
        .post("/v1/tenants", json!({"slug": "beta", "name": "Beta"}))
        .await;
    assert_eq!(status, 201);
    assert!(bare["admin"].is_null());
    let (status, list) = s.as_user(&op).get("/v1/tenants").await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["default", "acme", "beta"]);
    assert!(list["next_cursor"].is_null());
    let (status, page) = s.as_user(&op).get("/v1/tenants?limit=2").await;
    assert_eq!(status, 200);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = s
        .as_user(&op)
        .get(&format!("/v1/tenants?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"][0]["slug"], "beta");
    let (status, one) = s.as_user(&op).get("/v1/tenants/acme").await;
    assert_eq!((status.as_u16(), one["name"].as_str()), (200, Some("Acme Inc.")));
    assert_eq!(s.as_user(&op).get("/v1/tenants/nope").await.0, 404);

    // Conflicts and bad input.
    let (status, body) = s
        .as_user(&op)
        .post("/v1/tenants", json!({"slug": "acme", "name": "Again"}))
        .await;
    assert_error(status, &body, 409, "tenant_exists");
    for bad in [
        json!({"slug": "Acme!", "name": "x"}),
        json!({"slug": "gamma", "name": ""}),
        json!({"slug": "gamma"}),
        json!({"slug": "gamma", "name": "G", "admin": {"email": "nope", "password": ACME_ADMIN_PASSWORD}}),
        json!({"slug": "gamma", "name": "G", "admin": {"email": "a@gamma.io", "password": "short"}}),
    ] {
        let (status, body) = s.as_user(&op).post("/v1/tenants", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(
        s.as_user(&op).get("/v1/tenants/gamma").await.0,
        404,
        "nothing half-made"
    );

    // A tenant's own admin is not an operator, `*` notwithstanding.
    let b = access(&boss);
    let (status, body) = s.as_user(b).get("/v1/tenants").await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(s.as_user(b).get("/v1/tenants/acme").await.0, 403);
    let (status, _) = s
        .as_user(b)
        .post("/v1/tenants", json!({"slug": "evil", "name": "E"}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(s.as_user(b).delete("/v1/tenants/beta").await.0, 403);
    assert_eq!(s.as_user(b).delete("/v1/tenants/acme").await.0, 403);

    // default is forever; deleting acme ends its sessions at once.
    let (status, body) = s.as_user(&op).delete("/v1/tenants/default").await;
    assert_error(status, &body, 403, "default_tenant");
    assert_eq!(s.as_user(&op).delete("/v1/tenants/acme").await.0, 204);
    assert_eq!(s.as_user(b).get("/v1/users/me").await.0, 401);
    assert_eq!(s.as_user(b).get("/v1/auth/verify").await.0, 401);
    let (status, body) = s
        .post(
            "/v1/auth/login",
            json!({"email": "boss@acme.io", "password": ACME_ADMIN_PASSWORD}),
        )
        .tenant("acme")
        .await;
    assert_error(status, &body, 404, "unknown_tenant");
    assert_eq!(s.as_user(&op).delete("/v1/tenants/acme").await.0, 404);
    assert_eq!(s.as_user(&op).delete("/v1/tenants/NOT_A_SLUG").await.0, 404);

    // The slug can be used again: a fresh tenant, none of the old accounts.
    let (status, _) = s
        .as_user(&op)
        .post("/v1/tenants", json!({"slug": "acme", "name": "Acme 2"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = s
        .post(
            "/v1/auth/login",
            json!({"email": "boss@acme.io", "password": ACME_ADMIN_PASSWORD}),
        )
        .tenant("acme")
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn another_tenants_data_is_absent() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = access(&root).to_string();
    let (status, _) = s
        .as_user(&op)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme",
                    "admin": {"email": "boss@acme.io", "password": ACME_ADMIN_PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201);
    let boss = login_in(&s, "acme", "boss@acme.io", ACME_ADMIN_PASSWORD).await;
    let b = access(&boss).to_string();
    let boss_id = boss["user"]["id"].as_str().unwrap().to_string();

    // A user and a custom role in default; a user in acme.
    let victim = s.signup("victim@example.com", PASSWORD).await;
    let victim_id = victim["user"]["id"].as_str().unwrap().to_string();
    make_role(&s, &op, "viewer", &["users:read"]).await;
    let (status, _) = s
        .as_user(&b)
        .post("/v1/users", json!({"email": "worker@acme.io", "phone": "+14155550199"}))
        .await;
    assert_eq!(status, 201);

    // acme's admin: every read, list, change and delete of default's data is 404 or empty.
    let v = &victim_id;
    for (method, path, body) in [
        ("GET", format!("/v1/users/{v}"), None),
        ("PATCH", format!("/v1/users/{v}"), Some(json!({"disabled": true}))),
        ("DELETE", format!("/v1/users/{v}"), None),
        ("GET", format!("/v1/users/{v}/sessions"), None),
        ("DELETE", format!("/v1/users/{v}/sessions"), None),
        ("PUT", format!("/v1/users/{v}/roles/admin"), None),
        ("DELETE", format!("/v1/users/{v}/roles/admin"), None),
        ("GET", "/v1/roles/viewer".to_string(), None),
        (
            "PUT",
            "/v1/roles/viewer".to_string(),
            Some(json!({"permissions": ["*"]})),
        ),
        ("DELETE", "/v1/roles/viewer".to_string(), None),
        ("PUT", format!("/v1/users/{boss_id}/roles/viewer"), None),
    ] {
        let (status, body) = send(&s, method, &path, &b, body).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (_, list) = s.as_user(&b).get("/v1/users").await;
    let emails: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["boss@acme.io", "worker@acme.io"]);
    let (_, found) = s.as_user(&b).get("/v1/users?q=victim").await;
    assert_eq!(found["items"], json!([]));
    let (_, audit) = s.as_user(&b).get(&format!("/v1/audit?user_id={v}")).await;
    assert_eq!(audit["items"], json!([]));
    let (_, roles) = s.as_user(&b).get("/v1/roles").await;
    assert_eq!(roles["items"].as_array().unwrap().len(), 1);
    // The header cannot redirect a token to another tenant.
    let (status, _) = s.as_user(&b).get(&format!("/v1/users/{v}")).tenant("default").await;
    assert_eq!(status, 404);

    // The victim is untouched.
    let (status, me) = s.as_user(access(&victim)).get("/v1/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(
        (me["disabled"].as_bool(), me["roles"].clone()),
        (Some(false), json!([]))
    );
    assert_eq!(s.as_user(&op).get("/v1/roles/viewer").await.0, 200);

    // And the other way: the operator does not manage acme's users either.
    for (method, path) in [
        ("GET", format!("/v1/users/{boss_id}")),
        ("DELETE", format!("/v1/users/{boss_id}")),
        ("PUT", format!("/v1/users/{boss_id}/roles/admin")),
    ] {
        assert_eq!(send(&s, method, &path, &op, None).await.0, 404, "{method} {path}");
    }
    let (_, found) = s.as_user(&op).get("/v1/users?q=%2B1415").await;
    assert_eq!(found["items"], json!([]), "acme's phone is not found from default");
    assert_eq!(s.as_user(&b).get("/v1/users/me").await.0, 200);
}

#[tokio::test]
async fn one_email_two_tenants_two_accounts() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let (status, _) = s
        .as_user(access(&root))
        .post("/v1/tenants", json!({"slug": "acme", "name": "Acme"}))
        .await;
    assert_eq!(status, 201);
    let other_password = "a different passphrase for acme";
    let here = s.signup("alice@example.com", PASSWORD).await;
    let there = s.signup_in(Some("acme"), "alice@example.com", other_password).await;
    assert_ne!(here["user"]["id"], there["user"]["id"]);
    assert_eq!(there["user"]["tenant"], "acme");
    let a = s.login("alice@example.com", PASSWORD).await;
    let b = login_in(&s, "acme", "alice@example.com", other_password).await;
    assert_eq!(a["user"]["id"], here["user"]["id"]);
    assert_eq!(b["user"]["id"], there["user"]["id"]);
    assert_eq!(claims(access(&b))["tid"], "acme");
    // Each password opens only its own account.
    let (status, _) = s
        .post(
            "/v1/auth/login",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .tenant("acme")
        .await;
    assert_eq!(status, 401);
    // Deleting one leaves the other.
    assert_eq!(s.as_user(access(&b)).delete("/v1/users/me").await.0, 204);
    assert_eq!(s.as_user(access(&a)).get("/v1/users/me").await.0, 200);
    // Provisioning by the operator takes the same email in default only once.
    let id = provision(&s, access(&root), "carol@example.com", &[]).await;
    assert!(!id.is_empty());
    let (status, body) = s
        .as_user(access(&root))
        .post("/v1/users", json!({"email": "CAROL@example.com"}))
        .await;
    assert_error(status, &body, 409, "email_taken");
}
