//! The control loop: the one task that stores a new generation. Reload requests come from the file
//! watcher, SIGHUP and the admin API; requests that queue up while a reload runs are served by the
//! next one. A reload builds a whole generation off to the side and swaps it in, or keeps the
//! running one and reports every error.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use moongate_config::WatchPaths;
use moongate_proxy::{Generation, GenerationHandle};
use moongate_session::unix_now;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Watcher,
    Signal,
    Admin,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Watcher => "watcher",
            Source::Signal => "SIGHUP",
            Source::Admin => "admin API",
        }
    }
}

pub struct ReloadRequest {
    pub source: Source,
    pub reply: Option<oneshot::Sender<Outcome>>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new generation serves; `restart_required` lists settings that changed but need a restart.
    Applied { generation: u64, apis: usize, restart_required: Vec<String> },
    /// The files did not change since the last reload (watcher-triggered reloads only).
    Unchanged { generation: u64 },
    /// The running generation keeps serving; every error, as `file:line:col: message`.
    Rejected { generation: u64, errors: Vec<String> },
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Applied { generation, apis, restart_required } => {
                json!({"status": "ok", "message": "", "outcome": "applied", "generation": generation, "apis": apis, "restart_required": restart_required})
            }
            Outcome::Unchanged { generation } => {
                json!({"status": "ok", "message": "", "outcome": "unchanged", "generation": generation})
            }
            Outcome::Rejected { generation, errors } => {
                json!({"status": "error", "message": "configuration rejected; the running one keeps serving", "outcome": "rejected", "generation": generation, "errors": errors})
            }
        }
    }
}

/// What the admin API shows about reloads.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    pub applied: u64,
    pub rejected: u64,
    pub last: Option<(i64, Outcome)>,
}

impl ReloadStatus {
    pub fn to_json(&self, generation: u64) -> Value {
        json!({
            "generation": generation,
            "applied": self.applied,
            "rejected": self.rejected,
            "last": self.last.as_ref().map(|(at, o)| { let mut v = o.to_json(); v["at"] = json!(at); v }),
        })
    }
}

pub type SharedStatus = Arc<Mutex<ReloadStatus>>;

pub async fn run(
    config: PathBuf,
    generation: GenerationHandle,
    mut rx: mpsc::Receiver<ReloadRequest>,
    status: SharedStatus,
) {
    // No fingerprint until the first reload: one taken now could already include an edit made
    // since the running configuration was read, and that edit would then look like no change.
    let mut last_fingerprint: Option<u64> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let running = generation.load_full();
        let paths = WatchPaths::of(&running.gateway);
        let fingerprint = tokio::task::spawn_blocking(move || moongate_config::fingerprint(&paths)).await.ok();
        let only_watcher = batch.iter().all(|r| r.source == Source::Watcher);
        let outcome = if only_watcher && fingerprint.is_some() && fingerprint == last_fingerprint {
            tracing::debug!("Configuration files unchanged; nothing to reload.");
            Outcome::Unchanged { generation: running.id }
        } else {
            last_fingerprint = fingerprint;
            let sources: Vec<&str> = batch.iter().map(|r| r.source.name()).collect();
            let (config, running_gw, next) = (config.clone(), running.gateway.clone(), running.id + 1);
            let built = tokio::task::spawn_blocking(move || Generation::reload(&config, next, &running_gw)).await;
            match built {
                Ok(Ok((new, restart_required))) => {
                    for setting in &restart_required {
                        tracing::warn!(setting = %setting, "A changed setting needs a restart; keeping the running value.");
                    }
                    let (id, apis) = (new.id, new.apis.len());
                    generation.store(Arc::new(new));
                    tracing::info!(generation = id, apis, trigger = ?sources, "Configuration reloaded.");
                    Outcome::Applied { generation: id, apis, restart_required }
                }
                Ok(Err(errors)) => {
                    for e in &errors.0 {
                        tracing::error!(error = %e, "Configuration rejected; the running one keeps serving.");
                    }
                    Outcome::Rejected {
                        generation: running.id,
                        errors: errors.0.iter().map(ToString::to_string).collect(),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "The reload task failed; the running configuration keeps serving.");
                    Outcome::Rejected { generation: running.id, errors: vec![e.to_string()] }
                }
            }
        };
        {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            let m = moongate_proxy::metrics::metrics();
            let counter = match &outcome {
                Outcome::Applied { .. } => {
                    s.applied += 1;
                    &m.reloads_applied
                }
                Outcome::Rejected { .. } => {
                    s.rejected += 1;
                    &m.reloads_rejected
                }
                Outcome::Unchanged { .. } => &m.reloads_unchanged,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !matches!(outcome, Outcome::Unchanged { .. }) || s.last.is_none() {
                s.last = Some((unix_now(), outcome.clone()));
            }
        }
        for r in batch {
            if let Some(reply) = r.reply {
                let _ = reply.send(outcome.clone());
            }
        }
    }
}
