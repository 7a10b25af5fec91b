//! The globals scripts call: Tyk's JSVM API (`log`, `rawlog`, `b64enc`, ..., `TykGetKeyData`,
//! `TykSetKeyData`, `TykMakeHttpRequest`, `TykBatchRequest`), `json`, and the native `moongate`
//! table that offers the same with Lua tables instead of JSON strings. Every function that does I/O
//! is async: the calling hook yields to the worker's runtime while it waits.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mlua::{Lua, LuaSerdeExt, Table, Value};
use moongate_session::{Session, key_hint, unix_now};
use serde_json::json;

use crate::runtime::{HostContext, Services, SessionReads};

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Responses read by hooks are capped: a hook is no place for a large download.
const MAX_HTTP_BODY: usize = 10 << 20;

pub(crate) fn http_client() -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(conn)
}

/// The session reads of the request whose hook is calling; only valid before the first await.
fn reads(lua: &Lua) -> Option<Arc<SessionReads>> {
    lua.app_data_ref::<HostContext>().and_then(|c| c.clock.reads())
}

/// Reads a session's stored JSON for a hook, and remembers it for the request's token auth.
async fn read_session(lua: &Lua, key: &str) -> mlua::Result<Option<String>> {
    let reads = reads(lua);
    let svc = services(lua)?;
    let storage_key = svc.sessions.scheme().storage_key(key);
    let text = svc.sessions.store().get(&storage_key).await.map_err(mlua::Error::external)?;
    if let (Some(reads), Some(text)) = (reads, &text) {
        reads.record(storage_key, text);
    }
    Ok(text)
}

/// A hook changes or deletes a key: the request's copy of it is stale.
fn forget_session(lua: &Lua, key: &str) {
    if let (Some(reads), Ok(svc)) = (reads(lua), services(lua)) {
        reads.forget(&svc.sessions.scheme().storage_key(key));
    }
}

fn services(lua: &Lua) -> mlua::Result<Arc<Services>> {
    lua.app_data_ref::<HostContext>()
        .and_then(|c| c.services.clone())
        .ok_or_else(|| mlua::Error::runtime("session store and HTTP are not available while scripts are being checked"))
}

pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set(
        "log",
        lua.create_function(|_, msg: Value| {
            tracing::info!(target: "moongate::lua", prefix = "jsvm", r#type = "log-msg", "{}", text_of(&msg));
            Ok(())
        })?,
    )?;
    g.raw_set(
        "print",
        lua.create_function(|_, args: mlua::Variadic<Value>| {
            let line: Vec<String> = args.iter().map(text_of).collect();
            tracing::info!(target: "moongate::lua", "{}", line.join("\t"));
            Ok(())
        })?,
    )?;
    g.raw_set(
        "rawlog",
        lua.create_function(|_, msg: Value| {
            eprintln!("{}", text_of(&msg));
            Ok(())
        })?,
    )?;
    g.raw_set("b64enc", lua.create_function(|_, s: mlua::LuaString| Ok(STANDARD.encode(s.as_bytes())))?)?;
    g.raw_set("rawb64enc", lua.create_function(|_, s: mlua::LuaString| Ok(STANDARD_NO_PAD.encode(s.as_bytes())))?)?;
    g.raw_set(
        "b64dec",
        lua.create_function(|lua, s: mlua::LuaString| {
            let bytes = s.as_bytes();
            match STANDARD.decode(&bytes[..]).or_else(|_| STANDARD_NO_PAD.decode(&bytes[..])) {
                Ok(d) => Ok(Value::String(lua.create_string(d)?)),
                Err(_) => {
                    tracing::error!(target: "moongate::lua", "Failed to base64 decode.");
                    Ok(Value::Nil)
                }
            }
        })?,
    )?;
    g.raw_set(
        "rawb64dec",
        lua.create_function(|lua, s: mlua::LuaString| match STANDARD_NO_PAD.decode(&s.as_bytes()[..]) {
            Ok(d) => Ok(Value::String(lua.create_string(d)?)),
            Err(_) => Ok(Value::Nil),
        })?,
    )?;

    let json_t = lua.create_table()?;
    json_t.raw_set("encode", lua.create_function(|lua, v: Value| json_encode(lua, v))?)?;
    json_t.raw_set("decode", lua.create_function(|lua, s: String| json_decode(lua, &s))?)?;
    json_t.raw_set("null", lua.null())?;
    g.raw_set("json", json_t.clone())?;

    g.raw_set(
        "TykGetKeyData",
        lua.create_async_function(|lua, (key, _api_id): (String, Option<String>)| async move {
            let not_found = || json!({"status": "error", "message": "Key not found"}).to_string();
            match read_session(&lua, &key).await {
                Ok(Some(text)) => Ok(text),
                Ok(None) => Ok(not_found()),
                Err(e) => {
                    tracing::warn!(target: "moongate::lua", key = %key_hint(&key), error = %e, "TykGetKeyData failed.");
                    Ok(not_found())
                }
            }
        })?,
    )?;
    g.raw_set("TykSetKeyData", lua.create_async_function(|lua, (key, text, suppress): (String, String, Option<Value>)| async move {
        let session = match Session::from_json(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "moongate::lua", error = %e, "Failed to decode the session data.");
                return Ok(());
            }
        };
        let suppress = matches!(&suppress, Some(Value::String(s)) if s.to_string_lossy() == "1") || matches!(suppress, Some(Value::Integer(1)) | Some(Value::Boolean(true)));
        if let Err(e) = set_key(&lua, &key, session, suppress).await {
            tracing::error!(target: "moongate::lua", key = %key_hint(&key), error = %e, "Failed to update key data.");
        }
        Ok(())
    })?)?;
    g.raw_set("TykMakeHttpRequest", lua.create_async_function(|lua, text: Value| async move {
        let Value::String(text) = text else { return Ok(Value::Nil) };
        let spec: serde_json::Value = match serde_json::from_slice(&text.as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(target: "moongate::lua", error = %e, "TykMakeHttpRequest: the request is not JSON.");
                return Ok(Value::Nil);
            }
        };
        let str_of = |k: &str| spec.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        let url = format!("{}{}", str_of("Domain"), str_of("Resource"));
        let mut body = str_of("Body");
        let mut headers: Vec<(String, String)> = string_map(spec.get("Headers"));
        let form = string_map(spec.get("FormData"));
        if body.is_empty() && !form.is_empty() {
            body = form.iter().map(|(k, v)| format!("{}={}", crate::convert::encode(k), crate::convert::encode(v))).collect::<Vec<_>>().join("&");
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
            }
        }
        match fetch(&lua, &str_of("Method"), &url, &headers, body).await {
            Ok((code, headers, body)) => {
                let out = json!({"Code": code, "Body": body, "Headers": headers, "code": code, "body": body, "headers": headers});
                Ok(Value::String(lua.create_string(out.to_string())?))
            }
            Err(e) => {
                tracing::error!(target: "moongate::lua", url = %url, error = %e, "TykMakeHttpRequest failed.");
                Ok(Value::Nil)
            }
        }
    })?)?;
    g.raw_set(
        "TykBatchRequest",
        lua.create_async_function(|lua, text: String| async move {
            let spec: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(target: "moongate::lua", error = %e, "TykBatchRequest: the request is not JSON.");
                    return Ok(Value::Nil);
                }
            };
            let requests = spec.get("requests").and_then(|r| r.as_array()).cloned().unwrap_or_default();
            let one = |r: serde_json::Value| {
                let lua = lua.clone();
                async move {
                    let url = r.get("relative_url").and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    let method = r.get("method").and_then(|v| v.as_str()).unwrap_or("GET").to_owned();
                    let body = r.get("body").and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    match fetch(&lua, &method, &url, &string_map(r.get("headers")), body).await {
                        Ok((code, headers, body)) => {
                            json!({"relative_url": url, "code": code, "headers": headers, "body": body})
                        }
                        Err(e) => json!({"relative_url": url, "code": 0, "headers": {}, "body": e}),
                    }
                }
            };
            let replies: Vec<serde_json::Value> =
                if spec.get("suppress_parallel_execution").and_then(|v| v.as_bool()).unwrap_or(false) {
                    let mut out = Vec::new();
                    for r in requests {
                        out.push(one(r).await);
                    }
                    out
                } else {
                    futures_util::future::join_all(requests.into_iter().map(one)).await
                };
            Ok(Value::String(lua.create_string(serde_json::Value::Array(replies).to_string())?))
        })?,
    )?;

    install_native(lua, &json_t)
}

/// `moongate.session`, `moongate.http`, `moongate.log`, `moongate.json`: the same operations
/// with Lua values.
fn install_native(lua: &Lua, json_t: &Table) -> mlua::Result<()> {
    let native = lua.create_table()?;
    let session = lua.create_table()?;
    session.raw_set(
        "get",
        lua.create_async_function(|lua, key: String| async move {
            match read_session(&lua, &key).await? {
                Some(text) => {
                    let v: serde_json::Value = serde_json::from_str(&text).map_err(mlua::Error::external)?;
                    lua.to_value(&v)
                }
                None => Ok(Value::Nil),
            }
        })?,
    )?;
    session.raw_set(
        "set",
        lua.create_async_function(|lua, (key, value, opts): (String, Value, Option<Table>)| async move {
            let json: serde_json::Value = lua.from_value(value)?;
            let session: Session =
                serde_json::from_value(json).map_err(|e| mlua::Error::runtime(format!("not a session: {e}")))?;
            let suppress =
                opts.map(|o| o.get::<Option<bool>>("suppress_reset")).transpose()?.flatten().unwrap_or(false);
            set_key(&lua, &key, session, suppress).await.map_err(mlua::Error::external)?;
            Ok(true)
        })?,
    )?;
    session.raw_set(
        "delete",
        lua.create_async_function(|lua, key: String| async move {
            forget_session(&lua, &key);
            let svc = services(&lua)?;
            svc.sessions.delete(&key).await.map_err(mlua::Error::external)
        })?,
    )?;
    native.raw_set("session", session)?;

    let http_t = lua.create_table()?;
    http_t.raw_set(
        "request",
        lua.create_async_function(|lua, req: Table| async move {
            let method: Option<String> = req.get("method")?;
            let url: String = req.get("url")?;
            let body: Option<mlua::LuaString> = req.get("body")?;
            let mut headers = Vec::new();
            if let Some(h) = req.get::<Option<Table>>("headers")? {
                for pair in h.pairs::<String, String>() {
                    headers.push(pair?);
                }
            }
            let body = body.map(|b| b.to_string_lossy()).unwrap_or_default();
            match fetch(&lua, method.as_deref().unwrap_or("GET"), &url, &headers, body).await {
                Ok((status, headers, body)) => {
                    let t = lua.create_table()?;
                    t.raw_set("status", status)?;
                    t.raw_set("body", body)?;
                    let h = lua.create_table()?;
                    for (k, v) in headers.as_object().into_iter().flatten() {
                        let joined = v
                            .as_array()
                            .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default();
                        h.raw_set(k.to_ascii_lowercase(), joined)?;
                    }
                    t.raw_set("headers", h)?;
                    Ok((Value::Table(t), Value::Nil))
                }
                Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e)?))),
            }
        })?,
    )?;
    native.raw_set("http", http_t)?;

    let log_t = lua.create_table()?;
    for level in [tracing::Level::INFO, tracing::Level::WARN, tracing::Level::ERROR] {
        // tracing's macros need a constant level, hence the match.
        let f = lua.create_function(move |_, m: Value| {
            let text = text_of(&m);
            match level {
                tracing::Level::ERROR => tracing::error!(target: "moongate::lua", "{text}"),
                tracing::Level::WARN => tracing::warn!(target: "moongate::lua", "{text}"),
                _ => tracing::info!(target: "moongate::lua", "{text}"),
            }
            Ok(())
        })?;
        log_t.raw_set(level.as_str().to_ascii_lowercase(), f)?;
    }
    native.raw_set("log", log_t)?;
    native.raw_set("json", json_t.clone())?;
    native.raw_set("now", lua.create_function(|_, ()| Ok(unix_now()))?)?;
    lua.globals().raw_set("moongate", native)
}

/// Tyk's add-or-update from a hook: the key is used as given; unless `suppress_reset`, the quota
/// period restarts; the TTL is the lifetime over the session's APIs.
async fn set_key(
    lua: &Lua,
    key: &str,
    mut session: Session,
    suppress_reset: bool,
) -> Result<(), moongate_session::StoreError> {
    forget_session(lua, key);
    let svc = services(lua).map_err(|e| moongate_session::StoreError::Unavailable(e.to_string()))?;
    let now = unix_now();
    let ttl = {
        let ctx = lua.app_data_ref::<HostContext>();
        match ctx {
            Some(ctx) => session.lifetime_over_access_rights(|id| ctx.lifetimes.get(id).copied(), &ctx.global, now),
            None => 0,
        }
    };
    if !suppress_reset {
        session.start_quota_period(now);
        svc.sessions.reset_quota(key).await?;
    }
    svc.sessions.put(key, &session, ttl).await
}

/// One HTTP request for a hook: (status, headers as name -> [values], body).
async fn fetch(
    lua: &Lua,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: String,
) -> Result<(u16, serde_json::Value, String), String> {
    let svc = services(lua).map_err(|e| e.to_string())?;
    let method = if method.is_empty() {
        Method::GET
    } else {
        Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string())?
    };
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL `{url}`: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// URLs are supported: `{url}`"));
    }
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            req = req.header(k, v);
        }
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let resp = svc.http.request(req).await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let mut out_headers = serde_json::Map::new();
    for name in resp.headers().keys() {
        let values: Vec<serde_json::Value> = resp
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        out_headers.insert(crate::convert::canonical(name.as_str()), values.into());
    }
    let body = Limited::new(resp.into_body(), MAX_HTTP_BODY).collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, serde_json::Value::Object(out_headers), String::from_utf8_lossy(&body).into_owned()))
}

fn string_map(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    v.and_then(|v| v.as_object())
        .map(|m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))).collect()
        })
        .unwrap_or_default()
}

/// `json.encode`: an empty table is `{}`; `json.null` is null; functions are left out, so the hook
/// arguments (whose tables carry none) and middleware objects encode too.
fn json_encode(lua: &Lua, v: Value) -> mlua::Result<String> {
    let opts = mlua::serde::DeserializeOptions::new().deny_unsupported_types(false).deny_recursive_tables(true);
    let value: serde_json::Value = lua.from_value_with(v, opts)?;
    Ok(value.to_string())
}

/// `json.decode`: JSON null becomes `json.null`; arrays keep their array-ness when re-encoded.
fn json_decode(lua: &Lua, s: &str) -> mlua::Result<Value> {
    let value: serde_json::Value =
        serde_json::from_str(s).map_err(|e| mlua::Error::runtime(format!("json.decode: {e}")))?;
    // A small document (a session, say) is converted without the memory limit's protected calls.
    // A large one keeps the limit: `[[[[...]]]]` makes a table of every two bytes.
    let _conversion = (s.len() <= UNLIMITED_DECODE_BYTES).then(|| crate::runtime::Unlimited::new(lua));
    lua.to_value(&value)
}

/// At most this much JSON is decoded without the memory limit (about 2 MB of Lua values at worst).
const UNLIMITED_DECODE_BYTES: usize = 16 << 10;

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string_lossy(),
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// An error with its whole source chain: hyper's top-level messages alone ("client error
/// (Connect)") hide the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
