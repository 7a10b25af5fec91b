//! Counters for `/metrics` (Prometheus text format). Labels are bounded: the API id (from
//! configuration) and the status class; never a path or a key. Counters live in one process-wide
//! registry so that they survive reloads; each generation resolves its APIs' counters once, so a
//! request only touches atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
pub struct ApiMetrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub upstream_timeouts: AtomicU64,
    pub hook_errors: AtomicU64,
    pub hook_timeouts: AtomicU64,
    pub store_errors: AtomicU64,
}

impl ApiMetrics {
    pub fn record(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    apis: Mutex<BTreeMap<String, Arc<ApiMetrics>>>,
    pub reloads_applied: AtomicU64,
    pub reloads_rejected: AtomicU64,
    pub reloads_unchanged: AtomicU64,
    pub admin_store_errors: AtomicU64,
    pub upstream_connections: AtomicU64,
}

/// Requests that matched no API are counted under this id.
pub const NO_ROUTE: &str = "(none)";

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// The counters of one API, created on first use and kept for the life of the process.
    pub fn api(&self, api_id: &str) -> Arc<ApiMetrics> {
        let mut apis = self.apis.lock().unwrap_or_else(|p| p.into_inner());
        apis.entry(api_id.to_owned()).or_default().clone()
    }

    /// Prometheus text exposition.
    pub fn render(&self, generation: u64) -> String {
        let apis = self.apis.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::with_capacity(4096);
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        header(&mut out, "moongate_requests_total", "counter", "Requests answered, by API and status class.");
        for (api, m) in &apis {
            for (i, class) in classes.iter().enumerate() {
                let n = m.by_class[i].load(Ordering::Relaxed);
                if n > 0 {
                    let _ =
                        writeln!(out, "moongate_requests_total{{api_id=\"{}\",status=\"{class}\"}} {n}", escape(api));
                }
            }
        }
        header(
            &mut out,
            "moongate_request_duration_seconds",
            "histogram",
            "Time from request to response headers, by API.",
        );
        for (api, m) in &apis {
            let api = escape(api);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += m.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "moongate_request_duration_seconds_bucket{{api_id=\"{api}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = m.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "moongate_request_duration_seconds_bucket{{api_id=\"{api}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(
                out,
                "moongate_request_duration_seconds_sum{{api_id=\"{api}\"}} {}",
                m.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "moongate_request_duration_seconds_count{{api_id=\"{api}\"}} {count}");
        }
        let per_api: [(&str, &str, Field); 5] = [
            ("moongate_upstream_errors_total", "Upstreams that could not be reached (502).", |m| &m.upstream_errors),
            ("moongate_upstream_timeouts_total", "Upstreams that did not answer in time (504).", |m| {
                &m.upstream_timeouts
            }),
            ("moongate_hook_errors_total", "Lua hooks that failed (500).", |m| &m.hook_errors),
            ("moongate_hook_timeouts_total", "Lua hooks stopped at their time budget (500).", |m| &m.hook_timeouts),
            (
                "moongate_session_store_errors_total",
                "Session store calls that failed on the request path (503).",
                |m| &m.store_errors,
            ),
        ];
        for (name, help, field) in per_api {
            header(&mut out, name, "counter", help);
            for (api, m) in &apis {
                let _ = writeln!(out, "{name}{{api_id=\"{}\"}} {}", escape(api), field(m).load(Ordering::Relaxed));
            }
        }
        let process: [(&str, &str, &AtomicU64); 2] = [
            (
                "moongate_admin_session_store_errors_total",
                "Session store calls of the admin API that failed.",
                &self.admin_store_errors,
            ),
            (
                "moongate_upstream_connections_opened_total",
                "Connections opened to upstreams; with keep-alive working it grows far slower than requests.",
                &self.upstream_connections,
            ),
        ];
        for (name, help, n) in process {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", n.load(Ordering::Relaxed));
        }
        header(&mut out, "moongate_reloads_total", "counter", "Configuration reloads, by outcome.");
        for (outcome, n) in [
            ("applied", &self.reloads_applied),
            ("rejected", &self.reloads_rejected),
            ("unchanged", &self.reloads_unchanged),
        ] {
            let _ = writeln!(out, "moongate_reloads_total{{outcome=\"{outcome}\"}} {}", n.load(Ordering::Relaxed));
        }
        header(&mut out, "moongate_generation", "gauge", "The configuration generation serving requests.");
        let _ = writeln!(out, "moongate_generation {generation}");
        out
    }
}

/// Picks one counter of an API.
type Field = fn(&ApiMetrics) -> &AtomicU64;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        let a = m.api("orders");
        a.record(200, Duration::from_micros(300));
        a.record(503, Duration::from_millis(30));
        let text = m.render(7);
        assert!(text.contains("moongate_requests_total{api_id=\"orders\",status=\"2xx\"} 1"), "{text}");
        assert!(text.contains("moongate_requests_total{api_id=\"orders\",status=\"5xx\"} 1"));
        assert!(text.contains("moongate_request_duration_seconds_bucket{api_id=\"orders\",le=\"0.0005\"} 1"));
        assert!(text.contains("moongate_request_duration_seconds_bucket{api_id=\"orders\",le=\"0.05\"} 2"));
        assert!(text.contains("moongate_request_duration_seconds_count{api_id=\"orders\"} 2"));
        assert!(text.contains("moongate_generation 7"));
    }
}
