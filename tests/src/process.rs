//! Running the real binaries in tests: a guard that kills them, their
//! stdout as lines, and the rule for tests that need root.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::REQUIRE_XDP;

/// Kills the child (and waits for it) if the test ends before it exits.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill on the pid of a child this guard owns.
        let rc = unsafe { libc::kill(self.0.id() as i32, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a test that needs root can run: false (after saying so) when
/// not root, a failure when `STEER_REQUIRE_XDP=1`.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert_ne!(
        std::env::var(REQUIRE_XDP).as_deref(),
        Ok("1"),
        "{test} needs root"
    );
    eprintln!("SKIPPED {test}: needs root");
    false
}

/// The child's stdout, line by line, read on a thread.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (at most 20 s) for a line containing `want`; returns it.
pub fn wait_for(lines: &mpsc::Receiver<String>, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(want) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {want:?}: {e}"),
        }
    }
}

/// Waits (at most 20 s) for `redirector serve`'s first line, `steer:
/// serving on ADDR, admin on ADDR`: the public and admin addresses, or
/// what went wrong.
pub fn wait_until_serving(
    lines: &mpsc::Receiver<String>,
) -> Result<(SocketAddr, SocketAddr), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("steer: serving on ") => break line,
            Ok(_) => {}
            Err(e) => return Err(format!("redirector serve never said it serves: {e}")),
        }
    };
    line.split_once("steer: serving on ")
        .and_then(|(_, l)| l.split_once(", admin on "))
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .ok_or_else(|| format!("unexpected serving line {line:?}"))
}

/// Stdout and stderr together, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to its end, or kills it after `limit`. Its output is
/// returned either way; `Err` means it was killed.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Output, Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + limit;
    let (status, killed) = loop {
        if let Some(st) = child.try_wait().expect("waiting for a child") {
            break (st, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait().expect("reaping a killed child"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if killed { Err(output) } else { Ok(output) }
}
