//! OAuth authorization codes (RFC 6749 section 4.1.2): 256 random bits
//! handed to the client's redirect URI, redeemed once at the token endpoint
//! within [`CODE_TTL`].
//!
//! The cache holds only an HMAC of the code under the server key (a cache
//! dump yields no usable code), with what the code is bound to: client,
//! redirect URI, PKCE challenge, scopes, nonce, user, tenant, SSO session,
//! time and strength of the sign-in. Redeeming is one atomic
//! [`Cache::take`]: of any number of concurrent redemptions exactly one gets
//! the grant. Expiry is the cache TTL and, as well, an expiry time checked
//! against the application clock.
//!
//! A code presented a second time means it leaked (RFC 6749 section 4.1.2:
//! the server "SHOULD revoke (when possible) all tokens previously issued
//! based on that authorization code"). So redeeming leaves a "spent" mark
//! under the same keyed hash, for [`SPENT_TTL`], which the token endpoint
//! fills in with the session the code opened ([`AuthCodes::opened`]); a
//! replay finds the mark ([`Redeemed::Replayed`]) and revokes that session.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
use crate::clock::Clock;
use crate::crypto::tokens::{hmac_sha256_hex, random_token};
use crate::domain::oauth::Scopes;
use crate::domain::{Assurance, Timestamp};
use crate::error::{AppError, AppResult};
use crate::secret::Secret;

/// How long a code lives (OAuth 2.1: short; the issue: 60 seconds).
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// How long a redeemed code is remembered, to catch its replay.
pub const SPENT_TTL: Duration = Duration::from_secs(600);

/// What an authorization code is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorization request named it (then the token request
    /// must name the same, RFC 6749 section 4.1.3).
    pub redirect_uri_given: bool,
    /// The `S256` PKCE challenge, when the request had one.
    pub code_challenge: Option<String>,
    pub scopes: Scopes,
    pub nonce: Option<String>,
    /// The SSO session the user was signed in with (`sid` of the ID token).
    pub sso_id: Uuid,
    /// When the user last authenticated (`auth_time`).
    pub auth_time: Timestamp,
    pub assurance: Assurance,
    pub expires_at: Timestamp,
}

/// The "spent" mark of a redeemed code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpentCode {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    /// The session the code's tokens opened (None until they are minted).
    pub session_id: Option<Uuid>,
}

/// What redeeming a code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// A live code, now spent.
    Live(Box<CodeGrant>),
    /// A code redeemed before: its tokens must be revoked.
    Replayed(SpentCode),
    /// Unknown, malformed or expired.
    Unknown,
}

/// Authorization codes over the cache, keyed under the server key.
#[derive(Clone)]
pub struct AuthCodes {
    cache: Arc<dyn Cache>,
    clock: Clock,
    key: Arc<Vec<u8>>,
}

impl AuthCodes {
    pub fn new(cache: Arc<dyn Cache>, clock: Clock, key: Arc<Vec<u8>>) -> Self {
        Self { cache, clock, key }
    }

    fn digest(&self, code: &str) -> String {
        hmac_sha256_hex(&self.key, format!("oauth-code\0{code}").as_bytes())
    }

    /// Stores a grant and returns its code, shown once to the client. The
    /// grant's `expires_at` is set here.
    #[tracing::instrument(skip_all, fields(tenant_id = %grant.tenant_id, client_id = %grant.client_id, user_id = %grant.user_id))]
    pub async fn issue(&self, mut grant: CodeGrant) -> AppResult<Secret> {
        let code = random_token();
        grant.expires_at = self.clock.now().saturating_add(CODE_TTL.as_secs() as i64);
        let bytes = serde_json::to_vec(&grant).map_err(AppError::internal)?;
        let key = CacheKey::authorization_code(&self.digest(&code));
        self.cache.set(&key, &bytes, CODE_TTL).await?;
        Ok(Secret::new(code))
    }

    /// Redeems a code: the grant exactly once, a replay after that, or
    /// nothing for a code that is malformed, unknown or expired.
    #[tracing::instrument(skip_all)]
    pub async fn redeem(&self, code: &str) -> AppResult<Redeemed> {
        if !plausible_code(code) {
            return Ok(Redeemed::Unknown);
        }
        let digest = self.digest(code);
        let spent_key = CacheKey::authorization_code_spent(&digest);
        let Some(bytes) = self.cache.take(&CacheKey::authorization_code(&digest)).await? else {
            return Ok(match self.cache.get(&spent_key).await? {
                Some(bytes) => Redeemed::Replayed(serde_json::from_slice(&bytes).map_err(AppError::internal)?),
                None => Redeemed::Unknown,
            });
        };
        let grant: CodeGrant = serde_json::from_slice(&bytes).map_err(AppError::internal)?;
        let spent = SpentCode {
            tenant_id: grant.tenant_id,
            client_id: grant.client_id.clone(),
            user_id: grant.user_id,
            session_id: None,
        };
        let bytes = serde_json::to_vec(&spent).map_err(AppError::internal)?;
        self.cache.set(&spent_key, &bytes, SPENT_TTL).await?;
        if grant.expires_at <= self.clock.now() {
            return Ok(Redeemed::Unknown);
        }
        Ok(Redeemed::Live(Box::new(grant)))
    }

    /// Notes the session a redeemed code's tokens opened, for a replay to
    /// revoke.
    #[tracing::instrument(skip_all, fields(session_id = %session_id))]
    pub async fn opened(&self, code: &str, grant: &CodeGrant, session_id: Uuid) -> AppResult<()> {
        let spent = SpentCode {
            tenant_id: grant.tenant_id,
            client_id: grant.client_id.clone(),
            user_id: grant.user_id,
            session_id: Some(session_id),
        };
        let bytes = serde_json::to_vec(&spent).map_err(AppError::internal)?;
        let key = CacheKey::authorization_code_spent(&self.digest(code));
        self.cache.set(&key, &bytes, SPENT_TTL).await?;
        Ok(())
    }
}

/// A code is base64url of 32 bytes; anything else is refused before it
/// costs a cache round trip.
fn plausible_code(code: &str) -> bool {
    code.len() == 43
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    fn grant() -> CodeGrant {
        CodeGrant {
            tenant_id: Uuid::from_u128(1),
            client_id: "app".into(),
            user_id: Uuid::from_u128(2),
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_given: true,
            code_challenge: None,
            scopes: Scopes::parse("openid").unwrap(),
            nonce: Some("n".into()),
            sso_id: Uuid::from_u128(3),
            auth_time: test_ports::START,
            assurance: Assurance::password(),
            expires_at: 0,
        }
    }

    fn codes(clock: &Clock) -> AuthCodes {
        AuthCodes::new(test_ports::cache(), clock.clone(), Arc::new(b"k".to_vec()))
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_and_its_replay_is_seen() {
        let clock = test_ports::clock();
        let codes = codes(&clock);
        let code = codes.issue(grant()).await.unwrap();
        let code = code.expose();
        assert_eq!(code.len(), 43);
        let Redeemed::Live(got) = codes.redeem(code).await.unwrap() else {
            panic!("live")
        };
        assert_eq!(got.expires_at, test_ports::START + 60);
        assert_eq!(got.nonce.as_deref(), Some("n"));
        let Redeemed::Replayed(spent) = codes.redeem(code).await.unwrap() else {
            panic!("replay")
        };
        assert_eq!(spent.session_id, None);
        let session = Uuid::from_u128(9);
        codes.opened(code, &got, session).await.unwrap();
        let Redeemed::Replayed(spent) = codes.redeem(code).await.unwrap() else {
            panic!("replay")
        };
        assert_eq!(spent.session_id, Some(session));
        assert_eq!(codes.redeem("x").await.unwrap(), Redeemed::Unknown);
        assert_eq!(codes.redeem(&random_token()).await.unwrap(), Redeemed::Unknown);
    }

    #[tokio::test]
    async fn a_code_expires_by_the_application_clock() {
        let clock = test_ports::clock();
        let codes = codes(&clock);
        let code = codes.issue(grant()).await.unwrap();
        clock.advance(60);
        assert_eq!(codes.redeem(code.expose()).await.unwrap(), Redeemed::Unknown);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_redemptions_win_once() {
        let clock = test_ports::clock();
        let codes = Arc::new(codes(&clock));
        let code = codes.issue(grant()).await.unwrap().expose().to_string();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (codes, code) = (codes.clone(), code.clone());
            tasks.push(tokio::spawn(async move { codes.redeem(&code).await.unwrap() }));
        }
        let mut live = 0;
        for t in tasks {
            live += usize::from(matches!(t.await.unwrap(), Redeemed::Live(_)));
        }
        assert_eq!(live, 1);
    }
}
