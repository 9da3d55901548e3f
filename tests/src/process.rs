//! Running the real binaries in tests: a guard that kills them, their
//! stdout as lines, and the rule for tests that need root.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Output},
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

/// Stdout and stderr together, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
