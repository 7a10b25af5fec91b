//! `MOONGATE_*` environment variables: each overrides one `gateway.yaml` setting (the variable wins).
//! Values are read as YAML scalars, so `true`, `8` and `redis` mean what they mean in the file.

/// One environment variable and the `gateway.yaml` path it sets.
#[derive(Debug, Clone, Copy)]
pub struct EnvSetting {
    pub var: &'static str,
    pub path: &'static [&'static str],
}

macro_rules! settings {
    ($($var:literal => [$($seg:literal),+]),+ $(,)?) => {
        &[$(EnvSetting { var: $var, path: &[$($seg),+] }),+]
    };
}

/// Every setting of `gateway.yaml`, by environment variable.
pub const ENV_SETTINGS: &[EnvSetting] = settings![
    "MOONGATE_LISTEN" => ["listen"],
    "MOONGATE_WORKERS" => ["workers"],
    "MOONGATE_ADMIN_LISTEN" => ["admin", "listen"],
    "MOONGATE_ADMIN_SECRET" => ["admin", "secret"],
    "MOONGATE_ADMIN_SECRET_FILE" => ["admin", "secret_file"],
    "MOONGATE_STORAGE_BACKEND" => ["storage", "backend"],
    "MOONGATE_STORAGE_REDIS_URL" => ["storage", "redis_url"],
    "MOONGATE_STORAGE_REDIS_PASSWORD_FILE" => ["storage", "redis_password_file"],
    "MOONGATE_STORAGE_TIMEOUT_MS" => ["storage", "timeout_ms"],
    "MOONGATE_STORAGE_POOL_SIZE" => ["storage", "pool_size"],
    "MOONGATE_APIS_DIR" => ["apis_dir"],
    "MOONGATE_SCRIPTS_DIR" => ["scripts_dir"],
    "MOONGATE_HASH_KEYS" => ["hash_keys"],
    "MOONGATE_ENABLE_HASHED_KEYS_LISTING" => ["enable_hashed_keys_listing"],
    "MOONGATE_GLOBAL_SESSION_LIFETIME" => ["global_session_lifetime"],
    "MOONGATE_FORCE_GLOBAL_SESSION_LIFETIME" => ["force_global_session_lifetime"],
    "MOONGATE_SESSION_LIFETIME_RESPECTS_KEY_EXPIRATION" => ["session_lifetime_respects_key_expiration"],
    "MOONGATE_HOOKS_TIMEOUT_MS" => ["hooks", "timeout_ms"],
    "MOONGATE_HOOKS_MEMORY_LIMIT_MB" => ["hooks", "memory_limit_mb"],
    "MOONGATE_HOOKS_MAX_BODY_BYTES" => ["hooks", "max_body_bytes"],
    "MOONGATE_WATCH_ENABLED" => ["watch", "enabled"],
    "MOONGATE_WATCH_DEBOUNCE_MS" => ["watch", "debounce_ms"],
    "MOONGATE_WATCH_POLL_INTERVAL_MS" => ["watch", "poll_interval_ms"],
    "MOONGATE_LOG_FORMAT" => ["log", "format"],
    "MOONGATE_LOG_LEVEL" => ["log", "level"],
    "MOONGATE_LOG_ACCESS_LOG" => ["log", "access_log"],
    "MOONGATE_UPSTREAM_CONNECT_TIMEOUT_MS" => ["upstream", "connect_timeout_ms"],
    "MOONGATE_UPSTREAM_TIMEOUT_MS" => ["upstream", "timeout_ms"],
    "MOONGATE_UPSTREAM_IDLE_TIMEOUT_MS" => ["upstream", "idle_timeout_ms"],
    "MOONGATE_UPSTREAM_MAX_IDLE_PER_HOST" => ["upstream", "max_idle_per_host"],
    "MOONGATE_SERVER_HEADER_READ_TIMEOUT_MS" => ["server", "header_read_timeout_ms"],
    "MOONGATE_SERVER_SHUTDOWN_TIMEOUT_MS" => ["server", "shutdown_timeout_ms"],
];

/// Writes every set variable into the parsed document. A variable whose value is not a YAML scalar
/// is reported by name.
pub(crate) fn apply(
    doc: &mut serde_yaml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<&'static str>, Vec<String>> {
    let mut applied = Vec::new();
    let mut errors = Vec::new();
    if doc.is_null() {
        *doc = serde_yaml::Value::Mapping(Default::default());
    }
    for setting in ENV_SETTINGS {
        let Some(text) = lookup(setting.var) else {
            continue;
        };
        let value = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
            Ok(v @ (serde_yaml::Value::Bool(_) | serde_yaml::Value::Number(_) | serde_yaml::Value::String(_))) => v,
            Ok(serde_yaml::Value::Null) => serde_yaml::Value::String(String::new()),
            // Anything that is not a scalar is taken as the literal text: a secret may look like YAML.
            _ => serde_yaml::Value::String(text.clone()),
        };
        // Secrets and URLs stay strings even when they look like numbers or booleans.
        let value = match setting.path.last() {
            Some(
                &("secret"
                | "secret_file"
                | "redis_url"
                | "redis_password_file"
                | "listen"
                | "apis_dir"
                | "scripts_dir"
                | "level"),
            ) => serde_yaml::Value::String(text.clone()),
            _ => value,
        };
        match set_path(doc, setting.path, value) {
            Ok(()) => applied.push(setting.var),
            Err(msg) => errors.push(format!("environment variable {}: {msg}", setting.var)),
        }
    }
    if errors.is_empty() { Ok(applied) } else { Err(errors) }
}

fn set_path(doc: &mut serde_yaml::Value, path: &[&str], value: serde_yaml::Value) -> Result<(), String> {
    let mut node = doc;
    for (i, seg) in path.iter().enumerate() {
        let serde_yaml::Value::Mapping(map) = node else {
            return Err(format!("`{}` in gateway.yaml is not a mapping", path[..i].join(".")));
        };
        let key = serde_yaml::Value::String((*seg).to_owned());
        if i + 1 == path.len() {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
    }
    Ok(())
}
