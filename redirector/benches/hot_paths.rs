//! Criterion benches of the per-request hot paths, so a regression shows
//! in review: `cargo bench -p redirector --bench hot_paths` (or `cargo
//! xtask bench hot`). No root, no network.
//!
//! - route parsing: a blob, a manifest and an invalid path;
//! - classification read: decoding XDP's flow slot for a connection (what
//!   every direct connection pays once) and the userspace classifier over
//!   the embedded table (what every request behind a proxy pays);
//! - redirect building: the upstream and the backend Locations;
//! - the per-connection path: `redirector serve` in this process on
//!   loopback, answering one request on a new connection (accept, the
//!   connection's set-up, the request, close) and one on a kept-alive
//!   connection; client and kernel included, so read them as a pair.

use std::{
    hint::black_box,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    time::Duration,
};

use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};
use redirector::{
    cli::{Cli, Command},
    routes::{blob_location, route, upstream_location},
    serve::Server,
};
use steer_user::{Classifier, flow_key, ranges::RangeSources};

const DIGEST: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";

fn routes(c: &mut Criterion) {
    let blob = format!("/v2/coredns/coredns/blobs/{DIGEST}");
    let mut g = c.benchmark_group("route");
    g.bench_function("blob", |b| {
        b.iter(|| route(black_box("GET"), black_box(&blob)).name())
    });
    g.bench_function("manifest", |b| {
        b.iter(|| route(black_box("GET"), black_box("/v2/pause/manifests/3.10")).name())
    });
    g.bench_function("invalid digest", |b| {
        b.iter(|| route(black_box("GET"), black_box("/v2/pause/blobs/sha256:XYZ")).name())
    });
    g.finish();
}

fn classification(c: &mut Criterion) {
    let ranges = RangeSources::default()
        .load(None)
        .expect("the embedded snapshot")
        .ranges;
    // A spread of addresses: the first address of every 64th prefix, and
    // as many in no feed.
    let mut addrs: Vec<IpAddr> = ranges
        .table
        .v4()
        .iter()
        .step_by(64)
        .map(|(n, _)| IpAddr::V4(n.network()))
        .collect();
    let listed = addrs.len();
    addrs.extend((0..listed as u32).map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i))));
    let classifier: &Classifier = &ranges.classifier;
    let mut g = c.benchmark_group("classify");
    let mut i = 0;
    g.bench_function("userspace (per proxied request)", |b| {
        b.iter(|| {
            i = (i + 1) % addrs.len();
            classifier.classify(black_box(addrs[i]))
        })
    });
    // The XDP handoff as userspace reads it: hash the flow to its slot,
    // check the tag, decode the class (the atomic load itself excluded).
    let peer = SocketAddr::new(addrs[0], 40_000);
    let slot = flow_key(peer, 443).slot();
    let value = slot.value(28, 1);
    g.bench_function("flow slot (per direct connection)", |b| {
        b.iter(|| {
            let s = flow_key(black_box(peer), black_box(443)).slot();
            s.read(black_box(value))
        })
    });
    g.finish();
}

fn locations(c: &mut Criterion) {
    let mut g = c.benchmark_group("location");
    g.bench_function("upstream", |b| {
        b.iter(|| {
            upstream_location(
                black_box("https://us-central1-docker.pkg.dev"),
                black_box("k8s-artifacts-prod/images"),
                black_box("/pause/manifests/3.10"),
                black_box(Some("n=100")),
            )
        })
    });
    g.bench_function("backend blob", |b| {
        b.iter(|| {
            blob_location(
                black_box(
                    "https://prod-registry-k8s-io-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com",
                ),
                black_box(DIGEST),
            )
        })
    });
    g.finish();
}

/// `redirector serve` on loopback ports the kernel picks, in a thread of
/// its own with one tokio worker; its public address. It runs until the
/// bench process exits.
fn serve_in_process() -> SocketAddr {
    let argv = [
        "redirector",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--snapshot",
        "/nonexistent/x",
        "--workers",
        "1",
    ];
    let Ok(Cli {
        command: Command::Serve(args),
        ..
    }) = Cli::try_parse_from(argv)
    else {
        panic!("serve flags");
    };
    // No environment: the defaults, and an upstream only named in Location.
    let config = args.config_with_env(|_| None).expect("config");
    let (bound_tx, bound) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The serving thread is started from this one and inherits its
        // CPU.
        pin_to_cpu0();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(pin_to_cpu0)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let server = Server::bind(config).await.expect("bind");
            bound_tx.send(server.local_addr()).unwrap();
            server.run(std::future::pending::<()>()).await.expect("run");
        });
    });
    bound
        .recv_timeout(Duration::from_secs(20))
        .expect("the server bound its listener")
}

/// Pins the calling thread to CPU 0. The server and the client share the
/// CPU, so an exchange is CPU work and a local context switch, not a
/// wake-up of another (virtual) CPU, which on a VM costs more than the
/// request itself and moves from run to run.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Sends `request` and reads one answer head (redirects have no body).
fn exchange(s: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> usize {
    s.write_all(request).expect("send");
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        let got = s.read(&mut buf[n..]).expect("answer");
        assert!(got > 0, "closed before the answer");
        n += got;
    }
    n
}

fn connections(c: &mut Criterion) {
    let addr = serve_in_process();
    pin_to_cpu0();
    let keep = b"GET /v2/pause/manifests/3.10 HTTP/1.1\r\nHost: registry.test\r\n\r\n";
    let close =
        b"GET /v2/pause/manifests/3.10 HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    let mut g = c.benchmark_group("connection");
    g.bench_function("new connection, one request, close (loopback)", |b| {
        b.iter(|| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).ok();
            let n = exchange(&mut s, close, &mut buf);
            assert!(buf.starts_with(b"HTTP/1.1 307"), "{:?}", &buf[..n]);
        })
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    g.bench_function("kept-alive connection, one request (loopback)", |b| {
        b.iter(|| black_box(exchange(&mut s, keep, &mut buf)))
    });
    g.finish();
}

criterion_group!(hot_paths, routes, classification, locations, connections);
criterion_main!(hot_paths);
