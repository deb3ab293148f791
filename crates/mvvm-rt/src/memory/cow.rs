//! The copy-on-write image a background snapshot is written from: the
//! linear memory as it was at a periodic checkpoint, read by a writer
//! thread while the program runs on and writes it.
//!
//! ```text
//!  pause:   tracking period ends; what was written in it is protected again
//!           (Tracker::begin_image: cost ∝ what was written, not the memory);
//!           the chunks the snapshot reads are marked pending; a shadow
//!           mapping as long as the memory is made (untouched: no cost)
//!  program writes pending chunk i  ─▶ SIGSEGV ─▶ handler (lock held):
//!           copy chunk i to shadow[i], clear pending i, mark dirty, unprotect
//!  writer reads chunk i:  pending? copy it from the memory, then check the
//!           bit again (a fence between): still pending ⇒ the bytes were the
//!           image's (the chunk was read-only throughout); else ⇒ shadow[i]
//!  end:     Tracker::end_image (under the lock), shadow unmapped
//! ```
//!
//! The same handler serves every thread of the program (a shared
//! memory's faults all reach the one tracker slot), and host code that
//! writes the memory faults the same way. Unlike the kernel's
//! copy-on-write after a `fork`, nothing here costs per 4 KiB page of the
//! memory at the pause.

use super::dirty::{CHUNK, TrackerView};
use crate::sys::mman;
use std::cell::RefCell;
use std::sync::atomic::{Ordering, fence};

/// Bytes copied per [`mvvm_snapshot::MemorySource::with_bytes`] call when
/// emitting runs.
const PIECE: usize = 16 * CHUNK;

/// A memory's image at a background checkpoint, for the writer thread.
#[derive(Debug)]
pub(crate) struct CowImage {
    /// Base of the memory's reservation (never moves).
    base: *const u8,
    /// The memory's length at the image's instant.
    len: usize,
    /// The shadow mapping (`len` bytes, rounded up to pages).
    shadow: *mut u8,
    /// Its mapped length.
    shadow_len: usize,
    /// The memory's tracker (which holds the pending bits).
    tracker: TrackerView,
    /// Where a range is assembled for the writer.
    buf: RefCell<Vec<u8>>,
}

// SAFETY: the pointers are into the memory's reservation and into the
// shadow this value owns. The reservation stays mapped while the value
// exists: the writer job it is moved to (which drops it) is waited for
// before the store can drop its memories (`checkpoint/background.rs`:
// `PendingWrite` waits on drop, and the store drops its checkpoint
// control first). Nothing is tied to the creating thread.
unsafe impl Send for CowImage {}

impl CowImage {
    /// # Safety
    /// `base..base + len` is the accessible part of the memory `tracker`
    /// tracks, on which [`super::dirty::Tracker::begin_image`] just
    /// succeeded with `shadow` (a mapping of `shadow_len` bytes this value
    /// now owns); the caller keeps the memory mapped while the value
    /// exists.
    pub(crate) unsafe fn new(
        base: *const u8,
        len: usize,
        shadow: *mut u8,
        shadow_len: usize,
        tracker: TrackerView,
    ) -> CowImage {
        CowImage {
            base,
            len,
            shadow,
            shadow_len,
            tracker,
            buf: RefCell::new(Vec::new()),
        }
    }

    /// Copies chunk `i`'s image into `out` (`CHUNK` bytes).
    fn copy_chunk(&self, i: usize, out: &mut [u8]) {
        let at = i * CHUNK;
        if self.tracker.image_pending(i) {
            // SAFETY: chunk `i` lies in the memory's accessible part at
            // the image's instant (`i * CHUNK < len`, callers check), which
            // stays mapped readable (contract of `new`); `out` is our own
            // buffer. While its pending bit is set the chunk is read-only,
            // so these bytes are the image's; if the handler saves it
            // meanwhile, it clears the bit before making it writable, and
            // the check below then sends us to the shadow.
            unsafe { std::ptr::copy_nonoverlapping(self.base.add(at), out.as_mut_ptr(), CHUNK) };
            // Order the copy's reads before the second look at the bit (a
            // seqlock's read side).
            fence(Ordering::SeqCst);
            if self.tracker.image_pending(i) {
                return;
            }
        }
        // SAFETY: the bit is clear, so the handler saved the chunk to the
        // shadow before clearing it (SeqCst store after the copy, seen by
        // our SeqCst load); the shadow is `len` bytes long, mapped while
        // this value exists, and never written again for this chunk.
        unsafe { std::ptr::copy_nonoverlapping(self.shadow.add(at), out.as_mut_ptr(), CHUNK) };
    }
}

impl mvvm_snapshot::MemorySource for CowImage {
    fn len(&self) -> usize {
        self.len
    }

    fn max_piece(&self) -> usize {
        PIECE
    }

    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        assert!(
            offset.is_multiple_of(CHUNK)
                && len.is_multiple_of(CHUNK)
                && offset.checked_add(len).is_some_and(|e| e <= self.len),
            "the snapshot writer reads whole chunks of the image"
        );
        let mut buf = self.buf.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        for (k, out) in buf[..len].chunks_mut(CHUNK).enumerate() {
            self.copy_chunk(offset / CHUNK + k, out);
        }
        f(&buf[..len])
    }
}

impl Drop for CowImage {
    fn drop(&mut self) {
        self.tracker.end_image();
        // SAFETY: the handler no longer touches the shadow (`end_image`
        // cleared it under the lock); we own the mapping and nothing else
        // refers to it.
        unsafe { mman::unmap(self.shadow, self.shadow_len) };
        // The units written during the write, on a memory still on small
        // pages: protected now, beside the program, rather than in the
        // next checkpoint's pause. The timer's own round before the next
        // trigger skipped them while this image was read, and the next
        // checkpoint may come as soon as the writer reports, without
        // another round (dirty::protect_ahead).
        let units = self.tracker.protect_ahead();
        if units > 0 {
            tracing::debug!(units, "dirty units protected ahead as the image ends");
        }
    }
}
