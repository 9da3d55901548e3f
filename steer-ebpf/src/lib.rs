//! Types and constants shared by the XDP program and userspace.
//!
//! Everything here is `#[repr(C)]` and laid out exactly as the kernel maps
//! store it. Addresses and ports are kept in network byte order, as they sit
//! in the packet, so the fast path never converts anything.
#![no_std]

// One panic handler for both programs (no_std demands one). The verifier
// rejects any path that could reach it.
#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

mod policy;

pub use policy::{
    MAX_REFILL_MICROS, MAX_SYN_RATE_MILLI, NANO_TOKENS, Policy, SYN_BUCKETS, SynBucket,
};

/// Class id of a source address no prefix covers.
pub const CLASS_UNKNOWN: u32 = 0;

/// Class slots per generation in the counter, policy and class-name arrays.
/// The program reads class ids at or above this as unknown (steer-user never
/// writes them: it refuses tables with more classes).
pub const MAX_CLASSES: u32 = 4096;

/// Map generations. Each generation has its own LPM tries and its own slice
/// of the policy, counter and class-name arrays; a table reload fills the
/// inactive generation and then switches with one write to the active
/// generation number, so no lookup ever sees a half-written table and a
/// class id always means what its own generation's table says.
pub const GENERATIONS: u32 = 2;

/// Bytes per entry of the class-name array: `provider\0region\0`, zero padded.
pub const CLASS_NAME_LEN: usize = 64;

/// Capacity of each LPM trie. The tries are not preallocated, so this only
/// bounds growth; the real AWS+GCP table needs about 12,000 entries.
pub const MAX_PREFIXES: u32 = 1 << 18;

/// Slots in the flow-slot array (a power of two): 2 MiB of u64.
pub const FLOW_SLOTS: u32 = 1 << 18;

/// `BPF_F_MMAPABLE`: the flow-slot array is mapped into userspace, so
/// reading a connection's class costs no syscall.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Number of slots in the service-port array: one per TCP port.
pub const PORT_SLOTS: u32 = 1 << 16;

/// The direct-indexed IPv4 table (DIR-16-8-8): the top 16 bits of an
/// address index the first level; an entry is a class id, or (with
/// [`DIR_POINTER`]) the number of a 256-entry chunk of the next level,
/// indexed by the next 8 bits. At most three dependent array loads, where
/// the LPM trie walks up to 32 nodes. Each generation has its own slice
/// of each level.
pub const DIR_L1_ENTRIES: u32 = 1 << 16;
/// Chunks per generation at the second and third levels. The real
/// AWS+GCP table needs 857 and 972; a table that needs more is served by
/// the LPM trie instead (its generation's ready flag stays 0).
pub const DIR_CHUNKS: u32 = 2048;
pub const DIR_CHUNK: u32 = 256;
/// Marks an entry that points to a chunk rather than holding a class.
pub const DIR_POINTER: u32 = 1 << 31;

/// Map names as they appear in the object file.
pub mod map_names {
    /// The active generation number (one u32); its low bit picks the tries.
    pub const ACTIVE: &str = "STEER_ACTIVE";
    /// IPv4 tries of generations 0 and 1.
    pub const LPM_V4: [&str; 2] = ["STEER_LPM_V4_0", "STEER_LPM_V4_1"];
    /// IPv6 tries of generations 0 and 1.
    pub const LPM_V6: [&str; 2] = ["STEER_LPM_V6_0", "STEER_LPM_V6_1"];
    /// What each generation's class ids mean, for tools that read the live
    /// maps (`redirector explain --kernel`); the program never reads it.
    pub const CLASS_NAMES: &str = "STEER_CLASS_NAMES";
    pub const SERVICE_PORTS: &str = "STEER_SERVICE_PORTS";
    pub const FLOW_SLOTS: &str = "STEER_FLOW_SLOTS";
    pub const CLASS_COUNTERS: &str = "STEER_CLASS_COUNTERS";
    pub const OUTCOME_COUNTERS: &str = "STEER_OUTCOME_COUNTERS";
    pub const POLICY: &str = "STEER_POLICY";
    /// Per-source SYN buckets (direct-mapped by a hash of the source).
    pub const SYN_BUCKETS: &str = "STEER_SYN_BUCKETS";
    /// The three levels of the IPv4 direct table, both generations.
    pub const DIR_L1: &str = "STEER_DIR_L1";
    pub const DIR_L2: &str = "STEER_DIR_L2";
    pub const DIR_L3: &str = "STEER_DIR_L3";
    /// Per generation: 1 when its direct table is complete and in use.
    pub const DIR_READY: &str = "STEER_DIR_READY";
}

/// Program names as they appear in the object files.
pub mod program_names {
    pub const CLASSIFIER: &str = "steer";
    pub const BASELINE: &str = "steer_baseline";
}

/// A flow: the client side of a TCP connection plus the service port it
/// connected to. IPv4 addresses are IPv4-mapped (`::ffff:a.b.c.d`) so both
/// families hash alike.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address, network byte order.
    pub addr: [u8; 16],
    /// Client port, network byte order (as read from the TCP header).
    pub src_port: u16,
    /// Service port, network byte order.
    pub dst_port: u16,
}

/// Where a flow's class lives in the flow-slot array.
///
/// The array is direct-mapped: each slot is one u64 holding a tag (39 bits
/// of the flow's hash, top bit set so a written slot is never zero), the low
/// 8 bits of the generation whose table gave the class (bits 16..24), and
/// the class in the low 16 bits. The program writes it with one 8-byte store,
/// userspace reads it with one atomic load, so a read never sees half a
/// write. Two flows that share a slot overwrite each other; the loser's tag
/// no longer matches and its reader classifies in userspace instead, with
/// the same table and so the same answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSlot {
    pub index: u32,
    pub tag: u64,
}

/// What a flow slot says about its flow: the class, and the low byte of the
/// generation whose table the class id belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotClass {
    pub epoch: u8,
    pub class: u32,
}

impl FlowSlot {
    const CLASS_BITS: u64 = 0xffff;
    const EPOCH_SHIFT: u32 = 16;
    const PAYLOAD_BITS: u64 = 0xff_ffff;

    /// The slot value that records `class` of generation `generation` for
    /// this flow.
    #[inline(always)]
    pub fn value(self, class: u32, generation: u32) -> u64 {
        self.tag
            | (((generation & 0xff) as u64) << Self::EPOCH_SHIFT)
            | (class as u64 & Self::CLASS_BITS)
    }

    /// What a slot value holds, if it was written for this flow.
    #[inline(always)]
    pub fn read(self, value: u64) -> Option<SlotClass> {
        (value & !Self::PAYLOAD_BITS == self.tag).then_some(SlotClass {
            epoch: (value >> Self::EPOCH_SHIFT) as u8,
            class: (value & Self::CLASS_BITS) as u32,
        })
    }
}

impl FlowKey {
    /// The flow's slot. Kernel and userspace run this same code.
    #[inline(always)]
    pub fn slot(&self) -> FlowSlot {
        let a = &self.addr;
        let word = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]) as u64;
        let ports = ((self.src_port as u64) << 16) | self.dst_port as u64;
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for x in [word(0), word(4), word(8), word(12), ports] {
            h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        // MurmurHash3's finaliser: every input bit reaches the index bits.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        FlowSlot {
            index: (h as u32) & (FLOW_SLOTS - 1),
            tag: (h & !FlowSlot::PAYLOAD_BITS) | (1 << 63),
        }
    }
}

/// Per-class counters (one copy per CPU; userspace sums them).
///
/// Only SYNs are attributed to a class: attributing later packets of a flow
/// would cost a flow-map lookup on every packet, which the fast path must not
/// pay. Packets and bytes of everything are counted per [`Outcome`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounters {
    /// SYN packets to a service port classified into this class, dropped
    /// ones included.
    pub syns: u64,
    /// Bytes (whole frames) of those SYNs.
    pub bytes: u64,
    /// SYNs dropped by this class's policy (drop, or over the limit).
    pub dropped: u64,
    /// Of them, SYNs over their source's limit.
    pub rate_limited: u64,
}

/// Packets and bytes per [`Outcome`] (one copy per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// What the program did with a packet; every packet lands in exactly one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NotIp = 0,
    /// Ends inside a header, or a header is invalid (bad version, IHL < 5,
    /// TCP data offset < 5).
    Malformed = 1,
    /// IP but not TCP.
    NotTcp = 2,
    /// A non-first fragment: no TCP header to read.
    Fragment = 3,
    /// A header the program does not follow: a third VLAN tag, too many or
    /// unsupported IPv6 extension headers.
    Unfollowed = 4,
    /// TCP without SYN, or with SYN and ACK.
    NotSyn = 5,
    /// A SYN to a port that is not a service port.
    OtherPort = 6,
    /// A SYN to a service port: looked up, recorded, passed.
    Classified = 7,
    /// A SYN to a service port whose class policy says drop.
    Dropped = 8,
    /// A SYN over its source's limit.
    RateLimited = 9,
}

impl Outcome {
    pub const COUNT: u32 = 10;
    pub const ALL: [Outcome; Self::COUNT as usize] = [
        Outcome::NotIp,
        Outcome::Malformed,
        Outcome::NotTcp,
        Outcome::Fragment,
        Outcome::Unfollowed,
        Outcome::NotSyn,
        Outcome::OtherPort,
        Outcome::Classified,
        Outcome::Dropped,
        Outcome::RateLimited,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Outcome::NotIp => "not_ip",
            Outcome::Malformed => "malformed",
            Outcome::NotTcp => "not_tcp",
            Outcome::Fragment => "fragment",
            Outcome::Unfollowed => "unfollowed",
            Outcome::NotSyn => "not_syn",
            Outcome::OtherPort => "other_port",
            Outcome::Classified => "classified",
            Outcome::Dropped => "dropped",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], Copy, contain only integers and
    // byte arrays, and have no padding.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::ClassCounters {}
    unsafe impl aya::Pod for super::PacketCounters {}
    unsafe impl aya::Pod for super::Policy {}
    unsafe impl aya::Pod for super::SynBucket {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn shared_types_have_no_padding() {
        assert_eq!(size_of::<FlowKey>(), 20);
        assert_eq!(size_of::<ClassCounters>(), 32);
        assert_eq!(size_of::<Policy>(), 16);
        assert_eq!(size_of::<SynBucket>(), 24);
        assert_eq!(size_of::<PacketCounters>(), 16);
    }

    fn key(port: u16) -> FlowKey {
        let mut addr = [0u8; 16];
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12..].copy_from_slice(&[35, 180, 1, 1]);
        FlowKey {
            addr,
            src_port: port.to_be(),
            dst_port: 443u16.to_be(),
        }
    }

    #[test]
    fn slot_values_round_trip_and_are_never_zero() {
        for port in [0, 1, 40000, 65535] {
            let slot = key(port).slot();
            assert!(slot.index < FLOW_SLOTS);
            for class in [0, 1, MAX_CLASSES - 1] {
                for generation in [0, 1, 255, 256, u32::MAX] {
                    let v = slot.value(class, generation);
                    assert_ne!(v, 0);
                    let epoch = generation as u8;
                    assert_eq!(slot.read(v), Some(SlotClass { epoch, class }));
                }
            }
            assert_eq!(slot.read(0), None, "an empty slot matches no flow");
        }
    }

    #[test]
    fn another_flow_in_the_same_slot_does_not_match() {
        // Find two flows that share a slot (birthday bound: ~700 tries).
        let mut seen = [u16::MAX; FLOW_SLOTS as usize];
        let (a, b) = (0..=u16::MAX)
            .find_map(|p| {
                let i = key(p).slot().index as usize;
                let prev = core::mem::replace(&mut seen[i], p);
                (prev != u16::MAX).then_some((prev, p))
            })
            .expect("a collision among 65,536 flows");
        let (sa, sb) = (key(a).slot(), key(b).slot());
        assert_eq!(sa.index, sb.index);
        assert_eq!(sa.read(sb.value(7, 1)), None);
    }

    #[test]
    fn slots_spread_like_a_random_function() {
        // 65,536 client ports from one address: a random function into
        // 2^18 slots fills 2^18 * (1 - e^(-1/4)) = 57,991 of them.
        let mut used = [false; FLOW_SLOTS as usize];
        for p in 0..=u16::MAX {
            used[key(p).slot().index as usize] = true;
        }
        let filled = used.iter().filter(|u| **u).count() as f64;
        assert!(
            (filled / 57_991.0 - 1.0).abs() < 0.01,
            "{filled} slots filled"
        );
    }

    #[test]
    fn outcome_table_is_dense() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
    }
}
