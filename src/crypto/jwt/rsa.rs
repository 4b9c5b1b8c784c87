//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 section 3.3) keys of an
//! EdDSA keyring, for the ID and logout tokens of OpenID Connect clients
//! that cannot verify EdDSA (Grafana, several Java and .NET libraries).
//!
//! Keys are RSA 2048 (the floor of RFC 7518 section 3.3), generated, parsed
//! and used for signing by OpenSSL (the `openssl` crate, built vendored into
//! the binary): its private-key operations are blinded and constant-time,
//! which the pure-Rust `rsa` crate does not promise (RUSTSEC-2023-0071).
//! Verification is a public-key operation and goes through jsonwebtoken like
//! every other token.
//!
//! Stored form: [`KeyMaterial::private_pkcs8`] is the PKCS#8 DER of the RSA
//! key, [`KeyMaterial::public_raw`] the DER SubjectPublicKeyInfo of its
//! public half; the `kid` is the RFC 7638 thumbprint of the public JWK.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use sha2::{Digest, Sha256};

use super::{JwtError, KeyMaterial, check_kid, invalid_key};

/// The modulus size of generated keys.
pub const RSA_BITS: u32 = 2048;

/// Smaller moduli are refused when a keyring is built.
const MIN_RSA_BITS: u32 = 2048;

/// Larger moduli are refused too: nothing forge makes is that large, and a
/// huge key would make every signature slow.
const MAX_RSA_BITS: u32 = 8192;

/// A new RSA 2048 key from OpenSSL's CSPRNG, with its RFC 7638 thumbprint
/// as `kid`.
pub fn generate_rs256() -> Result<KeyMaterial, JwtError> {
    let failed = || invalid_key("(new)", "RSA key generation failed");
    let rsa = Rsa::generate(RSA_BITS).map_err(|_| failed())?;
    let kid = rsa_thumbprint(&rsa.n().to_vec(), &rsa.e().to_vec());
    let pkey = PKey::from_rsa(rsa).map_err(|_| failed())?;
    let private_pkcs8 = pkey.private_key_to_pkcs8().map_err(|_| failed())?;
    let public_raw = pkey.public_key_to_der().map_err(|_| failed())?;
    Ok(KeyMaterial {
        kid,
        private_pkcs8,
        public_raw,
    })
}

/// RFC 7638 thumbprint of an RSA public key: base64url(SHA-256 of the
/// canonical JWK `{"e","kty","n"}`), from the big-endian unsigned `n`, `e`.
pub(super) fn rsa_thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public components (n, e) of a stored key, checked: a DER
/// SubjectPublicKeyInfo of an RSA key of 2048 to 8192 bits.
fn public_components(key: &KeyMaterial) -> Result<(Vec<u8>, Vec<u8>), JwtError> {
    check_kid(&key.kid)?;
    let public = PKey::public_key_from_der(&key.public_raw)
        .map_err(|_| invalid_key(&key.kid, "public key is not an RSA SubjectPublicKeyInfo"))?;
    let rsa = public
        .rsa()
        .map_err(|_| invalid_key(&key.kid, "public key is not an RSA key"))?;
    let bits = rsa.n().num_bits().max(0).unsigned_abs();
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(invalid_key(&key.kid, "RSA modulus must have 2048 to 8192 bits"));
    }
    Ok((rsa.n().to_vec(), rsa.e().to_vec()))
}

/// An RSA public key as published in the JWKS (base64url `n` and `e`).
struct PublishedRsa {
    kid: String,
    n: String,
    e: String,
}

/// The RS256 half of an EdDSA keyring: the current key signs, every key
/// (next, current, retired) verifies and is published.
pub(super) struct RsaRing {
    pub(super) current_kid: String,
    signing: PKey<Private>,
    pub(super) decoding: HashMap<String, DecodingKey>,
    published: Vec<PublishedRsa>,
}

/// Kids only; the private key never reaches `Debug`.
impl std::fmt::Debug for RsaRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.published.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("RsaRing")
            .field("current_kid", &self.current_kid)
            .field("kids", &kids)
            .finish()
    }
}

impl RsaRing {
    /// Fails when a kid is invalid or repeated, a public key is not an RSA
    /// key of 2048 to 8192 bits, or the signing key's PKCS#8 does not parse
    /// as RSA or does not match its public key.
    pub(super) fn new(signing: &KeyMaterial, verify_only: &[KeyMaterial]) -> Result<Self, JwtError> {
        let private = PKey::private_key_from_pkcs8(&signing.private_pkcs8)
            .ok()
            .filter(|k| k.id() == Id::RSA)
            .ok_or_else(|| invalid_key(&signing.kid, "private key is not RSA PKCS#8"))?;
        let private_rsa = private
            .rsa()
            .map_err(|_| invalid_key(&signing.kid, "private key is not RSA PKCS#8"))?;
        let (n, e) = public_components(signing)?;
        if private_rsa.n().to_vec() != n || private_rsa.e().to_vec() != e {
            return Err(invalid_key(
                &signing.kid,
                "private and public key do not belong together",
            ));
        }
        let mut decoding = HashMap::new();
        let mut published = Vec::new();
        for key in std::iter::once(signing).chain(verify_only.iter()) {
            let (n, e) = public_components(key)?;
            if decoding
                .insert(key.kid.clone(), DecodingKey::from_rsa_raw_components(&n, &e))
                .is_some()
            {
                return Err(invalid_key(&key.kid, "kid appears twice in the keyring"));
            }
            published.push(PublishedRsa {
                kid: key.kid.clone(),
                n: URL_SAFE_NO_PAD.encode(&n),
                e: URL_SAFE_NO_PAD.encode(&e),
            });
        }
        Ok(Self {
            current_kid: signing.kid.clone(),
            signing: private,
            decoding,
            published,
        })
    }

    /// The RS256 signature (PKCS#1 v1.5, SHA-256) of a JWS signing input.
    pub(super) fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, JwtError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.signing).map_err(|_| JwtError::Signing)?;
        signer.sign_oneshot_to_vec(signing_input).map_err(|_| JwtError::Signing)
    }

    /// The JWKS entries of every key, the signing key first.
    pub(super) fn jwks(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.published.iter().map(|key| {
            serde_json::json!({
                "kty": "RSA",
                "n": key.n,
                "e": key.e,
                "kid": key.kid,
                "use": "sig",
                "alg": "RS256",
            })
        })
    }
}
