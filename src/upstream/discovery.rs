//! OpenID Connect discovery and signing keys, cached per issuer in process.
//!
//! Issuers come only from administrators' registrations, but the cache is
//! bounded anyway ([`MAX_ISSUERS`], the least recently fetched goes). An
//! entry is used for [`REFRESH_AFTER_SECS`]; after that the next sign-in
//! fetches again (keeping the old copy when the provider is down), and the
//! background refresher (`Upstream::spawn_refresher`) re-fetches entries a
//! little before, with exponential backoff on failure. Key rotation is
//! followed through the `kid`: a token naming a key the cached set lacks
//! triggers one JWKS refetch, at most every [`KEY_REFETCH_INTERVAL_SECS`]
//! per issuer, so a forged `kid` cannot make forge hammer the provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::id_token::IssuerRule;
use crate::domain::providers::{ProviderKind, endpoint_ok};

pub const MAX_ISSUERS: usize = 256;
pub const REFRESH_AFTER_SECS: i64 = 3600;
/// The refresher re-fetches this long before an entry goes stale.
pub const REFRESH_AHEAD_SECS: i64 = 300;
pub const KEY_REFETCH_INTERVAL_SECS: i64 = 30;
/// The most keys read from one JWKS.
pub const MAX_KEYS: usize = 50;
/// Backoff of the refresher after failures: 30 s doubling up to an hour.
pub const BACKOFF_BASE_SECS: i64 = 30;
pub const BACKOFF_MAX_SECS: i64 = 3600;

/// The parts of a discovery document forge uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Url,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

impl Metadata {
    /// Every endpoint is one forge may call (https, or loopback http).
    pub fn endpoints_ok(&self) -> bool {
        endpoint_ok(&self.authorization_endpoint)
            && endpoint_ok(&self.token_endpoint)
            && endpoint_ok(&self.jwks_uri)
            && self.userinfo_endpoint.as_ref().is_none_or(endpoint_ok)
    }
}

/// An issuer's metadata, ID-token issuer rule and keys.
#[derive(Clone, Debug)]
pub struct IssuerKeys {
    pub metadata: Arc<Metadata>,
    pub rule: IssuerRule,
    pub keys: Arc<Vec<Jwk>>,
}

/// The discovery URL of an issuer (OpenID Connect Discovery 1.0, section 4).
pub fn discovery_url(issuer: &Url) -> Option<Url> {
    let base = issuer.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration")).ok()
}

/// How ID tokens' `iss` is checked, given the configured issuer and the one
/// the discovery document states; `None` when they disagree (the document
/// is not this issuer's).
pub fn issuer_rule(kind: ProviderKind, configured: &Url, stated: &str) -> Option<IssuerRule> {
    let configured_str = configured.as_str();
    // `Url` adds a `/` to a bare origin; issuers are usually written without.
    let bare = (configured.path() == "/" && configured.query().is_none()).then(|| configured_str.trim_end_matches('/'));
    let same = stated == configured_str || bare == Some(stated);
    if kind == ProviderKind::Microsoft && stated.contains("{tenantid}") {
        // Multi-tenant endpoints (`common`, `organizations`, `consumers`)
        // state `https://login.microsoftonline.com/{tenantid}/v2.0`: it must
        // be the configured issuer with its tenant segment as placeholder.
        let tenant = configured.path_segments()?.next()?;
        if tenant.is_empty() || tenant.contains('{') {
            return None;
        }
        let filled = stated.replacen("{tenantid}", tenant, 1);
        return (filled == configured_str || bare == Some(filled.as_str()))
            .then(|| IssuerRule::MicrosoftTemplate(stated.to_owned()));
    }
    if !same {
        return None;
    }
    Some(if kind == ProviderKind::Google {
        IssuerRule::Google(stated.to_owned())
    } else {
        IssuerRule::Exact(stated.to_owned())
    })
}

/// The usable keys of a JWKS document: keys of unknown types or with bad
/// parameters are skipped rather than failing the whole set.
pub fn parse_jwks(doc: &Value) -> Option<Vec<Jwk>> {
    let keys = doc.get("keys")?.as_array()?;
    Some(
        keys.iter()
            .take(MAX_KEYS)
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect(),
    )
}

struct Entry {
    kind: ProviderKind,
    issuer: Url,
    current: IssuerKeys,
    fetched_at: i64,
    last_key_refetch: Option<i64>,
    failures: u32,
    retry_at: i64,
}

/// The per-issuer cache.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// An issuer the refresher should fetch again.
pub struct Due {
    pub kind: ProviderKind,
    pub issuer: Url,
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached copy and whether it is still fresh at `now`.
    pub fn get(&self, issuer: &Url, now: i64) -> Option<(IssuerKeys, bool)> {
        let entries = self.lock();
        let e = entries.get(issuer.as_str())?;
        Some((e.current.clone(), now - e.fetched_at < REFRESH_AFTER_SECS))
    }

    pub fn put(&self, kind: ProviderKind, issuer: &Url, keys: IssuerKeys, now: i64) {
        let mut entries = self.lock();
        if !entries.contains_key(issuer.as_str()) && entries.len() >= MAX_ISSUERS {
            let oldest = entries.iter().min_by_key(|(_, e)| e.fetched_at).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let last_key_refetch = entries.get(issuer.as_str()).and_then(|e| e.last_key_refetch);
        entries.insert(
            issuer.as_str().to_owned(),
            Entry {
                kind,
                issuer: issuer.clone(),
                current: keys,
                fetched_at: now,
                last_key_refetch,
                failures: 0,
                retry_at: now,
            },
        );
    }

    /// Claims the right to refetch the issuer's keys now: at most once per
    /// [`KEY_REFETCH_INTERVAL_SECS`].
    pub fn claim_key_refetch(&self, issuer: &Url, now: i64) -> bool {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(issuer.as_str()) else {
            return false;
        };
        if e.last_key_refetch.is_some_and(|t| now - t < KEY_REFETCH_INTERVAL_SECS) {
            return false;
        }
        e.last_key_refetch = Some(now);
        true
    }

    /// Replaces only the keys of an entry (after a `kid` refetch).
    pub fn put_keys(&self, issuer: &Url, keys: Arc<Vec<Jwk>>) -> Option<IssuerKeys> {
        let mut entries = self.lock();
        let e = entries.get_mut(issuer.as_str())?;
        e.current.keys = keys;
        Some(e.current.clone())
    }

    /// Entries that go stale within [`REFRESH_AHEAD_SECS`] and are not
    /// backing off.
    pub fn due(&self, now: i64) -> Vec<Due> {
        self.lock()
            .values()
            .filter(|e| now - e.fetched_at >= REFRESH_AFTER_SECS - REFRESH_AHEAD_SECS && now >= e.retry_at)
            .map(|e| Due {
                kind: e.kind,
                issuer: e.issuer.clone(),
            })
            .collect()
    }

    /// Records a failed background refresh: the old copy stays, the next
    /// attempt waits twice as long as the last (up to an hour).
    pub fn failed(&self, issuer: &Url, now: i64) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(issuer.as_str()) {
            e.failures = e.failures.saturating_add(1);
            e.retry_at = now + backoff(e.failures);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The wait after `failures` consecutive failures.
pub fn backoff(failures: u32) -> i64 {
    let exp = failures.saturating_sub(1).min(20);
    BACKOFF_BASE_SECS.saturating_mul(1 << exp).min(BACKOFF_MAX_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn discovery_url_appends_the_well_known_path() {
        assert_eq!(
            discovery_url(&url("https://accounts.google.com")).unwrap().as_str(),
            "https://accounts.google.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url(&url("https://login.microsoftonline.com/common/v2.0"))
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
        );
    }

    #[test]
    fn the_stated_issuer_must_be_the_configured_one() {
        let google = url("https://accounts.google.com");
        assert_eq!(
            issuer_rule(ProviderKind::Google, &google, "https://accounts.google.com"),
            Some(IssuerRule::Google("https://accounts.google.com".into()))
        );
        assert!(
            issuer_rule(
                ProviderKind::Oidc,
                &url("https://idp.example.com/realms/a"),
                "https://idp.example.com/realms/b"
            )
            .is_none()
        );
        assert!(
            issuer_rule(
                ProviderKind::Oidc,
                &url("https://idp.example.com"),
                "https://evil.example.com"
            )
            .is_none()
        );
    }

    #[test]
    fn microsoft_multi_tenant_template() {
        let common = url("https://login.microsoftonline.com/common/v2.0");
        let rule = issuer_rule(
            ProviderKind::Microsoft,
            &common,
            "https://login.microsoftonline.com/{tenantid}/v2.0",
        )
        .unwrap();
        let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
        assert!(rule.matches(&format!("https://login.microsoftonline.com/{tid}/v2.0"), Some(tid)));
        // The token's iss must be the template filled with its own tid.
        assert!(!rule.matches(
            &format!("https://login.microsoftonline.com/{tid}/v2.0"),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        ));
        assert!(!rule.matches(&format!("https://login.microsoftonline.com/{tid}/v2.0"), None));
        assert!(!rule.matches("https://login.microsoftonline.com/{tenantid}/v2.0", Some("{tenantid}")));
        assert!(!rule.matches("https://evil.example.com/x/v2.0", Some("x")));
        // A template on another host is not Microsoft's.
        assert!(
            issuer_rule(
                ProviderKind::Microsoft,
                &common,
                "https://evil.example.com/{tenantid}/v2.0"
            )
            .is_none()
        );
        // Only the Microsoft preset knows templates.
        assert!(
            issuer_rule(
                ProviderKind::Oidc,
                &common,
                "https://login.microsoftonline.com/{tenantid}/v2.0"
            )
            .is_none()
        );
        // A single tenant states its own issuer.
        let single = url(&format!("https://login.microsoftonline.com/{tid}/v2.0"));
        assert_eq!(
            issuer_rule(ProviderKind::Microsoft, &single, single.as_str()),
            Some(IssuerRule::Exact(single.as_str().to_owned()))
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), 30);
        assert_eq!(backoff(2), 60);
        assert_eq!(backoff(3), 120);
        assert_eq!(backoff(40), BACKOFF_MAX_SECS);
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "weird", "kid": "a"},
            {"kty": "EC", "crv": "P-256", "kid": "b",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].common.key_id.as_deref(), Some("b"));
        assert!(parse_jwks(&serde_json::json!({"nokeys": []})).is_none());
    }
}
