//! Sign-in through upstream identity providers ("Sign in with GitHub"),
//! and the identities it links to accounts.
//!
//! A flow has three legs:
//! 1. Start ([`Federation::start`]): a fresh `state`, nonce and PKCE
//!    verifier, kept in the browser's signed flow cookie ([`flow`]), and
//!    the provider's authorization URL to send the browser to.
//! 2. Callback ([`Federation::callback`]): the cookie must hold the
//!    `state` the provider sent back (so the callback comes from the
//!    browser that started), then the provider's code is exchanged and the
//!    person proven (`upstream::Upstream::identify`: ID-token signature,
//!    issuer, audience, nonce, expiry), the `state` marked finished (a
//!    replayed callback is refused), and the identity resolved to an
//!    account by the rules below.
//! 3. The answer, by purpose ([`Purpose`]): the API flow's single-use
//!    exchange code to `redirect_to`, redeemed with the app's PKCE
//!    verifier at `POST /v1/auth/exchange` ([`Federation::exchange`]),
//!    which goes through the same second-factor and policy gate as every
//!    sign-in; the hosted pages' SSO session (through the same gate, in
//!    `service::sso`); or the link to the signed-in user.
//!
//! Accounts. An identity is `(provider, subject)` within a tenant, never
//! an email. A known identity signs its account in. An unknown one:
//! - when an account has the email the provider gives, it is linked only
//!   if the provider says the email is verified *and* the tenant turned on
//!   `federation.auto_link_verified_email`; otherwise the answer is
//!   `account_exists` (sign in to that account, then link from the account
//!   page). This is the pre-hijacking rule: an upstream account someone
//!   opened with another person's address must not get into that person's
//!   account.
//! - otherwise, when the tenant's signup policy admits it, a new account
//!   is created together with the identity in one transaction. The
//!   provider's email goes on the account only when the provider says it
//!   is verified (then it counts as proven); an unverified one stays on the
//!   identity alone, so it claims no address in forge. The provider's name
//!   for the person becomes the account's `metadata.name`; Apple's ID token
//!   has none, so for Apple it is the name in the unsigned `user` field of
//!   its first answer (that field's email is never read).
//!
//! Nothing here is kept per unauthenticated request: the flow lives in the
//! browser's cookie, and the only cache entries (exchange codes, finished
//! states) exist after a real upstream sign-in.

pub mod codes;
pub mod flow;

use std::sync::Arc;

use url::Url;
use uuid::Uuid;

use self::codes::{ExchangeGrant, FlowCodes};
use self::flow::{FLOW_TTL_SECS, Flow, FlowSeal, Purpose};
use crate::clock::Clock;
use crate::crypto::tokens::random_token;
use crate::domain::oauth::pkce_shaped;
use crate::domain::providers::{Identity, NewIdentity, Provider, ProviderId, ProviderKind};
use crate::domain::{Assurance, AuditEvent, Email, Identifier, TenantSlug};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::RequestMeta;
use crate::service::providers::Providers;
use crate::service::redirects::RedirectPolicy;
use crate::service::sessions::{Principal, SessionStart, Sessions, Tokens};
use crate::service::settings::Settings;
use crate::service::sign_in::{SignInGate, SignedIn};
use crate::store::{NewUser, Store, StoreError, Tenant, UnlinkOutcome, User};
use crate::upstream::{AuthRequest, CallbackData, Upstream, UpstreamError};

/// The longest name taken from a provider into `metadata.name`.
const MAX_NAME_CHARS: usize = 100;

/// A started flow: where the browser goes, and the cookie it keeps.
pub struct Started {
    pub location: Url,
    pub cookie: String,
}

/// What the provider sent back to the callback.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's refusal (`access_denied` when the person cancelled).
    pub error: Option<String>,
    /// The tenant the request names (`?tenant=`, `X-Forge-Tenant`), if
    /// any. The flow's own tenant decides, so none is needed; one that is
    /// not the flow's fails the flow (see [`Federation::callback`]).
    pub tenant: Option<TenantSlug>,
    /// The person's name from Apple's `user` form field (sent with the
    /// first authorization only; see `upstream::apple::user_name`). The
    /// field is unsigned: it names an Apple identity whose ID token has no
    /// name, and is never used for anything else.
    pub user_name: Option<String>,
}

/// A callback that succeeded, by purpose.
pub enum Finished {
    /// Send the browser to this URL (the exchange code, or `linked=`).
    Redirect(Url),
    /// Open the hosted pages' session for `user` and go on to `return_to`.
    Hosted {
        tenant: Tenant,
        user: User,
        return_to: String,
    },
}

/// Why a flow failed: a stable code for the app (`error=` on its
/// redirect), a sentence for a person, and where to say it.
#[derive(Debug)]
pub struct Failed {
    pub code: &'static str,
    pub message: String,
    /// Where the answer goes; `None` when the flow itself could not be
    /// read (no cookie, wrong `state`): then only a page can say it.
    pub purpose: Option<Purpose>,
    pub tenant_id: Option<Uuid>,
}

impl Failed {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            purpose: None,
            tenant_id: None,
        }
    }

    fn of(mut self, flow: &Flow) -> Self {
        self.purpose = Some(flow.purpose.clone());
        self.tenant_id = Some(flow.tenant_id);
        self
    }
}

/// An error the use cases below turn into a [`Failed`].
fn failed_from(e: AppError) -> Failed {
    let code = match e.code() {
        ErrorCode::UserDisabled => "user_disabled",
        ErrorCode::SignupDisabled => "signup_disabled",
        ErrorCode::SignupDomainNotAllowed => "signup_domain_not_allowed",
        ErrorCode::AccountExists => "account_exists",
        ErrorCode::IdentityTaken => "identity_taken",
        ErrorCode::RateLimited => "temporarily_unavailable",
        _ => "server_error",
    };
    let message = match code {
        "server_error" => {
            tracing::error!(error = %e, "upstream sign-in failed inside forge");
            "Something went wrong on our side. Try again.".to_owned()
        }
        _ => e.to_string(),
    };
    Failed::new(code, message)
}

/// The upstream flows over the providers registry, the protocol client and
/// the account store.
pub struct Federation {
    store: Arc<dyn Store>,
    providers: Arc<Providers>,
    upstream: Upstream,
    settings: Settings,
    sessions: Sessions,
    gate: SignInGate,
    seal: FlowSeal,
    codes: FlowCodes,
    redirects: RedirectPolicy,
    clock: Clock,
    /// `server.public_url` without a trailing slash: callback URLs hang
    /// off it.
    base: String,
}

impl Federation {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        providers: Arc<Providers>,
        upstream: Upstream,
        settings: Settings,
        sessions: Sessions,
        gate: SignInGate,
        seal: FlowSeal,
        codes: FlowCodes,
        redirects: RedirectPolicy,
        clock: Clock,
        public_url: &str,
    ) -> Self {
        Self {
            store,
            providers,
            upstream,
            settings,
            sessions,
            gate,
            seal,
            codes,
            redirects,
            clock,
            base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The redirect a failed API or link flow answers with:
    /// `redirect_to?error=CODE&error_description=...`; `None` for the
    /// hosted pages and unreadable flows, which answer with a page.
    pub fn failure_redirect(&self, failed: &Failed) -> Option<Url> {
        match &failed.purpose {
            Some(Purpose::Api { redirect_to, .. }) | Some(Purpose::Link { redirect_to, .. }) => {
                let mut url = self.absolute(redirect_to).ok()?;
                url.query_pairs_mut()
                    .append_pair("error", failed.code)
                    .append_pair("error_description", &failed.message);
                Some(url)
            }
            _ => None,
        }
    }

    /// Starts refreshing the providers' metadata and keys in the
    /// background (see `upstream::Upstream::spawn_refresher`).
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        self.upstream.spawn_refresher()
    }

    /// The providers a tenant's people may sign in with.
    pub async fn enabled(&self, tenant: &Tenant) -> AppResult<Vec<Provider>> {
        self.providers.enabled(tenant.id).await
    }

    /// The callback URL of a provider, as registered with it.
    pub fn callback_url(&self, provider: &ProviderId) -> AppResult<Url> {
        Url::parse(&format!("{}/v1/auth/providers/{provider}/callback", self.base)).map_err(AppError::internal)
    }

    /// The API flow's purpose, checked: `redirect_to` on the allow list
    /// (`server.allowed_redirects`), `code_challenge` an `S256` challenge.
    pub fn api_purpose(&self, redirect_to: Option<&str>, code_challenge: Option<&str>) -> AppResult<Purpose> {
        let redirect_to = self.allowed_redirect(redirect_to)?;
        let code_challenge = code_challenge.filter(|c| pkce_shaped(c)).ok_or_else(|| {
            AppError::validation(
                "code_challenge",
                "must be the base64url SHA-256 of a PKCE verifier (S256)",
            )
        })?;
        Ok(Purpose::Api {
            redirect_to: redirect_to.to_string(),
            code_challenge: code_challenge.to_owned(),
        })
    }

    /// Starts a flow with `provider` of `tenant` for `purpose`. 404 for a
    /// provider the tenant does not have enabled; 503 `unavailable` when
    /// the provider cannot be reached (its discovery document).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, provider = %provider_id))]
    pub async fn start(&self, tenant: &Tenant, provider_id: &str, purpose: Purpose) -> AppResult<Started> {
        let (provider, _) = self.provider(tenant.id, provider_id).await?;
        let flow = Flow {
            tenant_id: tenant.id,
            provider: provider.id.to_string(),
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            purpose,
            expires_at: self.clock.now().saturating_add(FLOW_TTL_SECS),
        };
        let request = AuthRequest {
            redirect_uri: self.callback_url(&provider.id)?,
            state: flow.state.clone(),
            nonce: flow.nonce.clone(),
            code_challenge: crate::domain::oauth::pkce_s256(&flow.verifier),
        };
        let location = self
            .upstream
            .authorization_url(&provider, &request)
            .await
            .map_err(|e| unavailable(&provider, &e))?;
        Ok(Started {
            location,
            cookie: self.seal.seal(&flow),
        })
    }

    /// A link ticket for the signed-in user (`GET
    /// /v1/users/me/identities/{provider}/link`): the URL of forge's start
    /// endpoint that the app opens in the browser. Linking adds a way into
    /// the account, so it needs what any such change needs (`aal` 2 for a
    /// user with a second factor).
    pub async fn link_ticket(
        &self,
        principal: &Principal,
        provider_id: &str,
        redirect_to: Option<&str>,
    ) -> AppResult<Url> {
        let (provider, _) = self.provider(principal.tenant.id, provider_id).await?;
        let redirect_to = self.allowed_redirect(redirect_to)?;
        self.gate.require_assurance_for_change(principal).await?;
        let ticket = self.codes.issue_ticket(
            principal.tenant.id,
            principal.user_id,
            provider.id.as_str(),
            redirect_to.as_str(),
        );
        let mut url = Url::parse(&format!("{}/v1/auth/providers/{}/start", self.base, provider.id))
            .map_err(AppError::internal)?;
        url.query_pairs_mut()
            .append_pair("tenant", principal.tenant.slug.as_str())
            .append_pair("link_ticket", &ticket);
        Ok(url)
    }

    /// `redirect_to` if it is on the allow list (`server.allowed_redirects`);
    /// otherwise 403: forge will not send a browser (and a code) anywhere
    /// else, a policy refusal rather than a malformed request.
    fn allowed_redirect(&self, redirect_to: Option<&str>) -> AppResult<Url> {
        redirect_to.and_then(|r| self.redirects.check(r)).ok_or_else(|| {
            AppError::forbidden(
                ErrorCode::Forbidden,
                "redirect_to must be a URL on an allowed origin (server.allowed_redirects)",
            )
        })
    }

    /// The link purpose a ticket names, spent (single use). 401 for a
    /// ticket that is unknown, expired, spent, or for another provider or
    /// tenant.
    pub async fn spend_ticket(&self, tenant: &Tenant, provider_id: &str, ticket: &str) -> AppResult<Purpose> {
        let invalid = || {
            AppError::unauthorized(
                ErrorCode::InvalidToken,
                "the link ticket expired or was used: start linking again",
            )
        };
        let ticket = self.codes.spend_ticket(ticket).await?.ok_or_else(invalid)?;
        if ticket.tenant_id != tenant.id || ticket.provider != provider_id {
            return Err(invalid());
        }
        Ok(Purpose::Link {
            user_id: ticket.user_id,
            redirect_to: ticket.redirect_to,
        })
    }

    /// The link purpose of a hosted-pages session (the account page's
    /// "Link" button): the answer comes back to the account page.
    pub async fn hosted_link(&self, principal: &Principal) -> AppResult<Purpose> {
        self.gate.require_assurance_for_change(principal).await?;
        Ok(Purpose::Link {
            user_id: principal.user_id,
            redirect_to: "/account".to_owned(),
        })
    }

    /// The callback leg (see the module docs). `cookie`: the browser's flow
    /// cookie.
    #[tracing::instrument(skip_all, fields(provider = %provider_id))]
    pub async fn callback(
        &self,
        provider_id: &str,
        params: CallbackParams,
        cookie: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Finished, Failed> {
        let expired = || {
            Failed::new(
                "invalid_request",
                "This sign-in has expired or was started in another browser. Start again.",
            )
        };
        let state = params.state.as_deref().ok_or_else(expired)?;
        let flow = cookie
            .and_then(|c| self.seal.open(c, state, self.clock.now()))
            .filter(|f| f.provider == provider_id)
            .ok_or_else(expired)?;
        // Two tenants may have providers of one id, so one callback path:
        // the flow's tenant, sealed in the cookie, is the one that counts.
        // A request that names another is confused (or crafted) and gets
        // no sign-in anywhere rather than one in a tenant it did not name.
        if let Some(named) = &params.tenant
            && !self
                .is_flow_tenant(named, &flow)
                .await
                .map_err(|e| failed_from(e).of(&flow))?
        {
            return Err(Failed::new(
                "invalid_request",
                "This sign-in was started for another tenant. Start again.",
            )
            .of(&flow));
        }
        if let Some(error) = params.error.as_deref() {
            let code = if error == "access_denied" {
                "access_denied"
            } else {
                "server_error"
            };
            return Err(Failed::new(code, "The sign-in was cancelled or refused at the provider.").of(&flow));
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| Failed::new("invalid_request", "The provider sent no code.").of(&flow))?;
        let (provider, secret) = self
            .provider(flow.tenant_id, provider_id)
            .await
            .map_err(|e| failed_from(e).of(&flow))?;
        let callback = CallbackData {
            code: code.to_owned(),
            redirect_uri: self.callback_url(&provider.id).map_err(|e| failed_from(e).of(&flow))?,
            code_verifier: flow.verifier.clone(),
            nonce: flow.nonce.clone(),
        };
        let mut person = match self.upstream.identify(&provider, &secret, &callback).await {
            Ok(person) => person,
            Err(e) => {
                self.audit_failure(&flow, &provider, &e, meta).await;
                return Err(upstream_failed(&e).of(&flow));
            }
        };
        // Apple's ID token never carries the name; the one place Apple gives
        // it is the unsigned `user` field, taken for the name alone.
        if provider.kind == ProviderKind::Apple && person.name.is_none() {
            person.name = params.user_name;
        }
        // Marked only now, after the provider proved someone: each mark
        // costs a real upstream sign-in.
        match self.codes.finish_state(&flow.state).await {
            Ok(true) => {}
            Ok(false) => return Err(expired().of(&flow)),
            Err(e) => return Err(failed_from(e).of(&flow)),
        }
        self.finish(&flow, &provider, person, meta)
            .await
            .map_err(|e| failed_from(e).of(&flow))
    }

    /// Whether the tenant slug a callback names is the flow's.
    async fn is_flow_tenant(&self, named: &TenantSlug, flow: &Flow) -> AppResult<bool> {
        let tenant = self.store.tenant_by_slug(named.as_str()).await?;
        Ok(tenant.is_some_and(|t| t.id == flow.tenant_id))
    }

    async fn finish(
        &self,
        flow: &Flow,
        provider: &Provider,
        person: crate::upstream::UpstreamIdentity,
        meta: &RequestMeta,
    ) -> AppResult<Finished> {
        let tenant = self
            .store
            .tenant_by_id(flow.tenant_id)
            .await?
            .ok_or_else(|| AppError::not_found("tenant"))?;
        match &flow.purpose {
            Purpose::Link { user_id, redirect_to } => {
                self.link(&tenant, *user_id, provider, &person, meta).await?;
                Ok(Finished::Redirect(with_query(
                    &self.absolute(redirect_to)?,
                    "linked",
                    provider.id.as_str(),
                )))
            }
            Purpose::Api {
                redirect_to,
                code_challenge,
            } => {
                let user = self.account(&tenant, provider, &person, meta).await?;
                let code = self
                    .codes
                    .issue_exchange(ExchangeGrant {
                        tenant_id: tenant.id,
                        user_id: user.id,
                        provider: provider.id.to_string(),
                        code_challenge: code_challenge.clone(),
                        expires_at: 0,
                    })
                    .await?;
                let target = Url::parse(redirect_to).map_err(AppError::internal)?;
                Ok(Finished::Redirect(with_query(&target, "code", code.expose())))
            }
            Purpose::Hosted { return_to } => {
                let user = self.account(&tenant, provider, &person, meta).await?;
                Ok(Finished::Hosted {
                    tenant,
                    user,
                    return_to: return_to.clone(),
                })
            }
        }
    }

    /// A local path (the account page) made absolute; an absolute URL as
    /// it is (it passed the redirect policy when the flow started).
    fn absolute(&self, target: &str) -> AppResult<Url> {
        if target.starts_with('/') && !target.starts_with("//") {
            Url::parse(&format!("{}{target}", self.base)).map_err(AppError::internal)
        } else {
            Url::parse(target).map_err(AppError::internal)
        }
    }

    /// The account an upstream identity signs in to (see the module docs),
    /// audited `federated_login`.
    async fn account(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        person: &crate::upstream::UpstreamIdentity,
        meta: &RequestMeta,
    ) -> AppResult<User> {
        let now = self.clock.now();
        let email = person.email.as_deref().and_then(|e| Email::parse(e).ok());
        let user = match self
            .store
            .find_identity(tenant.id, &provider.id, &person.subject)
            .await?
        {
            Some(identity) => {
                let user = self
                    .store
                    .get_user(tenant.id, identity.user_id)
                    .await?
                    .ok_or_else(|| AppError::not_found("user"))?;
                self.store
                    .touch_identity(tenant.id, identity.id, email.as_ref().map(Email::as_str), now)
                    .await?;
                user
            }
            None => self.first_sign_in(tenant, provider, person, email, meta).await?,
        };
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        let mut audit = meta.audit(tenant.id, now, AuditEvent::FederatedLogin, Some(user.id), Some(user.id));
        audit.detail = serde_json::json!({ "provider": provider.id.as_str() });
        self.store.record_audit(audit).await?;
        Ok(user)
    }

    async fn first_sign_in(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        person: &crate::upstream::UpstreamIdentity,
        email: Option<Email>,
        meta: &RequestMeta,
    ) -> AppResult<User> {
        let now = self.clock.now();
        let existing = match &email {
            Some(e) => self
                .store
                .find_for_login(tenant.id, &Identifier::Email(e.clone()))
                .await?
                .map(|(u, _)| u),
            None => None,
        };
        if let Some(user) = existing {
            let auto_link = self.settings.federation_of(tenant).await?.auto_link_verified_email;
            if !(person.email_verified && auto_link) {
                return Err(AppError::conflict(
                    ErrorCode::AccountExists,
                    "An account with this email address already exists. Sign in to it, then link this provider from your account page.",
                ));
            }
            self.link(tenant, user.id, provider, person, meta).await?;
            return Ok(user);
        }
        let proven = email.filter(|_| person.email_verified);
        match &proven {
            Some(e) => {
                self.settings
                    .check_signup(tenant, &Identifier::Email(e.clone()))
                    .await?
            }
            None => self.settings.check_signup_without_address(tenant).await?,
        }
        let id = Uuid::now_v7();
        let mut metadata = serde_json::json!({});
        if let Some(name) = person.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            metadata["name"] = serde_json::Value::String(name.chars().take(MAX_NAME_CHARS).collect());
        }
        let mut signup = meta.audit(tenant.id, now, AuditEvent::Signup, Some(id), Some(id));
        signup.detail = serde_json::json!({ "provider": provider.id.as_str() });
        let mut linked = meta.audit(tenant.id, now, AuditEvent::IdentityLinked, Some(id), Some(id));
        linked.detail = serde_json::json!({ "provider": provider.id.as_str(), "signup": true });
        let created = self
            .store
            .create_user_with_identity(
                NewUser {
                    id,
                    tenant_id: tenant.id,
                    email_verified: proven.is_some(),
                    email: proven,
                    phone: None,
                    phone_verified: false,
                    password_hash: None,
                    metadata,
                    roles: vec![],
                    now,
                },
                self.new_identity(tenant, id, provider, person),
                vec![signup, linked],
            )
            .await;
        match created {
            Ok((user, _)) => Ok(user),
            // Someone took the address (or the identity) meanwhile.
            Err(StoreError::Conflict { .. }) => Err(AppError::conflict(
                ErrorCode::AccountExists,
                "An account with this email address already exists. Sign in to it, then link this provider from your account page.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    fn new_identity(
        &self,
        tenant: &Tenant,
        user_id: Uuid,
        provider: &Provider,
        person: &crate::upstream::UpstreamIdentity,
    ) -> NewIdentity {
        NewIdentity {
            id: Uuid::now_v7(),
            tenant_id: tenant.id,
            user_id,
            provider: provider.id.clone(),
            subject: person.subject.clone(),
            email: person.email.clone(),
            now: self.clock.now(),
        }
    }

    /// Links `person` to `user_id`: idempotent for the same user, 409
    /// `identity_taken` when another account has it.
    async fn link(
        &self,
        tenant: &Tenant,
        user_id: Uuid,
        provider: &Provider,
        person: &crate::upstream::UpstreamIdentity,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let taken = || {
            AppError::conflict(
                ErrorCode::IdentityTaken,
                "This account at the provider is already linked to another account here.",
            )
        };
        if let Some(identity) = self
            .store
            .find_identity(tenant.id, &provider.id, &person.subject)
            .await?
        {
            return if identity.user_id == user_id {
                Ok(())
            } else {
                Err(taken())
            };
        }
        let user = self
            .store
            .get_user(tenant.id, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        let mut audit = meta.audit(
            tenant.id,
            self.clock.now(),
            AuditEvent::IdentityLinked,
            Some(user_id),
            Some(user_id),
        );
        audit.detail = serde_json::json!({ "provider": provider.id.as_str() });
        match self
            .store
            .link_identity(self.new_identity(tenant, user_id, provider, person), audit)
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(taken()),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /v1/auth/exchange`: the code from the API flow's redirect and
    /// the verifier of the challenge given at its start. The session opens
    /// through the same gate as every sign-in (a user with a factor gets
    /// the second step instead). Every failure is 400 `invalid_code`.
    #[tracing::instrument(skip_all)]
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        meta: &RequestMeta,
    ) -> AppResult<(Tenant, SignedIn<(User, Tokens)>)> {
        let invalid = || AppError::bad_request(ErrorCode::InvalidCode, "the code is invalid, expired or already used");
        let grant = self.codes.redeem_exchange(code, verifier).await?.ok_or_else(invalid)?;
        let tenant = self.store.tenant_by_id(grant.tenant_id).await?.ok_or_else(invalid)?;
        let user = self
            .store
            .get_user(tenant.id, grant.user_id)
            .await?
            .ok_or_else(invalid)?;
        if user.disabled {
            return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
        }
        let assurance = Assurance::federated();
        let proceed = match self
            .gate
            .after_first_factor(&tenant, &user, &assurance, meta)
            .await?
            .proceed()
        {
            Ok(proceed) => proceed,
            Err(answer) => return Ok((tenant, answer)),
        };
        let start = SessionStart::new(
            assurance,
            serde_json::json!({ "provider": grant.provider, "amr": ["fed"] }),
        );
        let (user, tokens) = self.sessions.start(&tenant, user.id, meta, start).await?;
        Ok((tenant, SignedIn::complete((user, tokens), proceed)))
    }

    /// The caller's linked identities.
    pub async fn identities(&self, principal: &Principal) -> AppResult<Vec<Identity>> {
        Ok(self
            .store
            .list_identities(principal.tenant.id, principal.user_id)
            .await?)
    }

    /// Unlinks one of the caller's identities (a change to how they sign
    /// in: `aal` 2 when they have a factor). 404 for one that is not
    /// theirs; 409 `last_sign_in_method` when nothing else would remain.
    #[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
    pub async fn unlink(&self, principal: &Principal, identity_id: Uuid, meta: &RequestMeta) -> AppResult<()> {
        self.gate.require_assurance_for_change(principal).await?;
        let tenant_id = principal.tenant.id;
        let mut audit = meta.audit(
            tenant_id,
            self.clock.now(),
            AuditEvent::IdentityUnlinked,
            Some(principal.user_id),
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "identity": identity_id });
        match self
            .store
            .unlink_identity(tenant_id, principal.user_id, identity_id, audit)
            .await?
        {
            UnlinkOutcome::Unlinked => Ok(()),
            UnlinkOutcome::NotFound => Err(AppError::not_found("identity")),
            UnlinkOutcome::LastSignInMethod => Err(AppError::conflict(
                ErrorCode::LastSignInMethod,
                "this is the last way to sign in to the account: add a password or another provider first",
            )),
        }
    }

    /// 404 unless `provider_id` is an enabled provider of the tenant (the
    /// start checks this before its parameters, so an unknown provider is
    /// 404 whatever else the request says).
    pub async fn ensure_enabled(&self, tenant: &Tenant, provider_id: &str) -> AppResult<()> {
        self.provider(tenant.id, provider_id).await.map(|_| ())
    }

    /// An enabled provider of the tenant with its secret; 404 otherwise.
    async fn provider(&self, tenant_id: Uuid, provider_id: &str) -> AppResult<(Provider, crate::secret::Secret)> {
        let id = ProviderId::parse(provider_id).map_err(|_| AppError::not_found("provider"))?;
        match self.providers.resolve(tenant_id, id.as_str()).await? {
            Some((provider, secret)) if provider.enabled => Ok((provider, secret)),
            _ => Err(AppError::not_found("provider")),
        }
    }

    async fn audit_failure(&self, flow: &Flow, provider: &Provider, e: &UpstreamError, meta: &RequestMeta) {
        let mut audit = meta.audit(
            flow.tenant_id,
            self.clock.now(),
            AuditEvent::FederatedLoginFailed,
            None,
            None,
        );
        audit.detail =
            serde_json::json!({ "provider": provider.id.as_str(), "stage": e.stage(), "reason": e.to_string() });
        if let Err(e) = self.store.record_audit(audit).await {
            tracing::warn!(error = %e, "could not audit a failed upstream sign-in");
        }
    }
}

/// `url` with `name=value` added to its query.
fn with_query(url: &Url, name: &str, value: &str) -> Url {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair(name, value);
    url
}

/// The provider could not be reached to start: 503 with a sentence for a
/// person (the operator has the log line and the metric).
fn unavailable(provider: &Provider, e: &UpstreamError) -> AppError {
    tracing::warn!(provider = %provider.id, kind = %provider.kind, stage = e.stage(), error = %e, "cannot start an upstream sign-in");
    AppError::Unavailable
}

/// What a person is told when the provider's answer did not prove them.
fn upstream_failed(e: &UpstreamError) -> Failed {
    match e {
        UpstreamError::Unavailable { .. } => Failed::new(
            "temporarily_unavailable",
            "The provider could not be reached. Try again in a moment.",
        ),
        UpstreamError::Denied { .. } => Failed::new("access_denied", "The provider refused the sign-in. Start again."),
        _ => Failed::new(
            "server_error",
            "The provider's answer could not be trusted, so you were not signed in.",
        ),
    }
}
