//! Raw structs to validated types: resolve paths, parse addresses and URLs, check the set of APIs
//! (unique ids and listen paths, scripts that exist), and give every error its file and position.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::raw::{RawApi, RawBackend, RawGateway, RawHook, RawLogFormat};
use crate::{
    ApiDefinition, AuthConfig, ConfigError, ConfigErrors, GatewayConfig, GlobalLifetime, HookLimits, HookSpec,
    LogConfig, LogFormat, Middleware, StorageConfig, Target, UpstreamConfig, WatchConfig,
};

/// Reads `gateway.yaml` with the process environment's `MOONGATE_*` overrides.
pub fn load_gateway(path: &Path) -> Result<GatewayConfig, ConfigErrors> {
    load_gateway_with_env(path, &|name| std::env::var(name).ok())
}

/// Reads `gateway.yaml`, with overrides looked up by `env` (tests pass their own).
pub fn load_gateway_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<GatewayConfig, ConfigErrors> {
    let text = read(path)?;
    // Parse the file alone first, so that its own mistakes carry line and column.
    let raw: RawGateway = parse_yaml(path, &text)?;
    let raw = {
        let mut doc: serde_yaml::Value = parse_yaml(path, &text)?;
        let applied = crate::env::apply(&mut doc, env)
            .map_err(|errs| ConfigErrors(errs.into_iter().map(|m| ConfigError::new(path, None, m)).collect()))?;
        if applied.is_empty() {
            raw
        } else {
            serde_yaml::from_value::<RawGateway>(doc).map_err(|e| {
                ConfigError::new(path, None, format!("after environment overrides ({}): {e}", applied.join(", ")))
            })?
        }
    };
    gateway_from_raw(path, &text, raw)
}

fn gateway_from_raw(path: &Path, text: &str, raw: RawGateway) -> Result<GatewayConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let at = |key: &str| locate(text, key);
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();

    let listen = parse_addr(&raw.listen).unwrap_or_else(|m| {
        errors.push(ConfigError::new(path, at("listen"), format!("listen: {m}")));
        SocketAddr::from(([0, 0, 0, 0], 8080))
    });
    let admin_listen = parse_addr(&raw.admin.listen).unwrap_or_else(|m| {
        errors.push(ConfigError::new(path, at("admin"), format!("admin.listen: {m}")));
        SocketAddr::from(([127, 0, 0, 1], 9696))
    });
    let admin_secret = match (&raw.admin.secret, &raw.admin.secret_file) {
        (Some(s), _) if !s.is_empty() => Some(s.clone()),
        (_, Some(file)) if !file.is_empty() => match std::fs::read_to_string(base.join(file)) {
            Ok(s) => Some(s.lines().next().unwrap_or_default().trim().to_owned()).filter(|s| !s.is_empty()),
            Err(e) => {
                errors.push(ConfigError::new(path, at("secret_file"), format!("admin.secret_file {file}: {e}")));
                None
            }
        },
        _ => None,
    };
    let storage = match raw.storage.backend {
        RawBackend::Memory => StorageConfig::Memory,
        RawBackend::Redis => match raw.storage.redis_url.as_deref() {
            Some(url)
                if url.starts_with("redis://") || url.starts_with("unix://") || url.starts_with("redis+unix://") =>
            {
                let password = match raw.storage.redis_password_file.as_deref().filter(|f| !f.is_empty()) {
                    None => None,
                    Some(file) => match std::fs::read_to_string(base.join(file)) {
                        Ok(s) => Some(s.lines().next().unwrap_or_default().trim().to_owned()),
                        Err(e) => {
                            errors.push(ConfigError::new(
                                path,
                                at("redis_password_file"),
                                format!("storage.redis_password_file {file}: {e}"),
                            ));
                            None
                        }
                    },
                };
                StorageConfig::Redis {
                    url: url.to_owned(),
                    password,
                    timeout: Duration::from_millis(raw.storage.timeout_ms.max(1)),
                    pool_size: raw.storage.pool_size.max(1),
                }
            }
            Some(url) => {
                errors.push(ConfigError::new(
                    path,
                    at("redis_url"),
                    format!("storage.redis_url `{url}` must start with redis:// or unix://"),
                ));
                StorageConfig::Memory
            }
            None => {
                errors.push(ConfigError::new(path, at("storage"), "storage.backend redis needs storage.redis_url"));
                StorageConfig::Memory
            }
        },
    };
    let workers =
        if raw.workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { raw.workers };
    let apis_dir = base.join(&raw.apis_dir);
    let scripts_dir = base.join(&raw.scripts_dir);
    if !apis_dir.is_dir() {
        errors.push(ConfigError::new(
            path,
            at("apis_dir"),
            format!("apis_dir {} is not a directory", apis_dir.display()),
        ));
    }
    if errors.is_empty() {
        Ok(GatewayConfig {
            source: path.to_path_buf(),
            listen,
            workers,
            admin_listen,
            admin_secret,
            storage,
            apis_dir,
            scripts_dir,
            hash_keys: raw.hash_keys,
            enable_hashed_keys_listing: raw.enable_hashed_keys_listing,
            lifetime: GlobalLifetime {
                global_session_lifetime: raw.global_session_lifetime,
                force_global_session_lifetime: raw.force_global_session_lifetime,
                respects_key_expiration: raw.session_lifetime_respects_key_expiration,
            },
            hooks: HookLimits {
                timeout: Duration::from_millis(raw.hooks.timeout_ms.max(1)),
                memory_limit_bytes: usize::try_from(raw.hooks.memory_limit_mb.max(1) << 20).unwrap_or(usize::MAX),
                max_body_bytes: raw.hooks.max_body_bytes,
            },
            watch: WatchConfig {
                enabled: raw.watch.enabled,
                debounce: Duration::from_millis(raw.watch.debounce_ms),
                poll_interval: (raw.watch.poll_interval_ms > 0)
                    .then(|| Duration::from_millis(raw.watch.poll_interval_ms)),
            },
            log: LogConfig {
                format: match raw.log.format {
                    RawLogFormat::Pretty => LogFormat::Pretty,
                    RawLogFormat::Json => LogFormat::Json,
                },
                level: raw.log.level,
                access_log: raw.log.access_log,
            },
            upstream: UpstreamConfig {
                connect_timeout: Duration::from_millis(raw.upstream.connect_timeout_ms.max(1)),
                timeout: Duration::from_millis(raw.upstream.timeout_ms.max(1)),
                idle_timeout: Duration::from_millis(raw.upstream.idle_timeout_ms),
                max_idle_per_host: raw.upstream.max_idle_per_host,
            },
            header_read_timeout: Duration::from_millis(raw.server.header_read_timeout_ms.max(1)),
            shutdown_timeout: Duration::from_millis(raw.server.shutdown_timeout_ms),
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Reads every `*.yaml` / `*.yml` file of `apis_dir` (hidden files and folders, such as Kubernetes'
/// `..data`, are skipped) and validates them as one set.
pub fn load_apis(gateway: &GatewayConfig) -> Result<Vec<Arc<ApiDefinition>>, ConfigErrors> {
    let dir = &gateway.apis_dir;
    let entries =
        std::fs::read_dir(dir).map_err(|e| ConfigError::new(dir, None, format!("cannot read apis_dir: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml")) && p.is_file()
        })
        .collect();
    files.sort();

    let mut errors = Vec::new();
    let mut apis: Vec<Arc<ApiDefinition>> = Vec::new();
    let mut ids: HashMap<String, PathBuf> = HashMap::new();
    let mut paths: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let text = match read(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        let raw: RawApi = match parse_yaml(&file, &text) {
            Ok(r) => r,
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        match api_from_raw(&file, &text, raw, gateway) {
            Ok(api) => {
                if let Some(other) = ids.get(&api.api_id) {
                    errors.push(ConfigError::new(
                        &file,
                        locate(&text, "api_id"),
                        format!("duplicate api_id `{}` (also in {})", api.api_id, other.display()),
                    ));
                    continue;
                }
                if let Some(other) = paths.get(&api.listen_path) {
                    errors.push(ConfigError::new(
                        &file,
                        locate(&text, "listen_path"),
                        format!("duplicate listen_path `{}` (also in {})", api.listen_path, other.display()),
                    ));
                    continue;
                }
                ids.insert(api.api_id.clone(), file.clone());
                paths.insert(api.listen_path.clone(), file.clone());
                apis.push(Arc::new(api));
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(apis) } else { Err(ConfigErrors(errors)) }
}

fn api_from_raw(
    file: &Path,
    text: &str,
    raw: RawApi,
    gateway: &GatewayConfig,
) -> Result<ApiDefinition, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut err = |key: &str, msg: String| errors.push(ConfigError::new(file, locate(text, key), msg));

    if raw.api_id.trim().is_empty() {
        err("api_id", "api_id must not be empty".into());
    }
    let listen_path = raw.proxy.listen_path.clone();
    if !listen_path.starts_with('/') || listen_path.chars().any(char::is_whitespace) {
        err("listen_path", format!("listen_path `{listen_path}` must start with `/` and contain no spaces"));
    }
    let target = match parse_target(&raw.proxy.target_url) {
        Ok(t) => Some(t),
        Err(m) => {
            err("target_url", m);
            None
        }
    };
    let header = raw.auth.auth_header_name.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| "Authorization".into());
    let header_name = match http::HeaderName::from_bytes(header.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            err("auth_header_name", format!("auth_header_name `{header}` is not a valid header name"));
            None
        }
    };
    let param_name = raw
        .auth
        .use_param
        .then(|| raw.auth.param_name.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| header.clone()));
    let cookie_name = raw
        .auth
        .use_cookie
        .then(|| raw.auth.cookie_name.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| header.clone()));
    if let Some(driver) = raw.custom_middleware.driver.as_deref()
        && !matches!(driver, "" | "lua")
    {
        err(
            "driver",
            format!(
                "custom_middleware.driver `{driver}` is not supported: moongate hooks are Lua (use `lua` or leave it out)"
            ),
        );
    }

    let mut global_headers = Vec::new();
    for (name, value) in &raw.global_headers {
        match (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => global_headers.push((n, v)),
            _ => err("global_headers", format!("global_headers: `{name}: {value}` is not a valid header")),
        }
    }
    let mut global_headers_remove = Vec::new();
    for name in &raw.global_headers_remove {
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => global_headers_remove.push(n),
            Err(_) => {
                err("global_headers_remove", format!("global_headers_remove: `{name}` is not a valid header name"))
            }
        }
    }
    let scripts_dir = &gateway.scripts_dir;
    let mut hook = |h: &RawHook, phase: &str| -> Option<HookSpec> {
        if h.disabled {
            return None;
        }
        let mut bad = |msg: String| errors.push(ConfigError::new(file, locate_value(text, &h.path), msg));
        if h.name.trim().is_empty() {
            bad(format!("custom_middleware.{phase}: a hook needs a name"));
            return None;
        }
        let rel = Path::new(&h.path);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            bad(format!(
                "custom_middleware.{phase} `{}`: path must be relative to scripts_dir and stay inside it",
                h.path
            ));
            return None;
        }
        let path = scripts_dir.join(rel);
        if !path.is_file() {
            bad(format!("custom_middleware.{phase} `{}`: script {} not found", h.name, path.display()));
            return None;
        }
        Some(HookSpec {
            name: h.name.clone(),
            path,
            display_path: h.path.clone(),
            require_session: h.require_session,
            needs_body: h.needs_body,
        })
    };
    let mw = &raw.custom_middleware;
    let middleware = Middleware {
        pre: mw.pre.iter().filter_map(|h| hook(h, "pre")).collect(),
        auth_check: mw.auth_check.as_ref().and_then(|h| hook(h, "auth_check")),
        post_key_auth: mw.post_key_auth.iter().filter_map(|h| hook(h, "post_key_auth")).collect(),
        post: mw.post.iter().filter_map(|h| hook(h, "post")).collect(),
        response: mw.response.iter().filter_map(|h| hook(h, "response")).collect(),
    };

    match (target, header_name) {
        (Some(target), Some(header_name)) if errors.is_empty() => Ok(ApiDefinition {
            source: file.to_path_buf(),
            name: if raw.name.is_empty() { raw.api_id.clone() } else { raw.name },
            api_id: raw.api_id,
            org_id: raw.org_id,
            keyless: raw.use_keyless,
            auth: AuthConfig { header_name, param_name, cookie_name },
            strip_auth_data: raw.strip_auth_data,
            listen_path,
            target,
            strip_listen_path: raw.proxy.strip_listen_path,
            preserve_host_header: raw.proxy.preserve_host_header,
            session_lifetime: raw.session_lifetime,
            session_lifetime_respects_key_expiration: raw.session_lifetime_respects_key_expiration,
            config_data: (!raw.config_data_disabled).then_some(serde_json::Value::Object(raw.config_data)),
            middleware,
            global_headers,
            global_headers_remove,
        }),
        _ => Err(errors),
    }
}

fn parse_target(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("target_url `{url}` is not a valid URL: {e}"))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| format!("target_url `{url}` needs a scheme (http://)"))?;
    if scheme != http::uri::Scheme::HTTP {
        return Err(format!("target_url `{url}`: only http:// upstreams are supported"));
    }
    let authority = uri.authority().cloned().ok_or_else(|| format!("target_url `{url}` needs a host"))?;
    if uri.query().is_some() {
        return Err(format!("target_url `{url}` must not have a query string"));
    }
    let host = http::HeaderValue::from_str(authority.as_str())
        .map_err(|e| format!("target_url `{url}`: the host is not a valid Host header: {e}"))?;
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(Target { scheme, authority, host, base_path })
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("`{s}` is not an address like 0.0.0.0:8080"))
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, None, format!("cannot read: {e}")).into())
}

fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigErrors> {
    serde_yaml::from_str(text).map_err(|e| {
        let position = e.location().map(|l| (l.line(), l.column()));
        let mut message = e.to_string();
        // The position is printed by ConfigError; drop serde_yaml's own copy of it.
        if let Some((line, col)) = position {
            message = message.replacen(&format!(" at line {line} column {col}"), "", 1);
        }
        if text.trim().is_empty() {
            message = "the file is empty".into();
        }
        ConfigError::new(path, position, message).into()
    })
}

/// Line and column of the first `key:` in `text`, for errors found after parsing.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let mut from = 0;
        while let Some(off) = line[from..].find(key) {
            let col = from + off;
            let before_ok =
                col == 0 || !line.as_bytes()[col - 1].is_ascii_alphanumeric() && line.as_bytes()[col - 1] != b'_';
            let rest = line[col + key.len()..].trim_start_matches(['"', '\'']);
            if before_ok && rest.trim_start().starts_with(':') {
                return Some((i + 1, col + 1));
            }
            from = col + key.len();
        }
        None
    })
}

/// Line and column of the first occurrence of a value, for errors about a list entry.
fn locate_value(text: &str, value: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| line.find(value).map(|c| (i + 1, c + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_keys_not_substrings() {
        let text = "api_id: a\nproxy:\n  my_listen_path: x\n  listen_path: /a/\n";
        assert_eq!(locate(text, "listen_path"), Some((4, 3)));
        assert_eq!(locate(text, "api_id"), Some((1, 1)));
        assert_eq!(locate(text, "nope"), None);
    }

    #[test]
    fn targets_keep_their_base_path() {
        let t = parse_target("http://127.0.0.1:9000/base/").expect("valid");
        assert_eq!(t.authority.as_str(), "127.0.0.1:9000");
        assert_eq!(t.base_path, "/base");
        assert!(parse_target("https://x").is_err());
        assert!(parse_target("x y").is_err());
        assert!(parse_target("/relative").is_err());
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn environment_overrides_win_and_keep_secrets_as_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("apis")).expect("dir");
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, "listen: \"127.0.0.1:1\"\nworkers: 1\nadmin: { secret: from-file }\n").expect("write");
        let env = |name: &str| match name {
            "MOONGATE_ADMIN_SECRET" => Some("12345".to_owned()),
            "MOONGATE_WORKERS" => Some("3".to_owned()),
            "MOONGATE_HOOKS_TIMEOUT_MS" => Some("250".to_owned()),
            _ => None,
        };
        let gw = load_gateway_with_env(&file, &env).expect("valid");
        assert_eq!(gw.admin_secret.as_deref(), Some("12345"), "a numeric-looking secret stays text");
        assert_eq!(gw.workers, 3);
        assert_eq!(gw.hooks.timeout, Duration::from_millis(250));
        assert_eq!(gw.listen.port(), 1, "unset variables leave the file's value");

        let bad = |name: &str| (name == "MOONGATE_WORKERS").then(|| "many".to_owned());
        let err = load_gateway_with_env(&file, &bad).expect_err("invalid").to_string();
        assert!(err.contains("MOONGATE_WORKERS"), "{err}");
    }
}
