//! The command-line options that say where ranges come from, shared by
//! every command that classifies.

use std::path::PathBuf;

use steer_user::{
    feeds::FeedKind,
    ranges::{DEFAULT_MAX_SHRINK, RangeSources},
};

/// Where `ranges update` writes the snapshot and services read it.
pub const DEFAULT_SNAPSHOT: &str = "/var/lib/steer/ranges.snapshot";

#[derive(clap::Args, Clone, Debug)]
pub struct RangeArgs {
    /// The snapshot `redirector ranges update` writes. While it does not
    /// exist, the snapshot built into the binary serves.
    #[arg(long, value_name = "FILE", env = "STEER_SNAPSHOT", default_value = DEFAULT_SNAPSHOT)]
    pub snapshot: PathBuf,
    /// A custom list (TOML, or CSV `prefix,provider,region[,service]`) of
    /// sponsor or on-prem networks; wins over every provider feed.
    /// Repeatable; earlier lists win.
    #[arg(long, value_name = "FILE")]
    pub custom: Vec<PathBuf>,
    /// A raw provider feed file, KIND=FILE with KIND one of aws, gcp,
    /// azure, oracle; replaces the snapshot's feed of that kind. Repeatable.
    #[arg(long, value_name = "KIND=FILE", value_parser = parse_kind_path)]
    pub feed: Vec<(FeedKind, PathBuf)>,
    /// Refuse a feed that lost more than this fraction of its prefixes
    /// against its last good copy (0 to 1).
    #[arg(long, value_name = "FRACTION", default_value_t = DEFAULT_MAX_SHRINK, value_parser = parse_fraction)]
    pub max_shrink: f64,
}

impl RangeArgs {
    pub fn sources(&self) -> RangeSources {
        RangeSources {
            custom: self.custom.clone(),
            snapshot: Some(self.snapshot.clone()),
            feeds: self.feed.clone(),
            max_shrink: self.max_shrink,
        }
    }
}

pub fn parse_kind_path(s: &str) -> Result<(FeedKind, PathBuf), String> {
    let (kind, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KIND=FILE, e.g. aws=ip-ranges.json"))?;
    let kind: FeedKind = kind.parse()?;
    if kind == FeedKind::Custom {
        return Err("custom lists go with --custom FILE".to_owned());
    }
    Ok((kind, PathBuf::from(path)))
}

pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}
