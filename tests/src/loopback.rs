//! `redirector serve` as a process on loopback, for the tests that drive
//! it over real sockets. Clients from 127.0.0.2 are classified as an AWS
//! region without a bucket of its own (so the default backend, which the
//! test names, is checked), 127.0.0.3 as GCP, 127.0.0.1 as in no feed. The
//! upstream registry is only ever named in Location headers. Nothing
//! leaves 127.0.0.0/8.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{launch::Launch, tcp};

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
    /// More variables for it.
    pub env: &'a [(&'a str, &'a str)],
}

pub use crate::launch::Redirector;

/// Starts `binary serve` with `bucket` as the default AWS base URL and
/// waits until it serves.
pub fn start(binary: &Path, bucket: &str, options: &Options) -> Redirector {
    let dir = tempfile::tempdir().expect("temp dir");
    let custom = loopback_classes(dir.path());
    let mut args: Vec<String> = SERVE_ON_ANY_PORT.map(str::to_owned).to_vec();
    args.extend(["--snapshot", "/nonexistent/x", "--custom"].map(str::to_owned));
    args.push(custom.display().to_string());
    args.extend(options.args.iter().map(|a| (*a).to_owned()));
    let launch = Launch {
        binary: binary.to_owned(),
        args,
        log: dir.path().join("redirector.log"),
        env: [
            ("UPSTREAM_REGISTRY_ENDPOINT", UPSTREAM),
            ("UPSTREAM_REGISTRY_PATH", "mirror"),
            ("DEFAULT_AWS_BASE_URL", bucket),
        ]
        .iter()
        .chain(options.env)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        env_remove: [
            "SIGNATURE_UPSTREAM_ENDPOINT",
            "STEER_SNAPSHOT",
            "STEER_CONFIG",
        ]
        .map(str::to_owned)
        .to_vec(),
        wrapper: options.wrapper.iter().map(|w| (*w).to_owned()).collect(),
        log_level: Some(options.log_level.unwrap_or("warn").to_owned()),
        listen_fd: None,
    };
    let mut r = Redirector::start(None, &launch);
    r.dir = Some(dir);
    r
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
