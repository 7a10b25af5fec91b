use std::time::{Duration, Instant};

use moongate_testkit::{eventually, free_port, request, send};
use serde_json::json;

use crate::common::{BIN, Backend, Env, api};

#[tokio::test]
async fn metrics_count_by_api_and_class() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true"))
            .api("keyed.yaml", &api("keyed", "/keyed/", up, ""))
            .api("down.yaml", &api("down", "/down/", &format!("http://127.0.0.1:{}", free_port()), "use_keyless: true"))
    });
    let gw = &env.gw;
    for _ in 0..3 {
        request("GET", &gw.url("/open/secret-path?token=abc"), &[], "").await;
    }
    request("GET", &gw.url("/keyed/x"), &[("authorization", "raw-key-value")], "").await;
    request("GET", &gw.url("/down/x"), &[], "").await;
    request("GET", &gw.url("/nowhere"), &[], "").await;
    gw.admin("GET", "/tyk/reload?block=true", "").await;

    let r = request("GET", &gw.admin_url("/metrics"), &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let m = r.body;
    for line in [
        "moongate_requests_total{api_id=\"open\",status=\"2xx\"} 3",
        "moongate_requests_total{api_id=\"keyed\",status=\"4xx\"} 1",
        "moongate_requests_total{api_id=\"down\",status=\"5xx\"} 1",
        "moongate_requests_total{api_id=\"(none)\",status=\"4xx\"} 1",
        "moongate_upstream_errors_total{api_id=\"down\"} 1",
        "moongate_request_duration_seconds_count{api_id=\"open\"} 3",
        "moongate_reloads_total{outcome=\"applied\"} 1",
        "moongate_generation 2",
    ] {
        assert!(m.contains(line), "missing `{line}` in:\n{m}");
    }
    assert!(
        !m.contains("secret-path") && !m.contains("raw-key-value") && !m.contains("abc"),
        "no paths or keys in labels"
    );
}

#[tokio::test]
async fn ready_follows_redis() {
    let mut env =
        Env::start(Backend::Redis, |b, up| b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true")));
    let ready = |gw: &moongate_testkit::Gateway| {
        let url = gw.admin_url("/ready");
        async move { send("GET", &url, &[], "").await.map(|r| r.status).unwrap_or(0) }
    };
    assert_eq!(ready(&env.gw).await, 200);
    env.redis.as_mut().unwrap().stop();
    assert_eq!(ready(&env.gw).await, 503);
    assert_eq!(request("GET", &env.gw.admin_url("/hello"), &[], "").await.status, 200, "alive while not ready");
    env.redis.as_mut().unwrap().restart();
    let gw = &env.gw;
    eventually(Duration::from_secs(5), "ready again", || async { (ready(gw).await == 200).then_some(()) }).await;
}

/// SIGTERM: stop accepting, let the in-flight request finish, exit 0.
#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let mut env = Env::start(Backend::Memory, |b, up| {
        b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true"))
            .setting("server: { shutdown_timeout_ms: 5000 }")
    });
    let url = env.gw.url("/open/slow?echo_delay_ms=1000");
    let slow = tokio::spawn(async move { send("GET", &url, &[], "").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    env.gw.signal("TERM");
    let r = slow.await.unwrap().expect("the in-flight request completes");
    assert_eq!(r.status, 200);
    let status = tokio::task::spawn_blocking(move || {
        let s = env.gw.wait(Duration::from_secs(5));
        (s, env)
    })
    .await
    .unwrap();
    let (exit, env) = status;
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "exit 0 after draining:\n{}", env.gw.logs());
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(std::net::TcpStream::connect(env.gw.addr).is_err(), "no longer accepting");
    assert!(env.gw.logs().contains("Moongate stopped"));
}

/// Secrets come from the environment or a file, and environment variables win over gateway.yaml.
#[tokio::test]
async fn secrets_and_settings_from_env_and_files() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true"))
            .secret(None)
            .env("MOONGATE_ADMIN_SECRET", "from-env")
            .env("MOONGATE_UPSTREAM_TIMEOUT_MS", "250")
    });
    let gw = &env.gw;
    let r = request("POST", &gw.admin_url("/tyk/keys/create"), &[("x-tyk-authorization", "from-env")], "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let started = Instant::now();
    assert_eq!(request("GET", &gw.url("/open/?echo_delay_ms=2000"), &[], "").await.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1500), "MOONGATE_UPSTREAM_TIMEOUT_MS applied");

    let file_env = Env::start(Backend::Memory, |b, up| {
        b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true"))
            .secret(None)
            .setting("")
            .prepare(|root| std::fs::write(root.join("admin.secret"), "from-file\n").unwrap())
            .env("MOONGATE_ADMIN_SECRET_FILE", "admin.secret")
    });
    let r = request(
        "POST",
        &file_env.gw.admin_url("/tyk/keys/create"),
        &[("x-tyk-authorization", "from-file")],
        &json!({}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn version_and_schema_commands() {
    let out = std::process::Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("moongate "));
}
