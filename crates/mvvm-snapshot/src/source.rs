//! Where the writer reads linear memory from.
//!
//! Usually a slice that nothing changes during the write (the program is
//! stopped). A periodic checkpoint written in the background reads a
//! memory the program keeps writing: the runtime then hands the writer a
//! source that gives, for every range it asks, the bytes as they were at
//! the checkpoint (its copy-on-write image, `mvvm-rt`'s
//! `memory/cow.rs`). The writer reads each chunk twice (once to plan the
//! runs and their crc32s, once to emit them), and both reads must see the
//! same bytes: that is the source's promise.

/// Linear memory as a snapshot writer reads it.
pub trait MemorySource {
    /// Its length in bytes (a multiple of the wasm page size).
    fn len(&self) -> usize;

    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest range [`Self::with_bytes`] is asked for at once when
    /// emitting runs (a source that copies uses a buffer of this size).
    fn max_piece(&self) -> usize {
        usize::MAX
    }

    /// Calls `f` with the bytes `offset..offset + len` (within
    /// [`Self::len`], chunk-aligned) as the snapshot must hold them: the
    /// same bytes on every call for the same range.
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R;
}

impl MemorySource for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self[offset..offset + len])
    }
}
