//! Webhooks: the event types forge publishes, the patterns an endpoint
//! subscribes with, and the rules an endpoint URL must meet.
//!
//! Event types are derived from audit events ([`EventType::for_audit`]):
//! every change forge makes writes its audit row in the change's own
//! transaction, so an event written beside that row is committed exactly
//! when the change is, and never for a change that rolled back.
//!
//! Where an endpoint may point is decided twice: here, for what a URL says
//! (scheme, no credentials, no literal address in a forbidden range), and
//! by `events::guard` for what its host name resolves to, at registration
//! and again at every delivery (DNS may change in between).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::AuditEvent;

/// Declares the enum, its names and [`EventType::ALL`] from one table.
macro_rules! event_types {
    ($($variant:ident => $name:literal,)+) => {
        /// One kind of event an endpoint can subscribe to.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every type, in the order of the names.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The published name (a stored contract: never changes).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(EventType::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    UserCreated => "user.created",
    UserUpdated => "user.updated",
    UserDeleted => "user.deleted",
    UserDisabled => "user.disabled",
    UserEnabled => "user.enabled",
    UserEmailVerified => "user.email_verified",
    UserRolesChanged => "user.roles_changed",
    SessionCreated => "session.created",
    SessionRevoked => "session.revoked",
    PasswordChanged => "password.changed",
    PasswordReset => "password.reset",
    MfaEnrolled => "mfa.enrolled",
    MfaRemoved => "mfa.removed",
    TenantCreated => "tenant.created",
    TenantDeleted => "tenant.deleted",
}

impl EventType {
    /// The events an audit row announces (most announce none). `detail` is
    /// the row's detail: a one-time-code sign-in says in it whether it
    /// opened a session and whether it created the account.
    pub fn for_audit(event: AuditEvent, detail: &serde_json::Value) -> &'static [EventType] {
        use EventType as E;
        match event {
            AuditEvent::Signup | AuditEvent::UserCreated => &[E::UserCreated],
            AuditEvent::UserUpdated
            | AuditEvent::EmailChanged
            | AuditEvent::PhoneChanged
            | AuditEvent::PhoneVerified => &[E::UserUpdated],
            AuditEvent::UserDeleted => &[E::UserDeleted],
            AuditEvent::UserDisabled => &[E::UserDisabled],
            AuditEvent::UserEnabled => &[E::UserEnabled],
            AuditEvent::EmailVerified => &[E::UserEmailVerified],
            AuditEvent::RoleAssigned | AuditEvent::RoleRemoved => &[E::UserRolesChanged],
            AuditEvent::Login | AuditEvent::FederatedLogin | AuditEvent::SsoLogin => &[E::SessionCreated],
            AuditEvent::OtpVerified => {
                let session = detail.get("session_id").is_some_and(|s| !s.is_null());
                let signup = detail.get("signup").and_then(serde_json::Value::as_bool) == Some(true);
                match (signup, session) {
                    (true, true) => &[E::UserCreated, E::SessionCreated],
                    (true, false) => &[E::UserCreated],
                    (false, true) => &[E::SessionCreated],
                    (false, false) => &[],
                }
            }
            AuditEvent::Logout | AuditEvent::SessionRevoked => &[E::SessionRevoked],
            AuditEvent::PasswordChanged => &[E::PasswordChanged],
            AuditEvent::PasswordReset => &[E::PasswordReset],
            AuditEvent::MfaEnrolled => &[E::MfaEnrolled],
            AuditEvent::MfaRemoved | AuditEvent::MfaReset => &[E::MfaRemoved],
            AuditEvent::TenantCreated => &[E::TenantCreated],
            AuditEvent::TenantDeleted => &[E::TenantDeleted],
            _ => &[],
        }
    }
}

/// The most patterns one endpoint may list.
pub const MAX_PATTERNS: usize = 50;
/// The longest endpoint URL.
pub const MAX_URL_LEN: usize = 2000;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// What an endpoint subscribes to: event names and `*` wildcards, as
/// permissions take them (`user.*`, `*`). Each pattern must match at
/// least one event type, so a typo is refused rather than silently deaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter(Vec<String>);

impl EventFilter {
    pub fn parse(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Err("list at least one event type (or \"*\")".into());
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(format!("at most {MAX_PATTERNS} patterns"));
        }
        let mut out: Vec<String> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.trim();
            if !EventType::ALL.iter().any(|t| pattern_matches(p, t.as_str())) {
                return Err(format!("{p:?} matches no event type"));
            }
            if !out.iter().any(|q| q == p) {
                out.push(p.to_owned());
            }
        }
        Ok(Self(out))
    }

    /// A filter read back from the store, trusted as written.
    pub fn from_stored(patterns: Vec<String>) -> Self {
        Self(patterns)
    }

    pub fn matches(&self, event: EventType) -> bool {
        self.0.iter().any(|p| pattern_matches(p, event.as_str()))
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

/// `*` alone matches everything; `a.*` matches every name under `a.`;
/// anything else matches itself only.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
        None => pattern == name,
    }
}

/// Why an endpoint URL is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadTarget {
    /// Not a URL forge will post to (the reason says why): a 400 on `url`.
    Invalid(&'static str),
    /// Forge itself, or a loopback, private, link-local or metadata
    /// address: 400 `forbidden_target`.
    Forbidden,
}

/// `raw` as an endpoint URL, if it is one forge may post to; `forge` is
/// `server.public_url`.
pub fn check_url(raw: &str, allow_private: bool, forge: Option<&Url>) -> Result<Url, BadTarget> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(BadTarget::Invalid("at most 2000 characters"));
    }
    let url = Url::parse(raw).map_err(|_| BadTarget::Invalid("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(BadTarget::Invalid("must be https")),
        _ => return Err(BadTarget::Invalid("must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BadTarget::Invalid("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(BadTarget::Invalid("must not have a fragment"));
    }
    let Some(host) = url.host() else {
        return Err(BadTarget::Invalid("needs a host"));
    };
    if !allow_private {
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(d) => {
                let d = d.trim_end_matches('.');
                if d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost") {
                    return Err(BadTarget::Forbidden);
                }
                None
            }
        };
        if literal.is_some_and(forbidden_ip) || forge.is_some_and(|f| is_forge(&url, f)) {
            return Err(BadTarget::Forbidden);
        }
    }
    Ok(url)
}

/// Whether `url` names forge's own public host and port.
fn is_forge(url: &Url, forge: &Url) -> bool {
    let host = |u: &Url| u.host_str().map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    host(url).is_some() && host(url) == host(forge) && url.port_or_known_default() == forge.port_or_known_default()
}

/// An address no webhook may reach unless `webhooks.allow_private` is set:
/// anything that is not a public unicast address (loopback, private,
/// shared, link-local with the cloud metadata services, multicast,
/// documentation and reserved ranges), IPv4 inside IPv6 included.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        // shared address space (carrier-grade NAT)
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments
        || (a == 192 && b == 0 && c == 0)
        // benchmarking
        || (a == 198 && (b == 18 || b == 19))
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // IPv4-compatible (deprecated) ::a.b.c.d
        || (s[0..6] == [0, 0, 0, 0, 0, 0])
        // unique local fc00::/7 (cloud metadata fd00:ec2::254 among them)
        || (s[0] & 0xfe00) == 0xfc00
        // link-local fe80::/10 and the old site-local fec0::/10
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // documentation 2001:db8::/32
        || (s[0] == 0x2001 && s[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forge() -> Url {
        Url::parse("https://auth.example.com").unwrap()
    }

    #[test]
    fn patterns_match_like_permissions() {
        let f = EventFilter::parse(&["user.*".into(), "session.created".into()]).unwrap();
        assert!(f.matches(EventType::UserCreated));
        assert!(f.matches(EventType::UserRolesChanged));
        assert!(f.matches(EventType::SessionCreated));
        assert!(!f.matches(EventType::SessionRevoked));
        assert!(!f.matches(EventType::TenantCreated));
        let all = EventFilter::parse(&["*".into()]).unwrap();
        assert!(EventType::ALL.iter().all(|&t| all.matches(t)));
        // A prefix must end at a dot: `use.*` is not `user.*`.
        assert!(EventFilter::parse(&["use.*".into()]).is_err());
        assert!(EventFilter::parse(&["user.creatd".into()]).is_err());
        assert!(EventFilter::parse(&[]).is_err());
    }

    #[test]
    fn every_type_round_trips_and_the_names_are_the_published_ones() {
        for &t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::ALL.len(), 15);
    }

    #[test]
    fn a_one_time_code_sign_in_announces_what_it_did() {
        let d = serde_json::json!({ "session_id": "x", "signup": true });
        assert_eq!(
            EventType::for_audit(AuditEvent::OtpVerified, &d),
            &[EventType::UserCreated, EventType::SessionCreated]
        );
        let d = serde_json::json!({ "session_id": "x" });
        assert_eq!(
            EventType::for_audit(AuditEvent::OtpVerified, &d),
            &[EventType::SessionCreated]
        );
        assert!(EventType::for_audit(AuditEvent::Refresh, &serde_json::json!({})).is_empty());
    }

    #[test]
    fn urls_that_reach_inside_are_forbidden() {
        for url in [
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://api.localhost/x",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://auth.example.com/hooks",
            "https://AUTH.example.com./hooks",
        ] {
            assert_eq!(
                check_url(url, false, Some(&forge())),
                Err(BadTarget::Forbidden),
                "{url}"
            );
        }
        assert!(check_url("https://hooks.example.net/x", false, Some(&forge())).is_ok());
        assert!(check_url("https://8.8.8.8/x", false, Some(&forge())).is_ok());
        assert!(check_url("https://auth.example.com:8443/hooks", false, Some(&forge())).is_ok());
        // The escape hatch lets everything through (tests, internal networks).
        assert!(check_url("http://127.0.0.1:9/x", true, Some(&forge())).is_ok());
    }

    #[test]
    fn urls_forge_will_not_post_to_are_invalid() {
        for url in [
            "http://hooks.example.net/",
            "ftp://hooks.example.net/",
            "https://user:pw@hooks.example.net/",
            "https://hooks.example.net/#frag",
            "not a url",
        ] {
            assert!(
                matches!(check_url(url, false, Some(&forge())), Err(BadTarget::Invalid(_))),
                "{url}"
            );
        }
    }
}
