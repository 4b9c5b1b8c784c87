//! Email addresses and phone numbers, the two identifiers a user signs in with.
//!
//! `Email::parse` gives the one canonical form of an address (see its doc:
//! NFKC-stable single-script local part, case-folded; IDNA domain), so every
//! spelling of one mailbox is the same key in the unique index. `Phone::parse` normalises to
//! E.164 with the `phonenumber` crate (libphonenumber's metadata), so
//! `+1 (415) 555-0100` and `+14155550100` collide too.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address into its one canonical form, so that every way of
    /// writing one mailbox is the same key in the unique index and the same
    /// string in every assertion forge makes about it:
    ///
    /// - the local part must already be in NFKC form (a fullwidth `ｏ`, a
    ///   ligature or a compatibility digit is refused, not silently mapped,
    ///   because a look-alike address is how one person poses as another),
    ///   must be written in one script (UTS #39; `pаypal` with a Cyrillic
    ///   `а` is refused), and is then case-folded;
    /// - the domain goes through IDNA (UTS #46) to its ASCII (punycode)
    ///   form, which also folds its case.
    ///
    /// The result is idempotent: parsing a canonical address returns it.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let input = input.trim();
        if input.is_empty() {
            return Err("is required");
        }
        if input.len() > 254 {
            return Err("is too long");
        }
        let Some((local, domain)) = input.rsplit_once('@') else {
            return Err("is not a valid email address");
        };
        let local = canonical_local(local)?;
        let domain = canonical_domain(domain)?;
        let email = format!("{local}@{domain}");
        if email.len() > 254 {
            return Err("is too long");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (ASCII: IDNA domains are kept in punycode).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// The address when it is plain ASCII, the only form an HTTP header may
    /// carry (an internationalised local part has none).
    pub fn ascii(&self) -> Option<&str> {
        self.0.is_ascii().then_some(self.0.as_str())
    }

    /// Reconstructs a value the store wrote; it was parsed on the way in.
    pub(crate) fn from_trusted(value: String) -> Self {
        Email(value)
    }
}

const INVALID: &str = "is not a valid email address";

fn canonical_local(local: &str) -> Result<String, &'static str> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::MixedScript;
    if local.is_empty() || local.len() > 64 {
        return Err(INVALID);
    }
    if !local
        .chars()
        .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
    {
        return Err(INVALID);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(INVALID);
    }
    if !local.is_ascii() {
        if local.nfkc().ne(local.chars()) {
            return Err("contains characters that are not in their normal form (NFKC)");
        }
        if !local.is_single_script() {
            return Err("mixes characters of different scripts");
        }
    }
    // Case folding, then NFKC again: folding can leave a string that is not
    // normalised (NFKC_Casefold is the closure of the two).
    let folded: String = caseless::default_case_fold_str(local).nfkc().collect();
    if folded.len() > 64
        || !folded
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
    {
        return Err(INVALID);
    }
    Ok(folded)
}

fn canonical_domain(domain: &str) -> Result<String, &'static str> {
    if domain.is_empty() || domain.len() > 253 || domain.ends_with('.') {
        return Err(INVALID);
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| INVALID)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid = ascii.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid { Ok(ascii) } else { Err(INVALID) }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Accepts international numbers only (a leading `+` and country code):
    /// a server has no sensible default region for its users.
    /// Only digits and the usual separators: libphonenumber would otherwise
    /// skip trailing junk (`+44 20 7946 0958 ***` parses), and the limit
    /// counts the input as sent, as the OpenAPI `maxLength` does.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if input.len() > 32 {
            return Err("must be an international number starting with +");
        }
        let input = input.trim();
        if input.is_empty() {
            return Err("is required");
        }
        if !input.starts_with('+') || !input[1..].chars().all(|c| c.is_ascii_digit() || " ().-".contains(c)) {
            return Err("must be an international number starting with +");
        }
        let number = phonenumber::parse(None, input).map_err(|_| "is not a valid phone number")?;
        if !phonenumber::is_valid(&number) {
            return Err("is not a valid phone number");
        }
        Ok(Phone(number.format().mode(phonenumber::Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_trusted(value: String) -> Self {
        Phone(value)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user signs in with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identifier {
    Email(Email),
    Phone(Phone),
}

impl Identifier {
    /// Parses a login name: anything with an `@` is an email, else a phone.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if input.contains('@') {
            Email::parse(input).map(Identifier::Email)
        } else {
            Phone::parse(input).map(Identifier::Phone)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Identifier::Email(e) => e.as_str(),
            Identifier::Phone(p) => p.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn rejects_bad_emails() {
        for bad in [
            "", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b..c", "a@-b.c", ".a@b.c", "a@b.c\n",
        ] {
            if bad.trim() != bad {
                continue;
            }
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(65))).is_err());
    }

    #[test]
    fn email_is_canonical() {
        // Case folding covers more than ASCII, and the domain goes to punycode.
        assert_eq!(
            Email::parse("ÉLODIE@Exämple.COM").unwrap().as_str(),
            "élodie@xn--exmple-cua.com"
        );
        assert_eq!(
            Email::parse("élodie@xn--exmple-cua.com").unwrap().as_str(),
            "élodie@xn--exmple-cua.com"
        );
        assert_eq!(Email::parse("STRASSE@x.de"), Email::parse("straße@x.de"));
        assert_eq!(Email::parse("ops@EXAMPLE.com").unwrap().domain(), "example.com");
        assert_eq!(
            Email::parse("ops@example.com").unwrap().ascii(),
            Some("ops@example.com")
        );
        assert_eq!(Email::parse("élodie@example.com").unwrap().ascii(), None);
    }

    #[test]
    fn look_alike_local_parts_are_refused() {
        // A fullwidth `ｏ` (U+FF4F) is not NFKC-stable: it would pose as `ops`.
        assert!(Email::parse("\u{ff4f}ps@example.com").is_err());
        // The `fi` ligature, a superscript digit: also changed by NFKC.
        assert!(Email::parse("\u{fb01}nance@example.com").is_err());
        assert!(Email::parse("ops\u{00b9}@example.com").is_err());
        // Latin with a Cyrillic `а` (U+0430): mixed scripts.
        assert!(Email::parse("p\u{0430}ypal@example.com").is_err());
        // One script throughout is fine.
        assert!(Email::parse("\u{043f}\u{0430}\u{0432}\u{0435}\u{043b}@example.com").is_ok());
        // A fullwidth domain is mapped by IDNA to the same ASCII domain.
        assert_eq!(
            Email::parse("ops@\u{ff45}xample.com").unwrap().as_str(),
            "ops@example.com"
        );
    }

    #[test]
    fn phone_is_e164() {
        assert_eq!(Phone::parse("+1 (415) 555-0100").unwrap().as_str(), "+14155550100");
        assert_eq!(Phone::parse("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        assert!(Phone::parse("4155550100").is_err());
        assert!(Phone::parse("+1 555").is_err());
        assert!(Phone::parse("+abc").is_err());
        assert!(Phone::parse("+44 20 7946 0958 ***").is_err());
        assert!(Phone::parse(&format!(" {} ", "+442079460958".repeat(3))).is_err());
    }

    proptest! {
        #[test]
        fn email_parse_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e.clone());
                prop_assert_eq!(e.as_str(), e.as_str().trim());
            }
        }

        #[test]
        fn case_variants_collide(local in "[a-zA-Z0-9]{1,20}", domain in "[a-zA-Z]{1,10}") {
            let a = Email::parse(&format!("{local}@{domain}.com")).unwrap();
            let b = Email::parse(&format!(" {}@{}.COM\t", local.to_uppercase(), domain.to_uppercase())).unwrap();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn phone_parse_never_panics(s in "\\PC{0,40}") {
            let _ = Phone::parse(&s);
        }
    }
}
