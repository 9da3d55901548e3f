//! The one launcher of the `redirector serve` binary, for tests about the
//! binary (signals, exit status, its process's CPU and descriptors) and
//! for the namespace topologies: started (in a namespace or not), waited
//! for until it serves, signalled, and killed when the test ends.

use std::{
    fs::OpenOptions,
    net::SocketAddr,
    os::{fd::RawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{
    netns::Netns,
    process::{Running, stdout_lines, wait_until_serving},
};

/// How to start the redirector.
#[derive(Clone, Default)]
pub struct Launch {
    pub binary: PathBuf,
    pub args: Vec<String>,
    /// Where its log (stderr) is appended.
    pub log: PathBuf,
    /// Variables set for it (over the test's own environment).
    pub env: Vec<(String, String)>,
    /// Variables taken away.
    pub env_remove: Vec<String>,
    /// A command to run it under (such as `prlimit`), with its arguments.
    pub wrapper: Vec<String>,
    /// RUST_LOG (default `info`).
    pub log_level: Option<String>,
    /// A socket to hand it as fd 3, as systemd's socket activation does
    /// (the wrapper sets LISTEN_PID and LISTEN_FDS).
    pub listen_fd: Option<RawFd>,
}

impl Launch {
    /// `binary serve --config CONFIG` on 192.0.2.1:8080 (the server
    /// address of the namespace tests) with XDP on `iface` in `mode`,
    /// the admin listener on a port the kernel picks, no snapshot, maps
    /// pinned under `pins` (or not pinned), then `extra`; logging to
    /// `dir/redirector.log`.
    pub fn serve_xdp(
        binary: &Path,
        config: &Path,
        iface: &str,
        mode: &str,
        pins: Option<&Path>,
        dir: &Path,
        extra: &[&str],
    ) -> Launch {
        let mut args: Vec<String> = [
            "serve",
            "--listen",
            "192.0.2.1:8080",
            "--admin-listen",
            "127.0.0.1:0",
            "--xdp-iface",
            iface,
            "--xdp-mode",
            mode,
            "--snapshot",
            "/nonexistent/x",
        ]
        .map(str::to_owned)
        .to_vec();
        match pins {
            Some(p) => args.extend(["--pin-dir".to_owned(), p.display().to_string()]),
            None => args.push("--no-pin".to_owned()),
        }
        args.extend(["--config".to_owned(), config.display().to_string()]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Launch {
            binary: binary.to_owned(),
            args,
            log: dir.join("redirector.log"),
            ..Launch::default()
        }
    }
}

pub struct Redirector {
    pub process: Running,
    /// Its stdout, line by line.
    pub lines: mpsc::Receiver<String>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    /// Files it reads that must outlive it.
    pub dir: Option<tempfile::TempDir>,
}

impl Redirector {
    /// Starts it (in `ns` when given) and waits until it serves.
    pub fn start(ns: Option<&Netns>, launch: &Launch) -> Redirector {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .expect("redirector log file");
        let (program, mut args): (PathBuf, Vec<String>) = match launch.wrapper.split_first() {
            Some((w, rest)) => (w.into(), rest.to_vec()),
            None => (launch.binary.clone(), Vec::new()),
        };
        if !launch.wrapper.is_empty() {
            args.push(launch.binary.display().to_string());
        }
        args.extend(launch.args.iter().cloned());
        let mut command = match ns {
            Some(ns) => ns.command(&program),
            None => Command::new(&program),
        };
        command
            .args(&args)
            .env("RUST_LOG", launch.log_level.as_deref().unwrap_or("info"))
            .env("RUST_BACKTRACE", "0")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for k in &launch.env_remove {
            command.env_remove(k);
        }
        if let Some(fd) = launch.listen_fd {
            // SAFETY: dup2 is async-signal-safe; fd stays open in the test
            // for as long as any child may start.
            unsafe {
                command.pre_exec(move || {
                    // dup2 onto itself keeps close-on-exec: clear it then.
                    let rc = if fd == 3 {
                        libc::fcntl(3, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(fd, 3)
                    };
                    if rc < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("starting redirector serve");
        let lines = stdout_lines(&mut child);
        let process = Running(child);
        let (addr, admin) = wait_until_serving(&lines).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&launch.log).unwrap_or_default();
            panic!("{e}; its log:\n{log}")
        });
        Redirector {
            process,
            lines,
            addr,
            admin,
            log: launch.log.clone(),
            dir: None,
        }
    }

    pub fn signal(&self, signal: i32) {
        self.process.signal(signal);
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Waits (at most `limit`) for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.process.0.try_wait().expect("waiting for redirector") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// User plus system CPU time it has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("reading /proc/PID/stat");
        // Fields after the command name, which is in parentheses.
        let after = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }
}
