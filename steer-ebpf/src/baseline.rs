//! The bare XDP program that only passes: the baseline `cargo xtask bench xdp`
//! measures the classifier against, in the same run.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

// Links the shared lib, which holds the panic handler.
#[cfg(target_arch = "bpf")]
use steer_ebpf as _;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

    #[xdp]
    pub fn steer_baseline(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
