//! `redirector sync`: fill every backend's store with the blobs of the
//! selected images, from the upstream the redirector redirects to.
//!
//! The selection is walked at the upstream into a [`plan::Plan`] (every
//! blob with its size); each store is listed once; each blob some store
//! lacks (or holds at the wrong size) is downloaded once and written to
//! each of those stores, verified on the way ([`copy`]). A rerun, after
//! any interruption, copies only what is still missing.

pub mod copy;
pub mod digest;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod report;
pub mod selection;
pub mod store;

use std::collections::HashMap;

use futures::{StreamExt as _, stream};

use self::{
    copy::copy_blob,
    plan::Plan,
    progress::Progress,
    registry::Registry,
    report::{BackendReport, Failure, Missing},
    store::Store,
};

/// Blobs copied at once, by default.
pub const DEFAULT_JOBS: usize = 8;

#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Blobs in flight at once (each downloaded once for every store).
    pub jobs: usize,
    /// Only list what each store lacks.
    pub dry_run: bool,
    /// Bars on a terminal, else plain lines.
    pub terminal: bool,
}

/// Brings every store up to `plan`; one report per store, in order.
pub async fn sync(
    registry: &Registry,
    plan: &Plan,
    stores: &[Store],
    options: &SyncOptions,
) -> Vec<BackendReport> {
    let mut reports: Vec<BackendReport> = stores
        .iter()
        .map(|s| BackendReport {
            name: s.backend.to_string(),
            store: s.url.clone(),
            ..BackendReport::default()
        })
        .collect();
    let inventories: Vec<Option<HashMap<String, u64>>> =
        futures::future::join_all(stores.iter().map(Store::inventory))
            .await
            .into_iter()
            .zip(&mut reports)
            .map(|(inv, report)| match inv {
                Ok(found) => Some(found),
                Err(e) => {
                    report.error = Some(format!("listing the store: {e}"));
                    None
                }
            })
            .collect();

    let mut work = Vec::new();
    for (digest, blob) in &plan.blobs {
        let mut targets = Vec::new();
        for (i, inv) in inventories.iter().enumerate() {
            let Some(inv) = inv else { continue };
            if inv.get(digest) == Some(&blob.size) {
                reports[i].skipped += 1;
                reports[i].skipped_bytes += blob.size;
            } else if options.dry_run {
                reports[i].missing.push(Missing {
                    digest: digest.clone(),
                    size: blob.size,
                });
                reports[i].missing_bytes += blob.size;
            } else {
                targets.push(i);
            }
        }
        if !targets.is_empty() {
            work.push((digest, blob, targets));
        }
    }
    if work.is_empty() {
        return reports;
    }

    let mut totals = vec![(0u64, 0u64); stores.len()];
    for (_, blob, targets) in &work {
        for &i in targets {
            totals[i].0 += 1;
            totals[i].1 += blob.size;
        }
    }
    let bars: Vec<(String, u64, u64)> = stores
        .iter()
        .zip(&totals)
        .filter(|(_, t)| t.0 > 0)
        .map(|(s, t)| (s.backend.to_string(), t.0, t.1))
        .collect();
    let progress = Progress::new(&bars, options.terminal);
    let mut done = vec![0u64; stores.len()];
    let mut copies = stream::iter(work)
        .map(|(digest, blob, targets)| async move {
            let to: Vec<Store> = targets.iter().map(|&i| stores[i].clone()).collect();
            let outcomes = copy_blob(registry, digest, blob, &to).await;
            (digest, blob, targets, outcomes)
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some((digest, blob, targets, outcomes)) = copies.next().await {
        for (i, outcome) in targets.into_iter().zip(outcomes) {
            let r = &mut reports[i];
            done[i] += 1;
            let what = match outcome {
                Ok(n) => {
                    r.copied += 1;
                    r.copied_bytes += n;
                    "copied"
                }
                Err(reason) => {
                    r.failed.push(Failure {
                        digest: digest.clone(),
                        reason,
                    });
                    "failed"
                }
            };
            progress.blob(&r.name, digest, blob.size, what, done[i], totals[i].0);
        }
    }
    progress.finish();
    for r in &mut reports {
        r.failed.sort_by(|a, b| a.digest.cmp(&b.digest));
    }
    reports
}

#[cfg(test)]
mod tests;
