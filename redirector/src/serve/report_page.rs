//! `/report` on the admin listener: the figures of `redirector report`
//! for this instance since it started, read from its own `/metrics` text
//! (so the page and the scrape always agree), and the ring of samples
//! behind the page's chart, taken every [`SAMPLE_INTERVAL`].

use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::report::{
    exposition,
    figures::{self, Report},
    history::{History, Point, SAMPLE_INTERVAL},
    page,
};

use super::state::State;

/// This instance's figures now; the exposition is read off the async
/// workers, as `/metrics` is (the XDP counters come from the kernel).
async fn figures_now(state: &Arc<State>) -> Report {
    let s = state.clone();
    let text = tokio::task::spawn_blocking(move || s.metrics.encode())
        .await
        .unwrap_or_default();
    // The text is our own encoder's; a line it cannot read would be a
    // bug, and the page then shows what it has.
    let samples = exposition::parse(&text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading our own metrics for /report");
        Vec::new()
    });
    figures::figures(&samples, "since start", 1)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The page, with the ring's points and this moment's.
pub async fn render(state: &Arc<State>) -> String {
    let report = figures_now(state).await;
    let points = lock(&state.history).with_now(Point::of(&report, now()));
    page::render(&report, &points)
}

/// Samples the totals into the ring until aborted: once at start, then
/// every interval.
pub async fn sample(state: Arc<State>) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let report = figures_now(&state).await;
        lock(&state.history).record(Point::of(&report, now()));
    }
}

fn lock(h: &Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}
