use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, access, assert_error, parts, refresh};

#[tokio::test]
async fn signup_returns_tokens_and_the_user() {
    let s = TestServer::start().await;
    let (status, body) = s.post("/v1/auth/signup", json!({"email": " Alice@Example.com ", "password": PASSWORD, "phone": "+1 415 555 0100", "metadata": {"plan": "pro"}})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(refresh(&body).len() >= 43);
    let user = &body["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["phone"], "+14155550100");
    assert_eq!(user["tenant"], "default");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["metadata"]["plan"], "pro");
    assert_eq!(user["roles"], json!([]));
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn signup_rejects_bad_input_with_fields() {
    let s = TestServer::start().await;
    let cases = [
        (json!({"email": "not-an-email", "password": PASSWORD}), "email"),
        (json!({"email": "a@example.com", "password": "short"}), "password"),
        (json!({"email": "a@example.com", "password": "password123"}), "password"),
        (
            json!({"email": "a@example.com", "password": "x".repeat(200)}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "phone": "12"}),
            "phone",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "metadata": [1]}),
            "metadata",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = s.post("/v1/auth/signup", &body).await;
        assert_error(status, &resp, 400, "validation_failed");
        assert!(resp["fields"][field].is_string(), "no fields.{field} in {resp}");
    }
    // Nothing was created.
    assert_eq!(s.state().store.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn email_case_and_whitespace_variants_collide() {
    let s = TestServer::start().await;
    s.signup("bob@example.com", PASSWORD).await;
    for variant in ["BOB@example.com", "  bob@EXAMPLE.COM", "bob@example.com\t"] {
        let (status, body) = s
            .post("/v1/auth/signup", json!({"email": variant, "password": PASSWORD}))
            .await;
        assert_error(status, &body, 409, "email_taken");
    }
    s.login("  BOB@Example.com ", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_signups_of_one_email_give_one_201() {
    let s = TestServer::start().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = s.client().clone();
        let url = s.url("/v1/auth/signup");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"email": "race@example.com", "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 19, "{codes:?}");
}

#[tokio::test]
async fn signup_can_be_disabled() {
    let s = TestServer::start_with(|c| c.signup.enabled = false).await;
    let (status, body) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "signup_disabled");
}

#[tokio::test]
async fn login_failures_are_generic() {
    let s = TestServer::start().await;
    s.signup("carol@example.com", PASSWORD).await;
    let wrong = json!({"email": "carol@example.com", "password": "wrong password entirely"});
    let unknown = json!({"email": "nobody@example.com", "password": PASSWORD});
    let (s1, b1) = s.post("/v1/auth/login", &wrong).await;
    let (s2, b2) = s.post("/v1/auth/login", &unknown).await;
    assert_error(s1, &b1, 401, "invalid_credentials");
    assert_eq!((s1, &b1), (s2, &b2));
    let resp = s.post("/v1/auth/login", &wrong).response().await;
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn login_by_phone() {
    let s = TestServer::start().await;
    s.post(
        "/v1/auth/signup",
        json!({"email": "p@example.com", "password": PASSWORD, "phone": "+442079460958"}),
    )
    .await;
    let (status, body) = s
        .post(
            "/v1/auth/login",
            json!({"phone": "+44 20 7946 0958", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "p@example.com");
    assert!(body["user"]["last_sign_in_at"].is_string());
}

#[tokio::test]
async fn disabled_users_cannot_sign_in() {
    let s = TestServer::start().await;
    let body = s.signup("dave@example.com", PASSWORD).await;
    let id = uuid::Uuid::parse_str(body["user"]["id"].as_str().unwrap()).unwrap();
    let patch = forge::store::UserPatch {
        disabled: Some(true),
        now: s.clock().now(),
        ..Default::default()
    };
    let audit = forge::service::RequestMeta::default().audit(
        forge::store::DEFAULT_TENANT_ID,
        0,
        forge::domain::AuditEvent::UserDisabled,
        Some(id),
        None,
    );
    s.state()
        .store
        .update_user(forge::store::DEFAULT_TENANT_ID, id, patch, audit)
        .await
        .unwrap();
    let (status, resp) = s
        .post(
            "/v1/auth/login",
            json!({"email": "dave@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &resp, 403, "user_disabled");
}

#[tokio::test]
async fn token_endpoint_password_and_refresh_grants() {
    let s = TestServer::start().await;
    s.signup("erin@example.com", PASSWORD).await;
    // Form-encoded password grant.
    let resp = s
        .request(reqwest::Method::POST, "/v1/auth/token")
        .form([
            ("grant_type", "password"),
            ("username", "erin@example.com"),
            ("password", PASSWORD),
        ])
        .response()
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = parts(resp).await;
    assert_eq!(status, 200, "{body}");
    // JSON refresh grant.
    let (status, next) = s
        .post(
            "/v1/auth/token",
            json!({"grant_type": "refresh_token", "refresh_token": refresh(&body)}),
        )
        .await;
    assert_eq!(status, 200, "{next}");
    assert_ne!(refresh(&next), refresh(&body));
}

#[tokio::test]
async fn token_endpoint_speaks_rfc6749_errors() {
    let s = TestServer::start().await;
    s.signup("fay@example.com", PASSWORD).await;
    let post = |form: Vec<(&'static str, &'static str)>| s.request(reqwest::Method::POST, "/v1/auth/token").form(&form);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("grant_type", "password"),
                ("username", "fay@example.com"),
                ("password", "nope nope nope"),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "ghost@example.com"),
                ("password", PASSWORD),
            ],
            "invalid_grant",
        ),
        (
            vec![("grant_type", "password"), ("username", "fay@example.com")],
            "invalid_request",
        ),
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "garbage")],
            "invalid_grant",
        ),
        (
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
            "unsupported_grant_type",
        ),
        (vec![("username", "x")], "invalid_request"),
    ];
    for (form, code) in cases {
        let (status, body) = post(form.clone()).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert_eq!(body["error"], code, "{form:?}: {body}");
        assert!(body["error_description"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let s = TestServer::start().await;
    let first = s.signup("gil@example.com", PASSWORD).await;
    let post = |token: String| s.post("/v1/auth/refresh", json!({"refresh_token": token}));
    let (status, second) = post(refresh(&first).to_string()).await;
    assert_eq!(status, 200);
    // Within the grace window (10 s) the same successor comes back.
    let (status, again) = post(refresh(&first).to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&again), refresh(&second));
    // After it, reuse revokes the whole session.
    s.clock().advance(11);
    let (status, body) = post(refresh(&first).to_string()).await;
    assert_error(status, &body, 401, "invalid_grant");
    let (status, _) = post(refresh(&second).to_string()).await;
    assert_eq!(status, 401, "successor must die with the session");
    assert_eq!(
        s.as_user(access(&second)).get("/v1/users/me").await.0,
        401,
        "access token of a revoked session must fail at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_refreshes_with_grace_zero_give_one_success() {
    let s = TestServer::start_with(|c| c.jwt.refresh_reuse_grace = std::time::Duration::ZERO).await;
    let first = s.signup("hal@example.com", PASSWORD).await;
    let token = refresh(&first).to_string();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let client = s.client().clone();
        let url = s.url("/v1/auth/refresh");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|&c| c == 200 || c == 401), "{codes:?}");
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let s = TestServer::start().await;
    let first = s.signup("ivy@example.com", PASSWORD).await;
    s.clock().advance(31 * 24 * 3600);
    let (status, body) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&first)}))
        .await;
    assert_error(status, &body, 401, "invalid_grant");
}

#[tokio::test]
async fn logout_revokes_at_once_including_verify() {
    let s = TestServer::start().await;
    let a = s.signup("jo@example.com", PASSWORD).await;
    let b = s.login("jo@example.com", PASSWORD).await;
    let verify = |t: String| s.as_user(t).get("/v1/auth/verify");
    assert_eq!(verify(access(&a).into()).await.0, 200);
    assert_eq!(
        s.as_user(access(&a))
            .request(reqwest::Method::POST, "/v1/auth/logout")
            .await
            .0,
        204
    );
    assert_eq!(verify(access(&a).into()).await.0, 401);
    assert_eq!(verify(access(&b).into()).await.0, 200, "other session untouched");
    let (status, _) = s.post("/v1/auth/refresh", json!({"refresh_token": refresh(&a)})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn logout_all_and_logout_by_refresh_token() {
    let s = TestServer::start().await;
    let a = s.signup("kim@example.com", PASSWORD).await;
    let b = s.login("kim@example.com", PASSWORD).await;
    // Without an access token, the refresh token alone signs out its session.
    assert_eq!(
        s.post("/v1/auth/logout", json!({"refresh_token": refresh(&a)})).await.0,
        204
    );
    let me = |t: String| s.as_user(t).get("/v1/users/me");
    assert_eq!(me(access(&a).into()).await.0, 401);
    assert_eq!(me(access(&b).into()).await.0, 200);
    let c = s.login("kim@example.com", PASSWORD).await;
    assert_eq!(
        s.as_user(access(&c))
            .post("/v1/auth/logout", json!({"scope": "all"}))
            .await
            .0,
        204
    );
    assert_eq!(me(access(&b).into()).await.0, 401);
    assert_eq!(me(access(&c).into()).await.0, 401);
    // No credentials at all.
    let (status, body) = s.request(reqwest::Method::POST, "/v1/auth/logout").await;
    assert_error(status, &body, 401, "invalid_token");
}

#[tokio::test]
async fn unknown_tenant_is_404() {
    let s = TestServer::start().await;
    for tenant in ["nope", "BAD SLUG"] {
        let (status, body) = s
            .post(
                "/v1/auth/login",
                json!({"email": "a@example.com", "password": PASSWORD}),
            )
            .tenant(tenant)
            .await;
        assert_error(status, &body, 404, "unknown_tenant");
    }
}

#[tokio::test]
async fn rehashes_on_login_when_parameters_change() {
    let s = TestServer::start().await;
    let body = s.signup("lee@example.com", PASSWORD).await;
    let id = uuid::Uuid::parse_str(body["user"]["id"].as_str().unwrap()).unwrap();
    let hash_of = |store: std::sync::Arc<dyn forge::store::Store>| async move {
        let email = forge::domain::Identifier::parse("lee@example.com").unwrap();
        store
            .find_for_login(forge::store::DEFAULT_TENANT_ID, &email)
            .await
            .unwrap()
            .unwrap()
            .1
            .unwrap()
    };
    let before = hash_of(s.state().store.clone()).await;
    assert!(before.contains("m=1024"), "{before}");
    // A second server over the same store with stronger parameters: the
    // accounts service over the same ports, with another hasher.
    let state = s.state();
    let stronger = forge::crypto::password::PasswordHasher::new(
        forge::crypto::password::Argon2Params {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 1,
        },
        2,
    )
    .unwrap();
    let accounts = forge::service::accounts::Accounts::new(
        state.store.clone(),
        state.clock.clone(),
        stronger,
        state.policy.clone(),
        state.metrics.clone(),
        state.limits.clone(),
        state.settings.clone(),
        state.sessions.clone(),
        state.devices.clone(),
        state.deny.clone(),
        state.address.clone(),
        state.recovery.clone(),
        forge::service::sign_in::SignInGate::new(
            state.store.clone(),
            state.challenges.clone(),
            state.mfa_policies.clone(),
        ),
        state.config.rate_limit.clone(),
        state.config.signup.require_email_verification,
    );
    let email = forge::domain::Identifier::parse("lee@example.com").unwrap();
    let tenant = state.sessions.tenant("default").await.unwrap().unwrap();
    accounts
        .login(
            &tenant,
            &email,
            &forge::secret::Secret::new(PASSWORD),
            &Default::default(),
        )
        .await
        .unwrap();
    let after = hash_of(s.state().store.clone()).await;
    assert!(after.contains("m=2048,t=2"), "{after}");
    assert_ne!(id, uuid::Uuid::nil());
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime_however_often_they_refresh() {
    const DAY: i64 = 86_400;
    let s = TestServer::start().await;
    let max_age = s.state().config.jwt.session_max_age.as_secs() as i64;
    assert_eq!(max_age, 90 * DAY, "the documented default");
    let signed_up = s.signup("abe@example.com", PASSWORD).await;
    let user_id: uuid::Uuid = signed_up["user"]["id"].as_str().unwrap().parse().unwrap();
    let start = s.clock().now();
    let refresh_with = |token: String| s.post("/v1/auth/refresh", json!({"refresh_token": token}));
    // Refreshing every 20 days keeps the sliding 30-day expiry alive...
    let mut token = refresh(&signed_up).to_string();
    for _ in 0..4 {
        s.clock().advance(20 * DAY);
        let (status, body) = refresh_with(token.clone()).await;
        assert_eq!(status, 200, "{body}");
        token = refresh(&body).to_string();
    }
    // ...but the successor issued on day 80 expires on day 90, not 110.
    let sessions = s
        .state()
        .store
        .list_sessions(forge::store::DEFAULT_TENANT_ID, user_id, s.clock().now())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].expires_at, start + max_age);
    s.clock().advance(10 * DAY);
    let (status, body) = refresh_with(token.clone()).await;
    assert_error(status, &body, 401, "invalid_grant");

    // A maximum age below the refresh TTL caps the very first refresh token.
    let s = TestServer::start_with(|c| c.jwt.session_max_age = std::time::Duration::from_secs(DAY as u64)).await;
    let signed_up = s.signup("bea@example.com", PASSWORD).await;
    s.clock().advance(DAY / 2);
    let (status, body) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&signed_up)}))
        .await;
    assert_eq!(status, 200, "{body}");
    s.clock().advance(DAY / 2);
    let (status, body) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&body)}))
        .await;
    assert_error(status, &body, 401, "invalid_grant");
}
