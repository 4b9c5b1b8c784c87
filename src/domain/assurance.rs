//! How strongly a session's holder proved who they are: the RFC 8176
//! authentication method references (`amr`) and the authenticator
//! assurance level (`aal`, 1 or 2, after NIST SP 800-63B) that every access
//! token carries and every session stores.
//!
//! The level is what policy reads (forward auth's `?aal=2`, credential
//! changes); the methods say how it was reached, for apps that care. A
//! session starts at the level of its first factor (aal 1) and is raised to
//! aal 2 by a second factor ([`Assurance::stepped_up`]); nothing lowers it
//! again short of a new sign-in. Tokens and sessions from before forge knew
//! about assurance read as [`Assurance::unknown`]: aal 1, no methods.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An authentication method reference (RFC 8176 section 2, the IANA
/// "Authentication Method Reference Values" registry), plus `fed`.
///
/// Declared in alphabetical order of their names, so a set of them (and
/// the `amr` claim built from it) is always in one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Amr {
    /// Biometric: facial recognition.
    Face,
    /// Signed in through an upstream identity provider. Not in the RFC 8176
    /// registry; the value Microsoft and others use for federation.
    Fed,
    /// Biometric: fingerprint.
    Fpt,
    /// Proof of possession of a hardware-secured key (a security key,
    /// a device-bound passkey).
    Hwk,
    /// Knowledge-based authentication.
    Kba,
    /// Multiple-channel authentication.
    Mca,
    /// More than one factor was used (set by every step-up).
    Mfa,
    /// A one-time password: a TOTP code, an emailed or texted code, a
    /// recovery code.
    Otp,
    /// A PIN or pattern (e.g. the user verification of a passkey).
    Pin,
    /// A password.
    Pwd,
    /// A smart card.
    Sc,
    /// A confirmation by SMS to the user's registered number.
    Sms,
    /// Proof of possession of a software-secured key (a synced passkey).
    Swk,
    /// A confirmation by telephone call.
    Tel,
    /// User presence was tested (e.g. the user verification of a passkey).
    User,
}

impl Amr {
    pub const ALL: [Amr; 15] = [
        Amr::Face,
        Amr::Fed,
        Amr::Fpt,
        Amr::Hwk,
        Amr::Kba,
        Amr::Mca,
        Amr::Mfa,
        Amr::Otp,
        Amr::Pin,
        Amr::Pwd,
        Amr::Sc,
        Amr::Sms,
        Amr::Swk,
        Amr::Tel,
        Amr::User,
    ];

    /// The registered value, as in the `amr` claim and the sessions table.
    pub const fn as_str(self) -> &'static str {
        match self {
            Amr::Face => "face",
            Amr::Fed => "fed",
            Amr::Fpt => "fpt",
            Amr::Hwk => "hwk",
            Amr::Kba => "kba",
            Amr::Mca => "mca",
            Amr::Mfa => "mfa",
            Amr::Otp => "otp",
            Amr::Pin => "pin",
            Amr::Pwd => "pwd",
            Amr::Sc => "sc",
            Amr::Sms => "sms",
            Amr::Swk => "swk",
            Amr::Tel => "tel",
            Amr::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Amr> {
        Amr::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Amr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Amr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Amr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Amr::parse(&s).ok_or_else(|| serde::de::Error::custom("unknown amr value"))
    }
}

/// An authenticator assurance level. Ordered: `One < Two`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aal {
    /// One factor (a password, a one-time code sent to an address).
    #[default]
    One,
    /// Two factors of different kinds, or a passkey with user verification.
    Two,
}

impl Aal {
    pub const fn as_u8(self) -> u8 {
        match self {
            Aal::One => 1,
            Aal::Two => 2,
        }
    }

    pub fn from_u8(n: u8) -> Option<Aal> {
        match n {
            1 => Some(Aal::One),
            2 => Some(Aal::Two),
            _ => None,
        }
    }

    /// Parses a level as a client writes it (`?aal=2`): exactly `1` or `2`.
    pub fn parse(s: &str) -> Result<Aal, &'static str> {
        match s {
            "1" => Ok(Aal::One),
            "2" => Ok(Aal::Two),
            _ => Err("must be 1 or 2"),
        }
    }
}

impl fmt::Display for Aal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// A number in JSON (`"aal": 2`), as API.md shows it.
impl Serialize for Aal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for Aal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        Aal::from_u8(n).ok_or_else(|| serde::de::Error::custom("aal must be 1 or 2"))
    }
}

/// What a stored assurance failed to parse as (a corrupt row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssuranceError {
    #[error("unknown amr value")]
    UnknownMethod,
    #[error("aal must be 1 or 2")]
    UnknownLevel,
}

/// The methods a session's holder used and the level they reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assurance {
    pub amr: BTreeSet<Amr>,
    pub aal: Aal,
}

impl Assurance {
    pub fn new(amr: impl IntoIterator<Item = Amr>, aal: Aal) -> Self {
        Self {
            amr: amr.into_iter().collect(),
            aal,
        }
    }

    /// A session or token from before forge recorded assurance: aal 1, no
    /// methods. Also what an empty stored row means.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// A password sign-in (or a sign-up that set one): `["pwd"]`, aal 1.
    pub fn password() -> Self {
        Self::new([Amr::Pwd], Aal::One)
    }

    /// A one-time code sent to an email address: `["otp"]`, aal 1.
    pub fn email_code() -> Self {
        Self::new([Amr::Otp], Aal::One)
    }

    /// A one-time code texted to a phone: `["otp", "sms"]`, aal 1 (RFC 8176
    /// names the SMS confirmation as its own method).
    pub fn phone_code() -> Self {
        Self::new([Amr::Otp, Amr::Sms], Aal::One)
    }

    /// A sign-in through an upstream identity provider: `["fed"]`, aal 1.
    /// What the provider itself checked (its own second factor, say) is
    /// its claim, not forge's proof, so it never raises the level.
    pub fn federated() -> Self {
        Self::new([Amr::Fed], Aal::One)
    }

    /// This assurance after a second factor proved with `methods` (e.g.
    /// `[Otp]` for TOTP or a recovery code, `[Hwk, User]` for a security
    /// key): the methods joined, `mfa` added, aal 2.
    pub fn stepped_up(&self, methods: impl IntoIterator<Item = Amr>) -> Self {
        let mut amr = self.amr.clone();
        amr.extend(methods);
        amr.insert(Amr::Mfa);
        Self { amr, aal: Aal::Two }
    }

    /// Whether this assurance is at least `required`.
    pub fn meets(&self, required: Aal) -> bool {
        self.aal >= required
    }

    /// The methods as the claim lists them, in a fixed order.
    pub fn amr_names(&self) -> Vec<&'static str> {
        self.amr.iter().map(|a| a.as_str()).collect()
    }

    /// The methods as stored in the sessions table: comma-separated names
    /// (`"otp,sms"`), empty for none.
    pub fn amr_column(&self) -> String {
        self.amr_names().join(",")
    }

    /// Reads what [`Self::amr_column`] and the `aal` column stored. An
    /// unknown method or level is an error (a corrupt row), never dropped.
    pub fn from_columns(amr: &str, aal: i64) -> Result<Self, AssuranceError> {
        let aal = u8::try_from(aal)
            .ok()
            .and_then(Aal::from_u8)
            .ok_or(AssuranceError::UnknownLevel)?;
        let amr = amr
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Amr::parse(s).ok_or(AssuranceError::UnknownMethod))
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(Self { amr, aal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_in_order() {
        for a in Amr::ALL {
            assert_eq!(Amr::parse(a.as_str()), Some(a));
        }
        let names: Vec<&str> = Amr::ALL.iter().map(|a| a.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "declaration order is name order");
        assert_eq!(Amr::parse("PWD"), None);
        assert_eq!(Amr::parse(""), None);
    }

    #[test]
    fn first_factors_are_aal_1_and_a_step_up_is_aal_2() {
        assert_eq!(Assurance::password().amr_names(), ["pwd"]);
        assert_eq!(Assurance::email_code().amr_names(), ["otp"]);
        assert_eq!(Assurance::phone_code().amr_names(), ["otp", "sms"]);
        for first in [Assurance::password(), Assurance::email_code(), Assurance::unknown()] {
            assert_eq!(first.aal, Aal::One);
            assert!(first.meets(Aal::One));
            assert!(!first.meets(Aal::Two));
        }
        let up = Assurance::password().stepped_up([Amr::Otp]);
        assert_eq!(up.amr_names(), ["mfa", "otp", "pwd"]);
        assert_eq!(up.aal, Aal::Two);
        assert!(up.meets(Aal::One) && up.meets(Aal::Two));
        assert_eq!(up.stepped_up([Amr::Otp]), up, "stepping up twice changes nothing more");
    }

    #[test]
    fn columns_round_trip_and_corruption_is_an_error() {
        for a in [
            Assurance::unknown(),
            Assurance::phone_code(),
            Assurance::password().stepped_up([Amr::Hwk, Amr::User]),
        ] {
            let back = Assurance::from_columns(&a.amr_column(), i64::from(a.aal.as_u8())).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(Assurance::from_columns("", 1).unwrap(), Assurance::unknown());
        assert_eq!(
            Assurance::from_columns("pwd,bogus", 1),
            Err(AssuranceError::UnknownMethod)
        );
        assert_eq!(Assurance::from_columns("pwd", 3), Err(AssuranceError::UnknownLevel));
        assert_eq!(Assurance::from_columns("pwd", -1), Err(AssuranceError::UnknownLevel));
    }

    #[test]
    fn json_is_the_claims_shape() {
        let a = Assurance::password().stepped_up([Amr::Otp]);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v, serde_json::json!({"amr": ["mfa", "otp", "pwd"], "aal": 2}));
        assert_eq!(serde_json::from_value::<Assurance>(v).unwrap(), a);
        assert!(serde_json::from_value::<Aal>(serde_json::json!(3)).is_err());
        assert_eq!(Aal::parse("2"), Ok(Aal::Two));
        assert!(Aal::parse("3").is_err() && Aal::parse("").is_err() && Aal::parse(" 1").is_err());
    }
}
