//! `cargo xtask bench sync`: filling an empty filesystem mirror with every
//! blob of an image set, `redirector sync` against `skopeo sync` (to a
//! directory) from the same docker-registry in the same run, plus the
//! no-op rerun of `redirector sync` (skopeo has none to a directory: it
//! refuses to overwrite one). All in a private namespace on loopback.
//!
//! The set: `STEER_BENCH_IMAGES` (default 6) two-platform images, each
//! platform with three layers of `STEER_BENCH_LAYER_KIB` (default 2048)
//! KiB. `STEER_BENCH_ROUNDS` (default 3) rounds, the tools taking turns;
//! medians, and their ratios to skopeo's. Prints a Markdown table and
//! writes `target/bench-sync.json`. Needs root; `STEER_REDIRECTOR_BIN`
//! names the binary (`cargo xtask bench sync` builds it).

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use steer_tests::{
    http_bench::load::wait_quiet,
    mirrors::HOST,
    netns::Netns,
    process::{is_root, run_bounded, text},
    pulls::{clients::skopeo, oci::MultiArch, servers::Registry},
};

const LIMIT: Duration = Duration::from_secs(600);

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !is_root() {
        eprintln!("bench sync: needs root (namespaces)");
        std::process::exit(1);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let redirector: PathBuf = std::env::var_os("STEER_REDIRECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release/redirector"));
    assert!(
        redirector.exists(),
        "{} is missing (cargo xtask bench sync builds it)",
        redirector.display()
    );
    let images = env_or("STEER_BENCH_IMAGES", 6);
    let layer = env_or("STEER_BENCH_LAYER_KIB", 2048) << 10;
    let rounds = env_or("STEER_BENCH_ROUNDS", 3).max(1);

    let dir = tempfile::Builder::new()
        .prefix("steer-bench-sync-")
        .tempdir()
        .unwrap();
    let ns = Netns::new("bsync");
    let registry = Registry::start(&ns, dir.path(), HOST);
    let mut blobs = 0usize;
    let mut bytes = 0u64;
    let mut yaml = format!("{HOST}:5000:\n  tls-verify: false\n  images:\n");
    let mut images_toml = String::new();
    for i in 0..images {
        let name = format!("bench/image-{i}");
        let img = MultiArch::build(
            dir.path(),
            &name,
            "1.0",
            1000 + 10 * i as u64,
            &[("linux", "amd64"), ("linux", "arm64")],
            &[layer, layer, layer],
        );
        blobs += img.blobs.len();
        bytes += img.blobs.iter().map(|b| b.bytes.len() as u64).sum::<u64>();
        skopeo(
            &ns,
            dir.path(),
            &[
                "copy".into(),
                "--quiet".into(),
                "--all".into(),
                "--dest-tls-verify=false".into(),
                "--preserve-digests".into(),
                format!("oci:{}:1.0", img.layout.display()),
                format!("docker://{HOST}:5000/{name}:1.0"),
            ],
        )
        .unwrap_or_else(|e| panic!("pushing {name}: {e}"));
        yaml.push_str(&format!("    {name}: [\"1.0\"]\n"));
        images_toml.push_str(&format!(
            "[[image]]\nname = \"{name}\"\ntags = [\"1.0\"]\n\n"
        ));
    }
    let yaml_path = dir.path().join("skopeo-sync.yaml");
    fs::write(&yaml_path, &yaml).unwrap();
    let images_path = dir.path().join("images.toml");
    fs::write(&images_path, &images_toml).unwrap();
    eprintln!(
        "bench sync: {images} images, {blobs} blobs, {} MiB",
        bytes >> 20
    );

    let mut steer_first = Vec::new();
    let mut steer_rerun = Vec::new();
    let mut skopeo_first = Vec::new();
    for round in 0..rounds {
        if !wait_quiet(0.3, Duration::from_secs(30)) {
            eprintln!("bench sync: the machine is busy; numbers will be noisy");
        }
        let mirror = dir.path().join(format!("steer-{round}"));
        let config = dir.path().join(format!("steer-{round}.toml"));
        fs::write(
            &config,
            format!(
                "[upstream]\nregistry = \"{}\"\npath = \"\"\n\n[[backend]]\nname = \"bench\"\nbase_url = \"http://{HOST}:1\"\nstore = \"file://{}\"\n",
                registry.url,
                mirror.display()
            ),
        )
        .unwrap();
        let run_steer = || {
            let mut cmd = ns.command(&redirector);
            cmd.args(["sync", "--config"])
                .arg(&config)
                .arg("--images")
                .arg(&images_path)
                .args(["--max-rps", "0"]);
            let start = Instant::now();
            let out = run_bounded(&mut cmd, LIMIT)
                .unwrap_or_else(|o| panic!("redirector sync ran over: {}", text(&o)));
            assert!(
                out.status.success(),
                "redirector sync failed: {}",
                text(&out)
            );
            start.elapsed().as_secs_f64()
        };
        let skopeo_dest = dir.path().join(format!("skopeo-{round}"));
        fs::create_dir_all(&skopeo_dest).unwrap();
        let run_skopeo = || {
            let start = Instant::now();
            skopeo(
                &ns,
                dir.path(),
                &[
                    "sync".into(),
                    "--all".into(),
                    "--src".into(),
                    "yaml".into(),
                    "--dest".into(),
                    "dir".into(),
                    yaml_path.display().to_string(),
                    skopeo_dest.display().to_string(),
                ],
            )
            .unwrap_or_else(|e| panic!("skopeo sync: {e}"));
            start.elapsed().as_secs_f64()
        };
        // Turns alternate so neither always runs on a warmer page cache.
        if round % 2 == 0 {
            steer_first.push(run_steer());
            skopeo_first.push(run_skopeo());
        } else {
            skopeo_first.push(run_skopeo());
            steer_first.push(run_steer());
        }
        steer_rerun.push(run_steer());
        let copied = fs::read_dir(mirror.join("containers/images"))
            .unwrap()
            .count();
        assert_eq!(copied, blobs, "redirector sync left blobs out");
        let _ = fs::remove_dir_all(&mirror);
        let _ = fs::remove_dir_all(&skopeo_dest);
    }
    let (sf, sr, kf) = (
        median(steer_first),
        median(steer_rerun),
        median(skopeo_first),
    );
    let mib = bytes as f64 / f64::from(1 << 20);
    println!(
        "\n{images} two-platform images, {blobs} blobs, {mib:.0} MiB; median of {rounds} rounds\n"
    );
    println!("| run | redirector sync s | skopeo sync s | skopeo / redirector |");
    println!("|---|---|---|---|");
    println!("| first fill | {sf:.2} | {kf:.2} | {:.1}x |", kf / sf);
    println!("| no-op rerun | {sr:.2} | n/a | |");
    println!("\nredirector rerun / first fill: {:.3}x", sr / sf);
    let json = serde_json::json!({
        "images": images, "blobs": blobs, "bytes": bytes, "rounds": rounds,
        "redirector": {"first_s": sf, "rerun_s": sr},
        "skopeo": {"first_s": kf},
        "first_fill_speedup": kf / sf,
        "rerun_over_first": sr / sf,
    });
    let out = workspace.join("target/bench-sync.json");
    fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    eprintln!("bench sync: wrote {}", out.display());
}
