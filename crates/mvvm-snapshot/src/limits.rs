//! Limits the receiver of a snapshot sets: a snapshot is untrusted input,
//! and what it may make the reader allocate is decided by the reader.
//!
//! Every limit is checked twice. Before a section is read, its length (from
//! the checked header) is compared with the largest encoding the limits
//! allow for that section: the byte sizes below are exact for the codec
//! (fixed-width integers, `u64` counts, `u32` enum tags), so a section
//! longer than that cannot hold a value within the limits and is refused
//! before a byte of it is read. After a section decodes, the counts
//! themselves are compared. Decoding is bounded by the section's length
//! (`mvvm_abi::codec::decode` never allocates from a length prefix much
//! beyond its input), and a decoded value takes at most a few times its
//! encoding in memory, so what a snapshot costs the reader is bounded by
//! these limits, not by what the sender declares.

use crate::error::SnapshotError;
use crate::layout::{CHUNK_SIZE, MAX_MEMORY_BYTES, MAX_SECTION_LEN, MAX_THREAD_ID, SectionKind};

/// Encoded size of a `u64` count (a `Vec` or `String` length).
const COUNT: u64 = 8;
/// Largest encoding of one `WasmValue`: a `u32` tag and a `v128`.
const VALUE_MAX: u64 = 4 + 16;
/// Encoding of a `FrameRecord` without its values: `func`, `resume_offset`
/// and the two counts.
const FRAME_FIXED: u64 = 4 + 4 + COUNT + COUNT;
/// Encoding of an `ExceptionRecord` without its payload values: the tag
/// and the payload's count.
const EXCEPTION_FIXED: u64 = 4 + COUNT;
/// Encoding of a `ThreadRecord` without its lists' items: `tid`,
/// `start_arg` and the six counts (frames, globals, tables, exceptions,
/// dropped data, dropped elements).
const THREAD_FIXED: u64 = 4 + 4 + 6 * COUNT;
/// Encoding of the Threads section without its records: `last_thread_id`
/// and the records' count.
const THREADS_FIXED: u64 = 4 + COUNT;
/// Largest encoding of a `MemoryTable` entry (a run: offset, length,
/// crc32; a zeroed range takes 16).
const MEMORY_ENTRY_MAX: u64 = 8 + 8 + 4;
/// Encoding of a `MemoryTable` without its entries: length, `max_pages`
/// (tag and value), two counts.
const MEMORY_FIXED: u64 = 8 + 1 + 8 + COUNT + COUNT;

/// What a reader accepts from a snapshot. The default is the format's own
/// maxima (4 GiB of memory, 1 GiB sections, as many threads as there are
/// thread ids, no other count limit): a receiver that knows more (the
/// module, its stack size) sets tighter values, as the runtime's restore
/// does.
///
/// The limits on frames, values, globals, tables, exceptions and segments
/// bound the main thread's parts and, separately, each record of
/// [`Snapshot::threads`](crate::Snapshot::threads) (every thread runs its
/// own instance of the same module); `max_threads` bounds the number of
/// records, so a snapshot costs at most about `max_threads + 1` times what
/// one thread may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest linear memory, in bytes (default and ceiling: 4 GiB).
    pub max_memory_bytes: u64,
    /// Most frames.
    pub max_frames: u64,
    /// Most saved values (locals and operand stack values) over all frames.
    pub max_values: u64,
    /// Most globals.
    pub max_globals: u64,
    /// Most tables.
    pub max_tables: u64,
    /// Most table elements over all tables.
    pub max_table_elements: u64,
    /// Most saved exceptions (the targets of `exnref` values).
    pub max_exceptions: u64,
    /// Most payload values over all saved exceptions.
    pub max_exception_values: u64,
    /// Most entries in each list of dropped segments (data, elements).
    pub max_segments: u64,
    /// Largest WASI section, in bytes (default and ceiling: 1 GiB).
    pub max_wasi_bytes: u64,
    /// Most thread records besides the main thread (default: `0x1FFF_FFFF`,
    /// the number of wasi-threads thread ids; a single-threaded receiver
    /// sets 0).
    pub max_threads: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_memory_bytes: MAX_MEMORY_BYTES,
            max_frames: u64::MAX,
            max_values: u64::MAX,
            max_globals: u64::MAX,
            max_tables: u64::MAX,
            max_table_elements: u64::MAX,
            max_exceptions: u64::MAX,
            max_exception_values: u64::MAX,
            max_segments: u64::MAX,
            max_wasi_bytes: MAX_SECTION_LEN,
            max_threads: u64::from(MAX_THREAD_ID),
        }
    }
}

impl ReadLimits {
    /// The longest encoding of section `kind` these limits allow (never
    /// above the format's 1 GiB).
    pub(crate) fn max_section_len(&self, kind: SectionKind) -> u64 {
        let mul = |n: u64, size: u64| n.saturating_mul(size);
        // The items of each part, without the part's own count.
        let frames =
            mul(self.max_frames, FRAME_FIXED).saturating_add(mul(self.max_values, VALUE_MAX));
        let globals = mul(self.max_globals, VALUE_MAX);
        let tables =
            mul(self.max_tables, COUNT).saturating_add(mul(self.max_table_elements, VALUE_MAX));
        let exceptions = mul(self.max_exceptions, EXCEPTION_FIXED)
            .saturating_add(mul(self.max_exception_values, VALUE_MAX));
        let segments = mul(self.max_segments, 2 * 4);
        let len = match kind {
            SectionKind::Frames => COUNT.saturating_add(frames),
            SectionKind::Globals => COUNT.saturating_add(globals),
            SectionKind::Tables => COUNT.saturating_add(tables),
            SectionKind::Exceptions => COUNT.saturating_add(exceptions),
            SectionKind::Segments => mul(2, COUNT).saturating_add(segments),
            SectionKind::Clock => 8,
            // Each record may hold as much as the main thread's parts.
            SectionKind::Threads => {
                let record = [frames, globals, tables, exceptions, segments]
                    .into_iter()
                    .fold(THREAD_FIXED, u64::saturating_add);
                THREADS_FIXED.saturating_add(mul(self.max_threads, record))
            }
            SectionKind::Wasi => self.max_wasi_bytes,
            // Runs and zeroed ranges do not overlap and cover whole chunks:
            // at most one entry per chunk.
            SectionKind::Memory => MEMORY_FIXED.saturating_add(mul(
                self.max_memory_bytes.min(MAX_MEMORY_BYTES) / CHUNK_SIZE,
                MEMORY_ENTRY_MAX,
            )),
        };
        len.min(MAX_SECTION_LEN)
    }

    /// Fails with [`SnapshotError::LimitExceeded`] when `found > limit`.
    pub(crate) fn check(what: &str, found: u64, limit: u64) -> Result<(), SnapshotError> {
        if found > limit {
            return Err(SnapshotError::LimitExceeded {
                what: what.to_string(),
                found,
                limit,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{MemoryTable, RunEntry, encode_section};
    use crate::types::{ExceptionRecord, FrameRecord, WasmValue};

    #[test]
    fn section_bounds_cover_the_largest_encodings() {
        let limits = ReadLimits {
            max_frames: 3,
            max_values: 5,
            max_memory_bytes: 4 * CHUNK_SIZE,
            ..ReadLimits::default()
        };
        let v = WasmValue::V128([9; 16]);
        let frames = vec![
            FrameRecord {
                func: 1,
                resume_offset: 2,
                locals: vec![v; 3],
                stack: vec![v; 2],
            },
            FrameRecord::default(),
            FrameRecord::default(),
        ];
        let bytes = encode_section(&frames).unwrap();
        assert_eq!(
            bytes.len() as u64,
            limits.max_section_len(SectionKind::Frames)
        );
        let limits = ReadLimits {
            max_exceptions: 3,
            max_exception_values: 4,
            ..ReadLimits::default()
        };
        let exceptions = vec![
            ExceptionRecord {
                tag: 7,
                payload: vec![v; 3],
            },
            ExceptionRecord {
                tag: 0,
                payload: vec![v],
            },
            ExceptionRecord::default(),
        ];
        let bytes = encode_section(&exceptions).unwrap();
        assert_eq!(
            bytes.len() as u64,
            limits.max_section_len(SectionKind::Exceptions)
        );
        let limits = ReadLimits {
            max_memory_bytes: 4 * CHUNK_SIZE,
            ..ReadLimits::default()
        };
        let table = MemoryTable {
            length_bytes: 4 * CHUNK_SIZE,
            max_pages: Some(4),
            runs: (0..4)
                .map(|i| RunEntry {
                    guest_offset: i * CHUNK_SIZE,
                    len: CHUNK_SIZE,
                    crc32: 0,
                })
                .collect(),
            zeroed: vec![],
        };
        let bytes = encode_section(&table).unwrap();
        assert_eq!(
            bytes.len() as u64,
            limits.max_section_len(SectionKind::Memory)
        );
        // Threads: each record as large as the main thread's parts may be.
        let limits = ReadLimits {
            max_threads: 2,
            max_frames: 2,
            max_values: 3,
            max_globals: 2,
            max_tables: 2,
            max_table_elements: 3,
            max_exceptions: 2,
            max_exception_values: 2,
            max_segments: 2,
            ..ReadLimits::default()
        };
        let record = crate::types::ThreadRecord {
            tid: 1,
            start_arg: 2,
            frames: vec![
                FrameRecord {
                    func: 0,
                    resume_offset: 0,
                    locals: vec![v; 2],
                    stack: vec![v],
                },
                FrameRecord::default(),
            ],
            globals: vec![v; 2],
            tables: vec![vec![v; 3], vec![]],
            exceptions: vec![
                ExceptionRecord {
                    tag: 0,
                    payload: vec![v; 2],
                },
                ExceptionRecord::default(),
            ],
            dropped_data: vec![1, 2],
            dropped_elems: vec![3, 4],
        };
        let section = crate::layout::ThreadsSection {
            last_thread_id: 2,
            threads: vec![
                record.clone(),
                crate::types::ThreadRecord { tid: 2, ..record },
            ],
        };
        let bytes = encode_section(&section).unwrap();
        assert_eq!(
            bytes.len() as u64,
            limits.max_section_len(SectionKind::Threads)
        );
        // No thread allowed: room for an empty list only.
        let none = ReadLimits {
            max_threads: 0,
            ..ReadLimits::default()
        };
        let empty = encode_section(&crate::layout::ThreadsSection::default()).unwrap();
        assert_eq!(
            empty.len() as u64,
            none.max_section_len(SectionKind::Threads)
        );
        // The defaults are the format's own caps.
        let d = ReadLimits::default();
        for kind in SectionKind::ALL {
            assert!(d.max_section_len(kind) <= MAX_SECTION_LEN);
        }
        assert_eq!(d.max_section_len(SectionKind::Frames), MAX_SECTION_LEN);
        assert_eq!(d.max_section_len(SectionKind::Threads), MAX_SECTION_LEN);
        assert_eq!(d.max_threads, 0x1FFF_FFFF);
    }
}
