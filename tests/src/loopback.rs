//! `redirector serve` as a process on loopback, for the tests that drive
//! it over real sockets. Clients from 127.0.0.2 are classified as an AWS
//! region without a bucket of its own (so the default backend, which the
//! test names, is checked), 127.0.0.3 as GCP, 127.0.0.1 as in no feed. The
//! upstream registry is only ever named in Location headers. Nothing
//! leaves 127.0.0.0/8.

use std::{
    fs::File,
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    process::{Running, stdout_lines, wait_until_serving},
    tcp,
};

/// `serve` on ports the kernel picks, public and admin, on 127.0.0.1.
pub const SERVE_ON_ANY_PORT: [&str; 5] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "127.0.0.1:0",
];

/// Writes the custom list that gives 127.0.0.2 an AWS class without a
/// bucket of its own and 127.0.0.3 a GCP class; returns its path.
pub fn loopback_classes(dir: &Path) -> PathBuf {
    let custom = dir.join("loopback.csv");
    std::fs::write(
        &custom,
        "127.0.0.2/32,aws,test-1\n127.0.0.3/32,gcp,europe-west1\n",
    )
    .expect("custom list");
    custom
}

/// The upstream every Location names; nothing listens there.
pub const UPSTREAM: &str = "http://127.0.0.1:1";

/// How to start it: besides the binary and the default AWS bucket,
/// arguments, and a command to run it under (such as `prlimit`).
#[derive(Default)]
pub struct Options<'a> {
    pub args: &'a [&'a str],
    pub wrapper: &'a [&'a str],
    /// RUST_LOG (default `warn`).
    pub log_level: Option<&'a str>,
}

pub struct Redirector {
    pub process: Running,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Its stderr (the log).
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Redirector {
    /// Starts `binary serve` with `bucket` as the default AWS base URL and
    /// waits until it serves.
    pub fn start(binary: &Path, bucket: &str, options: &Options) -> Redirector {
        let dir = tempfile::tempdir().expect("temp dir");
        let custom = loopback_classes(dir.path());
        let log = dir.path().join("redirector.log");
        let mut command = match options.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .args(SERVE_ON_ANY_PORT)
            .args(["--snapshot", "/nonexistent/x"])
            .arg("--custom")
            .arg(&custom)
            .args(options.args)
            .env("UPSTREAM_REGISTRY_ENDPOINT", UPSTREAM)
            .env("UPSTREAM_REGISTRY_PATH", "mirror")
            .env("DEFAULT_AWS_BASE_URL", bucket)
            .env_remove("SIGNATURE_UPSTREAM_ENDPOINT")
            .env_remove("STEER_SNAPSHOT")
            .env_remove("STEER_CONFIG")
            .env("RUST_LOG", options.log_level.unwrap_or("warn"))
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("log file"));
        let mut child = command.spawn().expect("start redirector serve");
        let lines = stdout_lines(&mut child);
        let process = Running(child);
        let (addr, admin) = wait_until_serving(&lines);
        Redirector {
            process,
            addr,
            admin,
            log,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// User plus system CPU time it has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("reading /proc/PID/stat");
        // Fields after the command name, which is in parentheses.
        let after = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }
}

/// One raw HTTP/1.1 request from `src`; returns (status, headers, body).
pub fn request(to: SocketAddr, src: &str, raw: impl AsRef<[u8]>) -> (u16, String, String) {
    let mut stream = tcp::connect_from(Some(src), to, Duration::from_secs(10));
    stream.write_all(raw.as_ref()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

pub fn get(to: SocketAddr, src: &str, method: &str, path: &str) -> (u16, Option<String>, String) {
    let (status, head, body) = request(
        to,
        src,
        format!("{method} {path} HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n"),
    );
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: ").map(str::to_owned));
    (status, location, body)
}

/// The value of the series `series` (name and labels exactly as
/// exposed) on the admin listener's /metrics; None when absent.
pub fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let (status, _, body) = get(admin, "127.0.0.1", "GET", "/metrics");
    assert_eq!(status, 200, "scraping /metrics");
    body.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// A self-signed certificate and key for `registry.test` (openssl), as
/// PEM files in `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=registry.test"])
        .args(["-addext", "subjectAltName=DNS:registry.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}
