//! Rate limits: windowed budgets in the cache's rate-limit counters, so with
//! Redis every instance draws on the same budget.
//!
//! Budgets are keyed by what an attacker cannot cheaply multiply: the client
//! IP (as the HTTP layer's `client_ip` extractor believes it, so a spoofed
//! `X-Forwarded-For` from an untrusted peer does not buy a fresh bucket; an
//! IPv6 client by its /64, the smallest block a subscriber is given, so one
//! attacker does not get 2^64 budgets) and the identifier being targeted.
//!
//! Counters live in a fixed-size count-min sketch per budget (see
//! [`crate::cache::sketch`]): whatever a flood of fresh addresses does, the
//! memory stays the same and no count is ever read low, so a check never
//! fails open; the worst a flood can do is make budgets run out early.
//! Keys reach the cache only as HMACs under the server key, so nobody can
//! aim collisions at someone else's budget.

use std::net::IpAddr;
use std::sync::Arc;

use crate::cache::{Cache, RateBucket};
use crate::config::{Rate, RateLimitConfig};
use crate::crypto::tokens::hmac_sha256;
use crate::error::{AppError, AppResult};

/// Rate limits over the cache's counters, keyed under the server key.
#[derive(Clone)]
pub struct Limits {
    cache: Arc<dyn Cache>,
    refresh_key: Arc<Vec<u8>>,
    rate_limit: RateLimitConfig,
}

impl Limits {
    pub fn new(cache: Arc<dyn Cache>, refresh_key: Arc<Vec<u8>>, rate_limit: RateLimitConfig) -> Self {
        Self {
            cache,
            refresh_key,
            rate_limit,
        }
    }

    fn digest(&self, bucket: RateBucket, key: &str) -> [u8; 32] {
        let message = format!("rate-limit\0{bucket}\0{key}");
        hmac_sha256(&self.refresh_key, message.as_bytes())
    }

    /// Spends one unit of `bucket:key`'s budget; 429 with `Retry-After` once it
    /// is exhausted.
    #[tracing::instrument(skip_all, fields(bucket = %bucket))]
    pub async fn spend(&self, bucket: RateBucket, key: &str, rate: Rate) -> AppResult<()> {
        if !self.rate_limit.enabled {
            return Ok(());
        }
        let count = self
            .cache
            .count(bucket, &self.digest(bucket, key), rate.period, true)
            .await?;
        if count.count > u64::from(rate.count) {
            return Err(AppError::RateLimited {
                retry_after_secs: count.retry_after_secs,
            });
        }
        Ok(())
    }

    /// Refuses without spending when `bucket:key` already used its budget
    /// (checked before the expensive work, counted only on failure).
    #[tracing::instrument(skip_all, fields(bucket = %bucket))]
    pub async fn check_failures(&self, bucket: RateBucket, key: &str, rate: Rate) -> AppResult<()> {
        if !self.rate_limit.enabled {
            return Ok(());
        }
        let count = self
            .cache
            .count(bucket, &self.digest(bucket, key), rate.period, false)
            .await?;
        if count.count >= u64::from(rate.count) {
            return Err(AppError::RateLimited {
                retry_after_secs: count.retry_after_secs,
            });
        }
        Ok(())
    }

    /// Counts one failure against `bucket:key` (see [`Self::check_failures`]).
    #[tracing::instrument(skip_all, fields(bucket = %bucket))]
    pub async fn record_failure(&self, bucket: RateBucket, key: &str, rate: Rate) -> AppResult<()> {
        if self.rate_limit.enabled {
            self.cache
                .count(bucket, &self.digest(bucket, key), rate.period, true)
                .await?;
        }
        Ok(())
    }
}

/// The key of a client: its IPv4 address, the /64 of its IPv6 address (an
/// IPv4-mapped address counts as the IPv4 one), or a fixed word when none
/// is known (tests without connect info), which then shares one budget.
pub fn ip_key(ip: Option<&str>) -> String {
    let Some(ip) = ip else {
        return "unknown".to_string();
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::service::test_ports;

    fn limits(enabled: bool) -> Limits {
        let mut rate_limit = crate::config::Config::default().rate_limit;
        rate_limit.enabled = enabled;
        Limits::new(test_ports::cache(), Arc::new(b"server key".to_vec()), rate_limit)
    }

    fn two_a_minute() -> Rate {
        Rate {
            count: 2,
            period: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_budget_runs_out_per_key_and_failures_count_only_when_recorded() {
        let limits = limits(true);
        limits.spend(RateBucket::LoginIp, "a", two_a_minute()).await.unwrap();
        limits.spend(RateBucket::LoginIp, "a", two_a_minute()).await.unwrap();
        let third = limits.spend(RateBucket::LoginIp, "a", two_a_minute()).await;
        assert!(matches!(third, Err(AppError::RateLimited { .. })), "{third:?}");
        limits.spend(RateBucket::LoginIp, "b", two_a_minute()).await.unwrap();

        for _ in 0..3 {
            limits
                .check_failures(RateBucket::LoginFail, "a", two_a_minute())
                .await
                .unwrap();
        }
        limits
            .record_failure(RateBucket::LoginFail, "a", two_a_minute())
            .await
            .unwrap();
        limits
            .record_failure(RateBucket::LoginFail, "a", two_a_minute())
            .await
            .unwrap();
        let refused = limits.check_failures(RateBucket::LoginFail, "a", two_a_minute()).await;
        assert!(matches!(refused, Err(AppError::RateLimited { .. })), "{refused:?}");
    }

    #[tokio::test]
    async fn nothing_is_limited_when_rate_limits_are_off() {
        let limits = limits(false);
        for _ in 0..5 {
            limits.spend(RateBucket::LoginIp, "a", two_a_minute()).await.unwrap();
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(ip_key(Some("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_key(Some("2001:db8:1:2:ffff:1:2:3")), "2001:db8:1:2::/64");
        assert_ne!(ip_key(Some("2001:db8:1:3::1")), ip_key(Some("2001:db8:1:2::1")));
        assert_eq!(ip_key(Some("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(ip_key(Some("192.0.2.1")), "192.0.2.1");
        assert_eq!(ip_key(None), "unknown");
    }
}
