//! `cargo xtask setup`: what a fresh Debian 12 machine needs to build and
//! test steer. Each step checks first and skips what is present.

use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// Debian packages: LLVM 22 for bpf-linker (it must match the LLVM of the
/// nightly rustc that emits the eBPF bitcode), bpftool and iproute2 for
/// inspecting and for the namespace tests, util-linux for `nsenter`,
/// openssl and curl for the TLS test (a throwaway certificate, an HTTP/2
/// client); the real servers and clients of the end-to-end pulls and the
/// demo: the distribution registry, nginx, skopeo and containerd; the
/// peers and the load generator of `bench http`: HAProxy and wrk, and
/// its counting tools, strace and valgrind (callgrind);
/// systemd for `systemd-analyze verify` of the units in deploy/systemd;
/// python3-venv for moto, the S3-compatible server of the sync tests;
/// podman for `cargo xtask image` and its test; Prometheus (the
/// server that scrapes the end-to-end pulls, and promtool for the alert
/// rules) and Chromium (the headless browser that renders `/report`).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "util-linux",
    "openssl",
    "curl",
    "docker-registry",
    "nginx-light",
    "skopeo",
    "containerd",
    "haproxy",
    "wrk",
    "strace",
    "valgrind",
    "systemd",
    "python3-venv",
    "podman",
    "prometheus",
    "chromium",
];

/// moto (PyPI), the S3-compatible server the sync tests start, when the
/// machine has no `moto_server`: installed into its own venv here, where
/// the tests look for it (steer_tests::mirrors::MOTO_VENV).
const MOTO_VENV: &str = "/opt/steer-moto";
const MOTO_REQUIREMENT: &str = "moto[server]>=5.1,<6";

/// Debian's hook that tells package scripts whether they may start
/// services. The tests start every server themselves, in namespaces.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_FEATURE: &str = "llvm-22";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cargo xtask setup`: report each step.
    Install,
    /// Before build/test/run/bench: quiet unless something is missing.
    IfMissing,
}

pub fn run(mode: Mode) -> Result<()> {
    let say = |msg: &str| {
        if mode == Mode::Install {
            eprintln!("setup: {msg}");
        }
    };

    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !deb_installed(p))
        .collect();
    if missing.is_empty() {
        say("apt packages present");
    } else {
        need_root(&format!("installing {}", missing.join(" ")))?;
        eprintln!("setup: installing apt packages: {}", missing.join(" "));
        sh(Command::new("apt-get").arg("update").arg("-qq"))?;
        let _no_services = NoServiceStarts::new()?;
        sh(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }

    if nightly_has_rust_src() {
        say("rust-src for nightly present");
    } else {
        eprintln!("setup: adding rust-src to the nightly toolchain");
        sh(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }

    if answers("bpf-linker", &["--version"]) {
        say("bpf-linker present");
    } else {
        eprintln!("setup: installing bpf-linker against LLVM 22 (about 90 s)");
        sh(
            Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["install", "bpf-linker", "--locked", "--no-default-features"])
                .args(["--features", BPF_LINKER_FEATURE])
                .env("LLVM_PREFIX", LLVM_PREFIX),
        )?;
    }

    let venv_moto = format!("{MOTO_VENV}/bin/moto_server");
    if answers("moto_server", &["--help"]) || answers(&venv_moto, &["--help"]) {
        say("moto_server present");
    } else {
        need_root("installing moto")?;
        eprintln!("setup: installing {MOTO_REQUIREMENT} into {MOTO_VENV} (about a minute)");
        sh(Command::new("/usr/bin/python3").args(["-m", "venv", MOTO_VENV]))?;
        sh(Command::new(format!("{MOTO_VENV}/bin/pip")).args(["install", "-q", MOTO_REQUIREMENT]))?;
    }

    if is_root() {
        if bpffs_mounted() {
            say("bpffs mounted at /sys/fs/bpf");
        } else {
            eprintln!("setup: mounting bpffs at /sys/fs/bpf");
            sh(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
        }
    }
    say("done");
    Ok(())
}

/// While it lives, package installs start no services (nginx, the
/// registry and containerd would otherwise start on the host's ports).
/// A policy the machine already has is left as it is.
struct NoServiceStarts {
    ours: bool,
}

impl NoServiceStarts {
    fn new() -> Result<NoServiceStarts> {
        use std::os::unix::fs::PermissionsExt as _;
        if std::path::Path::new(POLICY_RC_D).exists() {
            return Ok(NoServiceStarts { ours: false });
        }
        std::fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# cargo xtask setup: no service starts during its install\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {POLICY_RC_D} executable"))?;
        Ok(NoServiceStarts { ours: true })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.ours {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn need_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!("{what} needs root: run `cargo xtask setup` as root");
    }
    Ok(())
}

fn deb_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"installed"))
}

fn nightly_has_rust_src() -> bool {
    Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.starts_with("rust-src"))
        })
}

fn answers(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
    })
}

fn sh(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}
