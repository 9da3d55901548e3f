//! The task that probes backends with `health` while the server runs:
//! every tick it asks [`Health`](super::health::Health) which probes are
//! due, under the settings in force (so a reload adds or drops probes),
//! and runs each on its own task, bounded by the blob check timeout; and
//! fetches ownership proofs at start and every minute after.

use std::{sync::Arc, time::Instant};

use super::{
    blob_check::Presence,
    health::{MAX_PROOF, PROBE_TICK},
    state::State,
};

pub async fn probe_backends(state: Arc<State>) {
    let mut tick = tokio::time::interval(PROBE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let settings = state.settings();
        for (backend, url) in state.health.due(settings.backends.list(), Instant::now()) {
            let backend = backend.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let presence = state.checker.probe(&url).await;
                state
                    .health
                    .record(&backend, matches!(presence, Presence::Found(_)));
            });
        }
        for (backend, url, want) in state
            .health
            .proofs_due(settings.backends.list(), Instant::now())
        {
            let backend = backend.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let outcome = match state.checker.fetch(&url, MAX_PROOF).await {
                    Ok(body) => match crate::sync::digest::sha256(&body) {
                        got if got == want => Ok(()),
                        got => Err(format!("{url} has {got}, not {want}")),
                    },
                    Err(e) => Err(format!("{url}: {e}")),
                };
                state.health.record_proof(&backend, outcome);
            });
        }
    }
}
