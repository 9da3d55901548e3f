//! `redirector watch` detaches XDP when it is stopped: on SIGTERM and
//! SIGINT by unwinding, and even on SIGKILL, because the attachment is a
//! bpf_link the kernel drops with the process. Needs root.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use steer_tests::{
    netns::{Netns, veth},
    process::{Running, root_or_skip, stdout_lines, wait_for},
    ranges_dir,
};

fn xdp_on(ns: &Netns, iface: &str) -> bool {
    ns.ip_output(&["link", "show", "dev", iface])
        .contains("xdp")
}

fn stop_and_check(signal: i32, name: &str) {
    if !root_or_skip(name) {
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
    let lines = stdout_lines(&mut running.0);
    let banner = wait_for(&lines, "steer: XDP on");
    assert!(banner.contains("steer-w (native mode)"), "{banner}");
    assert!(
        xdp_on(&ns, "steer-w"),
        "XDP not on the link while watch runs"
    );

    // `ip netns exec` execs the command, so this pid is redirector's.
    running.signal(signal);
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
