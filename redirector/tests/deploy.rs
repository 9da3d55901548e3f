//! The systemd units in deploy/systemd are real: `systemd-analyze verify`
//! accepts them with no warning (with ExecStart pointed at the binary
//! under test), and every flag their command lines pass is one the binary
//! takes.

use std::{path::Path, process::Command};

const UNITS: [&str; 4] = [
    "steer-redirector.socket",
    "steer-redirector.service",
    "steer-ranges-update.service",
    "steer-ranges-update.timer",
];
const INSTALLED: &str = "/usr/local/bin/redirector";

fn unit_text(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let dir = tempfile::tempdir().unwrap();
    for name in UNITS {
        let text = unit_text(name).replace(INSTALLED, env!("CARGO_BIN_EXE_redirector"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS.map(|u| format!("./{u}")))
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd package; cargo xtask setup installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "warnings: {said}");
}

#[test]
fn unit_command_lines_use_flags_the_binary_takes() {
    for name in UNITS {
        for line in unit_text(name).lines() {
            let Some(cmd) = line.strip_prefix("ExecStart=") else {
                continue;
            };
            let words: Vec<&str> = cmd.split_whitespace().collect();
            assert_eq!(words[0], INSTALLED, "{name}: {line}");
            let subcommand: Vec<&str> = words[1..]
                .iter()
                .take_while(|w| !w.starts_with('-'))
                .copied()
                .collect();
            let help = Command::new(env!("CARGO_BIN_EXE_redirector"))
                .args(&subcommand)
                .arg("--help")
                .output()
                .unwrap();
            assert!(help.status.success(), "{name}: {subcommand:?}");
            let help = String::from_utf8_lossy(&help.stdout);
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                assert!(
                    help.contains(flag),
                    "{name}: {flag} is not a flag of {subcommand:?}"
                );
            }
        }
    }
}
