//! `Upstream` against the stand-in providers of `testing::upstream`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::domain::providers::AppleKey;
use crate::testing::upstream::{
    FakeGithub, FakeOidcProvider, Misbehaviour, Person, TestKey, pkce_challenge, test_provider,
};

const CLIENT: &str = "client-1";
const SECRET: &str = "s3cret/with:odd&chars";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn upstream() -> (Upstream, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (Upstream::new(Clock::system(), metrics.clone()), metrics)
}

fn request(nonce: &str) -> AuthRequest {
    AuthRequest {
        redirect_uri: Url::parse("http://127.0.0.1:1/callback").unwrap(),
        state: "st-123".into(),
        nonce: nonce.into(),
        code_challenge: pkce_challenge(VERIFIER),
    }
}

/// Plays the browser: follows the authorization URL to the provider and
/// reads the code from the redirect back.
async fn authorize(url: &Url) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(url.clone()).send().await.unwrap();
    assert_eq!(response.status(), 303, "{url}");
    let location = response.headers()["location"].to_str().unwrap();
    let back = Url::parse(location).unwrap();
    assert!(back.as_str().starts_with("http://127.0.0.1:1/callback"));
    let pairs: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st-123");
    pairs["code"].clone()
}

async fn sign_in(up: &Upstream, provider: &Provider) -> Result<UpstreamIdentity, UpstreamError> {
    sign_in_with(up, provider, &Secret::new(SECRET)).await
}

async fn sign_in_with(up: &Upstream, provider: &Provider, secret: &Secret) -> Result<UpstreamIdentity, UpstreamError> {
    let req = request("nonce-abc");
    let url = up.authorization_url(provider, &req).await?;
    let code = authorize(&url).await;
    up.identify(
        provider,
        secret,
        &CallbackData {
            code,
            redirect_uri: req.redirect_uri,
            code_verifier: VERIFIER.into(),
            nonce: req.nonce,
        },
    )
    .await
}

#[tokio::test]
async fn oidc_happy_path() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let provider = idp.provider();

    let url = up.authorization_url(&provider, &request("nonce-abc")).await.unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["nonce"], "nonce-abc");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(!q.contains_key("response_mode"));

    let id = sign_in(&up, &provider).await.unwrap();
    assert_eq!(
        id,
        UpstreamIdentity {
            subject: "248289761001".into(),
            email: Some("jane@example.com".into()),
            email_verified: true,
            name: Some("Jane Doe".into()),
        }
    );
    // Discovery and keys are cached.
    sign_in(&up, &provider).await.unwrap();
    assert_eq!(idp.discovery_requests(), 1);
    assert_eq!(idp.jwks_requests(), 1);
}

#[tokio::test]
async fn oidc_email_from_userinfo_when_the_id_token_has_none() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    idp.set_email_in_id_token(false);
    idp.set_person(Person {
        email_verified: false,
        ..Person::default()
    });
    let (up, _) = upstream();
    let id = sign_in(&up, &idp.provider()).await.unwrap();
    assert_eq!(id.email.as_deref(), Some("jane@example.com"));
    assert!(!id.email_verified);
    assert_eq!(id.name.as_deref(), Some("Jane Doe"));
}

#[tokio::test]
async fn each_misbehaviour_is_refused_with_its_reason() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let (up, metrics) = upstream();
    let provider = idp.provider();
    for (mode, reason) in [
        (Misbehaviour::WrongAudience, "wrong audience"),
        (Misbehaviour::WrongNonce, "wrong nonce"),
        (Misbehaviour::Expired, "expired"),
        (Misbehaviour::UnknownKey, "unknown key"),
        (Misbehaviour::WrongIssuer, "wrong issuer"),
    ] {
        idp.set_misbehaviour(Some(mode));
        let err = sign_in(&up, &provider).await.unwrap_err();
        assert_eq!(err, UpstreamError::InvalidIdToken(reason), "{mode:?}");
        assert_eq!(err.stage(), "id_token");
    }
    assert_eq!(metrics.upstream_failures("oidc", "id_token"), 5);
    let scrape = metrics.render(Default::default());
    assert!(
        scrape.contains("forge_upstream_failures_total{kind=\"oidc\",stage=\"id_token\"} 5"),
        "{scrape}"
    );
}

#[tokio::test]
async fn a_bad_code_or_verifier_is_denied_and_a_bad_secret_is_misconfigured() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let provider = idp.provider();
    let req = request("nonce-abc");
    let url = up.authorization_url(&provider, &req).await.unwrap();
    let code = authorize(&url).await;
    let callback = CallbackData {
        code: code.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_verifier: "another-verifier-another-verifier-another-verifier".into(),
        nonce: req.nonce.clone(),
    };
    let err = up
        .identify(&provider, &Secret::new(SECRET), &callback)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Denied { stage: "token", .. }), "{err:?}");
    assert!(!err.to_string().contains(&code));

    let code = authorize(&url).await;
    let callback = CallbackData {
        code,
        code_verifier: VERIFIER.into(),
        ..callback
    };
    let err = up
        .identify(&provider, &Secret::new("wrong"), &callback)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Misconfigured(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn rotated_keys_are_followed_once_per_interval() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let metrics = Arc::new(Metrics::default());
    let clock = Clock::manual(Clock::system().now());
    let up = Upstream::new(clock.clone(), metrics);
    let provider = idp.provider();
    sign_in(&up, &provider).await.unwrap();
    assert_eq!(idp.jwks_requests(), 1);

    idp.rotate_key();
    sign_in(&up, &provider).await.unwrap();
    assert_eq!(idp.jwks_requests(), 2, "the unknown kid fetched the keys again");

    // A token under an unknown kid right after: no second refetch.
    idp.set_misbehaviour(Some(Misbehaviour::UnknownKey));
    assert_eq!(
        sign_in(&up, &provider).await.unwrap_err(),
        UpstreamError::InvalidIdToken("unknown key")
    );
    assert_eq!(idp.jwks_requests(), 2);
    // Later, one more.
    clock.advance(discovery::KEY_REFETCH_INTERVAL_SECS);
    assert!(sign_in(&up, &provider).await.is_err());
    assert_eq!(idp.jwks_requests(), 3);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_quickly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (up, metrics) = upstream();
    let provider = test_provider(
        ProviderKind::Oidc,
        CLIENT,
        Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
    );
    let started = Instant::now();
    let err = up.authorization_url(&provider, &request("n")).await.unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Unavailable {
            stage: "discovery",
            reason: "cannot connect"
        }
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(metrics.upstream_failures("oidc", "discovery"), 1);
}

#[tokio::test]
async fn a_failing_provider_is_unavailable_and_the_cache_outlives_it() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let provider = idp.provider();
    idp.set_failing(true);
    let err = up.authorization_url(&provider, &request("n")).await.unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Unavailable {
            stage: "discovery",
            reason: "server error"
        }
    );
    idp.set_failing(false);
    let url = up.authorization_url(&provider, &request("n")).await.unwrap();
    // The token endpoint failing mid-flow.
    let code = authorize(&url).await;
    idp.set_failing(true);
    let err = up
        .identify(
            &provider,
            &Secret::new(SECRET),
            &CallbackData {
                code,
                redirect_uri: request("n").redirect_uri,
                code_verifier: VERIFIER.into(),
                nonce: "n".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Unavailable {
            stage: "token",
            reason: "server error"
        }
    );
    // Once shut down, the cached discovery still builds authorization URLs.
    idp.shutdown();
    assert!(up.authorization_url(&provider, &request("n")).await.is_ok());
}

#[tokio::test]
async fn the_refresher_refetches_stale_issuers_and_backs_off() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let clock = Clock::manual(Clock::system().now());
    let up = Upstream::new(clock.clone(), Arc::new(Metrics::default()));
    let provider = idp.provider();
    up.authorization_url(&provider, &request("n")).await.unwrap();
    up.refresh_due().await;
    assert_eq!(idp.discovery_requests(), 1, "fresh entries are left alone");

    clock.advance(discovery::REFRESH_AFTER_SECS - discovery::REFRESH_AHEAD_SECS);
    up.refresh_due().await;
    assert_eq!(idp.discovery_requests(), 2);
    assert_eq!(idp.jwks_requests(), 2);

    clock.advance(discovery::REFRESH_AFTER_SECS);
    idp.set_failing(true);
    up.refresh_due().await;
    assert_eq!(idp.discovery_requests(), 3);
    up.refresh_due().await;
    assert_eq!(idp.discovery_requests(), 3, "backing off");
    clock.advance(discovery::backoff(1));
    up.refresh_due().await;
    assert_eq!(idp.discovery_requests(), 4);
    // The last good copy still serves.
    assert!(up.authorization_url(&provider, &request("n")).await.is_ok());
}

#[tokio::test]
async fn apple_asks_for_form_post_and_signs_its_client_secret() {
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let mut provider = idp.provider();
    provider.kind = ProviderKind::Apple;
    let url = up.authorization_url(&provider, &request("n")).await.unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["scope"], "openid email name");
    // Without its key ids, an Apple provider is misconfigured.
    let err = sign_in(&up, &provider).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Misconfigured(_)), "{err:?}");

    // With them, the client secret is the JWT of the registered key.
    let key = TestKey::generate("KEY1234567");
    let pem = Secret::new(idp.act_as_apple("TEAM123456", &key));
    provider.apple = Some(AppleKey {
        team_id: "TEAM123456".into(),
        key_id: "KEY1234567".into(),
    });
    let id = sign_in_with(&up, &provider, &pem).await.unwrap();
    assert_eq!(id.subject, Person::default().sub);
    // Another key, or another team, is not Apple's client.
    let other = Secret::new(TestKey::generate("KEY1234567").pkcs8_pem());
    let refused = UpstreamError::Misconfigured("the provider refused the client credentials");
    assert_eq!(sign_in_with(&up, &provider, &other).await.unwrap_err(), refused);
    provider.apple = Some(AppleKey {
        team_id: "OTHERTEAM1".into(),
        key_id: "KEY1234567".into(),
    });
    assert_eq!(sign_in_with(&up, &provider, &pem).await.unwrap_err(), refused);
}

#[tokio::test]
async fn github_happy_path_and_email_rules() {
    let gh = FakeGithub::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let provider = gh.provider();
    let url = up.authorization_url(&provider, &request("n")).await.unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "read:user user:email");
    assert!(!q.contains_key("nonce"));

    let id = sign_in(&up, &provider).await.unwrap();
    assert_eq!(
        id,
        UpstreamIdentity {
            subject: "583231".into(),
            email: Some("octocat@github.com".into()),
            email_verified: true,
            name: Some("The Octocat".into()),
        }
    );

    gh.set_emails(vec![
        json!({"email": "octocat@github.com", "primary": true, "verified": false, "visibility": "public"}),
        json!({"email": "octo@example.com", "primary": false, "verified": true, "visibility": null}),
    ]);
    let id = sign_in(&up, &provider).await.unwrap();
    assert_eq!(id.email, None);
    assert!(!id.email_verified);
}

#[tokio::test]
async fn github_errors_in_a_200_are_errors() {
    let gh = FakeGithub::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let provider = gh.provider();
    let callback = CallbackData {
        code: "not-a-code".into(),
        redirect_uri: request("n").redirect_uri,
        code_verifier: VERIFIER.into(),
        nonce: String::new(),
    };
    let err = up
        .identify(&provider, &Secret::new(SECRET), &callback)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Denied { stage: "token", .. }), "{err:?}");
    let err = up
        .identify(&provider, &Secret::new("bad"), &callback)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Misconfigured(_)), "{err:?}");
}

#[tokio::test]
async fn oauth2_maps_userinfo_with_the_claim_map() {
    // The fake OpenID provider's /userinfo serves as a plain OAuth 2 one.
    let idp = FakeOidcProvider::start(CLIENT, SECRET).await;
    let (up, _) = upstream();
    let base = idp.issuer();
    let mut provider = test_provider(ProviderKind::Oauth2, CLIENT, None);
    provider.authorize_url = Some(base.join("authorize").unwrap());
    provider.token_url = Some(base.join("token").unwrap());
    provider.userinfo_url = Some(base.join("userinfo").unwrap());
    provider.scopes = vec!["profile".into()];
    let id = sign_in(&up, &provider).await.unwrap();
    assert_eq!(id.subject, "248289761001");
    assert_eq!(id.email.as_deref(), Some("jane@example.com"));
    assert!(id.email_verified);

    provider.authorize_url = None;
    let err = up.authorization_url(&provider, &request("n")).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Misconfigured(_)));
}

#[test]
fn basic_auth_encodes_both_parts() {
    let header = basic_auth("id:1", &Secret::new("a b&c"));
    let decoded = STANDARD.decode(header.strip_prefix("Basic ").unwrap()).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "id%3A1:a+b%26c");
}
