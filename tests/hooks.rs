use std::time::{Duration, Instant};

use moongate_testkit::{GatewayBuilder, request};
use serde_json::json;

use crate::common::{Backend, Env, api, now};

/// An API at `/{id}/` whose `custom_middleware` is `mw` (YAML).
fn hooked(b: GatewayBuilder, up: &str, id: &str, extra: &str, mw: &str) -> GatewayBuilder {
    b.api(&format!("{id}.yaml"), &api(id, &format!("/{id}/"), up, &format!("{extra}\ncustom_middleware:\n{mw}")))
}

fn pre(name: &str, file: &str) -> String {
    format!("  pre:\n    - {{ name: {name}, path: {file} }}\n")
}

const MUTATE: &str = r#"
mutate = TykJS.TykMiddleware.NewMiddleware({})
mutate.NewProcessRequest(function(request, session, config)
  request.SetHeaders["X-Added"] = "yes"
  request.SetHeaders["X-Api"] = config.APIID .. "/" .. config.OrgID .. "/" .. config.config_data.flavour
  table.insert(request.DeleteHeaders, "X-Remove-Me")
  request.AddParams["added"] = "1"
  request.ExtendedParams["multi"] = { "b", "c" }
  table.insert(request.DeleteParams, "gone")
  request.SetHeaders["X-Seen-Original"] = request.Headers["x-original"][1]
  -- Headers are read-only: this edit must not reach the upstream.
  request.Headers["X-Original"] = { "changed" }
  request.SetHeaders["X-Method"] = request.Method
  request.SetHeaders["X-Param"] = request.Params["keep"][1]
  return mutate.ReturnData(request, {})
end)
"#;

#[tokio::test]
async fn request_mutation_params_config() {
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "mut", "use_keyless: true\nconfig_data: { flavour: lemon }", &pre("mutate", "mutate.lua"))
            .script("mutate.lua", MUTATE)
    });
    let r = request(
        "GET",
        &env.gw.url("/mut/p?keep=1&gone=2&multi=a"),
        &[("x-remove-me", "1"), ("x-original", "orig")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    let h = &seen["headers"];
    assert_eq!(h["x-added"], "yes");
    assert_eq!(h["x-api"], "mut/test/lemon", "config and config_data");
    assert!(h.get("x-remove-me").is_none());
    assert_eq!(h["x-original"], "orig", "Headers is read-only");
    assert_eq!(h["x-seen-original"], "orig", "case-insensitive header lookup");
    assert_eq!(h["x-method"], "GET");
    assert_eq!(h["x-param"], "1");
    assert_eq!(seen["query"], "added=1&keep=1&multi=a&multi=b&multi=c", "params: delete, set, append; sorted");
}

const OVERRIDE: &str = r#"
return function(request, session, config)
  local mode = request.Params["mode"][1]
  local o = request.ReturnOverrides
  if mode == "raw" then
    o.ResponseCode = 200; o.ResponseBody = "plain text"; o.ResponseHeaders = { ["X-From"] = "hook" }
  elseif mode == "wrapped" then
    o.ResponseCode = 400; o.ResponseBody = "ignored"; o.ResponseError = "bad input"
  elseif mode == "override" then
    o.ResponseCode = 401; o.ResponseError = "<custom/>"; o.OverrideError = true
  end
  return request
end
"#;

/// `request.Headers` fills itself on use; whatever the order of reads, a hook sees every header,
/// every value, in any capitalisation, once.
#[tokio::test]
async fn request_headers_read_any_way() {
    const HEADERS: &str = r#"
return function(request, session, config)
  local h = request.Headers
  local multi = h["X-Multi"]
  local tricky = h["X-Value"]
  local missing = h["X-Absent"]
  local names = 0
  for _, values in pairs(h) do names = names + 1 end
  local out = table.concat(multi, ",") .. "|" .. tricky[1] .. "|" .. tostring(missing) .. "|" .. #h["x-multi"]
  request.SetHeaders["X-Out"] = out .. "|" .. names
  request.SetHeaders["X-Json"] = json.encode(request.Headers)
  return request
end
"#;
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "hd", "use_keyless: true", &pre("headers", "headers.lua")).script("headers.lua", HEADERS)
    });
    let r =
        request("GET", &env.gw.url("/hd/"), &[("x-multi", "a"), ("x-multi", "b"), ("x-value", "X-Multi")], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    let all: serde_json::Value = serde_json::from_str(seen["headers"]["x-json"].as_str().unwrap()).unwrap();
    assert_eq!(all["X-Multi"], json!(["a", "b"]));
    assert_eq!(all["X-Value"], json!(["X-Multi"]), "a value that reads like a name is a value");
    assert!(all["Host"].is_array());
    let names = all.as_object().unwrap().len();
    assert_eq!(seen["headers"]["x-out"], format!("a,b|X-Multi|nil|2|{names}"));
}

#[tokio::test]
async fn return_overrides() {
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "ov", "use_keyless: true", &pre("ov", "ov.lua")).script("ov.lua", OVERRIDE)
    });
    let gw = &env.gw;
    let r = request("GET", &gw.url("/ov/?mode=raw"), &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, "plain text"));
    assert_eq!(r.headers["x-from"], "hook");
    let r = request("GET", &gw.url("/ov/?mode=wrapped"), &[], "").await;
    assert_eq!((r.status, r.error().as_str()), (400, "bad input"));
    let r = request("GET", &gw.url("/ov/?mode=override"), &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (401, "<custom/>"));
    // No override: the upstream answers.
    let r = request("GET", &gw.url("/ov/?mode=none"), &[], "").await;
    assert_eq!(r.json()["path"], "/");
}

const GLOBALS: &str = r#"
counter = 0  -- set while loading: shared by every request
g = TykJS.TykMiddleware.NewMiddleware({})
g:NewProcessRequest(function(request, session, config)
  hits = (hits or 0) + 1          -- a global written during a request
  counter = counter + 1
  request.SetHeaders["X-Hits"] = tostring(hits)
  request.SetHeaders["X-Counter"] = tostring(counter)
  local missing = json.decode(TykGetKeyData("no-such-key", config.APIID))
  request.SetHeaders["X-Missing"] = missing.status .. ":" .. missing.message
  return g:ReturnData(request, {})
end)
"#;

#[tokio::test]
async fn globals_do_not_leak_between_requests() {
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "gl", "use_keyless: true", &pre("g", "g.lua")).script("g.lua", GLOBALS).workers(1)
    });
    for _ in 0..5 {
        let r = request("GET", &env.gw.url("/gl/"), &[], "").await;
        let h = &r.json()["headers"];
        assert_eq!(h["x-hits"], "1", "a global written by a hook is not seen by the next request");
        assert_eq!(h["x-counter"], "1");
        assert_eq!(h["x-missing"], "error:Key not found", "TykGetKeyData on a missing key");
    }
}

#[tokio::test]
async fn meta_is_replaced_saved_and_must_be_strings() {
    let env = Env::start(Backend::Redis, |b, up| {
        let mw = "  post:\n    - { name: stamp, path: stamp.lua, require_session: true }\n";
        let bad = "  post:\n    - { name: bad, path: bad.lua, require_session: true }\n";
        hooked(hooked(b, up, "meta", "", mw), up, "badmeta", "", bad)
            .script("stamp.lua", include_str!("../scripts/stamp.lua"))
            .script("bad.lua", "bad = TykJS.TykMiddleware.NewMiddleware({})\nbad:NewProcessRequest(function(r, s, c) return bad:ReturnData(r, { count = 1 }) end)\n")
    });
    let gw = &env.gw;
    let key = gw.create_key(&json!({"alias": "alice", "meta_data": {"old": "x", "requests": "5"}})).await;
    let r = request("GET", &gw.url("/meta/"), &[("authorization", &key), ("x-debug", "1")], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    assert_eq!(h["x-moongate-alias"], "alice", "post hook sees the session with require_session");
    assert!(h.get("x-debug").is_none());
    request("GET", &gw.url("/meta/"), &[("authorization", &key)], "").await;
    let stored = gw.admin("GET", &format!("/tyk/keys/{key}"), "").await.json();
    assert_eq!(stored["meta_data"], json!({"old": "x", "requests": "7"}), "meta saved at the end of each request");

    let r = request("GET", &gw.url("/badmeta/"), &[("authorization", &key)], "").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (500, "Internal Server Error"),
        "a non-string meta value fails the hook"
    );
    assert!(gw.logs().contains("SessionMeta value for `count` is a integer"), "{}", gw.logs());
}

#[tokio::test]
async fn custom_auth() {
    let env = Env::start(Backend::Memory, |b, up| {
        let mw = "  auth_check: { name: customAuth, path: custom_auth.lua }\n";
        let b = hooked(b, up, "ca", "config_data: { signing_secret: s3cret, session_seconds: 60 }", mw);
        hooked(b, up, "caexp", "config_data: { signing_secret: s3cret, session_seconds: -60 }", mw)
            .script("custom_auth.lua", include_str!("../scripts/custom_auth.lua"))
    });
    let gw = &env.gw;
    let good = format!("bob.{}", b64("bobs3cret"));
    let r = request("GET", &gw.url("/ca/x"), &[("x-signed-user", &good)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The session built by the hook is kept under its AuthValue.
    let stored = gw.admin("GET", &format!("/tyk/keys/{good}"), "").await;
    assert_eq!(stored.json()["alias"], "bob");

    let r = request("GET", &gw.url("/ca/x"), &[("x-signed-user", "bob.forged")], "").await;
    assert_eq!((r.status, r.error().as_str()), (403, "Invalid signature"));
    let r = request("GET", &gw.url("/ca/x"), &[], "").await;
    assert_eq!(r.status, 403);
    // The session checks still apply to a custom session: expired -> 401.
    let r = request("GET", &gw.url("/caexp/x"), &[("x-signed-user", &good)], "").await;
    assert_eq!((r.status, r.error().as_str()), (401, "Key has expired, please renew"));
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn backend_auth_port_of_a_tyk_pre_hook() {
    let env = Env::start(Backend::Redis, |b, up| {
        let mw = "  pre:\n    - { name: backendAuth, path: backend_auth.lua }\n";
        let ok = format!(
            "auth: {{ auth_header_name: x-internal-authorization }}\nconfig_data: {{ auth_backend: \"{up}\", auth_resource: /validate, session_expires_seconds: 60 }}"
        );
        let no = format!(
            "auth: {{ auth_header_name: x-internal-authorization }}\nconfig_data: {{ auth_backend: \"{up}\", auth_resource: \"/validate?echo_status=401\", session_expires_seconds: 60 }}"
        );
        hooked(hooked(b, up, "ba", &ok, mw), up, "bano", &no, mw)
            .script("backend_auth.lua", include_str!("../scripts/backend_auth.lua"))
    });
    let gw = &env.gw;
    let r = request("GET", &gw.url("/ba/x"), &[("authorization", "caller-token")], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-internal-authorization"], "caller-token");
    let stored = gw.admin("GET", "/tyk/keys/caller-token", "").await.json();
    let expires = stored["expires"].as_i64().unwrap();
    assert!((now() + 50..=now() + 60).contains(&expires), "expires = now + session_expires_seconds: {expires}");
    assert_eq!(stored["meta_data"]["validated_by"], "backend");

    // An expired session is re-validated and its expiry moved.
    gw.admin("PUT", "/tyk/keys/caller-token", &json!({"expires": now() - 5, "access_rights": {}}).to_string()).await;
    env.redis.as_ref().unwrap().cmd::<()>(&[
        "SET",
        &format!("apikey-{}", moongate_session::hash_key("caller-token")),
        &json!({"expires": now() - 5}).to_string(),
    ]);
    assert_eq!(request("GET", &gw.url("/ba/x"), &[("authorization", "caller-token")], "").await.status, 200);
    assert!(gw.admin("GET", "/tyk/keys/caller-token", "").await.json()["expires"].as_i64().unwrap() > now());

    let r = request("GET", &gw.url("/bano/x"), &[("authorization", "other-token")], "").await;
    assert_eq!((r.status, r.error().as_str()), (401, "Invalid credentials"));
    let r = request("GET", &gw.url("/ba/x"), &[], "").await;
    assert_eq!(r.status, 401);
}

/// GET calls Redis has answered so far.
fn redis_gets(env: &Env) -> u64 {
    let info: String = env.redis.as_ref().expect("redis").cmd(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The session check of `bench/auth.lua` (the peer benchmark's hook) followed by token auth on
/// the header it sets: the key is read from the store once per request, not twice, and a hook
/// that changes the key makes token auth read it again.
#[tokio::test]
async fn token_auth_reuses_the_session_a_hook_read() {
    const EXPIRE: &str = r#"
expire = TykJS.TykMiddleware.NewMiddleware({})
expire:NewProcessRequest(function(request, session, config)
  local key = request.Headers["Authorization"][1]
  local s = json.decode(TykGetKeyData(key, config.APIID))
  s.expires = 1
  TykSetKeyData(key, json.encode(s), 1)
  request.SetHeaders["x-internal-authorization"] = key
  return expire:ReturnData(request, {})
end)
"#;
    let env = Env::start(Backend::Redis, |b, up| {
        let auth = "auth: { auth_header_name: x-internal-authorization }";
        hooked(b, up, "check", auth, &pre("benchAuth", "auth.lua"))
            .script("auth.lua", include_str!("../bench/auth.lua"))
            .api(
                "exp.yaml",
                &api("exp", "/exp/", up, &format!("{auth}\ncustom_middleware:\n{}", pre("expire", "expire.lua"))),
            )
            .script("expire.lua", EXPIRE)
    });
    let gw = &env.gw;
    let key = gw.create_key(&json!({"expires": 0, "access_rights": {}})).await;
    let before = redis_gets(&env);
    for _ in 0..5 {
        let r = request("GET", &gw.url("/check/x"), &[("authorization", &key)], "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["headers"]["x-internal-authorization"], key.as_str());
    }
    assert_eq!(redis_gets(&env) - before, 5, "one store read per request");
    let r = request("GET", &gw.url("/check/x"), &[("authorization", "unknown")], "").await;
    assert_eq!((r.status, r.error().as_str()), (403, "Access to this API has been disallowed"));

    // The hook expires the key it read: token auth sees the write, not the copy.
    let r = request("GET", &gw.url("/exp/x"), &[("authorization", &key)], "").await;
    assert_eq!((r.status, r.error().as_str()), (401, "Key has expired, please renew"));
}

#[tokio::test]
async fn response_hook() {
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(
            b,
            up,
            "rh",
            "use_keyless: true",
            "  response:\n    - { name: responseStamp, path: response_stamp.lua }\n",
        )
        .script("response_stamp.lua", include_str!("../scripts/response_stamp.lua"))
    });
    let r = request("GET", &env.gw.url("/rh/x?echo_header=X-Upstream-Secret:s&echo_header=X-Kept:k"), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-response-hook"], "rh");
    assert_eq!(r.headers["x-kept"], "k");
    assert!(r.headers.get("x-upstream-secret").is_none());
    let body = r.json();
    assert_eq!(body["gateway"], "moongate");
    assert_eq!(body["data"]["path"], "/x");
    assert_eq!(r.headers["content-length"], r.body.len().to_string().as_str());
}

#[tokio::test]
async fn bodies_for_hooks() {
    let script = r#"
return function(request, session, config)
  request.Body = string.upper(request.Body) .. "!"
  return request
end
"#;
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "bd", "use_keyless: true", &pre("up", "upper.lua"))
            .script("upper.lua", script)
            .setting("hooks: { max_body_bytes: 1000 }")
    });
    let r = request("POST", &env.gw.url("/bd/"), &[], "hello").await;
    assert_eq!(r.json()["body"], "HELLO!");
    let r = request("POST", &env.gw.url("/bd/"), &[], &"x".repeat(2000)).await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn failures_answer_500_and_name_the_script() {
    let boom = "return function(request)\n  local x = 1\n  error(\"boom\")\nend\n";
    let runaway = "return function(request)\n  while true do end\nend\n";
    let noreturn = "return function(request) end\n";
    let env = Env::start(Backend::Memory, |b, up| {
        let b = hooked(b, up, "boom", "use_keyless: true", &pre("boom", "boom.lua")).script("boom.lua", boom);
        let b = hooked(b, up, "loop", "use_keyless: true", &pre("loop", "loop.lua")).script("loop.lua", runaway);
        let b = hooked(b, up, "nothing", "use_keyless: true", &pre("nothing", "nothing.lua"))
            .script("nothing.lua", noreturn);
        b.api("open.yaml", &api("open", "/open/", up, "use_keyless: true")).setting("hooks: { timeout_ms: 300 }")
    });
    let gw = &env.gw;
    let r = request("GET", &gw.url("/boom/"), &[], "").await;
    assert_eq!((r.status, r.error().as_str()), (500, "Internal Server Error"));
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("boom.lua:3: boom"))
        .unwrap_or_else(|| panic!("no log line names the script:\n{logs}"));
    assert!(
        line.contains("\"level\":\"ERROR\"") && line.contains("\"api_id\":\"boom\"") && line.contains("hook `boom`"),
        "{line}"
    );
    let r = request("GET", &gw.url("/nothing/"), &[], "").await;
    assert_eq!(r.status, 500);

    // A runaway loop is stopped at its budget while other requests keep flowing.
    let url = gw.url("/loop/");
    let runaway = tokio::spawn(async move {
        let started = Instant::now();
        let r = request("GET", &url, &[], "").await;
        (r.status, started.elapsed())
    });
    for _ in 0..5 {
        assert_eq!(request("GET", &gw.url("/open/"), &[], "").await.status, 200);
    }
    let (status, took) = runaway.await.unwrap();
    assert_eq!(status, 500);
    assert!(took < Duration::from_secs(3), "stopped near its 300 ms budget, took {took:?}");
    assert!(gw.logs().contains("ran past its budget"), "{}", gw.logs());
    // The worker keeps serving hooks afterwards.
    assert_eq!(request("GET", &gw.url("/boom/"), &[], "").await.status, 500);
    assert_eq!(request("GET", &gw.url("/open/"), &[], "").await.status, 200);
}

#[tokio::test]
async fn sandbox_denials() {
    let denied = [
        ("io", "io.open('/etc/passwd')"),
        ("osexec", "os.execute('true')"),
        ("osexit", "os.exit(1)"),
        ("osremove", "os.remove('/tmp/x')"),
        ("getenv", "os.getenv('HOME')"),
        ("require", "require('os')"),
        ("dofile", "dofile('/etc/passwd')"),
        ("loadfile", "loadfile('/etc/passwd')"),
        ("dump", "string.dump(function() end)"),
        ("bytecode", "assert(load('\\27Lua', 'x', 'b'))"),
    ];
    let allowed = "return function(request)\n  request.SetHeaders['X-T'] = tostring(os.time() > 0 and os.clock() >= 0 and os.date('%Y') ~= nil)\n  assert(load('return 1')() == 1)\n  return request\nend\n";
    let env = Env::start(Backend::Memory, |b, up| {
        let mut b = hooked(b, up, "allowed", "use_keyless: true", &pre("allowed", "allowed.lua"))
            .script("allowed.lua", allowed);
        for (name, expr) in denied {
            b = hooked(b, up, name, "use_keyless: true", &pre(name, &format!("{name}.lua"))).script(
                &format!("{name}.lua"),
                &format!("return function(request)\n  {expr}\n  return request\nend\n"),
            );
        }
        b
    });
    let r = request("GET", &env.gw.url("/allowed/"), &[], "").await;
    assert_eq!(r.json()["headers"]["x-t"], "true", "os.time, os.clock, os.date and text load stay");
    for (name, expr) in denied {
        let r = request("GET", &env.gw.url(&format!("/{name}/")), &[], "").await;
        assert_eq!(r.status, 500, "{expr} must be denied");
    }
}

/// Hooks that wait on HTTP yield: 50 concurrent requests, each waiting 200 ms on an endpoint,
/// finish in far less than 50 x 200 ms, on one worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_hooks_do_not_block_the_worker() {
    let script = r#"
return function(request, session, config)
  local reply = json.decode(TykMakeHttpRequest(json.encode({
    Method = "GET", Domain = config.config_data.slow, Resource = "/slow?echo_delay_ms=200",
  })))
  request.SetHeaders["X-Slow-Code"] = tostring(reply.Code)
  return request
end
"#;
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(
            b,
            up,
            "wait",
            &format!("use_keyless: true\nconfig_data: {{ slow: \"{up}\" }}"),
            &pre("wait", "wait.lua"),
        )
        .script("wait.lua", script)
        .workers(1)
    });
    let started = Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let url = env.gw.url("/wait/");
            tokio::spawn(async move { request("GET", &url, &[], "").await })
        })
        .collect();
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.json()["headers"]["x-slow-code"], "200");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(50 * 200 / 4), "50 hooks waiting 200 ms each took {took:?}");
}

#[tokio::test]
async fn native_api() {
    let script = r#"
return function(request, session, config)
  local stored = moongate.session.get("native-key")
  request.SetHeaders["X-Alias"] = stored and stored.alias or "none"
  moongate.session.set("made-by-lua", { expires = 0, alias = "from-lua", access_rights = {} })
  local res = moongate.http.request({ url = config.config_data.up .. "/n?echo_status=201" })
  request.SetHeaders["X-Status"] = tostring(res.status)
  request.SetHeaders["X-Json"] = moongate.json.encode({ a = json.null, e = {}, list = json.decode("[]") })
  moongate.log.info("native api works")
  return request
end
"#;
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "nat", &format!("use_keyless: true\nconfig_data: {{ up: \"{up}\" }}"), &pre("nat", "nat.lua"))
            .script("nat.lua", script)
    });
    let gw = &env.gw;
    gw.admin("POST", "/tyk/keys/native-key", r#"{"alias":"native"}"#).await;
    let r = request("GET", &gw.url("/nat/"), &[], "").await;
    let h = &r.json()["headers"];
    assert_eq!(h["x-alias"], "native");
    assert_eq!(h["x-status"], "201");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(h["x-json"].as_str().unwrap()).unwrap(),
        json!({"a": null, "e": {}, "list": []})
    );
    assert_eq!(gw.admin("GET", "/tyk/keys/made-by-lua", "").await.json()["alias"], "from-lua");
}

/// A hook over the state's memory limit fails with 500; the state is replaced and serving goes on.
#[tokio::test]
async fn memory_limit() {
    // `?decode` decodes 1 MB of JSON that makes 350,000 tables: json.decode must fail under the
    // limit (and the hook, which catches that, goes on) rather than build them all.
    let hog = "return function(request)\n  if request.Params['hog'] then\n    local t = {}\n    for i = 1, 1e8 do t[i] = string.rep('x', 1024) .. i end\n  end\n  if request.Params['decode'] then\n    local ok = pcall(json.decode, '[' .. string.rep('[],', 350000) .. '[]]')\n    request.SetHeaders['X-Decoded'] = tostring(ok)\n  end\n  request.SetHeaders['X-Ok'] = 'yes'\n  return request\nend\n";
    let env = Env::start(Backend::Memory, |b, up| {
        hooked(b, up, "hog", "use_keyless: true", &pre("hog", "hog.lua"))
            .script("hog.lua", hog)
            .setting("hooks: { memory_limit_mb: 16, timeout_ms: 5000 }")
            .workers(1)
    });
    let r = request("GET", &env.gw.url("/hog/?hog=1"), &[], "").await;
    assert_eq!(r.status, 500);
    assert!(env.gw.logs().contains("ran out of memory"), "{}", env.gw.logs());
    for _ in 0..3 {
        let r = request("GET", &env.gw.url("/hog/"), &[], "").await;
        assert_eq!(r.json()["headers"]["x-ok"], "yes");
    }
    let r = request("GET", &env.gw.url("/hog/?decode=1"), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-decoded"], "false", "the decode ran out of memory");
}
