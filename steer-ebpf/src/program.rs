//! Maps and the program entry point.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::{Array, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use steer_ebpf::{
    BPF_F_MMAPABLE, CLASS_NAME_LEN, CLASS_UNKNOWN, ClassCounters, DIR_CHUNK, DIR_CHUNKS,
    DIR_L1_ENTRIES, DIR_POINTER, FLOW_SLOTS, FlowKey, GENERATIONS, MAX_CLASSES, MAX_PREFIXES,
    Outcome, PORT_SLOTS, PacketCounters, Policy, SYN_BUCKETS, SynBucket,
};

use crate::packet::{Source, Syn, ipv4_source, ipv6_source, parse_syn};

/// The active generation number; its low bit picks the tries below, its
/// low byte goes into flow slots. Userspace fills the other generation,
/// then writes this.
#[map(name = "STEER_ACTIVE")]
static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// IPv4 source prefixes (network order) to class id, generation 0.
#[map(name = "STEER_LPM_V4_0")]
static LPM_V4_0: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
/// IPv4, generation 1.
#[map(name = "STEER_LPM_V4_1")]
static LPM_V4_1: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

/// The IPv4 direct table (see `DIR_L1_ENTRIES`), both generations: the
/// first level, then chunks of 256 at the second and third.
/// Entries are u32, two to an element: the kernel rounds an array
/// element up to 8 bytes, so this halves the memory (8.5 MiB in all).
#[map(name = "STEER_DIR_L1")]
static DIR_L1: Array<u64> =
    Array::with_max_entries(DIR_L1_ENTRIES * GENERATIONS / 2, BPF_F_MMAPABLE);
#[map(name = "STEER_DIR_L2")]
static DIR_L2: Array<u64> =
    Array::with_max_entries(DIR_CHUNKS * DIR_CHUNK * GENERATIONS / 2, BPF_F_MMAPABLE);
#[map(name = "STEER_DIR_L3")]
static DIR_L3: Array<u64> =
    Array::with_max_entries(DIR_CHUNKS * DIR_CHUNK * GENERATIONS / 2, BPF_F_MMAPABLE);
/// Per generation: non-zero when its direct table is complete; else its
/// IPv4 lookups use the LPM trie.
#[map(name = "STEER_DIR_READY")]
static DIR_READY: Array<u32> = Array::with_max_entries(GENERATIONS, 0);

/// IPv6 source prefixes (network order) to class id, generation 0.
#[map(name = "STEER_LPM_V6_0")]
static LPM_V6_0: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
/// IPv6, generation 1.
#[map(name = "STEER_LPM_V6_1")]
static LPM_V6_1: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

/// `provider\0region\0` per (generation, class), for tools reading the
/// live maps. Written by userspace with each table; never read here.
#[map(name = "STEER_CLASS_NAMES")]
static CLASS_NAMES: Array<[u8; CLASS_NAME_LEN]> =
    Array::with_max_entries(MAX_CLASSES * GENERATIONS, 0);

/// Indexed by destination port in host order; non-zero marks a service port.
#[map(name = "STEER_SERVICE_PORTS")]
static SERVICE_PORTS: Array<u8> = Array::with_max_entries(PORT_SLOTS, 0);

/// Class recorded per flow on its SYN, direct-mapped (see `FlowSlot`);
/// userspace reads it through a shared mapping after accept.
#[map(name = "STEER_FLOW_SLOTS")]
static FLOW_SLOT_ARRAY: Array<u64> = Array::with_max_entries(FLOW_SLOTS, BPF_F_MMAPABLE);

/// Indexed by generation * MAX_CLASSES + class.
#[map(name = "STEER_CLASS_COUNTERS")]
static CLASS_COUNTERS: PerCpuArray<ClassCounters> =
    PerCpuArray::with_max_entries(MAX_CLASSES * GENERATIONS, 0);

#[map(name = "STEER_OUTCOME_COUNTERS")]
static OUTCOME_COUNTERS: PerCpuArray<PacketCounters> =
    PerCpuArray::with_max_entries(Outcome::COUNT, 0);

/// Per-class [`Policy`], indexed like the counters; zero (pass) unless
/// userspace sets it.
#[map(name = "STEER_POLICY")]
static POLICY: Array<Policy> = Array::with_max_entries(MAX_CLASSES * GENERATIONS, 0);

/// SYN buckets of the sources of limited classes, in the slot a hash of
/// the address (IPv4-mapped /32, IPv6 /64) picks. An array lookup is
/// inlined by the verifier, where a hash map would cost a hash table walk
/// and LRU bookkeeping per SYN. Updates from two CPUs at once may lose
/// one; a limit is a bound on abuse, not an exact count.
#[map(name = "STEER_SYN_BUCKETS")]
static SYN_BUCKET_ARRAY: Array<SynBucket> = Array::with_max_entries(SYN_BUCKETS, 0);

#[xdp]
pub fn steer(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let (outcome, action) = match parse_syn(&ctx).and_then(|syn| on_syn(&ctx, &syn, len)) {
        Ok(done) => done,
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
fn on_syn(ctx: &XdpContext, syn: &Syn, len: u64) -> Result<(Outcome, u32), Outcome> {
    match SERVICE_PORTS.get(syn.dst_port_host as u32) {
        Some(&flag) if flag != 0 => {}
        _ => return Err(Outcome::OtherPort),
    }

    // The generation is read once, so the lookup, policy, counters and flow
    // slot of this SYN all belong to one table.
    let generation = ACTIVE.get(0).copied().unwrap_or(0);
    let second = generation & 1 != 0;

    // One LPM lookup; IPv4 goes into the flow key IPv4-mapped.
    let (addr, found) = match syn.source {
        Source::V4 { l3 } => {
            let v4 = ipv4_source(ctx, l3)?;
            let mut addr = [0u8; 16];
            addr[10] = 0xff;
            addr[11] = 0xff;
            addr[12..].copy_from_slice(&v4);
            let found = if matches!(DIR_READY.get(generation & 1), Some(&r) if r != 0) {
                dir_lookup(generation & 1, u32::from_be_bytes(v4))
            } else {
                let key = Key::new(32, v4);
                if second {
                    LPM_V4_1.get(key).copied()
                } else {
                    LPM_V4_0.get(key).copied()
                }
            };
            (addr, found)
        }
        Source::V6 { l3 } => {
            let addr = ipv6_source(ctx, l3)?;
            let key = Key::new(128, addr);
            let found = if second {
                LPM_V6_1.get(key).copied()
            } else {
                LPM_V6_0.get(key).copied()
            };
            (addr, found)
        }
    };
    let class = match found {
        Some(c) if c < MAX_CLASSES => c,
        _ => CLASS_UNKNOWN,
    };
    let index = (generation & 1) * MAX_CLASSES + class;

    let policy = POLICY.get(index).copied().unwrap_or_default();
    let outcome = if policy.drop != 0 {
        Outcome::Dropped
    } else if policy.limited() && !within_limit(&addr, &policy) {
        Outcome::RateLimited
    } else {
        Outcome::Classified
    };
    if let Some(c) = CLASS_COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot; XDP runs with preemption disabled.
        unsafe {
            (*c).syns += 1;
            (*c).bytes += len;
            if outcome != Outcome::Classified {
                (*c).dropped += 1;
            }
            if outcome == Outcome::RateLimited {
                (*c).rate_limited += 1;
            }
        }
    }
    if outcome != Outcome::Classified {
        return Ok((outcome, xdp_action::XDP_DROP));
    }

    let key = FlowKey {
        addr,
        src_port: syn.src_port,
        dst_port: syn.dst_port,
    };
    let slot = key.slot();
    if let Some(p) = FLOW_SLOT_ARRAY.get_ptr_mut(slot.index) {
        // SAFETY: an in-bounds array slot. One aligned 8-byte store, so a
        // concurrent reader sees the old or the new value, never a mix.
        unsafe { core::ptr::write_volatile(p, slot.value(class, generation)) };
    }
    Ok((Outcome::Classified, xdp_action::XDP_PASS))
}

/// Takes a token from the bucket of `addr`'s source (IPv6: its /64),
/// starting a full one when its slot holds another source.
#[inline(always)]
fn within_limit(addr: &[u8; 16], policy: &Policy) -> bool {
    let mut key = *addr;
    let v4_mapped = key[..10].iter().all(|b| *b == 0) && key[10] == 0xff && key[11] == 0xff;
    if !v4_mapped {
        key[8..].fill(0);
    }
    let slot = FlowKey {
        addr: key,
        src_port: 0,
        dst_port: 0,
    }
    .slot();
    let Some(bucket) = SYN_BUCKET_ARRAY.get_ptr_mut(slot.index & (SYN_BUCKETS - 1)) else {
        return true;
    };
    // The coarse clock (a tick, 1 to 4 ms) costs a fraction of the
    // precise one, and refill in steps of a tick is fine for a limit.
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: an in-bounds array slot; a concurrent update from another
    // CPU may be lost, which only loosens the limit by a SYN.
    unsafe {
        if (*bucket).tag == slot.tag {
            (*bucket).take(policy, now)
        } else {
            *bucket = SynBucket::first(policy, now, slot.tag);
            true
        }
    }
}

/// Entry `index` of a direct-table level (two u32 to an element, the
/// even one in the low half: both sides are little-endian).
#[inline(always)]
fn dir_entry(level: &Array<u64>, index: u32) -> Option<u32> {
    let pair = level.get(index >> 1)?;
    Some((*pair >> ((index & 1) * 32)) as u32)
}

/// The class of IPv4 address `a` (host order) in the direct table of
/// generation slot `slot`: one to three array loads.
#[inline(always)]
fn dir_lookup(slot: u32, a: u32) -> Option<u32> {
    let e1 = dir_entry(&DIR_L1, slot * DIR_L1_ENTRIES + (a >> 16))?;
    if e1 & DIR_POINTER == 0 {
        return Some(e1);
    }
    let chunk = slot * DIR_CHUNKS + (e1 & !DIR_POINTER);
    let e2 = dir_entry(&DIR_L2, chunk * DIR_CHUNK + ((a >> 8) & 0xff))?;
    if e2 & DIR_POINTER == 0 {
        return Some(e2);
    }
    let chunk = slot * DIR_CHUNKS + (e2 & !DIR_POINTER);
    dir_entry(&DIR_L3, chunk * DIR_CHUNK + (a & 0xff))
}
