//! Ceremony state between the options call and the finish call: kept server
//! side in the cache for [`CEREMONY_TTL`](super::CEREMONY_TTL), keyed by a
//! random request id the client carries (`{request_id, publicKey}`), and
//! taken exactly once: the cache's atomic [`Cache::take`] hands it to one
//! finish call, so a replayed answer (or two racing ones, on any instance)
//! finds nothing. The state never travels to the client, whose answer
//! could otherwise come with a challenge of its choosing.
//!
//! A ceremony may be bound to a subject (the user registering a passkey,
//! the sign-in attempt a second factor completes): taking it for another
//! subject finds nothing, and uses it up. The cache key is a hash of the
//! request id and names the kind of ceremony, so a registration's id never
//! finishes a sign-in.
//!
//! Memory: every options call adds one entry of a few hundred bytes for
//! five minutes, and the cache never evicts security state to make room.
//! The unauthenticated options call (discoverable sign-in) must therefore
//! stay behind a per-address rate limit.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
use crate::crypto::tokens::random_token;
use crate::error::{AppError, AppResult};

/// A ceremony's server-side state: serialisable, with a short tag naming
/// its kind in the cache key.
pub trait Ceremony: Serialize + DeserializeOwned + Send + Sync {
    const KIND: &'static str;
}

/// Request ids are [`random_token`]s (43 characters); anything much longer
/// is refused before it reaches the cache.
const MAX_REQUEST_ID: usize = 128;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// The subject the ceremony is bound to, if any.
    s: Option<Uuid>,
    /// The state.
    c: T,
}

/// Ceremony state over the cache port.
#[derive(Clone)]
pub struct Ceremonies {
    cache: Arc<dyn Cache>,
    ttl: Duration,
}

impl Ceremonies {
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self::with_ttl(cache, super::CEREMONY_TTL)
    }

    /// [`Ceremonies::new`] with another lifetime (tests).
    pub fn with_ttl(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    /// Keeps `state` and answers the request id the client must send back.
    #[tracing::instrument(skip_all, fields(kind = C::KIND))]
    pub async fn start<C: Ceremony>(&self, subject: Option<Uuid>, state: &C) -> AppResult<String> {
        let request_id = random_token();
        let value = serde_json::to_vec(&Envelope { s: subject, c: state })
            .map_err(|e| AppError::Internal(anyhow::anyhow!("ceremony state: {e}")))?;
        self.cache
            .set(&CacheKey::ceremony(C::KIND, &request_id), &value, self.ttl)
            .await?;
        Ok(request_id)
    }

    /// Takes the state of `request_id`, once: `None` when it never existed,
    /// expired, was taken already, is of another kind, or is bound to
    /// another subject (it is used up all the same).
    #[tracing::instrument(skip_all, fields(kind = C::KIND))]
    pub async fn take<C: Ceremony>(&self, request_id: &str, subject: Option<Uuid>) -> AppResult<Option<C>> {
        if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID {
            return Ok(None);
        }
        let Some(value) = self.cache.take(&CacheKey::ceremony(C::KIND, request_id)).await? else {
            return Ok(None);
        };
        let envelope: Envelope<C> = serde_json::from_slice(&value)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored ceremony state is unreadable: {e}")))?;
        Ok((envelope.s == subject).then_some(envelope.c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Probe(u32);
    impl Ceremony for Probe {
        const KIND: &'static str = "probe";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Other(u32);
    impl Ceremony for Other {
        const KIND: &'static str = "other";
    }

    #[tokio::test]
    async fn a_ceremony_is_taken_once_by_its_subject_and_kind() {
        let ceremonies = Ceremonies::new(test_ports::cache());
        let ann = Some(Uuid::new_v4());
        let id = ceremonies.start(ann, &Probe(7)).await.unwrap();
        assert_eq!(id.len(), 43);
        assert_eq!(ceremonies.take::<Probe>(&id, ann).await.unwrap(), Some(Probe(7)));
        assert_eq!(ceremonies.take::<Probe>(&id, ann).await.unwrap(), None, "single use");

        let id = ceremonies.start(ann, &Probe(8)).await.unwrap();
        assert_eq!(ceremonies.take::<Other>(&id, ann).await.unwrap(), None, "another kind");
        assert_eq!(
            ceremonies.take::<Probe>(&id, Some(Uuid::new_v4())).await.unwrap(),
            None,
            "another subject"
        );
        assert_eq!(
            ceremonies.take::<Probe>(&id, ann).await.unwrap(),
            None,
            "used up by the wrong subject"
        );

        let id = ceremonies.start(None, &Probe(9)).await.unwrap();
        assert_eq!(
            ceremonies.take::<Probe>(&id, ann).await.unwrap(),
            None,
            "unbound is not bound"
        );
        let id = ceremonies.start(None, &Probe(9)).await.unwrap();
        assert_eq!(ceremonies.take::<Probe>(&id, None).await.unwrap(), Some(Probe(9)));

        for junk in ["", "x", &"y".repeat(500)] {
            assert_eq!(ceremonies.take::<Probe>(junk, None).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_ceremony_expires() {
        let ceremonies = Ceremonies::with_ttl(test_ports::cache(), Duration::from_millis(30));
        let id = ceremonies.start(None, &Probe(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(ceremonies.take::<Probe>(&id, None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn unreadable_state_is_an_error_not_an_absence() {
        let cache = test_ports::cache();
        let ceremonies = Ceremonies::new(cache.clone());
        cache
            .set(&CacheKey::ceremony("probe", "id"), b"not json", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(ceremonies.take::<Probe>("id", None).await.is_err());
    }
}
