//! The state of one upstream sign-in while the browser is at the provider,
//! kept by the browser itself in a signed cookie.
//!
//! Why a cookie and not the cache: the flow starts on an unauthenticated
//! request, and anything forge stored per start would let an attacker fill
//! its memory with starts (the security-state cache is deliberately
//! unbounded, see `cache::moka`). The cookie costs forge nothing, and it is
//! also what binds the callback to the browser that started: a callback
//! whose `state` is not the one in this browser's cookie is refused, so an
//! attacker cannot finish their own sign-in in a victim's browser (login
//! CSRF) or link their upstream account to the victim's.
//!
//! The cookie is `ff1.<payload>.<mac>`: base64url of the JSON [`Flow`] and
//! of its HMAC-SHA256 under the server key (domain-separated). It carries
//! the upstream PKCE verifier and nonce; integrity is what matters, since
//! the only party that sees them is the browser of the person signing in.
//! Expiry is inside the MAC. Single use is enforced at the callback, after
//! the provider proved the person (see `Federation::callback`), so the
//! mark it leaves costs one real upstream sign-in each.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::tokens::{constant_time_eq, hmac_sha256};
use crate::domain::Timestamp;
use crate::domain::providers::ProviderId;

const VERSION: &str = "ff1";
/// Longer cookie values are not ours; refused before decoding.
const MAX_LEN: usize = 4096;
/// How long a browser may stay at the provider.
pub const FLOW_TTL_SECS: i64 = 600;

/// What the sign-in is for, and where its answer goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Purpose {
    /// The API flow: a single-use code for `POST /v1/auth/exchange`, bound
    /// to the app's PKCE challenge, sent to `redirect_to`.
    Api {
        redirect_to: String,
        code_challenge: String,
    },
    /// The hosted pages: an SSO session, then `return_to` (a local path).
    Hosted { return_to: String },
    /// Linking the upstream identity to a signed-in user; the answer goes
    /// to `redirect_to` (an allowed URL, or a local path for the account
    /// page).
    Link { user_id: Uuid, redirect_to: String },
}

/// One upstream sign-in in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub tenant_id: Uuid,
    pub provider: String,
    /// The `state` sent to the provider; the callback must bring it back.
    pub state: String,
    pub nonce: String,
    /// The upstream PKCE verifier (forge's own, not the app's).
    pub verifier: String,
    pub purpose: Purpose,
    pub expires_at: Timestamp,
}

impl Flow {
    pub fn provider_id(&self) -> Option<ProviderId> {
        ProviderId::parse(&self.provider).ok()
    }
}

/// Signs and opens flow cookies with the server key.
#[derive(Clone)]
pub struct FlowSeal {
    key: Arc<Vec<u8>>,
}

impl FlowSeal {
    pub fn new(key: Arc<Vec<u8>>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &[u8]) -> [u8; 32] {
        let mut message = b"federation-flow\0".to_vec();
        message.extend_from_slice(payload);
        hmac_sha256(&self.key, &message)
    }

    /// The cookie value of `flow`.
    pub fn seal(&self, flow: &Flow) -> String {
        // Serialising a struct of strings cannot fail; an empty payload
        // would only fail to open later.
        let payload = serde_json::to_vec(flow).unwrap_or_default();
        format!(
            "{VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(self.mac(&payload))
        )
    }

    /// The flow in a cookie value, if forge signed it, it has not expired
    /// at `now`, and its `state` is `state` (compared in constant time).
    pub fn open(&self, value: &str, state: &str, now: Timestamp) -> Option<Flow> {
        if value.len() > MAX_LEN {
            return None;
        }
        let mut parts = value.split('.');
        let (Some(VERSION), Some(payload), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !constant_time_eq(&mac, &self.mac(&payload)) {
            return None;
        }
        let flow: Flow = serde_json::from_slice(&payload).ok()?;
        (flow.expires_at > now && constant_time_eq(flow.state.as_bytes(), state.as_bytes())).then_some(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            tenant_id: Uuid::nil(),
            provider: "github".into(),
            state: "s".repeat(43),
            nonce: "n".into(),
            verifier: "v".into(),
            purpose: Purpose::Hosted {
                return_to: "/account".into(),
            },
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_sealed_flow_opens_only_with_its_state_before_expiry() {
        let seal = FlowSeal::new(Arc::new(vec![7; 32]));
        let cookie = seal.seal(&flow());
        assert_eq!(seal.open(&cookie, &"s".repeat(43), 999), Some(flow()));
        assert_eq!(seal.open(&cookie, &"t".repeat(43), 999), None, "another state");
        assert_eq!(seal.open(&cookie, &"s".repeat(43), 1_000), None, "expired");
        let other = FlowSeal::new(Arc::new(vec![8; 32]));
        assert_eq!(other.open(&cookie, &"s".repeat(43), 999), None, "another key");
    }

    #[test]
    fn a_tampered_flow_does_not_open() {
        let seal = FlowSeal::new(Arc::new(vec![7; 32]));
        let cookie = seal.seal(&flow());
        let mut forged = flow();
        forged.purpose = Purpose::Link {
            user_id: Uuid::max(),
            redirect_to: "/account".into(),
        };
        let (_, mac) = cookie.rsplit_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(seal.open(&format!("ff1.{payload}.{mac}"), &"s".repeat(43), 1), None);
        assert_eq!(seal.open("ff1.x.y", "x", 1), None);
        assert_eq!(seal.open(&"a".repeat(5000), "x", 1), None);
    }
}
