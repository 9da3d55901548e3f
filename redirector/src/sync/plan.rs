//! From a selection of images to the set of blobs they need: tags listed,
//! manifests fetched, indexes walked into every platform manifest, and
//! cosign signature and attestation tags (`sha256-<hex>.sig`, `.att`)
//! followed where they exist.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt as _, stream};

use super::{
    digest::shard_of,
    manifest::{self, Descriptor, Manifest},
    registry::Registry,
    selection::{Image, Wanted},
};

/// Index → manifest is one level; an index inside an index is followed
/// this deep and no deeper.
const MAX_DEPTH: usize = 3;

/// A blob and the repository to fetch it from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub size: u64,
    pub repo: String,
}

/// Every blob the selection needs, and what went wrong finding them.
#[derive(Debug, Default)]
pub struct Plan {
    pub blobs: BTreeMap<String, Blob>,
    pub manifests: usize,
    /// Foreign layers, which live elsewhere than the registry.
    pub foreign: usize,
    /// `name:reference: what went wrong`, one per image reference.
    pub errors: Vec<String>,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.size).sum()
    }

    /// Keeps only shard `k` of `n` (by digest).
    pub fn shard(&mut self, k: u64, n: u64) {
        self.blobs.retain(|d, _| shard_of(d, n) == k);
    }
}

/// Walks `images` at the upstream, `jobs` references at a time.
pub async fn walk(registry: &Registry, images: &[Image], signatures: bool, jobs: usize) -> Plan {
    let mut plan = Plan::default();
    let mut refs: BTreeSet<(String, String)> = BTreeSet::new();
    for image in images {
        let repo = registry.repository(&image.name);
        for w in &image.wanted {
            match w {
                Wanted::Reference(r) => {
                    refs.insert((image.name.clone(), r.clone()));
                }
                Wanted::AllTags => match registry.tags(&repo).await {
                    Ok(tags) if tags.is_empty() => {
                        plan.errors
                            .push(format!("{}: no tags upstream", image.name));
                    }
                    Ok(tags) => refs.extend(tags.into_iter().map(|t| (image.name.clone(), t))),
                    Err(e) => plan
                        .errors
                        .push(format!("{}: listing tags: {e}", image.name)),
                },
            }
        }
    }
    let walks: Vec<Walked> = stream::iter(refs)
        .map(|(name, reference)| async move {
            let mut w = Walked::default();
            let repo = registry.repository(&name);
            if let Err(e) = walk_reference(registry, &repo, &reference, signatures, &mut w).await {
                w.errors.push(format!("{name}:{reference}: {e}"));
            }
            w
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut seen_manifests = BTreeSet::new();
    for w in walks {
        seen_manifests.extend(w.manifests);
        plan.foreign += w.foreign;
        plan.errors.extend(w.errors);
        for (d, blob) in w.blobs {
            match plan.blobs.get(&d) {
                Some(had) if had.size != blob.size => plan.errors.push(format!(
                    "{d}: manifests give it sizes {} and {}",
                    had.size, blob.size
                )),
                Some(_) => {}
                None => {
                    plan.blobs.insert(d, blob);
                }
            }
        }
    }
    plan.manifests = seen_manifests.len();
    plan.errors.sort();
    plan
}

/// `sha256-<hex>.sig` or `.att`: cosign's tags, not signed themselves.
fn is_signature_tag(reference: &str) -> bool {
    reference.starts_with("sha256-") && (reference.ends_with(".sig") || reference.ends_with(".att"))
}

#[derive(Default)]
struct Walked {
    blobs: Vec<(String, Blob)>,
    manifests: BTreeSet<String>,
    foreign: usize,
    errors: Vec<String>,
}

async fn walk_reference(
    registry: &Registry,
    repo: &str,
    reference: &str,
    signatures: bool,
    w: &mut Walked,
) -> Result<(), String> {
    let mut pending = vec![(reference.to_owned(), 0usize, true)];
    while let Some((reference, depth, required)) = pending.pop() {
        let fetched = registry
            .manifest(repo, &reference)
            .await
            .map_err(|e| e.to_string())?;
        let Some(fetched) = fetched else {
            if required {
                return Err("no such manifest upstream".into());
            }
            continue;
        };
        if !w.manifests.insert(fetched.digest.clone()) {
            continue;
        }
        if signatures && !is_signature_tag(&reference) {
            let hex = &fetched.digest["sha256:".len()..];
            for suffix in ["sig", "att"] {
                pending.push((format!("sha256-{hex}.{suffix}"), 0, false));
            }
        }
        match manifest::parse(&fetched.body, fetched.media_type.as_deref())
            .map_err(|e| format!("{}: {e}", fetched.digest))?
        {
            Manifest::Index(children) if depth + 1 < MAX_DEPTH => {
                for Descriptor { digest, .. } in children {
                    pending.push((digest, depth + 1, true));
                }
            }
            Manifest::Index(_) => return Err(format!("indexes nested over {MAX_DEPTH} deep")),
            Manifest::Image { blobs, foreign } => {
                w.foreign += foreign;
                w.blobs.extend(blobs.into_iter().map(|d| {
                    (
                        d.digest,
                        Blob {
                            size: d.size,
                            repo: repo.to_owned(),
                        },
                    )
                }));
            }
        }
    }
    Ok(())
}
