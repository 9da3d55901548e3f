//! The config file through the whole model: parsed into a layer, resolved
//! with the defaults.

use std::time::Duration;

use steer_user::Class;

use super::{Config, ConfigError, Layer, fleet_file::parse_class};
use crate::forwarded::Forwarded;

struct Parsed {
    settings: super::Settings,
    config: Config,
}

fn parse(text: &str) -> Result<Parsed, ConfigError> {
    let layer = super::file::parse(text)?;
    let config = Config::from_layers(Layer::default().under(layer), Layer::default())?;
    Ok(Parsed {
        settings: config.settings.clone(),
        config,
    })
}

fn class(s: &str) -> Class {
    parse_class(s).unwrap()
}

const FULL: &str = r#"
    [upstream]
    registry = "https://registry.example.org/"
    path = "mirror"
    signature = "https://sig.example.org"

    [[backend]]
    name = "fra"
    base_url = "https://fra.example.org/blobs"
    serves = ["aws/eu-central-1", "sponsor/fra1"]

    [[backend]]
    name = "iad"
    base_url = "http://iad.example.org"
    serves = ["aws/us-east-1"]

    [fallback]
    nearest = { aws = "iad" }
    unknown = "upstream"

    [blob_check]
    timeout = "3s"
    cache_entries = 500
    found_ttl = "1h"
    missing_ttl = "30s"

    [client]
    trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]

    [server]
    listen = "[::]:9000"
    admin = "127.0.0.1:9999"
    proxy_protocol = true
"#;

#[test]
fn a_full_config() {
    let c = parse(FULL).unwrap();
    let s = &c.settings;
    assert_eq!(s.upstream, "https://registry.example.org");
    assert_eq!(s.upstream_path, "mirror");
    assert_eq!(
        s.signature_upstream.as_deref(),
        Some("https://sig.example.org")
    );
    let name = |c: &str| {
        let class = if c == "unknown" {
            Class::unknown()
        } else {
            class(c)
        };
        s.backends
            .candidates(&class, 1)
            .first()
            .map_or("upstream".into(), |c| {
                format!("{:?} {}", c.why, c.backend.name)
            })
    };
    assert_eq!(name("sponsor/fra1"), "Region fra");
    assert_eq!(name("aws/eu-west-3"), "Nearest iad");
    assert_eq!(name("gcp/europe-west1"), "upstream");
    assert_eq!(name("unknown"), "upstream");
    assert_eq!(s.blob_check.timeout, Duration::from_secs(3));
    assert_eq!(s.blob_check.capacity, 500);
    assert!(matches!(&s.forwarded, Forwarded::Trusted(p) if p.len() == 2));
    let c = &c.config;
    assert_eq!(c.listen, "[::]:9000".parse().unwrap());
    assert_eq!(c.admin, "127.0.0.1:9999".parse().unwrap());
    assert!(c.proxy_protocol);
    assert_eq!(c.tls, None);
}

#[test]
fn an_empty_file_keeps_the_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.settings.upstream, super::settings::DEFAULT_UPSTREAM);
    let first = c.settings.backends.candidates(&class("aws/eu-west-3"), 1);
    assert_eq!(&*first[0].backend.name, "aws-eu-west-3");
}

#[test]
fn workers_default_to_one_per_cpu() {
    assert_eq!(parse("").unwrap().config.workers, super::default_workers());
    assert_eq!(parse("[server]\nworkers = 3").unwrap().config.workers, 3);
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("[server]\nworkers = 0", "server.workers"),
        ("[server]\nworkers = 100000", "server.workers"),
        ("[upstream]\nregistry = \"ftp://x\"", "upstream.registry"),
        ("[upstream]\npath = \"a/../b\"", "upstream.path"),
        ("[upstream]\nregistyr = \"https://x\"", "registyr"),
        (
            "[[backend]]\nname = \"a b\"\nbase_url = \"https://x\"",
            "backend[0].name",
        ),
        (
            "[[backend]]\nname = \"a\"\nbase_url = \"https://x?q\"",
            "backend[0].base_url",
        ),
        (
            "[[backend]]\nname = \"a\"\nbase_url = \"https://x\"\nserves = [\"aws\"]",
            "backend[0].serves[0]",
        ),
        (
            "[[backend]]\nname = \"a\"\nbase_url = \"https://x\"\nserves = [\"aws/x\", \"aws/x\"]",
            "backend[0].serves[1]: `aws/x` is listed twice",
        ),
        (
            "[[backend]]\nname = \"a\"\nbase_url = \"https://x\"\nweight = 0",
            "backend[0].weight: must be at least 1",
        ),
        (
            "[[backend]]\nname = \"a\"\nbase_url = \"https://x\"\nlocation = \"sponsor/x\"\n[fallback]\nnearest = \"geo\"",
            "backend[0].location: `sponsor/x` has no known place",
        ),
        (
            "[fallback]\nnearest = \"closest\"",
            "fallback.nearest: `closest` is not",
        ),
        ("[fallback]\nmax_candidates = 0", "fallback.max_candidates"),
        (
            "[[location]]\nclass = \"sponsor/x\"\nlat = 91\nlon = 0",
            "location[0]: lat 91",
        ),
        (
            "[[backend]]\nname = \"a\"\nbase_url = \"https://x\"\n[[backend]]\nname = \"a\"\nbase_url = \"https://y\"",
            "backend[1].name",
        ),
        (
            "[fallback]\nunknown = \"nope\"",
            "fallback.unknown: no backend named `nope`",
        ),
        (
            "[fallback]\nnearest = { aws = \"nope\" }",
            "fallback.nearest.aws",
        ),
        ("[blob_check]\ntimeout = \"soon\"", "blob_check.timeout"),
        ("[blob_check]\ntimeout = \"0s\"", "blob_check.timeout"),
        ("[blob_check]\nfound_ttl = \"1e30\"", "blob_check.found_ttl"),
        (
            "[blob_check]\nmax_in_flight = 0",
            "blob_check.max_in_flight",
        ),
        ("[server]\nidle_timeout = \"inf\"", "server.idle_timeout"),
        ("[server]\nheader_timeout = \"0\"", "server.header_timeout"),
        ("[server]\ngrace = \"1e20\"", "server.grace"),
        ("[server]\nmax_connections = 0", "server.max_connections"),
        ("[server]\nmax_streams = 0", "server.max_streams"),
        ("[blob_check]\ncache_entries = \"many\"", "cache_entries"),
        (
            "[client]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "client.trusted_proxies[0]",
        ),
        ("[client]\nforwarded = \"trusted\"", "client.forwarded"),
        ("[client]\nforwarded = \"any\"", "client.forwarded"),
        ("[server]\nlisten = \"8080\"", "server.listen"),
        ("not toml at all", "line 1"),
        ("[policy]\ndrop = [\"aws\"]", "policy.drop[0]"),
        (
            "[policy]\nsyn_rate = { default = \"100\" }",
            "policy.syn_rate.default: `100` is not a rate",
        ),
        (
            "[policy]\nrequest_rate = { aws = \"1/s\" }",
            "policy.request_rate: `aws` is not provider/region",
        ),
        (
            "[policy]\nsyn_rate = { \"a/b\" = \"1/s\" }\nsyn_burst = { \"a/b\" = -1 }",
            "syn_burst",
        ),
        (
            "[server]\ntls_cert = \"c.pem\"",
            "server.tls_cert, server.tls_key",
        ),
    ];
    for (text, want) in cases {
        let err = format!(
            "{:#}",
            parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"))
        );
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn policy_drop_lists_classes() {
    let c = parse("[policy]\ndrop = [\"aws/us-east-1\", \"sponsor/fra1\"]").unwrap();
    assert_eq!(
        c.config.drop,
        vec![class("aws/us-east-1"), class("sponsor/fra1")]
    );
    assert!(parse("").unwrap().config.drop.is_empty());
}

#[test]
fn policy_limits_by_class() {
    let c = parse(
        "[policy]\nsyn_rate = { default = \"100/s\", unknown = \"20/s\", \"aws/us-east-1\" = \"1000/s\" }\nsyn_burst = { default = 200 }\nrequest_rate = { default = \"5000/m\" }\n",
    )
    .unwrap();
    let syn = &c.config.syn_limits;
    assert_eq!(
        syn.of(&class("aws/us-east-1"))
            .map(|r| (r.per_second, r.burst)),
        Some((1000.0, 200))
    );
    assert_eq!(syn.of(&Class::unknown()).map(|r| r.per_second), Some(20.0));
    assert_eq!(syn.of(&class("gcp/x")).map(|r| r.per_second), Some(100.0));
    let requests = &c.settings.request_limits;
    assert_eq!(requests.of(&class("gcp/x")).map(|r| r.burst), Some(84));
    // None configured: no limits at all.
    let c = parse("").unwrap();
    assert!(c.config.syn_limits.is_empty() && c.settings.request_limits.is_empty());
}

#[test]
fn layers_stack_env_then_file_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steer.toml");
    std::fs::write(
        &path,
        "[upstream]\npath = \"from-file\"\n[server]\nheader_timeout = \"3s\"\n",
    )
    .unwrap();
    let env = |k: &str| match k {
        "UPSTREAM_REGISTRY_ENDPOINT" => Some("https://env.example".to_owned()),
        "UPSTREAM_REGISTRY_PATH" => Some("from-env".to_owned()),
        "PORT" => Some("9000".to_owned()),
        _ => None,
    };
    let flags = Layer {
        file: Some(path.clone()),
        header_timeout: Some(Duration::from_secs(7)),
        ..Layer::default()
    };
    let c = Config::resolve(env, flags).unwrap();
    assert_eq!(c.settings.upstream, "https://env.example");
    assert_eq!(c.settings.upstream_path, "from-file");
    assert_eq!(c.limits.header_timeout, Duration::from_secs(7));
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.file(), Some(path.as_path()));
    let bad = Config::resolve(|k| (k == "PORT").then(|| "x".to_owned()), Layer::default());
    assert!(bad.unwrap_err().to_string().contains("PORT"));
}
