use std::path::PathBuf;

/// Errors of the kernel side: loading, attaching, maps.
///
/// Messages say what was being done; the cause is the error's `source()`
/// (print the chain, e.g. with anyhow's `{:#}`), never repeated in the text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the XDP object")]
    Load(#[source] aya::EbpfError),
    #[error("XDP program `{name}`")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching XDP to interface `{iface}` in {mode} mode")]
    Attach {
        iface: String,
        mode: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map `{name}` is missing from the XDP object or has the wrong type")]
    MissingMap { name: &'static str },
    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map `{name}`: {op}")]
    MapSyscall {
        name: &'static str,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the table has {classes} classes; the kernel maps hold at most {max}")]
    TooManyClasses { classes: usize, max: u32 },
    #[error("creating pin directory {path}", path = path.display())]
    PinDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pinning a map at {path}", path = path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("opening the pinned map {path}", path = path.display())]
    OpenPin {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("BPF_PROG_TEST_RUN")]
    TestRun(#[source] aya::programs::ProgramError),
}

/// Errors reading a provider feed. Each names the feed and, where there is
/// one, the entry.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{feed}: reading {path}", path = path.display())]
    Read {
        feed: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{feed}: not valid JSON of the expected shape")]
    Json {
        feed: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{feed}: not valid TOML of the expected shape")]
    Toml {
        feed: &'static str,
        #[source]
        source: toml::de::Error,
    },
    #[error("{feed}: {at}: {reason}")]
    Entry {
        feed: &'static str,
        at: String,
        reason: String,
    },
    #[error("{feed}: no valid prefix in the feed")]
    Empty { feed: &'static str },
    #[error(
        "{feed}: shrank from {before} to {after} prefixes, more than the {max_percent}% allowed; keeping the last good copy"
    )]
    Shrunk {
        feed: &'static str,
        before: usize,
        after: usize,
        max_percent: f64,
    },
    #[error("{feed}: missing from the snapshot; keeping the last good copy")]
    Missing { feed: &'static str },
    #[error("snapshot line {line}: {reason}")]
    Snapshot { line: usize, reason: String },
    #[error("writing {path}", path = path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}", path = path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<FeedError>,
    },
}
