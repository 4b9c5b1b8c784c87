//! The password policy: which new passwords forge accepts (length in
//! characters, optional character classes, a zxcvbn strength score that
//! counts the account's own words against it). A rule of the product, not a
//! primitive, so it lives with the other parsed input types rather than with
//! argon2 in [`crate::crypto::password`].
//!
//! Invariant: a check costs little whatever the input. Length is checked
//! first on a bounded count, and zxcvbn only sees a capped prefix.

/// Longest prefix of a password handed to zxcvbn: its cost grows quickly
/// with length, and beyond this the estimate is "strong" anyway.
const ZXCVBN_MAX_CHARS: usize = 128;

/// Rules a new password must meet (`password.*` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// In characters (Unicode scalar values), not bytes.
    pub min_length: usize,
    /// In characters. Bounds the work zxcvbn and argon2 do per request.
    pub max_length: usize,
    /// Minimum zxcvbn score, 0..=4 (0 turns the check off; above 4 rejects
    /// everything, so configuration validation should refuse it).
    pub min_strength: u8,
    /// Require upper and lower case letters, a digit and a symbol.
    pub require_classes: bool,
}

impl Default for PasswordPolicy {
    /// The configuration defaults: 8..=128 characters, score at least 2,
    /// no character-class rule (NIST SP 800-63B advises against it).
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
            min_strength: 2,
            require_classes: false,
        }
    }
}

impl PasswordPolicy {
    /// `Ok` or the human reason for the API's `fields.password`.
    ///
    /// `user_inputs` are words an attacker would try first for this account
    /// (email, name, tenant): a password made of them scores low. Each is
    /// also split at punctuation, so "alice@x.io" contributes "alice".
    ///
    /// Length is checked first (counting at most `max_length + 1` chars, so
    /// a huge input costs little) and zxcvbn runs only on acceptable lengths
    /// and at most [`ZXCVBN_MAX_CHARS`] of them.
    pub fn check(&self, password: &str, user_inputs: &[&str]) -> Result<(), String> {
        let len = password.chars().take(self.max_length.saturating_add(1)).count();
        if len < self.min_length {
            return Err(format!("must be at least {} characters", self.min_length));
        }
        if len > self.max_length {
            return Err(format!("must be at most {} characters", self.max_length));
        }
        if self.require_classes && !has_all_classes(password) {
            return Err("must contain upper and lower case letters, a digit and a symbol".into());
        }
        if self.min_strength > 0 {
            let capped: String = password.chars().take(ZXCVBN_MAX_CHARS).collect();
            let words = expand_user_inputs(user_inputs);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let entropy = zxcvbn::zxcvbn(&capped, &words);
            if u8::from(entropy.score()) < self.min_strength {
                let reason = entropy
                    .feedback()
                    .and_then(|f| f.warning())
                    .map(|w| sentence_to_phrase(&w.to_string()))
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| "easy to guess".to_owned());
                return Err(format!("too weak: {reason}"));
            }
        }
        Ok(())
    }
}

fn has_all_classes(password: &str) -> bool {
    let (mut upper, mut lower, mut digit, mut symbol) = (false, false, false, false);
    for c in password.chars() {
        if c.is_uppercase() {
            upper = true;
        } else if c.is_lowercase() {
            lower = true;
        } else if c.is_ascii_digit() {
            digit = true;
        } else if !c.is_alphanumeric() {
            // OWASP counts space among the special characters.
            symbol = true;
        }
    }
    upper && lower && digit && symbol
}

/// Each input, plus its alphanumeric pieces of 3+ characters.
fn expand_user_inputs(inputs: &[&str]) -> Vec<String> {
    let mut words = Vec::new();
    for input in inputs {
        let input = input.trim();
        if input.is_empty() {
            continue;
        }
        words.push(input.to_owned());
        words.extend(
            input
                .split(|c: char| !c.is_alphanumeric())
                .filter(|piece| piece.chars().count() >= 3 && *piece != input)
                .map(str::to_owned),
        );
    }
    words
}

/// "This is a top-10 common password." -> "this is a top-10 common password",
/// so it reads well after "too weak: ".
fn sentence_to_phrase(sentence: &str) -> String {
    let trimmed = sentence.trim().trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_strength: u8, require_classes: bool) -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            max_length: 64,
            min_strength,
            require_classes,
        }
    }

    #[test]
    fn common_passwords_are_too_weak() {
        let p = policy(2, false);
        for weak in ["password", "12345678", "qwertyuiop", "password1"] {
            let err = p.check(weak, &[]).unwrap_err();
            assert!(err.starts_with("too weak: "), "{weak}: {err}");
        }
        let err = p.check("password", &[]).unwrap_err();
        assert_eq!(err, "too weak: this is a top-10 common password");
    }

    #[test]
    fn passphrases_pass() {
        assert_eq!(policy(2, false).check("correct horse battery staple", &[]), Ok(()));
        assert_eq!(policy(4, false).check("correct horse battery staple", &[]), Ok(()));
    }

    #[test]
    fn user_inputs_make_a_password_weak() {
        // The brief's example: the account's own email as its password.
        let p = policy(2, false);
        assert_eq!(p.check("alice@x.io", &[]), Ok(()));
        assert_eq!(
            p.check("alice@x.io", &["alice@x.io"]),
            Err("too weak: easy to guess".into())
        );

        let p = policy(3, false);
        assert_eq!(p.check("kwlunpeg@zorbix.io", &[]), Ok(()));
        assert!(p.check("kwlunpeg@zorbix.io", &["kwlunpeg@zorbix.io"]).is_err());
        // The email's pieces count too: its local part plus a year and a
        // symbol is strong for a stranger, weak for this account.
        assert_eq!(p.check("kwlunpeg2024!", &[]), Ok(()));
        assert!(
            p.check("kwlunpeg2024!", &["kwlunpeg@zorbix.io"])
                .unwrap_err()
                .starts_with("too weak: ")
        );
    }

    #[test]
    fn length_is_counted_in_chars_and_checked_first() {
        let p = policy(0, false);
        assert_eq!(p.check("short", &[]), Err("must be at least 8 characters".into()));
        // Eight 3-byte characters: long enough although 24 bytes.
        assert_eq!(p.check("€€€€€€€€", &[]), Ok(()));
        assert_eq!(p.check("€€€€€€€", &[]), Err("must be at least 8 characters".into()));
        assert_eq!(
            p.check(&"a".repeat(65), &[]),
            Err("must be at most 64 characters".into())
        );
        assert_eq!(p.check(&"é".repeat(64), &[]), Ok(()));
        // A megabyte of input is refused by length, before zxcvbn sees it.
        let strict = policy(4, true);
        assert_eq!(
            strict.check(&"x".repeat(1 << 20), &[]),
            Err("must be at most 64 characters".into())
        );
    }

    #[test]
    fn zxcvbn_only_sees_a_capped_prefix() {
        let p = PasswordPolicy {
            max_length: 10_000,
            ..policy(3, false)
        };
        // Would be slow if zxcvbn saw all of it; the prefix is random enough.
        let long: String = "Zq8#mP2!vL9@xR4$".repeat(500);
        let started = std::time::Instant::now();
        assert_eq!(p.check(&long, &[]), Ok(()));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn class_rules() {
        let p = policy(0, true);
        let msg = Err("must contain upper and lower case letters, a digit and a symbol".to_owned());
        assert_eq!(p.check("alllowercase1!", &[]), msg);
        assert_eq!(p.check("ALLUPPERCASE1!", &[]), msg);
        assert_eq!(p.check("NoDigitsHere!", &[]), msg);
        assert_eq!(p.check("NoSymbols123", &[]), msg);
        assert_eq!(p.check("Has all 4 classes", &[]), Ok(()));
        assert_eq!(p.check("Ab1!Ab1!", &[]), Ok(()));
        // Class rules off: any composition is fine (strength check off too).
        assert_eq!(policy(0, false).check("alllowercase", &[]), Ok(()));
    }

    #[test]
    fn min_strength_zero_skips_zxcvbn() {
        assert_eq!(policy(0, false).check("password", &[]), Ok(()));
    }

    #[test]
    fn phrase_helper() {
        assert_eq!(sentence_to_phrase("This is bad."), "this is bad");
        assert_eq!(sentence_to_phrase(""), "");
        assert_eq!(
            expand_user_inputs(&["alice@x.io", " ", "bob"]),
            vec!["alice@x.io", "alice", "bob"]
        );
    }
}
