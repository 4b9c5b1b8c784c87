//! Stand-ins for upstream identity providers, for tests of "sign in with":
//! [`FakeOidcProvider`] (an OpenID Connect provider with discovery, JWKS,
//! authorization code + PKCE and ID tokens, and knobs to misbehave) and
//! [`FakeGithub`] (GitHub's documented OAuth app endpoints and JSON). Each
//! is an axum server on `127.0.0.1:0`; its person is always signed in and
//! has always consented, so `/authorize` redirects straight back with a
//! code.
//!
//! ```no_run
//! # async fn demo() {
//! use forge::testing::upstream::{FakeOidcProvider, Misbehaviour};
//! let idp = FakeOidcProvider::start("client-1", "s3cret").await;
//! let provider = idp.provider(); // a `domain::providers::Provider` of kind `oidc`
//! idp.set_misbehaviour(Some(Misbehaviour::WrongNonce));
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use url::Url;
use uuid::Uuid;

use crate::domain::providers::{ClaimMap, Provider, ProviderId, ProviderKind};

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The S256 PKCE challenge of a verifier (RFC 7636 section 4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A P-256 signing key with a `kid`: what the fake provider signs with, and
/// what unit tests sign their own tokens with.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    signing: SigningKey,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            signing: SigningKey::random(&mut OsRng),
        }
    }

    /// The public half as a JWK (`use: sig`, `alg: ES256`).
    pub fn jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }

    /// The private key as PKCS#8 PEM (the form Apple hands out).
    pub fn pkcs8_pem(&self) -> String {
        self.signing.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    }

    /// The public key as SPKI PEM.
    pub fn public_pem(&self) -> String {
        self.signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }

    /// An ES256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// A JWT with the header given (to test `kid`-less tokens and the like).
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        let key = EncodingKey::from_ec_pem(self.pkcs8_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// The person signed in at a fake provider.
#[derive(Clone, Debug)]
pub struct Person {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Default for Person {
    fn default() -> Self {
        Self {
            sub: "248289761001".into(),
            email: Some("jane@example.com".into()),
            email_verified: true,
            name: Some("Jane Doe".into()),
        }
    }
}

/// How the fake OpenID Connect provider misbehaves in its ID tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    WrongAudience,
    WrongNonce,
    Expired,
    /// Signed by a key that is not in the JWKS.
    UnknownKey,
    WrongIssuer,
}

struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
}

/// What Apple checks in its client secret: a JWT signed by the key the
/// developer registered with Apple.
struct AppleClient {
    team_id: String,
    key_id: String,
    public_pem: String,
}

impl AppleClient {
    /// Whether `secret` is this client's secret for `client_id`: ES256 by
    /// the key, its `kid`, `iss` the team, `sub` the client id, `aud`
    /// Apple's, not expired.
    fn accepts(&self, secret: &str, client_id: &str) -> bool {
        let Ok(header) = jsonwebtoken::decode_header(secret) else {
            return false;
        };
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.key_id.as_str()) {
            return false;
        }
        let key = jsonwebtoken::DecodingKey::from_ec_pem(self.public_pem.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&[crate::upstream::apple::AUDIENCE]);
        validation.set_issuer(&[self.team_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(secret, &key, &validation)
            .is_ok_and(|t| t.claims["sub"].as_str() == Some(client_id))
    }
}

struct OidcState {
    issuer: String,
    client_id: String,
    client_secret: String,
    keys: Vec<TestKey>,
    rogue: TestKey,
    misbehaviour: Option<Misbehaviour>,
    person: Person,
    email_in_id_token: bool,
    failing: bool,
    /// Sign in with Apple's client secret instead of `client_secret`.
    apple: Option<AppleClient>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, Person>,
    key_counter: usize,
}

/// An OpenID Connect provider on `127.0.0.1:0`: discovery, JWKS (P-256,
/// ES256), `/authorize`, `/token` (client_secret_basic or _post, PKCE S256
/// enforced, codes single-use) and `/userinfo`.
pub struct FakeOidcProvider {
    base: Url,
    state: Arc<Mutex<OidcState>>,
    jwks_requests: Arc<AtomicUsize>,
    discovery_requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

type Shared = (Arc<Mutex<OidcState>>, Arc<AtomicUsize>, Arc<AtomicUsize>);

async fn serve(router: Router) -> (Url, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (Url::parse(&format!("http://{addr}")).unwrap(), task)
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn failing() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "upstream trouble").into_response()
}

/// `Authorization: Basic` credentials, form-urlencoded inside (RFC 6749
/// section 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_owned)
}

async fn oidc_discovery(State((state, _, discovery)): State<Shared>) -> Response {
    discovery.fetch_add(1, Ordering::SeqCst);
    let s = state.lock().unwrap();
    if s.failing {
        return failing();
    }
    let iss = &s.issuer;
    axum::Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
    .into_response()
}

async fn oidc_jwks(State((state, jwks, _)): State<Shared>) -> Response {
    jwks.fetch_add(1, Ordering::SeqCst);
    let s = state.lock().unwrap();
    if s.failing {
        return failing();
    }
    let keys: Vec<Value> = s.keys.iter().map(TestKey::jwk).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

async fn oidc_authorize(State((state, _, _)): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    if s.failing {
        return failing();
    }
    if q.get("response_type").map(String::as_str) != Some("code") || q.get("client_id") != Some(&s.client_id) {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    let challenge = match (
        q.get("code_challenge"),
        q.get("code_challenge_method").map(String::as_str),
    ) {
        (Some(c), Some("S256")) => Some(c.clone()),
        (None, _) => None,
        _ => return (StatusCode::BAD_REQUEST, "only S256").into_response(),
    };
    let code = random_token("code-");
    s.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            nonce: q.get("nonce").cloned(),
            challenge,
        },
    );
    let mut back = Url::parse(redirect_uri).unwrap();
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(st) = q.get("state") {
        back.query_pairs_mut().append_pair("state", st);
    }
    Redirect::to(back.as_str()).into_response()
}

async fn oidc_token(
    State((state, _, _)): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    if s.failing {
        return failing();
    }
    let (client_id, secret) = match basic_credentials(&headers) {
        Some(creds) => creds,
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
        },
    };
    let secret_ok = match &s.apple {
        Some(apple) => apple.accepts(&secret, &s.client_id),
        None => secret == s.client_secret,
    };
    if client_id != s.client_id || !secret_ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(grant) = form.get("code").and_then(|c| s.codes.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    if let Some(challenge) = &grant.challenge {
        let ok = form
            .get("code_verifier")
            .is_some_and(|v| &pkce_challenge(v) == challenge);
        if !ok {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
    }
    let t = now();
    let person = s.person.clone();
    let mut claims = json!({
        "iss": s.issuer,
        "sub": person.sub,
        "aud": s.client_id,
        "iat": t,
        "exp": t + 600,
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    if s.email_in_id_token {
        if let Some(email) = &person.email {
            claims["email"] = json!(email);
            claims["email_verified"] = json!(person.email_verified);
        }
        if let Some(name) = &person.name {
            claims["name"] = json!(name);
        }
    }
    match s.misbehaviour {
        Some(Misbehaviour::WrongAudience) => claims["aud"] = json!("someone-else"),
        Some(Misbehaviour::WrongNonce) => claims["nonce"] = json!("not-the-nonce"),
        Some(Misbehaviour::Expired) => {
            claims["iat"] = json!(t - 7200);
            claims["exp"] = json!(t - 3600);
        }
        Some(Misbehaviour::WrongIssuer) => claims["iss"] = json!(format!("{}/other", s.issuer)),
        Some(Misbehaviour::UnknownKey) | None => {}
    }
    let id_token = if s.misbehaviour == Some(Misbehaviour::UnknownKey) {
        s.rogue.sign(&claims)
    } else {
        s.keys[0].sign(&claims)
    };
    let access_token = random_token("at-");
    s.access_tokens.insert(access_token.clone(), person);
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": id_token,
    }))
    .into_response()
}

async fn oidc_userinfo(State((state, _, _)): State<Shared>, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    if s.failing {
        return failing();
    }
    let Some(person) = bearer(&headers).and_then(|t| s.access_tokens.get(&t).cloned()) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response();
    };
    let mut body = json!({ "sub": person.sub });
    if let Some(email) = person.email {
        body["email"] = json!(email);
        body["email_verified"] = json!(person.email_verified);
    }
    if let Some(name) = person.name {
        body["name"] = json!(name);
    }
    axum::Json(body).into_response()
}

impl FakeOidcProvider {
    /// Starts a provider that knows one client.
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let state = Arc::new(Mutex::new(OidcState {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            keys: vec![TestKey::generate("key-1")],
            rogue: TestKey::generate("rogue"),
            misbehaviour: None,
            person: Person::default(),
            email_in_id_token: true,
            failing: false,
            apple: None,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            key_counter: 1,
        }));
        let jwks_requests = Arc::new(AtomicUsize::new(0));
        let discovery_requests = Arc::new(AtomicUsize::new(0));
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(oidc_discovery))
            .route("/jwks", get(oidc_jwks))
            .route("/authorize", get(oidc_authorize))
            .route("/token", post(oidc_token))
            .route("/userinfo", get(oidc_userinfo))
            .with_state((state.clone(), jwks_requests.clone(), discovery_requests.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base: Url::parse(&issuer).unwrap(),
            state,
            jwks_requests,
            discovery_requests,
            task,
        }
    }

    /// The issuer (and base URL), e.g. `http://127.0.0.1:41234` (no
    /// trailing slash in the `issuer` it publishes).
    pub fn issuer(&self) -> Url {
        self.base.clone()
    }

    /// A provider registration of kind `oidc` for this issuer and client.
    pub fn provider(&self) -> Provider {
        let s = self.state.lock().unwrap();
        test_provider(ProviderKind::Oidc, &s.client_id, Some(self.base.clone()))
    }

    pub fn set_misbehaviour(&self, mode: Option<Misbehaviour>) {
        self.state.lock().unwrap().misbehaviour = mode;
    }

    pub fn set_person(&self, person: Person) {
        self.state.lock().unwrap().person = person;
    }

    /// Whether ID tokens carry email and name (otherwise only `/userinfo`
    /// has them).
    pub fn set_email_in_id_token(&self, on: bool) {
        self.state.lock().unwrap().email_in_id_token = on;
    }

    /// Makes the token endpoint act as Sign in with Apple's: the client
    /// secret must be the ES256 JWT forge makes from `key` (registered as
    /// the provider's client secret, PKCS#8 PEM) with `team_id` and
    /// `key.kid` (the provider's `team_id` and `key_id`), instead of the
    /// fixed secret. Answers the PEM to register.
    pub fn act_as_apple(&self, team_id: &str, key: &TestKey) -> String {
        self.state.lock().unwrap().apple = Some(AppleClient {
            team_id: team_id.to_owned(),
            key_id: key.kid.clone(),
            public_pem: key.public_pem(),
        });
        key.pkcs8_pem()
    }

    /// Every endpoint answers 500 while on.
    pub fn set_failing(&self, on: bool) {
        self.state.lock().unwrap().failing = on;
    }

    /// Replaces the signing key by a new one; the JWKS publishes only the
    /// new key, as after a rotation whose overlap has ended.
    pub fn rotate_key(&self) {
        let mut s = self.state.lock().unwrap();
        s.key_counter += 1;
        let key = TestKey::generate(&format!("key-{}", s.key_counter));
        s.keys = vec![key];
    }

    /// How many times the JWKS and the discovery document were fetched.
    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn discovery_requests(&self) -> usize {
        self.discovery_requests.load(Ordering::SeqCst)
    }

    /// Stops the server: its port refuses connections from now on.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for FakeOidcProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A provider registration for tests (enabled, tenant nil).
pub fn test_provider(kind: ProviderKind, client_id: &str, issuer: Option<Url>) -> Provider {
    Provider {
        tenant_id: Uuid::nil(),
        id: ProviderId::parse(kind.as_str()).unwrap(),
        kind,
        name: kind.as_str().to_owned(),
        client_id: client_id.to_owned(),
        issuer,
        authorize_url: None,
        token_url: None,
        userinfo_url: None,
        scopes: Vec::new(),
        claims: ClaimMap::default(),
        apple: None,
        enabled: true,
        from_config: false,
        created_at: 0,
        updated_at: 0,
    }
}

// ---------------------------------------------------------------------------
// GitHub

/// The GitHub user signed in at [`FakeGithub`].
#[derive(Clone, Debug)]
pub struct GithubUser {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
}

struct GithubState {
    client_id: String,
    client_secret: String,
    user: GithubUser,
    emails: Vec<Value>,
    codes: HashMap<String, Grant>,
    tokens: Vec<String>,
}

type GithubShared = Arc<Mutex<GithubState>>;

/// GitHub's OAuth app endpoints and REST API as documented
/// (docs.github.com "Authorizing OAuth apps", "REST API: users, emails"):
/// `/login/oauth/authorize`, `POST /login/oauth/access_token` (JSON with
/// `Accept: application/json`, form-encoded otherwise; errors are 200 with
/// `{"error": ...}`), `GET /user` and `GET /user/emails` (bearer token,
/// `User-Agent` required as on the real API).
pub struct FakeGithub {
    base: Url,
    state: GithubShared,
    task: JoinHandle<()>,
}

async fn gh_authorize(State(state): State<GithubShared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    if q.get("client_id") != Some(&s.client_id) {
        return (StatusCode::NOT_FOUND, "unknown client").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    let code = format!("{:020x}", OsRng.next_u64());
    s.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            nonce: None,
            challenge: q.get("code_challenge").cloned(),
        },
    );
    let mut back = Url::parse(redirect_uri).unwrap();
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(st) = q.get("state") {
        back.query_pairs_mut().append_pair("state", st);
    }
    Redirect::to(back.as_str()).into_response()
}

fn gh_answer(json_wanted: bool, body: Value) -> Response {
    if json_wanted {
        axum::Json(body).into_response()
    } else {
        let pairs: Vec<(String, String)> = body
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        (
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            serde_urlencoded::to_string(pairs).unwrap(),
        )
            .into_response()
    }
}

async fn gh_access_token(
    State(state): State<GithubShared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let json_wanted = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let mut s = state.lock().unwrap();
    let (id, secret) = basic_credentials(&headers).unwrap_or_else(|| {
        (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        )
    });
    if id != s.client_id || secret != s.client_secret {
        return gh_answer(
            json_wanted,
            json!({
                "error": "incorrect_client_credentials",
                "error_description": "The client_id and/or client_secret passed are incorrect.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials",
            }),
        );
    }
    let bad_code = || {
        gh_answer(
            json_wanted,
            json!({
                "error": "bad_verification_code",
                "error_description": "The code passed is incorrect or expired.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
            }),
        )
    };
    let Some(grant) = form.get("code").and_then(|c| s.codes.remove(c)) else {
        return bad_code();
    };
    if form.get("redirect_uri").is_some_and(|r| r != &grant.redirect_uri) {
        return gh_answer(
            json_wanted,
            json!({"error": "redirect_uri_mismatch", "error_description": "The redirect_uri MUST match the registered callback URL for this application."}),
        );
    }
    let verifier_ok = match &grant.challenge {
        Some(challenge) => form
            .get("code_verifier")
            .is_some_and(|v| &pkce_challenge(v) == challenge),
        None => true,
    };
    if !verifier_ok {
        return bad_code();
    }
    let token = format!("gho_{}", &random_token("")[..30]);
    s.tokens.push(token.clone());
    gh_answer(
        json_wanted,
        json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}),
    )
}

/// `None` when the request may proceed, else the refusal GitHub sends.
fn gh_refusal(s: &GithubState, headers: &HeaderMap) -> Option<Response> {
    if headers.get(header::USER_AGENT).is_none() {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            )
                .into_response(),
        );
    }
    match bearer(headers) {
        Some(t) if s.tokens.contains(&t) => None,
        _ => Some((
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response()),
    }
}

async fn gh_user(State(state): State<GithubShared>, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    if let Some(r) = gh_refusal(&s, &headers) {
        return r;
    }
    let u = &s.user;
    axum::Json(json!({
        "login": u.login,
        "id": u.id,
        "node_id": "MDQ6VXNlcjE=",
        "type": "User",
        "site_admin": false,
        "name": u.name,
        "email": null,
    }))
    .into_response()
}

async fn gh_emails(State(state): State<GithubShared>, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    if let Some(r) = gh_refusal(&s, &headers) {
        return r;
    }
    axum::Json(Value::Array(s.emails.clone())).into_response()
}

impl FakeGithub {
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let state = Arc::new(Mutex::new(GithubState {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            user: GithubUser {
                id: 583231,
                login: "octocat".into(),
                name: Some("The Octocat".into()),
            },
            emails: vec![
                json!({"email": "octocat@github.com", "primary": true, "verified": true, "visibility": "public"}),
                json!({"email": "octo@example.com", "primary": false, "verified": true, "visibility": null}),
            ],
            codes: HashMap::new(),
            tokens: Vec::new(),
        }));
        let router = Router::new()
            .route("/login/oauth/authorize", get(gh_authorize))
            .route("/login/oauth/access_token", post(gh_access_token))
            .route("/user", get(gh_user))
            .route("/user/emails", get(gh_emails))
            .with_state(state.clone());
        let (base, task) = serve(router).await;
        Self { base, state, task }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> Url {
        self.base.clone()
    }

    /// A provider registration of kind `github` whose endpoints point here.
    pub fn provider(&self) -> Provider {
        let s = self.state.lock().unwrap();
        let mut p = test_provider(ProviderKind::Github, &s.client_id, None);
        p.authorize_url = Some(self.base.join("login/oauth/authorize").unwrap());
        p.token_url = Some(self.base.join("login/oauth/access_token").unwrap());
        p.userinfo_url = Some(self.base.join("user").unwrap());
        p
    }

    pub fn set_user(&self, user: GithubUser) {
        self.state.lock().unwrap().user = user;
    }

    /// The `/user/emails` list: `{email, primary, verified, visibility}` objects.
    pub fn set_emails(&self, emails: Vec<Value>) {
        self.state.lock().unwrap().emails = emails;
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}
