//! The config file of `redirector serve` (TOML) as a [`Layer`]: every key
//! optional, each validated here so an error names it. The keys are in
//! docs/configuration.md.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    time::Duration,
};

use ipnet::IpNet;
use serde::Deserialize;
use steer_user::Class;

use super::{
    duration,
    error::{ConfigError, TlsFiles, at_least_one},
    layer::Layer,
    settings,
};
use crate::{
    backends::{
        Backend, Backends, DEFAULT_MAX_CANDIDATES, HealthSpec, Nearest, ProofSpec, StoreSpec,
    },
    forwarded::Forwarded,
    routing::geo::{self, Places, Point},
};

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
    /// Places of classes the built-in region table lacks, or corrections.
    #[serde(default)]
    location: Vec<LocationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationEntry {
    class: String,
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    /// `provider/region` classes whose SYNs XDP drops.
    #[serde(default)]
    drop: Vec<String>,
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
    /// Where `redirector sync` writes this backend's blobs.
    store: Option<String>,
    /// The store's options (region, endpoint, ...), as object_store
    /// names them.
    #[serde(default)]
    store_options: BTreeMap<String, String>,
    /// Share among backends that list the same class.
    weight: Option<u32>,
    /// `provider/region` where the backend is (default: its first class).
    location: Option<String>,
    health: Option<HealthEntry>,
    proof: Option<ProofEntry>,
    /// Bytes per UTC day: `40TB`, `1.5TiB`.
    max_bytes_per_day: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofEntry {
    path: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthEntry {
    path: String,
    interval: Option<String>,
    unhealthy_after: Option<u32>,
    healthy_after: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fallback {
    /// Per provider: the backend for its regions no backend lists; or
    /// "geo": every backend by distance.
    nearest: Option<NearestEntry>,
    /// A backend name, or "upstream", for clients in no feed.
    unknown: Option<String>,
    /// Blob checks one request may wait on before it goes upstream.
    max_candidates: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NearestEntry {
    Mode(String),
    Providers(HashMap<String, String>),
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

fn places(entries: &[LocationEntry]) -> Result<Places> {
    let mut map = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let class = parse_class(&e.class)
            .ok_or_else(|| err!("location[{i}].class: `{}` is not provider/region", e.class))?;
        if !geo::valid(e.lat, e.lon) {
            bail!(
                "location[{i}]: lat {} / lon {} is not on Earth",
                e.lat,
                e.lon
            );
        }
        if map
            .insert(
                class,
                Point {
                    lat: e.lat,
                    lon: e.lon,
                },
            )
            .is_some()
        {
            bail!("location[{i}].class: `{}` is placed twice", e.class);
        }
    }
    Ok(Places::new(map))
}

fn backends(
    entries: &[BackendEntry],
    fallback: Option<&Fallback>,
    places: &Places,
) -> Result<Backends> {
    let mut list = Vec::new();
    let mut by_class: HashMap<Class, Vec<usize>> = HashMap::new();
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
        let base_url = settings::base_url(&format!("{key}.base_url"), &e.base_url)?;
        let mut first = None;
        for (j, c) in e.serves.iter().enumerate() {
            let class = parse_class(c)
                .ok_or_else(|| err!("{key}.serves[{j}]: `{c}` is not provider/region"))?;
            let listed = by_class.entry(class.clone()).or_default();
            if listed.contains(&list.len()) {
                bail!("{key}.serves[{j}]: `{c}` is listed twice");
            }
            listed.push(list.len());
            first.get_or_insert(class);
        }
        let store = match &e.store {
            Some(url) => Some(store_spec(&key, url, &e.store_options)?),
            None if !e.store_options.is_empty() => {
                bail!("{key}.store_options: given without {key}.store")
            }
            None => None,
        };
        let weight = match e.weight {
            Some(0) => bail!("{key}.weight: must be at least 1"),
            Some(w) => w,
            None => 1,
        };
        let location = match &e.location {
            Some(l) => Some(
                parse_class(l)
                    .ok_or_else(|| err!("{key}.location: `{l}` is not provider/region"))?,
            ),
            None => first,
        };
        let health = e.health.as_ref().map(|h| health(&key, h)).transpose()?;
        let proof = match &e.proof {
            None => None,
            Some(p) => {
                let path = p.path.trim_start_matches('/');
                if path.is_empty()
                    || path
                        .bytes()
                        .any(|b| !b.is_ascii_graphic() || b == b'?' || b == b'#')
                {
                    bail!("{key}.proof.path: `{}` is not a plain path", p.path);
                }
                if p.sha256.len() != 64
                    || !p
                        .sha256
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    bail!("{key}.proof.sha256: must be 64 lowercase hex digits");
                }
                Some(ProofSpec {
                    path: path.to_owned(),
                    sha256: p.sha256.clone(),
                })
            }
        };
        list.push(Backend {
            name: e.name.as_str().into(),
            base_url,
            store,
            weight,
            location,
            health,
            proof,
            max_bytes_per_day: e
                .max_bytes_per_day
                .as_deref()
                .map(|b| {
                    crate::config::bytes::parse(b).map_err(|e| err!("{key}.max_bytes_per_day: {e}"))
                })
                .transpose()?,
        });
    }
    let find = |key: String, name: &str| -> Result<usize> {
        list.iter()
            .position(|b| &*b.name == name)
            .ok_or_else(|| err!("{key}: no backend named `{name}`"))
    };
    let mut nearest = Nearest::Providers(HashMap::new());
    let mut unknown = None;
    let mut max_candidates = DEFAULT_MAX_CANDIDATES;
    if let Some(f) = fallback {
        nearest = match &f.nearest {
            None => Nearest::Providers(HashMap::new()),
            Some(NearestEntry::Mode(m)) if m == "geo" => Nearest::Geo,
            Some(NearestEntry::Mode(m)) => {
                bail!("fallback.nearest: `{m}` is not \"geo\" or a table of provider = backend")
            }
            Some(NearestEntry::Providers(m)) => {
                let mut by_provider = HashMap::new();
                for (provider, name) in m {
                    by_provider.insert(
                        provider.clone(),
                        find(format!("fallback.nearest.{provider}"), name)?,
                    );
                }
                Nearest::Providers(by_provider)
            }
        };
        unknown = match f.unknown.as_deref() {
            None | Some("upstream") => None,
            Some(name) => Some(find("fallback.unknown".into(), name)?),
        };
        max_candidates = at_least_one("fallback.max_candidates", f.max_candidates)?
            .unwrap_or(DEFAULT_MAX_CANDIDATES);
    }
    if matches!(nearest, Nearest::Geo) {
        for (i, b) in list.iter().enumerate() {
            match &b.location {
                None => tracing::warn!(
                    "backend[{i}] `{}` has no location (and serves nothing): the geo fallback leaves it out",
                    b.name
                ),
                Some(c) if places.of(c).is_none() => bail!(
                    "backend[{i}].location: `{c}` has no known place; add a [[location]] for it"
                ),
                Some(_) => {}
            }
        }
    }
    Ok(Backends::new(
        list,
        by_class,
        nearest,
        unknown,
        max_candidates,
        places,
    ))
}

fn health(key: &str, h: &HealthEntry) -> Result<HealthSpec> {
    if !h.path.starts_with('/') || h.path.bytes().any(|b| !b.is_ascii_graphic()) {
        bail!(
            "{key}.health.path: `{}` must start with / and be printable ASCII",
            h.path
        );
    }
    let interval = match &h.interval {
        Some(t) => positive(&format!("{key}.health.interval"), t)?,
        None => DEFAULT_HEALTH_INTERVAL,
    };
    if interval < MIN_HEALTH_INTERVAL {
        bail!("{key}.health.interval: at least {MIN_HEALTH_INTERVAL:?}");
    }
    let count = |what: &str, v: Option<u32>, default: u32| -> Result<u32> {
        match v {
            Some(0) => bail!("{key}.health.{what}: must be at least 1"),
            Some(n) => Ok(n),
            None => Ok(default),
        }
    };
    Ok(HealthSpec {
        path: h.path.clone(),
        interval,
        unhealthy_after: count("unhealthy_after", h.unhealthy_after, 3)?,
        healthy_after: count("healthy_after", h.healthy_after, 2)?,
    })
}

/// Probe intervals: the default, and the shortest allowed (a fleet of
/// backends probed more often is load, not safety).
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// The schemes `sync` can write to; the rest of the URL and the options
/// are checked when the store is opened.
const STORE_SCHEMES: &[&str] = &["file", "s3", "gs", "az", "abfs", "abfss"];

fn store_spec(key: &str, url: &str, options: &BTreeMap<String, String>) -> Result<StoreSpec> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{key}.store: `{url}` is not a URL such as file:///srv/mirror or s3://bucket/prefix");
    };
    if !STORE_SCHEMES.contains(&scheme) {
        bail!(
            "{key}.store: scheme `{scheme}` is not one of {}",
            STORE_SCHEMES.join(", ")
        );
    }
    if scheme == "file" && !rest.starts_with('/') {
        bail!("{key}.store: `{url}` must name an absolute path (file:///srv/mirror)");
    }
    if scheme != "file" && rest.split('/').next().is_none_or(str::is_empty) {
        bail!("{key}.store: `{url}` names no bucket");
    }
    if rest.contains(['?', '#']) {
        bail!("{key}.store: `{url}` must not have a query or fragment (use store_options)");
    }
    Ok(StoreSpec {
        url: url.to_owned(),
        options: options.clone(),
    })
}

pub fn parse_class(s: &str) -> Option<Class> {
    let (provider, region) = s.split_once('/')?;
    let ok = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    (ok(provider) && ok(region)).then(|| Class {
        provider: provider.to_owned(),
        region: region.to_owned(),
    })
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
