//! Writing a generation's IPv4 direct table ([`DirTable`]) into the
//! kernel's arrays: through a shared mapping (the arrays are
//! `BPF_F_MMAPABLE`), a copy of a few MiB instead of a million map
//! writes. The generation's ready flag is cleared first and set last, so
//! the program never reads a half-written table: without the flag it
//! walks the LPM trie, which is always complete.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    Ebpf,
    maps::{Array, Map, MapData},
};
use steer_ebpf::{DIR_CHUNK, DIR_CHUNKS, DIR_L1_ENTRIES, GENERATIONS, map_names};
use tracing::warn;

use super::maps::typed_map_mut;
use crate::{Error, RangeTable, dir_table::DirTable};

/// Fills slot `index`'s direct table from `table`; false when the table
/// does not fit (its IPv4 lookups then use the LPM trie).
pub(super) fn write(ebpf: &mut Ebpf, index: u32, table: &RangeTable) -> Result<bool, Error> {
    set_ready(ebpf, index, false)?;
    let dir = match DirTable::build(table.v4()) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "IPv4 direct table not used for this generation");
            return Ok(false);
        }
    };
    let chunk_area = (DIR_CHUNKS * DIR_CHUNK) as usize;
    copy_into(
        ebpf,
        map_names::DIR_L1,
        DIR_L1_ENTRIES * GENERATIONS,
        index as usize * DIR_L1_ENTRIES as usize,
        &dir.l1,
    )?;
    let entries = DIR_CHUNKS * DIR_CHUNK * GENERATIONS;
    copy_into(
        ebpf,
        map_names::DIR_L2,
        entries,
        index as usize * chunk_area,
        &dir.l2,
    )?;
    copy_into(
        ebpf,
        map_names::DIR_L3,
        entries,
        index as usize * chunk_area,
        &dir.l3,
    )?;
    set_ready(ebpf, index, true)?;
    Ok(true)
}

/// Whether slot `index` has a complete direct table.
pub(super) fn ready(ebpf: &Ebpf, index: u32) -> Result<bool, Error> {
    let name = map_names::DIR_READY;
    let map: Array<&MapData, u32> = super::maps::typed_map(ebpf, name)?;
    map.get(&index, 0)
        .map(|r| r != 0)
        .map_err(|source| Error::Map { name, source })
}

pub(super) fn set_ready(ebpf: &mut Ebpf, index: u32, ready: bool) -> Result<(), Error> {
    let name = map_names::DIR_READY;
    let mut map: Array<&mut MapData, u32> = typed_map_mut(ebpf, name)?;
    map.set(index, u32::from(ready), 0)
        .map_err(|source| Error::Map { name, source })
}

/// Copies `data` into array `name` (`entries` u32 entries, packed two to
/// a u64 element: the kernel rounds array elements up to 8 bytes, so a
/// u32 element would take 8) at entry `at`.
fn copy_into(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: u32,
    at: usize,
    data: &[u32],
) -> Result<(), Error> {
    if at + data.len() > entries as usize {
        return Err(Error::MapSyscall {
            name,
            op: "sizing the copy",
            source: std::io::Error::other("the table is larger than the array"),
        });
    }
    let fd = match ebpf.map(name) {
        Some(Map::Array(data)) => data.fd().as_fd().as_raw_fd(),
        Some(_) => return Err(Error::MissingMap { name }),
        None => return Err(Error::MissingMap { name }),
    };
    let len = entries as usize * std::mem::size_of::<u32>();
    // SAFETY: a shared writable mapping of a BPF_F_MMAPABLE array, of its
    // whole size (a multiple of the page size); the copy stays inside it
    // (checked above) and the mapping is removed before returning.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if ptr == libc::MAP_FAILED {
            return Err(Error::MapSyscall {
                name,
                op: "mmap",
                source: std::io::Error::last_os_error(),
            });
        }
        let base = ptr.cast::<u32>().add(at);
        std::ptr::copy_nonoverlapping(data.as_ptr(), base, data.len());
        libc::munmap(ptr, len);
    }
    Ok(())
}
