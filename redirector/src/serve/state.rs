//! What every request reads: the settings, the ranges in force, the blob
//! checker, the metrics and, with XDP, the loaded classifier.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock, atomic::AtomicBool},
};

use steer_user::{
    Class, RangeTable, Steer,
    ranges::{RangeSources, Ranges},
};

use super::{access_log::AccessLog, blob_check::BlobChecker, health::Health, metrics::Metrics};
use crate::{config::settings::Settings, reload::Reload};

pub struct State {
    /// Swapped whole when the config file is reloaded.
    pub(super) settings: RwLock<Arc<Settings>>,
    pub(super) metrics: Arc<Metrics>,
    /// True while serving: the ranges are loaded, the listener is bound,
    /// and draining has not begun (for /readyz).
    pub(super) ready: AtomicBool,
    pub(super) checker: BlobChecker,
    pub(super) health: Arc<Health>,
    /// The JSON access log, when asked for.
    pub(super) access_log: Option<AccessLog>,
    pub(super) served: RwLock<Arc<Served>>,
    pub(super) steer: Option<Arc<RwLock<Steer>>>,
    /// Blob bytes by backend over the last hours, for `/report`.
    pub(super) history: std::sync::Mutex<crate::report::history::History>,
    /// Clients' request buckets (`[policy] request_rate`).
    pub(super) requests: super::request_limit::RequestLimiter,
}

/// The ranges in force, with every class behind a shared pointer: a
/// request behind a proxy clones a pointer, not two strings.
pub struct Served {
    ranges: Ranges,
    /// Indexed by class id; 0 is unknown.
    classes: Vec<Arc<Class>>,
}

impl Served {
    pub fn new(ranges: Ranges) -> Served {
        let classes = (0..=ranges.table.class_count() as u32)
            .map(|id| shared_class(&ranges.table, id))
            .collect();
        Served { ranges, classes }
    }

    fn class(&self, id: u32) -> Arc<Class> {
        self.classes
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::new(Class::unknown()))
    }
}

/// Class `id` of `table` behind a new shared pointer (unknown for 0 and
/// for ids the table lacks).
fn shared_class(table: &RangeTable, id: u32) -> Arc<Class> {
    Arc::new(table.class(id).cloned().unwrap_or_else(Class::unknown))
}

impl State {
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The class of an address the kernel did not see (from a proxy).
    pub fn classify_userspace(&self, addr: IpAddr) -> Arc<Class> {
        let served = self.served();
        served.class(served.ranges.classifier.classify(addr))
    }

    /// The class of a direct client, once per connection. While a reload
    /// writes the kernel maps (milliseconds, under the write lock) the
    /// connection is classified in userspace rather than waiting on the
    /// lock: until the switch the served table is the one the kernel uses.
    pub fn classify(&self, peer: SocketAddr, local_port: u16) -> (Arc<Class>, Source) {
        if let Some(steer) = &self.steer
            && let Ok(steer) = steer.try_read()
            && let Some(flow) = steer.flow_class(peer, local_port)
        {
            let served = self.served();
            let class = match steer.table_of(flow.generation) {
                // The usual case: the generation serving requests.
                Some(t) if Arc::ptr_eq(t, &served.ranges.table) => served.class(flow.class),
                // A flow recorded just before a switch.
                Some(t) => shared_class(t, flow.class),
                None => Arc::new(Class::unknown()),
            };
            return (class, Source::Xdp);
        }
        (self.classify_userspace(peer.ip()), Source::Userspace)
    }

    /// Reloads the ranges; on any failure the current ones keep serving.
    /// The XDP maps are locked only for the kernel write, not while the
    /// sources are read and compiled. Blocking: call it off the async
    /// workers.
    pub fn reload(&self, sources: &RangeSources, why: &str) {
        let current = self.served();
        let (outcome, _) = crate::reload::reload(sources, &current.ranges, why, |table| {
            self.steer
                .as_ref()
                .map(|steer| {
                    let mut steer = steer.write().unwrap_or_else(|e| e.into_inner());
                    steer.load_table(table.clone())
                })
                .transpose()
        });
        if let Reload::Reloaded { ranges, .. } = outcome {
            *self.served.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Served::new(ranges));
            self.metrics.ranges_generation.inc();
            self.metrics.ranges_loaded();
        }
    }
}

/// Which table answered for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The class XDP recorded for the connection's SYN.
    Xdp,
    /// The userspace classifier (XDP off, or the flow slot was lost).
    Userspace,
    /// The userspace classifier on an address a trusted proxy gave.
    Forwarded,
    /// The userspace classifier on a PROXY protocol header's address.
    Proxy,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Xdp => "xdp",
            Source::Userspace => "userspace",
            Source::Forwarded => "forwarded",
            Source::Proxy => "proxy",
        }
    }
}
