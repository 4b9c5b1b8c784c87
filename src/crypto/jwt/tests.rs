//! Unit tests of signing, strict verification, the keyring and the JWKS,
//! kept in their own file so the module itself reads in one sitting.

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
        amr: Default::default(),
        aal: Default::default(),
        client_id: None,
        scope: None,
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

/// Signing with the key parsed once changes no byte: Ed25519 is
/// deterministic, so the token equals jsonwebtoken's own encoding of the
/// same header and claims.
#[test]
fn an_eddsa_token_is_byte_for_byte_what_jsonwebtoken_encodes() {
    let (ring, key) = ring();
    let claims = claims_for(&ring);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let expected = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&key.private_pkcs8)).unwrap();
    assert_eq!(ring.sign(&claims).unwrap(), expected);
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

#[test]
fn assurance_claims_round_trip_and_older_tokens_read_as_aal_1() {
    use crate::domain::{Aal, Amr, Assurance};

    let (ring, _) = ring();
    let mut claims = claims_for(&ring);
    let stepped = Assurance::password().stepped_up([Amr::Otp]);
    claims.amr = stepped.amr.clone();
    claims.aal = stepped.aal;
    let token = ring.sign(&claims).unwrap();
    let payload = serde_json::to_value(&claims).unwrap();
    assert_eq!(payload["amr"], serde_json::json!(["mfa", "otp", "pwd"]));
    assert_eq!(payload["aal"], 2);
    let read = ring.verify_access(&token).unwrap();
    assert_eq!(read.assurance(), stepped);

    // A token minted before forge recorded assurance has neither claim.
    let mut legacy = serde_json::to_value(claims_for(&ring)).unwrap();
    let object = legacy.as_object_mut().unwrap();
    object.remove("amr");
    object.remove("aal");
    let read: AccessClaims = serde_json::from_value(legacy).unwrap();
    assert_eq!(read.assurance(), Assurance::unknown());
    assert_eq!(read.aal, Aal::One);

    // Values this version does not know are skipped, never raised.
    let mut odd = serde_json::to_value(claims_for(&ring)).unwrap();
    odd["amr"] = serde_json::json!(["pwd", "retina-v9"]);
    odd["aal"] = serde_json::json!(3);
    let read: AccessClaims = serde_json::from_value(odd).unwrap();
    assert_eq!(read.assurance(), Assurance::password());
}

// ---- RS256 keys, ID tokens and logout tokens ----

mod oidc {
    use super::*;
    use std::sync::OnceLock;

    /// RSA key generation is slow: two keys shared by the tests.
    fn rsa_keys() -> &'static (KeyMaterial, KeyMaterial) {
        static KEYS: OnceLock<(KeyMaterial, KeyMaterial)> = OnceLock::new();
        KEYS.get_or_init(|| (generate_rs256().unwrap(), generate_rs256().unwrap()))
    }

    /// EdDSA current + next, RS256 current + next.
    fn oidc_ring() -> (Keyring, KeyMaterial) {
        let (rsa_current, rsa_next) = rsa_keys().clone();
        let ring = Keyring::eddsa(generate_ed25519(), vec![generate_ed25519()], settings())
            .unwrap()
            .with_rs256(rsa_current.clone(), vec![rsa_next])
            .unwrap();
        (ring, rsa_current)
    }

    fn id_claims(ring: &Keyring) -> IdTokenClaims {
        let now = now();
        IdTokenClaims {
            iss: ring.issuer().to_owned(),
            sub: uuid::Uuid::now_v7().to_string(),
            aud: "client-1".into(),
            exp: now + 300,
            iat: now,
            auth_time: now - 10,
            nonce: Some("n-0S6_WzA2Mj".into()),
            acr: None,
            amr: [Amr::Pwd, Amr::Otp, Amr::Mfa].into_iter().collect(),
            sid: Some(uuid::Uuid::now_v7().to_string()),
            azp: None,
            at_hash: Some(token_hash(IdTokenAlg::RS256, "access")),
            c_hash: None,
            email: Some("a@example.com".into()),
            email_verified: Some(true),
            phone_number: None,
            phone_number_verified: None,
            name: Some("Ada".into()),
            roles: Some(vec!["member".into()]),
            tenant: Some("default".into()),
        }
    }

    fn logout_claims(ring: &Keyring) -> LogoutTokenClaims {
        let now = now();
        LogoutTokenClaims {
            iss: ring.issuer().to_owned(),
            aud: "client-1".into(),
            iat: now,
            exp: now + 120,
            jti: uuid::Uuid::new_v4().to_string(),
            sub: Some("user-1".into()),
            sid: Some("sso-1".into()),
            events: LogoutEvents::default(),
        }
    }

    fn jwk<'a>(jwks: &'a serde_json::Value, kid: &str) -> &'a serde_json::Value {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("{kid} not in the JWKS"))
    }

    fn validation(alg: Algorithm, aud: &str) -> Validation {
        let mut v = Validation::new(alg);
        v.set_audience(&[aud]);
        v.set_issuer(&["https://auth.example.com"]);
        v
    }

    #[test]
    fn rs256_id_token_verifies_with_the_published_jwk_alone() {
        let (ring, rsa) = oidc_ring();
        let claims = id_claims(&ring);
        let token = ring.sign_id_token(&claims, IdTokenAlg::RS256).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(rsa.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));

        let jwks = ring.jwks();
        let key = jwk(&jwks, &rsa.kid);
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["e"], "AQAB");
        assert_eq!(key.as_object().unwrap().len(), 6, "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private} published");
        }
        let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256, "RSA 2048");
        let decoding =
            DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
        let decoded =
            jsonwebtoken::decode::<IdTokenClaims>(&token, &decoding, &validation(Algorithm::RS256, "client-1"))
                .unwrap()
                .claims;
        assert_eq!(decoded, claims);
        // The key's kid is its RFC 7638 thumbprint, from the JWK alone.
        let canonical = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            key["e"].as_str().unwrap(),
            key["n"].as_str().unwrap()
        );
        assert_eq!(rsa.kid, URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())));
    }

    #[test]
    fn rsa_thumbprint_matches_rfc7638() {
        // RFC 7638 section 3.1.
        let n = URL_SAFE_NO_PAD
            .decode(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZC\
                 iFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJ\
                 ZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBn\
                 iIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            )
            .unwrap();
        let e = URL_SAFE_NO_PAD.decode("AQAB").unwrap();
        assert_eq!(
            rsa::rsa_thumbprint(&n, &e),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn eddsa_id_token_verifies_with_the_published_okp_jwk() {
        let (ring, _) = oidc_ring();
        let claims = id_claims(&ring);
        let token = ring.sign_id_token(&claims, IdTokenAlg::EdDSA).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(ring.current_kid()));
        let jwks = ring.jwks();
        let key = jwk(&jwks, ring.current_kid());
        let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
        let decoded =
            jsonwebtoken::decode::<IdTokenClaims>(&token, &decoding, &validation(Algorithm::EdDSA, "client-1"))
                .unwrap()
                .claims;
        assert_eq!(decoded, claims);
    }

    #[test]
    fn jwks_lists_the_ed25519_keys_then_the_rsa_keys() {
        let (ring, rsa) = oidc_ring();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = keys
            .iter()
            .map(|k| (k["kty"].as_str().unwrap(), k["alg"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [("OKP", "EdDSA"), ("OKP", "EdDSA"), ("RSA", "RS256"), ("RSA", "RS256")]
        );
        assert_eq!(keys[2]["kid"], rsa.kid.as_str());
        assert_eq!(ring.id_token_algs(), [IdTokenAlg::EdDSA, IdTokenAlg::RS256]);
        // A ring without RS256 keys signs ID tokens with EdDSA only.
        let (plain, _) = ring_and_key();
        assert_eq!(plain.id_token_algs(), [IdTokenAlg::EdDSA]);
        assert_eq!(
            plain.sign_id_token(&id_claims(&plain), IdTokenAlg::RS256).unwrap_err(),
            JwtError::IdTokensUnavailable
        );
    }

    fn ring_and_key() -> (Keyring, KeyMaterial) {
        super::ring()
    }

    #[test]
    fn the_next_rsa_key_is_published_before_it_signs_and_a_retired_one_still_verifies() {
        let (current, next) = rsa_keys().clone();
        let old_ring = Keyring::eddsa(generate_ed25519(), vec![], settings())
            .unwrap()
            .with_rs256(current.clone(), vec![next.clone()])
            .unwrap();
        let old_token = old_ring
            .sign_id_token(&id_claims(&old_ring), IdTokenAlg::RS256)
            .unwrap();
        // After the rotation: `next` signs, `current` is retired.
        let rotated = Keyring::eddsa(generate_ed25519(), vec![], settings())
            .unwrap()
            .with_rs256(next.clone(), vec![current.clone()])
            .unwrap();
        let new_token = rotated.sign_id_token(&id_claims(&rotated), IdTokenAlg::RS256).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(),
            Some(next.kid.as_str())
        );
        assert!(rotated.verify_id_token_hint(&old_token).is_ok());
        // The old ring published `next` already: it verifies the new token.
        assert!(old_ring.verify_id_token_hint(&new_token).is_ok());
    }

    #[test]
    fn token_hash_known_answers() {
        // OpenID Connect Core 1.0 appendix A.3: c_hash of an RS256 ID token.
        assert_eq!(
            token_hash(
                IdTokenAlg::RS256,
                "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
            ),
            "LDktKdoQak3Pk0cnXxCltA"
        );
        // Left half of SHA-256 / SHA-512, computed independently (Python
        // hashlib): 16 and 32 bytes, base64url without padding.
        assert_eq!(
            token_hash(IdTokenAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNNn"),
            "LzviSY2rKQuHJ9D_EcO1FA"
        );
        assert_eq!(
            token_hash(IdTokenAlg::EdDSA, "jHkWEdUXMU1BwAsC4vtUsZwnNNn"),
            "Ca-yvLvP_52-M1Q6b6SY7hOUSZYu19x4Yww931BhULo"
        );
        assert_eq!(
            token_hash(
                IdTokenAlg::EdDSA,
                "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
            ),
            "E9z1C-c0Az4eTEzE0Nm3OQ3BS2BhMgxuP7x5JAQj1_4"
        );
        let (ring, _) = oidc_ring();
        assert_eq!(
            ring.token_hash(IdTokenAlg::RS256, "x"),
            token_hash(IdTokenAlg::RS256, "x")
        );
    }

    #[test]
    fn id_token_alg_names_are_the_jwa_ones() {
        assert_eq!(serde_json::to_string(&IdTokenAlg::EdDSA).unwrap(), r#""EdDSA""#);
        assert_eq!(serde_json::to_string(&IdTokenAlg::RS256).unwrap(), r#""RS256""#);
        assert_eq!(
            serde_json::from_str::<IdTokenAlg>(r#""RS256""#).unwrap(),
            IdTokenAlg::RS256
        );
        assert!(serde_json::from_str::<IdTokenAlg>(r#""rs256""#).is_err());
        assert_eq!(IdTokenAlg::parse("EdDSA"), Some(IdTokenAlg::EdDSA));
        assert_eq!(IdTokenAlg::parse("HS256"), None);
        assert_eq!(IdTokenAlg::default(), IdTokenAlg::EdDSA);
    }

    #[test]
    fn id_token_hint_accepts_an_expired_token_of_either_algorithm_and_returns_its_aud() {
        let (ring, _) = oidc_ring();
        for alg in IdTokenAlg::ALL {
            let mut claims = id_claims(&ring);
            claims.iat -= 86_400;
            claims.exp = claims.iat + 300;
            let token = ring.sign_id_token(&claims, alg).unwrap();
            let hint = ring.verify_id_token_hint(&token).unwrap();
            assert_eq!(hint, claims, "{alg}");
            assert_eq!(hint.aud, "client-1");
        }
    }

    #[test]
    fn id_token_hint_refuses_what_forge_did_not_issue() {
        let (ring, rsa) = oidc_ring();
        let claims = id_claims(&ring);

        // Another issuer (same keys).
        let other = Keyring::eddsa(
            generate_ed25519(),
            vec![],
            VerifierSettings {
                issuer: "https://evil.example.com".into(),
                ..settings()
            },
        )
        .unwrap()
        .with_rs256(rsa.clone(), vec![])
        .unwrap();
        let mut foreign = claims.clone();
        foreign.iss = "https://evil.example.com".into();
        let token = other.sign_id_token(&foreign, IdTokenAlg::RS256).unwrap();
        assert_eq!(ring.verify_id_token_hint(&token).unwrap_err(), JwtError::Issuer);
        // Another key (unknown kid).
        let stranger = Keyring::eddsa(generate_ed25519(), vec![], settings()).unwrap();
        let token = stranger.sign_id_token(&claims, IdTokenAlg::EdDSA).unwrap();
        assert_eq!(ring.verify_id_token_hint(&token).unwrap_err(), JwtError::UnknownKey);
        // A tampered payload.
        let token = ring.sign_id_token(&claims, IdTokenAlg::RS256).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut tampered = claims.clone();
        tampered.sub = "someone-else".into();
        parts[1] = b64(&serde_json::to_value(&tampered).unwrap());
        assert_eq!(
            ring.verify_id_token_hint(&parts.join(".")).unwrap_err(),
            JwtError::Signature
        );
        // An RS256 header naming an Ed25519 kid, and the reverse.
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": ring.current_kid()});
        let forged = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
        assert_eq!(ring.verify_id_token_hint(&forged).unwrap_err(), JwtError::UnknownKey);
        header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": rsa.kid});
        let forged = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
        assert_eq!(ring.verify_id_token_hint(&forged).unwrap_err(), JwtError::UnknownKey);
        // alg none, and HS256 keyed with the RSA public key (algorithm confusion).
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "kid": rsa.kid})),
            parts[1]
        );
        assert_eq!(ring.verify_id_token_hint(&none).unwrap_err(), JwtError::Algorithm);
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(rsa.kid.clone());
        let confused = jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&rsa.public_raw)).unwrap();
        assert_eq!(ring.verify_id_token_hint(&confused).unwrap_err(), JwtError::Algorithm);
        // A critical header extension.
        let crit = serde_json::json!({"alg": "RS256", "kid": rsa.kid, "crit": ["x"], "x": 1});
        let token = format!("{}.{}.{}", b64(&crit), parts[1], parts[2]);
        assert_eq!(ring.verify_id_token_hint(&token).unwrap_err(), JwtError::Malformed);
        // Garbage.
        for bad in ["", "a.b", "a.b.c", "..", "a.b.c.d"] {
            assert!(ring.verify_id_token_hint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn id_token_hint_refuses_access_and_logout_tokens() {
        let (ring, _) = oidc_ring();
        // An access token: no auth_time.
        let access = ring.sign(&claims_for(&ring)).unwrap();
        assert_eq!(ring.verify_id_token_hint(&access).unwrap_err(), JwtError::Claims);
        // A logout token: typ logout+jwt.
        for alg in IdTokenAlg::ALL {
            let logout = ring.sign_logout_token(&logout_claims(&ring), alg).unwrap();
            assert_eq!(ring.verify_id_token_hint(&logout).unwrap_err(), JwtError::Invalid);
        }
    }

    #[test]
    fn access_token_verification_refuses_id_tokens_signed_with_rs256() {
        let (ring, _) = oidc_ring();
        let mut claims = id_claims(&ring);
        // Even one whose audience is the access-token audience.
        claims.aud = ring.audience().to_owned();
        let token = ring.sign_id_token(&claims, IdTokenAlg::RS256).unwrap();
        assert_eq!(ring.verify_access(&token).unwrap_err(), JwtError::Algorithm);
        assert_eq!(
            ring.verify::<serde_json::Value>(&token, "forge").unwrap_err(),
            JwtError::Algorithm
        );
    }

    #[test]
    fn logout_token_has_the_back_channel_shape() {
        let (ring, rsa) = oidc_ring();
        let claims = logout_claims(&ring);
        let token = ring.sign_logout_token(&claims, IdTokenAlg::RS256).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(rsa.kid.as_str()));
        let jwks = ring.jwks();
        let key = jwk(&jwks, &rsa.kid);
        let decoding =
            DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
        let payload =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation(Algorithm::RS256, "client-1"))
                .unwrap()
                .claims;
        assert_eq!(
            payload["events"],
            serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}})
        );
        for claim in ["iss", "aud", "iat", "exp", "jti", "sub", "sid"] {
            assert!(payload.get(claim).is_some(), "{claim} missing");
        }
        assert!(payload.get("nonce").is_none());
        assert_eq!(serde_json::from_value::<LogoutTokenClaims>(payload).unwrap(), claims);
        // EdDSA too.
        let token = ring.sign_logout_token(&claims, IdTokenAlg::EdDSA).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.typ.as_deref()),
            (Algorithm::EdDSA, Some("logout+jwt"))
        );
        // sub or sid is required; sid alone is enough.
        let mut anonymous = claims.clone();
        anonymous.sub = None;
        anonymous.sid = None;
        assert_eq!(
            ring.sign_logout_token(&anonymous, IdTokenAlg::EdDSA).unwrap_err(),
            JwtError::Claims
        );
        anonymous.sid = Some("sso-1".into());
        assert!(ring.sign_logout_token(&anonymous, IdTokenAlg::EdDSA).is_ok());
    }

    #[test]
    fn id_and_logout_tokens_need_the_rings_issuer() {
        let (ring, _) = oidc_ring();
        let mut claims = id_claims(&ring);
        claims.iss = "https://elsewhere.example.com".into();
        assert_eq!(
            ring.sign_id_token(&claims, IdTokenAlg::EdDSA).unwrap_err(),
            JwtError::Issuer
        );
        let mut logout = logout_claims(&ring);
        logout.iss = claims.iss;
        assert_eq!(
            ring.sign_logout_token(&logout, IdTokenAlg::RS256).unwrap_err(),
            JwtError::Issuer
        );
    }

    #[test]
    fn hs256_rings_sign_no_id_token_and_say_it_is_configuration() {
        let ring = Keyring::hs256(&Secret::new("s".repeat(32)), settings()).unwrap();
        let claims = IdTokenClaims {
            iss: ring.issuer().to_owned(),
            ..id_claims(&oidc_ring().0)
        };
        for alg in IdTokenAlg::ALL {
            let err = ring.sign_id_token(&claims, alg).unwrap_err();
            assert_eq!(err, JwtError::IdTokensUnavailable);
            assert!(!err.is_rejection(), "a server configuration error, not a refused token");
            assert!(err.to_string().contains("jwt.algorithm"), "{err}");
            assert_eq!(
                ring.sign_logout_token(&logout_claims(&ring), alg).unwrap_err(),
                JwtError::IdTokensUnavailable
            );
        }
        assert!(ring.id_token_algs().is_empty());
        let access = ring.sign(&claims_for(&ring)).unwrap();
        assert_eq!(
            ring.verify_id_token_hint(&access).unwrap_err(),
            JwtError::IdTokensUnavailable
        );
        let (rsa, _) = rsa_keys().clone();
        let hs = Keyring::hs256(&Secret::new("s".repeat(32)), settings()).unwrap();
        assert_eq!(hs.with_rs256(rsa, vec![]).unwrap_err(), JwtError::IdTokensUnavailable);
    }

    #[test]
    fn rsa_keys_are_checked_when_the_ring_is_built() {
        let (rsa, other) = rsa_keys().clone();
        let ed = generate_ed25519();
        let base = || Keyring::eddsa(ed.clone(), vec![], settings()).unwrap();
        let reason = |r: Result<Keyring, JwtError>| match r.unwrap_err() {
            JwtError::InvalidKey { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        // Private and public halves of different keys.
        let mixed = KeyMaterial {
            public_raw: other.public_raw.clone(),
            ..rsa.clone()
        };
        assert_eq!(
            reason(base().with_rs256(mixed, vec![])),
            "private and public key do not belong together"
        );
        // An Ed25519 key where an RSA one belongs.
        assert_eq!(
            reason(base().with_rs256(generate_ed25519(), vec![])),
            "private key is not RSA PKCS#8"
        );
        let ed_public = KeyMaterial {
            kid: "ed".into(),
            ..generate_ed25519()
        };
        assert!(base().with_rs256(rsa.clone(), vec![ed_public]).is_err());
        // A kid used by an Ed25519 key, or twice.
        let clash = KeyMaterial {
            kid: ed.kid.clone(),
            ..other.clone()
        };
        assert_eq!(
            reason(base().with_rs256(rsa.clone(), vec![clash])),
            "kid appears twice in the keyring"
        );
        assert_eq!(
            reason(base().with_rs256(rsa.clone(), vec![rsa.clone()])),
            "kid appears twice in the keyring"
        );
        // A 1024-bit key.
        let small = openssl::rsa::Rsa::generate(1024).unwrap();
        let small = openssl::pkey::PKey::from_rsa(small).unwrap();
        let small = KeyMaterial {
            kid: "small".into(),
            private_pkcs8: small.private_key_to_pkcs8().unwrap(),
            public_raw: small.public_key_to_der().unwrap(),
        };
        assert_eq!(
            reason(base().with_rs256(small, vec![])),
            "RSA modulus must have 2048 to 8192 bits"
        );
        // A retired key whose private half was deleted still verifies.
        let public_only = KeyMaterial {
            private_pkcs8: Vec::new(),
            ..other.clone()
        };
        assert!(base().with_rs256(rsa, vec![public_only]).is_ok());
    }

    #[test]
    fn keyring_debug_shows_rsa_kids_but_no_private_bytes() {
        let (ring, rsa) = oidc_ring();
        let shown = format!("{ring:?} {ring:#?}");
        assert!(shown.contains(&rsa.kid), "{shown}");
        let pkcs8 = URL_SAFE_NO_PAD.encode(&rsa.private_pkcs8);
        assert!(!shown.contains(&pkcs8[40..80]));
        assert!(!shown.contains("private"), "{shown}");
    }
}
