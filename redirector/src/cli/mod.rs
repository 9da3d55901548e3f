//! The operator CLI: clap types for every command, and the commands that
//! are only front ends (`watch`, `explain`, `ranges`). `serve` turns its
//! flags into the config model and starts [`crate::serve::Server`].

pub mod audit;
pub mod check_config;
pub mod explain;
pub mod explain_probe;
pub mod log_filter;
pub mod mirror_args;
pub mod range_args;
pub mod ranges;
pub mod report;
pub mod serve;
pub mod sync;
pub mod usage;
pub mod watch;

pub use usage::UsageError;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "redirector",
    version,
    about = "steer: send each pull to the mirror nearest the client"
)]
pub struct Cli {
    /// Log lines as text (for people) or JSON (one object per line, for
    /// log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `redirector --version`: the version and the date of each feed in the
/// ranges snapshot built into the binary.
pub fn long_version() -> String {
    let snapshot = steer_user::feeds::Snapshot::embedded();
    let feeds: Vec<String> = snapshot
        .feeds()
        .iter()
        .map(|f| format!("{} {}", f.kind, f.feed.created))
        .collect();
    format!(
        "{} (embedded ranges: {})",
        env!("CARGO_PKG_VERSION"),
        feeds.join(", ")
    )
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve registry redirects: blobs to the backend nearest the client,
    /// everything else to the upstream registry. Configured like the
    /// registry's Go service (PORT, UPSTREAM_REGISTRY_ENDPOINT, ...).
    Serve(Box<serve::ServeArgs>),
    /// Attach the XDP classifier to an interface and print live per-class
    /// SYN counters until Ctrl-C or SIGTERM, then detach. Reloads the
    /// ranges on SIGHUP and on a timer.
    Watch(watch::WatchArgs),
    /// Show how addresses are classified: prefix, class, feed, backend.
    Explain(explain::ExplainArgs),
    /// Build, fetch and show the ranges snapshot.
    #[command(subcommand)]
    Ranges(ranges::Command),
    /// Validate a `serve` config file and print every key's value and
    /// origin (default, env or file).
    CheckConfig(check_config::CheckConfigArgs),
    /// Copy the blobs of images from the upstream into every backend's
    /// store, verified; a rerun copies only what is missing. Exit 0: every
    /// blob is in every store; 1: something failed; 2: usage or config.
    Sync(Box<sync::SyncArgs>),
    /// Check that every backend serves every blob of images through its
    /// base_url, as clients fetch it. Exit codes as for sync.
    Audit(Box<audit::AuditArgs>),
    /// Requests, bytes, the share mirrors served, cost and savings, per
    /// client class and per backend: from instances' /metrics (since they
    /// started) or a Prometheus server (over a window).
    Report(report::ReportArgs),
}

impl Command {
    /// Services log what they do; one-shot commands only what went wrong.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Watch(_) | Command::Serve(_) => "info",
            Command::Explain(_)
            | Command::Ranges(_)
            | Command::CheckConfig(_)
            | Command::Sync(_)
            | Command::Audit(_)
            | Command::Report(_) => "warn",
        }
    }
}

/// Runs one command to its end; the exit code for when it did not fail.
pub fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    let ok = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match command {
        Command::Watch(args) => ok(watch::run(args)),
        Command::Serve(args) => ok(serve::run(*args)),
        Command::Explain(args) => ok(explain::run(args)),
        Command::Ranges(command) => ok(ranges::run(command)),
        Command::CheckConfig(args) => ok(check_config::run(args)),
        Command::Sync(args) => sync::run(*args),
        Command::Audit(args) => audit::run(*args),
        Command::Report(args) => ok(report::run(args)),
    }
}
