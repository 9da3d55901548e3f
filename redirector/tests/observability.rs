//! What operators load into their own stacks is real: promtool accepts
//! `deploy/prometheus/alerts.yaml` and passes its unit tests (every alert
//! fires in `alerts_test.yaml`), every query of the Grafana dashboard
//! `deploy/grafana/steer.json` is PromQL that promtool accepts, and every
//! metric the rules and the dashboard name is one a running redirector
//! (XDP attached, a backend with health checks, a proof, a budget and a
//! price, a failover) exports.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use steer_tests::{
    addrs::{AWS4, SERVER4},
    feed_server::FeedServer,
    launch::{Launch, Redirector},
    netns::{Netns, veth},
    process::{root_or_skip, text},
    pulls::{oci::sha256, redirector::fetch_metrics},
    tcp::http_get,
};

const D: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";
/// A blob the backend lacks: its request fails over upstream.
const ABSENT: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn promtool(dir: &Path, args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (cargo xtask setup installs prometheus)");
    assert!(out.status.success(), "promtool {args:?}: {}", text(&out));
}

fn yaml(path: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every `expr` of the alert rules.
fn alert_exprs() -> Vec<(String, String)> {
    let rules = yaml(&deploy("prometheus/alerts.yaml"));
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every query of the dashboard (panel targets and template variables),
/// with Grafana's variables replaced by what Grafana would put there.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/steer.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("steer.json is JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target with an expr");
            out.push((panel["title"].as_str().unwrap().to_owned(), expr.to_owned()));
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        let q = v["query"].as_str().unwrap_or("");
        if let Some(metric) = q
            .strip_prefix("label_values(")
            .and_then(|r| r.split(',').next())
        {
            out.push((format!("variable {}", v["name"]), metric.to_owned()));
        }
    }
    assert!(out.len() > 20, "only {} queries", out.len());
    out.into_iter()
        .map(|(name, q)| {
            let q = q
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$instance", ".*");
            (name, q)
        })
        .collect()
}

/// `steer_...` names in a query.
fn metric_names(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find("steer_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let dir = deploy("prometheus");
    promtool(&dir, &["check", "rules", "alerts.yaml"]);
    promtool(&dir, &["test", "rules", "alerts_test.yaml"]);
    // Every alert has a case where it fires.
    let tests = yaml(&dir.join("alerts_test.yaml"));
    let fired: BTreeSet<&str> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .filter(|c| c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()))
        .map(|c| c["alertname"].as_str().unwrap())
        .collect();
    for (alert, _) in alert_exprs() {
        assert!(
            fired.contains(alert.as_str()),
            "{alert} never fires in alerts_test.yaml"
        );
    }
}

#[test]
fn every_dashboard_query_is_promql() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in dashboard_queries().iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(q).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.yaml"), rules).unwrap();
    promtool(dir.path(), &["check", "rules", "dashboard.yaml"]);
}

/// Scrapes until `series` (a sample line's start) shows up: at most 20 s.
fn wait_for(ns: &Netns, admin: SocketAddr, series: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = fetch_metrics(ns, admin);
        if m.lines().any(|l| l.starts_with(series)) {
            return m;
        }
        assert!(Instant::now() < deadline, "no {series} in 20 s:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    if !root_or_skip("every_metric_the_rules_and_the_dashboard_name_is_exported") {
        return;
    }
    let srv = Netns::new("obs-s");
    let cli = Netns::new("obs-c");
    veth(&srv, "steer-os", &[SERVER4], &cli, "steer-oc", &[AWS4]);
    let proof = "steer observability\n";
    let bucket = srv
        .spawn(move || {
            let b = FeedServer::start();
            b.set(&format!("paris/containers/images/{D}"), "blob", "");
            b.set("paris/containers/images/canary", "ok", "");
            b.set("paris/steer-ownership", proof, "");
            b
        })
        .join()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steer.toml");
    let hex = sha256(proof.as_bytes())
        .trim_start_matches("sha256:")
        .to_owned();
    std::fs::write(
        &config,
        format!(
            "[upstream]\nregistry = \"{up}\"\n\n\
             [cost]\nmeasure_upstream = true\n\n\
             [[backend]]\nname = \"paris\"\nbase_url = \"{paris}\"\nserves = [\"aws/eu-west-3\"]\n\
             health = {{ path = \"/containers/images/canary\", interval = \"500ms\" }}\n\
             proof = {{ path = \"steer-ownership\", sha256 = \"{hex}\" }}\n\
             max_bytes_per_day = \"1B\"\nprice_per_gb = 0.01\n\n\
             [fallback]\nunknown = \"upstream\"\n",
            up = bucket.url("upstream"),
            paris = bucket.url("paris"),
        ),
    )
    .unwrap();
    let launch = Launch::serve_xdp(
        env!("CARGO_BIN_EXE_redirector").as_ref(),
        &config,
        "steer-os",
        "generic",
        None,
        dir.path(),
        &[],
    );
    let running = Redirector::start(Some(&srv), &launch);
    let admin = running.admin;
    // A backend is sent clients only once its proof matched.
    wait_for(&srv, admin, "steer_backend_proven{backend=\"paris\"} 1");
    wait_for(&srv, admin, "steer_backend_up{backend=\"paris\"}");
    let server: SocketAddr = (SERVER4.parse::<IpAddr>().unwrap(), 8080).into();
    let answers = cli
        .spawn(move || {
            // A failover to upstream, then a blob served by paris, which
            // spends its one-byte budget.
            [ABSENT, D].map(|d| http_get(Some(AWS4), server, &format!("/v2/pause/blobs/{d}")))
        })
        .join()
        .unwrap();
    assert!(
        answers[1].contains(&bucket.url("paris")),
        "{}\n{}",
        answers[1],
        running.log_text()
    );
    let metrics = wait_for(
        &srv,
        admin,
        "steer_backend_over_budget{backend=\"paris\"} 1",
    );
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|name| name.starts_with("steer_"))
        .collect();
    let mut missing = Vec::new();
    for (what, query) in alert_exprs().into_iter().chain(dashboard_queries()) {
        for name in metric_names(&query) {
            if !exported.contains(name.as_str()) {
                missing.push(format!("{what}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but not exported:\n{}\n\nexported: {exported:?}",
        missing.join("\n")
    );
}
