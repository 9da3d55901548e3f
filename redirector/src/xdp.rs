//! Bringing up the XDP classifier, the same way for `serve` and `watch`:
//! load the program, fill the maps, mark the service ports, pin the maps
//! for `explain --kernel` (best effort), attach.

use std::{path::Path, sync::Arc};

use steer_user::{AttachMode, RangeTable, Steer, ranges::chain};
use tracing::warn;

/// A step of the bring-up that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}")]
pub struct XdpError {
    step: String,
    /// Boxed: the loader's errors are large, and this one is returned
    /// by value on the happy path's signature.
    #[source]
    source: Box<steer_user::Error>,
}

fn step(step: impl Into<String>) -> impl FnOnce(steer_user::Error) -> XdpError {
    let step = step.into();
    move |source| XdpError {
        step,
        source: Box::new(source),
    }
}

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
) -> Result<Steer, XdpError> {
    let mut steer =
        Steer::load().map_err(step("loading the XDP classifier (needs root or CAP_BPF)"))?;
    steer
        .load_table(table)
        .map_err(step("loading ranges into the XDP maps"))?;
    steer
        .set_service_ports(ports)
        .map_err(step("setting the service ports"))?;
    if let Some(dir) = pin_dir
        && let Err(e) = steer.pin(dir)
    {
        // explain --kernel needs the pins, classification does not.
        warn!(error = %chain(&e), "maps not pinned; `explain --kernel` will not see them");
    }
    steer.attach(iface, mode).map_err(step(match mode {
        AttachMode::Native => format!(
            "{iface} may have no native XDP support (lo never has): try --mode auto or generic"
        ),
        _ => format!("attaching XDP to {iface}"),
    }))?;
    Ok(steer)
}
