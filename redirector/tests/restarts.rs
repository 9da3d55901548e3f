//! Restarts that drop nothing: clients loop (bounded in count and time)
//! while the redirector is replaced five times back to back, and no
//! connection is refused and no request fails. Two ways: a socket held
//! across restarts and handed over as systemd's socket activation does,
//! and SO_REUSEPORT (`--reuse-port`) with the new process bound beside the
//! old one before the old one gets SIGTERM.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use steer_tests::{
    launch::{Launch, Redirector},
    loopback::UPSTREAM,
    netns::Netns,
    process::root_or_skip,
};

const RESTARTS: usize = 5;
const CLIENTS: usize = 4;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

/// One request on a new connection; whether a 200 came back.
fn one_request(to: SocketAddr) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if out.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("answer {:?}", out.lines().next()))
    }
}

/// Loops until told to stop, at most 60 s and 20,000 requests.
fn client(to: SocketAddr, tally: &Tally) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..20_000 {
        if tally.stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return;
        }
        match one_request(to) {
            Ok(()) => tally.ok.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                eprintln!("request failed: {e}");
                tally.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

fn launch(dir: &Path, args: &[&str]) -> Launch {
    let mut all: Vec<String> = [
        "serve",
        "--admin-listen",
        "127.0.0.1:0",
        "--snapshot",
        "/nonexistent/x",
        "--reload-interval",
        "0",
    ]
    .map(str::to_owned)
    .to_vec();
    all.extend(args.iter().map(|a| (*a).to_owned()));
    Launch {
        binary: env!("CARGO_BIN_EXE_redirector").into(),
        args: all,
        log: dir.join("redirector.log"),
        env: vec![("UPSTREAM_REGISTRY_ENDPOINT".into(), UPSTREAM.into())],
        log_level: Some("warn".into()),
        ..Launch::default()
    }
}

/// Replaces the running redirector `RESTARTS` times while `clients`
/// loop; each new one serves before the old one is told to stop.
fn restart_under_load(
    start: &dyn Fn() -> Redirector,
    run_clients: &dyn Fn(Arc<Tally>) -> Vec<std::thread::JoinHandle<()>>,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let mut current = start();
    let clients = run_clients(tally.clone());
    for round in 0..RESTARTS {
        let before = tally.ok.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tally.ok.load(Ordering::SeqCst) < before + 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let next = start();
        current.signal(libc::SIGTERM);
        let exit = current.wait_exit(Duration::from_secs(20));
        assert!(exit.is_some_and(|e| e.success()), "round {round}: {exit:?}");
        current = next;
    }
    std::thread::sleep(Duration::from_millis(300));
    tally.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    tally
}

fn assert_nothing_dropped(tally: &Tally) {
    let (ok, failed) = (
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
    );
    assert!(ok >= (RESTARTS * 20) as u64, "only {ok} requests served");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
}

#[test]
fn socket_activation_keeps_the_socket_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // The socket unit's part: one listening socket for every process.
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let mut l = launch(dir.path(), &["--listen", "127.0.0.1:1"]);
    l.listen_fd = Some(socket.as_raw_fd());
    // exec keeps the shell's pid, so LISTEN_PID names the redirector.
    l.wrapper = ["sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""]
        .map(str::to_owned)
        .to_vec();
    let start = || {
        let r = Redirector::start(None, &l);
        assert_eq!(r.addr, addr, "it serves on the socket it was handed");
        r
    };
    let tally = restart_under_load(&start, &|tally| {
        (0..CLIENTS)
            .map(|_| {
                let tally = tally.clone();
                std::thread::spawn(move || client(addr, &tally))
            })
            .collect()
    });
    assert_nothing_dropped(&tally);
}

#[test]
fn reuse_port_binds_beside_the_old_process() {
    if !root_or_skip("reuse_port_binds_beside_the_old_process") {
        return;
    }
    let ns = Netns::new("restart");
    // Connections queued at a closing listener move to the other one.
    let out = ns
        .command("sysctl")
        .args(["-w", "net.ipv4.tcp_migrate_req=1"])
        .output()
        .expect("sysctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let l = launch(dir.path(), &["--listen", "127.0.0.1:18080", "--reuse-port"]);
    let addr: SocketAddr = "127.0.0.1:18080".parse().unwrap();
    let start = || Redirector::start(Some(&ns), &l);
    let tally = restart_under_load(&start, &|tally| {
        (0..CLIENTS)
            .map(|_| {
                let tally = tally.clone();
                ns.spawn(move || client(addr, &tally))
            })
            .collect()
    });
    assert_nothing_dropped(&tally);
    assert!(
        !std::fs::read_to_string(dir.path().join("redirector.log"))
            .unwrap()
            .contains("tcp_migrate_req")
    );
}

#[test]
fn readiness_tells_the_truth_and_systemd_hears_it() {
    use std::os::unix::net::UnixDatagram;
    use steer_tests::loopback::{self, Options, get};
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // A backend that never answers keeps a blob request in flight.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/bucket", hanging.local_addr().unwrap());
    let notify_env = notify_path.display().to_string();
    let options = Options {
        args: &["--blob-check-timeout", "2s", "--grace", "10s"],
        log_level: Some("info"),
        env: &[("NOTIFY_SOCKET", &notify_env), ("WATCHDOG_USEC", "200000")],
        ..Options::default()
    };
    let mut r = loopback::start(Path::new(env!("CARGO_BIN_EXE_redirector")), &base, &options);
    // Read as systemd would, all along, so the queue never fills.
    let heard = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let heard = heard.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                heard.lock().unwrap().push(m);
            }
        })
    };
    let saw = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !heard.lock().unwrap().iter().any(|m| m == what) {
            assert!(
                Instant::now() < deadline,
                "no {what}: {:?}",
                heard.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    saw("READY=1");
    assert_eq!(heard.lock().unwrap()[0], "READY=1", "ready comes first");
    saw("WATCHDOG=1");
    assert_eq!(get(r.admin, "127.0.0.1", "GET", "/readyz").0, 200);

    let addr = r.addr;
    let blob =
        "/v2/pause/blobs/sha256:4444444444444444444444444444444444444444444444444444444444444444";
    let in_flight = std::thread::spawn(move || get(addr, "127.0.0.2", "GET", blob));
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGTERM);
    // Draining: not ready, while the request in flight still finishes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = get(r.admin, "127.0.0.1", "GET", "/readyz");
        if status == 503 {
            assert_eq!(body, "draining\n");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    saw("STOPPING=1");
    let (status, location, _) = in_flight.join().unwrap();
    assert_eq!(status, 307, "{location:?}\n{}", r.log_text());
    let exit = r.wait_exit(Duration::from_secs(20));
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    drop(hanging);
    // The reader ends when no message came for its timeout.
    reader.join().unwrap();
}
