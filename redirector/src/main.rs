//! steer's operator CLI. The HTTP redirector itself lands with `serve`.

mod watch;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use steer_user::{
    AttachMode, RangeTable,
    feeds::{read_aws, read_gcp},
};
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
    /// Attach the XDP classifier to an interface and print live per-class
    /// SYN counters every second until Ctrl-C or SIGTERM, then detach.
    Watch(watch::Args),
}

/// Where the provider ranges come from.
#[derive(clap::Args)]
struct RangeArgs {
    /// AWS ip-ranges.json to load.
    #[arg(long, value_name = "FILE")]
    aws_feed: Option<PathBuf>,
    /// GCP cloud.json to load.
    #[arg(long, value_name = "FILE")]
    gcp_feed: Option<PathBuf>,
}

impl RangeArgs {
    fn load(&self) -> Result<RangeTable> {
        let mut feeds = Vec::new();
        if let Some(path) = &self.aws_feed {
            feeds.push(read_aws(path).context("loading the AWS feed")?);
        }
        if let Some(path) = &self.gcp_feed {
            feeds.push(read_gcp(path).context("loading the GCP feed")?);
        }
        if feeds.is_empty() {
            bail!("no ranges given: pass --aws-feed FILE and/or --gcp-feed FILE");
        }
        Ok(RangeTable::compile(&feeds))
    }
}

fn parse_mode(s: &str) -> Result<AttachMode, String> {
    s.parse()
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Watch(args) => watch::run(args),
    }
}
