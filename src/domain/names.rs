//! Names that appear in URLs and tokens: tenant slugs, role names and
//! permission strings. Each has a small fixed alphabet so it can be echoed
//! in a header or a path without escaping.

use std::fmt;

fn valid_name(s: &str, max: usize, extra: &str) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

/// A tenant's slug: lowercase letters, digits and `-`, up to 63 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub const DEFAULT: &'static str = "default";

    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if valid_name(input, 63, "-") {
            Ok(TenantSlug(input.to_string()))
        } else {
            Err("must be 1-63 lowercase letters, digits or '-'")
        }
    }

    pub fn default_tenant() -> Self {
        TenantSlug(Self::DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name, unique per tenant: lowercase letters, digits, `-`, `_`, `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(String);

impl RoleName {
    pub const ADMIN: &'static str = "admin";

    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if valid_name(input, 64, "-_.") {
            Ok(RoleName(input.to_string()))
        } else {
            Err("must be 1-64 lowercase letters, digits, '-', '_' or '.'")
        }
    }

    pub fn admin() -> Self {
        RoleName(Self::ADMIN.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission `resource:action`; either part may be `*`, and `*` alone
/// grants everything (the built-in `admin` role).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(String);

impl Permission {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        const ERR: &str = "must be '*' or 'resource:action' (lowercase, '*' wildcards)";
        if input == "*" {
            return Ok(Permission(input.to_string()));
        }
        let (resource, action) = input.split_once(':').ok_or(ERR)?;
        let part_ok = |p: &str| p == "*" || valid_name(p, 64, "-_.");
        if part_ok(resource) && part_ok(action) {
            Ok(Permission(input.to_string()))
        } else {
            Err(ERR)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this granted permission covers `required` (a concrete `resource:action`).
    pub fn grants(&self, required: &str) -> bool {
        if self.0 == "*" || self.0 == required {
            return true;
        }
        let (Some((gr, ga)), Some((rr, ra))) = (self.0.split_once(':'), required.split_once(':')) else {
            return false;
        };
        (gr == "*" || gr == rr) && (ga == "*" || ga == ra)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        assert!(TenantSlug::parse("acme-2").is_ok());
        for bad in ["", "-acme", "Acme", "a b", "a_b", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        let p = |s: &str| Permission::parse(s).unwrap();
        assert!(p("*").grants("users:read"));
        assert!(p("users:*").grants("users:write"));
        assert!(!p("users:*").grants("roles:read"));
        assert!(p("*:read").grants("audit:read"));
        assert!(!p("users:read").grants("users:write"));
        assert!(Permission::parse("users").is_err());
        assert!(Permission::parse("users:read:x").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = TenantSlug::parse(&s);
            let _ = RoleName::parse(&s);
            if let Ok(p) = Permission::parse(&s) {
                prop_assert!(p.grants(p.as_str()) || p.as_str().contains('*'));
            }
        }
    }
}
