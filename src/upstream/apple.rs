//! Sign in with Apple's particulars: the client secret, a short-lived
//! ES256 JWT signed with the developer's private key (the PKCS#8 PEM stored
//! as the provider's client secret), per Apple's "Creating a client
//! secret"; and the `user` field of its form-post answer ([`user_name`]).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::error::UpstreamError;
use crate::domain::providers::{AppleKey, MAX_NAME_CHARS};
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

/// The longest `user` field read; a longer one is ignored.
pub const MAX_USER_FIELD_LEN: usize = 2048;

/// Apple's `user` form field (only the part forge reads).
#[derive(Deserialize)]
struct User {
    name: Option<UserName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserName {
    first_name: Option<String>,
    last_name: Option<String>,
}

/// The person's name in the `user` form field Apple posts with the first
/// authorization of an app (`{"name": {"firstName", "lastName"}, "email"}`,
/// JSON): first and last name trimmed and joined by a space, at most
/// [`MAX_NAME_CHARS`] characters. `None` for a field that is longer than
/// [`MAX_USER_FIELD_LEN`], not that JSON, without a name, or with a control
/// character in the name: the field is a courtesy, never a reason to fail.
///
/// The field is not signed (the browser posts it, and anyone can post
/// anything), so it is only ever a name to show; its `email` is never read:
/// the address comes from the signed ID token alone.
pub fn user_name(field: &str) -> Option<String> {
    if field.len() > MAX_USER_FIELD_LEN {
        return None;
    }
    let name = serde_json::from_str::<User>(field).ok()?.name?;
    let parts: Vec<&str> = [name.first_name.as_deref(), name.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    if parts.iter().any(|part| part.chars().any(char::is_control)) {
        return None;
    }
    let joined: String = parts.join(" ").chars().take(MAX_NAME_CHARS).collect();
    let name = joined.trim_end();
    (!name.is_empty()).then(|| name.to_owned())
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

    #[test]
    fn the_user_field_gives_a_trimmed_bounded_name_and_nothing_else() {
        let name = |f: &str| user_name(f);
        assert_eq!(
            name(r#"{"name":{"firstName":" Jane ","lastName":"Doe "},"email":"someone@example.com"}"#).as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(name(r#"{"name":{"firstName":"Jane"}}"#).as_deref(), Some("Jane"));
        assert_eq!(
            name(r#"{"name":{"firstName":"","lastName":"Doe"}}"#).as_deref(),
            Some("Doe")
        );
        assert_eq!(
            name(r#"{"name":{"firstName":"Zoë","lastName":"Ça"},"extra":[1,2]}"#).as_deref(),
            Some("Zoë Ça")
        );
        let long = format!(r#"{{"name":{{"firstName":"{}","lastName":"Doe"}}}}"#, "é".repeat(150));
        let bounded = name(&long).unwrap();
        assert_eq!(bounded.chars().count(), MAX_NAME_CHARS);
        assert!(bounded.chars().all(|c| c == 'é'));
        // A cut that ends on the space leaves no trailing blank.
        let at_space = format!(
            r#"{{"name":{{"firstName":"{}","lastName":"Doe"}}}}"#,
            "a".repeat(MAX_NAME_CHARS - 1)
        );
        assert_eq!(name(&at_space), Some("a".repeat(MAX_NAME_CHARS - 1)));
    }

    #[test]
    fn a_user_field_that_is_not_such_json_is_ignored() {
        let padded = format!(
            r#"{{"name":{{"firstName":"Jane","lastName":"Doe"}},"pad":"{}"}}"#,
            "x".repeat(MAX_USER_FIELD_LEN)
        );
        for field in [
            "",
            "Jane Doe",
            "{",
            "null",
            "[]",
            r#"{"email":"jane@example.com"}"#,
            r#"{"name":null}"#,
            r#"{"name":{}}"#,
            r#"{"name":{"firstName":"  ","lastName":""}}"#,
            r#"{"name":{"firstName":7}}"#,
            r#"{"name":"Jane Doe"}"#,
            r#"{"name":{"firstName":"Jane\u0000","lastName":"Doe"}}"#,
            r#"{"name":{"firstName":"Jane","lastName":"Do\ne"}}"#,
            r#"{"name":{"firstName":"Jane\u001b[31m"}}"#,
            &padded,
        ] {
            assert_eq!(user_name(field), None, "{field}");
        }
    }
}
