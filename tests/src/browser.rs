//! A real headless browser (Debian's Chromium) inside a namespace: the
//! DOM it built from a page, and a screenshot of it. Started with the
//! flags that keep it off every network but the page's (no background
//! fetches, updates or sync) and a fresh profile under the test's
//! directory.

use std::{path::Path, time::Duration};

use crate::{netns::Netns, process::run_bounded};

const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
];

fn chromium(ns: &Netns, dir: &Path, extra: &[String], url: &str) -> String {
    let profile = dir.join("chromium-profile");
    let mut cmd = ns.command("chromium");
    cmd.args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url);
    let out = run_bounded(&mut cmd, Duration::from_secs(60))
        .unwrap_or_else(|o| panic!("chromium ran over 60 s: {}", crate::process::text(&o)));
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        crate::process::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM Chromium built from `url`, serialized.
pub fn dom(ns: &Netns, dir: &Path, url: &str) -> String {
    chromium(ns, dir, &["--dump-dom".to_owned()], url)
}

/// A PNG of `url` at `width`x`height`, written to `png`.
pub fn screenshot(ns: &Netns, dir: &Path, url: &str, png: &Path, width: u32, height: u32) {
    chromium(
        ns,
        dir,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
        ],
        url,
    );
}

/// The width and height in a PNG's header; `None` for anything else.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}
