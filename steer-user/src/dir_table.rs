//! The kernel's IPv4 direct table (DIR-16-8-8), compiled from the same
//! prefixes as the LPM tries: a first level of 65,536 entries for the top
//! 16 bits, and chunks of 256 entries for the next 8 bits, twice. An
//! entry holds a class id, or points to a chunk (`DIR_POINTER`). A lookup
//! is at most three dependent array loads; see `steer-ebpf`'s program.
//!
//! Built by painting: prefixes from the shortest to the longest, each one
//! overwriting the entries it covers, so the longest prefix wins as in the
//! trie. A chunk starts as a copy of the entry it replaces, so addresses
//! the longer prefixes leave out keep the shorter one's class.

use ipnet::Ipv4Net;
use steer_ebpf::{DIR_CHUNK, DIR_CHUNKS, DIR_L1_ENTRIES, DIR_POINTER};

/// The three levels of one generation, as the kernel's arrays hold them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirTable {
    pub l1: Vec<u32>,
    /// Used chunks only, 256 entries each.
    pub l2: Vec<u32>,
    pub l3: Vec<u32>,
}

/// A table needing more chunks than a generation has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the IPv4 direct table needs {l2} second-level and {l3} third-level chunks; the kernel has {max} of each, so IPv4 lookups use the LPM trie"
)]
pub struct DirTooBig {
    pub l2: usize,
    pub l3: usize,
    pub max: u32,
}

const CHUNK: usize = DIR_CHUNK as usize;

impl DirTable {
    /// Compiles `(prefix, class)` pairs (any order; classes below 2^31).
    pub fn build(prefixes: &[(Ipv4Net, u32)]) -> Result<DirTable, DirTooBig> {
        let mut sorted: Vec<&(Ipv4Net, u32)> = prefixes.iter().collect();
        sorted.sort_by_key(|(n, _)| n.prefix_len());
        let mut t = DirTable {
            l1: vec![0; DIR_L1_ENTRIES as usize],
            l2: Vec::new(),
            l3: Vec::new(),
        };
        for &&(net, class) in &sorted {
            let first = u32::from(net.network());
            let last = u32::from(net.broadcast());
            match net.prefix_len() {
                0..=16 => t.l1[(first >> 16) as usize..=(last >> 16) as usize].fill(class),
                17..=24 => {
                    let c = child(&mut t.l1, (first >> 16) as usize, &mut t.l2);
                    let base = c * CHUNK;
                    let (lo, hi) = (
                        ((first >> 8) & 0xff) as usize,
                        ((last >> 8) & 0xff) as usize,
                    );
                    t.l2[base + lo..=base + hi].fill(class);
                }
                _ => {
                    let c2 = child(&mut t.l1, (first >> 16) as usize, &mut t.l2);
                    let at = c2 * CHUNK + ((first >> 8) & 0xff) as usize;
                    let c3 = child(&mut t.l2, at, &mut t.l3);
                    let base = c3 * CHUNK;
                    let (lo, hi) = ((first & 0xff) as usize, (last & 0xff) as usize);
                    t.l3[base + lo..=base + hi].fill(class);
                }
            }
        }
        let (l2, l3) = (t.l2.len() / CHUNK, t.l3.len() / CHUNK);
        if l2 > DIR_CHUNKS as usize || l3 > DIR_CHUNKS as usize {
            return Err(DirTooBig {
                l2,
                l3,
                max: DIR_CHUNKS,
            });
        }
        Ok(t)
    }

    /// The class of `a` (host order), as the kernel reads it.
    pub fn lookup(&self, a: u32) -> u32 {
        let e1 = self.l1[(a >> 16) as usize];
        if e1 & DIR_POINTER == 0 {
            return e1;
        }
        let e2 = self.l2[(e1 & !DIR_POINTER) as usize * CHUNK + ((a >> 8) & 0xff) as usize];
        if e2 & DIR_POINTER == 0 {
            return e2;
        }
        self.l3[(e2 & !DIR_POINTER) as usize * CHUNK + (a & 0xff) as usize]
    }
}

/// The chunk that `level[at]` points to, made (filled with the class it
/// held) if it held a class.
fn child(level: &mut [u32], at: usize, next: &mut Vec<u32>) -> usize {
    let e = level[at];
    if e & DIR_POINTER != 0 {
        return (e & !DIR_POINTER) as usize;
    }
    let c = next.len() / CHUNK;
    next.extend(std::iter::repeat_n(e, CHUNK));
    level[at] = DIR_POINTER | c as u32;
    c
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn brute(prefixes: &[(Ipv4Net, u32)], a: u32) -> u32 {
        prefixes
            .iter()
            .filter(|(n, _)| n.contains(&Ipv4Addr::from(a)))
            .max_by_key(|(n, _)| n.prefix_len())
            .map_or(0, |&(_, c)| c)
    }

    #[test]
    fn the_longest_prefix_wins_at_every_level() {
        let p = |s: &str, c| (s.parse::<Ipv4Net>().unwrap(), c);
        let prefixes = [
            p("10.0.0.0/8", 1),
            p("10.1.0.0/16", 2),
            p("10.1.2.0/24", 3),
            p("10.1.2.128/25", 4),
            p("10.1.2.129/32", 5),
            p("10.2.0.0/20", 6),
            p("0.0.0.0/0", 7),
            p("192.168.255.255/32", 8),
        ];
        let t = DirTable::build(&prefixes).unwrap();
        let edges = [
            "10.0.0.0",
            "10.1.0.0",
            "10.1.1.255",
            "10.1.2.0",
            "10.1.2.127",
            "10.1.2.128",
            "10.1.2.129",
            "10.1.2.130",
            "10.1.2.255",
            "10.1.3.0",
            "10.2.15.255",
            "10.2.16.0",
            "11.0.0.0",
            "9.255.255.255",
            "192.168.255.254",
            "192.168.255.255",
            "255.255.255.255",
            "0.0.0.0",
        ];
        for a in edges {
            let a = u32::from(a.parse::<Ipv4Addr>().unwrap());
            assert_eq!(t.lookup(a), brute(&prefixes, a), "{}", Ipv4Addr::from(a));
        }
        // 10.1/16 and 10.2/16 and 192.168/16 have longer prefixes; one
        // /24 (10.1.2) and one /24 (192.168.255) have longer still.
        assert_eq!((t.l2.len() / CHUNK, t.l3.len() / CHUNK), (3, 2));
    }

    #[test]
    fn too_many_chunks_is_an_error_not_a_wrong_answer() {
        // One /24 in each of DIR_CHUNKS + 1 different /16s.
        let prefixes: Vec<(Ipv4Net, u32)> = (0..=DIR_CHUNKS)
            .map(|i| (Ipv4Net::new(Ipv4Addr::from(i << 16), 24).unwrap(), 1))
            .collect();
        let e = DirTable::build(&prefixes).unwrap_err();
        assert_eq!((e.l2, e.max), (DIR_CHUNKS as usize + 1, DIR_CHUNKS));
    }
}
