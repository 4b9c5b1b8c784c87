//! OAuth 2.0 and OpenID Connect request values, parsed at the edge.
//!
//! The authorization request (RFC 6749 section 4.1.1, RFC 7636, OpenID
//! Connect Core 3.1.2.1) is parsed in two steps because its errors go to two
//! places (RFC 6749 section 4.1.2.1): while the client and its redirect URI
//! are not validated, an error is shown to the user (an attacker must not be
//! able to bounce a victim to a URI of its choice); once they are, every
//! other error goes back to that redirect URI. [`AuthorizeQuery`] is the raw
//! query; [`AuthorizeQuery::validate`] checks the rest once the caller has
//! settled the client and the redirect URI, and answers either an
//! [`AuthorizeRequest`] or an [`AuthorizeError`] for the redirect.
//!
//! Rules taken from OAuth 2.1 and RFC 9700 (the Security BCP): only
//! `response_type=code`, only `response_mode=query`; PKCE with `S256` only
//! (`plain` is refused), required for public clients and checked whenever a
//! request carried a challenge; request objects (`request`, `request_uri`)
//! are refused with `request_not_supported`.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::crypto::tokens::constant_time_eq;

/// The scope that makes an authorization request an OpenID Connect one.
pub const OPENID: &str = "openid";
/// The scope that asks for a refresh token (OpenID Connect Core 11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The scopes forge itself gives a meaning to, in discovery order.
pub const STANDARD_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "offline_access",
    "roles",
    "tenant",
];

/// Most scopes in one request, and longest scope string: generous for real
/// clients, a bound on what a request can make the server hold.
const MAX_SCOPES: usize = 32;
const MAX_SCOPE_LEN: usize = 2048;
/// Longest `state`, `nonce` and `login_hint` kept (they travel in codes and
/// tokens, so they are bounded).
const MAX_OPAQUE_LEN: usize = 512;

/// A space-separated scope list (RFC 6749 section 3.3): each scope is
/// printable ASCII without `"` or `\`, duplicates dropped, order kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.len() > MAX_SCOPE_LEN {
            return Err("scope is too long");
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in s.split(' ').filter(|s| !s.is_empty()) {
            if !scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err("scope has characters outside RFC 6749 section 3.3");
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_string());
            }
        }
        if scopes.len() > MAX_SCOPES {
            return Err("too many scopes");
        }
        Ok(Self(scopes))
    }

    pub fn from_vec(scopes: Vec<String>) -> Self {
        Self(scopes)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.iter().all(|s| other.contains(s))
    }

    /// The RFC 6749 wire form: space-separated.
    pub fn joined(&self) -> String {
        self.0.join(" ")
    }
}

/// The `prompt` values forge supports (OpenID Connect Core 3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prompt {
    /// No page may be shown: no session or consent needed is an error.
    pub none: bool,
    /// Ask for credentials again, even with a session.
    pub login: bool,
    /// Ask for consent again, even when it was given.
    pub consent: bool,
}

impl Prompt {
    pub const SUPPORTED: &'static [&'static str] = &["none", "login", "consent"];

    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let mut prompt = Prompt::default();
        for value in s.split(' ').filter(|s| !s.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => return Err("prompt must be none, login or consent"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with another value");
        }
        Ok(prompt)
    }
}

/// A PKCE `code_challenge` or `code_verifier`: 43 to 128 characters of
/// `[A-Za-z0-9-._~]` (RFC 7636 section 4.1).
pub fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `S256` challenge of a verifier: `BASE64URL(SHA256(verifier))`.
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 section 4.6 with `S256`: `BASE64URL(SHA256(verifier)) ==
/// challenge`, compared in constant time. A verifier of the wrong shape
/// never matches.
pub fn pkce_s256_matches(challenge: &str, verifier: &str) -> bool {
    if !pkce_shaped(verifier) {
        return false;
    }
    let computed = pkce_s256(verifier);
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// The query of `GET /oauth/authorize`, as sent. A parameter given twice
/// fails to deserialize (RFC 6749 section 3.1: "MUST NOT be included more
/// than once"), which is an error shown to the user.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthorizeQuery {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// An authorization error that goes back to the client's redirect URI
/// (RFC 6749 section 4.1.2.1), with the `state` the request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizeError {
    /// The RFC 6749 / OpenID Connect error code.
    pub error: &'static str,
    pub description: &'static str,
}

impl AuthorizeError {
    pub const fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }
}

/// What a validated client tells the request's validation.
#[derive(Clone, Copy)]
pub struct ClientFacts<'a> {
    /// Public clients (no secret) must use PKCE.
    pub public: bool,
    /// Whether the client may use the authorization code grant.
    pub code_grant: bool,
    /// Whether the client may ask for a scope.
    pub allows_scope: &'a dyn Fn(&str) -> bool,
}

/// A validated authorization request, bound to a client and redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    /// The redirect URI the code goes to: the one the request named, or the
    /// client's only one. The token request must name the same one when
    /// the authorization request did (`redirect_uri_given`).
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Scopes,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// An `S256` challenge.
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

impl AuthorizeRequest {
    /// Whether this is an OpenID Connect request (`openid` scope).
    pub fn is_oidc(&self) -> bool {
        self.scopes.contains(OPENID)
    }
}

fn opaque(value: Option<&String>, name: &'static str) -> Result<Option<String>, AuthorizeError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.len() > MAX_OPAQUE_LEN || v.chars().any(char::is_control) => Err(AuthorizeError::new(
            "invalid_request",
            match name {
                "nonce" => "nonce is too long or has control characters",
                _ => "login_hint is too long or has control characters",
            },
        )),
        Some(v) => Ok(Some(v.clone())),
    }
}

impl AuthorizeQuery {
    /// The `state` to send back with an error: as sent, when it is of a
    /// sane size (a huge one is dropped rather than echoed).
    pub fn state(&self) -> Option<&str> {
        self.state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= MAX_OPAQUE_LEN)
    }

    /// Validates everything but the client and the redirect URI, which the
    /// caller settled (`client_id`, `redirect_uri`). Errors go to the
    /// redirect URI.
    pub fn validate(
        &self,
        client_id: &str,
        redirect_uri: &str,
        client: ClientFacts<'_>,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        if self.request.is_some() {
            return Err(AuthorizeError::new(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if self.request_uri.is_some() {
            return Err(AuthorizeError::new(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        if self.state.as_deref().is_some_and(|s| s.len() > MAX_OPAQUE_LEN) {
            return Err(AuthorizeError::new("invalid_request", "state is too long"));
        }
        match self.response_mode.as_deref() {
            None | Some("query") => {}
            Some(_) => {
                return Err(AuthorizeError::new("invalid_request", "response_mode must be query"));
            }
        }
        match self.response_type.as_deref() {
            Some("code") => {}
            None => return Err(AuthorizeError::new("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(AuthorizeError::new(
                    "unsupported_response_type",
                    "response_type must be code",
                ));
            }
        }
        if !client.code_grant {
            return Err(AuthorizeError::new(
                "unauthorized_client",
                "the client may not use the authorization code grant",
            ));
        }
        let scopes = match self.scope.as_deref() {
            None => return Err(AuthorizeError::new("invalid_scope", "scope is required")),
            Some(s) => Scopes::parse(s).map_err(|_| AuthorizeError::new("invalid_scope", "scope is malformed"))?,
        };
        if scopes.is_empty() {
            return Err(AuthorizeError::new("invalid_scope", "scope is required"));
        }
        if !scopes.iter().all(|s| (client.allows_scope)(s)) {
            return Err(AuthorizeError::new(
                "invalid_scope",
                "the client may not ask for one of these scopes",
            ));
        }
        let code_challenge = match (self.code_challenge.as_deref(), self.code_challenge_method.as_deref()) {
            (None, None) if client.public => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "public clients must use PKCE (code_challenge with S256)",
                ));
            }
            (None, None) => None,
            (None, Some(_)) => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                ));
            }
            (Some(c), Some("S256")) if pkce_shaped(c) => Some(c.to_string()),
            (Some(_), Some("S256")) => {
                return Err(AuthorizeError::new("invalid_request", "code_challenge is malformed"));
            }
            // RFC 7636 says a missing method means `plain`: refused as well.
            (Some(_), _) => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
        };
        let prompt = match self.prompt.as_deref() {
            None => Prompt::default(),
            Some(p) => Prompt::parse(p).map_err(|_| {
                AuthorizeError::new(
                    "invalid_request",
                    "prompt must be none, login or consent, and none alone",
                )
            })?,
        };
        let max_age = match self.max_age.as_deref() {
            None | Some("") => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .map(i64::from)
                    .map_err(|_| AuthorizeError::new("invalid_request", "max_age must be a number of seconds"))?,
            ),
        };
        Ok(AuthorizeRequest {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            redirect_uri_given: self.redirect_uri.is_some(),
            scopes,
            state: self.state().map(str::to_string),
            nonce: opaque(self.nonce.as_ref(), "nonce")?,
            code_challenge,
            prompt,
            max_age,
            login_hint: opaque(self.login_hint.as_ref(), "login_hint")?,
        })
    }
}

/// Appends RFC 6749 response parameters to a redirect URI, keeping its own
/// query (section 3.1.2: "MUST retain the query component").
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = redirect_uri.to_string();
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    if encoded.is_empty() {
        return url;
    }
    // A fragment is not allowed in a registered redirect URI (section
    // 3.1.2), so a `#` cannot be in the way.
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&encoded);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(public: bool) -> ClientFacts<'static> {
        ClientFacts {
            public,
            code_grant: true,
            allows_scope: &|s| ["openid", "profile", "email", "offline_access"].contains(&s),
        }
    }

    const CHALLENGE: &str = "edIiiYsGtn3VJn-X17xHJrkSAlWnug0awy1TfU35snQ";
    const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9Xhb0kafNL5WsDZ68sjdH2pxY";

    fn query() -> AuthorizeQuery {
        AuthorizeQuery {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            scope: Some("openid email".into()),
            state: Some("xyz".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        }
    }

    fn check(q: &AuthorizeQuery, public: bool) -> Result<AuthorizeRequest, &'static str> {
        q.validate("app", "https://app.example/cb", facts(public))
            .map_err(|e| e.error)
    }

    #[test]
    fn s256_matches_only_its_verifier() {
        assert!(pkce_s256_matches(CHALLENGE, VERIFIER));
        assert!(!pkce_s256_matches(CHALLENGE, &VERIFIER.replace('d', "e")));
        assert!(!pkce_s256_matches(CHALLENGE, "short"));
    }

    #[test]
    fn a_good_request_parses() {
        let r = check(&query(), true).unwrap();
        assert!(r.is_oidc());
        assert_eq!(r.state.as_deref(), Some("xyz"));
        assert_eq!(r.code_challenge.as_deref(), Some(CHALLENGE));
        assert!(!r.redirect_uri_given);
    }

    type Change = Box<dyn Fn(&mut AuthorizeQuery)>;

    #[test]
    fn every_rule_has_its_error() {
        let cases: Vec<(Change, bool, &str)> = vec![
            (
                Box::new(|q| q.response_type = Some("token".into())),
                false,
                "unsupported_response_type",
            ),
            (Box::new(|q| q.response_type = None), false, "invalid_request"),
            (
                Box::new(|q| q.response_mode = Some("fragment".into())),
                false,
                "invalid_request",
            ),
            (
                Box::new(|q| q.request = Some("eyJ".into())),
                false,
                "request_not_supported",
            ),
            (
                Box::new(|q| q.request_uri = Some("urn:x".into())),
                false,
                "request_uri_not_supported",
            ),
            (
                Box::new(|q| q.scope = Some("openid admin".into())),
                false,
                "invalid_scope",
            ),
            (Box::new(|q| q.scope = None), false, "invalid_scope"),
            (
                Box::new(|q| q.code_challenge_method = Some("plain".into())),
                false,
                "invalid_request",
            ),
            (Box::new(|q| q.code_challenge_method = None), false, "invalid_request"),
            (
                Box::new(|q| q.code_challenge = Some("short".into())),
                false,
                "invalid_request",
            ),
            (
                Box::new(|q| {
                    q.code_challenge = None;
                    q.code_challenge_method = None;
                }),
                true,
                "invalid_request",
            ),
            (
                Box::new(|q| q.prompt = Some("none login".into())),
                false,
                "invalid_request",
            ),
            (
                Box::new(|q| q.prompt = Some("select_account".into())),
                false,
                "invalid_request",
            ),
            (Box::new(|q| q.max_age = Some("-1".into())), false, "invalid_request"),
            (Box::new(|q| q.nonce = Some("n".repeat(600))), false, "invalid_request"),
        ];
        for (i, (change, public, want)) in cases.into_iter().enumerate() {
            let mut q = query();
            change(&mut q);
            assert_eq!(check(&q, public).err(), Some(want), "case {i}");
        }
        let mut q = query();
        q.code_challenge = None;
        q.code_challenge_method = None;
        assert!(check(&q, false).is_ok(), "PKCE is optional for confidential clients");
        let no_code = ClientFacts {
            code_grant: false,
            ..facts(false)
        };
        assert_eq!(
            query().validate("app", "https://a/cb", no_code).err().map(|e| e.error),
            Some("unauthorized_client")
        );
    }

    #[test]
    fn prompt_and_scopes() {
        assert_eq!(
            Prompt::parse("login consent").unwrap(),
            Prompt {
                none: false,
                login: true,
                consent: true
            }
        );
        assert!(Prompt::parse("none").unwrap().none);
        let s = Scopes::parse("openid  email openid").unwrap();
        assert_eq!(s.joined(), "openid email");
        assert!(Scopes::parse("a\"b").is_err());
    }

    #[test]
    fn redirects_keep_the_query() {
        assert_eq!(
            redirect_with("https://a/cb?x=1", &[("code", "c d"), ("state", "s")]),
            "https://a/cb?x=1&code=c+d&state=s"
        );
        assert_eq!(redirect_with("https://a/cb", &[("error", "e")]), "https://a/cb?error=e");
    }
}
