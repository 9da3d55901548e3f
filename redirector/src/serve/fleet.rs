//! The fleet as the server sees it while serving: which backend a blob
//! request ends at after the candidates before it were tried, counted
//! per pair.

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

type Pair = Vec<(&'static str, String)>;

#[derive(Clone, Default)]
pub struct FleetMetrics {
    /// A blob request that its first candidate did not serve, by that
    /// candidate and where the request went instead (a backend or
    /// `upstream`).
    failovers: Family<Pair, Counter>,
}

impl FleetMetrics {
    pub fn register(registry: &mut Registry) -> FleetMetrics {
        let m = FleetMetrics::default();
        registry.register(
            "backend_failovers",
            "Blob requests that their first candidate backend did not serve, by that backend and where they went",
            m.failovers.clone(),
        );
        m
    }

    pub fn failover(&self, from: &str, to: &str) {
        self.failovers
            .get_or_create(&vec![("from", from.to_owned()), ("to", to.to_owned())])
            .inc();
    }
}
