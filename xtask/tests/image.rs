//! `cargo xtask image` builds an image (podman, FROM scratch) that runs:
//! `redirector explain 35.180.1.1` inside it answers from the embedded
//! ranges as the binary does outside. Root and podman (`cargo xtask
//! setup` installs it); the container has no network. The image is
//! removed at the end, on failure too.

use std::process::Command;

struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.0])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn the_image_runs_explain() {
    if !is_root() {
        assert_ne!(
            std::env::var("STEER_REQUIRE_XDP").as_deref(),
            Ok("1"),
            "the image test needs root (podman), and STEER_REQUIRE_XDP=1"
        );
        eprintln!("SKIPPED the_image_runs_explain: needs root for podman");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The binary `cargo test --workspace` built for redirector's own tests.
    let binary = root.join("target/debug/redirector");
    assert!(
        binary.exists(),
        "{} is missing: run through cargo test --workspace",
        binary.display()
    );
    let tag = format!("localhost/steer-image-test:{}", std::process::id());
    let _cleanup = RemoveImage(tag.clone());
    let built = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["image", "--binary"])
        .arg(&binary)
        .args(["--tag", &tag])
        .output()
        .expect("running xtask image");
    assert!(
        built.status.success(),
        "xtask image failed: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new("podman")
        .args(["run", "--rm", "--network", "none"])
        // The defaults exceed this VM's limits and runc refuses them.
        .args([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .args([&tag, "explain", "35.180.1.1"])
        .output()
        .expect("running podman");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let outside = Command::new(&binary)
        .args(["explain", "35.180.1.1"])
        .output()
        .expect("running redirector");
    assert_eq!(
        out,
        String::from_utf8_lossy(&outside.stdout),
        "inside and outside differ"
    );
    assert!(out.contains("class    aws/eu-west-3"), "{out}");
    assert!(out.contains("backend  aws-eu-west-3"), "{out}");
}
