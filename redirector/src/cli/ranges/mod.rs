//! `redirector ranges ...`: build, fetch and show the ranges snapshot.

mod update;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use steer_user::feeds::{FeedKind, FeedOrigin, Snapshot, SnapshotFeed};

use super::range_args::{DEFAULT_SNAPSHOT, parse_kind_path};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Compile feed files into a snapshot (how the embedded default is made).
    Compile(CompileArgs),
    /// Fetch the feeds from their URLs (conditional requests) and rewrite
    /// the snapshot atomically; a running service picks it up on SIGHUP or
    /// its reload timer.
    Update(update::Args),
    /// Print what a snapshot holds.
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub struct CompileArgs {
    /// A provider feed file, KIND=FILE (aws, gcp, azure, oracle). Repeatable.
    #[arg(long, value_name = "KIND=FILE", value_parser = parse_kind_path, required = true)]
    feed: Vec<(FeedKind, PathBuf)>,
    /// The URL to record as a feed's source, KIND=URL; defaults to the
    /// provider's published URL.
    #[arg(long, value_name = "KIND=URL", value_parser = update::parse_kind_url)]
    source: Vec<(FeedKind, String)>,
    /// The snapshot file to write.
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The snapshot to show; `embedded` for the one built in.
    #[arg(default_value = DEFAULT_SNAPSHOT)]
    snapshot: String,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Compile(args) => compile(args),
        Command::Update(args) => update::run(args),
        Command::Show(args) => show(args),
    }
}

fn compile(args: CompileArgs) -> Result<()> {
    let mut snapshot = Snapshot::default();
    for (kind, path) in &args.feed {
        if snapshot.feed(*kind).is_some() {
            bail!("--feed {kind} given twice");
        }
        let feed = kind
            .read(path)
            .with_context(|| format!("reading the {kind} feed"))?;
        let source = args
            .source
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, url)| url.clone())
            .or_else(|| kind.default_url().map(str::to_owned))
            .unwrap_or_else(|| path.display().to_string());
        snapshot.insert(SnapshotFeed {
            kind: *kind,
            origin: FeedOrigin {
                source,
                ..FeedOrigin::default()
            },
            feed,
        });
    }
    snapshot
        .write(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let bytes = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
    for f in snapshot.feeds() {
        println!(
            "{}: {} prefixes, created {}",
            f.kind,
            f.feed.entries.len(),
            f.feed.created
        );
    }
    println!("wrote {} ({bytes} bytes)", args.output.display());
    Ok(())
}

fn show(args: ShowArgs) -> Result<()> {
    let snapshot = if args.snapshot == "embedded" {
        Snapshot::embedded()
    } else {
        Snapshot::read(args.snapshot.as_ref()).context("reading the snapshot")?
    };
    for f in snapshot.feeds() {
        println!("{}", f.kind);
        println!("  source         {}", f.origin.source);
        println!("  created        {}", f.feed.created);
        println!("  prefixes       {}", f.feed.entries.len());
        for (key, value) in [
            ("etag", &f.origin.etag),
            ("last-modified", &f.origin.last_modified),
            ("fetched", &f.origin.fetched),
        ] {
            if let Some(v) = value {
                println!("  {key:<14} {v}");
            }
        }
    }
    Ok(())
}
