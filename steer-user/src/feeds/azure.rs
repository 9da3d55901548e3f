//! Azure Service Tags (`ServiceTags_Public_YYYYMMDD.json`).
//!
//! One document lists service tags; each tag has a region (empty for
//! global tags such as `AzureCloud`) and its address prefixes. The same
//! prefix appears under many tags: a regional tag beats a global one by the
//! table's usual rule (a named region beats `GLOBAL`).

use serde::Deserialize;

use super::{Feed, Place};
use crate::FeedError;

pub(super) const FEED: &str = "azure";
const PROVIDER: &str = "azure";
const GLOBAL: &str = "GLOBAL";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    change_number: u64,
    cloud: String,
    values: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
    properties: Properties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    #[serde(default)]
    region: String,
    #[serde(default)]
    system_service: String,
    address_prefixes: Vec<String>,
}

/// Parses the text of an Azure Service Tags JSON file.
pub fn parse(json: &str) -> Result<Feed, FeedError> {
    let doc: Document =
        serde_json::from_str(json).map_err(|source| FeedError::Json { feed: FEED, source })?;
    let mut entries = Vec::new();
    for (t, tag) in doc.values.iter().enumerate() {
        let region = match tag.properties.region.as_str() {
            "" => GLOBAL,
            r => r,
        };
        // `Storage.EastUS` is service `Storage` when systemService is empty.
        let service = match tag.properties.system_service.as_str() {
            "" => tag.name.split('.').next().unwrap_or_default(),
            s => s,
        };
        let list = format!("values[{t}].properties.addressPrefixes");
        for (index, prefix) in tag.properties.address_prefixes.iter().enumerate() {
            let place = Place::new(FEED, &list, index);
            entries.push(place.entry(PROVIDER, prefix, region, service)?);
        }
    }
    let created = format!("{} changeNumber {}", doc.cloud, doc.change_number);
    Feed::new(FEED, created, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"{
      "changeNumber": 412, "cloud": "Public",
      "values": [
        {"name": "AzureCloud", "id": "AzureCloud",
         "properties": {"changeNumber": 300, "region": "", "regionId": 0, "platform": "Azure",
                        "systemService": "", "addressPrefixes": ["13.64.0.0/11", "2603:1000::/24"],
                        "networkFeatures": ["API", "NSG"]}},
        {"name": "AzureCloud.westeurope", "id": "AzureCloud.westeurope",
         "properties": {"changeNumber": 90, "region": "westeurope", "regionId": 18, "platform": "Azure",
                        "systemService": "", "addressPrefixes": ["13.69.0.0/17"]}},
        {"name": "Storage.WestEurope", "id": "Storage.WestEurope",
         "properties": {"changeNumber": 12, "region": "westeurope", "regionId": 18, "platform": "Azure",
                        "systemService": "AzureStorage", "addressPrefixes": ["13.69.40.0/24"]}}
      ]}"#;

    #[test]
    fn parses_tags_with_global_and_regional_entries() {
        let feed = parse(FIXTURE).unwrap();
        assert_eq!(feed.created, "Public changeNumber 412");
        let rows: Vec<_> = feed
            .entries
            .iter()
            .map(|e| format!("{} {} {} {}", e.prefix, e.provider, e.region, e.service))
            .collect();
        assert_eq!(
            rows,
            [
                "13.64.0.0/11 azure GLOBAL AzureCloud",
                "2603:1000::/24 azure GLOBAL AzureCloud",
                "13.69.0.0/17 azure westeurope AzureCloud",
                "13.69.40.0/24 azure westeurope AzureStorage",
            ]
        );
    }

    #[test]
    fn bad_prefix_names_tag_and_index() {
        let broken = FIXTURE.replace("13.69.0.0/17", "13.69.0.0/17x");
        let err = parse(&broken).unwrap_err();
        assert_eq!(
            err.to_string(),
            "azure: values[1].properties.addressPrefixes[0]: `13.69.0.0/17x` is not an IP prefix"
        );
    }

    #[test]
    fn missing_prefix_list_is_a_json_error() {
        let err =
            parse(r#"{"changeNumber":1,"cloud":"Public","values":[{"name":"x","properties":{}}]}"#)
                .unwrap_err();
        assert!(matches!(err, FeedError::Json { .. }), "{err}");
        let err = parse(r#"{"changeNumber":1,"cloud":"Public","values":[]}"#).unwrap_err();
        assert!(matches!(err, FeedError::Empty { feed: "azure" }), "{err}");
    }
}
