//! `redirector sync` and `audit` against real parts: Debian's
//! docker-registry upstream (a two-platform index, a cosign-style
//! signature tag, a plain image), nginx serving a `file://` store and
//! moto's S3-compatible server, all in a namespace of the test's own.
//! Then skopeo pulls through `redirector serve` and the mirrors' access
//! logs show every blob came from them. Fault cases: a corrupted upstream
//! blob, a sync killed mid-way, an S3 endpoint down, an upstream
//! answering 429, a blob deleted from one mirror.

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use steer_tests::{
    launch::{Launch, Redirector},
    mirrors::{
        DOWN_PORT, Fleet, S3_PORT,
        proxy::{Gate, Proxy},
    },
    process::{Running, root_or_skip, text},
    pulls::{oci::sha256, servers::settled},
};

const BIN: &str = env!("CARGO_BIN_EXE_redirector");
const LIMIT: Duration = Duration::from_secs(120);

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {}", text(o)))
}

fn backend<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {report}"))
}

fn sync(fleet: &Fleet, config: &Path, extra: &[&str]) -> Output {
    let images = fleet.images_file();
    let mut args = vec![
        "sync",
        "--config",
        config.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    fleet.run(Path::new(BIN), &args, LIMIT)
}

fn audit(fleet: &Fleet, config: &Path, extra: &[&str]) -> Output {
    let images = fleet.images_file();
    let mut args = vec![
        "audit",
        "--config",
        config.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    fleet.run(Path::new(BIN), &args, LIMIT)
}

/// `command` (sync or audit) in table mode, printed for the docs: its
/// exit code and stdout.
fn table(fleet: &Fleet, command: &str, config: &Path) -> (i32, String) {
    let images = fleet.images_file();
    let args = [
        command,
        "--config",
        config.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
    ];
    let out = fleet.run(Path::new(BIN), &args, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ redirector {command} --config steer.toml --images images.toml\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code(&out), stdout)
}

fn all_digests(fleet: &Fleet) -> BTreeSet<String> {
    fleet.blobs().iter().map(|b| b.digest.clone()).collect()
}

fn serve(fleet: &Fleet, config: &Path) -> Redirector {
    Redirector::start(
        Some(&fleet.ns),
        &Launch {
            binary: BIN.into(),
            args: [
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ]
            .map(String::from)
            .to_vec(),
            log: fleet.dir.path().join("serve.log"),
            ..Launch::default()
        },
    )
}

/// GETs of blob `d` that `accesses` logged with status 200.
fn served(accesses: &[steer_tests::pulls::servers::Access], d: &str) -> usize {
    accesses
        .iter()
        .filter(|a| a.method == "GET" && a.status == 200 && a.path.ends_with(d))
        .count()
}

#[test]
fn sync_fills_both_stores_and_pulls_come_from_them() {
    if !root_or_skip("sync_fills_both_stores_and_pulls_come_from_them") {
        return;
    }
    let fleet = Fleet::start();
    let config = fleet.config("steer.toml", "files", S3_PORT);
    let want = all_digests(&fleet);
    let bytes: u64 = fleet.blobs().iter().map(|b| b.bytes.len() as u64).sum();
    // Both platforms' configs and layers, and the signature's.
    assert_eq!(want.len(), 2 * 3 + 2 + 2, "{want:?}");

    let dry = sync(&fleet, &config, &["--dry-run"]);
    assert_eq!(
        code(&dry),
        1,
        "a dry run with blobs missing: {}",
        text(&dry)
    );
    let report = json(&dry);
    for name in ["files", "s3"] {
        let b = backend(&report, name);
        assert_eq!(b["missing"].as_array().unwrap().len(), want.len(), "{b}");
        assert_eq!(b["missing_bytes"], bytes, "{b}");
        assert_eq!(b["copied"], 0, "{b}");
    }
    assert!(
        fleet
            .file_object(fleet.plain.blobs[1].digest.as_str())
            .is_none()
    );

    let first = sync(&fleet, &config, &[]);
    assert_eq!(code(&first), 0, "{}", text(&first));
    let report = json(&first);
    assert_eq!(report["blobs"], want.len(), "{report}");
    for name in ["files", "s3"] {
        let b = backend(&report, name);
        assert_eq!(b["copied"], want.len(), "{b}");
        assert_eq!(b["copied_bytes"], bytes, "{b}");
    }
    for blob in fleet.blobs() {
        assert_eq!(
            fleet.file_object(&blob.digest).as_ref(),
            Some(&blob.bytes),
            "file {}",
            blob.digest
        );
        assert_eq!(
            fleet.s3_object(&blob.digest).as_ref(),
            Some(&blob.bytes),
            "s3 {}",
            blob.digest
        );
    }

    // The rerun moves nothing: no blob is fetched upstream again.
    let gets_before = settled(|| fleet.registry.accesses()).len();
    let again = sync(&fleet, &config, &[]);
    assert_eq!(code(&again), 0, "{}", text(&again));
    let report = json(&again);
    for name in ["files", "s3"] {
        let b = backend(&report, name);
        assert_eq!(
            (b["copied"].as_u64(), b["skipped"].as_u64()),
            (Some(0), Some(want.len() as u64)),
            "{b}"
        );
    }
    let blob_gets = settled(|| fleet.registry.accesses())[gets_before..]
        .iter()
        .filter(|a| a.path.contains("/blobs/"))
        .count();
    assert_eq!(blob_gets, 0, "a no-op rerun fetched blobs upstream");

    let checked = audit(&fleet, &config, &["--verify"]);
    assert_eq!(code(&checked), 0, "{}", text(&checked));
    assert_eq!(backend(&json(&checked), "s3")["present"], want.len());

    // The tables people read (docs/mirrors.md shows these).
    let (fresh, _) = fleet.fresh_config("table", &fleet.registry.url);
    let (status, stdout) = table(&fleet, "sync", &fresh);
    assert_eq!(status, 0, "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("fresh "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        row.split_whitespace().nth(2),
        Some(want.len().to_string().as_str()),
        "{row}"
    );
    let (status, stdout) = table(&fleet, "audit", &config);
    assert_eq!(status, 0, "{stdout}");
    let n = want.len();
    for name in ["files", "s3"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(row.contains(&format!("{n}/{n}")), "{row}");
    }

    // Pulls through serve: every blob of both platforms from the mirror.
    for (name, unknown) in [("files", "files"), ("s3", "s3")] {
        let config = fleet.config(&format!("serve-{name}.toml"), unknown, S3_PORT);
        let redirector = serve(&fleet, &config);
        let registry_before = settled(|| fleet.registry.accesses()).len();
        fleet
            .pull_all(redirector.addr, &fleet.index.name, &fleet.index.tag)
            .unwrap_or_else(|e| panic!("pull via {name}: {e}"));
        let mirror = settled(|| {
            if name == "files" {
                fleet.files.accesses()
            } else {
                fleet.s3.accesses()
            }
        });
        for blob in &fleet.index.blobs {
            assert!(
                served(&mirror, &blob.digest) >= 1,
                "{name} did not serve {}",
                blob.digest
            );
        }
        let upstream_blobs = settled(|| fleet.registry.accesses())[registry_before..]
            .iter()
            .filter(|a| a.path.contains("/blobs/"))
            .count();
        assert_eq!(
            upstream_blobs, 0,
            "a pull via {name} fetched blobs upstream"
        );
    }
}

#[test]
fn a_corrupted_upstream_blob_is_never_visible_and_audit_names_a_deleted_one() {
    if !root_or_skip("a_corrupted_upstream_blob_is_never_visible_and_audit_names_a_deleted_one") {
        return;
    }
    let fleet = Fleet::start();
    let config = fleet.config("steer.toml", "files", S3_PORT);
    let want = all_digests(&fleet);
    // The big layer of the first platform: larger than nothing buffered.
    let bad = fleet.index.blobs[1].clone();
    let stored = fleet.registry_blob(&bad.digest);
    let mut corrupted = bad.bytes.clone();
    corrupted[100] ^= 0xff;
    std::fs::write(&stored, &corrupted).expect("corrupting the registry's copy");

    let out = sync(&fleet, &config, &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    for name in ["files", "s3"] {
        let b = backend(&report, name);
        let failed = b["failed"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{b}");
        assert_eq!(failed[0]["digest"], bad.digest.as_str());
        let reason = failed[0]["reason"].as_str().unwrap();
        assert!(reason.contains(&sha256(&corrupted)), "{reason}");
        assert_eq!(b["copied"], want.len() - 1, "{b}");
    }
    assert!(
        fleet.file_object(&bad.digest).is_none(),
        "a corrupted blob at its final key"
    );
    assert!(
        fleet.s3_object(&bad.digest).is_none(),
        "a corrupted blob in S3"
    );
    let leftovers: Vec<String> = std::fs::read_dir(fleet.files.www().join("containers/images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&bad.digest))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    std::fs::write(&stored, &bad.bytes).expect("repairing the registry's copy");
    let out = sync(&fleet, &config, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(backend(&json(&out), "files")["copied"], 1);

    let gone = fleet.plain.blobs[0].digest.clone();
    std::fs::remove_file(fleet.files.www().join("containers/images").join(&gone)).unwrap();
    let out = audit(&fleet, &config, &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        backend(&report, "files")["missing"],
        serde_json::json!([gone])
    );
    assert_eq!(backend(&report, "s3")["missing"], serde_json::json!([]));

    // A backend whose base_url points at a bucket nobody created.
    let nowhere = fleet.dir.path().join("nowhere.toml");
    let text_of = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &nowhere,
        text_of.replace("9000/mirror\"", "9000/never-created\""),
    )
    .unwrap();
    let out = audit(&fleet, &nowhere, &["--backend", "s3"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["backends"].as_array().unwrap().len(), 1);
    assert_eq!(backend(&report, "s3")["serves_none"], true, "{report}");

    let (status, stdout) = table(&fleet, "audit", &config);
    assert_eq!(status, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("missing: files {gone}")),
        "{stdout}"
    );
}

#[test]
fn a_killed_sync_resumes_with_only_the_missing_blobs() {
    if !root_or_skip("a_killed_sync_resumes_with_only_the_missing_blobs") {
        return;
    }
    let fleet = Fleet::start();
    let config = fleet.config("steer.toml", "files", S3_PORT);
    let want = all_digests(&fleet);
    let images = fleet.images_file();
    // One blob at a time, slowly, so the kill lands mid-way.
    let mut cmd = fleet.ns.command(BIN);
    cmd.args([
        "sync",
        "--config",
        config.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
    ])
    .args(["--jobs", "1", "--max-rps", "4"])
    .env("AWS_ACCESS_KEY_ID", "steer-test")
    .env("AWS_SECRET_ACCESS_KEY", "steer-test")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = Running(cmd.spawn().expect("starting sync"));
    let stderr = child.0.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut copied_lines = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(": copied ") {
            copied_lines += 1;
        }
        if copied_lines >= 3 || Instant::now() > deadline {
            break;
        }
    }
    assert!(copied_lines >= 3, "the sync copied nothing before the kill");
    child.signal(libc::SIGKILL);
    let _ = child.0.wait();

    let present_files: BTreeSet<String> = want
        .iter()
        .filter(|d| fleet.file_object(d).is_some())
        .cloned()
        .collect();
    let present_s3: BTreeSet<String> = want
        .iter()
        .filter(|d| fleet.s3_object(d).is_some())
        .cloned()
        .collect();
    assert!(
        present_files.len() < want.len(),
        "the kill came after the end"
    );
    // Whatever is at a final key is whole and right.
    for blob in fleet.blobs() {
        if let Some(bytes) = fleet.file_object(&blob.digest) {
            assert_eq!(bytes, blob.bytes, "{}", blob.digest);
        }
    }
    let registry_before = settled(|| fleet.registry.accesses()).len();
    let out = sync(&fleet, &config, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = json(&out);
    for (name, present) in [("files", &present_files), ("s3", &present_s3)] {
        let b = backend(&report, name);
        assert_eq!(b["skipped"], present.len(), "{name}: {b}");
        assert_eq!(b["copied"], want.len() - present.len(), "{name}: {b}");
    }
    // Fetched again upstream: only blobs some store lacked.
    let refetched: BTreeSet<String> = settled(|| fleet.registry.accesses())[registry_before..]
        .iter()
        .filter(|a| a.method == "GET" && a.path.contains("/blobs/"))
        .map(|a| a.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    let lacking: BTreeSet<String> = want
        .iter()
        .filter(|d| !present_files.contains(*d) || !present_s3.contains(*d))
        .cloned()
        .collect();
    assert_eq!(refetched, lacking);
}

#[test]
fn an_s3_endpoint_down_fails_alone_and_429s_are_retried() {
    if !root_or_skip("an_s3_endpoint_down_fails_alone_and_429s_are_retried") {
        return;
    }
    let fleet = Fleet::start();
    let want = all_digests(&fleet);
    let down = fleet.config("down.toml", "files", DOWN_PORT);
    let out = sync(&fleet, &down, &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let report = json(&out);
    let s3 = backend(&report, "s3");
    assert!(
        s3["error"].as_str().is_some_and(|e| e.contains("s3")),
        "{s3}"
    );
    assert_eq!(backend(&report, "files")["copied"], want.len());

    // Through a proxy that refuses bursts with 429 and Retry-After: 1.
    let proxy = Proxy::start(
        &fleet.ns,
        fleet.dir.path(),
        5001,
        &fleet.registry.url,
        Gate::RateLimit,
    );
    let (config, fresh) = fleet.fresh_config("busy", &proxy.url);
    let out = sync(&fleet, &config, &["--max-rps", "0", "--retries", "10"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = json(&out);
    assert_eq!(backend(&report, "fresh")["copied"], want.len(), "{report}");
    assert!(report["retries"].as_u64().unwrap() > 0, "{report}");
    assert!(proxy.answered(429) > 0, "the proxy refused nothing");
    assert_store_holds_every_blob(&fleet, &fresh);

    // Two shards fill one store between them, without overlap.
    let (config, store) = fleet.fresh_config("sharded", &fleet.registry.url);
    let mut copied = 0;
    for shard in ["0/2", "1/2"] {
        let out = sync(&fleet, &config, &["--shard", shard]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let r = json(&out);
        let b = backend(&r, "fresh");
        assert_eq!(b["skipped"], 0, "shard {shard} saw the other's blobs: {b}");
        copied += b["copied"].as_u64().unwrap();
    }
    assert_eq!(copied, want.len() as u64);
    assert_store_holds_every_blob(&fleet, &store);
}

fn assert_store_holds_every_blob(fleet: &Fleet, store: &Path) {
    for blob in fleet.blobs() {
        let got = std::fs::read(store.join("containers/images").join(&blob.digest))
            .unwrap_or_else(|e| panic!("{} not in {}: {e}", blob.digest, store.display()));
        assert_eq!(got, blob.bytes, "{}", blob.digest);
    }
}

#[test]
fn upstreams_that_ask_for_basic_credentials_or_a_bearer_token() {
    if !root_or_skip("upstreams_that_ask_for_basic_credentials_or_a_bearer_token") {
        return;
    }
    let fleet = Fleet::start();
    let basic = Proxy::start(
        &fleet.ns,
        fleet.dir.path(),
        5002,
        &fleet.registry.url,
        Gate::Basic {
            user: "ann".into(),
            password: "s3cret".into(),
        },
    );
    let images = fleet.images_file();
    let run = |config: &Path, env: &[(&str, &str)]| {
        fleet.run_with(
            Path::new(BIN),
            &[
                "sync",
                "--config",
                config.to_str().unwrap(),
                "--images",
                images.to_str().unwrap(),
                "--json",
            ],
            env,
            LIMIT,
        )
    };

    let (config, _) = fleet.fresh_config("anonymous", &basic.url);
    let out = run(&config, &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        json(&out)["errors"].to_string().contains("no credentials"),
        "{}",
        text(&out)
    );

    let (config, store) = fleet.fresh_config("env-credentials", &basic.url);
    let out = run(
        &config,
        &[
            ("STEER_UPSTREAM_USERNAME", "ann"),
            ("STEER_UPSTREAM_PASSWORD", "s3cret"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_store_holds_every_blob(&fleet, &store);

    // A docker config file, keyed by the upstream's host:port.
    let docker = fleet.dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        r#"{"auths": {"127.0.0.1:5002": {"auth": "YW5uOnMzY3JldA=="}}}"#,
    )
    .unwrap();
    let (config, store) = fleet.fresh_config("docker-config", &basic.url);
    let out = run(&config, &[("DOCKER_CONFIG", docker.to_str().unwrap())]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_store_holds_every_blob(&fleet, &store);

    let bearer = Proxy::start(
        &fleet.ns,
        fleet.dir.path(),
        5003,
        &fleet.registry.url,
        Gate::Bearer {
            token: "t0ken".into(),
        },
    );
    let (config, store) = fleet.fresh_config("bearer", &bearer.url);
    let out = run(&config, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_store_holds_every_blob(&fleet, &store);
    let log = settled(|| bearer.accesses());
    assert!(
        log.iter()
            .any(|a| a.path.starts_with("/token?") && a.path.contains("scope=repository")),
        "no token request: {log:?}"
    );
    assert!(bearer.answered(401) > 0, "no challenge was answered");
}

#[test]
fn usage_and_config_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[[backend]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1\"\nstore = \"ftp://x\"\n",
    )
    .unwrap();
    let no_store = dir.path().join("n.toml");
    std::fs::write(&no_store, "[upstream]\nregistry = \"http://127.0.0.1:1\"\n[[backend]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1\"\n").unwrap();
    let cases: &[(&str, Vec<&str>, &str)] = &[
        (
            "bad scheme",
            vec!["sync", "--config", config.to_str().unwrap(), "pause:1"],
            "backend[0].store",
        ),
        (
            "no store",
            vec!["sync", "--config", no_store.to_str().unwrap(), "pause:1"],
            "no backend in the config has a store",
        ),
        (
            "no images",
            vec!["audit", "--config", no_store.to_str().unwrap()],
            "name images",
        ),
        (
            "bad image",
            vec!["audit", "--config", no_store.to_str().unwrap(), "Pause:1"],
            "not a repository name",
        ),
        (
            "bad shard",
            vec!["sync", "--shard", "4/4", "pause:1"],
            "K must be",
        ),
    ];
    for (name, args, want) in cases {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        assert_eq!(code(&out), 2, "{name}: {}", text(&out));
        assert!(text(&out).contains(want), "{name}: {}", text(&out));
    }
}
