//! Seeded random addresses over a range table, for the differential test
//! and the lookup bench: the same seed gives the same addresses on every
//! run, so a failure can be replayed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use steer_user::RangeTable;

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn u128(&mut self) -> u128 {
        u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())
    }
}

/// A random address of the family: `inside` picks a random prefix of the
/// table and a random host in it; otherwise uniform (IPv6: over 2000::/3,
/// where global unicast lives).
pub fn random_addr(table: &RangeTable, rng: &mut Rng, v6: bool, inside: bool) -> IpAddr {
    match (v6, inside) {
        (false, false) => Ipv4Addr::from(rng.next_u64() as u32).into(),
        (true, false) => Ipv6Addr::from((rng.u128() >> 3) | (1 << 125)).into(),
        (false, true) => {
            let (net, _) = table.v4()[rng.below(table.v4().len())];
            let host = (rng.next_u64() as u32) & !u32::from(net.netmask());
            Ipv4Addr::from(u32::from(net.network()) | host).into()
        }
        (true, true) => {
            let (net, _) = table.v6()[rng.below(table.v6().len())];
            let host = rng.u128() & !u128::from(net.netmask());
            Ipv6Addr::from(u128::from(net.network()) | host).into()
        }
    }
}
