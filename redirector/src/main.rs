//! steer's HTTP redirector (`serve`) and operator CLI.

mod backends;
mod config;
mod duration;
mod explain;
mod range_args;
mod ranges;
mod reload;
mod serve;
mod watch;

use clap::{Parser, Subcommand};
use steer_user::AttachMode;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "steer: send each pull to the mirror nearest the client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve registry redirects: blobs to the backend nearest the client,
    /// everything else to the upstream registry. Configured like the
    /// registry's Go service (PORT, UPSTREAM_REGISTRY_ENDPOINT, ...).
    Serve(Box<serve::Args>),
    /// Attach the XDP classifier to an interface and print live per-class
    /// SYN counters until Ctrl-C or SIGTERM, then detach. Reloads the
    /// ranges on SIGHUP and on a timer.
    Watch(watch::Args),
    /// Show how addresses are classified: prefix, class, feed, backend.
    Explain(explain::Args),
    /// Build, fetch and show the ranges snapshot.
    #[command(subcommand)]
    Ranges(ranges::Command),
}

fn parse_mode(s: &str) -> Result<AttachMode, String> {
    s.parse()
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Services log what they do; one-shot commands only what went wrong.
    let default_level = match cli.command {
        Command::Watch(_) | Command::Serve(_) => "info",
        Command::Explain(_) | Command::Ranges(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files or journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Watch(args) => watch::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Explain(args) => explain::run(args),
        Command::Ranges(command) => ranges::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, cause chain included: what operators grep for.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
