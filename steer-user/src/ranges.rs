//! What a running service classifies with: range sources loaded into one
//! table, and reloaded without ever losing the last good state.
//!
//! Sources, in precedence order: custom lists, then the provider feeds
//! (from feed files given directly, else from the snapshot that `redirector
//! ranges update` writes, else from the snapshot built into the binary).
//! On reload, a source that fails to read or parse, or that shrank too much,
//! keeps its last good copy and is reported; the rest reload.

use std::{io, path::PathBuf, sync::Arc};

use tracing::{info, warn};

use crate::{
    Classifier, FeedError, RangeTable,
    feeds::{Feed, FeedKind, Snapshot},
};

/// Default for [`RangeSources::max_shrink`]: refuse a feed that lost more
/// than a quarter of its prefixes.
pub const DEFAULT_MAX_SHRINK: f64 = 0.25;

/// Where the ranges come from.
#[derive(Clone, Debug)]
pub struct RangeSources {
    /// Custom lists (TOML or CSV), before every provider feed, in order.
    pub custom: Vec<PathBuf>,
    /// The snapshot `redirector ranges update` writes. While it does not
    /// exist yet, the embedded snapshot serves.
    pub snapshot: Option<PathBuf>,
    /// Raw provider feed files; a kind given here replaces the snapshot's.
    pub feeds: Vec<(FeedKind, PathBuf)>,
    /// Largest fraction of its prefixes a feed may lose against its last
    /// good copy before it is refused.
    pub max_shrink: f64,
}

impl Default for RangeSources {
    fn default() -> Self {
        RangeSources {
            custom: Vec::new(),
            snapshot: None,
            feeds: Vec::new(),
            max_shrink: DEFAULT_MAX_SHRINK,
        }
    }
}

/// One feed as loaded, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedFeed {
    pub kind: FeedKind,
    /// Identifies the source across reloads.
    key: String,
    /// For people: "custom list /etc/steer/sponsors.toml", "embedded
    /// snapshot (https://...)".
    pub origin: String,
    pub feed: Feed,
}

/// A compiled set of ranges; `feeds[i]` is `table.feeds()[i]`.
pub struct Ranges {
    pub feeds: Vec<LoadedFeed>,
    pub table: Arc<RangeTable>,
    pub classifier: Arc<Classifier>,
}

/// The result of a load: the ranges, and the sources that kept their last
/// good copy (with why).
pub struct Loaded {
    pub ranges: Ranges,
    pub kept: Vec<FeedError>,
    /// Whether the table differs from the last one.
    pub changed: bool,
}

struct Unit {
    kind: FeedKind,
    key: String,
    origin: String,
    feed: Result<Feed, FeedError>,
}

impl RangeSources {
    /// Loads every source. With `last`, a failing source keeps its copy in
    /// `last`; without, any failing source is an error.
    pub fn load(&self, last: Option<&Ranges>) -> Result<Loaded, FeedError> {
        let mut units = Vec::new();
        for path in &self.custom {
            units.push(Unit {
                kind: FeedKind::Custom,
                key: format!("custom {}", path.display()),
                origin: format!("custom list {}", path.display()),
                feed: FeedKind::Custom.read(path),
            });
        }
        let mut kept = Vec::new();
        self.snapshot_units(last, &mut units, &mut kept)?;
        for (kind, path) in &self.feeds {
            units.push(Unit {
                kind: *kind,
                key: format!("file {kind} {}", path.display()),
                origin: format!("feed file {}", path.display()),
                feed: kind.read(path),
            });
        }

        let mut feeds = Vec::with_capacity(units.len());
        for unit in units {
            let previous = last.and_then(|l| l.feeds.iter().find(|f| f.key == unit.key));
            let checked = unit.feed.and_then(|feed| match previous {
                Some(p) => feed.check_shrink(&p.feed, self.max_shrink).map(|()| feed),
                None => Ok(feed),
            });
            match (checked, previous) {
                (Ok(feed), _) => feeds.push(LoadedFeed {
                    kind: unit.kind,
                    key: unit.key,
                    origin: unit.origin,
                    feed,
                }),
                (Err(e), Some(p)) => {
                    warn!(source = %p.origin, error = %chain(&e), "keeping the last good copy");
                    kept.push(e);
                    feeds.push(p.clone());
                }
                (Err(e), None) => return Err(e),
            }
        }
        // Sources no longer configured are dropped; the rest go in
        // precedence order (stable: custom lists keep their given order).
        feeds.sort_by_key(|f| f.kind);

        let changed = last.is_none_or(|l| l.feeds != feeds);
        let table = match last {
            Some(l) if !changed => l.table.clone(),
            _ => Arc::new(RangeTable::compile(
                &feeds.iter().map(|f| f.feed.clone()).collect::<Vec<_>>(),
            )),
        };
        let classifier = match last {
            Some(l) if !changed => l.classifier.clone(),
            _ => Arc::new(Classifier::new(&table)),
        };
        if changed {
            info!(
                v4 = table.v4().len(),
                v6 = table.v6().len(),
                classes = table.class_count(),
                feeds = %feeds.iter().map(|f| f.origin.as_str()).collect::<Vec<_>>().join("; "),
                "ranges compiled"
            );
        }
        Ok(Loaded {
            ranges: Ranges {
                feeds,
                table,
                classifier,
            },
            kept,
            changed,
        })
    }

    fn snapshot_units(
        &self,
        last: Option<&Ranges>,
        units: &mut Vec<Unit>,
        kept: &mut Vec<FeedError>,
    ) -> Result<(), FeedError> {
        let (snapshot, label) = match &self.snapshot {
            None if !self.feeds.is_empty() => return Ok(()),
            None => (Snapshot::embedded(), "embedded snapshot".to_owned()),
            Some(path) => match Snapshot::read(path) {
                Ok(s) => (s, format!("snapshot {}", path.display())),
                Err(FeedError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    info!(
                        path = %path.display(),
                        "no snapshot yet (`redirector ranges update` writes it); serving the embedded one"
                    );
                    (Snapshot::embedded(), "embedded snapshot".to_owned())
                }
                Err(e) => {
                    let Some(last) = last else { return Err(e) };
                    warn!(error = %chain(&e), "snapshot unreadable; keeping the feeds it gave last time");
                    kept.push(e);
                    for f in last.feeds.iter().filter(|f| f.key.starts_with("snapshot ")) {
                        units.push(Unit {
                            kind: f.kind,
                            key: f.key.clone(),
                            origin: f.origin.clone(),
                            feed: Ok(f.feed.clone()),
                        });
                    }
                    return Ok(());
                }
            },
        };
        // A feed that vanished from the snapshot is a feed that shrank to
        // nothing: keep its last copy. (`ranges update` never drops one;
        // removing a provider takes a restart.)
        for f in last.into_iter().flat_map(|l| &l.feeds) {
            let gone = f.key.starts_with("snapshot ")
                && snapshot.feed(f.kind).is_none()
                && !self.feeds.iter().any(|(k, _)| *k == f.kind);
            if gone {
                let e = FeedError::Missing {
                    feed: f.kind.name(),
                };
                warn!(error = %e, "keeping the last good copy");
                kept.push(e);
                units.push(Unit {
                    kind: f.kind,
                    key: f.key.clone(),
                    origin: f.origin.clone(),
                    feed: Ok(f.feed.clone()),
                });
            }
        }
        for f in snapshot.feeds() {
            if self.feeds.iter().any(|(k, _)| *k == f.kind) {
                continue;
            }
            units.push(Unit {
                kind: f.kind,
                // Keyed by kind, not file: the embedded copy and a later
                // downloaded one are the same source for the shrink check.
                key: format!("snapshot {}", f.kind),
                origin: format!("{label} ({})", f.origin.source),
                feed: Ok(f.feed.clone()),
            });
        }
        Ok(())
    }
}

/// An error and its causes on one line, for logs.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

impl Ranges {
    /// Which loaded feed produced the table's feed summary `summary`.
    pub fn origin_of(&self, summary: &crate::table::FeedSummary) -> Option<&LoadedFeed> {
        let i = self
            .table
            .feeds()
            .iter()
            .position(|s| std::ptr::eq(s, summary))?;
        self.feeds.get(i)
    }
}
