//! Prometheus metrics of `redirector serve`, in the text format on the
//! admin listener's `/metrics`.

use std::sync::{Arc, RwLock};

use prometheus_client::{
    encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use steer_user::{Class, Steer};

use super::{
    family_handles::FamilyHandles,
    fleet::FleetMetrics,
    request_counter::{RequestCounter, Target},
    request_limit::LimitMetrics,
};

/// The labels of `steer_blob_bytes_total`: where blobs went, for clients
/// of which class. Values come from the config (backend names) and the
/// ranges (classes), never from a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct BlobLabels {
    pub backend: Target,
    pub class: Arc<Class>,
}

impl EncodeLabelSet for BlobLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        ("backend", self.backend.as_str()).encode(encoder.encode_label())?;
        ("provider", self.class.provider_label()).encode(encoder.encode_label())?;
        ("region", self.class.region_label()).encode(encoder.encode_label())
    }
}

/// Counts something open or in flight in a gauge until dropped (also
/// when the task holding it is cancelled).
pub struct Counted<'a>(&'a Gauge);

impl<'a> Counted<'a> {
    pub fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: RequestCounter,
    /// Bytes of the blobs redirected to each backend, by client class,
    /// from the sizes the blob checks report.
    pub blob_bytes: FamilyHandles<BlobLabels, Counter>,
    pub blob_cache_hits: Counter,
    pub blob_cache_misses: Counter,
    /// HEAD requests actually sent (misses minus coalesced waiters).
    pub blob_checks: Counter,
    pub blob_check_seconds: Histogram,
    pub connections: Gauge,
    pub admin_connections: Gauge,
    pub ranges_generation: Gauge,
    /// When the ranges in force were loaded (Unix seconds).
    ranges_loaded_at: Gauge,
    /// Blob checks that got no answer, or one that was neither 200 nor
    /// 404 (timeouts, refused connections, 5xx).
    pub blob_check_failures: Counter,
    /// Connections the server closed because one hit a limit, by listener
    /// and reason.
    connections_rejected: Family<Labels, Counter>,
    accept_errors: Family<Labels, Counter>,
    slots_full: Family<Labels, Counter>,
    pub connection_limit: Family<Labels, Gauge>,
    /// Blob checks not made because a bound was reached (the client went
    /// upstream at once), by which bound.
    blob_checks_rejected: Family<Labels, Counter>,
    pub blob_checks_in_flight: Gauge,
    pub blob_check_limit: Gauge,
    http1_handoffs: Family<Labels, Counter>,
    pub fleet: FleetMetrics,
    pub limits: LimitMetrics,
}

/// Label pairs with names and values fixed in the code.
type Labels = Vec<(&'static str, &'static str)>;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("steer");
        let requests = RequestCounter::default();
        registry.register("requests", "HTTP requests answered", requests.family());
        let blob_bytes = FamilyHandles::<BlobLabels, Counter>::default();
        registry.register(
            "blob_bytes",
            "Bytes of blobs redirected to each backend, by client class (from the blob checks' Content-Length)",
            blob_bytes.family().clone(),
        );
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
        let ranges_loaded_at = Gauge::default();
        registry.register(
            "ranges_loaded_timestamp_seconds",
            "When the range tables in force were loaded (Unix time)",
            ranges_loaded_at.clone(),
        );
        let blob_check_failures = Counter::default();
        registry.register(
            "blob_check_failures",
            "Blob checks that failed: no answer in time, or neither 200 nor 404",
            blob_check_failures.clone(),
        );
        let admin_connections = Gauge::default();
        registry.register(
            "admin_connections",
            "Open admin connections",
            admin_connections.clone(),
        );
        let connections_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "connections_rejected",
            "Connections closed because they hit a limit (handshake, header, idle, close or write deadline; a request head over 64 KiB; bad PROXY header; failed TLS handshake)",
            connections_rejected.clone(),
        );
        let accept_errors = Family::<Labels, Counter>::default();
        registry.register(
            "accept_errors",
            "Failed accepts by kind; out of descriptors or memory pauses accepting",
            accept_errors.clone(),
        );
        let slots_full = Family::<Labels, Counter>::default();
        registry.register(
            "connection_slots_full",
            "Times every connection slot was taken, so new connections waited in the backlog",
            slots_full.clone(),
        );
        let connection_limit = Family::<Labels, Gauge>::default();
        registry.register(
            "connection_limit",
            "Connections served at once, after fitting the open-file limit",
            connection_limit.clone(),
        );
        let blob_checks_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "blob_checks_rejected",
            "Blob checks not made because a concurrency bound was reached; the client went upstream",
            blob_checks_rejected.clone(),
        );
        let blob_checks_in_flight = Gauge::default();
        registry.register(
            "blob_checks_in_flight",
            "HEAD requests to backends in flight",
            blob_checks_in_flight.clone(),
        );
        let blob_check_limit = Gauge::default();
        registry.register(
            "blob_check_limit",
            "Most HEAD requests to backends in flight at once",
            blob_check_limit.clone(),
        );
        let http1_handoffs = Family::<Labels, Counter>::default();
        registry.register(
            "http1_handoffs",
            "HTTP/1 connections handed from the fast path to hyper, by what the request had that the fast path leaves to hyper",
            http1_handoffs.clone(),
        );
        let fleet = FleetMetrics::register(&mut registry);
        let limits = LimitMetrics::register(&mut registry);
        let metrics = Metrics {
            registry,
            fleet,
            limits,
            requests,
            blob_bytes,
            blob_cache_hits,
            blob_cache_misses,
            blob_checks,
            blob_check_seconds,
            connections,
            admin_connections,
            ranges_generation,
            ranges_loaded_at,
            blob_check_failures,
            connections_rejected,
            accept_errors,
            slots_full,
            connection_limit,
            blob_checks_rejected,
            blob_checks_in_flight,
            blob_check_limit,
            http1_handoffs,
        };
        metrics.zero_known_series();
        metrics
    }
}

/// The label values of the limit counters, fixed in the code: their
/// series exist at zero from the start, so `increase()` and `rate()` see
/// the first event (a series born at 1 shows no increase).
const REJECT_REASONS: [(&str, &[&str]); 2] = [
    (
        "public",
        &[
            "proxy_header",
            "tls_handshake",
            "handshake_timeout",
            "header_timeout",
            "idle_timeout",
            "close_timeout",
            "write_timeout",
            "header_size",
        ],
    ),
    (
        "admin",
        &["header_timeout", "idle_timeout", "close_timeout"],
    ),
];
const ACCEPT_ERRORS: [&str; 4] = ["fd_exhausted", "out_of_memory", "connection", "other"];
const CHECK_BOUNDS: [&str; 2] = ["process", "connection"];
/// The `reason` values of `steer_http1_handoffs_total` (serve::http1_wire).
const HANDOFF_REASONS: [&str; 9] = [
    "method",
    "version",
    "target",
    "body",
    "expect",
    "upgrade",
    "connection",
    "headers",
    "malformed",
];

impl Metrics {
    fn zero_known_series(&self) {
        for (listener, reasons) in REJECT_REASONS {
            for reason in reasons {
                self.connection_rejected(listener, reason);
            }
            for kind in ACCEPT_ERRORS {
                self.accept_error(listener, kind);
            }
            self.at_capacity(listener);
        }
        for bound in CHECK_BOUNDS {
            self.blob_check_rejected(bound);
        }
        for reason in HANDOFF_REASONS {
            self.http1_handoff(reason);
        }
    }

    pub fn connection_rejected(&self, listener: &'static str, reason: &'static str) -> Counter {
        self.connections_rejected
            .get_or_create(&vec![("listener", listener), ("reason", reason)])
            .clone()
    }

    pub fn accept_error(&self, listener: &'static str, kind: &'static str) -> Counter {
        self.accept_errors
            .get_or_create(&vec![("listener", listener), ("kind", kind)])
            .clone()
    }

    pub fn at_capacity(&self, listener: &'static str) -> Counter {
        self.slots_full
            .get_or_create(&vec![("listener", listener)])
            .clone()
    }

    pub fn blob_check_rejected(&self, bound: &'static str) -> Counter {
        self.blob_checks_rejected
            .get_or_create(&vec![("bound", bound)])
            .clone()
    }

    /// A connection the HTTP/1 fast path handed to hyper, and why.
    pub fn http1_handoff(&self, reason: &'static str) -> Counter {
        self.http1_handoffs
            .get_or_create(&vec![("reason", reason)])
            .clone()
    }

    /// The ranges in force were loaded now.
    pub fn ranges_loaded(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.ranges_loaded_at
            .set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// Adds the XDP program's per-class counters, read from the kernel at
    /// each scrape.
    pub fn add_xdp(&mut self, steer: Arc<RwLock<Steer>>) {
        self.registry
            .register_collector(Box::new(super::xdp_metrics::XdpCounters(steer)));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
