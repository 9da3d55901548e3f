//! The parsers and the table on the real feeds in ../shared/ranges.

use std::path::PathBuf;

use steer_user::{
    Classifier, RangeTable,
    feeds::{FeedKind, FeedOrigin, Snapshot, SnapshotFeed, read_aws, read_gcp},
};

fn ranges() -> PathBuf {
    std::env::var_os("STEER_RANGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/ranges"))
        })
}

#[test]
fn real_feeds_parse_completely() {
    let aws = read_aws(&ranges().join("aws-ip-ranges.json")).unwrap();
    let gcp = read_gcp(&ranges().join("gcp-cloud.json")).unwrap();
    // Counts as the files state them (10,544 IPv4 + 5,880 IPv6; 1,047).
    assert_eq!(
        aws.entries
            .iter()
            .filter(|e| e.prefix.addr().is_ipv4())
            .count(),
        10_544
    );
    assert_eq!(
        aws.entries
            .iter()
            .filter(|e| e.prefix.addr().is_ipv6())
            .count(),
        5_880
    );
    assert_eq!(gcp.entries.len(), 1_047);
    assert_eq!(aws.created, "2026-07-29-08-27-05");

    let table = RangeTable::compile(&[aws, gcp]);
    // 17,471 entries merge to 11,809 unique networks.
    assert_eq!(table.v4().len() + table.v6().len(), 11_809);
}

#[test]
fn real_table_answers_known_addresses() {
    let aws = read_aws(&ranges().join("aws-ip-ranges.json")).unwrap();
    let gcp = read_gcp(&ranges().join("gcp-cloud.json")).unwrap();
    let table = RangeTable::compile(&[aws, gcp]);
    let c = Classifier::new(&table);
    let name = |ip: &str| {
        table
            .class(c.classify(ip.parse().unwrap()))
            .map_or("unknown".to_owned(), |c| c.to_string())
    };
    assert_eq!(name("35.180.1.1"), "aws/eu-west-3");
    assert_eq!(name("2a05:d012::1"), "aws/eu-west-3");
    assert_eq!(name("34.35.1.1"), "gcp/africa-south1");
    assert_eq!(name("198.51.100.7"), "unknown");
}

/// The embedded snapshot is what `redirector ranges compile` makes of the
/// shared feeds, as long as they are the ones it was compiled from; either
/// way it gives the same table as the raw feeds of its dates.
#[test]
fn embedded_snapshot_matches_the_real_feeds() {
    let aws = read_aws(&ranges().join("aws-ip-ranges.json")).unwrap();
    let gcp = read_gcp(&ranges().join("gcp-cloud.json")).unwrap();
    let embedded = Snapshot::embedded();
    let created: Vec<&str> = embedded
        .feeds()
        .iter()
        .map(|f| f.feed.created.as_str())
        .collect();
    if created != [aws.created.as_str(), gcp.created.as_str()] {
        eprintln!(
            "shared feeds ({}, {}) are newer than the embedded snapshot ({created:?}): regenerate it",
            aws.created, gcp.created
        );
        return;
    }
    let mut rebuilt = Snapshot::default();
    for (kind, feed) in [(FeedKind::Aws, aws.clone()), (FeedKind::Gcp, gcp.clone())] {
        rebuilt.insert(SnapshotFeed {
            kind,
            origin: FeedOrigin {
                source: kind.default_url().unwrap().to_owned(),
                ..FeedOrigin::default()
            },
            feed,
        });
    }
    assert!(
        rebuilt == embedded,
        "steer-user/data/ranges.snapshot is stale: rerun `redirector ranges compile`"
    );

    let raw = RangeTable::compile(&[aws, gcp]);
    let feeds: Vec<_> = embedded.feeds().iter().map(|f| f.feed.clone()).collect();
    let from_snapshot = RangeTable::compile(&feeds);
    assert_eq!(raw.v4(), from_snapshot.v4());
    assert_eq!(raw.v6(), from_snapshot.v6());
    assert_eq!(
        raw.classes().collect::<Vec<_>>(),
        from_snapshot.classes().collect::<Vec<_>>()
    );
    let net = "35.180.0.0/16".parse().unwrap();
    assert_eq!(
        raw.prefix_info(net).unwrap().services,
        from_snapshot.prefix_info(net).unwrap().services
    );
}
