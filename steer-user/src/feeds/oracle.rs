//! Oracle Cloud `public_ip_ranges.json`.

use serde::Deserialize;

use super::{Feed, Place};
use crate::FeedError;

pub(super) const FEED: &str = "oracle";
const PROVIDER: &str = "oracle";

#[derive(Deserialize)]
struct Document {
    last_updated_timestamp: String,
    regions: Vec<Region>,
}

#[derive(Deserialize)]
struct Region {
    region: String,
    cidrs: Vec<Cidr>,
}

#[derive(Deserialize)]
struct Cidr {
    cidr: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Parses the text of an Oracle `public_ip_ranges.json`.
pub fn parse(json: &str) -> Result<Feed, FeedError> {
    let doc: Document =
        serde_json::from_str(json).map_err(|source| FeedError::Json { feed: FEED, source })?;
    let mut entries = Vec::new();
    for (r, region) in doc.regions.iter().enumerate() {
        let list = format!("regions[{r}].cidrs");
        for (index, c) in region.cidrs.iter().enumerate() {
            let place = Place::new(FEED, &list, index);
            // Tags say which service uses the block: OCI, OSN, OBJECT_STORAGE.
            let service = c.tags.join(",");
            entries.push(place.entry(PROVIDER, &c.cidr, &region.region, &service)?);
        }
    }
    Feed::new(FEED, doc.last_updated_timestamp, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"{
      "last_updated_timestamp": "2026-07-20T18:46:57.829541",
      "regions": [
        {"region": "eu-frankfurt-1", "cidrs": [
          {"cidr": "130.61.0.0/16", "tags": ["OCI"]},
          {"cidr": "134.70.24.0/21", "tags": ["OBJECT_STORAGE", "OSN"]}]},
        {"region": "us-ashburn-1", "cidrs": [{"cidr": "129.213.0.0/16", "tags": ["OCI"]}]}
      ]}"#;

    #[test]
    fn parses_regions_and_tags() {
        let feed = parse(FIXTURE).unwrap();
        assert_eq!(feed.created, "2026-07-20T18:46:57.829541");
        assert_eq!(feed.entries.len(), 3);
        let e = &feed.entries[1];
        assert_eq!(
            (
                e.prefix.to_string().as_str(),
                e.region.as_str(),
                e.service.as_str()
            ),
            ("134.70.24.0/21", "eu-frankfurt-1", "OBJECT_STORAGE,OSN")
        );
        assert_eq!(feed.entries[2].provider, "oracle");
    }

    #[test]
    fn bad_entries_are_named() {
        let err = parse(&FIXTURE.replace("129.213.0.0/16", "129.213.0.0")).unwrap_err();
        // A bare address is not a prefix in a ranges feed.
        assert_eq!(
            err.to_string(),
            "oracle: regions[1].cidrs[0]: `129.213.0.0` is not an IP prefix"
        );
        let err = parse(&FIXTURE.replace("\"us-ashburn-1\"", "\"\"")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("oracle: regions[1].cidrs[0]: region"),
            "{err}"
        );
        let err = parse(r#"{"regions": []}"#).unwrap_err();
        assert!(matches!(err, FeedError::Json { .. }), "{err}");
    }
}
