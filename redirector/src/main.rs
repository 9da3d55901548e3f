//! `redirector`: the operator CLI; everything it does lives in the library.

use clap::{CommandFactory, FromArgMatches};
use redirector::cli::{Cli, LogFormat, log_filter::log_directives, long_version};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let mut command = Cli::command();
    // Only `--version` reads the embedded snapshot for its dates.
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        // Leaked once: clap keeps a static string, and the process ends soon.
        command = command.version(&*long_version().leak());
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let default = cli.command.default_log_level();
    let rust_log = std::env::var("RUST_LOG").ok();
    // A RUST_LOG the filter cannot read falls back to the default, as
    // before.
    let filter = EnvFilter::try_new(log_directives(rust_log.as_deref(), default))
        .unwrap_or_else(|_| EnvFilter::new(log_directives(None, default)));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        // Colour only for a person at a terminal, not in files or journals.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    match redirector::cli::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // One line, cause chain included: what operators grep for.
            eprintln!("error: {e:#}");
            if e.chain().any(|c| c.is::<redirector::cli::UsageError>()) {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
