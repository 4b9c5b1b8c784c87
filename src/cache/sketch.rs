//! Rate-limit counters in a fixed amount of memory: a windowed count-min
//! sketch with conservative update.
//!
//! Rate limits are keyed by what a client sends (its address, the account it
//! names), so an attacker can create as many keys as it likes: a map per key,
//! however it is evicted, either grows without bound or forgets counts (fails
//! open) under a flood. A count-min sketch keeps `DEPTH` rows of `WIDTH`
//! counters whatever the number of keys; a key's count is the minimum of its
//! `DEPTH` cells, which is never below the true count (collisions only add),
//! so under an extreme flood the sketch over-counts (some clients are limited
//! early) and never under-counts (nobody gets extra guesses). Conservative
//! update (raise only the cells that hold the minimum) keeps the
//! over-count small while the load is normal.
//!
//! Windows: each sketch has two generations of one period each, aligned to
//! multiples of the period. A key's count is its estimate in the current
//! generation plus the previous one, so every hit of the last full period is
//! counted wherever the window boundary falls (a budget is never refilled
//! early); hits up to two periods old may still count, which only makes the
//! limit stricter. When time moves into a new generation the current one
//! becomes the previous one and a cleared buffer becomes current.
//!
//! Keys arrive as 32-byte keyed digests (see `service::limits`): cell indices
//! are taken from the digest, so nobody who lacks the server key can craft
//! keys that collide with a victim's cells.

use std::sync::Mutex;

/// Rows of the sketch: a key's estimate is the minimum over its rows.
pub const DEPTH: usize = 4;
/// Counters per row: with 2^16, a million distinct keys in one window put
/// about 15 hits on each cell before conservative update, far below the
/// budgets a flood would push legitimate clients over.
pub const WIDTH: usize = 1 << 16;

/// Bytes one sketch (both generations) occupies, whatever the load.
pub const SKETCH_BYTES: usize = 2 * DEPTH * WIDTH * std::mem::size_of::<u32>();

/// The cell of `digest` in each row: 4 bytes of the digest per row.
pub fn cells(digest: &[u8; 32]) -> [usize; DEPTH] {
    let mut out = [0usize; DEPTH];
    for (row, cell) in out.iter_mut().enumerate() {
        let b = &digest[row * 4..row * 4 + 4];
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *cell = row * WIDTH + n % WIDTH;
    }
    out
}

/// The generation `now_ms` falls in and the milliseconds left in it.
pub fn generation(now_ms: u64, period_ms: u64) -> (u64, u64) {
    let period = period_ms.max(1);
    let index = now_ms / period;
    (index, (index + 1) * period - now_ms)
}

/// A count and the seconds until the oldest counted generation is dropped
/// (a conservative `Retry-After`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub retry_after_secs: u64,
}

struct Generations {
    index: u64,
    current: Vec<u32>,
    previous: Vec<u32>,
}

/// One windowed sketch: one budget (bucket) with one period.
pub struct WindowedSketch {
    period_ms: u64,
    inner: Mutex<Generations>,
}

impl WindowedSketch {
    pub fn new(period_ms: u64) -> Self {
        Self {
            period_ms: period_ms.max(1),
            inner: Mutex::new(Generations {
                index: 0,
                current: vec![0; DEPTH * WIDTH],
                previous: vec![0; DEPTH * WIDTH],
            }),
        }
    }

    /// Counts one hit for `digest` (when `hit`) and returns its estimate
    /// over the current and the previous generation.
    pub fn count(&self, digest: &[u8; 32], hit: bool, now_ms: u64) -> Count {
        let (index, left_ms) = generation(now_ms, self.period_ms);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if index != g.index {
            let g = &mut *g;
            if index == g.index + 1 {
                std::mem::swap(&mut g.current, &mut g.previous);
            } else {
                g.previous.fill(0);
            }
            g.current.fill(0);
            g.index = index;
        }
        let cells = cells(digest);
        let mut current = cells.iter().map(|&c| g.current[c]).min().unwrap_or(0);
        let previous = cells.iter().map(|&c| g.previous[c]).min().unwrap_or(0);
        if hit {
            // Conservative update: only cells at the minimum go up, so the
            // estimate rises by exactly one and no cell drops below any true
            // count it covers.
            let target = current.saturating_add(1);
            for &c in &cells {
                if g.current[c] < target {
                    g.current[c] = target;
                }
            }
            current = target;
        }
        Count {
            count: u64::from(current) + u64::from(previous),
            retry_after_secs: left_ms.div_ceil(1000).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn key(n: u64) -> [u8; 32] {
        Sha256::digest(n.to_le_bytes()).into()
    }

    #[test]
    fn counts_exactly_while_keys_are_few() {
        let s = WindowedSketch::new(60_000);
        for i in 1..=50 {
            assert_eq!(s.count(&key(1), true, 1_000).count, i);
        }
        assert_eq!(s.count(&key(2), false, 1_000).count, 0);
        assert_eq!(s.count(&key(1), false, 1_000).count, 50);
    }

    /// Two million distinct keys (an IPv6 flood) never make a key read
    /// below its true count, and the memory stays the same fixed buffers.
    #[test]
    fn millions_of_keys_never_under_count() {
        let s = WindowedSketch::new(60_000);
        let victim = key(u64::MAX);
        for _ in 0..7 {
            s.count(&victim, true, 10);
        }
        for n in 0..2_000_000u64 {
            // Cheap distinct digests: the sketch only needs spread bytes.
            let mut d = [0u8; 32];
            let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            d[..8].copy_from_slice(&x.to_le_bytes());
            d[8..16].copy_from_slice(&x.rotate_left(17).wrapping_mul(0xBF58_476D_1CE4_E5B9).to_le_bytes());
            s.count(&d, true, 10);
        }
        let after = s.count(&victim, false, 10).count;
        assert!(after >= 7, "under-counted: {after}");
        // Over-counting is bounded by the load per cell (~30 per cell here).
        assert!(after < 7 + 200, "over-counted wildly: {after}");
        let g = s.inner.lock().unwrap();
        assert_eq!(g.current.len() + g.previous.len(), 2 * DEPTH * WIDTH);
    }

    #[test]
    fn the_last_full_period_always_counts_and_older_hits_expire() {
        let s = WindowedSketch::new(1_000);
        let k = key(7);
        // Three hits late in generation 0...
        for _ in 0..3 {
            s.count(&k, true, 990);
        }
        // ...still count just after the boundary (a sliding window would too).
        let c = s.count(&k, true, 1_010);
        assert_eq!(c.count, 4);
        assert_eq!(c.retry_after_secs, 1);
        // One generation later the early hits are gone, the later one stays.
        assert_eq!(s.count(&k, false, 2_500).count, 1);
        // Two generations later everything is gone.
        assert_eq!(s.count(&k, false, 3_000).count, 0);
        // A jump of many generations clears both.
        s.count(&k, true, 3_100);
        assert_eq!(s.count(&k, false, 10_000).count, 0);
    }

    #[test]
    fn cells_cover_every_row() {
        let c = cells(&key(3));
        for (row, cell) in c.iter().enumerate() {
            assert!((row * WIDTH..(row + 1) * WIDTH).contains(cell));
        }
    }
}
