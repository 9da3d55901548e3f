//! `serve --access-log`: one JSON line per request with the fields a
//! warehouse loads, and a request never waits on the log: with the log
//! going into a pipe nobody reads, every request is still answered and
//! the lines that did not fit are counted as dropped. On loopback.

use std::{
    io::{Read as _, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    time::{Duration, Instant},
};

use steer_tests::loopback::{self, Options, get, metric};

const BIN: &str = env!("CARGO_BIN_EXE_redirector");
const D: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";

#[test]
fn one_json_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let log_arg = log.to_str().unwrap();
    let r = loopback::start(
        BIN.as_ref(),
        "http://127.0.0.1:1",
        &Options {
            args: &["--access-log", log_arg],
            ..Options::default()
        },
    );
    // A GCP client: blobs go upstream, so no blob check is made.
    let (status, _, _) = get(r.addr, "127.0.0.3", "GET", &format!("/v2/pause/blobs/{D}"));
    assert_eq!(status, 307);
    let (status, _, _) = get(r.addr, "127.0.0.1", "GET", "/v2/pause/manifests/3.10");
    assert_eq!(status, 307);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    let blob: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(blob["client"], "127.0.0.3");
    assert_eq!(blob["class"], "gcp/europe-west1");
    assert_eq!(blob["route"], "blob");
    assert_eq!(blob["status"], 307);
    assert_eq!(blob["backend"], "upstream");
    assert_eq!(blob["digest"], D);
    assert_eq!(blob["source"], "userspace");
    assert!(blob["time"].as_str().unwrap().ends_with('Z'), "{blob}");
    let manifest: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(manifest["route"], "upstream");
    assert_eq!(manifest["digest"], serde_json::Value::Null);
    assert_ne!(manifest["request_id"], blob["request_id"]);
}

#[test]
fn a_log_nobody_reads_drops_lines_and_blocks_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("log.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A reader that never reads: the pipe fills, then the writer blocks.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let r = loopback::start(
        BIN.as_ref(),
        "http://127.0.0.1:1",
        &Options {
            args: &["--access-log", fifo.to_str().unwrap()],
            ..Options::default()
        },
    );
    // Bounded: 12,000 pipelined requests on one connection, more than the
    // queue (8,192 lines) and the pipe (64 KiB) hold together.
    const N: usize = 12_000;
    let mut raw = Vec::new();
    for i in 0..N {
        let close = if i + 1 == N {
            "Connection: close\r\n"
        } else {
            ""
        };
        write!(
            raw,
            "GET /v2/pause/manifests/{i} HTTP/1.1\r\nHost: registry.test\r\n{close}\r\n"
        )
        .unwrap();
    }
    let mut stream =
        steer_tests::tcp::connect_from(Some("127.0.0.1"), r.addr, Duration::from_secs(30));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let writer = {
        let mut s = stream.try_clone().unwrap();
        std::thread::spawn(move || s.write_all(&raw))
    };
    let mut answers = Vec::new();
    stream.read_to_end(&mut answers).unwrap();
    writer.join().unwrap().unwrap();
    let answered = String::from_utf8_lossy(&answers)
        .matches("HTTP/1.1 307")
        .count();
    assert_eq!(
        answered, N,
        "every request is answered while the log is stuck"
    );
    let dropped = metric(r.admin, "steer_access_log_dropped_total").unwrap_or(0.0);
    assert!(dropped > 0.0, "no line was counted as dropped");
}
