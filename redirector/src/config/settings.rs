//! What a request needs to be answered: the upstream, the backends, the
//! blob checks and where the client address comes from. Swapped whole on
//! SIGHUP; defaults live here and nowhere else.

use std::time::Duration;

use super::error::ConfigError;
use crate::{backends::Backends, forwarded::Forwarded};

pub const INFO_URL: &str = "https://github.com/kubernetes/k8s.io/tree/main/registry.k8s.io";
pub const PRIVACY_URL: &str = "https://www.linuxfoundation.org/privacy-policy/";
pub const DEFAULT_UPSTREAM: &str = "https://us-central1-docker.pkg.dev";
pub const DEFAULT_UPSTREAM_PATH: &str = "k8s-artifacts-prod/images";

#[derive(Clone, Debug)]
pub struct Settings {
    /// Scheme and host of the upstream registry, no trailing slash.
    pub upstream: String,
    /// Path prefix inside the upstream registry, no slashes around it.
    pub upstream_path: String,
    /// Where cosign signature and attestation tags go; None: upstream.
    pub signature_upstream: Option<String>,
    pub info_url: String,
    pub privacy_url: String,
    pub backends: Backends,
    pub blob_check: BlobCheckSettings,
    /// Where the client address comes from.
    pub forwarded: Forwarded,
    /// Blobs sent upstream are checked there too (cached), so their bytes
    /// are counted (`[cost] measure_upstream`).
    pub measure_upstream: bool,
    /// What a GB sent by the upstream costs, in millionths of a dollar
    /// (`[cost] upstream_per_gb`).
    pub upstream_micro_dollars_per_gb: u64,
    /// HTTP requests per client address, by class (`[policy]
    /// request_rate`); none: no limit.
    pub request_limits: super::rates::ClassRates,
}

/// The default upstream price: $0.12 per GB, Google Cloud's list price
/// for premium-tier internet egress (the first TiB a month, from North
/// America), where registry.k8s.io's upstream, Artifact Registry, serves
/// from. Set `[cost] upstream_per_gb` to your own bill's.
pub const DEFAULT_UPSTREAM_MICRO_DOLLARS_PER_GB: u64 = 120_000;

#[derive(Clone, Debug)]
pub struct BlobCheckSettings {
    /// How long a HEAD to a backend may take before the client goes upstream.
    pub timeout: Duration,
    /// Cache capacity in entries (found and missing together).
    pub capacity: u64,
    /// How long a blob found at a backend is trusted.
    pub found_ttl: Duration,
    /// How long a missing blob (or a failed check) is remembered.
    pub missing_ttl: Duration,
    /// HEAD checks in flight at once in the process (fixed at start).
    pub max_in_flight: usize,
    /// HEAD checks in flight at once for one client connection.
    pub max_per_connection: usize,
}

impl Default for BlobCheckSettings {
    fn default() -> Self {
        BlobCheckSettings {
            timeout: Duration::from_secs(5),
            capacity: 100_000,
            found_ttl: Duration::from_secs(24 * 3600),
            missing_ttl: Duration::from_secs(60),
            max_in_flight: 256,
            max_per_connection: 8,
        }
    }
}

/// A path prefix inside the upstream registry: slashes trimmed, only
/// plain segments (it goes into every upstream Location).
pub fn plain_path(what: &str, path: &str) -> Result<String, ConfigError> {
    let path = path.trim_matches('/');
    if path
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.')))
        || path
            .split('/')
            .any(|s| s == ".." || s == "." || s.is_empty())
            && !path.is_empty()
    {
        return Err(ConfigError::new(format!(
            "{what}: `{path}` is not a plain path"
        )));
    }
    Ok(path.to_owned())
}

/// `scheme://host[:port][/path]`, http or https, no query, no trailing
/// slash: everything a Location header is built from must be this clean.
pub fn base_url(what: &str, url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| Err(ConfigError::new(format!("{what}: `{url}` {why}")));
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return bad(&format!("is not a URL: {e}")),
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return bad("must start with http:// or https://"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return bad("has no host");
    }
    if uri.query().is_some() || url.contains('#') {
        return bad("must not have a query or fragment");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        Ok(crate::config::Config::resolve(get, crate::config::Layer::default())?.settings)
    }

    #[test]
    fn defaults_are_registry_k8s_io() {
        let s = from_env(env(&[])).unwrap();
        assert_eq!(s.upstream, DEFAULT_UPSTREAM);
        assert_eq!(s.upstream_path, DEFAULT_UPSTREAM_PATH);
        assert_eq!(s.signature_upstream, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (vars, want) in [
            (
                vec![("UPSTREAM_REGISTRY_ENDPOINT", "ftp://x")],
                "UPSTREAM_REGISTRY_ENDPOINT",
            ),
            (
                vec![("UPSTREAM_REGISTRY_ENDPOINT", "https://x/?q=1")],
                "query",
            ),
            (
                vec![("UPSTREAM_REGISTRY_PATH", "a/../b")],
                "UPSTREAM_REGISTRY_PATH",
            ),
            (
                vec![("SIGNATURE_UPSTREAM_ENDPOINT", "not a url")],
                "SIGNATURE_UPSTREAM_ENDPOINT",
            ),
            (
                vec![("DEFAULT_AWS_BASE_URL", "https://")],
                "DEFAULT_AWS_BASE_URL",
            ),
        ] {
            let err = from_env(env(&vars)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let s = from_env(env(&[
            ("UPSTREAM_REGISTRY_ENDPOINT", "https://k8s.gcr.io/"),
            ("UPSTREAM_REGISTRY_PATH", "/"),
            ("SIGNATURE_UPSTREAM_ENDPOINT", ""),
        ]))
        .unwrap();
        assert_eq!(
            (s.upstream.as_str(), s.upstream_path.as_str()),
            ("https://k8s.gcr.io", "")
        );
        assert_eq!(s.signature_upstream, None);
    }
}
