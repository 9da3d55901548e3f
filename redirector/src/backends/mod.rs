//! Which backend serves a client's blobs, by its class.
//!
//! The default is registry.k8s.io's own table: one S3 bucket per AWS region
//! that has one, a few regions mapped to a neighbour's bucket, every other
//! AWS region and every client in no feed to `DEFAULT_AWS_BASE_URL`, and
//! GCP clients upstream. A config file will replace it.

mod backend;
mod k8s;
mod order;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use steer_user::Class;

pub use self::order::client_key;
use self::order::{geo_order, rendezvous};
pub use self::{
    backend::{Backend, Candidate, HealthSpec, Nearest, ProofSpec, StoreSpec, Why},
    k8s::DEFAULT_AWS_BASE_URL,
};
use crate::routing::geo::Places;

/// Checks one request may wait on before it goes upstream, by default.
pub const DEFAULT_MAX_CANDIDATES: usize = 3;

#[derive(Clone)]
pub struct Backends {
    backends: Vec<Backend>,
    /// foldhash, not SipHash, for these per-request lookups: the keys
    /// come from the config and the ranges, never from a client.
    by_class: foldhash::HashMap<Class, Vec<usize>>,
    nearest: Nearest,
    /// For clients in no feed; None: upstream.
    unknown: Option<usize>,
    max_candidates: usize,
    /// With geo: per class with a known place, the backends with a
    /// location, nearest first.
    geo_order: foldhash::HashMap<Class, Vec<(usize, f64)>>,
}

/// One line a person can read (`check-config`, logs): each backend with
/// the classes it serves, then the fallbacks.
impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |i: usize| &*self.backends[i].name;
        let parts: Vec<String> = self
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut classes: Vec<String> = self
                    .by_class
                    .iter()
                    .filter(|(_, j)| j.contains(&i))
                    .map(|(c, _)| c.to_string())
                    .collect();
                classes.sort();
                format!("{} {} [{}]", b.name, b.base_url, classes.join(", "))
            })
            .collect();
        let mut nearest: Vec<String> = match &self.nearest {
            Nearest::Providers(m) => m
                .iter()
                .map(|(p, &i)| format!("{p}: {}", name(i)))
                .collect(),
            Nearest::Geo => vec!["geo".to_owned()],
        };
        nearest.sort();
        let unknown = self.unknown.map_or("upstream", name);
        write!(
            f,
            "{}; nearest {{{}}}; unknown {unknown}",
            parts.join("; "),
            nearest.join(", ")
        )
    }
}

impl Backends {
    /// A table from a config file: `by_class` and the fallbacks index
    /// into `backends`; `places` locates classes for `Nearest::Geo`.
    pub fn new(
        backends: Vec<Backend>,
        by_class: HashMap<Class, Vec<usize>>,
        nearest: Nearest,
        unknown: Option<usize>,
        max_candidates: usize,
        places: &Places,
    ) -> Backends {
        let geo_order = match nearest {
            Nearest::Geo => geo_order(&backends, places).into_iter().collect(),
            Nearest::Providers(_) => foldhash::HashMap::default(),
        };
        Backends {
            backends,
            by_class: by_class.into_iter().collect(),
            nearest,
            unknown,
            max_candidates: max_candidates.max(1),
            geo_order,
        }
    }

    /// The backends to try for a client of `class` whose address hashes
    /// to `client`, best first: those listing the class (ordered by
    /// weighted rendezvous hashing of the client, so one client's blobs
    /// all go to one place and the split follows the weights), then, with
    /// `nearest = "geo"`, every other located backend by distance; a
    /// per-provider `nearest` backend only when none lists the class.
    /// Empty: upstream.
    pub fn candidates<'a>(&'a self, class: &Class, client: u64) -> Vec<Candidate<'a>> {
        let mut out: Vec<Candidate<'a>> = Vec::new();
        let push = |out: &mut Vec<Candidate<'a>>, index: usize, why: Why| {
            if !out.iter().any(|c| c.index == index) {
                out.push(Candidate {
                    backend: &self.backends[index],
                    index,
                    why,
                });
            }
        };
        if class.is_unknown() {
            if let Some(i) = self.unknown {
                push(&mut out, i, Why::Unknown);
            }
            return out;
        }
        if let Some(listed) = self.by_class.get(class) {
            for i in rendezvous(&self.backends, listed, client) {
                push(&mut out, i, Why::Region);
            }
        }
        match &self.nearest {
            // As in registry.k8s.io's table: only for regions no backend
            // lists.
            Nearest::Providers(m) => {
                // A handful of providers: a scan is cheaper than SipHash.
                if out.is_empty()
                    && let Some((_, &i)) = m.iter().find(|(p, _)| **p == class.provider)
                {
                    push(&mut out, i, Why::Nearest);
                }
            }
            Nearest::Geo => {
                for &(i, km) in self.geo_order.get(class).map_or(&[][..], Vec::as_slice) {
                    push(&mut out, i, Why::Geo { km });
                }
            }
        }
        out
    }

    /// registry.k8s.io's table, with `default_aws_base_url` for AWS regions
    /// that have no bucket.
    pub fn registry_k8s_io(default_aws_base_url: &str) -> Backends {
        let (backends, by_class, default) = k8s::table(default_aws_base_url);
        Backends::new(
            backends,
            by_class,
            Nearest::Providers(HashMap::from([("aws".to_owned(), default)])),
            // The Go service checks the default bucket for every client it
            // cannot place, GCP aside.
            Some(default),
            DEFAULT_MAX_CANDIDATES,
            &Places::default(),
        )
    }

    /// Blob checks one request may wait on before it goes upstream.
    pub fn max_candidates(&self) -> usize {
        self.max_candidates
    }

    /// Every backend, in config order.
    pub fn list(&self) -> &[Backend] {
        &self.backends
    }

    /// How many backends there are (each a host the blob checks may
    /// keep connections to).
    pub fn hosts(&self) -> usize {
        self.backends.len()
    }
}
