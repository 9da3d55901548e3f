//! Network namespaces and veth pairs that tests create and always remove.
//!
//! Names carry the test process id, so a namespace left behind by a killed
//! run is recognised and removed by the next one ([`remove_stale`]).

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

const PREFIX: &str = "steer-t-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with its interfaces) on drop, panics included.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `steer-t-<pid>-<n>-<tag>` with `lo` up.
    pub fn new(tag: &str) -> Netns {
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>`; panics with its stderr on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs `ip -n <ns> <args>` and returns its stdout.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `program` to be run inside this namespace (through `nsenter --net`,
    /// which, unlike `ip netns exec`, leaves /sys and so bpffs visible).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `f` on a new thread that lives in this namespace. Sockets and
    /// interface names it uses are this namespace's.
    pub fn spawn<F, R>(&self, f: F) -> thread::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        thread::spawn(move || {
            // SAFETY: setns on a valid namespace fd; it moves only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Not `ip()`: a failure here must not turn a passing test into a
        // double panic during unwinding.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair with one end in each namespace, addressed and up.
///
/// Each side gets its addresses as host routes (/32, /128) plus a route to
/// each of the peer's addresses, so no subnet (and nothing outside the two
/// namespaces) is ever routable.
pub fn veth(a: &Netns, a_if: &str, a_addrs: &[&str], b: &Netns, b_if: &str, b_addrs: &[&str]) {
    ip(&[
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        b_if,
        "netns",
        b.name(),
    ]);
    for (ns, ifname, mine, theirs) in [(a, a_if, a_addrs, b_addrs), (b, b_if, b_addrs, a_addrs)] {
        for addr in mine {
            let host = if addr.contains(':') { "128" } else { "32" };
            ns.ip(&[
                "addr",
                "add",
                &format!("{addr}/{host}"),
                "dev",
                ifname,
                "nodad",
            ]);
        }
        ns.ip(&["link", "set", ifname, "up"]);
        for addr in theirs {
            ns.ip(&["route", "add", addr, "dev", ifname]);
        }
    }
}

/// Deletes namespaces of earlier test processes that no longer run.
pub fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

fn ip(args: &[&str]) {
    run("ip", args);
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "`{cmd} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
