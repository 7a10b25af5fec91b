//! Moongate's data plane: per-worker HTTP servers, the router, the request pipeline (auth, session
//! checks, limits, upstream) and the single mapping from failures to responses.
//!
//! A worker owns everything its requests touch (listener, upstream pool, store connection); the
//! only shared thing is the current [`Generation`], read once per request through arc-swap.

mod auth;
pub use auth::percent_decode;
pub mod echo;
pub mod metrics;
mod pipeline;
pub mod respond;
mod router;
mod server;
mod upstream;

use std::sync::Arc;

use std::path::Path;
use std::sync::Mutex;

use arc_swap::ArcSwap;
use moongate_config::{ApiDefinition, ConfigError, ConfigErrors, GatewayConfig, Snapshot};
use moongate_scripting::{HookRuntime, ScriptSet, Services};
use moongate_session::{ApiLifetime, SessionStore};

pub use respond::{Body, GatewayError, error_response};
pub use router::Router;
pub use server::{bind_reuseport, serve};
pub use upstream::{RequestBody, UpstreamBody, UpstreamError, UpstreamPool};

/// One configuration generation: validated settings and APIs plus what is built from them.
/// Immutable; a reload makes a new one.
#[derive(Debug)]
pub struct Generation {
    pub id: u64,
    pub gateway: Arc<GatewayConfig>,
    pub apis: Vec<Arc<ApiDefinition>>,
    pub router: Router,
    /// Every script the APIs use, read and checked.
    pub scripts: Arc<ScriptSet>,
    /// Each API's counters (and those of unrouted requests), resolved once per generation.
    pub(crate) api_metrics: std::collections::HashMap<String, Arc<metrics::ApiMetrics>>,
    pub(crate) no_route_metrics: Arc<metrics::ApiMetrics>,
}

impl Generation {
    /// Reads and checks everything (`gateway.yaml`, API files, scripts): the one loader behind
    /// start-up, `moongate validate` and reloads.
    pub fn load(gateway_file: &Path, id: u64) -> Result<Self, ConfigErrors> {
        Self::build(id, moongate_config::load(gateway_file)?)
    }

    /// Reads everything again for a reload. Settings that need a restart keep their running values;
    /// the second value names each one that changed on disk.
    pub fn reload(gateway_file: &Path, id: u64, running: &GatewayConfig) -> Result<(Self, Vec<String>), ConfigErrors> {
        let mut gateway = moongate_config::load_gateway(gateway_file)?;
        let restart_required = gateway.keep_restart_only(running);
        let gateway = Arc::new(gateway);
        let apis = moongate_config::load_apis(&gateway)?;
        Ok((Self::build(id, Snapshot { gateway, apis })?, restart_required))
    }

    pub fn build(id: u64, snapshot: Snapshot) -> Result<Self, ConfigErrors> {
        let gw = &snapshot.gateway;
        let scripts = ScriptSet::load(&snapshot.apis, gw.hooks, gw.lifetime).map_err(|errors| {
            ConfigErrors(
                errors.into_iter().map(|e| ConfigError::new(e.file, e.line.map(|l| (l, 0)), e.message)).collect(),
            )
        })?;
        let router = Router::new(&snapshot.apis);
        let registry = metrics::metrics();
        let api_metrics = snapshot.apis.iter().map(|a| (a.api_id.clone(), registry.api(&a.api_id))).collect();
        Ok(Self {
            id,
            gateway: snapshot.gateway,
            apis: snapshot.apis,
            router,
            scripts: Arc::new(scripts),
            api_metrics,
            no_route_metrics: registry.api(metrics::NO_ROUTE),
        })
    }

    pub fn api(&self, api_id: &str) -> Option<&Arc<ApiDefinition>> {
        self.apis.iter().find(|a| a.api_id == api_id)
    }

    /// The lifetime inputs of an API, for session writes outside a request.
    pub fn api_lifetime(&self, api_id: &str) -> Option<ApiLifetime> {
        self.api(api_id).map(|a| ApiLifetime {
            session_lifetime: a.session_lifetime,
            respects_key_expiration: a.session_lifetime_respects_key_expiration,
        })
    }
}

/// The generation every request starts from; only the control loop stores a new one.
pub type GenerationHandle = Arc<ArcSwap<Generation>>;

/// What one worker thread serves requests with.
pub struct Worker {
    generation: GenerationHandle,
    sessions: SessionStore,
    upstream: Arc<UpstreamPool>,
    services: Arc<Services>,
    /// This worker's Lua state for the generation it was built for.
    hooks: Mutex<Option<(u64, Arc<HookRuntime>)>>,
}

impl Worker {
    /// Must be called inside the worker's runtime (the upstream pool spawns its tasks there).
    pub fn new(generation: GenerationHandle, sessions: SessionStore) -> Self {
        let upstream = UpstreamPool::new(&generation.load().gateway.upstream);
        let services = Arc::new(Services::new(sessions.clone()));
        Self { generation, sessions, upstream, services, hooks: Mutex::new(None) }
    }

    /// The hook runtime of `generation`, built on first use after a reload, or again after a hook
    /// left its state unusable. Requests still running on an older one keep it alive until they end.
    fn hook_runtime(&self, generation: &Generation) -> Result<Arc<HookRuntime>, GatewayError> {
        let mut slot = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, rt)) = &*slot
            && *id == generation.id
            && !rt.is_poisoned()
        {
            return Ok(rt.clone());
        }
        let rt =
            HookRuntime::new(&generation.scripts, &generation.apis, Some(self.services.clone())).map_err(|errors| {
                GatewayError::Internal(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            })?;
        let rt = Arc::new(rt);
        *slot = Some((generation.id, rt.clone()));
        Ok(rt)
    }
}
