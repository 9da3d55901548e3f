//! The fleet half of the config file: `[[backend]]` (with its routing,
//! health, proof, budget and store keys), `[fallback]` and
//! `[[location]]`, each checked so an error names the key.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use serde::Deserialize;
use steer_user::Class;

use super::{
    duration,
    error::{ConfigError, at_least_one},
    settings,
};
use crate::{
    backends::{
        Backend, Backends, DEFAULT_MAX_CANDIDATES, HealthSpec, Nearest, ProofSpec, StoreSpec,
    },
    routing::geo::{self, Places, Point},
};

type Result<T> = std::result::Result<T, ConfigError>;

macro_rules! bail {
    ($($arg:tt)*) => { return Err(ConfigError::new(format!($($arg)*))) };
}

macro_rules! err {
    ($($arg:tt)*) => { ConfigError::new(format!($($arg)*)) };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationEntry {
    pub class: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendEntry {
    pub name: String,
    pub base_url: String,
    /// `provider/region` classes this backend serves.
    #[serde(default)]
    pub serves: Vec<String>,
    /// Where `redirector sync` writes this backend's blobs.
    pub store: Option<String>,
    /// The store's options (region, endpoint, ...), as object_store
    /// names them.
    #[serde(default)]
    pub store_options: BTreeMap<String, String>,
    /// Share among backends that list the same class.
    pub weight: Option<u32>,
    /// `provider/region` where the backend is (default: its first class).
    pub location: Option<String>,
    pub health: Option<HealthEntry>,
    pub proof: Option<ProofEntry>,
    /// Bytes per UTC day: `40TB`, `1.5TiB`.
    pub max_bytes_per_day: Option<String>,
    /// Dollars per GB it serves.
    pub price_per_gb: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofEntry {
    pub path: String,
    pub sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthEntry {
    pub path: String,
    pub interval: Option<String>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// Per provider: the backend for its regions no backend lists; or
    /// "geo": every backend by distance.
    pub nearest: Option<NearestEntry>,
    /// A backend name, or "upstream", for clients in no feed.
    pub unknown: Option<String>,
    /// Blob checks one request may wait on before it goes upstream.
    pub max_candidates: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum NearestEntry {
    Mode(String),
    Providers(HashMap<String, String>),
}

pub fn places(entries: &[LocationEntry]) -> Result<Places> {
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

pub fn backends(
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
            micro_dollars_per_gb: match e.price_per_gb {
                None => 0,
                Some(p) => micro_dollars(&format!("{key}.price_per_gb"), p)?,
            },
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

/// A price in dollars per GB as millionths of a dollar; from 0 to $1000.
pub fn micro_dollars(key: &str, dollars: f64) -> Result<u64> {
    if !(0.0..=1000.0).contains(&dollars) {
        bail!("{key}: `{dollars}` is not a price from 0 to 1000 dollars per GB");
    }
    Ok((dollars * 1e6).round() as u64)
}

fn positive(key: &str, s: &str) -> Result<Duration> {
    duration::parse_positive(s).map_err(|e| err!("{key}: {e}"))
}
