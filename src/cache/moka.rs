//! The in-process [`Cache`] adapter: security state on moka with a time to
//! live per entry, rate-limit counters in fixed-size sketches.
//!
//! The security-state cache has no size bound on purpose: a bound means
//! eviction, and eviction of a deny-list entry makes a revoked token work
//! again. Its size is what legitimate events put in it (sign-outs, codes
//! sent, admin sessions), each gone when its TTL ends. Everything keyed by
//! what clients send goes to the sketches ([`super::sketch`]), one per
//! budget, allocated on first use and never larger.
//!
//! Atomicity comes from moka's per-key `and_compute_with`, which runs one
//! closure at a time for a key, and from the sketch's lock. Expiry is
//! checked on read as well as by moka's eviction, so an entry is never seen
//! past its deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache as MokaCache;

use super::sketch::{Count, SKETCH_BYTES, WindowedSketch};
use super::{Cache, CacheResult, CodeCheck, Footprint, RateBucket};

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    expires: Instant,
}

struct PerEntry;

impl moka::Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _k: &String, v: &Entry, now: Instant) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }

    fn expire_after_update(&self, _k: &String, v: &Entry, now: Instant, _d: Option<Duration>) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }
}

/// A live code: `[CODE, wrong tries (u32, big-endian), digest...]`.
const CODE: u8 = 0;
/// A burned code: `[BURNED]`.
const BURNED: u8 = 1;

type Sketches = HashMap<(RateBucket, u64), Arc<WindowedSketch>>;

#[derive(Clone)]
pub struct MokaStore {
    entries: MokaCache<String, Entry>,
    /// One sketch per (bucket, period in ms): a set fixed by code and config.
    sketches: Arc<Mutex<Sketches>>,
    started: Instant,
}

impl MokaStore {
    pub fn new() -> Self {
        Self {
            entries: MokaCache::builder().expire_after(PerEntry).build(),
            sketches: Arc::default(),
            started: Instant::now(),
        }
    }

    fn live(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).filter(|e| e.expires > Instant::now())
    }

    fn sketch(&self, bucket: RateBucket, period_ms: u64) -> Arc<WindowedSketch> {
        let mut sketches = self.sketches.lock().unwrap_or_else(|p| p.into_inner());
        sketches
            .entry((bucket, period_ms))
            .or_insert_with(|| Arc::new(WindowedSketch::new(period_ms)))
            .clone()
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Cache for MokaStore {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        Ok(self.live(key).map(|e| e.value.to_vec()))
    }

    async fn any_exists(&self, keys: &[&str]) -> CacheResult<bool> {
        Ok(keys.iter().any(|key| self.live(key).is_some()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        self.entries.insert(
            key.to_string(),
            Entry {
                value: value.into(),
                expires: Instant::now() + ttl,
            },
        );
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool> {
        let now = Instant::now();
        let result = self
            .entries
            .entry(key.to_string())
            .and_compute_with(|current| match current {
                Some(e) if e.value().expires > now => Op::Nop,
                _ => Op::Put(Entry {
                    value: value.into(),
                    expires: now + ttl,
                }),
            });
        Ok(matches!(result, CompResult::Inserted(_) | CompResult::ReplacedWith(_)))
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        self.entries.invalidate(key);
        Ok(())
    }

    async fn take(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        // `remove` hands the entry to exactly one caller.
        Ok(self
            .entries
            .remove(key)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value.to_vec()))
    }

    async fn put_code(&self, key: &str, digest: &[u8], ttl: Duration) -> CacheResult<()> {
        let mut value = Vec::with_capacity(digest.len() + 5);
        value.push(CODE);
        value.extend_from_slice(&0u32.to_be_bytes());
        value.extend_from_slice(digest);
        self.set(key, &value, ttl).await
    }

    async fn try_code(
        &self,
        key: &str,
        digest: &[u8],
        max_attempts: u32,
        burn_ttl: Duration,
    ) -> CacheResult<CodeCheck> {
        let now = Instant::now();
        let mut outcome = CodeCheck::Invalid;
        // One closure per key at a time: the compare, the count and the
        // burn are one step for concurrent guesses.
        self.entries.entry(key.to_string()).and_compute_with(|current| {
            let Some(entry) = current.map(|e| e.into_value()).filter(|e| e.expires > now) else {
                return Op::Nop;
            };
            match entry.value.split_first() {
                Some((&CODE, rest)) if rest.len() >= 4 => {
                    let (tries, stored) = rest.split_at(4);
                    if crate::crypto::tokens::constant_time_eq(stored, digest) {
                        outcome = CodeCheck::Valid;
                        return Op::Remove;
                    }
                    let tries = u32::from_be_bytes([tries[0], tries[1], tries[2], tries[3]]).saturating_add(1);
                    if tries >= max_attempts {
                        outcome = CodeCheck::Burned;
                        return Op::Put(Entry {
                            value: [BURNED].as_slice().into(),
                            expires: now + burn_ttl,
                        });
                    }
                    let mut value = entry.value.to_vec();
                    value[1..5].copy_from_slice(&tries.to_be_bytes());
                    Op::Put(Entry {
                        value: value.into(),
                        expires: entry.expires,
                    })
                }
                Some((&BURNED, _)) => {
                    outcome = CodeCheck::Burned;
                    Op::Nop
                }
                _ => Op::Nop,
            }
        });
        Ok(outcome)
    }

    async fn count(&self, bucket: RateBucket, digest: &[u8; 32], period: Duration, hit: bool) -> CacheResult<Count> {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(self.sketch(bucket, period_ms).count(digest, hit, now_ms))
    }

    fn footprint(&self) -> Option<Footprint> {
        self.entries.run_pending_tasks();
        let sketches = self.sketches.lock().unwrap_or_else(|p| p.into_inner()).len();
        Some(Footprint {
            security_entries: self.entries.entry_count(),
            rate_limit_bytes: (sketches * SKETCH_BYTES) as u64,
        })
    }

    async fn ping(&self) -> CacheResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ttl_and_atomic_ops() {
        let c = MokaStore::default();
        c.set("a", b"1", Duration::from_millis(50)).await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(c.get("a").await.unwrap(), None);

        c.set("t", b"once", Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.take("t").await.unwrap(), Some(b"once".to_vec()));
        assert_eq!(c.take("t").await.unwrap(), None, "taken once");
        assert_eq!(c.get("t").await.unwrap(), None);
        c.set("t", b"late", Duration::from_millis(20)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(c.take("t").await.unwrap(), None, "an expired value is never taken");

        assert!(c.set_if_absent("b", b"x", Duration::from_secs(5)).await.unwrap());
        assert!(!c.set_if_absent("b", b"y", Duration::from_secs(5)).await.unwrap());
        assert!(c.any_exists(&["none", "b"]).await.unwrap());
        assert!(
            !c.any_exists(&["none", "a", "t"]).await.unwrap(),
            "never set, expired, taken"
        );

        c.put_code("code", b"right", Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            c.try_code("code", b"wrong", 3, Duration::from_secs(5)).await.unwrap(),
            CodeCheck::Invalid
        );
        assert_eq!(
            c.try_code("code", b"right", 3, Duration::from_secs(5)).await.unwrap(),
            CodeCheck::Valid
        );
        assert_eq!(
            c.try_code("code", b"right", 3, Duration::from_secs(5)).await.unwrap(),
            CodeCheck::Invalid
        );
        assert_eq!(c.get("code").await.unwrap(), None, "consumed, nothing left");
        assert_eq!(
            c.try_code("none", b"x", 3, Duration::from_secs(5)).await.unwrap(),
            CodeCheck::Invalid
        );
        assert_eq!(
            c.get("none").await.unwrap(),
            None,
            "a guess without a code records nothing"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_guesses_get_max_attempts_tries() {
        let c = Arc::new(MokaStore::default());
        c.put_code("k", b"right", Duration::from_secs(60)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..100u32 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let guess = format!("wrong{i}");
                c.try_code("k", guess.as_bytes(), 3, Duration::from_secs(60))
                    .await
                    .unwrap()
            }));
        }
        let mut invalid = 0;
        for t in tasks {
            if t.await.unwrap() == CodeCheck::Invalid {
                invalid += 1;
            }
        }
        assert_eq!(invalid, 2, "the third wrong try burns the code");
        assert_eq!(
            c.try_code("k", b"right", 3, Duration::from_secs(60)).await.unwrap(),
            CodeCheck::Burned
        );
        c.put_code("k", b"right", Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            c.try_code("k", b"right", 3, Duration::from_secs(60)).await.unwrap(),
            CodeCheck::Valid,
            "a new code lifts the burn"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takes_get_the_value_once() {
        let c = Arc::new(MokaStore::default());
        for round in 0..20 {
            c.set("once", b"v", Duration::from_secs(60)).await.unwrap();
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let c = c.clone();
                tasks.push(tokio::spawn(async move { c.take("once").await.unwrap() }));
            }
            let mut won = 0;
            for t in tasks {
                won += usize::from(t.await.unwrap().is_some());
            }
            assert_eq!(won, 1, "round {round}");
        }
    }

    /// Rate-limit keys never enter the security state, however many there
    /// are: a deny-list entry survives any flood of them.
    #[tokio::test]
    async fn rate_limit_keys_never_touch_security_state() {
        let c = MokaStore::default();
        c.set("deny:s:x", b"1", Duration::from_secs(600)).await.unwrap();
        for n in 0..200_000u64 {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            d[8..16].copy_from_slice(&n.wrapping_mul(0xBF58_476D_1CE4_E5B9).to_le_bytes());
            c.count(RateBucket::RefreshIp, &d, Duration::from_secs(60), true)
                .await
                .unwrap();
        }
        assert_eq!(c.get("deny:s:x").await.unwrap(), Some(b"1".to_vec()));
        let f = c.footprint().unwrap();
        assert_eq!(f.security_entries, 1);
        assert_eq!(f.rate_limit_bytes, SKETCH_BYTES as u64);
    }
}
