//! Routing over the whole fleet with real servers: three nginx mirrors
//! placed in Paris, Virginia and Singapore (AWS regions), `redirector
//! serve` with `nearest = "geo"` and health checks, and clients whose
//! addresses a custom list places in AWS eu-south-2 (Spain), all on the
//! loopback of a namespace of the test's own. The nearest mirror serves;
//! stopped, it is skipped within a probe interval and the next nearest
//! serves (its access log), not upstream; started again, it serves again;
//! a blob it lacks goes to the next one alone; a backend with a wrong
//! ownership proof gets nothing but proof fetches; one past its daily
//! budget sends the rest on; and a real skopeo pull from a region whose
//! mirror just died gets every blob from the next nearest.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use steer_tests::{
    launch::{Launch, Redirector},
    loopback,
    netns::Netns,
    process::{root_or_skip, text},
    pulls::{
        clients::{skopeo, skopeo_pull},
        oci::{Image, sha256},
        redirector::{fetch_metrics, sample},
        servers::{Mirror, Registry, settled},
    },
};

const BIN: &str = env!("CARGO_BIN_EXE_redirector");
/// Spain: Paris is nearest, then Virginia, then Singapore.
const CLIENT: &str = "127.0.0.2";
const MIRRORS: [(&str, &str, &str); 4] = [
    ("paris", "127.0.0.11", "aws/eu-west-3"),
    ("virginia", "127.0.0.12", "aws/us-east-1"),
    ("singapore", "127.0.0.13", "aws/ap-southeast-1"),
    // Lists the clients' own region, but cannot prove it is ours.
    ("rogue", "127.0.0.14", "aws/eu-south-2"),
];
/// What every mirror's `steer-ownership` holds; the config expects it
/// of paris and something else of rogue.
const PROOF: &[u8] = b"steer fleet test\n";

fn config(dir: &Path, mirrors: &[Mirror]) -> String {
    let mut text = String::from("[upstream]\nregistry = \"http://127.0.0.1:1\"\n\n");
    let hex = |d: String| d.trim_start_matches("sha256:").to_owned();
    for (m, (name, _, serves)) in mirrors.iter().zip(MIRRORS) {
        text.push_str(&format!(
            "[[backend]]\nname = \"{name}\"\nbase_url = \"{}\"\nserves = [\"{serves}\"]\nhealth = {{ path = \"/containers/images/canary\", interval = \"500ms\", unhealthy_after = 2, healthy_after = 1 }}\n",
            m.url
        ));
        let proof = match name {
            "paris" => hex(sha256(PROOF)),
            "rogue" => hex(sha256(b"what the operator published")),
            _ => continue,
        };
        text.push_str(&format!(
            "proof = {{ path = \"containers/images/steer-ownership\", sha256 = \"{proof}\" }}\n\n"
        ));
    }
    text.push_str("[fallback]\nnearest = \"geo\"\nmax_candidates = 3\n");
    let path = dir.join("fleet.toml");
    std::fs::write(&path, &text).unwrap();
    path.display().to_string()
}

/// Where the redirector sends a blob request from `CLIENT`.
fn location(ns: &Netns, addr: SocketAddr, digest: &str) -> String {
    let path = format!("/v2/steer/app/blobs/{digest}");
    let (status, location, body) = ns
        .spawn(move || loopback::get(addr, CLIENT, "GET", &path))
        .join()
        .unwrap();
    assert_eq!(status, 307, "{body}");
    location.expect("a Location")
}

/// `redirector serve` in `ns` with `config` and the client list
/// `custom`, on ports the kernel picks.
fn serve(ns: &Netns, dir: &Path, config: impl AsRef<std::ffi::OsStr>, custom: &Path) -> Redirector {
    let arg = |p: &std::ffi::OsStr| p.to_string_lossy().into_owned();
    Redirector::start(
        Some(ns),
        &Launch {
            binary: BIN.into(),
            args: vec![
                "serve".into(),
                "--config".into(),
                arg(config.as_ref()),
                "--custom".into(),
                arg(custom.as_os_str()),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--admin-listen".into(),
                "127.0.0.1:0".into(),
            ],
            log: dir.join("serve.log"),
            ..Launch::default()
        },
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_next_nearest_mirror_serves_when_the_nearest_is_down_or_lacks_a_blob() {
    if !root_or_skip("the_next_nearest_mirror_serves_when_the_nearest_is_down_or_lacks_a_blob") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("fleet");
    let blobs: Vec<(String, Vec<u8>)> = (0..5u8)
        .map(|i| {
            let bytes = vec![i; 1000 + usize::from(i)];
            (sha256(&bytes), bytes)
        })
        .collect();
    let mut mirrors: Vec<Mirror> = MIRRORS
        .iter()
        .map(|(name, addr, _)| Mirror::new(dir.path(), name, addr))
        .collect();
    for m in &mut mirrors {
        m.put("canary", b"ok");
        m.put("steer-ownership", PROOF);
        for (d, b) in &blobs {
            m.put(d, b);
        }
        m.start(&ns);
    }
    let custom = dir.path().join("clients.csv");
    std::fs::write(&custom, format!("{CLIENT}/32,aws,eu-south-2\n")).unwrap();
    let config = config(dir.path(), &mirrors);
    // Probed from the namespace, where the mirrors are.
    let mut cmd = ns.command(BIN);
    cmd.args([
        "explain", CLIENT, "--probe", "--config", &config, "--custom",
    ])
    .arg(&custom);
    let explain = steer_tests::process::run_bounded(&mut cmd, Duration::from_secs(30)).unwrap();
    let shown = text(&explain);
    assert!(explain.status.success(), "{shown}");
    for want in [
        "backend  rogue",
        "[health not probed, unproven: ",
        "then     paris",
        "[healthy, proven]",
        "then     virginia",
        "geo: ",
    ] {
        assert!(shown.contains(want), "explain lacks `{want}`: {shown}");
    }

    let redirector = serve(&ns, dir.path(), &config, &custom);
    let up = |name: &str| {
        sample(
            &fetch_metrics(&ns, redirector.admin),
            &format!("steer_backend_up{{backend=\"{name}\"}}"),
        )
    };
    let at = |digest: &str| location(&ns, redirector.addr, digest);
    let mirror_of = |url: &str| {
        MIRRORS
            .iter()
            .find(|(_, addr, _)| url.starts_with(&format!("http://{addr}/")))
            .map_or("upstream", |(name, ..)| name)
    };

    let proven = |name: &str| {
        sample(
            &fetch_metrics(&ns, redirector.admin),
            &format!("steer_backend_proven{{backend=\"{name}\"}}"),
        )
    };
    wait_for("paris proven", || proven("paris") == 1.0);
    assert_eq!(mirror_of(&at(&blobs[0].0)), "paris");

    // The nearest stops: the next nearest serves, not upstream.
    mirrors[0].stop();
    wait_for("paris reported down", || up("paris") == 0.0);
    assert_eq!(mirror_of(&at(&blobs[1].0)), "virginia");
    // nginx writes its log line after it answered: wait for it.
    wait_for("virginia's log of the check", || {
        mirrors[1]
            .accesses()
            .iter()
            .any(|a| a.method == "HEAD" && a.path.ends_with(&blobs[1].0))
    });
    // It comes back.
    mirrors[0].start(&ns);
    wait_for("paris reported up", || up("paris") == 1.0);
    assert_eq!(mirror_of(&at(&blobs[2].0)), "paris");

    // A blob the nearest lacks goes on alone; the rest stays. (While it
    // was down it was skipped unchecked: no failover was counted.)
    mirrors[0].remove(&blobs[3].0);
    assert_eq!(mirror_of(&at(&blobs[3].0)), "virginia");
    assert_eq!(mirror_of(&at(&blobs[4].0)), "paris");
    let metrics = fetch_metrics(&ns, redirector.admin);
    assert!(
        sample(
            &metrics,
            "steer_backend_failovers_total{from=\"paris\",to=\"virginia\"}"
        ) == 1.0,
        "{metrics}"
    );
    // The backend with a wrong proof got nothing but proof fetches.
    assert_eq!(proven("rogue"), 0.0);
    let rogue = mirrors[3].accesses();
    assert!(!rogue.is_empty(), "rogue's proof was never fetched");
    assert!(
        rogue
            .iter()
            .all(|a| a.method == "GET" && a.path.ends_with("/steer-ownership")),
        "rogue got requests: {rogue:?}"
    );
    let log = redirector.log_text();
    assert_eq!(log.matches("ownership proof failed").count(), 1, "{log}");
    assert_eq!(log.matches("backend is unhealthy").count(), 1, "{log}");
    assert_eq!(log.matches("backend is healthy again").count(), 1, "{log}");
}

#[test]
fn a_backend_past_its_daily_budget_sends_the_rest_on() {
    if !root_or_skip("a_backend_past_its_daily_budget_sends_the_rest_on") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("budget");
    let blobs: Vec<String> = (0..5u8).map(|i| sha256(&[i; 1000])).collect();
    let mut mirrors: Vec<Mirror> = MIRRORS[..2]
        .iter()
        .map(|(name, addr, _)| Mirror::new(dir.path(), name, addr))
        .collect();
    for m in &mut mirrors {
        for (i, d) in blobs.iter().enumerate() {
            m.put(d, &[i as u8; 1000]);
        }
        m.start(&ns);
    }
    let config = dir.path().join("budget.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nregistry = \"http://127.0.0.1:1\"\n\n[[backend]]\nname = \"paris\"\nbase_url = \"{}\"\nserves = [\"aws/eu-west-3\"]\nmax_bytes_per_day = \"2500B\"\n\n[[backend]]\nname = \"virginia\"\nbase_url = \"{}\"\nserves = [\"aws/us-east-1\"]\n\n[fallback]\nnearest = \"geo\"\n",
            mirrors[0].url, mirrors[1].url
        ),
    )
    .unwrap();
    let custom = dir.path().join("clients.csv");
    std::fs::write(&custom, format!("{CLIENT}/32,aws,eu-south-2\n")).unwrap();
    let redirector = serve(&ns, dir.path(), &config, &custom);
    let served: Vec<bool> = blobs
        .iter()
        .map(|d| location(&ns, redirector.addr, d).starts_with(&mirrors[0].url))
        .collect();
    // 1000 bytes each: the third reaches 2500, the rest go to Virginia.
    assert_eq!(served, [true, true, true, false, false]);
    let metrics = fetch_metrics(&ns, redirector.admin);
    assert_eq!(
        sample(&metrics, "steer_backend_bytes_total{backend=\"paris\"}"),
        3000.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "steer_backend_over_budget{backend=\"paris\"}"),
        1.0,
        "{metrics}"
    );
}

#[test]
fn a_real_pull_from_a_region_whose_mirror_just_died_is_served_by_the_next() {
    if !root_or_skip("a_real_pull_from_a_region_whose_mirror_just_died_is_served_by_the_next") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("fleetpull");
    let registry = Registry::start(&ns, dir.path(), "127.0.0.1");
    let image = Image::build(dir.path(), "steer/fleet", "1.0", 77, &[30_000, 5_000]);
    skopeo(
        &ns,
        dir.path(),
        &[
            "copy".into(),
            "--quiet".into(),
            "--dest-tls-verify=false".into(),
            "--preserve-digests".into(),
            format!("oci:{}:1.0", image.layout.display()),
            "docker://127.0.0.1:5000/steer/fleet:1.0".into(),
        ],
    )
    .expect("pushing the image upstream");
    let mut mirrors: Vec<Mirror> = MIRRORS[..2]
        .iter()
        .map(|(name, addr, _)| Mirror::new(dir.path(), name, addr))
        .collect();
    for m in &mut mirrors {
        m.put("canary", b"ok");
        for b in &image.blobs {
            m.put(&b.digest, &b.bytes);
        }
        m.start(&ns);
    }
    let config = dir.path().join("pull.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nregistry = \"{}\"\npath = \"\"\n\n[[backend]]\nname = \"paris\"\nbase_url = \"{}\"\nserves = [\"aws/eu-west-3\"]\nhealth = {{ path = \"/containers/images/canary\", interval = \"1h\" }}\n\n[[backend]]\nname = \"virginia\"\nbase_url = \"{}\"\nserves = [\"aws/us-east-1\"]\n\n[fallback]\nnearest = \"geo\"\n",
            registry.url, mirrors[0].url, mirrors[1].url
        ),
    )
    .unwrap();
    // skopeo connects from 127.0.0.1: that address is the client in Spain.
    let custom = dir.path().join("clients.csv");
    std::fs::write(&custom, "127.0.0.1/32,aws,eu-south-2\n").unwrap();
    let redirector = serve(&ns, dir.path(), &config, &custom);
    // Paris dies; its hourly probe has not noticed: the pull's own blob
    // checks find it refusing and go on to Virginia.
    mirrors[0].stop();
    let reference = format!("{}/steer/fleet:1.0", redirector.addr);
    let digest = skopeo_pull(&ns, dir.path(), &reference).expect("the pull");
    assert_eq!(digest, image.manifest_digest);
    let virginia = settled(|| mirrors[1].accesses());
    for b in &image.blobs {
        assert!(
            virginia
                .iter()
                .any(|a| a.method == "GET" && a.status == 200 && a.path.ends_with(&b.digest)),
            "virginia did not serve {}: {virginia:?}",
            b.digest
        );
    }
    let upstream_blobs = settled(|| registry.accesses())
        .iter()
        .filter(|a| a.method == "GET" && a.path.contains("/blobs/"))
        .count();
    assert_eq!(upstream_blobs, 0, "blobs came from upstream");
}
