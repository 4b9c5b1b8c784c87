//! The protocol client for upstream identity providers ("sign in with"):
//! where to send the browser ([`Upstream::authorization_url`]) and, back
//! from the provider with a code, who the person is
//! ([`Upstream::identify`]).
//!
//! OpenID Connect kinds (`oidc`, Google, Microsoft, GitLab, Apple) use
//! discovery, the authorization code with PKCE (S256) and a nonce, and
//! prove the person with the ID token (see [`id_token`]); the `oauth2` kind
//! reads its userinfo endpoint through the provider's claim map, and GitHub
//! its user and emails APIs. The flows (state, cookies, accounts, sessions)
//! are the caller's; this module only speaks to providers.
//!
//! Failures are typed ([`UpstreamError`]), counted in
//! `forge_upstream_failures_total{kind, stage}` and logged with the
//! provider, kind, stage and a constant reason, never a token, code or
//! secret.

pub mod apple;
pub mod claims;
pub mod discovery;
pub mod error;
pub mod http;
pub mod id_token;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio::task::JoinHandle;
use url::Url;

pub use error::{UpstreamError, stage};

use self::discovery::{Cache, IssuerKeys, Metadata};
use self::id_token::{Expected, UNKNOWN_KEY};
use crate::clock::Clock;
use crate::domain::providers::{Provider, ProviderKind, endpoint_ok};
use crate::secret::Secret;
use crate::telemetry::metrics::Metrics;

/// GitHub's endpoints, unless the provider overrides them (GitHub
/// Enterprise Server, tests).
pub const GITHUB_AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
pub const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
pub const GITHUB_USER_URL: &str = "https://api.github.com/user";

/// How often the background refresher looks for stale issuers.
pub const REFRESH_TICK: Duration = Duration::from_secs(60);

/// What the caller decided for one sign-in attempt: the `state` and
/// `nonce` it will check, and the PKCE challenge of the verifier it keeps.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    pub redirect_uri: Url,
    pub state: String,
    pub nonce: String,
    /// `BASE64URL(SHA256(code_verifier))` (RFC 7636, S256).
    pub code_challenge: String,
}

/// What came back to the callback, with what the caller kept for it.
#[derive(Clone)]
pub struct CallbackData {
    pub code: String,
    pub redirect_uri: Url,
    pub code_verifier: String,
    pub nonce: String,
}

impl std::fmt::Debug for CallbackData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackData")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

/// Who the provider says the person is. `email_verified` is true only when
/// the provider vouches for the address (and there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

struct Inner {
    http: reqwest::Client,
    clock: Clock,
    metrics: Arc<Metrics>,
    cache: Cache,
}

/// The provider client; cheap to clone (one HTTP client and one discovery
/// cache per process).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
}

struct Tokens {
    access_token: String,
    id_token: Option<String>,
}

impl Upstream {
    pub fn new(clock: Clock, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                http: http::client(),
                clock,
                metrics,
                cache: Cache::default(),
            }),
        }
    }

    /// Counts and logs a failure, then hands it back.
    fn failed(&self, provider: &Provider, e: UpstreamError) -> UpstreamError {
        self.record(provider.kind, Some(provider.id.as_str()), &e);
        e
    }

    fn record(&self, kind: ProviderKind, provider_id: Option<&str>, e: &UpstreamError) {
        self.inner.metrics.upstream_failure(kind.as_str(), e.stage());
        tracing::warn!(
            provider = provider_id.unwrap_or("-"),
            kind = kind.as_str(),
            stage = e.stage(),
            reason = e.reason(),
            "upstream identity provider failed"
        );
    }

    /// Where to send the browser: the provider's authorization endpoint
    /// with `response_type=code`, the client, redirect URI, scopes, state
    /// and PKCE challenge (S256), and for OpenID Connect kinds the nonce
    /// (Apple: `response_mode=form_post`, which Apple requires when asking
    /// for the name or email).
    pub async fn authorization_url(&self, provider: &Provider, request: &AuthRequest) -> Result<Url, UpstreamError> {
        self.authorization_url_inner(provider, request)
            .await
            .map_err(|e| self.failed(provider, e))
    }

    async fn authorization_url_inner(&self, provider: &Provider, request: &AuthRequest) -> Result<Url, UpstreamError> {
        let mut scopes = provider.scopes();
        let mut url = if provider.kind.is_oidc() {
            if !scopes.iter().any(|s| s == "openid") {
                scopes.insert(0, "openid".to_owned());
            }
            match &provider.authorize_url {
                Some(url) => url.clone(),
                None => self
                    .issuer_keys(provider)
                    .await?
                    .metadata
                    .authorization_endpoint
                    .clone(),
            }
        } else {
            oauth2_endpoint(provider.authorize_url.as_ref(), provider.kind, GITHUB_AUTHORIZE_URL)?
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &provider.client_id)
                .append_pair("redirect_uri", request.redirect_uri.as_str());
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
            q.append_pair("state", &request.state)
                .append_pair("code_challenge", &request.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if provider.kind.is_oidc() {
                q.append_pair("nonce", &request.nonce);
            }
            if provider.kind == ProviderKind::Apple {
                q.append_pair("response_mode", "form_post");
            }
        }
        Ok(url)
    }

    /// Exchanges the code and proves who the person is (see the module
    /// documentation for each kind's rules).
    pub async fn identify(
        &self,
        provider: &Provider,
        secret: &Secret,
        callback: &CallbackData,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let result = if provider.kind.is_oidc() {
            self.identify_oidc(provider, secret, callback).await
        } else if provider.kind == ProviderKind::Github {
            self.identify_github(provider, secret, callback).await
        } else {
            self.identify_oauth2(provider, secret, callback).await
        };
        result.map_err(|e| self.failed(provider, e))
    }

    async fn identify_oidc(
        &self,
        provider: &Provider,
        secret: &Secret,
        callback: &CallbackData,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let issuer_keys = self.issuer_keys(provider).await?;
        let metadata = issuer_keys.metadata.clone();
        let token_url = provider
            .token_url
            .clone()
            .unwrap_or_else(|| metadata.token_endpoint.clone());
        let (auth, secret) = if provider.kind == ProviderKind::Apple {
            let key = provider.apple.as_ref().ok_or(UpstreamError::Misconfigured(
                "an Apple provider needs its team and key ids",
            ))?;
            let jwt = apple::client_secret(key, &provider.client_id, secret, self.inner.clock.now())?;
            (ClientAuth::Post, Secret::new(jwt))
        } else {
            (client_auth(&metadata)?, secret.clone())
        };
        let tokens = self.exchange(provider, &token_url, auth, &secret, callback).await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or(UpstreamError::bad(stage::TOKEN, "no id_token"))?;

        let claims = match self.validate(provider, &issuer_keys, id_token, &callback.nonce) {
            Err(UNKNOWN_KEY) => {
                // Perhaps the provider rotated its keys: fetch them once.
                let refreshed = self.refetch_keys(provider, &issuer_keys).await?;
                self.validate(provider, &refreshed, id_token, &callback.nonce)
            }
            other => other,
        }
        .map_err(UpstreamError::InvalidIdToken)?;

        let mut identity = UpstreamIdentity {
            subject: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
        };
        let userinfo_url = provider.userinfo_url.as_ref().or(metadata.userinfo_endpoint.as_ref());
        if let (None, Some(userinfo_url)) = (&identity.email, userinfo_url) {
            let doc = http::get_json(
                stage::USERINFO,
                self.inner
                    .http
                    .get(userinfo_url.clone())
                    .bearer_auth(&tokens.access_token),
            )
            .await?;
            let info = claims::map_userinfo(&doc, &Default::default())
                .map_err(|reason| UpstreamError::bad(stage::USERINFO, reason))?;
            // OpenID Connect Core 5.3.2: userinfo of another person is an attack.
            if info.subject != identity.subject {
                return Err(UpstreamError::bad(
                    stage::USERINFO,
                    "subject differs from the ID token's",
                ));
            }
            identity.email = info.email;
            identity.email_verified = info.email_verified;
            identity.name = identity.name.or(info.name);
        }
        Ok(identity)
    }

    fn validate(
        &self,
        provider: &Provider,
        keys: &IssuerKeys,
        token: &str,
        nonce: &str,
    ) -> Result<id_token::IdClaims, id_token::Reason> {
        let expected = Expected {
            issuer: &keys.rule,
            client_id: &provider.client_id,
            nonce,
            now: self.inner.clock.now(),
        };
        id_token::validate(token, &keys.keys, &expected)
    }

    async fn identify_oauth2(
        &self,
        provider: &Provider,
        secret: &Secret,
        callback: &CallbackData,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let token_url = oauth2_endpoint(provider.token_url.as_ref(), provider.kind, GITHUB_TOKEN_URL)?;
        let userinfo_url = oauth2_endpoint(provider.userinfo_url.as_ref(), provider.kind, GITHUB_USER_URL)?;
        // RFC 6749 section 2.3.1: every server must accept HTTP Basic.
        let tokens = self
            .exchange(provider, &token_url, ClientAuth::Basic, secret, callback)
            .await?;
        let doc = http::get_json(
            stage::USERINFO,
            self.inner.http.get(userinfo_url).bearer_auth(&tokens.access_token),
        )
        .await?;
        claims::map_userinfo(&doc, &provider.claims).map_err(|reason| UpstreamError::bad(stage::USERINFO, reason))
    }

    async fn identify_github(
        &self,
        provider: &Provider,
        secret: &Secret,
        callback: &CallbackData,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let token_url = oauth2_endpoint(provider.token_url.as_ref(), provider.kind, GITHUB_TOKEN_URL)?;
        let user_url = oauth2_endpoint(provider.userinfo_url.as_ref(), provider.kind, GITHUB_USER_URL)?;
        let emails_url = Url::parse(&format!("{}/emails", user_url.as_str().trim_end_matches('/')))
            .map_err(|_| UpstreamError::Misconfigured("the GitHub user URL cannot have /emails appended"))?;
        // GitHub's documented form: client_id and client_secret as parameters.
        let tokens = self
            .exchange(provider, &token_url, ClientAuth::Post, secret, callback)
            .await?;
        let user = http::get_json(
            stage::USERINFO,
            self.inner.http.get(user_url).bearer_auth(&tokens.access_token),
        )
        .await?;
        let emails = match http::get_json(
            stage::EMAILS,
            self.inner.http.get(emails_url).bearer_auth(&tokens.access_token),
        )
        .await
        {
            Ok(emails) => Some(emails),
            // Without the `user:email` scope GitHub refuses the list: the
            // person simply has no email forge can trust.
            Err(UpstreamError::Unavailable { reason: "refused", .. }) => None,
            Err(e) => return Err(e),
        };
        claims::github_identity(&user, emails.as_ref()).map_err(|reason| UpstreamError::bad(stage::USERINFO, reason))
    }

    /// The authorization-code grant with PKCE (RFC 6749 section 4.1.3, RFC
    /// 7636 section 4.5).
    async fn exchange(
        &self,
        provider: &Provider,
        token_url: &Url,
        auth: ClientAuth,
        secret: &Secret,
        callback: &CallbackData,
    ) -> Result<Tokens, UpstreamError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", &callback.code),
            ("redirect_uri", callback.redirect_uri.as_str()),
            ("code_verifier", &callback.code_verifier),
        ];
        let mut request = self.inner.http.post(token_url.clone());
        match auth {
            ClientAuth::Basic => {
                request = request.header(reqwest::header::AUTHORIZATION, basic_auth(&provider.client_id, secret));
            }
            ClientAuth::Post => {
                form.push(("client_id", &provider.client_id));
                form.push(("client_secret", secret.expose()));
            }
        }
        let (status, body) = http::send(stage::TOKEN, request.form(&form)).await?;
        if status.is_server_error() {
            return Err(UpstreamError::unavailable(stage::TOKEN, "server error"));
        }
        if status.is_redirection() || status.is_informational() {
            return Err(UpstreamError::unavailable(stage::TOKEN, "unexpected redirect"));
        }
        let doc: Value = match serde_json::from_slice(&body) {
            Ok(doc) => doc,
            Err(_) if status.is_success() => return Err(UpstreamError::unavailable(stage::TOKEN, "not JSON")),
            Err(_) => {
                return Err(UpstreamError::Denied {
                    stage: stage::TOKEN,
                    reason: "refused",
                });
            }
        };
        // GitHub answers errors with 200 and `{"error": ...}`.
        if let Some(error) = doc.get("error").and_then(Value::as_str) {
            return Err(token_error(error));
        }
        if !status.is_success() {
            return Err(UpstreamError::Denied {
                stage: stage::TOKEN,
                reason: "refused",
            });
        }
        let access_token = doc
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(UpstreamError::bad(stage::TOKEN, "no access token"))?;
        Ok(Tokens {
            access_token: access_token.to_owned(),
            id_token: doc.get("id_token").and_then(Value::as_str).map(str::to_owned),
        })
    }

    // ----- discovery and keys -----

    /// The provider's issuer metadata and keys: cached, fetched when
    /// missing or stale (the stale copy serves while the provider is down).
    async fn issuer_keys(&self, provider: &Provider) -> Result<IssuerKeys, UpstreamError> {
        let issuer = provider.issuer().ok_or(UpstreamError::Misconfigured(
            "an OpenID Connect provider needs an issuer",
        ))?;
        let now = self.inner.clock.now();
        let cached = self.inner.cache.get(&issuer, now);
        if let Some((keys, true)) = &cached {
            return Ok(keys.clone());
        }
        match self.fetch_issuer(provider.kind, &issuer).await {
            Ok(keys) => {
                self.inner
                    .cache
                    .put(provider.kind, &issuer, keys.clone(), self.inner.clock.now());
                Ok(keys)
            }
            Err(e) => match cached {
                Some((stale, _)) => {
                    self.record(provider.kind, Some(provider.id.as_str()), &e);
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_issuer(&self, kind: ProviderKind, issuer: &Url) -> Result<IssuerKeys, UpstreamError> {
        let url = discovery::discovery_url(issuer).ok_or(UpstreamError::Misconfigured(
            "the issuer is not a URL discovery can extend",
        ))?;
        let doc = http::get_json(stage::DISCOVERY, self.inner.http.get(url)).await?;
        let metadata: Metadata = serde_json::from_value(doc)
            .map_err(|_| UpstreamError::unavailable(stage::DISCOVERY, "not a discovery document"))?;
        let rule = discovery::issuer_rule(kind, issuer, &metadata.issuer).ok_or(UpstreamError::bad(
            stage::DISCOVERY,
            "the document names another issuer",
        ))?;
        if !metadata.endpoints_ok() {
            return Err(UpstreamError::bad(stage::DISCOVERY, "an endpoint is not https"));
        }
        let keys = self.fetch_jwks(&metadata.jwks_uri).await?;
        Ok(IssuerKeys {
            metadata: Arc::new(metadata),
            rule,
            keys,
        })
    }

    async fn fetch_jwks(&self, uri: &Url) -> Result<Arc<Vec<jsonwebtoken::jwk::Jwk>>, UpstreamError> {
        let doc = http::get_json(stage::JWKS, self.inner.http.get(uri.clone())).await?;
        let keys = discovery::parse_jwks(&doc).ok_or(UpstreamError::unavailable(stage::JWKS, "not a JWK set"))?;
        Ok(Arc::new(keys))
    }

    /// One JWKS refetch after an unknown `kid`, unless one happened in the
    /// last 30 seconds (then the token's key stays unknown).
    async fn refetch_keys(&self, provider: &Provider, current: &IssuerKeys) -> Result<IssuerKeys, UpstreamError> {
        let Some(issuer) = provider.issuer() else {
            return Err(UpstreamError::InvalidIdToken(UNKNOWN_KEY));
        };
        if !self.inner.cache.claim_key_refetch(&issuer, self.inner.clock.now()) {
            return Err(UpstreamError::InvalidIdToken(UNKNOWN_KEY));
        }
        let keys = self.fetch_jwks(&current.metadata.jwks_uri).await?;
        Ok(self
            .inner
            .cache
            .put_keys(&issuer, keys.clone())
            .unwrap_or_else(|| IssuerKeys {
                keys,
                ..current.clone()
            }))
    }

    /// Fetches again every cached issuer that goes stale soon; failures back
    /// off exponentially and keep the last good copy. The refresher calls
    /// this every [`REFRESH_TICK`]; tests call it directly.
    pub async fn refresh_due(&self) {
        let now = self.inner.clock.now();
        for due in self.inner.cache.due(now) {
            match self.fetch_issuer(due.kind, &due.issuer).await {
                Ok(keys) => self
                    .inner
                    .cache
                    .put(due.kind, &due.issuer, keys, self.inner.clock.now()),
                Err(e) => {
                    self.record(due.kind, None, &e);
                    self.inner.cache.failed(&due.issuer, self.inner.clock.now());
                }
            }
        }
    }

    /// Starts the background refresher; it ends when the last clone of this
    /// `Upstream` is dropped.
    pub fn spawn_refresher(&self) -> JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                Upstream { inner }.refresh_due().await;
            }
        })
    }

    /// How many issuers are cached (tests, diagnostics).
    pub fn cached_issuers(&self) -> usize {
        self.inner.cache.len()
    }
}

/// A plain OAuth 2 endpoint: the provider's override, GitHub's default for
/// the GitHub preset; the `oauth2` kind must declare it.
fn oauth2_endpoint(configured: Option<&Url>, kind: ProviderKind, github_default: &str) -> Result<Url, UpstreamError> {
    let url = match (configured, kind) {
        (Some(url), _) => url.clone(),
        (None, ProviderKind::Github) => {
            Url::parse(github_default).map_err(|_| UpstreamError::Misconfigured("bad default endpoint"))?
        }
        (None, _) => return Err(UpstreamError::Misconfigured("an OAuth 2 provider needs its endpoints")),
    };
    if !endpoint_ok(&url) {
        return Err(UpstreamError::Misconfigured("an endpoint is not https"));
    }
    Ok(url)
}

/// `client_secret_basic` unless the provider supports only `_post`
/// (OpenID Connect Discovery: basic is the default when the list is absent).
fn client_auth(metadata: &Metadata) -> Result<ClientAuth, UpstreamError> {
    match &metadata.token_endpoint_auth_methods_supported {
        None => Ok(ClientAuth::Basic),
        Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => Ok(ClientAuth::Basic),
        Some(methods) if methods.iter().any(|m| m == "client_secret_post") => Ok(ClientAuth::Post),
        Some(_) => Err(UpstreamError::Misconfigured(
            "the provider supports neither client_secret_basic nor client_secret_post",
        )),
    }
}

/// `Authorization: Basic` with both parts form-urlencoded first (RFC 6749
/// section 2.3.1).
fn basic_auth(client_id: &str, secret: &Secret) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret.expose()));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A token-endpoint `error` (RFC 6749 section 5.2, and GitHub's names).
fn token_error(error: &str) -> UpstreamError {
    match error {
        "invalid_client" | "unauthorized_client" | "incorrect_client_credentials" => {
            UpstreamError::Misconfigured("the provider refused the client credentials")
        }
        "redirect_uri_mismatch" => UpstreamError::Misconfigured("the provider refused the redirect URI"),
        "invalid_grant" | "bad_verification_code" => UpstreamError::Denied {
            stage: stage::TOKEN,
            reason: "the code is invalid or expired",
        },
        _ => UpstreamError::Denied {
            stage: stage::TOKEN,
            reason: "refused",
        },
    }
}
