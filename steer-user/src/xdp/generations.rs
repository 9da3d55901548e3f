//! Map generations: how a new table replaces the old one in the kernel.
//!
//! Class ids are dense per table, so a reload can renumber classes. Each
//! generation therefore carries everything a class id indexes: its own LPM
//! tries and its own slice of the policy, counter and class-name arrays.
//! A reload fills the inactive generation completely, then writes the new
//! generation number to `STEER_ACTIVE`: one write switches every lookup, no
//! address reads unknown in between, and a flow slot written before the
//! switch still names its generation, so its class id keeps its meaning.

use std::{sync::Arc, time::Instant};

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, PerCpuValues, lpm_trie::Key},
    util::nr_cpus,
};
use steer_ebpf::{CLASS_NAME_LEN, map_names};
use tracing::info;

use super::{
    Steer, add,
    maps::{clear_lpm, remove_lpm, stale, typed_map, typed_map_mut, v4_key, v6_key, write_lpm},
};
use crate::{CLASS_UNKNOWN, Class, ClassCounters, Error, MAX_CLASSES, Policy, RangeTable};

/// What one map generation holds.
#[derive(Default)]
pub(super) struct Slot {
    generation: Option<u32>,
    table: Option<Arc<RangeTable>>,
    /// A write to this generation failed half way: its tries hold an
    /// unknown mix and are emptied before the generation is used again.
    dirty: bool,
}

impl Slot {
    pub(super) fn generation(&self) -> Option<u32> {
        self.generation
    }

    pub(super) fn table(&self) -> Option<&Arc<RangeTable>> {
        self.table.as_ref()
    }
}

/// The class XDP recorded for a flow: an id in the table of `generation`
/// (see [`Steer::table_of`]). Class 0 is unknown.
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

impl Steer {
    /// Loads `table` into the inactive map generation and switches to it.
    ///
    /// Lookups use the previous table until the one write that switches;
    /// on error nothing switches and the previous table keeps serving.
    pub fn load_table(&mut self, table: Arc<RangeTable>) -> Result<TableLoad, Error> {
        self.load_table_using(table, WriteMode::Batch)
    }

    /// [`Steer::load_table`] with a chosen way of writing the tries.
    pub fn load_table_using(
        &mut self,
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

        for (class, c) in read_counters(&self.ebpf, index, slot.table.as_ref())? {
            add(self.retired.entry(class).or_default(), &c);
        }
        let held = slot.table.as_ref().map_or(0, |t| t.class_count());
        zero_counters(&mut self.ebpf, index, held)?;

        let [v4_name, v6_name] = [
            map_names::LPM_V4[index as usize],
            map_names::LPM_V6[index as usize],
        ];
        let (stale_v4, stale_v6) = match (&slot.table, slot.dirty) {
            (Some(old), false) => (
                stale(old.v4(), table.v4(), v4_key),
                stale(old.v6(), table.v6(), v6_key),
            ),
            (None, false) => (Vec::new(), Vec::new()),
            (_, true) => {
                clear_lpm::<[u8; 4]>(&mut self.ebpf, v4_name)?;
                clear_lpm::<[u8; 16]>(&mut self.ebpf, v6_name)?;
                (Vec::new(), Vec::new())
            }
        };
        remove_lpm(&mut self.ebpf, v4_name, &stale_v4)?;
        remove_lpm(&mut self.ebpf, v6_name, &stale_v6)?;

        let batch = mode == WriteMode::Batch;
        let v4_keys: Vec<Key<[u8; 4]>> = table.v4().iter().map(|(n, _)| v4_key(n)).collect();
        let v4_vals: Vec<u32> = table.v4().iter().map(|&(_, c)| c).collect();
        let v6_keys: Vec<Key<[u8; 16]>> = table.v6().iter().map(|(n, _)| v6_key(n)).collect();
        let v6_vals: Vec<u32> = table.v6().iter().map(|&(_, c)| c).collect();
        let batched_v4 = write_lpm(&mut self.ebpf, v4_name, &v4_keys, &v4_vals, batch)?;
        let batched_v6 = write_lpm(&mut self.ebpf, v6_name, &v6_keys, &v6_vals, batch)?;

        self.write_class_slices(index, &table, held)?;

        let name = map_names::ACTIVE;
        let mut active: Array<&mut MapData, u32> = typed_map_mut(&mut self.ebpf, name)?;
        active
            .set(0, next, 0)
            .map_err(|source| Error::Map { name, source })?;

        let load = TableLoad {
            generation: next,
            v4: v4_keys.len(),
            v6: v6_keys.len(),
            removed: stale_v4.len() + stale_v6.len(),
            batched: batch && batched_v4 && batched_v6,
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

    /// Class names and policies of the new table, in generation `index`'s
    /// slice; names of ids the old table had beyond the new count are
    /// cleared so tools never show a stale name.
    fn write_class_slices(
        &mut self,
        index: u32,
        table: &RangeTable,
        held: usize,
    ) -> Result<(), Error> {
        let base = index * MAX_CLASSES;
        let name = map_names::CLASS_NAMES;
        let mut names: Array<&mut MapData, [u8; CLASS_NAME_LEN]> =
            typed_map_mut(&mut self.ebpf, name)?;
        for (id, class) in table.classes() {
            names
                .set(base + id, encode_name(class), 0)
                .map_err(|source| Error::Map { name, source })?;
        }
        for id in table.class_count() + 1..=held {
            names
                .set(base + id as u32, [0; CLASS_NAME_LEN], 0)
                .map_err(|source| Error::Map { name, source })?;
        }

        let name = map_names::POLICY;
        let mut policy: Array<&mut MapData, u32> = typed_map_mut(&mut self.ebpf, name)?;
        for (id, class) in table.classes() {
            let p = self.policies.get(class).copied().unwrap_or_default();
            policy
                .set(base + id, p as u32, 0)
                .map_err(|source| Error::Map { name, source })?;
        }
        // Ids the new table does not have are never looked up, but keep
        // the slice clean for the next reuse.
        for id in table.class_count() + 1..=held {
            policy
                .set(base + id as u32, Policy::Pass as u32, 0)
                .map_err(|source| Error::Map { name, source })?;
        }
        Ok(())
    }
}

/// Per-class counters of generation `index`, summed over CPUs, by class
/// name. With no table, the generation only ever counted unknown.
pub(super) fn read_counters(
    ebpf: &Ebpf,
    index: u32,
    table: Option<&Arc<RangeTable>>,
) -> Result<Vec<(Class, ClassCounters)>, Error> {
    let name = map_names::CLASS_COUNTERS;
    let map: PerCpuArray<&MapData, ClassCounters> = typed_map(ebpf, name)?;
    let count = table.map_or(0, |t| t.class_count()) as u32;
    (CLASS_UNKNOWN..=count)
        .map(|id| {
            let per_cpu = map
                .get(&(index * MAX_CLASSES + id), 0)
                .map_err(|source| Error::Map { name, source })?;
            let mut sum = ClassCounters::default();
            per_cpu.iter().for_each(|c| add(&mut sum, c));
            let class = table
                .and_then(|t| t.class(id).cloned())
                .unwrap_or_else(Class::unknown);
            Ok((class, sum))
        })
        .collect()
}

fn zero_counters(ebpf: &mut Ebpf, index: u32, held: usize) -> Result<(), Error> {
    let name = map_names::CLASS_COUNTERS;
    let cpus = nr_cpus().map_err(|(_, source)| Error::MapSyscall {
        name,
        op: "counting possible CPUs",
        source,
    })?;
    let mut map: PerCpuArray<&mut MapData, ClassCounters> = typed_map_mut(ebpf, name)?;
    for id in 0..=held as u32 {
        let zeros =
            PerCpuValues::try_from(vec![ClassCounters::default(); cpus]).map_err(|source| {
                Error::MapSyscall {
                    name,
                    op: "building per-CPU values",
                    source,
                }
            })?;
        map.set(index * MAX_CLASSES + id, zeros, 0)
            .map_err(|source| Error::Map { name, source })?;
    }
    Ok(())
}

/// `provider\0region\0`, zero padded. Feed parsers keep names short enough.
pub(super) fn encode_name(class: &Class) -> [u8; CLASS_NAME_LEN] {
    let mut out = [0u8; CLASS_NAME_LEN];
    let text = format!("{}\0{}", class.provider, class.region);
    let n = text.len().min(CLASS_NAME_LEN - 1);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// The inverse of [`encode_name`]; `None` for an empty entry.
pub(super) fn decode_name(raw: &[u8; CLASS_NAME_LEN]) -> Option<Class> {
    let mut parts = raw.split(|&b| b == 0);
    let provider = std::str::from_utf8(parts.next()?).ok()?;
    let region = std::str::from_utf8(parts.next()?).ok()?;
    (!provider.is_empty()).then(|| Class {
        provider: provider.to_owned(),
        region: region.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        let c = Class {
            provider: "aws".into(),
            region: "eu-west-3".into(),
        };
        assert_eq!(decode_name(&encode_name(&c)), Some(c));
        assert_eq!(decode_name(&[0; CLASS_NAME_LEN]), None);
    }
}
