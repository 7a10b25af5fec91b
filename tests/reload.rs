use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moongate_testkit::{Gateway, KeepAlive, eventually, request, send, write_atomic};

use crate::common::{Backend, Env, api};

/// How long a test waits for a reload before it fails. Reload latency is a speed goal, measured in
/// BENCHMARKS.md (median 70-87 ms with a 50 ms debounce), not asserted here: on a loaded two-core CI
/// machine a one-second bound failed now and then.
const RELOAD: Duration = Duration::from_secs(10);

fn versioned_script(version: &str) -> String {
    format!(
        "return function(request, session, config)\n  request.SetHeaders['X-Version'] = '{version}'\n  return request\nend\n"
    )
}

fn versioned_api(up: &str, listen: &str) -> String {
    api("v", listen, up, "use_keyless: true\ncustom_middleware:\n  pre:\n    - { name: version, path: version.lua }")
}

/// The `X-Version` the hook stamped, as the upstream saw it.
/// Waits until `path` answers `status` (a reload took effect).
async fn answers(gw: &Gateway, path: &str, status: u16, what: &str) {
    eventually(RELOAD, what, || async {
        (send("GET", &gw.url(path), &[], "").await.ok()?.status == status).then_some(())
    })
    .await;
}

async fn version_at(gw: &Gateway, path: &str) -> Option<String> {
    let r = send("GET", &gw.url(path), &[], "").await.ok()?;
    (r.status == 200).then(|| r.json()["headers"]["x-version"].as_str().map(str::to_owned)).flatten()
}

#[tokio::test]
async fn script_saved_by_rename_applies() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("v.yaml", &versioned_api(up, "/v/")).script("version.lua", &versioned_script("one"))
    });
    let gw = &env.gw;
    assert_eq!(version_at(gw, "/v/").await.as_deref(), Some("one"));
    let pid = gw.pid();
    let written = Instant::now();
    write_atomic(&gw.dir().join("scripts/version.lua"), &versioned_script("two"));
    eventually(RELOAD, "the new script serves", || async {
        (version_at(gw, "/v/").await.as_deref() == Some("two")).then_some(())
    })
    .await;
    println!("reload latency: {:?}", written.elapsed());
    assert_eq!(gw.pid(), pid, "same process");
    assert!(gw.logs().contains("Configuration reloaded"));
}

#[tokio::test]
async fn api_files_come_and_go() {
    let env = Env::start(Backend::Memory, |b, up| b.api("a.yaml", &api("a", "/a/", up, "use_keyless: true")));
    let gw = &env.gw;
    assert_eq!(request("GET", &gw.url("/b/"), &[], "").await.status, 404);
    write_atomic(&gw.dir().join("apis/b.yaml"), &api("b", "/b/", &env.upstream.url(), "use_keyless: true"));
    answers(gw, "/b/", 200, "the new API is routable").await;
    std::fs::remove_file(gw.dir().join("apis/a.yaml")).unwrap();
    answers(gw, "/a/", 404, "the deleted API answers 404").await;
    assert_eq!(request("GET", &gw.url("/b/"), &[], "").await.status, 200);
}

#[tokio::test]
async fn broken_edits_keep_serving_and_say_where() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("v.yaml", &versioned_api(up, "/v/")).script("version.lua", &versioned_script("good"))
    });
    let gw = &env.gw;
    let dir = gw.dir().to_path_buf();

    // A YAML syntax error: the old generation keeps serving, the log names file and line.
    write_atomic(
        &dir.join("apis/v.yaml"),
        "api_id: v\nproxy:\n  listen_path: /v/\n  target_url: \"http://unterminated\n",
    );
    eventually(RELOAD, "the YAML error is logged", || async {
        gw.logs().contains("v.yaml:5:1: found unexpected end of stream").then_some(())
    })
    .await;
    assert_eq!(version_at(gw, "/v/").await.as_deref(), Some("good"));
    write_atomic(&dir.join("apis/v.yaml"), &versioned_api(&env.upstream.url(), "/v/"));

    // A Lua syntax error: the same.
    write_atomic(
        &dir.join("scripts/version.lua"),
        "return function(request)\n  request.SetHeaders['X-Version'] = 'bad'\n  return request\n",
    );
    eventually(RELOAD, "the Lua error is logged", || async {
        gw.logs().contains("version.lua:4: 'end' expected").then_some(())
    })
    .await;
    assert_eq!(version_at(gw, "/v/").await.as_deref(), Some("good"));

    // Fixing the file applies it.
    write_atomic(&dir.join("scripts/version.lua"), &versioned_script("fixed"));
    eventually(RELOAD, "the fix applies", || async {
        (version_at(gw, "/v/").await.as_deref() == Some("fixed")).then_some(())
    })
    .await;
    let status = gw.admin("GET", "/tyk/reload/status", "").await.json();
    assert!(status["rejected"].as_u64().unwrap() >= 2, "{status}");
    assert!(gw.logs().contains("\"level\":\"ERROR\""), "rejections are logged at ERROR");
}

/// Kubernetes mounts a ConfigMap as files that link through `..data`, a symlink swapped atomically
/// to a new timestamped directory on every update.
#[tokio::test]
async fn configmap_symlink_swap() {
    let env = Env::start(Backend::Memory, |b, up| {
        let up = up.to_owned();
        b.setting("apis_dir: cm").prepare(move |root| {
            let cm = root.join("cm");
            std::fs::create_dir_all(cm.join("..2026_11_28_01")).unwrap();
            std::fs::write(cm.join("..2026_11_28_01/api.yaml"), api("cm", "/one/", &up, "use_keyless: true")).unwrap();
            std::os::unix::fs::symlink("..2026_11_28_01", cm.join("..data")).unwrap();
            std::os::unix::fs::symlink("..data/api.yaml", cm.join("api.yaml")).unwrap();
        })
    });
    let gw = &env.gw;
    assert_eq!(request("GET", &gw.url("/one/"), &[], "").await.status, 200);
    let cm = gw.dir().join("cm");
    std::fs::create_dir_all(cm.join("..2026_11_28_02")).unwrap();
    std::fs::write(cm.join("..2026_11_28_02/api.yaml"), api("cm", "/two/", &env.upstream.url(), "use_keyless: true"))
        .unwrap();
    std::os::unix::fs::symlink("..2026_11_28_02", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(cm.join("..2026_11_28_01")).unwrap();
    answers(gw, "/two/", 200, "the swapped ConfigMap applies").await;
    assert_eq!(request("GET", &gw.url("/one/"), &[], "").await.status, 404);
}

#[tokio::test]
async fn polling_mode_applies_edits() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("v.yaml", &versioned_api(up, "/v/"))
            .script("version.lua", &versioned_script("one"))
            .setting("watch: { poll_interval_ms: 100 }")
    });
    let gw = &env.gw;
    // The start-up line may reach the log file after the admin API answers.
    eventually(RELOAD, "the start-up log names the polling watcher", || async {
        gw.logs().contains("\"watch\":\"polling\"").then_some(())
    })
    .await;
    // An in-place rewrite (no rename), as on file systems without events.
    std::fs::write(gw.dir().join("scripts/version.lua"), versioned_script("two")).unwrap();
    eventually(RELOAD, "the polled edit applies", || async {
        (version_at(gw, "/v/").await.as_deref() == Some("two")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sighup_and_admin_reload() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("v.yaml", &versioned_api(up, "/v/"))
            .script("version.lua", &versioned_script("one"))
            .setting("watch: { enabled: false }")
    });
    let gw = &env.gw;
    let script = gw.dir().join("scripts/version.lua");
    write_atomic(&script, &versioned_script("two"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(version_at(gw, "/v/").await.as_deref(), Some("one"), "no watcher: nothing changes by itself");
    gw.signal("HUP");
    eventually(RELOAD, "SIGHUP reloads", || async {
        (version_at(gw, "/v/").await.as_deref() == Some("two")).then_some(())
    })
    .await;

    write_atomic(&script, &versioned_script("three"));
    let r = gw.admin("GET", "/tyk/reload?block=true", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "applied");
    assert_eq!(version_at(gw, "/v/").await.as_deref(), Some("three"));
    let generation = r.json()["generation"].as_u64().unwrap();

    write_atomic(&script, "this is not lua");
    let r = gw.admin("GET", "/tyk/reload?block=true", "").await;
    assert_eq!(r.status, 400);
    let errors = r.json()["errors"].clone();
    assert!(errors[0].as_str().unwrap().contains("version.lua:1:"), "{errors}");
    assert_eq!(r.json()["generation"].as_u64().unwrap(), generation, "still the running generation");
    let r = gw.admin("GET", "/tyk/reload", "").await;
    assert_eq!(r.json(), serde_json::json!({"status": "ok", "message": ""}));
    assert_eq!(version_at(gw, "/v/").await.as_deref(), Some("three"));
}

#[tokio::test]
async fn restart_only_settings_keep_running_values() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("a.yaml", &api("a", "/a/", up, "use_keyless: true")).setting("watch: { enabled: false }")
    });
    let gw = &env.gw;
    let text = std::fs::read_to_string(gw.config_file()).unwrap();
    let moved = text
        .replace(&gw.addr.to_string(), "127.0.0.1:1")
        .replace("watch: { enabled: false }", "watch: { enabled: false }\nupstream: { timeout_ms: 1234 }");
    write_atomic(gw.config_file(), &moved);
    let r = gw.admin("GET", "/tyk/reload?block=true", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let restart = r.json()["restart_required"].to_string();
    assert!(restart.contains("listen"), "{restart}");
    assert!(!restart.contains("upstream.timeout"), "a per-request timeout applies live: {restart}");
    assert_eq!(request("GET", &gw.url("/a/"), &[], "").await.status, 200, "still listening where it was");
}

/// Several keep-alive connections send requests continuously while the hook and the API file are
/// rewritten 25 times: no request fails, and every new version is observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_failed_requests_while_reloading_under_load() {
    let env = Env::start(Backend::Memory, |b, up| {
        b.api("v.yaml", &versioned_api(up, "/v/"))
            .script("version.lua", &versioned_script("0"))
            .setting("watch: { debounce_ms: 50 }")
    });
    let gw = &env.gw;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), gw.addr.to_string());
        clients.push(tokio::spawn(async move {
            let mut conn = KeepAlive::connect(&addr).await.expect("connect");
            let mut reconnects = 0;
            while !stop.load(Ordering::Relaxed) {
                match conn.get("/v/").await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!("failed request: {} {}", r.status, r.body);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("connection error: {e}");
                        reconnects += 1;
                        conn = KeepAlive::connect(&addr).await.expect("reconnect");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            reconnects
        }));
    }
    let dir = gw.dir().to_path_buf();
    let mut latencies = Vec::new();
    for i in 1..=25 {
        let version = i.to_string();
        let written = Instant::now();
        if i % 2 == 0 {
            write_atomic(&dir.join("scripts/version.lua"), &versioned_script(&version));
        } else {
            // The API file changes too (its hook now stamps from config_data).
            let script = "return function(request, session, config)\n  request.SetHeaders['X-Version'] = config.config_data.v\n  return request\nend\n";
            write_atomic(&dir.join("scripts/version.lua"), script);
            write_atomic(
                &dir.join("apis/v.yaml"),
                &format!("{}\nconfig_data: {{ v: \"{version}\" }}\n", versioned_api(&env.upstream.url(), "/v/")),
            );
        }
        eventually(RELOAD, "each edit is observed", || {
            let version = version.clone();
            async move { (version_at(gw, "/v/").await == Some(version)).then_some(()) }
        })
        .await;
        latencies.push(written.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        assert_eq!(c.await.unwrap(), 0, "no connection was dropped");
    }
    latencies.sort();
    println!(
        "requests ok {}, failed {}; reload latency median {:?}, max {:?}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 100, "the clients kept sending");
}
