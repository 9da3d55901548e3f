//! Prometheus metrics of `redirector serve`, in the text format on the
//! admin listener's `/metrics`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// What the router made of the request: blob, manifest, api-base, ...
    pub route: &'static str,
    pub status: u16,
    /// The client's class ("" and "unknown" for no feed).
    pub provider: String,
    pub region: String,
    /// Where the request was sent: a backend's name, "upstream",
    /// "signature-upstream", or "none" for answers without a redirect.
    pub backend: String,
    /// Which table answered: xdp, userspace or forwarded.
    pub source: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub blob_cache_hits: Counter,
    pub blob_cache_misses: Counter,
    /// HEAD requests actually sent (misses minus coalesced waiters).
    pub blob_checks: Counter,
    pub blob_check_seconds: Histogram,
    pub connections: Gauge,
    pub ranges_generation: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("steer");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests answered", requests.clone());
        let blob_cache_hits = Counter::default();
        registry.register(
            "blob_check_cache_hits",
            "Blob checks answered from the cache",
            blob_cache_hits.clone(),
        );
        let blob_cache_misses = Counter::default();
        registry.register(
            "blob_check_cache_misses",
            "Blob checks not in the cache",
            blob_cache_misses.clone(),
        );
        let blob_checks = Counter::default();
        registry.register(
            "blob_check_requests",
            "HEAD requests sent to backends",
            blob_checks.clone(),
        );
        let blob_check_seconds =
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        registry.register(
            "blob_check_duration_seconds",
            "Time of HEAD requests to backends",
            blob_check_seconds.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        let ranges_generation = Gauge::default();
        registry.register(
            "ranges_reloads",
            "Range tables loaded since start",
            ranges_generation.clone(),
        );
        Metrics {
            registry,
            requests,
            blob_cache_hits,
            blob_cache_misses,
            blob_checks,
            blob_check_seconds,
            connections,
            ranges_generation,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
