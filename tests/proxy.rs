use moongate_testkit::{free_port, raw_request, request};
use serde_json::json;

use crate::common::{Backend, Env, api};

fn open_apis(b: moongate_testkit::GatewayBuilder, up: &str) -> moongate_testkit::GatewayBuilder {
    b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true\nglobal_headers: { x-gateway: moongate }\nglobal_headers_remove: [x-drop]"))
        .api(
            "raw.yaml",
            &format!(
                "api_id: raw\nuse_keyless: true\nproxy:\n  listen_path: /open/raw/\n  target_url: \"{up}/base/\"\n  strip_listen_path: false\n  preserve_host_header: true\n"
            ),
        )
        .api("down.yaml", &api("down", "/down/", &format!("http://127.0.0.1:{}", free_port()), "use_keyless: true"))
}

#[tokio::test]
async fn routing_paths_and_headers() {
    let env = Env::start(Backend::Memory, open_apis);
    let gw = &env.gw;

    let r = request("GET", &gw.url("/open/a/b?x=1&y=%20"), &[], "").await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["path"], "/a/b", "listen path stripped");
    assert_eq!(seen["query"], "x=1&y=%20", "query kept as sent");
    assert_eq!(seen["headers"]["host"], env.upstream.addr.to_string(), "Host from the target");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    let r = request("GET", &gw.url("/open/g"), &[("x-drop", "1"), ("x-gateway", "spoofed")], "").await;
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-gateway"], "moongate", "global_headers set");
    assert!(headers.get("x-drop").is_none(), "global_headers_remove");

    // Longest prefix wins; the target's path is kept; Host preserved.
    let r = request("GET", &gw.url("/open/raw/c"), &[], "").await;
    let seen = r.json();
    assert_eq!(seen["path"], "/base/open/raw/c");
    assert_eq!(seen["headers"]["host"], gw.addr.to_string());

    // `/open` itself belongs to `/open/`; `/openx` to nobody.
    assert_eq!(request("GET", &gw.url("/open"), &[], "").await.json()["path"], "/");
    let r = request("GET", &gw.url("/openx"), &[], "").await;
    assert_eq!((r.status, r.error().as_str()), (404, "Not Found"));
    assert_eq!(r.headers["content-type"], "application/json");

    // Hop-by-hop headers, including those named in Connection, stay on this side.
    let r = request("GET", &gw.url("/open/h"), &[("connection", "x-hop"), ("x-hop", "1"), ("x-end", "2")], "").await;
    let headers = &r.json()["headers"];
    assert!(headers.get("x-hop").is_none() && headers.get("connection").is_none(), "{headers}");
    assert_eq!(headers["x-end"], "2");

    // Upstream status codes pass through untouched.
    assert_eq!(request("GET", &gw.url("/open/s?echo_status=418"), &[], "").await.status, 418);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let env = Env::start(Backend::Memory, open_apis);
    let big = "x".repeat(3 << 20);
    let r = request("POST", &env.gw.url("/open/upload"), &[("content-type", "text/plain")], &big).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"].as_str().map(str::len), Some(big.len()));
    assert_eq!(r.json()["method"], "POST");
}

/// `moongate_upstream_connections_opened_total` from the admin API.
async fn upstream_connections(gw: &moongate_testkit::Gateway) -> u64 {
    let text = request("GET", &gw.admin_url("/metrics"), &[], "").await.body;
    text.lines()
        .find_map(|l| l.strip_prefix("moongate_upstream_connections_opened_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connection counter in:\n{text}"))
}

#[tokio::test]
async fn upstream_connections_are_kept_alive() {
    let env = Env::start(Backend::Memory, |b, up| open_apis(b, up).workers(1));
    let gw = &env.gw;
    // Bodies of every shape give their connection back once read: JSON, none (204, HEAD), large.
    for path in ["/open/a", "/open/b?echo_status=204", "/open/c?echo_status=304"] {
        for _ in 0..10 {
            let r = request("GET", &gw.url(path), &[], "").await;
            assert!(matches!(r.status, 200 | 204 | 304), "{path}: {}", r.status);
        }
    }
    for _ in 0..5 {
        assert_eq!(request("HEAD", &gw.url("/open/h"), &[], "").await.status, 200);
        let r = request("GET", &gw.url(&format!("/open/big?pad={}", "p".repeat(60_000))), &[], "").await;
        assert_eq!(r.status, 200);
        assert!(r.body.len() > 60_000);
    }
    assert_eq!(upstream_connections(gw).await, 1, "one upstream connection served all 40 requests");

    // An upstream that closes after its answer costs a new connection, and nothing fails.
    let r = request("GET", &gw.url("/open/c?echo_header=Connection:close"), &[], "").await;
    assert_eq!(r.status, 200);
    for _ in 0..5 {
        assert_eq!(request("GET", &gw.url("/open/d"), &[], "").await.status, 200);
    }
    assert_eq!(upstream_connections(gw).await, 2);
}

/// An upstream that closes every connection shortly after its first answer, as servers do with
/// idle keep-alive connections.
#[tokio::test]
async fn idle_connection_closed_by_the_upstream_is_not_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            });
        }
    });
    let env =
        Env::start(Backend::Memory, |b, _| b.api("c.yaml", &api("c", "/c/", &up, "use_keyless: true")).workers(1));
    for i in 0..3 {
        let r = request("GET", &env.gw.url("/c/"), &[], "").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"), "request {i}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(upstream_connections(&env.gw).await, 3);
}

#[tokio::test]
async fn upstream_failures() {
    let env = Env::start(Backend::Memory, |b, up| open_apis(b, up).setting("upstream: { timeout_ms: 500 }"));
    let gw = &env.gw;
    let r = request("GET", &gw.url("/down/x"), &[], "").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    let started = std::time::Instant::now();
    let r = request("GET", &gw.url("/open/slow?echo_delay_ms=3000"), &[], "").await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(started.elapsed().as_millis() < 2500, "answered at the 500 ms upstream timeout, not after 3 s");
    // Still serving.
    assert_eq!(request("GET", &gw.url("/open/x"), &[], "").await.status, 200);
    assert!(gw.logs().contains("Upstream unreachable"));
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let env = Env::start(Backend::Memory, open_apis);
    let answer = raw_request(&env.gw.addr.to_string(), b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw_request(&env.gw.addr.to_string(), b"GET /open/x HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(request("GET", &env.gw.url("/open/x"), &[], "").await.status, 200);
}

#[tokio::test]
async fn rate_limit_and_quota() {
    let env = Env::start(Backend::Redis, |b, up| b.api("k.yaml", &api("k", "/k/", up, "")));
    let gw = &env.gw;
    let limited = gw.create_key(&json!({"rate": 2, "per": 60})).await;
    let codes: Vec<u16> = futures_codes(gw, &limited, 3).await;
    assert_eq!(codes, [200, 200, 429]);
    let r = request("GET", &gw.url("/k/"), &[("authorization", &limited)], "").await;
    assert_eq!(r.error(), "Rate Limit Exceeded");

    let quota = gw.create_key(&json!({"quota_max": 2, "quota_renewal_rate": 3600})).await;
    assert_eq!(futures_codes(gw, &quota, 3).await, [200, 200, 403]);
    let r = request("GET", &gw.url("/k/"), &[("authorization", &quota)], "").await;
    assert_eq!(r.error(), "Quota exceeded");
    // Updating the key resets its quota, as in Tyk.
    gw.admin("PUT", &format!("/tyk/keys/{quota}"), &json!({"quota_max": 2, "quota_renewal_rate": 3600}).to_string())
        .await;
    assert_eq!(request("GET", &gw.url("/k/"), &[("authorization", &quota)], "").await.status, 200);
}

async fn futures_codes(gw: &moongate_testkit::Gateway, key: &str, n: usize) -> Vec<u16> {
    let mut codes = Vec::new();
    for _ in 0..n {
        codes.push(request("GET", &gw.url("/k/"), &[("authorization", key)], "").await.status);
    }
    codes
}
