//! The figures of a report, from metric samples: requests, bytes, the
//! share mirrors served, cost and savings, per client class and per
//! backend. One computation for every view: `report --metrics` (totals
//! since start), `report --prometheus` (increases over a window) and the
//! admin listener's `/report` page.
//!
//! Cost and savings are bytes times the prices each instance exports
//! (`steer_price_dollars_per_gb`), so they are the prices in force when
//! the figures were read.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::exposition::Sample;

pub const REQUESTS: &str = "steer_requests_total";
pub const BLOB_BYTES: &str = "steer_blob_bytes_total";
pub const PRICE: &str = "steer_price_dollars_per_gb";
pub const SYNS: &str = "steer_xdp_syns_total";
pub const DROPPED_SYNS: &str = "steer_xdp_dropped_syns_total";
/// The backend label of blobs sent to the upstream registry.
pub const UPSTREAM: &str = "upstream";

/// Labels that tell instances apart, dropped when instances are summed.
const INSTANCE_LABELS: [&str; 2] = ["instance", "job"];

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClassRow {
    pub provider: String,
    pub region: String,
    /// Every request of clients of this class.
    pub requests: u64,
    pub blob_requests: u64,
    /// Blob bytes redirected for these clients, to wherever they went.
    pub bytes: u64,
    /// Of them, bytes sent to a backend rather than the upstream.
    pub mirror_bytes: u64,
    /// `mirror_bytes / bytes` (absent while no bytes are known).
    pub mirror_share: Option<f64>,
    pub cost_dollars: f64,
    pub savings_dollars: f64,
    /// SYNs the XDP program counted for the class, and dropped; absent
    /// without XDP.
    pub syns: Option<u64>,
    pub dropped_syns: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BackendRow {
    /// A backend's name, or `upstream`.
    pub backend: String,
    pub blob_requests: u64,
    pub bytes: u64,
    /// Of every blob byte redirected.
    pub share: Option<f64>,
    pub price_per_gb: Option<f64>,
    pub cost_dollars: f64,
    pub savings_dollars: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub blob_requests: u64,
    pub bytes: u64,
    pub mirror_bytes: u64,
    pub mirror_share: Option<f64>,
    pub cost_dollars: f64,
    pub savings_dollars: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// "since start" or "last 24h".
    pub window: String,
    /// Instances the figures sum.
    pub instances: usize,
    /// False when no upstream price is known; upstream bytes are counted
    /// only with `[cost] measure_upstream`.
    pub upstream_price_per_gb: Option<f64>,
    pub classes: Vec<ClassRow>,
    pub backends: Vec<BackendRow>,
    pub total: Totals,
}

/// Sums the samples of several instances by name and labels, dropping
/// `instance` and `job`. Prices are not added: the highest is kept.
pub fn merge(instances: impl IntoIterator<Item = Vec<Sample>>) -> Vec<Sample> {
    let mut sums: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
    for sample in instances.into_iter().flatten() {
        let mut labels: Vec<(String, String)> = sample
            .labels
            .into_iter()
            .filter(|(k, _)| !INSTANCE_LABELS.contains(&k.as_str()))
            .collect();
        labels.sort();
        let is_price = sample.name == PRICE;
        let v = sample.value;
        sums.entry((sample.name, labels))
            .and_modify(|sum| *sum = if is_price { sum.max(v) } else { *sum + v })
            .or_insert(v);
    }
    let mut out: Vec<Sample> = Vec::with_capacity(sums.len());
    for ((name, labels), value) in sums {
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The report of `samples`: one instance's, or several [`merge`]d.
pub fn figures(samples: &[Sample], window: &str, instances: usize) -> Report {
    let prices: HashMap<&str, f64> = samples
        .iter()
        .filter(|s| s.name == PRICE && s.value.is_finite())
        .map(|s| (s.label("backend"), s.value))
        .collect();
    let upstream_price = prices.get(UPSTREAM).copied();
    let price = |backend: &str| prices.get(backend).copied().unwrap_or(0.0);
    let saving = |backend: &str| match upstream_price {
        Some(up) if backend != UPSTREAM => (up - price(backend)).max(0.0),
        _ => 0.0,
    };

    let mut classes: BTreeMap<(String, String), ClassRow> = BTreeMap::new();
    let mut backends: BTreeMap<String, BackendRow> = BTreeMap::new();
    for s in samples {
        let n = counter(s.value);
        match s.name.as_str() {
            REQUESTS => {
                let row = class_row(&mut classes, s);
                row.requests += n;
                if s.label("route") == "blob" {
                    row.blob_requests += n;
                    backend_row(&mut backends, s.label("backend")).blob_requests += n;
                }
            }
            BLOB_BYTES => {
                let backend = s.label("backend");
                let gb = n as f64 / 1e9;
                let row = class_row(&mut classes, s);
                row.bytes += n;
                if backend != UPSTREAM {
                    row.mirror_bytes += n;
                }
                row.cost_dollars += gb * price(backend);
                row.savings_dollars += gb * saving(backend);
                let b = backend_row(&mut backends, backend);
                b.bytes += n;
                b.cost_dollars += gb * price(backend);
                b.savings_dollars += gb * saving(backend);
            }
            SYNS => *class_row(&mut classes, s).syns.get_or_insert(0) += n,
            DROPPED_SYNS => *class_row(&mut classes, s).dropped_syns.get_or_insert(0) += n,
            _ => {}
        }
    }

    let mut classes: Vec<ClassRow> = classes
        .into_values()
        .filter(|c| c.requests > 0 || c.bytes > 0 || c.syns.unwrap_or(0) > 0)
        .map(|mut c| {
            c.mirror_share = share(c.mirror_bytes, c.bytes);
            c
        })
        .collect();
    classes.sort_by(|a, b| {
        (b.bytes, b.requests, b.syns)
            .cmp(&(a.bytes, a.requests, a.syns))
            .then_with(|| (&a.provider, &a.region).cmp(&(&b.provider, &b.region)))
    });
    let total_bytes: u64 = backends.values().map(|b| b.bytes).sum();
    let mut backends: Vec<BackendRow> = backends
        .into_values()
        .map(|mut b| {
            b.share = share(b.bytes, total_bytes);
            b.price_per_gb = prices.get(b.backend.as_str()).copied();
            b
        })
        .collect();
    backends.sort_by(|a, b| {
        (b.bytes, b.blob_requests)
            .cmp(&(a.bytes, a.blob_requests))
            .then_with(|| a.backend.cmp(&b.backend))
    });

    let mut total = Totals::default();
    for c in &classes {
        total.requests += c.requests;
        total.blob_requests += c.blob_requests;
        total.bytes += c.bytes;
        total.mirror_bytes += c.mirror_bytes;
        total.cost_dollars += c.cost_dollars;
        total.savings_dollars += c.savings_dollars;
    }
    total.mirror_share = share(total.mirror_bytes, total.bytes);
    Report {
        window: window.to_owned(),
        instances,
        upstream_price_per_gb: upstream_price,
        classes,
        backends,
        total,
    }
}

/// A counter's value as a count: counters only hold whole, finite,
/// non-negative numbers, and anything else counts nothing.
fn counter(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn class_row<'a>(
    rows: &'a mut BTreeMap<(String, String), ClassRow>,
    s: &Sample,
) -> &'a mut ClassRow {
    let (provider, region) = (s.label("provider"), s.label("region"));
    rows.entry((provider.to_owned(), region.to_owned()))
        .or_insert_with(|| ClassRow {
            provider: provider.to_owned(),
            region: region.to_owned(),
            ..ClassRow::default()
        })
}

fn backend_row<'a>(rows: &'a mut BTreeMap<String, BackendRow>, name: &str) -> &'a mut BackendRow {
    rows.entry(name.to_owned()).or_insert_with(|| BackendRow {
        backend: name.to_owned(),
        ..BackendRow::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::exposition::parse;

    const ONE: &str = r#"
steer_requests_total{route="blob",status="307",provider="aws",region="eu-west-3",backend="eu",source="xdp"} 4
steer_requests_total{route="manifest",status="307",provider="aws",region="eu-west-3",backend="upstream",source="xdp"} 2
steer_requests_total{route="blob",status="307",provider="gcp",region="us-east1",backend="upstream",source="xdp"} 1
steer_blob_bytes_total{backend="eu",provider="aws",region="eu-west-3"} 3000000000
steer_blob_bytes_total{backend="upstream",provider="gcp",region="us-east1"} 1000000000
steer_price_dollars_per_gb{backend="eu"} 0.02
steer_price_dollars_per_gb{backend="upstream"} 0.12
steer_xdp_syns_total{provider="aws",region="eu-west-3"} 3
steer_xdp_syns_total{provider="azure",region="westus"} 0
"#;

    fn one() -> Vec<Sample> {
        parse(ONE).unwrap()
    }

    #[test]
    fn one_instance() {
        let r = figures(&one(), "since start", 1);
        assert_eq!(r.upstream_price_per_gb, Some(0.12));
        // A class with nothing counted is left out.
        let names: Vec<_> = r.classes.iter().map(|c| c.region.as_str()).collect();
        assert_eq!(names, ["eu-west-3", "us-east1"]);
        let eu = &r.classes[0];
        assert_eq!((eu.requests, eu.blob_requests), (6, 4));
        assert_eq!(
            (eu.bytes, eu.mirror_bytes, eu.mirror_share),
            (3_000_000_000, 3_000_000_000, Some(1.0))
        );
        assert!((eu.cost_dollars - 0.06).abs() < 1e-12);
        assert!((eu.savings_dollars - 0.30).abs() < 1e-12);
        assert_eq!((eu.syns, eu.dropped_syns), (Some(3), None));
        let gcp = &r.classes[1];
        assert_eq!((gcp.mirror_share, gcp.savings_dollars), (Some(0.0), 0.0));
        assert!((gcp.cost_dollars - 0.12).abs() < 1e-12);
        let backends: Vec<_> = r
            .backends
            .iter()
            .map(|b| (b.backend.as_str(), b.blob_requests, b.bytes, b.share))
            .collect();
        assert_eq!(
            backends,
            [
                ("eu", 4, 3_000_000_000, Some(0.75)),
                ("upstream", 1, 1_000_000_000, Some(0.25))
            ]
        );
        assert_eq!(r.total.requests, 7);
        assert_eq!(r.total.mirror_share, Some(0.75));
        assert!((r.total.savings_dollars - 0.30).abs() < 1e-12);
    }

    #[test]
    fn instances_add_up_but_prices_do_not() {
        let tagged = |instance: &str| {
            one()
                .into_iter()
                .map(|mut s| {
                    s.labels.push(("instance".into(), instance.into()));
                    s
                })
                .collect::<Vec<_>>()
        };
        let merged = merge([tagged("a:9102"), tagged("b:9102")]);
        assert!(merged.iter().all(|s| s.label("instance").is_empty()));
        let r = figures(&merged, "since start", 2);
        assert_eq!(r.upstream_price_per_gb, Some(0.12));
        assert_eq!(r.total.bytes, 8_000_000_000);
        assert_eq!(r.total.requests, 14);
        assert!((r.total.savings_dollars - 0.60).abs() < 1e-12);
    }

    #[test]
    fn without_prices_nothing_is_priced() {
        let samples: Vec<Sample> = one().into_iter().filter(|s| s.name != PRICE).collect();
        let r = figures(&samples, "since start", 1);
        assert_eq!(r.upstream_price_per_gb, None);
        assert_eq!((r.total.cost_dollars, r.total.savings_dollars), (0.0, 0.0));
        assert_eq!(r.backends[0].price_per_gb, None);
        // Nothing at all: empty tables, no shares.
        let r = figures(&[], "since start", 0);
        assert!(r.classes.is_empty() && r.backends.is_empty());
        assert_eq!(r.total.mirror_share, None);
    }
}
