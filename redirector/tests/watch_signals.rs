//! `redirector watch` detaches XDP when it is stopped: on SIGTERM and
//! SIGINT by unwinding, and even on SIGKILL, because the attachment is a
//! bpf_link the kernel drops with the process. Needs root.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use steer_tests::{
    REQUIRE_XDP,
    netns::{Netns, veth},
    ranges_dir,
};

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn xdp_on(ns: &Netns, iface: &str) -> bool {
    ns.ip_output(&["link", "show", "dev", iface])
        .contains("xdp")
}

fn stop_and_check(signal: i32, name: &str) {
    if !is_root() {
        assert_ne!(
            std::env::var(REQUIRE_XDP).as_deref(),
            Ok("1"),
            "{name} needs root"
        );
        eprintln!("SKIPPED {name}: needs root");
        return;
    }
    let ns = Netns::new("watch");
    let peer = Netns::new("peer");
    veth(
        &ns,
        "steer-w",
        &["192.0.2.1"],
        &peer,
        "steer-p",
        &["192.0.2.2"],
    );

    let ranges = ranges_dir();
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(env!("CARGO_BIN_EXE_redirector"))
        .args([
            "watch",
            "--iface",
            "steer-w",
            "--mode",
            "native",
            "--interval",
            "0.2",
        ])
        .arg("--feed")
        .arg(format!(
            "aws={}",
            ranges.join("aws-ip-ranges.json").display()
        ))
        .arg("--feed")
        .arg(format!("gcp={}", ranges.join("gcp-cloud.json").display()))
        .arg("--snapshot")
        .arg("/nonexistent/steer-test.snapshot")
        .arg("--no-pin")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redirector watch");
    let mut running = Running(child);

    // Wait for the banner it prints once attached.
    let stdout = running.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("steer: XDP on") {
                let _ = tx.send(line);
            }
        }
    });
    let banner = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("watch did not report attaching within 30 s");
    assert!(banner.contains("steer-w (native mode)"), "{banner}");
    assert!(
        xdp_on(&ns, "steer-w"),
        "XDP not on the link while watch runs"
    );

    // `ip netns exec` execs the command, so this pid is redirector's.
    // SAFETY: kill with a pid we spawned and still own.
    assert_eq!(unsafe { libc::kill(running.0.id() as i32, signal) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = running.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "watch still running 10 s after signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    if signal == libc::SIGKILL {
        assert!(!status.success());
    } else {
        assert!(
            status.success(),
            "watch exited with {status} after signal {signal}"
        );
    }

    // The kernel releases a bpf_link when its last fd closes; allow it a
    // moment after a SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_on(&ns, "steer-w") {
        assert!(
            Instant::now() < deadline,
            "XDP still attached after signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_detaches() {
    stop_and_check(libc::SIGTERM, "sigterm_detaches");
}

#[test]
fn sigint_detaches() {
    stop_and_check(libc::SIGINT, "sigint_detaches");
}

#[test]
fn sigkill_still_detaches() {
    stop_and_check(libc::SIGKILL, "sigkill_still_detaches");
}
