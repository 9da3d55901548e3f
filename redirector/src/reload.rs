//! One range reload, shared by `watch` and `serve`: load the sources
//! against the current ranges, load a changed table into the kernel, and
//! keep everything as it was when any step fails.

use std::sync::Arc;

use steer_user::{
    RangeTable, TableLoad,
    ranges::{RangeSources, Ranges, chain},
};
use tracing::{error, info, warn};

pub enum Reload {
    /// Nothing changed; the kernel maps were left alone.
    Unchanged,
    /// The new ranges, and how they reached the kernel (None without XDP).
    Reloaded {
        ranges: Ranges,
        load: Option<TableLoad>,
    },
    /// The current ranges keep serving; why.
    Failed(String),
}

/// Reloads `sources` against `current`. `to_kernel` loads a changed table
/// into the XDP maps where there are any. Sources that kept their last
/// good copy come back as messages next to the result.
pub fn reload(
    sources: &RangeSources,
    current: &Ranges,
    why: &str,
    to_kernel: impl FnOnce(&Arc<RangeTable>) -> Result<Option<TableLoad>, steer_user::Error>,
) -> (Reload, Vec<String>) {
    let loaded = match sources.load(Some(current)) {
        Ok(l) => l,
        Err(e) => {
            error!(why, error = %chain(&e), "reload failed; the current ranges keep serving");
            return (Reload::Failed(chain(&e)), Vec::new());
        }
    };
    let kept: Vec<String> = loaded.kept.iter().map(|e| chain(e)).collect();
    for e in &kept {
        warn!(why, error = %e, "kept the last good copy");
    }
    if !loaded.changed {
        info!(why, "ranges unchanged");
        return (Reload::Unchanged, kept);
    }
    match to_kernel(&loaded.ranges.table) {
        Ok(load) => {
            info!(why, "ranges reloaded");
            (
                Reload::Reloaded {
                    ranges: loaded.ranges,
                    load,
                },
                kept,
            )
        }
        Err(e) => {
            error!(why, error = %chain(&e), "loading the new table into the kernel failed; the current one keeps serving");
            (Reload::Failed(chain(&e)), kept)
        }
    }
}
