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
    /// Held by the fault handler while it marks a chunk and makes it
    /// writable, and by a pre-copy round ([`Tracker::take_and_protect`])
    /// while it clears bits and protects their chunks: each sees the
    /// other's two steps as one (otherwise a round could clear a bit the
    /// handler had just set, protect the chunk, and then see the handler
    /// make it writable again: a write that no bit records).
    lock: AtomicBool,
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
            lock: AtomicBool::new(false),
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
        // The length first: a pre-copy round that sees a new chunk's bit
        // protects the chunk, and the handler must then know it as ours.
        s.len.store(new_len, Ordering::SeqCst);
        for chunk in old_len / CHUNK..new_len.div_ceil(CHUNK) {
            s.bits[chunk / 64].fetch_or(1 << (chunk % 64), Ordering::SeqCst);
        }
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

    /// A handle on this tracker for a pre-copy thread (see [`TrackerView`]).
    pub(crate) fn view(&self) -> TrackerView {
        TrackerView { slot: self.slot }
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

/// What a pre-copy thread uses of a [`Tracker`] it does not own: the
/// memory's owner keeps the tracker (and the memory) alive until that
/// thread is joined (`checkpoint/live.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackerView {
    slot: usize,
}

impl TrackerView {
    fn slot(&self) -> &'static Slot {
        &TRACKERS[self.slot]
    }

    /// Accessible bytes the tracker knows of (grows with the memory).
    pub(crate) fn len(&self) -> usize {
        self.slot().len.load(Ordering::SeqCst)
    }

    /// Chunks marked dirty now (every chunk after an overflow).
    pub(crate) fn dirty_count(&self) -> u64 {
        let s = self.slot();
        if s.overflow.load(Ordering::SeqCst) {
            return self.len().div_ceil(CHUNK) as u64;
        }
        s.bits
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// Marks chunk `i` dirty again (a pre-copy round that took it but did
    /// not send it).
    pub(crate) fn mark_dirty(&self, i: usize) {
        if let Some(w) = self.slot().bits.get(i / 64) {
            w.fetch_or(1 << (i % 64), Ordering::SeqCst);
        }
    }

    /// One pre-copy round: takes the dirty set (bitmap returned, bits
    /// cleared) and makes those chunks read-only again, before the caller
    /// reads them, so that a write racing the read faults and dirties its
    /// chunk for a later round. After an overflow every chunk is taken and
    /// the whole memory protected. On an `mprotect` failure the chunks
    /// not yet protected stay dirty (and writable) and the error is
    /// returned: the caller stops pre-copying, the final snapshot has them.
    ///
    /// # Safety
    /// `base` must be the tracked memory's base (as given to
    /// [`Self::start`]), whose pages stay mapped meanwhile.
    pub(crate) unsafe fn take_and_protect(&self, base: *mut u8) -> std::io::Result<Vec<u64>> {
        let s = self.slot();
        let mut out = vec![0u64; WORDS];
        let _held = SlotLock::take(s);
        if s.overflow.swap(false, Ordering::SeqCst) {
            let len = s.len.load(Ordering::SeqCst);
            for w in &s.bits {
                w.store(0, Ordering::SeqCst);
            }
            for i in 0..len.div_ceil(CHUNK) {
                out[i / 64] |= 1 << (i % 64);
            }
            // SAFETY: the accessible part of the caller's tracked memory
            // (contract); it only becomes read-only, writes then fault.
            if let Err(e) = unsafe { mman::protect(base, len, Prot::Read) } {
                s.overflow.store(true, Ordering::SeqCst);
                return Err(e);
            }
            return Ok(out);
        }
        for (wi, w) in s.bits.iter().enumerate() {
            let bits = w.swap(0, Ordering::SeqCst);
            if bits == 0 {
                continue;
            }
            out[wi] = bits;
            // Protect maximal runs of set bits in this word at once.
            let mut b = bits;
            while b != 0 {
                let first = b.trailing_zeros() as usize;
                let run = (b >> first).trailing_ones() as usize;
                let start = (wi * 64 + first) * CHUNK;
                // SAFETY: these chunks had their bit set, so they lie in
                // the tracked memory's accessible part (the handler and
                // `grown` set bits only there, the length first); the
                // range is chunk-aligned; it only becomes read-only.
                let r = unsafe { mman::protect(base.add(start), run * CHUNK, Prot::Read) };
                if let Err(e) = r {
                    // Leave what is not yet protected dirty.
                    w.fetch_or(b, Ordering::SeqCst);
                    out[wi] &= !b;
                    return Err(e);
                }
                if first + run >= 64 {
                    b = 0;
                } else {
                    b &= !(((1u64 << run) - 1) << first);
                }
            }
        }
        Ok(out)
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
        // Spins only while a pre-copy round (another thread, which never
        // faults while holding it) protects a few chunks.
        let _held = SlotLock::take(s);
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

/// Holds a slot's `lock` until dropped (a spin lock: both holders keep it
/// for a few `mprotect` calls at most, and the fault handler can take it:
/// only atomics).
struct SlotLock<'a>(&'a Slot);

impl<'a> SlotLock<'a> {
    fn take(s: &'a Slot) -> SlotLock<'a> {
        while s
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        SlotLock(s)
    }
}

impl Drop for SlotLock<'_> {
    fn drop(&mut self) {
        self.0.lock.store(false, Ordering::Release);
    }
}
