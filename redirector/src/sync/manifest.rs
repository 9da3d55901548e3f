//! What a manifest names: an index names platform manifests, an image
//! manifest names its config and layers. OCI and Docker schema 2 share
//! this shape; schema 1 is refused.

use serde::Deserialize;

use super::digest::is_sha256;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<RawDescriptor>>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
}

/// A blob or manifest a manifest names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: String,
    pub size: u64,
}

/// A parsed manifest.
#[derive(Debug, PartialEq, Eq)]
pub enum Manifest {
    /// An image index (or Docker manifest list): other manifests.
    Index(Vec<Descriptor>),
    /// An image: its config, then its layers. Foreign layers (with
    /// `urls`, kept elsewhere than the registry) are counted, not listed.
    Image {
        blobs: Vec<Descriptor>,
        foreign: usize,
    },
}

/// Parses a manifest; an error says what is wrong with it.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("not a manifest: {e}"))?;
    if raw.schema_version != Some(2) {
        return Err(format!(
            "schema version {:?} is not supported (only 2)",
            raw.schema_version
        ));
    }
    let media_type = raw.media_type.as_deref().or(content_type).unwrap_or("");
    let check = |d: RawDescriptor| -> Result<Descriptor, String> {
        if !is_sha256(&d.digest) {
            return Err(format!("`{}` is not a sha256 digest", d.digest));
        }
        Ok(Descriptor {
            digest: d.digest,
            size: d.size,
        })
    };
    if let Some(children) = raw.manifests {
        if raw.layers.is_some() {
            return Err("has both manifests and layers".into());
        }
        return Ok(Manifest::Index(
            children.into_iter().map(check).collect::<Result<_, _>>()?,
        ));
    }
    if media_type.contains("index") || media_type.contains("manifest.list") {
        return Err(format!("{media_type} without manifests"));
    }
    let config = raw.config.ok_or("an image manifest without a config")?;
    let mut blobs = vec![check(config)?];
    let mut foreign = 0;
    for layer in raw.layers.unwrap_or_default() {
        let is_foreign = !layer.urls.is_empty()
            || layer
                .media_type
                .as_deref()
                .is_some_and(|m| m.contains("foreign"));
        if is_foreign {
            foreign += 1;
        } else {
            blobs.push(check(layer)?);
        }
    }
    Ok(Manifest::Image { blobs, foreign })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn shapes() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"c","digest":"{}","size":10}},"layers":[{{"mediaType":"l","digest":"{}","size":20}},{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":30,"urls":["https://x"]}}]}}"#,
            d(1),
            d(2),
            d(3)
        );
        assert_eq!(
            parse(image.as_bytes(), None).unwrap(),
            Manifest::Image {
                blobs: vec![
                    Descriptor {
                        digest: d(1),
                        size: 10
                    },
                    Descriptor {
                        digest: d(2),
                        size: 20
                    }
                ],
                foreign: 1
            }
        );
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
            d(4)
        );
        assert_eq!(
            parse(
                index.as_bytes(),
                Some("application/vnd.oci.image.index.v1+json")
            )
            .unwrap(),
            Manifest::Index(vec![Descriptor {
                digest: d(4),
                size: 5
            }])
        );
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "schema 1",
                r#"{"schemaVersion":1,"fsLayers":[]}"#,
                "schema version",
            ),
            ("not json", "<html>", "not a manifest"),
            (
                "bad digest",
                r#"{"schemaVersion":2,"config":{"digest":"sha256:../../x","size":1},"layers":[]}"#,
                "not a sha256",
            ),
            (
                "no config",
                r#"{"schemaVersion":2,"layers":[]}"#,
                "without a config",
            ),
            (
                "empty index type",
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
                "without manifests",
            ),
        ];
        for (name, body, want) in cases {
            let err = parse(body.as_bytes(), None).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
    }
}
