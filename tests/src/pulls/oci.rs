//! Small multi-layer container images, built in code as an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so the
//! end-to-end tests need no image from anywhere: `skopeo copy oci:DIR:TAG
//! docker://...` pushes one into the test's own registry.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use serde_json::json;

use crate::sample::Rng;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// One content-addressed blob of an image.
#[derive(Clone, Debug)]
pub struct Blob {
    /// `sha256:<64 hex>`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// An image written as an OCI layout, with its blobs kept for the mirrors.
pub struct Image {
    /// Repository name in the registry, e.g. `steer/app`.
    pub name: String,
    pub tag: String,
    /// The layout directory (for `skopeo copy oci:<layout>:<tag>`).
    pub layout: PathBuf,
    /// The manifest's digest: what a pull must end with.
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    /// The config blob, then the layers.
    pub blobs: Vec<Blob>,
}

pub fn sha256(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: sha256(&bytes),
            bytes,
        }
    }

    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

impl Image {
    /// Builds `name:tag` with one layer per entry of `layer_sizes`, each a
    /// tar holding one file of seeded random bytes (so every image has its
    /// own blobs), and writes its layout under `dir`.
    pub fn build(dir: &Path, name: &str, tag: &str, seed: u64, layer_sizes: &[usize]) -> Image {
        let mut rng = Rng(seed);
        let layers: Vec<Blob> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let content: Vec<u8> = (0..size).map(|_| rng.next_u64() as u8).collect();
                Blob::new(tar_of(
                    &format!("steer/{}-{i}.bin", name.replace('/', "-")),
                    &content,
                ))
            })
            .collect();
        // Uncompressed layers: the diff id is the layer's own digest.
        let config = Blob::new(
            serde_json::to_vec(&json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"org.example.steer.seed": seed.to_string()}},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
                },
            }))
            .expect("config JSON"),
        );
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.descriptor(CONFIG),
            "layers": layers.iter().map(|l| l.descriptor(LAYER)).collect::<Vec<_>>(),
        }))
        .expect("manifest JSON");
        let manifest_digest = sha256(&manifest);

        let layout = dir.join(format!("{}-{tag}.oci", name.replace('/', "-")));
        let blob_dir = layout.join("blobs/sha256");
        fs::create_dir_all(&blob_dir).expect("layout directory");
        let mut blobs = vec![config];
        blobs.extend(layers);
        for b in blobs
            .iter()
            .chain(std::iter::once(&Blob::new(manifest.clone())))
        {
            fs::write(blob_dir.join(hex(&b.digest)), &b.bytes).expect("layout blob");
        }
        write_top_index(&layout, MANIFEST, &manifest_digest, manifest.len(), tag);
        Image {
            name: name.to_owned(),
            tag: tag.to_owned(),
            layout,
            manifest_digest,
            manifest,
            blobs,
        }
    }

    /// The digests a pull fetches through `/v2/<name>/blobs/`.
    pub fn blob_digests(&self) -> Vec<&str> {
        self.blobs.iter().map(|b| b.digest.as_str()).collect()
    }
}

/// A multi-platform image: an OCI index over one image per platform,
/// written as one layout whose `index.json` names the index by its tag.
pub struct MultiArch {
    pub name: String,
    pub tag: String,
    pub layout: PathBuf,
    pub index_digest: String,
    /// Per platform: its manifest's digest.
    pub manifests: Vec<String>,
    /// Every blob (configs and layers) of every platform.
    pub blobs: Vec<Blob>,
}

impl MultiArch {
    /// One image per `(os, architecture)` in `platforms`, each with
    /// layers of `layer_sizes` and seeded bytes of its own.
    pub fn build(
        dir: &Path,
        name: &str,
        tag: &str,
        seed: u64,
        platforms: &[(&str, &str)],
        layer_sizes: &[usize],
    ) -> MultiArch {
        let images: Vec<Image> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch))| {
                Image::build(
                    dir,
                    &format!("{name}-{os}-{arch}"),
                    tag,
                    seed + i as u64,
                    layer_sizes,
                )
            })
            .collect();
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": images.iter().zip(platforms).map(|(img, (os, arch))| json!({
                "mediaType": MANIFEST,
                "digest": img.manifest_digest,
                "size": img.manifest.len(),
                "platform": {"os": os, "architecture": arch},
            })).collect::<Vec<_>>(),
        }))
        .expect("index JSON");
        let index_digest = sha256(&index);
        let layout = dir.join(format!("{}-{tag}-index.oci", name.replace('/', "-")));
        let blob_dir = layout.join("blobs/sha256");
        fs::create_dir_all(&blob_dir).expect("layout directory");
        fs::write(blob_dir.join(hex(&index_digest)), &index).expect("index blob");
        for img in &images {
            for b in &img.blobs {
                fs::write(blob_dir.join(hex(&b.digest)), &b.bytes).expect("layout blob");
            }
            fs::write(blob_dir.join(hex(&img.manifest_digest)), &img.manifest)
                .expect("manifest blob");
        }
        write_top_index(&layout, INDEX, &index_digest, index.len(), tag);
        MultiArch {
            name: name.to_owned(),
            tag: tag.to_owned(),
            layout,
            index_digest,
            manifests: images.iter().map(|i| i.manifest_digest.clone()).collect(),
            blobs: images.into_iter().flat_map(|i| i.blobs).collect(),
        }
    }
}

/// A layout's `index.json` naming one manifest (or index) by its tag,
/// and its `oci-layout` marker.
fn write_top_index(layout: &Path, media_type: &str, digest: &str, size: usize, tag: &str) {
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
}

/// The hex part of `sha256:<hex>`.
pub fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn tar_of(path: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, content)
        .expect("tar entry");
    let mut out = builder.into_inner().expect("tar end");
    out.flush().expect("flush");
    out
}
