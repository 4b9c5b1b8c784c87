//! The two short-lived credentials of the upstream flows.
//!
//! - Exchange codes: what the API flow hands `redirect_to` after the
//!   provider proved the person. 256 random bits, single use, 60 seconds,
//!   redeemed at `POST /v1/auth/exchange` with the verifier of the PKCE
//!   challenge the app gave at the start, so a code that leaks from a URL
//!   (history, logs, a Referer) is useless to whoever lacks the verifier.
//!   The cache keeps only an HMAC of the code, with what it is bound to,
//!   and redeeming is one atomic take. Codes exist only after a real
//!   upstream sign-in, so nobody can fill the cache with them for free.
//! - Link tickets: what `GET /v1/users/me/identities/{provider}/link`
//!   (a bearer call) hands the app to open in the browser, which starts a
//!   link flow there (the flow cookie can only be set in the browser that
//!   goes to the provider). Signed like device tokens, not stored; two
//!   minutes; single use through a spent mark left when a flow starts.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
use crate::clock::Clock;
use crate::crypto::tokens::{constant_time_eq, hmac_sha256, hmac_sha256_hex, random_token};
use crate::domain::Timestamp;
use crate::domain::oauth::pkce_s256_matches;
use crate::error::{AppError, AppResult};
use crate::secret::Secret;

/// How long an exchange code lives.
pub const EXCHANGE_TTL: Duration = Duration::from_secs(60);
/// How long a link ticket lives.
pub const TICKET_TTL: Duration = Duration::from_secs(120);
const TICKET_VERSION: &str = "fl1";
const MAX_TICKET_LEN: usize = 2048;

/// What an exchange code is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeGrant {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    /// The app's `S256` challenge from the start.
    pub code_challenge: String,
    pub expires_at: Timestamp,
}

/// What a link ticket names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTicket {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub redirect_to: String,
    pub expires_at: Timestamp,
    /// Makes every ticket unique, for its spent mark.
    pub id: Uuid,
}

/// Exchange codes and link tickets, over the cache and the server key.
#[derive(Clone)]
pub struct FlowCodes {
    cache: Arc<dyn Cache>,
    clock: Clock,
    key: Arc<Vec<u8>>,
}

impl FlowCodes {
    pub fn new(cache: Arc<dyn Cache>, clock: Clock, key: Arc<Vec<u8>>) -> Self {
        Self { cache, clock, key }
    }

    fn digest(&self, label: &str, value: &str) -> String {
        hmac_sha256_hex(&self.key, format!("{label}\0{value}").as_bytes())
    }

    /// Stores `grant` (its expiry set here) and returns its code.
    pub async fn issue_exchange(&self, mut grant: ExchangeGrant) -> AppResult<Secret> {
        let code = random_token();
        grant.expires_at = self.clock.now().saturating_add(EXCHANGE_TTL.as_secs() as i64);
        let bytes = serde_json::to_vec(&grant).map_err(AppError::internal)?;
        let key = CacheKey::federation_code(&self.digest("federation-code", &code));
        self.cache.set(&key, &bytes, EXCHANGE_TTL).await?;
        Ok(Secret::new(code))
    }

    /// Redeems a code with the verifier of its challenge: the grant once,
    /// `None` for anything else (unknown, spent, expired, wrong verifier:
    /// the code is spent by the attempt either way, so a wrong verifier
    /// cannot be retried).
    pub async fn redeem_exchange(&self, code: &str, verifier: &str) -> AppResult<Option<ExchangeGrant>> {
        if code.is_empty() || code.len() > 128 {
            return Ok(None);
        }
        let key = CacheKey::federation_code(&self.digest("federation-code", code));
        let Some(bytes) = self.cache.take(&key).await? else {
            return Ok(None);
        };
        let Ok(grant) = serde_json::from_slice::<ExchangeGrant>(&bytes) else {
            return Ok(None);
        };
        let live = grant.expires_at > self.clock.now();
        Ok((live && pkce_s256_matches(&grant.code_challenge, verifier)).then_some(grant))
    }

    /// A signed link ticket (its expiry and id set here).
    pub fn issue_ticket(&self, tenant_id: Uuid, user_id: Uuid, provider: &str, redirect_to: &str) -> String {
        let ticket = LinkTicket {
            tenant_id,
            user_id,
            provider: provider.to_owned(),
            redirect_to: redirect_to.to_owned(),
            expires_at: self.clock.now().saturating_add(TICKET_TTL.as_secs() as i64),
            id: Uuid::new_v4(),
        };
        let payload = serde_json::to_vec(&ticket).unwrap_or_default();
        format!(
            "{TICKET_VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(self.ticket_mac(&payload))
        )
    }

    fn ticket_mac(&self, payload: &[u8]) -> [u8; 32] {
        let mut message = b"federation-link-ticket\0".to_vec();
        message.extend_from_slice(payload);
        hmac_sha256(&self.key, &message)
    }

    /// Spends a link ticket: what it names, once, before it expires.
    pub async fn spend_ticket(&self, value: &str) -> AppResult<Option<LinkTicket>> {
        let Some(ticket) = self.open_ticket(value) else {
            return Ok(None);
        };
        let key = CacheKey::federation_ticket_spent(&self.digest("federation-ticket", &ticket.id.to_string()));
        let fresh = self.cache.set_if_absent(&key, b"1", TICKET_TTL).await?;
        Ok(fresh.then_some(ticket))
    }

    fn open_ticket(&self, value: &str) -> Option<LinkTicket> {
        if value.len() > MAX_TICKET_LEN {
            return None;
        }
        let mut parts = value.split('.');
        let (Some(TICKET_VERSION), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !constant_time_eq(&mac, &self.ticket_mac(&payload)) {
            return None;
        }
        let ticket: LinkTicket = serde_json::from_slice(&payload).ok()?;
        (ticket.expires_at > self.clock.now()).then_some(ticket)
    }

    /// Marks an upstream sign-in's `state` as finished; `false` when it
    /// was already (a replayed callback).
    pub async fn finish_state(&self, state: &str) -> AppResult<bool> {
        let key = CacheKey::federation_state_spent(&self.digest("federation-state", state));
        let ttl = Duration::from_secs(super::flow::FLOW_TTL_SECS as u64);
        Ok(self.cache.set_if_absent(&key, b"1", ttl).await?)
    }
}
