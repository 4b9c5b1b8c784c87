//! A tenant's second-factor policy (the `mfa` part of its settings) and the
//! one decision it drives at sign-in.
//!
//! The policy says *who* needs a factor (nobody, holders of some roles, or
//! everyone) and how long a user it newly applies to may still sign in
//! without one (`grace`). [`decide`] is the rule, as a pure function of the
//! policy, the user's roles, whether they hold a confirmed factor and when
//! the policy first applied to them; the sign-in path asks it once its first
//! factor succeeded.
//!
//! When the grace runs from: the later of the user's `mfa_due_since` (the
//! first sign-in that found the policy applying and no factor, stamped once
//! by the store) and the policy's own `since` (the time the set of users it
//! applies to last changed: a new kind or new roles). The second matters
//! because `mfa_due_since` is never cleared: a user stamped under an old
//! policy that was later relaxed and then tightened again gets a full grace
//! from the tightening, not none. Changing only the grace keeps `since`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RoleName, Timestamp};

/// The most roles a `roles` policy may name.
pub const MAX_MFA_ROLES: usize = 32;
/// The longest grace a policy may give: 90 days.
pub const MAX_GRACE: Duration = Duration::from_secs(90 * 86_400);
/// The grace of a policy that does not say: 7 days (API.md).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// Who must hold a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaRequirement {
    /// Nobody; a factor is the user's own choice.
    Optional,
    /// Holders of any of the policy's roles.
    Roles,
    /// Everyone.
    All,
}

impl MfaRequirement {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        match s.trim() {
            "optional" => Ok(MfaRequirement::Optional),
            "roles" => Ok(MfaRequirement::Roles),
            "all" => Ok(MfaRequirement::All),
            _ => Err("must be optional, roles or all"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MfaRequirement::Optional => "optional",
            MfaRequirement::Roles => "roles",
            MfaRequirement::All => "all",
        }
    }
}

/// A tenant's second-factor policy. `roles` are valid role names (sorted,
/// deduplicated); they are kept whatever the requirement (only `roles`
/// reads them), as the signup policy keeps its domains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredMfaPolicy", into = "StoredMfaPolicy")]
pub struct MfaPolicy {
    pub requirement: MfaRequirement,
    pub roles: Vec<String>,
    pub grace: Duration,
    /// When the set of users the policy applies to last changed (see the
    /// module docs); `None` for the default policy.
    pub since: Option<Timestamp>,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        MfaPolicy {
            requirement: MfaRequirement::Optional,
            roles: Vec::new(),
            grace: DEFAULT_GRACE,
            since: None,
        }
    }
}

/// The stored form of [`MfaPolicy`], validated on the way in (a stored
/// document that breaks a rule is an error, never a silent default).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMfaPolicy {
    policy: MfaRequirement,
    #[serde(default)]
    roles: Vec<String>,
    grace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<Timestamp>,
}

impl TryFrom<StoredMfaPolicy> for MfaPolicy {
    type Error = String;
    fn try_from(s: StoredMfaPolicy) -> Result<Self, String> {
        let grace = parse_grace(&s.grace).map_err(|e| format!("mfa.grace: {e}"))?;
        let mut policy =
            MfaPolicy::parse(s.policy, &s.roles, grace).map_err(|(field, reason)| format!("mfa.{field}: {reason}"))?;
        policy.since = s.since;
        Ok(policy)
    }
}

impl From<MfaPolicy> for StoredMfaPolicy {
    fn from(p: MfaPolicy) -> Self {
        StoredMfaPolicy {
            policy: p.requirement,
            roles: p.roles,
            grace: format_grace(p.grace),
            since: p.since,
        }
    }
}

/// Parses a grace as API.md writes it (`"7d"`, `"36h"`, `"0s"`; humantime
/// syntax): whole seconds, 0 to [`MAX_GRACE`].
pub fn parse_grace(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| format!("not a duration such as \"7d\" ({e})"))?;
    if d.subsec_nanos() != 0 {
        return Err("must be whole seconds".into());
    }
    if d > MAX_GRACE {
        return Err("must be at most 90d".into());
    }
    Ok(d)
}

/// The shortest exact form of a grace (`7d`, `36h`, `90m`, `0s`), which
/// [`parse_grace`] reads back to the same value.
pub fn format_grace(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(len) {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

impl MfaPolicy {
    /// Validates a policy: `Err((field, reason))` names the field under
    /// `mfa`. Roles are role names (as `RoleName::parse` admits), at most
    /// [`MAX_MFA_ROLES`], deduplicated and sorted; `roles` with an empty
    /// list is refused (it would require a factor of nobody while reading as
    /// if it did). `since` is left unset: [`Self::changed_from`] sets it.
    pub fn parse(
        requirement: MfaRequirement,
        roles: &[String],
        grace: Duration,
    ) -> Result<Self, (&'static str, String)> {
        if roles.len() > MAX_MFA_ROLES {
            return Err(("roles", format!("at most {MAX_MFA_ROLES} roles")));
        }
        let mut set = BTreeSet::new();
        for raw in roles {
            let role = RoleName::parse(raw.trim()).map_err(|reason| ("roles", format!("{raw:?}: {reason}")))?;
            set.insert(role.as_str().to_owned());
        }
        if requirement == MfaRequirement::Roles && set.is_empty() {
            return Err(("roles", "name at least one role when the policy is roles".into()));
        }
        if grace > MAX_GRACE {
            return Err(("grace", "must be at most 90d".into()));
        }
        Ok(MfaPolicy {
            requirement,
            roles: set.into_iter().collect(),
            grace,
            since: None,
        })
    }

    /// `self` (a freshly parsed policy) with `since` carried over from
    /// `previous` when it applies to the same users, or set to `now` when
    /// that set changed (see the module docs).
    pub fn changed_from(mut self, previous: &MfaPolicy, now: Timestamp) -> Self {
        let same_users = self.requirement == previous.requirement
            && (self.requirement != MfaRequirement::Roles || self.roles == previous.roles);
        self.since = if same_users {
            previous.since
        } else if self.requirement == MfaRequirement::Optional {
            None
        } else {
            Some(now)
        };
        self
    }

    /// Whether the policy requires a factor of a holder of `roles`.
    pub fn applies_to(&self, roles: &[String]) -> bool {
        match self.requirement {
            MfaRequirement::Optional => false,
            MfaRequirement::All => true,
            MfaRequirement::Roles => roles.iter().any(|r| self.roles.iter().any(|p| p == r)),
        }
    }
}

/// What the policy asks of one sign-in whose first factor succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaDecision {
    /// The policy does not apply to the user: sign-in as usual (a user with
    /// a factor still gets the second step).
    NotRequired,
    /// It applies and the user holds a confirmed factor: the second step as
    /// usual.
    Satisfied,
    /// It applies, the user has no factor and the grace runs until `until`:
    /// tokens, with `mfa_enrollment_due`.
    Due { until: Timestamp },
    /// It applies, no factor, the grace is over: no tokens, only an
    /// enrolment token.
    Required,
}

/// The rule (see the module docs). `due_since`: the user's stored
/// `mfa_due_since` (`None`: never stamped; the grace then starts `now`).
pub fn decide(
    policy: &MfaPolicy,
    roles: &[String],
    has_factor: bool,
    due_since: Option<Timestamp>,
    now: Timestamp,
) -> MfaDecision {
    if !policy.applies_to(roles) {
        return MfaDecision::NotRequired;
    }
    if has_factor {
        return MfaDecision::Satisfied;
    }
    let start = due_since.unwrap_or(now).max(policy.since.unwrap_or(Timestamp::MIN));
    let grace = i64::try_from(policy.grace.as_secs()).unwrap_or(i64::MAX);
    let until = start.saturating_add(grace);
    if now < until {
        MfaDecision::Due { until }
    } else {
        MfaDecision::Required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn policy(req: MfaRequirement, r: &[&str], grace_days: u64) -> MfaPolicy {
        MfaPolicy::parse(req, &roles(r), Duration::from_secs(grace_days * 86_400)).unwrap()
    }

    #[test]
    fn optional_never_requires() {
        let p = MfaPolicy::default();
        assert_eq!(decide(&p, &roles(&["admin"]), false, None, 0), MfaDecision::NotRequired);
        assert_eq!(decide(&p, &[], true, Some(0), 10 * DAY), MfaDecision::NotRequired);
    }

    #[test]
    fn roles_applies_to_holders_only() {
        let p = policy(MfaRequirement::Roles, &["admin", "billing"], 7);
        assert_eq!(decide(&p, &roles(&["user"]), false, None, 0), MfaDecision::NotRequired);
        assert_eq!(decide(&p, &[], false, None, 0), MfaDecision::NotRequired);
        assert_eq!(
            decide(&p, &roles(&["user", "billing"]), false, Some(0), 0),
            MfaDecision::Due { until: 7 * DAY }
        );
        assert_eq!(
            decide(&p, &roles(&["admin"]), true, Some(0), 30 * DAY),
            MfaDecision::Satisfied
        );
    }

    #[test]
    fn all_gives_a_grace_then_requires() {
        let p = policy(MfaRequirement::All, &[], 7);
        let r = roles(&[]);
        assert_eq!(
            decide(&p, &r, false, Some(100), 100),
            MfaDecision::Due { until: 100 + 7 * DAY }
        );
        assert_eq!(
            decide(&p, &r, false, Some(100), 100 + 7 * DAY - 1),
            MfaDecision::Due { until: 100 + 7 * DAY }
        );
        assert_eq!(decide(&p, &r, false, Some(100), 100 + 7 * DAY), MfaDecision::Required);
        assert_eq!(decide(&p, &r, true, Some(100), 100 + 70 * DAY), MfaDecision::Satisfied);
        // Never stamped: the grace starts now.
        assert_eq!(decide(&p, &r, false, None, 5), MfaDecision::Due { until: 5 + 7 * DAY });
        // A grace of zero requires at once.
        let strict = policy(MfaRequirement::All, &[], 0);
        assert_eq!(decide(&strict, &r, false, Some(5), 5), MfaDecision::Required);
    }

    #[test]
    fn tightening_again_restarts_the_grace() {
        let old = policy(MfaRequirement::All, &[], 7).changed_from(&MfaPolicy::default(), 0);
        assert_eq!(old.since, Some(0));
        let relaxed = MfaPolicy::default().changed_from(&old, 10 * DAY);
        assert_eq!(relaxed.since, None);
        let again = policy(MfaRequirement::All, &[], 7).changed_from(&relaxed, 100 * DAY);
        // Stamped on day 1 under the old policy; the grace runs from day 100.
        assert_eq!(
            decide(&again, &[], false, Some(DAY), 101 * DAY),
            MfaDecision::Due { until: 107 * DAY }
        );
        // Changing only the grace keeps `since`.
        let longer = policy(MfaRequirement::All, &[], 14).changed_from(&again, 102 * DAY);
        assert_eq!(longer.since, Some(100 * DAY));
        // New roles are new users.
        let admins = policy(MfaRequirement::Roles, &["admin"], 7).changed_from(&longer, 103 * DAY);
        assert_eq!(admins.since, Some(103 * DAY));
        let same = policy(MfaRequirement::Roles, &["admin"], 3).changed_from(&admins, 104 * DAY);
        assert_eq!(same.since, Some(103 * DAY));
        let more = policy(MfaRequirement::Roles, &["admin", "ops"], 3).changed_from(&same, 105 * DAY);
        assert_eq!(more.since, Some(105 * DAY));
    }

    #[test]
    fn policies_are_validated() {
        let ok = MfaPolicy::parse(MfaRequirement::Roles, &roles(&["ops", " admin", "ops"]), DEFAULT_GRACE).unwrap();
        assert_eq!(ok.roles, ["admin", "ops"]);
        assert!(MfaPolicy::parse(MfaRequirement::Roles, &[], DEFAULT_GRACE).is_err());
        assert!(MfaPolicy::parse(MfaRequirement::All, &roles(&["Not A Role"]), DEFAULT_GRACE).is_err());
        let many: Vec<String> = (0..=MAX_MFA_ROLES).map(|i| format!("r{i}")).collect();
        assert_eq!(
            MfaPolicy::parse(MfaRequirement::All, &many, DEFAULT_GRACE)
                .unwrap_err()
                .0,
            "roles"
        );
        assert_eq!(
            MfaPolicy::parse(MfaRequirement::All, &[], MAX_GRACE + Duration::from_secs(1))
                .unwrap_err()
                .0,
            "grace"
        );
        assert_eq!(MfaRequirement::parse("all"), Ok(MfaRequirement::All));
        assert!(MfaRequirement::parse("required").is_err());
    }

    #[test]
    fn grace_parses_and_formats() {
        for (raw, secs, shown) in [
            ("7d", 7 * 86_400, "7d"),
            ("0s", 0, "0s"),
            ("0", 0, "0s"),
            ("36h", 36 * 3_600, "36h"),
            ("90m", 5_400, "90m"),
            ("90d", 90 * 86_400, "90d"),
            ("61s", 61, "61s"),
        ] {
            let d = parse_grace(raw).unwrap();
            assert_eq!(d.as_secs(), secs, "{raw}");
            assert_eq!(format_grace(d), shown);
            assert_eq!(parse_grace(shown).unwrap(), d);
        }
        for bad in ["", "7x", "91d", "-1d", "1.5s", "seven days", "100000000000000000000d"] {
            assert!(parse_grace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_corruption_is_an_error() {
        let p = policy(MfaRequirement::Roles, &["admin"], 7).changed_from(&MfaPolicy::default(), 42);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"policy": "roles", "roles": ["admin"], "grace": "7d", "since": 42})
        );
        assert_eq!(serde_json::from_value::<MfaPolicy>(json).unwrap(), p);
        for bad in [
            serde_json::json!({"policy": "roles", "roles": [], "grace": "7d"}),
            serde_json::json!({"policy": "all", "grace": "1000d"}),
            serde_json::json!({"policy": "sometimes", "grace": "7d"}),
            serde_json::json!({"policy": "all"}),
        ] {
            assert!(serde_json::from_value::<MfaPolicy>(bad.clone()).is_err(), "{bad}");
        }
    }
}
