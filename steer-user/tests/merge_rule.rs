//! The compiled table and the userspace classifier against a naive
//! reference of the documented merge rule, on random small tables.
//!
//! Rule: the longest prefix containing the address wins. Among entries
//! naming the same prefix, the earliest feed wins; inside that feed a named
//! region beats `GLOBAL`, else the first entry wins.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use steer_user::{
    Classifier, RangeTable,
    feeds::{Feed, FeedEntry},
};

/// Entries crowded into 10.0.0.0/16 so that overlaps and duplicates are common.
fn entry() -> impl Strategy<Value = (u32, u8, usize)> {
    (0u32..(1 << 16), 16u8..=32, 0usize..4)
}

const REGIONS: [&str; 4] = ["GLOBAL", "r1", "r2", "r3"];

fn feeds_from(raw: &[Vec<(u32, u8, usize)>]) -> Vec<Feed> {
    raw.iter()
        .enumerate()
        .map(|(f, entries)| Feed {
            name: "p",
            created: "t".into(),
            entries: entries
                .iter()
                .map(|&(host, len, region)| {
                    let net = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | host), len)
                        .unwrap()
                        .trunc();
                    FeedEntry {
                        prefix: IpNet::V4(net),
                        provider: format!("p{f}"),
                        region: REGIONS[region].into(),
                        service: "s".into(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The naive reference: (provider, region) for `addr`, or None.
fn reference(feeds: &[Feed], addr: Ipv4Addr) -> Option<(String, String)> {
    let mut best: Option<(u8, &FeedEntry)> = None;
    for feed in feeds {
        for e in &feed.entries {
            let IpNet::V4(net) = e.prefix else { continue };
            if !net.contains(&addr) {
                continue;
            }
            let better = match best {
                None => true,
                Some((len, _)) if net.prefix_len() > len => true,
                // Same prefix: only a named region of the same feed replaces
                // GLOBAL; later feeds never win.
                Some((len, cur)) if net.prefix_len() == len => {
                    cur.provider == e.provider && cur.region == "GLOBAL" && e.region != "GLOBAL"
                }
                Some(_) => false,
            };
            if better {
                best = Some((net.prefix_len(), e));
            }
        }
    }
    best.map(|(_, e)| (e.provider.clone(), e.region.clone()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn classifier_follows_the_merge_rule(
        raw in prop::collection::vec(prop::collection::vec(entry(), 0..24), 1..4),
        probes in prop::collection::vec(0u32..(1 << 16), 64),
    ) {
        let feeds = feeds_from(&raw);
        prop_assume!(feeds.iter().any(|f| !f.entries.is_empty()));
        let table = RangeTable::compile(&feeds);
        let classifier = Classifier::new(&table);
        // Probe each prefix's own first address as well as random ones.
        let firsts = table.v4().iter().map(|(n, _)| u32::from(n.network()) & 0xffff);
        for host in probes.into_iter().chain(firsts) {
            let addr = Ipv4Addr::from(0x0a00_0000 | host);
            let got = table
                .class(classifier.classify(addr.into()))
                .map(|c| (c.provider.clone(), c.region.clone()));
            prop_assert_eq!(got, reference(&feeds, addr), "address {}", addr);
        }
    }
}
