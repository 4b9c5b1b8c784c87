//! Parsed input types. Everything a request carries becomes one of these at
//! the HTTP edge; services and stores accept only these, so an unnormalised
//! email or a malformed phone number cannot reach the database.
//! [`password_policy`] holds the rules a new password must meet before it
//! is hashed.

pub mod assurance;
mod audit;
pub mod clients;
mod identity;
pub mod mfa_policy;
mod names;
pub mod oauth;
pub mod password_policy;
pub mod providers;
pub mod settings;
pub mod webhooks;

pub use assurance::{Aal, Amr, Assurance};
pub use audit::{AuditEvent, UnknownAuditEvent};
pub use identity::{Email, Identifier, Phone};
pub use names::{Permission, RoleName, TenantSlug};
pub use password_policy::PasswordPolicy;

/// Unix seconds; every stored time is one of these, read from the [`crate::clock::Clock`].
pub type Timestamp = i64;

/// Formats a stored time as RFC 3339 UTC (`2026-11-23T10:30:00Z`).
pub fn rfc3339(ts: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Serde helpers for timestamps in API bodies.
pub mod ts {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ts))
    }

    pub mod option {
        use serde::Serializer;

        pub fn serialize<S: Serializer>(ts: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.serialize_str(&super::super::rfc3339(*ts)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(super::rfc3339(1_795_430_000), "2026-11-23T10:33:20Z");
    }
}
