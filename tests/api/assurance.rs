//! Assurance (`amr`, `aal`) in access tokens, the session step-up that
//! raises it, forward auth's `?aal=`, and the second-step challenges
//! (`mfa_token`, `enrollment_token`) in the server's cache. On PostgreSQL
//! and Redis too when the suite runs with them.

use std::sync::Arc;

use forge::domain::{Aal, Amr, Assurance};
use forge::service::RequestMeta;
use forge::service::challenges::{ChallengeKind, MAX_WRONG_ATTEMPTS, WrongAttempt};
use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::support::{claims, forward_auth};
use crate::{PASSWORD, access, assert_error, parts, refresh};

fn assurance_of(token: &str) -> (Value, Value) {
    let c = claims(token);
    (c["amr"].clone(), c["aal"].clone())
}

#[tokio::test]
async fn a_password_sign_in_is_pwd_at_aal_1_and_a_refresh_keeps_it() {
    let s = TestServer::start().await;
    let signed_up = s.signup("ann@example.com", PASSWORD).await;
    assert_eq!(assurance_of(access(&signed_up)), (json!(["pwd"]), json!(1)));
    let session = s.login("ann@example.com", PASSWORD).await;
    assert_eq!(assurance_of(access(&session)), (json!(["pwd"]), json!(1)));

    let (status, refreshed) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&session)}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(assurance_of(access(&refreshed)), (json!(["pwd"]), json!(1)));

    // The OAuth2 token endpoint mints the same.
    let (status, token) = s
        .post(
            "/v1/auth/token",
            json!({"grant_type": "password", "username": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(assurance_of(access(&token)), (json!(["pwd"]), json!(1)));
}

#[tokio::test]
async fn a_code_sign_in_is_otp_and_a_texted_one_sms_too() {
    let s = TestServer::start().await;
    s.post("/v1/auth/otp", json!({"email": "bo@example.com"})).await;
    let code = s.last_code("bo@example.com").await;
    let (status, session) = s
        .post("/v1/auth/otp/verify", json!({"email": "bo@example.com", "code": code}))
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(assurance_of(access(&session)), (json!(["otp"]), json!(1)));
    let (_, refreshed) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&session)}))
        .await;
    assert_eq!(assurance_of(access(&refreshed)), (json!(["otp"]), json!(1)));

    s.post("/v1/auth/otp", json!({"phone": "+14155550199"})).await;
    let code = s.last_code("+14155550199").await;
    let (status, session) = s
        .post("/v1/auth/otp/verify", json!({"phone": "+14155550199", "code": code}))
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(assurance_of(access(&session)), (json!(["otp", "sms"]), json!(1)));
}

#[tokio::test]
async fn forward_auth_asks_for_a_level_and_a_step_up_reaches_it() {
    let s = TestServer::start().await;
    let session = s.signup("cy@example.com", PASSWORD).await;
    let token = access(&session).to_string();

    let resp = forward_auth(&s, &token, "aal=1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-forge-aal"], "1");
    assert_eq!(resp.headers()["x-forge-amr"], "pwd");
    let (status, body) = parts(forward_auth(&s, &token, "aal=2").await).await;
    assert_error(status, &body, 403, "mfa_required");
    for bad in ["aal=3", "aal=0", "aal=two", "aal=", "aal=%202"] {
        let (status, body) = parts(forward_auth(&s, &token, bad).await).await;
        assert_error(status, &body, 400, "validation_failed");
        assert!(body["fields"]["aal"].is_string(), "{bad}: {body}");
    }

    // A second factor (checked by the caller) raises the session.
    let principal = s.state().sessions.authenticate(&token).await.unwrap();
    let (user, raised, minted) = s.state().sessions.step_up(&principal, &[Amr::Otp], None).await.unwrap();
    assert_eq!(user.id.to_string(), session["user"]["id"]);
    assert_eq!(raised, Assurance::password().stepped_up([Amr::Otp]));
    assert_eq!(
        assurance_of(&minted.access_token),
        (json!(["mfa", "otp", "pwd"]), json!(2))
    );
    assert_eq!(
        claims(&minted.access_token)["sid"],
        claims(&token)["sid"],
        "the same session"
    );
    let resp = forward_auth(&s, &minted.access_token, "aal=2").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-forge-aal"], "2");
    assert_eq!(resp.headers()["x-forge-amr"], "mfa,otp,pwd");
    let (status, body) = parts(forward_auth(&s, &token, "aal=2").await).await;
    assert_error(status, &body, 403, "mfa_required");

    // The next refresh keeps aal 2, and so does every later one.
    let (status, refreshed) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&session)}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        assurance_of(access(&refreshed)),
        (json!(["mfa", "otp", "pwd"]), json!(2))
    );
    let (_, again) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&refreshed)}))
        .await;
    assert_eq!(assurance_of(access(&again)).1, json!(2));
    assert_eq!(forward_auth(&s, access(&again), "aal=2").await.status(), 200);

    // Another session of the same user is not raised.
    let other = s.login("cy@example.com", PASSWORD).await;
    let (status, body) = parts(forward_auth(&s, access(&other), "aal=2").await).await;
    assert_error(status, &body, 403, "mfa_required");

    // A signed-out session cannot be raised.
    let (status, _) = s.as_user(access(&again)).post("/v1/auth/logout", json!({})).await;
    assert_eq!(status, 204);
    let err = s
        .state()
        .sessions
        .step_up(&principal, &[Amr::Otp], None)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_token");
}

#[tokio::test]
async fn introspection_states_the_assurance() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef-assurance";
    let s = TestServer::start_with(|c| c.introspection.secret = Some(forge::secret::Secret::new(SECRET))).await;
    let session = s.signup("di@example.com", PASSWORD).await;
    let resp = s
        .client()
        .post(s.url("/v1/auth/introspect"))
        .basic_auth("introspect", Some(SECRET))
        .json(&json!({"token": access(&session)}))
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!((body["amr"].clone(), body["aal"].clone()), (json!(["pwd"]), json!(1)));
}

async fn challenge(s: &TestServer, kind: ChallengeKind, tenant: uuid::Uuid) -> String {
    let meta = RequestMeta {
        ip: Some("192.0.2.7".into()),
        user_agent: Some("assurance test".into()),
        device_token: None,
    };
    s.state()
        .challenges
        .issue(kind, tenant, uuid::Uuid::now_v7(), Assurance::password(), &meta)
        .await
        .unwrap()
        .expose()
        .to_string()
}

async fn default_tenant(s: &TestServer) -> uuid::Uuid {
    s.state().sessions.tenant("default").await.unwrap().unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mfa_token_is_spent_once_even_by_concurrent_verifies() {
    let s = TestServer::start().await;
    let tenant = default_tenant(&s).await;
    let c = Arc::new(s.state().challenges.clone());
    let token = challenge(&s, ChallengeKind::SecondFactor, tenant).await;
    let open = c
        .open(ChallengeKind::SecondFactor, tenant, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.first_factor, Assurance::password());
    assert_eq!(open.meta(&Default::default()).ip.as_deref(), Some("192.0.2.7"));
    assert!(
        c.open(ChallengeKind::Enrollment, tenant, &token)
            .await
            .unwrap()
            .is_none(),
        "an mfa_token is no enrollment_token"
    );
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (c, token) = (c.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            c.consume(ChallengeKind::SecondFactor, tenant, &token).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(won, 1);
    assert!(
        c.open(ChallengeKind::SecondFactor, tenant, &token)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_second_factors_burn_the_challenge_at_the_fifth() {
    let s = TestServer::start().await;
    let tenant = default_tenant(&s).await;
    let c = Arc::new(s.state().challenges.clone());
    let token = challenge(&s, ChallengeKind::SecondFactor, tenant).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, token) = (c.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            c.fail(ChallengeKind::SecondFactor, tenant, &token).await.unwrap()
        }));
    }
    let mut counted = 0;
    for t in tasks {
        counted += u32::from(t.await.unwrap() == WrongAttempt::Counted);
    }
    assert_eq!(counted, MAX_WRONG_ATTEMPTS - 1, "concurrent guesses share five tries");
    assert!(
        c.consume(ChallengeKind::SecondFactor, tenant, &token)
            .await
            .unwrap()
            .is_none(),
        "burned: even the right factor is too late"
    );

    // An enrollment token keeps its own count.
    let token = challenge(&s, ChallengeKind::Enrollment, tenant).await;
    assert_eq!(
        c.fail(ChallengeKind::Enrollment, tenant, &token).await.unwrap(),
        WrongAttempt::Counted
    );
    let spent = c.consume(ChallengeKind::Enrollment, tenant, &token).await.unwrap();
    assert_eq!(spent.map(|c| c.first_factor.aal), Some(Aal::One));
}

#[tokio::test]
async fn a_challenge_lives_five_minutes_by_the_servers_clock() {
    let s = TestServer::start().await;
    let tenant = default_tenant(&s).await;
    let c = s.state().challenges.clone();
    let token = challenge(&s, ChallengeKind::SecondFactor, tenant).await;
    s.clock().advance(299);
    assert!(
        c.open(ChallengeKind::SecondFactor, tenant, &token)
            .await
            .unwrap()
            .is_some()
    );
    s.clock().advance(1);
    assert!(
        c.open(ChallengeKind::SecondFactor, tenant, &token)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        c.consume(ChallengeKind::SecondFactor, tenant, &token)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        c.open(ChallengeKind::SecondFactor, uuid::Uuid::now_v7(), &token)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_openapi_document_names_the_aal_parameter() {
    let s = TestServer::start().await;
    let doc: Value = s.get("/openapi.json").response().await.json().await.unwrap();
    let verify = &doc["paths"]["/v1/auth/verify"]["get"];
    let params = verify["parameters"].as_array().unwrap();
    assert!(
        params.iter().any(|p| p["name"] == "aal" && p["in"] == "query"),
        "{params:?}"
    );
    let forbidden = verify["responses"]["403"]["description"].as_str().unwrap();
    assert!(forbidden.contains("mfa_required"), "{forbidden}");
    assert!(verify["responses"]["400"].is_object());
}
