//! Backend health while serving. A backend with `health` in the config is
//! probed at `<base_url><path>` every `interval`; failed blob checks count
//! as failed probes too. `unhealthy_after` failures in a row take it out
//! of every candidate list, `healthy_after` good probes in a row bring it
//! back. Each transition is logged once and shown as
//! `steer_backend_up{backend}`. A backend without `health` is always up:
//! nothing would bring it back.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tracing::{info, warn};

use crate::backends::{Backend, HealthSpec};

/// How often the prober looks for backends whose probe is due.
pub const PROBE_TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
struct BackendState {
    up: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
    next_probe: Mutex<Option<Instant>>,
}

/// Every backend's state, by name (names survive config reloads).
#[derive(Default)]
pub struct Health {
    states: RwLock<HashMap<Arc<str>, Arc<BackendState>>>,
    up: Family<Vec<(&'static str, String)>, Gauge>,
}

impl Health {
    pub fn register(self: &Arc<Health>, registry: &mut Registry) {
        registry.register(
            "backend_up",
            "1 while a backend with health checks is up (0: skipped)",
            self.up.clone(),
        );
    }

    fn state(&self, backend: &Backend) -> Arc<BackendState> {
        if let Some(s) = self
            .states
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&backend.name)
        {
            return s.clone();
        }
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        states
            .entry(backend.name.clone())
            .or_insert_with(|| {
                self.gauge(&backend.name).set(1);
                Arc::new(BackendState {
                    up: AtomicBool::new(true),
                    ..BackendState::default()
                })
            })
            .clone()
    }

    fn gauge(&self, name: &str) -> Gauge {
        self.up
            .get_or_create(&vec![("backend", name.to_owned())])
            .clone()
    }

    /// Whether requests may be sent to `backend`.
    pub fn is_up(&self, backend: &Backend) -> bool {
        backend.health.is_none() || self.state(backend).up.load(Ordering::Relaxed)
    }

    /// One probe's or one blob check's outcome for `backend`.
    pub fn record(&self, backend: &Backend, ok: bool) {
        let Some(spec) = &backend.health else {
            return;
        };
        let s = self.state(backend);
        if ok {
            s.failures.store(0, Ordering::Relaxed);
            let n = s.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= spec.healthy_after && !s.up.swap(true, Ordering::Relaxed) {
                info!(backend = %backend.name, "backend is healthy again after {n} good probes");
                self.gauge(&backend.name).set(1);
            }
        } else {
            s.successes.store(0, Ordering::Relaxed);
            let n = s.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= spec.unhealthy_after && s.up.swap(false, Ordering::Relaxed) {
                warn!(backend = %backend.name, "backend is unhealthy after {n} failed probes or checks; skipping it");
                self.gauge(&backend.name).set(0);
            }
        }
    }

    /// The backends whose probe is due now, with their probe URL; each
    /// is scheduled for its next interval.
    pub fn due<'a>(&self, backends: &'a [Backend], now: Instant) -> Vec<(&'a Backend, String)> {
        backends
            .iter()
            .filter_map(|b| {
                let spec: &HealthSpec = b.health.as_ref()?;
                let s = self.state(b);
                let mut next = s.next_probe.lock().unwrap_or_else(|e| e.into_inner());
                if next.is_some_and(|t| t > now) {
                    return None;
                }
                *next = Some(now + spec.interval);
                Some((b, format!("{}{}", b.base_url, spec.path)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(health: Option<HealthSpec>) -> Backend {
        Backend {
            name: "eu".into(),
            base_url: "http://eu".into(),
            store: None,
            weight: 1,
            location: None,
            health,
        }
    }

    fn spec() -> HealthSpec {
        HealthSpec {
            path: "/containers/images/canary".into(),
            interval: Duration::from_secs(10),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }

    #[test]
    fn transitions_need_runs_in_a_row() {
        let h = Health::default();
        let b = backend(Some(spec()));
        assert!(h.is_up(&b));
        for ok in [false, false, true, false, false] {
            h.record(&b, ok);
            assert!(h.is_up(&b), "a good probe breaks the run of failures");
        }
        h.record(&b, false);
        assert!(!h.is_up(&b), "three failures in a row");
        h.record(&b, true);
        assert!(!h.is_up(&b), "one good probe is not enough");
        h.record(&b, true);
        assert!(h.is_up(&b));
    }

    #[test]
    fn without_health_a_backend_is_always_up_and_never_probed() {
        let h = Health::default();
        let b = backend(None);
        for _ in 0..10 {
            h.record(&b, false);
        }
        assert!(h.is_up(&b));
        assert!(h.due(std::slice::from_ref(&b), Instant::now()).is_empty());
    }

    #[test]
    fn probes_are_due_once_per_interval() {
        let h = Health::default();
        let b = [backend(Some(spec()))];
        let t = Instant::now();
        let due = h.due(&b, t);
        assert_eq!(due[0].1, "http://eu/containers/images/canary");
        assert!(h.due(&b, t + Duration::from_secs(9)).is_empty());
        assert_eq!(h.due(&b, t + Duration::from_secs(10)).len(), 1);
    }
}
