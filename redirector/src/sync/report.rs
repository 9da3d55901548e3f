//! What a `sync` did, per backend: for people (a table) and machines
//! (`--json`), and the exit code that sums it up.

use serde::Serialize;

/// One blob that could not be copied, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub digest: String,
    pub reason: String,
}

/// One blob a backend lacks (`--dry-run`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Missing {
    pub digest: String,
    pub size: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendReport {
    pub name: String,
    pub store: String,
    pub copied: u64,
    pub copied_bytes: u64,
    pub skipped: u64,
    pub skipped_bytes: u64,
    pub failed: Vec<Failure>,
    /// What the backend lacks and a dry run would copy.
    pub missing: Vec<Missing>,
    pub missing_bytes: u64,
    /// The store could not even be listed.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub upstream: String,
    pub dry_run: bool,
    /// `K/N` when only one shard was synced.
    pub shard: Option<String>,
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
    pub foreign_layers: usize,
    /// Upstream requests, and how many of them were retries.
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
    /// Images or references that could not be walked.
    pub errors: Vec<String>,
    pub backends: Vec<BackendReport>,
}

impl Report {
    /// 0: every blob is in every store; 1: something failed or (dry run)
    /// is missing.
    pub fn exit_code(&self) -> u8 {
        let bad = !self.errors.is_empty()
            || self
                .backends
                .iter()
                .any(|b| b.error.is_some() || !b.failed.is_empty() || !b.missing.is_empty());
        u8::from(bad)
    }

    /// The table printed at the end, then each failure on its own line.
    pub fn table(&self) -> String {
        let mut rows = vec![if self.dry_run {
            ["backend", "store", "present", "missing", "to copy"]
                .map(String::from)
                .to_vec()
        } else {
            [
                "backend",
                "store",
                "copied",
                "skipped",
                "failed",
                "bytes copied",
            ]
            .map(String::from)
            .to_vec()
        }];
        for b in &self.backends {
            let mut row = vec![b.name.clone(), b.store.clone(), String::new()];
            if self.dry_run {
                row[2] = b.skipped.to_string();
                row.push(b.missing.len().to_string());
                row.push(bytes(b.missing_bytes));
            } else {
                row[2] = b.copied.to_string();
                row.push(b.skipped.to_string());
                row.push(b.failed.len().to_string());
                row.push(bytes(b.copied_bytes));
            }
            rows.push(row);
        }
        let mut out = format!(
            "{} blobs ({}) in {} manifests from {}{}; {} requests, {} retries, {:.1} s\n",
            self.blobs,
            bytes(self.bytes),
            self.manifests,
            self.upstream,
            self.shard
                .as_ref()
                .map_or(String::new(), |s| format!(", shard {s}")),
            self.requests,
            self.retries,
            self.seconds
        );
        out.push_str(&render(&rows));
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for b in &self.backends {
            if let Some(e) = &b.error {
                out.push_str(&format!("error: {}: {e}\n", b.name));
            }
            for f in &b.failed {
                out.push_str(&format!("failed: {} {}: {}\n", b.name, f.digest, f.reason));
            }
            for m in &b.missing {
                out.push_str(&format!(
                    "missing: {} {} ({})\n",
                    b.name,
                    m.digest,
                    bytes(m.size)
                ));
            }
        }
        out
    }
}

/// Columns padded to their widest cell.
pub fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `1.5 MiB` and the like.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_sizes() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (5 << 30, "5.0 GiB"),
        ] {
            assert_eq!(bytes(n), want);
        }
    }

    #[test]
    fn exit_code_and_table_name_failures() {
        let mut r = Report {
            upstream: "http://reg".into(),
            backends: vec![BackendReport {
                name: "eu".into(),
                store: "file:///m".into(),
                copied: 2,
                ..BackendReport::default()
            }],
            ..Report::default()
        };
        assert_eq!(r.exit_code(), 0);
        r.backends[0].failed.push(Failure {
            digest: "sha256:ab".into(),
            reason: "upstream bytes have digest sha256:cd".into(),
        });
        assert_eq!(r.exit_code(), 1);
        let table = r.table();
        assert!(
            table.contains("failed: eu sha256:ab: upstream bytes"),
            "{table}"
        );
        assert!(
            table.lines().nth(1).unwrap().starts_with("backend  store"),
            "{table}"
        );
    }
}
