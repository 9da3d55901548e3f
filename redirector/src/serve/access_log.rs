//! The JSON access log (`--access-log PATH|stderr`): one line per request,
//! for loading a day of traffic into a warehouse. A request only hands
//! its line to a bounded queue; one task writes the queue out. When the
//! writer falls behind (a full disk, a pipe nobody reads), lines that do
//! not fit are dropped and counted: a request never waits on the log.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use serde::Serialize;
use tokio::{io::AsyncWriteExt as _, sync::mpsc};

/// Lines queued for the writer at most (about 2 MiB of typical lines).
pub const QUEUE_LINES: usize = 8192;

/// One request, as logged.
#[derive(Serialize)]
pub struct Entry<'a> {
    pub client: &'a str,
    pub class: &'a str,
    pub source: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub backend: &'a str,
    /// For blob requests.
    pub digest: Option<&'a str>,
    /// The blob's size when a check reported it (GETs only).
    pub bytes: Option<u64>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: String,
    #[serde(flatten)]
    entry: &'a Entry<'a>,
}

pub struct AccessLog {
    tx: mpsc::Sender<String>,
    next_id: AtomicU64,
    dropped: Counter,
}

#[derive(Debug, thiserror::Error)]
#[error("access log {path}: {source}")]
pub struct AccessLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl AccessLog {
    /// Opens `path` for appending (`stderr` for standard error) and starts
    /// the writer; counts go into `registry`. Call inside the runtime.
    pub async fn open(path: &Path, registry: &mut Registry) -> Result<AccessLog, AccessLogError> {
        let out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if path == Path::new("stderr") {
            Box::new(tokio::io::stderr())
        } else {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|source| AccessLogError {
                    path: path.to_owned(),
                    source,
                })?;
            Box::new(file)
        };
        let written = Counter::default();
        let dropped = Counter::default();
        registry.register(
            "access_log_lines",
            "Access log lines written",
            written.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            dropped.clone(),
        );
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        tokio::spawn(write_out(rx, out, written, path.to_owned()));
        Ok(AccessLog {
            tx,
            next_id: AtomicU64::new(1),
            dropped,
        })
    }

    /// Queues one line; never waits.
    pub fn record(&self, entry: &Entry<'_>) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            request_id: format!("{:x}-{n}", std::process::id()),
            entry,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        if self.tx.try_send(text).is_err() {
            self.dropped.inc();
        }
    }
}

async fn write_out(
    mut rx: mpsc::Receiver<String>,
    mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    written: Counter,
    path: PathBuf,
) {
    while let Some(line) = rx.recv().await {
        if let Err(e) = out.write_all(line.as_bytes()).await {
            tracing::warn!(
                "access log {}: {e}; stopping the access log",
                path.display()
            );
            return;
        }
        written.inc();
        // Flush when the queue is empty: lines reach the file promptly
        // without a write per line under load.
        if rx.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
}
