//! Recovery codes: the ten single-use codes a user keeps for when their
//! second factor is lost.
//!
//! A code is 10 characters of Crockford's base32 alphabet (digits and
//! lower-case letters without `i`, `l`, `o`, `u`), 50 bits from the OS
//! CSPRNG, shown as `xxxxx-xxxxx`. Typing it back is forgiving: case,
//! dashes and spaces do not matter, and the look-alikes `i`/`l` read as `1`
//! and `o` as `0` (Crockford's decoding rules).
//!
//! The database keeps a keyed hash of each code (HMAC-SHA256 under a key
//! derived from a server secret), not the code. A slow password hash
//! (argon2) buys nothing here: it exists to make guessing a *low-entropy*
//! password from its hash expensive, but a random 50-bit code cannot be
//! guessed from its hash anyway (2^50 tries per code, and the key is needed
//! to even start, which a leak of the codes table alone does not give),
//! while online guesses are throttled by the sign-in limits. The fast keyed
//! hash lets the store find a code by its hash with one indexed, conditional
//! `UPDATE` (`FactorStore::use_recovery_code`), which an argon2 hash, salted
//! per code, would not.

use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distributions::Uniform;
use rand::rngs::OsRng;
use sha2::Sha256;

use super::derive_key;

/// How many codes a user gets.
pub const COUNT: usize = 10;
/// Characters in a code (50 bits: 5 per character).
pub const LENGTH: usize = 10;
/// Crockford's base32 alphabet, lower case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// The HKDF `info` of the hashing key.
const LABEL: &[u8] = b"forge recovery codes v1";

/// One recovery code, normalised (10 characters of the alphabet). `Debug`
/// prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// A fresh code from the OS CSPRNG (uniform over the alphabet:
    /// `Uniform` samples without modulo bias).
    pub fn generate() -> Self {
        let pick = Uniform::new(0, ALPHABET.len());
        Self(
            OsRng
                .sample_iter(pick)
                .take(LENGTH)
                .map(|i| char::from(ALPHABET[i]))
                .collect(),
        )
    }

    /// What a user typed, normalised; `None` when it cannot be a code (any
    /// other character, or another length). Case, spaces and dashes are
    /// ignored; `i` and `l` read as `1`, `o` as `0`.
    pub fn parse(input: &str) -> Option<Self> {
        let mut code = String::with_capacity(LENGTH);
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_lowercase() {
                'i' | 'l' => '1',
                'o' => '0',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || code.len() == LENGTH {
                return None;
            }
            code.push(c);
        }
        (code.len() == LENGTH).then_some(Self(code))
    }

    /// The code as shown to the user once: `xxxxx-xxxxx`.
    pub fn expose_formatted(&self) -> String {
        let (a, b) = self.0.split_at(LENGTH / 2);
        format!("{a}-{b}")
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

/// [`COUNT`] fresh codes.
pub fn generate() -> Vec<RecoveryCode> {
    (0..COUNT).map(|_| RecoveryCode::generate()).collect()
}

/// The key recovery codes are hashed under. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct RecoveryCodeKey([u8; 32]);

impl RecoveryCodeKey {
    /// The hashing key of this server secret (HKDF-SHA256, own label).
    pub fn derive(server_secret: &[u8]) -> Self {
        Self(derive_key(server_secret, LABEL))
    }

    /// Lower-case hex HMAC-SHA256 of the normalised code: what the store
    /// keeps and looks codes up by.
    pub fn hash(&self, code: &RecoveryCode) -> String {
        // Infallible: HMAC accepts keys of any length.
        #[allow(clippy::expect_used)]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(code.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for RecoveryCodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodeKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ten_distinct_codes_of_fifty_bits_shown_as_two_groups() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let shown: HashSet<String> = codes.iter().map(RecoveryCode::expose_formatted).collect();
        assert_eq!(shown.len(), COUNT);
        for s in &shown {
            assert_eq!(s.len(), 11);
            assert_eq!(&s[5..6], "-");
            assert!(s.bytes().filter(|&b| b != b'-').all(|b| ALPHABET.contains(&b)));
        }
        // 32 symbols, 10 of them: 50 bits.
        assert_eq!(ALPHABET.len().ilog2() as usize * LENGTH, 50);
        assert_eq!(ALPHABET.iter().collect::<HashSet<_>>().len(), 32);
    }

    #[test]
    fn generated_codes_use_the_whole_alphabet_evenly() {
        let mut counts = [0usize; 32];
        for _ in 0..2000 {
            for b in RecoveryCode::generate().0.bytes() {
                counts[ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
            }
        }
        // Expected 625 each; 500..750 is beyond 5 standard deviations.
        assert!(counts.iter().all(|n| (500..750).contains(n)), "{counts:?}");
    }

    #[test]
    fn typed_codes_are_normalised() {
        let code = RecoveryCode::parse("abcde-fghjk").unwrap();
        assert_eq!(code.expose_formatted(), "abcde-fghjk");
        for typed in [
            "ABCDE-FGHJK",
            " abcde fghjk ",
            "abcdefghjk",
            "ab-cd-ef-gh-jk",
            "AbCdE\tfGhJk",
        ] {
            assert_eq!(RecoveryCode::parse(typed).as_ref(), Some(&code), "{typed:?}");
        }
        assert_eq!(
            RecoveryCode::parse("oOiIl-LzZzz").unwrap().expose_formatted(),
            "00111-1zzzz"
        );
    }

    #[test]
    fn what_cannot_be_a_code_is_refused() {
        for typed in [
            "",
            "abcde",
            "abcde-fghjkm",
            "abcde-fghju",
            "abcde-fghj!",
            "abcdé-fghjk",
            "abcde_fghjk",
            "ａbcde-fghjk",
        ] {
            assert_eq!(RecoveryCode::parse(typed), None, "{typed:?}");
        }
    }

    #[test]
    fn every_generated_code_parses_back_to_itself() {
        for code in generate() {
            assert_eq!(RecoveryCode::parse(&code.expose_formatted()), Some(code.clone()));
            assert_eq!(RecoveryCode::parse(&code.expose_formatted().to_uppercase()), Some(code));
        }
    }

    #[test]
    fn hashes_are_keyed_hex_and_equal_for_equal_input() {
        let key = RecoveryCodeKey::derive(b"server secret");
        let code = RecoveryCode::parse("abcde-fghjk").unwrap();
        let h = key.hash(&code);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(key.hash(&RecoveryCode::parse("ABCDEFGHJK").unwrap()), h);
        assert_ne!(key.hash(&RecoveryCode::parse("abcde-fghjm").unwrap()), h);
        assert_ne!(RecoveryCodeKey::derive(b"another secret").hash(&code), h);
        assert!(!h.contains("abcdefghjk"));
    }

    #[test]
    fn nothing_secret_is_printed() {
        let code = RecoveryCode::parse("abcde-fghjk").unwrap();
        assert_eq!(format!("{code:?}"), "RecoveryCode(***)");
        assert_eq!(format!("{:?}", RecoveryCodeKey::derive(b"s")), "RecoveryCodeKey(***)");
    }
}
