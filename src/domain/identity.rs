//! Email addresses and phone numbers, the two identifiers a user signs in with.
//!
//! `Email::parse` trims and lowercases, so case and whitespace variants of one
//! address are the same key in the unique index. `Phone::parse` normalises to
//! E.164 with the `phonenumber` crate (libphonenumber's metadata), so
//! `+1 (415) 555-0100` and `+14155550100` collide too.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > 254 {
            return Err("is too long");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("is not a valid email address");
        };
        let valid_local = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let valid_domain = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if valid_local && valid_domain {
            Ok(Email(email))
        } else {
            Err("is not a valid email address")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reconstructs a value the store wrote; it was parsed on the way in.
    pub(crate) fn from_trusted(value: String) -> Self {
        Email(value)
    }
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
