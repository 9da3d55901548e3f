//! `cargo xtask bench http`: `redirector serve` against nginx (`geo` +
//! `realip`) and HAProxy (`map_ip` + `set-src`), configured from the same
//! compiled ranges (the embedded snapshot), in a private network
//! namespace on loopback, driven by the same wrk script.
//!
//! 1. A correctness pass: every server answers every request of the set
//!    with the same status and Location, or the bench fails.
//! 2. Load, keep-alive (64 connections) and a new connection per request
//!    (16), several rounds, the servers taking turns, a quiet-machine
//!    check before each run.
//! 3. The direct-client path: the redirector reading each connection's
//!    class from XDP against the same redirector classifying in
//!    userspace, with no proxy header.
//!
//! Prints a Markdown table (ratios to nginx, or to the userspace
//! classifier for the direct path) and writes JSON to
//! `target/bench-http.json`. Needs root; `STEER_REDIRECTOR_BIN` names the
//! binary (`cargo xtask bench http` builds it), `STEER_BENCH_SECONDS`
//! (default 5) and `STEER_BENCH_ROUNDS` (default 3) size the run. For
//! profiling, `STEER_BENCH_ONLY=steer` loads only the servers whose name
//! starts with it and `STEER_BENCH_MODE=keep-alive` only that mode (the
//! correctness pass still covers every server).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use steer_tests::{
    feed_server::FeedServer,
    http_bench::{
        Request, ask,
        load::{cpu_micros, memory_kib, process_tree, wait_quiet, wrk, wrk_script},
        peers::{BACKEND_REGIONS, Backend, haproxy_config, nginx_config, redirector_config},
        report::{Round, Series, json, markdown},
        request_set,
    },
    netns::Netns,
    process::{Running, is_root},
    pulls::servers::wait_listening,
};
use steer_user::ranges::RangeSources;

const NGINX: u16 = 8081;
const HAPROXY: u16 = 8082;
const REDIRECTOR: u16 = 8083;
const DIRECT_XDP: u16 = 8084;
const DIRECT_USERSPACE: u16 = 8085;
/// The direct clients' address (in AWS eu-west-3), on the namespace's lo:
/// wrk connecting to it gets it as its source address too.
const DIRECT_ADDR: &str = "35.180.1.1";

struct Server {
    name: &'static str,
    port: u16,
    addr: &'static str,
    process: Running,
}

/// nginx's workers outlive a killed master: the whole tree goes, children
/// first, before `Running` reaps the server itself.
impl Drop for Server {
    fn drop(&mut self) {
        for pid in process_tree(self.pid()).into_iter().rev() {
            // SAFETY: kill on processes this server started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    fn socket(&self) -> SocketAddr {
        format!("{}:{}", self.addr, self.port).parse().unwrap()
    }
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    let seconds = env_u32("STEER_BENCH_SECONDS", 5);
    let rounds = env_u32("STEER_BENCH_ROUNDS", 3);

    let ranges = RangeSources::default()
        .load(None)
        .expect("the embedded snapshot")
        .ranges;
    let table = ranges.table.clone();
    let requests = request_set(&table, 2000, 42);
    let dir = tempfile::Builder::new()
        .prefix("steer-bench-http-")
        .tempdir()
        .expect("temporary directory");
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

    let d = dir.path();
    std::fs::write(
        d.join("nginx.conf"),
        nginx_config(d, NGINX, &table, &backends),
    )
    .unwrap();
    std::fs::write(
        d.join("haproxy.cfg"),
        haproxy_config(d, HAPROXY, &table, &backends),
    )
    .unwrap();
    std::fs::write(d.join("steer.toml"), redirector_config(&backends)).unwrap();
    let start =
        |name: &'static str, port: u16, addr: &'static str, mut cmd: std::process::Command| {
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {name}: {e}"));
            let s = Server {
                name,
                port,
                addr,
                process: Running(child),
            };
            wait_listening(&ns, s.socket(), name);
            s
        };
    let redirector_cmd = |listen: String, extra: &[&str]| {
        let mut c = ns.command(&redirector);
        c.args([
            "serve",
            "--listen",
            &listen,
            "--admin-listen",
            "127.0.0.1:0",
            "--no-pin",
        ])
        .args(["--snapshot", "/nonexistent/steer-bench"])
        .arg("--config")
        .arg(d.join("steer.toml"))
        .args(extra)
        .env("RUST_LOG", "warn");
        c
    };
    let mut nginx = ns.command("nginx");
    nginx
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let mut haproxy = ns.command("haproxy");
    haproxy.arg("-f").arg(d.join("haproxy.cfg")).arg("-db");
    let servers = vec![
        start("nginx", NGINX, "127.0.0.1", nginx),
        start("haproxy", HAPROXY, "127.0.0.1", haproxy),
        start(
            "steer",
            REDIRECTOR,
            "127.0.0.1",
            redirector_cmd(format!("127.0.0.1:{REDIRECTOR}"), &[]),
        ),
    ];

    println!(
        "bench http: {} requests ({} prefixes), {rounds} rounds of {seconds} s per server and mode",
        requests.len(),
        table.v4().len() + table.v6().len()
    );
    correctness(&ns, &servers, &requests);
    println!(
        "correctness: all servers gave the same answer to all {} requests",
        requests.len()
    );

    let mut series = Vec::new();
    for (mode, connections, close) in [("keep-alive", 64, false), ("new connection", 16, true)] {
        let script = d.join(format!("{}.lua", if close { "close" } else { "keepalive" }));
        wrk_script(&script, &requests, close);
        series.extend(load(
            &ns,
            &servers,
            mode,
            &script,
            connections,
            seconds,
            rounds,
        ));
    }
    drop(servers);

    // The direct path: no proxy header; each connection's class from XDP
    // against the same server classifying the peer in userspace.
    let direct = vec![
        start(
            "steer (XDP)",
            DIRECT_XDP,
            DIRECT_ADDR,
            redirector_cmd(
                format!("{DIRECT_ADDR}:{DIRECT_XDP}"),
                &["--xdp-iface", "lo", "--xdp-mode", "generic"],
            ),
        ),
        start(
            "steer (userspace)",
            DIRECT_USERSPACE,
            DIRECT_ADDR,
            redirector_cmd(format!("{DIRECT_ADDR}:{DIRECT_USERSPACE}"), &[]),
        ),
    ];
    let direct_requests: Vec<Request> = requests
        .iter()
        .map(|r| Request {
            client: None,
            path: r.path.clone(),
        })
        .collect();
    correctness(&ns, &direct, &direct_requests);
    for (mode, connections, close) in [
        ("direct, keep-alive", 64, false),
        ("direct, new connection", 16, true),
    ] {
        let script = d.join(format!(
            "direct-{}.lua",
            if close { "close" } else { "keepalive" }
        ));
        wrk_script(&script, &direct_requests, close);
        series.extend(load(
            &ns,
            &direct,
            mode,
            &script,
            connections,
            seconds,
            rounds,
        ));
    }
    drop(direct);
    ns.spawn(move || drop(bucket)).join().unwrap();

    let table = markdown(&series, baseline);
    println!("\n{table}");
    goals(&series);
    let out = workspace.join("target/bench-http.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json(&series, baseline)).unwrap(),
    )
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

/// Every server answers every request alike, or the bench stops here.
fn correctness(ns: &Netns, servers: &[Server], requests: &[Request]) {
    let targets: Vec<(&'static str, SocketAddr)> =
        servers.iter().map(|s| (s.name, s.socket())).collect();
    let requests = requests.to_vec();
    let mismatches = ns
        .spawn(move || {
            let mut bad = Vec::new();
            for r in &requests {
                let answers: Vec<_> = targets.iter().map(|(n, a)| (*n, ask(*a, r))).collect();
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

/// `rounds` rounds of wrk against each server in turn (a different one
/// first each round); then each server's memory.
fn load(
    ns: &Netns,
    servers: &[Server],
    mode: &str,
    script: &Path,
    connections: u32,
    seconds: u32,
    rounds: u32,
) -> Vec<Series> {
    let mut series: Vec<Series> = servers
        .iter()
        .map(|s| Series {
            mode: mode.to_owned(),
            server: s.name.to_owned(),
            rounds: Vec::new(),
            rss_kib: 0,
            pss_kib: 0,
        })
        .collect();
    let only = std::env::var("STEER_BENCH_ONLY").unwrap_or_default();
    let wanted = std::env::var("STEER_BENCH_MODE").map_or(true, |m| m == mode);
    for round in 0..rounds as usize {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let s = &servers[i];
            if !wanted || !s.name.starts_with(&only) {
                continue;
            }
            let quiet = wait_quiet(0.25, Duration::from_secs(15));
            if std::env::var_os("STEER_BENCH_VERBOSE").is_some() {
                eprintln!("  {mode}: loading {} (pid {})", s.name, s.pid());
            }
            let before = cpu_micros(s.pid());
            let run = wrk(
                ns.command("wrk"),
                script,
                &format!("http://{}/", s.socket()),
                connections,
                seconds,
            );
            let cpu_us = cpu_micros(s.pid()) - before;
            eprintln!(
                "  {mode:<24} round {} {:<18} {:>8.0} req/s, {:.1} µs CPU/req{}",
                round + 1,
                s.name,
                run.rate(),
                cpu_us / run.requests.max(1) as f64,
                if quiet { "" } else { " (busy machine)" }
            );
            series[i].rounds.push(Round {
                wrk: run,
                cpu_us,
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

/// The goals, each said met or MISSED.
fn goals(series: &[Series]) {
    let get = |mode: &str, server: &str| {
        series
            .iter()
            .find(|s| s.mode == mode && s.server == server)
            .map(|s| s.figures())
    };
    let (Some(ng_ka), Some(st_ka), Some(hp_ka), Some(ng_nc), Some(st_nc), Some(hp_nc)) = (
        get("keep-alive", "nginx"),
        get("keep-alive", "steer"),
        get("keep-alive", "haproxy"),
        get("new connection", "nginx"),
        get("new connection", "steer"),
        get("new connection", "haproxy"),
    ) else {
        return;
    };
    let say =
        |ok: bool, what: String| println!("goal {}: {what}", if ok { "met" } else { "MISSED" });
    let cpu = st_ka.cpu_per_request / ng_ka.cpu_per_request;
    say(
        cpu <= 0.6,
        format!("keep-alive CPU per request {cpu:.2}x nginx (at most 0.6x)"),
    );
    let rate = st_ka.rate / ng_ka.rate;
    say(
        rate >= 1.3,
        format!("keep-alive req/s {rate:.2}x nginx (at least 1.3x)"),
    );
    let rate = st_nc.rate / ng_nc.rate;
    say(
        rate >= 1.2,
        format!("new-connection req/s {rate:.2}x nginx (at least 1.2x)"),
    );
    say(
        st_ka.p99 <= hp_ka.p99 && st_nc.p99 <= hp_nc.p99,
        format!(
            "p99 no worse than HAProxy's: keep-alive {:.0} vs {:.0} µs, new connection {:.0} vs {:.0} µs",
            st_ka.p99, hp_ka.p99, st_nc.p99, hp_nc.p99
        ),
    );
    let rss = st_ka.rss_mib.max(st_nc.rss_mib);
    say(
        rss < 20.0,
        format!("RSS with the full ranges {rss:.1} MiB (under 20 MiB)"),
    );
}
