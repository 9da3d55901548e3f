//! The redirector of the pulls topology, seen from outside: its metrics.
//! It is started with the shared launcher, [`crate::launch`].

use std::net::SocketAddr;

pub use crate::launch::{Launch, Redirector};
use crate::{netns::Netns, tcp::http_get};

/// The admin listener's `/metrics`, fetched from inside `ns`.
pub fn fetch_metrics(ns: &Netns, admin: SocketAddr) -> String {
    ns.spawn(move || http_get(None, admin, "/metrics"))
        .join()
        .unwrap()
}

/// The value of the sample `name{labels}` (or of `name` with no labels)
/// in a Prometheus text exposition; 0 when it is absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
