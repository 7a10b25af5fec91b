//! Logging set-up: human-readable lines on a terminal, JSON lines with `log.format: json`.
//! `RUST_LOG`, when set, overrides `log.level`.

use moongate_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
        _ => EnvFilter::try_new(&cfg.level).map_err(|e| anyhow::anyhow!("log.level `{}`: {e}", cfg.level))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Pretty => {
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).try_init()
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
