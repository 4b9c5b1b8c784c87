use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::testing::upstream::TestKey;
use crate::upstream::discovery::parse_jwks;

const ISS: &str = "https://idp.example.com";
const CLIENT: &str = "client-1";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_800_000_000;

fn keys(of: &[&TestKey]) -> Vec<Jwk> {
    let jwks: Vec<Value> = of.iter().map(|k| k.jwk()).collect();
    parse_jwks(&json!({ "keys": jwks })).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "sub": "24400320",
        "aud": CLIENT,
        "exp": NOW + 600,
        "iat": NOW,
        "nonce": NONCE,
        "email": "jane@example.com",
        "email_verified": true,
        "name": "Jane",
    })
}

fn check(token: &str, keys: &[Jwk]) -> Result<IdClaims, Reason> {
    check_with(token, keys, &IssuerRule::Exact(ISS.into()))
}

fn check_with(token: &str, keys: &[Jwk], rule: &IssuerRule) -> Result<IdClaims, Reason> {
    validate(
        token,
        keys,
        &Expected {
            issuer: rule,
            client_id: CLIENT,
            nonce: NONCE,
            now: NOW,
        },
    )
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[test]
fn a_valid_token_gives_the_person() {
    let key = TestKey::generate("k1");
    let got = check(&key.sign(&claims()), &keys(&[&key])).unwrap();
    assert_eq!(
        got,
        IdClaims {
            sub: "24400320".into(),
            email: Some("jane@example.com".into()),
            email_verified: true,
            name: Some("Jane".into()),
        }
    );
}

#[test]
fn each_rule_refuses_its_token() {
    let key = TestKey::generate("k1");
    let ks = keys(&[&key]);
    let cases: Vec<(Value, Reason)> = vec![
        (json!({"aud": "someone-else"}), "wrong audience"),
        (json!({"aud": ["a", "b"]}), "wrong audience"),
        (json!({"aud": 5}), "wrong audience"),
        (json!({"aud": [CLIENT, "other"]}), "wrong authorized party"),
        (json!({"azp": "other"}), "wrong authorized party"),
        (json!({"nonce": "other"}), "wrong nonce"),
        (json!({"nonce": null}), "wrong nonce"),
        (json!({"exp": NOW - LEEWAY_SECS - 1}), "expired"),
        (json!({"iat": NOW + LEEWAY_SECS + 1}), "issued in the future"),
        (json!({"iat": NOW - MAX_AGE_SECS - 1}), "issued too long ago"),
        (json!({"nbf": NOW + LEEWAY_SECS + 1}), "not yet valid"),
        (json!({"iss": "https://evil.example.com"}), "wrong issuer"),
        (json!({"iss": format!("{ISS}/")}), "wrong issuer"),
        (json!({"sub": ""}), "no subject"),
        (json!({"exp": null}), "malformed"),
        (json!({"iat": null}), "malformed"),
    ];
    for (change, reason) in cases {
        let token = key.sign(&with(change.clone()));
        assert_eq!(check(&token, &ks), Err(reason), "{change}");
    }
}

#[test]
fn small_skew_and_several_audiences_with_azp_pass() {
    let key = TestKey::generate("k1");
    let ks = keys(&[&key]);
    for change in [
        json!({"exp": NOW - LEEWAY_SECS + 5}),
        json!({"iat": NOW + 30}),
        json!({"aud": [CLIENT, "other"], "azp": CLIENT}),
        json!({"aud": [CLIENT]}),
        json!({"azp": CLIENT}),
    ] {
        assert!(check(&key.sign(&with(change.clone())), &ks).is_ok(), "{change}");
    }
}

#[test]
fn keys_are_chosen_by_kid() {
    let k1 = TestKey::generate("k1");
    let k2 = TestKey::generate("k2");
    let stranger = TestKey::generate("k3");
    assert!(check(&k2.sign(&claims()), &keys(&[&k1, &k2])).is_ok());
    assert_eq!(check(&stranger.sign(&claims()), &keys(&[&k1, &k2])), Err(UNKNOWN_KEY));

    // Another key's signature under a known kid.
    let mut forged_header = Header::new(Algorithm::ES256);
    forged_header.kid = Some("k1".into());
    let forged = stranger.sign_with(forged_header, &claims());
    assert_eq!(check(&forged, &keys(&[&k1])), Err("bad signature"));

    // No kid: fine with a single fitting key, unknown with several.
    let no_kid = k1.sign_with(Header::new(Algorithm::ES256), &claims());
    assert!(check(&no_kid, &keys(&[&k1])).is_ok());
    assert_eq!(check(&no_kid, &keys(&[&k1, &k2])), Err(UNKNOWN_KEY));
}

#[test]
fn tampered_claims_break_the_signature() {
    let key = TestKey::generate("k1");
    let token = key.sign(&claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(json!({"sub": "admin"}))).unwrap());
    assert_eq!(check(&parts.join("."), &keys(&[&key])), Err("bad signature"));
}

#[test]
fn none_and_hmac_are_refused() {
    let key = TestKey::generate("k1");
    let ks = keys(&[&key]);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
    assert_eq!(check(&format!("{none_header}.{body}."), &ks), Err("malformed"));

    // HS256 keyed with the public key (the algorithm-confusion attack).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused =
        jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(key.public_pem().as_bytes())).unwrap();
    assert_eq!(check(&confused, &ks), Err("unsupported algorithm"));

    // An algorithm of another family than the key's.
    let rs_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1"}"#);
    let token = key.sign(&claims());
    let sig = token.rsplit('.').next().unwrap();
    assert_eq!(
        check(&format!("{rs_header}.{body}.{sig}"), &ks),
        Err("algorithm does not fit the key")
    );
}

#[test]
fn rs256_keys_verify_too() {
    use openssl::rsa::Rsa;
    let rsa = Rsa::generate(2048).unwrap();
    let jwk = json!({"keys": [{
        "kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
        "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
    }]});
    let ks = parse_jwks(&jwk).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("r1".into());
    let signing = EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().unwrap()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims(), &signing).unwrap();
    assert!(check(&token, &ks).is_ok());
}

#[test]
fn apple_verification_strings_count() {
    let key = TestKey::generate("k1");
    let ks = keys(&[&key]);
    let verified = check(&key.sign(&with(json!({"email_verified": "true"}))), &ks).unwrap();
    assert!(verified.email_verified);
    let not = check(&key.sign(&with(json!({"email_verified": "false"}))), &ks).unwrap();
    assert!(!not.email_verified);
    let missing = check(&key.sign(&with(json!({"email_verified": null}))), &ks).unwrap();
    assert!(!missing.email_verified);
    let no_email = check(&key.sign(&with(json!({"email": null}))), &ks).unwrap();
    assert_eq!(no_email.email, None);
    assert!(!no_email.email_verified);
}

#[test]
fn microsoft_tokens_name_their_own_tenant() {
    let key = TestKey::generate("k1");
    let ks = keys(&[&key]);
    let rule = IssuerRule::MicrosoftTemplate("https://login.microsoftonline.com/{tenantid}/v2.0".into());
    let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let iss = format!("https://login.microsoftonline.com/{tid}/v2.0");
    assert!(check_with(&key.sign(&with(json!({"iss": iss, "tid": tid}))), &ks, &rule).is_ok());
    let other = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    assert_eq!(
        check_with(&key.sign(&with(json!({"iss": iss, "tid": other}))), &ks, &rule),
        Err("wrong issuer")
    );
    assert_eq!(
        check_with(&key.sign(&with(json!({"iss": iss}))), &ks, &rule),
        Err("wrong issuer")
    );
}

#[test]
fn google_accepts_its_legacy_issuer() {
    let key = TestKey::generate("k1");
    let ks = keys(&[&key]);
    let rule = IssuerRule::Google("https://accounts.google.com".into());
    assert!(check_with(&key.sign(&with(json!({"iss": "accounts.google.com"}))), &ks, &rule).is_ok());
    assert!(
        check_with(
            &key.sign(&with(json!({"iss": "https://accounts.google.com"}))),
            &ks,
            &rule
        )
        .is_ok()
    );
    assert_eq!(
        check_with(&key.sign(&with(json!({"iss": "google.com"}))), &ks, &rule),
        Err("wrong issuer")
    );
}
