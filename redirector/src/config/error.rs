//! The config model's plain types: its error, and the TLS and XDP parts.

use std::path::PathBuf;

use steer_user::AttachMode;

/// A setting that cannot be used; the message names the variable, key or
/// flag (and the file).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }
}

/// A PEM certificate chain and its key: the listener serves TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Classification by XDP on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    pub iface: String,
    pub mode: AttachMode,
    /// Where to pin the maps for `explain --kernel`; None: no pins.
    pub pin_dir: Option<PathBuf>,
}

/// `n` unless it is zero: counts of connections, streams, checks. `what`
/// names the key or flag.
pub(super) fn at_least_one(what: &str, n: Option<usize>) -> Result<Option<usize>, ConfigError> {
    match n {
        Some(0) => Err(ConfigError::new(format!("{what}: must be at least 1"))),
        n => Ok(n),
    }
}
