//! Copies one blob from the upstream into every store that lacks it,
//! downloading it once. The sha256 is computed while the bytes stream;
//! only a blob with the right size and digest is ever completed at its
//! final key. A blob that fits one part is verified in memory and then
//! written with one put (a temporary file renamed, or one S3 PUT);
//! larger ones go up as multipart uploads, completed only after the
//! digest matched and aborted otherwise.

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::{ObjectStoreExt as _, PutPayload, WriteMultipart};

use super::{digest::Hasher, plan::Blob, registry::Registry, store::Store};

/// Part size of multipart uploads, and the most a blob buffers in memory
/// per copy (S3 wants parts of at least 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
/// Parts in flight per store and blob.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Per target store: the bytes written, or why not.
pub type Outcome = Result<u64, String>;

/// Whether a failed attempt may succeed when tried again (the download
/// broke), or not (the upstream sent the wrong bytes).
enum Failed {
    Download(String),
    Final(String),
}

/// Copies `digest` into each of `targets`, retrying a broken download
/// under the registry's retry policy.
pub async fn copy_blob(
    registry: &Registry,
    digest: &str,
    blob: &Blob,
    targets: &[Store],
) -> Vec<Outcome> {
    let policy = registry.retry_policy();
    let mut attempt = 0;
    loop {
        match copy_once(registry, digest, blob, targets).await {
            Ok(outcomes) => return outcomes,
            Err(Failed::Download(why)) if attempt < policy.retries => {
                tracing::debug!("{digest}: {why}; retrying");
                tokio::time::sleep(policy.wait(attempt, None)).await;
                attempt += 1;
            }
            Err(Failed::Download(why) | Failed::Final(why)) => {
                return targets.iter().map(|_| Err(why.clone())).collect();
            }
        }
    }
}

/// Where the bytes go: buffered until they exceed one part, then one
/// multipart upload per store still writing.
enum Sink {
    Buffer(Vec<Bytes>, usize),
    Parts(Vec<Option<WriteMultipart>>),
}

async fn copy_once(
    registry: &Registry,
    digest: &str,
    blob: &Blob,
    targets: &[Store],
) -> Result<Vec<Outcome>, Failed> {
    let resp = registry
        .blob(&blob.repo, digest)
        .await
        .map_err(|e| Failed::Final(e.to_string()))?;
    let mut body = resp.bytes_stream();
    let mut hasher = Hasher::new();
    let mut total = 0u64;
    let mut sink = Sink::Buffer(Vec::new(), 0);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; targets.len()];
    let result = loop {
        let chunk = match body.try_next().await {
            Ok(Some(c)) => c,
            Ok(None) => break Ok(()),
            Err(e) => {
                break Err(Failed::Download(format!(
                    "download broke after {total} bytes: {e}"
                )));
            }
        };
        total += chunk.len() as u64;
        if total > blob.size {
            break Err(Failed::Final(format!(
                "upstream sent more than the manifest's {} bytes",
                blob.size
            )));
        }
        hasher.update(&chunk);
        match &mut sink {
            Sink::Buffer(chunks, len) => {
                *len += chunk.len();
                chunks.push(chunk);
                if *len > PART_SIZE {
                    let chunks = std::mem::take(chunks);
                    sink = Sink::Parts(start_parts(targets, digest, chunks, &mut outcomes).await);
                }
            }
            Sink::Parts(writers) => {
                for (i, w) in writers.iter_mut().enumerate() {
                    if let Some(writer) = w {
                        writer.put(chunk.clone());
                        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                            outcomes[i] = Some(Err(targets[i].io(e).to_string()));
                            abort(w.take()).await;
                        }
                    }
                }
            }
        }
    };
    let verdict = result.and_then(|()| {
        if total != blob.size {
            return Err(Failed::Download(format!(
                "upstream ended after {total} of {} bytes",
                blob.size
            )));
        }
        let got = hasher.finish();
        if got != digest {
            return Err(Failed::Final(format!("upstream bytes have digest {got}")));
        }
        Ok(())
    });
    match (verdict, sink) {
        (Err(f), Sink::Parts(writers)) => {
            for w in writers {
                abort(w).await;
            }
            Err(f)
        }
        (Err(f), Sink::Buffer(..)) => Err(f),
        (Ok(()), Sink::Buffer(chunks, _)) => {
            let payload: PutPayload = chunks.into_iter().collect();
            let puts = targets.iter().map(|t| {
                let payload = payload.clone();
                async move {
                    t.inner
                        .put(&t.key(digest), payload)
                        .await
                        .map(|_| total)
                        .map_err(|e| t.io(e).to_string())
                }
            });
            Ok(futures::future::join_all(puts).await)
        }
        (Ok(()), Sink::Parts(writers)) => {
            for (i, w) in writers.into_iter().enumerate() {
                if let Some(w) = w {
                    outcomes[i] = Some(
                        w.finish()
                            .await
                            .map(|_| total)
                            .map_err(|e| targets[i].io(e).to_string()),
                    );
                }
            }
            Ok(outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Err("upload stopped".into())))
                .collect())
        }
    }
}

/// Starts a multipart upload per store with the buffered chunks; a store
/// that refuses gets its outcome now and no writer.
async fn start_parts(
    targets: &[Store],
    digest: &str,
    chunks: Vec<Bytes>,
    outcomes: &mut [Option<Outcome>],
) -> Vec<Option<WriteMultipart>> {
    let mut writers = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        match t.inner.put_multipart(&t.key(digest)).await {
            Ok(upload) => {
                let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                for c in &chunks {
                    w.put(c.clone());
                }
                writers.push(Some(w));
            }
            Err(e) => {
                outcomes[i] = Some(Err(t.io(e).to_string()));
                writers.push(None);
            }
        }
    }
    writers
}

/// Aborts an upload; nothing of it becomes visible. A failed abort leaves
/// an incomplete upload that no reader sees (S3 lifecycle rules expire
/// them), so it is only logged.
async fn abort(writer: Option<WriteMultipart>) {
    if let Some(w) = writer
        && let Err(e) = w.abort().await
    {
        tracing::warn!("aborting an upload: {e}");
    }
}
