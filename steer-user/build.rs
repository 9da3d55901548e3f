use std::process::Command;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    // Fail early with the fix, instead of a linker error deep in the nested build.
    if std::env::var_os("AYA_BUILD_SKIP").is_none() {
        let linker = Command::new("bpf-linker").arg("--version").output();
        if !matches!(linker, Ok(ref out) if out.status.success()) {
            bail!(
                "bpf-linker is not installed; run `cargo xtask setup` \
                 (installs bpf-linker, rust-src for nightly and the apt packages it needs)"
            );
        }
    }
    // aya-build relays every line the nested cargo prints as a
    // `cargo:warning`; progress lines ("Compiling ...") would bury real
    // warnings. Quiet cargo still prints compiler warnings and errors.
    // SAFETY: the build script is single-threaded at this point.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    let ebpf = aya_build::Package {
        name: "steer-ebpf",
        root_dir: "../steer-ebpf",
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default())
        .context("building the XDP program (steer-ebpf) for the bpf target")
}
