//! The key-value store under sessions: strings with TTLs, counters, listing and read-modify-write,
//! in memory or in Redis. Every Redis call is bounded by the configured timeout, so a Redis outage
//! turns into a quick [`StoreError`], never a stalled request.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bb8_redis::RedisConnectionManager;
use moongate_config::StorageConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store did not answer within {0} ms")]
    Timeout(u128),
    #[error("stored session is not valid JSON: {0}")]
    Corrupt(String),
    #[error("the key kept changing during the update; try again")]
    Conflict,
    #[error("invalid store configuration: {0}")]
    Config(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// What a store is made from: built once per process, then [`StoreSpec::open`]ed once per worker.
#[derive(Clone)]
pub enum StoreSpec {
    Memory(Arc<MemoryStore>),
    Redis { client: redis::Client, info: Box<redis::ConnectionInfo>, timeout: Duration, pool_size: u32 },
}

impl StoreSpec {
    pub fn from_config(cfg: &StorageConfig) -> Result<Self, StoreError> {
        Ok(match cfg {
            StorageConfig::Memory => StoreSpec::Memory(Arc::new(MemoryStore::default())),
            StorageConfig::Redis { url, password, timeout, pool_size } => {
                use redis::IntoConnectionInfo;
                let mut info = url.as_str().into_connection_info().map_err(|e| StoreError::Config(e.to_string()))?;
                if let Some(password) = password {
                    let settings = info.redis_settings().clone().set_password(password);
                    info = info.set_redis_settings(settings);
                }
                StoreSpec::Redis {
                    client: redis::Client::open(info.clone()).map_err(|e| StoreError::Config(e.to_string()))?,
                    info: Box::new(info),
                    timeout: *timeout,
                    pool_size: *pool_size,
                }
            }
        })
    }

    /// A handle for the calling runtime. Redis connections are made lazily, so this succeeds
    /// while Redis is down; it must be called inside the tokio runtime that will use the handle,
    /// because the multiplexed connection's driver task lives there.
    pub fn open(&self) -> Result<Store, StoreError> {
        match self {
            StoreSpec::Memory(m) => Ok(Store::Memory(m.clone())),
            StoreSpec::Redis { client, info, timeout, pool_size } => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(*timeout))
                    .set_response_timeout(Some(*timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1));
                let conn = ConnectionManager::new_lazy_with_config(client.clone(), cfg)?;
                let manager = RedisConnectionManager::new((**info).clone())?;
                // Never the 30 s bb8 default: an admin call during an outage answers within the timeout.
                let pool = bb8::Pool::builder()
                    .max_size(*pool_size)
                    .connection_timeout(*timeout)
                    .test_on_check_out(true)
                    .build_unchecked(manager);
                Ok(Store::Redis(Arc::new(RedisStore { conn, pool, timeout: *timeout })))
            }
        }
    }
}

/// A store handle. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

pub struct RedisStore {
    /// Request-path reads and writes: one multiplexed connection pipelines every in-flight request.
    conn: ConnectionManager,
    /// Work that needs a connection to itself (WATCH/MULTI, SCAN).
    pool: bb8::Pool<RedisConnectionManager>,
    timeout: Duration,
}

impl RedisStore {
    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis())),
        }
    }

    async fn exclusive(&self) -> Result<bb8::PooledConnection<'_, RedisConnectionManager>, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

const COUNTER_SCRIPT: &str = "local c = redis.call('INCR', KEYS[1]) \
    if c == 1 and tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return c";

impl Store {
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(key)),
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                r.bounded(async move { Ok(redis::cmd("GET").arg(key).query_async(&mut c).await?) }).await
            }
        }
    }

    /// Writes `value`; `ttl_secs` <= 0 stores it without expiry (and clears an old TTL).
    pub async fn set(&self, key: &str, value: &str, ttl_secs: i64) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.set(key, value.to_owned(), ttl_secs);
                Ok(())
            }
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                r.bounded(async move {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(key).arg(value);
                    if ttl_secs > 0 {
                        cmd.arg("EX").arg(ttl_secs);
                    }
                    Ok(cmd.query_async::<()>(&mut c).await?)
                })
                .await
            }
        }
    }

    /// Removes a key; true when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.delete(key)),
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                r.bounded(async move { Ok(redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await? > 0) }).await
            }
        }
    }

    /// Seconds left, with Redis' conventions: -1 no expiry, -2 no such key.
    pub async fn ttl(&self, key: &str) -> Result<i64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.ttl(key)),
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                r.bounded(async move { Ok(redis::cmd("TTL").arg(key).query_async(&mut c).await?) }).await
            }
        }
    }

    /// Increments a counter that lives for `window_secs` from its first increment (<= 0: forever).
    pub async fn incr(&self, key: &str, window_secs: i64) -> Result<i64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.incr(key, window_secs)),
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                r.bounded(async move {
                    Ok(redis::cmd("EVAL")
                        .arg(COUNTER_SCRIPT)
                        .arg(1)
                        .arg(key)
                        .arg(window_secs.max(0))
                        .query_async(&mut c)
                        .await?)
                })
                .await
            }
        }
    }

    /// Every key that starts with `prefix` (SCAN, never KEYS, on Redis).
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.keys_with_prefix(prefix)),
            Store::Redis(r) => {
                let pattern = format!("{}*", escape_glob(prefix));
                let mut conn = r.exclusive().await?;
                let mut keys = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = r
                        .bounded(async {
                            Ok(redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(1000)
                                .query_async(&mut *conn)
                                .await?)
                        })
                        .await?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(keys)
            }
        }
    }

    /// Read-modify-write of one key, atomic against other writers (WATCH/MULTI on Redis).
    /// `f` sees the current value and returns what to write (value, TTL) or `None`, plus a result.
    pub async fn update<T>(
        &self,
        key: &str,
        mut f: impl FnMut(Option<&str>) -> (Option<(String, i64)>, T),
    ) -> Result<T, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.update(key, f)),
            Store::Redis(r) => {
                let mut conn = r.exclusive().await?;
                for _ in 0..8 {
                    let attempt = r
                        .bounded(async {
                            redis::cmd("WATCH").arg(key).query_async::<()>(&mut *conn).await?;
                            let current: Option<String> = redis::cmd("GET").arg(key).query_async(&mut *conn).await?;
                            let (write, out) = f(current.as_deref());
                            let Some((value, ttl)) = write else {
                                redis::cmd("UNWATCH").query_async::<()>(&mut *conn).await?;
                                return Ok(Some(out));
                            };
                            let mut pipe = redis::pipe();
                            pipe.atomic();
                            if ttl > 0 {
                                pipe.cmd("SET").arg(key).arg(value).arg("EX").arg(ttl).ignore();
                            } else {
                                pipe.cmd("SET").arg(key).arg(value).ignore();
                            }
                            // EXEC answers nil when the watched key changed: try again.
                            let reply: redis::Value = pipe.query_async(&mut *conn).await?;
                            Ok(if matches!(reply, redis::Value::Nil) { None } else { Some(out) })
                        })
                        .await?;
                    if let Some(out) = attempt {
                        return Ok(out);
                    }
                }
                Err(StoreError::Conflict)
            }
        }
    }

    /// Round trip to the store, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                r.bounded(async move { Ok(redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ())?) }).await
            }
        }
    }
}

fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Sessions kept in process memory with the same semantics as Redis, TTLs included.
/// Sharded so that workers on different cores rarely meet on one lock.
pub struct MemoryStore {
    shards: Box<[Mutex<HashMap<String, Entry>>]>,
    hasher: RandomState,
    writes: AtomicUsize,
}

struct Entry {
    value: String,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

const SHARDS: usize = 32;

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            writes: AtomicUsize::new(0),
        }
    }
}

impl MemoryStore {
    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        lock(&self.shards[i])
    }

    fn get(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        match shard.get(key) {
            Some(e) if e.live(now) => Some(e.value.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    fn set(&self, key: &str, value: String, ttl_secs: i64) {
        let expires_at = deadline(Instant::now(), ttl_secs);
        self.shard(key).insert(key.to_owned(), Entry { value, expires_at });
        self.after_write();
    }

    fn delete(&self, key: &str) -> bool {
        let now = Instant::now();
        self.shard(key).remove(key).is_some_and(|e| e.live(now))
    }

    fn ttl(&self, key: &str) -> i64 {
        let now = Instant::now();
        match self.shard(key).get(key) {
            Some(e) if e.live(now) => match e.expires_at {
                None => -1,
                Some(t) => i64::try_from(t.duration_since(now).as_secs_f64().ceil() as u64).unwrap_or(i64::MAX),
            },
            _ => -2,
        }
    }

    fn incr(&self, key: &str, window_secs: i64) -> i64 {
        let now = Instant::now();
        let mut shard = self.shard(key);
        let entry = shard.entry(key.to_owned()).or_insert_with(|| Entry { value: "0".into(), expires_at: None });
        if !entry.live(now) {
            *entry = Entry { value: "0".into(), expires_at: None };
        }
        let n = entry.value.parse::<i64>().unwrap_or(0) + 1;
        if n == 1 {
            entry.expires_at = deadline(now, window_secs);
        }
        entry.value = n.to_string();
        n
    }

    fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let now = Instant::now();
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            keys.extend(
                lock(shard).iter().filter(|(k, e)| k.starts_with(prefix) && e.live(now)).map(|(k, _)| k.clone()),
            );
        }
        keys.sort();
        keys
    }

    fn update<T>(&self, key: &str, mut f: impl FnMut(Option<&str>) -> (Option<(String, i64)>, T)) -> T {
        let now = Instant::now();
        let mut shard = self.shard(key);
        let current = shard.get(key).filter(|e| e.live(now)).map(|e| e.value.as_str());
        let (write, out) = f(current);
        if let Some((value, ttl)) = write {
            let expires_at = deadline(now, ttl);
            shard.insert(key.to_owned(), Entry { value, expires_at });
        }
        out
    }

    /// Expired entries nobody reads again are swept a shard at a time, every 256 writes.
    fn after_write(&self) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(256) {
            let now = Instant::now();
            lock(&self.shards[(n / 256) % SHARDS]).retain(|_, e| e.live(now));
        }
    }
}

/// When a TTL runs out; none for TTLs <= 0 or too large to represent.
fn deadline(now: Instant, ttl_secs: i64) -> Option<Instant> {
    if ttl_secs <= 0 {
        return None;
    }
    now.checked_add(Duration::from_secs(ttl_secs.unsigned_abs()))
}

/// A poisoned shard only means another thread panicked mid-operation on plain data; the map is
/// still consistent, so keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
