//! Which backends may be sent clients while serving: healthy, proven and
//! within budget.
//!
//! Health: a backend with `health` in the config is
//! probed at `<base_url><path>` every `interval`; failed blob checks count
//! as failed probes too. `unhealthy_after` failures in a row take it out
//! of every candidate list, `healthy_after` good probes in a row bring it
//! back. Each transition is logged once and shown as
//! `steer_backend_up{backend}`. A backend without `health` is always up:
//! nothing would bring it back.
//!
//! Proof: a backend with `proof` is used only while its proof object
//! hashes right (fetched by the prober). Budget: the sizes its blob checks
//! report are summed per UTC day; at `max_bytes_per_day` it is skipped
//! until the next day.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tracing::{error, info, warn};

use super::{family_handles::FamilyHandles, fleet::NameLabel};
use crate::backends::{Backend, HealthSpec};

/// How often the prober looks for backends whose probe is due.
pub const PROBE_TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
struct BackendState {
    up: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
    next_probe: Mutex<Option<Instant>>,
    /// Its ownership proof was fetched and matched (last time it was).
    proven: AtomicBool,
    proof_checked: AtomicBool,
    next_proof: Mutex<Option<Instant>>,
    /// Bytes sent its way on `day` (UTC days since the epoch).
    bytes_today: AtomicU64,
    day: AtomicU64,
}

/// Today, as UTC days since the epoch.
fn utc_day() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// How often a proof is fetched again (it may be taken away).
pub const PROOF_INTERVAL: Duration = Duration::from_secs(60);
/// The largest proof object read.
pub const MAX_PROOF: usize = 64 << 10;

/// Every backend's state, by name (names survive config reloads).
#[derive(Default)]
pub struct Health {
    /// foldhash: looked up for every blob request, by names from the
    /// config.
    states: RwLock<foldhash::HashMap<Arc<str>, Arc<BackendState>>>,
    up: Family<Vec<(&'static str, String)>, Gauge>,
    proven: Family<Vec<(&'static str, String)>, Gauge>,
    bytes: FamilyHandles<NameLabel, Counter>,
    over_budget: Family<NameLabel, Gauge>,
    /// Bytes counted against a budget since 00:00 UTC.
    today: Family<NameLabel, Gauge>,
}

impl Health {
    pub fn register(self: &Arc<Health>, registry: &mut Registry) {
        registry.register(
            "backend_up",
            "1 while a backend with health checks is up (0: skipped)",
            self.up.clone(),
        );
        registry.register(
            "backend_proven",
            "1 while a backend's ownership proof matches (0: never sent a client)",
            self.proven.clone(),
        );
        registry.register(
            "backend_bytes",
            "Bytes of blobs sent to each backend (from its blob checks' Content-Length)",
            self.bytes.family().clone(),
        );
        registry.register(
            "backend_over_budget",
            "1 while a backend has served its max_bytes_per_day today",
            self.over_budget.clone(),
        );
        registry.register(
            "backend_bytes_today",
            "Bytes counted against a backend's max_bytes_per_day since 00:00 UTC",
            self.today.clone(),
        );
    }

    /// A redirect of `size` bytes to `backend`: counted for its budget.
    pub fn served(&self, backend: &Backend, size: u64) {
        let label = NameLabel("backend", backend.name.clone());
        self.bytes.with(&label, |c| c.inc_by(size));
        let Some(max) = backend.max_bytes_per_day else {
            return;
        };
        let s = self.state(backend);
        let today = utc_day();
        if s.day.swap(today, Ordering::Relaxed) != today {
            s.bytes_today.store(0, Ordering::Relaxed);
        }
        let total = s.bytes_today.fetch_add(size, Ordering::Relaxed) + size;
        self.today
            .get_or_create(&label)
            .set(i64::try_from(total).unwrap_or(i64::MAX));
        if total >= max && total - size < max {
            warn!(backend = %backend.name, "backend reached its max_bytes_per_day ({max}); skipping it until 00:00 UTC");
            self.over_budget.get_or_create(&label).set(1);
        }
    }

    fn within_budget(&self, backend: &Backend, s: &BackendState) -> bool {
        let Some(max) = backend.max_bytes_per_day else {
            return true;
        };
        if s.day.load(Ordering::Relaxed) != utc_day() {
            let label = NameLabel("backend", backend.name.clone());
            self.over_budget.get_or_create(&label).set(0);
            self.today.get_or_create(&label).set(0);
            return true;
        }
        s.bytes_today.load(Ordering::Relaxed) < max
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

    /// Whether requests may be sent to `backend`: healthy (or not
    /// health-checked), proven when it must be, and within its budget.
    pub fn usable(&self, backend: &Backend) -> bool {
        let s = self.state(backend);
        (backend.health.is_none() || s.up.load(Ordering::Relaxed))
            && (backend.proof.is_none() || s.proven.load(Ordering::Relaxed))
            && self.within_budget(backend, &s)
    }

    /// A proof fetch's outcome: `Err` says why it does not prove.
    pub fn record_proof(&self, backend: &Backend, outcome: Result<(), String>) {
        let s = self.state(backend);
        let gauge = self
            .proven
            .get_or_create(&vec![("backend", backend.name.to_string())])
            .clone();
        match outcome {
            Ok(()) => {
                s.proof_checked.store(true, Ordering::Relaxed);
                if !s.proven.swap(true, Ordering::Relaxed) {
                    info!(backend = %backend.name, "ownership proof matches; the backend may serve");
                }
                gauge.set(1);
            }
            Err(why) => {
                // Logged when a proof first fails and when one is lost.
                let first = !s.proof_checked.swap(true, Ordering::Relaxed);
                if s.proven.swap(false, Ordering::Relaxed) || first {
                    error!(backend = %backend.name, "ownership proof failed ({why}); no client is sent there");
                }
                gauge.set(0);
            }
        }
    }

    /// The backends whose proof is due now: URL and expected sha256.
    pub fn proofs_due<'a>(
        &self,
        backends: &'a [Backend],
        now: Instant,
    ) -> Vec<(&'a Backend, String, String)> {
        backends
            .iter()
            .filter_map(|b| {
                let proof = b.proof.as_ref()?;
                let s = self.state(b);
                let mut next = s.next_proof.lock().unwrap_or_else(|e| e.into_inner());
                if next.is_some_and(|t| t > now) {
                    return None;
                }
                *next = Some(now + PROOF_INTERVAL);
                Some((
                    b,
                    format!("{}/{}", b.base_url, proof.path),
                    format!("sha256:{}", proof.sha256),
                ))
            })
            .collect()
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
                // An unproven backend gets nothing but its proof fetches.
                if b.proof.is_some() && !s.proven.load(Ordering::Relaxed) {
                    return None;
                }
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
            health,
            ..Backend::new("eu", "http://eu")
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
        assert!(h.usable(&b));
        for ok in [false, false, true, false, false] {
            h.record(&b, ok);
            assert!(h.usable(&b), "a good probe breaks the run of failures");
        }
        h.record(&b, false);
        assert!(!h.usable(&b), "three failures in a row");
        h.record(&b, true);
        assert!(!h.usable(&b), "one good probe is not enough");
        h.record(&b, true);
        assert!(h.usable(&b));
    }

    #[test]
    fn without_health_a_backend_is_always_up_and_never_probed() {
        let h = Health::default();
        let b = backend(None);
        for _ in 0..10 {
            h.record(&b, false);
        }
        assert!(h.usable(&b));
        assert!(h.due(std::slice::from_ref(&b), Instant::now()).is_empty());
    }

    #[test]
    fn a_budget_holds_for_the_day() {
        let h = Health::default();
        let mut b = backend(None);
        b.max_bytes_per_day = Some(2500);
        for _ in 0..2 {
            h.served(&b, 1000);
            assert!(h.usable(&b));
        }
        h.served(&b, 1000);
        assert!(!h.usable(&b), "3000 of 2500 bytes");
        // Another day starts from nothing.
        h.state(&b).day.store(utc_day() - 1, Ordering::Relaxed);
        assert!(h.usable(&b));
    }

    #[test]
    fn an_unproven_backend_is_not_even_health_probed() {
        let h = Health::default();
        let mut b = backend(Some(spec()));
        b.proof = Some(crate::backends::ProofSpec {
            path: "steer-ownership".into(),
            sha256: "0".repeat(64),
        });
        let t = Instant::now();
        assert!(h.due(std::slice::from_ref(&b), t).is_empty());
        assert!(!h.usable(&b));
        h.record_proof(&b, Ok(()));
        assert!(h.usable(&b));
        assert_eq!(h.due(std::slice::from_ref(&b), t).len(), 1);
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
