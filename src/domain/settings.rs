//! A tenant's settings, as typed values.
//!
//! Storage. The settings are one JSON document per tenant (`tenants.settings`)
//! holding only the *parts* that were ever set (`signup`, `mfa`,
//! `federation`, `branding` and `notices`). A part that was never set
//! is absent and its default applies, so a default that follows the server
//! configuration (the signup policy follows `signup.enabled`) keeps
//! following it until an administrator chooses otherwise. A new part is a
//! new `Option` field here and needs no migration; a document written by a
//! newer version keeps its unknown parts when an older one reads it (they
//! are ignored, not refused). Each part is validated into its typed value
//! before it is stored, so what the store returns is always well formed;
//! parts are replaced whole, in one transaction, so concurrent changes of
//! different parts never undo each other.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Identifier;
use super::mfa_policy::MfaPolicy;

/// The most email domains one signup policy may list.
pub const MAX_SIGNUP_DOMAINS: usize = 100;

/// Who may create an account by signing up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone.
    Open,
    /// Nobody; accounts come only from administrators.
    Closed,
    /// Only people proving an email address of one of the listed domains.
    Domains,
}

impl SignupMode {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        match s.trim() {
            "open" => Ok(SignupMode::Open),
            "closed" => Ok(SignupMode::Closed),
            "domains" => Ok(SignupMode::Domains),
            _ => Err("must be open, closed or domains"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignupMode::Open => "open",
            SignupMode::Closed => "closed",
            SignupMode::Domains => "domains",
        }
    }
}

/// A tenant's signup policy. `domains` are lowercase ASCII host names (IDNA
/// domains in their punycode `xn--` form), compared exactly with the domain
/// part of an email address; they are kept whatever the mode, so switching
/// to `closed` for a while and back does not lose the list, but only
/// `domains` mode reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupPolicy {
    pub mode: SignupMode,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// Why a policy refuses a sign-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignupRefusal {
    /// The tenant is closed to sign-up.
    Closed,
    /// `domains` mode, and the identifier is not an email of a listed
    /// domain (a phone number proves no domain at all).
    DomainNotAllowed,
}

impl SignupPolicy {
    /// The policy of a tenant that never set one: open when the server's
    /// `signup.enabled` is true, closed otherwise.
    pub fn default_for(signup_enabled: bool) -> Self {
        SignupPolicy {
            mode: if signup_enabled {
                SignupMode::Open
            } else {
                SignupMode::Closed
            },
            domains: Vec::new(),
        }
    }

    /// Validates a policy: `Err((field, reason))` names the field under
    /// `signup` that is wrong. Domains are trimmed, lowercased and
    /// deduplicated (sorted).
    pub fn parse(mode: SignupMode, domains: &[String]) -> Result<Self, (&'static str, String)> {
        if domains.len() > MAX_SIGNUP_DOMAINS {
            return Err(("domains", format!("at most {MAX_SIGNUP_DOMAINS} domains")));
        }
        let mut set = BTreeSet::new();
        for raw in domains {
            let domain = parse_domain(raw).map_err(|reason| ("domains", format!("{raw:?}: {reason}")))?;
            set.insert(domain);
        }
        Ok(SignupPolicy {
            mode,
            domains: set.into_iter().collect(),
        })
    }

    /// Whether someone proving `identifier` may create an account.
    pub fn admits(&self, identifier: &Identifier) -> Result<(), SignupRefusal> {
        match (self.mode, identifier) {
            (SignupMode::Open, _) => Ok(()),
            (SignupMode::Closed, _) => Err(SignupRefusal::Closed),
            (SignupMode::Domains, Identifier::Email(email)) => {
                let domain = email.as_str().rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                if self.domains.iter().any(|d| d == domain) {
                    Ok(())
                } else {
                    Err(SignupRefusal::DomainNotAllowed)
                }
            }
            (SignupMode::Domains, Identifier::Phone(_)) => Err(SignupRefusal::DomainNotAllowed),
        }
    }
}

/// A domain as a policy lists it: an ASCII host name, lowercased. A
/// Unicode domain is refused with a pointer to its punycode form, so what
/// is stored is exactly what canonical email addresses carry.
fn parse_domain(raw: &str) -> Result<String, &'static str> {
    let domain = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return Err("is empty");
    }
    if !domain.is_ascii() {
        return Err("use the ASCII (punycode, xn--) form of the domain");
    }
    if domain.len() > 253 {
        return Err("is longer than 253 characters");
    }
    if domain.contains('@') {
        return Err("give the domain only, without the part before @");
    }
    for label in domain.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err("is not a domain name (letters, digits and - in dot-separated labels)");
        }
    }
    Ok(domain)
}

/// The accent colour of a tenant that never chose one.
pub const DEFAULT_ACCENT: &str = "#4f46e5";

/// The longest brand name, in characters.
pub const MAX_BRAND_NAME_CHARS: usize = 80;

/// The longest logo URL, in bytes.
pub const MAX_LOGO_URL_LEN: usize = 2048;

/// How the hosted pages (sign-in, consent, account) present a tenant: its
/// name, an optional logo (an image URL the browser loads) and an accent
/// colour. Every value is validated by [`Branding::parse`]; the pages still
/// HTML-escape them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    /// 1 to 80 characters, no control characters, trimmed.
    pub name: String,
    /// An `https://` URL (`http://` only for 127.0.0.1, localhost, [::1]),
    /// without credentials.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// `#rrggbb`, lowercase.
    pub accent: String,
}

impl Branding {
    /// The branding of a tenant that never set one: its name, no logo, the
    /// default accent.
    pub fn default_for(tenant_name: &str) -> Self {
        let name: String = tenant_name.trim().chars().take(MAX_BRAND_NAME_CHARS).collect();
        Branding {
            name: if name.is_empty() { "forge".into() } else { name },
            logo_url: None,
            accent: DEFAULT_ACCENT.into(),
        }
    }

    /// Validates a branding: `Err((field, reason))` names the field under
    /// `branding` that is wrong.
    pub fn parse(name: &str, logo_url: Option<&str>, accent: &str) -> Result<Self, (&'static str, String)> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err(("name", "must not be empty".into()));
        }
        if chars > MAX_BRAND_NAME_CHARS {
            return Err(("name", format!("at most {MAX_BRAND_NAME_CHARS} characters")));
        }
        if name.chars().any(char::is_control) {
            return Err(("name", "must not contain control characters".into()));
        }
        let logo_url = match logo_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => Some(parse_logo_url(u).map_err(|reason| ("logo_url", reason.to_string()))?),
            None => None,
        };
        let accent = parse_accent(accent).map_err(|reason| ("accent", reason.to_string()))?;
        Ok(Branding {
            name: name.to_owned(),
            logo_url,
            accent,
        })
    }
}

/// An image URL a hosted page may load: `https://`, or `http://` on a
/// loopback host (local development); no user name or password in it.
fn parse_logo_url(raw: &str) -> Result<String, &'static str> {
    if raw.len() > MAX_LOGO_URL_LEN {
        return Err("at most 2048 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "is not an absolute URL")?;
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https:// URL (http:// only for 127.0.0.1, localhost or [::1])"),
    }
    if url.host().is_none() {
        return Err("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password");
    }
    Ok(url.to_string())
}

/// `#rrggbb` (hex digits, either case), returned lowercase.
fn parse_accent(raw: &str) -> Result<String, &'static str> {
    let raw = raw.trim();
    let valid = raw.len() == 7 && raw.starts_with('#') && raw[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err("must be a colour written #rrggbb");
    }
    Ok(raw.to_ascii_lowercase())
}

/// How sign-ins through an upstream identity provider (issue 13) meet
/// accounts that already exist. Off by default: linking an upstream
/// identity to an existing account on the strength of an email address
/// trusts the provider's word that the address was verified, and a
/// provider that says so carelessly would hand that account to whoever
/// controls the upstream identity (the pre-hijacking rule, applied to
/// federation). With it off, the user signs in to the existing account
/// first and links the provider from the account page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationSettings {
    /// A first upstream sign-in whose email the provider marks verified
    /// links to the existing account with that email (never when the
    /// provider does not say verified).
    #[serde(default)]
    pub auto_link_verified_email: bool,
}

/// Which security notices forge sends to the people of a tenant (issue
/// 16). All on by default: a notice is how a person learns that someone
/// else is in their account. `email_changed` covers a changed phone number
/// too (the notice goes to the old address). A notice that an
/// administrator disabled the account has no switch: it is always sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSettings {
    /// A sign-in from a device that never signed in to the account before.
    #[serde(default = "on")]
    pub new_device: bool,
    #[serde(default = "on")]
    pub password_changed: bool,
    #[serde(default = "on")]
    pub email_changed: bool,
    /// A second factor added or removed.
    #[serde(default = "on")]
    pub factor_changed: bool,
    #[serde(default = "on")]
    pub recovery_code_used: bool,
}

fn on() -> bool {
    true
}

impl Default for NoticeSettings {
    fn default() -> Self {
        Self {
            new_device: true,
            password_changed: true,
            email_changed: true,
            factor_changed: true,
            recovery_code_used: true,
        }
    }
}

/// The parts of a tenant's settings that were set; `None` means "never
/// set": the default applies. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signup: Option<SignupPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branding: Option<Branding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notices: Option<NoticeSettings>,
}

impl TenantSettings {
    /// The signup policy in force: the stored one, or the default.
    pub fn signup_policy(&self, signup_enabled: bool) -> SignupPolicy {
        self.signup
            .clone()
            .unwrap_or_else(|| SignupPolicy::default_for(signup_enabled))
    }

    /// The second-factor policy in force: the stored one, or optional.
    pub fn mfa_policy(&self) -> MfaPolicy {
        self.mfa.clone().unwrap_or_default()
    }

    /// The federation settings in force: the stored ones, or the default
    /// (no automatic linking).
    pub fn federation(&self) -> FederationSettings {
        self.federation.unwrap_or_default()
    }

    /// The notice switches in force: the stored ones, or all on.
    pub fn notices(&self) -> NoticeSettings {
        self.notices.unwrap_or_default()
    }

    /// The branding in force: the stored one, or the default (the tenant's
    /// name, no logo, the default accent).
    pub fn branding(&self, tenant_name: &str) -> Branding {
        self.branding
            .clone()
            .unwrap_or_else(|| Branding::default_for(tenant_name))
    }

    /// Names of the parts this value holds (for audit rows).
    pub fn parts(&self) -> Vec<&'static str> {
        let mut parts = Vec::new();
        if self.signup.is_some() {
            parts.push("signup");
        }
        if self.mfa.is_some() {
            parts.push("mfa");
        }
        if self.federation.is_some() {
            parts.push("federation");
        }
        if self.branding.is_some() {
            parts.push("branding");
        }
        if self.notices.is_some() {
            parts.push("notices");
        }
        parts
    }

    /// `self` with every part that `other` holds replaced by `other`'s.
    pub fn overlay(mut self, other: &TenantSettings) -> TenantSettings {
        if let Some(signup) = &other.signup {
            self.signup = Some(signup.clone());
        }
        if let Some(mfa) = &other.mfa {
            self.mfa = Some(mfa.clone());
        }
        if let Some(federation) = other.federation {
            self.federation = Some(federation);
        }
        if let Some(branding) = &other.branding {
            self.branding = Some(branding.clone());
        }
        if let Some(notices) = other.notices {
            self.notices = Some(notices);
        }
        self
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads the stored form; unknown parts (from a newer version) are ignored.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, Phone};

    fn email(s: &str) -> Identifier {
        Identifier::Email(Email::parse(s).unwrap())
    }

    #[test]
    fn domains_are_validated_and_normalised() {
        let p = SignupPolicy::parse(
            SignupMode::Domains,
            &[
                " Example.COM ".into(),
                "example.com.".into(),
                "xn--bcher-kva.example".into(),
            ],
        )
        .unwrap();
        assert_eq!(p.domains, ["example.com", "xn--bcher-kva.example"]);
        for bad in [
            "",
            "bücher.example",
            "a@example.com",
            "-a.com",
            "a..com",
            "a_b.com",
            "a.com-",
        ] {
            assert!(SignupPolicy::parse(SignupMode::Open, &[bad.into()]).is_err(), "{bad:?}");
        }
        // `domains` with an empty list admits no one (as `closed` does).
        let none = SignupPolicy::parse(SignupMode::Domains, &[]).unwrap();
        assert!(
            none.admits(&Identifier::Email(Email::parse("a@example.com").unwrap()))
                .is_err()
        );
        let many: Vec<String> = (0..=MAX_SIGNUP_DOMAINS).map(|i| format!("d{i}.com")).collect();
        assert!(SignupPolicy::parse(SignupMode::Domains, &many).is_err());
    }

    #[test]
    fn policies_admit_what_they_say() {
        let open = SignupPolicy::default_for(true);
        let closed = SignupPolicy::default_for(false);
        let acme = SignupPolicy::parse(SignupMode::Domains, &["acme.io".into()]).unwrap();
        let phone = Identifier::Phone(Phone::parse("+14155550100").unwrap());
        assert_eq!(open.admits(&phone), Ok(()));
        assert_eq!(closed.admits(&email("a@acme.io")), Err(SignupRefusal::Closed));
        assert_eq!(acme.admits(&email("a@acme.io")), Ok(()));
        assert_eq!(acme.admits(&email("a@ACME.io")), Ok(()));
        for other in ["a@evil.io", "a@sub.acme.io", "a@acme.io.evil.io"] {
            assert_eq!(
                acme.admits(&email(other)),
                Err(SignupRefusal::DomainNotAllowed),
                "{other}"
            );
        }
        assert_eq!(acme.admits(&phone), Err(SignupRefusal::DomainNotAllowed));
    }

    #[test]
    fn settings_round_trip_and_keep_defaults_for_unset_parts() {
        let unset = TenantSettings::from_json("{}").unwrap();
        assert_eq!(unset.signup_policy(false).mode, SignupMode::Closed);
        assert_eq!(unset.signup_policy(true).mode, SignupMode::Open);
        let newer =
            TenantSettings::from_json(r#"{"signup":{"mode":"closed","domains":[]},"theme":{"dark":true}}"#).unwrap();
        assert_eq!(newer.signup_policy(true).mode, SignupMode::Closed);
        assert_eq!(TenantSettings::from_json(&newer.to_json()).unwrap(), newer);
        let merged = unset.overlay(&newer);
        assert_eq!(merged.parts(), ["signup"]);
        assert_eq!(merged.branding("Acme"), Branding::default_for("Acme"));
        let branded = TenantSettings {
            branding: Some(Branding::parse("Acme", None, "#ABCDEF").unwrap()),
            ..TenantSettings::default()
        };
        let merged = merged.overlay(&branded);
        assert_eq!(merged.parts(), ["signup", "branding"]);
        assert_eq!(TenantSettings::from_json(&merged.to_json()).unwrap(), merged);
        assert_eq!(merged.branding("Other").accent, "#abcdef");
    }

    #[test]
    fn notices_default_to_all_on_and_a_missing_switch_stays_on() {
        assert_eq!(TenantSettings::default().notices(), NoticeSettings::default());
        assert!(NoticeSettings::default().new_device);
        let partial = TenantSettings::from_json(r#"{"notices":{"new_device":false}}"#).unwrap();
        let n = partial.notices();
        assert!(!n.new_device && n.password_changed && n.email_changed && n.factor_changed);
        assert_eq!(partial.parts(), ["notices"]);
    }

    #[test]
    fn federation_defaults_to_no_automatic_linking_and_round_trips() {
        let unset = TenantSettings::from_json("{}").unwrap();
        assert_eq!(unset.federation, None);
        assert!(!unset.federation().auto_link_verified_email);
        // A federation part without the field (a newer or older writer) is
        // the default, not an error.
        let empty = TenantSettings::from_json(r#"{"federation":{}}"#).unwrap();
        assert!(!empty.federation().auto_link_verified_email);
        let on = TenantSettings {
            federation: Some(FederationSettings {
                auto_link_verified_email: true,
            }),
            ..TenantSettings::default()
        };
        assert_eq!(on.to_json(), r#"{"federation":{"auto_link_verified_email":true}}"#);
        assert_eq!(TenantSettings::from_json(&on.to_json()).unwrap(), on);
        let signup = TenantSettings {
            signup: Some(SignupPolicy::default_for(true)),
            ..TenantSettings::default()
        };
        let merged = signup.overlay(&on);
        assert_eq!(merged.parts(), ["signup", "federation"]);
        assert!(merged.federation().auto_link_verified_email);
        // Overlaying a value without the part keeps it; with it, replaces it.
        let kept = merged.clone().overlay(&TenantSettings::default());
        assert!(kept.federation().auto_link_verified_email);
        let off = TenantSettings {
            federation: Some(FederationSettings::default()),
            ..TenantSettings::default()
        };
        let merged = merged.overlay(&off);
        assert_eq!(merged.parts(), ["signup", "federation"]);
        assert!(!merged.federation().auto_link_verified_email);
    }

    #[test]
    fn branding_defaults_to_the_tenant_name_and_the_default_accent() {
        let b = Branding::default_for("Acme Corp");
        assert_eq!(
            (b.name.as_str(), b.logo_url, b.accent.as_str()),
            ("Acme Corp", None, "#4f46e5")
        );
        assert_eq!(Branding::default_for(&"x".repeat(100)).name.chars().count(), 80);
    }

    #[test]
    fn branding_is_validated() {
        let ok = Branding::parse("  Acme  ", Some("https://cdn.acme.io/logo.svg"), "#4F46E5").unwrap();
        assert_eq!(ok.name, "Acme");
        assert_eq!(ok.logo_url.as_deref(), Some("https://cdn.acme.io/logo.svg"));
        assert_eq!(ok.accent, "#4f46e5");
        assert_eq!(Branding::parse("A", Some(""), "#000000").unwrap().logo_url, None);
        assert!(Branding::parse(&"é".repeat(80), None, "#000000").is_ok());
        for local in [
            "http://127.0.0.1:8080/logo.png",
            "http://localhost/logo.png",
            "http://[::1]:3000/l.png",
        ] {
            assert!(Branding::parse("A", Some(local), "#000000").is_ok(), "{local}");
        }
        for (name, logo, accent, field) in [
            ("", None, "#000000", "name"),
            ("   ", None, "#000000", "name"),
            (&*"é".repeat(81), None, "#000000", "name"),
            ("a\u{7}b", None, "#000000", "name"),
            ("A", Some("http://cdn.acme.io/logo.png"), "#000000", "logo_url"),
            ("A", Some("http://127.0.0.2/logo.png"), "#000000", "logo_url"),
            ("A", Some("http://localhost.evil.io/logo.png"), "#000000", "logo_url"),
            ("A", Some("javascript:alert(1)"), "#000000", "logo_url"),
            ("A", Some("data:image/png;base64,AAAA"), "#000000", "logo_url"),
            ("A", Some("//cdn.acme.io/logo.png"), "#000000", "logo_url"),
            ("A", Some("/logo.png"), "#000000", "logo_url"),
            ("A", Some("https://user:pw@cdn.acme.io/l.png"), "#000000", "logo_url"),
            (
                "A",
                Some(&*format!("https://a.io/{}", "x".repeat(2048))),
                "#000000",
                "logo_url",
            ),
            ("A", None, "4f46e5", "accent"),
            ("A", None, "#4f46e", "accent"),
            ("A", None, "#4f46e5f", "accent"),
            ("A", None, "#gggggg", "accent"),
            ("A", None, "red", "accent"),
            ("A", None, "#fff;}body{x", "accent"),
        ] {
            let err = Branding::parse(name, logo, accent).unwrap_err();
            assert_eq!(err.0, field, "{name:?} {logo:?} {accent:?}: {err:?}");
        }
    }
}
