//! Real pull clients, run inside a client's namespace: skopeo and
//! containerd's `ctr`. Both follow the redirector's 307s to other hosts
//! and check every digest they fetch.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use super::{REDIRECTOR6, REDIRECTOR6_NAME, oci::sha256};
use crate::{
    netns::Netns,
    process::{Running, run_bounded, text},
};

/// How long one pull may take before it counts as failed.
pub const PULL_LIMIT: Duration = Duration::from_secs(60);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `skopeo <args>` in `ns`; `Ok` with its stdout when it succeeds.
///
/// skopeo keeps a blob-info cache under /var/lib/containers when run as
/// root; it runs in a private mount namespace with a fresh directory over
/// /var/lib, so the machine's is never touched, and with an /etc/hosts
/// that names only the redirector's IPv6 address. A policy that accepts any
/// image and a temporary directory of its own come with every run.
pub fn skopeo(ns: &Netns, work: &Path, args: &[String]) -> Result<String, String> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = work.join(format!("skopeo-{n}"));
    let (var_lib, tmp) = (base.join("var-lib"), base.join("tmp"));
    for d in [&var_lib, &tmp] {
        fs::create_dir_all(d).expect("skopeo directories");
    }
    let hosts = base.join("hosts");
    fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n::1 localhost\n{REDIRECTOR6} {REDIRECTOR6_NAME}\n"),
    )
    .expect("hosts file");
    let policy = base.join("policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("policy.json");
    let mut cmd = ns.command("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            r#"mount --bind "$1" /var/lib && mount --bind "$2" /etc/hosts && shift 2 && exec "$@""#,
        )
        .arg("sh")
        .arg(&var_lib)
        .arg(&hosts)
        .arg("skopeo")
        .arg("--policy")
        .arg(&policy)
        .arg("--tmpdir")
        .arg(&tmp)
        .args(args);
    let result = match run_bounded(&mut cmd, PULL_LIMIT) {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!("skopeo failed ({}): {}", o.status, text(&o).trim())),
        Err(o) => Err(format!(
            "skopeo ran over {PULL_LIMIT:?}: {}",
            text(&o).trim()
        )),
    };
    let _ = fs::remove_dir_all(&base);
    result
}

/// Pulls `reference` (`HOST/NAME:TAG`) with `skopeo copy docker://... dir:`
/// from inside `ns`, over plain HTTP. Returns the pulled manifest's
/// digest, or skopeo's error.
pub fn skopeo_pull(ns: &Netns, work: &Path, reference: &str) -> Result<String, String> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let out = work.join(format!("pulled-{n}"));
    let result = skopeo(
        ns,
        work,
        &[
            "copy".into(),
            "--quiet".into(),
            "--src-tls-verify=false".into(),
            format!("docker://{reference}"),
            format!("dir:{}", out.display()),
        ],
    )
    .and_then(|_| {
        fs::read(out.join("manifest.json"))
            .map(|m| sha256(&m))
            .map_err(|e| format!("skopeo wrote no manifest: {e}"))
    });
    let _ = fs::remove_dir_all(&out);
    result
}

/// A containerd daemon of the test's own (root, state, sockets and `opt`
/// under a temporary directory, the CRI plugin off), in a client's
/// namespace, for `ctr` pulls.
pub struct Containerd {
    _process: Running,
    dir: PathBuf,
}

impl Containerd {
    /// Starts it and waits until `ctr version` answers; `Err` says why it
    /// cannot run here.
    pub fn start(ns: &Netns, dir: &Path) -> Result<Containerd, String> {
        let dir = dir.join("containerd");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let d = dir.display();
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n[grpc]\naddress = \"{d}/containerd.sock\"\n\n[ttrpc]\naddress = \"{d}/containerd-ttrpc.sock\"\n\n[debug]\naddress = \"{d}/debug.sock\"\n\n[plugins.\"io.containerd.internal.v1.opt\"]\npath = \"{d}/opt\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = fs::File::create(dir.join("containerd.log")).map_err(|e| e.to_string())?;
        let child = ns
            .command("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        let c = Containerd {
            _process: Running(child),
            dir,
        };
        for _ in 0..100 {
            if c.ctr(ns, &["version"], Duration::from_secs(5)).is_ok() {
                return Ok(c);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "containerd did not answer within 10 s: {}",
            fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
        ))
    }

    fn ctr(&self, ns: &Netns, args: &[&str], limit: Duration) -> Result<String, String> {
        let mut cmd = ns.command("ctr");
        cmd.arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(["--namespace", "steer"])
            .args(args);
        match run_bounded(&mut cmd, limit) {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => Err(format!(
                "ctr {} failed: {}",
                args.join(" "),
                text(&o).trim()
            )),
            Err(o) => Err(format!(
                "ctr {} ran over {limit:?}: {}",
                args.join(" "),
                text(&o).trim()
            )),
        }
    }

    /// `ctr images pull --plain-http` from inside `ns` (where `ctr`
    /// itself fetches), then the digest containerd recorded for the
    /// image. The image is removed again, so the next pull fetches anew.
    pub fn pull(&self, ns: &Netns, reference: &str) -> Result<String, String> {
        self.ctr(
            ns,
            &[
                "images",
                "pull",
                "--plain-http",
                "--snapshotter",
                "native",
                reference,
            ],
            PULL_LIMIT,
        )?;
        let list = self.ctr(ns, &["images", "list"], Duration::from_secs(10))?;
        let digest = list
            .lines()
            .find(|l| l.starts_with(reference))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
            .map(str::to_owned)
            .ok_or_else(|| format!("`ctr images list` shows no {reference}: {list}"));
        // Content goes too (--sync waits for the garbage collector).
        let _ = self.ctr(
            ns,
            &["images", "rm", "--sync", reference],
            Duration::from_secs(20),
        );
        digest
    }
}
