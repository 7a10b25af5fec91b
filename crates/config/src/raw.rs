//! The configuration exactly as users write it: serde structs that reject unknown fields.
//! Nothing here is checked beyond its YAML type; `validate` turns these into a `Snapshot`.

use schemars::JsonSchema;
use serde::Deserialize;

fn yes() -> bool {
    true
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default = "default_apis_dir")]
    pub apis_dir: String,
    #[serde(default = "default_scripts_dir")]
    pub scripts_dir: String,
    #[serde(default = "yes")]
    pub hash_keys: bool,
    #[serde(default)]
    pub enable_hashed_keys_listing: bool,
    #[serde(default)]
    pub global_session_lifetime: i64,
    #[serde(default)]
    pub force_global_session_lifetime: bool,
    #[serde(default)]
    pub session_lifetime_respects_key_expiration: bool,
    #[serde(default)]
    pub hooks: RawHooks,
    #[serde(default)]
    pub watch: RawWatch,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub server: RawServer,
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_apis_dir() -> String {
    "apis".into()
}
fn default_scripts_dir() -> String {
    "../scripts".into()
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    #[serde(default)]
    pub secret: Option<String>,
    /// A file whose first line is the secret (a mounted Kubernetes or Docker secret).
    #[serde(default)]
    pub secret_file: Option<String>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:9696".into()
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self { listen: default_admin_listen(), secret: None, secret_file: None }
    }
}

#[derive(Debug, JsonSchema, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawBackend {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    #[serde(default)]
    pub backend: RawBackend,
    #[serde(default)]
    pub redis_url: Option<String>,
    /// A file whose first line is the Redis password (kept out of the URL and the YAML).
    #[serde(default)]
    pub redis_password_file: Option<String>,
    #[serde(default = "default_store_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

fn default_store_timeout() -> u64 {
    500
}
fn default_pool_size() -> u32 {
    8
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            backend: RawBackend::Memory,
            redis_url: None,
            redis_password_file: None,
            timeout_ms: default_store_timeout(),
            pool_size: default_pool_size(),
        }
    }
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    #[serde(default = "default_hook_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_hook_memory")]
    pub memory_limit_mb: u64,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
}

fn default_hook_timeout() -> u64 {
    1000
}
fn default_hook_memory() -> u64 {
    64
}
fn default_max_body() -> u64 {
    10 << 20
}

impl Default for RawHooks {
    fn default() -> Self {
        Self {
            timeout_ms: default_hook_timeout(),
            memory_limit_mb: default_hook_memory(),
            max_body_bytes: default_max_body(),
        }
    }
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_debounce")]
    pub debounce_ms: u64,
    #[serde(default)]
    pub poll_interval_ms: u64,
}

fn default_debounce() -> u64 {
    200
}

impl Default for RawWatch {
    fn default() -> Self {
        Self { enabled: true, debounce_ms: default_debounce(), poll_interval_ms: 0 }
    }
}

#[derive(Debug, JsonSchema, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawLogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default)]
    pub format: RawLogFormat,
    #[serde(default = "default_level")]
    pub level: String,
    /// One line per request (api_id, method, path, status, latency).
    #[serde(default = "yes")]
    pub access_log: bool,
}

fn default_level() -> String {
    "info".into()
}

impl Default for RawLog {
    fn default() -> Self {
        Self { format: RawLogFormat::Pretty, level: default_level(), access_log: true }
    }
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_upstream_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_max_idle")]
    pub max_idle_per_host: usize,
}

fn default_connect_timeout() -> u64 {
    2000
}
fn default_upstream_timeout() -> u64 {
    30_000
}
fn default_idle_timeout() -> u64 {
    30_000
}
fn default_max_idle() -> usize {
    256
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout_ms: default_connect_timeout(),
            timeout_ms: default_upstream_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_idle_per_host: default_max_idle(),
        }
    }
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// How long a client may take to send a request's headers (slowloris guard).
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_ms: u64,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_ms: u64,
}

fn default_header_timeout() -> u64 {
    10_000
}
fn default_shutdown() -> u64 {
    10_000
}

impl Default for RawServer {
    fn default() -> Self {
        Self { header_read_timeout_ms: default_header_timeout(), shutdown_timeout_ms: default_shutdown() }
    }
}

/// One API definition file.
#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub api_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub use_keyless: bool,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub strip_auth_data: bool,
    pub proxy: RawProxy,
    #[serde(default)]
    pub session_lifetime: i64,
    #[serde(default)]
    pub session_lifetime_respects_key_expiration: bool,
    #[serde(default)]
    pub config_data: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub config_data_disabled: bool,
    #[serde(default)]
    pub custom_middleware: RawMiddleware,
    /// Headers set on every request sent upstream (Tyk's `global_headers`).
    #[serde(default)]
    pub global_headers: std::collections::BTreeMap<String, String>,
    /// Headers removed from every request sent upstream (Tyk's `global_headers_remove`).
    #[serde(default)]
    pub global_headers_remove: Vec<String>,
}

#[derive(Debug, JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub auth_header_name: Option<String>,
    #[serde(default)]
    pub use_param: bool,
    #[serde(default)]
    pub param_name: Option<String>,
    #[serde(default)]
    pub use_cookie: bool,
    #[serde(default)]
    pub cookie_name: Option<String>,
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub listen_path: String,
    pub target_url: String,
    #[serde(default)]
    pub strip_listen_path: bool,
    #[serde(default)]
    pub preserve_host_header: bool,
}

#[derive(Debug, JsonSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMiddleware {
    /// Accepted for Tyk compatibility; moongate hooks are always Lua.
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub pre: Vec<RawHook>,
    #[serde(default)]
    pub auth_check: Option<RawHook>,
    #[serde(default)]
    pub post_key_auth: Vec<RawHook>,
    #[serde(default)]
    pub post: Vec<RawHook>,
    #[serde(default)]
    pub response: Vec<RawHook>,
}

#[derive(Debug, JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub require_session: bool,
    #[serde(default)]
    pub disabled: bool,
    /// The hook reads `request.Body`: the body is buffered before the hook runs.
    #[serde(default)]
    pub needs_body: bool,
}
