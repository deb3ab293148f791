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
//!  before a periodic checkpoint of a memory still on small pages (a
//!  restored one): protect_ahead() protects the dirty units again, bits
//!  kept, so that the pause's protection finds little left to do
//! ```
//!
//! One fault per 64 KiB chunk written between two snapshots (a few
//! microseconds each); nothing on reads. Chunks are the snapshot's
//! `CHUNK_SIZE` (the wasm page size), a multiple of every host page size.
//!
//! The signal handler may run at any instruction, so it uses only atomics,
//! `mprotect` and a slot's spin lock (no allocation, no lock that can
//! sleep or that a holder keeps across a blocking call): trackers live in a fixed static
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
/// Protection granularity of a large memory (see [`unit_for`]): one
/// huge page (PMD) on x86-64 and on aarch64 with 4 KiB pages.
pub(crate) const HUGE_UNIT: usize = 2 << 20;
/// Memories of this length or more are tracked in [`HUGE_UNIT`]s.
pub(crate) const HUGE_FROM: usize = 32 * HUGE_UNIT;

/// The protection unit of a tracking period that starts with the memory
/// `len` bytes long: [`CHUNK`] for a small memory, [`HUGE_UNIT`] from
/// [`HUGE_FROM`] on. A write then unprotects, and dirties, its whole unit:
/// changing the protection of part of a huge page would split it, and
/// protecting a memory whose huge pages were split costs one page-table
/// entry per 4 KiB again (about 9 ms per GiB here, against 0.03 ms on
/// whole huge pages: docs/migration.md). Incremental snapshots of large
/// memories get coarser (whole units), never wrong. The unit depends on
/// the length alone, so a background and a stop-the-world checkpoint of
/// the same point track, and write, the same chunks.
pub(crate) fn unit_for(len: usize) -> usize {
    if len >= HUGE_FROM { HUGE_UNIT } else { CHUNK }
}
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
    /// Protection granularity in bytes: [`CHUNK`], or [`HUGE_UNIT`] for a
    /// memory on huge pages (a write then unprotects, and dirties, the
    /// whole unit: changing the protection of part of a huge page would
    /// split it into 512 small ones, and protecting the whole memory
    /// would again cost one page-table entry per 4 KiB).
    unit: AtomicUsize,
    /// Copy-on-write image for a background snapshot (`cow.rs`): where a
    /// chunk the writer still needs is copied before the program writes
    /// it (same offset as in the memory); 0 when no image is being taken.
    /// Read and changed only under `lock`.
    cow_shadow: AtomicUsize,
    /// Chunks the image still reads from the memory (protected and
    /// unchanged since the image's instant); a chunk copied to the shadow
    /// has its bit cleared (after the copy).
    cow_pending: [AtomicU64; WORDS],
    /// The unit being moved onto a huge page (`memory/huge.rs`), as its
    /// byte offset + 1; 0 when none. Set under `lock`, with the unit
    /// already read-only; cleared (without the lock) once it is moved.
    /// Nothing makes that unit writable meanwhile: whoever would waits
    /// for it to clear, holding `lock` (which the mover does not need
    /// to finish), so the copy sees every write made before and none
    /// after.
    converting: AtomicUsize,
    /// The memory may hold small pages in units it writes (a restored
    /// memory not yet moved onto huge pages): its dirty units are
    /// protected ahead of each periodic checkpoint, while the program
    /// runs ([`protect_ahead`]), so that the pause finds them read-only.
    ahead: AtomicBool,
    /// Units the fault handler made writable, ever (wrapping): how many
    /// a [`protect_ahead`] round saw the program open again meanwhile.
    reopened: AtomicUsize,
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
            unit: AtomicUsize::new(CHUNK),
            cow_shadow: AtomicUsize::new(0),
            cow_pending: [const { AtomicU64::new(0) }; WORDS],
            converting: AtomicUsize::new(0),
            ahead: AtomicBool::new(false),
            reopened: AtomicUsize::new(0),
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
        TRACKERS[slot].unit.store(CHUNK, Ordering::SeqCst);
        TRACKERS[slot].ahead.store(false, Ordering::SeqCst);
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
        s.unit.store(unit_for(len), Ordering::SeqCst);
        s.base.store(base as usize, Ordering::SeqCst);
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range is the caller's accessible memory, page-aligned
        // (contract of this function); making it read-only only turns later
        // writes into faults that the handler resolves.
        if let Err(e) = unsafe { mman::protect(base, len, Prot::Read) } {
            // No unit may become writable while it is being moved.
            let _held = SlotLock::take(s);
            wait_moved(s, 0, len);
            // SAFETY: as above; back to the normal protection.
            let _ = unsafe { mman::protect(base, len, Prot::ReadWrite) };
            s.base.store(0, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    /// Whether a tracking period is running.
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

    /// Takes a copy-on-write image of the memory at this instant for a
    /// snapshot written while the program runs on (`cow.rs`): ends the
    /// tracking period (a new one starts: every chunk clean) and leaves
    /// the whole memory read-only, by protecting only what is writable
    /// (the chunks dirty in the period, whose bits are the period's
    /// record: read them first) or, when no period ran, everything; then
    /// marks the chunks the snapshot reads (`needed`, a bitmap as in
    /// [`mvvm_snapshot::Incremental::dirty`]; `None`: all) as pending,
    /// and sets `shadow` as where the fault handler saves a pending chunk
    /// before the program changes it. Cost: one `mprotect` per run of
    /// dirty units, so proportional to what was written, not to the
    /// memory (on huge pages, one page-table entry per 2 MiB either way).
    ///
    /// # Safety
    /// As for [`Self::start`], with `len` the accessible length now; the
    /// program's threads are stopped (nothing writes the memory during
    /// the call); `shadow` is a fresh read-write mapping of at least
    /// `len` bytes that stays mapped until [`TrackerView::end_image`] returns.
    pub(crate) unsafe fn begin_image(
        &self,
        base: *mut u8,
        len: usize,
        needed: Option<&[u64]>,
        shadow: *mut u8,
    ) -> std::io::Result<()> {
        let s = self.slot();
        if s.base.load(Ordering::SeqCst) == 0 {
            // SAFETY: the caller's contract is `start`'s.
            unsafe { self.start(base, len)? };
        } else {
            self.sync_len(len);
            // SAFETY: `base` is the tracked memory's base (contract).
            unsafe { self.view().take_and_protect(base)? };
            // A new period: the whole memory is read-only, every bit
            // clear, so its unit may change (as `start` chooses it).
            s.unit.store(unit_for(len), Ordering::SeqCst);
        }
        let _held = SlotLock::take(s);
        let chunks = len.div_ceil(CHUNK);
        for (wi, w) in s.cow_pending.iter().enumerate() {
            let wanted = needed.map_or(u64::MAX, |n| n.get(wi).copied().unwrap_or(u64::MAX));
            let present = match chunks.saturating_sub(wi * 64) {
                0 => 0,
                n if n >= 64 => u64::MAX,
                n => (1u64 << n) - 1,
            };
            w.store(wanted & present, Ordering::SeqCst);
        }
        s.cow_shadow.store(shadow as usize, Ordering::SeqCst);
        Ok(())
    }

    /// A handle on this tracker for a pre-copy thread (see [`TrackerView`]).
    pub(crate) fn view(&self) -> TrackerView {
        TrackerView { slot: self.slot }
    }

    /// Whether [`protect_ahead`] protects this memory's dirty units
    /// before each periodic checkpoint (see `Slot::ahead`).
    pub(crate) fn set_protect_ahead(&self, on: bool) {
        self.view().set_protect_ahead(on);
    }

    /// Ends the tracking period: the memory is read-write again.
    ///
    /// # Safety
    /// As for [`Self::start`], with the same range.
    #[cfg(test)]
    pub(crate) unsafe fn stop(&self, base: *mut u8, len: usize) {
        let s = self.slot();
        // Under the lock, as in `drop`: `protect_ahead` no longer protects
        // the memory once its base is cleared.
        let was = {
            let _held = SlotLock::take(s);
            s.base.swap(0, Ordering::SeqCst)
        };
        if was == 0 || len == 0 {
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

    /// See [`Tracker::set_protect_ahead`].
    pub(crate) fn set_protect_ahead(&self, on: bool) {
        self.slot().ahead.store(on, Ordering::SeqCst);
    }

    /// [`protect_ahead`] for this memory alone (when marked for it): how
    /// many units it protected.
    pub(crate) fn protect_ahead(&self) -> usize {
        let s = self.slot();
        if s.ahead.load(Ordering::SeqCst) {
            protect_slot_ahead(s)
        } else {
            0
        }
    }

    /// Whether this memory is marked for [`protect_ahead`].
    #[cfg(test)]
    pub(crate) fn protects_ahead(&self) -> bool {
        self.slot().ahead.load(Ordering::SeqCst)
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

    /// Ends the image being taken (see [`Tracker::end_image`]).
    pub(crate) fn end_image(&self) {
        end_image(self.slot());
    }

    /// Whether chunk `i` of the image being taken is still read from the
    /// memory (protected and unchanged since the image's instant); false
    /// once the handler saved it to the shadow.
    pub(crate) fn image_pending(&self, i: usize) -> bool {
        self.slot()
            .cow_pending
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (i % 64)) != 0)
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
                let (start, n) = unit_span(s, (wi * 64 + first) * CHUNK, run * CHUNK);
                // SAFETY: these chunks had their bit set, so they lie in
                // the tracked memory's accessible part (the handler and
                // `grown` set bits only there, the length first); the
                // range, rounded out to whole units and cut at the
                // length, is page-aligned and stays in that part; it only
                // becomes read-only (chunks of the units whose bit is
                // clear were read-only already).
                let r = unsafe { mman::protect(base.add(start), n, Prot::Read) };
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

impl TrackerView {
    /// Replaces the protection unit at `offset` (one [`HUGE_UNIT`]) of the
    /// tracked memory at `base` by `fresh`, a huge-page buffer, holding
    /// the same bytes (`memory/huge.rs`). Under the slot's lock the unit
    /// is made read-only and marked as being moved (`Slot::converting`);
    /// then, without the lock (so that a pause's image, a pre-copy round
    /// and faults on other units do not wait for the copy, nor for this
    /// thread if it is preempted), it is copied into `fresh`, `fresh` is
    /// made read-only and moved over it, and the mark is cleared. A write
    /// to the unit meanwhile faults, and the handler waits for the mark
    /// to clear. The unit is left read-only either way: one that was
    /// writable had its bits set, so the write that faults next changes
    /// no bit and only unprotects it again (after saving what an image
    /// still reads), exactly as for a unit protected at a pause.
    /// `Ok(false)`: not converted (tracking stopped, or no longer in
    /// whole units, or the unit is beyond the memory); `fresh` is then
    /// the caller's to unmap, as on an error. On `Ok(true)` it is gone.
    ///
    /// # Safety
    /// `base` is the tracked memory's base (as given to
    /// [`Tracker::start`]), kept mapped meanwhile; `fresh` is a
    /// [`HUGE_UNIT`]-long, read-write mapping of the caller's, nothing
    /// else uses, that is a whole mapping (one `mmap`'s). One caller at a
    /// time per tracker.
    pub(crate) unsafe fn convert_unit(
        &self,
        base: *mut u8,
        offset: usize,
        fresh: *mut u8,
    ) -> std::io::Result<bool> {
        let s = self.slot();
        {
            let _held = SlotLock::take(s);
            if s.base.load(Ordering::SeqCst) != base as usize
                || s.unit.load(Ordering::SeqCst) != HUGE_UNIT
                || !offset.is_multiple_of(HUGE_UNIT)
                || offset + HUGE_UNIT > s.len.load(Ordering::SeqCst)
            {
                return Ok(false);
            }
            // SAFETY: the unit lies in the tracked memory's accessible
            // part (checked under the lock; lengths only grow) and is
            // page-aligned; it only becomes read-only, which the handler
            // resolves for writers. If this fails halfway, pages left
            // read-only in a writable unit fault and are unprotected by
            // the handler, changing no bit (a writable unit has its bits
            // set).
            unsafe { mman::protect(base.add(offset), HUGE_UNIT, Prot::Read)? };
            s.converting.store(offset + 1, Ordering::SeqCst);
        }
        let moved = (|| {
            // SAFETY: the unit is read-only and stays so until the mark
            // clears (nothing unprotects a marked unit: `Slot::converting`),
            // so its bytes are stable; `fresh` is the caller's own buffer
            // of as many bytes, a distinct mapping.
            unsafe { std::ptr::copy_nonoverlapping(base.add(offset), fresh, HUGE_UNIT) };
            // SAFETY: `fresh` is the caller's whole mapping (contract);
            // its protection changes on one huge page.
            unsafe { mman::protect(fresh, HUGE_UNIT, Prot::Read)? };
            // SAFETY: `fresh` is a whole mapping of the caller's that
            // nothing uses afterwards; the unit is part of the memory's
            // reservation and gets the very bytes it holds (copied while
            // it could not change): any reference into it reads the same
            // values, and a thread touching it during the move waits for
            // the move. Both are `HUGE_UNIT`-aligned (the reservation's
            // base is, `offset` is a multiple), so a huge page moves as
            // one entry.
            unsafe { mman::move_fixed(fresh, HUGE_UNIT, base.add(offset)) }
        })();
        s.converting.store(0, Ordering::SeqCst);
        moved.map(|()| true)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let s = self.slot();
        {
            // Under the lock: `protect_ahead` (another thread) changes the
            // protection of a slot's memory only while it holds the lock
            // and sees its base, so once this returns it no longer
            // touches the memory, which its owner may then unmap.
            let _held = SlotLock::take(s);
            s.ahead.store(false, Ordering::SeqCst);
            s.base.store(0, Ordering::SeqCst);
        }
        s.len.store(0, Ordering::SeqCst);
        s.claimed.store(false, Ordering::Release);
    }
}

/// The byte range `offset..offset + len` of a tracked memory rounded out
/// to its slot's protection units and cut at its length: `(start, len)`.
fn unit_span(s: &Slot, offset: usize, len: usize) -> (usize, usize) {
    let unit = s.unit.load(Ordering::SeqCst);
    let mem_len = s.len.load(Ordering::SeqCst);
    let start = offset / unit * unit;
    let end = (offset + len)
        .div_ceil(unit)
        .saturating_mul(unit)
        .min(mem_len);
    (start, end.saturating_sub(start))
}

/// Called by the SIGSEGV handler with the faulting address: when it lies
/// in the accessible part of a tracked memory, marks the chunks of its
/// protection unit dirty, saves those a background snapshot still needs
/// ([`Tracker::begin_image`]) to the image's shadow, makes the unit
/// writable and returns `true` (the faulting store is retried).
/// Async-signal-safe: atomics, `memcpy`, `mprotect` and `sched_yield` only.
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
        // Spins only while a pre-copy round or another thread's fault
        // (which never fault while holding it) protects or copies a few
        // chunks.
        let _held = SlotLock::take(s);
        let (start, n) = unit_span(s, off, 1);
        wait_moved(s, start, n);
        let (first, last) = (start / CHUNK, (start + n).div_ceil(CHUNK));
        // SAFETY: `base..base + len` is the accessible part of the tracked
        // memory and `first..last` its chunks (from `unit_span`); the
        // shadow, when set, is as long (`begin_image`) and stays mapped
        // while it is set, which is only changed under the lock we hold.
        unsafe { save_pending(s, base as *const u8, first, last) };
        for chunk in first..last {
            s.bits[chunk / 64].fetch_or(1 << (chunk % 64), Ordering::SeqCst);
        }
        // SAFETY: the unit lies in the accessible part of a tracked
        // memory (checked above, cut at its length) and starts on a unit
        // boundary, a multiple of the page size; it only becomes
        // writable, as it was before tracking started.
        let r = unsafe { mman::protect((base + start) as *mut u8, n, Prot::ReadWrite) };
        if r.is_ok() {
            s.reopened.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        // Out of mappings: give up tracking this period for this memory.
        // An image being taken needs every chunk it still reads from the
        // memory saved first, and no unit may be mid-move.
        wait_moved(s, 0, len);
        // SAFETY: as above, for every chunk of the accessible part.
        unsafe { save_pending(s, base as *const u8, 0, len.div_ceil(CHUNK)) };
        s.overflow.store(true, Ordering::SeqCst);
        // SAFETY: as above, for the whole accessible part.
        let r = unsafe { mman::protect(base as *mut u8, len, Prot::ReadWrite) };
        return r.is_ok();
    }
    false
}

/// Protects, while the program runs, the dirty units of every memory
/// marked for it ([`Tracker::set_protect_ahead`]), just before a periodic
/// checkpoint's trigger, so that the checkpoint's pause, which protects
/// the units written in the period ([`Tracker::begin_image`]), finds
/// them read-only already and pays only for those written since.
///
/// Why: on small pages `mprotect` walks one page-table entry per 4 KiB
/// (262 144 per GiB, 10-30 ms here), which a restored memory pays until
/// it is moved onto huge pages (`memory/huge.rs`: seconds per GiB). Here
/// that walk runs beside the program instead of in its pause. The bits
/// are left set (they are the period's record: the snapshot saves the
/// same chunks as without this); a unit written again faults once more
/// and is unprotected as usual (the bits already set). The kernel skips
/// the part of a range already read-only (its mapping's protection does
/// not change), so the pause's own `mprotect` costs only the units made
/// writable since. Memories whose image is still being written (the
/// previous checkpoint's writer runs, so the next period is skipped) or
/// that overflowed are left alone.
///
/// Each run of units is protected holding the slot's lock, its base
/// checked under it: the owner clears the base under the lock before
/// the memory can go (`Tracker`'s drop), and the fault handler never
/// sees a unit half protected. Returns how many units were protected,
/// and how many the program made writable again while it ran (what the
/// next round, or the pause, finds to protect).
pub(crate) fn protect_ahead() -> (usize, usize) {
    let (mut protected, mut reopened) = (0, 0);
    for s in TRACKERS.iter().filter(|s| s.ahead.load(Ordering::SeqCst)) {
        let before = s.reopened.load(Ordering::Relaxed);
        protected += protect_slot_ahead(s);
        reopened += s.reopened.load(Ordering::Relaxed).wrapping_sub(before);
    }
    (protected, reopened)
}

/// [`protect_ahead`] for one slot.
fn protect_slot_ahead(s: &Slot) -> usize {
    let base = s.base.load(Ordering::SeqCst);
    if base == 0 {
        return 0;
    }
    let mut units = 0usize;
    let len = s.len.load(Ordering::SeqCst);
    for wi in 0..len.div_ceil(CHUNK).div_ceil(64).min(WORDS) {
        let mut b = s.bits[wi].load(Ordering::SeqCst);
        while b != 0 {
            let first = b.trailing_zeros() as usize;
            let run = (b >> first).trailing_ones() as usize;
            if first + run >= 64 {
                b = 0;
            } else {
                b &= !(((1u64 << run) - 1) << first);
            }
            let _held = SlotLock::take(s);
            if s.base.load(Ordering::SeqCst) != base
                || !s.ahead.load(Ordering::SeqCst)
                || s.overflow.load(Ordering::SeqCst)
                || s.cow_shadow.load(Ordering::SeqCst) != 0
            {
                return units;
            }
            let (start, n) = unit_span(s, (wi * 64 + first) * CHUNK, run * CHUNK);
            if n == 0 {
                continue;
            }
            // SAFETY: the slot tracks the memory at `base` (checked under
            // the lock, which its owner takes to clear the base before
            // the memory can be unmapped), and the range, chunks whose
            // bits are set rounded out to whole units and cut at the
            // length, lies in its accessible part and is page-aligned. It
            // only becomes read-only: a write then faults and the handler
            // (which waits for our lock) unprotects its unit, the bits
            // already set. A failure halfway leaves some pages read-only
            // in the same way.
            if unsafe { mman::protect((base + start) as *mut u8, n, Prot::Read) }.is_err() {
                return units;
            }
            units += n.div_ceil(s.unit.load(Ordering::SeqCst));
        }
    }
    units
}

/// Copies the chunks of `first..last` that the slot's image still reads
/// from the memory into the image's shadow, then clears their pending
/// bits (the copy first: a writer that sees the bit clear reads the
/// shadow). Nothing when no image is being taken.
///
/// # Safety
/// The caller holds the slot's lock; `base` is the tracked memory's base
/// and `first..last` chunks of its accessible part, mapped readable.
unsafe fn save_pending(s: &Slot, base: *const u8, first: usize, last: usize) {
    let shadow = s.cow_shadow.load(Ordering::SeqCst);
    if shadow == 0 {
        return;
    }
    for chunk in first..last {
        let bit = 1u64 << (chunk % 64);
        let word = &s.cow_pending[chunk / 64];
        if word.load(Ordering::SeqCst) & bit == 0 {
            continue;
        }
        // SAFETY: the chunk is in the accessible part of the memory
        // (contract) and in the shadow, which is as long as the memory
        // was at the image's instant (pending bits are set only below
        // that length) and stays mapped while `cow_shadow` is set (it is
        // cleared under the lock, which the caller holds, before the
        // shadow is unmapped); the two mappings are distinct. The chunk
        // is read-only while its bit is set, so nobody changes it during
        // the copy; the shadow chunk is written only here, once.
        unsafe {
            std::ptr::copy_nonoverlapping(
                base.add(chunk * CHUNK),
                (shadow as *mut u8).add(chunk * CHUNK),
                CHUNK,
            );
        }
        word.fetch_and(!bit, Ordering::SeqCst);
    }
}

/// Waits, holding the slot's lock (so no new move starts), until no unit
/// overlapping the bytes `start..start + len` is being moved onto a huge
/// page (`Slot::converting`; the mover finishes without the lock).
/// Async-signal-safe.
fn wait_moved(s: &Slot, start: usize, len: usize) {
    let mut spins = 0u32;
    loop {
        // The unit being moved, as `offset + 1` (0: none).
        let c = s.converting.load(Ordering::SeqCst);
        let Some(unit) = c.checked_sub(1) else {
            return;
        };
        if unit >= start + len || unit + HUGE_UNIT <= start {
            return;
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            crate::sys::sched::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Ends a slot's image: the handler saves no more chunks to its shadow.
fn end_image(s: &Slot) {
    let _held = SlotLock::take(s);
    s.cow_shadow.store(0, Ordering::SeqCst);
    for w in &s.cow_pending {
        w.store(0, Ordering::SeqCst);
    }
}

/// Holds a slot's `lock` until dropped (a spin lock: its holders keep it
/// for a few `mprotect` calls at most, or while a write waits for its
/// unit to be moved onto a huge page (`wait_moved`), and the fault
/// handler can take it: only atomics and `sched_yield`).
struct SlotLock<'a>(&'a Slot);

impl<'a> SlotLock<'a> {
    fn take(s: &'a Slot) -> SlotLock<'a> {
        let mut spins = 0u32;
        while s
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // A holder that was preempted (the huge-page converter runs
            // as a batch thread) gets the CPU back sooner if we give ours
            // up after a while (`sched_yield` is async-signal-safe).
            spins += 1;
            if spins.is_multiple_of(256) {
                crate::sys::sched::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        SlotLock(s)
    }
}

impl Drop for SlotLock<'_> {
    fn drop(&mut self) {
        self.0.lock.store(false, Ordering::Release);
    }
}
