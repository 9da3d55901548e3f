//! The userspace longest-prefix classifier, built from a [`RangeTable`].
//!
//! Used where the kernel did not see the client: a proxy gave the address,
//! or XDP is not attached. Built from the same table as the kernel maps, so
//! the answer is the same.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use crate::{CLASS_UNKNOWN, RangeTable};

pub struct Classifier {
    v4: PrefixMap<Ipv4Net, u32>,
    v6: PrefixMap<Ipv6Net, u32>,
}

impl Classifier {
    pub fn new(table: &RangeTable) -> Classifier {
        let mut v4 = PrefixMap::new();
        for &(net, class) in table.v4() {
            v4.insert(net, class);
        }
        let mut v6 = PrefixMap::new();
        for &(net, class) in table.v6() {
            v6.insert(net, class);
        }
        Classifier { v4, v6 }
    }

    /// Class id of `addr` (0 when no prefix covers it). IPv4-mapped IPv6
    /// addresses, as dual-stack sockets report IPv4 peers, count as IPv4,
    /// as they do in the kernel, which sees the IPv4 packet.
    pub fn classify(&self, addr: IpAddr) -> u32 {
        let found = match addr.to_canonical() {
            IpAddr::V4(a) => self.v4.get_lpm(&Ipv4Net::from(a)).map(|(_, c)| *c),
            IpAddr::V6(a) => self.v6.get_lpm(&Ipv6Net::from(a)).map(|(_, c)| *c),
        };
        found.unwrap_or(CLASS_UNKNOWN)
    }

    /// The longest prefix covering `addr` and its class id, if any.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNet, u32)> {
        match addr.to_canonical() {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(n, c)| (IpNet::V4(n), *c)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(n, c)| (IpNet::V6(n), *c)),
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
    fn longest_prefix_wins() {
        let t = table(&[
            ("10.0.0.0/8", "wide"),
            ("10.1.0.0/16", "narrow"),
            ("2001:db8::/32", "wide6"),
            ("2001:db8:1::/48", "narrow6"),
        ]);
        let c = Classifier::new(&t);
        let region = |ip: &str| {
            let id = c.classify(ip.parse().unwrap());
            t.class(id).map(|c| c.region.clone())
        };
        assert_eq!(region("10.1.2.3").as_deref(), Some("narrow"));
        assert_eq!(region("10.2.0.1").as_deref(), Some("wide"));
        assert_eq!(region("::ffff:10.1.0.1").as_deref(), Some("narrow"));
        assert_eq!(region("2001:db8:1::5").as_deref(), Some("narrow6"));
        assert_eq!(region("2001:db8:2::5").as_deref(), Some("wide6"));
        assert_eq!(region("11.0.0.1"), None);
        let (net, id) = c.lookup("10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!(
            (net.to_string(), id),
            (
                "10.1.0.0/16".to_owned(),
                c.classify("10.1.2.3".parse().unwrap())
            )
        );
        assert_eq!(c.lookup("11.0.0.1".parse().unwrap()), None);
    }
}
