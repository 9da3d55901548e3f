//! What a backend is and why it is a candidate for a client.

use std::collections::HashMap;

use steer_user::Class;

/// A place that serves blobs at `<base_url>/containers/images/<digest>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Shared with every metric series that names it.
    pub name: std::sync::Arc<str>,
    pub base_url: String,
    /// Where `redirector sync` writes this backend's blobs, if anywhere.
    pub store: Option<StoreSpec>,
    /// Its share among backends listing the same class (default 1).
    pub weight: u32,
    /// Where it is, for `nearest = "geo"`: a class with a known place
    /// (default: the first class it serves).
    pub location: Option<Class>,
    /// Active health checks, if any.
    pub health: Option<HealthSpec>,
    /// An object proving the operator controls `base_url`: until it is
    /// fetched with the right sha256, no client is sent there.
    pub proof: Option<ProofSpec>,
    /// Bytes it may serve per UTC day, counted from the sizes its blob
    /// checks report; past it the backend is skipped until the next day.
    pub max_bytes_per_day: Option<u64>,
    /// What a GB (10^9 bytes) it serves costs, in millionths of a dollar
    /// (`price_per_gb`; default 0).
    pub micro_dollars_per_gb: u64,
}

/// `proof = { path, sha256 }`: `<base_url>/<path>` must hash to `sha256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofSpec {
    pub path: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

impl Backend {
    /// A backend with every optional key at its default: weight 1, no
    /// location, store, health checks, proof or budget, and free.
    pub fn new(name: &str, base_url: impl Into<String>) -> Backend {
        Backend {
            name: name.into(),
            base_url: base_url.into(),
            store: None,
            weight: 1,
            location: None,
            health: None,
            proof: None,
            max_bytes_per_day: None,
            micro_dollars_per_gb: 0,
        }
    }
}

/// `health = { path, interval, unhealthy_after, healthy_after }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    /// Appended to the base URL: a known object (a canary blob).
    pub path: String,
    pub interval: std::time::Duration,
    /// Failed probes (or failed blob checks) in a row that take it out.
    pub unhealthy_after: u32,
    /// Good probes in a row that bring it back.
    pub healthy_after: u32,
}

/// A backend's object store as the config file names it: a URL
/// (`file:///srv/mirror`, `s3://bucket/prefix`, `gs://bucket/prefix`,
/// `az://container/prefix`) and the store's own options (region,
/// endpoint, ...), checked when `sync` opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub url: String,
    pub options: std::collections::BTreeMap<String, String>,
}

/// Why a backend is a candidate for a client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Why {
    /// The backend lists the client's region (several may; the client's
    /// address picks among them by weight).
    Region,
    /// No backend lists the region; this is the provider's nearest
    /// fallback from `[fallback] nearest = { provider = "name" }`.
    Nearest,
    /// `[fallback] nearest = "geo"`: this far from the client's region.
    Geo { km: f64 },
    /// The client is in no feed; this is the backend for such clients.
    Unknown,
}

/// One backend to try for a client's blob, in order.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub backend: &'a Backend,
    /// Its place in the table (for per-backend state).
    pub index: usize,
    pub why: Why,
}

/// How clients of a region no backend lists find one.
#[derive(Clone, Debug)]
pub enum Nearest {
    /// Per provider: one backend.
    Providers(HashMap<String, usize>),
    /// Every backend with a location, by distance from the client's region.
    Geo,
}
