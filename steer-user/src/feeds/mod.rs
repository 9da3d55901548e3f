//! Provider range feeds, parsed into one entry shape.
//!
//! A parser rejects the whole feed on the first malformed entry and names
//! it: a feed that is half wrong is not trusted at all, and the caller keeps
//! serving the last good table.

mod aws;
mod gcp;

use std::path::Path;

use ipnet::IpNet;

pub use aws::parse as parse_aws;
pub use gcp::parse as parse_gcp;

use crate::FeedError;

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
#[derive(Clone, Debug)]
pub struct Feed {
    /// Short feed name: "aws", "gcp".
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
}

/// Reads and parses the AWS `ip-ranges.json` at `path`.
pub fn read_aws(path: &Path) -> Result<Feed, FeedError> {
    parse_aws(&read(aws::FEED, path)?)
}

/// Reads and parses the GCP `cloud.json` at `path`.
pub fn read_gcp(path: &Path) -> Result<Feed, FeedError> {
    parse_gcp(&read(gcp::FEED, path)?)
}

fn read(feed: &'static str, path: &Path) -> Result<String, FeedError> {
    std::fs::read_to_string(path).map_err(|source| FeedError::Read {
        feed,
        path: path.to_owned(),
        source,
    })
}

/// Where an entry sits in its feed, for error messages.
#[derive(Clone, Copy)]
struct Place {
    feed: &'static str,
    list: &'static str,
    index: usize,
}

impl Place {
    fn error(self, reason: String) -> FeedError {
        FeedError::Entry {
            feed: self.feed,
            list: self.list,
            index: self.index,
            reason,
        }
    }

    /// Validates one entry's fields: the prefix must parse (host bits are
    /// cleared), the region must be non-empty printable ASCII because it ends
    /// up in logs, metric labels and config keys.
    fn entry(
        self,
        provider: &str,
        prefix: &str,
        region: &str,
        service: &str,
    ) -> Result<FeedEntry, FeedError> {
        let prefix = prefix
            .parse::<IpNet>()
            .map_err(|_| self.error(format!("`{prefix}` is not an IP prefix")))?
            .trunc();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.error(format!("region {region:?} is empty or not printable ASCII")));
        }
        Ok(FeedEntry {
            prefix,
            provider: provider.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        })
    }
}
