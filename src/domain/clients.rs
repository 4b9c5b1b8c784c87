//! OAuth clients as typed values: what a registration may declare, and the
//! checks the protocol endpoints make against it.
//!
//! Invariants a [`ClientSpec`] holds once [`ClientSpec::validate`] passed
//! (and so every stored [`Client`], since the store writes only validated
//! specs):
//! - Redirect and post-logout URIs are absolute, carry no fragment, no
//!   user information and no wildcard. `https` is accepted for any host;
//!   plain `http` only for the loopback interface (`127.0.0.1`, `[::1]`,
//!   `localhost`), for native apps and development; a custom scheme
//!   (`com.example.app:/callback`, RFC 8252 section 7.1) only for public
//!   (native) clients, and never a scheme a browser runs or reads locally
//!   (`javascript:`, `data:`, `file:` ...).
//! - Matching is exact, string for string ([`Client::redirect_uri_allowed`]),
//!   with the one exception RFC 8252 section 7.3 asks for: a registered
//!   `http://127.0.0.1/...` or `http://[::1]/...` URI matches that URI on
//!   any port, because a native app listens on whatever port the system
//!   gives it. `localhost` gets no such leeway (RFC 8252 section 8.3 advises
//!   against it): it matches exactly.
//! - Scopes are RFC 6749 section 3.3 scope tokens; a client that declares
//!   none may ask for [`DEFAULT_SCOPES`]. Grant types default to
//!   `authorization_code` and `refresh_token`; a public client cannot use
//!   `client_credentials` (it has no secret to authenticate with), and a
//!   client using `authorization_code` needs at least one redirect URI.
//! - The back-channel logout URI follows the redirect rules for `https` and
//!   loopback `http`; custom schemes are refused (forge POSTs to it).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};
use uuid::Uuid;

use super::Timestamp;

/// The scopes of a client that declares none.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "phone", "offline_access"];
/// The grant types of a client that declares none.
pub const DEFAULT_GRANTS: &[GrantType] = &[GrantType::AuthorizationCode, GrantType::RefreshToken];
/// At most this many URIs in each list of a client.
pub const MAX_URIS: usize = 20;
/// The longest URI a client may register.
pub const MAX_URI_LEN: usize = 2000;
/// At most this many scopes per client.
pub const MAX_SCOPES: usize = 50;
/// The longest scope token.
pub const MAX_SCOPE_LEN: usize = 64;
/// The longest client name.
pub const MAX_NAME_CHARS: usize = 100;

/// Schemes a browser executes or reads locally: never a redirect target.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about", "filesystem"];

/// Whether a client can keep a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// A server-side application: authenticates with its secret.
    Confidential,
    /// A native or browser application: no secret, PKCE required.
    Public,
}

impl ClientKind {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        match s.trim() {
            "confidential" => Ok(ClientKind::Confidential),
            "public" => Ok(ClientKind::Public),
            _ => Err("must be confidential or public"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth grant a client may use at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: &'static [GrantType] = &[
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn parse(s: &str) -> Result<Self, &'static str> {
        match s.trim() {
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            "refresh_token" => Ok(GrantType::RefreshToken),
            "client_credentials" => Ok(GrantType::ClientCredentials),
            _ => Err("must be authorization_code, refresh_token or client_credentials"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client's ID tokens are signed (`id_token_signed_response_alg`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IdTokenAlg {
    /// Ed25519, forge's own signing algorithm.
    #[default]
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256, for clients that cannot verify EdDSA.
    RS256,
}

impl IdTokenAlg {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        match s.trim() {
            "EdDSA" => Ok(IdTokenAlg::EdDSA),
            "RS256" => Ok(IdTokenAlg::RS256),
            _ => Err("must be EdDSA or RS256"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::EdDSA => "EdDSA",
            IdTokenAlg::RS256 => "RS256",
        }
    }
}

impl fmt::Display for IdTokenAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered client, as stored (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The public identifier, unique across all tenants.
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    /// A first-party client skips the consent page.
    pub first_party: bool,
    pub backchannel_logout_uri: Option<String>,
    pub id_token_alg: IdTokenAlg,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Client {
    /// Whether `uri` is one of the client's redirect URIs: exactly, or on
    /// another port for a registered loopback IP literal (RFC 8252 section 7.3).
    pub fn redirect_uri_allowed(&self, uri: &str) -> bool {
        uri_allowed(&self.redirect_uris, uri)
    }

    /// Whether `uri` is one of the client's post-logout redirect URIs (same
    /// matching as [`Client::redirect_uri_allowed`]).
    pub fn post_logout_redirect_allowed(&self, uri: &str) -> bool {
        uri_allowed(&self.post_logout_redirect_uris, uri)
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn is_public(&self) -> bool {
        self.kind == ClientKind::Public
    }

    /// What the client declares, to change and validate again.
    pub fn spec(&self) -> ClientSpec {
        ClientSpec {
            name: self.name.clone(),
            kind: self.kind,
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            grant_types: self.grant_types.clone(),
            scopes: self.scopes.clone(),
            first_party: self.first_party,
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            id_token_alg: self.id_token_alg,
        }
    }
}

fn uri_allowed(registered: &[String], uri: &str) -> bool {
    if registered.iter().any(|r| r == uri) {
        return true;
    }
    let Some(given) = loopback_ip_uri(uri) else {
        return false;
    };
    registered.iter().filter_map(|r| loopback_ip_uri(r)).any(|r| r == given)
}

/// An `http` URI on a loopback IP literal, with its port taken out, for the
/// any-port comparison; None for anything else (or anything unusual: user
/// information or a fragment).
fn loopback_ip_uri(uri: &str) -> Option<Url> {
    let mut url = Url::parse(uri).ok()?;
    let loopback_ip = matches!(url.host(), Some(Host::Ipv4(ip)) if ip == Ipv4Addr::LOCALHOST)
        || matches!(url.host(), Some(Host::Ipv6(ip)) if ip == Ipv6Addr::LOCALHOST);
    if url.scheme() != "http"
        || !loopback_ip
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_port(None).ok()?;
    Some(url)
}

/// A field of a client registration that does not pass, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidClient {
    /// The API's name of the field (`redirect_uris`, `scopes`, ...).
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidClient {
    InvalidClient {
        field,
        reason: reason.into(),
    }
}

/// Everything a client registration declares: created from a request (or a
/// stored client and a change), then [`validate`](ClientSpec::validate)d.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub first_party: bool,
    pub backchannel_logout_uri: Option<String>,
    pub id_token_alg: IdTokenAlg,
}

impl ClientSpec {
    /// A spec with the defaults: no URIs, the default grants and scopes,
    /// not first-party, EdDSA ID tokens.
    pub fn new(name: impl Into<String>, kind: ClientKind) -> Self {
        Self {
            name: name.into(),
            kind,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: DEFAULT_GRANTS.to_vec(),
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            first_party: false,
            backchannel_logout_uri: None,
            id_token_alg: IdTokenAlg::EdDSA,
        }
    }

    /// Normalises the spec in place (trims the name and URIs, drops
    /// duplicates keeping the first) and checks every rule of the module
    /// comment; the error names the first field that fails.
    pub fn validate(&mut self) -> Result<(), InvalidClient> {
        self.name = self.name.trim().to_owned();
        let chars = self.name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(invalid("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
        }
        if self.name.chars().any(char::is_control) {
            return Err(invalid("name", "must not contain control characters"));
        }
        let kind = self.kind;
        for (field, list) in [
            ("redirect_uris", &mut self.redirect_uris),
            ("post_logout_redirect_uris", &mut self.post_logout_redirect_uris),
        ] {
            normalise(list);
            if list.len() > MAX_URIS {
                return Err(invalid(field, format!("at most {MAX_URIS} URIs")));
            }
            for uri in list.iter() {
                check_redirect_uri(uri, kind).map_err(|why| invalid(field, format!("{}: {why}", shown(uri))))?;
            }
        }
        dedup(&mut self.grant_types);
        if self.grant_types.is_empty() {
            return Err(invalid("grant_types", "at least one grant type"));
        }
        if kind == ClientKind::Public && self.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(invalid(
                "grant_types",
                "a public client has no secret, so it cannot use client_credentials",
            ));
        }
        let code = self.grant_types.contains(&GrantType::AuthorizationCode);
        if self.grant_types.contains(&GrantType::RefreshToken) && !code {
            return Err(invalid(
                "grant_types",
                "refresh_token comes with authorization_code (client_credentials issues no refresh token)",
            ));
        }
        if code && self.redirect_uris.is_empty() {
            return Err(invalid(
                "redirect_uris",
                "at least one redirect URI for authorization_code",
            ));
        }
        normalise(&mut self.scopes);
        if self.scopes.len() > MAX_SCOPES {
            return Err(invalid("scopes", format!("at most {MAX_SCOPES} scopes")));
        }
        for scope in &self.scopes {
            if !valid_scope(scope) {
                return Err(invalid(
                    "scopes",
                    format!(
                        "{}: a scope is 1 to {MAX_SCOPE_LEN} printable ASCII characters without spaces, quotes or backslashes",
                        shown(scope)
                    ),
                ));
            }
        }
        if let Some(uri) = &mut self.backchannel_logout_uri {
            *uri = uri.trim().to_owned();
            if uri.is_empty() {
                self.backchannel_logout_uri = None;
            } else {
                check_backchannel_uri(uri).map_err(|why| invalid("backchannel_logout_uri", why))?;
            }
        }
        Ok(())
    }
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

fn dedup<T: PartialEq + Copy>(list: &mut Vec<T>) {
    let mut out: Vec<T> = Vec::with_capacity(list.len());
    for item in list.iter() {
        if !out.contains(item) {
            out.push(*item);
        }
    }
    *list = out;
}

/// The start of a user's input, quoted, for an error message.
fn shown(s: &str) -> String {
    let head: String = s.chars().take(80).collect();
    format!("{head:?}")
}

/// An RFC 6749 section 3.3 scope token: `%x21 / %x23-5B / %x5D-7E`.
pub fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Parses a URI a client registers, with the rules shared by every kind of
/// URI: bounded, absolute, no fragment, no user information, no wildcard.
fn parse_registered(uri: &str) -> Result<Url, &'static str> {
    if uri.len() > MAX_URI_LEN {
        return Err("too long");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    if uri.contains('#') {
        return Err("must not contain a fragment");
    }
    let url = Url::parse(uri).map_err(|_| "must be an absolute URI")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information");
    }
    if url.host_str().is_some_and(|h| h.contains('*')) {
        return Err("wildcards are not allowed; register each URI");
    }
    Ok(url)
}

/// Whether `url` is on the loopback interface: `127.0.0.1`, `[::1]` or
/// `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `https` (with a host) or loopback `http`; `Err` with why otherwise, or
/// `Ok(false)` for another scheme (the caller decides).
fn web_uri(url: &Url) -> Result<bool, &'static str> {
    match url.scheme() {
        "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err("must name a host");
            }
            Ok(true)
        }
        "http" => {
            if is_loopback(url) {
                Ok(true)
            } else {
                Err("must use https (plain http only for 127.0.0.1, [::1] or localhost)")
            }
        }
        _ => Ok(false),
    }
}

/// The rules of a redirect or post-logout redirect URI for a client of `kind`.
pub fn check_redirect_uri(uri: &str, kind: ClientKind) -> Result<(), &'static str> {
    let url = parse_registered(uri)?;
    if web_uri(&url)? {
        return Ok(());
    }
    if FORBIDDEN_SCHEMES.contains(&url.scheme()) {
        return Err("that scheme is never a redirect target");
    }
    match kind {
        // A private-use scheme of a native app (RFC 8252 section 7.1).
        ClientKind::Public => Ok(()),
        ClientKind::Confidential => Err("must use https (custom schemes are for public native clients)"),
    }
}

/// The rules of a back-channel logout URI: forge POSTs to it.
pub fn check_backchannel_uri(uri: &str) -> Result<(), &'static str> {
    let url = parse_registered(uri)?;
    if web_uri(&url)? {
        Ok(())
    } else {
        Err("must use https (plain http only for 127.0.0.1, [::1] or localhost)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(kind: ClientKind, redirects: &[&str]) -> ClientSpec {
        let mut s = ClientSpec::new("App", kind);
        s.redirect_uris = redirects.iter().map(|u| (*u).to_owned()).collect();
        s
    }

    fn client(redirects: &[&str]) -> Client {
        let s = spec(ClientKind::Public, redirects);
        Client {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            client_id: "c".into(),
            name: s.name,
            kind: s.kind,
            redirect_uris: s.redirect_uris,
            post_logout_redirect_uris: vec!["https://app.example.com/bye".into()],
            grant_types: s.grant_types,
            scopes: s.scopes,
            first_party: false,
            backchannel_logout_uri: None,
            id_token_alg: IdTokenAlg::EdDSA,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn names_parse_and_print_back() {
        for k in [ClientKind::Confidential, ClientKind::Public] {
            assert_eq!(ClientKind::parse(k.as_str()), Ok(k));
        }
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Ok(*g));
        }
        for a in [IdTokenAlg::EdDSA, IdTokenAlg::RS256] {
            assert_eq!(IdTokenAlg::parse(a.as_str()), Ok(a));
        }
        assert!(ClientKind::parse("secret").is_err());
        assert!(GrantType::parse("password").is_err());
        assert!(GrantType::parse("implicit").is_err());
        assert!(IdTokenAlg::parse("HS256").is_err());
        assert!(IdTokenAlg::parse("none").is_err());
    }

    #[test]
    fn a_spec_gets_the_default_grants_and_scopes() {
        let mut s = spec(ClientKind::Confidential, &["https://app.example.com/cb"]);
        s.validate().unwrap();
        assert_eq!(s.grant_types, DEFAULT_GRANTS);
        assert_eq!(s.scopes, ["openid", "profile", "email", "phone", "offline_access"]);
    }

    #[test]
    fn redirect_uris_must_be_absolute_https_without_fragment_or_wildcard() {
        let refused = [
            "/callback",
            "app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://app.example.com/cb#",
            "http://app.example.com/cb",
            "https://*.example.com/cb",
            "https://user:pw@app.example.com/cb",
            "https://app.example.com/c b",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "com.example.app:/cb",
        ];
        for uri in refused {
            let mut s = spec(ClientKind::Confidential, &[uri]);
            let e = s.validate().unwrap_err();
            assert_eq!(e.field, "redirect_uris", "{uri}");
        }
        let too_long = format!("https://app.example.com/{}", "a".repeat(MAX_URI_LEN));
        assert!(spec(ClientKind::Confidential, &[&too_long]).validate().is_err());
        let many: Vec<String> = (0..=MAX_URIS).map(|i| format!("https://a.example/{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(spec(ClientKind::Confidential, &many).validate().is_err());
        for uri in [
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
        ] {
            spec(ClientKind::Confidential, &[uri])
                .validate()
                .unwrap_or_else(|e| panic!("{uri}: {e}"));
        }
    }

    #[test]
    fn custom_schemes_are_for_public_clients_only() {
        spec(ClientKind::Public, &["com.example.app:/oauth2redirect"])
            .validate()
            .unwrap();
        assert!(
            spec(ClientKind::Confidential, &["com.example.app:/oauth2redirect"])
                .validate()
                .is_err()
        );
        for uri in ["javascript:alert(1)", "data:text/html,x", "file:///x", "vbscript:x"] {
            assert!(spec(ClientKind::Public, &[uri]).validate().is_err(), "{uri}");
        }
    }

    #[test]
    fn grant_types_follow_the_client_kind() {
        let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
        s.grant_types = vec![GrantType::ClientCredentials];
        assert_eq!(s.validate().unwrap_err().field, "grant_types");
        let mut s = spec(ClientKind::Confidential, &[]);
        s.grant_types = vec![GrantType::ClientCredentials];
        s.validate().unwrap();
        let mut s = spec(ClientKind::Confidential, &[]);
        assert_eq!(s.validate().unwrap_err().field, "redirect_uris");
        let mut s = spec(ClientKind::Confidential, &["https://a.example/cb"]);
        s.grant_types = vec![];
        assert_eq!(s.validate().unwrap_err().field, "grant_types");
        let mut s = spec(ClientKind::Confidential, &["https://a.example/cb"]);
        s.grant_types = vec![GrantType::RefreshToken, GrantType::ClientCredentials];
        assert_eq!(s.validate().unwrap_err().field, "grant_types");
        let mut s = spec(ClientKind::Confidential, &["https://a.example/cb"]);
        s.grant_types = vec![
            GrantType::AuthorizationCode,
            GrantType::AuthorizationCode,
            GrantType::ClientCredentials,
        ];
        s.validate().unwrap();
        assert_eq!(
            s.grant_types,
            [GrantType::AuthorizationCode, GrantType::ClientCredentials]
        );
    }

    #[test]
    fn scopes_are_scope_tokens() {
        for bad in [
            "two words",
            "quo\"te",
            "back\\slash",
            "é",
            &"a".repeat(MAX_SCOPE_LEN + 1),
        ] {
            let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
            s.scopes = vec![bad.to_owned()];
            assert_eq!(s.validate().unwrap_err().field, "scopes", "{bad:?}");
        }
        let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
        s.scopes = vec!["openid".into(), " api:read ".into(), "openid".into(), "".into()];
        s.validate().unwrap();
        assert_eq!(s.scopes, ["openid", "api:read"]);
        let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
        s.scopes = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert!(s.validate().is_err());
    }

    #[test]
    fn names_are_bounded_and_printable() {
        for bad in ["", "   ", "a\u{0}b", &"x".repeat(MAX_NAME_CHARS + 1)] {
            let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
            s.name = bad.to_owned();
            assert_eq!(s.validate().unwrap_err().field, "name", "{bad:?}");
        }
        let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
        s.name = "  Grafana  ".into();
        s.validate().unwrap();
        assert_eq!(s.name, "Grafana");
    }

    #[test]
    fn the_backchannel_uri_is_https_or_loopback_http() {
        for (uri, ok) in [
            ("https://app.example.com/logout", true),
            ("http://127.0.0.1:9000/logout", true),
            ("http://app.example.com/logout", false),
            ("https://app.example.com/logout#x", false),
            ("com.example.app:/logout", false),
        ] {
            let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
            s.backchannel_logout_uri = Some(uri.into());
            assert_eq!(s.validate().is_ok(), ok, "{uri}");
        }
        let mut s = spec(ClientKind::Public, &["https://a.example/cb"]);
        s.backchannel_logout_uri = Some("  ".into());
        s.validate().unwrap();
        assert_eq!(s.backchannel_logout_uri, None);
    }

    #[test]
    fn redirects_match_exactly() {
        let c = client(&["https://app.example.com/cb", "http://localhost:3000/cb"]);
        assert!(c.redirect_uri_allowed("https://app.example.com/cb"));
        for other in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/CB",
            "https://APP.example.com/cb",
            "https://app.example.com:443/cb",
            "https://app.example.com/cb#x",
            "https://evil.example/cb",
            "https://app.example.com.evil.example/cb",
            "http://localhost:3001/cb",
            "http://localhost/cb",
            "",
        ] {
            assert!(!c.redirect_uri_allowed(other), "{other}");
        }
        assert!(c.post_logout_redirect_allowed("https://app.example.com/bye"));
        assert!(!c.post_logout_redirect_allowed("https://app.example.com/cb"));
    }

    #[test]
    fn loopback_ip_redirects_match_on_any_port() {
        let c = client(&["http://127.0.0.1/callback", "http://[::1]:8080/cb?a=1"]);
        assert!(c.redirect_uri_allowed("http://127.0.0.1:51234/callback"));
        assert!(c.redirect_uri_allowed("http://127.0.0.1/callback"));
        assert!(c.redirect_uri_allowed("http://[::1]:9/cb?a=1"));
        for other in [
            "http://127.0.0.1:51234/other",
            "http://127.0.0.1:51234/callback?x=1",
            "http://127.0.0.1:51234/callback#f",
            "http://u@127.0.0.1:51234/callback",
            "http://127.0.0.2:51234/callback",
            "https://127.0.0.1:51234/callback",
            "http://localhost:51234/callback",
            "http://[::1]:9/cb",
        ] {
            assert!(!c.redirect_uri_allowed(other), "{other}");
        }
    }

    proptest! {
        /// Whatever is asked, only registered URIs (up to a loopback port)
        /// are accepted: a random string never matches a registered https URI.
        #[test]
        fn random_uris_do_not_match(s in "\\PC{0,60}") {
            let c = client(&["https://app.example.com/cb"]);
            prop_assert_eq!(c.redirect_uri_allowed(&s), s == "https://app.example.com/cb");
        }

        /// Validation never panics, and what passes is https, loopback http
        /// or a custom scheme without a fragment.
        #[test]
        fn validation_never_panics(s in "\\PC{0,80}") {
            let mut sp = spec(ClientKind::Public, &[&s]);
            if sp.validate().is_ok() {
                prop_assert!(!sp.redirect_uris.iter().any(|u| u.contains('#')));
            }
        }
    }
}
