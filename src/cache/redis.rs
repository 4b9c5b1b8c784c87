//! The Redis adapter of [`Cache`] (feature `postgres`): one cache shared by
//! every forge instance, so OTP codes, attempt counters, cooldowns,
//! rate-limit budgets and the deny list agree across instances at once.
//!
//! Every operation is one atomic Redis command or script:
//! - `set_if_absent` is `SET key value NX PX ttl`;
//! - `take` is one Lua script (`GET` then `DEL`), so a single-use value is
//!   handed to one caller however many instances race for it;
//! - `try_code` is one Lua script that checks for a burn, compares the
//!   digest, counts a wrong try and burns the code at `otp.max_attempts`,
//!   so a one-time code is consumed exactly once and concurrent guesses
//!   (from any number of instances) never get more tries than allowed (the
//!   compare is not constant-time, but what is stored is an HMAC of the
//!   code, so timing reveals nothing about the code);
//! - `count` (rate limits) is a Lua script over the same windowed count-min
//!   sketch as the in-process adapter ([`super::sketch`]): one Redis string
//!   per budget and generation, read and raised with `BITFIELD` (`u32`
//!   cells), so a flood of client addresses adds no keys and at most
//!   [`super::sketch::SKETCH_BYTES`] per budget. The generation comes from
//!   the wall clock, so every instance counts into the same one.
//!
//! Since nothing attacker-created grows Redis, deny-list entries never
//! compete with it for memory; run Redis with `maxmemory-policy noeviction`
//! all the same, so Redis itself never drops a revocation.
//!
//! Keys carry a prefix (`forge:` unless the URL says `?prefix=...`), so
//! several deployments, or parallel test servers, can share one Redis
//! without seeing each other's keys. The `prefix` query parameter is read
//! here and removed before the URL reaches the driver.
//!
//! Connection handling: one multiplexed connection, opened lazily and
//! replaced after an I/O error, with short connect and response timeouts.
//! While Redis is down every call fails fast with [`CacheError`] (503
//! `unavailable` for requests, 503 from `/health/ready`); after a failed
//! connect, further calls fail at once for [`RECONNECT_PAUSE`] instead of
//! piling up connects. The first call after Redis is back reconnects, so
//! service recovers by itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, RedisError, Script};
use async_trait::async_trait;

use super::sketch::{self, Count};
use super::{Cache, CacheError, CacheKey, CacheResult, CodeCheck, RateBucket};

/// The key prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "forge:";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed connect, calls fail without trying again for this long.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// KEYS[1] the code; ARGV[1] its digest, ARGV[2] its TTL in milliseconds.
/// A code is a hash: `d` the digest, `t` the wrong tries so far; replacing
/// it drops the tries and any burn.
const PUT_CODE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 't', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// KEYS[1] the code; ARGV[1] the presented digest, ARGV[2] max attempts,
/// ARGV[3] how long (ms) a burn mark lives. Returns 0 valid, 1 invalid,
/// 2 burned: the compare, the count and the burn are one atomic step.
const TRY_CODE: &str = r"
if redis.call('HEXISTS', KEYS[1], 'b') == 1 then
  return 2
end
local stored = redis.call('HGET', KEYS[1], 'd')
if not stored then
  return 1
end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 0
end
local tries = redis.call('HINCRBY', KEYS[1], 't', 1)
if tries >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'b', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 2
end
return 1
";

/// KEYS[1] the value to take. `GETDEL` would do, but needs Redis 6.2 and
/// forge supports 6.0: a script is atomic on every version.
const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
end
return v
";

/// KEYS[1] the current generation's sketch, KEYS[2] the previous one's;
/// ARGV[1] `1` to count a hit, ARGV[2] how long (ms) the current generation
/// must be kept (until it stops being the previous one), ARGV[3..] the cell
/// indices. Returns the estimate over both generations (conservative update,
/// as in `cache::sketch`).
const COUNT: &str = r"
local n = #ARGV - 2
local gets = {}
for i = 1, n do
  gets[#gets + 1] = 'GET'
  gets[#gets + 1] = 'u32'
  gets[#gets + 1] = '#' .. ARGV[i + 2]
end
local cur = redis.call('BITFIELD', KEYS[1], unpack(gets))
local prev = redis.call('BITFIELD', KEYS[2], unpack(gets))
local min_cur = cur[1]
local min_prev = prev[1]
for i = 2, n do
  if cur[i] < min_cur then min_cur = cur[i] end
  if prev[i] < min_prev then min_prev = prev[i] end
end
if ARGV[1] == '1' then
  local target = math.min(min_cur + 1, 4294967295)
  local sets = {}
  for i = 1, n do
    if cur[i] < target then
      sets[#sets + 1] = 'SET'
      sets[#sets + 1] = 'u32'
      sets[#sets + 1] = '#' .. ARGV[i + 2]
      sets[#sets + 1] = target
    end
  end
  if #sets > 0 then
    redis.call('BITFIELD', KEYS[1], unpack(sets))
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  min_cur = target
end
return min_cur + min_prev
";

/// Why [`RedisCache::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The server did not answer; worth waiting for at start-up.
    #[error("cannot reach Redis at {target}: {cause}")]
    Unreachable { target: String, cause: String },
    /// The URL is unusable, or the server refused us (e.g. bad password).
    #[error("cache.url: {0}")]
    Invalid(String),
}

struct Connection {
    current: Option<MultiplexedConnection>,
    last_failure: Option<Instant>,
}

pub struct RedisCache {
    client: ::redis::Client,
    prefix: String,
    target: String,
    config: AsyncConnectionConfig,
    connection: Mutex<Connection>,
    put_code: Script,
    try_code: Script,
    take: Script,
    count: Script,
}

/// The URL without forge's own `prefix` parameter, and that prefix.
pub fn split_prefix(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), DEFAULT_PREFIX.to_string());
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut prefix = DEFAULT_PREFIX.to_string();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        if k == "prefix" {
            prefix = v;
        } else {
            rest.push((k, v));
        }
    }
    let rest = serde_urlencoded::to_string(&rest).unwrap_or_default();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{rest}")
    };
    (url, prefix)
}

/// `host:port` for messages; never the password.
fn describe(client: &::redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCache {
    /// Parses the URL and connects once, so a start-up with Redis down is
    /// noticed (and retried by the caller) before the server listens.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let (url, prefix) = split_prefix(url);
        let client = ::redis::Client::open(url.as_str()).map_err(|e| OpenError::Invalid(one_line(e)))?;
        let target = describe(&client);
        let cache = Self {
            client,
            prefix,
            target,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
            connection: Mutex::new(Connection {
                current: None,
                last_failure: None,
            }),
            put_code: Script::new(PUT_CODE),
            try_code: Script::new(TRY_CODE),
            take: Script::new(TAKE),
            count: Script::new(COUNT),
        };
        match cache.connect().await {
            Ok(_) => Ok(cache),
            Err(e) if is_connection_error(&e) => Err(OpenError::Unreachable {
                target: cache.target.clone(),
                cause: one_line(e),
            }),
            Err(e) => Err(OpenError::Invalid(one_line(e))),
        }
    }

    /// The prefix every key of this cache carries.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        {
            let state = self.lock();
            if let Some(conn) = &state.current {
                return Ok(conn.clone());
            }
            if let Some(at) = state.last_failure
                && at.elapsed() < RECONNECT_PAUSE
            {
                return Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "not connected (the last attempt failed moments ago)",
                )));
            }
        }
        match self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(conn) => {
                let mut state = self.lock();
                state.last_failure = None;
                // Another call may have connected meanwhile; keep one.
                Ok(state.current.get_or_insert(conn).clone())
            }
            Err(e) => {
                self.lock().last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Maps a failed call to [`CacheError`], dropping the connection when it
    /// is broken so the next call reconnects.
    fn failed(&self, e: RedisError) -> CacheError {
        if is_connection_error(&e) {
            self.lock().current = None;
        }
        CacheError(format!("redis at {}: {}", self.target, one_line(e)))
    }

    async fn query<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> CacheResult<T> {
        let mut conn = self.connect().await.map_err(|e| self.failed(e))?;
        cmd.query_async(&mut conn).await.map_err(|e| self.failed(e))
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        self.query(::redis::cmd("GET").arg(self.key(key))).await
    }

    async fn any_exists(&self, keys: &[&str]) -> CacheResult<bool> {
        let mut exists = ::redis::cmd("EXISTS");
        for key in keys {
            exists.arg(self.key(key));
        }
        let found: u64 = self.query(&exists).await?;
        Ok(found > 0)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        self.query(
            ::redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(ttl_millis(ttl)),
        )
        .await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool> {
        let set: Option<String> = self
            .query(
                ::redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        self.query::<i64>(::redis::cmd("DEL").arg(self.key(key)))
            .await
            .map(|_| ())
    }

    async fn take(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        let mut conn = self.connect().await.map_err(|e| self.failed(e))?;
        self.take
            .key(self.key(key))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn put_code(&self, key: &str, digest: &[u8], ttl: Duration) -> CacheResult<()> {
        let mut conn = self.connect().await.map_err(|e| self.failed(e))?;
        self.put_code
            .key(self.key(key))
            .arg(digest)
            .arg(ttl_millis(ttl))
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn try_code(
        &self,
        key: &str,
        digest: &[u8],
        max_attempts: u32,
        burn_ttl: Duration,
    ) -> CacheResult<CodeCheck> {
        let mut conn = self.connect().await.map_err(|e| self.failed(e))?;
        let outcome: i64 = self
            .try_code
            .key(self.key(key))
            .arg(digest)
            .arg(max_attempts)
            .arg(ttl_millis(burn_ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(match outcome {
            0 => CodeCheck::Valid,
            2 => CodeCheck::Burned,
            _ => CodeCheck::Invalid,
        })
    }

    async fn count(&self, bucket: RateBucket, digest: &[u8; 32], period: Duration, hit: bool) -> CacheResult<Count> {
        let period_ms = ttl_millis(period);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let (index, left_ms) = sketch::generation(now_ms, period_ms);
        let name = |i: u64| self.key(&CacheKey::rate_window(bucket, period_ms, i));
        let mut conn = self.connect().await.map_err(|e| self.failed(e))?;
        let mut invocation = self.count.key(name(index));
        invocation
            .key(name(index.saturating_sub(1)))
            .arg(if hit { "1" } else { "0" })
            .arg(left_ms.saturating_add(period_ms));
        for cell in sketch::cells(digest) {
            invocation.arg(cell);
        }
        let count: u64 = invocation.invoke_async(&mut conn).await.map_err(|e| self.failed(e))?;
        Ok(Count {
            count,
            retry_after_secs: left_ms.div_ceil(1000).max(1),
        })
    }

    async fn ping(&self) -> CacheResult<()> {
        self.query::<String>(&::redis::cmd("PING")).await.map(|_| ())
    }
}

/// How many keys exist under `prefix` (tests check that a flood adds none).
/// Blocking: call it from a plain thread or `spawn_blocking`.
pub fn count_prefix_blocking(url: &str) -> anyhow::Result<u64> {
    let (url, prefix) = split_prefix(url);
    let client = ::redis::Client::open(url.as_str())?;
    let mut conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    let pattern = format!("{}*", glob_escape(&prefix));
    let mut cursor: u64 = 0;
    let mut count = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query(&mut conn)?;
        count += keys.len() as u64;
        if next == 0 {
            return Ok(count);
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix` (tests clean up after themselves with
/// it). Blocking: call it from a plain thread or `spawn_blocking`.
pub fn purge_prefix_blocking(url: &str) -> anyhow::Result<u64> {
    let (url, prefix) = split_prefix(url);
    if prefix.is_empty() {
        anyhow::bail!("refusing to purge an empty prefix");
    }
    let client = ::redis::Client::open(url.as_str())?;
    let mut conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    let pattern = format!("{}*", glob_escape(&prefix));
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query(&mut conn)?;
        if !keys.is_empty() {
            deleted += ::redis::cmd("DEL").arg(&keys).query::<u64>(&mut conn)?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Escapes Redis glob characters so a prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_comes_from_the_url_and_leaves_it() {
        assert_eq!(
            split_prefix("redis://h:6379/2"),
            ("redis://h:6379/2".to_string(), DEFAULT_PREFIX.to_string())
        );
        assert_eq!(
            split_prefix("redis://h:6379/2?prefix=app1%3A"),
            ("redis://h:6379/2".to_string(), "app1:".to_string())
        );
        assert_eq!(
            split_prefix("rediss://h/?protocol=resp3&prefix=x:"),
            ("rediss://h/?protocol=resp3".to_string(), "x:".to_string())
        );
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
