//! Bringing up the XDP classifier, the same way for `serve` and `watch`:
//! load the program, fill the maps, mark the service ports, pin the maps
//! for `explain --kernel` (best effort), attach.

use std::{path::Path, sync::Arc};

use anyhow::{Context as _, Result};
use steer_user::{AttachMode, RangeTable, Steer, ranges::chain};
use tracing::warn;

/// Where a running instance pins its maps unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/steer";

/// `auto`, `native` or `generic`, for clap.
pub fn parse_mode(s: &str) -> Result<AttachMode, String> {
    s.parse()
}

/// A loaded and attached classifier with `table` in its maps.
pub fn bring_up(
    table: Arc<RangeTable>,
    ports: &[u16],
    iface: &str,
    mode: AttachMode,
    pin_dir: Option<&Path>,
) -> Result<Steer> {
    let mut steer = Steer::load().context("loading the XDP classifier (needs root or CAP_BPF)")?;
    steer
        .load_table(table)
        .context("loading ranges into the XDP maps")?;
    steer
        .set_service_ports(ports)
        .context("setting the service ports")?;
    if let Some(dir) = pin_dir
        && let Err(e) = steer.pin(dir)
    {
        // explain --kernel needs the pins, classification does not.
        warn!(error = %chain(&e), "maps not pinned; `explain --kernel` will not see them");
    }
    steer.attach(iface, mode).with_context(|| match mode {
        AttachMode::Native => format!(
            "{iface} may have no native XDP support (lo never has): try --mode auto or generic"
        ),
        _ => format!("attaching XDP to {iface}"),
    })?;
    Ok(steer)
}
