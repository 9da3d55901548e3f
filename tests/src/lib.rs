//! Support for steer's kernel and network-namespace tests: crafted packets,
//! namespace guards, and the rule for when a kernel test may skip.

pub mod addrs;
pub mod browser;
pub mod feed_server;
pub mod flood;
pub mod http_bench;
pub mod launch;
pub mod loopback;
pub mod mirrors;
pub mod netns;
pub mod packet;
pub mod process;
pub mod prometheus;
pub mod pulls;
pub mod sample;
pub mod tcp;

use std::{path::PathBuf, sync::Arc};

use steer_user::{
    RangeTable, Steer,
    feeds::{Feed, read_aws, read_gcp},
};

/// Environment variable that turns "cannot load XDP here" from a skip into
/// a failure. `.ci/run` and `cargo xtask test` (as root) set it.
pub const REQUIRE_XDP: &str = "STEER_REQUIRE_XDP";

/// Loads the classifier, or decides the test cannot run here.
///
/// Returns `None` (after saying why on stderr) when XDP cannot be loaded
/// and `STEER_REQUIRE_XDP` is not `1`; panics with the reason when it is.
pub fn load_or_skip(test: &str) -> Option<Steer> {
    match Steer::load() {
        Ok(steer) => Some(steer),
        Err(e) => {
            let reason = format!("{test}: cannot load XDP here ({e}); needs root with CAP_BPF");
            if std::env::var(REQUIRE_XDP).as_deref() == Ok("1") {
                panic!("{reason}, and {REQUIRE_XDP}=1");
            }
            eprintln!("SKIPPED {reason}");
            None
        }
    }
}

/// A directory on bpffs for a test's pinned maps, removed on drop.
pub struct PinDir(PathBuf);

impl PinDir {
    pub fn new(tag: &str) -> PinDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/steer-test-{}-{n}-{tag}",
            std::process::id()
        )))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Directory holding the real provider feeds: `$STEER_RANGES_DIR`, else
/// `shared/ranges` beside the repository.
pub fn ranges_dir() -> PathBuf {
    std::env::var_os("STEER_RANGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/ranges"))
        })
}

/// The real AWS and GCP feeds, parsed.
pub fn real_feeds() -> Vec<Feed> {
    let dir = ranges_dir();
    let aws = read_aws(&dir.join("aws-ip-ranges.json")).expect("AWS feed");
    let gcp = read_gcp(&dir.join("gcp-cloud.json")).expect("GCP feed");
    vec![aws, gcp]
}

/// The real AWS and GCP feeds, compiled.
pub fn real_table() -> Arc<RangeTable> {
    Arc::new(RangeTable::compile(&real_feeds()))
}
