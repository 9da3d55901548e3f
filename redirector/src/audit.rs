//! `redirector audit`: does every backend serve every blob of the
//! selection, through its public `base_url`, as clients will fetch it?
//! One HEAD per blob and backend (`--verify`: a GET, hashed), bounded in
//! concurrency and time.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde::Serialize;

use crate::{
    backends::Backend,
    routes::blob_location,
    sync::{digest::Hasher, plan::Plan, report::Failure},
};

/// One check's time limit (a HEAD; a verifying GET waits at most this
/// long between two reads).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_AUDIT_JOBS: usize = 16;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WrongSize {
    pub digest: String,
    pub expected: u64,
    pub got: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendAudit {
    pub name: String,
    pub base_url: String,
    pub checked: u64,
    pub present: u64,
    pub missing: Vec<String>,
    pub wrong_size: Vec<WrongSize>,
    pub unreachable: Vec<Failure>,
    /// `--verify`: served, with other bytes than the digest names.
    pub corrupt: Vec<Failure>,
    /// Not one expected blob is served: a base_url that points nowhere
    /// useful (a bucket never filled, or never created).
    pub serves_none: bool,
}

impl BackendAudit {
    pub fn clean(&self) -> bool {
        self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.unreachable.is_empty()
            && self.corrupt.is_empty()
    }
}

enum Verdict {
    Present,
    Missing,
    WrongSize(u64),
    Unreachable(String),
    Corrupt(String),
}

/// Checks every blob of `plan` at every backend, `jobs` at a time.
pub async fn audit(
    backends: &[Backend],
    plan: &Plan,
    jobs: usize,
    verify: bool,
) -> Result<Vec<BackendAudit>, reqwest::Error> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(CHECK_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(concat!("steer-audit/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut reports: Vec<BackendAudit> = backends
        .iter()
        .map(|b| BackendAudit {
            name: b.name.to_string(),
            base_url: b.base_url.clone(),
            ..BackendAudit::default()
        })
        .collect();
    let checks = backends.iter().enumerate().flat_map(|(i, b)| {
        plan.blobs
            .iter()
            .map(move |(digest, blob)| (i, blob_location(&b.base_url, digest), digest, blob.size))
    });
    let http = &http;
    let mut results = stream::iter(checks)
        .map(|(i, url, digest, size)| async move {
            (
                i,
                digest,
                size,
                check(http, &url, digest, size, verify).await,
            )
        })
        .buffer_unordered(jobs.max(1));
    while let Some((i, digest, size, verdict)) = results.next().await {
        let r = &mut reports[i];
        r.checked += 1;
        let digest = digest.clone();
        match verdict {
            Verdict::Present => r.present += 1,
            Verdict::Missing => r.missing.push(digest),
            Verdict::WrongSize(got) => r.wrong_size.push(WrongSize {
                digest,
                expected: size,
                got,
            }),
            Verdict::Unreachable(reason) => r.unreachable.push(Failure { digest, reason }),
            Verdict::Corrupt(reason) => r.corrupt.push(Failure { digest, reason }),
        }
    }
    for r in &mut reports {
        r.serves_none = r.checked > 0 && r.present == 0;
        r.missing.sort();
        r.wrong_size.sort_by(|a, b| a.digest.cmp(&b.digest));
        r.unreachable.sort_by(|a, b| a.digest.cmp(&b.digest));
        r.corrupt.sort_by(|a, b| a.digest.cmp(&b.digest));
    }
    Ok(reports)
}

async fn check(
    http: &reqwest::Client,
    url: &str,
    digest: &str,
    size: u64,
    verify: bool,
) -> Verdict {
    let req = if verify {
        http.get(url)
    } else {
        http.head(url).timeout(CHECK_TIMEOUT)
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Verdict::Unreachable(e.to_string()),
    };
    match resp.status().as_u16() {
        200..=299 => {}
        // S3 answers 403 for a key that does not exist in a bucket that
        // does not let anyone list it.
        403 | 404 | 410 => return Verdict::Missing,
        s => return Verdict::Unreachable(format!("HTTP {s}")),
    }
    // The header, not reqwest's body length: a HEAD has no body.
    let length = resp
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(got) = length
        && got != size
    {
        return Verdict::WrongSize(got);
    }
    if !verify {
        return Verdict::Present;
    }
    let mut hasher = Hasher::new();
    let mut total = 0u64;
    let mut body = resp.bytes_stream();
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                total += chunk.len() as u64;
                if total > size {
                    return Verdict::WrongSize(total);
                }
                hasher.update(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Verdict::Unreachable(format!("download broke after {total} bytes: {e}"));
            }
        }
    }
    if total != size {
        return Verdict::WrongSize(total);
    }
    match hasher.finish() {
        got if got == digest => Verdict::Present,
        got => Verdict::Corrupt(format!("served bytes have digest {got}")),
    }
}

/// An audit's result, for `--json` and the table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    pub upstream: String,
    pub verify: bool,
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub errors: Vec<String>,
    pub backends: Vec<BackendAudit>,
}

impl AuditReport {
    /// 0: every backend serves every blob; 1: anything else.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.errors.is_empty() || self.backends.iter().any(|b| !b.clean()))
    }

    pub fn table(&self) -> String {
        let mut rows = vec![
            [
                "backend",
                "base_url",
                "present",
                "missing",
                "wrong size",
                "unreachable",
                "corrupt",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for b in &self.backends {
            rows.push(vec![
                b.name.clone(),
                b.base_url.clone(),
                format!("{}/{}", b.present, b.checked),
                b.missing.len().to_string(),
                b.wrong_size.len().to_string(),
                b.unreachable.len().to_string(),
                if self.verify {
                    b.corrupt.len().to_string()
                } else {
                    "-".into()
                },
            ]);
        }
        let mut out = format!(
            "{} blobs ({}) in {} manifests from {}, checked at {} backends{} in {:.1} s\n",
            self.blobs,
            crate::sync::report::bytes(self.bytes),
            self.manifests,
            self.upstream,
            self.backends.len(),
            if self.verify {
                " (downloaded and hashed)"
            } else {
                ""
            },
            self.seconds
        );
        out.push_str(&crate::sync::report::render(&rows));
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for b in &self.backends {
            if b.serves_none {
                out.push_str(&format!(
                    "error: {} serves none of the expected blobs at {}\n",
                    b.name, b.base_url
                ));
            }
            for d in &b.missing {
                out.push_str(&format!("missing: {} {d}\n", b.name));
            }
            for w in &b.wrong_size {
                out.push_str(&format!(
                    "wrong size: {} {} ({} bytes, expected {})\n",
                    b.name, w.digest, w.got, w.expected
                ));
            }
            for f in &b.unreachable {
                out.push_str(&format!(
                    "unreachable: {} {}: {}\n",
                    b.name, f.digest, f.reason
                ));
            }
            for f in &b.corrupt {
                out.push_str(&format!("corrupt: {} {}: {}\n", b.name, f.digest, f.reason));
            }
        }
        out
    }
}
