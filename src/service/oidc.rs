//! forge as an OpenID Connect provider: the authorization request, the
//! token grants of OAuth clients, userinfo, revocation and logout.
//!
//! The rules, each from the standard that sets it:
//!
//! - Authorization request (RFC 6749 section 4.1, RFC 7636, OpenID Connect
//!   Core 3.1.2): the client and its redirect URI are settled first and an
//!   error before that is a page for the user, never a redirect (section
//!   4.1.2.1); every later error goes to the redirect URI with `state` and
//!   `iss` (RFC 9207). The request itself is [`AuthorizeQuery::validate`].
//! - Sign-in: no SSO session, `prompt=login` or an `auth_time` older than
//!   `max_age` sends the browser to `/login` with the request as its
//!   `return_to` (without `prompt=login`, so it does not loop);
//!   `prompt=none` answers `login_required` instead.
//! - Consent: a client that is not first-party needs the user's consent for
//!   the scopes (remembered or given on the page; `prompt=consent` asks
//!   again); `prompt=none` answers `consent_required` instead.
//! - Codes: [`AuthCodes`], 60 s, single use, a replay revokes the tokens
//!   the code gave. The token request must come from the same client, name
//!   the same redirect URI and prove PKCE when the request had a challenge
//!   (and must not send a verifier when it had none: RFC 9700 2.1.1).
//! - Tokens: an access token of a session bound to the client (`client_id`
//!   and `scope` claims), an ID token with `openid` (signed with the
//!   client's `id_token_signed_response_alg`), a refresh token only with
//!   `offline_access` and the client's `refresh_token` grant. A client's
//!   refresh token works only with that client's authentication.
//! - `acr` is the session's assurance level as a string: `"1"` (one factor)
//!   or `"2"` (a second factor), the same number as `X-Forge-Aal`.

use std::sync::Arc;

use axum::http::StatusCode;
use uuid::Uuid;

use super::RequestMeta;
use super::auth_codes::{AuthCodes, CodeGrant, Redeemed};
use super::clients::{Clients, Consents};
use super::denylist::DenyList;
use super::sessions::{Principal, Sessions};
use super::sso::{Sso, SsoSession};
use crate::clock::Clock;
use crate::config::JwtConfig;
use crate::crypto::jwt::{AccessClaims, IdTokenClaims, LogoutEvents, LogoutTokenClaims};
use crate::crypto::tokens::constant_time_eq;
use crate::domain::AuditEvent;
use crate::domain::clients::{Client, GrantType};
use crate::domain::oauth::{
    AuthorizeQuery, AuthorizeRequest, ClientFacts, OFFLINE_ACCESS, OPENID, Scopes, pkce_s256_matches, redirect_with,
};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::notify::Notifier;
use crate::secret::Secret;
use crate::state::Keys;
use crate::store::{SignIn, Store, Tenant, User};

/// An RFC 6749 section 5.2 error of the token, revocation or userinfo
/// endpoints.
pub fn oauth_error(status: StatusCode, code: ErrorCode, description: &str) -> AppError {
    AppError::OAuth {
        status,
        code,
        description: description.to_string(),
    }
}

pub fn invalid_grant(description: &str) -> AppError {
    oauth_error(StatusCode::BAD_REQUEST, ErrorCode::InvalidGrant, description)
}

pub fn invalid_client() -> AppError {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidClient,
        "client authentication failed",
    )
}

/// Removes `value` from the space-separated `prompt` of an authorization
/// query (and the parameter when nothing is left), keeping every other
/// parameter as sent: the `return_to` of the sign-in and consent pages,
/// which must not ask again when the browser comes back.
pub fn without_prompt(raw_query: &str, value: &str) -> String {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query).unwrap_or_default();
    let kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter_map(|(k, v)| {
            if k != "prompt" {
                return Some((k, v));
            }
            let rest: Vec<&str> = v.split(' ').filter(|p| !p.is_empty() && *p != value).collect();
            (!rest.is_empty()).then(|| (k, rest.join(" ")))
        })
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// What answers an authorization request.
#[derive(Debug)]
pub enum Authorized {
    /// An error shown to the user: the client or its redirect URI is not
    /// valid, so nothing may be sent anywhere.
    ErrorPage(&'static str),
    /// A 303 to the client (a code or an error) or to the sign-in page.
    Redirect(String),
    /// The consent page.
    Consent(Box<ConsentPrompt>),
}

/// What the consent page shows and posts back.
#[derive(Debug)]
pub struct ConsentPrompt {
    pub tenant: Tenant,
    pub client_name: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The authorization request to come back to (without `prompt=consent`).
    pub return_to: String,
    /// The SSO session's CSRF token, for the form.
    pub csrf: String,
}

/// The user's answer on the consent page, if this request carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentDecision {
    /// No answer yet: ask when consent is needed.
    Ask,
    Allow {
        remember: bool,
    },
    Deny,
}

/// What the token endpoint hands to an OAuth client.
#[derive(Debug, Clone)]
pub struct ClientTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: String,
}

/// How an OAuth client authenticated at the token or revocation endpoint.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub client_id: String,
    pub secret: Option<Secret>,
    /// Sent as HTTP Basic (a failure then answers `WWW-Authenticate: Basic`).
    pub basic: bool,
}

/// Where RP-initiated logout sends the browser.
#[derive(Debug)]
pub enum LoggedOut {
    /// To the client's registered `post_logout_redirect_uri` (with `state`).
    Redirect(String),
    /// To forge's signed-out page of this tenant.
    Page(Option<String>),
    /// Nothing ended yet: the browser's SSO session is not the one the
    /// request names (no valid `id_token_hint`, or one of another session
    /// or user), so the user confirms on a page whose form carries the
    /// session's CSRF token.
    Confirm(Box<LogoutPrompt>),
}

/// What the sign-out confirmation page shows and posts back.
#[derive(Debug)]
pub struct LogoutPrompt {
    pub tenant: Tenant,
    /// The SSO session's CSRF token, for the form.
    pub csrf: String,
}

/// The OpenID Connect provider's use cases.
pub struct Oidc {
    store: Arc<dyn Store>,
    clock: Clock,
    keys: Keys,
    jwt: JwtConfig,
    sessions: Sessions,
    clients: Arc<Clients>,
    consents: Arc<Consents>,
    sso: Arc<Sso>,
    codes: AuthCodes,
    notifier: Notifier,
    deny: DenyList,
}

impl Oidc {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        keys: Keys,
        jwt: JwtConfig,
        sessions: Sessions,
        clients: Arc<Clients>,
        consents: Arc<Consents>,
        sso: Arc<Sso>,
        codes: AuthCodes,
        notifier: Notifier,
        deny: DenyList,
    ) -> Self {
        Self {
            store,
            clock,
            keys,
            jwt,
            sessions,
            clients,
            consents,
            sso,
            codes,
            notifier,
            deny,
        }
    }

    fn issuer(&self) -> String {
        self.keys.current().issuer().to_string()
    }

    /// An error for the client's redirect URI, with `state` and `iss`.
    fn redirect_error(&self, redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Authorized {
        let issuer = self.issuer();
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", &issuer));
        Authorized::Redirect(redirect_with(redirect_uri, &params))
    }

    /// The authorization request (`GET /oauth/authorize`, and the consent
    /// form's POST with the user's `decision` and the form's `csrf`). `raw_query` is the request's
    /// query as sent, for the sign-in and consent pages to come back to.
    #[tracing::instrument(skip_all, fields(client_id = ?query.client_id))]
    pub async fn authorize(
        &self,
        query: &AuthorizeQuery,
        raw_query: &str,
        sso_token: Option<&str>,
        decision: ConsentDecision,
        csrf: Option<&str>,
        meta: &RequestMeta,
    ) -> AppResult<Authorized> {
        // 1. The client and the redirect URI: errors are pages.
        let Some(client_id) = query.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(Authorized::ErrorPage("The request names no client (client_id)."));
        };
        let Some(client) = self.clients.find_client(client_id).await? else {
            return Ok(Authorized::ErrorPage(
                "The application that sent you here is not registered.",
            ));
        };
        let redirect_uri = match query.redirect_uri.as_deref() {
            Some(uri) if client.redirect_uri_allowed(uri) => uri.to_string(),
            Some(_) => {
                return Ok(Authorized::ErrorPage(
                    "The application asked to send you to an address it did not register (redirect_uri).",
                ));
            }
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Ok(Authorized::ErrorPage(
                        "The request must name its redirect_uri: the application registered several.",
                    ));
                }
            },
        };
        let Some(tenant) = self.store.tenant_by_id(client.tenant_id).await? else {
            return Ok(Authorized::ErrorPage(
                "The application that sent you here is not registered.",
            ));
        };
        // 2. Everything else: errors go back to the client.
        let state = query.state();
        let allows_scope = |s: &str| client.allows_scope(s);
        let facts = ClientFacts {
            public: client.is_public(),
            code_grant: client.allows_grant(GrantType::AuthorizationCode),
            allows_scope: &allows_scope,
        };
        let request = match query.validate(&client.client_id, &redirect_uri, facts) {
            Ok(r) => r,
            Err(e) => return Ok(self.redirect_error(&redirect_uri, state, e.error, e.description)),
        };
        let state = request.state.as_deref();
        // 3. The user: an SSO session of the client's tenant, fresh enough.
        let now = self.clock.now();
        let current = match sso_token {
            Some(token) => self.sso.current(token).await?,
            None => None,
        }
        .filter(|(session, _, _)| session.tenant_id == tenant.id);
        let too_old = |auth_time: i64| request.max_age.is_some_and(|max| now.saturating_sub(auth_time) > max);
        let (session, user) = match current {
            Some((session, user, _)) if !request.prompt.login && !too_old(session.auth_time) => (session, user),
            current => {
                if request.prompt.none {
                    return Ok(self.redirect_error(
                        &redirect_uri,
                        state,
                        "login_required",
                        "the user is not signed in",
                    ));
                }
                return Ok(Authorized::Redirect(login_url(
                    &tenant,
                    raw_query,
                    request.login_hint.as_deref(),
                    current.is_some(),
                )));
            }
        };
        // 4. Consent. An answer must come from the consent page of this
        // session (its CSRF token), never from another site's form.
        if decision != ConsentDecision::Ask
            && !csrf.is_some_and(|c| constant_time_eq(c.as_bytes(), session.csrf.as_bytes()))
        {
            return Ok(Authorized::ErrorPage(
                "The form expired. Go back to the application and try again.",
            ));
        }
        if decision == ConsentDecision::Deny {
            return Ok(self.redirect_error(&redirect_uri, state, "access_denied", "the user denied the request"));
        }
        let asked = matches!(decision, ConsentDecision::Allow { .. });
        if !client.first_party && !asked {
            let needed = request.prompt.consent
                || !self
                    .consents
                    .covers(tenant.id, user.id, &client.client_id, request.scopes.as_slice())
                    .await?;
            if needed {
                if request.prompt.none {
                    return Ok(self.redirect_error(
                        &redirect_uri,
                        state,
                        "consent_required",
                        "the user has not allowed this application",
                    ));
                }
                return Ok(Authorized::Consent(Box::new(ConsentPrompt {
                    tenant,
                    client_name: client.name.clone(),
                    client_id: client.client_id.clone(),
                    scopes: request.scopes.as_slice().to_vec(),
                    return_to: format!("/oauth/authorize?{}", without_prompt(raw_query, "consent")),
                    csrf: session.csrf.clone(),
                })));
            }
        }
        if let ConsentDecision::Allow { remember: true } = decision {
            self.consents
                .grant(tenant.id, user.id, &client.client_id, request.scopes.as_slice(), meta)
                .await?;
        }
        // 5. The code.
        let code = self.issue_code(&tenant, &user, &session, &request, meta).await?;
        let issuer = self.issuer();
        let mut params = vec![("code", code.expose())];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", &issuer));
        Ok(Authorized::Redirect(redirect_with(&redirect_uri, &params)))
    }

    async fn issue_code(
        &self,
        tenant: &Tenant,
        user: &User,
        session: &SsoSession,
        request: &AuthorizeRequest,
        meta: &RequestMeta,
    ) -> AppResult<Secret> {
        let grant = CodeGrant {
            tenant_id: tenant.id,
            client_id: request.client_id.clone(),
            user_id: user.id,
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_given: request.redirect_uri_given,
            code_challenge: request.code_challenge.clone(),
            scopes: request.scopes.clone(),
            nonce: request.nonce.clone(),
            sso_id: session.id,
            auth_time: session.auth_time,
            assurance: session.assurance.clone(),
            expires_at: 0,
        };
        let code = self.codes.issue(grant).await?;
        let mut audit = meta.audit(
            tenant.id,
            self.clock.now(),
            AuditEvent::AuthorizationCodeIssued,
            Some(user.id),
            Some(user.id),
        );
        audit.detail = serde_json::json!({
            "client_id": request.client_id,
            "scope": request.scopes.joined(),
            "sso_session": session.id,
        });
        self.store.record_audit(audit).await?;
        Ok(code)
    }

    /// Authenticates the client of a token or revocation request.
    async fn client(&self, auth: &ClientAuth) -> AppResult<Client> {
        self.clients
            .authenticate(&auth.client_id, auth.secret.as_ref().map(|s| s.expose()))
            .await
            .map_err(|_| invalid_client())
    }

    /// `grant_type=authorization_code` (RFC 6749 section 4.1.3).
    #[tracing::instrument(skip_all, fields(client_id = %auth.client_id))]
    pub async fn exchange_code(
        &self,
        auth: &ClientAuth,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        meta: &RequestMeta,
    ) -> AppResult<ClientTokens> {
        let client = self.client(auth).await?;
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnauthorizedClient,
                "the client may not use the authorization code grant",
            ));
        }
        let grant = match self.codes.redeem(code).await? {
            Redeemed::Live(grant) => grant,
            Redeemed::Replayed(spent) => {
                // The code leaked: what it gave is revoked (RFC 6749 4.1.2).
                if let Some(session_id) = spent.session_id {
                    tracing::warn!(%session_id, "authorization code replayed; its session is revoked");
                    let now = self.clock.now();
                    self.store
                        .revoke_session(spent.tenant_id, spent.user_id, session_id, now, None)
                        .await?;
                    self.deny.deny_sessions(&[session_id]).await?;
                }
                return Err(invalid_grant("the code is invalid, expired or was used"));
            }
            Redeemed::Unknown => return Err(invalid_grant("the code is invalid, expired or was used")),
        };
        if grant.client_id != client.client_id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        match redirect_uri {
            Some(uri) if uri != grant.redirect_uri => {
                return Err(invalid_grant("redirect_uri differs from the authorization request's"));
            }
            None if grant.redirect_uri_given => {
                return Err(invalid_grant(
                    "redirect_uri is required: the authorization request named one",
                ));
            }
            _ => {}
        }
        match (&grant.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) if pkce_s256_matches(challenge, verifier) => {}
            (Some(_), _) => return Err(invalid_grant("the code_verifier does not match the code_challenge")),
            (None, Some(_)) => {
                return Err(invalid_grant(
                    "a code_verifier was sent for a request without a code_challenge",
                ));
            }
            (None, None) => {}
        }
        let tenant = self
            .store
            .tenant_by_id(grant.tenant_id)
            .await?
            .ok_or_else(|| invalid_grant("the code is invalid, expired or was used"))?;
        let user = self
            .store
            .get_user(tenant.id, grant.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| invalid_grant("the user is gone or disabled"))?;
        let offline = grant.scopes.contains(OFFLINE_ACCESS) && client.allows_grant(GrantType::RefreshToken);
        let scope = grant.scopes.joined();
        let (session, refresh) =
            self.sessions
                .new_client_session(meta, grant.assurance.clone(), &client.client_id, grant.sso_id, &scope);
        let mut audit = meta.audit(
            tenant.id,
            self.clock.now(),
            AuditEvent::Login,
            Some(user.id),
            Some(user.id),
        );
        audit.detail = serde_json::json!({
            "method": "oidc",
            "client_id": client.client_id,
            "session_id": session.id,
        });
        let sign_in = SignIn {
            session: session.clone(),
            rehash: None,
            verified: None,
        };
        // The session of a client's back end redeeming a code: the person
        // signed in (and was told of a new device) on the hosted pages.
        let (user, _) = self.store.sign_in(tenant.id, user.id, sign_in, audit).await?;
        self.codes.opened(code, &grant, session.id).await?;
        let (access_token, expires_in) = self.sessions.mint_access_for(
            &user,
            session.id,
            &tenant,
            &session.assurance,
            Some((&client.client_id, &scope)),
        )?;
        let id_token = if grant.scopes.contains(OPENID) {
            Some(self.id_token(&client, &tenant, &user, &grant, &access_token).await?)
        } else {
            None
        };
        Ok(ClientTokens {
            access_token,
            expires_in,
            refresh_token: offline.then_some(refresh),
            id_token,
            scope,
        })
    }

    async fn id_token(
        &self,
        client: &Client,
        tenant: &Tenant,
        user: &User,
        grant: &CodeGrant,
        access_token: &str,
    ) -> AppResult<String> {
        let keys = self.keys.complete().await;
        let now = self.clock.now();
        let alg = signing_alg(client.id_token_alg);
        let mut claims = IdTokenClaims {
            iss: keys.issuer().to_string(),
            sub: user.id.to_string(),
            aud: client.client_id.clone(),
            exp: now + self.jwt.access_ttl.as_secs() as i64,
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone(),
            acr: Some(grant.assurance.aal.to_string()),
            amr: grant.assurance.amr.clone(),
            sid: Some(grant.sso_id.to_string()),
            azp: Some(client.client_id.clone()),
            at_hash: Some(keys.token_hash(alg, access_token)),
            c_hash: None,
            email: None,
            email_verified: None,
            phone_number: None,
            phone_number_verified: None,
            name: None,
            roles: None,
            tenant: None,
        };
        let profile = user_claims(user, tenant, &grant.scopes);
        claims.email = profile.email;
        claims.email_verified = profile.email_verified;
        claims.phone_number = profile.phone_number;
        claims.phone_number_verified = profile.phone_number_verified;
        claims.name = profile.name;
        claims.roles = profile.roles;
        claims.tenant = profile.tenant;
        keys.sign_id_token(&claims, alg).map_err(AppError::internal)
    }

    /// `grant_type=refresh_token` for a client's refresh token: the
    /// client authenticates, and the token must be one of its sessions.
    #[tracing::instrument(skip_all, fields(client_id = %auth.client_id))]
    pub async fn refresh(&self, auth: &ClientAuth, token: &str, meta: &RequestMeta) -> AppResult<ClientTokens> {
        let client = self.client(auth).await?;
        if !client.allows_grant(GrantType::RefreshToken) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnauthorizedClient,
                "the client may not use the refresh token grant",
            ));
        }
        let tenant = self
            .store
            .tenant_by_id(client.tenant_id)
            .await?
            .ok_or_else(invalid_client)?;
        let (_, tokens, scope) = self
            .sessions
            .refresh_as(&tenant, token, meta, Some(&client.client_id))
            .await
            .map_err(|e| match e {
                AppError::Unauthorized { .. } | AppError::Forbidden { .. } => {
                    invalid_grant("the refresh token is invalid, expired or revoked")
                }
                // Rate limits and outages keep their own answers.
                other => other,
            })?;
        Ok(ClientTokens {
            access_token: tokens.access_token,
            expires_in: tokens.expires_in,
            refresh_token: Some(tokens.refresh_token),
            id_token: None,
            scope: scope.unwrap_or_default(),
        })
    }

    /// `grant_type=client_credentials` (RFC 6749 section 4.4): a token for
    /// the client itself (`sub` = its `client_id`), no user, no refresh
    /// token, no ID token.
    #[tracing::instrument(skip_all, fields(client_id = %auth.client_id))]
    pub async fn client_credentials(&self, auth: &ClientAuth, scope: Option<&str>) -> AppResult<ClientTokens> {
        let client = self.client(auth).await?;
        if client.is_public() || !client.allows_grant(GrantType::ClientCredentials) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnauthorizedClient,
                "the client may not use the client credentials grant",
            ));
        }
        let scopes = Scopes::parse(scope.unwrap_or_default())
            .map_err(|_| oauth_error(StatusCode::BAD_REQUEST, ErrorCode::InvalidScope, "scope is malformed"))?;
        // OpenID scopes speak of a user: a client has none.
        if scopes
            .iter()
            .any(|s| !client.allows_scope(s) || s == OPENID || s == OFFLINE_ACCESS)
        {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidScope,
                "the client may not ask for one of these scopes",
            ));
        }
        let tenant = self
            .store
            .tenant_by_id(client.tenant_id)
            .await?
            .ok_or_else(invalid_client)?;
        let keys = self.keys.current();
        let now = self.clock.now();
        let ttl = self.jwt.access_ttl.as_secs();
        let scope = scopes.joined();
        let claims = AccessClaims {
            iss: keys.issuer().to_string(),
            aud: keys.audience().to_string(),
            sub: client.client_id.clone(),
            sid: Uuid::now_v7().to_string(),
            tid: tenant.slug.to_string(),
            roles: Vec::new(),
            iat: now,
            exp: now + ttl as i64,
            jti: Uuid::now_v7().to_string(),
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            amr: Default::default(),
            aal: Default::default(),
            client_id: Some(client.client_id.clone()),
            scope: Some(scope.clone()),
        };
        let access_token = keys.sign(&claims).map_err(AppError::internal)?;
        Ok(ClientTokens {
            access_token,
            expires_in: ttl,
            refresh_token: None,
            id_token: None,
            scope,
        })
    }

    /// The userinfo answer (OpenID Connect Core 5.3) for an access token of
    /// a client session granted `openid`; 401 `invalid_token` otherwise.
    #[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
    pub async fn userinfo(&self, principal: &Principal) -> AppResult<serde_json::Value> {
        let scopes = match (&principal.claims.client_id, &principal.claims.scope) {
            (Some(_), Some(scope)) => Scopes::parse(scope).map_err(|_| AppError::invalid_token())?,
            _ => return Err(AppError::invalid_token()),
        };
        if !scopes.contains(OPENID) {
            return Err(AppError::forbidden(
                ErrorCode::Forbidden,
                "the access token was not granted the openid scope",
            ));
        }
        let user = self
            .store
            .get_user(principal.tenant.id, principal.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(AppError::invalid_token)?;
        let claims = user_claims(&user, &principal.tenant, &scopes);
        let mut body = serde_json::to_value(&claims).map_err(AppError::internal)?;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("sub".into(), serde_json::json!(user.id.to_string()));
        }
        Ok(body)
    }

    /// RFC 7009 revocation by an authenticated client: a refresh or access
    /// token of one of its own sessions ends that session. Anything else
    /// (unknown, another client's, malformed) is silently ignored.
    #[tracing::instrument(skip_all, fields(client_id = %auth.client_id))]
    pub async fn revoke(&self, auth: &ClientAuth, token: &str, meta: &RequestMeta) -> AppResult<()> {
        let client = self.client(auth).await?;
        let now = self.clock.now();
        let session = if token.contains('.') {
            match self.keys.current().verify_access(token) {
                Ok(claims) if claims.client_id.as_deref() == Some(client.client_id.as_str()) => {
                    match (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.sid)) {
                        (Ok(user_id), Ok(session_id)) => Some((user_id, session_id)),
                        // A client-credentials token has no session: it
                        // lives until it expires.
                        _ => None,
                    }
                }
                _ => None,
            }
        } else {
            self.store
                .session_by_refresh(client.tenant_id, &crate::crypto::tokens::hash_token(token))
                .await?
                .filter(|s| s.client_id.as_deref() == Some(client.client_id.as_str()))
                .map(|s| (s.user_id, s.id))
        };
        if let Some((user_id, session_id)) = session {
            let mut audit = meta.audit(client.tenant_id, now, AuditEvent::Logout, Some(user_id), None);
            audit.detail =
                serde_json::json!({ "session_id": session_id, "client_id": client.client_id, "revoked_by": "client" });
            self.store
                .revoke_session(client.tenant_id, user_id, session_id, now, Some(audit))
                .await?;
            self.deny.deny_sessions(&[session_id]).await?;
        }
        Ok(())
    }

    /// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends
    /// the SSO session of the browser and the client sessions opened from
    /// it, tells the clients that registered a back channel, and sends the
    /// browser to the client's registered `post_logout_redirect_uri` (with
    /// `state`) or to the signed-out page.
    #[tracing::instrument(skip_all)]
    #[allow(clippy::too_many_arguments)]
    pub async fn logout(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        sso_token: Option<&str>,
        confirmed_csrf: Option<&str>,
        meta: &RequestMeta,
    ) -> AppResult<LoggedOut> {
        let hint = id_token_hint.and_then(|t| self.keys.current().verify_id_token_hint(t).ok());
        // The browser's session ends silently only when a valid hint names
        // it (its `sid` and `sub`); otherwise another site could sign the
        // user out with a link. A confirmation must carry its CSRF token.
        if let Some(token) = sso_token
            && let Some((session, user, tenant)) = self.sso.current(token).await?
        {
            match confirmed_csrf {
                Some(csrf) => {
                    if !constant_time_eq(csrf.as_bytes(), session.csrf.as_bytes()) {
                        return Err(AppError::forbidden(
                            ErrorCode::Csrf,
                            "the form expired; sign out from the application again",
                        ));
                    }
                }
                None => {
                    let named = hint.as_ref().is_some_and(|h| {
                        h.sid.as_deref() == Some(session.id.to_string().as_str()) && h.sub == user.id.to_string()
                    });
                    if !named {
                        return Ok(LoggedOut::Confirm(Box::new(LogoutPrompt {
                            tenant,
                            csrf: session.csrf,
                        })));
                    }
                }
            }
        }
        // The client: named by the hint's audience, or client_id; both must agree.
        let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), client_id) {
            (Some(a), Some(b)) if a != b => None,
            (Some(a), _) => Some(a.to_string()),
            (None, b) => b.map(str::to_string),
        };
        let client = match client_id {
            Some(id) => self.clients.find_client(&id).await?,
            None => None,
        };
        let ended = match sso_token {
            Some(token) => self.sso.end(token, meta).await?,
            None => None,
        };
        let mut tenant_slug = ended.as_ref().map(|s| s.tenant_slug.clone());
        if let Some(session) = &ended {
            self.end_sso_sessions(session.tenant_id, session.id, meta).await?;
        } else if let Some(sid) = hint
            .as_ref()
            .and_then(|h| h.sid.as_deref())
            .and_then(|s| Uuid::parse_str(s).ok())
            && let Some(client) = &client
        {
            // No cookie (another browser, or it expired): the hint's session
            // still ends at the clients.
            self.end_sso_sessions(client.tenant_id, sid, meta).await?;
        }
        if let (Some(client), Some(uri)) = (&client, post_logout_redirect_uri)
            && client.post_logout_redirect_allowed(uri)
        {
            let mut params = Vec::new();
            if let Some(state) = state.filter(|s| !s.is_empty() && s.len() <= 512) {
                params.push(("state", state));
            }
            return Ok(LoggedOut::Redirect(redirect_with(uri, &params)));
        }
        if tenant_slug.is_none()
            && let Some(client) = &client
        {
            tenant_slug = self
                .store
                .tenant_by_id(client.tenant_id)
                .await?
                .map(|t| t.slug.to_string());
        }
        Ok(LoggedOut::Page(tenant_slug))
    }

    /// Revokes the client sessions opened from SSO session `sso_id` and
    /// queues a logout token to each client that registered a back channel.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, sso_id = %sso_id))]
    pub async fn end_sso_sessions(&self, tenant_id: Uuid, sso_id: Uuid, meta: &RequestMeta) -> AppResult<()> {
        let now = self.clock.now();
        let sessions = self.store.sessions_of_sso(tenant_id, sso_id, now).await?;
        let mut notified: Vec<String> = Vec::new();
        for session in &sessions {
            let mut audit = meta.audit(
                tenant_id,
                now,
                AuditEvent::Logout,
                Some(session.user_id),
                Some(session.user_id),
            );
            audit.detail =
                serde_json::json!({ "session_id": session.id, "client_id": session.client_id, "sso_session": sso_id });
            self.store
                .revoke_session(tenant_id, session.user_id, session.id, now, Some(audit))
                .await?;
            let Some(client_id) = session.client_id.as_deref() else {
                continue;
            };
            if notified.iter().any(|c| c == client_id) {
                continue;
            }
            notified.push(client_id.to_string());
            self.back_channel(client_id, session.user_id, sso_id).await?;
        }
        let ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
        self.deny.deny_sessions(&ids).await?;
        Ok(())
    }

    /// Queues the signed logout token of `sso_id` for a client's back
    /// channel, when it registered one.
    async fn back_channel(&self, client_id: &str, user_id: Uuid, sso_id: Uuid) -> AppResult<()> {
        let Some(client) = self.clients.find_client(client_id).await? else {
            return Ok(());
        };
        let Some(uri) = client.backchannel_logout_uri.as_deref() else {
            return Ok(());
        };
        let keys = self.keys.complete().await;
        let now = self.clock.now();
        let claims = LogoutTokenClaims {
            iss: keys.issuer().to_string(),
            aud: client.client_id.clone(),
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL.as_secs() as i64,
            jti: Uuid::now_v7().to_string(),
            sub: Some(user_id.to_string()),
            sid: Some(sso_id.to_string()),
            events: LogoutEvents::default(),
        };
        let token = keys
            .sign_logout_token(&claims, signing_alg(client.id_token_alg))
            .map_err(AppError::internal)?;
        self.notifier
            .logout_token(client.tenant_id, uri, &Secret::new(token), LOGOUT_TOKEN_TTL)
            .await?;
        Ok(())
    }
}

/// The keyring's algorithm for a client's `id_token_signed_response_alg`
/// (the clients and the ID-token parts each named the type; one of them
/// can become the other).
fn signing_alg(alg: crate::domain::clients::IdTokenAlg) -> crate::crypto::jwt::IdTokenAlg {
    match alg {
        crate::domain::clients::IdTokenAlg::EdDSA => crate::crypto::jwt::IdTokenAlg::EdDSA,
        crate::domain::clients::IdTokenAlg::RS256 => crate::crypto::jwt::IdTokenAlg::RS256,
    }
}

/// How long a logout token is valid, and so retried.
pub const LOGOUT_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The sign-in page for an authorization request: `return_to` is the
/// request without `prompt=login` (so coming back does not ask again);
/// `force` asks for credentials even though the browser has a session
/// (`prompt=login`, or one older than `max_age`).
fn login_url(tenant: &Tenant, raw_query: &str, login_hint: Option<&str>, force: bool) -> String {
    let return_to = format!("/oauth/authorize?{}", without_prompt(raw_query, "login"));
    let mut params = vec![("tenant", tenant.slug.as_str()), ("return_to", return_to.as_str())];
    if let Some(hint) = login_hint {
        params.push(("login_hint", hint));
    }
    if force {
        params.push(("force", "1"));
    }
    format!("/login?{}", serde_urlencoded::to_string(params).unwrap_or_default())
}

/// The user's claims a scope set grants (OpenID Connect Core 5.4, plus
/// forge's `roles` and `tenant`).
#[derive(Debug, Default, serde::Serialize)]
pub struct UserClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

pub fn user_claims(user: &User, tenant: &Tenant, scopes: &Scopes) -> UserClaims {
    let mut claims = UserClaims::default();
    // Only proven addresses, as in access tokens and forward auth: an app
    // that links accounts by email must never be handed one the user only
    // typed (a pre-hijacking of the app's account). An unproven address
    // reads as absent, with `*_verified: false`.
    if scopes.contains("email") {
        let proven = user.email.as_ref().filter(|_| user.email_verified);
        claims.email = proven.map(|e| e.to_string());
        claims.email_verified = Some(proven.is_some());
    }
    if scopes.contains("phone") {
        let proven = user.phone.as_ref().filter(|_| user.phone_verified);
        claims.phone_number = proven.map(|p| p.to_string());
        claims.phone_number_verified = Some(proven.is_some());
    }
    if scopes.contains("profile") {
        claims.name = user
            .metadata
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_string);
    }
    if scopes.contains("roles") {
        claims.roles = Some(user.roles.clone());
    }
    if scopes.contains("tenant") {
        claims.tenant = Some(tenant.slug.to_string());
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, Phone, TenantSlug};

    #[test]
    fn a_returning_request_does_not_ask_again() {
        assert_eq!(
            without_prompt("client_id=a&prompt=login+consent&state=s", "login"),
            "client_id=a&prompt=consent&state=s"
        );
        assert_eq!(without_prompt("prompt=login&x=%2F", "login"), "x=%2F");
        assert_eq!(without_prompt("prompt=none", "login"), "prompt=none");
    }

    #[test]
    fn claims_follow_the_scopes() {
        let tenant = Tenant {
            id: Uuid::nil(),
            slug: TenantSlug::default_tenant(),
            name: "Default".into(),
            created_at: 0,
        };
        let user = User {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            email: Some(Email::parse("ann@example.com").unwrap()),
            email_verified: true,
            phone: Some(Phone::parse("+14155550100").unwrap()),
            phone_verified: false,
            disabled: false,
            metadata: serde_json::json!({"name": "Ann"}),
            roles: vec!["admin".into()],
            created_at: 0,
            updated_at: 0,
            last_sign_in_at: None,
            credential_epoch: 0,
        };
        let all = user_claims(
            &user,
            &tenant,
            &Scopes::parse("openid profile email phone roles tenant").unwrap(),
        );
        assert_eq!(
            serde_json::to_value(&all).unwrap(),
            serde_json::json!({
                "email": "ann@example.com", "email_verified": true,
                "phone_number_verified": false,
                "name": "Ann", "roles": ["admin"], "tenant": "default",
            })
        );
        // The unproven phone number is not asserted (only that it is not proven).
        assert!(!serde_json::to_string(&all).unwrap().contains("4155550100"));
        let none = user_claims(&user, &tenant, &Scopes::parse("openid").unwrap());
        assert_eq!(serde_json::to_value(&none).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn the_sign_in_page_comes_back_without_prompt_login() {
        let tenant = Tenant {
            id: Uuid::nil(),
            slug: TenantSlug::default_tenant(),
            name: "Default".into(),
            created_at: 0,
        };
        let url = login_url(&tenant, "client_id=a&prompt=login", Some("ann@example.com"), true);
        assert_eq!(
            url,
            "/login?tenant=default&return_to=%2Foauth%2Fauthorize%3Fclient_id%3Da&login_hint=ann%40example.com&force=1"
        );
    }
}
