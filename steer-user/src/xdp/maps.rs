//! Typed access to the classifier's maps, and LPM trie writes.

use std::os::fd::AsFd;

use aya::{
    Ebpf,
    maps::{LpmTrie, Map, MapData, lpm_trie::Key},
};
use ipnet::{Ipv4Net, Ipv6Net};
use tracing::debug;

use crate::Error;

pub(super) fn typed_map<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map(name).ok_or(Error::MissingMap { name })?;
    T::try_from(map).map_err(|source| Error::Map { name, source })
}

pub(super) fn typed_map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a mut Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(Error::MissingMap { name })?;
    T::try_from(map).map_err(|source| Error::Map { name, source })
}

/// Writes entries with one batch syscall, or one by one where the kernel
/// has no batch update for the map (or `batch` is false). Returns whether
/// the batch was used.
pub(super) fn write_lpm<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    keys: &[Key<K>],
    values: &[u32],
    batch: bool,
) -> Result<bool, Error> {
    if batch {
        let fd = match ebpf.map(name) {
            Some(Map::LpmTrie(data)) => data.fd().as_fd(),
            _ => return Err(Error::MissingMap { name }),
        };
        match crate::map_batch::update(fd, keys, values) {
            Ok(()) => return Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP | 524)) => {
                // 524 is the kernel-internal ENOTSUPP some kernels leak.
                debug!(map = name, error = %e, "no batch update; writing one by one");
            }
            Err(source) => {
                return Err(Error::MapSyscall {
                    name,
                    op: "BPF_MAP_UPDATE_BATCH",
                    source,
                });
            }
        }
    }
    let mut trie: LpmTrie<&mut MapData, K, u32> = typed_map_mut(ebpf, name)?;
    for (k, v) in keys.iter().zip(values) {
        trie.insert(k, v, 0)
            .map_err(|source| Error::Map { name, source })?;
    }
    Ok(false)
}

pub(super) fn remove_lpm<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    keys: &[Key<K>],
) -> Result<(), Error> {
    let mut trie: LpmTrie<&mut MapData, K, u32> = typed_map_mut(ebpf, name)?;
    for k in keys {
        match trie.remove(k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => return Err(Error::Map { name, source }),
        }
    }
    Ok(())
}

/// Removes every entry, for a trie whose contents are not known (a write
/// to it failed half way).
pub(super) fn clear_lpm<K: aya::Pod>(ebpf: &mut Ebpf, name: &'static str) -> Result<(), Error> {
    let keys: Vec<Key<K>> = {
        let trie: LpmTrie<&MapData, K, u32> = typed_map(ebpf, name)?;
        trie.keys()
            .collect::<Result<_, _>>()
            .map_err(|source| Error::Map { name, source })?
    };
    remove_lpm(ebpf, name, &keys)
}

pub(super) fn v4_key(net: &Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

pub(super) fn v6_key(net: &Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}
