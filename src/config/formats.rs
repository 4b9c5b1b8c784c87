//! How values are written in the file and the environment: durations
//! (`15m`, `30d`), rates (`5/15m`) and CIDR lists that take bare addresses.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A budget of `count` events per `period`, written `COUNT/PERIOD` (`5/15m`).
/// Parsing guarantees `count >= 1` and a non-zero period, so limiters never divide by zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    pub(super) const fn new(count: u32, period: Duration) -> Self {
        Self { count, period }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseRateError(String);

impl FromStr for Rate {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ParseRateError(format!(
                "invalid rate {s:?}: {why} (expected COUNT/PERIOD such as \"5/15m\")"
            ))
        };
        let (count, period) = s.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        let period = period.trim();
        // "30/m" reads naturally as "30 per minute".
        let period = if period.starts_with(|c: char| c.is_ascii_alphabetic()) {
            humantime::parse_duration(&format!("1{period}"))
        } else {
            humantime::parse_duration(period)
        }
        .map_err(|e| bad(&format!("bad period ({e})")))?;
        if period.is_zero() {
            return Err(bad("the period must be longer than zero"));
        }
        Ok(Self { count, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.period))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"5/15m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(RateVisitor)
    }
}

/// The shortest exact form (`90d`, `15m`, `10s`): humantime's own formatter
/// writes 90 days as `2months 29days 2h 52m 48s`, which is exact but unreadable
/// in `forge config check`. Both forms parse back to the same value.
fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return humantime::format_duration(d).to_string();
    }
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(len) {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

/// `Duration` as a human string (`900s`, `15m`, `30d`).
pub(super) mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"15m\" or \"30d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime::parse_duration(v.trim()).map_err(|e| E::custom(format!("invalid duration {v:?} ({e})")))
            }
        }
        d.deserialize_str(DurationVisitor)
    }
}

/// An optional `Duration`: `off` (or an empty string) is `None`, which is
/// also how `None` is written back, so the redacted config shows the key.
pub(super) mod optional_duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        humantime::parse_duration(text)
            .map(Some)
            .map_err(|e| de::Error::custom(format!("invalid duration {text:?} ({e}); or \"off\"")))
    }
}

/// CIDR list that also takes bare addresses, since operators write `10.0.0.5`
/// for a single proxy far more often than `10.0.0.5/32`.
pub(super) mod ip_nets {
    use super::*;
    use std::net::IpAddr;

    pub fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|raw| {
                let raw = raw.trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| de::Error::custom(format!("invalid CIDR or IP address {raw:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::minutes;

    #[test]
    fn rate_round_trips_and_rejects_nonsense() {
        for text in ["5/15m", "30/1m", "120/1m", "20/1h", "1/1d", "3/90s", "7/1m 30s"] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(rate.to_string().parse::<Rate>().unwrap(), rate, "{text}");
        }
        assert_eq!("5/15m".parse::<Rate>().unwrap().to_string(), "5/15m");
        assert_eq!("3/90s".parse::<Rate>().unwrap().to_string(), "3/90s");
        assert_eq!(" 30 / m ".parse::<Rate>().unwrap(), Rate::new(30, minutes(1)));
        for bad in ["", "5", "0/1m", "-1/1m", "x/1m", "5/", "5/0s", "5/abc", "5/15m/2"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} accepted");
        }
    }
    #[test]
    fn durations_print_in_the_shortest_exact_unit() {
        for (secs, text) in [
            (0, "0s"),
            (10, "10s"),
            (90, "90s"),
            (900, "15m"),
            (43_200, "12h"),
            (7_776_000, "90d"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), d);
        }
        let d = Duration::from_millis(1_500);
        assert_eq!(humantime::parse_duration(&format_duration(d)).unwrap(), d);
    }
}
