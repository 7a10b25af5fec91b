//! Noticing configuration changes. Directories are watched, never single files: editors that save
//! by rename, deleted and new files, and Kubernetes ConfigMap `..data` symlink swaps all show up as
//! events on a directory. In polling mode (bind mounts, network file systems) the content
//! fingerprint is compared instead. Either way the watcher only says "something changed"; the
//! control loop decides whether that is a new configuration.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{Debouncer, RecommendedCache, new_debouncer};

use crate::{ConfigError, GatewayConfig, WatchConfig};

/// The files a configuration is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchPaths {
    pub gateway_file: PathBuf,
    pub apis_dir: PathBuf,
    pub scripts_dir: PathBuf,
}

impl WatchPaths {
    pub fn of(gateway: &GatewayConfig) -> Self {
        Self {
            gateway_file: gateway.source.clone(),
            apis_dir: gateway.apis_dir.clone(),
            scripts_dir: gateway.scripts_dir.clone(),
        }
    }
}

/// A running watcher; dropping it stops it.
pub struct ConfigWatch {
    _events: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    poll_stop: Option<Arc<AtomicBool>>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        if let Some(stop) = &self.poll_stop {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Calls `on_change` (from a watcher thread) whenever the configuration files may have changed.
pub fn watch(
    paths: &WatchPaths,
    cfg: &WatchConfig,
    on_change: impl Fn() + Send + 'static,
) -> Result<ConfigWatch, ConfigError> {
    if let Some(interval) = cfg.poll_interval {
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, flag) = (paths.clone(), stop.clone());
        // Taken before returning, not when the thread first runs: an edit made right after start-up
        // would otherwise be part of the first fingerprint and never noticed.
        let mut last = fingerprint(paths);
        std::thread::Builder::new()
            .name("moongate-config-poll".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    let now = fingerprint(&polled);
                    if now != last {
                        last = now;
                        on_change();
                    }
                }
            })
            .map_err(|e| ConfigError::new(&paths.gateway_file, None, format!("cannot start the config poller: {e}")))?;
        return Ok(ConfigWatch { _events: None, poll_stop: Some(stop) });
    }

    let mut debouncer = new_debouncer(
        cfg.debounce.max(Duration::from_millis(10)),
        None,
        move |result: notify_debouncer_full::DebounceEventResult| match result {
            Ok(events) => {
                if events.iter().any(|e| !matches!(e.kind, EventKind::Access(_))) {
                    on_change();
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "Config watcher error; reloading to be safe.");
                }
                on_change();
            }
        },
    )
    .map_err(|e| ConfigError::new(&paths.gateway_file, None, format!("cannot watch the configuration: {e}")))?;
    let config_dir = paths.gateway_file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut watched: Vec<PathBuf> = Vec::new();
    for (dir, mode) in [
        (config_dir, RecursiveMode::NonRecursive),
        (paths.apis_dir.clone(), RecursiveMode::NonRecursive),
        (paths.scripts_dir.clone(), RecursiveMode::Recursive),
    ] {
        let Ok(canonical) = dir.canonicalize() else {
            tracing::warn!(dir = %dir.display(), "Not watching a directory that does not exist.");
            continue;
        };
        if watched.contains(&canonical) {
            continue;
        }
        debouncer
            .watch(&dir, mode)
            .map_err(|e| ConfigError::new(&dir, None, format!("cannot watch directory: {e}")))?;
        watched.push(canonical);
    }
    Ok(ConfigWatch { _events: Some(debouncer), poll_stop: None })
}

/// A hash of every file the configuration is read from (names and contents, symlinks followed,
/// hidden entries such as `..data` skipped since the visible names point into them).
pub fn fingerprint(paths: &WatchPaths) -> u64 {
    let mut h = DefaultHasher::new();
    hash_file(&mut h, &paths.gateway_file);
    hash_dir(&mut h, &paths.apis_dir, false, &|p| has_ext(p, &["yaml", "yml"]));
    hash_dir(&mut h, &paths.scripts_dir, true, &|p| has_ext(p, &["lua"]));
    h.finish()
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e))
}

fn hash_file(h: &mut DefaultHasher, path: &Path) {
    path.hash(h);
    match std::fs::read(path) {
        Ok(bytes) => bytes.hash(h),
        Err(e) => e.kind().to_string().hash(h),
    }
}

fn hash_dir(h: &mut DefaultHasher, dir: &Path, recursive: bool, keep: &dyn Fn(&Path) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        "missing".hash(h);
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if recursive {
                hash_dir(h, &p, true, keep);
            }
        } else if keep(&p) {
            hash_file(h, &p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = WatchPaths {
            gateway_file: dir.path().join("gateway.yaml"),
            apis_dir: dir.path().join("apis"),
            scripts_dir: dir.path().join("scripts"),
        };
        std::fs::create_dir_all(&paths.apis_dir).expect("dir");
        std::fs::create_dir_all(paths.scripts_dir.join("nested")).expect("dir");
        std::fs::write(&paths.gateway_file, "a").expect("write");
        let first = fingerprint(&paths);
        assert_eq!(first, fingerprint(&paths));
        std::fs::write(paths.scripts_dir.join("nested/x.lua"), "x").expect("write");
        let second = fingerprint(&paths);
        assert_ne!(first, second);
        std::fs::write(paths.apis_dir.join("notes.txt"), "ignored").expect("write");
        assert_eq!(second, fingerprint(&paths));
        std::fs::write(paths.apis_dir.join("a.yaml"), "api").expect("write");
        assert_ne!(second, fingerprint(&paths));
    }
}
