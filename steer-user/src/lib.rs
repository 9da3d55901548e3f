//! Kernel and feed plumbing for steer.
//!
//! - [`feeds`]: provider range feeds (AWS, GCP, Azure, Oracle, custom lists)
//!   parsed into entries, and the snapshot file that carries them.
//! - [`table`]: entries compiled into one immutable table with dense class ids.
//! - [`ranges`]: the sources a service loads, reloaded keeping the last good state.
//! - [`classifier`]: the longest-prefix classifier in userspace, built from that table.
//! - [`dir_table`]: the kernel's direct-indexed IPv4 table, compiled from it.
//! - [`xdp`]: the XDP program: load, attach, fill maps, read flows and counters.

pub mod classifier;
pub mod dir_table;
mod error;
pub mod feeds;
mod flow_slots;
mod map_batch;
mod poptrie;
pub mod ranges;
mod stride_trie;
pub mod table;
pub mod xdp;

pub use classifier::Classifier;
pub use error::{Error, FeedError};
pub use steer_ebpf::{
    CLASS_UNKNOWN, ClassCounters, FlowKey, MAX_CLASSES, MAX_SYN_RATE_MILLI, Outcome,
    PacketCounters, Policy,
};
pub use table::{Class, RangeTable};
pub use xdp::{AttachMode, FlowClass, LiveAnswer, LiveMaps, Steer, TableLoad, WriteMode, flow_key};
