//! A leaf-pushed multibit trie: the userspace longest-prefix lookup.
//!
//! The top 16 bits index a root array directly; each further level is a
//! 256-entry node indexed by the next 8 bits. An entry is either a class id
//! (the answer for every address under it) or, with the top bit set, the
//! index of the next node. Prefixes are inserted shortest first, so a
//! longer prefix simply overwrites the entries it covers: a lookup is one
//! load per level and stops at the first class it meets (most addresses at
//! the root or one level down).
//!
//! Entries are 16 bits wide while class ids and node indices fit (the
//! real tables), else 32. Memory is then 128 KiB for the root plus 512
//! bytes per node; the real AWS+GCP table needs about 1,800 IPv4 and 900
//! IPv6 nodes (`cargo xtask bench lpm` prints the figure).

const ROOT_BITS: u32 = 16;
const STRIDE: u32 = 8;
const FANOUT: usize = 1 << STRIDE;

/// An entry: a class id, or (top bit set) a node index. Narrow entries
/// halve the memory, and so the cache misses, of a lookup.
pub(crate) trait Entry: Copy + Send + Sync + 'static {
    const NODE: u32;
    fn from_u32(v: u32) -> Self;
    fn to_u32(self) -> u32;
}

impl Entry for u16 {
    const NODE: u32 = 1 << 15;
    #[inline(always)]
    fn from_u32(v: u32) -> Self {
        v as u16
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
}

impl Entry for u32 {
    const NODE: u32 = 1 << 31;
    #[inline(always)]
    fn from_u32(v: u32) -> Self {
        v
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        self
    }
}

pub(crate) struct StrideTrie<E> {
    /// Address width: 32 or 128.
    bits: u32,
    root: Box<[E]>,
    nodes: Vec<[E; FANOUT]>,
}

/// The trie in the narrowest entry that holds its classes and nodes.
pub(crate) enum AnyTrie {
    Narrow(StrideTrie<u16>),
    Wide(StrideTrie<u32>),
}

impl AnyTrie {
    /// Builds from `(address, prefix length, class)` with addresses in the
    /// low `bits` bits of a u128.
    pub(crate) fn build(bits: u32, prefixes: impl IntoIterator<Item = (u128, u8, u32)>) -> Self {
        let mut sorted: Vec<(u128, u8, u32)> = prefixes.into_iter().collect();
        sorted.sort_by_key(|&(_, len, _)| len);
        let wide = StrideTrie::<u32>::build(bits, &sorted);
        let max_class = sorted.iter().map(|&(_, _, c)| c).max().unwrap_or(0);
        if max_class < u16::NODE && (wide.nodes.len() as u32) < u16::NODE {
            AnyTrie::Narrow(StrideTrie::<u16>::build(bits, &sorted))
        } else {
            AnyTrie::Wide(wide)
        }
    }

    #[inline]
    pub(crate) fn get(&self, addr: u128) -> u32 {
        match self {
            AnyTrie::Narrow(t) => t.get(addr),
            AnyTrie::Wide(t) => t.get(addr),
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            AnyTrie::Narrow(t) => t.memory_bytes(),
            AnyTrie::Wide(t) => t.memory_bytes(),
        }
    }

    pub(crate) fn node_count(&self) -> usize {
        match self {
            AnyTrie::Narrow(t) => t.nodes.len(),
            AnyTrie::Wide(t) => t.nodes.len(),
        }
    }
}

impl<E: Entry> StrideTrie<E> {
    /// `sorted` must be ordered by prefix length, shortest first.
    fn build(bits: u32, sorted: &[(u128, u8, u32)]) -> Self {
        let mut trie = StrideTrie {
            bits,
            root: vec![E::from_u32(crate::CLASS_UNKNOWN); 1 << ROOT_BITS].into_boxed_slice(),
            nodes: Vec::new(),
        };
        for &(addr, len, class) in sorted {
            trie.insert(addr, u32::from(len), class);
        }
        trie
    }

    fn insert(&mut self, addr: u128, len: u32, class: u32) {
        let class = E::from_u32(class);
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
        if slot.to_u32() & E::NODE != 0 {
            return (slot.to_u32() & !E::NODE) as usize;
        }
        let node = self.nodes.len();
        self.nodes.push([slot; FANOUT]);
        let pointer = E::from_u32(E::NODE | node as u32);
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
        let mut entry = self.root[(addr >> shift) as usize].to_u32();
        while entry & E::NODE != 0 {
            shift -= STRIDE;
            let node = &self.nodes[(entry & !E::NODE) as usize];
            entry = node[((addr >> shift) as usize) & (FANOUT - 1)].to_u32();
        }
        entry
    }

    /// Bytes of heap the trie holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        let e = std::mem::size_of::<E>();
        self.root.len() * e + self.nodes.capacity() * FANOUT * e
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

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
        let list: Vec<(u128, u8, u32)> = prefixes
            .iter()
            .map(|(&(a, len), &c)| (a, len as u8, c))
            .collect();
        let trie = AnyTrie::build(bits, list.iter().copied());
        assert!(matches!(trie, AnyTrie::Narrow(_)));
        // The wide form must answer the same.
        let mut sorted = list.clone();
        sorted.sort_by_key(|&(_, len, _)| len);
        let wide = StrideTrie::<u32>::build(bits, &sorted);
        // Every prefix's first and last address, their outside neighbours,
        // and the random queries.
        let edges = prefixes.keys().flat_map(|&(net, len)| {
            let last = net | (!mask(bits, len) & (u128::MAX >> (128 - bits)));
            [net, last, net.wrapping_sub(1), last.wrapping_add(1)]
        });
        for q in edges.chain(queries) {
            let q = q & (u128::MAX >> (128 - bits));
            let want = brute(&prefixes, bits, q);
            assert_eq!(trie.get(q), want, "{bits}-bit {q:#x}");
            assert_eq!(wide.get(q), want, "{bits}-bit {q:#x}, wide");
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

    #[test]
    fn large_class_ids_use_wide_entries() {
        let trie = AnyTrie::build(32, [(0x0a00_0000, 8, 40_000), (0x0a01_0000, 16, 7)]);
        assert!(matches!(trie, AnyTrie::Wide(_)));
        assert_eq!(trie.get(0x0a02_0000), 40_000);
        assert_eq!(trie.get(0x0a01_0203), 7);
    }
}
