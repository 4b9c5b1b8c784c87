//! Signing and strict verification of JWTs with a keyring that supports key
//! rotation, and the JWKS document that publishes its public keys.
//!
//! Invariants:
//! - One algorithm per keyring for forge's own tokens (EdDSA or HS256),
//!   pinned: a token whose header names any other `alg` (`none`, HS256
//!   against an EdDSA ring, RS256, ...) is refused before any signature or
//!   claim is looked at, so algorithm confusion (HMAC keyed with the public
//!   key) cannot happen.
//! - An EdDSA keyring may also hold RS256 keys (see [`rsa`]), for ID and
//!   logout tokens of OpenID Connect clients that cannot verify EdDSA. They
//!   sign and verify only those tokens ([`id_token`]): the access-token and
//!   purpose-token paths stay pinned to the ring's own algorithm. An HS256
//!   keyring signs no ID token at all (a relying party cannot hold the
//!   shared secret): [`JwtError::IdTokensUnavailable`].
//! - Every token carries a `kid`, and verification uses exactly the key with
//!   that `kid`; an absent or unknown `kid` is refused rather than tried
//!   against every key.
//! - All verification goes through one [`Validation`] built by
//!   [`build_validation`]: algorithm pinned, `iss` and the purpose's `aud`
//!   checked, `exp`, `iss`, `aud` and `sub` required, small leeway.
//! - A [`Keyring`] is an immutable snapshot; rotation builds a new one and
//!   the application swaps the `Arc`. Retired keys stay in it (verify only)
//!   until their tokens have expired, next keys are published before they
//!   sign.
//! - Errors describe the failure class only: never the token, a claim value
//!   or key bytes. Private key bytes never reach `Debug` or the JWKS.

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Aal, Amr, Assurance};
use crate::secret::Secret;

/// Claims of an access token (API.md, "Token response").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id: revoking the session revokes the token.
    pub sid: String,
    /// Tenant slug.
    pub tid: String,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user's email, present only once the user has proven it (forward
    /// auth asserts it as `Remote-Email` without a database round trip; an
    /// unproven address must never be asserted). An extension to API.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the user proved their email address (the claim name of API.md).
    #[serde(default)]
    pub email_verified: bool,
    /// The user's phone (E.164), present only once proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Whether the user proved their phone number (the claim name of API.md).
    #[serde(default)]
    pub phone_verified: bool,
    /// How the session's holder signed in (RFC 8176 values), in a fixed
    /// order. Absent from tokens minted before forge recorded it, and then
    /// read as none; a value this version does not know is skipped.
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        deserialize_with = "lenient_amr"
    )]
    pub amr: BTreeSet<Amr>,
    /// The session's assurance level: 1, or 2 after a second factor.
    /// Absent (older tokens) or unknown reads as 1, never higher.
    #[serde(default, deserialize_with = "lenient_aal")]
    pub aal: Aal,
    /// The OAuth client the token was issued to (RFC 9068 `client_id`);
    /// absent from tokens of forge's own API sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scopes granted to that client, space-separated (RFC 9068
    /// `scope`); absent when there is no client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl AccessClaims {
    /// The assurance the token states (see [`Assurance`]).
    pub fn assurance(&self) -> Assurance {
        Assurance {
            amr: self.amr.clone(),
            aal: self.aal,
        }
    }
}

/// `amr` as an array of strings, keeping the values this version knows.
fn lenient_amr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeSet<Amr>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    Ok(names.iter().filter_map(|n| Amr::parse(n)).collect())
}

/// `aal` as a number; anything but 2 is the lowest level.
fn lenient_aal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Aal, D::Error> {
    let n = serde_json::Value::deserialize(d)?;
    Ok(match n.as_u64() {
        Some(2) => Aal::Two,
        _ => Aal::One,
    })
}

/// Key material as stored in the database. For EdDSA: `private_pkcs8` is
/// the PKCS#8 DER of the Ed25519 key, `public_raw` the raw 32-byte public
/// key. A retired key may have an empty `private_pkcs8`: verification only
/// needs the public half.
#[derive(Clone)]
pub struct KeyMaterial {
    pub kid: String,
    pub private_pkcs8: Vec<u8>,
    pub public_raw: Vec<u8>,
}

/// Shows the kid and the public key; the private key is redacted.
impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("private_pkcs8", &"***")
            .field("public", &URL_SAFE_NO_PAD.encode(&self.public_raw))
            .finish()
    }
}

/// A new Ed25519 key from the OS CSPRNG. Its `kid` is the RFC 7638 JWK
/// thumbprint of the public key: deterministic, collision-free in practice,
/// and recomputable by anyone holding the JWKS.
pub fn generate_ed25519() -> KeyMaterial {
    let signing = SigningKey::generate(&mut OsRng);
    let public_raw = signing.verifying_key().to_bytes().to_vec();
    // Infallible: DER-encoding a fixed 32-byte seed plus its 32-byte public
    // key into a PKCS#8 document cannot exceed any length limit.
    #[allow(clippy::expect_used)]
    let private_pkcs8 = signing
        .to_pkcs8_der()
        .expect("PKCS#8 encoding of an Ed25519 key cannot fail")
        .as_bytes()
        .to_vec();
    KeyMaterial {
        kid: ed25519_thumbprint(&public_raw),
        private_pkcs8,
        public_raw,
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 section 2):
/// base64url(SHA-256 of the canonical JWK `{"crv","kty","x"}`).
fn ed25519_thumbprint(public_raw: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_raw)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// What a token must say about who issued it and whom it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierSettings {
    pub issuer: String,
    /// The audience of access tokens. Other purposes (reset, admin, ...)
    /// pass their own audience to [`Keyring::verify`].
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, at most [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

/// Leeway beyond this is a configuration error: it would keep expired
/// tokens alive for long, and it is meant for clock skew only.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// The fixed `kid` of an HS256 keyring: there is one secret, and a `kid`
/// still lets verifiers refuse tokens minted for something else.
pub const HS256_KID: &str = "hs256";

/// Tokens larger than this are refused unparsed (ours are well under 1 KiB).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest accepted `kid` (it goes into every token header and the JWKS).
const MAX_KID_LEN: usize = 128;

/// Why a keyring could not be built, a token not signed, or a token refused.
///
/// Messages name the failure class only, never the token, claim values or
/// key bytes, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url JSON segments, oversized, or an unsupported
    /// header (`crit`).
    #[error("token is malformed")]
    Malformed,
    /// The header's `alg` is not the keyring's algorithm.
    #[error("token algorithm is not accepted")]
    Algorithm,
    /// The header has no `kid`, or one this keyring does not hold.
    #[error("token key id is missing or unknown")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("token audience is not accepted")]
    Audience,
    /// A required claim is missing or a claim has the wrong type.
    #[error("token claims are missing or invalid")]
    Claims,
    /// Any other verification failure.
    #[error("token is invalid")]
    Invalid,
    /// Key material refused when building a keyring (start-up or rotation).
    #[error("signing key {kid:?} is unusable: {reason}")]
    InvalidKey { kid: String, reason: &'static str },
    #[error("the HS256 secret must be at least 32 bytes")]
    WeakSecret,
    #[error("invalid token settings: {0}")]
    InvalidSettings(&'static str),
    /// Signing failed; with a validated keyring this does not happen.
    #[error("token signing failed")]
    Signing,
    /// ID and logout tokens need public signing keys: `jwt.algorithm` is
    /// HS256 (single-app mode), whose shared secret no relying party may
    /// hold, or the ring holds no key of the requested algorithm. A server
    /// configuration error, not a refused token.
    #[error(
        "ID tokens are not available: they need jwt.algorithm = \"EdDSA\" (forge then signs them with \
         EdDSA or RS256 keys); an HS256 secret cannot be shared with relying parties"
    )]
    IdTokensUnavailable,
}

impl JwtError {
    /// True when the token was refused (answer 401); false for keyring and
    /// signing failures, which are server faults (answer 500).
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            Self::InvalidKey { .. }
                | Self::WeakSecret
                | Self::InvalidSettings(_)
                | Self::Signing
                | Self::IdTokensUnavailable
        )
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> JwtError {
    match e.kind() {
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => JwtError::Malformed,
        ErrorKind::InvalidSignature => JwtError::Signature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::Issuer,
        ErrorKind::InvalidAudience => JwtError::Audience,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject
        | ErrorKind::Json(_) => JwtError::Claims,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            JwtError::Algorithm
        }
        _ => JwtError::Invalid,
    }
}

/// The one place a [`Validation`] is built. Every verification, of every
/// token purpose, goes through it.
fn build_validation(algorithm: Algorithm, settings: &VerifierSettings, audience: &str) -> Validation {
    // `new` pins `algorithms` to exactly this one.
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    // Checked only when present; we do not issue `nbf`, but honour it.
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.leeway = settings.leeway_secs;
    validation
}

/// The header fields verification looks at, parsed by us before
/// jsonwebtoken sees the token (it would refuse `alg: none` as a JSON error,
/// not as a wrong algorithm, and it ignores `crit`).
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
    #[serde(default)]
    typ: Option<String>,
}

fn parse_header(token: &str) -> Result<RawHeader, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// A public key as published in the JWKS.
struct PublishedKey {
    kid: String,
    x: String,
}

/// What signs new tokens. The Ed25519 key is parsed once: jsonwebtoken's
/// `encode` parses the PKCS#8 document and derives the public key (a second
/// curve multiplication, as costly as the signature) for every token, which
/// was a tenth of a refresh's time.
enum TokenSigner {
    Ed25519(SigningKey),
    Hs256(EncodingKey),
}

/// A compact JWS (RFC 7515 section 7.1): `header.payload.signature`, each
/// base64url without padding, `sign` signing the first two.
fn compact_jws<H: Serialize, C: Serialize>(
    header: &H,
    claims: &C,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, JwtError>,
) -> Result<String, JwtError> {
    let header = serde_json::to_vec(header).map_err(|_| JwtError::Signing)?;
    let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Signing)?;
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature = sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The signing key, the verification keys by `kid`, and the settings.
/// Immutable: the application swaps in a new `Arc<Keyring>` on rotation.
pub struct Keyring {
    algorithm: Algorithm,
    current_kid: String,
    signer: TokenSigner,
    decoding_keys: HashMap<String, DecodingKey>,
    /// In JWKS order: the signing key first, then the verify-only keys.
    published: Vec<PublishedKey>,
    settings: VerifierSettings,
    /// [`build_validation`] for `settings.audience`, built once for the hot
    /// path (access tokens).
    access_validation: Validation,
    /// RS256 keys for ID and logout tokens (EdDSA rings only).
    rs256: Option<rsa::RsaRing>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.decoding_keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("Keyring")
            .field("algorithm", &self.algorithm_name())
            .field("current_kid", &self.current_kid)
            .field("kids", &kids)
            .field("rs256", &self.rs256)
            .field("settings", &self.settings)
            .finish()
    }
}

fn check_settings(settings: &VerifierSettings) -> Result<(), JwtError> {
    if settings.issuer.is_empty() {
        return Err(JwtError::InvalidSettings("issuer is empty"));
    }
    if settings.audience.is_empty() {
        return Err(JwtError::InvalidSettings("audience is empty"));
    }
    if settings.leeway_secs > MAX_LEEWAY_SECS {
        return Err(JwtError::InvalidSettings("leeway is above 300 seconds"));
    }
    Ok(())
}

fn invalid_key(kid: &str, reason: &'static str) -> JwtError {
    JwtError::InvalidKey {
        kid: kid.to_owned(),
        reason,
    }
}

/// A kid is 1 to [`MAX_KID_LEN`] printable ASCII characters.
fn check_kid(kid: &str) -> Result<(), JwtError> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid_key(kid, "kid must be 1 to 128 printable ASCII characters"));
    }
    Ok(())
}

/// Checks a kid and a raw Ed25519 public key; returns its decoding key.
fn ed25519_decoding_key(key: &KeyMaterial) -> Result<DecodingKey, JwtError> {
    check_kid(&key.kid)?;
    // jsonwebtoken slices the first 32 bytes without a length check, so a
    // short key would panic at verification: refuse it here.
    let bytes: &[u8; 32] = key
        .public_raw
        .as_slice()
        .try_into()
        .map_err(|_| invalid_key(&key.kid, "public key is not 32 bytes"))?;
    let verifying = VerifyingKey::from_bytes(bytes)
        .map_err(|_| invalid_key(&key.kid, "public key is not a valid Ed25519 point"))?;
    if verifying.is_weak() {
        return Err(invalid_key(&key.kid, "public key has small order"));
    }
    Ok(DecodingKey::from_ed_der(bytes))
}

impl Keyring {
    /// An EdDSA (Ed25519) keyring. `signing` signs new tokens; `verify_only`
    /// holds retired keys whose tokens may still be alive and pre-published
    /// next keys. All of them appear in the JWKS.
    ///
    /// Fails when a kid is empty or repeated, a public key is not a valid
    /// 32-byte Ed25519 key, the signing key's PKCS#8 does not parse or does
    /// not match its public key, or the settings are invalid.
    pub fn eddsa(
        signing: KeyMaterial,
        verify_only: Vec<KeyMaterial>,
        settings: VerifierSettings,
    ) -> Result<Self, JwtError> {
        check_settings(&settings)?;
        let private = SigningKey::from_pkcs8_der(&signing.private_pkcs8)
            .map_err(|_| invalid_key(&signing.kid, "private key is not Ed25519 PKCS#8"))?;
        if private.verifying_key().as_bytes().as_slice() != signing.public_raw.as_slice() {
            return Err(invalid_key(
                &signing.kid,
                "private and public key do not belong together",
            ));
        }
        let mut decoding_keys = HashMap::new();
        let mut published = Vec::new();
        for key in std::iter::once(&signing).chain(verify_only.iter()) {
            let decoding = ed25519_decoding_key(key)?;
            if decoding_keys.insert(key.kid.clone(), decoding).is_some() {
                return Err(invalid_key(&key.kid, "kid appears twice in the keyring"));
            }
            published.push(PublishedKey {
                kid: key.kid.clone(),
                x: URL_SAFE_NO_PAD.encode(&key.public_raw),
            });
        }
        let access_validation = build_validation(Algorithm::EdDSA, &settings, &settings.audience);
        Ok(Self {
            algorithm: Algorithm::EdDSA,
            current_kid: signing.kid,
            signer: TokenSigner::Ed25519(private),
            decoding_keys,
            published,
            settings,
            access_validation,
            rs256: None,
        })
    }

    /// Adds RS256 keys to an EdDSA keyring, for ID and logout tokens only:
    /// `signing` signs them when a client asks for RS256, `verify_only` are
    /// the next and retired RS256 keys. All of them appear in the JWKS.
    ///
    /// Fails on an HS256 keyring ([`JwtError::IdTokensUnavailable`]), when a
    /// kid is repeated (also across the two algorithms), or when a key is
    /// not an RSA key of 2048 to 8192 bits whose private and public halves
    /// belong together.
    pub fn with_rs256(mut self, signing: KeyMaterial, verify_only: Vec<KeyMaterial>) -> Result<Self, JwtError> {
        if self.algorithm != Algorithm::EdDSA {
            return Err(JwtError::IdTokensUnavailable);
        }
        let ring = rsa::RsaRing::new(&signing, &verify_only)?;
        if let Some(kid) = ring.decoding.keys().find(|kid| self.decoding_keys.contains_key(*kid)) {
            return Err(invalid_key(kid, "kid appears twice in the keyring"));
        }
        self.rs256 = Some(ring);
        Ok(self)
    }

    /// An HS256 keyring for single-app setups: one shared secret of at
    /// least 32 bytes (RFC 7518 section 3.2), `kid` [`HS256_KID`], nothing
    /// published in the JWKS.
    pub fn hs256(secret: &Secret, settings: VerifierSettings) -> Result<Self, JwtError> {
        check_settings(&settings)?;
        let bytes = secret.expose().as_bytes();
        if bytes.len() < 32 {
            return Err(JwtError::WeakSecret);
        }
        let access_validation = build_validation(Algorithm::HS256, &settings, &settings.audience);
        Ok(Self {
            algorithm: Algorithm::HS256,
            current_kid: HS256_KID.to_owned(),
            signer: TokenSigner::Hs256(EncodingKey::from_secret(bytes)),
            decoding_keys: HashMap::from([(HS256_KID.to_owned(), DecodingKey::from_secret(bytes))]),
            published: Vec::new(),
            settings,
            access_validation,
            rs256: None,
        })
    }

    /// Signs `claims` with the current key; the header carries `alg`, `typ`
    /// and `kid`. The caller sets `iss`, `aud`, `exp` etc. in the claims.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.current_kid.clone());
        self.sign_with(&header, claims)
    }

    /// Signs `claims` under `header` with the current key.
    fn sign_with<C: Serialize>(&self, header: &Header, claims: &C) -> Result<String, JwtError> {
        match &self.signer {
            TokenSigner::Ed25519(key) => compact_jws(header, claims, |input| {
                Ok(ed25519_dalek::Signer::sign(key, input).to_bytes().to_vec())
            }),
            TokenSigner::Hs256(key) => jsonwebtoken::encode(header, claims, key).map_err(|_| JwtError::Signing),
        }
    }

    /// Verifies a token of the purpose whose audience is `audience` and
    /// returns its claims. See the module doc for what is checked.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, audience: &str) -> Result<C, JwtError> {
        if audience == self.settings.audience {
            self.verify_with(token, &self.access_validation)
        } else {
            let validation = build_validation(self.algorithm, &self.settings, audience);
            self.verify_with(token, &validation)
        }
    }

    /// Verifies an access token (audience `settings.audience`).
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, JwtError> {
        self.verify_with(token, &self.access_validation)
    }

    fn verify_with<C: DeserializeOwned>(&self, token: &str, validation: &Validation) -> Result<C, JwtError> {
        let header = parse_header(token)?;
        if header.alg != self.algorithm_name() {
            return Err(JwtError::Algorithm);
        }
        // We implement no JWS extensions, so any critical one is unknown.
        if header.crit.is_some() {
            return Err(JwtError::Malformed);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding_keys.get(kid))
            .ok_or(JwtError::UnknownKey)?;
        jsonwebtoken::decode::<C>(token, key, validation)
            .map(|data| data.claims)
            .map_err(map_jwt_error)
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn audience(&self) -> &str {
        &self.settings.audience
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> &str {
        &self.current_kid
    }

    /// The `kid` RS256 ID tokens are signed with, if the ring holds RS256 keys.
    pub fn current_rs256_kid(&self) -> Option<&str> {
        self.rs256.as_ref().map(|r| r.current_kid.as_str())
    }

    /// "EdDSA" or "HS256", as in the JWT header and discovery document.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::HS256 => "HS256",
            _ => "EdDSA",
        }
    }

    /// The JWKS document for `/.well-known/jwks.json`: every public key of
    /// the ring (current, next and retired), the Ed25519 keys first, then the
    /// RS256 ones. Empty for HS256: the secret is never published.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<serde_json::Value> = self
            .published
            .iter()
            .map(|key| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": key.x,
                    "kid": key.kid,
                    "use": "sig",
                    "alg": "EdDSA",
                })
            })
            .collect();
        if let Some(rs256) = &self.rs256 {
            keys.extend(rs256.jwks());
        }
        serde_json::json!({ "keys": keys })
    }
}

pub mod id_token;
pub mod rsa;

pub use id_token::{IdTokenAlg, IdTokenClaims, LogoutEvents, LogoutTokenClaims, token_hash};
pub use rsa::generate_rs256;

#[cfg(test)]
mod tests;
