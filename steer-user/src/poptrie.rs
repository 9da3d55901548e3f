//! A compressed multibit trie after Poptrie (Asai and Ohara, SIGCOMM 2015):
//! the userspace longest-prefix lookup.
//!
//! The top 14 bits index a root array directly. Below it, each node covers
//! 6 more bits with two 64-bit bitmaps instead of 64 entries: `children`
//! marks the slots that lead to a deeper node, `runs` marks the slots where
//! a new leaf value starts. A node's children sit next to each other, and
//! so do its leaf values, so a population count finds either. A node is 24
//! bytes and the leaves of a node are usually one or two values, so the real
//! AWS+GCP table fits in a few hundred KiB: lookups hit the CPU caches where
//! a 256-entry-per-node trie misses them. (IPv4 is at most 3 levels deep;
//! 32 - 14 = 3 x 6. IPv6 is 128 - 14 = 19 x 6.)

use crate::stride_trie::StrideTrie;

const ROOT_BITS: u32 = 14;
const STRIDE: u32 = 6;
const SLOTS: u32 = 1 << STRIDE;
/// Root entries with this bit point to a node; without it they are a class.
const NODE: u32 = 1 << 31;

#[derive(Clone, Copy, Default)]
struct Node {
    children: u64,
    runs: u64,
    first_child: u32,
    first_leaf: u32,
}

pub(crate) struct PopTrie {
    /// Address width: 32 or 128.
    bits: u32,
    root: Box<[u32]>,
    nodes: Vec<Node>,
    leaves: Vec<u32>,
    #[cfg(target_arch = "x86_64")]
    popcnt: bool,
}

impl PopTrie {
    /// Builds from `(address, prefix length, class)` with addresses in the
    /// low `bits` bits of a u128. Classes must be below 2^31.
    pub(crate) fn build(bits: u32, prefixes: impl IntoIterator<Item = (u128, u8, u32)>) -> Self {
        let mut sorted: Vec<(u128, u8, u32)> = prefixes.into_iter().collect();
        // The plain trie answers "which class covers this whole block" while
        // building; this structure only has to say it compactly.
        sorted.sort_by_key(|&(_, len, _)| len);
        let oracle = StrideTrie::build(bits, &sorted);
        sorted.sort_by_key(|&(addr, len, _)| (addr, len));
        let builder = Builder {
            bits,
            oracle: &oracle,
            sorted: &sorted,
        };
        let mut trie = PopTrie {
            bits,
            root: vec![0; 1 << ROOT_BITS].into_boxed_slice(),
            nodes: Vec::new(),
            leaves: Vec::new(),
            #[cfg(target_arch = "x86_64")]
            popcnt: std::arch::is_x86_feature_detected!("popcnt"),
        };
        for i in 0..(1u128 << ROOT_BITS) {
            let block = i << (bits - ROOT_BITS);
            trie.root[i as usize] = if builder.splits(block, ROOT_BITS) {
                let index = trie.nodes.len();
                trie.nodes.push(Node::default());
                builder.fill(&mut trie, index, block, ROOT_BITS);
                NODE | index as u32
            } else {
                oracle.get(block)
            };
        }
        trie
    }

    /// The class of the longest prefix covering `addr` (0 when none).
    #[inline]
    pub(crate) fn get(&self, addr: u128) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.popcnt {
            // SAFETY: the CPU has POPCNT (checked when the trie was built).
            return unsafe { self.get_popcnt(addr) };
        }
        self.walk(addr)
    }

    /// [`PopTrie::walk`] compiled with the POPCNT instruction: the baseline
    /// x86-64 target counts bits with a dozen instructions instead.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn get_popcnt(&self, addr: u128) -> u32 {
        self.walk(addr)
    }

    #[inline(always)]
    fn walk(&self, addr: u128) -> u32 {
        let mut shift = self.bits - ROOT_BITS;
        let entry = self.root[(addr >> shift) as usize];
        if entry & NODE == 0 {
            return entry;
        }
        let mut node = &self.nodes[(entry & !NODE) as usize];
        loop {
            shift -= STRIDE;
            let bit = 1u64 << ((addr >> shift) as u32 & (SLOTS - 1));
            if node.children & bit != 0 {
                let before = (node.children & (bit - 1)).count_ones();
                node = &self.nodes[(node.first_child + before) as usize];
            } else {
                // Run starts at or before this slot; the last one is ours.
                let upto = (node.runs & (bit | (bit - 1))).count_ones();
                return self.leaves[(node.first_leaf + upto - 1) as usize];
            }
        }
    }

    /// Bytes of heap the trie holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.root.len() * 4
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.leaves.capacity() * 4
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

struct Builder<'a> {
    bits: u32,
    oracle: &'a StrideTrie,
    /// Prefixes sorted by address, then length.
    sorted: &'a [(u128, u8, u32)],
}

impl Builder<'_> {
    /// Whether a prefix longer than `len` starts inside the `len`-bit block
    /// at `block`, so the block's answer is not uniform.
    fn splits(&self, block: u128, len: u32) -> bool {
        if len >= self.bits {
            return false;
        }
        let last = block | ((1u128 << (self.bits - len)) - 1);
        let start = self.sorted.partition_point(|&(a, _, _)| a < block);
        self.sorted[start..]
            .iter()
            .take_while(|&&(a, _, _)| a <= last)
            .any(|&(_, l, _)| u32::from(l) > len)
    }

    /// Fills node `index` for the `depth`-bit block at `block`. Its
    /// children are reserved side by side first, then filled, so each
    /// node's children stay contiguous.
    fn fill(&self, trie: &mut PopTrie, index: usize, block: u128, depth: u32) {
        let child_depth = depth + STRIDE;
        let shift = self.bits - child_depth;
        let mut node = Node {
            first_child: trie.nodes.len() as u32,
            first_leaf: trie.leaves.len() as u32,
            ..Node::default()
        };
        let mut split = Vec::new();
        let mut last_leaf = None;
        for slot in 0..SLOTS {
            let sub = block | (u128::from(slot) << shift);
            if self.splits(sub, child_depth) {
                node.children |= 1 << slot;
                split.push(sub);
            } else {
                let class = self.oracle.get(sub);
                if last_leaf != Some(class) {
                    node.runs |= 1 << slot;
                    trie.leaves.push(class);
                    last_leaf = Some(class);
                }
            }
        }
        trie.nodes[index] = node;
        let first = trie.nodes.len();
        trie.nodes.resize(first + split.len(), Node::default());
        for (i, sub) in split.into_iter().enumerate() {
            self.fill(trie, first + i, sub, child_depth);
        }
    }
}
