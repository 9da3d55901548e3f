//! Types and constants shared by the XDP program and userspace.
//!
//! Everything here is `#[repr(C)]` and laid out exactly as the kernel maps
//! store it. Addresses and ports are kept in network byte order, as they sit
//! in the packet, so the fast path never converts anything.
#![no_std]

/// Class id of a source address no prefix covers.
pub const CLASS_UNKNOWN: u32 = 0;

/// Number of class slots in the counter and policy arrays. Class ids at or
/// above this are ignored by the counters and the policy (never written by
/// steer-user, which refuses tables with more classes).
pub const MAX_CLASSES: u32 = 4096;

/// Capacity of each LPM trie. The tries are not preallocated, so this only
/// bounds growth; the real AWS+GCP table needs about 12,000 entries.
pub const MAX_PREFIXES: u32 = 1 << 18;

/// Capacity of the flow map (an LRU: old flows are evicted, never refused).
pub const MAX_FLOWS: u32 = 1 << 16;

/// Number of slots in the service-port array: one per TCP port.
pub const PORT_SLOTS: u32 = 1 << 16;

/// Map names as they appear in the object file.
pub mod map_names {
    pub const LPM_V4: &str = "STEER_LPM_V4";
    pub const LPM_V6: &str = "STEER_LPM_V6";
    pub const SERVICE_PORTS: &str = "STEER_SERVICE_PORTS";
    pub const FLOWS: &str = "STEER_FLOWS";
    pub const CLASS_COUNTERS: &str = "STEER_CLASS_COUNTERS";
    pub const OUTCOME_COUNTERS: &str = "STEER_OUTCOME_COUNTERS";
    pub const POLICY: &str = "STEER_POLICY";
}

/// Program names as they appear in the object files.
pub mod program_names {
    pub const CLASSIFIER: &str = "steer";
    pub const BASELINE: &str = "steer_baseline";
}

/// Key of the flow map: the client side of a TCP connection plus the
/// service port it connected to. IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`) so both families share one map.
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

/// What the program recorded for a flow when its SYN arrived.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub class: u32,
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
    /// SYNs dropped by this class's policy.
    pub dropped: u64,
}

/// Packets and bytes per [`Outcome`] (one copy per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// Per-class policy, stored as a `u32` in the policy array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Let the SYN through (the default: the array starts zeroed).
    #[default]
    Pass = 0,
    /// Drop the SYN.
    Drop = 1,
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
}

impl Outcome {
    pub const COUNT: u32 = 9;
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
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], Copy, contain only integers and
    // byte arrays, and have no padding.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowValue {}
    unsafe impl aya::Pod for super::ClassCounters {}
    unsafe impl aya::Pod for super::PacketCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn shared_types_have_no_padding() {
        assert_eq!(size_of::<FlowKey>(), 20);
        assert_eq!(size_of::<FlowValue>(), 4);
        assert_eq!(size_of::<ClassCounters>(), 24);
        assert_eq!(size_of::<PacketCounters>(), 16);
    }

    #[test]
    fn outcome_table_is_dense() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
    }
}
