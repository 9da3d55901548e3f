//! `cargo xtask image`: a minimal container image of `redirector`,
//! assembled with podman `FROM scratch`: the release binary (stripped),
//! the shared libraries `ldd` names, and the CA bundle (for https
//! upstreams and stores). No base image is pulled: none has to be
//! reachable. The conventional multi-stage build for users with a
//! registry is `deploy/container/Containerfile`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The CA bundle Debian's ca-certificates keeps.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const CONTAINERFILE: &str = "\
FROM scratch
COPY rootfs/ /
# Root by default: XDP needs CAP_BPF and CAP_NET_ADMIN. Without XDP, run
# with --user 65532:65532.
ENTRYPOINT [\"/usr/local/bin/redirector\"]
CMD [\"serve\"]
";

/// Assembles the build context for `binary` under `dir` and builds
/// `tag` from it with podman.
pub fn build(binary: &Path, dir: &Path, tag: &str) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    let rootfs = dir.join("rootfs");
    let bin_dir = rootfs.join("usr/local/bin");
    fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let target = bin_dir.join("redirector");
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&target)
        .arg(binary)
        .status()
        .context("running strip (binutils)")?;
    if !stripped.success() {
        bail!("strip {} failed", binary.display());
    }
    for lib in libraries(binary)? {
        let into = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        if let Some(parent) = into.parent() {
            fs::create_dir_all(parent)?;
        }
        // Followed: the image gets the file a symlink points at.
        fs::copy(&lib, &into).with_context(|| format!("copying {}", lib.display()))?;
    }
    let certs = rootfs.join(CA_BUNDLE.trim_start_matches('/'));
    fs::create_dir_all(certs.parent().expect("a directory"))?;
    fs::copy(CA_BUNDLE, &certs).with_context(|| format!("copying {CA_BUNDLE}"))?;
    fs::write(dir.join("Containerfile"), CONTAINERFILE)?;
    let built = Command::new("podman")
        .args(["build", "--quiet", "--tag", tag, "--file"])
        .arg(dir.join("Containerfile"))
        .arg(dir)
        .status()
        .context("running podman (cargo xtask setup installs it)")?;
    if !built.success() {
        bail!("podman build failed");
    }
    println!("built {tag}");
    Ok(())
}

/// The shared libraries `binary` loads, the dynamic loader included.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    if !out.status.success() {
        bail!(
            "ldd {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ldd_lines() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let got = super::parse_ldd(text);
        assert_eq!(
            got,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(std::path::PathBuf::from)
        );
    }
}
