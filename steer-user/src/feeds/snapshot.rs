//! The ranges snapshot: every feed steer serves from, compacted into one
//! small text file with where each feed came from.
//!
//! `redirector ranges compile` writes it from feed files, `ranges update`
//! from the providers' URLs; the service reads it at start and on reload,
//! and the binary embeds one as its default. Each feed keeps one line group
//! per (provider, region, services) with its prefixes, after the in-feed
//! rule (named region beats `GLOBAL`) has picked one class per prefix, so
//! merging snapshot feeds gives the same table as merging the raw feeds.
//!
//! ```text
//! steer-ranges-snapshot 1
//! feed aws
//! source https://ip-ranges.amazonaws.com/ip-ranges.json
//! created 2026-07-29-08-27-05
//! etag "5a1b..."
//! group aws eu-west-3 AMAZON,EC2
//! 35.180.0.0/16 2a05:d012::/36
//! end
//! ```

use std::{collections::BTreeMap, fmt::Write as _, io::Write as _, path::Path};

use super::{Feed, FeedEntry, FeedKind, Place};
use crate::{FeedError, RangeTable};

const MAGIC: &str = "steer-ranges-snapshot 1";
const PER_LINE: usize = 8;

/// Where a feed in the snapshot came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedOrigin {
    /// URL or file the feed was read from.
    pub source: String,
    /// Validators for the next conditional request.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When steer fetched or compiled it (RFC 3339, UTC).
    pub fetched: Option<String>,
}

/// One feed of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFeed {
    pub kind: FeedKind,
    pub origin: FeedOrigin,
    pub feed: Feed,
}

/// A set of feeds, at most one per kind, in precedence order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    feeds: Vec<SnapshotFeed>,
}

static EMBEDDED: &str = include_str!("../../data/ranges.snapshot");

impl Snapshot {
    /// The snapshot built into the binary (AWS and GCP), so a machine with
    /// no network and no state serves real data.
    pub fn embedded() -> Snapshot {
        Snapshot::parse(EMBEDDED).expect("the embedded snapshot is checked by tests")
    }

    pub fn feeds(&self) -> &[SnapshotFeed] {
        &self.feeds
    }

    pub fn feed(&self, kind: FeedKind) -> Option<&SnapshotFeed> {
        self.feeds.iter().find(|f| f.kind == kind)
    }

    /// Adds or replaces the feed of `feed.kind`, compacting it.
    pub fn insert(&mut self, mut feed: SnapshotFeed) {
        feed.feed = compact(&feed.feed);
        match self.feeds.iter_mut().find(|f| f.kind == feed.kind) {
            Some(slot) => *slot = feed,
            None => {
                self.feeds.push(feed);
                self.feeds.sort_by_key(|f| f.kind);
            }
        }
    }

    /// Reads a snapshot file; errors name the file and the line.
    pub fn read(path: &Path) -> Result<Snapshot, FeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| FeedError::Read {
            feed: "snapshot",
            path: path.to_owned(),
            source,
        })?;
        Snapshot::parse(&text).map_err(|e| FeedError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Writes the snapshot to `path` atomically: a reader sees the old
    /// file or the new one, never a part.
    pub fn write(&self, path: &Path) -> Result<(), FeedError> {
        let io = |source| FeedError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(self.to_text().as_bytes()).map_err(io)?;
        // Public data: readable by tools that run without root.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        // The rename is durable once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{MAGIC}");
        let _ = writeln!(
            out,
            "# Written by `redirector ranges compile` or `ranges update`; regenerate, don't edit."
        );
        for f in &self.feeds {
            let _ = writeln!(out, "feed {}", f.kind);
            let _ = writeln!(out, "source {}", f.origin.source);
            let _ = writeln!(out, "created {}", f.feed.created);
            for (key, value) in [
                ("etag", &f.origin.etag),
                ("last-modified", &f.origin.last_modified),
                ("fetched", &f.origin.fetched),
            ] {
                if let Some(v) = value {
                    let _ = writeln!(out, "{key} {v}");
                }
            }
            let mut groups: BTreeMap<(&str, &str, &str), Vec<&FeedEntry>> = BTreeMap::new();
            for e in &f.feed.entries {
                groups
                    .entry((&e.provider, &e.region, &e.service))
                    .or_default()
                    .push(e);
            }
            for ((provider, region, service), mut entries) in groups {
                let _ = writeln!(out, "group {provider} {region} {service}");
                entries.sort_by_key(|e| e.prefix);
                for line in entries.chunks(PER_LINE) {
                    let nets: Vec<String> = line.iter().map(|e| e.prefix.to_string()).collect();
                    let _ = writeln!(out, "{}", nets.join(" "));
                }
            }
            let _ = writeln!(out, "end");
        }
        out
    }

    pub fn parse(text: &str) -> Result<Snapshot, FeedError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
        match lines.next() {
            Some((_, MAGIC)) => {}
            _ => {
                return Err(FeedError::Snapshot {
                    line: 1,
                    reason: format!("does not start with `{MAGIC}`"),
                });
            }
        }
        let mut snapshot = Snapshot::default();
        // (kind, origin, created, entries, current group)
        let mut open: Option<(FeedKind, FeedOrigin, String, Vec<FeedEntry>)> = None;
        let mut group: Option<(String, String, String)> = None;
        for (n, line) in lines {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| FeedError::Snapshot { line: n, reason };
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match (&mut open, word) {
                (None, "feed") => {
                    let kind: FeedKind = rest.parse().map_err(bad)?;
                    if snapshot.feed(kind).is_some() {
                        return Err(bad(format!("feed `{kind}` appears twice")));
                    }
                    open = Some((kind, FeedOrigin::default(), String::new(), Vec::new()));
                    group = None;
                }
                (None, _) => return Err(bad(format!("expected `feed`, found `{word}`"))),
                (Some((_, origin, created, _)), _)
                    if group.is_none()
                        && matches!(
                            word,
                            "source" | "created" | "etag" | "last-modified" | "fetched"
                        ) =>
                {
                    let value = rest.to_owned();
                    match word {
                        "source" => origin.source = value,
                        "created" => *created = value,
                        "etag" => origin.etag = Some(value),
                        "last-modified" => origin.last_modified = Some(value),
                        _ => origin.fetched = Some(value),
                    }
                }
                (Some(_), "group") => {
                    let mut parts = rest.splitn(3, ' ');
                    let (Some(provider), Some(region)) = (parts.next(), parts.next()) else {
                        return Err(bad("`group` needs a provider and a region".to_owned()));
                    };
                    let service = parts.next().unwrap_or_default();
                    group = Some((provider.to_owned(), region.to_owned(), service.to_owned()));
                }
                (Some(_), "end") => {
                    let (kind, origin, created, entries) = open.take().expect("matched Some");
                    let feed =
                        Feed::new(kind.name(), created, entries).map_err(|e| bad(e.to_string()))?;
                    snapshot.feeds.push(SnapshotFeed { kind, origin, feed });
                }
                (Some((kind, _, _, entries)), _) => {
                    let Some((provider, region, service)) = &group else {
                        return Err(bad(format!("prefixes before any `group`: `{word}`")));
                    };
                    let place = Place::line(kind.name(), n);
                    for net in line.split(' ').filter(|s| !s.is_empty()) {
                        entries.push(place.entry(provider, net, region, service)?);
                    }
                }
            }
        }
        if let Some((kind, ..)) = open {
            return Err(FeedError::Snapshot {
                line: text.lines().count(),
                reason: format!("feed `{kind}` has no `end` (truncated file?)"),
            });
        }
        if snapshot.feeds.is_empty() {
            return Err(FeedError::Snapshot {
                line: text.lines().count(),
                reason: "no feed in the snapshot (truncated file?)".to_owned(),
            });
        }
        snapshot.feeds.sort_by_key(|f| f.kind);
        Ok(snapshot)
    }
}

/// One entry per prefix, as the table would pick it inside this one feed,
/// with the winner's services joined.
fn compact(feed: &Feed) -> Feed {
    let table = RangeTable::compile(std::slice::from_ref(feed));
    let nets = table
        .v4()
        .iter()
        .map(|&(n, _)| n.into())
        .chain(table.v6().iter().map(|&(n, _)| n.into()));
    let mut entries: Vec<FeedEntry> = nets
        .map(|prefix| {
            let info = table.prefix_info(prefix).expect("a prefix of the table");
            let class = table.class(info.class).expect("a class of the table");
            FeedEntry {
                prefix,
                provider: class.provider.clone(),
                region: class.region.clone(),
                service: info.services.to_owned(),
            }
        })
        .collect();
    // The order the text has, so a parsed snapshot equals the one written.
    entries.sort_by(|a, b| {
        (&a.provider, &a.region, &a.service, a.prefix).cmp(&(
            &b.provider,
            &b.region,
            &b.service,
            b.prefix,
        ))
    });
    Feed {
        name: feed.name,
        created: feed.created.clone(),
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(prefix: &str, region: &str, service: &str) -> FeedEntry {
        FeedEntry {
            prefix: prefix.parse().unwrap(),
            provider: "aws".into(),
            region: region.into(),
            service: service.into(),
        }
    }

    fn sample() -> Snapshot {
        let mut s = Snapshot::default();
        s.insert(SnapshotFeed {
            kind: FeedKind::Aws,
            origin: FeedOrigin {
                source: "https://example.invalid/ip-ranges.json".into(),
                etag: Some("\"abc\"".into()),
                last_modified: None,
                fetched: Some("2026-11-23T08:00:00Z".into()),
            },
            feed: Feed {
                name: "aws",
                created: "2026-07-29-08-27-05".into(),
                entries: vec![
                    entry("35.180.0.0/16", "GLOBAL", "AMAZON"),
                    entry("35.180.0.0/16", "eu-west-3", "AMAZON"),
                    entry("35.180.0.0/16", "eu-west-3", "EC2"),
                    entry("2a05:d012::/36", "eu-west-3", "Google Cloud"),
                    entry("52.94.0.0/22", "GLOBAL", "AMAZON"),
                ],
            },
        });
        s
    }

    #[test]
    fn round_trips_and_compacts() {
        let s = sample();
        let text = s.to_text();
        assert!(
            text.contains("group aws eu-west-3 AMAZON,EC2\n35.180.0.0/16\n"),
            "{text}"
        );
        assert!(
            text.contains("group aws eu-west-3 Google Cloud\n"),
            "services may hold spaces"
        );
        let back = Snapshot::parse(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.feeds()[0].feed.entries.len(),
            3,
            "one entry per prefix"
        );
    }

    #[test]
    fn compacting_keeps_the_table() {
        let raw = sample();
        let feed = &raw.feeds()[0].feed;
        let a = RangeTable::compile(std::slice::from_ref(feed));
        let b = RangeTable::compile(std::slice::from_ref(&compact(feed)));
        assert_eq!((a.v4(), a.v6()), (b.v4(), b.v6()));
    }

    #[test]
    fn broken_snapshots_name_the_line() {
        let text = sample().to_text();
        let err = Snapshot::parse(&text.replace("35.180.0.0/16", "35.180.0.0/99")).unwrap_err();
        assert!(
            err.to_string().starts_with("aws: line ") && err.to_string().contains("35.180.0.0/99"),
            "{err}"
        );
        let cut = &text[..text.rfind("end").unwrap()];
        let err = Snapshot::parse(cut).unwrap_err();
        assert!(err.to_string().contains("has no `end`"), "{err}");
        let header = &text[..text.find("feed").unwrap()];
        let err = Snapshot::parse(header).unwrap_err();
        assert!(err.to_string().contains("no feed"), "{err}");
        let err = Snapshot::parse("hello\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "snapshot line 1: does not start with `steer-ranges-snapshot 1`"
        );
        let twice = format!("{text}{}", &text[text.find("feed").unwrap()..]);
        assert!(
            Snapshot::parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn embedded_snapshot_parses_and_has_aws_and_gcp() {
        let s = Snapshot::embedded();
        let kinds: Vec<FeedKind> = s.feeds().iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FeedKind::Aws, FeedKind::Gcp]);
        assert!(EMBEDDED.len() <= 300 * 1024, "{} bytes", EMBEDDED.len());
    }
}
