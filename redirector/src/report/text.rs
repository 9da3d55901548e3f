//! A report for people: a table per client class and per backend.

use super::figures::{Report, UPSTREAM};
use crate::sync::report::{bytes, render};

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "Blob traffic {}, {} instance{}; upstream {}\n\n",
            self.window,
            self.instances,
            if self.instances == 1 { "" } else { "s" },
            self.upstream_price_per_gb
                .map_or("price unknown".to_owned(), |p| format!("at ${p}/GB"))
        );
        let xdp = self.classes.iter().any(|c| c.syns.is_some());
        let mut head = vec![
            "provider",
            "region",
            "requests",
            "blob requests",
            "bytes",
            "by mirrors",
            "cost $",
            "saved $",
        ];
        if xdp {
            head.extend(["SYNs (XDP)", "dropped"]);
        }
        let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
        for c in &self.classes {
            let mut row = vec![
                c.provider.clone(),
                c.region.clone(),
                c.requests.to_string(),
                c.blob_requests.to_string(),
                bytes(c.bytes),
                percent(c.mirror_share),
                dollars(c.cost_dollars),
                dollars(c.savings_dollars),
            ];
            if xdp {
                row.push(c.syns.map_or("-".into(), |n| n.to_string()));
                row.push(c.dropped_syns.map_or("-".into(), |n| n.to_string()));
            }
            rows.push(row);
        }
        let t = &self.total;
        rows.push(vec![
            "total".into(),
            String::new(),
            t.requests.to_string(),
            t.blob_requests.to_string(),
            bytes(t.bytes),
            percent(t.mirror_share),
            dollars(t.cost_dollars),
            dollars(t.savings_dollars),
        ]);
        out.push_str("By client class\n");
        out.push_str(&render(&rows));

        let mut rows = vec![
            [
                "backend",
                "blob requests",
                "bytes",
                "share",
                "$/GB",
                "cost $",
                "saved $",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for b in &self.backends {
            rows.push(vec![
                b.backend.clone(),
                b.blob_requests.to_string(),
                bytes(b.bytes),
                percent(b.share),
                b.price_per_gb.map_or("-".into(), |p| p.to_string()),
                dollars(b.cost_dollars),
                dollars(b.savings_dollars),
            ]);
        }
        out.push_str("\nBy backend\n");
        out.push_str(&render(&rows));
        if self.upstream_price_per_gb.is_some()
            && !self
                .backends
                .iter()
                .any(|b| b.backend == UPSTREAM && b.bytes > 0)
            && self
                .backends
                .iter()
                .any(|b| b.backend == UPSTREAM && b.blob_requests > 0)
        {
            out.push_str(
                "\nUpstream bytes are not measured: set [cost] measure_upstream = true to count them.\n",
            );
        }
        out
    }
}

pub fn percent(share: Option<f64>) -> String {
    share.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
}

/// Dollars with enough digits to show small amounts: a test pull costs
/// millionths.
pub fn dollars(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.6}")
    }
}
