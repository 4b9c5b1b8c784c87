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
//!   resident memory stays near `pool size x argon2 memory` during a flood;
//!   once a thread has had no job for [`IDLE_GRACE`], the [`on_pool_idle`]
//!   hook hands its buffer back to the system (the binary sets it to
//!   mimalloc's collect), so a burst of sign-ins does not leave them
//!   resident at idle.
//! - Every failed verification costs one argon2 run with the configured
//!   parameters: an unknown account (`stored == None`) and an unusable stored
//!   hash are checked against a dummy hash, so timing does not reveal whether
//!   an account exists.
//! - A stored hash is data, not code: a malformed or foreign one is a
//!   [`Verification::Mismatch`] logged without the hash, never a panic or a
//!   500.
//! - The password itself only travels inside [`Secret`] and never reaches a
//!   log or an error message.
//!
//! Imported hashes (`forge users import`) are verified natively on the same
//! pool, in constant time, and always answer `needs_rehash: true`, so the
//! sign-in that proves the password also replaces them with argon2id:
//! bcrypt (`$2a$`, `$2b$`, `$2y$`), Django's PBKDF2-SHA256
//! (`pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`) and Firebase's
//! modified scrypt in forge's own self-contained form
//! (`$firebase-scrypt$m=<mem_cost>,r=<rounds>$<salt>$<salt separator>$<signer
//! key>$<hash>`, standard padded base64; see [`firebase_scrypt_string`]).
//! [`ImportedHash::parse`] is the one gate: the importer stores only what it
//! accepts, and its cost bounds keep a stored hash from pinning a pool
//! thread for minutes. Their cost differs from the configured argon2id, so
//! until the first sign-in a wrong password for such an account takes
//! another time than for an unknown one; that ends with the upgrade.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

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

/// The hook a pool thread calls once it has been idle for [`IDLE_GRACE`].
static ON_IDLE: OnceLock<fn()> = OnceLock::new();

/// How long a hashing thread waits for its next job before the
/// [`on_pool_idle`] hook runs on it: long enough that sign-ins arriving one
/// after another keep their buffer (faulting 19 MiB in again took about a
/// sixth of a hash), short enough that an idle server gives it back soon.
pub const IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Sets what a hashing thread calls after it ran jobs and then had none for
/// [`IDLE_GRACE`] (first call wins). Meant for the binary, which owns the
/// allocator: with mimalloc, freed argon2 buffers stay resident until later
/// allocator activity purges them, which an idle server never has
/// (measured: RSS five seconds after a sign-in flood 73-77 MiB, against
/// 52-57 MiB with the hook).
pub fn on_pool_idle(hook: fn()) {
    let _ = ON_IDLE.set(hook);
}

/// Starts `size` threads that run jobs from one queue until it closes.
fn start_pool(size: usize) -> Result<std::sync::mpsc::Sender<Job>, PasswordError> {
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..size {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("forge-argon2-{i}"))
            .spawn(move || {
                // Whether this thread ran a job since it last called the hook.
                let mut used = false;
                loop {
                    // Hold the lock only to take a job, not while running it.
                    let job = match rx.lock() {
                        Ok(guard) if used => guard.recv_timeout(IDLE_GRACE),
                        Ok(guard) => guard.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            // A panicking job must not take its thread with it.
                            drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
                            used = true;
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if let Some(hook) = ON_IDLE.get() {
                                hook();
                            }
                            used = false;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
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
    /// Validates `params`, builds the pool and makes the dummy hash (no
    /// argon2 run: see [`dummy_phc`]).
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
        let dummy_hash = dummy_phc(&params)?;
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

/// The stand-in for unknown accounts: a PHC string with the configured
/// cost, a random salt and a random output. No password produces that
/// output (finding one is a preimage of argon2), yet checking a password
/// against it is one full argon2 run, like a real account's. Making it runs
/// no argon2, so start-up neither waits for a hash nor touches its 19 MiB.
fn dummy_phc(params: &Params) -> Result<String, PasswordError> {
    use argon2::password_hash::{Output, ParamsString};
    let invalid = |e: argon2::password_hash::Error| PasswordError::InvalidParams(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    rand::RngCore::fill_bytes(&mut OsRng, &mut output);
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(invalid)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(invalid)?),
    };
    Ok(phc.to_string())
}

fn verify_blocking(inner: &Inner, password: &str, stored: Option<&str>) -> Verification {
    let Some(stored) = stored else {
        return dummy_verify(inner, password);
    };
    if !stored.starts_with("$argon2") {
        return match ImportedHash::parse(stored) {
            Ok(imported) => imported.verify(stored, password.as_bytes()),
            Err(e) => {
                // Never log the hash itself: it is an offline-crackable secret.
                tracing::warn!(error = %e, "stored password hash is not one forge verifies; treating as mismatch");
                dummy_verify(inner, password)
            }
        };
    }
    let hash = match PasswordHash::new(stored) {
        Ok(hash) => hash,
        Err(e) => {
            // Never log the hash itself: it is an offline-crackable secret.
            tracing::warn!(error = %e, "stored password hash is malformed; treating as mismatch");
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

/// Why a hash cannot be imported or verified. Names the problem, never the
/// hash (it is an offline-crackable secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForeignHashError {
    #[error("unknown password hash format")]
    Unknown,
    #[error("malformed {0} hash")]
    Malformed(&'static str),
    #[error("{0} cost outside the accepted range")]
    Cost(&'static str),
}

/// The cost bounds of imported hashes: wide enough for every real export
/// (bcrypt 10-12, Django 2024's 870,000 PBKDF2 iterations, Firebase's
/// maximum `rounds` 8 and `mem_cost` 14), narrow enough that one stored
/// hash cannot hold a pool thread for minutes or allocate gigabytes.
const BCRYPT_COST: std::ops::RangeInclusive<u32> = 4..=16;
const PBKDF2_ITERATIONS: std::ops::RangeInclusive<u32> = 1..=10_000_000;
const FIREBASE_MEM_COST: std::ops::RangeInclusive<u8> = 1..=14;
const FIREBASE_ROUNDS: std::ops::RangeInclusive<u32> = 1..=8;

/// A password hash forge accepts from an import, parsed.
#[derive(Clone, Debug)]
pub enum ImportedHash {
    /// argon2id, argon2i or argon2d in PHC form, any parameters.
    Argon2,
    /// `$2a$`, `$2b$` or `$2y$` (the `bcrypt` crate checks the rest).
    Bcrypt,
    /// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
    Pbkdf2Sha256 {
        iterations: u32,
        salt: String,
        hash: Vec<u8>,
    },
    /// Firebase's scrypt: scrypt(password, salt ‖ separator, N = 2^mem_cost,
    /// r = rounds, p = 1, 64 bytes), then AES-256-CTR (key: the first 32
    /// bytes, IV zero) over the project's signer key gives `hash`.
    FirebaseScrypt {
        mem_cost: u8,
        rounds: u32,
        salt: Vec<u8>,
        separator: Vec<u8>,
        signer_key: Vec<u8>,
        hash: Vec<u8>,
    },
}

/// Forge's self-contained form of a Firebase scrypt hash: the user's salt
/// and hash from the export with the project's hash configuration (all as
/// standard padded base64, as Firebase gives them).
pub fn firebase_scrypt_string(
    mem_cost: u8,
    rounds: u32,
    salt_b64: &str,
    separator_b64: &str,
    signer_key_b64: &str,
    hash_b64: &str,
) -> String {
    format!("$firebase-scrypt$m={mem_cost},r={rounds}${salt_b64}${separator_b64}${signer_key_b64}${hash_b64}")
}

impl ImportedHash {
    /// Parses `stored` completely (every field decoded, costs in bounds),
    /// so that what is accepted can later be verified.
    pub fn parse(stored: &str) -> Result<Self, ForeignHashError> {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        if stored.starts_with("$argon2") {
            let hash = PasswordHash::new(stored).map_err(|_| ForeignHashError::Malformed("argon2"))?;
            Algorithm::try_from(hash.algorithm).map_err(|_| ForeignHashError::Malformed("argon2"))?;
            Params::try_from(&hash).map_err(|_| ForeignHashError::Malformed("argon2"))?;
            if hash.hash.is_none() {
                return Err(ForeignHashError::Malformed("argon2"));
            }
            return Ok(Self::Argon2);
        }
        if let Some(rest) = ["$2a$", "$2b$", "$2y$"].iter().find_map(|p| stored.strip_prefix(p)) {
            let (cost_digits, body) = rest.split_once('$').ok_or(ForeignHashError::Malformed("bcrypt"))?;
            let cost: u32 = cost_digits.parse().map_err(|_| ForeignHashError::Malformed("bcrypt"))?;
            let bcrypt_alphabet = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
            if cost_digits.len() != 2 || body.len() != 53 || !body.chars().all(bcrypt_alphabet) {
                return Err(ForeignHashError::Malformed("bcrypt"));
            }
            if !BCRYPT_COST.contains(&cost) {
                return Err(ForeignHashError::Cost("bcrypt"));
            }
            return Ok(Self::Bcrypt);
        }
        if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
            let malformed = ForeignHashError::Malformed("pbkdf2_sha256");
            let mut parts = rest.split('$');
            let (Some(iterations), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed);
            };
            let iterations: u32 = iterations.parse().map_err(|_| malformed.clone())?;
            let hash = STANDARD.decode(hash).map_err(|_| malformed.clone())?;
            if salt.is_empty() || hash.len() < 16 || hash.len() > 64 {
                return Err(malformed);
            }
            if !PBKDF2_ITERATIONS.contains(&iterations) {
                return Err(ForeignHashError::Cost("pbkdf2_sha256"));
            }
            return Ok(Self::Pbkdf2Sha256 {
                iterations,
                salt: salt.to_owned(),
                hash,
            });
        }
        if let Some(rest) = stored.strip_prefix("$firebase-scrypt$") {
            let malformed = ForeignHashError::Malformed("firebase-scrypt");
            let parts: Vec<&str> = rest.split('$').collect();
            let [params, salt, separator, signer_key, hash] = parts[..] else {
                return Err(malformed);
            };
            let (mut mem_cost, mut rounds) = (None, None);
            for kv in params.split(',') {
                match kv.split_once('=') {
                    Some(("m", v)) if mem_cost.is_none() => mem_cost = v.parse::<u8>().ok(),
                    Some(("r", v)) if rounds.is_none() => rounds = v.parse::<u32>().ok(),
                    _ => return Err(malformed),
                }
            }
            let (Some(mem_cost), Some(rounds)) = (mem_cost, rounds) else {
                return Err(malformed);
            };
            let decode = |s: &str| STANDARD.decode(s).map_err(|_| malformed.clone());
            let (salt, separator, signer_key, hash) =
                (decode(salt)?, decode(separator)?, decode(signer_key)?, decode(hash)?);
            if signer_key.is_empty() || hash.len() != signer_key.len() {
                return Err(malformed);
            }
            if !FIREBASE_MEM_COST.contains(&mem_cost) || !FIREBASE_ROUNDS.contains(&rounds) {
                return Err(ForeignHashError::Cost("firebase-scrypt"));
            }
            return Ok(Self::FirebaseScrypt {
                mem_cost,
                rounds,
                salt,
                separator,
                signer_key,
                hash,
            });
        }
        Err(ForeignHashError::Unknown)
    }

    /// Checks a password against a non-argon2 imported hash, comparing in
    /// constant time. (argon2 hashes take the main path in `verify_blocking`.)
    fn verify(&self, stored: &str, password: &[u8]) -> Verification {
        use subtle::ConstantTimeEq as _;
        let matched = match self {
            // Not reached: verify_blocking handles argon2 itself.
            Self::Argon2 => false,
            // `verify` compares with `subtle`; its error would carry the hash,
            // so it is not logged.
            Self::Bcrypt => bcrypt::verify(password, stored).unwrap_or(false),
            Self::Pbkdf2Sha256 { iterations, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt.as_bytes(), *iterations, &mut out);
                bool::from(out.ct_eq(hash))
            }
            Self::FirebaseScrypt {
                mem_cost,
                rounds,
                salt,
                separator,
                signer_key,
                hash,
            } => firebase_scrypt(password, *mem_cost, *rounds, salt, separator, signer_key)
                .is_some_and(|computed| bool::from(computed.ct_eq(hash))),
        };
        if matched {
            Verification::Match { needs_rehash: true }
        } else {
            Verification::Mismatch
        }
    }
}

/// Firebase's hash of `password`: AES-256-CTR, keyed with the first half of
/// the scrypt-derived key, over the signer key. None only when the
/// parameters are invalid (excluded by [`ImportedHash::parse`]).
fn firebase_scrypt(
    password: &[u8],
    mem_cost: u8,
    rounds: u32,
    salt: &[u8],
    separator: &[u8],
    signer_key: &[u8],
) -> Option<Vec<u8>> {
    use aes::cipher::{KeyIvInit as _, StreamCipher as _};
    let params = scrypt::Params::new(mem_cost, rounds, 1, 64).ok()?;
    let mut salted = Vec::with_capacity(salt.len() + separator.len());
    salted.extend_from_slice(salt);
    salted.extend_from_slice(separator);
    let mut derived = [0u8; 64];
    scrypt::scrypt(password, &salted, &params, &mut derived).ok()?;
    let mut out = signer_key.to_vec();
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&derived[..32], &[0u8; 16]).ok()?;
    cipher.apply_keystream(&mut out);
    Some(out)
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

    /// The pool threads the idle hook ran on, and when (hooks are global
    /// and other tests' pools share this one).
    static IDLE_CALLS: std::sync::Mutex<Vec<(std::thread::ThreadId, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());

    fn idle_calls_on(thread: std::thread::ThreadId) -> Vec<std::time::Instant> {
        let calls = IDLE_CALLS.lock().unwrap();
        calls.iter().filter(|(t, _)| *t == thread).map(|(_, at)| *at).collect()
    }

    #[tokio::test]
    async fn the_idle_hook_runs_on_a_pool_thread_after_the_grace_without_jobs() {
        on_pool_idle(|| {
            IDLE_CALLS
                .lock()
                .unwrap()
                .push((std::thread::current().id(), std::time::Instant::now()));
        });
        let h = PasswordHasher::new(small(), 1).unwrap();
        // Jobs one after another within the grace: no hook in between.
        for i in 0..3 {
            h.hash(&secret(&format!("pw{i}"))).await.unwrap();
        }
        // The last job ends after this instant.
        let last_job = std::time::Instant::now();
        let thread = h.run_blocking(|| std::thread::current().id()).await.unwrap();
        assert!(idle_calls_on(thread).is_empty(), "the hook ran between jobs");
        let deadline = last_job + std::time::Duration::from_secs(30);
        let called = loop {
            if let Some(at) = idle_calls_on(thread).first() {
                break *at;
            }
            assert!(std::time::Instant::now() < deadline, "the idle hook never ran");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        assert!(called >= last_job + IDLE_GRACE, "it ran before the grace");
        // Idle without jobs since: it does not run again.
        tokio::time::sleep(IDLE_GRACE * 2).await;
        assert_eq!(idle_calls_on(thread).len(), 1, "once per idle spell");
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

    /// The dummy hash looks like a real one of the configured cost, so
    /// checking against it is a full argon2 run that ends in a mismatch
    /// (`Error::Password` comes only after the hash is computed).
    #[tokio::test]
    async fn the_dummy_hash_has_the_shape_and_cost_of_a_real_one() {
        let h = hasher(small());
        let real = h.hash(&secret("correct horse")).await.unwrap();
        let real = PasswordHash::new(&real).unwrap();
        let dummy = PasswordHash::new(&h.inner.dummy_hash).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.salt.unwrap().len(), real.salt.unwrap().len());
        assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
        assert_eq!(
            argon2id(&h.inner.params).verify_password(b"correct horse", &dummy),
            Err(argon2::password_hash::Error::Password)
        );
        assert_ne!(
            dummy_phc(&h.inner.params).unwrap(),
            h.inner.dummy_hash,
            "random each time"
        );
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

    /// Firebase's own example (github.com/firebase/scrypt, README): the
    /// project's hash configuration, one user's salt, and the expected hash.
    const FIREBASE_SIGNER_KEY: &str =
        "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==";
    const FIREBASE_HASH: &str =
        "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==";

    #[tokio::test]
    async fn firebase_scrypt_matches_firebases_published_example() {
        let h = hasher(small());
        let stored = firebase_scrypt_string(14, 8, "42xEC+ixf3L2lw==", "Bw==", FIREBASE_SIGNER_KEY, FIREBASE_HASH);
        assert_eq!(
            h.verify(&secret("user1password"), Some(&stored)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(
            h.verify(&secret("user1passwore"), Some(&stored)).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn bcrypt_in_every_prefix_verifies_and_needs_rehash() {
        let h = hasher(small());
        let made = bcrypt::hash_with_result("hunter2 hunter2", 4).unwrap();
        for version in [bcrypt::Version::TwoA, bcrypt::Version::TwoB, bcrypt::Version::TwoY] {
            let stored = made.format_for_version(version);
            ImportedHash::parse(&stored).unwrap();
            assert_eq!(
                h.verify(&secret("hunter2 hunter2"), Some(&stored)).await.unwrap(),
                Verification::Match { needs_rehash: true },
                "{stored}"
            );
            assert_eq!(
                h.verify(&secret("hunter2 hunter3"), Some(&stored)).await.unwrap(),
                Verification::Mismatch
            );
        }
    }

    #[tokio::test]
    async fn django_pbkdf2_sha256_verifies_and_needs_rehash() {
        // Made by Python's hashlib.pbkdf2_hmac, as Django does.
        let stored = "pbkdf2_sha256$1000$seasalt123$KuEnssc6S4MzVSS8Tu48m1RDSrTAn7j3CfgvvjkvfWA=";
        let h = hasher(small());
        assert_eq!(
            h.verify(&secret("correct horse"), Some(stored)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(
            h.verify(&secret("correct horsE"), Some(stored)).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn import_accepts_known_forms_and_names_what_it_refuses() {
        let params = Params::new(1024, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(matches!(ImportedHash::parse(&argon2i), Ok(ImportedHash::Argon2)));
        let cases = [
            ("", ForeignHashError::Unknown),
            ("plain text password", ForeignHashError::Unknown),
            ("md5$abc$def", ForeignHashError::Unknown),
            ("$argon2id$v=19$m=1024,t=1,p=1$", ForeignHashError::Malformed("argon2")),
            ("$2b$12$short", ForeignHashError::Malformed("bcrypt")),
            (
                "$2b$31$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                ForeignHashError::Cost("bcrypt"),
            ),
            (
                "pbkdf2_sha256$x$salt$aGFzaA==",
                ForeignHashError::Malformed("pbkdf2_sha256"),
            ),
            (
                "pbkdf2_sha256$0$salt$KuEnssc6S4MzVSS8Tu48m1RDSrTAn7j3CfgvvjkvfWA=",
                ForeignHashError::Cost("pbkdf2_sha256"),
            ),
            (
                "$firebase-scrypt$m=14,r=8$AA==$AA==$AA==",
                ForeignHashError::Malformed("firebase-scrypt"),
            ),
            (
                "$firebase-scrypt$m=30,r=8$AA==$AA==$AA==$AA==",
                ForeignHashError::Cost("firebase-scrypt"),
            ),
        ];
        for (stored, why) in cases {
            assert_eq!(ImportedHash::parse(stored).unwrap_err(), why, "{stored:?}");
            // The reason never repeats the hash.
            assert!(stored.len() < 8 || !why.to_string().contains(stored));
        }
    }

    #[test]
    fn debug_shows_costs_only() {
        let h = hasher(small());
        let s = format!("{h:?}");
        assert!(s.contains("memory_kib: 1024"), "{s}");
        assert!(!s.contains("argon2id$"), "{s}");
    }
}
