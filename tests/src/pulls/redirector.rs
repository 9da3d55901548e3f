//! `redirector serve` as a process in its namespace, with XDP on the
//! namespace's interface: started, signalled, scraped, restarted.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{
    netns::Netns,
    process::{Running, stdout_lines, wait_until_serving},
    tcp::http_get,
};

/// How to start the redirector: the binary and its arguments.
#[derive(Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub args: Vec<String>,
    /// Where its log (stderr, every decision at info) is appended.
    pub log: PathBuf,
}

pub struct Redirector {
    process: Running,
    /// Its log (stdout), line by line.
    pub lines: mpsc::Receiver<String>,
    pub admin: SocketAddr,
}

impl Redirector {
    /// Starts it in `ns` and waits until it serves.
    pub fn start(ns: &Netns, launch: &Launch) -> Redirector {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .expect("redirector log file");
        let mut child = ns
            .command(&launch.binary)
            .args(&launch.args)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting redirector serve");
        let lines = stdout_lines(&mut child);
        let process = Running(child);
        let (_, admin) = wait_until_serving(&lines);
        Redirector {
            process,
            lines,
            admin,
        }
    }

    pub fn signal(&self, signal: i32) {
        self.process.signal(signal);
    }

    /// Waits (at most `limit`) for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.process.0.try_wait().expect("waiting for redirector") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The admin listener's `/metrics`, fetched from inside `ns`.
pub fn fetch_metrics(ns: &Netns, admin: SocketAddr) -> String {
    ns.spawn(move || http_get(None, admin, "/metrics"))
        .join()
        .unwrap()
}

/// The value of the sample `name{labels}` (or of `name` with no labels)
/// in a Prometheus text exposition; 0 when it is absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
