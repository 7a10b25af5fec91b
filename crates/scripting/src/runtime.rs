//! One worker's Lua state for one generation: sandbox, limits, loaded scripts, and hook calls.
//!
//! Requests on a worker interleave on this state as separate coroutines (a hook waiting on Redis
//! yields); that is safe because a Lua state is single-threaded and each worker owns its own.
//! Time is limited twice: an instruction-count hook stops CPU-bound code at the deadline of the
//! hook being polled, and a tokio timeout bounds the wall time of hooks that wait on I/O.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use mlua::{Function, HookTriggers, Lua, LuaOptions, LuaSerdeExt, MultiValue, StdLib, Table, Value, VmState};
use moongate_config::{ApiDefinition, GlobalLifetime, HookLimits, HookSpec};
use moongate_session::{ApiLifetime, Session, SessionStore};

use crate::convert::{self, BodyState, Overrides, RequestView, ResponseView};
use crate::{HookError, ScriptError, ScriptSet};

const PRELUDE: &str = include_str!("prelude.lua");
/// Marks the error raised by the instruction hook, to tell a budget overrun from a script error.
const BUDGET_EXCEEDED: &str = "moongate: hook time budget exceeded";

/// Where a hook runs; it decides which session the hook sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    AuthCheck,
    PostKeyAuth,
    Post,
    Response,
}

/// What the session-store and HTTP globals use. One per worker.
pub struct Services {
    pub sessions: SessionStore,
    pub(crate) http: crate::api::HttpClient,
}

impl Services {
    pub fn new(sessions: SessionStore) -> Self {
        Self { sessions, http: crate::api::http_client() }
    }
}

/// Shared with the Rust functions exposed to Lua, through the state's app data.
pub(crate) struct HostContext {
    pub services: Option<Arc<Services>>,
    pub clock: Arc<Clock>,
    pub lifetimes: HashMap<String, ApiLifetime>,
    pub global: GlobalLifetime,
}

/// A custom-auth hook's verdict: the session it built and the key it goes by.
#[derive(Debug, Clone)]
pub struct AuthResult {
    pub key: Option<String>,
    pub session: Session,
}

/// What a request hook asks of the pipeline.
#[derive(Debug, Default)]
pub struct HookOutput {
    pub overrides: Option<Overrides>,
    /// The new `meta_data`, replacing the old one wholesale.
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    pub auth: Option<AuthResult>,
}

#[derive(Debug, Default)]
pub struct ResponseOutput {
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What belongs to the hook being polled right now: its deadline, read by the instruction hook,
/// and its request's session reads, used by the session functions.
pub(crate) struct Clock {
    epoch: Instant,
    /// Nanoseconds after `epoch`; 0 when no hook runs.
    deadline: AtomicU64,
    reads: Mutex<Option<Arc<SessionReads>>>,
}

impl Clock {
    fn past_deadline(&self) -> bool {
        let d = self.deadline.load(Ordering::Relaxed);
        d != 0 && self.epoch.elapsed().as_nanos() as u64 > d
    }

    /// The session reads of the request whose hook is running; read before the first await.
    pub(crate) fn reads(&self) -> Option<Arc<SessionReads>> {
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_reads(&self, reads: Option<&Arc<SessionReads>>) {
        *self.reads.lock().unwrap_or_else(|p| p.into_inner()) = reads.cloned();
    }
}

/// The last session a request's hooks read from the store, by storage key. Token auth after a
/// hook that read the same key (a pre hook checking the key, say) takes this copy instead of
/// reading the store a second time; a hook that writes or deletes the key drops it.
#[derive(Debug, Default)]
pub struct SessionReads(Mutex<Option<(String, String)>>);

impl SessionReads {
    /// The stored JSON of `storage_key`, if a hook of this request read it.
    pub fn take(&self, storage_key: &str) -> Option<String> {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match last.take() {
            Some((k, text)) if k == storage_key => Some(text),
            other => {
                *last = other;
                None
            }
        }
    }

    pub(crate) fn record(&self, storage_key: String, text: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((storage_key, text.to_owned()));
    }

    pub(crate) fn forget(&self, storage_key: &str) {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref().is_some_and(|(k, _)| k == storage_key) {
            *last = None;
        }
    }
}

pub struct HookRuntime {
    lua: Lua,
    hooks: HashMap<PathBuf, HashMap<String, Function>>,
    configs: HashMap<String, Table>,
    call: Function,
    run_request: Function,
    new_request: Function,
    headers_mt: Table,
    clock: Arc<Clock>,
    limits: HookLimits,
    poisoned: AtomicBool,
}

impl HookRuntime {
    /// Builds the state and loads every script the APIs use. `services: None` makes a state that
    /// can only be checked (the I/O globals then fail), as `ScriptSet::load` does.
    pub fn new(
        set: &ScriptSet,
        apis: &[Arc<ApiDefinition>],
        services: Option<Arc<Services>>,
    ) -> Result<Self, Vec<ScriptError>> {
        let limits = set.limits();
        let internal = |e: mlua::Error| {
            vec![ScriptError { file: PathBuf::from("<moongate>"), line: None, message: e.to_string() }]
        };
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::COROUTINE | StdLib::UTF8 | StdLib::OS,
            LuaOptions::default(),
        )
        .map_err(internal)?;
        let clock = Arc::new(Clock { epoch: Instant::now(), deadline: AtomicU64::new(0), reads: Mutex::new(None) });
        lua.set_app_data(HostContext {
            services,
            clock: clock.clone(),
            lifetimes: apis
                .iter()
                .map(|a| {
                    let l = ApiLifetime {
                        session_lifetime: a.session_lifetime,
                        respects_key_expiration: a.session_lifetime_respects_key_expiration,
                    };
                    (a.api_id.clone(), l)
                })
                .collect(),
            global: set.global,
        });
        sandbox(&lua).map_err(internal)?;
        crate::api::install(&lua).map_err(internal)?;
        let prelude: Table = lua.load(PRELUDE).set_name("@moongate/prelude.lua").call(()).map_err(internal)?;
        let globals = lua.globals();
        globals.raw_set("TykJS", prelude.get::<Table>("TykJS").map_err(internal)?).map_err(internal)?;
        let script_env: Function = prelude.get("script_env").map_err(internal)?;
        let call: Function = prelude.get("call").map_err(internal)?;
        let run_request: Function = prelude.get("run_request").map_err(internal)?;
        let headers_mt: Table = prelude.get("headers_mt").map_err(internal)?;
        let new_request: Function = prelude.get("new_request").map_err(internal)?;
        // json.encode(request) shows every field, including those the hook never touched.
        let json_t: Table = globals.get("json").map_err(internal)?;
        let encode = lua
            .load("local materialize, encode = ...\nreturn function(v) return encode(materialize(v)) end")
            .set_name("@moongate/json.lua")
            .call::<Function>((
                prelude.get::<Function>("materialize").map_err(internal)?,
                json_t.get::<Function>("encode").map_err(internal)?,
            ))
            .map_err(internal)?;
        json_t.raw_set("encode", encode).map_err(internal)?;

        let hook_clock = clock.clone();
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(10_000), move |_, _| {
            if hook_clock.past_deadline() { Err(mlua::Error::runtime(BUDGET_EXCEEDED)) } else { Ok(VmState::Continue) }
        })
        .map_err(internal)?;

        let mut rt = Self {
            lua,
            hooks: HashMap::new(),
            configs: HashMap::new(),
            call,
            run_request,
            new_request,
            headers_mt,
            clock,
            limits,
            poisoned: AtomicBool::new(false),
        };
        let mut errors = Vec::new();
        // Each script loads once, however many hooks name it; `None` remembers that it failed.
        let mut loaded: HashMap<PathBuf, Option<(Table, Option<Function>)>> = HashMap::new();
        for api in apis {
            let phases = [
                (Phase::Pre, &api.middleware.pre[..]),
                (Phase::AuthCheck, api.middleware.auth_check.as_slice()),
                (Phase::PostKeyAuth, &api.middleware.post_key_auth[..]),
                (Phase::Post, &api.middleware.post[..]),
                (Phase::Response, &api.middleware.response[..]),
            ];
            for (phase, hooks) in phases {
                for hook in hooks {
                    let script = loaded.entry(hook.path.clone()).or_insert_with(|| {
                        rt.load_script(set, &hook.path, &globals, &script_env).map_err(|e| errors.push(e)).ok()
                    });
                    let Some((shared, returned)) = script else { continue };
                    match resolve(shared, returned.as_ref(), hook, phase) {
                        Ok(f) => {
                            rt.hooks.entry(hook.path.clone()).or_default().insert(hook.name.clone(), f);
                        }
                        Err(message) => errors.push(ScriptError { file: hook.path.clone(), line: None, message }),
                    }
                }
            }
            let config = rt.config_table(api).map_err(internal)?;
            rt.configs.insert(api.api_id.clone(), config);
        }
        // Limit memory only now: the prelude and the scripts themselves always fit.
        rt.lua.set_memory_limit(limits.memory_limit_bytes.max(rt.lua.used_memory() + (1 << 20))).map_err(internal)?;
        if errors.is_empty() { Ok(rt) } else { Err(errors) }
    }

    /// True after a failure that may have left the state inconsistent (out of memory): the
    /// worker then builds a fresh one.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    fn load_script(
        &self,
        set: &ScriptSet,
        path: &Path,
        globals: &Table,
        script_env: &Function,
    ) -> Result<(Table, Option<Function>), ScriptError> {
        let script = set.get(path).ok_or_else(|| ScriptError {
            file: path.to_path_buf(),
            line: None,
            message: "script was not loaded".into(),
        })?;
        let fail = |e: mlua::Error| {
            let text = e.to_string();
            let line = error_line(&text, &script.display);
            // The position goes into the error's own fields; keep the message free of it.
            let mut message = clean(&text);
            if let Some(l) = line {
                message = message.replacen(&format!("{}:{l}: ", script.display), "", 1);
            }
            ScriptError { file: path.to_path_buf(), line, message }
        };
        let shared = self.lua.create_table().map_err(fail)?;
        let mt = self.lua.create_table().map_err(fail)?;
        mt.raw_set("__index", globals.clone()).map_err(fail)?;
        shared.set_metatable(Some(mt)).map_err(fail)?;
        let env: Table = script_env.call(shared.clone()).map_err(fail)?;
        shared.raw_set("_G", env.clone()).map_err(fail)?;
        let chunk = self
            .lua
            .load(&*script.source)
            .set_name(format!("@{}", script.display))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(env)
            .into_function()
            .map_err(fail)?;
        // A script's top level runs once, under the same time budget as a hook.
        self.clock.deadline.store(self.deadline_nanos(), Ordering::Relaxed);
        let result = chunk.call::<MultiValue>(());
        self.clock.deadline.store(0, Ordering::Relaxed);
        let returned = result.map_err(fail)?.into_iter().next().and_then(|v| match v {
            Value::Function(f) => Some(f),
            _ => None,
        });
        Ok((shared, returned))
    }

    fn config_table(&self, api: &ApiDefinition) -> mlua::Result<Table> {
        let t = self.lua.create_table()?;
        t.raw_set("OrgID", api.org_id.as_str())?;
        t.raw_set("APIID", api.api_id.as_str())?;
        if let Some(data) = &api.config_data {
            t.raw_set("config_data", self.lua.to_value(data)?)?;
        }
        Ok(t)
    }

    fn deadline_nanos(&self) -> u64 {
        (self.clock.epoch.elapsed() + self.limits.timeout).as_nanos() as u64
    }

    fn function(&self, hook: &HookSpec) -> Result<&Function, HookError> {
        self.hooks.get(&hook.path).and_then(|h| h.get(&hook.name)).ok_or_else(|| HookError::Failed {
            hook: hook.name.clone(),
            script: hook.display_path.clone(),
            message: "hook is not loaded in this generation".into(),
        })
    }

    fn session_value(&self, session: Option<&Session>) -> mlua::Result<Value> {
        match session {
            Some(s) => self.lua.to_value(s),
            None => self.lua.create_table().map(Value::Table),
        }
    }

    /// Runs a request hook (`pre`, `auth_check`, `post_key_auth`, `post`) and applies its edits.
    pub async fn run_request(
        &self,
        phase: Phase,
        hook: &HookSpec,
        api: &ApiDefinition,
        view: &mut RequestView<'_>,
        session: Option<&Session>,
        reads: Option<&Arc<SessionReads>>,
    ) -> Result<HookOutput, HookError> {
        let f = self.function(hook)?;
        let with_body = matches!(view.body, BodyState::Buffered(_));
        let fail = |e: mlua::Error| self.classify(hook, e);
        let fut = {
            let _conversions = self.unlimited();
            let (method, url, query, headers, body) =
                convert::request_args(&self.lua, view, with_body).map_err(fail)?;
            let session_value = match session.filter(|_| matches!(phase, Phase::PostKeyAuth | Phase::Post)) {
                Some(s) => self.lua.to_value(s).map_err(fail)?,
                None => Value::Nil,
            };
            let config = self.configs.get(&api.api_id).cloned();
            let args = (f.clone(), phase == Phase::AuthCheck, method, url, query, headers, body, session_value, config);
            self.run_request.call_async::<(Option<Table>, i64, Value, Value, Value)>(args)
        };
        let out = self.bounded(hook, reads, fut).await?;
        let _conversions = self.unlimited();
        self.read_request_result(phase, out, view, with_body).map_err(fail)
    }

    /// The request's headers and a body of at most `hooks.max_body_bytes` bound these conversions.
    fn unlimited(&self) -> Unlimited<'_> {
        Unlimited::new(&self.lua)
    }

    fn read_request_result(
        &self,
        phase: Phase,
        (request, changes, meta, session, auth_value): (Option<Table>, i64, Value, Value, Value),
        view: &mut RequestView<'_>,
        with_body: bool,
    ) -> mlua::Result<HookOutput> {
        let Some(request) = request else {
            return Err(mlua::Error::runtime("the hook returned no request object: return ReturnData(request, meta)"));
        };
        let auth_value = match auth_value {
            Value::String(s) => Some(s.to_string_lossy()),
            Value::Integer(i) => Some(i.to_string()),
            _ => None,
        };
        let overrides = convert::apply_request(&request, changes, view, with_body)?;
        let meta = read_meta(&meta)?;
        let auth = match (phase, session) {
            (Phase::AuthCheck, Value::Table(t)) => {
                let json: serde_json::Value = self.lua.from_value(Value::Table(t))?;
                let session: Session = serde_json::from_value(json).map_err(|e| {
                    mlua::Error::runtime(format!("the session returned by the auth hook is not a session: {e}"))
                })?;
                let key = auth_value.or_else(|| session.extra.get("key").and_then(|k| k.as_str()).map(str::to_owned));
                Some(AuthResult { key, session })
            }
            _ => None,
        };
        Ok(HookOutput { overrides, meta, auth })
    }

    /// Runs a response hook on a buffered upstream response.
    pub async fn run_response(
        &self,
        hook: &HookSpec,
        api: &ApiDefinition,
        response: &mut ResponseView<'_>,
        request: &mut RequestView<'_>,
        session: Option<&Session>,
    ) -> Result<ResponseOutput, HookError> {
        let f = self.function(hook)?;
        let fail = |e: mlua::Error| self.classify(hook, e);
        let resp_t = convert::response_table(&self.lua, response, &self.headers_mt).map_err(fail)?;
        let req_t = convert::request_table(&self.lua, &self.new_request, request, false).map_err(fail)?;
        let session_value = self.session_value(session.filter(|_| hook.require_session)).map_err(fail)?;
        let config = self.configs.get(&api.api_id).cloned();
        let fut = self.call.call_async::<MultiValue>((f.clone(), resp_t, req_t, session_value, config));
        let out = self.bounded(hook, None, fut).await?;
        let read = || -> mlua::Result<ResponseOutput> {
            let mut values = out.into_iter();
            let Some(Value::Table(first)) = values.next() else {
                return Err(mlua::Error::runtime(
                    "the response hook returned no response object: return ReturnResponseData(response, meta)",
                ));
            };
            let (resp, meta) = if first.contains_key("Response")? {
                (first.get::<Value>("Response")?, first.get::<Value>("SessionMeta")?)
            } else {
                (Value::Table(first), values.next().unwrap_or(Value::Nil))
            };
            let Value::Table(resp) = resp else {
                return Err(mlua::Error::runtime("the response hook returned no response object"));
            };
            convert::apply_response(&resp, response)?;
            Ok(ResponseOutput { meta: read_meta(&meta)? })
        };
        read().map_err(fail)
    }

    async fn bounded<T>(
        &self,
        hook: &HookSpec,
        reads: Option<&Arc<SessionReads>>,
        fut: impl Future<Output = mlua::Result<T>>,
    ) -> Result<T, HookError> {
        let guarded = Deadline { inner: Box::pin(fut), deadline: self.deadline_nanos(), clock: &self.clock, reads };
        match tokio::time::timeout(self.limits.timeout, guarded).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(hook, e)),
            Err(_) => Err(HookError::Timeout {
                hook: hook.name.clone(),
                script: hook.display_path.clone(),
                budget_ms: self.limits.timeout.as_millis(),
            }),
        }
    }

    fn classify(&self, hook: &HookSpec, e: mlua::Error) -> HookError {
        let (name, script) = (hook.name.clone(), hook.display_path.clone());
        let text = e.to_string();
        if text.contains(BUDGET_EXCEEDED) {
            return HookError::Timeout { hook: name, script, budget_ms: self.limits.timeout.as_millis() };
        }
        if matches!(e, mlua::Error::MemoryError(_)) || text.contains("not enough memory") {
            self.poisoned.store(true, Ordering::Relaxed);
            return HookError::Memory { hook: name, script };
        }
        HookError::Failed { hook: name, script, message: clean(&text) }
    }
}

/// Lifts the state's memory limit until it drops. While a limit is set, mlua wraps every value it
/// moves into or out of the state in a protected call, and those calls cost more than the rest of
/// a simple hook. The limit is there for what scripts allocate; Rust code lifts it only around
/// conversions whose size its input bounds, and no Lua code runs meanwhile.
pub(crate) struct Unlimited<'a> {
    lua: &'a Lua,
    limit: usize,
}

impl<'a> Unlimited<'a> {
    pub(crate) fn new(lua: &'a Lua) -> Self {
        let limit = lua.set_memory_limit(0).unwrap_or(0);
        Self { lua, limit }
    }
}

impl Drop for Unlimited<'_> {
    fn drop(&mut self) {
        let _ = self.lua.set_memory_limit(self.limit);
    }
}

/// Polls a hook with its deadline and session reads in the clock, so that the instruction hook
/// and the session functions know whose turn it is.
struct Deadline<'a, F> {
    inner: Pin<Box<F>>,
    deadline: u64,
    clock: &'a Clock,
    reads: Option<&'a Arc<SessionReads>>,
}

impl<F: Future> Future for Deadline<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.clock.deadline.store(self.deadline, Ordering::Relaxed);
        self.clock.set_reads(self.reads);
        let out = self.inner.as_mut().poll(cx);
        self.clock.set_reads(None);
        self.clock.deadline.store(0, Ordering::Relaxed);
        out
    }
}

/// Finds the function a middleware entry names: the Tyk-style global (`name = NewMiddleware(...)`
/// with `NewProcessRequest` / `NewProcessResponse`), or else the function the script returned.
fn resolve(shared: &Table, returned: Option<&Function>, hook: &HookSpec, phase: Phase) -> Result<Function, String> {
    let field = if phase == Phase::Response { "__process_response" } else { "__process_request" };
    let register = if phase == Phase::Response { "NewProcessResponse" } else { "NewProcessRequest" };
    match shared.raw_get::<Value>(hook.name.as_str()) {
        Ok(Value::Table(mw)) => match mw.raw_get::<Value>(field) {
            Ok(Value::Function(f)) => Ok(f),
            _ => Err(format!(
                "`{}` never called {register}: register the hook function with `{}:{register}(function(...) ... end)`",
                hook.name, hook.name
            )),
        },
        Ok(Value::Function(f)) => Ok(f),
        _ => match returned {
            Some(f) => Ok(f.clone()),
            None => Err(format!(
                "`{}` is not defined: define it with `{} = TykJS.TykMiddleware.NewMiddleware({{}})` or return a function from the script",
                hook.name, hook.name
            )),
        },
    }
}

/// `SessionMeta` must map names to strings (Tyk decodes it as string -> string).
fn read_meta(meta: &Value) -> mlua::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let Value::Table(t) = meta else { return Ok(None) };
    let mut out = serde_json::Map::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let k = k
            .as_string()
            .map(|s| s.to_string_lossy())
            .ok_or_else(|| mlua::Error::runtime("SessionMeta keys must be strings"))?;
        match v {
            Value::String(s) => {
                out.insert(k, serde_json::Value::String(s.to_string_lossy()));
            }
            other => {
                return Err(mlua::Error::runtime(format!(
                    "SessionMeta value for `{k}` is a {}, not a string",
                    other.type_name()
                )));
            }
        }
    }
    Ok(Some(out))
}

/// Removes what the user cannot act on: mlua's wrapping and the traceback.
fn clean(text: &str) -> String {
    let first = text.split("\nstack traceback:").next().unwrap_or(text);
    let first = first.trim_start_matches("runtime error: ").trim_start_matches("syntax error: ");
    first.lines().find(|l| !l.trim().is_empty() && !l.starts_with("callback error")).unwrap_or(first).trim().to_owned()
}

/// The line a Lua message points at in `display` (`my_auth.lua:12: ...`).
fn error_line(text: &str, display: &str) -> Option<usize> {
    let needle = format!("{display}:");
    let start = text.find(&needle)? + needle.len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The standard library minus everything that reaches outside the state: no io, no package or
/// require, no file loading, no bytecode, and an os table with only time functions.
fn sandbox(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    for name in ["dofile", "loadfile", "require", "module", "collectgarbage"] {
        g.raw_set(name, Value::Nil)?;
    }
    if let Ok(string) = g.get::<Table>("string") {
        string.raw_set("dump", Value::Nil)?;
    }
    if let Ok(os) = g.get::<Table>("os") {
        let safe = lua.create_table()?;
        for name in ["time", "clock", "date", "difftime"] {
            safe.raw_set(name, os.get::<Value>(name)?)?;
        }
        g.raw_set("os", safe)?;
    }
    // `load` only ever compiles text: precompiled bytecode can crash the VM.
    let load: Function = g.get("load")?;
    let text_only = lua.create_function(
        move |_, (chunk, name, _mode, env): (Value, Option<String>, Option<String>, Option<Value>)| {
            load.call::<MultiValue>((chunk, name, "t", env))
        },
    )?;
    g.raw_set("load", text_only)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines() {
        assert_eq!(error_line("runtime error: auth.lua:12: boom", "auth.lua"), Some(12));
        assert_eq!(error_line("syntax error: a/b.lua:3: unexpected symbol", "a/b.lua"), Some(3));
        assert_eq!(error_line("nothing", "x.lua"), None);
        assert_eq!(clean("runtime error: x.lua:1: boom\nstack traceback:\n\t[C]: in ?"), "x.lua:1: boom");
    }
}
