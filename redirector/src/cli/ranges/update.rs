//! `redirector ranges update`: fetch the feeds with conditional requests.
//!
//! Each feed is fetched on its own; one that fails, does not parse, or
//! shrank too much keeps its last good copy in the snapshot, and the
//! command exits non-zero after writing the rest.

use std::{
    io::ErrorKind,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, anyhow, bail};
use steer_user::{
    FeedError,
    feeds::{FeedKind, FeedOrigin, Snapshot, SnapshotFeed},
    ranges::{DEFAULT_MAX_SHRINK, chain},
};
use tracing::warn;

use crate::cli::range_args::{DEFAULT_SNAPSHOT, parse_fraction};

/// Feeds are a few MB (AWS about 2.5 MB); anything far larger is wrong.
const MAX_FEED_BYTES: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// The snapshot to update (created if missing).
    #[arg(long, value_name = "FILE", env = "STEER_SNAPSHOT", default_value = DEFAULT_SNAPSHOT)]
    snapshot: PathBuf,
    /// Fetch this feed from this URL, KIND=URL. Repeatable. Without any,
    /// the feeds the snapshot already has are fetched from their recorded
    /// sources (AWS and GCP for a new snapshot).
    #[arg(long = "url", value_name = "KIND=URL", value_parser = parse_kind_url)]
    urls: Vec<(FeedKind, String)>,
    /// Refuse a feed that lost more than this fraction of its prefixes.
    #[arg(long, value_name = "FRACTION", default_value_t = DEFAULT_MAX_SHRINK, value_parser = parse_fraction)]
    max_shrink: f64,
    /// Time allowed for each fetch (seconds, or a duration such as 2m).
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = crate::config::duration::positive_flag)]
    timeout: Duration,
    /// Keep running: update again this long after each update ends (a
    /// sidecar beside `serve`, which reloads the snapshot on its own
    /// timer). Failures are logged, and the last good copy stays. Stops
    /// on SIGTERM or Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::duration::positive_flag)]
    every: Option<Duration>,
}

pub fn parse_kind_url(s: &str) -> Result<(FeedKind, String), String> {
    let (kind, url) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KIND=URL"))?;
    let kind: FeedKind = kind.parse()?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    Ok((kind, url.to_owned()))
}

enum Outcome {
    NotModified,
    Updated(SnapshotFeed),
}

pub fn run(args: Args) -> Result<()> {
    let Some(every) = args.every else {
        return update(&args);
    };
    // One worker: the fetches block it (block_in_place) between signals.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let mut control =
            crate::control::Control::new(every).context("installing signal handlers")?;
        loop {
            if let Err(e) = tokio::task::block_in_place(|| update(&args)) {
                warn!("ranges update: {e:#}; trying again in {every:?}");
            }
            // Reload (SIGHUP or the timer) runs the next update; stop ends.
            if let crate::control::Event::Stop = control.next().await {
                return Ok(());
            }
        }
    })
}

fn update(args: &Args) -> Result<()> {
    let existing = match Snapshot::read(&args.snapshot) {
        Ok(s) => Some(s),
        Err(FeedError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            // A damaged file is replaced; its feeds cannot be trusted as the
            // last good copy, so the embedded snapshot stands in.
            warn!(error = %chain(&e), "existing snapshot unreadable; starting from the embedded one");
            None
        }
    };
    let have_file = existing.is_some();
    let base = existing.unwrap_or_else(Snapshot::embedded);

    let mut targets: Vec<(FeedKind, String)> = args.urls.clone();
    if targets.is_empty() {
        for f in base.feeds() {
            if f.origin.source.starts_with("http") {
                targets.push((f.kind, f.origin.source.clone()));
            }
        }
    }
    if targets.is_empty() {
        bail!("no feed URLs: pass --url KIND=URL");
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(args.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut next = base.clone();
    let mut failures = Vec::new();
    for (kind, url) in &targets {
        // The shrink check compares like with like: a copy from the same
        // source (the embedded one included). A new source is the
        // operator's choice and starts its own history.
        let last = base.feed(*kind).filter(|f| &f.origin.source == url);
        // Validators only from a file on disk: the embedded copy was never
        // fetched by this machine.
        let validators = last.filter(|_| have_file);
        match fetch(&agent, *kind, url, validators, last, args.max_shrink) {
            Ok(Outcome::NotModified) => println!("{kind}: not modified ({url})"),
            Ok(Outcome::Updated(feed)) => {
                println!(
                    "{kind}: updated, {} entries, created {} ({url})",
                    feed.feed.entries.len(),
                    feed.feed.created
                );
                next.insert(feed);
            }
            Err(e) => {
                println!("{kind}: kept the last good copy: {e:#}");
                failures.push(kind.name());
            }
        }
    }
    if next != base || !have_file {
        next.write(&args.snapshot)
            .with_context(|| format!("writing {}", args.snapshot.display()))?;
        println!("wrote {}", args.snapshot.display());
    } else {
        println!("{} unchanged", args.snapshot.display());
    }
    if !failures.is_empty() {
        bail!("feeds not updated: {}", failures.join(", "));
    }
    Ok(())
}

fn fetch(
    agent: &ureq::Agent,
    kind: FeedKind,
    url: &str,
    validators: Option<&SnapshotFeed>,
    last: Option<&SnapshotFeed>,
    max_shrink: f64,
) -> Result<Outcome> {
    let mut request = agent.get(url);
    if let Some(v) = validators {
        if let Some(etag) = &v.origin.etag {
            request = request.header("If-None-Match", etag);
        }
        if let Some(date) = &v.origin.last_modified {
            request = request.header("If-Modified-Since", date);
        }
    }
    let mut response = request.call().with_context(|| format!("fetching {url}"))?;
    let status = response.status().as_u16();
    if status == 304 {
        if validators.is_none() {
            return Err(anyhow!("{url} answered 304 to an unconditional request"));
        }
        return Ok(Outcome::NotModified);
    }
    if status != 200 {
        return Err(anyhow!("{url} answered HTTP {status}"));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_FEED_BYTES)
        .read_to_string()
        .with_context(|| format!("reading the body of {url}"))?;
    let feed = kind
        .parse(&text, url.ends_with(".toml"))
        .with_context(|| format!("parsing {url}"))?;
    if let Some(last) = last {
        feed.check_shrink(&last.feed, max_shrink)?;
    }
    Ok(Outcome::Updated(SnapshotFeed {
        kind,
        origin: FeedOrigin {
            source: url.to_owned(),
            etag,
            last_modified,
            fetched: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        },
        feed,
    }))
}
