//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), the
//! `otpauth://` enrolment URI and its QR code.
//!
//! forge enrols with the defaults every authenticator app understands
//! (HMAC-SHA1, 6 digits, 30-second steps); the algorithm, digits and period
//! are parameters so the RFC's own test vectors (8 digits, SHA-1, SHA-256
//! and SHA-512) check this code exactly. A code is accepted one step either
//! side of now (clock skew); [`verify`] says *which* step matched, and the
//! store refuses that step and every earlier one afterwards
//! (`FactorStore::advance_totp_step`), so a code is never accepted twice.
//!
//! Secrets are 20 random bytes (160 bits, RFC 4226's recommended length)
//! from the OS CSPRNG, shown to the user once in base32 (RFC 4648, no
//! padding) and stored only sealed (`crypto::seal`).

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use rand::rngs::OsRng;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Bytes in a new secret: 160 bits, as RFC 4226 section 4 recommends.
pub const SECRET_BYTES: usize = 20;

/// How far from the current step a code may be (RFC 6238 section 5.2
/// recommends at most one step of network delay and clock drift).
const SKEW_STEPS: i64 = 1;

/// The HMAC hash; the URI's `algorithm` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

/// The code's parameters. The default (SHA-1, 6 digits, 30 s) is what
/// authenticator apps assume, whatever the URI says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    /// 6 to 9: the truncated value has 31 bits.
    pub digits: u32,
    /// Seconds per step, at least 1.
    pub period: u32,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// A TOTP secret. `Debug` prints no byte of it; [`TotpSecret::expose`] and
/// [`TotpSecret::to_base32`] are the only ways out.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh secret of [`SECRET_BYTES`] from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A secret from its bytes (an opened sealed secret).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

/// HMAC of `msg` under `key` with the given hash.
fn hmac(algorithm: Algorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    // Infallible: HMAC accepts keys of any length; `new_from_slice` only
    // errs for fixed-size MACs.
    macro_rules! mac {
        ($hash:ty) => {{
            #[allow(clippy::expect_used)]
            let mut mac = Hmac::<$hash>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match algorithm {
        Algorithm::Sha1 => mac!(Sha1),
        Algorithm::Sha256 => mac!(Sha256),
        Algorithm::Sha512 => mac!(Sha512),
    }
}

/// The HOTP value of `counter` (RFC 4226 section 5.3, dynamic truncation),
/// zero-padded to `params.digits`.
pub fn hotp(secret: &[u8], counter: u64, params: &TotpParams) -> String {
    let hash = hmac(params.algorithm, secret, &counter.to_be_bytes());
    let offset = usize::from(hash.last().copied().unwrap_or(0) & 0x0f);
    let word = hash
        .get(offset..offset + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]));
    let modulus = 10u64.pow(params.digits);
    format!("{:0width$}", u64::from(word) % modulus, width = params.digits as usize)
}

/// The time step `unix_time` falls in.
pub fn step_at(unix_time: i64, params: &TotpParams) -> i64 {
    unix_time.div_euclid(i64::from(params.period.max(1)))
}

/// The code for `unix_time`.
pub fn code_at(secret: &[u8], unix_time: i64, params: &TotpParams) -> String {
    hotp(secret, step_at(unix_time, params).max(0).unsigned_abs(), params)
}

/// Checks `code` against the steps around `now` (one either side) and
/// returns the step it matched, for the store to record as used. Every
/// candidate is compared, in constant time, whatever matched first; when two
/// steps share a code (one chance in 10^digits) the later one is returned,
/// which refuses more afterwards, never less. Anything that is not exactly
/// `params.digits` ASCII digits matches nothing.
pub fn verify(secret: &[u8], code: &str, now: i64, params: &TotpParams) -> Option<i64> {
    if code.len() != params.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now, params);
    let mut matched = None;
    for step in current - SKEW_STEPS..=current + SKEW_STEPS {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let expected = hotp(secret, counter, params);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    matched
}

/// What may stand unescaped in the URI's label and values: RFC 3986's
/// unreserved characters. Everything else (the space, `:`, `&`, `?`, `#`,
/// `/`, `%`, any non-ASCII byte) is percent-encoded.
const URI_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The key URI authenticator apps scan:
/// `otpauth://totp/Issuer:account?secret=..&issuer=..&algorithm=SHA1&digits=6&period=30`
/// (Google Authenticator's "Key Uri Format"). Issuer and account are
/// percent-encoded each on its own, so a `:` in either cannot move the
/// label's separator.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret, params: &TotpParams) -> String {
    let issuer = utf8_percent_encode(issuer, URI_VALUE).to_string();
    let account = utf8_percent_encode(account, URI_VALUE);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm={}&digits={}&period={}",
        secret.to_base32(),
        params.algorithm.as_str(),
        params.digits,
        params.period,
    )
}

/// A QR code of `data` (the `otpauth://` URI) as a standalone SVG document,
/// rendered here so the secret never goes to a third-party QR service.
/// Errs only when `data` is too long for any QR code (about 2.9 kB).
pub fn qr_svg(data: &str) -> Result<String, qrcode::types::QrError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(algorithm: Algorithm, digits: u32) -> TotpParams {
        TotpParams {
            algorithm,
            digits,
            period: 30,
        }
    }

    /// RFC 6238 appendix B: the seeds are the ASCII digits repeated to the
    /// hash's length, the codes have 8 digits.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".as_slice();
        let sha256 = b"12345678901234567890123456789012".as_slice();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let vectors: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, c1, c256, c512) in vectors {
            assert_eq!(code_at(sha1, time, &params(Algorithm::Sha1, 8)), c1, "SHA1 at {time}");
            assert_eq!(
                code_at(sha256, time, &params(Algorithm::Sha256, 8)),
                c256,
                "SHA256 at {time}"
            );
            assert_eq!(
                code_at(sha512, time, &params(Algorithm::Sha512, 8)),
                c512,
                "SHA512 at {time}"
            );
        }
    }

    /// RFC 4226 appendix D: HOTP values for counters 0..9, 6 digits.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                hotp(b"12345678901234567890", counter as u64, &TotpParams::default()),
                *code
            );
        }
    }

    /// Our codes agree with an independent implementation (totp-rs) for
    /// random secrets, times and every algorithm.
    #[test]
    fn codes_agree_with_totp_rs() {
        for (ours, theirs) in [
            (Algorithm::Sha1, totp_rs::Algorithm::SHA1),
            (Algorithm::Sha256, totp_rs::Algorithm::SHA256),
            (Algorithm::Sha512, totp_rs::Algorithm::SHA512),
        ] {
            for digits in [6u32, 8] {
                for _ in 0..20 {
                    let secret = TotpSecret::generate();
                    let time = OsRng.next_u32();
                    let reference = totp_rs::TOTP::new_unchecked(
                        theirs,
                        digits as usize,
                        1,
                        30,
                        secret.expose().to_vec(),
                        None,
                        String::new(),
                    );
                    let p = params(ours, digits);
                    assert_eq!(
                        code_at(secret.expose(), i64::from(time), &p),
                        reference.generate(u64::from(time))
                    );
                }
            }
        }
    }

    #[test]
    fn verify_accepts_one_step_either_side_and_says_which() {
        let secret = TotpSecret::generate();
        let p = TotpParams::default();
        let now = 1_700_000_015; // step 56_666_667
        let step = step_at(now, &p);
        for delta in -1..=1 {
            let code = hotp(secret.expose(), (step + delta) as u64, &p);
            assert_eq!(verify(secret.expose(), &code, now, &p), Some(step + delta));
        }
        for delta in [-3, -2, 2, 3] {
            let code = hotp(secret.expose(), (step + delta) as u64, &p);
            // A far step's code may collide with a near one's (1 in 10^6); it
            // then matches that near step, never the far one.
            assert_ne!(verify(secret.expose(), &code, now, &p), Some(step + delta));
        }
    }

    #[test]
    fn verify_refuses_malformed_codes_and_other_secrets() {
        let secret = TotpSecret::generate();
        let p = TotpParams::default();
        let code = code_at(secret.expose(), 1_700_000_000, &p);
        assert!(verify(secret.expose(), &code, 1_700_000_000, &p).is_some());
        assert_eq!(verify(secret.expose(), &format!("{code}0"), 1_700_000_000, &p), None);
        assert_eq!(verify(secret.expose(), &code[..5], 1_700_000_000, &p), None);
        assert_eq!(verify(secret.expose(), "12345a", 1_700_000_000, &p), None);
        assert_eq!(verify(secret.expose(), "", 1_700_000_000, &p), None);
        // Another secret's code matches only by a 1-in-10^6 collision with
        // one of the three neighbouring codes.
        let other = TotpSecret::generate();
        let other_code = code_at(other.expose(), 1_700_000_000, &p);
        let step = step_at(1_700_000_000, &p);
        let near: Vec<String> = (-1..=1).map(|d| hotp(secret.expose(), (step + d) as u64, &p)).collect();
        if !near.contains(&other_code) {
            assert_eq!(verify(secret.expose(), &other_code, 1_700_000_000, &p), None);
        }
    }

    #[test]
    fn secrets_are_20_random_bytes_in_unpadded_base32_and_never_printed() {
        let a = TotpSecret::generate();
        assert_eq!(a.expose().len(), SECRET_BYTES);
        assert_ne!(a, TotpSecret::generate());
        let b32 = a.to_base32();
        assert_eq!(b32.len(), 32);
        assert!(
            b32.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(BASE32_NOPAD.decode(b32.as_bytes()).unwrap(), a.expose());
        assert_eq!(format!("{a:?}"), "TotpSecret(***)");
        // RFC 4648 section 10.
        assert_eq!(TotpSecret::from_bytes(b"foobar".to_vec()).to_base32(), "MZXW6YTBOI");
    }

    #[test]
    fn the_uri_encodes_label_and_issuer() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let uri = otpauth_uri("Acme Co", "ann@example.com", &secret, &TotpParams::default());
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Co:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
        );
        let tricky = otpauth_uri("a:b&c", "x?y#z/é", &secret, &TotpParams::default());
        assert!(tricky.starts_with("otpauth://totp/a%3Ab%26c:x%3Fy%23z%2F%C3%A9?secret="));
        assert!(tricky.contains("&issuer=a%3Ab%26c&"));
    }

    #[test]
    fn the_uri_parses_back_with_totp_rs() {
        let secret = TotpSecret::generate();
        let uri = otpauth_uri("Acme", "ann@example.com", &secret, &TotpParams::default());
        let parsed = totp_rs::TOTP::from_url_unchecked(&uri).unwrap();
        assert_eq!(parsed.secret, secret.expose());
        assert_eq!(parsed.issuer.as_deref(), Some("Acme"));
        assert_eq!(parsed.account_name, "ann@example.com");
        assert_eq!(
            parsed.generate(1_700_000_000),
            code_at(secret.expose(), 1_700_000_000, &TotpParams::default())
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let secret = TotpSecret::generate();
        let svg = qr_svg(&otpauth_uri("Acme", "ann@example.com", &secret, &TotpParams::default())).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<path"));
        // It carries the data as modules, not as text.
        assert!(!svg.contains(&secret.to_base32()));
        assert!(qr_svg(&"x".repeat(10_000)).is_err());
    }
}
