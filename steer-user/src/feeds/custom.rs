//! An operator's own list of networks: sponsors, on-prem ranges, clouds
//! without a published feed. TOML or CSV:
//!
//! ```toml
//! created = "2026-11-01"          # optional, shown by `explain`
//! [[prefix]]
//! prefix = "203.0.113.0/24"
//! provider = "sponsor"
//! region = "fra1"
//! service = "mirror"              # optional
//! ```
//!
//! ```text
//! # prefix,provider,region[,service]
//! 203.0.113.0/24,sponsor,fra1,mirror
//! ```

use serde::Deserialize;

use super::{Feed, Place};
use crate::FeedError;

pub(super) const FEED: &str = "custom";
const LIST: &str = "prefix";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    created: String,
    #[serde(default)]
    prefix: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    prefix: String,
    provider: String,
    region: String,
    #[serde(default)]
    service: String,
}

/// Parses a custom list in TOML.
pub fn parse_toml(text: &str) -> Result<Feed, FeedError> {
    let doc: Document =
        toml::from_str(text).map_err(|source| FeedError::Toml { feed: FEED, source })?;
    let entries = doc
        .prefix
        .iter()
        .enumerate()
        .map(|(index, r)| {
            Place::new(FEED, LIST, index).entry(&r.provider, &r.prefix, &r.region, &r.service)
        })
        .collect::<Result<_, _>>()?;
    Feed::new(FEED, doc.created, entries)
}

/// Parses a custom list in CSV: `prefix,provider,region[,service]` per
/// line; `#` starts a comment; a first line starting with `prefix` is a
/// header. No quoting: none of the fields may contain a comma.
pub fn parse_csv(text: &str) -> Result<Feed, FeedError> {
    let mut entries = Vec::new();
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if std::mem::take(&mut first) && line.starts_with("prefix") {
            continue;
        }
        let place = Place::line(FEED, i + 1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (prefix, provider, region, service) = match fields[..] {
            [p, pr, r] => (p, pr, r, ""),
            [p, pr, r, s] => (p, pr, r, s),
            _ => {
                return Err(place.error(format!(
                    "{} fields; expected prefix,provider,region[,service]",
                    fields.len()
                )));
            }
        };
        entries.push(place.entry(provider, prefix, region, service)?);
    }
    Feed::new(FEED, String::new(), entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_list_parses() {
        let feed = parse_toml(
            r#"
            created = "2026-11-01"
            [[prefix]]
            prefix = "203.0.113.0/24"
            provider = "sponsor"
            region = "fra1"
            service = "mirror"
            [[prefix]]
            prefix = "2001:db8:5::/48"
            provider = "onprem"
            region = "lab"
            "#,
        )
        .unwrap();
        assert_eq!(feed.name, "custom");
        assert_eq!(feed.created, "2026-11-01");
        assert_eq!(feed.entries.len(), 2);
        assert_eq!(feed.entries[0].service, "mirror");
        assert_eq!(feed.entries[1].region, "lab");
    }

    #[test]
    fn toml_errors_name_the_row_or_the_key() {
        let err = parse_toml(
            "[[prefix]]\nprefix = \"10.0.0.0/8\"\nprovider = \"a\"\nregion = \"b\"\n\
             [[prefix]]\nprefix = \"10.0.0.0/40\"\nprovider = \"a\"\nregion = \"b\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "custom: prefix[1]: `10.0.0.0/40` is not an IP prefix"
        );
        let err =
            parse_toml("[[prefix]]\nprefix = \"10.0.0.0/8\"\nprovider = \"a\"\nregoin = \"b\"\n")
                .unwrap_err();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("regoin"), "{cause}");
        assert!(matches!(
            parse_toml("").unwrap_err(),
            FeedError::Empty { .. }
        ));
    }

    #[test]
    fn csv_list_parses_with_header_comments_and_blank_lines() {
        let feed = parse_csv(
            "# sponsors\nprefix,provider,region,service\n\n\
             203.0.113.0/24, sponsor, fra1, mirror  # Frankfurt rack\n\
             198.51.100.0/24,sponsor,ams1\n",
        )
        .unwrap();
        assert_eq!(feed.entries.len(), 2);
        assert_eq!(feed.entries[0].region, "fra1");
        assert_eq!(feed.entries[0].service, "mirror");
        assert_eq!(feed.entries[1].service, "");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let err = parse_csv("10.0.0.0/8,a,b\n\n10.1.0.0/16,a\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "custom: line 3: 2 fields; expected prefix,provider,region[,service]"
        );
        let err = parse_csv("10.0.0.0/8,a,b\nnot-a-net,a,b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "custom: line 2: `not-a-net` is not an IP prefix"
        );
        assert!(matches!(
            parse_csv("# nothing\n").unwrap_err(),
            FeedError::Empty { .. }
        ));
    }
}
