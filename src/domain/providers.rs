//! Upstream identity providers as typed values: what a tenant registers to
//! let its users "sign in with" another provider, and where each kind's
//! endpoints are.
//!
//! Two generic kinds and five presets:
//! - [`ProviderKind::Oidc`]: any OpenID Connect provider, by its issuer
//!   (discovery, JWKS and ID-token validation).
//! - [`ProviderKind::Oauth2`]: a plain OAuth 2 provider, by its authorize,
//!   token and userinfo URLs plus a [`ClaimMap`] that says which userinfo
//!   fields hold the subject, the email, its verification and the name.
//! - Presets fill the endpoints in: GitHub (OAuth 2, the verified primary
//!   email from its emails API), Google, Microsoft (multi-tenant issuer
//!   rule), GitLab (OpenID Connect) and Apple (OpenID Connect, client secret
//!   as a signed JWT). A preset's endpoints may be overridden (GitHub
//!   Enterprise, self-managed GitLab, a single Microsoft tenant), which is
//!   also how the tests point a preset at a local stand-in.
//!
//! Invariants a [`ProviderSpec`] holds once [`ProviderSpec::validate`]
//! passed (and so every stored provider): the id is a slug; URLs are
//! absolute `https` (plain `http` only for the loopback interface), with no
//! user information or fragment; the kind has every endpoint it needs.

use std::fmt;

use url::{Host, Url};
use uuid::Uuid;

use super::Timestamp;

/// The longest provider id.
pub const MAX_ID_LEN: usize = 40;
/// The longest display name.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest URL a provider may declare.
pub const MAX_URL_LEN: usize = 2000;
/// At most this many scopes.
pub const MAX_SCOPES: usize = 30;

/// A provider's id within its tenant: lower-case letters, digits, `-` and
/// `_`, starting with a letter or digit (it appears in URLs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= MAX_ID_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be 1 to 40 lower-case letters, digits, '-' or '_', starting with a letter or digit")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which protocol and preset a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Oidc,
    Oauth2,
    Github,
    Google,
    Microsoft,
    Gitlab,
    Apple,
}

impl ProviderKind {
    pub const ALL: &'static [ProviderKind] = &[
        ProviderKind::Oidc,
        ProviderKind::Oauth2,
        ProviderKind::Github,
        ProviderKind::Google,
        ProviderKind::Microsoft,
        ProviderKind::Gitlab,
        ProviderKind::Apple,
    ];

    pub fn parse(s: &str) -> Result<Self, &'static str> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s.trim())
            .ok_or("must be oidc, oauth2, github, google, microsoft, gitlab or apple")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Oauth2 => "oauth2",
            ProviderKind::Github => "github",
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Gitlab => "gitlab",
            ProviderKind::Apple => "apple",
        }
    }

    /// Whether the kind signs in with OpenID Connect (an issuer, discovery
    /// and an ID token); the others (`oauth2`, `github`) read a userinfo
    /// endpoint instead.
    pub fn is_oidc(self) -> bool {
        !matches!(self, ProviderKind::Oauth2 | ProviderKind::Github)
    }

    /// The issuer a preset uses when none is given.
    pub fn default_issuer(self) -> Option<&'static str> {
        match self {
            ProviderKind::Google => Some("https://accounts.google.com"),
            // The multi-tenant endpoint: ID tokens name the user's own
            // directory as issuer (see `Provider::issuer_matches`).
            ProviderKind::Microsoft => Some("https://login.microsoftonline.com/common/v2.0"),
            ProviderKind::Gitlab => Some("https://gitlab.com"),
            ProviderKind::Apple => Some("https://appleid.apple.com"),
            ProviderKind::Oidc | ProviderKind::Oauth2 | ProviderKind::Github => None,
        }
    }

    /// The scopes a provider of this kind asks for when none are given.
    pub fn default_scopes(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Github => &["read:user", "user:email"],
            ProviderKind::Apple => &["openid", "email", "name"],
            ProviderKind::Oauth2 => &[],
            ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Microsoft | ProviderKind::Gitlab => {
                &["openid", "email", "profile"]
            }
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a userinfo document (plain OAuth 2 providers) keeps the person's
/// subject, email, email verification and name: top-level field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimMap {
    pub subject: String,
    pub email: Option<String>,
    /// A boolean (or `"true"`) field; without one, no email from this
    /// provider counts as verified.
    pub email_verified: Option<String>,
    pub name: Option<String>,
}

impl Default for ClaimMap {
    /// The OpenID Connect names.
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            email: Some("email".into()),
            email_verified: Some("email_verified".into()),
            name: Some("name".into()),
        }
    }
}

/// Sign in with Apple's key for the client-secret JWT (ES256): the Apple
/// developer team, and the id of the key whose PKCS#8 PEM is the provider's
/// stored client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
}

/// A registered provider, as stored (never its client secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub tenant_id: Uuid,
    pub id: ProviderId,
    pub kind: ProviderKind,
    pub name: String,
    pub client_id: String,
    /// For OpenID Connect kinds: the issuer (the preset's when `None`).
    pub issuer: Option<Url>,
    /// Overrides (OAuth 2 kinds: required for `oauth2`, GitHub's when `None`).
    pub authorize_url: Option<Url>,
    pub token_url: Option<Url>,
    pub userinfo_url: Option<Url>,
    /// The scopes asked for; the kind's defaults when empty.
    pub scopes: Vec<String>,
    pub claims: ClaimMap,
    /// Apple only.
    pub apple: Option<AppleKey>,
    pub enabled: bool,
    /// Declared in the configuration file: read-only through the API.
    pub from_config: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Provider {
    /// The issuer this provider's discovery and ID tokens are checked
    /// against, for OpenID Connect kinds.
    pub fn issuer(&self) -> Option<Url> {
        if !self.kind.is_oidc() {
            return None;
        }
        self.issuer
            .clone()
            .or_else(|| self.kind.default_issuer().and_then(|s| Url::parse(s).ok()))
    }

    /// The scopes to ask for.
    pub fn scopes(&self) -> Vec<String> {
        if self.scopes.is_empty() {
            self.kind.default_scopes().iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.scopes.clone()
        }
    }
}

/// Whether `url` may be a provider endpoint: absolute `https`, or `http` on
/// the loopback interface (development and tests), with no user
/// information and no fragment.
pub fn endpoint_ok(url: &Url) -> bool {
    if url.as_str().len() > MAX_URL_LEN || !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    if url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_slugs() {
        assert!(ProviderId::parse("github").is_ok());
        assert!(ProviderId::parse("corp-sso_2").is_ok());
        for bad in ["", "-x", "Git", "a/b", "a b", &"x".repeat(41)] {
            assert!(ProviderId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Ok(*kind));
        }
        assert!(ProviderKind::parse("facebook").is_err());
    }

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        let ok = |s: &str| endpoint_ok(&Url::parse(s).unwrap());
        assert!(ok("https://accounts.example.com/"));
        assert!(ok("http://127.0.0.1:9000/"));
        assert!(ok("http://localhost:9000/x"));
        assert!(!ok("http://idp.example.com/"));
        assert!(!ok("https://user:pw@idp.example.com/"));
        assert!(!ok("https://idp.example.com/#x"));
        assert!(!ok("ftp://idp.example.com/"));
    }
}
