//! Password hashing: argon2id on a bounded pool. (Which passwords are
//! acceptable is [`crate::domain::password_policy`].)
//!
//! Invariants:
//! - Hashing and verification never run on an async worker thread: each job
//!   first takes a permit from a semaphore sized to the pool, then runs on
//!   one of the pool's own threads (one per core). A login flood therefore
//!   queues (visible as [`PasswordHasher::queue_depth`]) instead of starving
//!   the runtime. A fixed set of threads (rather than tokio's blocking pool,
//!   which grows to hundreds of threads) also bounds memory: each thread's
//!   allocator arena keeps the last argon2 buffer (19 MiB by default), so
//!   resident memory stays near `pool size x argon2 memory`.
//! - Every failed verification costs one argon2 run with the configured
//!   parameters: an unknown account (`stored == None`) and an unusable stored
//!   hash are checked against a dummy hash, so timing does not reveal whether
//!   an account exists.
//! - A stored hash is data, not code: a malformed or foreign one is a
//!   [`Verification::Mismatch`] logged without the hash, never a panic or a
//!   500.
//! - The password itself only travels inside [`Secret`] and never reaches a
//!   log or an error message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::PasswordHasher as _;
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::secret::Secret;

/// argon2 cost parameters, as in `password.argon2_*` of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane), also the
    /// configuration default.
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

/// Why hashing could not be done. None of these carry the password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured parameters are rejected by argon2 (e.g. memory below
    /// 8 KiB per lane) or the pool size is zero. A start-up error.
    #[error("invalid password hashing parameters: {0}")]
    InvalidParams(String),
    /// argon2 itself failed; with valid parameters this does not happen.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task panicked or the runtime is shutting down.
    #[error("password hashing task did not complete")]
    TaskFailed,
}

/// Outcome of [`PasswordHasher::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password is right. `needs_rehash`: the stored hash uses another
    /// algorithm, version or cost than the configured argon2id, so the caller
    /// should store a fresh [`PasswordHasher::hash`] now that it has the
    /// plaintext.
    Match { needs_rehash: bool },
    /// Wrong password, unknown account or unusable stored hash: callers must
    /// answer all of these the same way.
    Mismatch,
}

/// argon2id hasher with a bounded pool. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// Permits for concurrently running argon2 jobs. In an `Arc` so a permit
    /// can move into the blocking closure: if the awaiting request is
    /// dropped (client gone), the job still holds its permit until it ends,
    /// and cancelled requests cannot oversubscribe the cores.
    permits: Arc<Semaphore>,
    /// Requests waiting for a permit right now.
    waiting: AtomicUsize,
    /// A hash of a random password made with `params`; the stand-in for
    /// unknown accounts and unusable stored hashes.
    dummy_hash: String,
    /// How many verifications went to the dummy hash (observable in tests).
    dummy_runs: AtomicU64,
    /// The pool's job queue; its threads end when the last hasher is dropped.
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Starts `size` threads that run jobs from one queue until it closes.
fn start_pool(size: usize) -> Result<std::sync::mpsc::Sender<Job>, PasswordError> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..size {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("forge-argon2-{i}"))
            .spawn(move || {
                loop {
                    // Hold the lock only to take a job, not while running it.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job must not take its thread with it.
                        Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| PasswordError::InvalidParams(format!("cannot start the hashing pool: {e}")))?;
    }
    Ok(tx)
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("memory_kib", &self.inner.params.m_cost())
            .field("iterations", &self.inner.params.t_cost())
            .field("parallelism", &self.inner.params.p_cost())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl PasswordHasher {
    /// Validates `params`, builds the pool and computes the dummy hash (one
    /// argon2 run on the calling thread, at start-up, so the first unknown
    /// account costs no more than later ones).
    ///
    /// `max_concurrent`: how many argon2 jobs may run at once; use
    /// [`PasswordHasher::default_concurrency`] (the number of cores).
    /// Fails on parameters argon2 refuses or a pool size of zero.
    pub fn new(params: Argon2Params, max_concurrent: usize) -> Result<Self, PasswordError> {
        if max_concurrent == 0 {
            return Err(PasswordError::InvalidParams(
                "the hashing pool needs at least one slot".into(),
            ));
        }
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|e| PasswordError::InvalidParams(e.to_string()))?;
        let dummy_password = crate::crypto::tokens::random_token();
        let dummy_hash = hash_blocking(&params, dummy_password.as_bytes())?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Arc::new(Semaphore::new(max_concurrent)),
                waiting: AtomicUsize::new(0),
                dummy_hash,
                dummy_runs: AtomicU64::new(0),
                jobs: std::sync::Mutex::new(start_pool(max_concurrent)?),
            }),
        })
    }

    /// The number of cores this process may use (at least 1): the pool size
    /// that keeps every core busy without oversubscribing them.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// An argon2id PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`)
    /// with a fresh 16-byte random salt and the configured parameters.
    pub async fn hash(&self, password: &Secret) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        let password = password.clone();
        self.run_blocking(move || hash_blocking(&params, password.expose().as_bytes()))
            .await?
    }

    /// Checks `password` against `stored` (a PHC string from the database).
    ///
    /// `None` (no such account) and an unusable stored hash are verified
    /// against the dummy hash and give [`Verification::Mismatch`], costing
    /// the same time as a wrong password. Any argon2 variant (`argon2id`,
    /// `argon2i`, `argon2d`) is accepted; anything but argon2id with the
    /// configured cost answers `needs_rehash: true`.
    pub async fn verify(&self, password: &Secret, stored: Option<&str>) -> Result<Verification, PasswordError> {
        let inner = Arc::clone(&self.inner);
        let password = password.clone();
        let stored = stored.map(str::to_owned);
        self.run_blocking(move || verify_blocking(&inner, password.expose(), stored.as_deref()))
            .await
    }

    /// Requests waiting for a pool slot right now (the `/metrics` "argon2
    /// queue depth"). Running jobs are not counted.
    pub fn queue_depth(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a pool slot, then runs `job` on the blocking pool inside
    /// the caller's tracing span.
    async fn run_blocking<T, F>(&self, job: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = {
            let _waiting = WaitingGuard::enter(&self.inner.waiting);
            Arc::clone(&self.inner.permits)
                .acquire_owned()
                .instrument(tracing::trace_span!("argon2_queue"))
                .await
                // Only fails if the semaphore is closed, which this module
                // never does.
                .map_err(|_| PasswordError::TaskFailed)?
        };
        let span = tracing::Span::current();
        let (done, result) = tokio::sync::oneshot::channel();
        let task: Job = Box::new(move || {
            let _permit = permit;
            let _entered = span.enter();
            let _ = done.send(job());
        });
        self.inner
            .jobs
            .lock()
            .map_err(|_| PasswordError::TaskFailed)?
            .send(task)
            .map_err(|_| PasswordError::TaskFailed)?;
        // A job that panicked drops `done` without sending.
        result.await.map_err(|_| PasswordError::TaskFailed)
    }

    #[cfg(test)]
    fn dummy_runs(&self) -> u64 {
        self.inner.dummy_runs.load(Ordering::Relaxed)
    }
}

/// Counts a request as waiting until it gets its permit or is dropped
/// (cancelled requests must not leave the gauge too high).
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2id(params)
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(inner: &Inner, password: &str, stored: Option<&str>) -> Verification {
    let Some(stored) = stored else {
        return dummy_verify(inner, password);
    };
    let hash = match PasswordHash::new(stored) {
        Ok(hash) => hash,
        Err(e) => {
            // Never log the hash itself: it is an offline-crackable secret.
            if stored.starts_with("$2") {
                tracing::warn!("stored password hash is bcrypt, which this build cannot verify; treating as mismatch");
            } else {
                tracing::warn!(error = %e, "stored password hash is malformed; treating as mismatch");
            }
            return dummy_verify(inner, password);
        }
    };
    if Algorithm::try_from(hash.algorithm).is_err() {
        tracing::warn!(
            algorithm = %hash.algorithm,
            "stored password hash uses an unsupported algorithm; treating as mismatch"
        );
        return dummy_verify(inner, password);
    }
    // The verifier takes algorithm, version and cost from the stored hash.
    match argon2id(&inner.params).verify_password(password.as_bytes(), &hash) {
        Ok(()) => Verification::Match {
            needs_rehash: needs_rehash(&hash, &inner.params),
        },
        Err(argon2::password_hash::Error::Password) => Verification::Mismatch,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash is unusable; treating as mismatch");
            Verification::Mismatch
        }
    }
}

/// Burns one argon2 run with the configured cost and answers Mismatch.
fn dummy_verify(inner: &Inner, password: &str) -> Verification {
    inner.dummy_runs.fetch_add(1, Ordering::Relaxed);
    if let Ok(hash) = PasswordHash::new(&inner.dummy_hash) {
        // The result is irrelevant (a random password never matches); only
        // the time spent matters.
        let _ = argon2id(&inner.params).verify_password(password.as_bytes(), &hash);
    }
    Verification::Mismatch
}

/// True when `hash` is not exactly what [`PasswordHasher::hash`] would make
/// today: another argon2 variant or version, other costs, another output
/// length, or extra parameters (`keyid`, `data`).
fn needs_rehash(hash: &PasswordHash<'_>, configured: &Params) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    if hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    if hash.params.iter().count() != 3 {
        return true;
    }
    match Params::try_from(hash) {
        Ok(stored) => {
            stored.m_cost() != configured.m_cost()
                || stored.t_cost() != configured.t_cost()
                || stored.p_cost() != configured.p_cost()
                || stored.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                    != configured.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Argon2Params {
        Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn hasher(params: Argon2Params) -> PasswordHasher {
        PasswordHasher::new(params, 2).unwrap()
    }

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    #[tokio::test]
    async fn hash_then_verify_round_trip() {
        let h = hasher(small());
        let stored = h.hash(&secret("correct horse")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{stored}");
        assert_eq!(
            h.verify(&secret("correct horse"), Some(&stored)).await.unwrap(),
            Verification::Match { needs_rehash: false }
        );
    }

    #[tokio::test]
    async fn same_password_gets_different_salts() {
        let h = hasher(small());
        let a = h.hash(&secret("same")).await.unwrap();
        let b = h.hash(&secret("same")).await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn wrong_password_is_mismatch() {
        let h = hasher(small());
        let stored = h.hash(&secret("correct horse")).await.unwrap();
        assert_eq!(
            h.verify(&secret("Correct horse"), Some(&stored)).await.unwrap(),
            Verification::Mismatch
        );
        assert_eq!(
            h.verify(&secret(""), Some(&stored)).await.unwrap(),
            Verification::Mismatch
        );
        assert_eq!(h.dummy_runs(), 0, "a real hash never takes the dummy path");
    }

    #[tokio::test]
    async fn unknown_account_runs_the_dummy_hash_and_is_mismatch() {
        let h = hasher(small());
        assert_eq!(h.dummy_runs(), 0);
        assert_eq!(
            h.verify(&secret("anything"), None).await.unwrap(),
            Verification::Mismatch
        );
        assert_eq!(h.dummy_runs(), 1);
        // The dummy hash uses the configured parameters, so it costs the same.
        assert!(h.inner.dummy_hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    }

    #[tokio::test]
    async fn changed_params_ask_for_a_rehash() {
        let old = hasher(small());
        let stored = old.hash(&secret("pw")).await.unwrap();
        for changed in [
            Argon2Params {
                memory_kib: 2048,
                ..small()
            },
            Argon2Params {
                iterations: 2,
                ..small()
            },
            Argon2Params {
                parallelism: 2,
                ..small()
            },
        ] {
            assert_eq!(
                hasher(changed).verify(&secret("pw"), Some(&stored)).await.unwrap(),
                Verification::Match { needs_rehash: true },
                "{changed:?}"
            );
        }
    }

    #[tokio::test]
    async fn other_argon2_variants_verify_but_need_rehash() {
        let h = hasher(small());
        let params = Params::new(1024, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        for alg in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let stored = Argon2::new(alg, Version::V0x13, params.clone())
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            assert_eq!(
                h.verify(&secret("pw"), Some(&stored)).await.unwrap(),
                Verification::Match { needs_rehash: true }
            );
            assert_eq!(
                h.verify(&secret("nope"), Some(&stored)).await.unwrap(),
                Verification::Mismatch
            );
        }
        // Older argon2 version 0x10.
        let stored = Argon2::new(Algorithm::Argon2id, Version::V0x10, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify(&secret("pw"), Some(&stored)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn malformed_or_foreign_hashes_are_mismatch_not_panic() {
        let h = hasher(small());
        let real = h.hash(&secret("pw")).await.unwrap();
        let truncated = &real[..real.len() - 10];
        let cases = [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=1024,t=1,p=1$",
            "$argon2id$v=19$m=0,t=0,p=0$c29tZXNhbHQ$aGFzaA",
            "$argon2id$v=19$m=1024,t=1,p=1,x=5$c29tZXNhbHQ$aGFzaA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$pbkdf2-sha256$29000$N2bMWSvlvPd.b6316B2DWw$7cb1o1ACsGJDAWf6XAqnA9wcB1EMrMoZx3sWdXC6BN0",
            truncated,
        ];
        let before = h.dummy_runs();
        for stored in cases {
            assert_eq!(
                h.verify(&secret("pw"), Some(stored)).await.unwrap(),
                Verification::Mismatch,
                "{stored:?}"
            );
        }
        assert!(h.dummy_runs() > before, "unparseable hashes cost a dummy run");
    }

    #[tokio::test]
    async fn default_params_round_trip() {
        let h = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
        let stored = h.hash(&secret("tr0ub4dor&3")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert_eq!(
            h.verify(&secret("tr0ub4dor&3"), Some(&stored)).await.unwrap(),
            Verification::Match { needs_rehash: false }
        );
    }

    #[test]
    fn bad_params_are_an_error() {
        assert!(matches!(
            PasswordHasher::new(small(), 0),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(matches!(
            PasswordHasher::new(
                Argon2Params {
                    memory_kib: 1,
                    ..small()
                },
                1
            ),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(matches!(
            PasswordHasher::new(
                Argon2Params {
                    iterations: 0,
                    ..small()
                },
                1
            ),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(PasswordHasher::default_concurrency() >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_queue_for_the_pool_and_the_gauge_follows() {
        let h = PasswordHasher::new(small(), 1).unwrap();
        // Hold the only slot so every request has to wait.
        let held = Arc::clone(&h.inner.permits).acquire_owned().await.unwrap();
        let jobs: Vec<_> = (0..3)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(&Secret::new(format!("pw{i}"))).await })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while h.queue_depth() < 3 {
            assert!(std::time::Instant::now() < deadline, "requests never queued");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(h.queue_depth(), 3);
        drop(held);
        for job in jobs {
            assert!(job.await.unwrap().unwrap().starts_with("$argon2id$"));
        }
        assert_eq!(h.queue_depth(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let h = PasswordHasher::new(small(), 1).unwrap();
        let held = Arc::clone(&h.inner.permits).acquire_owned().await.unwrap();
        let pw = secret("pw");
        let waiting = h.hash(&pw);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(20), waiting).await;
        assert!(timed_out.is_err());
        assert_eq!(h.queue_depth(), 0);
        drop(held);
    }

    #[test]
    fn debug_shows_costs_only() {
        let h = hasher(small());
        let s = format!("{h:?}");
        assert!(s.contains("memory_kib: 1024"), "{s}");
        assert!(!s.contains("argon2id$"), "{s}");
    }
}
