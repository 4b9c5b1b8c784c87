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
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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

/// The longest `client_id` a provider may declare.
pub const MAX_CLIENT_ID_LEN: usize = 255;
/// The longest Apple team or key id.
pub const MAX_APPLE_ID_LEN: usize = 40;
/// The longest userinfo field name in a [`ClaimMap`].
pub const MAX_CLAIM_LEN: usize = 100;
/// The longest upstream subject an identity may carry.
pub const MAX_SUBJECT_LEN: usize = 255;

/// A field of a provider registration that does not pass, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidProvider {
    /// The API's name of the field (`issuer`, `scopes`, ...).
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidProvider {
    InvalidProvider {
        field,
        reason: reason.into(),
    }
}

/// Everything a provider registration declares (not its id, which never
/// changes, nor its client secret, which the store keeps sealed): made
/// from a request, a config entry, or a stored provider and a
/// [`ProviderPatch`], then [`validate`](ProviderSpec::validate)d.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    pub name: String,
    pub client_id: String,
    /// Absolute URLs as given; `validate` trims them and drops empty ones.
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// Empty: the kind's defaults.
    pub scopes: Vec<String>,
    pub claims: ClaimMap,
    /// Apple only, and required there.
    pub apple: Option<AppleKey>,
    pub enabled: bool,
}

impl ProviderSpec {
    /// A spec of `kind` with no endpoints, the default scopes and claim
    /// map, enabled.
    pub fn new(kind: ProviderKind, name: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            client_id: client_id.into(),
            issuer: None,
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            scopes: Vec::new(),
            claims: ClaimMap::default(),
            apple: None,
            enabled: true,
        }
    }

    /// Normalises the spec in place (trims text, drops empty URLs and
    /// duplicate scopes) and checks every rule of the module comment; the
    /// error names the first field that fails.
    pub fn validate(&mut self) -> Result<(), InvalidProvider> {
        // The bound holds for the name as sent (as the API document states
        // it), and the trimmed name must not be empty.
        let sent = self.name.chars().count();
        self.name = self.name.trim().to_owned();
        let chars = self.name.chars().count();
        if chars == 0 || sent > MAX_NAME_CHARS {
            return Err(invalid("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
        }
        if self.name.chars().any(char::is_control) {
            return Err(invalid("name", "must not contain control characters"));
        }
        self.client_id = self.client_id.trim().to_owned();
        if self.client_id.is_empty() || self.client_id.len() > MAX_CLIENT_ID_LEN {
            return Err(invalid(
                "client_id",
                format!("must be 1 to {MAX_CLIENT_ID_LEN} characters"),
            ));
        }
        if self.client_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("client_id", "must not contain spaces or control characters"));
        }
        for (field, value) in [
            ("issuer", &mut self.issuer),
            ("authorize_url", &mut self.authorize_url),
            ("token_url", &mut self.token_url),
            ("userinfo_url", &mut self.userinfo_url),
        ] {
            check_endpoint(field, value)?;
        }
        let kind = self.kind;
        if kind == ProviderKind::Oidc && self.issuer.is_none() {
            return Err(invalid("issuer", "an oidc provider needs its issuer URL"));
        }
        if !kind.is_oidc() && self.issuer.is_some() {
            return Err(invalid(
                "issuer",
                format!("a {kind} provider has no issuer (it reads a userinfo endpoint)"),
            ));
        }
        if kind == ProviderKind::Oauth2 {
            for (field, value) in [
                ("authorize_url", &self.authorize_url),
                ("token_url", &self.token_url),
                ("userinfo_url", &self.userinfo_url),
            ] {
                if value.is_none() {
                    return Err(invalid(
                        field,
                        "an oauth2 provider needs its authorize, token and userinfo URLs",
                    ));
                }
            }
        }
        normalise(&mut self.scopes);
        if self.scopes.len() > MAX_SCOPES {
            return Err(invalid("scopes", format!("at most {MAX_SCOPES} scopes")));
        }
        if let Some(bad) = self.scopes.iter().find(|s| !super::clients::valid_scope(s)) {
            let head: String = bad.chars().take(80).collect();
            return Err(invalid(
                "scopes",
                format!(
                    "{head:?}: a scope is 1 to {} printable ASCII characters without spaces, quotes or backslashes",
                    super::clients::MAX_SCOPE_LEN
                ),
            ));
        }
        check_claims(&mut self.claims)?;
        match (kind, &mut self.apple) {
            (ProviderKind::Apple, None) => {
                return Err(invalid("team_id", "an apple provider needs team_id and key_id"));
            }
            (ProviderKind::Apple, Some(key)) => {
                for (field, value) in [("team_id", &mut key.team_id), ("key_id", &mut key.key_id)] {
                    *value = value.trim().to_owned();
                    if value.is_empty()
                        || value.len() > MAX_APPLE_ID_LEN
                        || !value.bytes().all(|b| b.is_ascii_alphanumeric())
                    {
                        return Err(invalid(
                            field,
                            format!("must be 1 to {MAX_APPLE_ID_LEN} letters or digits"),
                        ));
                    }
                }
            }
            (_, Some(_)) => {
                return Err(invalid("team_id", "team_id and key_id are for apple providers only"));
            }
            (_, None) => {}
        }
        Ok(())
    }
}

/// Trims an endpoint, drops it when empty, and checks it.
fn check_endpoint(field: &'static str, value: &mut Option<String>) -> Result<(), InvalidProvider> {
    let Some(raw) = value.as_mut() else {
        return Ok(());
    };
    *raw = raw.trim().to_owned();
    if raw.is_empty() {
        *value = None;
        return Ok(());
    }
    match Url::parse(raw) {
        // Stored as the URL type writes it (a bare origin gains its `/`),
        // so a stored provider gives back exactly the spec it was made from.
        Ok(url) if raw.len() <= MAX_URL_LEN && endpoint_ok(&url) => {
            *raw = url.to_string();
            Ok(())
        }
        _ => Err(invalid(
            field,
            "must be an absolute https URL (plain http only for 127.0.0.1, [::1] or localhost), \
             without user information or fragment",
        )),
    }
}

fn check_claims(claims: &mut ClaimMap) -> Result<(), InvalidProvider> {
    let ok = |s: &str| !s.is_empty() && s.len() <= MAX_CLAIM_LEN && !s.chars().any(char::is_control);
    claims.subject = claims.subject.trim().to_owned();
    if !ok(&claims.subject) {
        return Err(invalid(
            "claims",
            format!("subject must name a userinfo field (1 to {MAX_CLAIM_LEN} characters)"),
        ));
    }
    for field in [&mut claims.email, &mut claims.email_verified, &mut claims.name] {
        if let Some(name) = field.as_mut() {
            *name = name.trim().to_owned();
            if name.is_empty() {
                *field = None;
            } else if !ok(name) {
                return Err(invalid(
                    "claims",
                    format!("a userinfo field name is 1 to {MAX_CLAIM_LEN} characters"),
                ));
            }
        }
    }
    Ok(())
}

/// Trims every entry, drops empty ones and later duplicates.
fn normalise(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let items = std::mem::take(list);
    for item in items {
        let item = item.trim().to_owned();
        if !item.is_empty() && seen.insert(item.clone()) {
            list.push(item);
        }
    }
}

/// A change to a provider: `None` leaves a field alone; `Some(None)`
/// removes an optional one. The id never changes; the client secret is
/// changed beside the patch (it is never part of a spec).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderPatch {
    pub kind: Option<ProviderKind>,
    pub name: Option<String>,
    pub client_id: Option<String>,
    pub issuer: Option<Option<String>>,
    pub authorize_url: Option<Option<String>>,
    pub token_url: Option<Option<String>>,
    pub userinfo_url: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
    pub claims: Option<ClaimMap>,
    pub apple: Option<Option<AppleKey>>,
    pub enabled: Option<bool>,
}

impl ProviderPatch {
    /// The names of the fields the patch sets, for the audit row.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            (self.kind.is_some(), "kind"),
            (self.name.is_some(), "name"),
            (self.client_id.is_some(), "client_id"),
            (self.issuer.is_some(), "issuer"),
            (self.authorize_url.is_some(), "authorize_url"),
            (self.token_url.is_some(), "token_url"),
            (self.userinfo_url.is_some(), "userinfo_url"),
            (self.scopes.is_some(), "scopes"),
            (self.claims.is_some(), "claims"),
            (self.apple.is_some(), "apple"),
            (self.enabled.is_some(), "enabled"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    /// Sets the fields the patch names on `spec` (not validated).
    pub fn apply(self, spec: &mut ProviderSpec) {
        fn set<T>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut spec.kind, self.kind);
        set(&mut spec.name, self.name);
        set(&mut spec.client_id, self.client_id);
        set(&mut spec.issuer, self.issuer);
        set(&mut spec.authorize_url, self.authorize_url);
        set(&mut spec.token_url, self.token_url);
        set(&mut spec.userinfo_url, self.userinfo_url);
        set(&mut spec.scopes, self.scopes);
        set(&mut spec.claims, self.claims);
        set(&mut spec.apple, self.apple);
        set(&mut spec.enabled, self.enabled);
    }
}

impl Provider {
    /// What the provider declares, to change and validate again.
    pub fn spec(&self) -> ProviderSpec {
        ProviderSpec {
            kind: self.kind,
            name: self.name.clone(),
            client_id: self.client_id.clone(),
            issuer: self.issuer.as_ref().map(|u| u.to_string()),
            authorize_url: self.authorize_url.as_ref().map(|u| u.to_string()),
            token_url: self.token_url.as_ref().map(|u| u.to_string()),
            userinfo_url: self.userinfo_url.as_ref().map(|u| u.to_string()),
            scopes: self.scopes.clone(),
            claims: self.claims.clone(),
            apple: self.apple.clone(),
            enabled: self.enabled,
        }
    }

    /// The provider a validated spec describes. `Err` names a URL that does
    /// not parse (impossible after `validate`).
    pub fn from_spec(
        tenant_id: Uuid,
        id: ProviderId,
        spec: ProviderSpec,
        from_config: bool,
        created_at: Timestamp,
        updated_at: Timestamp,
    ) -> Result<Self, InvalidProvider> {
        let url = |field: &'static str, v: Option<String>| {
            v.map(|s| Url::parse(&s).map_err(|_| invalid(field, "must be an absolute URL")))
                .transpose()
        };
        Ok(Self {
            tenant_id,
            id,
            kind: spec.kind,
            name: spec.name,
            client_id: spec.client_id,
            issuer: url("issuer", spec.issuer)?,
            authorize_url: url("authorize_url", spec.authorize_url)?,
            token_url: url("token_url", spec.token_url)?,
            userinfo_url: url("userinfo_url", spec.userinfo_url)?,
            scopes: spec.scopes,
            claims: spec.claims,
            apple: spec.apple,
            enabled: spec.enabled,
            from_config,
            created_at,
            updated_at,
        })
    }
}

/// A user's account at an upstream provider, linked to their forge user:
/// `(provider, subject)` is the key within a tenant, never the email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub provider: ProviderId,
    /// The upstream's stable id of the person (`sub`, or the mapped field).
    pub subject: String,
    /// The email the upstream last reported (informational: never a key).
    pub email: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// An identity to link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIdentity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub provider: ProviderId,
    pub subject: String,
    pub email: Option<String>,
    pub now: Timestamp,
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

    fn oidc() -> ProviderSpec {
        let mut s = ProviderSpec::new(ProviderKind::Oidc, " Corp SSO ", " client-1 ");
        s.issuer = Some(" https://idp.example.com ".into());
        s
    }

    #[test]
    fn a_valid_oidc_spec_is_normalised() {
        let mut s = oidc();
        s.scopes = vec![" openid ".into(), "email".into(), "openid".into(), "".into()];
        s.validate().unwrap();
        assert_eq!(s.name, "Corp SSO");
        assert_eq!(s.client_id, "client-1");
        assert_eq!(s.issuer.as_deref(), Some("https://idp.example.com/"));
        assert_eq!(s.scopes, ["openid", "email"]);
    }

    fn field_of(mut s: ProviderSpec) -> &'static str {
        s.validate().unwrap_err().field
    }

    #[test]
    fn each_kind_needs_its_endpoints() {
        let mut s = oidc();
        s.issuer = Some("  ".into());
        assert_eq!(field_of(s), "issuer");
        let mut s = ProviderSpec::new(ProviderKind::Oauth2, "X", "c");
        s.authorize_url = Some("https://x.example/authorize".into());
        s.token_url = Some("https://x.example/token".into());
        assert_eq!(field_of(s.clone()), "userinfo_url");
        s.userinfo_url = Some("https://x.example/user".into());
        assert!(s.clone().validate().is_ok());
        s.issuer = Some("https://x.example".into());
        assert_eq!(field_of(s), "issuer");
        // Presets need nothing and accept overrides.
        for kind in [
            ProviderKind::Github,
            ProviderKind::Google,
            ProviderKind::Microsoft,
            ProviderKind::Gitlab,
        ] {
            assert!(ProviderSpec::new(kind, "X", "c").validate().is_ok(), "{kind}");
        }
        let mut s = ProviderSpec::new(ProviderKind::Github, "GHE", "c");
        s.authorize_url = Some("http://127.0.0.1:9/login/oauth/authorize".into());
        assert!(s.validate().is_ok());
        let mut s = ProviderSpec::new(ProviderKind::Gitlab, "GL", "c");
        s.issuer = Some("http://gitlab.internal".into());
        assert_eq!(field_of(s), "issuer");
    }

    #[test]
    fn apple_needs_team_and_key() {
        let s = ProviderSpec::new(ProviderKind::Apple, "Apple", "com.example.web");
        assert_eq!(field_of(s.clone()), "team_id");
        let mut ok = s.clone();
        ok.apple = Some(AppleKey {
            team_id: " ABCDE12345 ".into(),
            key_id: "KEY1234567".into(),
        });
        ok.validate().unwrap();
        assert_eq!(ok.apple.as_ref().unwrap().team_id, "ABCDE12345");
        let mut bad = ok.clone();
        bad.apple = Some(AppleKey {
            team_id: "T".into(),
            key_id: "".into(),
        });
        assert_eq!(field_of(bad), "key_id");
        let mut google = ProviderSpec::new(ProviderKind::Google, "G", "c");
        google.apple = ok.apple.clone();
        assert_eq!(field_of(google), "team_id");
    }

    #[test]
    fn names_ids_scopes_and_claims_are_bounded() {
        let mut s = oidc();
        s.name = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(field_of(s), "name");
        let mut s = oidc();
        s.name = "a\u{7}b".into();
        assert_eq!(field_of(s), "name");
        let mut s = oidc();
        s.client_id = " ".into();
        assert_eq!(field_of(s), "client_id");
        let mut s = oidc();
        s.client_id = "x".repeat(MAX_CLIENT_ID_LEN + 1);
        assert_eq!(field_of(s), "client_id");
        let mut s = oidc();
        s.scopes = vec!["a\"b".into()];
        assert_eq!(field_of(s), "scopes");
        let mut s = oidc();
        s.scopes = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert_eq!(field_of(s), "scopes");
        let mut s = oidc();
        s.claims.subject = " ".into();
        assert_eq!(field_of(s), "claims");
        let mut s = oidc();
        s.claims.email = Some("".into());
        s.validate().unwrap();
        assert_eq!(s.claims.email, None);
    }

    #[test]
    fn a_patch_applies_what_it_names_and_round_trips_through_a_provider() {
        let mut s = oidc();
        s.validate().unwrap();
        let p = Provider::from_spec(Uuid::nil(), ProviderId::parse("corp").unwrap(), s.clone(), false, 1, 1).unwrap();
        let mut back = p.spec();
        assert_eq!(back, s);
        let patch = ProviderPatch {
            name: Some("New".into()),
            enabled: Some(false),
            issuer: Some(None),
            ..ProviderPatch::default()
        };
        assert_eq!(patch.fields(), ["name", "issuer", "enabled"]);
        patch.apply(&mut back);
        assert_eq!(back.name, "New");
        assert!(!back.enabled);
        assert_eq!(field_of(back), "issuer");
    }
}
