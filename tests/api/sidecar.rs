use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, access, parts};

#[tokio::test]
async fn verify_sets_identity_headers() {
    let s = TestServer::start().await;
    let session = s.signup_verified("sam@example.com", PASSWORD).await;
    let resp = s
        .client()
        .get(s.url("/v1/auth/verify"))
        .bearer_auth(access(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-forge-user-id"], session["user"]["id"].as_str().unwrap());
    assert_eq!(h["x-forge-tenant"], "default");
    assert_eq!(h["x-forge-roles"], "");
    assert_eq!(h["remote-email"], "sam@example.com");
    assert_eq!(h["remote-user"], "sam@example.com");
    assert!(h.contains_key("remote-groups"));

    // The forge_session cookie works instead of a bearer.
    let resp = s
        .client()
        .get(s.url("/v1/auth/verify"))
        .header("cookie", format!("theme=dark; forge_session={}", access(&session)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s.client().get(s.url("/v1/auth/verify")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn verify_checks_roles_and_permissions() {
    let s = TestServer::start().await;
    let admin = s.admin("root@example.com", PASSWORD).await;
    let user = s.signup("plain@example.com", PASSWORD).await;
    let check = |t: &str, q: &str| {
        s.client()
            .get(s.url(&format!("/v1/auth/verify?{q}")))
            .bearer_auth(t.to_string())
            .send()
    };
    assert_eq!(check(access(&admin), "role=admin").await.unwrap().status(), 200);
    assert_eq!(
        check(access(&admin), "permission=users:read").await.unwrap().status(),
        200
    );
    let resp = check(access(&admin), "").await.unwrap();
    assert_eq!(resp.headers()["x-forge-roles"], "admin");
    assert_eq!(check(access(&user), "role=admin").await.unwrap().status(), 403);
    assert_eq!(
        check(access(&user), "permission=users:read").await.unwrap().status(),
        403
    );
}

#[tokio::test]
async fn introspection() {
    let s = TestServer::start().await;
    let session = s.signup("tara@example.com", PASSWORD).await;
    let (status, body) = parts(
        s.client()
            .post(s.url("/v1/auth/introspect"))
            .form(&[("token", access(&session))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], session["user"]["id"]);
    assert_eq!(body["tid"], "default");
    assert!(body["exp"].is_i64() && body["sid"].is_string());

    for token in ["garbage", session["refresh_token"].as_str().unwrap()] {
        let (_, body) = parts(
            s.client()
                .post(s.url("/v1/auth/introspect"))
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(body, json!({"active": false}));
    }
    s.client()
        .post(s.url("/v1/auth/logout"))
        .bearer_auth(access(&session))
        .send()
        .await
        .unwrap();
    let (_, body) = parts(
        s.client()
            .post(s.url("/v1/auth/introspect"))
            .json(&json!({"token": access(&session)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["active"], false, "revoked tokens are inactive");
}
