//! One compiled table of provider prefixes, shared by the kernel maps and
//! the userspace classifier so both give the same answer.
//!
//! Rules:
//! - Lookups use the longest matching prefix (overlaps are real: AWS lists
//!   `GLOBAL` and `AMAZON` supersets around regional prefixes).
//! - When several entries name the same prefix, an earlier feed beats a
//!   later one (callers pass the custom list first, then AWS, GCP, Azure,
//!   Oracle: see [`crate::feeds::FeedKind`]); inside one feed a named region
//!   beats `GLOBAL`, and otherwise the first entry wins. Entries for
//!   different services of one prefix are the normal case and agree on the
//!   region; the winner's services are kept together for display.
//! - Class ids are dense, start at 1 (0 is unknown) and follow the sorted
//!   (provider, region) order, so the same feeds give the same ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::feeds::Feed;

/// A (provider, region) pair: what a client is classified as.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Class {
    pub provider: String,
    pub region: String,
}

impl Class {
    /// What an address no prefix covers is classified as (class id 0).
    pub fn unknown() -> Class {
        Class {
            provider: String::new(),
            region: String::new(),
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.provider.is_empty()
    }

    /// The provider as a label (metrics, logs): [`UNKNOWN`] for unknown.
    pub fn provider_label(&self) -> &str {
        if self.is_unknown() {
            UNKNOWN
        } else {
            &self.provider
        }
    }

    /// The region as a label: [`UNKNOWN`] for unknown.
    pub fn region_label(&self) -> &str {
        if self.is_unknown() {
            UNKNOWN
        } else {
            &self.region
        }
    }
}

/// How the unknown class is written everywhere it is shown: `Display`,
/// metric labels, `explain`.
pub const UNKNOWN: &str = "unknown";

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_unknown() {
            f.write_str(UNKNOWN)
        } else {
            write!(f, "{}/{}", self.provider, self.region)
        }
    }
}

/// What a feed contributed, for display and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedSummary {
    pub name: &'static str,
    pub created: String,
    pub entries: usize,
}

/// Where a prefix of the table came from, for `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixInfo<'a> {
    pub class: u32,
    /// The services the winning feed lists the prefix under, comma-joined.
    pub services: &'a str,
    pub feed: &'a FeedSummary,
}

/// The compiled table. Immutable once built: a new feed means a new table.
#[derive(Clone, Debug)]
pub struct RangeTable {
    /// Index = class id; slot 0 is unknown and never appears in the prefix lists.
    classes: Vec<Class>,
    v4: Vec<(Ipv4Net, u32)>,
    v6: Vec<(Ipv6Net, u32)>,
    feeds: Vec<FeedSummary>,
    /// Per prefix: (index into `feeds`, index into `services`).
    origin: HashMap<IpNet, (u16, u32)>,
    services: Vec<String>,
}

const GLOBAL_REGION: &str = "GLOBAL";

impl RangeTable {
    /// Merges `feeds` (earlier feeds take precedence) into one table.
    pub fn compile(feeds: &[Feed]) -> RangeTable {
        // prefix -> (feed rank, class, services) chosen so far
        let mut chosen: HashMap<IpNet, (usize, Class, Vec<&str>)> = HashMap::new();
        for (rank, feed) in feeds.iter().enumerate() {
            for e in &feed.entries {
                let class = Class {
                    provider: e.provider.clone(),
                    region: e.region.clone(),
                };
                let service = e.service.as_str();
                match chosen.get_mut(&e.prefix) {
                    None => {
                        chosen.insert(e.prefix, (rank, class, vec![service]));
                    }
                    Some((r, c, services)) if *r == rank && *c == class => {
                        if !services.contains(&service) {
                            services.push(service);
                        }
                    }
                    Some((r, c, services)) if *r == rank && c.region == GLOBAL_REGION => {
                        *c = class;
                        *services = vec![service];
                    }
                    Some(_) => {}
                }
            }
        }

        let names: BTreeSet<&Class> = chosen.values().map(|(_, c, _)| c).collect();
        let mut classes = vec![Class::unknown()];
        classes.extend(names.into_iter().cloned());
        let ids: BTreeMap<&Class, u32> = classes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| (c, i as u32))
            .collect();

        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut origin = HashMap::with_capacity(chosen.len());
        let mut services: Vec<String> = Vec::new();
        let mut service_ids: HashMap<String, u32> = HashMap::new();
        for (net, (rank, class, names)) in &chosen {
            let id = ids[class];
            match net {
                IpNet::V4(n) => v4.push((*n, id)),
                IpNet::V6(n) => v6.push((*n, id)),
            }
            let joined = names.join(",");
            let service = *service_ids.entry(joined).or_insert_with_key(|k| {
                services.push(k.clone());
                services.len() as u32 - 1
            });
            origin.insert(*net, (*rank as u16, service));
        }
        v4.sort_unstable();
        v6.sort_unstable();

        let feeds = feeds
            .iter()
            .map(|f| FeedSummary {
                name: f.name,
                created: f.created.clone(),
                entries: f.entries.len(),
            })
            .collect();
        RangeTable {
            classes,
            v4,
            v6,
            feeds,
            origin,
            services,
        }
    }

    /// Class, services and feed of a prefix that is in the table.
    pub fn prefix_info(&self, net: IpNet) -> Option<PrefixInfo<'_>> {
        let &(feed, service) = self.origin.get(&net)?;
        let class = match net {
            IpNet::V4(n) => self.v4[self.v4.binary_search_by(|(m, _)| m.cmp(&n)).ok()?].1,
            IpNet::V6(n) => self.v6[self.v6.binary_search_by(|(m, _)| m.cmp(&n)).ok()?].1,
        };
        Some(PrefixInfo {
            class,
            services: &self.services[service as usize],
            feed: &self.feeds[feed as usize],
        })
    }

    /// The class with id `id`; `None` for unknown (0) and ids out of range.
    pub fn class(&self, id: u32) -> Option<&Class> {
        (id != crate::CLASS_UNKNOWN)
            .then(|| self.classes.get(id as usize))
            .flatten()
    }

    /// The id of (provider, region), if the table has that class.
    pub fn class_id(&self, provider: &str, region: &str) -> Option<u32> {
        self.classes
            .iter()
            .skip(1)
            .position(|c| c.provider == provider && c.region == region)
            .map(|i| i as u32 + 1)
    }

    /// Number of classes, unknown excluded.
    pub fn class_count(&self) -> usize {
        self.classes.len() - 1
    }

    /// Classes with their ids, in id order.
    pub fn classes(&self) -> impl Iterator<Item = (u32, &Class)> {
        self.classes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| (i as u32, c))
    }

    /// IPv4 prefixes with their class ids, sorted, each prefix once.
    pub fn v4(&self) -> &[(Ipv4Net, u32)] {
        &self.v4
    }

    /// IPv6 prefixes with their class ids, sorted, each prefix once.
    pub fn v6(&self) -> &[(Ipv6Net, u32)] {
        &self.v6
    }

    pub fn feeds(&self) -> &[FeedSummary] {
        &self.feeds
    }

    /// Approximate heap bytes: the prefix lists, the per-prefix origin map
    /// (counted at its capacity, with hashbrown's control byte per slot)
    /// and the names.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let names: usize = self
            .classes
            .iter()
            .map(|c| size_of::<Class>() + c.provider.capacity() + c.region.capacity())
            .sum::<usize>()
            + self
                .services
                .iter()
                .map(|s| size_of::<String>() + s.capacity())
                .sum::<usize>();
        self.v4.capacity() * size_of::<(Ipv4Net, u32)>()
            + self.v6.capacity() * size_of::<(Ipv6Net, u32)>()
            + self.origin.capacity() * (size_of::<(IpNet, (u16, u32))>() + 1)
            + names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::FeedEntry;

    fn entry(prefix: &str, provider: &str, region: &str) -> FeedEntry {
        FeedEntry {
            prefix: prefix.parse().unwrap(),
            provider: provider.into(),
            region: region.into(),
            service: "S".into(),
        }
    }

    fn feed(name: &'static str, entries: Vec<FeedEntry>) -> Feed {
        Feed {
            name,
            created: "t".into(),
            entries,
        }
    }

    #[test]
    fn class_ids_are_dense_sorted_and_stable() {
        let t = RangeTable::compile(&[
            feed("b", vec![entry("10.0.0.0/8", "gcp", "x")]),
            feed(
                "a",
                vec![
                    entry("11.0.0.0/8", "aws", "z"),
                    entry("12.0.0.0/8", "aws", "a"),
                ],
            ),
        ]);
        let names: Vec<_> = t.classes().map(|(i, c)| (i, c.to_string())).collect();
        assert_eq!(
            names,
            [
                (1, "aws/a".into()),
                (2, "aws/z".into()),
                (3, "gcp/x".to_string())
            ]
        );
        assert_eq!(t.class_id("aws", "z"), Some(2));
        assert_eq!(t.class(0), None);
        assert_eq!(t.class(4), None);
    }

    #[test]
    fn same_prefix_prefers_earlier_feed_then_named_region() {
        let t = RangeTable::compile(&[
            feed(
                "first",
                vec![
                    entry("10.0.0.0/8", "aws", "GLOBAL"),
                    entry("10.0.0.0/8", "aws", "eu-west-3"),
                ],
            ),
            feed("second", vec![entry("10.0.0.0/8", "gcp", "europe-west1")]),
        ]);
        assert_eq!(t.v4().len(), 1);
        let (net, id) = t.v4()[0];
        assert_eq!(t.class(id).unwrap().to_string(), "aws/eu-west-3");
        assert_eq!(t.class_count(), 1, "classes only for prefixes that won");
        let info = t.prefix_info(net.into()).unwrap();
        assert_eq!((info.class, info.feed.name), (id, "first"));
    }

    #[test]
    fn services_of_the_winning_class_are_kept_together() {
        let mut a = entry("10.0.0.0/8", "aws", "GLOBAL");
        a.service = "AMAZON".into();
        let mut b = entry("10.0.0.0/8", "aws", "eu-west-3");
        b.service = "AMAZON".into();
        let mut c = entry("10.0.0.0/8", "aws", "eu-west-3");
        c.service = "EC2".into();
        let t = RangeTable::compile(&[feed("aws", vec![a, b.clone(), c, b])]);
        let info = t.prefix_info("10.0.0.0/8".parse().unwrap()).unwrap();
        assert_eq!(info.services, "AMAZON,EC2");
        assert!(t.prefix_info("11.0.0.0/8".parse().unwrap()).is_none());
    }
}
