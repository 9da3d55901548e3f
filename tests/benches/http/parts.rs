//! The parts of `bench http` (see `http.rs`): starting each set of
//! servers, loading them with wrk, and counting under strace and
//! callgrind.

use std::{path::Path, time::Duration};

use steer_tests::{
    http_bench::{
        Request, ask,
        counts::{Conn, Subject, Tool},
        load::{Load, cpu_times, memory_kib, wait_quiet, wrk, wrk_script},
        peers::{Shape, haproxy_config, nginx_config},
        report::{Round, Series},
        servers::{Launch, Server},
    },
    loopback::self_signed,
    netns::Netns,
};

use super::{Bench, Cores, Counted, DIRECT_ADDR, env_u32};

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
    pub(super) fn peers_under_load(&self, cores: Cores) -> Vec<Series> {
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
    pub(super) fn tls(&self, cores: Cores) -> Vec<Series> {
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
        let sessions: Vec<String> = servers.iter().map(|s| tls_session(&self.ns, s)).collect();
        assert!(
            sessions
                .iter()
                .all(|s| *s == sessions[0] && s.starts_with("TLSv1.3 ")),
            "the servers negotiate different TLS sessions: {sessions:?}"
        );
        println!("TLS: every server negotiates {}", sessions[0]);
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
    pub(super) fn direct(&self, cores: Cores) -> Vec<Series> {
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
    pub(super) fn counts(&self) -> Vec<Counted> {
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
                let cmd = Launch::new("wrk").command(&self.ns, cores.client_cpu(), &[]);
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

/// The protocol version and cipher suite `server` negotiates with an
/// OpenSSL client (wrk's library), e.g. "TLSv1.3 TLS_AES_128_GCM_SHA256".
fn tls_session(ns: &Netns, server: &Server) -> String {
    let out = ns
        .command("openssl")
        .args(["s_client", "-brief", "-connect"])
        .arg(server.socket.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        let line = text.lines().find_map(|l| l.strip_prefix(name));
        line.map(str::trim).unwrap_or("?").to_owned()
    };
    format!("{} {}", field("Protocol version:"), field("Ciphersuite:"))
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
