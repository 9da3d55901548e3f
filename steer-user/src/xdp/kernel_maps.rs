//! The kernel side of [`GenerationMaps`]: the classifier's maps through
//! aya, LPM tries written in one batch where the kernel can.

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, PerCpuValues, lpm_trie::Key},
    util::nr_cpus,
};
use ipnet::{Ipv4Net, Ipv6Net};
use steer_ebpf::{CLASS_NAME_LEN, map_names};

use super::{
    generations::{CounterMaps, GenerationMaps, WriteMode, add},
    maps::{clear_lpm, remove_lpm, typed_map, typed_map_mut, v4_key, v6_key, write_lpm},
};
use crate::{Class, ClassCounters, Error, MAX_CLASSES, Policy, RangeTable};

/// Reads only (counters at scrape time).
pub(super) struct KernelView<'a>(pub &'a Ebpf);

/// Reads and writes (table loads, policies).
pub(super) struct KernelMaps<'a>(pub &'a mut Ebpf);

fn counters(ebpf: &Ebpf, index: u32, count: u32) -> Result<Vec<ClassCounters>, Error> {
    let name = map_names::CLASS_COUNTERS;
    let map: PerCpuArray<&MapData, ClassCounters> = typed_map(ebpf, name)?;
    (0..=count)
        .map(|id| {
            let per_cpu = map
                .get(&(index * MAX_CLASSES + id), 0)
                .map_err(|source| Error::Map { name, source })?;
            let mut sum = ClassCounters::default();
            per_cpu.iter().for_each(|c| add(&mut sum, c));
            Ok(sum)
        })
        .collect()
}

impl CounterMaps for KernelView<'_> {
    fn counters(&self, index: u32, count: u32) -> Result<Vec<ClassCounters>, Error> {
        counters(self.0, index, count)
    }
}

impl CounterMaps for KernelMaps<'_> {
    fn counters(&self, index: u32, count: u32) -> Result<Vec<ClassCounters>, Error> {
        counters(self.0, index, count)
    }
}

impl GenerationMaps for KernelMaps<'_> {
    fn zero_counters(&mut self, index: u32, count: u32) -> Result<(), Error> {
        let name = map_names::CLASS_COUNTERS;
        let cpus = nr_cpus().map_err(|(_, source)| Error::MapSyscall {
            name,
            op: "counting possible CPUs",
            source,
        })?;
        let mut map: PerCpuArray<&mut MapData, ClassCounters> = typed_map_mut(self.0, name)?;
        for id in 0..=count {
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

    fn clear_tries(&mut self, index: u32) -> Result<(), Error> {
        clear_lpm::<[u8; 4]>(self.0, map_names::LPM_V4[index as usize])?;
        clear_lpm::<[u8; 16]>(self.0, map_names::LPM_V6[index as usize])
    }

    fn remove_prefixes(&mut self, index: u32, v4: &[Ipv4Net], v6: &[Ipv6Net]) -> Result<(), Error> {
        let v4: Vec<Key<[u8; 4]>> = v4.iter().map(v4_key).collect();
        let v6: Vec<Key<[u8; 16]>> = v6.iter().map(v6_key).collect();
        remove_lpm(self.0, map_names::LPM_V4[index as usize], &v4)?;
        remove_lpm(self.0, map_names::LPM_V6[index as usize], &v6)
    }

    fn write_prefixes(
        &mut self,
        index: u32,
        table: &RangeTable,
        mode: WriteMode,
    ) -> Result<bool, Error> {
        let batch = mode == WriteMode::Batch;
        let v4_keys: Vec<Key<[u8; 4]>> = table.v4().iter().map(|(n, _)| v4_key(n)).collect();
        let v4_vals: Vec<u32> = table.v4().iter().map(|&(_, c)| c).collect();
        let v6_keys: Vec<Key<[u8; 16]>> = table.v6().iter().map(|(n, _)| v6_key(n)).collect();
        let v6_vals: Vec<u32> = table.v6().iter().map(|&(_, c)| c).collect();
        let v4_name = map_names::LPM_V4[index as usize];
        let v6_name = map_names::LPM_V6[index as usize];
        let batched_v4 = write_lpm(self.0, v4_name, &v4_keys, &v4_vals, batch)?;
        let batched_v6 = write_lpm(self.0, v6_name, &v6_keys, &v6_vals, batch)?;
        super::dir_maps::write(self.0, index, table)?;
        Ok(batch && batched_v4 && batched_v6)
    }

    fn set_class_name(&mut self, index: u32, id: u32, class: Option<&Class>) -> Result<(), Error> {
        let name = map_names::CLASS_NAMES;
        let mut names: Array<&mut MapData, [u8; CLASS_NAME_LEN]> = typed_map_mut(self.0, name)?;
        let value = class.map_or([0; CLASS_NAME_LEN], encode_name);
        names
            .set(index * MAX_CLASSES + id, value, 0)
            .map_err(|source| Error::Map { name, source })
    }

    fn set_policy(&mut self, index: u32, id: u32, policy: Policy) -> Result<(), Error> {
        let name = map_names::POLICY;
        let mut map: Array<&mut MapData, Policy> = typed_map_mut(self.0, name)?;
        map.set(index * MAX_CLASSES + id, policy, 0)
            .map_err(|source| Error::Map { name, source })
    }

    fn set_active(&mut self, generation: u32) -> Result<(), Error> {
        let name = map_names::ACTIVE;
        let mut active: Array<&mut MapData, u32> = typed_map_mut(self.0, name)?;
        active
            .set(0, generation, 0)
            .map_err(|source| Error::Map { name, source })
    }
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
