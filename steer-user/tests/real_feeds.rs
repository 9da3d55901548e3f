//! The parsers and the table on the real feeds in ../shared/ranges.

use std::path::PathBuf;

use steer_user::{
    Classifier, RangeTable,
    feeds::{read_aws, read_gcp},
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
