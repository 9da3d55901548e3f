//! The Kubernetes manifests in deploy/kubernetes are real: every document
//! parses, has the apiVersion its kind needs and the fields the API
//! requires, selectors match their pod labels, volume mounts name
//! declared volumes; every command line uses subcommands and flags the
//! binary takes; listen ports match the declared container ports and the
//! probes point at the admin listener's /healthz and /readyz; files named
//! in arguments lie under a mount; and the ConfigMap's config file passes
//! `check-config` and its images file parses as sync reads it.

use std::{collections::BTreeSet, path::Path, process::Command};

use serde::Deserialize as _;
use serde_yaml_ng::Value;

const BIN: &str = env!("CARGO_BIN_EXE_redirector");

fn documents() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} document {i}: {e}", f.display()));
            docs.push((
                format!("{}#{i}", f.file_name().unwrap().to_string_lossy()),
                v,
            ));
        }
    }
    docs
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path)?.as_str()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

/// The pod spec of a workload, wherever its kind keeps it.
fn pod_spec<'a>(kind: &str, doc: &'a Value) -> Option<&'a Value> {
    match kind {
        "DaemonSet" | "Deployment" => get(doc, &["spec", "template", "spec"]),
        "CronJob" => get(doc, &["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

fn help(subcommand: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(subcommand)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`redirector {}` is not a command",
        subcommand.join(" ")
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn manifests_match_the_api_and_the_binary() {
    let api = |kind: &str| match kind {
        "Namespace" | "ConfigMap" | "Service" => "v1",
        "DaemonSet" | "Deployment" => "apps/v1",
        "CronJob" => "batch/v1",
        "PodDisruptionBudget" => "policy/v1",
        other => panic!("unexpected kind {other}"),
    };
    let mut kinds = BTreeSet::new();
    for (name, doc) in documents() {
        let kind = s(&doc, &["kind"]).unwrap_or_else(|| panic!("{name}: no kind"));
        kinds.insert(kind.to_owned());
        assert_eq!(s(&doc, &["apiVersion"]), Some(api(kind)), "{name}");
        assert!(
            s(&doc, &["metadata", "name"]).is_some(),
            "{name}: no metadata.name"
        );
        if kind != "Namespace" {
            assert_eq!(s(&doc, &["metadata", "namespace"]), Some("steer"), "{name}");
        }
        if let Some(selector) = get(&doc, &["spec", "selector", "matchLabels"]) {
            let labels = get(&doc, &["spec", "template", "metadata", "labels"]);
            if let Some(labels) = labels {
                for (k, v) in selector.as_mapping().unwrap() {
                    assert_eq!(
                        labels.get(k),
                        Some(v),
                        "{name}: selector {k:?} does not match the pod"
                    );
                }
            }
        }
        let Some(pod) = pod_spec(kind, &doc) else {
            continue;
        };
        let volumes: BTreeSet<&str> = seq(pod, &["volumes"])
            .iter()
            .filter_map(|v| s(v, &["name"]))
            .collect();
        let containers: Vec<&Value> = seq(pod, &["containers"])
            .into_iter()
            .chain(seq(pod, &["initContainers"]))
            .collect();
        assert!(!containers.is_empty(), "{name}: no containers");
        for c in containers {
            let cname = s(c, &["name"]).unwrap_or("?");
            let at = format!("{name} container {cname}");
            assert!(s(c, &["image"]).is_some(), "{at}: no image");
            let mounts: Vec<(&str, &str)> = seq(c, &["volumeMounts"])
                .iter()
                .map(|m| (s(m, &["name"]).unwrap(), s(m, &["mountPath"]).unwrap()))
                .collect();
            for (m, _) in &mounts {
                assert!(volumes.contains(m), "{at}: mounts undeclared volume {m}");
            }
            let args: Vec<&str> = seq(c, &["args"])
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let sub: Vec<&str> = args
                .iter()
                .take_while(|a| !a.starts_with('-'))
                .copied()
                .collect();
            assert!(!sub.is_empty(), "{at}: no subcommand");
            let text = help(&sub);
            for (i, flag) in args.iter().enumerate().filter(|(_, a)| a.starts_with("--")) {
                assert!(
                    text.contains(flag),
                    "{at}: {flag} is not a flag of `{}`",
                    sub.join(" ")
                );
                // A file argument must be in a mounted volume.
                if let Some(value) = args.get(i + 1).filter(|v| v.starts_with('/'))
                    && matches!(*flag, "--config" | "--images" | "--snapshot" | "--pin-dir")
                {
                    assert!(
                        mounts.iter().any(|(_, p)| value.starts_with(p)),
                        "{at}: {value} is in no mounted volume"
                    );
                }
            }
            let value_of = |flag: &str| {
                args.iter()
                    .position(|a| *a == flag)
                    .and_then(|i| args.get(i + 1))
                    .copied()
            };
            let port_of = |addr: &str| -> i64 { addr.rsplit(':').next().unwrap().parse().unwrap() };
            if sub == ["serve"] {
                let listen = port_of(value_of("--listen").expect("serve names --listen"));
                let ports: Vec<i64> = seq(c, &["ports"])
                    .iter()
                    .filter_map(|p| get(p, &["containerPort"])?.as_i64())
                    .collect();
                assert!(
                    ports.contains(&listen),
                    "{at}: listens on {listen}, declares {ports:?}"
                );
                let admin =
                    port_of(value_of("--admin-listen").expect("serve names --admin-listen"));
                for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
                {
                    assert_eq!(
                        get(c, &[probe, "httpGet", "port"]).and_then(Value::as_i64),
                        Some(admin),
                        "{at}: {probe}"
                    );
                    assert_eq!(
                        s(c, &[probe, "httpGet", "path"]),
                        Some(path),
                        "{at}: {probe}"
                    );
                }
                if value_of("--xdp-iface").is_some() {
                    let added: Vec<&str> = seq(c, &["securityContext", "capabilities", "add"])
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect();
                    for cap in ["BPF", "NET_ADMIN", "PERFMON"] {
                        assert!(added.contains(&cap), "{at}: XDP needs {cap}");
                    }
                    assert_eq!(
                        get(pod, &["hostNetwork"]).and_then(Value::as_bool),
                        Some(true),
                        "{at}"
                    );
                    assert!(
                        seq(pod, &["volumes"])
                            .iter()
                            .any(|v| s(v, &["hostPath", "path"]) == Some("/sys/fs/bpf")),
                        "{at}: no bpffs hostPath"
                    );
                }
            }
        }
    }
    for kind in [
        "ConfigMap",
        "DaemonSet",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "CronJob",
    ] {
        assert!(kinds.contains(kind), "no {kind} in deploy/kubernetes");
    }
}

#[test]
fn the_configmap_holds_a_valid_config_and_images_file() {
    let docs = documents();
    let (_, cm) = docs
        .iter()
        .find(|(_, d)| s(d, &["kind"]) == Some("ConfigMap"))
        .expect("a ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steer.toml");
    std::fs::write(&config, s(cm, &["data", "steer.toml"]).expect("steer.toml")).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let images = s(cm, &["data", "images.toml"]).expect("images.toml");
    redirector::sync::selection::parse_file(images).expect("images.toml as sync reads it");
}
