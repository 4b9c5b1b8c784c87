//! Random secrets and the hashes the database keeps of them.
//!
//! Invariants: every random value comes from the operating system's CSPRNG
//! ([`OsRng`]), never from a seeded or thread-local generator; opaque tokens
//! carry 256 bits of randomness; the database only ever sees
//! [`hash_token`] of a token, so a leaked table cannot be replayed; secret
//! comparisons go through [`constant_time_eq`] so their timing does not say
//! how many leading bytes matched.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::RngCore;
use rand::distributions::Uniform;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of randomness in an opaque token: 256 bits, as API.md promises for
/// refresh tokens, and far beyond what online guessing can reach.
const TOKEN_BYTES: usize = 32;

/// A fresh opaque token: 32 bytes from the OS CSPRNG, base64url without
/// padding (43 characters, safe in URLs, cookies and headers unescaped).
///
/// Used for refresh tokens, cookie session ids and CSRF tokens. Store only
/// [`hash_token`] of it.
pub fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `bytes` bytes from the OS CSPRNG, base64url without padding: a public
/// identifier that must not be guessable (an OAuth `client_id` takes 16).
pub fn random_url_safe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Lower-case hex SHA-256 of a token: the form the database stores and looks
/// up by.
///
/// A plain (unsalted, fast) hash is right here, unlike for passwords: the
/// input already has 256 bits of entropy, so there is nothing to brute-force,
/// and lookups must be by exact value.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `len` decimal digits, each uniform over 0..=9, from the OS CSPRNG.
///
/// For one-time codes. `Uniform` samples by rejection, so there is no modulo
/// bias (a plain `byte % 10` would make 0..=5 slightly likelier).
pub fn random_digits(len: usize) -> String {
    let digit = Uniform::new(0u8, 10);
    OsRng
        .sample_iter(digit)
        .take(len)
        .map(|d| char::from(b'0' + d))
        .collect()
}

/// Constant-time equality of two byte strings (CSRF tokens, codes, MACs).
///
/// The time depends on the lengths only, never on where the first
/// difference is. Unequal lengths compare unequal.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lower-case hex HMAC-SHA256 of `msg` under `key` (webhook signatures,
/// keyed hashes of identifiers).
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    hex::encode(hmac_sha256(key, msg))
}

/// HMAC-SHA256 of `msg` under `key`, raw (rate-limit keys, device tokens).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // Infallible: HMAC accepts keys of any length (long keys are hashed,
    // short ones padded); `new_from_slice` only errs for fixed-size MACs.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn random_token_is_43_base64url_chars_of_32_bytes() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
    }

    #[test]
    fn a_thousand_tokens_are_distinct() {
        let tokens: HashSet<String> = (0..1000).map(|_| random_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[test]
    fn hash_token_is_hex_sha256() {
        // Known answer: SHA-256("abc").
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = random_token();
        assert_eq!(hash_token(&t), hash_token(&t));
        assert_ne!(hash_token(&t), hash_token(&random_token()));
    }

    #[test]
    fn random_digits_edge_lengths() {
        assert_eq!(random_digits(0), "");
        assert_eq!(random_digits(6).len(), 6);
    }

    #[test]
    fn random_digits_cover_every_digit_roughly_evenly() {
        let mut counts = [0usize; 10];
        for c in random_digits(20_000).bytes() {
            counts[usize::from(c - b'0')] += 1;
        }
        // Expected 2000 each; 1700..2300 is more than 7 standard deviations.
        for (digit, n) in counts.iter().enumerate() {
            assert!((1700..2300).contains(n), "digit {digit} seen {n} times");
        }
    }

    proptest! {
        #[test]
        fn random_digits_have_the_asked_length_and_only_digits(len in 0usize..64) {
            let code = random_digits(len);
            prop_assert_eq!(code.chars().count(), len);
            prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }

        #[test]
        fn constant_time_eq_agrees_with_eq(a in proptest::collection::vec(any::<u8>(), 0..40),
                                           b in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(constant_time_eq(&a, &b), a == b);
            prop_assert!(constant_time_eq(&a, &a));
        }
    }

    #[test]
    fn constant_time_eq_rejects_prefixes() {
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn hmac_matches_rfc4231_test_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Empty and very long keys are valid HMAC keys.
        assert_eq!(hmac_sha256_hex(b"", b"x").len(), 64);
        assert_eq!(hmac_sha256_hex(&[7u8; 200], b"x").len(), 64);
    }
}
