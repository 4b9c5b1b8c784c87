//! Process-local copies of rows the database owns (a tenant by slug, a
//! user's roles and permissions), exact across instances.
//!
//! Invariant: whatever one instance changes, every instance sees on its very
//! next request. Every copy is stamped with the [`Epoch`] read *before* the
//! row was read, and counts only while the epoch is still that value; every
//! change to such rows moves the epoch after its commit and before it
//! answers. A reader that read the row just before a concurrent change
//! stamped its copy with the epoch from before that change, so the copy
//! never outlives it.
//!
//! A lone instance (`cache.url = "memory"`) keeps the epoch in memory.
//! Instances that share a Redis cache keep it there, so instance B sees
//! instance A's change on its next lookup: one Redis `GET` in place of a
//! database query (which is what every authenticated request paid before,
//! when the copies were simply off with a shared cache).
//!
//! The shared epoch is a random value that each change replaces rather than
//! increments: a key lost from Redis (expired, flushed) comes back as a new
//! random value that no old copy carries (a 2^-64 chance), so losing it costs
//! a reload, never a stale answer.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Cache, CacheKey, CacheResult};

/// How long the shared epoch lives in Redis without a change; when it
/// expires, the next lookup starts a new one (and every copy reloads once).
const SHARED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The version of the copied rows; see the module documentation.
#[derive(Clone)]
pub struct Epoch(Arc<Source>);

enum Source {
    Local(AtomicU64),
    Shared(Arc<dyn Cache>),
}

impl Epoch {
    /// An epoch only this process changes and reads.
    pub fn local() -> Self {
        Epoch(Arc::new(Source::Local(AtomicU64::new(0))))
    }

    /// An epoch every instance sharing `cache` changes and reads.
    pub fn shared(cache: Arc<dyn Cache>) -> Self {
        Epoch(Arc::new(Source::Shared(cache)))
    }

    /// The epoch now.
    pub async fn current(&self) -> CacheResult<u64> {
        match &*self.0 {
            Source::Local(n) => Ok(n.load(Ordering::SeqCst)),
            Source::Shared(cache) => {
                let key = CacheKey::directory_epoch();
                if let Some(value) = cache.get(&key).await? {
                    return Ok(decode(&value));
                }
                cache.set_if_absent(&key, &random(), SHARED_TTL).await?;
                // Gone again already (a flush): a value nobody stamped with.
                Ok(cache.get(&key).await?.map_or_else(fresh, |v| decode(&v)))
            }
        }
    }

    /// Moves the epoch: every copy made before now stops counting, on every
    /// instance. Call after the change committed, before answering.
    pub async fn advance(&self) -> CacheResult<()> {
        match &*self.0 {
            Source::Local(n) => {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Source::Shared(cache) => cache.set(&CacheKey::directory_epoch(), &random(), SHARED_TTL).await,
        }
    }
}

fn fresh() -> u64 {
    rand::random()
}

fn random() -> [u8; 8] {
    fresh().to_le_bytes()
}

/// A stored epoch; anything but eight bytes (which forge never writes)
/// reads as a value no copy carries.
fn decode(value: &[u8]) -> u64 {
    <[u8; 8]>::try_from(value).map_or_else(|_| fresh(), u64::from_le_bytes)
}

/// Copies stamped with the [`Epoch`]: up to a bounded number, each for at
/// most a time to live, and only while the epoch stands.
#[derive(Clone)]
pub struct EpochCache<K, V> {
    entries: moka::sync::Cache<K, (u64, V)>,
    epoch: Epoch,
}

impl<K, V> EpochCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(epoch: Epoch, capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            epoch,
        }
    }

    /// The copy of `key` if it is stamped with `epoch`, else what `load`
    /// reads (kept, stamped with `epoch`, when found). `epoch` is what the
    /// caller read from [`Self::epoch`] before, once per request: one round
    /// trip to the shared epoch serves every lookup of the request. It was
    /// read no later than the row `load` reads, so a stale row never
    /// outlives the change that made it stale.
    pub async fn get_or_load_at<Q, E, F, Fut>(&self, epoch: u64, key: &Q, load: F) -> Result<Option<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some((stamp, value)) = self.entries.get(key)
            && stamp == epoch
        {
            return Ok(Some(value));
        }
        let found = load().await?;
        if let Some(value) = &found {
            self.entries.insert(key.to_owned(), (epoch, value.clone()));
        }
        Ok(found)
    }

    /// The epoch the copies are stamped with.
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// The rows changed: no copy on any instance counts any more.
    pub async fn changed(&self) -> CacheResult<()> {
        self.epoch.advance().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::moka::MokaStore;

    fn shared() -> Arc<dyn Cache> {
        Arc::new(MokaStore::new())
    }

    async fn load(cache: &EpochCache<String, u32>, value: u32) -> Option<u32> {
        let epoch = cache.epoch().current().await.unwrap();
        cache
            .get_or_load_at(epoch, "k", || async { Ok::<_, crate::cache::CacheError>(Some(value)) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_copy_counts_until_the_epoch_moves() {
        let cache = EpochCache::new(Epoch::local(), 10, Duration::from_secs(60));
        assert_eq!(load(&cache, 1).await, Some(1));
        assert_eq!(load(&cache, 2).await, Some(1), "the copy");
        cache.changed().await.unwrap();
        assert_eq!(load(&cache, 2).await, Some(2), "read again after a change");
    }

    #[tokio::test]
    async fn a_change_on_one_instance_counts_on_another_at_its_next_lookup() {
        let redis = shared();
        let a: EpochCache<String, u32> = EpochCache::new(Epoch::shared(redis.clone()), 10, Duration::from_secs(60));
        let b = EpochCache::new(Epoch::shared(redis.clone()), 10, Duration::from_secs(60));
        assert_eq!(load(&b, 1).await, Some(1));
        assert_eq!(load(&b, 2).await, Some(1), "b keeps its copy");
        a.changed().await.unwrap();
        assert_eq!(load(&b, 2).await, Some(2), "a's change reaches b");
    }

    #[tokio::test]
    async fn a_lost_shared_epoch_never_revives_old_copies() {
        let redis = shared();
        let cache = EpochCache::new(Epoch::shared(redis.clone()), 10, Duration::from_secs(60));
        assert_eq!(load(&cache, 1).await, Some(1));
        redis.delete(&CacheKey::directory_epoch()).await.unwrap();
        assert_eq!(load(&cache, 2).await, Some(2));
        redis
            .set(&CacheKey::directory_epoch(), b"garbage", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(load(&cache, 3).await, Some(3));
    }

    #[tokio::test]
    async fn a_row_read_before_a_change_is_not_kept_past_it() {
        let cache = EpochCache::new(Epoch::local(), 10, Duration::from_secs(60));
        // The load reads the old row, then the change commits and moves the
        // epoch before the copy is stored: the copy carries the old stamp.
        let epoch = cache.epoch().current().await.unwrap();
        let stale = cache
            .get_or_load_at(epoch, "k", || async {
                cache.changed().await.unwrap();
                Ok::<_, crate::cache::CacheError>(Some(1))
            })
            .await
            .unwrap();
        assert_eq!(stale, Some(1));
        assert_eq!(load(&cache, 2).await, Some(2));
    }
}
