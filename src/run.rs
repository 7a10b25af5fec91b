//! `moongate run`: load the configuration, start one worker thread per core (each a single-threaded
//! runtime with its own listener, store connection and upstream pool), serve the admin API on this
//! thread, and shut everything down in order on SIGTERM or SIGINT.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use arc_swap::ArcSwap;
use moongate_proxy::{Generation, GenerationHandle, Worker, bind_reuseport, serve};
use moongate_session::{KeyScheme, SessionStore, StoreSpec};
use tokio::sync::watch;

use crate::control::{self, ReloadRequest, Source};
use crate::{admin, logging};

pub fn run(config: &Path) -> ExitCode {
    let generation = match Generation::load(config, 1) {
        Ok(g) => g,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("moongate: the configuration has {} error(s); nothing was started", errors.0.len());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = logging::init(&generation.gateway.log) {
        eprintln!("moongate: {e:#}");
        return ExitCode::from(1);
    }
    match start(config, generation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Moongate failed.");
            eprintln!("moongate: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn start(config: &Path, generation: Generation) -> anyhow::Result<()> {
    let gw = generation.gateway.clone();
    let spec = StoreSpec::from_config(&gw.storage)?;
    let scheme = KeyScheme { hash_keys: gw.hash_keys };
    let api_count = generation.apis.len();
    let generation: GenerationHandle = Arc::new(ArcSwap::from_pointee(generation));
    let (stop_tx, stop_rx) = watch::channel(false);

    // Bind every listener before starting anything, so a port in use fails the start cleanly.
    let listeners = (0..gw.workers)
        .map(|_| bind_reuseport(gw.listen).with_context(|| format!("cannot listen on {}", gw.listen)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin_listener = std::net::TcpListener::bind(gw.admin_listen)
        .with_context(|| format!("cannot listen on {}", gw.admin_listen))?;
    admin_listener.set_nonblocking(true)?;

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let generation = generation.clone();
        let spec = spec.clone();
        let stop = stop_rx.clone();
        let gw = gw.clone();
        let thread = std::thread::Builder::new().name(format!("moongate-worker-{i}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(worker = i, error = %e, "Cannot start the worker runtime.");
                    return;
                }
            };
            rt.block_on(async move {
                let store = match spec.open() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(worker = i, error = %e, "Cannot open the session store.");
                        return;
                    }
                };
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(worker = i, error = %e, "Cannot use the listener.");
                        return;
                    }
                };
                let worker = Arc::new(Worker::new(generation, SessionStore::new(store, scheme)));
                serve(listener, worker, stop, gw.header_read_timeout, gw.shutdown_timeout).await;
            });
        })?;
        threads.push(thread);
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel::<ReloadRequest>(64);
        let status = control::SharedStatus::default();
        let control_task = tokio::spawn(control::run(config.to_path_buf(), generation.clone(), reload_rx, status.clone()));
        // The watcher lives as long as this scope; dropping it stops it.
        let _watch = if gw.watch.enabled {
            let tx = reload_tx.clone();
            let notify = move || {
                // A full queue already holds a reload that will read these files.
                let _ = tx.try_send(ReloadRequest { source: Source::Watcher, reply: None });
            };
            match moongate_config::watch(&moongate_config::WatchPaths::of(&gw), &gw.watch, notify) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "Not watching the configuration; reload with SIGHUP or the admin API.");
                    None
                }
            }
        } else {
            None
        };
        let store = spec.open()?;
        let admin = Arc::new(admin::Admin::new(generation.clone(), SessionStore::new(store, scheme), reload_tx.clone(), status));
        let admin_listener = tokio::net::TcpListener::from_std(admin_listener)?;
        tracing::info!(
            listen = %gw.listen,
            admin = %gw.admin_listen,
            workers = gw.workers,
            apis = api_count,
            store = admin.store_name(),
            watch = if !gw.watch.enabled { "off" } else if gw.watch.poll_interval.is_some() { "polling" } else { "events" },
            "Moongate started."
        );
        if gw.admin_secret.is_none() {
            tracing::warn!("No admin secret is configured: the key endpoints of the admin API refuse every call.");
        }
        let admin_task = tokio::spawn(admin::serve(admin_listener, admin, stop_rx.clone()));
        let signal = wait_for_shutdown(&reload_tx).await?;
        tracing::info!(signal, drain_ms = gw.shutdown_timeout.as_millis() as u64, "Shutting down: draining in-flight requests.");
        let _ = stop_tx.send(true);
        let _ = admin_task.await;
        control_task.abort();
        anyhow::Ok(())
    })?;
    for t in threads {
        if t.join().is_err() {
            tracing::error!("A worker thread panicked.");
        }
    }
    tracing::info!("Moongate stopped.");
    Ok(())
}

/// Serves SIGHUP (reload) until SIGTERM or SIGINT arrives.
async fn wait_for_shutdown(reload: &tokio::sync::mpsc::Sender<ReloadRequest>) -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration.");
                let _ = reload.send(ReloadRequest { source: Source::Signal, reply: None }).await;
            }
        }
    }
}
