use moongate_testkit::request;
use serde_json::json;

use crate::common::{Backend, Env, api, both_backends, now};

async fn get(env: &Env, key: Option<&str>) -> moongate_testkit::Resp {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("authorization", k)]).unwrap_or_default();
    request("GET", &env.gw.url("/keyed/x"), &headers, "").await
}

async fn auth_table(backend: Backend) {
    let env = Env::start(backend, |b, up| b.api("keyed.yaml", &api("keyed", "/keyed/", up, "")));
    let gw = &env.gw;
    let rights = json!({"keyed": {"api_id": "keyed", "api_name": "keyed", "versions": ["Default"]}});

    let r = get(&env, None).await;
    assert_eq!((r.status, r.error().as_str()), (401, "Authorization field missing"));

    let r = get(&env, Some("no-such-key")).await;
    assert_eq!((r.status, r.error().as_str()), (403, "Access to this API has been disallowed"));

    let key = gw.create_key(&json!({ "access_rights": rights })).await;
    assert_eq!(get(&env, Some(&key)).await.status, 200);
    assert_eq!(get(&env, Some(&format!("Bearer {key}"))).await.status, 200);
    assert_eq!(get(&env, Some(&format!("bearer {key}"))).await.status, 200);

    // Expired: rejected with 401, but still stored and returned unchanged by the admin API.
    let expires = now() - 60;
    let expired = gw.create_key(&json!({ "access_rights": rights, "expires": expires })).await;
    let r = get(&env, Some(&expired)).await;
    assert_eq!((r.status, r.error().as_str()), (401, "Key has expired, please renew"));
    let stored = gw.admin("GET", &format!("/tyk/keys/{expired}"), "").await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json()["expires"], expires);
    // And it keeps answering 401: expiry never deletes.
    assert_eq!(get(&env, Some(&expired)).await.status, 401);

    for never in [0, -1] {
        let k = gw.create_key(&json!({ "access_rights": rights, "expires": never })).await;
        assert_eq!(get(&env, Some(&k)).await.status, 200, "expires {never} never expires");
    }
    let future = gw.create_key(&json!({ "access_rights": rights, "expires": now() + 3600 })).await;
    assert_eq!(get(&env, Some(&future)).await.status, 200);

    // Inactive is checked before expiry.
    let inactive = gw.create_key(&json!({ "access_rights": rights, "expires": now() - 60, "is_inactive": true })).await;
    let r = get(&env, Some(&inactive)).await;
    assert_eq!((r.status, r.error().as_str()), (403, "Key is inactive, please renew"));

    let other = gw.create_key(&json!({ "access_rights": {"other-api": {"api_id": "other-api"}} })).await;
    let r = get(&env, Some(&other)).await;
    assert_eq!((r.status, r.error().as_str()), (403, "Access to this API has been disallowed"));

    let master = gw.create_key(&json!({ "access_rights": {} })).await;
    assert_eq!(get(&env, Some(&master)).await.status, 200, "empty access_rights is valid for every API");
    let minimal = gw.create_key(&json!({ "expires": 0 })).await;
    assert_eq!(get(&env, Some(&minimal)).await.status, 200, "a bare {{\"expires\": 0}} is a valid session");
}
both_backends!(auth_table);

/// Sessions written by other tools (Tyk itself, or a script) are read with Tyk's zero values.
#[tokio::test]
async fn sessions_written_directly_to_redis() {
    let env = Env::start(Backend::Redis, |b, up| {
        b.api("keyed.yaml", &api("keyed", "/keyed/", up, "")).setting("hash_keys: false")
    });
    let redis = env.redis.as_ref().unwrap();
    let _: () = redis.cmd(&[
        "SET",
        "apikey-tyk-written",
        r#"{"expires":0,"meta_data":null,"access_rights":null,"tags":null,"rate":0}"#,
    ]);
    assert_eq!(get(&env, Some("tyk-written")).await.status, 200);
    let _: () = redis.cmd(&["SET", "apikey-garbage", "not json"]);
    assert_eq!(get(&env, Some("garbage")).await.status, 403);
    assert_eq!(get(&env, Some("tyk-written")).await.status, 200, "still serving after a corrupt session");
}

/// Where the key comes from: header name, query parameter and cookie, and stripping it before proxying.
#[tokio::test]
async fn key_sources_and_strip_auth_data() {
    let extra = "auth: { auth_header_name: x-api-key, use_param: true, param_name: api_key, use_cookie: true, cookie_name: session }\nstrip_auth_data: true";
    let env = Env::start(Backend::Memory, |b, up| b.api("keyed.yaml", &api("keyed", "/keyed/", up, extra)));
    let gw = &env.gw;
    let key = gw.create_key(&json!({})).await;

    let r = request("GET", &gw.url("/keyed/h"), &[("x-api-key", &key)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-api-key").is_none(), "header stripped: {}", r.body);
    // The default header is not consulted when another is configured.
    let r = request("GET", &gw.url("/keyed/h"), &[("authorization", &key)], "").await;
    assert_eq!(r.status, 401);

    let r = request("GET", &gw.url(&format!("/keyed/q?a=1&api_key={key}&b=2")), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["query"], "a=1&b=2", "param stripped");
    // A non-empty parameter overrides the header.
    let r = request("GET", &gw.url("/keyed/q?api_key=wrong"), &[("x-api-key", &key)], "").await;
    assert_eq!(r.status, 403);

    let cookie = format!("theme=dark; session={key}");
    let r = request("GET", &gw.url("/keyed/c"), &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["cookie"], "theme=dark", "cookie stripped");
}
