//! OpenID Connect ID tokens (OIDC Core 1.0 section 2) and back-channel
//! logout tokens (OIDC Back-Channel Logout 1.0 section 2.4), signed with the
//! keyring's EdDSA key or its RS256 key, as each client asked
//! (`id_token_signed_response_alg`).
//!
//! - ID tokens have header `typ: JWT`, logout tokens `typ: logout+jwt`
//!   (section 2.4 recommends explicit typing), so neither is taken for the
//!   other.
//! - `at_hash` / `c_hash` ([`token_hash`]): the left half of the hash that
//!   the signing algorithm uses, base64url without padding: SHA-256 for
//!   RS256, SHA-512 for EdDSA (Ed25519 hashes with SHA-512; the OpenID
//!   Foundation's rule for EdDSA, as its certified libraries do).
//! - `id_token_hint` ([`Keyring::verify_id_token_hint`]): a token forge
//!   issued, with any key it still publishes, and its `iss`; it may have
//!   expired (RP-initiated logout 1.0 section 2 allows that). Its `aud` is
//!   returned for the caller to compare with the client.
//! - An HS256 keyring (single-app mode) signs none of these:
//!   [`JwtError::IdTokensUnavailable`].

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::{JwtError, Keyring, compact_jws, lenient_amr, map_jwt_error, parse_header};
use crate::domain::Amr;

/// The algorithm a client's ID tokens (and logout tokens) are signed with.
///
/// Meant to live in `domain::clients` beside the client it belongs to; it is
/// here until that module exists (the JSON names are the JWA ones either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdTokenAlg {
    /// Ed25519, the default.
    #[default]
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256, for clients that cannot do EdDSA.
    RS256,
}

impl IdTokenAlg {
    pub const ALL: [IdTokenAlg; 2] = [IdTokenAlg::EdDSA, IdTokenAlg::RS256];

    /// The JWA name, as in the JWT header and the discovery document.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::EdDSA => "EdDSA",
            IdTokenAlg::RS256 => "RS256",
        }
    }

    /// Exactly `EdDSA` or `RS256` (JWA names are case-sensitive).
    pub fn parse(s: &str) -> Option<IdTokenAlg> {
        IdTokenAlg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for IdTokenAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `at_hash` / `c_hash` of `value` (an access token, a code) for an ID token
/// signed with `alg`: base64url (no padding) of the left half of its SHA-256
/// (RS256) or SHA-512 (EdDSA) digest.
pub fn token_hash(alg: IdTokenAlg, value: &str) -> String {
    match alg {
        IdTokenAlg::RS256 => {
            let digest = Sha256::digest(value.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
        }
        IdTokenAlg::EdDSA => {
            let digest = Sha512::digest(value.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
        }
    }
}

/// The claims of an ID token (OIDC Core 1.0 sections 2, 5.1), with forge's
/// `roles` and `tenant`. Optional claims are left out when `None`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The user id (or, never for ID tokens, a client id).
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the user last actively signed in (seconds since the epoch).
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// RFC 8176 values, in a fixed order; unknown values are skipped.
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        deserialize_with = "lenient_amr"
    )]
    pub amr: BTreeSet<Amr>,
    /// The hosted (SSO) session id, as back-channel logout names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With the `roles` scope: the user's role names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// With the `tenant` scope: the tenant's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// The event a logout token announces (Back-Channel Logout 1.0 section 2.4):
/// serialises as `{"http://schemas.openid.net/event/backchannel-logout": {}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutEvents {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    pub backchannel_logout: BackchannelLogout,
}

/// The (empty) member of [`LogoutEvents`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BackchannelLogout {}

/// The claims of a logout token. At least one of `sub` and `sid` is
/// required; there is never a `nonce`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogoutTokenClaims {
    pub iss: String,
    /// The client id.
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: LogoutEvents,
}

/// Header `typ` of ID tokens.
const ID_TOKEN_TYP: &str = "JWT";

/// Header `typ` of logout tokens (Back-Channel Logout 1.0 section 2.4).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

impl Keyring {
    /// The algorithms ID tokens can be signed with: EdDSA, plus RS256 when the
    /// ring holds an RS256 key; none with HS256.
    pub fn id_token_algs(&self) -> Vec<IdTokenAlg> {
        match self.algorithm {
            Algorithm::EdDSA => std::iter::once(IdTokenAlg::EdDSA)
                .chain(self.rs256.as_ref().map(|_| IdTokenAlg::RS256))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Signs an ID token with the current key of `alg`; `claims.iss` must be
    /// the ring's issuer. [`JwtError::IdTokensUnavailable`] when the ring
    /// cannot sign with `alg` (HS256, or no RS256 key).
    pub fn sign_id_token(&self, claims: &IdTokenClaims, alg: IdTokenAlg) -> Result<String, JwtError> {
        if claims.iss != self.settings.issuer {
            return Err(JwtError::Issuer);
        }
        self.sign_typed(claims, alg, ID_TOKEN_TYP)
    }

    /// Signs a back-channel logout token (header `typ: logout+jwt`) with the
    /// current key of `alg`. Needs `sub` or `sid`, and the ring's issuer.
    pub fn sign_logout_token(&self, claims: &LogoutTokenClaims, alg: IdTokenAlg) -> Result<String, JwtError> {
        if claims.iss != self.settings.issuer {
            return Err(JwtError::Issuer);
        }
        if claims.sub.is_none() && claims.sid.is_none() {
            return Err(JwtError::Claims);
        }
        self.sign_typed(claims, alg, LOGOUT_TOKEN_TYP)
    }

    /// [`token_hash`], for callers holding the keyring.
    pub fn token_hash(&self, alg: IdTokenAlg, value: &str) -> String {
        token_hash(alg, value)
    }

    fn sign_typed<C: Serialize>(&self, claims: &C, alg: IdTokenAlg, typ: &str) -> Result<String, JwtError> {
        if self.algorithm != Algorithm::EdDSA {
            return Err(JwtError::IdTokensUnavailable);
        }
        match alg {
            IdTokenAlg::EdDSA => {
                let mut header = Header::new(Algorithm::EdDSA);
                header.typ = Some(typ.to_owned());
                header.kid = Some(self.current_kid.clone());
                self.sign_with(&header, claims)
            }
            IdTokenAlg::RS256 => {
                let rsa = self.rs256.as_ref().ok_or(JwtError::IdTokensUnavailable)?;
                let header = serde_json::json!({ "alg": "RS256", "typ": typ, "kid": rsa.current_kid });
                compact_jws(&header, claims, |input| rsa.sign(input))
            }
        }
    }

    /// Verifies an `id_token_hint`: an ID token signed by any key of either
    /// algorithm the ring still holds, with the ring's issuer, `sub` and
    /// `aud`. Expiry is not required (a hint may have expired); the caller
    /// compares the returned `aud` with the client. Logout tokens and access
    /// tokens are refused (header `typ`; no `auth_time`).
    pub fn verify_id_token_hint(&self, token: &str) -> Result<IdTokenClaims, JwtError> {
        if self.algorithm != Algorithm::EdDSA {
            return Err(JwtError::IdTokensUnavailable);
        }
        let header = parse_header(token)?;
        if header.crit.is_some() {
            return Err(JwtError::Malformed);
        }
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(ID_TOKEN_TYP))
        {
            return Err(JwtError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(JwtError::UnknownKey)?;
        let (algorithm, key) = match header.alg.as_str() {
            "EdDSA" => (Algorithm::EdDSA, self.decoding_keys.get(kid)),
            "RS256" => (Algorithm::RS256, self.rs256.as_ref().and_then(|r| r.decoding.get(kid))),
            _ => return Err(JwtError::Algorithm),
        };
        let key = key.ok_or(JwtError::UnknownKey)?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = self.settings.leeway_secs;
        jsonwebtoken::decode::<IdTokenClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(map_jwt_error)
    }
}
