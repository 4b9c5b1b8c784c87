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

use crate::cache::RateBucket;
use crate::config::Rate;
use crate::crypto::tokens::hmac_sha256;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

fn digest(state: &AppState, bucket: RateBucket, key: &str) -> [u8; 32] {
    let message = format!("rate-limit\0{bucket}\0{key}");
    hmac_sha256(&state.refresh_key, message.as_bytes())
}

/// Spends one unit of `bucket:key`'s budget; 429 with `Retry-After` once it
/// is exhausted.
#[tracing::instrument(skip_all, fields(bucket = %bucket))]
pub async fn spend(state: &AppState, bucket: RateBucket, key: &str, rate: Rate) -> AppResult<()> {
    if !state.config.rate_limit.enabled {
        return Ok(());
    }
    let count = state
        .cache
        .count(bucket, &digest(state, bucket, key), rate.period, true)
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
pub async fn check_failures(state: &AppState, bucket: RateBucket, key: &str, rate: Rate) -> AppResult<()> {
    if !state.config.rate_limit.enabled {
        return Ok(());
    }
    let count = state
        .cache
        .count(bucket, &digest(state, bucket, key), rate.period, false)
        .await?;
    if count.count >= u64::from(rate.count) {
        return Err(AppError::RateLimited {
            retry_after_secs: count.retry_after_secs,
        });
    }
    Ok(())
}

/// Counts one failure against `bucket:key` (see [`check_failures`]).
#[tracing::instrument(skip_all, fields(bucket = %bucket))]
pub async fn record_failure(state: &AppState, bucket: RateBucket, key: &str, rate: Rate) -> AppResult<()> {
    if state.config.rate_limit.enabled {
        state
            .cache
            .count(bucket, &digest(state, bucket, key), rate.period, true)
            .await?;
    }
    Ok(())
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
    use super::*;

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
