//! The reference cannot drift from the binary: every flag that
//! `redirector serve --help` (and `watch`, `sync`, `audit` and `report`) prints is in
//! docs/configuration.md.

use std::{collections::BTreeSet, process::Command};

fn flags_of(subcommand: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_redirector"))
        .args([subcommand, "--help"])
        .output()
        .expect("redirector --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

#[test]
fn every_flag_is_in_the_configuration_doc() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    for subcommand in ["serve", "watch", "sync", "audit", "report"] {
        let flags = flags_of(subcommand);
        assert!(
            flags.contains("--listen") || subcommand != "serve",
            "{flags:?}"
        );
        let missing: Vec<&String> = flags
            .iter()
            .filter(|f| *f != "--help" && !doc.contains(&format!("`{f}")))
            .collect();
        assert!(
            missing.is_empty(),
            "`redirector {subcommand}` flags missing from docs/configuration.md: {missing:?}"
        );
    }
}
