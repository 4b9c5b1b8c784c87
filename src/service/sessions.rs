//! Sessions and tokens: minting the access token and refresh token of a
//! sign-in, rotating refresh tokens, signing out, and checking an access
//! token on every authenticated request.
//!
//! A refresh token's successor is `HMAC(refresh_key, token)`: the server can
//! recompute it from the presented token, so a client that retries a refresh
//! inside the grace window gets the very same successor, while the database
//! holds only SHA-256 hashes. Which request wins a concurrent rotation is
//! decided by one conditional UPDATE in the store.
//!
//! Two limits end a session: the sliding `jwt.refresh_ttl` (a refresh
//! token unused that long expires) and the absolute `jwt.session_max_age`
//! counted from the sign-in. [`decide_refresh`] checks the absolute one and
//! caps every successor's expiry at it, so a client refreshing forever is
//! still signed out on time.
//!
//! The rotation's rules (liveness, the grace window, reuse detection and
//! which audit event each outcome writes) are [`decide_refresh`], a pure
//! function. The store cannot simply be asked "what is there" and then told
//! "do this" in two calls: another refresh could slip in between. So the
//! store claims the token with its one conditional `UPDATE`, hands what it
//! found to this rule inside the same transaction, and applies the answer
//! there: one transaction, one atomic claim, and the decision written once.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::RequestMeta;
use crate::cache::RateBucket;
use crate::cache::epoch::EpochCache;
use crate::clock::Clock;
use crate::config::{JwtConfig, Rate};
use crate::crypto::jwt::AccessClaims;
use crate::crypto::tokens::{hash_token, hmac_sha256_hex, random_token};
use crate::domain::{Amr, Assurance, AuditEvent, Timestamp};
use crate::error::{AppError, AppResult};
use crate::service::denylist::DenyList;
use crate::service::limits::Limits;
use crate::service::notices::Notices;
use crate::state::Keys;
use crate::store::Store;
use crate::store::{
    ClaimedSession, IdentifierKind, NewAuditEvent, NewSession, RefreshClaim, RefreshDecision, RotateRefresh, Rotation,
    Session, SignIn, Tenant, User,
};

/// What a sign-in hands to the client.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    /// Set by a password sign-in: the device token for the next one.
    pub device_token: Option<String>,
}

/// How a completed sign-in opens its session ([`Sessions::start`]).
#[derive(Debug)]
pub struct SessionStart {
    pub assurance: Assurance,
    /// The `login` audit row's detail, an object (`method` and what else
    /// the sign-in wants kept); the session id is added.
    pub detail: serde_json::Value,
    /// A new password hash when the stored one used outdated parameters.
    pub rehash: Option<String>,
    /// The identifier a code just proved.
    pub verified: Option<IdentifierKind>,
}

impl SessionStart {
    pub fn new(assurance: Assurance, detail: serde_json::Value) -> Self {
        Self {
            assurance,
            detail,
            rehash: None,
            verified: None,
        }
    }
}

/// An access token minted on its own, for a session that keeps its refresh
/// token (a step-up).
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// The caller of an authenticated request, from a verified access token
/// that is not on the deny list.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub tenant: Tenant,
    pub claims: Arc<AccessClaims>,
    /// The directory epoch the tenant was read at, when the request read it
    /// ([`Sessions::authenticate`]): the same request's role checks read at
    /// it too, sparing a shared-cache round trip. `None`: they read it.
    pub epoch: Option<u64>,
}

impl Principal {
    /// A principal for a browser session of forge's own pages (the admin
    /// site, the hosted pages), which hold no access token: its claims are
    /// synthetic, never signed (`aud` names the pages, `exp` is `now`), and
    /// the use cases read only the ids, the tenant and the assurance.
    #[allow(clippy::too_many_arguments)]
    pub fn for_page_session(
        issuer: &str,
        audience: &str,
        session_id: Uuid,
        created_at: Timestamp,
        assurance: &Assurance,
        user: &User,
        tenant: &Tenant,
        now: Timestamp,
    ) -> Self {
        Principal {
            user_id: user.id,
            session_id,
            tenant: tenant.clone(),
            epoch: None,
            claims: Arc::new(AccessClaims {
                iss: issuer.to_string(),
                aud: audience.to_string(),
                sub: user.id.to_string(),
                sid: session_id.to_string(),
                tid: tenant.slug.to_string(),
                roles: user.roles.clone(),
                iat: created_at,
                exp: now,
                jti: session_id.to_string(),
                email: None,
                email_verified: false,
                phone: None,
                phone_verified: false,
                amr: assurance.amr.clone(),
                aal: assurance.aal,
                client_id: None,
                scope: None,
            }),
        }
    }

    /// What the caller's access token states about how they signed in.
    pub fn assurance(&self) -> Assurance {
        self.claims.assurance()
    }
}

/// Sessions and tokens over what they touch: the store and deny list for
/// revocation, the keyring and verified-token cache for access tokens, the
/// refresh key for successors, and the tenant cache `authenticate` reads.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    clock: Clock,
    /// Every sign-in ends with its device check ([`Notices::signed_in`]).
    notices: Notices,
    keys: Keys,
    jwt: JwtConfig,
    refresh_per_ip: Rate,
    refresh_key: Arc<Vec<u8>>,
    /// Access tokens whose signature was already checked, keyed by the
    /// token's SHA-256, so the forward-auth hot path skips the ~70 µs Ed25519
    /// verification. Entries never outlive the token (`exp` is rechecked) and
    /// revocation is checked separately on every request.
    verified_tokens: moka::sync::Cache<[u8; 32], Arc<AccessClaims>>,
    /// Tenant slug to tenant (see [`EpochCache`]).
    tenants: EpochCache<String, Tenant>,
    limits: Limits,
    deny: DenyList,
}

impl Sessions {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        notices: Notices,
        keys: Keys,
        jwt: JwtConfig,
        refresh_per_ip: Rate,
        refresh_key: Arc<Vec<u8>>,
        tenants: EpochCache<String, Tenant>,
        limits: Limits,
        deny: DenyList,
        local_entries: u64,
    ) -> Self {
        Self {
            verified_tokens: crate::state::AppState::verified_token_cache(jwt.access_ttl + jwt.leeway, local_entries),
            store,
            clock,
            notices,
            keys,
            jwt,
            refresh_per_ip,
            refresh_key,
            tenants,
            limits,
            deny,
        }
    }

    /// Resolves a tenant slug, through the tenant cache.
    #[tracing::instrument(skip_all, fields(tenant = %slug))]
    pub async fn tenant(&self, slug: &str) -> AppResult<Option<Tenant>> {
        let epoch = self.tenants.epoch().current().await?;
        self.tenant_at(epoch, slug).await
    }

    /// [`Self::tenant`] at a directory `epoch` the request already read.
    async fn tenant_at(&self, epoch: u64, slug: &str) -> AppResult<Option<Tenant>> {
        self.tenants
            .get_or_load_at(epoch, slug, || async { Ok(self.store.tenant_by_slug(slug).await?) })
            .await
    }

    /// A fresh session begun by a password (amr `pwd`, aal 1) and its first
    /// refresh token: [`Self::new_session_with`] for the password sign-in
    /// and sign-up paths.
    pub fn new_session(&self, meta: &RequestMeta) -> (NewSession, String) {
        self.new_session_with(meta, Assurance::password())
    }

    /// A fresh session whose first factor proved `assurance`, and its first
    /// refresh token, ready for the store. Mint its tokens with
    /// [`Self::session_tokens`], so the token states what the session stores.
    pub fn new_session_with(&self, meta: &RequestMeta, assurance: Assurance) -> (NewSession, String) {
        let refresh = random_token();
        let now = self.clock.now();
        let jwt = &self.jwt;
        let session = NewSession {
            id: Uuid::now_v7(),
            refresh_hash: hash_token(&refresh),
            now,
            expires_at: now + jwt.refresh_ttl.min(jwt.session_max_age).as_secs() as i64,
            user_agent: meta.user_agent.clone(),
            ip: meta.ip.clone(),
            assurance,
            client_id: None,
            sso_id: None,
            scope: None,
        };
        (session, refresh)
    }

    /// A fresh session of OAuth client `client_id`, opened from SSO session
    /// `sso_id` at `assurance` with the granted `scope`, and its first
    /// refresh token.
    pub fn new_client_session(
        &self,
        meta: &RequestMeta,
        assurance: Assurance,
        client_id: &str,
        sso_id: Uuid,
        scope: &str,
    ) -> (NewSession, String) {
        let (mut session, refresh) = self.new_session_with(meta, assurance);
        session.client_id = Some(client_id.to_string());
        session.sso_id = Some(sso_id);
        session.scope = Some(scope.to_string());
        (session, refresh)
    }

    /// Opens the session of a sign-in whose every factor succeeded, the one
    /// way all of them end: the session at `start.assurance` from the
    /// client of `meta`, the `login` audit row (`start.detail` plus the
    /// `session_id`) and what the sign-in proved (`rehash`, `verified`)
    /// written in one store call, then its tokens with the client's device
    /// token (and a new-device notice when `meta` shows no known device).
    pub async fn start(
        &self,
        tenant: &Tenant,
        user_id: Uuid,
        meta: &RequestMeta,
        start: SessionStart,
    ) -> AppResult<(User, Tokens)> {
        let (session, refresh) = self.new_session_with(meta, start.assurance);
        let mut audit = meta.audit(
            tenant.id,
            self.clock.now(),
            AuditEvent::Login,
            Some(user_id),
            Some(user_id),
        );
        let mut detail = start.detail;
        if let Some(fields) = detail.as_object_mut() {
            fields.insert("session_id".to_owned(), serde_json::json!(session.id));
        }
        audit.detail = detail;
        let sign_in = SignIn {
            session: session.clone(),
            rehash: start.rehash,
            verified: start.verified,
        };
        let (user, before) = self.store.sign_in(tenant.id, user_id, sign_in, audit).await?;
        let mut tokens = self.session_tokens(&user, &session, tenant, refresh)?;
        tokens.device_token = Some(self.notices.signed_in(tenant.id, &user, before, meta).await?);
        Ok((user, tokens))
    }

    /// The device token of a sign-in recorded without [`Self::start`] (a
    /// one-time code's), with its new-device check (see
    /// [`Notices::signed_in`]); `before` is when the user last signed in.
    pub async fn device(
        &self,
        tenant_id: Uuid,
        user: &User,
        before: Option<Timestamp>,
        meta: &RequestMeta,
    ) -> AppResult<String> {
        self.notices.signed_in(tenant_id, user, before, meta).await
    }

    /// An access token of `session_id` stating `assurance`, which must be
    /// what the session stores.
    pub fn mint_access(
        &self,
        user: &User,
        session_id: Uuid,
        tenant: &Tenant,
        assurance: &Assurance,
    ) -> AppResult<(String, u64)> {
        self.mint_access_for(user, session_id, tenant, assurance, None)
    }

    /// [`Self::mint_access`] for a session of an OAuth client: `client` is
    /// its `client_id` and the granted scopes (space-separated), stated as
    /// the RFC 9068 `client_id` and `scope` claims.
    pub fn mint_access_for(
        &self,
        user: &User,
        session_id: Uuid,
        tenant: &Tenant,
        assurance: &Assurance,
        client: Option<(&str, &str)>,
    ) -> AppResult<(String, u64)> {
        let keys = self.keys.current();
        let now = self.clock.now();
        let ttl = self.jwt.access_ttl.as_secs();
        let claims = AccessClaims {
            iss: keys.issuer().to_string(),
            aud: keys.audience().to_string(),
            sub: user.id.to_string(),
            sid: session_id.to_string(),
            tid: tenant.slug.to_string(),
            roles: user.roles.clone(),
            iat: now,
            exp: now + ttl as i64,
            jti: Uuid::now_v7().to_string(),
            // Only proven identifiers go into a token: whatever reads it
            // (forward auth, an app) takes them as the user's own.
            email: user
                .email
                .as_ref()
                .filter(|_| user.email_verified)
                .map(|e| e.to_string()),
            email_verified: user.email.is_some() && user.email_verified,
            phone: user
                .phone
                .as_ref()
                .filter(|_| user.phone_verified)
                .map(|p| p.to_string()),
            phone_verified: user.phone.is_some() && user.phone_verified,
            amr: assurance.amr.clone(),
            aal: assurance.aal,
            client_id: client.map(|(c, _)| c.to_string()),
            scope: client.map(|(_, s)| s.to_string()),
        };
        let token = keys.sign(&claims).map_err(AppError::internal)?;
        Ok((token, ttl))
    }

    /// The tokens of a session opened by [`Self::new_session`] (a password
    /// sign-in: amr `pwd`, aal 1).
    pub fn tokens_for(
        &self,
        user: &User,
        session_id: Uuid,
        tenant: &Tenant,
        refresh_token: String,
    ) -> AppResult<Tokens> {
        self.tokens_at(user, session_id, tenant, refresh_token, &Assurance::password())
    }

    /// The tokens of a session just stored, stating its assurance.
    pub fn session_tokens(
        &self,
        user: &User,
        session: &NewSession,
        tenant: &Tenant,
        refresh_token: String,
    ) -> AppResult<Tokens> {
        self.tokens_at(user, session.id, tenant, refresh_token, &session.assurance)
    }

    fn tokens_at(
        &self,
        user: &User,
        session_id: Uuid,
        tenant: &Tenant,
        refresh_token: String,
        assurance: &Assurance,
    ) -> AppResult<Tokens> {
        let (access_token, expires_in) = self.mint_access(user, session_id, tenant, assurance)?;
        Ok(Tokens {
            access_token,
            expires_in,
            refresh_token,
            device_token: None,
        })
    }

    fn successor_of(&self, token: &str) -> String {
        let mac = hmac_sha256_hex(&self.refresh_key, token.as_bytes());
        let bytes = hex::decode(mac).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Rotates a refresh token of forge's own API (a client's refresh
    /// token is refused: it works only at the token endpoint with that
    /// client's authentication). Errors are `invalid_grant` whatever the
    /// reason.
    pub async fn refresh(&self, tenant: &Tenant, token: &str, meta: &RequestMeta) -> AppResult<(User, Tokens)> {
        let (user, tokens, _) = self.refresh_as(tenant, token, meta, None).await?;
        Ok((user, tokens))
    }

    /// Rotates a refresh token of the session of OAuth client `client`
    /// (`None`: of forge's own API); the store's claim matches no token of
    /// any other session, so presenting it elsewhere neither rotates nor
    /// revokes it. Returns the session's granted scope too.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, client_id = ?client))]
    pub async fn refresh_as(
        &self,
        tenant: &Tenant,
        token: &str,
        meta: &RequestMeta,
        client: Option<&str>,
    ) -> AppResult<(User, Tokens, Option<String>)> {
        self.limits
            .spend(
                RateBucket::RefreshIp,
                &super::limits::ip_key(meta.ip.as_deref()),
                self.refresh_per_ip,
            )
            .await?;
        if !plausible_refresh_token(token) {
            return Err(AppError::invalid_grant());
        }
        let successor = self.successor_of(token);
        let now = self.clock.now();
        let policy = RefreshPolicy {
            now,
            grace_secs: self.jwt.refresh_reuse_grace.as_secs() as i64,
            refresh_ttl: self.jwt.refresh_ttl.as_secs() as i64,
            session_max_age: i64::try_from(self.jwt.session_max_age.as_secs()).unwrap_or(i64::MAX),
        };
        let (tenant_id, rule_meta) = (tenant.id, meta.clone());
        let rotation = self
            .store
            .rotate_refresh(
                RotateRefresh {
                    tenant_id,
                    client_id: client.map(str::to_owned),
                    old_hash: hash_token(token),
                    new_hash: hash_token(&successor),
                    now,
                    ip: meta.ip.clone(),
                    user_agent: meta.user_agent.clone(),
                },
                Box::new(move |claim| decide_refresh(claim, policy, &rule_meta, tenant_id)),
            )
            .await?;
        match rotation {
            Rotation::Rotated { session, user } | Rotation::WithinGrace { session, user } => {
                // The session keeps the assurance it reached (a step-up
                // included) for as long as it lives.
                let bound = session.client_id.as_deref().zip(session.scope.as_deref());
                let (access_token, expires_in) =
                    self.mint_access_for(&user, session.id, tenant, &session.assurance, bound)?;
                let tokens = Tokens {
                    access_token,
                    expires_in,
                    refresh_token: successor,
                    device_token: None,
                };
                Ok((user, tokens, session.scope.clone()))
            }
            Rotation::ReuseDetected { session_id, user_id } => {
                tracing::warn!(%session_id, %user_id, "refresh token reuse detected; session revoked");
                self.deny.deny_sessions(&[session_id]).await?;
                Err(AppError::invalid_grant())
            }
            Rotation::Invalid => Err(AppError::invalid_grant()),
        }
    }

    /// Raises the caller's session after a second factor proved with
    /// `methods` (e.g. `[Otp]` for a TOTP or recovery code): the session
    /// stores its assurance [stepped up](Assurance::stepped_up) to aal 2,
    /// atomically (a compare-and-set, retried if a concurrent step-up won),
    /// with `audit` written in the same transaction; every later refresh
    /// keeps it. Returns the user, the new assurance and an access token of
    /// the same session stating it (the refresh token stays as it is).
    /// 401 when the session is no longer live or the user is gone or
    /// disabled. Checking the factor is the caller's part.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, session_id = %principal.session_id))]
    pub async fn step_up(
        &self,
        principal: &Principal,
        methods: &[Amr],
        audit: Option<NewAuditEvent>,
    ) -> AppResult<(User, Assurance, AccessToken)> {
        let (tenant, user_id, session_id) = (&principal.tenant, principal.user_id, principal.session_id);
        for _ in 0..STEP_UP_TRIES {
            let now = self.clock.now();
            let session = self
                .store
                .live_session(tenant.id, user_id, session_id, now)
                .await?
                .ok_or_else(AppError::invalid_token)?;
            let raised = session.assurance.stepped_up(methods.iter().copied());
            let set = self
                .store
                .set_session_assurance(
                    tenant.id,
                    user_id,
                    session_id,
                    session.assurance,
                    raised.clone(),
                    now,
                    audit.clone(),
                )
                .await?;
            if !set {
                // Another step-up of this session came first (or the session
                // ended meanwhile): read it again.
                continue;
            }
            let user = self
                .store
                .get_user(tenant.id, user_id)
                .await?
                .filter(|u| !u.disabled)
                .ok_or_else(AppError::invalid_token)?;
            let (access_token, expires_in) = self.mint_access(&user, session_id, tenant, &raised)?;
            return Ok((
                user,
                raised,
                AccessToken {
                    access_token,
                    expires_in,
                },
            ));
        }
        Err(AppError::internal(anyhow::anyhow!(
            "the session's assurance kept changing during a step-up"
        )))
    }

    /// Signs out the session of `principal` (or, for a client whose access token
    /// expired, the session that `refresh_token` belongs to).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = ?principal.map(|p| p.user_id), scope = ?scope))]
    pub async fn logout(
        &self,
        tenant: &Tenant,
        principal: Option<&Principal>,
        refresh_token: Option<&str>,
        scope: LogoutScope,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let (user_id, session_id) = match (principal, refresh_token) {
            (Some(p), _) => (p.user_id, p.session_id),
            (None, Some(token)) if plausible_refresh_token(token) => {
                let session = self
                    .store
                    .session_by_refresh(tenant.id, &hash_token(token))
                    .await?
                    .filter(|s| s.revoked_at.is_none())
                    .ok_or_else(AppError::invalid_grant)?;
                (session.user_id, session.id)
            }
            _ => return Err(AppError::invalid_token()),
        };
        let now = self.clock.now();
        let mut audit = meta.audit(tenant.id, now, AuditEvent::Logout, Some(user_id), Some(user_id));
        audit.detail = serde_json::json!({ "scope": if scope == LogoutScope::All { "all" } else { "session" } });
        let revoked = match scope {
            LogoutScope::Session => {
                self.store
                    .revoke_session(tenant.id, user_id, session_id, now, Some(audit))
                    .await?;
                vec![session_id]
            }
            LogoutScope::All => {
                self.sign_out_everywhere(tenant.id, user_id, None, Some(audit)).await?;
                vec![session_id]
            }
        };
        self.deny.deny_sessions(&revoked).await?;
        Ok(())
    }

    /// Ends every session of a user at once: the API sessions (revoked, and
    /// their access tokens denied) except `keep`, and, through the credential
    /// epoch bumped in the same transaction, every admin-site session. This is
    /// the operation for any event after which nobody who signed in before may
    /// stay in: a password reset or change, "sign out everywhere", an
    /// identifier proven for the first time. `audit` is written in that
    /// transaction. Returns the revoked session ids.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id, keep = ?keep, event = ?audit.as_ref().map(|a| a.event)))]
    pub async fn sign_out_everywhere(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        keep: Option<Uuid>,
        audit: Option<NewAuditEvent>,
    ) -> AppResult<Vec<Uuid>> {
        let now = self.clock.now();
        let revoked = self.store.revoke_sessions(tenant_id, user_id, keep, now, audit).await?;
        self.deny.deny_sessions(&revoked).await?;
        Ok(revoked)
    }

    /// Checks an access token: signature, algorithm, `kid`, `iss`, `aud` and
    /// expiry (cached per token after the first check), then the deny list (on
    /// every call). No database round trip unless the tenant is not cached.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, token: &str) -> AppResult<Principal> {
        let digest = token_digest(token);
        let now = self.clock.now();
        let claims = match self.verified_tokens.get(&digest) {
            Some(claims) if claims.exp + self.jwt.leeway.as_secs() as i64 > now => claims,
            Some(_) => return Err(AppError::invalid_token()),
            None => {
                let claims = self.keys.current().verify_access(token).map_err(|e| {
                    tracing::debug!(error = %e, "access token rejected");
                    AppError::invalid_token()
                })?;
                let claims = Arc::new(claims);
                self.verified_tokens.insert(digest, claims.clone());
                claims
            }
        };
        let (Ok(user_id), Ok(session_id)) = (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.sid)) else {
            return Err(AppError::invalid_token());
        };
        if self.deny.is_denied(session_id, user_id).await? {
            return Err(AppError::invalid_token());
        }
        let epoch = self.tenants.epoch().current().await?;
        let tenant = self
            .tenant_at(epoch, &claims.tid)
            .await?
            .ok_or_else(AppError::invalid_token)?;
        // Tokens name their tenant by slug: a tenant deleted and created again
        // under the same slug is another tenant, and the old tokens (whose
        // sessions went with the old one) must not speak for it.
        if tenant.created_at > claims.iat {
            return Err(AppError::invalid_token());
        }
        Ok(Principal {
            user_id,
            session_id,
            tenant,
            claims,
            epoch: Some(epoch),
        })
    }

    /// The user's live sessions, newest first.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(&self, principal: &Principal) -> AppResult<Vec<Session>> {
        Ok(self
            .store
            .list_sessions(principal.tenant.id, principal.user_id, self.clock.now())
            .await?)
    }

    /// Revokes one of the caller's own sessions; 404 if it is not theirs.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, session_id = %session_id))]
    pub async fn revoke_own(&self, principal: &Principal, session_id: Uuid, meta: &RequestMeta) -> AppResult<()> {
        let mut audit = meta.audit(
            principal.tenant.id,
            self.clock.now(),
            AuditEvent::Logout,
            Some(principal.user_id),
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "session_id": session_id });
        if !self
            .store
            .revoke_session(
                principal.tenant.id,
                principal.user_id,
                session_id,
                self.clock.now(),
                Some(audit),
            )
            .await?
        {
            return Err(AppError::not_found("session"));
        }
        self.deny.deny_sessions(&[session_id]).await?;
        Ok(())
    }
}

/// How often [`Sessions::step_up`] reads and sets again when concurrent
/// step-ups of one session keep winning the compare-and-set.
const STEP_UP_TRIES: usize = 4;

/// A refresh token is base64url of 32 bytes; anything else is refused before
/// it costs a database round trip.
fn plausible_refresh_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The limits a refresh is judged by, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct RefreshPolicy {
    pub now: Timestamp,
    /// `jwt.refresh_reuse_grace`: a retry this soon after a rotation gets
    /// the same successor instead of revoking the session.
    pub grace_secs: i64,
    /// `jwt.refresh_ttl`: the sliding expiry of a successor.
    pub refresh_ttl: i64,
    /// `jwt.session_max_age`: a session older than this does not refresh.
    pub session_max_age: i64,
}

/// The refresh rule: what a rotation does with what its claim found. Run
/// by the store inside the rotation's transaction (see the module docs);
/// pure, so it may run again when the transaction is retried.
pub fn decide_refresh(
    claim: &RefreshClaim,
    policy: RefreshPolicy,
    meta: &RequestMeta,
    tenant_id: Uuid,
) -> RefreshDecision {
    let RefreshPolicy {
        now,
        grace_secs,
        refresh_ttl,
        session_max_age,
    } = policy;
    let live = |c: &ClaimedSession| {
        let s = &c.session;
        !c.user_disabled
            && s.revoked_at.is_none()
            && s.expires_at > now
            && s.created_at > now.saturating_sub(session_max_age)
    };
    let audit = |event, s: &Session, actor| {
        let mut audit = meta.audit(tenant_id, now, event, Some(s.user_id), actor);
        audit.detail = serde_json::json!({ "session_id": s.id });
        audit
    };
    match claim {
        RefreshClaim::Won(c) if live(c) => RefreshDecision::Rotate {
            // Sliding, but never past the session's absolute end.
            expires_at: now
                .saturating_add(refresh_ttl)
                .min(c.session.created_at.saturating_add(session_max_age)),
            audit: audit(AuditEvent::Refresh, &c.session, Some(c.session.user_id)),
        },
        RefreshClaim::Spent {
            session,
            rotated_at,
            successor_live,
        } if live(session) => {
            if grace_secs > 0 && now - rotated_at <= grace_secs && *successor_live {
                RefreshDecision::Reissue
            } else {
                RefreshDecision::Revoke {
                    audit: audit(AuditEvent::RefreshReuseDetected, &session.session, None),
                }
            }
        }
        // Unknown, expired, or its session is revoked, too old or its user disabled.
        _ => RefreshDecision::Refuse,
    }
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    Session,
    All,
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_shape() {
        assert!(plausible_refresh_token(&random_token()));
        assert!(!plausible_refresh_token("short"));
        assert!(!plausible_refresh_token(&"a".repeat(44)));
        assert!(!plausible_refresh_token(&format!("{}!", "a".repeat(42))));
    }

    const NOW: i64 = 1_000_000;

    fn claimed(created_at: i64) -> ClaimedSession {
        ClaimedSession {
            session: Session {
                id: Uuid::now_v7(),
                tenant_id: Uuid::nil(),
                user_id: Uuid::now_v7(),
                created_at,
                last_used_at: created_at,
                expires_at: NOW + 60,
                revoked_at: None,
                user_agent: None,
                ip: None,
                assurance: Assurance::unknown(),
                client_id: None,
                sso_id: None,
                scope: None,
            },
            user_disabled: false,
        }
    }

    fn decide(claim: &RefreshClaim) -> RefreshDecision {
        let policy = RefreshPolicy {
            now: NOW,
            grace_secs: 10,
            refresh_ttl: 3600,
            session_max_age: 1000,
        };
        decide_refresh(claim, policy, &RequestMeta::default(), Uuid::nil())
    }

    fn spent(rotated_at: i64, successor_live: bool) -> RefreshClaim {
        RefreshClaim::Spent {
            session: claimed(NOW - 100),
            rotated_at,
            successor_live,
        }
    }

    #[test]
    fn a_won_claim_rotates_within_the_absolute_lifetime() {
        let RefreshDecision::Rotate { expires_at, audit } = decide(&RefreshClaim::Won(claimed(NOW - 100))) else {
            panic!("a live session rotates");
        };
        assert_eq!(expires_at, NOW - 100 + 1000, "capped at created_at + max age");
        assert_eq!(audit.event, AuditEvent::Refresh);
        assert!(matches!(
            decide(&RefreshClaim::Won(claimed(NOW - 1000))),
            RefreshDecision::Refuse
        ));
        let mut disabled = claimed(NOW);
        disabled.user_disabled = true;
        assert!(matches!(decide(&RefreshClaim::Won(disabled)), RefreshDecision::Refuse));
        assert!(matches!(decide(&RefreshClaim::Unknown), RefreshDecision::Refuse));
    }

    #[test]
    fn a_spent_token_is_reissued_in_the_grace_window_and_revokes_after() {
        assert!(matches!(decide(&spent(NOW - 10, true)), RefreshDecision::Reissue));
        let RefreshDecision::Revoke { audit } = decide(&spent(NOW - 11, true)) else {
            panic!("reuse after the grace window");
        };
        assert_eq!(audit.event, AuditEvent::RefreshReuseDetected);
        assert_eq!(audit.actor_id, None);
        assert!(
            matches!(decide(&spent(NOW, false)), RefreshDecision::Revoke { .. }),
            "a successor that was itself rotated is not handed out again"
        );
        let mut revoked = spent(NOW, true);
        if let RefreshClaim::Spent { session, .. } = &mut revoked {
            session.session.revoked_at = Some(NOW - 1);
        }
        assert!(matches!(decide(&revoked), RefreshDecision::Refuse));
    }

    #[tokio::test]
    async fn signing_out_everywhere_stops_the_access_and_refresh_tokens() {
        use crate::service::test_ports;
        use crate::store::{DEFAULT_TENANT_ID, NewUser};

        // Signatures are checked against the wall clock, so this one runs on it.
        let (store, cache, clock) = (test_ports::store(), test_ports::cache(), Clock::system());
        let now = clock.now();
        let sessions = test_ports::sessions(&store, &cache, &clock).await;
        let meta = RequestMeta::default();
        let tenant = sessions.tenant("default").await.unwrap().unwrap();
        let (session, refresh_token) = sessions.new_session(&meta);
        let user_id = Uuid::now_v7();
        let new = NewUser {
            id: user_id,
            tenant_id: DEFAULT_TENANT_ID,
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            password_hash: None,
            metadata: serde_json::json!({}),
            roles: vec![],
            now,
        };
        let audit = meta.audit(DEFAULT_TENANT_ID, now, AuditEvent::Signup, Some(user_id), Some(user_id));
        let user = store.create_user(new, Some(session.clone()), audit).await.unwrap();
        let tokens = sessions.tokens_for(&user, session.id, &tenant, refresh_token).unwrap();

        let principal = sessions.authenticate(&tokens.access_token).await.unwrap();
        assert_eq!((principal.user_id, principal.session_id), (user_id, session.id));
        let (_, rotated) = sessions.refresh(&tenant, &tokens.refresh_token, &meta).await.unwrap();

        let revoked = sessions
            .sign_out_everywhere(tenant.id, user_id, None, None)
            .await
            .unwrap();
        assert_eq!(revoked, vec![session.id]);
        assert!(
            sessions.authenticate(&tokens.access_token).await.is_err(),
            "denied at once"
        );
        assert!(sessions.authenticate(&rotated.access_token).await.is_err());
        assert!(sessions.refresh(&tenant, &rotated.refresh_token, &meta).await.is_err());
    }
}
