//! The cost steps of the end-to-end pulls: `redirector report` from a
//! real Prometheus and from `/metrics`, and `/report` in a real browser,
//! against the bytes of the blobs the clients pulled.

use std::time::Duration;

use serde_json::Value;
use steer_tests::{
    browser,
    process::{run_bounded, text},
    prometheus::Prometheus,
    pulls::{MIRRORS, Topology, UPSTREAM_PER_GB},
};

use super::ADMIN;

const BIN: &str = env!("CARGO_BIN_EXE_redirector");

/// Blob bytes pulled: (backend, provider, region, bytes).
pub type Pulled<'a> = [(&'a str, &'a str, &'a str, u64)];

fn report(t: &Topology, args: &[&str]) -> (Value, String) {
    let run = |json: bool| {
        let mut cmd = t.redirector_ns.command(BIN);
        cmd.arg("report").args(args);
        if json {
            cmd.arg("--json");
        }
        let out = run_bounded(&mut cmd, Duration::from_secs(60))
            .unwrap_or_else(|o| panic!("report {args:?} ran over 60 s: {}", text(&o)));
        assert!(out.status.success(), "report {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json: Value = serde_json::from_str(&run(true)).expect("report --json");
    (json, run(false))
}

fn row<'a>(report: &'a Value, table: &str, key: &[(&str, &str)]) -> &'a Value {
    report[table]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| key.iter().all(|(k, v)| r[*k].as_str() == Some(*v)))
        })
        .unwrap_or_else(|| panic!("no {table} row {key:?} in {report:#}"))
}

fn price(backend: &str) -> f64 {
    MIRRORS
        .iter()
        .find(|m| m.name == backend)
        .map_or(UPSTREAM_PER_GB, |m| m.price_per_gb)
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is no number"));
    assert!(
        (got - want).abs() <= want.abs() * 1e-9 + 1e-15,
        "{what}: {got}, expected {want}"
    );
}

/// The sum of `name`'s samples whose labels include every `labels` pair,
/// in a `/metrics` text.
fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Checks both reports and the page against `pulled`, the only blob
/// traffic so far; returns the bytes the eu-west-3 mirror was sent.
pub fn check_after_pulls(t: &Topology, prometheus: &Prometheus, pulled: &Pulled) -> u64 {
    let total: u64 = pulled.iter().map(|p| p.3).sum();
    prometheus.wait_for(
        &t.redirector_ns,
        "sum(steer_blob_bytes_total)",
        total as f64,
    );
    let (from_prometheus, table) = report(t, &["--prometheus", &prometheus.url, "--since", "1h"]);
    let (from_metrics, _) = report(t, &["--metrics", &format!("http://{ADMIN}")]);
    eprintln!(
        "redirector report --prometheus {} --since 1h:\n{table}",
        prometheus.url
    );
    let savings: f64 = pulled
        .iter()
        .map(|(b, _, _, n)| *n as f64 / 1e9 * (UPSTREAM_PER_GB - price(b)).max(0.0))
        .sum();
    let cost: f64 = pulled
        .iter()
        .map(|(b, _, _, n)| *n as f64 / 1e9 * price(b))
        .sum();
    for (source, r) in [("prometheus", &from_prometheus), ("metrics", &from_metrics)] {
        assert_eq!(r["instances"], 1, "{source}");
        for backend in ["eu-west-3", "us-east-1", "upstream"] {
            let want: u64 = pulled.iter().filter(|p| p.0 == backend).map(|p| p.3).sum();
            let got = &row(r, "backends", &[("backend", backend)])["bytes"];
            assert_eq!(got.as_u64(), Some(want), "{source}: bytes to {backend}");
        }
        for (backend, provider, region, bytes) in pulled {
            let c = row(r, "classes", &[("provider", provider), ("region", region)]);
            assert_eq!(
                c["bytes"].as_u64(),
                Some(*bytes),
                "{source}: {provider}/{region}"
            );
            let by_mirrors = if *backend == "upstream" { 0 } else { *bytes };
            assert_eq!(c["mirror_bytes"].as_u64(), Some(by_mirrors), "{source}");
        }
        close(&r["total"]["savings_dollars"], savings, source);
        close(&r["total"]["cost_dollars"], cost, source);
        assert!(
            r["total"]["blob_requests"].as_u64() >= Some(6),
            "{source}: {r:#}"
        );
    }
    // The window's increases and the totals since start agree on every
    // count, requests included.
    for table in ["backends", "classes"] {
        let counts = |r: &Value| -> Vec<(String, u64, u64)> {
            r[table]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    let name = format!("{}{}{}", x["backend"], x["provider"], x["region"]);
                    (
                        name,
                        x["bytes"].as_u64().unwrap(),
                        x["blob_requests"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        assert_eq!(counts(&from_prometheus), counts(&from_metrics), "{table}");
    }
    check_page(t);
    row(&from_prometheus, "backends", &[("backend", "eu-west-3")])["bytes"]
        .as_u64()
        .unwrap()
}

/// `/report` in Chromium: every backend row shows what `/metrics` says,
/// both charts are drawn, and a screenshot lands in the test directory.
fn check_page(t: &Topology) {
    let url = format!("http://{ADMIN}/report");
    let metrics = t.metrics();
    let dom = browser::dom(&t.redirector_ns, t.dir.path(), &url);
    let rows: Vec<&str> = dom.split("<tr class=\"backend\" ").skip(1).collect();
    assert_eq!(rows.len(), 3, "backend rows:\n{dom}");
    for r in rows {
        let attr = |name: &str| -> String {
            let (_, rest) = r
                .split_once(&format!("{name}=\""))
                .unwrap_or_else(|| panic!("no {name} in {r}"));
            rest.split('"').next().unwrap().to_owned()
        };
        let backend = attr("data-backend");
        let bytes: u64 = attr("data-bytes").parse().unwrap();
        let requests: u64 = attr("data-blob-requests").parse().unwrap();
        let label = [("backend", backend.as_str())];
        assert_eq!(
            bytes,
            metric_sum(&metrics, "steer_blob_bytes_total", &label),
            "{backend}: page bytes against /metrics"
        );
        assert_eq!(
            requests,
            metric_sum(
                &metrics,
                "steer_requests_total",
                &[("route", "blob"), ("backend", &backend)]
            ),
            "{backend}: page blob requests against /metrics"
        );
    }
    assert!(dom.contains("<svg id=\"bytes-chart\""), "{dom}");
    assert_eq!(
        dom.matches("<polyline class=\"series\"").count(),
        3,
        "{dom}"
    );
    assert_eq!(dom.matches("<rect class=\"share\"").count(), 4, "{dom}");
    let png = t.dir.path().join("report.png");
    browser::screenshot(&t.redirector_ns, t.dir.path(), &url, &png, 1000, 1400);
    let shot = std::fs::read(&png).expect("the screenshot");
    assert_eq!(
        browser::png_size(&shot),
        Some((1000, 1400)),
        "{}",
        png.display()
    );
}

/// After the restart: the window's report holds the old process's bytes
/// before the first check and everything the new one counted.
pub fn check_across_restart(t: &Topology, prometheus: &Prometheus, eu_before: u64) {
    let eu = [("backend", "eu-west-3")];
    let now = metric_sum(&t.metrics(), "steer_blob_bytes_total", &eu);
    assert!(now > 0, "the new process sent nothing to eu-west-3");
    prometheus.wait_for(
        &t.redirector_ns,
        "sum(steer_blob_bytes_total{backend=\"eu-west-3\"})",
        now as f64,
    );
    let (r, _) = report(t, &["--prometheus", &prometheus.url, "--since", "1h"]);
    let got = row(&r, "backends", &[("backend", "eu-west-3")])["bytes"]
        .as_u64()
        .unwrap();
    assert!(
        got >= eu_before + now,
        "eu-west-3: {got} bytes over the window, fewer than {eu_before} before the restart plus {now} since"
    );
}
