//! Reading a linear memory from another thread while the guest runs, for
//! pre-copy live migration (`checkpoint/live.rs`): the dirty set of each
//! round is taken and its chunks protected first
//! ([`TrackerView::take_and_protect`]), then read here. A write racing
//! the read faults (the chunk is read-only again), marks the chunk dirty
//! and goes on: the bytes read may be torn, and the chunk is sent again in
//! a later round or with the final, stopped part. So torn bytes are never
//! what the receiver ends with.

use super::dirty::TrackerView;

/// A tracked memory seen from a pre-copy thread.
#[derive(Debug)]
pub(crate) struct PrecopySource {
    /// Base of the reservation (never moves; stays mapped, see `Send`).
    base: *mut u8,
    /// The memory's dirty tracker.
    tracker: TrackerView,
}

// SAFETY: `base` points into a reservation that the store owns; the
// pre-copy thread holding this is joined before the store can drop its
// memories (`checkpoint/live.rs`: `LiveGuard`, and the joins at the final
// stop and at the end of a run), so the pages stay mapped while it is used
// on that thread. Nothing here is tied to the creating thread.
unsafe impl Send for PrecopySource {}

impl PrecopySource {
    /// # Safety
    /// `base` is the base of the memory that `tracker` tracks, and the
    /// caller keeps that memory alive (not dropped, not unmapped) while
    /// the value exists.
    pub(crate) unsafe fn new(base: *mut u8, tracker: TrackerView) -> PrecopySource {
        PrecopySource { base, tracker }
    }

    /// Accessible bytes now (the memory may grow meanwhile: new chunks are
    /// dirty).
    pub(crate) fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Chunks dirty now.
    pub(crate) fn dirty_count(&self) -> u64 {
        self.tracker.dirty_count()
    }

    /// Marks chunk `i` dirty again (taken, not sent).
    pub(crate) fn mark_dirty(&self, i: usize) {
        self.tracker.mark_dirty(i);
    }

    /// Takes this round's dirty set and protects its chunks (see
    /// [`TrackerView::take_and_protect`]).
    pub(crate) fn take_and_protect(&self) -> std::io::Result<Vec<u64>> {
        // SAFETY: `base` is the tracked memory's base, mapped while this
        // value exists (contract of `new`).
        unsafe { self.tracker.take_and_protect(self.base) }
    }

    /// Copies `buf.len()` bytes at guest `offset` into `buf`; false when
    /// they are not all within the length the tracker knows (nothing
    /// copied).
    pub(crate) fn copy(&self, offset: usize, buf: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(buf.len()) else {
            return false;
        };
        if end > self.len() {
            return false;
        }
        // SAFETY: `offset..end` lies within the accessible part (the
        // tracker's length never exceeds the memory's: it is updated after
        // the pages became accessible, and memory never shrinks), which is
        // mapped readable (read-write or read-only) while this value
        // exists (contract of `new`); `buf` is a distinct Rust allocation
        // and `u8` needs no alignment. The guest may write these bytes
        // meanwhile (no Rust reference into linear memory is alive: the
        // guest's stores are machine code outside Rust's model, as for
        // `Reservation::read` on a shared memory): the bytes copied may
        // then be torn, which is harmless because such a write re-dirties
        // the chunk (it was protected before this copy) and the chunk is
        // sent again later.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(offset), buf.as_mut_ptr(), buf.len())
        };
        true
    }
}
