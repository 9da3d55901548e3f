//! A leaf-pushed multibit trie: the top 16 bits index a root array, each
//! further level is a 256-entry node for the next 8 bits. An entry is a
//! class id (the answer for every address under it) or, with the top bit
//! set, the index of the next node. Prefixes go in shortest first, so a
//! longer prefix simply overwrites the entries it covers.
//!
//! Simple, exact, few levels, but 1 KiB per node: the classifier uses it
//! for IPv6, where depth costs more than size. It also answers "which class
//! covers this block" while the compact [`crate::poptrie::PopTrie`] is built.

const ROOT_BITS: u32 = 16;
const STRIDE: u32 = 8;
const FANOUT: usize = 1 << STRIDE;
const NODE: u32 = 1 << 31;

pub(crate) struct StrideTrie {
    /// Address width: 32 or 128.
    bits: u32,
    root: Box<[u32]>,
    nodes: Vec<[u32; FANOUT]>,
}

impl StrideTrie {
    /// Builds from `(address, prefix length, class)`, addresses in the low
    /// `bits` bits of a u128, **sorted by prefix length**, shortest first.
    pub(crate) fn build(bits: u32, sorted: &[(u128, u8, u32)]) -> Self {
        debug_assert!(sorted.windows(2).all(|w| w[0].1 <= w[1].1));
        let mut trie = StrideTrie {
            bits,
            root: vec![crate::CLASS_UNKNOWN; 1 << ROOT_BITS].into_boxed_slice(),
            nodes: Vec::new(),
        };
        for &(addr, len, class) in sorted {
            debug_assert!(class < NODE);
            trie.insert(addr, u32::from(len), class);
        }
        trie
    }

    fn insert(&mut self, addr: u128, len: u32, class: u32) {
        let top = (addr >> (self.bits - ROOT_BITS)) as usize;
        if len <= ROOT_BITS {
            let span = 1usize << (ROOT_BITS - len);
            let start = top & !(span - 1);
            self.root[start..start + span].fill(class);
            return;
        }
        let mut entry = self.child(None, top);
        let mut cut = ROOT_BITS;
        loop {
            let index = ((addr >> (self.bits - cut - STRIDE)) as usize) & (FANOUT - 1);
            if len <= cut + STRIDE {
                let span = 1usize << (cut + STRIDE - len);
                let start = index & !(span - 1);
                self.nodes[entry][start..start + span].fill(class);
                return;
            }
            entry = self.child(Some(entry), index);
            cut += STRIDE;
        }
    }

    /// The node under `parent[index]` (the root when `parent` is None),
    /// created and filled with the entry's class when it is a leaf.
    fn child(&mut self, parent: Option<usize>, index: usize) -> usize {
        let slot = match parent {
            None => self.root[index],
            Some(p) => self.nodes[p][index],
        };
        if slot & NODE != 0 {
            return (slot & !NODE) as usize;
        }
        let node = self.nodes.len();
        self.nodes.push([slot; FANOUT]);
        let pointer = NODE | node as u32;
        match parent {
            None => self.root[index] = pointer,
            Some(p) => self.nodes[p][index] = pointer,
        }
        node
    }

    /// The class of the longest prefix covering `addr` (0 when none).
    #[inline]
    pub(crate) fn get(&self, addr: u128) -> u32 {
        let mut shift = self.bits - ROOT_BITS;
        let mut entry = self.root[(addr >> shift) as usize];
        while entry & NODE != 0 {
            shift -= STRIDE;
            let node = &self.nodes[(entry & !NODE) as usize];
            entry = node[((addr >> shift) as usize) & (FANOUT - 1)];
        }
        entry
    }

    /// Bytes of heap the trie holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.root.len() * 4 + self.nodes.capacity() * FANOUT * 4
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::poptrie::PopTrie;

    fn mask(bits: u32, len: u32) -> u128 {
        if len == 0 {
            0
        } else {
            (u128::MAX >> (128 - bits)) & !((1u128 << (bits - len)) - 1)
        }
    }

    /// The longest covering prefix, by looking at every prefix.
    fn brute(prefixes: &BTreeMap<(u128, u32), u32>, bits: u32, addr: u128) -> u32 {
        prefixes
            .iter()
            .filter(|((net, len), _)| addr & mask(bits, *len) == *net)
            .max_by_key(|((_, len), _)| *len)
            .map_or(0, |(_, c)| *c)
    }

    /// Addresses crowded into a few top-16 blocks so prefixes nest and
    /// share nodes, as provider feeds do.
    fn addr(bits: u32) -> impl Strategy<Value = u128> {
        (0u128..4, any::<u128>()).prop_map(move |(block, low)| {
            let top = (0x2a05 + block) << (bits - 16);
            (top | (low & ((1u128 << (bits - 16)) - 1))) & (u128::MAX >> (128 - bits))
        })
    }

    fn check(bits: u32, raw: Vec<(u128, u32, u32)>, queries: Vec<u128>) {
        let mut prefixes = BTreeMap::new();
        for (a, len, class) in raw {
            prefixes.insert((a & mask(bits, len), len), class);
        }
        let mut sorted: Vec<(u128, u8, u32)> = prefixes
            .iter()
            .map(|(&(a, len), &c)| (a, len as u8, c))
            .collect();
        sorted.sort_by_key(|&(_, len, _)| len);
        let stride = StrideTrie::build(bits, &sorted);
        let pop = PopTrie::build(bits, sorted.iter().copied());
        // Every prefix's first and last address, their outside neighbours,
        // and the random queries.
        let edges = prefixes.keys().flat_map(|&(net, len)| {
            let last = net | (!mask(bits, len) & (u128::MAX >> (128 - bits)));
            [net, last, net.wrapping_sub(1), last.wrapping_add(1)]
        });
        for q in edges.chain(queries) {
            let q = q & (u128::MAX >> (128 - bits));
            let want = brute(&prefixes, bits, q);
            assert_eq!(stride.get(q), want, "{bits}-bit {q:#x}, stride trie");
            assert_eq!(pop.get(q), want, "{bits}-bit {q:#x}, poptrie");
        }
    }

    proptest! {
        #[test]
        fn ipv4_matches_brute_force(
            raw in prop::collection::vec((addr(32), 0u32..=32, 1u32..50), 1..60),
            queries in prop::collection::vec(addr(32), 50),
        ) {
            check(32, raw, queries);
        }

        #[test]
        fn ipv6_matches_brute_force(
            raw in prop::collection::vec((addr(128), 0u32..=128, 1u32..50), 1..60),
            queries in prop::collection::vec(addr(128), 50),
        ) {
            check(128, raw, queries);
        }
    }
}
