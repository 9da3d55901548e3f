//! A read-only shared mapping of the kernel's flow-slot array.
//!
//! Reading a connection's class is one atomic load from memory the XDP
//! program writes: no syscall per connection. See `steer_ebpf::FlowSlot`
//! for the slot layout and why a lost slot is harmless.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use steer_ebpf::{FLOW_SLOTS, FlowKey, SlotClass};

pub(crate) struct FlowSlots {
    base: NonNull<AtomicU64>,
}

// SAFETY: the mapping is read only through atomic loads; it stays valid
// until drop, and the kernel keeps the map alive while it is mapped.
unsafe impl Send for FlowSlots {}
unsafe impl Sync for FlowSlots {}

const LEN: usize = FLOW_SLOTS as usize * std::mem::size_of::<u64>();

impl FlowSlots {
    /// Maps the array behind `map` (created with `BPF_F_MMAPABLE`).
    pub(crate) fn map(map: BorrowedFd<'_>) -> io::Result<FlowSlots> {
        // SAFETY: a fresh shared read-only mapping of a BPF array fd; the
        // length is the array's size, a multiple of the page size.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<AtomicU64>()).expect("mmap never returns null");
        Ok(FlowSlots { base })
    }

    /// What was recorded for `key`, if its slot still holds it.
    pub(crate) fn read(&self, key: &FlowKey) -> Option<SlotClass> {
        let slot = key.slot();
        debug_assert!(slot.index < FLOW_SLOTS);
        // SAFETY: index < FLOW_SLOTS, inside the mapping; u64 slots are
        // 8-byte aligned in a page-aligned mapping.
        let cell = unsafe { &*self.base.as_ptr().add(slot.index as usize) };
        slot.read(cell.load(Ordering::Relaxed))
    }
}

impl Drop for FlowSlots {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), LEN) };
    }
}
