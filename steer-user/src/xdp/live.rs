//! The live maps of a running instance, pinned in bpffs so that other
//! processes (`redirector explain --kernel`, bpftool) can read them.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, Map, MapData, MapError, PerCpuArray, lpm_trie::Key},
};
use steer_ebpf::{CLASS_NAME_LEN, map_names};
use tracing::warn;

use super::kernel_maps::decode_name;
use crate::{CLASS_UNKNOWN, Class, ClassCounters, Error, MAX_CLASSES, Policy};

/// The maps a reader needs, plus the counters for bpftool users.
fn pinned_names() -> impl Iterator<Item = &'static str> {
    [
        map_names::ACTIVE,
        map_names::CLASS_NAMES,
        map_names::CLASS_COUNTERS,
        map_names::OUTCOME_COUNTERS,
        map_names::POLICY,
    ]
    .into_iter()
    .chain(map_names::LPM_V4)
    .chain(map_names::LPM_V6)
}

pub(super) fn pin(ebpf: &Ebpf, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::PinDir {
        path: dir.to_owned(),
        source,
    })?;
    for name in pinned_names() {
        let map = ebpf.map(name).ok_or(Error::MissingMap { name })?;
        let path = dir.join(name);
        // A pin left by an instance that died without cleaning up; the
        // maps it keeps alive are no longer used by any program.
        if path.exists() {
            let _ = std::fs::remove_file(&path);
        }
        map.pin(&path)
            .map_err(|source| Error::Pin { path, source })?;
    }
    Ok(())
}

pub(super) fn unpin(dir: &Path) {
    for name in pinned_names() {
        let path = dir.join(name);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %path.display(), error = %e, "could not remove pin");
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// What the live maps say about one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveAnswer {
    /// The generation active when the maps were read.
    pub generation: u32,
    /// Class id in that generation's table (0: unknown).
    pub class: u32,
    /// The class's name as that generation recorded it.
    pub name: Option<Class>,
    /// The class's policy in force: drop, or its SYN limit per source.
    pub policy: Policy,
    /// The class's SYN counters in that generation, summed over CPUs.
    pub counters: ClassCounters,
}

/// Read-only view of the maps another process pinned with [`super::Steer::pin`].
pub struct LiveMaps {
    dir: PathBuf,
    active: Array<MapData, u32>,
    names: Array<MapData, [u8; CLASS_NAME_LEN]>,
    v4: [LpmTrie<MapData, [u8; 4], u32>; 2],
    v6: [LpmTrie<MapData, [u8; 16], u32>; 2],
    policy: Array<MapData, Policy>,
    counters: PerCpuArray<MapData, ClassCounters>,
}

impl LiveMaps {
    /// Opens the pins under `dir`.
    pub fn open(dir: &Path) -> Result<LiveMaps, Error> {
        let open = |name: &'static str| -> Result<Map, Error> {
            let path = dir.join(name);
            let data = MapData::from_pin(&path).map_err(|source| Error::OpenPin {
                path: path.clone(),
                source,
            })?;
            Map::from_map_data(data).map_err(|source| Error::OpenPin { path, source })
        };
        let typed = |name: &'static str| -> Result<_, Error> { Ok((name, open(name)?)) };
        fn convert<T: TryFrom<Map, Error = MapError>>(
            (name, map): (&'static str, Map),
        ) -> Result<T, Error> {
            T::try_from(map).map_err(|source| Error::Map { name, source })
        }
        Ok(LiveMaps {
            dir: dir.to_owned(),
            active: convert(typed(map_names::ACTIVE)?)?,
            names: convert(typed(map_names::CLASS_NAMES)?)?,
            policy: convert(typed(map_names::POLICY)?)?,
            counters: convert(typed(map_names::CLASS_COUNTERS)?)?,
            v4: [
                convert(typed(map_names::LPM_V4[0])?)?,
                convert(typed(map_names::LPM_V4[1])?)?,
            ],
            v6: [
                convert(typed(map_names::LPM_V6[0])?)?,
                convert(typed(map_names::LPM_V6[1])?)?,
            ],
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The longest-prefix answer of the active generation for `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Result<LiveAnswer, Error> {
        let generation = self.active.get(&0, 0).map_err(|source| Error::Map {
            name: map_names::ACTIVE,
            source,
        })?;
        let index = (generation & 1) as usize;
        let found = match addr.to_canonical() {
            IpAddr::V4(a) => self.v4[index].get(&Key::new(32, a.octets()), 0),
            IpAddr::V6(a) => self.v6[index].get(&Key::new(128, a.octets()), 0),
        };
        let class = match found {
            Ok(c) => c,
            Err(MapError::KeyNotFound) => CLASS_UNKNOWN,
            Err(source) => {
                return Err(Error::Map {
                    name: map_names::LPM_V4[index],
                    source,
                });
            }
        };
        let name = if class == CLASS_UNKNOWN {
            None
        } else {
            let raw = self
                .names
                .get(&(index as u32 * MAX_CLASSES + class), 0)
                .map_err(|source| Error::Map {
                    name: map_names::CLASS_NAMES,
                    source,
                })?;
            decode_name(&raw)
        };
        let slot = index as u32 * MAX_CLASSES + class;
        let policy = self.policy.get(&slot, 0).map_err(|source| Error::Map {
            name: map_names::POLICY,
            source,
        })?;
        let per_cpu = self.counters.get(&slot, 0).map_err(|source| Error::Map {
            name: map_names::CLASS_COUNTERS,
            source,
        })?;
        let mut counters = ClassCounters::default();
        for c in per_cpu.iter() {
            super::generations::add(&mut counters, c);
        }
        Ok(LiveAnswer {
            generation,
            class,
            name,
            policy,
            counters,
        })
    }
}
