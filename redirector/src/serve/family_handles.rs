//! A metric family with its handles kept in a foldhash map in front.
//! prometheus-client's `Family` hashes each label set with SipHash: for
//! the series a blob request adds to (bytes by backend and class, bytes
//! by backend, cost by payer) that was about a third of the userspace
//! instructions such a request spent on metrics (callgrind, bench http).
//! Label values come from the config and the ranges, never from a client,
//! so a keyed-but-fast hash is enough. The family is never cleared (a
//! kept handle would outlive its series).

use std::{
    hash::Hash,
    sync::{Arc, RwLock},
};

use prometheus_client::metrics::family::{Family, MetricConstructor};

/// Clones share the family and the handles, as `Family`'s clones do.
pub struct FamilyHandles<L, M, C = fn() -> M> {
    family: Family<L, M, C>,
    /// Bounded as the family is: one handle per series it has.
    handles: Arc<RwLock<foldhash::HashMap<L, M>>>,
}

impl<L, M, C: Clone> Clone for FamilyHandles<L, M, C> {
    fn clone(&self) -> Self {
        FamilyHandles {
            family: self.family.clone(),
            handles: self.handles.clone(),
        }
    }
}

impl<L, M> Default for FamilyHandles<L, M>
where
    L: Clone + Hash + Eq,
    M: Default,
{
    fn default() -> Self {
        FamilyHandles {
            family: Family::default(),
            handles: Arc::default(),
        }
    }
}

impl<L, M, C> FamilyHandles<L, M, C>
where
    L: Clone + Hash + Eq,
    M: Clone,
    C: MetricConstructor<M>,
{
    /// The family, to register (the series live there).
    pub fn family(&self) -> &Family<L, M, C> {
        &self.family
    }

    /// Calls `f` with the series for `labels`, created at zero if new.
    pub fn with<R>(&self, labels: &L, f: impl FnOnce(&M) -> R) -> R {
        if let Some(m) = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(labels)
        {
            return f(m);
        }
        let m = self.family.get_or_create(labels).clone();
        let out = f(&m);
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(labels.clone())
            .or_insert(m);
        out
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{metrics::counter::Counter, registry::Registry};

    use super::*;

    #[test]
    fn counts_go_to_the_registered_series() {
        let handles = FamilyHandles::<Vec<(String, String)>, Counter>::default();
        let mut registry = Registry::default();
        registry.register("things", "Things", handles.family().clone());
        let a = vec![("k".to_owned(), "a".to_owned())];
        let b = vec![("k".to_owned(), "b".to_owned())];
        for _ in 0..3 {
            handles.with(&a, |c| c.inc());
        }
        handles.with(&b, |c| c.inc_by(5));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("things_total{k=\"a\"} 3"), "{text}");
        assert!(text.contains("things_total{k=\"b\"} 5"), "{text}");
        // A series created elsewhere through the family is the same one.
        handles.family().get_or_create(&a).inc();
        assert_eq!(handles.with(&a, |c| c.get()), 4);
    }
}
