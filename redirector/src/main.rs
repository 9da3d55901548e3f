//! `redirector`: the operator CLI; everything it does lives in the library.

use clap::Parser;
use redirector::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(cli.command.default_log_level())),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files or journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match redirector::cli::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, cause chain included: what operators grep for.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
