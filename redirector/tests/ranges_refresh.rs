//! Live refresh end to end: a feed changes on a local HTTP server,
//! `redirector ranges update` rewrites the snapshot, `redirector watch`
//! reloads on SIGHUP into the other map generation, `explain --kernel`
//! shows the new answer from the live maps, and a TCP connection opened
//! before the reload keeps working. Needs root; runs in namespaces.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use steer_tests::{
    PinDir,
    addrs::{AWS4, SERVER4},
    feed_server::FeedServer,
    netns::{Netns, veth},
    process::{Running, root_or_skip, stdout_lines, text, wait_for},
    tcp,
};

const PORT: u16 = 5000;

fn redirector(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args(args)
        .env_remove("STEER_SNAPSHOT")
        .output()
        .expect("run redirector")
}

fn aws_feed(created: &str, region: &str) -> String {
    format!(
        r#"{{"createDate":"{created}","prefixes":[
            {{"ip_prefix":"35.180.0.0/16","region":"{region}","service":"EC2"}},
            {{"ip_prefix":"36.0.0.0/8","region":"x","service":"EC2"}}],"ipv6_prefixes":[]}}"#
    )
}

/// Starts `redirector watch` on `iface` in `ns`; returns it and its
/// stdout lines.
fn start_watch(
    ns: &Netns,
    iface: &str,
    snapshot: &str,
    pin_dir: &str,
    extra: &[&str],
) -> (Running, mpsc::Receiver<String>) {
    // Through nsenter (`Netns::command`), not `ip netns exec`: that one
    // also remounts /sys, which hides bpffs and so the pins.
    let child = ns
        .command(env!("CARGO_BIN_EXE_redirector"))
        .args([
            "watch",
            "--iface",
            iface,
            "--mode",
            "generic",
            "--port",
            "5000",
            "--interval",
            "0.5",
            "--snapshot",
            snapshot,
            "--pin-dir",
            pin_dir,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redirector watch");
    let mut watch = Running(child);
    let lines = stdout_lines(&mut watch.0);
    (watch, lines)
}

/// A connection from `src` to the server; one echo round trip.
fn connect_from(src: &str) -> TcpStream {
    let server = SocketAddr::new(SERVER4.parse().unwrap(), PORT);
    tcp::connect_from(Some(src), server, Duration::from_secs(5))
}

fn echo(stream: &mut TcpStream, byte: u8) {
    stream.write_all(&[byte]).expect("send");
    let mut b = [0u8; 1];
    stream.read_exact(&mut b).expect("echo");
    assert_eq!(b[0], byte);
}

fn kernel_line(snapshot: &str, pins: &str) -> String {
    let out = redirector(&[
        "explain",
        "--kernel",
        "--pin-dir",
        pins,
        "--snapshot",
        snapshot,
        "35.180.1.1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
        .lines()
        .find(|l| l.trim_start().starts_with("kernel"))
        .unwrap_or_else(|| panic!("no kernel line in {}", text(&out)))
        .to_owned()
}

/// An AWS feed on a loopback server (`c1`, eu-west-3, ETag v1) and the
/// snapshot `ranges update` writes from it.
struct Feed {
    server: FeedServer,
    _dir: tempfile::TempDir,
    snapshot: std::path::PathBuf,
    url: String,
}

impl Feed {
    fn new() -> Feed {
        let server = FeedServer::start();
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("ranges.snapshot");
        let url = format!("aws={}", server.url("aws.json"));
        server.set("aws.json", &aws_feed("c1", "eu-west-3"), "\"v1\"");
        Feed {
            server,
            _dir: dir,
            snapshot,
            url,
        }
    }

    fn snap(&self) -> &str {
        self.snapshot.to_str().unwrap()
    }

    /// `redirector ranges update` of the snapshot from the server.
    fn update(&self) -> std::process::Output {
        redirector(&[
            "ranges",
            "update",
            "--snapshot",
            self.snap(),
            "--url",
            &self.url,
        ])
    }
}

#[test]
fn feed_change_reaches_the_kernel_on_sighup_without_dropping_connections() {
    if !root_or_skip(module_path!()) {
        return;
    }
    let feed = Feed::new();
    let (server, snap) = (&feed.server, feed.snap());
    let update = || feed.update();
    let out = update();
    assert!(out.status.success(), "{}", text(&out));

    let srv = Netns::new("refresh-s");
    let cli = Netns::new("refresh-c");
    veth(&srv, "steer-rs", &[SERVER4], &cli, "steer-rc", &[AWS4]);
    let pins = PinDir::new("refresh");
    let pin_dir = pins.path().to_str().unwrap().to_owned();

    let (mut watch, lines) = start_watch(
        &srv,
        "steer-rs",
        snap,
        &pin_dir,
        &["--reload-interval", "0"],
    );
    wait_for(&lines, "steer: XDP on steer-rs");
    let first = kernel_line(snap, &pin_dir);
    assert!(
        first.contains("aws/eu-west-3") && first.contains("generation 1"),
        "{first}"
    );

    // An echo server in the server namespace: each connection is echoed
    // until the client closes it.
    let (ready_tx, ready_rx) = mpsc::channel();
    let echo_server = srv.spawn(move || {
        let listener = TcpListener::bind((SERVER4, PORT)).expect("listen");
        ready_tx.send(()).unwrap();
        let mut handles = Vec::new();
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().expect("accept");
            conn.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            handles.push(std::thread::spawn(move || {
                let mut b = [0u8; 1];
                while conn.read_exact(&mut b).is_ok() {
                    if conn.write_all(&b).is_err() {
                        break;
                    }
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("echo server");

    let mut before = cli
        .spawn(|| {
            let mut s = connect_from(AWS4);
            echo(&mut s, 1);
            s
        })
        .join()
        .expect("first connection");

    // The feed changes; the update fetches it; SIGHUP reloads.
    server.set("aws.json", &aws_feed("c2", "eu-west-1"), "\"v2\"");
    let out = update();
    assert!(text(&out).contains("aws: updated"), "{}", text(&out));
    watch.signal(libc::SIGHUP);
    let reloaded = wait_for(&lines, "ranges reloaded (SIGHUP)");
    assert!(reloaded.contains("generation 2"), "{reloaded}");

    let second = kernel_line(snap, &pin_dir);
    assert!(
        second.contains("aws/eu-west-1") && second.contains("generation 2"),
        "{second}"
    );
    assert!(!second.contains("DIFFERS"), "{second}");

    // The connection from before the reload still works; a new one too.
    echo(&mut before, 2);
    let after = cli.spawn(|| {
        let mut s = connect_from(AWS4);
        echo(&mut s, 3);
    });
    after.join().expect("connection after the reload");
    echo(&mut before, 4);
    drop(before);

    // A SIGHUP with nothing new leaves the maps alone.
    watch.signal(libc::SIGHUP);
    wait_for(&lines, "ranges unchanged (SIGHUP)");
    assert!(kernel_line(snap, &pin_dir).contains("generation 2"));

    watch.signal(libc::SIGTERM);
    let status = watch.0.wait().expect("wait");
    assert!(status.success(), "watch exited with {status}");
    echo_server.join().expect("echo server");
    assert!(
        !pins.path().join("STEER_ACTIVE").exists(),
        "pins removed on exit"
    );
}

/// The reload timer picks up a new snapshot by itself; a broken snapshot
/// on a later tick keeps the table that serves.
#[test]
fn reload_timer_picks_up_the_snapshot_and_survives_a_broken_one() {
    if !root_or_skip(module_path!()) {
        return;
    }
    let feed = Feed::new();
    let (server, snapshot, snap) = (&feed.server, &feed.snapshot, feed.snap());
    let update = || feed.update();
    assert!(update().status.success());

    let ns = Netns::new("timer");
    let peer = Netns::new("timer-p");
    veth(&ns, "steer-ts", &[SERVER4], &peer, "steer-tp", &[AWS4]);
    let pins = PinDir::new("timer");
    let pin_dir = pins.path().to_str().unwrap().to_owned();
    let (mut watch, lines) =
        start_watch(&ns, "steer-ts", snap, &pin_dir, &["--reload-interval", "1"]);
    wait_for(&lines, "steer: XDP on steer-ts");
    assert!(kernel_line(snap, &pin_dir).contains("aws/eu-west-3"));

    server.set("aws.json", &aws_feed("c2", "eu-west-1"), "\"v2\"");
    assert!(update().status.success());
    let reloaded = wait_for(&lines, "ranges reloaded (timer)");
    assert!(reloaded.contains("generation 2"), "{reloaded}");
    assert!(kernel_line(snap, &pin_dir).contains("aws/eu-west-1"));

    std::fs::write(
        snapshot,
        "steer-ranges-snapshot 1\nfeed aws\ngroup aws x\n1.2.3.0/33\n",
    )
    .unwrap();
    let kept = wait_for(&lines, "ranges: kept the last good copy");
    assert!(kept.contains("1.2.3.0/33"), "{kept}");
    // The userspace side of explain cannot read the broken file either, so
    // it uses the embedded ranges; the kernel line is what matters here.
    let line = kernel_line("/nonexistent/ranges.snapshot", &pin_dir);
    assert!(
        line.contains("aws/eu-west-1") && line.contains("generation 2"),
        "{line}"
    );

    watch.signal(libc::SIGTERM);
    assert!(watch.0.wait().expect("wait").success());
}
