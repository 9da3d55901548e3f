//! AWS `ip-ranges.json`.

use serde::Deserialize;

use super::{Feed, Place};
use crate::FeedError;

pub(super) const FEED: &str = "aws";
const PROVIDER: &str = "aws";

// Field names are the feed's own, which mixes camelCase and snake_case.
#[derive(Deserialize)]
struct Document {
    #[serde(rename = "createDate")]
    create_date: String,
    prefixes: Vec<V4>,
    ipv6_prefixes: Vec<V6>,
}

#[derive(Deserialize)]
struct V4 {
    ip_prefix: String,
    region: String,
    service: String,
}

#[derive(Deserialize)]
struct V6 {
    ipv6_prefix: String,
    region: String,
    service: String,
}

/// Parses the text of an AWS `ip-ranges.json`.
pub fn parse(json: &str) -> Result<Feed, FeedError> {
    let doc: Document =
        serde_json::from_str(json).map_err(|source| FeedError::Json { feed: FEED, source })?;
    let mut entries = Vec::with_capacity(doc.prefixes.len() + doc.ipv6_prefixes.len());
    for (index, p) in doc.prefixes.iter().enumerate() {
        let place = Place::new(FEED, "prefixes", index);
        entries.push(place.entry(PROVIDER, &p.ip_prefix, &p.region, &p.service)?);
    }
    for (index, p) in doc.ipv6_prefixes.iter().enumerate() {
        let place = Place::new(FEED, "ipv6_prefixes", index);
        entries.push(place.entry(PROVIDER, &p.ipv6_prefix, &p.region, &p.service)?);
    }
    Feed::new(FEED, doc.create_date, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families() {
        let feed = parse(
            r#"{"syncToken":"1","createDate":"2026-07-29-08-27-05",
            "prefixes":[{"ip_prefix":"35.180.0.0/16","region":"eu-west-3","service":"EC2","network_border_group":"eu-west-3"}],
            "ipv6_prefixes":[{"ipv6_prefix":"2a05:d012::/36","region":"eu-west-3","service":"AMAZON","network_border_group":"eu-west-3"}]}"#,
        )
        .unwrap();
        assert_eq!(feed.created, "2026-07-29-08-27-05");
        assert_eq!(feed.entries.len(), 2);
        assert_eq!(feed.entries[0].prefix.to_string(), "35.180.0.0/16");
        assert_eq!(feed.entries[1].region, "eu-west-3");
        assert_eq!(feed.entries[1].provider, "aws");
    }

    #[test]
    fn bad_prefix_names_the_entry() {
        let err = parse(
            r#"{"createDate":"x","ipv6_prefixes":[],"prefixes":[
              {"ip_prefix":"1.2.3.0/24","region":"r","service":"s"},
              {"ip_prefix":"1.2.3.0/33","region":"r","service":"s"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "aws: prefixes[1]: `1.2.3.0/33` is not an IP prefix"
        );
    }

    #[test]
    fn empty_feed_is_refused() {
        let err = parse(r#"{"createDate":"x","prefixes":[],"ipv6_prefixes":[]}"#).unwrap_err();
        assert!(matches!(err, FeedError::Empty { feed: "aws" }), "{err}");
    }

    #[test]
    fn missing_ipv6_list_is_an_error_not_an_empty_list() {
        let err = parse(r#"{"createDate":"x","prefixes":[]}"#).unwrap_err();
        assert!(matches!(err, FeedError::Json { .. }), "{err}");
        let cause = std::error::Error::source(&err)
            .expect("the JSON error")
            .to_string();
        assert!(cause.contains("ipv6_prefixes"), "{cause}");
    }

    #[test]
    fn wrong_shape_is_a_json_error() {
        let err = parse(r#"{"prefixes": 3}"#).unwrap_err();
        assert!(matches!(err, FeedError::Json { .. }), "{err}");
    }

    #[test]
    fn host_bits_are_cleared() {
        let feed = parse(
            r#"{"createDate":"x","ipv6_prefixes":[],"prefixes":[{"ip_prefix":"10.1.2.3/8","region":"r","service":"s"}]}"#,
        )
        .unwrap();
        assert_eq!(feed.entries[0].prefix.to_string(), "10.0.0.0/8");
    }
}
