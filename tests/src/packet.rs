//! Crafted frames built from named parts, for BPF_PROG_TEST_RUN tables.
//!
//! Checksums are left zero: XDP runs before anything verifies them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const IPV6_HOPOPTS: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
pub const IPV6_DSTOPTS: u8 = 60;
pub const IPV6_AH: u8 = 51;

/// Transport layer of a frame.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
        /// Data offset in 32-bit words (5 without options).
        data_offset: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// An ICMP/ICMPv6 echo request.
    Icmp,
}

impl L4 {
    fn protocol(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp if v6 => 58,
            L4::Icmp => 1,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match *self {
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                data_offset,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&src_port.to_be_bytes());
                h[2..4].copy_from_slice(&dst_port.to_be_bytes());
                h[4..8].copy_from_slice(&1u32.to_be_bytes());
                h[12] = data_offset << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                // Options the data offset promises, padded with NOPs.
                h.resize(usize::from(data_offset.max(5)) * 4, 1);
                h
            }
            L4::Udp { src_port, dst_port } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&src_port.to_be_bytes());
                h[2..4].copy_from_slice(&dst_port.to_be_bytes());
                h[4..6].copy_from_slice(&8u16.to_be_bytes());
                h
            }
            L4::Icmp => vec![8, 0, 0, 0, 0, 1, 0, 1],
        }
    }
}

/// A frame: Ethernet, optional VLAN tags, IPv4 or IPv6, transport.
#[derive(Clone, Debug)]
pub struct Frame {
    /// TPIDs of the VLAN tags, outermost first.
    pub vlans: Vec<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 options, a multiple of 4 bytes.
    pub ipv4_options: Vec<u8>,
    /// IPv4 flags+fragment-offset field (host order), e.g. 0x2000 = MF.
    pub ipv4_frag: u16,
    /// IPv6 extension headers: (type, total length in bytes, a multiple of 8).
    /// A fragment header's "length" is its fragment offset field instead.
    pub ipv6_ext: Vec<(u8, u16)>,
    /// Overrides the IPv4 version/IHL byte (for malformed rows).
    pub ipv4_first_byte: Option<u8>,
    pub l4: L4,
    pub payload: usize,
}

impl Frame {
    /// A TCP segment from `src:src_port` to `dst:dst_port` with `flags`.
    pub fn tcp(src: &str, src_port: u16, dst: &str, dst_port: u16, flags: u8) -> Frame {
        Frame {
            vlans: Vec::new(),
            src: src.parse().expect("source address"),
            dst: dst.parse().expect("destination address"),
            ipv4_options: Vec::new(),
            ipv4_frag: 0,
            ipv6_ext: Vec::new(),
            ipv4_first_byte: None,
            l4: L4::Tcp {
                src_port,
                dst_port,
                flags,
                data_offset: 5,
            },
            payload: 0,
        }
    }

    /// A SYN from `src` port 40000 to `dst` port `dst_port`.
    pub fn syn(src: &str, dst: &str, dst_port: u16) -> Frame {
        Frame::tcp(src, 40000, dst, dst_port, TCP_SYN)
    }

    pub fn with_l4(mut self, l4: L4) -> Frame {
        self.l4 = l4;
        self
    }

    pub fn vlan(mut self, tpid: u16) -> Frame {
        self.vlans.push(tpid);
        self
    }

    pub fn ipv4_options(mut self, words: usize) -> Frame {
        // NOP options up to the requested length.
        self.ipv4_options = vec![1; words * 4];
        self
    }

    pub fn ipv4_frag(mut self, field: u16) -> Frame {
        self.ipv4_frag = field;
        self
    }

    pub fn ipv6_ext(mut self, kind: u8, len: u16) -> Frame {
        self.ipv6_ext.push((kind, len));
        self
    }

    pub fn ipv4_first_byte(mut self, b: u8) -> Frame {
        self.ipv4_first_byte = Some(b);
        self
    }

    pub fn payload(mut self, len: usize) -> Frame {
        self.payload = len;
        self
    }

    /// Offsets at which each header ends, named, for truncation rows.
    pub fn header_ends(&self) -> Vec<(&'static str, usize)> {
        self.build().1
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.build().0
    }

    fn build(&self) -> (Vec<u8>, Vec<(&'static str, usize)>) {
        let mut ends = Vec::new();
        let mut p = Vec::with_capacity(128);
        p.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // dst MAC
        p.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // src MAC
        let v6 = self.src.is_ipv6();
        let ethertype = if v6 { ETH_P_IPV6 } else { ETH_P_IPV4 };
        let mut types: Vec<u16> = self.vlans.clone();
        types.push(ethertype);
        p.extend_from_slice(&types[0].to_be_bytes());
        ends.push(("ethernet", p.len()));
        for (i, _) in self.vlans.iter().enumerate() {
            p.extend_from_slice(&[0x00, 0x64]); // PCP/VID 100
            p.extend_from_slice(&types[i + 1].to_be_bytes());
            ends.push(("vlan", p.len()));
        }

        let l4 = self.l4.bytes();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.ipv4(&mut p, s, d, l4.len());
                ends.push(("ipv4", p.len()));
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.ipv6(&mut p, s, d, l4.len(), &mut ends);
            }
            _ => panic!("source and destination must be the same family"),
        }
        p.extend_from_slice(&l4);
        ends.push(("l4", p.len()));
        p.resize(p.len() + self.payload, 0xab);
        (p, ends)
    }

    fn ipv4(&self, p: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, l4_len: usize) {
        let ihl = 5 + self.ipv4_options.len() / 4;
        let total = (ihl * 4 + l4_len + self.payload) as u16;
        p.push(self.ipv4_first_byte.unwrap_or(0x40 | ihl as u8));
        p.push(0);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34]);
        p.extend_from_slice(&self.ipv4_frag.to_be_bytes());
        p.push(64);
        p.push(self.l4.protocol(false));
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&self.ipv4_options);
    }

    fn ipv6(
        &self,
        p: &mut Vec<u8>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        l4_len: usize,
        ends: &mut Vec<(&'static str, usize)>,
    ) {
        let proto = self.l4.protocol(true);
        let ext_len: usize = self
            .ipv6_ext
            .iter()
            .map(|&(k, l)| {
                if k == IPV6_FRAGMENT {
                    8
                } else {
                    usize::from(l)
                }
            })
            .sum();
        let first_next = self.ipv6_ext.first().map_or(proto, |&(k, _)| k);
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&((ext_len + l4_len + self.payload) as u16).to_be_bytes());
        p.push(first_next);
        p.push(64);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        ends.push(("ipv6", p.len()));
        for (i, &(kind, len)) in self.ipv6_ext.iter().enumerate() {
            let next = self.ipv6_ext.get(i + 1).map_or(proto, |&(k, _)| k);
            if kind == IPV6_FRAGMENT {
                p.push(next);
                p.push(0);
                // `len` carries the offset field: offset << 3 | M flag.
                p.extend_from_slice(&len.to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, 7]);
            } else {
                assert!(len >= 8 && len % 8 == 0, "extension length");
                p.push(next);
                p.push((len / 8 - 1) as u8);
                p.resize(p.len() + usize::from(len) - 2, 0);
            }
            ends.push(("ipv6-ext", p.len()));
        }
    }
}

/// A frame that is not IP at all.
pub fn arp() -> Vec<u8> {
    let mut p = vec![0xff; 6];
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    p.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    p.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    p.resize(42, 0);
    p
}
