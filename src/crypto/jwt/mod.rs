//! Signing and strict verification of JWTs with a keyring that supports key
//! rotation, and the JWKS document that publishes its public keys.
//!
//! Invariants:
//! - One algorithm per keyring (EdDSA or HS256), pinned: a token whose header
//!   names any other `alg` (`none`, HS256 against an EdDSA ring, RS256, ...)
//!   is refused before any signature or claim is looked at, so algorithm
//!   confusion (HMAC keyed with the public key) cannot happen.
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

use std::collections::HashMap;

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
}

impl JwtError {
    /// True when the token was refused (answer 401); false for keyring and
    /// signing failures, which are server faults (answer 500).
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            Self::InvalidKey { .. } | Self::WeakSecret | Self::InvalidSettings(_) | Self::Signing
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

/// The signing key, the verification keys by `kid`, and the settings.
/// Immutable: the application swaps in a new `Arc<Keyring>` on rotation.
pub struct Keyring {
    algorithm: Algorithm,
    current_kid: String,
    encoding_key: EncodingKey,
    decoding_keys: HashMap<String, DecodingKey>,
    /// In JWKS order: the signing key first, then the verify-only keys.
    published: Vec<PublishedKey>,
    settings: VerifierSettings,
    /// [`build_validation`] for `settings.audience`, built once for the hot
    /// path (access tokens).
    access_validation: Validation,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.decoding_keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("Keyring")
            .field("algorithm", &self.algorithm_name())
            .field("current_kid", &self.current_kid)
            .field("kids", &kids)
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

/// Checks a kid and a raw Ed25519 public key; returns its decoding key.
fn ed25519_decoding_key(key: &KeyMaterial) -> Result<DecodingKey, JwtError> {
    if key.kid.is_empty() || key.kid.len() > MAX_KID_LEN || !key.kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid_key(&key.kid, "kid must be 1 to 128 printable ASCII characters"));
    }
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
            encoding_key: EncodingKey::from_ed_der(&signing.private_pkcs8),
            decoding_keys,
            published,
            settings,
            access_validation,
        })
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
            encoding_key: EncodingKey::from_secret(bytes),
            decoding_keys: HashMap::from([(HS256_KID.to_owned(), DecodingKey::from_secret(bytes))]),
            published: Vec::new(),
            settings,
            access_validation,
        })
    }

    /// Signs `claims` with the current key; the header carries `alg`, `typ`
    /// and `kid`. The caller sets `iss`, `aud`, `exp` etc. in the claims.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.current_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key).map_err(|_| JwtError::Signing)
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

    /// "EdDSA" or "HS256", as in the JWT header and discovery document.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::HS256 => "HS256",
            _ => "EdDSA",
        }
    }

    /// The JWKS document for `/.well-known/jwks.json`: every public key of
    /// the ring (current, next and retired). Empty for HS256: the secret is
    /// never published.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
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
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    const LEEWAY: u64 = 30;

    fn settings() -> VerifierSettings {
        VerifierSettings {
            issuer: "https://auth.example.com".into(),
            audience: "forge".into(),
            leeway_secs: LEEWAY,
        }
    }

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn claims_for(ring: &Keyring) -> AccessClaims {
        let now = now();
        AccessClaims {
            iss: ring.issuer().to_owned(),
            aud: ring.audience().to_owned(),
            sub: uuid::Uuid::now_v7().to_string(),
            sid: uuid::Uuid::now_v7().to_string(),
            tid: "default".into(),
            roles: vec!["member".into()],
            iat: now,
            exp: now + 900,
            jti: uuid::Uuid::new_v4().to_string(),
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
        }
    }

    fn ring() -> (Keyring, KeyMaterial) {
        let key = generate_ed25519();
        (Keyring::eddsa(key.clone(), vec![], settings()).unwrap(), key)
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    /// header.payload.signature with arbitrary parts.
    fn forge(header: serde_json::Value, claims: &AccessClaims, signature: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(&header),
            b64(&serde_json::to_value(claims).unwrap()),
            signature
        )
    }

    fn hs256_token_with_secret(secret: &[u8], kid: &str, claims: &AccessClaims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn sign_verify_round_trip_with_kid_in_header() {
        let (ring, key) = ring();
        let claims = claims_for(&ring);
        let token = ring.sign(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(ring.current_kid(), key.kid);
        assert_eq!(ring.algorithm_name(), "EdDSA");
        assert_eq!(ring.verify_access(&token).unwrap(), claims);
        assert_eq!(ring.verify::<AccessClaims>(&token, "forge").unwrap(), claims);
    }

    #[test]
    fn retired_key_still_verifies_and_new_key_signs() {
        let old = generate_ed25519();
        let new = generate_ed25519();
        let old_ring = Keyring::eddsa(old.clone(), vec![], settings()).unwrap();
        let claims = claims_for(&old_ring);
        let old_token = old_ring.sign(&claims).unwrap();

        let rotated = Keyring::eddsa(new.clone(), vec![old.clone()], settings()).unwrap();
        assert_eq!(rotated.verify_access(&old_token).unwrap(), claims);
        let new_token = rotated.sign(&claims).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().kid,
            Some(new.kid.clone())
        );
        assert_eq!(rotated.verify_access(&new_token).unwrap(), claims);

        // A retired key whose private half was deleted still verifies.
        let public_only = KeyMaterial {
            private_pkcs8: Vec::new(),
            ..old.clone()
        };
        let ring = Keyring::eddsa(new.clone(), vec![public_only], settings()).unwrap();
        assert!(ring.verify_access(&old_token).is_ok());

        // Once the old key is dropped from the ring, its tokens are refused.
        let dropped = Keyring::eddsa(new, vec![], settings()).unwrap();
        assert_eq!(dropped.verify_access(&old_token).unwrap_err(), JwtError::UnknownKey);
    }

    #[test]
    fn pre_published_next_key_verifies_before_it_signs() {
        let current = generate_ed25519();
        let next = generate_ed25519();
        let ring = Keyring::eddsa(current, vec![next.clone()], settings()).unwrap();
        let next_ring = Keyring::eddsa(next, vec![], settings()).unwrap();
        let token = next_ring.sign(&claims_for(&next_ring)).unwrap();
        assert!(ring.verify_access(&token).is_ok());
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let (ring, _) = ring();
        let (stranger, _) = self::ring();
        let token = stranger.sign(&claims_for(&ring)).unwrap();
        assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::UnknownKey);

        // Same key, but no kid in the header.
        let (ring, key) = self::ring();
        let no_kid = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims_for(&ring),
            &EncodingKey::from_ed_der(&key.private_pkcs8),
        )
        .unwrap();
        assert_eq!(ring.verify_access(&no_kid).unwrap_err(), JwtError::UnknownKey);

        // A kid of another shape is not looked up in any clever way.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("{}x", key.kid));
        let wrong_kid = jsonwebtoken::encode(
            &header,
            &claims_for(&ring),
            &EncodingKey::from_ed_der(&key.private_pkcs8),
        )
        .unwrap();
        assert_eq!(ring.verify_access(&wrong_kid).unwrap_err(), JwtError::UnknownKey);
    }

    #[test]
    fn alg_none_is_refused() {
        let (ring, key) = ring();
        let claims = claims_for(&ring);
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = forge(
                serde_json::json!({"alg": alg, "typ": "JWT", "kid": key.kid}),
                &claims,
                "",
            );
            assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Algorithm, "{alg}");
        }
        // Also with a leftover valid signature, and without a trailing dot.
        let valid = ring.sign(&claims).unwrap();
        let signature = valid.rsplit('.').next().unwrap();
        let token = forge(serde_json::json!({"alg": "none", "kid": key.kid}), &claims, signature);
        assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Algorithm);
        let two_parts = token.rsplit_once('.').unwrap().0;
        assert_eq!(ring.verify_access(two_parts).unwrap_err(), JwtError::Malformed);
    }

    #[test]
    fn hs256_keyed_with_the_public_key_is_refused() {
        let (ring, key) = ring();
        let claims = claims_for(&ring);
        let x = URL_SAFE_NO_PAD.encode(&key.public_raw);
        for secret in [key.public_raw.as_slice(), x.as_bytes()] {
            let token = hs256_token_with_secret(secret, &key.kid, &claims);
            assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Algorithm);
        }
        // Even if the alg guard were bypassed, jsonwebtoken's pinned
        // Validation refuses the HMAC family for this key.
        let token = hs256_token_with_secret(&key.public_raw, &key.kid, &claims);
        let decoding = DecodingKey::from_ed_der(&key.public_raw);
        assert!(jsonwebtoken::decode::<AccessClaims>(&token, &decoding, &ring.access_validation).is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let (ring, key) = ring();
        let claims = claims_for(&ring);
        for alg in ["RS256", "ES256", "PS256", "HS512", "EdDSA "] {
            let token = forge(
                serde_json::json!({"alg": alg, "typ": "JWT", "kid": key.kid}),
                &claims,
                "c2lnbmF0dXJl",
            );
            assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Algorithm, "{alg}");
        }
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let (ring, _) = ring();
        let claims = claims_for(&ring);
        let token = ring.sign(&claims).unwrap();
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();

        let mut elevated = claims.clone();
        elevated.roles = vec!["admin".into()];
        let tampered = format!(
            "{header}.{}.{signature}",
            b64(&serde_json::to_value(&elevated).unwrap())
        );
        assert_eq!(ring.verify_access(&tampered).unwrap_err(), JwtError::Signature);

        // A flipped bit in the signature.
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig[10] ^= 1;
        let flipped = format!("{}.{}", token.rsplit_once('.').unwrap().0, URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(ring.verify_access(&flipped).unwrap_err(), JwtError::Signature);

        // A truncated signature, an empty one, garbage.
        let prefix = token.rsplit_once('.').unwrap().0;
        for bad in [&signature[..20], "", "!!!"] {
            let t = format!("{prefix}.{bad}");
            assert!(ring.verify_access(&t).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn swapping_the_kid_to_another_known_key_fails() {
        let a = generate_ed25519();
        let b = generate_ed25519();
        let ring = Keyring::eddsa(a.clone(), vec![b.clone()], settings()).unwrap();
        let token = ring.sign(&claims_for(&ring)).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let swapped = format!(
            "{}.{rest}",
            b64(&serde_json::json!({"typ": "JWT", "alg": "EdDSA", "kid": b.kid}))
        );
        assert_eq!(ring.verify_access(&swapped).unwrap_err(), JwtError::Signature);
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let (ring, _) = ring();
        let mut claims = claims_for(&ring);
        claims.exp = now() - (LEEWAY as i64) - 60;
        let expired = ring.sign(&claims).unwrap();
        assert_eq!(ring.verify_access(&expired).unwrap_err(), JwtError::Expired);

        claims.exp = now() - 5;
        let within_leeway = ring.sign(&claims).unwrap();
        assert!(ring.verify_access(&within_leeway).is_ok());
    }

    #[test]
    fn not_before_in_the_future_is_refused() {
        let (ring, _) = ring();
        let mut claims = serde_json::to_value(claims_for(&ring)).unwrap();
        claims["nbf"] = serde_json::json!(now() + 3600);
        let token = ring.sign(&claims).unwrap();
        assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::NotYetValid);
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let (ring, _) = ring();
        let mut claims = claims_for(&ring);
        claims.iss = "https://evil.example.com".into();
        let token = ring.sign(&claims).unwrap();
        assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Issuer);
    }

    #[test]
    fn wrong_audience_is_refused_and_purposes_are_separate() {
        let (ring, _) = ring();
        let mut claims = claims_for(&ring);
        claims.aud = "forge-reset".into();
        let reset = ring.sign(&claims).unwrap();
        assert_eq!(ring.verify_access(&reset).unwrap_err(), JwtError::Audience);
        // The same token passes where its own audience is expected...
        assert_eq!(ring.verify::<AccessClaims>(&reset, "forge-reset").unwrap(), claims);
        // ...and an access token does not pass as a reset token.
        let access = ring.sign(&claims_for(&ring)).unwrap();
        assert_eq!(
            ring.verify::<AccessClaims>(&access, "forge-reset").unwrap_err(),
            JwtError::Audience
        );
        // An audience list that includes ours is the one RFC 7519 shape
        // jsonwebtoken accepts, but it does not fit AccessClaims.
        let mut as_list = serde_json::to_value(claims_for(&ring)).unwrap();
        as_list["aud"] = serde_json::json!(["other", "forge"]);
        let token = ring.sign(&as_list).unwrap();
        assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Claims);
    }

    #[test]
    fn required_claims_must_be_present() {
        let (ring, _) = ring();
        let full = serde_json::to_value(claims_for(&ring)).unwrap();
        for missing in ["exp", "iss", "aud", "sub"] {
            let mut claims = full.clone();
            claims.as_object_mut().unwrap().remove(missing);
            let token = ring.sign(&claims).unwrap();
            assert_eq!(
                ring.verify::<serde_json::Value>(&token, "forge").unwrap_err(),
                JwtError::Claims,
                "{missing}"
            );
        }
        // Wrong type for exp.
        let mut claims = full.clone();
        claims["exp"] = serde_json::json!("tomorrow");
        let token = ring.sign(&claims).unwrap();
        assert_eq!(
            ring.verify::<serde_json::Value>(&token, "forge").unwrap_err(),
            JwtError::Claims
        );
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let (ring, key) = ring();
        let token = ring.sign(&claims_for(&ring)).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let with_crit = format!(
            "{}.{rest}",
            b64(&serde_json::json!({"alg": "EdDSA", "kid": key.kid, "crit": ["exp"], "exp": 1}))
        );
        assert_eq!(ring.verify_access(&with_crit).unwrap_err(), JwtError::Malformed);
    }

    #[test]
    fn malformed_tokens_are_errors_not_panics() {
        let (ring, _) = ring();
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "eyJhbGciOiJFZERTQSJ9",
            "eyJhbGciOiJFZERTQSJ9..",
            "e30.e30.",
            "bnVsbA.e30.e30",
            huge.as_str(),
        ] {
            assert!(ring.verify_access(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hs256_round_trip_and_cross_algorithm_refusal() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let hs = Keyring::hs256(&secret, settings()).unwrap();
        assert_eq!(hs.algorithm_name(), "HS256");
        assert_eq!(hs.current_kid(), HS256_KID);
        let claims = claims_for(&hs);
        let token = hs.sign(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(HS256_KID));
        assert_eq!(hs.verify_access(&token).unwrap(), claims);

        // EdDSA tokens are refused by the HS256 ring, and vice versa.
        let (ed, _) = ring();
        let ed_token = ed.sign(&claims).unwrap();
        assert_eq!(hs.verify_access(&ed_token).unwrap_err(), JwtError::Algorithm);
        assert_eq!(ed.verify_access(&token).unwrap_err(), JwtError::Algorithm);

        // Right secret, but another kid, or none.
        let other_kid = hs256_token_with_secret(secret.expose().as_bytes(), "k1", &claims);
        assert_eq!(hs.verify_access(&other_kid).unwrap_err(), JwtError::UnknownKey);
        let no_kid = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.expose().as_bytes()),
        )
        .unwrap();
        assert_eq!(hs.verify_access(&no_kid).unwrap_err(), JwtError::UnknownKey);

        // Another secret.
        let forged = hs256_token_with_secret(&[b'x'; 32], HS256_KID, &claims);
        assert_eq!(hs.verify_access(&forged).unwrap_err(), JwtError::Signature);

        // alg none against HS256.
        let none = forge(serde_json::json!({"alg": "none", "kid": HS256_KID}), &claims, "");
        assert_eq!(hs.verify_access(&none).unwrap_err(), JwtError::Algorithm);

        // The secret is never published.
        assert_eq!(hs.jwks(), serde_json::json!({"keys": []}));
    }

    #[test]
    fn hs256_secret_must_be_32_bytes() {
        assert_eq!(
            Keyring::hs256(&Secret::new("x".repeat(31)), settings()).unwrap_err(),
            JwtError::WeakSecret
        );
        assert!(Keyring::hs256(&Secret::new("x".repeat(32)), settings()).is_ok());
    }

    #[test]
    fn jwks_lists_every_key_with_32_byte_x() {
        let current = generate_ed25519();
        let retired = generate_ed25519();
        let next = generate_ed25519();
        let ring = Keyring::eddsa(current.clone(), vec![retired.clone(), next.clone()], settings()).unwrap();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3);
        for (jwk, material) in keys.iter().zip([&current, &retired, &next]) {
            assert_eq!(jwk["kid"], material.kid.as_str());
            assert_eq!(jwk["kty"], "OKP");
            assert_eq!(jwk["crv"], "Ed25519");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], "EdDSA");
            let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
            assert_eq!(x.len(), 32);
            assert_eq!(x, material.public_raw);
            assert!(jwk.get("d").is_none(), "private key published");
            assert_eq!(jwk.as_object().unwrap().len(), 6);
            // A verifier holding only the JWKS can check our tokens.
            let decoding = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
            if material.kid == current.kid {
                let token = ring.sign(&claims_for(&ring)).unwrap();
                let mut validation = Validation::new(Algorithm::EdDSA);
                validation.set_audience(&["forge"]);
                assert!(jsonwebtoken::decode::<AccessClaims>(&token, &decoding, &validation).is_ok());
            }
        }
    }

    #[test]
    fn generated_kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(ed25519_thumbprint(&x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let key = generate_ed25519();
        assert_eq!(key.kid, ed25519_thumbprint(&key.public_raw));
        assert_eq!(key.public_raw.len(), 32);
        assert_ne!(key.kid, generate_ed25519().kid);
    }

    #[test]
    fn key_material_debug_does_not_leak_private_bytes() {
        let key = generate_ed25519();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains(&key.kid));
        assert!(shown.contains("***"));
        let private = &key.private_pkcs8;
        // The seed is the last 32 bytes of a v1 document and sits right after
        // the 16-byte prefix in v2; search for it in every usual spelling.
        let seed = SigningKey::from_pkcs8_der(private).unwrap().to_bytes();
        for needle in [
            hex::encode(private),
            hex::encode(seed),
            URL_SAFE_NO_PAD.encode(private),
            URL_SAFE_NO_PAD.encode(seed),
            base64::engine::general_purpose::STANDARD.encode(seed),
            format!("{:?}", private),
            format!("{:?}", &seed[..]),
            format!("{:?}", &seed[..4]).trim_end_matches(']').to_owned(),
        ] {
            assert!(!shown.contains(&needle), "debug output leaks {needle}");
        }
        let ring = Keyring::eddsa(key, vec![], settings()).unwrap();
        let shown = format!("{ring:?}");
        assert!(!shown.contains(&hex::encode(seed)));
        assert!(!shown.contains(&format!("{:?}", &seed[..4]).trim_end_matches(']').to_owned()));
    }

    #[test]
    fn errors_do_not_contain_the_token() {
        let (ring, key) = ring();
        let mut claims = claims_for(&ring);
        claims.sub = "secret-subject-value".into();
        claims.exp = now() - 3600;
        let expired = ring.sign(&claims).unwrap();
        let bad = [
            expired.clone(),
            format!("{expired}x"),
            forge(serde_json::json!({"alg": "none", "kid": key.kid}), &claims, ""),
            forge(
                serde_json::json!({"alg": "EdDSA", "kid": "secret-kid-value"}),
                &claims,
                "",
            ),
        ];
        for token in bad {
            let err = ring.verify_access(&token).unwrap_err();
            let message = format!("{err} {err:?}");
            assert!(!message.contains("secret-"), "{message}");
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!message.contains(part), "{message}");
            }
            assert!(err.is_rejection());
        }
    }

    #[test]
    fn keyring_construction_checks_the_keys() {
        let a = generate_ed25519();
        let b = generate_ed25519();

        // Private and public halves of different keys.
        let mixed = KeyMaterial {
            public_raw: b.public_raw.clone(),
            ..a.clone()
        };
        assert!(matches!(
            Keyring::eddsa(mixed, vec![], settings()),
            Err(JwtError::InvalidKey { .. })
        ));

        // Short public key (would make jsonwebtoken panic at verify time).
        let short = KeyMaterial {
            public_raw: b.public_raw[..31].to_vec(),
            ..b.clone()
        };
        assert!(matches!(
            Keyring::eddsa(a.clone(), vec![short], settings()),
            Err(JwtError::InvalidKey { .. })
        ));

        // A small-order point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = KeyMaterial {
            kid: "weak".into(),
            private_pkcs8: Vec::new(),
            public_raw: identity.to_vec(),
        };
        assert!(matches!(
            Keyring::eddsa(a.clone(), vec![weak], settings()),
            Err(JwtError::InvalidKey { .. })
        ));

        // Garbage private key.
        let garbage = KeyMaterial {
            private_pkcs8: vec![1, 2, 3],
            ..a.clone()
        };
        assert!(matches!(
            Keyring::eddsa(garbage, vec![], settings()),
            Err(JwtError::InvalidKey { .. })
        ));

        // Duplicate and empty kids.
        let dup = KeyMaterial {
            kid: a.kid.clone(),
            ..b.clone()
        };
        assert!(matches!(
            Keyring::eddsa(a.clone(), vec![dup], settings()),
            Err(JwtError::InvalidKey { .. })
        ));
        let empty = KeyMaterial {
            kid: String::new(),
            ..b.clone()
        };
        assert!(matches!(
            Keyring::eddsa(a.clone(), vec![empty], settings()),
            Err(JwtError::InvalidKey { .. })
        ));

        // Settings.
        for bad in [
            VerifierSettings {
                leeway_secs: MAX_LEEWAY_SECS + 1,
                ..settings()
            },
            VerifierSettings {
                issuer: String::new(),
                ..settings()
            },
            VerifierSettings {
                audience: String::new(),
                ..settings()
            },
        ] {
            assert!(matches!(
                Keyring::eddsa(a.clone(), vec![], bad),
                Err(JwtError::InvalidSettings(_))
            ));
        }
        let err = Keyring::eddsa(
            a.clone(),
            vec![],
            VerifierSettings {
                leeway_secs: 999,
                ..settings()
            },
        )
        .unwrap_err();
        assert!(!err.is_rejection());
    }
}
