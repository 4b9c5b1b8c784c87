//! Second-step challenges: the opaque, short-lived, single-use tokens a
//! sign-in hands out when its first factor succeeded but it may not end in
//! tokens yet (API.md, "Second factors" and "Tenant settings"):
//!
//! - an `mfa_token` ([`ChallengeKind::SecondFactor`]): the user has an
//!   active factor; `POST /v1/auth/mfa/verify` completes the sign-in with it;
//! - an `enrollment_token` ([`ChallengeKind::Enrollment`]): the tenant's
//!   policy requires a factor the user does not have yet; only the factor
//!   enrolment calls accept it;
//! - the admin site's own kinds ([`ChallengeKind::SiteSecondFactor`],
//!   [`ChallengeKind::SiteEnrollment`]): the hidden field of its second step
//!   and of its first-factor enrolment, never accepted by the API.
//!
//! A token is 256 bits from the OS CSPRNG. The cache keeps only an HMAC of
//! it under the server key (so a cache dump yields no usable token), for
//! [`CHALLENGE_TTL`], under keys that name the kind: one kind is never
//! accepted as the other. What it is bound to (tenant, user, the first
//! factor's [`Assurance`], the request's address and user agent for the
//! session it will open) is stored beside it and read back only by a
//! holder of the token.
//!
//! Single use and the wrong-attempt budget are one atomic cache operation
//! each, on every adapter ([`Cache::try_code`], a Lua script on Redis): the
//! token is kept as a "code" whose right answer is a fixed marker, so
//! [`Challenges::consume`] presents the marker (exactly one of any number
//! of concurrent consumers wins) and [`Challenges::fail`] presents a wrong
//! one (counted; the [`MAX_WRONG_ATTEMPTS`]-th burns the challenge, and a
//! new sign-in is needed). Expiry is the cache's TTL and, as well, an
//! expiry time in the stored data checked against the application clock.
//!
//! Security state, not a rate-limit counter: only a first factor that
//! succeeded creates one, so an attacker cannot mint entries at will.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RequestMeta;
use crate::cache::{Cache, CacheKey, CodeCheck};
use crate::clock::Clock;
use crate::crypto::tokens::{hmac_sha256_hex, random_token};
use crate::domain::{Assurance, Timestamp};
use crate::error::{AppError, AppResult};
use crate::secret::Secret;

/// How long a challenge lives (API.md: five minutes).
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// Wrong second-factor attempts a challenge survives: the fifth burns it.
pub const MAX_WRONG_ATTEMPTS: u32 = 5;

/// The answer [`Challenges::consume`] presents to the challenge's "code";
/// the token itself is what makes the key, so this needs no secrecy.
const LIVE: &[u8] = b"live";
/// What [`Challenges::fail`] presents: never equal to [`LIVE`].
const WRONG: &[u8] = b"wrong";

/// What a challenge is for; a token of one kind is unknown as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeKind {
    /// `mfa_token`: completes a sign-in with a second factor.
    #[serde(rename = "challenge")]
    SecondFactor,
    /// `enrollment_token`: a bearer for the factor enrolment calls only.
    #[serde(rename = "enroll")]
    Enrollment,
    /// The admin site's second step: its own kind, so a token from the
    /// site's form is unknown to `POST /v1/auth/mfa/verify` and the other
    /// way round.
    #[serde(rename = "site-challenge")]
    SiteSecondFactor,
    /// The admin site's enrolment step (an administrator the tenant's
    /// policy covers signs in without a factor): its own kind, because an
    /// API `enrollment_token` ends in API tokens and this one in a site
    /// session. Neither may stand in for the other: the API's is handed to
    /// any client of any user the policy covers, with no site CSRF cookie
    /// bound to it, and the site's hidden field must not become a bearer for
    /// the API's enrolment calls.
    #[serde(rename = "site-enroll")]
    SiteEnrollment,
    /// The hosted pages' second step (`/mfa`): their own kind, for the
    /// admin site's reasons (the hidden field ends in an SSO session, never
    /// in API tokens, and an API `mfa_token` is no good there).
    #[serde(rename = "sso-challenge")]
    HostedSecondFactor,
    /// The hosted pages' first-factor enrolment step, when the tenant's
    /// policy requires a factor the user does not have.
    #[serde(rename = "sso-enroll")]
    HostedEnrollment,
}

impl ChallengeKind {
    /// The tag in cache keys and in the keyed hash of the token.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::SecondFactor => "challenge",
            ChallengeKind::Enrollment => "enroll",
            ChallengeKind::SiteSecondFactor => "site-challenge",
            ChallengeKind::SiteEnrollment => "site-enroll",
            ChallengeKind::HostedSecondFactor => "sso-challenge",
            ChallengeKind::HostedEnrollment => "sso-enroll",
        }
    }
}

/// What a live challenge is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub kind: ChallengeKind,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// What the first factor proved; the session the challenge ends in
    /// starts from it (`first_factor.stepped_up(..)` after a second factor).
    pub first_factor: Assurance,
    /// The address and user agent of the sign-in, for the session it opens.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub expires_at: Timestamp,
}

impl Challenge {
    /// The sign-in's request, to open the session with: the client that
    /// started it, and the device token of `completing`, the request that
    /// completes it (the challenge keeps none: it belongs to the client).
    pub fn meta(&self, completing: &RequestMeta) -> RequestMeta {
        RequestMeta {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            device_token: completing.device_token.clone(),
        }
    }
}

/// What a wrong second factor did to the challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrongAttempt {
    /// Counted; the challenge still lives.
    Counted,
    /// The challenge is gone: this attempt was the last one allowed, or it
    /// was spent, expired or burned already. The user signs in again.
    Burned,
}

/// Second-step challenges over the cache, keyed under the server key.
#[derive(Clone)]
pub struct Challenges {
    cache: Arc<dyn Cache>,
    clock: Clock,
    key: Arc<Vec<u8>>,
    ttl: Duration,
}

impl Challenges {
    pub fn new(cache: Arc<dyn Cache>, clock: Clock, key: Arc<Vec<u8>>) -> Self {
        Self::with_ttl(cache, clock, key, CHALLENGE_TTL)
    }

    /// With another lifetime (tests of the cache's own expiry).
    pub fn with_ttl(cache: Arc<dyn Cache>, clock: Clock, key: Arc<Vec<u8>>, ttl: Duration) -> Self {
        Self { cache, clock, key, ttl }
    }

    /// The cache keys of a token: its code and its data.
    fn keys(&self, kind: ChallengeKind, token: &str) -> (CacheKey, CacheKey) {
        let message = format!("mfa-token\0{}\0{token}", kind.as_str());
        let digest = hmac_sha256_hex(&self.key, message.as_bytes());
        (
            CacheKey::challenge(kind.as_str(), &digest),
            CacheKey::challenge_data(kind.as_str(), &digest),
        )
    }

    /// Issues a challenge for `user_id` of `tenant_id` after a first factor
    /// that proved `first_factor`, from the request `meta`. Returns the
    /// token, shown once to the client.
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), tenant_id = %tenant_id, user_id = %user_id))]
    pub async fn issue(
        &self,
        kind: ChallengeKind,
        tenant_id: Uuid,
        user_id: Uuid,
        first_factor: Assurance,
        meta: &RequestMeta,
    ) -> AppResult<Secret> {
        let token = random_token();
        let (code, data) = self.keys(kind, &token);
        let challenge = Challenge {
            kind,
            tenant_id,
            user_id,
            first_factor,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            expires_at: self.clock.now().saturating_add(self.ttl.as_secs() as i64),
        };
        let bytes = serde_json::to_vec(&challenge).map_err(AppError::internal)?;
        // The data first: a code whose data is missing is never usable.
        self.cache.set(&data, &bytes, self.ttl).await?;
        self.cache.put_code(&code, LIVE, self.ttl).await?;
        Ok(Secret::new(token))
    }

    /// Reads a live challenge without spending it (to learn whose factors
    /// to check); `None` for a token that is malformed, unknown, of another
    /// kind or tenant, spent, burned or expired.
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), tenant_id = %tenant_id))]
    pub async fn open(&self, kind: ChallengeKind, tenant_id: Uuid, token: &str) -> AppResult<Option<Challenge>> {
        if !plausible_token(token) {
            return Ok(None);
        }
        let (_, data) = self.keys(kind, token);
        self.read(kind, tenant_id, &data).await
    }

    async fn read(&self, kind: ChallengeKind, tenant_id: Uuid, data: &CacheKey) -> AppResult<Option<Challenge>> {
        let Some(bytes) = self.cache.get(data).await? else {
            return Ok(None);
        };
        // Written by us a moment ago: unreadable data is a fault, not "no".
        let challenge: Challenge = serde_json::from_slice(&bytes).map_err(AppError::internal)?;
        let live = challenge.kind == kind && challenge.expires_at > self.clock.now();
        Ok((live && challenge.tenant_id == tenant_id).then_some(challenge))
    }

    /// Spends a live challenge once its second factor (or first enrolment)
    /// succeeded: exactly one caller gets `Some`, however many present the
    /// token at once; every later one gets `None`, as do the cases of
    /// [`Self::open`].
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), tenant_id = %tenant_id))]
    pub async fn consume(&self, kind: ChallengeKind, tenant_id: Uuid, token: &str) -> AppResult<Option<Challenge>> {
        if !plausible_token(token) {
            return Ok(None);
        }
        let (code, data) = self.keys(kind, token);
        let Some(challenge) = self.read(kind, tenant_id, &data).await? else {
            return Ok(None);
        };
        match self.cache.try_code(&code, LIVE, MAX_WRONG_ATTEMPTS, self.ttl).await? {
            CodeCheck::Valid => {
                self.cache.delete(&data).await?;
                Ok(Some(challenge))
            }
            CodeCheck::Invalid | CodeCheck::Burned => Ok(None),
        }
    }

    /// Counts a wrong second factor against the challenge; the
    /// [`MAX_WRONG_ATTEMPTS`]-th burns it (concurrent wrong attempts never
    /// get more between them).
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), tenant_id = %tenant_id))]
    pub async fn fail(&self, kind: ChallengeKind, tenant_id: Uuid, token: &str) -> AppResult<WrongAttempt> {
        if !plausible_token(token) {
            return Ok(WrongAttempt::Burned);
        }
        let (code, data) = self.keys(kind, token);
        if self.read(kind, tenant_id, &data).await?.is_none() {
            return Ok(WrongAttempt::Burned);
        }
        match self.cache.try_code(&code, WRONG, MAX_WRONG_ATTEMPTS, self.ttl).await? {
            CodeCheck::Invalid => Ok(WrongAttempt::Counted),
            CodeCheck::Burned | CodeCheck::Valid => {
                self.cache.delete(&data).await?;
                Ok(WrongAttempt::Burned)
            }
        }
    }
}

/// A token is base64url of 32 bytes; anything else is refused before it
/// costs a cache round trip.
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    const TENANT: Uuid = Uuid::from_u128(1);
    const USER: Uuid = Uuid::from_u128(2);

    fn challenges(clock: &Clock) -> Challenges {
        Challenges::new(test_ports::cache(), clock.clone(), Arc::new(b"server key".to_vec()))
    }

    fn meta() -> RequestMeta {
        RequestMeta {
            ip: Some("192.0.2.1".into()),
            user_agent: Some("test agent".into()),
            device_token: Some("not kept".into()),
        }
    }

    async fn opens(c: &Challenges, kind: ChallengeKind, tenant: Uuid, token: &str) -> bool {
        c.open(kind, tenant, token).await.unwrap().is_some()
    }

    async fn consumes(c: &Challenges, kind: ChallengeKind, tenant: Uuid, token: &str) -> bool {
        c.consume(kind, tenant, token).await.unwrap().is_some()
    }

    async fn issue(c: &Challenges, kind: ChallengeKind) -> String {
        let token = c
            .issue(kind, TENANT, USER, Assurance::password(), &meta())
            .await
            .unwrap();
        token.expose().to_string()
    }

    #[tokio::test]
    async fn a_challenge_is_bound_and_spent_once() {
        let clock = test_ports::clock();
        let c = challenges(&clock);
        let token = issue(&c, ChallengeKind::SecondFactor).await;
        assert_eq!(token.len(), 43, "256 bits, base64url");

        let open = c
            .open(ChallengeKind::SecondFactor, TENANT, &token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((open.tenant_id, open.user_id), (TENANT, USER));
        assert_eq!(open.first_factor.amr_names(), ["pwd"]);
        let later = RequestMeta {
            device_token: Some("the completing request's".into()),
            ..RequestMeta::default()
        };
        assert_eq!(open.meta(&later).ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(open.meta(&later).user_agent.as_deref(), Some("test agent"));
        assert_eq!(
            open.meta(&later).device_token.as_deref(),
            Some("the completing request's"),
            "the first step's token is not kept"
        );
        assert_eq!(open.expires_at, test_ports::START + 300);

        assert!(
            !opens(&c, ChallengeKind::SecondFactor, Uuid::from_u128(9), &token).await,
            "another tenant"
        );
        assert!(
            !consumes(&c, ChallengeKind::Enrollment, TENANT, &token).await,
            "another kind"
        );
        assert!(!consumes(&c, ChallengeKind::SecondFactor, TENANT, "short").await);

        let spent = c.consume(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap();
        assert_eq!(spent, Some(open));
        assert!(!consumes(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
        assert!(!opens(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
        assert_eq!(
            c.fail(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap(),
            WrongAttempt::Burned
        );
    }

    #[tokio::test]
    async fn an_enrollment_token_is_no_mfa_token() {
        let clock = test_ports::clock();
        let c = challenges(&clock);
        let token = issue(&c, ChallengeKind::Enrollment).await;
        assert!(!opens(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
        assert_eq!(
            c.fail(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap(),
            WrongAttempt::Burned,
            "unknown as the other kind, and nothing counted"
        );
        assert!(consumes(&c, ChallengeKind::Enrollment, TENANT, &token).await);
    }

    #[tokio::test]
    async fn the_site_s_enrolment_challenge_and_the_api_s_enrollment_token_do_not_mix() {
        let clock = test_ports::clock();
        let c = challenges(&clock);
        let site = issue(&c, ChallengeKind::SiteEnrollment).await;
        let api = issue(&c, ChallengeKind::Enrollment).await;
        assert!(!opens(&c, ChallengeKind::Enrollment, TENANT, &site).await);
        assert!(!opens(&c, ChallengeKind::SiteEnrollment, TENANT, &api).await);
        assert!(!consumes(&c, ChallengeKind::SiteSecondFactor, TENANT, &site).await);
        assert!(consumes(&c, ChallengeKind::SiteEnrollment, TENANT, &site).await);
        assert!(consumes(&c, ChallengeKind::Enrollment, TENANT, &api).await);
    }

    #[tokio::test]
    async fn the_fifth_wrong_attempt_burns_it() {
        let clock = test_ports::clock();
        let c = challenges(&clock);
        let token = issue(&c, ChallengeKind::SecondFactor).await;
        for _ in 1..MAX_WRONG_ATTEMPTS {
            assert_eq!(
                c.fail(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap(),
                WrongAttempt::Counted
            );
        }
        assert_eq!(
            c.fail(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap(),
            WrongAttempt::Burned
        );
        assert!(!opens(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
        assert!(
            !consumes(&c, ChallengeKind::SecondFactor, TENANT, &token).await,
            "a right factor after the burn is too late"
        );
    }

    #[tokio::test]
    async fn it_expires_by_the_application_clock() {
        let clock = test_ports::clock();
        let c = challenges(&clock);
        let token = issue(&c, ChallengeKind::SecondFactor).await;
        clock.advance(299);
        assert!(opens(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
        clock.advance(1);
        assert!(!opens(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
        assert!(!consumes(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
    }

    #[tokio::test]
    async fn it_expires_by_the_cache_ttl() {
        let clock = test_ports::clock();
        let c = Challenges::with_ttl(
            test_ports::cache(),
            clock.clone(),
            Arc::new(b"k".to_vec()),
            Duration::from_millis(50),
        );
        let token = issue(&c, ChallengeKind::SecondFactor).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!consumes(&c, ChallengeKind::SecondFactor, TENANT, &token).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_consumers_get_it_once_and_concurrent_failures_five_tries() {
        let clock = test_ports::clock();
        let c = Arc::new(challenges(&clock));
        let token = issue(&c, ChallengeKind::SecondFactor).await;
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (c, token) = (c.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                c.consume(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(won, 1);

        let token = issue(&c, ChallengeKind::SecondFactor).await;
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (c, token) = (c.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                c.fail(ChallengeKind::SecondFactor, TENANT, &token).await.unwrap()
            }));
        }
        let mut counted = 0;
        for t in tasks {
            counted += u32::from(t.await.unwrap() == WrongAttempt::Counted);
        }
        assert_eq!(counted, MAX_WRONG_ATTEMPTS - 1);
    }

    #[test]
    fn tokens_are_keyed_by_kind_and_never_stored() {
        let c = challenges(&test_ports::clock());
        let token = random_token();
        let (code, data) = c.keys(ChallengeKind::SecondFactor, &token);
        let (other, _) = c.keys(ChallengeKind::Enrollment, &token);
        assert!(code.as_str().starts_with("mfa:challenge:"));
        assert!(other.as_str().starts_with("mfa:enroll:"));
        assert_eq!(data.as_str(), format!("{code}:data"));
        assert_ne!(code.as_str()[14..], other.as_str()[11..], "the hash names the kind too");
        assert!(!code.as_str().contains(&token));
    }
}
