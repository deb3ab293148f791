//! Dirty-chunk tracking of linear memory by write protection.
//!
//! This kernel has no soft-dirty bits (`CONFIG_MEM_SOFT_DIRTY` is off), and
//! userfaultfd write-protect needs a handler thread and `PAGEMAP_SCAN`
//! (Linux 6.7) to be cheap; write protection with `mprotect` works on every
//! Linux and every ISA, so that is what we use:
//!
//! ```text
//!  start():   clear the bitmap, mprotect(base, length, PROT_READ)
//!  a store (wasm or host code) into clean chunk i
//!     └─ SIGSEGV ─▶ signals::handler ─▶ handle_write_fault(addr)
//!                     set bit i (atomic), mprotect(chunk i, READ|WRITE), return
//!                     └─▶ the store is retried and succeeds
//!  memory.grow:  new chunks are read-write and marked dirty at once
//!  snapshot:     only the chunks whose bit is set are read and written
//! ```
//!
//! One fault per 64 KiB chunk written between two snapshots (a few
//! microseconds each); nothing on reads. Chunks are the snapshot's
//! `CHUNK_SIZE` (the wasm page size), a multiple of every host page size.
//!
//! The signal handler may run at any instruction, so it uses only atomics
//! and `mprotect` (no allocation, no lock): trackers live in a fixed static
//! array of slots that are never freed (a memory that wants tracking claims
//! a free slot and gives it back when dropped). A thread faults in
//! memories its store uses (its own, or a shared memory that the tracking
//! store shares with other threads: any thread's write is recorded the
//! same way), whose slots stay claimed while they run; other slots are
//! only compared against, never written, by the handler.
//!
//! When `mprotect` fails in the handler (the process ran out of memory
//! mappings: each protection change may split one, see
//! `vm.max_map_count`), the whole memory is made writable and counted as
//! dirty ("overflow"): the next snapshot is then as large as a full one,
//! never wrong.

use crate::sys::mman::{self, Prot};
use mvvm_abi::vmctx::WASM_PAGE_SIZE;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Tracking granularity: the snapshot's chunk.
pub(crate) const CHUNK: usize = WASM_PAGE_SIZE as usize;
/// Chunks of the largest (4 GiB) memory.
const CHUNKS: usize = (1usize << 32) / CHUNK;
/// Bitmap words per tracker.
pub(crate) const WORDS: usize = CHUNKS / 64;
/// Memories that can be tracked at once in a process. A memory that finds
/// no free slot is simply not tracked (its snapshots are full ones).
const SLOTS: usize = 32;

/// One tracker: where the memory is and which chunks were written.
struct Slot {
    /// Claimed by a live `Tracker`.
    claimed: AtomicBool,
    /// Base address of the memory; 0 while not tracking.
    base: AtomicUsize,
    /// Accessible bytes (faults beyond are out-of-bounds accesses).
    len: AtomicUsize,
    /// `mprotect` failed once: everything is writable and dirty.
    overflow: AtomicBool,
    /// Bit `i % 64` of word `i / 64`: chunk `i` was written.
    bits: [AtomicU64; WORDS],
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            claimed: AtomicBool::new(false),
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            overflow: AtomicBool::new(false),
            bits: [const { AtomicU64::new(0) }; WORDS],
        }
    }
}

static TRACKERS: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// A claimed tracker slot, owned by one linear memory.
#[derive(Debug)]
pub(crate) struct Tracker {
    slot: usize,
}

impl Tracker {
    /// Claims a free slot, or `None` when all are taken.
    pub(crate) fn claim() -> Option<Tracker> {
        let slot = TRACKERS.iter().position(|s| {
            s.claimed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        Some(Tracker { slot })
    }

    fn slot(&self) -> &'static Slot {
        &TRACKERS[self.slot]
    }

    /// Starts a tracking period over `len` accessible bytes at `base`:
    /// every chunk clean, the whole range read-only.
    ///
    /// # Safety
    /// `base..base + len` must be the accessible part of a linear memory
    /// owned by the caller, mapped readable, with no Rust reference to it
    /// alive that assumes it stays writable without faulting (writes
    /// through such references still work: they fault and are retried).
    pub(crate) unsafe fn start(&self, base: *mut u8, len: usize) -> std::io::Result<()> {
        let s = self.slot();
        // Stop the handler from claiming faults while the bitmap is reset.
        s.base.store(0, Ordering::SeqCst);
        for w in &s.bits {
            w.store(0, Ordering::Relaxed);
        }
        s.overflow.store(false, Ordering::Relaxed);
        s.len.store(len, Ordering::SeqCst);
        s.base.store(base as usize, Ordering::SeqCst);
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range is the caller's accessible memory, page-aligned
        // (contract of this function); making it read-only only turns later
        // writes into faults that the handler resolves.
        if let Err(e) = unsafe { mman::protect(base, len, Prot::Read) } {
            // SAFETY: as above; back to the normal protection.
            let _ = unsafe { mman::protect(base, len, Prot::ReadWrite) };
            s.base.store(0, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    /// Whether a tracking period is running.
    #[cfg(test)]
    pub(crate) fn active(&self) -> bool {
        self.slot().base.load(Ordering::SeqCst) != 0
    }

    /// The memory grew to `new_len` bytes (the new part already
    /// read-write): its chunks are dirty.
    pub(crate) fn grown(&self, old_len: usize, new_len: usize) {
        let s = self.slot();
        if s.base.load(Ordering::SeqCst) == 0 {
            return;
        }
        for chunk in old_len / CHUNK..new_len.div_ceil(CHUNK) {
            s.bits[chunk / 64].fetch_or(1 << (chunk % 64), Ordering::SeqCst);
        }
        s.len.store(new_len, Ordering::SeqCst);
    }

    /// A shared memory may have been grown by another thread (through
    /// another store, whose grow this tracker did not see): when the
    /// memory is now `len` bytes and the tracker knew fewer, the new
    /// chunks (read-write, never protected) count as dirty.
    pub(crate) fn sync_len(&self, len: usize) {
        let known = self.slot().len.load(Ordering::SeqCst);
        if len > known {
            self.grown(known, len);
        }
    }

    /// The chunks written since [`Self::start`] (all of them after an
    /// overflow), or `None` when no period is running.
    pub(crate) fn bitmap(&self) -> Option<Vec<u64>> {
        let s = self.slot();
        if s.base.load(Ordering::SeqCst) == 0 {
            return None;
        }
        if s.overflow.load(Ordering::SeqCst) {
            return Some(vec![u64::MAX; WORDS]);
        }
        Some(s.bits.iter().map(|w| w.load(Ordering::SeqCst)).collect())
    }

    /// Ends the tracking period: the memory is read-write again.
    ///
    /// # Safety
    /// As for [`Self::start`], with the same range.
    #[cfg(test)]
    pub(crate) unsafe fn stop(&self, base: *mut u8, len: usize) {
        let s = self.slot();
        if s.base.swap(0, Ordering::SeqCst) == 0 || len == 0 {
            return;
        }
        // SAFETY: the caller's accessible memory (contract) gets its normal
        // protection back, which harms no reference.
        let _ = unsafe { mman::protect(base, len, Prot::ReadWrite) };
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let s = self.slot();
        s.base.store(0, Ordering::SeqCst);
        s.len.store(0, Ordering::SeqCst);
        s.claimed.store(false, Ordering::Release);
    }
}

/// Called by the SIGSEGV handler with the faulting address: when it lies
/// in the accessible part of a tracked memory, marks its chunk dirty, makes
/// the chunk writable and returns `true` (the faulting store is retried).
/// Async-signal-safe: atomics and `mprotect` only.
pub(crate) fn handle_write_fault(addr: usize) -> bool {
    for s in &TRACKERS {
        let base = s.base.load(Ordering::SeqCst);
        if base == 0 || addr < base {
            continue;
        }
        let off = addr - base;
        let len = s.len.load(Ordering::SeqCst);
        if off >= len {
            continue;
        }
        let chunk = off / CHUNK;
        s.bits[chunk / 64].fetch_or(1 << (chunk % 64), Ordering::SeqCst);
        let start = base + chunk * CHUNK;
        let n = CHUNK.min(len - chunk * CHUNK);
        // SAFETY: the chunk lies in the accessible part of a tracked
        // memory (checked above) and starts on a chunk boundary, a multiple
        // of the page size; it only becomes writable, as it was before
        // tracking started.
        let r = unsafe { mman::protect(start as *mut u8, n, Prot::ReadWrite) };
        if r.is_ok() {
            return true;
        }
        // Out of mappings: give up tracking this period for this memory.
        s.overflow.store(true, Ordering::SeqCst);
        // SAFETY: as above, for the whole accessible part.
        let r = unsafe { mman::protect(base as *mut u8, len, Prot::ReadWrite) };
        return r.is_ok();
    }
    false
}
