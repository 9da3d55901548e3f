//! Map generations: how a new table replaces the old one in the kernel.
//!
//! Class ids are dense per table, so a reload can renumber classes. Each
//! generation therefore carries everything a class id indexes: its own LPM
//! tries and its own slice of the policy, counter and class-name arrays.
//! A reload fills the inactive generation completely, then writes the new
//! generation number to `STEER_ACTIVE`: one write switches every lookup, no
//! address reads unknown in between, and a flow slot written before the
//! switch still names its generation, so its class id keeps its meaning.
//!
//! [`Generations`] is that logic alone, over [`GenerationMaps`]: the
//! kernel's maps in production (`kernel_maps`), a shadow in memory in the
//! unit tests, so fill, switch, retire and class names are tested without
//! root as well as against the kernel.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use ipnet::{Ipv4Net, Ipv6Net};
use tracing::info;

use crate::{CLASS_UNKNOWN, Class, ClassCounters, Error, MAX_CLASSES, Policy, RangeTable};

/// The per-class counters, read. `index` is a generation's slot (its
/// number's low bit).
pub trait CounterMaps {
    /// Counters of ids `0..=count` in slot `index`, summed over CPUs.
    fn counters(&self, index: u32, count: u32) -> Result<Vec<ClassCounters>, Error>;
}

/// The classifier's maps as a table load writes them.
pub trait GenerationMaps: CounterMaps {
    fn zero_counters(&mut self, index: u32, count: u32) -> Result<(), Error>;
    /// Empties both tries of slot `index` (contents unknown).
    fn clear_tries(&mut self, index: u32) -> Result<(), Error>;
    fn remove_prefixes(&mut self, index: u32, v4: &[Ipv4Net], v6: &[Ipv6Net]) -> Result<(), Error>;
    /// Writes every prefix of `table` (the tries, and in the kernel the
    /// IPv4 direct table); returns whether one batch write per trie was
    /// used.
    fn write_prefixes(
        &mut self,
        index: u32,
        table: &RangeTable,
        mode: WriteMode,
    ) -> Result<bool, Error>;
    /// The name of class `id` in slot `index`; None clears it.
    fn set_class_name(&mut self, index: u32, id: u32, class: Option<&Class>) -> Result<(), Error>;
    fn set_policy(&mut self, index: u32, id: u32, policy: Policy) -> Result<(), Error>;
    /// The one write that switches every lookup to `generation`.
    fn set_active(&mut self, generation: u32) -> Result<(), Error>;
}

/// What one map generation holds.
#[derive(Default)]
struct Slot {
    generation: Option<u32>,
    table: Option<Arc<RangeTable>>,
    /// A write to this generation failed half way: its tries hold an
    /// unknown mix and are emptied before the generation is used again.
    dirty: bool,
}

/// The class XDP recorded for a flow: an id in the table of `generation`
/// (see [`Generations::table_of`]). Class 0 is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowClass {
    pub generation: u32,
    pub class: u32,
}

/// How the prefixes reach the tries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// `BPF_MAP_UPDATE_BATCH` where the kernel has it, else one by one.
    #[default]
    Batch,
    /// One `BPF_MAP_UPDATE_ELEM` per prefix (the bench's baseline).
    OneByOne,
}

/// How a table reached the kernel maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLoad {
    /// The generation number now active.
    pub generation: u32,
    pub v4: usize,
    pub v6: usize,
    /// Prefixes the reused generation held that the new table lacks.
    pub removed: usize,
    /// Whether `BPF_MAP_UPDATE_BATCH` was used (else one write per prefix).
    pub batched: bool,
    /// Wall time from the first write to the switch.
    pub elapsed: std::time::Duration,
}

/// A shadow of what each generation holds, and the rules for changing it.
#[derive(Default)]
pub struct Generations {
    /// The active generation number; 0 until the first table is loaded
    /// (then every SYN reads unknown).
    generation: u32,
    /// Indexed by generation & 1.
    slots: [Slot; 2],
    policies: BTreeMap<Class, Policy>,
    /// The policy of every class `policies` does not name.
    default_policy: Policy,
    /// Counters of generations that were since overwritten, by class.
    retired: BTreeMap<Class, ClassCounters>,
}

impl Generations {
    /// The active generation number (0 before any table was loaded).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The table of `generation`, while the maps still hold it: the active
    /// generation and the one before it.
    pub fn table_of(&self, generation: u32) -> Option<&Arc<RangeTable>> {
        let slot = &self.slots[(generation & 1) as usize];
        (slot.generation == Some(generation))
            .then_some(slot.table.as_ref())
            .flatten()
    }

    /// The generation whose low byte is `epoch`, if its table (or, before
    /// any load, the empty generation 0) is still known.
    pub fn by_epoch(&self, epoch: u8) -> Option<u32> {
        let g = [self.generation, self.generation.wrapping_sub(1)]
            .into_iter()
            .find(|g| *g as u8 == epoch)?;
        (g == 0 || self.table_of(g).is_some()).then_some(g)
    }

    /// Loads `table` into the inactive generation and switches to it.
    /// Lookups use the previous table until the one write that switches;
    /// on error nothing switches and the previous table keeps serving.
    pub fn load_table(
        &mut self,
        maps: &mut impl GenerationMaps,
        table: Arc<RangeTable>,
        mode: WriteMode,
    ) -> Result<TableLoad, Error> {
        if table.class_count() >= MAX_CLASSES as usize {
            return Err(Error::TooManyClasses {
                classes: table.class_count(),
                max: MAX_CLASSES - 1,
            });
        }
        let start = Instant::now();
        let next = self.generation.checked_add(1).unwrap_or(1);
        let index = next & 1;
        let slot = std::mem::take(&mut self.slots[index as usize]);
        // Until the switch below, this generation is flagged: a failure
        // leaves it to be emptied before its next use.
        self.slots[index as usize].dirty = true;

        for (class, c) in named_counters(maps, index, slot.table.as_ref())? {
            add(self.retired.entry(class).or_default(), &c);
        }
        let held = slot.table.as_ref().map_or(0, |t| t.class_count()) as u32;
        maps.zero_counters(index, held)?;

        let removed = match (&slot.table, slot.dirty) {
            (Some(old), false) => {
                let v4 = stale(old.v4(), table.v4());
                let v6 = stale(old.v6(), table.v6());
                maps.remove_prefixes(index, &v4, &v6)?;
                v4.len() + v6.len()
            }
            (None, false) => 0,
            (_, true) => {
                maps.clear_tries(index)?;
                0
            }
        };
        let batched = maps.write_prefixes(index, &table, mode)?;

        // Names and policies of the new table; ids the old table had
        // beyond the new count are cleared so tools never show a stale
        // name and the slice is clean for the next reuse.
        maps.set_policy(index, CLASS_UNKNOWN, self.policy_of(&Class::unknown()))?;
        for (id, class) in table.classes() {
            maps.set_class_name(index, id, Some(class))?;
            maps.set_policy(index, id, self.policy_of(class))?;
        }
        for id in table.class_count() as u32 + 1..=held {
            maps.set_class_name(index, id, None)?;
            maps.set_policy(index, id, Policy::PASS)?;
        }
        maps.set_active(next)?;

        let load = TableLoad {
            generation: next,
            v4: table.v4().len(),
            v6: table.v6().len(),
            removed,
            batched,
            elapsed: start.elapsed(),
        };
        self.generation = next;
        self.slots[index as usize] = Slot {
            generation: Some(next),
            table: Some(table),
            dirty: false,
        };
        info!(
            generation = next,
            v4 = load.v4,
            v6 = load.v6,
            removed = load.removed,
            batched = load.batched,
            elapsed_ms = load.elapsed.as_secs_f64() * 1e3,
            "range table loaded into XDP maps"
        );
        Ok(load)
    }

    /// Sets the policy of `class`, now and in every table loaded later.
    /// Policies are kept by name, so they survive reloads that renumber
    /// classes.
    pub fn set_policy(
        &mut self,
        maps: &mut impl GenerationMaps,
        class: &Class,
        policy: Policy,
    ) -> Result<(), Error> {
        self.policies.insert(class.clone(), policy);
        let index = self.generation & 1;
        if let Some(id) = self.slots[index as usize]
            .table
            .as_ref()
            .and_then(|t| t.class_id(&class.provider, &class.region))
        {
            maps.set_policy(index, id, policy)?;
        }
        Ok(())
    }

    /// Replaces every policy: `policies` by class name, `default` for the
    /// classes it does not name (unknown included, unless named). The
    /// active generation is rewritten in place, class by class; a table
    /// loaded later gets the same. Live connections are not touched: only
    /// SYNs read the policy.
    pub fn set_policies(
        &mut self,
        maps: &mut impl GenerationMaps,
        default: Policy,
        policies: BTreeMap<Class, Policy>,
    ) -> Result<(), Error> {
        self.policies = policies;
        self.default_policy = default;
        let index = self.generation & 1;
        let Some(table) = self.slots[index as usize].table.clone() else {
            return Ok(());
        };
        maps.set_policy(index, CLASS_UNKNOWN, self.policy_of(&Class::unknown()))?;
        for (id, class) in table.classes() {
            maps.set_policy(index, id, self.policy_of(class))?;
        }
        Ok(())
    }

    /// The policy `class` gets in every table.
    pub fn policy_of(&self, class: &Class) -> Policy {
        self.policies
            .get(class)
            .copied()
            .unwrap_or(self.default_policy)
    }

    /// SYN counters per class name, summed over every generation since
    /// load (unknown is [`Class::unknown`]).
    pub fn class_counters(
        &self,
        maps: &impl CounterMaps,
    ) -> Result<BTreeMap<Class, ClassCounters>, Error> {
        let mut sums = self.retired.clone();
        for index in 0..2u32 {
            let table = self.slots[index as usize].table.as_ref();
            for (class, c) in named_counters(maps, index, table)? {
                add(sums.entry(class).or_default(), &c);
            }
        }
        Ok(sums)
    }
}

/// Counters of slot `index` by class name. With no table, the generation
/// only ever counted unknown.
fn named_counters(
    maps: &impl CounterMaps,
    index: u32,
    table: Option<&Arc<RangeTable>>,
) -> Result<Vec<(Class, ClassCounters)>, Error> {
    let count = table.map_or(0, |t| t.class_count()) as u32;
    let counters = maps.counters(index, count)?;
    Ok((CLASS_UNKNOWN..=count)
        .zip(counters)
        .map(|(id, c)| {
            let class = table
                .and_then(|t| t.class(id).cloned())
                .unwrap_or_else(Class::unknown);
            (class, c)
        })
        .collect())
}

/// `old` prefixes that `new` (sorted) no longer has.
fn stale<N: Ord + Copy>(old: &[(N, u32)], new: &[(N, u32)]) -> Vec<N> {
    old.iter()
        .filter(|(n, _)| new.binary_search_by(|(m, _)| m.cmp(n)).is_err())
        .map(|(n, _)| *n)
        .collect()
}

pub(super) fn add(sum: &mut ClassCounters, c: &ClassCounters) {
    sum.syns += c.syns;
    sum.bytes += c.bytes;
    sum.dropped += c.dropped;
    sum.rate_limited += c.rate_limited;
}

#[cfg(test)]
#[path = "generations_tests.rs"]
mod tests;
