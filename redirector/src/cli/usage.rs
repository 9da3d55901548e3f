//! The one error kind the CLI maps to its own exit code.

/// A mistake in the command line, the config or an images file: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
