//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the
//! `webhook-signature` header is a space-separated list of `v1,` + base64
//! HMAC-SHA256 of `"{webhook-id}.{webhook-timestamp}.{body}"` under the
//! decoded secret, one entry per secret that signs (two while a rotation
//! overlaps). Secrets are shown as `whsec_` + base64 of 32 random bytes, the
//! form receivers' libraries take as is.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rand::rngs::OsRng;

use crate::crypto::tokens::hmac_sha256;
use crate::secret::Secret;

/// The prefix of a shown secret.
pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A new signing secret: the raw bytes (to seal) and the shown form.
pub fn new_secret() -> (Vec<u8>, Secret) {
    let mut raw = vec![0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut raw);
    let shown = Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&raw)));
    (raw, shown)
}

/// One `v1,` signature of `body` sent as message `id` at `timestamp`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac_sha256(secret, &signed)))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a [u8]>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector the Standard Webhooks reference libraries publish:
    /// reproducing it says a receiver's library accepts what forge sends
    /// (a round trip through forge's own code could not).
    #[test]
    fn the_published_test_vector_reproduces() {
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let header = signature_header([b"new".as_slice(), b"old".as_slice()], "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [sign(b"new", "id", 1, b"{}"), sign(b"old", "id", 1, b"{}")]);
    }

    #[test]
    fn new_secrets_are_shown_in_the_standard_form() {
        let (raw, shown) = new_secret();
        assert_eq!(raw.len(), 32);
        let b64 = shown.expose().strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), raw);
    }
}
