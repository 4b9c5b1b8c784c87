//! ID-token validation (OpenID Connect Core 1.0, section 3.1.3.7), as a
//! pure function of the token, the issuer's keys, what forge expects and
//! the time, so every rule is tested with tokens the tests sign.
//!
//! The algorithm is the header's, but only an asymmetric one whose family
//! fits the key the `kid` names (and the key's own `alg` when it states
//! one): `none` does not parse and HS* is refused outright, so a public key
//! can never be used as an HMAC secret. Time claims are checked here against
//! forge's clock (not jsonwebtoken's, which reads the system time), with a
//! small leeway for clock skew.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 60;

/// An ID token issued longer ago than this is refused even if its `exp`
/// says otherwise: sign-in tokens are minutes old.
pub const MAX_AGE_SECS: i64 = 24 * 3600;

/// Why a token was refused; [`UNKNOWN_KEY`] is the one that justifies a
/// JWKS refetch.
pub type Reason = &'static str;

pub const UNKNOWN_KEY: Reason = "unknown key";

/// Which `iss` an ID token must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerRule {
    /// Exactly this string (the discovery document's `issuer`).
    Exact(String),
    /// Google: its documented legacy form without the scheme is accepted too.
    Google(String),
    /// Microsoft's multi-tenant endpoints: the discovery issuer is a
    /// template containing `{tenantid}`, which the token's own `tid` claim
    /// fills in.
    MicrosoftTemplate(String),
}

impl IssuerRule {
    pub fn matches(&self, iss: &str, tid: Option<&str>) -> bool {
        match self {
            IssuerRule::Exact(expected) => iss == expected,
            IssuerRule::Google(expected) => {
                iss == expected || expected.strip_prefix("https://").is_some_and(|bare| iss == bare)
            }
            IssuerRule::MicrosoftTemplate(template) => {
                let Some(tid) = tid else { return false };
                // A tenant id is a GUID; anything else cannot be spliced into
                // a URL safely.
                let tid_ok =
                    !tid.is_empty() && tid.len() <= 64 && tid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
                tid_ok && iss == template.replace("{tenantid}", tid)
            }
        }
    }
}

/// What forge expects of the token.
pub struct Expected<'a> {
    pub issuer: &'a IssuerRule,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// The claims forge reads from a valid ID token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdClaims {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: String,
    #[serde(default)]
    sub: String,
    aud: Value,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

/// `true`, or Apple's string `"true"`.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn key_fits(alg: Algorithm, jwk: &Jwk) -> bool {
    if let Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)) = jwk.common.public_key_use {
        return false;
    }
    if let Some(stated) = jwk.common.key_algorithm {
        let same = matches!(
            (stated, alg),
            (KeyAlgorithm::RS256, Algorithm::RS256)
                | (KeyAlgorithm::RS384, Algorithm::RS384)
                | (KeyAlgorithm::RS512, Algorithm::RS512)
                | (KeyAlgorithm::PS256, Algorithm::PS256)
                | (KeyAlgorithm::PS384, Algorithm::PS384)
                | (KeyAlgorithm::PS512, Algorithm::PS512)
                | (KeyAlgorithm::ES256, Algorithm::ES256)
                | (KeyAlgorithm::ES384, Algorithm::ES384)
                | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
        );
        if !same {
            return false;
        }
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => ec.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => okp.curve == EllipticCurve::Ed25519,
        _ => false,
    }
}

/// The key that verifies a token with this header: the one its `kid`
/// names, or without a `kid` the only key that fits the algorithm.
fn pick_key<'k>(keys: &'k [Jwk], kid: Option<&str>, alg: Algorithm) -> Result<&'k Jwk, Reason> {
    match kid {
        Some(kid) => {
            let jwk = keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .ok_or(UNKNOWN_KEY)?;
            if key_fits(alg, jwk) {
                Ok(jwk)
            } else {
                Err("algorithm does not fit the key")
            }
        }
        None => {
            let mut fitting = keys.iter().filter(|k| key_fits(alg, k));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Ok(only),
                _ => Err(UNKNOWN_KEY),
            }
        }
    }
}

/// Validates `token` against the issuer's `keys` and what is expected.
pub fn validate(token: &str, keys: &[Jwk], expected: &Expected<'_>) -> Result<IdClaims, Reason> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed")?;
    let alg = header.alg;
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err("unsupported algorithm");
    }
    let jwk = pick_key(keys, header.kid.as_deref(), alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| UNKNOWN_KEY)?;

    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => "bad signature",
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "algorithm does not fit the key",
        _ => "malformed",
    })?;
    let c = data.claims;

    if !expected.issuer.matches(&c.iss, c.tid.as_deref()) {
        return Err("wrong issuer");
    }
    let audiences: Vec<&str> = match &c.aud {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err("wrong audience"),
    };
    if !audiences.contains(&expected.client_id) {
        return Err("wrong audience");
    }
    match c.azp.as_deref() {
        Some(azp) if azp != expected.client_id => return Err("wrong authorized party"),
        None if audiences.len() > 1 => return Err("wrong authorized party"),
        _ => {}
    }
    if expected.now > c.exp.saturating_add(LEEWAY_SECS) {
        return Err("expired");
    }
    if c.iat > expected.now.saturating_add(LEEWAY_SECS) {
        return Err("issued in the future");
    }
    if c.iat < expected.now.saturating_sub(MAX_AGE_SECS) {
        return Err("issued too long ago");
    }
    if c.nbf.is_some_and(|nbf| nbf > expected.now.saturating_add(LEEWAY_SECS)) {
        return Err("not yet valid");
    }
    if c.nonce.as_deref() != Some(expected.nonce) || expected.nonce.is_empty() {
        return Err("wrong nonce");
    }
    if c.sub.is_empty() || c.sub.len() > 255 {
        return Err("no subject");
    }
    let email = c.email.filter(|e| !e.is_empty());
    let email_verified = email.is_some() && truthy(c.email_verified.as_ref());
    Ok(IdClaims {
        sub: c.sub,
        email,
        email_verified,
        name: c.name.filter(|n| !n.is_empty()),
    })
}

#[cfg(test)]
mod tests;
