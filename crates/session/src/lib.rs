//! Sessions, the way Tyk keeps them: the `SessionState` model, expiry (a check that never deletes)
//! and lifetime (the storage TTL, which does), and a store in memory or Redis. No HTTP here.

mod keys;
mod model;
mod store;

pub use keys::{KeyScheme, SESSION_PREFIX, generate_key, hash_key, key_hint, quota_counter, rate_counter};
pub use model::{ApiLifetime, Denial, Session};
pub use store::{MemoryStore, Store, StoreError, StoreSpec};

/// Sessions by raw key: the key scheme (hashed or not) over a [`Store`].
#[derive(Clone)]
pub struct SessionStore {
    store: Store,
    scheme: KeyScheme,
}

impl SessionStore {
    pub fn new(store: Store, scheme: KeyScheme) -> Self {
        Self { store, scheme }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn scheme(&self) -> KeyScheme {
        self.scheme
    }

    /// The stored session, expired or not. A value that is not a session is an error.
    pub async fn get(&self, raw_key: &str) -> Result<Option<Session>, StoreError> {
        self.get_by_storage_key(&self.scheme.storage_key(raw_key)).await
    }

    pub async fn get_by_storage_key(&self, storage_key: &str) -> Result<Option<Session>, StoreError> {
        self.store.get(storage_key).await?.map(|text| Self::parse(&text)).transpose()
    }

    /// A session as the store holds it (JSON); a value that is not a session is an error.
    pub fn parse(text: &str) -> Result<Session, StoreError> {
        Session::from_json(text).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Writes a session with a TTL in seconds (<= 0: kept until deleted).
    pub async fn put(&self, raw_key: &str, session: &Session, ttl: i64) -> Result<(), StoreError> {
        self.store.set(&self.scheme.storage_key(raw_key), &session.to_json(), ttl).await
    }

    pub async fn delete(&self, raw_key: &str) -> Result<bool, StoreError> {
        self.store.delete(&self.scheme.storage_key(raw_key)).await
    }

    /// Deletes a key's quota counter, so its next request starts a new period.
    pub async fn reset_quota(&self, raw_key: &str) -> Result<(), StoreError> {
        self.store.delete(&quota_counter(&self.scheme.key_id(raw_key))).await.map(|_| ())
    }

    /// Seconds left before a key is evicted (-1: never, -2: no such key).
    pub async fn ttl(&self, raw_key: &str) -> Result<i64, StoreError> {
        self.store.ttl(&self.scheme.storage_key(raw_key)).await
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// RFC 3339 UTC time for unix seconds (Tyk's `date_created` format).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
