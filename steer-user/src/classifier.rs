//! The userspace longest-prefix classifier, built from a [`RangeTable`].
//!
//! Used where the kernel did not see the client: a proxy gave the address,
//! or XDP is not attached. Built from the same table as the kernel maps, so
//! the answer is the same (the differential test checks it on the real
//! feeds).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{RangeTable, poptrie::PopTrie, stride_trie::StrideTrie};

/// IPv4 goes into the compact [`PopTrie`] (at most 3 levels, about 200 KiB
/// for the real table, the same speed as the plain stride trie at a tenth
/// of its memory). IPv6 goes into the [`StrideTrie`]: its 8-bit levels
/// reach the common /40 to /56 provider prefixes in 3 to 5 steps where
/// 6-bit levels need 5 to 7, and `cargo xtask bench lpm` measured it 1.6x
/// faster for IPv6 at about 1 MiB.
pub struct Classifier {
    v4: PopTrie,
    v6: StrideTrie,
}

impl Classifier {
    pub fn new(table: &RangeTable) -> Classifier {
        let v4 = PopTrie::build(
            32,
            table.v4().iter().map(|&(net, class)| {
                (
                    u128::from(u32::from(net.network())),
                    net.prefix_len(),
                    class,
                )
            }),
        );
        let mut v6: Vec<(u128, u8, u32)> = table
            .v6()
            .iter()
            .map(|&(net, class)| (u128::from(net.network()), net.prefix_len(), class))
            .collect();
        v6.sort_by_key(|&(_, len, _)| len);
        let v6 = StrideTrie::build(128, &v6);
        Classifier { v4, v6 }
    }

    /// Class id of `addr` (0 when no prefix covers it). IPv4-mapped IPv6
    /// addresses, as dual-stack sockets report IPv4 peers, count as IPv4,
    /// as they do in the kernel, which sees the IPv4 packet.
    #[inline]
    pub fn classify(&self, addr: IpAddr) -> u32 {
        match addr.to_canonical() {
            IpAddr::V4(a) => self.v4.get(u128::from(u32::from(a))),
            IpAddr::V6(a) => self.v6.get(u128::from(a)),
        }
    }

    /// Heap bytes of the lookup structures (both families).
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }

    /// Trie nodes below the roots: (IPv4, IPv6).
    pub fn node_counts(&self) -> (usize, usize) {
        (self.v4.node_count(), self.v6.node_count())
    }
}

impl RangeTable {
    /// The longest prefix of the table covering `addr`, with its class id.
    /// For display (`explain`): a search per prefix length, not the fast
    /// path.
    pub fn longest_match(&self, addr: IpAddr) -> Option<(IpNet, u32)> {
        fn find<N: Copy + Ord>(
            list: &[(N, u32)],
            max_len: u8,
            net_of: impl Fn(u8) -> Option<N>,
        ) -> Option<(N, u32)> {
            (0..=max_len).rev().find_map(|len| {
                let net = net_of(len)?;
                list.binary_search_by(|(n, _)| n.cmp(&net))
                    .ok()
                    .map(|i| list[i])
            })
        }
        match addr.to_canonical() {
            IpAddr::V4(a) => find(self.v4(), 32, |len| {
                ipnet::Ipv4Net::new(a, len).ok().map(|n| n.trunc())
            })
            .map(|(n, c)| (IpNet::V4(n), c)),
            IpAddr::V6(a) => find(self.v6(), 128, |len| {
                ipnet::Ipv6Net::new(a, len).ok().map(|n| n.trunc())
            })
            .map(|(n, c)| (IpNet::V6(n), c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::{Feed, FeedEntry};

    fn table(entries: &[(&str, &str)]) -> RangeTable {
        RangeTable::compile(&[Feed {
            name: "t",
            created: "t".into(),
            entries: entries
                .iter()
                .map(|(p, r)| FeedEntry {
                    prefix: p.parse().unwrap(),
                    provider: "p".into(),
                    region: (*r).into(),
                    service: "s".into(),
                })
                .collect(),
        }])
    }

    #[test]
    fn longest_prefix_wins_at_every_level() {
        let t = table(&[
            ("0.0.0.0/0", "all"),
            ("10.0.0.0/8", "wide"),
            ("10.1.0.0/16", "narrow"),
            ("10.1.2.0/24", "narrower"),
            ("10.1.2.128/25", "half"),
            ("10.1.2.3/32", "host"),
            ("2001:db8::/32", "wide6"),
            ("2001:db8:1::/48", "narrow6"),
            ("2001:db8:1::1/128", "host6"),
        ]);
        let c = Classifier::new(&t);
        let region = |ip: &str| {
            let addr = ip.parse().unwrap();
            let id = c.classify(addr);
            assert_eq!(
                t.longest_match(addr).map_or(0, |(_, c)| c),
                id,
                "{ip}: longest_match agrees"
            );
            t.class(id).map(|c| c.region.clone())
        };
        assert_eq!(region("10.1.2.3").as_deref(), Some("host"));
        assert_eq!(region("10.1.2.4").as_deref(), Some("narrower"));
        assert_eq!(region("10.1.2.200").as_deref(), Some("half"));
        assert_eq!(region("10.1.3.1").as_deref(), Some("narrow"));
        assert_eq!(region("10.2.0.1").as_deref(), Some("wide"));
        assert_eq!(region("::ffff:10.1.0.1").as_deref(), Some("narrow"));
        assert_eq!(region("11.0.0.1").as_deref(), Some("all"));
        assert_eq!(region("2001:db8:1::1").as_deref(), Some("host6"));
        assert_eq!(region("2001:db8:1::5").as_deref(), Some("narrow6"));
        assert_eq!(region("2001:db8:2::5").as_deref(), Some("wide6"));
        assert_eq!(region("2001:db9::1"), None);
        let (net, _) = t.longest_match("10.1.2.4".parse().unwrap()).unwrap();
        assert_eq!(net.to_string(), "10.1.2.0/24");
    }
}
