//! GCP `cloud.json`.

use serde::Deserialize;

use super::{Feed, Place};
use crate::FeedError;

pub(super) const FEED: &str = "gcp";
const PROVIDER: &str = "gcp";
const LIST: &str = "prefixes";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    creation_time: String,
    prefixes: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    ipv4_prefix: Option<String>,
    ipv6_prefix: Option<String>,
    service: String,
    scope: String,
}

/// Parses the text of a GCP `cloud.json`.
pub fn parse(json: &str) -> Result<Feed, FeedError> {
    let doc: Document =
        serde_json::from_str(json).map_err(|source| FeedError::Json { feed: FEED, source })?;
    let mut entries = Vec::with_capacity(doc.prefixes.len());
    for (index, e) in doc.prefixes.iter().enumerate() {
        let place = Place::new(FEED, LIST, index);
        let net = match (&e.ipv4_prefix, &e.ipv6_prefix) {
            (Some(net), None) | (None, Some(net)) => net,
            _ => {
                return Err(
                    place.error("needs exactly one of ipv4Prefix and ipv6Prefix".to_owned())
                );
            }
        };
        entries.push(place.entry(PROVIDER, net, &e.scope, &e.service)?);
    }
    Feed::new(FEED, doc.creation_time, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families() {
        let feed = parse(
            r#"{"syncToken":"1","creationTime":"2026-07-29T07:05:53",
            "prefixes":[{"ipv4Prefix":"34.1.208.0/20","service":"Google Cloud","scope":"africa-south1"},
                        {"ipv6Prefix":"2600:1900:8000::/44","service":"Google Cloud","scope":"africa-south1"}]}"#,
        )
        .unwrap();
        assert_eq!(feed.entries.len(), 2);
        assert_eq!(feed.entries[1].prefix.to_string(), "2600:1900:8000::/44");
        assert_eq!(feed.entries[0].provider, "gcp");
    }

    #[test]
    fn entry_with_both_families_is_refused() {
        let err = parse(
            r#"{"creationTime":"x","prefixes":[{"ipv4Prefix":"1.0.0.0/8","ipv6Prefix":"::/0","service":"s","scope":"r"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "gcp: prefixes[0]: needs exactly one of ipv4Prefix and ipv6Prefix"
        );
    }

    #[test]
    fn empty_scope_is_refused() {
        let err = parse(
            r#"{"creationTime":"x","prefixes":[{"ipv4Prefix":"1.0.0.0/8","service":"s","scope":""}]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("gcp: prefixes[0]: region"),
            "{err}"
        );
    }
}
