//! Hostile clients against `redirector serve` on loopback: every phase
//! of a connection has a deadline, accept loops never spin, outbound
//! checks are bounded, and a few requests that must be refused are.
//! Counts and bounded waits only: each wait is far longer than the
//! deadline it checks, and no assertion is about speed. The server runs in
//! this process, except where its own process is measured (CPU ticks,
//! descriptors) or its flags are.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use steer_tests::{
    feed_server::FeedServer,
    loopback::{self, Options, Redirector, SERVE_ON_ANY_PORT, get, metric, request, self_signed},
    process::run_bounded,
    tcp::connect_from,
};

mod common;

use common::InProcess;

const BIN: &str = env!("CARGO_BIN_EXE_redirector");

/// The server in this process.
fn start(bucket: &str, args: &[&str]) -> InProcess {
    InProcess::start(bucket, args)
}

/// The binary, for what is measured on its process (CPU, descriptors).
fn start_binary(bucket: &str, args: &[&str]) -> Redirector {
    let options = Options {
        args,
        ..Options::default()
    };
    loopback::start(Path::new(BIN), bucket, &options)
}

/// Whether the server closes `s` within `limit` (EOF or reset, as
/// opposed to the read timing out).
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn rejected(admin: SocketAddr, listener: &str, reason: &str) -> f64 {
    let series =
        format!("steer_connections_rejected_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
    metric(admin, &series).unwrap_or(0.0)
}

#[test]
fn silent_connections_up_to_the_cap_do_not_lock_others_out() {
    let bucket = FeedServer::start();
    let r = start(
        &bucket.url("bucket"),
        &["--max-connections", "8", "--handshake-timeout", "1s"],
    );
    // Every slot taken by a client that sends nothing.
    let mut silent: Vec<TcpStream> = (0..8)
        .map(|_| connect_from(Some("127.0.0.1"), r.addr, Duration::from_secs(10)))
        .collect();
    // Another client is served once the deadline frees the slots.
    let (status, _, _) = get(r.addr, "127.0.0.1", "GET", "/v2/");
    assert_eq!(status, 200, "a ninth client was never served");
    for s in &mut silent {
        assert!(closed_by_server(s, Duration::from_secs(10)));
    }
    assert!(rejected(r.admin, "public", "handshake_timeout") >= 8.0);
}

#[test]
fn stalls_inside_the_h2_preface_or_after_tls_are_cut_off() {
    let bucket = FeedServer::start();
    let r = start(&bucket.url("bucket"), &["--handshake-timeout", "1s"]);
    let mut s = connect_from(Some("127.0.0.1"), r.addr, Duration::from_secs(10));
    s.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    assert!(closed_by_server(&mut s, Duration::from_secs(10)));
    assert_eq!(rejected(r.admin, "public", "handshake_timeout"), 1.0);

    // TLS: the handshake completes, then the client says nothing.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let r = start(
        &bucket.url("bucket"),
        &[
            "--handshake-timeout",
            "1s",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    // -quiet implies -ign_eof: s_client stays until the server closes.
    let mut client = Command::new("openssl");
    client
        .args(["s_client", "-quiet", "-servername", "registry.test"])
        .args(["-connect", &r.addr.to_string()]);
    let out = run_bounded(&mut client, Duration::from_secs(15));
    assert!(out.is_ok(), "the server never closed a silent TLS client");
    assert_eq!(rejected(r.admin, "public", "handshake_timeout"), 1.0);
}

/// An HTTP/2 client (hyper's, which answers PINGs) that opens `streams`
/// requests, then stays connected without any; how long until the
/// server ends the connection.
fn h2_client_lifetime(addr: SocketAddr, streams: usize) -> Option<Duration> {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // The client pings too: pings are not requests.
            .keep_alive_interval(Duration::from_millis(200))
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
        let started = Instant::now();
        let conn = tokio::spawn(conn);
        for _ in 0..streams {
            let req = http::Request::get(format!("http://{addr}/v2/"))
                .body(Empty::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
        }
        tokio::time::timeout(Duration::from_secs(20), conn)
            .await
            .ok()
            .map(|_| started.elapsed())
    })
}

#[test]
fn http2_connections_without_streams_are_closed() {
    let bucket = FeedServer::start();
    let r = start(
        &bucket.url("bucket"),
        &["--header-timeout", "1s", "--idle-timeout", "2s"],
    );
    // Before any request the idle limit is the header timeout; after
    // one, the idle timeout.
    assert!(
        h2_client_lifetime(r.addr, 0).is_some(),
        "an HTTP/2 connection with no stream lived on"
    );
    let after_requests = h2_client_lifetime(r.addr, 3);
    assert!(
        after_requests.is_some_and(|t| t >= Duration::from_secs(2)),
        "{after_requests:?}"
    );
    assert_eq!(rejected(r.admin, "public", "idle_timeout"), 2.0);

    // HTTP/1: idle between kept-alive requests is the header timeout.
    let mut s = connect_from(Some("127.0.0.1"), r.addr, Duration::from_secs(10));
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: registry.test\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(&mut s, Duration::from_secs(10)));
}

#[test]
fn stalled_proxy_headers_cost_no_cpu() {
    let bucket = FeedServer::start();
    let r = start_binary(
        &bucket.url("bucket"),
        &["--proxy-protocol", "--handshake-timeout", "60s"],
    );
    let stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect_from(Some("127.0.0.1"), r.addr, Duration::from_secs(10));
            s.write_all(b"PROXY TCP4 35.180.1.1 ").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = r.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = r.cpu_ticks() - before;
    // Polling each header every millisecond cost about a quarter of a
    // core for 500 of them; waiting on readiness costs nothing. A tick is
    // 10 ms: 20 ticks over 2 s is 5% of one core.
    assert!(used < 20, "{used} ticks of CPU while 200 headers stalled");
    drop(stalled);
}

#[test]
fn silent_admin_connections_are_capped_and_closed() {
    let bucket = FeedServer::start();
    let r = start(&bucket.url("bucket"), &[]);
    // More than the admin cap (64), all silent.
    let mut silent: Vec<TcpStream> = (0..70)
        .map(|_| connect_from(Some("127.0.0.1"), r.admin, Duration::from_secs(10)))
        .collect();
    // A scrape still gets through once the header deadline (5 s) frees
    // the slots.
    assert!(metric(r.admin, "steer_connection_limit{listener=\"admin\"}") == Some(64.0));
    assert!(closed_by_server(&mut silent[0], Duration::from_secs(15)));
    let full = metric(
        r.admin,
        "steer_connection_slots_full_total{listener=\"admin\"}",
    );
    assert!(full.is_some_and(|n| n >= 1.0), "{full:?}");
}

/// A backend that accepts connections and never answers; counts them.
struct Hanging {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                // Held open, never answered, until the test process ends.
                held.push(conn);
            }
        });
        Hanging { addr, accepted }
    }
}

/// `n` blob requests at once over one HTTP/2 connection from 127.0.0.2
/// (an AWS class whose blobs are checked); each answer's status and
/// Location. (curl 7.88's `--parallel` loses streams on a multiplexed
/// connection, so hyper's client drives this.)
fn h2_blob_pulls(addr: SocketAddr, first: usize, n: usize) -> Vec<(u16, String)> {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let requests = (first..first + n).map(|i| {
            let mut send = send.clone();
            async move {
                let uri = format!("http://{addr}/v2/pause/blobs/sha256:{i:064x}");
                let req = http::Request::get(uri).body(Empty::new()).unwrap();
                let resp = send.send_request(req).await.unwrap();
                let location = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (resp.status().as_u16(), location)
            }
        });
        let all = futures_join_all(requests.collect());
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("answers within 30 s")
    })
}

/// Runs every future to its end on the current task's runtime.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[test]
fn one_client_cannot_fan_out_blob_checks() {
    let backend = Hanging::start();
    let base = format!("http://{}/bucket", backend.addr);
    let r = start(
        &base,
        &[
            "--max-blob-checks",
            "5",
            "--max-blob-checks-per-connection",
            "3",
            "--blob-check-timeout",
            "3s",
        ],
    );
    let upstream = |answers: &[(u16, String)]| {
        answers.iter().all(|(status, location)| {
            *status == 307 && location.starts_with("http://127.0.0.1:1/v2/mirror/pause/blobs/")
        })
    };
    let by = |bound: &str| {
        metric(
            r.admin,
            &format!("steer_blob_checks_rejected_total{{bound=\"{bound}\"}}"),
        )
        .unwrap_or(0.0)
    };
    // One client, 20 distinct digests at once on one connection: three
    // are checked, the rest go upstream at once.
    let answers = h2_blob_pulls(r.addr, 0, 20);
    assert_eq!(answers.len(), 20);
    assert!(upstream(&answers), "{answers:?}");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 3);
    assert_eq!((by("connection"), by("process")), (17.0, 0.0));

    // Two such clients at once: five checks in the process at most.
    let addr = r.addr;
    let pulls: Vec<_> = [100, 200]
        .into_iter()
        .map(|first| std::thread::spawn(move || h2_blob_pulls(addr, first, 20)))
        .collect();
    let answers: Vec<(u16, String)> = pulls.into_iter().flat_map(|p| p.join().unwrap()).collect();
    assert_eq!(answers.len(), 40);
    assert!(upstream(&answers), "{answers:?}");
    let opened = backend.accepted.load(Ordering::SeqCst) - 3;
    assert!(opened <= 5, "{opened} outbound connections for 40 streams");
    let (connection, process) = (by("connection") - 17.0, by("process"));
    assert!(process >= 1.0, "the process bound never applied");
    assert_eq!(connection + process, 40.0 - opened as f64);
}

/// Open descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn set_nofile(pid: u32, soft: usize, hard: usize) {
    let ok = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={soft}:{hard}"))
        .status()
        .expect("prlimit");
    assert!(ok.success());
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let bucket = FeedServer::start();
    let options = Options {
        args: &["--max-blob-checks", "16", "--handshake-timeout", "60s"],
        wrapper: &["prlimit", "--nofile=256:512", "--"],
        ..Options::default()
    };
    let r = loopback::start(Path::new(BIN), &bucket.url("bucket"), &options);
    // The soft limit was raised to the hard one, and the default cap of
    // 10,000 lowered to fit it.
    let cap = metric(r.admin, "steer_connection_limit{listener=\"public\"}").unwrap();
    assert!(cap > 0.0 && cap < 512.0, "cap {cap}");
    assert!(r.log_text().contains("connection cap lowered"));

    // Now take descriptors away, so accept fails with EMFILE.
    let pid = r.pid();
    set_nofile(pid, open_fds(pid) + 4, 512);
    let held: Vec<TcpStream> = (0..30)
        .map(|_| connect_from(Some("127.0.0.1"), r.addr, Duration::from_secs(10)))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = r.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = r.cpu_ticks() - before;
    set_nofile(pid, 512, 512);
    drop(held);
    // A retry at once spun a core and logged ~120 MB in 2 s.
    assert!(used < 50, "{used} ticks of CPU while out of descriptors");
    let failed = r
        .log_text()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!((1..=3).contains(&failed), "{failed} accept-failed lines");
    let errors = metric(
        r.admin,
        "steer_accept_errors_total{listener=\"public\",kind=\"fd_exhausted\"}",
    )
    .unwrap();
    assert!((1.0..=50.0).contains(&errors), "{errors} accept errors");
    // Served again.
    assert_eq!(get(r.addr, "127.0.0.1", "GET", "/v2/").0, 200);
}

#[test]
fn requests_that_must_be_refused_are() {
    let bucket = FeedServer::start();
    let r = start(&bucket.url("bucket"), &[]);
    let raw = |req: &[u8]| request(r.addr, "127.0.0.1", req);
    // Dot segments in an upload id would climb out of the upstream path
    // prefix once a client resolves them.
    let (status, head, _) = raw(
        b"GET /v2/pause/blobs/uploads/../../../../../other-project/x HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400, "{head}");
    // Query bytes above 0x7F leave percent-encoded; the head is ASCII.
    let (status, head, _) = raw(
        b"GET /v2/pause/tags/list?last=\xc2\x85\xe2\x80\xa8\xc3\xa9 HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 307, "{head}");
    assert!(
        head.contains(
            "location: http://127.0.0.1:1/v2/mirror/pause/tags/list?last=%C2%85%E2%80%A8%C3%A9\r\n"
        ),
        "{head}"
    );
    assert!(head.is_ascii(), "{head:?}");
    // RFC 9112 3.2: HTTP/1.1 without Host, or with two, is a 400.
    for req in [
        &b"GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /v2/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    ] {
        let (status, head, _) = raw(req);
        assert_eq!(status, 400, "{head}");
    }
}

#[test]
fn out_of_range_durations_are_errors_naming_the_flag() {
    for (flag, value) in [
        ("--grace", "1e20"),
        ("--header-timeout", "inf"),
        ("--reload-interval", "1e30"),
        ("--idle-timeout", "0"),
        ("--blob-found-ttl", "=-1"),
    ] {
        let mut serve = Command::new(BIN);
        serve
            .args(SERVE_ON_ANY_PORT)
            .arg(match value.strip_prefix('=') {
                Some(v) => format!("{flag}={v}"),
                None => flag.to_owned(),
            })
            .args(value.strip_prefix('=').is_none().then_some(value))
            .env("RUST_BACKTRACE", "0");
        let out = run_bounded(&mut serve, Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{flag} {value}: the server started"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!err.contains("panicked"), "{flag} {value}: {err}");
    }
}
