use std::time::Duration;

use moongate_session::hash_key;
use moongate_testkit::{eventually, request};
use serde_json::json;

use crate::common::{Backend, Env, api, both_backends, now};

/// An API `session_lifetime` gives stored keys a TTL: once it runs out the key is gone (admin 404,
/// proxy 403). With `session_lifetime_respects_key_expiration` a never-expiring key is kept.
async fn session_lifetime(backend: Backend) {
    let env = Env::start(backend, |b, up| {
        b.api("short.yaml", &api("short", "/short/", up, "session_lifetime: 1")).api(
            "kept.yaml",
            &api("kept", "/kept/", up, "session_lifetime: 1\nsession_lifetime_respects_key_expiration: true"),
        )
    });
    let gw = &env.gw;
    let short = gw.create_key(&json!({"access_rights": {"short": {"api_id": "short"}}})).await;
    let kept = gw.create_key(&json!({"expires": 0, "access_rights": {"kept": {"api_id": "kept"}}})).await;
    let stretched =
        gw.create_key(&json!({"expires": now() + 3600, "access_rights": {"kept": {"api_id": "kept"}}})).await;
    assert_eq!(request("GET", &gw.url("/short/"), &[("authorization", &short)], "").await.status, 200);

    if let Some(redis) = &env.redis {
        let ttl: i64 = redis.cmd(&["TTL", &format!("apikey-{}", hash_key(&short))]);
        assert!((0..=1).contains(&ttl), "TTL of a key under a 1 s lifetime: {ttl}");
        let ttl: i64 = redis.cmd(&["TTL", &format!("apikey-{}", hash_key(&kept))]);
        assert_eq!(ttl, -1, "respected non-expiring key has no TTL");
        let ttl: i64 = redis.cmd(&["TTL", &format!("apikey-{}", hash_key(&stretched))]);
        assert!(ttl > 3500, "TTL stretched to the key's expiry: {ttl}");
    }

    eventually(Duration::from_secs(5), "key evicted after its lifetime", || async {
        (gw.admin("GET", &format!("/tyk/keys/{short}"), "").await.status == 404).then_some(())
    })
    .await;
    let r = request("GET", &gw.url("/short/"), &[("authorization", &short)], "").await;
    assert_eq!(r.status, 403);
    // The respected keys outlived the 1 s lifetime.
    assert_eq!(gw.admin("GET", &format!("/tyk/keys/{kept}"), "").await.status, 200);
    assert_eq!(request("GET", &gw.url("/kept/"), &[("authorization", &kept)], "").await.status, 200);
    assert_eq!(request("GET", &gw.url("/kept/"), &[("authorization", &stretched)], "").await.status, 200);
}
both_backends!(session_lifetime);

/// `force_global_session_lifetime` overrides the API's lifetime.
#[tokio::test]
async fn global_lifetime_is_forced() {
    let env = Env::start(Backend::Redis, |b, up| {
        b.api("a.yaml", &api("a", "/a/", up, "session_lifetime: 1000"))
            .setting("global_session_lifetime: 77\nforce_global_session_lifetime: true")
    });
    let key = env.gw.create_key(&json!({"access_rights": {"a": {"api_id": "a"}}})).await;
    let ttl: i64 = env.redis.as_ref().unwrap().cmd(&["TTL", &format!("apikey-{}", hash_key(&key))]);
    assert!((70..=77).contains(&ttl), "forced global lifetime: {ttl}");
}

/// With `hash_keys` (the default) the raw key is in no Redis key name and no log line.
#[tokio::test]
async fn hashed_keys_never_leak() {
    let env = Env::start(Backend::Redis, |b, up| {
        b.api("keyed.yaml", &api("keyed", "/keyed/", up, "")).api("limited.yaml", &api("limited", "/limited/", up, ""))
    });
    let gw = &env.gw;
    let key = gw.create_key(&json!({"rate": 100, "per": 60, "quota_max": 100, "quota_renewal_rate": 3600})).await;
    for path in ["/keyed/a", "/limited/b"] {
        assert_eq!(request("GET", &gw.url(path), &[("authorization", &key)], "").await.status, 200);
    }
    assert_eq!(request("GET", &gw.url("/keyed/a"), &[("authorization", "wrong-key-1234")], "").await.status, 403);
    gw.admin("GET", &format!("/tyk/keys/{key}"), "").await;
    gw.admin("PUT", &format!("/tyk/keys/{key}"), "{}").await;

    let keys = env.redis.as_ref().unwrap().keys();
    assert!(keys.contains(&format!("apikey-{}", hash_key(&key))), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("rate-limit-")), "{keys:?}");
    for k in &keys {
        assert!(!k.contains(&key), "raw key in Redis key name {k}");
    }
    let logs = gw.logs();
    assert!(logs.contains("\"status\":200"), "access log written: {logs}");
    assert!(!logs.contains(&key), "raw key in the logs:\n{logs}");
    assert!(!logs.contains("wrong-key-1234"), "raw unknown key in the logs");
}

/// Without hashing, the key is the storage key, as in Tyk.
#[tokio::test]
async fn unhashed_keys_are_stored_as_given() {
    let env = Env::start(Backend::Redis, |b, up| {
        b.api("keyed.yaml", &api("keyed", "/keyed/", up, "")).setting("hash_keys: false")
    });
    let key = env.gw.create_key(&json!({})).await;
    let keys = env.redis.as_ref().unwrap().keys();
    assert!(keys.contains(&format!("apikey-{key}")), "{keys:?}");
}
