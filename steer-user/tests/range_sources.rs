//! Loading and reloading range sources: precedence, and keeping the last
//! good copy of whatever breaks.

use std::{fs, path::Path};

use steer_user::{
    FeedError,
    feeds::{FeedKind, FeedOrigin, Snapshot, SnapshotFeed, parse_aws},
    ranges::{Loaded, RangeSources, Ranges},
};

fn aws_feed(created: &str, prefixes: &[(&str, &str)]) -> String {
    let rows: Vec<String> = prefixes
        .iter()
        .map(|(p, r)| format!(r#"{{"ip_prefix":"{p}","region":"{r}","service":"EC2"}}"#))
        .collect();
    format!(
        r#"{{"createDate":"{created}","prefixes":[{}],"ipv6_prefixes":[]}}"#,
        rows.join(",")
    )
}

fn write_snapshot(path: &Path, aws_json: &str) {
    let mut s = Snapshot::default();
    s.insert(SnapshotFeed {
        kind: FeedKind::Aws,
        origin: FeedOrigin {
            source: "http://127.0.0.1:1/aws.json".into(),
            ..FeedOrigin::default()
        },
        feed: parse_aws(aws_json).unwrap(),
    });
    s.write(path).unwrap();
}

fn region(ranges: &Ranges, ip: &str) -> String {
    let id = ranges.classifier.classify(ip.parse().unwrap());
    ranges
        .table
        .class(id)
        .map_or("unknown".into(), |c| c.to_string())
}

fn load(sources: &RangeSources, last: Option<&Ranges>) -> Loaded {
    sources.load(last).expect("load")
}

#[test]
fn custom_lists_win_over_provider_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("ranges.snapshot");
    write_snapshot(
        &snapshot,
        &aws_feed("t1", &[("35.180.0.0/16", "eu-west-3"), ("36.0.0.0/8", "x")]),
    );
    let custom = dir.path().join("sponsors.csv");
    fs::write(&custom, "35.180.0.0/16,sponsor,paris\n").unwrap();
    let sources = RangeSources {
        custom: vec![custom],
        snapshot: Some(snapshot),
        ..RangeSources::default()
    };
    let ranges = load(&sources, None).ranges;
    assert_eq!(region(&ranges, "35.180.1.1"), "sponsor/paris");
    assert_eq!(region(&ranges, "36.1.1.1"), "aws/x");
    assert_eq!(ranges.feeds[0].kind, FeedKind::Custom);
}

#[test]
fn missing_snapshot_serves_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let sources = RangeSources {
        snapshot: Some(dir.path().join("not-yet.snapshot")),
        ..RangeSources::default()
    };
    let ranges = load(&sources, None).ranges;
    assert_eq!(region(&ranges, "35.180.1.1"), "aws/eu-west-3");
    assert!(ranges.feeds[0].origin.starts_with("embedded snapshot"));
}

#[test]
fn broken_sources_fail_the_first_load_and_keep_the_last_good_copy_after() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("ranges.snapshot");
    let custom = dir.path().join("custom.toml");
    write_snapshot(
        &snapshot,
        &aws_feed("t1", &[("35.180.0.0/16", "eu-west-3"), ("36.0.0.0/8", "x")]),
    );
    fs::write(
        &custom,
        "[[prefix]]\nprefix = \"10.0.0.0/8\"\nprovider = \"lab\"\nregion = \"one\"\n",
    )
    .unwrap();
    let sources = RangeSources {
        custom: vec![custom.clone()],
        snapshot: Some(snapshot.clone()),
        ..RangeSources::default()
    };
    let first = load(&sources, None);
    assert!(first.changed && first.kept.is_empty());
    let good = first.ranges;

    // Nothing changed: the same table, flagged unchanged.
    let again = load(&sources, Some(&good));
    assert!(!again.changed);
    assert!(std::sync::Arc::ptr_eq(&again.ranges.table, &good.table));

    // A broken custom list: kept, reported with file and entry; the
    // snapshot's new data still loads.
    fs::write(
        &custom,
        "[[prefix]]\nprefix = \"10.0.0.0/88\"\nprovider = \"lab\"\nregion = \"one\"\n",
    )
    .unwrap();
    write_snapshot(
        &snapshot,
        &aws_feed("t2", &[("35.180.0.0/16", "eu-west-1"), ("36.0.0.0/8", "x")]),
    );
    let partial = load(&sources, Some(&good));
    assert!(partial.changed);
    assert_eq!(partial.kept.len(), 1);
    let msg = steer_user::ranges::chain(&partial.kept[0]);
    assert!(
        msg.contains("custom.toml") && msg.contains("prefix[0]") && msg.contains("10.0.0.0/88"),
        "{msg}"
    );
    assert_eq!(region(&partial.ranges, "10.1.1.1"), "lab/one");
    assert_eq!(region(&partial.ranges, "35.180.1.1"), "aws/eu-west-1");

    // Without a last good copy, the same broken list is an error.
    assert!(matches!(sources.load(None), Err(FeedError::InFile { .. })));

    // A snapshot that shrank by half is refused; its last copy serves.
    fs::write(&custom, "10.0.0.0/8,lab,one\n").unwrap();
    let sources = RangeSources {
        custom: vec![dir.path().join("custom.csv")],
        ..sources
    };
    fs::rename(&custom, dir.path().join("custom.csv")).unwrap();
    let base = load(&sources, None).ranges;
    write_snapshot(
        &snapshot,
        &aws_feed("t3", &[("35.180.0.0/16", "eu-west-2")]),
    );
    let shrunk = load(&sources, Some(&base));
    assert_eq!(shrunk.kept.len(), 1);
    assert!(matches!(
        shrunk.kept[0],
        FeedError::Shrunk {
            before: 2,
            after: 1,
            ..
        }
    ));
    assert_eq!(region(&shrunk.ranges, "36.1.1.1"), "aws/x");
    assert_eq!(region(&shrunk.ranges, "35.180.1.1"), "aws/eu-west-1");

    // A truncated snapshot file: every snapshot feed keeps its copy.
    let text = fs::read_to_string(&snapshot).unwrap();
    fs::write(&snapshot, &text[..text.len() / 2]).unwrap();
    let truncated = load(&sources, Some(&base));
    assert_eq!(truncated.kept.len(), 1);
    assert!(!truncated.changed, "the kept copies are the last ones");
    assert_eq!(region(&truncated.ranges, "35.180.1.1"), "aws/eu-west-1");

    // A snapshot that lost a whole feed (cut after an `end`): kept too.
    let mut other = Snapshot::default();
    other.insert(SnapshotFeed {
        kind: FeedKind::Gcp,
        origin: FeedOrigin::default(),
        feed: steer_user::feeds::parse_gcp(
            r#"{"creationTime":"g","prefixes":[{"ipv4Prefix":"34.35.0.0/16","service":"Google Cloud","scope":"africa-south1"}]}"#,
        )
        .unwrap(),
    });
    other.write(&snapshot).unwrap();
    let lost = load(&sources, Some(&base));
    assert!(matches!(
        lost.kept[..],
        [FeedError::Missing { feed: "aws" }]
    ));
    assert_eq!(region(&lost.ranges, "35.180.1.1"), "aws/eu-west-1");
    assert_eq!(region(&lost.ranges, "34.35.1.1"), "gcp/africa-south1");
}
