//! A real Prometheus server (Debian's `prometheus`) inside a namespace,
//! scraping targets there every second, with its storage under the
//! test's directory; and its HTTP API, asked with curl from inside the
//! namespace.

use std::{
    fs,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use crate::{
    netns::Netns,
    process::Running,
    pulls::servers::{run_in, wait_listening},
};

/// Where it listens, inside its namespace.
pub const ADDR: &str = "127.0.0.1:9090";

pub struct Prometheus {
    _process: Running,
    pub url: String,
}

impl Prometheus {
    /// Starts scraping `targets` (`host:port`, their `/metrics`) in `ns`.
    pub fn start(ns: &Netns, dir: &Path, targets: &[&str]) -> Prometheus {
        let root = dir.join("prometheus");
        fs::create_dir_all(&root).expect("prometheus directory");
        let config = root.join("prometheus.yml");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: steer\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .expect("prometheus config");
        let log = fs::File::create(root.join("prometheus.log")).expect("prometheus log");
        let child = ns
            .command("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                root.join("data").display()
            ))
            .arg(format!("--web.listen-address={ADDR}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting prometheus (cargo xtask setup installs it)");
        let process = Running(child);
        wait_listening(ns, ADDR.parse::<SocketAddr>().unwrap(), "prometheus");
        Prometheus {
            _process: process,
            url: format!("http://{ADDR}"),
        }
    }

    /// The value of the instant query `query` now (its first series), or
    /// `None` while it has none.
    pub fn value(&self, ns: &Netns, query: &str) -> Option<f64> {
        let out = run_in(
            ns,
            "curl",
            &[
                "-sSf",
                "--max-time",
                "5",
                &format!("{}/api/v1/query", self.url),
                "--data-urlencode",
                &format!("query={query}"),
            ],
            Duration::from_secs(10),
        );
        let answer: serde_json::Value = serde_json::from_str(&out).expect("a Prometheus answer");
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// Waits (at most 30 s) until `query` gives `want`: Prometheus has
    /// scraped what the test knows is there.
    pub fn wait_for(&self, ns: &Netns, query: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = None;
        while Instant::now() < deadline {
            got = self.value(ns, query);
            if got == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("prometheus: `{query}` is {got:?}, not {want}, after 30 s");
    }
}
