//! Moongate's configuration: `gateway.yaml` plus one YAML file per API, read into raw serde structs
//! (`raw`), then validated into an immutable [`Snapshot`] that the request path reads.
//!
//! Loading never stops at the first problem: every error of every file is collected, each naming its
//! file and, where it has one, its line and column. This crate does no network I/O.

mod env;
mod error;
pub mod raw;
mod validate;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use env::{ENV_SETTINGS, EnvSetting};
pub use error::{ConfigError, ConfigErrors};
pub use validate::{load_apis, load_gateway, load_gateway_with_env};
pub use watch::{ConfigWatch, WatchPaths, fingerprint, watch};

impl GatewayConfig {
    /// Settings that only take effect at start (sockets, threads, the store, logging, watching):
    /// a reload keeps the running values and names each one that changed on disk.
    pub fn keep_restart_only(&mut self, running: &GatewayConfig) -> Vec<String> {
        let mut changed = Vec::new();
        macro_rules! keep {
            ($($field:ident).+, $name:literal) => {
                if self.$($field).+ != running.$($field).+ {
                    changed.push(format!("{}: {:?} -> {:?} (restart required)", $name, running.$($field).+, self.$($field).+));
                    self.$($field).+ = running.$($field).+.clone();
                }
            };
        }
        keep!(listen, "listen");
        keep!(workers, "workers");
        keep!(admin_listen, "admin.listen");
        keep!(storage, "storage");
        keep!(apis_dir, "apis_dir");
        keep!(scripts_dir, "scripts_dir");
        keep!(hash_keys, "hash_keys");
        keep!(watch, "watch");
        keep!(log, "log");
        keep!(upstream.connect_timeout, "upstream.connect_timeout_ms");
        keep!(upstream.idle_timeout, "upstream.idle_timeout_ms");
        keep!(upstream.max_idle_per_host, "upstream.max_idle_per_host");
        keep!(header_read_timeout, "server.header_read_timeout_ms");
        keep!(shutdown_timeout, "server.shutdown_timeout_ms");
        changed
    }
}

/// JSON Schemas of `gateway.yaml` and of an API file, generated from the types the loader uses.
pub fn schemas() -> serde_json::Value {
    serde_json::json!({
        "gateway": schemars::schema_for!(raw::RawGateway),
        "api": schemars::schema_for!(raw::RawApi),
    })
}

/// Everything one configuration generation is made of.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub gateway: Arc<GatewayConfig>,
    pub apis: Vec<Arc<ApiDefinition>>,
}

/// Loads `gateway.yaml` (with `MOONGATE_*` environment overrides) and every API file it points to.
pub fn load(gateway_file: &Path) -> Result<Snapshot, ConfigErrors> {
    let gateway = Arc::new(load_gateway(gateway_file)?);
    let apis = load_apis(&gateway)?;
    Ok(Snapshot { gateway, apis })
}

/// Process settings from `gateway.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// The file these settings came from.
    pub source: PathBuf,
    pub listen: SocketAddr,
    /// Resolved: never 0.
    pub workers: usize,
    pub admin_listen: SocketAddr,
    /// `None` when no secret is configured: the key endpoints then refuse every call.
    pub admin_secret: Option<String>,
    pub storage: StorageConfig,
    pub apis_dir: PathBuf,
    pub scripts_dir: PathBuf,
    pub hash_keys: bool,
    pub enable_hashed_keys_listing: bool,
    pub lifetime: GlobalLifetime,
    pub hooks: HookLimits,
    pub watch: WatchConfig,
    pub log: LogConfig,
    pub upstream: UpstreamConfig,
    pub header_read_timeout: Duration,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Memory,
    /// `password`, when set, comes from `storage.redis_password_file` and replaces any in the URL.
    Redis {
        url: String,
        password: Option<String>,
        timeout: Duration,
        pool_size: u32,
    },
}

/// The gateway-wide inputs of Tyk's session lifetime rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalLifetime {
    pub global_session_lifetime: i64,
    pub force_global_session_lifetime: bool,
    pub respects_key_expiration: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookLimits {
    pub timeout: Duration,
    pub memory_limit_bytes: usize,
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    pub enabled: bool,
    pub debounce: Duration,
    /// `Some`: poll at this interval instead of using file system events.
    pub poll_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
}

/// One validated API definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiDefinition {
    /// The file this API came from.
    pub source: PathBuf,
    pub api_id: String,
    pub name: String,
    pub org_id: String,
    pub keyless: bool,
    pub auth: AuthConfig,
    pub strip_auth_data: bool,
    /// Starts with `/`.
    pub listen_path: String,
    pub target: Target,
    pub strip_listen_path: bool,
    pub preserve_host_header: bool,
    pub session_lifetime: i64,
    pub session_lifetime_respects_key_expiration: bool,
    /// `None` when `config_data_disabled`.
    pub config_data: Option<serde_json::Value>,
    pub middleware: Middleware,
    /// Set on every upstream request, after `global_headers_remove`.
    pub global_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub global_headers_remove: Vec<http::HeaderName>,
}

/// Where a token is read from, in Tyk's precedence: header, then a non-empty query parameter, then a
/// non-empty cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub header_name: http::HeaderName,
    pub param_name: Option<String>,
    pub cookie_name: Option<String>,
}

/// The upstream of an API: scheme and authority, plus a path prefix without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// The Host header the upstream gets (unless the API preserves the client's).
    pub host: http::HeaderValue,
    pub base_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Middleware {
    pub pre: Vec<HookSpec>,
    pub auth_check: Option<HookSpec>,
    pub post_key_auth: Vec<HookSpec>,
    pub post: Vec<HookSpec>,
    pub response: Vec<HookSpec>,
}

impl Middleware {
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty()
            && self.auth_check.is_none()
            && self.post_key_auth.is_empty()
            && self.post.is_empty()
            && self.response.is_empty()
    }

    /// Every hook, in pipeline order.
    pub fn all(&self) -> impl Iterator<Item = &HookSpec> {
        self.pre
            .iter()
            .chain(self.auth_check.iter())
            .chain(self.post_key_auth.iter())
            .chain(self.post.iter())
            .chain(self.response.iter())
    }
}

/// A middleware entry: a Lua script and the global (or returned function) it provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub name: String,
    /// Absolute path of the script.
    pub path: PathBuf,
    /// The path as written, relative to `scripts_dir`; used in messages (`my_auth.lua:12: ...`).
    pub display_path: String,
    pub require_session: bool,
    pub needs_body: bool,
}
