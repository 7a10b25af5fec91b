use moongate_testkit::{Gateway, request};
use serde_json::json;

use crate::common::{BIN, Backend, Env, api, now};

#[tokio::test]
async fn secret_is_required() {
    let env = Env::start(Backend::Memory, |b, up| b.api("a.yaml", &api("a", "/a/", up, "")));
    let gw = &env.gw;
    let r = request("POST", &gw.admin_url("/tyk/keys/create"), &[], "{}").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "Attempted administrative access with invalid or missing key!");
    let r = request("GET", &gw.admin_url("/tyk/keys/x"), &[("x-tyk-authorization", "wrong")], "").await;
    assert_eq!(r.status, 403);
    // Health needs no secret.
    let r = request("GET", &gw.admin_url("/hello"), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "pass");
    assert_eq!(r.json()["details"]["memory"]["status"], "pass");
}

#[tokio::test]
async fn no_secret_means_no_key_endpoints() {
    let up = moongate_testkit::Upstream::start();
    let gw = Gateway::builder(BIN).secret(None).api("a.yaml", &api("a", "/a/", &up.url(), "")).start();
    for secret in ["", "anything"] {
        let r = request("POST", &gw.admin_url("/tyk/keys/create"), &[("x-tyk-authorization", secret)], "{}").await;
        assert_eq!(r.status, 403);
        assert!(r.json()["message"].as_str().unwrap().contains("no secret is configured"), "{}", r.body);
    }
    assert!(gw.logs().contains("No admin secret is configured"));
}

#[tokio::test]
async fn key_lifecycle_follows_tyk() {
    let env = Env::start(Backend::Redis, |b, up| b.api("a.yaml", &api("a", "/a/", up, "")));
    let gw = &env.gw;

    // Create: generated key, hash returned, unknown fields kept.
    let r = gw
        .admin(
            "POST",
            "/tyk/keys/create",
            r#"{"org_id":"acme","custom_field":{"x":[1,2]},"meta_data":{"tier":"gold"}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!((body["status"].as_str(), body["action"].as_str()), (Some("ok"), Some("added")));
    let key = body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("acme"));
    assert_eq!(body["key_hash"], moongate_session::hash_key(&key));
    assert!(r.body.ends_with("}\n"), "compact JSON with a trailing newline");
    let stored = gw.admin("GET", &format!("/tyk/keys/{key}"), "").await.json();
    assert_eq!(stored["custom_field"], json!({"x": [1, 2]}));
    assert_eq!(stored["meta_data"]["tier"], "gold");
    assert!(stored["date_created"].as_str().unwrap().ends_with('Z'));
    // By hash.
    let by_hash = gw.admin("GET", &format!("/tyk/keys/{}?hashed=1", moongate_session::hash_key(&key)), "").await;
    assert_eq!(by_hash.status, 200);

    // Update keeps date_created and unknown fields it is given; a past expiry keeps the old one.
    let future = now() + 3600;
    let r =
        gw.admin("PUT", &format!("/tyk/keys/{key}"), &json!({"expires": future, "custom_field": 1}).to_string()).await;
    assert_eq!((r.status, r.json()["action"].as_str()), (200, Some("modified")));
    let r = gw.admin("PUT", &format!("/tyk/keys/{key}"), &json!({"expires": now() - 10}).to_string()).await;
    assert_eq!(r.status, 200);
    let after = gw.admin("GET", &format!("/tyk/keys/{key}"), "").await.json();
    assert_eq!(after["expires"], future);
    assert_eq!(after["date_created"], stored["date_created"]);
    let r = gw.admin("PUT", "/tyk/keys/missing-key", "{}").await;
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("Key is not found")));
    let r = gw.admin("PUT", &format!("/tyk/keys/{key}"), "not json").await;
    assert_eq!(r.status, 400);

    // A chosen key id with a past expiry is stored as never expiring.
    let r = gw.admin("POST", "/tyk/keys/my-custom-key", &json!({"expires": now() - 10}).to_string()).await;
    assert_eq!(r.status, 200);
    assert_eq!(gw.admin("GET", "/tyk/keys/my-custom-key", "").await.json()["expires"], 0);
    assert_eq!(request("GET", &gw.url("/a/"), &[("authorization", "my-custom-key")], "").await.status, 200);

    // Bad JSON on create: Tyk's codes.
    let r = gw.admin("POST", "/tyk/keys/create", "{").await;
    assert_eq!((r.status, r.json()["message"].as_str()), (500, Some("Unmarshalling failed")));
    let r = gw.admin("POST", "/tyk/keys/other", "{").await;
    assert_eq!((r.status, r.json()["message"].as_str()), (400, Some("Request malformed")));

    // Listing hashed keys is off unless enabled.
    let r = gw.admin("GET", "/tyk/keys", "").await;
    assert_eq!(r.status, 404);

    // Delete, then it is gone.
    let r = gw.admin("DELETE", &format!("/tyk/keys/{key}"), "").await;
    assert_eq!((r.status, r.json()["action"].as_str()), (200, Some("deleted")));
    let r = gw.admin("DELETE", &format!("/tyk/keys/{key}"), "").await;
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("There is no such key found")));
    let r = gw.admin("GET", &format!("/tyk/keys/{key}"), "").await;
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("Key not found")));
}

#[tokio::test]
async fn listing_keys() {
    let env = Env::start(Backend::Redis, |b, up| b.api("a.yaml", &api("a", "/a/", up, "")).setting("hash_keys: false"));
    let gw = &env.gw;
    let a = gw.create_key(&json!({"org_id": "one"})).await;
    let b = gw.create_key(&json!({"org_id": "two"})).await;
    let all = gw.admin("GET", "/tyk/keys", "").await.json();
    let keys: Vec<&str> = all["keys"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
    assert!(keys.contains(&a.as_str()) && keys.contains(&b.as_str()), "{keys:?}");
    let one = gw.admin("GET", "/tyk/keys?filter=one", "").await.json();
    assert_eq!(one["keys"], json!([a]));
    let r = gw.admin("GET", "/tyk/keys/x?hashed=1", "").await;
    assert_eq!(r.status, 400);
}
