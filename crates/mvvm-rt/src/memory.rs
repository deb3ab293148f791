//! Linear memory: a `PROT_NONE` reservation of
//! [`MEMORY_RESERVATION`] bytes whose start never moves; the first
//! `pages * 64 KiB` are read-write. Accesses beyond fault in the remainder
//! and are reported as out-of-bounds traps, so generated code needs no
//! bounds checks.
//!
//! ```text
//!  base                      base+length                 base+8 GiB+64 KiB
//!  |  committed (RW)          |  reserved (PROT_NONE)  ...  |
//! ```
//!
//! With dirty tracking on ([`LinearMemory::start_dirty_tracking`], see
//! `dirty.rs`), the committed part is read-only except for the 64 KiB
//! chunks written since tracking started, which the fault handler makes
//! writable one by one as it records them.

mod dirty;

pub(crate) use dirty::handle_write_fault;

use crate::sys::mman::{self, Prot};
use crate::vm_box::VmBox;
use crate::vmctx::VMMemory;
use mvvm_abi::meta::MemoryType;
use mvvm_abi::vmctx::{MEMORY_RESERVATION, WASM_PAGE_SIZE};
use std::sync::atomic::{AtomicU64, Ordering};

/// The most pages a 32-bit memory can have.
pub const MAX_PAGES: u64 = 65536;

/// One linear memory (owned by a store; instances refer to it by pointer).
#[derive(Debug)]
pub(crate) struct LinearMemory {
    /// What generated code reads (its base pointer is in the `VMContext`
    /// of every instance using the memory).
    vm: VmBox<VMMemory>,
    ty: MemoryType,
    max_pages: u64,
    /// Dirty-chunk tracker, claimed on the first
    /// [`Self::start_dirty_tracking`].
    tracker: Option<dirty::Tracker>,
}

/// Creating a memory failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The type asks for more than 4 GiB, or is shared without a maximum.
    #[error("unsupported memory type: {0}")]
    Unsupported(String),
    /// The reservation could not be made.
    #[error("cannot reserve linear memory: {0}")]
    Os(#[from] std::io::Error),
}

impl LinearMemory {
    /// Reserves and commits a memory of type `ty`.
    pub fn new(ty: MemoryType) -> Result<LinearMemory, MemoryError> {
        // Validation refuses such a module; a host-made memory must not
        // slip past it (a shared memory never moves nor shrinks, and its
        // maximum bounds what every thread may see).
        if ty.shared && ty.limits.max.is_none() {
            return Err(MemoryError::Unsupported(
                "shared memory without a maximum".into(),
            ));
        }
        if ty.limits.min > MAX_PAGES {
            return Err(MemoryError::Unsupported(format!(
                "{} initial pages (at most {MAX_PAGES})",
                ty.limits.min
            )));
        }
        let p = mman::map_anon(MEMORY_RESERVATION as usize, Prot::None, true)?;
        let mut m = LinearMemory {
            vm: VmBox::new(VMMemory { base: p, length: 0 }),
            ty,
            max_pages: ty.limits.max.unwrap_or(MAX_PAGES).min(MAX_PAGES),
            tracker: None,
        };
        if ty.limits.min > 0 && m.grow(ty.limits.min).is_none() {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(m)
    }

    /// The type it was created with (minimum = initial size).
    pub fn ty(&self) -> MemoryType {
        self.ty
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.vm.length / WASM_PAGE_SIZE
    }

    /// The structure generated code reads.
    pub fn vm_ptr(&self) -> *mut VMMemory {
        self.vm.as_ptr()
    }

    /// Grows by `delta` pages; the old size in pages, or `None` when it
    /// would exceed the maximum (or the system refuses).
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.pages();
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            return None;
        }
        if delta == 0 {
            return Some(old);
        }
        let start = self.vm.length as usize;
        let len = (delta * WASM_PAGE_SIZE) as usize;
        // SAFETY: `start..start+len` lies inside our reservation (the new
        // size is at most 4 GiB, the reservation is larger), page-aligned
        // (wasm pages are multiples of host pages); the pages were
        // inaccessible, so no reference into them exists; they only become
        // read-write.
        let r = unsafe { mman::protect(self.vm.base.add(start), len, Prot::ReadWrite) };
        if r.is_err() {
            return None;
        }
        // An atomic store: generated code of other threads may read the
        // length of a shared memory at any time (`memory.size` of a shared
        // memory is an atomic load), and must see the pages made
        // accessible above once it sees the new length.
        let vm = self.vm.as_ptr();
        // SAFETY: `vm` points at the live `VMMemory` this memory owns;
        // its `u64` field is 8-byte aligned (`repr(C)`, checked by the
        // vmctx layout tests) and every concurrent access to it is atomic
        // (generated code's `atomic_load`) or a plain read of a value
        // only ever replaced whole.
        unsafe {
            AtomicU64::from_ptr(&raw mut (*vm).length)
                .store(new * WASM_PAGE_SIZE, Ordering::SeqCst);
        }
        if let Some(t) = &self.tracker {
            t.grown(start, self.vm.length as usize);
        }
        Some(old)
    }

    /// Starts (or restarts) a dirty-tracking period: every chunk counts as
    /// clean and the accessible memory becomes read-only; each chunk
    /// written afterwards (by wasm or by host code) faults once, is marked
    /// dirty and made writable again. Returns `false` when no tracker slot
    /// is free (the memory is then not tracked: snapshots stay full).
    pub fn start_dirty_tracking(&mut self) -> std::io::Result<bool> {
        if self.tracker.is_none() {
            self.tracker = dirty::Tracker::claim();
        }
        let Some(t) = &self.tracker else {
            return Ok(false);
        };
        // Host code may write into the memory before wasm is entered: the
        // fault handler must be in place first.
        crate::signals::prepare_thread();
        // SAFETY: `base..base+length` is this memory's accessible part;
        // writes through `data_mut` slices keep working (they fault once
        // per chunk and are retried).
        unsafe { t.start(self.vm.base, self.vm.length as usize)? };
        Ok(true)
    }

    /// Ends the tracking period, if any: the memory is read-write again.
    /// (Runs never need it: a tracked memory stays tracked until dropped.)
    #[cfg(test)]
    pub fn stop_dirty_tracking(&mut self) {
        if let Some(t) = &self.tracker {
            // SAFETY: this memory's accessible part, as tracked.
            unsafe { t.stop(self.vm.base, self.vm.length as usize) };
        }
    }

    /// The 64 KiB chunks written since tracking started (bit `i % 64` of
    /// word `i / 64` for chunk `i`; every chunk after a tracking overflow),
    /// or `None` when tracking is off.
    pub fn dirty_chunks(&self) -> Option<Vec<u64>> {
        self.tracker.as_ref().and_then(|t| t.bitmap())
    }

    /// Whether a tracking period is running.
    #[cfg(test)]
    pub fn is_tracking_dirty(&self) -> bool {
        self.tracker.as_ref().is_some_and(|t| t.active())
    }

    /// Maps `len` bytes of `file` at `file_offset` copy-on-write over the
    /// accessible bytes at `guest_offset` (restoring a snapshot: pages are
    /// read from the file only when touched, and writes stay private).
    /// The range must lie within the current size and, like the offsets,
    /// be a multiple of the host page size. Called before dirty tracking
    /// starts (the mapping is read-write).
    pub fn map_file_private(
        &mut self,
        guest_offset: u64,
        len: u64,
        file: std::os::fd::BorrowedFd<'_>,
        file_offset: u64,
    ) -> std::io::Result<()> {
        let page = page_size();
        let end = guest_offset.checked_add(len);
        if end.is_none_or(|e| e > self.vm.length)
            || !guest_offset.is_multiple_of(page)
            || !len.is_multiple_of(page)
            || !file_offset.is_multiple_of(page)
            || i64::try_from(file_offset).is_err()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "cannot map {len} bytes at guest offset {guest_offset:#x} from file offset \
                     {file_offset:#x} (memory of {} bytes, page size {page})",
                    self.vm.length
                ),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the target range lies inside our reservation (checked
        // against the current length above) and is page-aligned, like
        // `file_offset` (checked, and it fits an `off_t`); `&mut self`
        // means no Rust reference into the memory is alive, and wasm does
        // not run while a memory is being restored. The mapping is
        // private, readable and writable like the rest of the accessible
        // memory.
        unsafe {
            mman::map_file_fixed(
                self.vm.base.add(guest_offset as usize),
                len as usize,
                file,
                file_offset as libc::off_t,
            )
        }
    }

    /// Replaces `len` accessible bytes at `guest_offset` by fresh zero
    /// pages (restoring the zeroed ranges of an incremental snapshot over
    /// its base's mapping: O(1) instead of writing zeros). Same rules as
    /// [`Self::map_file_private`].
    pub fn map_zero(&mut self, guest_offset: u64, len: u64) -> std::io::Result<()> {
        let page = page_size();
        if guest_offset
            .checked_add(len)
            .is_none_or(|e| e > self.vm.length)
            || !guest_offset.is_multiple_of(page)
            || !len.is_multiple_of(page)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "cannot zero {len} bytes at guest offset {guest_offset:#x} (memory of {} bytes)",
                    self.vm.length
                ),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range lies inside our reservation (checked against
        // the current length above) and is page-aligned (checked); `&mut
        // self` means no Rust reference into the memory is alive. The zero
        // pages are read-write like the rest.
        unsafe { mman::map_zero_fixed(self.vm.base.add(guest_offset as usize), len as usize) }
    }

    /// The accessible bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `length` bytes from `base` are mapped readable (read-write,
        // or read-only while dirty tracking), `u8` needs no alignment, and
        // they stay mapped while `&self` lives (only `&mut self` methods
        // change the mapping, and memory never shrinks). Wasm, which may
        // write them, does not run while this borrow is in use.
        unsafe { std::slice::from_raw_parts(self.vm.base, self.vm.length as usize) }
    }

    /// The accessible bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: `length` bytes from `base` are mapped (read-write, or
        // read-only with writes resolved by the dirty-tracking fault
        // handler); `&mut self` gives exclusive access from Rust, and wasm
        // does not run while the borrow is in use.
        unsafe { std::slice::from_raw_parts_mut(self.vm.base, self.vm.length as usize) }
    }
}

/// The host page size.
fn page_size() -> u64 {
    crate::sys::sysconf::page_size() as u64
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // Release the tracker first: once unmapped, the range may be
        // reused by anyone, and the fault handler must no longer claim it.
        drop(self.tracker.take());
        // SAFETY: we own the reservation and no instance using it is alive
        // (the store drops instances and memories together), and `&mut
        // self` in `drop` means no Rust reference into it remains.
        unsafe { mman::unmap(self.vm.base, MEMORY_RESERVATION as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvvm_abi::meta::Limits;

    fn ty(min: u64, max: Option<u64>) -> MemoryType {
        MemoryType {
            limits: Limits { min, max },
            shared: false,
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmaps 8 GiB and calls mprotect: no Miri shim")]
    fn grows_up_to_max() {
        let mut m = LinearMemory::new(ty(1, Some(3))).unwrap();
        assert_eq!(m.data().len(), 65536);
        m.data_mut()[65535] = 7;
        assert_eq!(m.grow(2), Some(1));
        assert_eq!(m.grow(1), None);
        assert_eq!(m.pages(), 3);
        assert_eq!(m.data()[65535], 7);
        assert_eq!(m.data()[3 * 65536 - 1], 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmaps 8 GiB and calls mprotect: no Miri shim")]
    fn dirty_tracking_records_written_chunks() {
        let mut m = LinearMemory::new(ty(4, Some(8))).unwrap();
        m.data_mut()[3] = 1;
        assert_eq!(m.dirty_chunks(), None);
        assert!(m.start_dirty_tracking().unwrap());
        assert!(m.is_tracking_dirty());
        assert_eq!(m.dirty_chunks().unwrap()[0], 0);
        // Reads do not count; writes by host code fault once and count.
        assert_eq!(m.data()[3], 1);
        m.data_mut()[2 * 65536 + 5] = 9;
        m.data_mut()[2 * 65536 + 6] = 9;
        assert_eq!(m.dirty_chunks().unwrap()[0], 0b100);
        // New pages are dirty.
        assert_eq!(m.grow(2), Some(4));
        assert_eq!(m.dirty_chunks().unwrap()[0], 0b11_0100);
        m.data_mut()[5 * 65536] = 1;
        // A new period starts clean.
        assert!(m.start_dirty_tracking().unwrap());
        assert_eq!(m.dirty_chunks().unwrap()[0], 0);
        m.data_mut()[0] = 7;
        assert_eq!(m.dirty_chunks().unwrap()[0], 1);
        m.stop_dirty_tracking();
        assert_eq!(m.dirty_chunks(), None);
        m.data_mut()[65536] = 1;
        assert_eq!(m.data()[2 * 65536 + 5], 9);
        assert_eq!(m.data()[0], 7);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmaps 8 GiB and calls mprotect: no Miri shim")]
    fn shared_memories_need_a_maximum_and_grow_to_it() {
        let shared = |min, max| MemoryType {
            limits: Limits { min, max },
            shared: true,
        };
        assert!(matches!(
            LinearMemory::new(shared(1, None)),
            Err(MemoryError::Unsupported(_))
        ));
        let mut m = LinearMemory::new(shared(1, Some(2))).unwrap();
        assert!(m.ty().shared);
        assert_eq!(m.grow(1), Some(1));
        assert_eq!(m.grow(1), None);
        // The length generated code reads (atomically) is the new one.
        // SAFETY: `vm_ptr` is this live memory's `VMMemory`.
        let length = unsafe { (*m.vm_ptr()).length };
        assert_eq!(length, 2 * WASM_PAGE_SIZE);
        m.data_mut()[2 * 65536 - 1] = 1;
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmaps 8 GiB and calls mprotect: no Miri shim")]
    fn refuses_too_large() {
        assert!(LinearMemory::new(ty(65537, None)).is_err());
        let mut m = LinearMemory::new(ty(0, None)).unwrap();
        assert_eq!(m.grow(65537), None);
        assert_eq!(m.grow(0), Some(0));
    }
}
