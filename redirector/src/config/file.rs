//! The config file of `redirector serve` (TOML) as a [`Layer`]: every key
//! optional, each validated here so an error names it (the fleet's keys
//! in [`super::fleet_file`]). The keys are in docs/configuration.md.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use ipnet::IpNet;
use serde::Deserialize;

use super::{
    duration,
    error::{ConfigError, TlsFiles, at_least_one},
    fleet_file::{
        BackendEntry, Fallback, LocationEntry, backends, micro_dollars, parse_class, places,
    },
    layer::Layer,
    rates, settings,
};
use crate::forwarded::Forwarded;

type Result<T> = std::result::Result<T, ConfigError>;

macro_rules! bail {
    ($($arg:tt)*) => { return Err(ConfigError::new(format!($($arg)*))) };
}

macro_rules! err {
    ($($arg:tt)*) => { ConfigError::new(format!($($arg)*)) };
}

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
    policy: Option<Policy>,
    cost: Option<Cost>,
    /// Places of classes the built-in region table lacks, or corrections.
    #[serde(default)]
    location: Vec<LocationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cost {
    /// HEAD blobs sent upstream (cached) to count their bytes.
    measure_upstream: Option<bool>,
    /// Dollars per GB the upstream's traffic costs.
    upstream_per_gb: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    /// `provider/region` classes whose SYNs XDP drops.
    #[serde(default)]
    drop: Vec<String>,
    /// SYNs per source, by class (XDP).
    #[serde(default)]
    syn_rate: BTreeMap<String, String>,
    #[serde(default)]
    syn_burst: BTreeMap<String, u32>,
    /// HTTP requests per client, by class.
    #[serde(default)]
    request_rate: BTreeMap<String, String>,
    #[serde(default)]
    request_burst: BTreeMap<String, u32>,
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
    reuse_port: Option<bool>,
    workers: Option<usize>,
    access_log: Option<std::path::PathBuf>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    handshake_timeout: Option<String>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    max_streams: Option<u32>,
    grace: Option<String>,
    reload_interval: Option<String>,
}

/// Parses and validates a config file's text; an error names the key
/// (TOML syntax errors come with line and column from the parser).
pub fn parse(text: &str) -> Result<Layer> {
    let file: File = toml::from_str(text).map_err(|e| err!("{}", e.to_string().trim_end()))?;
    let mut l = Layer::default();
    let u = &file.upstream;
    let url = |key: &str, v: &Option<String>| {
        v.as_deref().map(|v| settings::base_url(key, v)).transpose()
    };
    l.upstream = url("upstream.registry", &u.registry)?;
    l.upstream_path = u
        .path
        .as_deref()
        .map(|p| settings::plain_path("upstream.path", p))
        .transpose()?;
    l.signature_upstream = match u.signature.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(sig) => Some(Some(settings::base_url("upstream.signature", sig)?)),
    };
    l.info_url = url("upstream.info_url", &u.info_url)?;
    l.privacy_url = url("upstream.privacy_url", &u.privacy_url)?;
    if !file.backend.is_empty() || file.fallback.is_some() || !file.location.is_empty() {
        let places = places(&file.location)?;
        l.backends = Some(backends(&file.backend, file.fallback.as_ref(), &places)?);
    }
    let b = &file.blob_check;
    let dur =
        |key: &str, v: &Option<String>| v.as_deref().map(|t| any_duration(key, t)).transpose();
    let timeout =
        |key: &str, v: &Option<String>| v.as_deref().map(|t| positive(key, t)).transpose();
    l.blob_check_timeout = timeout("blob_check.timeout", &b.timeout)?;
    l.blob_cache_entries = b.cache_entries;
    l.blob_found_ttl = dur("blob_check.found_ttl", &b.found_ttl)?;
    l.blob_missing_ttl = dur("blob_check.missing_ttl", &b.missing_ttl)?;
    l.max_blob_checks = at_least_one("blob_check.max_in_flight", b.max_in_flight)?;
    l.max_blob_checks_per_connection =
        at_least_one("blob_check.max_per_connection", b.max_per_connection)?;
    l.forwarded = forwarded(&file.client)?;
    l.measure_upstream = file.cost.as_ref().and_then(|c| c.measure_upstream);
    l.upstream_micro_dollars_per_gb = file
        .cost
        .as_ref()
        .and_then(|c| c.upstream_per_gb)
        .map(|p| micro_dollars("cost.upstream_per_gb", p))
        .transpose()?;
    let f = &file.server;
    let addr = |key: &str, v: &Option<String>| -> Result<Option<SocketAddr>> {
        v.as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|_| err!("{key}: `{a}` is not an address:port"))
            })
            .transpose()
    };
    l.listen = addr("server.listen", &f.listen)?;
    l.admin = addr("server.admin", &f.admin)?;
    l.proxy_protocol = f.proxy_protocol;
    l.reuse_port = f.reuse_port;
    l.workers = f.workers;
    l.access_log = f.access_log.clone();
    l.tls = match (&f.tls_cert, &f.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => bail!("server.tls_cert, server.tls_key: give both or neither"),
    };
    l.handshake_timeout = timeout("server.handshake_timeout", &f.handshake_timeout)?;
    l.header_timeout = timeout("server.header_timeout", &f.header_timeout)?;
    l.idle_timeout = timeout("server.idle_timeout", &f.idle_timeout)?;
    l.max_connections = at_least_one("server.max_connections", f.max_connections)?;
    l.max_streams =
        at_least_one("server.max_streams", f.max_streams.map(|n| n as usize))?.map(|n| n as u32);
    l.grace = dur("server.grace", &f.grace)?;
    l.reload_interval = dur("server.reload_interval", &f.reload_interval)?;
    if let Some(p) = &file.policy {
        l.syn_rate = Some(rates::parse("syn", &p.syn_rate, &p.syn_burst).map_err(|e| err!("{e}"))?);
        l.request_rate = Some(
            rates::parse("request", &p.request_rate, &p.request_burst).map_err(|e| err!("{e}"))?,
        );
    }
    l.drop = match &file.policy {
        None => None,
        Some(p) => Some(
            p.drop
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    parse_class(c)
                        .ok_or_else(|| err!("policy.drop[{i}]: `{c}` is not provider/region"))
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(l)
}

fn any_duration(key: &str, s: &str) -> Result<Duration> {
    duration::parse(s).map_err(|e| err!("{key}: {e}"))
}

fn positive(key: &str, s: &str) -> Result<Duration> {
    duration::parse_positive(s).map_err(|e| err!("{key}: {e}"))
}

fn forwarded(c: &Client) -> Result<Option<Forwarded>> {
    let proxies = c
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse::<IpNet>()
                .map_err(|_| err!("client.trusted_proxies[{i}]: `{p}` is not a CIDR"))
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
