//! Header parsing, bounded so the verifier accepts it.
//!
//! Each header is read through one pointer that was bounds-checked for the
//! whole header: reading fields through separate checks at offsets that
//! depend on the IP header length is rejected by the verifier.

use aya_ebpf::programs::XdpContext;
use steer_ebpf::Outcome;

const ETH_LEN: usize = 14;
const VLAN_LEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const IPPROTO_TCP: u8 = 6;
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DSTOPTS: u8 = 60;
/// Extension headers followed before giving up (Unfollowed).
const MAX_IPV6_EXT: usize = 4;

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// Where the source address of a packet sits.
#[derive(Clone, Copy)]
pub enum Source {
    V4 { l3: usize },
    V6 { l3: usize },
}

/// A SYN (SYN set, ACK clear). The source address is not read yet: most
/// SYNs a host sees go to ports that are not service ports.
pub struct Syn {
    pub source: Source,
    /// Ports as they sit in the header (network byte order).
    pub src_port: u16,
    pub dst_port: u16,
    /// Destination port in host order, for the service-port array.
    pub dst_port_host: u16,
}

#[inline(always)]
fn header<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<&[u8; N], Outcome> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + N > end {
        return Err(Outcome::Malformed);
    }
    // SAFETY: the range [start + offset, start + offset + N) lies inside the
    // packet, checked just above against data_end.
    Ok(unsafe { &*((start + offset) as *const [u8; N]) })
}

#[inline(always)]
fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Parses down to TCP and returns the SYN, or the outcome that ends parsing.
#[inline(always)]
pub fn parse_syn(ctx: &XdpContext) -> Result<Syn, Outcome> {
    let eth = header::<ETH_LEN>(ctx, 0)?;
    let mut ethertype = be16(eth[12], eth[13]);
    let mut l3 = ETH_LEN;
    // Zero, one or two VLAN tags (802.1ad outer, 802.1Q inner), written out
    // rather than looped so every offset is a constant.
    if ethertype == ETH_P_8021AD || ethertype == ETH_P_8021Q {
        let tag = header::<VLAN_LEN>(ctx, l3)?;
        ethertype = be16(tag[2], tag[3]);
        l3 += VLAN_LEN;
        if ethertype == ETH_P_8021AD || ethertype == ETH_P_8021Q {
            let tag = header::<VLAN_LEN>(ctx, l3)?;
            ethertype = be16(tag[2], tag[3]);
            l3 += VLAN_LEN;
            if ethertype == ETH_P_8021AD || ethertype == ETH_P_8021Q {
                return Err(Outcome::Unfollowed);
            }
        }
    }

    let (source, l4) = match ethertype {
        ETH_P_IPV4 => ipv4(ctx, l3)?,
        ETH_P_IPV6 => ipv6(ctx, l3)?,
        _ => return Err(Outcome::NotIp),
    };

    let tcp = header::<20>(ctx, l4)?;
    if tcp[12] >> 4 < 5 {
        return Err(Outcome::Malformed);
    }
    if tcp[13] & (TCP_SYN | TCP_ACK) != TCP_SYN {
        return Err(Outcome::NotSyn);
    }
    Ok(Syn {
        source,
        src_port: u16::from_ne_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_ne_bytes([tcp[2], tcp[3]]),
        dst_port_host: be16(tcp[2], tcp[3]),
    })
}

/// IPv4: any header length; non-first fragments end here.
#[inline(always)]
fn ipv4(ctx: &XdpContext, l3: usize) -> Result<(Source, usize), Outcome> {
    let ip = header::<20>(ctx, l3)?;
    let version = ip[0] >> 4;
    // Masked so the verifier sees the offset bounded to 60.
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if version != 4 || ihl < 20 {
        return Err(Outcome::Malformed);
    }
    if be16(ip[6], ip[7]) & 0x1fff != 0 {
        return Err(Outcome::Fragment);
    }
    if ip[9] != IPPROTO_TCP {
        return Err(Outcome::NotTcp);
    }
    Ok((Source::V4 { l3 }, l3 + ihl))
}

/// IPv6: follows hop-by-hop, routing, destination-options and first-fragment
/// headers, up to MAX_IPV6_EXT of them.
#[inline(always)]
fn ipv6(ctx: &XdpContext, l3: usize) -> Result<(Source, usize), Outcome> {
    let ip = header::<40>(ctx, l3)?;
    if ip[0] >> 4 != 6 {
        return Err(Outcome::Malformed);
    }
    let mut next = ip[6];
    let mut off = l3 + 40;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                let ext = header::<2>(ctx, off)?;
                next = ext[0];
                off += (ext[1] as usize + 1) * 8;
            }
            IPV6_FRAGMENT => {
                let frag = header::<8>(ctx, off)?;
                if be16(frag[2], frag[3]) & 0xfff8 != 0 {
                    return Err(Outcome::Fragment);
                }
                next = frag[0];
                off += 8;
            }
            _ => break,
        }
    }
    match next {
        IPPROTO_TCP => Ok((Source::V6 { l3 }, off)),
        IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_FRAGMENT | IPV6_AH => {
            Err(Outcome::Unfollowed)
        }
        _ => Err(Outcome::NotTcp),
    }
}

/// The IPv4 source address of a packet `parse_syn` accepted.
#[inline(always)]
pub fn ipv4_source(ctx: &XdpContext, l3: usize) -> Result<[u8; 4], Outcome> {
    let ip = header::<20>(ctx, l3)?;
    Ok([ip[12], ip[13], ip[14], ip[15]])
}

/// The IPv6 source address of a packet `parse_syn` accepted.
#[inline(always)]
pub fn ipv6_source(ctx: &XdpContext, l3: usize) -> Result<[u8; 16], Outcome> {
    let ip = header::<40>(ctx, l3)?;
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&ip[8..24]);
    Ok(addr)
}
