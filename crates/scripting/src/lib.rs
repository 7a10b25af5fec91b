//! Lua hooks with a Tyk-compatible API (Lua 5.4 through mlua).
//!
//! A [`ScriptSet`] holds the sources of one configuration generation and has checked that each
//! compiles and defines the hook it is named for. Each worker builds its own [`HookRuntime`] from it:
//! one sandboxed Lua state with memory and time limits, every script loaded once, and the Tyk
//! globals (`TykGetKeyData`, `TykMakeHttpRequest`, ...) wired to that worker's session store and
//! HTTP client. Hooks run as coroutines: a hook waiting on Redis or HTTP yields to the worker's
//! runtime instead of blocking it.

mod api;
mod convert;
mod runtime;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use moongate_config::{ApiDefinition, GlobalLifetime, HookLimits};

pub use api::error_chain;
pub use convert::{BodyState, Overrides, RequestView, ResponseView};
pub use runtime::{AuthResult, HookOutput, HookRuntime, Phase, ResponseOutput, Services, SessionReads};

/// A script that does not compile or does not provide its hook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ScriptError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// A hook that failed while handling a request. The request is answered 500.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook `{hook}` ({script}) failed: {message}")]
    Failed { hook: String, script: String, message: String },
    #[error("hook `{hook}` ({script}) ran past its budget of {budget_ms} ms")]
    Timeout { hook: String, script: String, budget_ms: u128 },
    #[error("hook `{hook}` ({script}) ran out of memory")]
    Memory { hook: String, script: String },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
}

/// The scripts of one generation, read and checked.
#[derive(Debug, Default)]
pub struct ScriptSet {
    sources: HashMap<PathBuf, Script>,
    /// APIs with a hook that reads the request body.
    body_apis: std::collections::HashSet<String>,
    limits: Option<HookLimits>,
    global: GlobalLifetime,
}

#[derive(Debug)]
struct Script {
    source: Arc<str>,
    display: String,
}

impl ScriptSet {
    /// Reads every script the APIs reference and loads them all in a scratch state, so that a
    /// syntax error, a runtime error at load, or a missing hook global is found now, not on a request.
    pub fn load(
        apis: &[Arc<ApiDefinition>],
        limits: HookLimits,
        global: GlobalLifetime,
    ) -> Result<Self, Vec<ScriptError>> {
        let mut sources = HashMap::new();
        let mut errors = Vec::new();
        for hook in apis.iter().flat_map(|a| a.middleware.all()) {
            if sources.contains_key(&hook.path) {
                continue;
            }
            match std::fs::read_to_string(&hook.path) {
                Ok(text) => {
                    sources
                        .insert(hook.path.clone(), Script { source: text.into(), display: hook.display_path.clone() });
                }
                Err(e) => errors.push(ScriptError {
                    file: hook.path.clone(),
                    line: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut set = Self { sources, body_apis: Default::default(), limits: Some(limits), global };
        set.body_apis = apis
            .iter()
            .filter(|a| {
                a.middleware
                    .all()
                    .any(|h| h.needs_body || set.get(&h.path).is_some_and(|s| mentions_request_body(&s.source)))
            })
            .map(|a| a.api_id.clone())
            .collect();
        if !set.sources.is_empty() {
            HookRuntime::new(&set, apis, None)?;
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn get(&self, path: &Path) -> Option<&Script> {
        self.sources.get(path)
    }

    fn limits(&self) -> HookLimits {
        self.limits.unwrap_or(HookLimits {
            timeout: std::time::Duration::from_secs(1),
            memory_limit_bytes: 64 << 20,
            max_body_bytes: 10 << 20,
        })
    }

    /// Whether a hook of this API reads `request.Body` (declared with `needs_body`, or seen in
    /// its source), so the body must be read before the hooks run.
    pub fn needs_body(&self, api_id: &str) -> bool {
        self.body_apis.contains(api_id)
    }
}

/// `Body` used as a field other than `ResponseBody`: the script reads or writes the request body.
fn mentions_request_body(source: &str) -> bool {
    source.match_indices("Body").any(|(i, _)| !source[..i].ends_with("Response") && !source[..i].ends_with("Ignore"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_detection() {
        assert!(super::mentions_request_body("local b = request.Body"));
        assert!(!super::mentions_request_body("request.ReturnOverrides.ResponseBody = 'x'; request.IgnoreBody = true"));
    }
}
