//! Developer tasks. Nothing here is needed at run time: `run` and `bench`
//! only build and start what the project's own crates provide.

mod image;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "steer developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (apt packages, rust-src for
    /// nightly, bpf-linker) and mount bpffs. Skips what is present.
    Setup,
    /// Build the workspace (release), eBPF included.
    Build,
    /// Run every test; as root the kernel tests must run (STEER_REQUIRE_XDP=1).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Serve redirects on :8080 with XDP attached to lo, the embedded
    /// ranges (or the snapshot `redirector ranges update` wrote) and the
    /// default config, logging each decision, until Ctrl-C.
    Run {
        /// Extra arguments for `redirector serve` (e.g. --config FILE).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The end-to-end topology in network namespaces: a registry, two
    /// mirrors, the redirector with XDP, and clients in AWS, GCP and no
    /// feed pulling with skopeo and ctr; prints which server gave each
    /// client its blobs, then tears it all down.
    Demo {
        /// Extra arguments for the demo (e.g. --feed aws=FILE).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Attach the classifier to lo and print live per-class SYN counters.
    Watch {
        /// Extra arguments for `redirector watch` (e.g. --iface eth0).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the request router (cargo-fuzz on nightly; installs it when
    /// missing).
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// A minimal container image of redirector (podman, FROM scratch).
    Image {
        /// Use this binary instead of building the release one.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// The image's name and tag.
        #[arg(long, default_value = concat!("localhost/steer-redirector:", env!("CARGO_PKG_VERSION")))]
        tag: String,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Bench {
    /// Per-packet cost of the XDP program (BPF_PROG_TEST_RUN) against a
    /// bare XDP_PASS program measured in the same run.
    Xdp,
    /// Userspace lookups against a sorted-vector baseline, kernel map
    /// loads one by one against batched, memory of the compiled table.
    Lpm,
    /// `redirector sync` filling an empty mirror against `skopeo sync` to a
    /// directory, from the same registry, plus each one's no-op rerun.
    Sync,
    /// `redirector serve` against nginx and HAProxy configured from the
    /// same ranges, driven by wrk in a private namespace.
    Http,
    /// Criterion benches of the per-request hot paths (route parsing,
    /// classification read, redirect building); no root needed.
    Hot,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root).context("entering the workspace root")?;
    match cli.command {
        Task::Setup => setup::run(setup::Mode::Install),
        Task::Build => {
            setup::run(setup::Mode::IfMissing)?;
            cargo(&["build", "--release", "--locked", "--workspace"])
        }
        Task::Test { args } => {
            setup::run(setup::Mode::IfMissing)?;
            let mut cmd = cargo_cmd(&["test", "--locked", "--workspace"]);
            if !args.is_empty() {
                cmd.arg("--").args(&args);
            }
            if setup::is_root() {
                // Kernel tests fail instead of skipping when XDP cannot load.
                cmd.env("STEER_REQUIRE_XDP", "1");
            } else {
                eprintln!("xtask: not root: kernel and namespace tests will be skipped");
            }
            status(cmd)
        }
        Task::Run { args } => {
            require_root("run")?;
            setup::run(setup::Mode::IfMissing)?;
            cargo(&["build", "--release", "--locked", "--package", "redirector"])?;
            let mut cmd = Command::new(root.join("target/release/redirector"));
            cmd.args(["serve", "--listen", "[::]:8080", "--xdp-iface", "lo"])
                .args(&args);
            status(cmd)
        }
        Task::Demo { args } => {
            require_root("demo")?;
            setup::run(setup::Mode::IfMissing)?;
            cargo(&[
                "build",
                "--release",
                "--locked",
                "--package",
                "redirector",
                "--package",
                "steer-tests",
                "--bin",
                "redirector",
                "--bin",
                "steer-demo",
            ])?;
            let mut cmd = Command::new(root.join("target/release/steer-demo"));
            cmd.arg("--redirector")
                .arg(root.join("target/release/redirector"))
                .args(&args);
            status(cmd)
        }
        Task::Watch { args } => {
            require_root("watch")?;
            setup::run(setup::Mode::IfMissing)?;
            cargo(&["build", "--release", "--locked", "--package", "redirector"])?;
            let mut cmd = Command::new(root.join("target/release/redirector"));
            cmd.arg("watch").args(&args);
            status(cmd)
        }
        Task::Fuzz { seconds } => {
            let have = Command::new("cargo")
                .args(["fuzz", "--version"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !have {
                eprintln!("xtask: installing cargo-fuzz");
                cargo(&["install", "cargo-fuzz", "--locked"])?;
            }
            let mut cmd = Command::new("cargo");
            cmd.current_dir(root.join("redirector"))
                .args(["+nightly", "fuzz", "run", "route", "--"])
                .arg(format!("-max_total_time={seconds}"));
            status(cmd)
        }
        Task::Image { binary, tag } => {
            let binary = match binary {
                Some(b) => b,
                None => {
                    setup::run(setup::Mode::IfMissing)?;
                    cargo(&["build", "--release", "--locked", "--package", "redirector"])?;
                    root.join("target/release/redirector")
                }
            };
            image::build(&binary, &root.join("target/image"), &tag)
        }
        Task::Bench { which } => {
            let name = match which {
                Bench::Xdp => "xdp",
                Bench::Lpm => "lpm",
                Bench::Http => "http",
                Bench::Sync => "sync",
                Bench::Hot => {
                    return cargo(&[
                        "bench",
                        "--locked",
                        "--package",
                        "redirector",
                        "--bench",
                        "hot_paths",
                    ]);
                }
            };
            require_root(&format!("bench {name}"))?;
            setup::run(setup::Mode::IfMissing)?;
            if matches!(which, Bench::Http | Bench::Sync) {
                cargo(&["build", "--release", "--locked", "--package", "redirector"])?;
            }
            cargo(&[
                "bench",
                "--locked",
                "--package",
                "steer-tests",
                "--bench",
                name,
            ])
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_owned()
}

fn require_root(task: &str) -> Result<()> {
    if !setup::is_root() {
        bail!("`cargo xtask {task}` loads XDP into the kernel: run it as root");
    }
    Ok(())
}

fn cargo_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args);
    cmd
}

fn cargo(args: &[&str]) -> Result<()> {
    status(cargo_cmd(args))
}

fn status(mut cmd: Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !st.success() {
        bail!("{:?} failed: {st}", cmd.get_program());
    }
    Ok(())
}
