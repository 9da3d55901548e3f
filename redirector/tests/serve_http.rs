//! `redirector serve` over real HTTP on loopback, with a local server as
//! the regional blob backend (see `steer_tests::loopback` for the clients'
//! classes). The server runs in this process, except where a test is about
//! the binary (signals, exit status). Nothing leaves 127.0.0.0/8.

use std::{
    net::TcpListener,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use steer_tests::{
    feed_server::FeedServer,
    loopback::{self, Options, Redirector, SERVE_ON_ANY_PORT, UPSTREAM, get, request, self_signed},
};

const D1: &str = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e";
const D2: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

mod common;

use common::InProcess;

/// The server in this process: what most tests here are about.
fn start(bucket: &str, extra: &[&str]) -> InProcess {
    InProcess::start(bucket, extra)
}

/// The binary: for what only a process has (signals, exit status).
fn start_binary(bucket: &str, extra: &[&str]) -> Redirector {
    let options = Options {
        args: extra,
        ..Options::default()
    };
    loopback::start(
        Path::new(env!("CARGO_BIN_EXE_redirector")),
        bucket,
        &options,
    )
}

fn heads(server: &FeedServer, path: &str) -> usize {
    server
        .log()
        .iter()
        .filter(|s| s.method == "HEAD" && s.path == path)
        .count()
}

#[test]
fn blobs_go_to_the_backend_that_has_them_and_checks_are_cached() {
    let bucket = FeedServer::start();
    bucket.set(&format!("bucket/containers/images/{D1}"), "blob", "");
    let base = bucket.url("bucket");
    let r = start(&base, &[]);
    let at = |digest: &str| format!("/bucket/containers/images/{digest}");
    let upstream = |digest: &str| format!("{UPSTREAM}/v2/mirror/pause/blobs/{digest}");

    // Present at the backend: there, once checked; then from the cache.
    for _ in 0..3 {
        let (status, location, body) =
            get(r.addr, "127.0.0.2", "GET", &format!("/v2/pause/blobs/{D1}"));
        assert_eq!(
            (status, location.as_deref()),
            (307, Some(format!("{base}/containers/images/{D1}").as_str()))
        );
        assert!(body.is_empty());
    }
    assert_eq!(heads(&bucket, &at(D1)), 1, "one HEAD, then cache hits");

    // Missing: upstream, and the miss is remembered too.
    for _ in 0..2 {
        let (status, location, _) =
            get(r.addr, "127.0.0.2", "GET", &format!("/v2/pause/blobs/{D2}"));
        assert_eq!((status, location), (307, Some(upstream(D2))));
    }
    assert_eq!(heads(&bucket, &at(D2)), 1);

    // A client in no feed is checked against the default backend as well
    // (the Go service's rule); HEAD answers like GET, without a body.
    let (status, location, body) = get(
        r.addr,
        "127.0.0.1",
        "HEAD",
        &format!("/v2/pause/blobs/{D1}"),
    );
    assert_eq!(
        (status, location),
        (307, Some(format!("{base}/containers/images/{D1}")))
    );
    assert!(body.is_empty());

    // GCP stays upstream, with no check at all.
    let before = bucket.log().len();
    let (status, location, _) = get(r.addr, "127.0.0.3", "GET", &format!("/v2/pause/blobs/{D3}"));
    assert_eq!((status, location), (307, Some(upstream(D3))));
    assert_eq!(bucket.log().len(), before);

    // The admin listener counts all of it.
    let (status, _, metrics) = get(r.admin, "127.0.0.1", "GET", "/metrics");
    assert_eq!(status, 200);
    for want in [
        r#"steer_requests_total{route="blob",status="307",provider="aws",region="test-1",backend="aws-default",source="userspace"} 3"#,
        r#"steer_requests_total{route="blob",status="307",provider="gcp",region="europe-west1",backend="upstream",source="userspace"} 1"#,
        r#"steer_requests_total{route="blob",status="307",provider="unknown",region="unknown",backend="aws-default",source="userspace"} 1"#,
        "steer_blob_check_requests_total 2",
        "steer_blob_check_cache_hits_total 4",
        "steer_blob_check_duration_seconds_count 2",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    assert_eq!(get(r.admin, "127.0.0.1", "GET", "/healthz").0, 200);
    assert_eq!(get(r.admin, "127.0.0.1", "GET", "/readyz").0, 200);

    // Manifests and tag lists go upstream with their query.
    let (status, location, _) = get(
        r.addr,
        "127.0.0.2",
        "GET",
        "/v2/pause/tags/list?n=2&last=v1",
    );
    assert_eq!(
        (status, location.as_deref()),
        (
            307,
            Some("http://127.0.0.1:1/v2/mirror/pause/tags/list?n=2&last=v1")
        )
    );
}

#[test]
fn concurrent_checks_for_one_blob_send_one_request() {
    let bucket = FeedServer::start();
    bucket.set(&format!("bucket/containers/images/{D3}"), "blob", "");
    bucket.set_delay(Duration::from_millis(300));
    let base = bucket.url("bucket");
    let r = start(&base, &[]);
    let addr = r.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                get(addr, "127.0.0.2", "GET", &format!("/v2/pause/blobs/{D3}"))
            })
        })
        .collect();
    for c in clients {
        let (status, location, _) = c.join().unwrap();
        assert_eq!(
            (status, location),
            (307, Some(format!("{base}/containers/images/{D3}")))
        );
    }
    assert_eq!(
        heads(&bucket, &format!("/bucket/containers/images/{D3}")),
        1
    );
}

#[test]
fn a_backend_that_hangs_sends_clients_upstream_after_the_timeout() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/bucket", silent.local_addr().unwrap());
    let r = start(&base, &["--blob-check-timeout", "0.3"]);
    let t = Instant::now();
    let (status, location, _) = get(r.addr, "127.0.0.2", "GET", &format!("/v2/pause/blobs/{D1}"));
    assert_eq!(
        (status, location),
        (307, Some(format!("{UPSTREAM}/v2/mirror/pause/blobs/{D1}")))
    );
    // Not a timing assertion: only that the answer did not wait for the
    // 10 s client timeout.
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(silent);
}

#[test]
fn malformed_requests_get_clear_answers_and_no_unescaped_header() {
    let bucket = FeedServer::start();
    let r = start(&bucket.url("bucket"), &[]);
    let cases = [
        ("GET /v2/pause/manifests/la%0D%0Atest HTTP/1.1", 400),
        ("GET /v2/Pause/manifests/latest HTTP/1.1", 400),
        ("GET /v2/pause/blobs/sha256:abc HTTP/1.1", 400),
        ("GET /v2/../../etc/passwd HTTP/1.1", 404),
        ("DELETE /v2/pause/manifests/latest HTTP/1.1", 405),
        ("BREW /v2/ HTTP/1.1", 405),
    ];
    for (line, want) in cases {
        let (status, head, body) = request(
            r.addr,
            "127.0.0.2",
            format!("{line}\r\nHost: registry.test\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, want, "{line}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("\nlocation:"),
            "{line}: {head}"
        );
        if want == 400 {
            assert!(body.contains("\"code\":"), "{line}: OCI error body: {body}");
        }
    }
    // A control byte in the request line is refused by the HTTP parser.
    let (status, _, _) = request(
        r.addr,
        "127.0.0.2",
        "GET /v2/pause/manifests/la\x01test HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400);
    // An overlong path and oversized headers are refused, never served.
    let long = format!("/v2/{}/manifests/latest", "a/".repeat(3000));
    let (status, _, _) = get(r.addr, "127.0.0.2", "GET", &long);
    assert!(status == 400 || status == 414 || status == 431, "{status}");
    let (status, _, _) = request(
        r.addr,
        "127.0.0.2",
        format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "b".repeat(100 * 1024)
        ),
    );
    assert!(status == 431 || status == 400 || status == 0, "{status}");
    // Still serving.
    assert_eq!(get(r.addr, "127.0.0.2", "GET", "/v2/").0, 200);
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let bucket = FeedServer::start();
    bucket.set(&format!("bucket/containers/images/{D1}"), "blob", "");
    bucket.set_delay(Duration::from_millis(800));
    let base = bucket.url("bucket");
    let mut r = start_binary(&base, &[]);
    let addr = r.addr;
    let in_flight =
        std::thread::spawn(move || get(addr, "127.0.0.2", "GET", &format!("/v2/pause/blobs/{D1}")));
    // Let the request reach the blob check, then ask the server to stop.
    std::thread::sleep(Duration::from_millis(300));
    r.process.signal(libc::SIGTERM);
    let (status, location, _) = in_flight.join().unwrap();
    assert_eq!(
        (status, location),
        (307, Some(format!("{base}/containers/images/{D1}")))
    );
    let exit = r.process.0.wait().unwrap();
    assert!(exit.success(), "{exit}");
}

#[test]
fn proxy_protocol_names_the_client() {
    let bucket = FeedServer::start();
    bucket.set(&format!("bucket/containers/images/{D1}"), "blob", "");
    let base = bucket.url("bucket");
    let r = start(&base, &["--proxy-protocol"]);
    let blob = format!("GET /v2/pause/blobs/{D1} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let location = |raw: &str| {
        let (status, head, _) = request(r.addr, "127.0.0.1", raw);
        let loc = head
            .lines()
            .find_map(|l| l.strip_prefix("location: ").map(str::to_owned));
        (status, loc)
    };
    let at_bucket = Some(format!("{base}/containers/images/{D1}"));
    let upstream = Some(format!("{UPSTREAM}/v2/mirror/pause/blobs/{D1}"));

    // v1 naming an AWS client (127.0.0.2 by the custom list).
    let v1 = format!("PROXY TCP4 127.0.0.2 127.0.0.1 5555 80\r\n{blob}");
    assert_eq!(location(&v1), (307, at_bucket.clone()));
    // v2 naming a GCP client (127.0.0.3): upstream.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[127, 0, 0, 3, 127, 0, 0, 1, 0x15, 0xb3, 0, 80]);
    v2.extend_from_slice(blob.as_bytes());
    let (status, head, _) = request(r.addr, "127.0.0.1", &v2);
    assert_eq!(status, 307, "{head}");
    assert!(
        head.contains(&format!("location: {}", upstream.clone().unwrap())),
        "{head}"
    );
    // UNKNOWN: the peer (127.0.0.1, in no feed) is the client.
    assert_eq!(
        location(&format!("PROXY UNKNOWN\r\n{blob}")),
        (307, at_bucket)
    );
    // No header, or a broken one: the connection is closed unanswered.
    assert_eq!(location(&blob).0, 0);
    assert_eq!(location(&format!("PROXY TCP4 nonsense\r\n{blob}")).0, 0);
    // And the server still serves.
    assert_eq!(location(&v1).0, 307);
}

#[test]
fn config_file_backends_and_reload_keeping_the_last_good_config() {
    let bucket = FeedServer::start();
    bucket.set(&format!("fra/containers/images/{D1}"), "blob", "");
    bucket.set(&format!("ams/containers/images/{D1}"), "blob", "");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steer.toml");
    let write = |fra: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
                [upstream]
                registry = "http://127.0.0.1:2"
                path = ""

                [[backend]]
                name = "fra"
                base_url = "{fra}"
                serves = ["aws/test-1"]

                [fallback]
                unknown = "upstream"
                "#
            ),
        )
        .unwrap();
    };
    write(&bucket.url("fra"));
    let r = start_binary(
        &bucket.url("unused"),
        &["--config", config.to_str().unwrap()],
    );
    let blob = format!("/v2/pause/blobs/{D1}");

    let (status, location, _) = get(r.addr, "127.0.0.2", "GET", &blob);
    assert_eq!(
        (status, location),
        (
            307,
            Some(format!("{}/containers/images/{D1}", bucket.url("fra")))
        )
    );
    // Unknown clients go upstream by this config, with no check.
    let (status, location, _) = get(r.addr, "127.0.0.1", "GET", &blob);
    assert_eq!(
        (status, location),
        (307, Some(format!("http://127.0.0.1:2/v2{}", &blob[3..])))
    );

    // A new backend URL arrives with SIGHUP.
    write(&bucket.url("ams"));
    r.process.signal(libc::SIGHUP);
    let want = Some(format!("{}/containers/images/{D1}", bucket.url("ams")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(r.addr, "127.0.0.2", "GET", &blob).1 != want {
        assert!(
            Instant::now() < deadline,
            "the new config never took effect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A broken file is refused; the last good config keeps serving.
    std::fs::write(&config, "[[backend]]\nname = \"x y\"\n").unwrap();
    r.process.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(r.addr, "127.0.0.2", "GET", &blob).1, want);
}

#[test]
fn a_bad_config_stops_the_start_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steer.toml");
    std::fs::write(&config, "[blob_check]\ntimeout = \"soon\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args(SERVE_ON_ANY_PORT)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("steer.toml: blob_check.timeout: `soon` is not a duration"),
        "{err}"
    );
}

#[test]
fn tls_with_alpn_serves_http2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let bucket = FeedServer::start();
    let r = start(
        &bucket.url("bucket"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let port = r.addr.port();
    let curl = |version: &str, path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "10", version])
            .arg("--cacert")
            .arg(&cert)
            .arg("--resolve")
            .arg(format!("registry.test:{port}:127.0.0.1"))
            .args(["-w", "%{http_code} %{http_version} %{redirect_url}"])
            .arg(format!("https://registry.test:{port}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("--http2", "/v2/"), "200 2 ");
    assert_eq!(curl("--http1.1", "/v2/"), "200 1.1 ");
    assert_eq!(
        curl("--http2", "/v2/pause/tags/list?n=5"),
        "307 2 http://127.0.0.1:1/v2/mirror/pause/tags/list?n=5"
    );
    // AES-128-GCM although OpenSSL's client offers AES-256 first; a client
    // offering only AES-256 gets it.
    let suite = |offer: Option<&str>| {
        let mut c = Command::new("openssl");
        c.args([
            "s_client",
            "-brief",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ]);
        if let Some(suites) = offer {
            c.args(["-ciphersuites", suites]);
        }
        let out = c
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = err.lines().find(|l| l.starts_with("Ciphersuite:"));
        line.unwrap_or_else(|| panic!("no suite in {err}"))
            .to_owned()
    };
    assert_eq!(suite(None), "Ciphersuite: TLS_AES_128_GCM_SHA256");
    assert_eq!(
        suite(Some("TLS_AES_256_GCM_SHA384")),
        "Ciphersuite: TLS_AES_256_GCM_SHA384"
    );
    // Plain HTTP on the TLS port gets no answer, and the server goes on.
    let (status, _, _) = get(r.addr, "127.0.0.1", "GET", "/v2/");
    assert_eq!(status, 0);
    assert_eq!(curl("--http1.1", "/v2/"), "200 1.1 ");
}

#[test]
fn h2c_and_http1_on_the_plain_port() {
    let bucket = FeedServer::start();
    let r = start(&bucket.url("bucket"), &[]);
    let curl = |version: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "10", version])
            .args(["-w", "%{http_code} %{http_version} %{redirect_url}"])
            .arg(format!("http://{}/v2/pause/manifests/latest", r.addr))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let want = "http://127.0.0.1:1/v2/mirror/pause/manifests/latest";
    assert_eq!(curl("--http2-prior-knowledge"), format!("307 2 {want}"));
    assert_eq!(curl("--http1.1"), format!("307 1.1 {want}"));
}
