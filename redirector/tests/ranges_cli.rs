//! `redirector ranges update|compile` and `explain`, run as a user would:
//! feeds served by a local HTTP server, no other network.

use std::{
    path::Path,
    process::{Command, Output},
};

use steer_tests::{
    feed_server::{FeedServer, LAST_MODIFIED, Served},
    process::text,
};
use steer_user::feeds::{FeedKind, Snapshot};

fn redirector(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args(args)
        .env_remove("STEER_SNAPSHOT")
        .env_remove("DEFAULT_AWS_BASE_URL")
        .output()
        .expect("run redirector")
}

pub fn aws_feed(created: &str, prefixes: &[(&str, &str)]) -> String {
    let rows: Vec<String> = prefixes
        .iter()
        .map(|(p, r)| format!(r#"{{"ip_prefix":"{p}","region":"{r}","service":"EC2"}}"#))
        .collect();
    format!(
        r#"{{"syncToken":"1","createDate":"{created}","prefixes":[{}],"ipv6_prefixes":[]}}"#,
        rows.join(",")
    )
}

fn aws_region(snapshot: &Path, prefix: &str) -> String {
    let s = Snapshot::read(snapshot).unwrap();
    let feed = &s.feed(FeedKind::Aws).unwrap().feed;
    feed.entries
        .iter()
        .find(|e| e.prefix.to_string() == prefix)
        .map(|e| e.region.clone())
        .unwrap_or_default()
}

#[test]
fn update_fetches_conditionally_and_keeps_the_last_good_copy() {
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state/ranges.snapshot");
    let snap = snapshot.to_str().unwrap();
    let url = server.url("ip-ranges.json");
    let url_arg = format!("aws={url}");
    let update = || redirector(&["ranges", "update", "--snapshot", snap, "--url", &url_arg]);

    let v1 = aws_feed(
        "c1",
        &[
            ("35.180.0.0/16", "eu-west-3"),
            ("36.0.0.0/8", "x"),
            ("37.0.0.0/8", "y"),
            ("38.0.0.0/8", "z"),
        ],
    );
    server.set("ip-ranges.json", &v1, "\"v1\"");
    let out = update();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("aws: updated, 4 entries, created c1"),
        "{}",
        text(&out)
    );
    assert_eq!(aws_region(&snapshot, "35.180.0.0/16"), "eu-west-3");
    let s = Snapshot::read(&snapshot).unwrap();
    let origin = &s.feed(FeedKind::Aws).unwrap().origin;
    assert_eq!(
        (origin.source.as_str(), origin.etag.as_deref()),
        (url.as_str(), Some("\"v1\""))
    );
    assert!(origin.fetched.is_some());
    assert!(
        s.feed(FeedKind::Gcp).is_some(),
        "the embedded GCP feed is carried along"
    );

    // Unchanged upstream: a conditional request, a 304, the file untouched.
    let before = std::fs::read(&snapshot).unwrap();
    let out = update();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("aws: not modified"), "{}", text(&out));
    assert_eq!(
        server.log().last(),
        Some(&Served {
            method: "GET".into(),
            path: "/ip-ranges.json".into(),
            if_none_match: Some("\"v1\"".into()),
            if_modified_since: Some(LAST_MODIFIED.into()),
            status: 304
        })
    );
    assert_eq!(std::fs::read(&snapshot).unwrap(), before);

    // Broken JSON: refused with a reason, exit non-zero, old copy stays.
    server.set(
        "ip-ranges.json",
        "{\"createDate\": \"c2\", \"prefixes\": [",
        "\"v2\"",
    );
    let out = update();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("aws: kept the last good copy"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("not valid JSON"), "{}", text(&out));
    assert_eq!(std::fs::read(&snapshot).unwrap(), before);

    // A bad entry is named.
    server.set(
        "ip-ranges.json",
        &aws_feed(
            "c3",
            &[("35.180.0.0/16", "eu-west-3"), ("999.0.0.0/8", "x")],
        ),
        "\"v3\"",
    );
    let out = update();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("prefixes[1]: `999.0.0.0/8` is not an IP prefix"),
        "{}",
        text(&out)
    );

    // Shrunk by half: refused.
    server.set(
        "ip-ranges.json",
        &aws_feed("c4", &[("35.180.0.0/16", "eu-west-1"), ("36.0.0.0/8", "x")]),
        "\"v4\"",
    );
    let out = update();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("shrank from 4 to 2 prefixes"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&snapshot).unwrap(), before);

    // A real change: new answer, new validator.
    let v5 = aws_feed(
        "c5",
        &[
            ("35.180.0.0/16", "eu-west-1"),
            ("36.0.0.0/8", "x"),
            ("37.0.0.0/8", "y"),
            ("38.0.0.0/8", "z"),
        ],
    );
    server.set("ip-ranges.json", &v5, "\"v5\"");
    let out = update();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(aws_region(&snapshot, "35.180.0.0/16"), "eu-west-1");
    let out = redirector(&["explain", "--snapshot", snap, "35.180.1.1"]);
    assert!(
        text(&out).contains("class    aws/eu-west-1"),
        "{}",
        text(&out)
    );

    // A server that is not there: a clear error, the snapshot kept.
    let gone = "aws=http://127.0.0.1:9/ip-ranges.json";
    let out = redirector(&[
        "ranges",
        "update",
        "--snapshot",
        snap,
        "--url",
        gone,
        "--timeout",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("fetching http://127.0.0.1:9/ip-ranges.json"),
        "{}",
        text(&out)
    );
    assert_eq!(aws_region(&snapshot, "35.180.0.0/16"), "eu-west-1");
}

#[test]
fn update_every_keeps_fetching_until_sigterm() {
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("ranges.snapshot");
    let feed = aws_feed("e1", &[("35.180.0.0/16", "eu-west-3")]);
    server.set("ip-ranges.json", &feed, "\"e1\"");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args(["ranges", "update", "--every", "300ms", "--snapshot"])
        .arg(&snapshot)
        .arg("--url")
        .arg(format!("aws={}", server.url("ip-ranges.json")))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while server.log().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fetched = server.log().len();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(fetched >= 3, "fetched {fetched} times in 15 s");
    assert!(status.success(), "{status}");
    assert_eq!(aws_region(&snapshot, "35.180.0.0/16"), "eu-west-3");
    // After the first, each fetch was conditional and answered 304.
    assert!(server.log()[1..].iter().all(|s| s.status == 304));
}

#[test]
fn update_uses_if_modified_since_without_an_etag() {
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("ranges.snapshot");
    let snap = snapshot.to_str().unwrap();
    let url = format!("gcp={}", server.url("cloud.json"));
    server.set(
        "cloud.json",
        r#"{"creationTime":"g1","prefixes":[{"ipv4Prefix":"34.35.0.0/16","service":"Google Cloud","scope":"africa-south1"}]}"#,
        "",
    );
    let update = || redirector(&["ranges", "update", "--snapshot", snap, "--url", &url]);
    let out = update();
    assert!(out.status.success(), "{}", text(&out));
    let s = Snapshot::read(&snapshot).unwrap();
    let origin = &s.feed(FeedKind::Gcp).unwrap().origin;
    assert_eq!(origin.etag, None);
    assert_eq!(origin.last_modified.as_deref(), Some(LAST_MODIFIED));
    let out = update();
    assert!(text(&out).contains("gcp: not modified"), "{}", text(&out));
    let last = server.log().pop().unwrap();
    assert_eq!((last.if_none_match, last.status), (None, 304));
    assert_eq!(last.if_modified_since.as_deref(), Some(LAST_MODIFIED));
}

#[test]
fn explain_answers_from_the_embedded_ranges_with_no_network() {
    let out = redirector(&[
        "explain",
        "--snapshot",
        "/nonexistent/ranges.snapshot",
        "35.180.1.1",
        "198.51.100.7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for want in [
        "35.180.1.1\n  prefix   35.180.0.0/16\n  class    aws/eu-west-3 (id ",
        "  service  AMAZON,EC2\n",
        "  feed     aws, created 2026-07-29-08-27-05, from embedded snapshot (https://ip-ranges.amazonaws.com/ip-ranges.json)\n",
        "  backend  aws-eu-west-3 https://prod-registry-k8s-io-eu-west-3.s3.dualstack.eu-west-3.amazonaws.com",
        "198.51.100.7\n  prefix   none: no feed lists this address\n  class    unknown (id 0)\n  backend  aws-default https://prod-registry-k8s-io-us-east-1.s3.dualstack.us-east-1.amazonaws.com (clients in no feed)",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
}

#[test]
fn explain_with_a_custom_list_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("sponsors.csv");
    std::fs::write(&custom, "# sponsors\n35.180.1.0/24,sponsor,paris,mirror\n").unwrap();
    let c = custom.to_str().unwrap();
    let out = redirector(&[
        "explain",
        "--snapshot",
        "/nonexistent/x",
        "--custom",
        c,
        "35.180.1.1",
    ]);
    assert!(
        text(&out).contains("class    sponsor/paris"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("backend  upstream registry"),
        "{}",
        text(&out)
    );

    std::fs::write(&custom, "35.180.1.0/24,sponsor\n").unwrap();
    let out = redirector(&[
        "explain",
        "--snapshot",
        "/nonexistent/x",
        "--custom",
        c,
        "35.180.1.1",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("{c}: custom: line 1: 2 fields")),
        "{}",
        text(&out)
    );
    let out = redirector(&["explain", "--feed", "digitalocean=x", "1.1.1.1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown feed `digitalocean`"),
        "{}",
        text(&out)
    );
}

#[test]
fn explain_shows_the_backend_of_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steer.toml");
    std::fs::write(
        &config,
        "[[backend]]\nname = \"paris\"\nbase_url = \"https://paris.example.org\"\nserves = [\"aws/eu-west-3\"]\n\n[policy]\ndrop = [\"aws/eu-west-3\"]\nsyn_rate = { default = \"100/s\" }\nrequest_rate = { \"aws/GLOBAL\" = \"6000/m\" }\nrequest_burst = { \"aws/GLOBAL\" = 50 }\n",
    )
    .unwrap();
    let out = redirector(&[
        "explain",
        "--snapshot",
        "/nonexistent/x",
        "--config",
        config.to_str().unwrap(),
        "35.180.1.1",
        "3.2.1.5",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("backend  paris https://paris.example.org (serves eu-west-3)"),
        "{t}"
    );
    assert!(
        t.contains("3.2.1.5\n") && t.contains("backend  upstream registry"),
        "{t}"
    );
    // The drop policy shows for its class only, the default SYN limit
    // for the other, and a request limit for the class that has one.
    assert_eq!(t.matches("policy   drop").count(), 1, "{t}");
    assert!(
        t.contains(
            "policy   SYNs: 100/s per source, 100 at once; XDP drops the rest ([policy] syn_rate)"
        ),
        "{t}"
    );
    assert_eq!(t.matches("policy   SYNs").count(), 1, "{t}");
    assert!(
        t.contains(
            "policy   requests: 100/s per client, 50 at once; then 429 ([policy] request_rate)"
        ),
        "{t}"
    );
}
