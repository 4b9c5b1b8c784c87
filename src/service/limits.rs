//! Rate limits: fixed-window budgets kept in the cache, so with Redis every
//! instance draws on the same budget.
//!
//! Budgets are keyed by what an attacker cannot cheaply multiply: the client
//! IP (as [`crate::http::extract::client_ip`] believes it, so a spoofed
//! `X-Forwarded-For` from an untrusted peer does not buy a fresh bucket) and
//! the identifier being targeted. Failed password sign-ins are counted per
//! account *and* client IP: an attacker's failures throttle the attacker,
//! not the account's owner signing in from elsewhere, and the budget reads
//! the same whether the account exists or not.

use crate::config::Rate;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Spends one unit of `bucket:key`'s budget; 429 with `Retry-After` once it
/// is exhausted for the rest of the window.
pub async fn spend(state: &AppState, bucket: &str, key: &str, rate: Rate) -> AppResult<()> {
    if !state.config.rate_limit.enabled {
        return Ok(());
    }
    let (count, retry_after_secs) = state.cache.incr(&format!("rl:{bucket}:{key}"), rate.period).await?;
    if count > u64::from(rate.count) {
        return Err(AppError::RateLimited { retry_after_secs });
    }
    Ok(())
}

/// Refuses without spending when `bucket:key` already used its budget
/// (checked before the expensive work, counted only on failure).
pub async fn check_failures(state: &AppState, bucket: &str, key: &str, rate: Rate) -> AppResult<()> {
    if !state.config.rate_limit.enabled {
        return Ok(());
    }
    let key = format!("rl:{bucket}:{key}");
    let Some(raw) = state.cache.get(&key).await? else {
        return Ok(());
    };
    let mut buf = [0u8; 8];
    if raw.len() == 8 {
        buf.copy_from_slice(&raw);
    }
    if u64::from_be_bytes(buf) >= u64::from(rate.count) {
        return Err(AppError::RateLimited {
            retry_after_secs: rate.period.as_secs(),
        });
    }
    Ok(())
}

/// Counts one failure against `bucket:key` (see [`check_failures`]).
pub async fn record_failure(state: &AppState, bucket: &str, key: &str, rate: Rate) -> AppResult<()> {
    if state.config.rate_limit.enabled {
        state.cache.incr(&format!("rl:{bucket}:{key}"), rate.period).await?;
    }
    Ok(())
}

/// The key of a client: its IP, or a fixed word when none is known (tests
/// without connect info), which then shares one budget.
pub fn ip_key(ip: Option<&str>) -> String {
    ip.unwrap_or("unknown").to_string()
}
