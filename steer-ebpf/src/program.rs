//! Maps and the program entry point.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use steer_ebpf::{
    CLASS_UNKNOWN, ClassCounters, FlowKey, FlowValue, MAX_CLASSES, MAX_FLOWS, MAX_PREFIXES,
    Outcome, PORT_SLOTS, PacketCounters, Policy,
};

use crate::packet::{Syn, parse_syn};

/// IPv4 source prefixes (network order) to class id.
#[map(name = "STEER_LPM_V4")]
static LPM_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

/// IPv6 source prefixes (network order) to class id.
#[map(name = "STEER_LPM_V6")]
static LPM_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

/// Indexed by destination port in host order; non-zero marks a service port.
#[map(name = "STEER_SERVICE_PORTS")]
static SERVICE_PORTS: Array<u8> = Array::with_max_entries(PORT_SLOTS, 0);

/// Class recorded per flow on its SYN; read by userspace after accept.
#[map(name = "STEER_FLOWS")]
static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

#[map(name = "STEER_CLASS_COUNTERS")]
static CLASS_COUNTERS: PerCpuArray<ClassCounters> = PerCpuArray::with_max_entries(MAX_CLASSES, 0);

#[map(name = "STEER_OUTCOME_COUNTERS")]
static OUTCOME_COUNTERS: PerCpuArray<PacketCounters> =
    PerCpuArray::with_max_entries(Outcome::COUNT, 0);

/// Per-class [`Policy`] as u32; zero (pass) unless userspace sets it.
#[map(name = "STEER_POLICY")]
static POLICY: Array<u32> = Array::with_max_entries(MAX_CLASSES, 0);

#[xdp]
pub fn steer(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let (outcome, action) = match parse_syn(&ctx) {
        Ok(syn) => on_syn(&syn, len),
        Err(outcome) => (outcome, xdp_action::XDP_PASS),
    };
    if let Some(c) = OUTCOME_COUNTERS.get_ptr_mut(outcome as u32) {
        // SAFETY: per-CPU slot; XDP runs with preemption disabled.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
    action
}

#[inline(always)]
fn on_syn(syn: &Syn, len: u64) -> (Outcome, u32) {
    match SERVICE_PORTS.get(syn.dst_port_host as u32) {
        Some(&flag) if flag != 0 => {}
        _ => return (Outcome::OtherPort, xdp_action::XDP_PASS),
    }

    let class = lookup_class(syn);

    let drop = matches!(POLICY.get(class), Some(&p) if p == Policy::Drop as u32);
    if let Some(c) = CLASS_COUNTERS.get_ptr_mut(class) {
        // SAFETY: per-CPU slot; XDP runs with preemption disabled.
        unsafe {
            (*c).syns += 1;
            (*c).bytes += len;
            if drop {
                (*c).dropped += 1;
            }
        }
    }
    if drop {
        return (Outcome::Dropped, xdp_action::XDP_DROP);
    }

    let key = FlowKey {
        addr: syn.addr,
        src_port: syn.src_port,
        dst_port: syn.dst_port,
    };
    // An LRU map evicts instead of failing when full, so an error here means
    // nothing worse than userspace reading "unknown" for this flow.
    let _ = FLOWS.insert(&key, &FlowValue { class }, 0);
    (Outcome::Classified, xdp_action::XDP_PASS)
}

#[inline(always)]
fn lookup_class(syn: &Syn) -> u32 {
    let found = if syn.is_v4 {
        let v4 = [syn.addr[12], syn.addr[13], syn.addr[14], syn.addr[15]];
        LPM_V4.get(Key::new(32, v4))
    } else {
        LPM_V6.get(Key::new(128, syn.addr))
    };
    match found {
        Some(&class) => class,
        None => CLASS_UNKNOWN,
    }
}
