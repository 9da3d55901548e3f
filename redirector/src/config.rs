//! The config file of `redirector serve` (TOML). Every key is optional;
//! what is left out keeps the registry.k8s.io default. An error names the
//! key (TOML syntax errors come with line and column from the parser), and
//! on reload a bad file keeps the old config serving.
//!
//! ```toml
//! [upstream]
//! registry = "https://registry.example.org"
//! path = "mirror"
//! signature = "https://signatures.example.org"
//!
//! [[backend]]
//! name = "fra"
//! base_url = "https://fra.mirror.example.org"
//! serves = ["aws/eu-central-1", "sponsor/fra1"]
//!
//! [fallback]
//! nearest = { aws = "fra" }
//! unknown = "upstream"
//!
//! [blob_check]
//! timeout = "3s"
//!
//! [client]
//! trusted_proxies = ["10.0.0.0/8"]
//!
//! [server]
//! listen = "[::]:8080"
//! admin = "127.0.0.1:9102"
//! ```

use std::{collections::HashMap, net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use ipnet::IpNet;
use serde::Deserialize;
use steer_user::Class;

use crate::{
    backends::{Backend, Backends},
    serve::{Forwarded, Settings},
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    upstream: Upstream,
    #[serde(default)]
    backend: Vec<BackendEntry>,
    fallback: Option<Fallback>,
    #[serde(default)]
    blob_check: BlobCheck,
    #[serde(default)]
    client: Client,
    #[serde(default)]
    server: Server,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Upstream {
    registry: Option<String>,
    path: Option<String>,
    signature: Option<String>,
    info_url: Option<String>,
    privacy_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendEntry {
    name: String,
    base_url: String,
    /// `provider/region` classes this backend serves.
    #[serde(default)]
    serves: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fallback {
    /// Per provider: the backend for its regions no backend lists.
    #[serde(default)]
    nearest: HashMap<String, String>,
    /// A backend name, or "upstream", for clients in no feed.
    unknown: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BlobCheck {
    timeout: Option<String>,
    cache_entries: Option<u64>,
    found_ttl: Option<String>,
    missing_ttl: Option<String>,
    max_in_flight: Option<usize>,
    max_per_connection: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Client {
    #[serde(default)]
    trusted_proxies: Vec<String>,
    /// "peer", "trusted" (the default when trusted_proxies is set) or
    /// "second-to-last".
    forwarded: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Server {
    listen: Option<String>,
    admin: Option<String>,
    proxy_protocol: Option<bool>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    handshake_timeout: Option<String>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    max_streams: Option<u32>,
    grace: Option<String>,
}

/// What a config file sets for the listeners and their limits (read at
/// start only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub proxy_protocol: Option<bool>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub handshake_timeout: Option<Duration>,
    pub header_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub max_streams: Option<u32>,
    pub grace: Option<Duration>,
}

/// A validated config.
pub struct Config {
    pub settings: Settings,
    pub server: ServerConfig,
}

impl Config {
    /// Reads and validates `path`; `defaults` supplies what the file
    /// leaves out (the Go service's environment).
    pub fn read(path: &Path, defaults: Settings) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text, defaults).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str, defaults: Settings) -> Result<Config> {
        let file: File =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
        let mut s = defaults;
        let u = &file.upstream;
        if let Some(r) = &u.registry {
            s.upstream = crate::serve::base_url("upstream.registry", r)?;
        }
        if let Some(p) = &u.path {
            s.upstream_path = crate::serve::plain_path("upstream.path", p)?;
        }
        if let Some(sig) = &u.signature {
            s.signature_upstream = match sig.as_str() {
                "" => None,
                sig => Some(crate::serve::base_url("upstream.signature", sig)?),
            };
        }
        if let Some(i) = &u.info_url {
            s.info_url = crate::serve::base_url("upstream.info_url", i)?;
        }
        if let Some(p) = &u.privacy_url {
            s.privacy_url = crate::serve::base_url("upstream.privacy_url", p)?;
        }
        if !file.backend.is_empty() || file.fallback.is_some() {
            s.backends = backends(&file.backend, file.fallback.as_ref())?;
        }
        let b = &file.blob_check;
        if let Some(t) = &b.timeout {
            s.blob_check.timeout = positive("blob_check.timeout", t)?;
        }
        if let Some(n) = b.cache_entries {
            s.blob_check.capacity = n;
        }
        if let Some(t) = &b.found_ttl {
            s.blob_check.found_ttl = duration("blob_check.found_ttl", t)?;
        }
        if let Some(t) = &b.missing_ttl {
            s.blob_check.missing_ttl = duration("blob_check.missing_ttl", t)?;
        }
        if let Some(n) = b.max_in_flight {
            s.blob_check.max_in_flight = at_least_one("blob_check.max_in_flight", n)?;
        }
        if let Some(n) = b.max_per_connection {
            s.blob_check.max_per_connection = at_least_one("blob_check.max_per_connection", n)?;
        }
        s.forwarded = forwarded(&file.client)?.unwrap_or(s.forwarded);
        let addr = |key: &str, v: &Option<String>| -> Result<Option<SocketAddr>> {
            v.as_deref()
                .map(|a| {
                    a.parse()
                        .map_err(|_| anyhow!("{key}: `{a}` is not an address:port"))
                })
                .transpose()
        };
        let f = &file.server;
        let timeout =
            |key: &str, v: &Option<String>| v.as_deref().map(|t| positive(key, t)).transpose();
        let server = ServerConfig {
            listen: addr("server.listen", &f.listen)?,
            admin: addr("server.admin", &f.admin)?,
            proxy_protocol: f.proxy_protocol,
            tls_cert: f.tls_cert.clone(),
            tls_key: f.tls_key.clone(),
            handshake_timeout: timeout("server.handshake_timeout", &f.handshake_timeout)?,
            header_timeout: timeout("server.header_timeout", &f.header_timeout)?,
            idle_timeout: timeout("server.idle_timeout", &f.idle_timeout)?,
            max_connections: f
                .max_connections
                .map(|n| at_least_one("server.max_connections", n))
                .transpose()?,
            max_streams: f
                .max_streams
                .map(|n| at_least_one("server.max_streams", n as usize).map(|_| n))
                .transpose()?,
            grace: f
                .grace
                .as_deref()
                .map(|t| duration("server.grace", t))
                .transpose()?,
        };
        Ok(Config {
            settings: s,
            server,
        })
    }
}

fn backends(entries: &[BackendEntry], fallback: Option<&Fallback>) -> Result<Backends> {
    let mut list = Vec::new();
    let mut by_class = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let key = format!("backend[{i}]");
        if e.name.is_empty()
            || e.name == "upstream"
            || !e
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!(
                "{key}.name: `{}` must be letters, digits, - or _ (and not `upstream`)",
                e.name
            );
        }
        if list.iter().any(|b: &Backend| *b.name == *e.name) {
            bail!("{key}.name: `{}` is used twice", e.name);
        }
        let base_url = crate::serve::base_url(&format!("{key}.base_url"), &e.base_url)?;
        for (j, c) in e.serves.iter().enumerate() {
            let class = parse_class(c)
                .ok_or_else(|| anyhow!("{key}.serves[{j}]: `{c}` is not provider/region"))?;
            if let Some(other) = by_class.insert(class, list.len()) {
                let other: &Backend = &list[other];
                bail!(
                    "{key}.serves[{j}]: `{c}` is already served by `{}`",
                    other.name
                );
            }
        }
        list.push(Backend {
            name: e.name.as_str().into(),
            base_url,
        });
    }
    let find = |key: String, name: &str| -> Result<usize> {
        list.iter()
            .position(|b| &*b.name == name)
            .ok_or_else(|| anyhow!("{key}: no backend named `{name}`"))
    };
    let mut nearest = HashMap::new();
    let mut unknown = None;
    if let Some(f) = fallback {
        for (provider, name) in &f.nearest {
            nearest.insert(
                provider.clone(),
                find(format!("fallback.nearest.{provider}"), name)?,
            );
        }
        unknown = match f.unknown.as_deref() {
            None | Some("upstream") => None,
            Some(name) => Some(find("fallback.unknown".into(), name)?),
        };
    }
    Ok(Backends::new(list, by_class, nearest, unknown))
}

fn parse_class(s: &str) -> Option<Class> {
    let (provider, region) = s.split_once('/')?;
    let ok = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    (ok(provider) && ok(region)).then(|| Class {
        provider: provider.to_owned(),
        region: region.to_owned(),
    })
}

fn duration(key: &str, s: &str) -> Result<Duration> {
    crate::duration::parse(s).map_err(|e| anyhow!("{key}: {e}"))
}

fn positive(key: &str, s: &str) -> Result<Duration> {
    crate::duration::parse_positive(s).map_err(|e| anyhow!("{key}: {e}"))
}

fn at_least_one(key: &str, n: usize) -> Result<usize> {
    if n == 0 {
        bail!("{key}: must be at least 1");
    }
    Ok(n)
}

fn forwarded(c: &Client) -> Result<Option<Forwarded>> {
    let proxies = c
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse::<IpNet>()
                .map_err(|_| anyhow!("client.trusted_proxies[{i}]: `{p}` is not a CIDR"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(match c.forwarded.as_deref() {
        None if proxies.is_empty() => None,
        None | Some("trusted") if !proxies.is_empty() => Some(Forwarded::Trusted(proxies)),
        Some("trusted") => bail!("client.forwarded: `trusted` needs client.trusted_proxies"),
        Some("peer") => Some(Forwarded::Peer),
        Some("second-to-last") => Some(Forwarded::SecondToLast),
        Some(other) => bail!("client.forwarded: `{other}` is not peer, trusted or second-to-last"),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::Choice;

    fn defaults() -> Settings {
        Settings::from_env(|_| None).unwrap()
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
        let c = Config::parse(FULL, defaults()).unwrap();
        let s = &c.settings;
        assert_eq!(s.upstream, "https://registry.example.org");
        assert_eq!(s.upstream_path, "mirror");
        assert_eq!(
            s.signature_upstream.as_deref(),
            Some("https://sig.example.org")
        );
        let name = |c: Choice| match c {
            Choice::Region(b) => format!("region {}", b.name),
            Choice::Nearest(b) => format!("nearest {}", b.name),
            Choice::Unknown(b) => format!("unknown {}", b.name),
            Choice::Upstream => "upstream".into(),
        };
        assert_eq!(
            name(s.backends.choose(&class("sponsor/fra1"))),
            "region fra"
        );
        assert_eq!(
            name(s.backends.choose(&class("aws/eu-west-3"))),
            "nearest iad"
        );
        assert_eq!(
            name(s.backends.choose(&class("gcp/europe-west1"))),
            "upstream"
        );
        assert_eq!(name(s.backends.choose(&Class::unknown())), "upstream");
        assert_eq!(s.blob_check.timeout, Duration::from_secs(3));
        assert_eq!(s.blob_check.capacity, 500);
        assert!(matches!(&s.forwarded, Forwarded::Trusted(p) if p.len() == 2));
        assert_eq!(
            c.server,
            ServerConfig {
                listen: Some("[::]:9000".parse().unwrap()),
                admin: Some("127.0.0.1:9999".parse().unwrap()),
                proxy_protocol: Some(true),
                ..ServerConfig::default()
            }
        );
    }

    #[test]
    fn an_empty_file_keeps_the_defaults() {
        let c = Config::parse("", defaults()).unwrap();
        assert_eq!(c.settings.upstream, crate::serve::DEFAULT_UPSTREAM);
        assert!(matches!(
            c.settings.backends.choose(&class("aws/eu-west-3")),
            Choice::Region(b) if &*b.name == "aws-eu-west-3"
        ));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
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
                "[[backend]]\nname = \"a\"\nbase_url = \"https://x\"\nserves = [\"aws/x\"]\n[[backend]]\nname = \"b\"\nbase_url = \"https://y\"\nserves = [\"aws/x\"]",
                "backend[1].serves[0]: `aws/x` is already served by `a`",
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
        ];
        for (text, want) in cases {
            let err = format!(
                "{:#}",
                Config::parse(text, defaults())
                    .err()
                    .unwrap_or_else(|| panic!("accepted: {text}"))
            );
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
