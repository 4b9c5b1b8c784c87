//! Device tokens, after OWASP's "Slow Down Online Guessing Attacks with
//! Device Cookies": a successful password sign-in hands the client a signed
//! token naming the device, the tenant and the user; a later sign-in that
//! presents it for the same account is judged by that device's own small
//! failure budget (`rate_limit.login_failures_per_device`) instead of the
//! account's, so an attacker who spends the account's budget from a botnet
//! locks out only the devices that never signed in, not the owner's.
//!
//! A token is `fd1.<payload>.<mac>`: base64url of `id.tenant.user.expiry`
//! and of its HMAC-SHA256 under the server key (domain-separated from the
//! other uses of that key). Nothing is stored: the MAC proves forge issued
//! it, the expiry bounds it, and a stolen one gives only that device's few
//! guesses. Browsers get it as the `forge_device` cookie, API clients as
//! `device_token` in the token response; it comes back as that cookie, the
//! `X-Forge-Device` header or a `device_token` field.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::tokens::{constant_time_eq, hmac_sha256};

const VERSION: &str = "fd1";
/// The cookie browsers keep it in.
pub const COOKIE: &str = "forge_device";
/// Longer input is not a token; refused before any decoding.
const MAX_LEN: usize = 512;

/// Device tokens, signed with the server key and timed by the clock.
#[derive(Clone)]
pub struct Devices {
    clock: Clock,
    refresh_key: Arc<Vec<u8>>,
    device_token_ttl: Duration,
}

impl Devices {
    pub fn new(clock: Clock, refresh_key: Arc<Vec<u8>>, device_token_ttl: Duration) -> Self {
        Self {
            clock,
            refresh_key,
            device_token_ttl,
        }
    }

    fn mac(&self, payload: &[u8]) -> [u8; 32] {
        let mut message = b"device-token\0".to_vec();
        message.extend_from_slice(payload);
        hmac_sha256(&self.refresh_key, &message)
    }

    /// A fresh device token for `user_id` of `tenant_id`.
    pub fn issue(&self, tenant_id: Uuid, user_id: Uuid) -> String {
        let expires = self.clock.now() + self.device_token_ttl.as_secs() as i64;
        let payload = format!("{}.{tenant_id}.{user_id}.{expires}", Uuid::new_v4());
        format!(
            "{VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()))
        )
    }

    /// The device id of `token` when forge issued it for exactly this account
    /// and it has not expired; `None` for anything else.
    pub fn verify(&self, token: &str, tenant_id: Uuid, user_id: Uuid) -> Option<Uuid> {
        if token.len() > MAX_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (Some(VERSION), Some(payload), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if !constant_time_eq(&tag, &self.mac(&payload)) {
            return None;
        }
        let payload = std::str::from_utf8(&payload).ok()?;
        let mut fields = payload.split('.');
        let id = Uuid::parse_str(fields.next()?).ok()?;
        let tenant = Uuid::parse_str(fields.next()?).ok()?;
        let user = Uuid::parse_str(fields.next()?).ok()?;
        let expires: i64 = fields.next()?.parse().ok()?;
        (fields.next().is_none() && tenant == tenant_id && user == user_id && expires > self.clock.now()).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    #[test]
    fn a_token_names_one_account_and_expires() {
        let clock = test_ports::clock();
        let devices = Devices::new(
            clock.clone(),
            Arc::new(b"server key".to_vec()),
            Duration::from_secs(100),
        );
        let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
        let token = devices.issue(tenant, user);
        assert!(devices.verify(&token, tenant, user).is_some());
        assert!(devices.verify(&token, tenant, Uuid::new_v4()).is_none());
        assert!(devices.verify(&token, Uuid::new_v4(), user).is_none());
        let other_key = Devices::new(
            clock.clone(),
            Arc::new(b"another key".to_vec()),
            Duration::from_secs(100),
        );
        assert!(other_key.verify(&token, tenant, user).is_none());
        clock.advance(100);
        assert!(devices.verify(&token, tenant, user).is_none());
    }
}
