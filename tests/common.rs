use moongate_testkit::{Gateway, GatewayBuilder, Redis, Upstream};

pub const BIN: &str = env!("CARGO_BIN_EXE_moongate");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// A running gateway with its upstream and, on the Redis backend, its Redis.
pub struct Env {
    pub gw: Gateway,
    pub upstream: Upstream,
    pub redis: Option<Redis>,
}

/// An API file. `extra` is appended as top-level YAML.
pub fn api(id: &str, listen_path: &str, target: &str, extra: &str) -> String {
    format!(
        "api_id: {id}\nname: {id}\norg_id: test\nproxy:\n  listen_path: {listen_path}\n  target_url: \"{target}\"\n  strip_listen_path: true\n{extra}\n"
    )
}

impl Env {
    /// Starts a gateway; `configure` adds APIs and settings, and gets the upstream URL.
    pub fn start(backend: Backend, configure: impl FnOnce(GatewayBuilder, &str) -> GatewayBuilder) -> Env {
        let upstream = Upstream::start();
        let redis = (backend == Backend::Redis).then(Redis::start);
        let mut builder = Gateway::builder(BIN);
        if let Some(r) = &redis {
            builder = builder.redis(&r.url());
        }
        let gw = configure(builder, &upstream.url()).start();
        Env { gw, upstream, redis }
    }
}

/// Runs an async test body once per backend: `both_backends!(name)` makes `name::memory` and
/// `name::redis` from `async fn name(backend: Backend)`.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name($crate::common::Backend::Memory).await
            }
            #[tokio::test]
            async fn redis() {
                super::$name($crate::common::Backend::Redis).await
            }
        }
    };
}
pub(crate) use both_backends;

pub fn now() -> i64 {
    moongate_session::unix_now()
}
