//! `steer_xdp_syns_total`, `steer_xdp_dropped_syns_total` and
//! `steer_xdp_rate_limited_syns_total`: the XDP program's per-class
//! counters, read from the kernel at each scrape.

use std::sync::{Arc, RwLock};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter},
};
use steer_user::{ClassCounters, Steer};
use tracing::warn;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    provider: String,
    region: String,
}

/// `steer_xdp_syns_total` and `steer_xdp_dropped_syns_total` per class:
/// what the kernel counted, summed over CPUs and map generations. Read at
/// scrape time, so they cost nothing between scrapes.
pub struct XdpCounters(pub Arc<RwLock<Steer>>);

impl std::fmt::Debug for XdpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XdpCounters")
    }
}

impl Collector for XdpCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counters = {
            let steer = self.0.read().unwrap_or_else(|e| e.into_inner());
            steer.class_counters()
        };
        let counters = match counters {
            Ok(c) => c,
            Err(e) => {
                // A scrape without these beats a failed scrape.
                warn!(error = %e, "reading the XDP class counters");
                return Ok(());
            }
        };
        let labelled: Vec<_> = counters
            .iter()
            .map(|(class, c)| {
                let labels = ClassLabels {
                    provider: class.provider_label().to_owned(),
                    region: class.region_label().to_owned(),
                };
                (labels, c)
            })
            .collect();
        type Field = fn(&ClassCounters) -> u64;
        let series: [(&str, &str, Field); 3] = [
            (
                "xdp_syns",
                "SYNs to the service port classified by XDP, per class",
                |c| c.syns,
            ),
            (
                "xdp_dropped_syns",
                "SYNs dropped by a class policy in XDP",
                |c| c.dropped,
            ),
            (
                "xdp_rate_limited_syns",
                "SYNs dropped in XDP because their source was over [policy] syn_rate",
                |c| c.rate_limited,
            ),
        ];
        for (name, help, field) in series {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, c) in &labelled {
                ConstCounter::new(field(c)).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}
