//! Sign in with Apple's client secret: a short-lived ES256 JWT signed with
//! the developer's private key (the PKCS#8 PEM stored as the provider's
//! client secret), per Apple's "Creating a client secret".

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::error::UpstreamError;
use crate::domain::providers::AppleKey;
use crate::secret::Secret;

/// Apple's audience for client secrets.
pub const AUDIENCE: &str = "https://appleid.apple.com";

/// How long a client secret lives: it is made for one token request.
pub const LIFETIME_SECS: i64 = 300;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'static str,
    sub: &'a str,
}

/// The client secret for one token request at `now` (Unix seconds).
pub fn client_secret(key: &AppleKey, client_id: &str, pem: &Secret, now: i64) -> Result<String, UpstreamError> {
    let signing = EncodingKey::from_ec_pem(pem.expose().as_bytes())
        .map_err(|_| UpstreamError::Misconfigured("the Apple key is not a PKCS#8 P-256 PEM"))?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.key_id.clone());
    let claims = Claims {
        iss: &key.team_id,
        iat: now,
        exp: now + LIFETIME_SECS,
        aud: AUDIENCE,
        sub: client_id,
    };
    jsonwebtoken::encode(&header, &claims, &signing)
        .map_err(|_| UpstreamError::Misconfigured("the Apple key cannot sign"))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;
    use crate::testing::upstream::TestKey;

    #[test]
    fn the_secret_is_an_es256_jwt_apple_can_verify() {
        let key = TestKey::generate("ABC123DEFG");
        let apple = AppleKey {
            team_id: "TEAM123456".into(),
            key_id: "ABC123DEFG".into(),
        };
        let now = 1_800_000_000;
        let jwt = client_secret(&apple, "com.example.web", &Secret::new(key.pkcs8_pem()), now).unwrap();

        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("ABC123DEFG"));

        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&["TEAM123456"]);
        validation.validate_exp = false;
        let verifying = DecodingKey::from_ec_pem(key.public_pem().as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Value>(&jwt, &verifying, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "com.example.web");
        assert_eq!(claims["iat"], now);
        assert_eq!(claims["exp"], now + LIFETIME_SECS);

        // Another key does not verify it.
        let other = TestKey::generate("x");
        let other = DecodingKey::from_ec_pem(other.public_pem().as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&jwt, &other, &validation).is_err());
    }

    #[test]
    fn a_bad_key_is_a_misconfiguration_that_names_no_secret() {
        let apple = AppleKey {
            team_id: "T".into(),
            key_id: "K".into(),
        };
        let err = client_secret(&apple, "c", &Secret::new("-----BEGIN PRIVATE KEY-----\nnope\n"), 0).unwrap_err();
        assert!(matches!(err, UpstreamError::Misconfigured(_)));
        assert!(!err.to_string().contains("nope"));
    }
}
