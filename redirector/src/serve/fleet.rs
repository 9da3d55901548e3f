//! The fleet as the server sees it while serving: which backend a blob
//! request ends at after the candidates before it were tried, counted
//! per pair; and what the bytes sent each way cost, and saved against
//! sending them from the upstream.

use std::sync::{Arc, atomic::AtomicU64};

use prometheus_client::{
    encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::family_handles::FamilyHandles;
use crate::config::settings::Settings;

/// One label whose value is a backend's shared name: built for every
/// blob redirect, so it only clones a pointer.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct NameLabel(pub &'static str, pub Arc<str>);

impl EncodeLabelSet for NameLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        (self.0, &*self.1).encode(encoder.encode_label())
    }
}

/// The payer and price label of the upstream registry, shared so a blob
/// sent upstream clones a pointer rather than allocating a name.
pub static UPSTREAM: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from("upstream"));

/// A dollar amount that only grows.
type Dollars = Counter<f64, AtomicU64>;

type Pair = Vec<(&'static str, String)>;

#[derive(Clone, Default)]
pub struct FleetMetrics {
    /// A blob request that its first candidate did not serve, by that
    /// candidate and where the request went instead (a backend or
    /// `upstream`).
    failovers: Family<Pair, Counter>,
    /// Estimated dollars, by who is billed: a backend or `upstream`.
    cost: FamilyHandles<NameLabel, Dollars>,
    /// What bytes served by backends would have cost from the upstream,
    /// minus what they cost where they went (when that is less).
    savings: Dollars,
    /// The configured prices, so a report can price bytes by class.
    prices: Family<NameLabel, Gauge<f64, AtomicU64>>,
    /// Each backend's `max_bytes_per_day`, for alerts near the cap.
    budgets: Family<NameLabel, Gauge>,
}

impl FleetMetrics {
    pub fn register(registry: &mut Registry) -> FleetMetrics {
        let m = FleetMetrics::default();
        registry.register(
            "backend_failovers",
            "Blob requests that their first candidate backend did not serve, by that backend and where they went",
            m.failovers.clone(),
        );
        registry.register(
            "estimated_cost_dollars",
            "Estimated cost of the blob bytes sent each way, by who pays (a backend or upstream), at the configured prices per GB",
            m.cost.family().clone(),
        );
        registry.register(
            "estimated_savings_dollars",
            "What the blob bytes backends served would have cost from the upstream, minus what they cost there",
            m.savings.clone(),
        );
        registry.register(
            "price_dollars_per_gb",
            "The configured price of a GB sent by each backend, and by the upstream (backend=\"upstream\")",
            m.prices.clone(),
        );
        registry.register(
            "backend_budget_bytes",
            "A backend's max_bytes_per_day, for backends with one",
            m.budgets.clone(),
        );
        m
    }

    /// The prices and budgets of `settings`, replacing the last ones
    /// (at start and on every config reload).
    pub fn configure(&self, settings: &Settings) {
        self.prices.clear();
        self.budgets.clear();
        let dollars = |micro: u64| micro as f64 / 1e6;
        self.prices
            .get_or_create(&NameLabel("backend", UPSTREAM.clone()))
            .set(dollars(settings.upstream_micro_dollars_per_gb));
        // Every payer's cost exists from the start, at zero.
        self.cost
            .with(&NameLabel("payer", UPSTREAM.clone()), |_| ());
        for b in settings.backends.list() {
            self.cost.with(&NameLabel("payer", b.name.clone()), |_| ());
            let name = NameLabel("backend", b.name.clone());
            self.prices
                .get_or_create(&name)
                .set(dollars(b.micro_dollars_per_gb));
            if let Some(max) = b.max_bytes_per_day {
                self.budgets
                    .get_or_create(&name)
                    .set(i64::try_from(max).unwrap_or(i64::MAX));
            }
        }
    }

    /// `bytes` went to `payer` at `price` (millionths of a dollar per GB);
    /// from the upstream they would have cost `upstream` per GB.
    pub fn bytes_sent(&self, payer: &Arc<str>, bytes: u64, price: u64, upstream: Option<u64>) {
        let gb = bytes as f64 / 1e9;
        self.cost.with(&NameLabel("payer", payer.clone()), |c| {
            c.inc_by(gb * price as f64 / 1e6);
        });
        if let Some(up) = upstream
            && up > price
        {
            self.savings.inc_by(gb * (up - price) as f64 / 1e6);
        }
    }

    pub fn failover(&self, from: &str, to: &str) {
        self.failovers
            .get_or_create(&vec![("from", from.to_owned()), ("to", to.to_owned())])
            .inc();
    }
}
