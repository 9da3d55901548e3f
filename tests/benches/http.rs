//! `cargo xtask bench http`: `redirector serve` against nginx (`geo` +
//! `realip`) and HAProxy (`map_ip` + `set-src`), configured from the same
//! compiled ranges (the embedded snapshot), in a private network
//! namespace on loopback, driven by the same wrk script.
//!
//! 1. A correctness pass: every server answers every request of the set
//!    with the same status and Location, or the bench fails.
//! 2. Load, keep-alive (64 connections) and a new connection per request
//!    (16), several rounds, the servers taking turns, a quiet-machine
//!    check before each run; user and system CPU per request apart.
//!    - pinned (the default with two CPUs or more): each server one worker
//!      on CPU 0, wrk one thread on CPU 1;
//!    - shared cores: two workers each, wrk two threads, all unpinned.
//! 3. TLS, pinned: a new TLS connection per request, the redirector's
//!    rustls against nginx's OpenSSL with the same certificate.
//! 4. The direct-client path: the redirector reading each connection's
//!    class from XDP against the same redirector classifying in
//!    userspace, with no proxy header.
//! 5. Counts that hold still on a busy machine: system calls per request
//!    (strace) and userspace instructions per request (callgrind), from
//!    two fixed-count runs of a fresh server each.
//!
//! Prints Markdown tables (ratios to nginx, or to the userspace
//! classifier for the direct path) and each goal met or missed, and
//! writes JSON to `target/bench-http.json`. Needs root.
//! `STEER_REDIRECTOR_BIN` names the binary (`cargo xtask bench http`
//! builds it); `STEER_BENCH_SECONDS` (default 5), `STEER_BENCH_ROUNDS`
//! (5) and `STEER_BENCH_COUNT` (1000: the smaller request count of the
//! counting runs) size the run; `STEER_BENCH_CORES` (`pinned,shared`)
//! and `STEER_BENCH_PARTS` (`load,tls,direct,counts`) choose what runs.
//! For profiling, `STEER_BENCH_ONLY=steer` loads only the servers whose
//! name starts with it and `STEER_BENCH_MODE=keep-alive` only that mode.

use std::path::{Path, PathBuf};

use steer_tests::{
    feed_server::FeedServer,
    http_bench::{
        Request,
        counts::Count,
        peers::{BACKEND_REGIONS, Backend, redirector_config},
        report::{json, markdown},
        request_set,
        servers::{CLIENT_CPU, SERVER_CPU},
    },
    netns::Netns,
    process::is_root,
};
use steer_user::ranges::RangeSources;

#[path = "http/goals.rs"]
mod goals;
#[path = "http/parts.rs"]
mod parts;

/// The direct clients' address (in AWS eu-west-3), on the namespace's lo:
/// wrk connecting to it gets it as its source address too.
const DIRECT_ADDR: &str = "35.180.1.1";

/// Where servers and the load generator run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cores {
    /// Each server one worker on CPU 0, wrk one thread on CPU 1.
    Pinned,
    /// Two workers each, wrk two threads, the scheduler decides.
    Shared,
}

impl Cores {
    fn section(self) -> &'static str {
        match self {
            Cores::Pinned => "pinned",
            Cores::Shared => "shared cores",
        }
    }

    fn workers(self) -> u32 {
        match self {
            Cores::Pinned => 1,
            Cores::Shared => 2,
        }
    }

    fn server_cpu(self) -> Option<usize> {
        (self == Cores::Pinned).then_some(SERVER_CPU)
    }

    fn client_cpu(self) -> Option<usize> {
        (self == Cores::Pinned).then_some(CLIENT_CPU)
    }
}

/// Everything the parts of the run share.
struct Bench {
    ns: Netns,
    dir: PathBuf,
    redirector: PathBuf,
    table: std::sync::Arc<steer_user::RangeTable>,
    backends: Vec<Backend>,
    requests: Vec<Request>,
    seconds: u32,
    rounds: u32,
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wanted(var: &str, default: &str, what: &str) -> bool {
    let list = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    list.split(',').any(|p| p.trim() == what)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        is_root(),
        "bench http runs servers in a network namespace: run it as root"
    );
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let redirector: PathBuf = std::env::var_os("STEER_REDIRECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release/redirector"));
    assert!(
        redirector.exists(),
        "{} is missing: `cargo xtask bench http` builds it",
        redirector.display()
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default_cores = if cpus >= 2 { "pinned,shared" } else { "shared" };
    let ranges = RangeSources::default()
        .load(None)
        .expect("the embedded snapshot")
        .ranges;
    let table = ranges.table.clone();
    let requests = request_set(&table, 2000, 42);
    let tmp = tempfile::Builder::new()
        .prefix("steer-bench-http-")
        .tempdir()
        .expect("temporary directory");
    // STEER_BENCH_KEEP keeps the configs, logs and the tools' outputs.
    let (dir, _tmp) = match std::env::var_os("STEER_BENCH_KEEP") {
        Some(_) => (tmp.keep(), None),
        None => (tmp.path().to_owned(), Some(tmp)),
    };
    let ns = Netns::new("bench-http");
    ns.ip(&["addr", "add", &format!("{DIRECT_ADDR}/32"), "dev", "lo"]);

    // The backends' "bucket": every blob of the set is there, so the
    // redirector's checks (cached after the correctness pass) say found,
    // as nginx and HAProxy assume.
    let digests: Vec<String> = requests
        .iter()
        .filter_map(|r| r.path.split_once("/blobs/").map(|(_, d)| d.to_owned()))
        .collect();
    let bucket = ns
        .spawn(move || {
            let b = FeedServer::start();
            for (name, _) in BACKEND_REGIONS {
                for d in &digests {
                    b.set(&format!("{name}/containers/images/{d}"), "", "");
                }
            }
            b
        })
        .join()
        .unwrap();
    let backends: Vec<Backend> = BACKEND_REGIONS
        .iter()
        .map(|(name, serves)| Backend {
            name,
            serves,
            base_url: bucket.url(name),
        })
        .collect();
    let bench = Bench {
        ns,
        dir,
        redirector,
        table,
        backends,
        requests,
        seconds: env_u32("STEER_BENCH_SECONDS", 5),
        rounds: env_u32("STEER_BENCH_ROUNDS", 5),
    };
    std::fs::write(
        bench.dir.join("steer.toml"),
        redirector_config(&bench.backends),
    )
    .unwrap();
    println!(
        "bench http: {} requests ({} prefixes), {} rounds of {} s per server and mode, {cpus} CPUs",
        bench.requests.len(),
        bench.table.v4().len() + bench.table.v6().len(),
        bench.rounds,
        bench.seconds,
    );

    let parts = "load,tls,direct,counts";
    let mut series = Vec::new();
    let mut sections = Vec::new();
    for cores in [Cores::Pinned, Cores::Shared] {
        if wanted("STEER_BENCH_CORES", default_cores, &cores.section()[..6])
            && wanted("STEER_BENCH_PARTS", parts, "load")
        {
            series.extend(bench.peers_under_load(cores));
            sections.push(cores.section());
        }
    }
    let primary = if cpus >= 2 {
        Cores::Pinned
    } else {
        Cores::Shared
    };
    if wanted("STEER_BENCH_PARTS", parts, "tls") {
        series.extend(bench.tls(primary));
        sections.push("TLS");
    }
    if wanted("STEER_BENCH_PARTS", parts, "direct") {
        series.extend(bench.direct(primary));
        sections.push("direct");
    }
    let counts = wanted("STEER_BENCH_PARTS", parts, "counts").then(|| bench.counts());
    bench.ns.spawn(move || drop(bucket)).join().unwrap();

    for section in &sections {
        println!(
            "\n### {section}\n\n{}",
            markdown(&series, section, baseline)
        );
    }
    if let Some(counts) = &counts {
        println!("\n### counts\n\n{}", goals::counts_table(counts));
    }
    println!();
    goals::check(&series, counts.as_deref());
    let out = workspace.join("target/bench-http.json");
    let mut report = json(&series, baseline);
    if let Some(counts) = &counts {
        report["counts"] = goals::counts_json(counts);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap())
        .expect("writing the JSON report");
    println!("JSON: {}", out.display());
}

/// What a mode's ratios are to: nginx, or for the direct path the same
/// redirector classifying in userspace.
fn baseline(mode: &str) -> &'static str {
    if mode.starts_with("direct") {
        "steer (userspace)"
    } else {
        "nginx"
    }
}

/// One server's counts: by tool and connection kind.
pub struct Counted {
    pub server: &'static str,
    pub syscalls_keep_alive: Count,
    pub syscalls_new: Count,
    pub ir_keep_alive: f64,
    pub ir_new: f64,
}
