//! Every key forge puts in the cache, spelled in one place.
//!
//! With Redis the keys are shared by every instance and outlive a deploy,
//! so their layout is a contract between versions: an instance that spelled
//! `deny:s:{id}` differently would miss the revocations the others wrote.
//! The tests below pin each layout byte for byte; change one only with a
//! migration story. Keys carry no secret: an admin-site session is keyed by
//! a hash of its cookie token, never the token.

use std::fmt;
use std::ops::Deref;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::IdentifierKind;

/// A key of the security state (see [`super::Cache`]); it reads as the
/// `&str` the port takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// A revoked session: its access tokens fail until they would expire.
    pub fn deny_session(session_id: Uuid) -> Self {
        Self::prefixed_id("deny:s:", session_id)
    }

    /// A disabled or deleted user: all their access tokens fail.
    pub fn deny_user(user_id: Uuid) -> Self {
        Self::prefixed_id("deny:u:", user_id)
    }

    /// `prefix` and the hyphenated id, spelled as `format!` would: both deny
    /// keys are built on every token check, and the formatting machinery
    /// was most of what building them cost.
    fn prefixed_id(prefix: &str, id: Uuid) -> Self {
        let mut buf = Uuid::encode_buffer();
        let id = id.hyphenated().encode_lower(&mut buf);
        let mut key = String::with_capacity(prefix.len() + id.len());
        key.push_str(prefix);
        key.push_str(id);
        CacheKey(key)
    }

    /// The one live code of `purpose` (a short tag such as `otp`) for an
    /// identifier of a tenant.
    pub fn code(purpose: &str, tenant_id: Uuid, identifier: &str) -> Self {
        CacheKey(format!("code:{purpose}:{tenant_id}:{identifier}"))
    }

    /// The resend cooldown of an identifier, shared by every purpose.
    pub fn cooldown(tenant_id: Uuid, identifier: &str) -> Self {
        CacheKey(format!("cooldown:{tenant_id}:{identifier}"))
    }

    /// A user's email or phone change waiting for its code.
    pub fn pending_address(kind: IdentifierKind, tenant_id: Uuid, user_id: Uuid) -> Self {
        let kind = match kind {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
        };
        CacheKey(format!("pending:{kind}:{tenant_id}:{user_id}"))
    }

    /// An admin-site session, keyed by the SHA-256 of its cookie token so
    /// that reading the cache (a Redis dump, `MONITOR`) yields no cookie.
    pub fn site_session(token: &str) -> Self {
        Self::hashed("admin:session", token)
    }

    /// A hosted-pages (single sign-on) session, keyed like
    /// [`Self::site_session`] by the SHA-256 of its cookie token.
    pub fn sso_session(token: &str) -> Self {
        Self::hashed("sso:session", token)
    }

    fn hashed(prefix: &str, token: &str) -> Self {
        CacheKey(format!("{prefix}:{}", hex::encode(Sha256::digest(token.as_bytes()))))
    }

    /// A second-step challenge (`purpose` `challenge` for an `mfa_token`,
    /// `enroll` for an `enrollment_token`), keyed by the keyed hash of its
    /// token (`digest`, lower-case hex), never the token: its single use
    /// and its wrong attempts, as a code ([`super::Cache::try_code`]).
    pub fn challenge(purpose: &str, digest: &str) -> Self {
        CacheKey(format!("mfa:{purpose}:{digest}"))
    }

    /// An OAuth authorization code, keyed by the keyed hash of the code
    /// (`digest`, lower-case hex), never the code: what it is bound to,
    /// taken once ([`super::Cache::take`]).
    pub fn authorization_code(digest: &str) -> Self {
        CacheKey(format!("oauth:code:{digest}"))
    }

    /// A redeemed authorization code: the session its tokens opened, so a
    /// second use can revoke them (RFC 6749 section 4.1.2).
    pub fn authorization_code_spent(digest: &str) -> Self {
        CacheKey(format!("oauth:code:{digest}:spent"))
    }

    /// An upstream sign-in's exchange code, keyed by the keyed hash of the
    /// code (`digest`), never the code: what it is bound to, taken once.
    pub fn federation_code(digest: &str) -> Self {
        CacheKey(format!("fed:code:{digest}"))
    }

    /// A finished upstream sign-in's `state` (keyed hash): a replayed
    /// callback finds it.
    pub fn federation_state_spent(digest: &str) -> Self {
        CacheKey(format!("fed:state:{digest}"))
    }

    /// A spent link ticket (keyed hash of its id).
    pub fn federation_ticket_spent(digest: &str) -> Self {
        CacheKey(format!("fed:ticket:{digest}"))
    }

    /// What a second-step challenge is bound to (tenant, user, first
    /// factor, request), beside [`Self::challenge`].
    pub fn challenge_data(purpose: &str, digest: &str) -> Self {
        CacheKey(format!("mfa:{purpose}:{digest}:data"))
    }

    /// A WebAuthn ceremony waiting for the browser's answer, keyed by the
    /// SHA-256 of its request id (which the client holds, so a cache dump
    /// yields nothing to finish it with). `kind` (`reg`, `auth`, `disc`)
    /// keeps one kind of ceremony from being finished as another.
    pub fn ceremony(kind: &str, request_id: &str) -> Self {
        CacheKey(format!(
            "webauthn:{kind}:{}",
            hex::encode(Sha256::digest(request_id.as_bytes()))
        ))
    }

    /// One generation of a rate-limit budget's counters (see
    /// [`super::sketch`]); only the Redis adapter stores them under a key.
    pub fn rate_window(bucket: RateBucket, period_ms: u64, generation: u64) -> Self {
        CacheKey(format!("rl:{bucket}:{period_ms}:{generation}"))
    }

    /// The version of the rows instances copy (tenants, users' access),
    /// moved by every change to them (see [`super::epoch`]).
    pub fn directory_epoch() -> Self {
        CacheKey("epoch:directory".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for CacheKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rate-limit budget. The set is fixed in code, which keeps the number of
/// counter sketches (and Redis keys) bounded whatever clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateBucket {
    /// Sign-ins per client address.
    LoginIp,
    /// Failed sign-ins per account (or per name tried, without one).
    LoginFail,
    /// Failed sign-ins from a device the account trusts.
    LoginFailDevice,
    /// Wrong current passwords when reauthenticating, per account.
    ReauthFail,
    SignupIp,
    RefreshIp,
    OtpSendIp,
    /// Codes sent per identifier.
    OtpSendId,
    OtpVerifyIp,
    /// Recovery emails (verification, reset) per address.
    Recovery,
}

impl RateBucket {
    /// The name in Redis keys and in the keyed hash of each client key, so
    /// it never changes.
    pub const fn as_str(self) -> &'static str {
        match self {
            RateBucket::LoginIp => "login-ip",
            RateBucket::LoginFail => "login-fail",
            RateBucket::LoginFailDevice => "login-fail-device",
            RateBucket::ReauthFail => "reauth-fail",
            RateBucket::SignupIp => "signup-ip",
            RateBucket::RefreshIp => "refresh-ip",
            RateBucket::OtpSendIp => "otp-send-ip",
            RateBucket::OtpSendId => "otp-send-id",
            RateBucket::OtpVerifyIp => "otp-verify-ip",
            RateBucket::Recovery => "recovery",
        }
    }
}

impl fmt::Display for RateBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    const TENANT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);

    #[test]
    fn deny_keys_spell_any_id_as_format_would() {
        for _ in 0..64 {
            let id = Uuid::new_v4();
            assert_eq!(CacheKey::deny_session(id).as_str(), format!("deny:s:{id}"));
            assert_eq!(CacheKey::deny_user(id).as_str(), format!("deny:u:{id}"));
        }
    }

    /// The layouts other instances and earlier versions read and write.
    #[test]
    fn keys_are_spelled_as_every_instance_expects() {
        let cases = [
            (
                CacheKey::deny_session(ID),
                "deny:s:01900000-0000-7000-8000-000000000001",
            ),
            (CacheKey::deny_user(ID), "deny:u:01900000-0000-7000-8000-000000000001"),
            (
                CacheKey::code("otp", TENANT, "ann@example.com"),
                "code:otp:01900000-0000-7000-8000-000000000002:ann@example.com",
            ),
            (
                CacheKey::cooldown(TENANT, "+14155550100"),
                "cooldown:01900000-0000-7000-8000-000000000002:+14155550100",
            ),
            (
                CacheKey::pending_address(IdentifierKind::Email, TENANT, ID),
                "pending:email:01900000-0000-7000-8000-000000000002:01900000-0000-7000-8000-000000000001",
            ),
            (
                CacheKey::pending_address(IdentifierKind::Phone, TENANT, ID),
                "pending:phone:01900000-0000-7000-8000-000000000002:01900000-0000-7000-8000-000000000001",
            ),
            (
                // SHA-256 of "token".
                CacheKey::site_session("token"),
                "admin:session:3c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457465a40b0da4153e0",
            ),
            (
                CacheKey::sso_session("token"),
                "sso:session:3c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457465a40b0da4153e0",
            ),
            (CacheKey::challenge("challenge", "ab12"), "mfa:challenge:ab12"),
            (CacheKey::authorization_code("ab12"), "oauth:code:ab12"),
            (CacheKey::authorization_code_spent("ab12"), "oauth:code:ab12:spent"),
            (CacheKey::challenge_data("enroll", "ab12"), "mfa:enroll:ab12:data"),
            (
                // SHA-256 of "token".
                CacheKey::ceremony("reg", "token"),
                "webauthn:reg:3c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457465a40b0da4153e0",
            ),
            (
                CacheKey::rate_window(RateBucket::LoginFail, 60_000, 7),
                "rl:login-fail:60000:7",
            ),
            (CacheKey::directory_epoch(), "epoch:directory"),
        ];
        for (key, expected) in cases {
            assert_eq!(key.as_str(), expected);
            assert_eq!(&*key, expected);
            assert_eq!(key.to_string(), expected);
        }
    }

    #[test]
    fn bucket_names_are_the_ones_in_redis() {
        let names = [
            (RateBucket::LoginIp, "login-ip"),
            (RateBucket::LoginFail, "login-fail"),
            (RateBucket::LoginFailDevice, "login-fail-device"),
            (RateBucket::ReauthFail, "reauth-fail"),
            (RateBucket::SignupIp, "signup-ip"),
            (RateBucket::RefreshIp, "refresh-ip"),
            (RateBucket::OtpSendIp, "otp-send-ip"),
            (RateBucket::OtpSendId, "otp-send-id"),
            (RateBucket::OtpVerifyIp, "otp-verify-ip"),
            (RateBucket::Recovery, "recovery"),
        ];
        for (bucket, name) in names {
            assert_eq!(bucket.as_str(), name);
            assert_eq!(bucket.to_string(), name);
        }
    }
}
