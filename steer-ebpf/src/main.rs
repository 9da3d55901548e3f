//! The steer XDP program: classify the source of TCP SYNs to service ports.
//!
//! Every packet passes unless a class policy says drop. Only a SYN (SYN set,
//! ACK clear) to a service port costs a map lookup beyond the counters: one
//! LPM lookup for its source, one flow-map write, one counter bump.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod program;

// On the host only the shared-types lib matters; this stub keeps
// workspace-wide `cargo build` and `cargo clippy` working.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
