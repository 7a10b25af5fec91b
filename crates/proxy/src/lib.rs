//! Moongate's data plane: per-worker HTTP servers, the router, the request pipeline (auth, session
//! checks, limits, upstream) and the single mapping from failures to responses.
//!
//! A worker owns everything its requests touch (listener, upstream pool, store connection); the
//! only shared thing is the current [`Generation`], read once per request through arc-swap.

mod auth;
pub use auth::percent_decode;
pub mod echo;
mod pipeline;
pub mod respond;
mod router;
mod server;
mod upstream;

use std::sync::Arc;

use arc_swap::ArcSwap;
use moongate_config::{ApiDefinition, GatewayConfig, Snapshot};
use moongate_session::{ApiLifetime, SessionStore};

pub use respond::{Body, GatewayError, error_response};
pub use router::Router;
pub use server::{bind_reuseport, serve};
pub use upstream::UpstreamClient;

/// One configuration generation: validated settings and APIs plus what is built from them.
/// Immutable; a reload makes a new one.
#[derive(Debug)]
pub struct Generation {
    pub id: u64,
    pub gateway: Arc<GatewayConfig>,
    pub apis: Vec<Arc<ApiDefinition>>,
    pub router: Router,
}

impl Generation {
    pub fn new(id: u64, snapshot: Snapshot) -> Self {
        let router = Router::new(&snapshot.apis);
        Self { id, gateway: snapshot.gateway, apis: snapshot.apis, router }
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
    client: UpstreamClient,
}

impl Worker {
    /// Must be called inside the worker's runtime (the upstream pool spawns its tasks there).
    pub fn new(generation: GenerationHandle, sessions: SessionStore) -> Self {
        let client = upstream::client(&generation.load().gateway.upstream);
        Self { generation, sessions, client }
    }
}
