//! Tyk's `SessionState` and the two rules that matter: expiry (checked, never deletes) and lifetime
//! (the storage TTL, the only thing that deletes).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use moongate_config::GlobalLifetime;

/// A session as stored: Tyk's JSON (snake_case). Fields the gateway does not use are kept in
/// `extra`, so a read-modify-write never loses them; missing or `null` fields take their zero value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default, deserialize_with = "int")]
    pub expires: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub is_inactive: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub access_rights: Map<String, Value>,
    #[serde(default, deserialize_with = "float")]
    pub rate: f64,
    #[serde(default, deserialize_with = "float")]
    pub per: f64,
    #[serde(default, deserialize_with = "int")]
    pub quota_max: i64,
    #[serde(default, deserialize_with = "int")]
    pub quota_remaining: i64,
    #[serde(default, deserialize_with = "int")]
    pub quota_renews: i64,
    #[serde(default, deserialize_with = "int")]
    pub quota_renewal_rate: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub meta_data: Map<String, Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub alias: String,
    #[serde(default, deserialize_with = "null_default")]
    pub org_id: String,
    #[serde(default, deserialize_with = "text")]
    pub last_updated: String,
    #[serde(default, deserialize_with = "null_default")]
    pub date_created: String,
    #[serde(default, deserialize_with = "int")]
    pub session_lifetime: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a session may not be used for a request, in the order Tyk checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Inactive,
    Expired,
    NoAccess,
}

/// An API's inputs to the lifetime rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiLifetime {
    pub session_lifetime: i64,
    pub respects_key_expiration: bool,
}

impl Session {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> String {
        // Serialising maps of JSON values and plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Tyk's reset on a write that does not suppress it: `last_updated` is now and a new quota
    /// period starts (the stored counter goes with [`crate::SessionStore::reset_quota`]).
    pub fn start_quota_period(&mut self, now: i64) {
        self.last_updated = now.to_string();
        if self.quota_renewal_rate > 0 {
            self.quota_renews = now + self.quota_renewal_rate;
        }
    }

    /// `expires` < 1 never expires.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires >= 1 && now > self.expires
    }

    /// Tyk's checks after auth: inactive, then expired, then access rights (empty = every API).
    pub fn check(&self, api_id: &str, now: i64) -> Result<(), Denial> {
        if self.is_inactive {
            return Err(Denial::Inactive);
        }
        if self.is_expired(now) {
            return Err(Denial::Expired);
        }
        if !self.access_rights.is_empty() && !self.access_rights.contains_key(api_id) {
            return Err(Denial::NoAccess);
        }
        Ok(())
    }

    /// The storage TTL for a write made on behalf of one API (seconds; <= 0: no expiry).
    pub fn lifetime(&self, api: ApiLifetime, global: &GlobalLifetime, now: i64) -> i64 {
        if global.force_global_session_lifetime {
            return global.global_session_lifetime;
        }
        let respects = api.respects_key_expiration || global.respects_key_expiration;
        if self.session_lifetime > 0 {
            return stretch(respects, self.expires, self.session_lifetime, now);
        }
        if api.session_lifetime > 0 {
            return stretch(respects, self.expires, api.session_lifetime, now);
        }
        0
    }

    /// The TTL for a write not tied to one request (admin API, `TykSetKeyData`): the largest over the
    /// APIs in `access_rights`, where -1 (keep forever) wins outright. `api` looks an API up by id.
    pub fn lifetime_over_access_rights(
        &self,
        api: impl Fn(&str) -> Option<ApiLifetime>,
        global: &GlobalLifetime,
        now: i64,
    ) -> i64 {
        if self.access_rights.is_empty() {
            return self.lifetime(ApiLifetime::default(), global, now);
        }
        let mut best = 0;
        for id in self.access_rights.keys() {
            let l = self.lifetime(api(id).unwrap_or_default(), global, now);
            if l < 0 {
                return l;
            }
            best = best.max(l);
        }
        best
    }
}

/// With "respects key expiration", a lifetime never deletes a key before it expires.
fn stretch(respects: bool, expires: i64, lifetime: i64, now: i64) -> i64 {
    if !respects {
        return lifetime;
    }
    if expires <= 0 {
        return expires;
    }
    if expires > now + lifetime { expires - now } else { lifetime }
}

fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Integers written by other tools may arrive as floats or numeric strings.
fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| D::Error::custom(format!("{n} is not an integer"))),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| D::Error::custom(format!("`{s}` is not an integer"))),
        Some(other) => Err(D::Error::custom(format!("{other} is not an integer"))),
    }
}

fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(0.0),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| D::Error::custom("not a number")),
        Some(Value::String(s)) => s.parse().map_err(|_| D::Error::custom(format!("`{s}` is not a number"))),
        Some(other) => Err(D::Error::custom(format!("{other} is not a number"))),
    }
}

/// Tyk stores `last_updated` as a string of unix seconds; accept a number too.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn session(json: &str) -> Session {
        Session::from_json(json).expect("valid session")
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let s = session(r#"{"expires":5,"hmac_string":"x","monitor":{"trigger_limits":[1.0]},"meta_data":null}"#);
        let back: Value = serde_json::from_str(&s.to_json()).expect("json");
        assert_eq!(back["hmac_string"], "x");
        assert_eq!(back["monitor"]["trigger_limits"][0], 1.0);
        assert_eq!(back["expires"], 5);
    }

    #[test]
    fn zero_and_negative_expiry_never_expire() {
        for e in [0, -1] {
            assert!(!session(&format!(r#"{{"expires":{e}}}"#)).is_expired(NOW));
        }
        assert!(session(&format!(r#"{{"expires":{}}}"#, NOW - 1)).is_expired(NOW));
        assert!(!session(&format!(r#"{{"expires":{}}}"#, NOW + 1)).is_expired(NOW));
    }

    #[test]
    fn checks_run_in_tyk_order() {
        let s = session(&format!(r#"{{"is_inactive":true,"expires":{},"access_rights":{{"other":{{}}}}}}"#, NOW - 5));
        assert_eq!(s.check("api", NOW), Err(Denial::Inactive));
        let s = session(&format!(r#"{{"expires":{},"access_rights":{{"other":{{}}}}}}"#, NOW - 5));
        assert_eq!(s.check("api", NOW), Err(Denial::Expired));
        let s = session(r#"{"access_rights":{"other":{}}}"#);
        assert_eq!(s.check("api", NOW), Err(Denial::NoAccess));
        assert_eq!(session(r#"{"access_rights":{}}"#).check("api", NOW), Ok(()));
        assert_eq!(session(r#"{"access_rights":{"api":{}}}"#).check("api", NOW), Ok(()));
    }

    #[test]
    fn lifetime_follows_tyk() {
        let g = GlobalLifetime::default();
        let api = |l| ApiLifetime { session_lifetime: l, respects_key_expiration: false };
        let respects = |l| ApiLifetime { session_lifetime: l, respects_key_expiration: true };
        // Nothing set: no TTL.
        assert_eq!(session("{}").lifetime(api(0), &g, NOW), 0);
        // API lifetime, then the key's own lifetime wins over it.
        assert_eq!(session("{}").lifetime(api(60), &g, NOW), 60);
        assert_eq!(session(r#"{"session_lifetime":30}"#).lifetime(api(60), &g, NOW), 30);
        // Respecting expiration stretches to `expires`, and keeps never-expiring keys forever.
        let later = format!(r#"{{"expires":{}}}"#, NOW + 500);
        assert_eq!(session(&later).lifetime(respects(60), &g, NOW), 500);
        assert_eq!(session(r#"{"expires":0}"#).lifetime(respects(60), &g, NOW), 0);
        assert_eq!(session(r#"{"expires":-1}"#).lifetime(respects(60), &g, NOW), -1);
        let g_respects = GlobalLifetime { respects_key_expiration: true, ..g };
        assert_eq!(session(&later).lifetime(api(60), &g_respects, NOW), 500);
        // Forcing the global lifetime overrides everything, even with 0.
        let forced = GlobalLifetime { global_session_lifetime: 7, force_global_session_lifetime: true, ..g };
        assert_eq!(session(r#"{"session_lifetime":30}"#).lifetime(api(60), &forced, NOW), 7);
    }

    #[test]
    fn largest_lifetime_over_access_rights_wins() {
        let g = GlobalLifetime::default();
        let lookup = |id: &str| match id {
            "a" => Some(ApiLifetime { session_lifetime: 10, respects_key_expiration: false }),
            "b" => Some(ApiLifetime { session_lifetime: 90, respects_key_expiration: false }),
            "c" => Some(ApiLifetime { session_lifetime: 90, respects_key_expiration: true }),
            _ => None,
        };
        assert_eq!(
            session(r#"{"access_rights":{"a":{},"b":{},"zz":{}}}"#).lifetime_over_access_rights(lookup, &g, NOW),
            90
        );
        assert_eq!(
            session(r#"{"expires":-1,"access_rights":{"a":{},"c":{}}}"#).lifetime_over_access_rights(lookup, &g, NOW),
            -1
        );
    }

    #[test]
    fn lenient_numbers_and_nulls() {
        let s = session(r#"{"expires":"1700000000","rate":null,"quota_max":1e3,"last_updated":1234,"tags":null}"#);
        assert_eq!(s.expires, 1_700_000_000);
        assert_eq!(s.quota_max, 1000);
        assert_eq!(s.last_updated, "1234");
        assert!(s.tags.is_empty());
    }
}
