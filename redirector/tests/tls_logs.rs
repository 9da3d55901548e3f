//! What a TLS client can make `redirector serve` log: the binary on
//! loopback, its log file read back. Nothing leaves 127.0.0.0/8.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use steer_tests::loopback::{self, Options, self_signed};

const IP_AS_SNI: &str = "Illegal SNI extension";

/// One request over TLS from OpenSSL's client sending `127.0.0.1` as SNI
/// (as wrk does); returns the answer's status line.
fn request_with_ip_sni(port: u16) -> String {
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let request = "GET /v2/ HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n";
    client
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = client.wait_with_output().expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Serves `connections` such requests with RUST_LOG `log_level`; returns
/// how many log lines were about the IP address as SNI.
fn ip_sni_lines(cert: &Path, key: &Path, log_level: &str, connections: usize) -> usize {
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let options = Options {
        args: &args,
        log_level: Some(log_level),
        ..Options::default()
    };
    let r = loopback::start(
        Path::new(env!("CARGO_BIN_EXE_redirector")),
        "http://127.0.0.1:1/bucket",
        &options,
    );
    for _ in 0..connections {
        assert_eq!(request_with_ip_sni(r.addr.port()), "HTTP/1.1 200 OK");
    }
    // rustls logs during the handshake, so before the answer above.
    r.log_text()
        .lines()
        .filter(|l| l.contains(IP_AS_SNI))
        .count()
}

#[test]
fn a_client_cannot_make_rustls_log_a_line_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    // The default filter (RUST_LOG=warn here) holds rustls to errors.
    assert_eq!(ip_sni_lines(&cert, &key, "warn", 3), 0);
    // Named, its warnings come back: the client above does cause one per
    // connection.
    assert_eq!(ip_sni_lines(&cert, &key, "warn,rustls=warn", 3), 3);
}
