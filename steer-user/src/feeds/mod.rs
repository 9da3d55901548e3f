//! Provider range feeds, parsed into one entry shape.
//!
//! A parser rejects the whole feed on the first malformed entry and names
//! it: a feed that is half wrong is not trusted at all, and the caller keeps
//! serving the last good copy. So does a feed that shrank too much against
//! that copy ([`Feed::check_shrink`]): an upstream publishing a truncated
//! file is likelier than a provider dropping a third of its network.

mod aws;
mod azure;
mod custom;
mod gcp;
mod oracle;
mod snapshot;

use std::{fmt, path::Path, str::FromStr};

use ipnet::IpNet;

pub use aws::parse as parse_aws;
pub use azure::parse as parse_azure;
pub use custom::{parse_csv as parse_custom_csv, parse_toml as parse_custom_toml};
pub use gcp::parse as parse_gcp;
pub use oracle::parse as parse_oracle;
pub use snapshot::{FeedOrigin, Snapshot, SnapshotFeed};

use crate::FeedError;

/// Longest provider name: it and the region share a 64-byte name slot in
/// the kernel's class-name map.
pub const MAX_PROVIDER_LEN: usize = 15;
/// Longest region name (see [`MAX_PROVIDER_LEN`]).
pub const MAX_REGION_LEN: usize = 47;

/// One prefix of a provider feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    /// Normalised: host bits cleared.
    pub prefix: IpNet,
    pub provider: String,
    pub region: String,
    pub service: String,
}

/// A parsed feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    /// Short feed name: "aws", "gcp", "azure", "oracle", "custom".
    pub name: &'static str,
    /// The feed's own creation stamp, as it writes it.
    pub created: String,
    pub entries: Vec<FeedEntry>,
}

impl Feed {
    /// A parsed feed; refused when it has no prefix at all.
    fn new(
        name: &'static str,
        created: String,
        entries: Vec<FeedEntry>,
    ) -> Result<Feed, FeedError> {
        if entries.is_empty() {
            return Err(FeedError::Empty { feed: name });
        }
        Ok(Feed {
            name,
            created,
            entries,
        })
    }

    /// Number of distinct prefixes (a prefix listed for several services
    /// counts once).
    pub fn prefix_count(&self) -> usize {
        let mut nets: Vec<IpNet> = self.entries.iter().map(|e| e.prefix).collect();
        nets.sort_unstable();
        nets.dedup();
        nets.len()
    }

    /// Refuses this feed when it has lost more than `max_shrink` (a
    /// fraction, 0.0 to 1.0) of the prefixes of `last_good`.
    pub fn check_shrink(&self, last_good: &Feed, max_shrink: f64) -> Result<(), FeedError> {
        let (before, after) = (last_good.prefix_count(), self.prefix_count());
        if (after as f64) < before as f64 * (1.0 - max_shrink) {
            return Err(FeedError::Shrunk {
                feed: self.name,
                before,
                after,
                max_percent: max_shrink * 100.0,
            });
        }
        Ok(())
    }
}

/// The kinds of feed steer reads. The order is the precedence when two
/// feeds list the same prefix: custom first (an operator's own word beats
/// any provider's), then the providers in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeedKind {
    Custom,
    Aws,
    Gcp,
    Azure,
    Oracle,
}

impl FeedKind {
    pub const ALL: [FeedKind; 5] = [
        FeedKind::Custom,
        FeedKind::Aws,
        FeedKind::Gcp,
        FeedKind::Azure,
        FeedKind::Oracle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FeedKind::Custom => custom::FEED,
            FeedKind::Aws => aws::FEED,
            FeedKind::Gcp => gcp::FEED,
            FeedKind::Azure => azure::FEED,
            FeedKind::Oracle => oracle::FEED,
        }
    }

    /// Where the provider publishes the feed. Azure's Service Tags file
    /// has a dated name that changes weekly, so it has no default.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            FeedKind::Aws => Some("https://ip-ranges.amazonaws.com/ip-ranges.json"),
            FeedKind::Gcp => Some("https://www.gstatic.com/ipranges/cloud.json"),
            FeedKind::Oracle => {
                Some("https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json")
            }
            FeedKind::Azure | FeedKind::Custom => None,
        }
    }

    /// Parses a feed's text. A custom list is TOML when `toml` is set,
    /// else CSV.
    pub fn parse(self, text: &str, toml: bool) -> Result<Feed, FeedError> {
        match self {
            FeedKind::Aws => parse_aws(text),
            FeedKind::Gcp => parse_gcp(text),
            FeedKind::Azure => parse_azure(text),
            FeedKind::Oracle => parse_oracle(text),
            FeedKind::Custom if toml => parse_custom_toml(text),
            FeedKind::Custom => parse_custom_csv(text),
        }
    }

    /// Reads and parses the feed file at `path`; errors name the file.
    /// A custom list is TOML when the file name ends in `.toml`.
    pub fn read(self, path: &Path) -> Result<Feed, FeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| FeedError::Read {
            feed: self.name(),
            path: path.to_owned(),
            source,
        })?;
        let toml = path.extension().is_some_and(|e| e == "toml");
        self.parse(&text, toml).map_err(|e| FeedError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }
}

impl fmt::Display for FeedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FeedKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown feed `{s}` (expected custom, aws, gcp, azure or oracle)")
            })
    }
}

/// Reads and parses the AWS `ip-ranges.json` at `path`.
pub fn read_aws(path: &Path) -> Result<Feed, FeedError> {
    FeedKind::Aws.read(path)
}

/// Reads and parses the GCP `cloud.json` at `path`.
pub fn read_gcp(path: &Path) -> Result<Feed, FeedError> {
    FeedKind::Gcp.read(path)
}

/// Where an entry sits in its feed, for error messages.
#[derive(Clone)]
struct Place {
    feed: &'static str,
    /// `list[index]` in a JSON or TOML document, `line N` in a text list.
    at: String,
}

impl Place {
    fn new(feed: &'static str, list: &str, index: usize) -> Place {
        Place {
            feed,
            at: format!("{list}[{index}]"),
        }
    }

    fn line(feed: &'static str, number: usize) -> Place {
        Place {
            feed,
            at: format!("line {number}"),
        }
    }

    fn error(&self, reason: String) -> FeedError {
        FeedError::Entry {
            feed: self.feed,
            at: self.at.clone(),
            reason,
        }
    }

    /// Validates one entry's fields: the prefix must parse (host bits are
    /// cleared); provider and region must be non-empty printable ASCII
    /// without spaces, because they end up in logs, metric labels, config
    /// keys and the kernel's class-name map, and short enough for it.
    fn entry(
        &self,
        provider: &str,
        prefix: &str,
        region: &str,
        service: &str,
    ) -> Result<FeedEntry, FeedError> {
        let prefix = prefix
            .trim()
            .parse::<IpNet>()
            .map_err(|_| self.error(format!("`{prefix}` is not an IP prefix")))?
            .trunc();
        for (what, value, max) in [
            ("provider", provider, MAX_PROVIDER_LEN),
            ("region", region, MAX_REGION_LEN),
        ] {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(self.error(format!("{what} {value:?} is empty or not printable ASCII")));
            }
            if value.len() > max {
                return Err(self.error(format!("{what} {value:?} is longer than {max} bytes")));
            }
        }
        if service.bytes().any(|b| b.is_ascii_control()) {
            return Err(self.error(format!("service {service:?} has control characters")));
        }
        Ok(FeedEntry {
            prefix,
            provider: provider.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(prefixes: &[&str]) -> Feed {
        Feed {
            name: "aws",
            created: "t".into(),
            entries: prefixes
                .iter()
                .flat_map(|p| {
                    // Each prefix twice, as feeds list it per service.
                    ["EC2", "AMAZON"].map(|service| FeedEntry {
                        prefix: p.parse().unwrap(),
                        provider: "aws".into(),
                        region: "r".into(),
                        service: service.into(),
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn shrink_check_counts_distinct_prefixes() {
        let last = feed(&["10.0.0.0/8", "11.0.0.0/8", "12.0.0.0/8", "13.0.0.0/8"]);
        assert_eq!(last.prefix_count(), 4);
        let three = feed(&["10.0.0.0/8", "11.0.0.0/8", "12.0.0.0/8"]);
        assert!(three.check_shrink(&last, 0.25).is_ok(), "lost exactly 25%");
        let two = feed(&["10.0.0.0/8", "11.0.0.0/8"]);
        let err = two.check_shrink(&last, 0.25).unwrap_err();
        assert_eq!(
            err.to_string(),
            "aws: shrank from 4 to 2 prefixes, more than the 25% allowed; keeping the last good copy"
        );
        assert!(two.check_shrink(&last, 0.5).is_ok());
        assert!(last.check_shrink(&two, 0.0).is_ok(), "growth is fine");
    }

    #[test]
    fn names_and_lengths_are_checked() {
        let place = Place::new("custom", "rows", 3);
        let long = "r".repeat(MAX_REGION_LEN + 1);
        let err = place.entry("p", "10.0.0.0/8", &long, "").unwrap_err();
        assert!(
            err.to_string().starts_with("custom: rows[3]: region"),
            "{err}"
        );
        let err = place.entry("my cloud", "10.0.0.0/8", "r", "").unwrap_err();
        assert!(err.to_string().contains("provider \"my cloud\""), "{err}");
        let err = place.entry("p", "10.0.0.0/8", "r", "a\nb").unwrap_err();
        assert!(err.to_string().contains("control"), "{err}");
        assert!(place.entry("p", " 10.0.0.0/8 ", "r", "").is_ok());
    }

    #[test]
    fn kinds_round_trip_and_are_in_precedence_order() {
        for k in FeedKind::ALL {
            assert_eq!(k.name().parse::<FeedKind>(), Ok(k));
        }
        assert!(FeedKind::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(FeedKind::ALL[0], FeedKind::Custom);
        assert!("digitalocean".parse::<FeedKind>().is_err());
    }
}
