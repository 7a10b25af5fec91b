use std::time::{Duration, Instant};

use moongate_session::hash_key;
use moongate_testkit::{eventually, request, send};
use serde_json::json;

use crate::common::{Backend, Env, api};

/// Redis stops: requests that need a session get 503 quickly and the process stays up. Redis comes
/// back on the same port: requests succeed again with no gateway restart.
#[tokio::test]
async fn redis_outage_and_recovery() {
    let mut env = Env::start(Backend::Redis, |b, up| {
        b.api("keyed.yaml", &api("keyed", "/keyed/", up, ""))
            .api("open.yaml", &api("open", "/open/", up, "use_keyless: true"))
    });
    let key = env.gw.create_key(&json!({})).await;
    let auth = [("authorization", key.as_str())];
    assert_eq!(request("GET", &env.gw.url("/keyed/"), &auth, "").await.status, 200);

    env.redis.as_mut().unwrap().stop();
    for _ in 0..5 {
        let started = Instant::now();
        let r = request("GET", &env.gw.url("/keyed/"), &auth, "").await;
        assert_eq!((r.status, r.error().as_str()), (503, "Session store unavailable"));
        assert!(started.elapsed() < Duration::from_secs(1), "503 took {:?}", started.elapsed());
    }
    // Keyless APIs do not need the store.
    assert_eq!(request("GET", &env.gw.url("/open/"), &[], "").await.status, 200);
    let hello = request("GET", &env.gw.admin_url("/hello"), &[], "").await;
    assert_eq!(hello.json()["details"]["redis"]["status"], "fail");
    assert!(env.gw.is_running());

    let redis = env.redis.as_mut().unwrap();
    redis.restart();
    // The restarted Redis is empty: put the session back the way another gateway would.
    let _: () = redis.cmd(&["SET", &format!("apikey-{}", hash_key(&key)), r#"{"expires":0}"#]);
    let gw = &env.gw;
    eventually(Duration::from_secs(5), "requests succeed after Redis is back", || async {
        let r = send("GET", &gw.url("/keyed/"), &auth, "").await.ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    // The admin API's pool recovered too.
    eventually(Duration::from_secs(5), "admin API works after Redis is back", || async {
        (gw.admin("GET", &format!("/tyk/keys/{key}"), "").await.status == 200).then_some(())
    })
    .await;
}
