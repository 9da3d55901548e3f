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
//! (3) and `STEER_BENCH_COUNT` (1000: the smaller request count of the
//! counting runs) size the run; `STEER_BENCH_CORES` (`pinned,shared`)
//! and `STEER_BENCH_PARTS` (`load,tls,direct,counts`) choose what runs.
//! For profiling, `STEER_BENCH_ONLY=steer` loads only the servers whose
//! name starts with it and `STEER_BENCH_MODE=keep-alive` only that mode.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use steer_tests::{
    feed_server::FeedServer,
    http_bench::{
        Request, ask,
        counts::{Conn, Count, Subject, Tool},
        load::{Load, cpu_times, memory_kib, wait_quiet, wrk, wrk_script},
        peers::{BACKEND_REGIONS, Backend, Shape, haproxy_config, nginx_config, redirector_config},
        report::{Round, Series, json, markdown},
        request_set,
        servers::{CLIENT_CPU, Launch, SERVER_CPU, Server},
    },
    loopback::self_signed,
    netns::Netns,
    process::is_root,
};
use steer_user::ranges::RangeSources;

#[path = "http/goals.rs"]
mod goals;

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
        rounds: env_u32("STEER_BENCH_ROUNDS", 3),
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

impl Bench {
    fn nginx(&self, port: u16, shape: &Shape) -> Launch {
        let conf = self.dir.join(format!("nginx-{port}.conf"));
        let text = nginx_config(&self.dir, port, &self.table, &self.backends, shape);
        std::fs::write(&conf, text).unwrap();
        Launch::new("nginx")
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off;"])
    }

    fn haproxy(&self, port: u16, shape: &Shape) -> Launch {
        let cfg = self.dir.join(format!("haproxy-{port}.cfg"));
        let text = haproxy_config(&self.dir, port, &self.table, &self.backends, shape);
        std::fs::write(&cfg, text).unwrap();
        Launch::new("haproxy").arg("-f").arg(cfg).arg("-db")
    }

    fn steer(&self, listen: &str, shape: &Shape, extra: &[&str]) -> Launch {
        let mut l = Launch::new(&self.redirector)
            .args(["serve", "--listen", listen, "--admin-listen", "127.0.0.1:0"])
            .args(["--no-pin", "--snapshot", "/nonexistent/steer-bench"])
            .arg("--config")
            .arg(self.dir.join("steer.toml"))
            .args(["--workers", &shape.workers.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn");
        if let Some((cert, key)) = &shape.tls {
            l = l.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        l
    }

    fn start(&self, name: &str, addr: &str, port: u16, launch: &Launch, cores: Cores) -> Server {
        let socket = format!("{addr}:{port}").parse().unwrap();
        let cmd = launch.command(&self.ns, cores.server_cpu(), &[]);
        let log = self.dir.join(format!("{port}.log"));
        Server::start(&self.ns, name, socket, cmd, &log)
    }

    /// nginx, HAProxy and the redirector behind a trusted proxy, both
    /// connection modes.
    fn peers_under_load(&self, cores: Cores) -> Vec<Series> {
        let shape = Shape {
            workers: cores.workers(),
            tls: None,
        };
        let base = if cores == Cores::Pinned { 8081 } else { 8091 };
        let servers = vec![
            self.start("nginx", "127.0.0.1", base, &self.nginx(base, &shape), cores),
            self.start(
                "haproxy",
                "127.0.0.1",
                base + 1,
                &self.haproxy(base + 1, &shape),
                cores,
            ),
            self.start(
                "steer",
                "127.0.0.1",
                base + 2,
                &self.steer(&format!("127.0.0.1:{}", base + 2), &shape, &[]),
                cores,
            ),
        ];
        correctness(&self.ns, &servers, &self.requests);
        println!(
            "{}: all servers gave the same answer to all {} requests",
            cores.section(),
            self.requests.len()
        );
        let mut series = Vec::new();
        for (mode, connections, close) in [("keep-alive", 64, false), ("new connection", 16, true)]
        {
            let script = self
                .dir
                .join(format!("{}.lua", if close { "close" } else { "ka" }));
            wrk_script(&script, &self.requests, close);
            series.extend(self.load(&servers, cores, mode, &script, connections, "http"));
        }
        series
    }

    /// nginx's ssl against the redirector's rustls, a new TLS connection
    /// per request, the same certificate (ECDSA P-256).
    fn tls(&self, cores: Cores) -> Vec<Series> {
        let (cert, key) = self_signed(&self.dir);
        let shape = Shape {
            workers: cores.workers(),
            tls: Some((cert, key)),
        };
        let servers = vec![
            self.start("nginx", "127.0.0.1", 8101, &self.nginx(8101, &shape), cores),
            self.start(
                "steer",
                "127.0.0.1",
                8102,
                &self.steer("127.0.0.1:8102", &shape, &[]),
                cores,
            ),
        ];
        let script = self.dir.join("tls-close.lua");
        wrk_script(&script, &self.requests, true);
        self.load(&servers, cores, "new TLS connection", &script, 16, "https")
            .into_iter()
            .map(|s| Series {
                section: "TLS".into(),
                ..s
            })
            .collect()
    }

    /// The direct path: no proxy header; each connection's class from XDP
    /// against the same server classifying the peer in userspace.
    fn direct(&self, cores: Cores) -> Vec<Series> {
        let shape = Shape {
            workers: cores.workers(),
            tls: None,
        };
        let xdp = self.steer(
            &format!("{DIRECT_ADDR}:8111"),
            &shape,
            &["--xdp-iface", "lo", "--xdp-mode", "generic"],
        );
        let userspace = self.steer(&format!("{DIRECT_ADDR}:8112"), &shape, &[]);
        let servers = vec![
            self.start("steer (XDP)", DIRECT_ADDR, 8111, &xdp, cores),
            self.start("steer (userspace)", DIRECT_ADDR, 8112, &userspace, cores),
        ];
        let requests: Vec<Request> = self
            .requests
            .iter()
            .map(|r| Request {
                client: None,
                path: r.path.clone(),
            })
            .collect();
        correctness(&self.ns, &servers, &requests);
        let mut series = Vec::new();
        for (mode, connections, close) in [
            ("direct, keep-alive", 64, false),
            ("direct, new connection", 16, true),
        ] {
            let script = self.dir.join(format!("direct-{close}.lua"));
            wrk_script(&script, &requests, close);
            series.extend(self.load(&servers, cores, mode, &script, connections, "http"));
        }
        series
            .into_iter()
            .map(|s| Series {
                section: "direct".into(),
                ..s
            })
            .collect()
    }

    /// System calls and instructions per request, for each server with
    /// one worker, pinned, under strace and callgrind.
    fn counts(&self) -> Vec<Counted> {
        let n = env_u32("STEER_BENCH_COUNT", 1000) as usize;
        let shape = Shape {
            workers: 1,
            tls: None,
        };
        let launches = [
            ("nginx", self.nginx(8121, &shape), 8121),
            ("haproxy", self.haproxy(8122, &shape), 8122),
            ("steer", self.steer("127.0.0.1:8123", &shape, &[]), 8123),
        ];
        let dir = self.dir.join("counts");
        std::fs::create_dir_all(&dir).unwrap();
        let only = std::env::var("STEER_BENCH_ONLY").unwrap_or_default();
        let mut all = Vec::new();
        for (server, launch, port) in launches.iter().filter(|l| l.0.starts_with(&only)) {
            let subject = Subject {
                ns: &self.ns,
                launch,
                socket: format!("127.0.0.1:{port}").parse().unwrap(),
                requests: &self.requests,
                dir: &dir,
            };
            eprintln!(
                "  counts: {server} under strace and callgrind, {n} and {} requests",
                2 * n
            );
            all.push(Counted {
                server,
                syscalls_keep_alive: subject.marginal(Tool::Strace, n, Conn::KeepAlive),
                syscalls_new: subject.marginal(Tool::Strace, n, Conn::New),
                ir_keep_alive: subject.marginal(Tool::Callgrind, n, Conn::KeepAlive).total,
                ir_new: subject.marginal(Tool::Callgrind, n, Conn::New).total,
            });
        }
        all
    }

    /// `rounds` rounds of wrk against each server in turn (a different one
    /// first each round); then each server's memory.
    fn load(
        &self,
        servers: &[Server],
        cores: Cores,
        mode: &str,
        script: &Path,
        connections: u32,
        scheme: &str,
    ) -> Vec<Series> {
        let mut series: Vec<Series> = servers
            .iter()
            .map(|s| Series {
                section: cores.section().to_owned(),
                mode: mode.to_owned(),
                server: s.name.clone(),
                rounds: Vec::new(),
                rss_kib: 0,
                pss_kib: 0,
            })
            .collect();
        let only = std::env::var("STEER_BENCH_ONLY").unwrap_or_default();
        let wanted = std::env::var("STEER_BENCH_MODE").map_or(true, |m| m == mode);
        let load = Load {
            threads: cores.workers(),
            connections,
            seconds: self.seconds,
        };
        for round in 0..self.rounds as usize {
            for k in 0..servers.len() {
                let i = (round + k) % servers.len();
                let s = &servers[i];
                if !wanted || !s.name.starts_with(&only) {
                    continue;
                }
                let quiet = wait_quiet(0.25, Duration::from_secs(15));
                let mut cmd = match cores {
                    Cores::Pinned => self.ns.command("taskset"),
                    Cores::Shared => self.ns.command("wrk"),
                };
                if cores == Cores::Pinned {
                    cmd.args(["-c", &CLIENT_CPU.to_string(), "wrk"]);
                }
                let before = cpu_times(s.pid());
                let run = wrk(cmd, script, &format!("{scheme}://{}/", s.socket), load);
                let cpu = cpu_times(s.pid()) - before;
                let per = |us: f64| us / run.requests.max(1) as f64;
                eprintln!(
                    "  {:<13} {mode:<20} round {} {:<18} {:>8.0} req/s, {:.1} + {:.1} µs CPU/req, {:.3} faults/req{}",
                    cores.section(),
                    round + 1,
                    s.name,
                    run.rate(),
                    per(cpu.user_us),
                    per(cpu.system_us),
                    per(cpu.minor_faults),
                    if quiet { "" } else { " (busy machine)" }
                );
                series[i].rounds.push(Round {
                    wrk: run,
                    cpu,
                    quiet,
                });
            }
        }
        for (s, server) in series.iter_mut().zip(servers) {
            (s.rss_kib, s.pss_kib) = memory_kib(server.pid());
        }
        series.retain(|s| !s.rounds.is_empty());
        series
    }
}

/// Every server answers every request alike, or the bench stops here.
fn correctness(ns: &Netns, servers: &[Server], requests: &[Request]) {
    let targets: Vec<(String, std::net::SocketAddr)> =
        servers.iter().map(|s| (s.name.clone(), s.socket)).collect();
    let requests = requests.to_vec();
    let mismatches = ns
        .spawn(move || {
            let mut bad = Vec::new();
            for r in &requests {
                let answers: Vec<_> = targets.iter().map(|(n, a)| (n, ask(*a, r))).collect();
                let first = &answers[0].1;
                if first.is_err() || answers.iter().any(|(_, a)| a != first) {
                    bad.push(format!("{r:?}: {answers:?}"));
                }
            }
            bad
        })
        .join()
        .unwrap();
    assert!(
        mismatches.is_empty(),
        "{} requests got different answers, e.g.:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(5)].join("\n")
    );
}
