//! Operator conveniences of the CLI: `check-config` (every key's value and
//! origin), `--version` with the embedded ranges' dates, JSON logs, and
//! `report`'s errors, which name the source that failed.

use std::process::{Command, Output};

use steer_tests::process::text;

fn redirector(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args(args)
        .env_remove("UPSTREAM_REGISTRY_ENDPOINT")
        .env_remove("UPSTREAM_REGISTRY_PATH")
        .env_remove("STEER_CONFIG")
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .output()
        .expect("redirector")
}

#[test]
fn check_config_shows_each_value_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steer.toml");
    std::fs::write(
        &file,
        "[upstream]\npath = \"mirror\"\n[server]\nidle_timeout = \"30s\"\n[policy]\ndrop = [\"aws/x\"]\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = redirector(
        &["check-config", file],
        &[
            ("UPSTREAM_REGISTRY_ENDPOINT", "https://env.example"),
            ("UPSTREAM_REGISTRY_PATH", "overridden"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    let row = |key: &str| {
        t.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {key} in\n{t}"))
    };
    assert_eq!(row("upstream"), "env https://env.example");
    assert_eq!(
        row("upstream_path"),
        "file mirror",
        "the file wins over env"
    );
    assert_eq!(row("idle_timeout"), "file 30s");
    assert_eq!(row("header_timeout"), "default 10s");
    assert_eq!(row("drop"), "file [aws/x]");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nidle_timeout = \"0\"\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    let out = redirector(&["check-config", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("server.idle_timeout"), "{}", text(&out));
}

#[test]
fn version_names_the_embedded_ranges() {
    let out = redirector(&["--version"], &[]);
    assert!(out.status.success());
    let t = text(&out);
    assert!(
        t.starts_with(&format!("redirector {}", env!("CARGO_PKG_VERSION"))),
        "{t}"
    );
    assert!(t.contains("embedded ranges: aws 2026-07-29"), "{t}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = redirector(
        &[
            "--log-format",
            "json",
            "explain",
            "--snapshot",
            "/nonexistent/x",
            "1.1.1.1",
        ],
        &[("RUST_LOG", "info")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.trim().is_empty(), "no log lines");
    for line in logs.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains(r#""level":"INFO""#),
            "{line}"
        );
    }
}

#[test]
fn report_errors_name_the_source() {
    let server = steer_tests::feed_server::FeedServer::start();
    server.set("metrics", "steer_requests_total{route=\"blob\" 1\n", "");
    let bad_metrics = server.url("metrics");
    let not_prometheus = server.url("");
    let cases: [(&str, Vec<&str>, i32, &str); 6] = [
        ("no source", vec![], 2, "--prometheus"),
        (
            "two sources",
            vec![
                "--prometheus",
                "http://127.0.0.1:1",
                "--metrics",
                "http://127.0.0.1:1",
            ],
            2,
            "cannot be used with",
        ),
        (
            "a window of nothing",
            vec!["--prometheus", "http://127.0.0.1:1", "--since", "0s"],
            2,
            "--since",
        ),
        (
            "nothing listens",
            vec!["--metrics", "http://127.0.0.1:1", "--timeout", "2s"],
            1,
            "http://127.0.0.1:1/metrics",
        ),
        (
            "not an exposition",
            vec!["--metrics", &bad_metrics],
            1,
            "metrics: line 1: a label without `=`",
        ),
        (
            "not a Prometheus server",
            vec!["--prometheus", &not_prometheus, "--since", "1h"],
            1,
            "/api/v1/query_range?query=sum+by",
        ),
    ];
    for (name, args, code, says) in cases {
        let mut all = vec!["report"];
        all.extend(args);
        let out = redirector(&all, &[]);
        assert_eq!(out.status.code(), Some(code), "{name}: {}", text(&out));
        assert!(
            text(&out).contains(says),
            "{name}: no `{says}` in {}",
            text(&out)
        );
    }
}
