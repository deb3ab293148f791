//! The byte layout of a snapshot: constants, the structures encoded in the
//! header and sections, and the planning of memory runs.
//!
//! ```text
//!  offset        size        field
//!  0             8           magic "MVVMSNAP"
//!  8             4           format version (u32 LE)
//!  12            4           header length H (u32 LE)
//!  16            4           crc32 of bytes 0..16 followed by the header bytes
//!  20            H           header: codec(Header { info, base, sections: [kind, len, crc32] })
//!                            (base: None for a full snapshot, Some(BaseRef) for an incremental one)
//!  20+H          len[0]      section 0 (Frames)      ┐ in the order of SectionKind::ALL,
//!  ...                       ...                     │ each checked by the crc32 in the
//!  S             len[8]      section 8 (Memory)      ┘ header's section table
//!  S+len[8]      P           zero padding up to the next multiple of 65536 (only if runs exist)
//!  D             run[0].len  memory run 0 data       ┐ back to back, ascending guest offsets,
//!  ...                                               │ each checked by the crc32 in its
//!  D+Σlen        (end)       (nothing after)         ┘ entry of the Memory section
//! ```
//!
//! See `docs/snapshot-format.md` for the reasoning and the measured costs.

use crate::error::SnapshotError;
use crate::source::MemorySource;
use crate::types::{ExceptionRecord, FrameRecord, SnapshotInfo, ThreadRecord, WasmValue};
use mvvm_abi::codec;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Magic bytes every snapshot starts with.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"MVVMSNAP";

/// Version of the snapshot format; readers refuse any other value. Bump on
/// every change of the layout or of the encoded structures.
///
/// History: 1 = full snapshots only (`base` reserved); 2 = incremental
/// snapshots (`Header::base` names a [`BaseRef`](crate::BaseRef), the
/// memory table lists dirty chunks that became zero); 3 = the WASI state
/// records freed descriptor numbers (`WasiState::closed`, for Wasmtime's
/// descriptor numbering); 4 = exception handling: `WasmValue::ExnRef`
/// and the Exceptions section (after Tables) listing the saved exceptions;
/// 5 = wasi-threads: the Threads section (after Clock) holding the other
/// threads' records and the last thread id given; 6 = TCP repair: the
/// WASI state records how each connection was made
/// (`FdKind::TcpStream::origin`) and the repair state of the established
/// ones (`WasiState::connections`).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 6;

/// Longest chain of incremental snapshots a reader follows (a snapshot,
/// its base, the base's base...). It bounds the work a crafted chain (or a
/// cycle of bases) can cause; writers start a new full snapshot well
/// before (see the runtime's `MAX_INCREMENTAL_DEPTH`).
pub const MAX_CHAIN_DEPTH: u32 = 64;

/// Granularity of sparse memory: memory is cut in chunks of this size, an
/// all-zero chunk is not written, and every run starts and ends on a chunk
/// boundary in guest space and (relative to a 64 KiB-aligned data region) in
/// the file. It is the wasm page size, 64 KiB: the largest host page size
/// in use (aarch64 with 64 KiB pages), so every run can be `mmap`ed
/// copy-on-write straight into the memory reservation on any host, with no
/// partial page to copy by hand. The price compared with 4 KiB chunks is
/// measured in `docs/snapshot-format.md`.
pub const CHUNK_SIZE: u64 = mvvm_abi::vmctx::WASM_PAGE_SIZE;

/// Alignment of the memory data region in the file (and so of every run's
/// file offset, since run lengths are multiples of [`CHUNK_SIZE`]).
pub const DATA_ALIGN: u64 = CHUNK_SIZE;

/// Largest linear memory a snapshot may describe: 4 GiB, the whole space a
/// 32-bit wasm address reaches (memory64 would need a new format version).
pub const MAX_MEMORY_BYTES: u64 = 1 << 32;

/// Length of the fixed prefix: magic, version, header length, header crc.
pub(crate) const PREFIX_LEN: u64 = 20;

/// Largest header a reader accepts. A real header is a few hundred bytes;
/// the cap keeps a damaged length field from causing a large allocation.
pub(crate) const MAX_HEADER_LEN: u32 = 1 << 20;

/// Largest structured section a reader accepts: the codec's own limit.
pub(crate) const MAX_SECTION_LEN: u64 = 1 << 30;

/// Largest wasi-threads thread id: ids are positive `i32`s whose top three
/// bits are reserved (the wasi-threads proposal), so `1..=0x1FFF_FFFF`.
/// It also bounds how many thread records a snapshot can hold, since ids
/// are unique.
pub(crate) const MAX_THREAD_ID: u32 = 0x1FFF_FFFF;

/// The header, codec-encoded after the prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// Producer, module hash, policy...
    pub info: SnapshotInfo,
    /// The base of an incremental snapshot (`None`: a full snapshot).
    pub base: Option<crate::types::BaseRef>,
    /// One entry per section, in file order (which is `SectionKind::ALL`).
    pub sections: Vec<SectionEntry>,
}

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SectionKind {
    /// `Vec<FrameRecord>`, outermost first.
    Frames,
    /// `Vec<WasmValue>`, defined globals.
    Globals,
    /// `Vec<Vec<WasmValue>>`, defined tables.
    Tables,
    /// `Vec<ExceptionRecord>`, the exceptions `exnref` values refer to.
    Exceptions,
    /// [`DroppedSegments`].
    Segments,
    /// [`ClockState`].
    Clock,
    /// [`ThreadsSection`]: the threads besides the main one.
    Threads,
    /// Raw bytes, opaque to this crate (not codec-wrapped again).
    Wasi,
    /// [`MemoryTable`].
    Memory,
}

impl SectionKind {
    /// Every section, in the one order writers emit and readers require.
    pub const ALL: [SectionKind; 9] = [
        SectionKind::Frames,
        SectionKind::Globals,
        SectionKind::Tables,
        SectionKind::Exceptions,
        SectionKind::Segments,
        SectionKind::Clock,
        SectionKind::Threads,
        SectionKind::Wasi,
        SectionKind::Memory,
    ];

    /// Name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Frames => "frames section",
            SectionKind::Globals => "globals section",
            SectionKind::Tables => "tables section",
            SectionKind::Exceptions => "exceptions section",
            SectionKind::Segments => "segments section",
            SectionKind::Clock => "clock section",
            SectionKind::Threads => "threads section",
            SectionKind::Wasi => "wasi section",
            SectionKind::Memory => "memory section",
        }
    }
}

/// One entry of the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SectionEntry {
    /// What the section holds.
    pub kind: SectionKind,
    /// Its length in bytes.
    pub len: u64,
    /// crc32 (IEEE) of its bytes.
    pub crc32: u32,
}

/// Content of the [`SectionKind::Segments`] section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DroppedSegments {
    /// Dropped passive data segments.
    pub data: Vec<u32>,
    /// Dropped element segments.
    pub elems: Vec<u32>,
}

/// Content of the [`SectionKind::Clock`] section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClockState {
    /// See [`SnapshotParts::monotonic_offset_nanos`](crate::SnapshotParts::monotonic_offset_nanos).
    pub monotonic_offset_nanos: u64,
}

/// Content of the [`SectionKind::Threads`] section.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct ThreadsSection {
    /// See [`SnapshotParts::last_thread_id`](crate::SnapshotParts::last_thread_id).
    pub last_thread_id: u32,
    /// See [`SnapshotParts::threads`](crate::SnapshotParts::threads).
    pub threads: Vec<ThreadRecord>,
}

/// [`ThreadsSection`] borrowing its records, for the writer: the same
/// fields in the same order, so the same encoding (a slice serializes as a
/// `Vec`), without copying every thread's frames and tables.
#[derive(Serialize)]
pub(crate) struct ThreadsSectionRef<'a> {
    /// See [`ThreadsSection::last_thread_id`].
    pub last_thread_id: u32,
    /// See [`ThreadsSection::threads`].
    pub threads: &'a [ThreadRecord],
}

/// Content of the [`SectionKind::Memory`] section: the memory's size and the
/// table of runs whose data follows the sections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemoryTable {
    /// Current size in bytes (a multiple of the wasm page size).
    pub length_bytes: u64,
    /// Declared maximum in wasm pages.
    pub max_pages: Option<u64>,
    /// Non-zero runs, ascending, not overlapping, chunk aligned.
    pub runs: Vec<RunEntry>,
    /// Incremental snapshots only: ranges `(guest offset, length)` of
    /// chunks written since the base that are now all zero (their bytes
    /// are not stored; the restorer zeroes them over the base's). Always
    /// empty in a full snapshot, where every chunk outside the runs is
    /// zero anyway. Ascending, chunk aligned, overlapping no run.
    pub zeroed: Vec<(u64, u64)>,
}

/// One run of non-zero chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunEntry {
    /// Offset in linear memory (a multiple of [`CHUNK_SIZE`]).
    pub guest_offset: u64,
    /// Length (a non-zero multiple of [`CHUNK_SIZE`]).
    pub len: u64,
    /// crc32 of the run's bytes.
    pub crc32: u32,
}

/// The section types that go through the codec, tying each to its kind.
pub(crate) trait CodecSection: Serialize + DeserializeOwned {
    /// The section's kind.
    const KIND: SectionKind;
}

impl CodecSection for Vec<FrameRecord> {
    const KIND: SectionKind = SectionKind::Frames;
}
impl CodecSection for Vec<WasmValue> {
    const KIND: SectionKind = SectionKind::Globals;
}
impl CodecSection for Vec<Vec<WasmValue>> {
    const KIND: SectionKind = SectionKind::Tables;
}
impl CodecSection for Vec<ExceptionRecord> {
    const KIND: SectionKind = SectionKind::Exceptions;
}
impl CodecSection for DroppedSegments {
    const KIND: SectionKind = SectionKind::Segments;
}
impl CodecSection for ClockState {
    const KIND: SectionKind = SectionKind::Clock;
}
impl CodecSection for ThreadsSection {
    const KIND: SectionKind = SectionKind::Threads;
}
impl CodecSection for MemoryTable {
    const KIND: SectionKind = SectionKind::Memory;
}

/// Encodes a section.
pub(crate) fn encode_section<T: CodecSection>(value: &T) -> Result<Vec<u8>, SnapshotError> {
    encode_section_as::<T>(value)
}

/// Encodes `value`, a borrowed form of section `T` that serializes to the
/// same bytes (see [`ThreadsSectionRef`]).
pub(crate) fn encode_section_as<T: CodecSection>(
    value: &impl Serialize,
) -> Result<Vec<u8>, SnapshotError> {
    codec::encode(value).map_err(|source| SnapshotError::Encode {
        section: T::KIND.name().to_string(),
        source,
    })
}

/// Decodes a section whose checksum has been verified.
pub(crate) fn decode_section<T: CodecSection>(bytes: &[u8]) -> Result<T, SnapshotError> {
    codec::decode(bytes).map_err(|source| SnapshotError::Decode {
        section: T::KIND.name().to_string(),
        source,
    })
}

/// `v` rounded up to a multiple of `align` (a power of two), or `None` on
/// overflow.
pub(crate) fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// Whether every byte of `chunk` is zero. Compares 4 KiB pieces with a
/// static zero block: slice equality is a `memcmp`, which libc vectorizes
/// at every optimisation level (a byte loop is ten times slower in debug
/// builds), and the zero block stays in L1 cache.
pub(crate) fn is_zero(chunk: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    chunk
        .chunks(ZEROS.len())
        .all(|piece| piece == &ZEROS[..piece.len()])
}

/// Splits `memory` into runs of non-zero chunks of `chunk_size` bytes and
/// computes each run's crc32 in the same pass (the chunk is still in cache
/// after the zero test). `memory.len()` must be a multiple of `chunk_size`
/// (callers check).
pub(crate) fn plan_runs<M: MemorySource + ?Sized>(memory: &M, chunk_size: usize) -> Vec<RunEntry> {
    let mut runs = Vec::new();
    let mut current: Option<(u64, u64, crc32fast::Hasher)> = None;
    for i in 0..memory.len() / chunk_size {
        // The zero test and the crc32 of one reading of the chunk.
        let (zero, crc) = memory.with_bytes(i * chunk_size, chunk_size, |chunk| {
            if is_zero(chunk) {
                (true, None)
            } else {
                let mut h = crc32fast::Hasher::new();
                h.update(chunk);
                (false, Some(h))
            }
        });
        if zero {
            if let Some((guest_offset, len, hasher)) = current.take() {
                runs.push(RunEntry {
                    guest_offset,
                    len,
                    crc32: hasher.finalize(),
                });
            }
            continue;
        }
        let (_, len, hasher) = current
            .get_or_insert_with(|| (i as u64 * chunk_size as u64, 0, crc32fast::Hasher::new()));
        *len += chunk_size as u64;
        if let Some(h) = crc {
            hasher.combine(&h);
        }
    }
    if let Some((guest_offset, len, hasher)) = current {
        runs.push(RunEntry {
            guest_offset,
            len,
            crc32: hasher.finalize(),
        });
    }
    runs
}

/// Plans an incremental snapshot's memory: only the chunks whose bit is set
/// in `dirty` (bit `i % 64` of word `i / 64` for chunk `i`; chunks past the
/// bitmap count as dirty) are looked at; the non-zero ones become runs
/// (with their crc32), the zero ones `zeroed` ranges. Cost: proportional
/// to the dirty chunks, not to the memory.
pub(crate) fn plan_dirty_runs<M: MemorySource + ?Sized>(
    memory: &M,
    chunk_size: usize,
    dirty: &[u64],
) -> (Vec<RunEntry>, Vec<(u64, u64)>) {
    let mut runs: Vec<RunEntry> = Vec::new();
    let mut zeroed: Vec<(u64, u64)> = Vec::new();
    let mut current: Option<(u64, u64, crc32fast::Hasher)> = None;
    let is_dirty = |i: usize| {
        dirty
            .get(i / 64)
            .is_none_or(|w| w & (1u64 << (i % 64)) != 0)
    };
    let flush = |current: &mut Option<(u64, u64, crc32fast::Hasher)>, runs: &mut Vec<RunEntry>| {
        if let Some((guest_offset, len, hasher)) = current.take() {
            runs.push(RunEntry {
                guest_offset,
                len,
                crc32: hasher.finalize(),
            });
        }
    };
    for i in 0..memory.len() / chunk_size {
        if !is_dirty(i) {
            flush(&mut current, &mut runs);
            continue;
        }
        let offset = i as u64 * chunk_size as u64;
        let crc = memory.with_bytes(i * chunk_size, chunk_size, |chunk| {
            (!is_zero(chunk)).then(|| {
                let mut h = crc32fast::Hasher::new();
                h.update(chunk);
                h
            })
        });
        let Some(crc) = crc else {
            flush(&mut current, &mut runs);
            match zeroed.last_mut() {
                Some((start, len)) if *start + *len == offset => *len += chunk_size as u64,
                _ => zeroed.push((offset, chunk_size as u64)),
            }
            continue;
        };
        let (_, len, hasher) = current.get_or_insert_with(|| (offset, 0, crc32fast::Hasher::new()));
        *len += chunk_size as u64;
        hasher.combine(&crc);
    }
    flush(&mut current, &mut runs);
    (runs, zeroed)
}

/// Checks the memory table against every rule a writer follows, so that the
/// runtime can trust offsets and lengths without further checks.
pub(crate) fn validate_memory_table(table: &MemoryTable) -> Result<(), SnapshotError> {
    let len = table.length_bytes;
    if !len.is_multiple_of(CHUNK_SIZE) {
        return Err(SnapshotError::corrupt(format!(
            "memory length {len} is not a multiple of the wasm page size {CHUNK_SIZE}"
        )));
    }
    if len > MAX_MEMORY_BYTES {
        return Err(SnapshotError::corrupt(format!(
            "memory length {len} exceeds the largest wasm32 memory ({MAX_MEMORY_BYTES} bytes)"
        )));
    }
    if let Some(max) = table.max_pages
        && len / CHUNK_SIZE > max
    {
        return Err(SnapshotError::corrupt(format!(
            "memory of {} pages exceeds its declared maximum of {max} pages",
            len / CHUNK_SIZE
        )));
    }
    let mut prev_end = 0u64;
    for (i, run) in table.runs.iter().enumerate() {
        if run.len == 0 {
            return Err(SnapshotError::corrupt(format!("memory run {i} is empty")));
        }
        if !run.guest_offset.is_multiple_of(CHUNK_SIZE) || !run.len.is_multiple_of(CHUNK_SIZE) {
            return Err(SnapshotError::corrupt(format!(
                "memory run {i} (guest offset {:#x}, length {:#x}) is not aligned to the chunk size {CHUNK_SIZE:#x}",
                run.guest_offset, run.len
            )));
        }
        if run.guest_offset < prev_end {
            return Err(SnapshotError::corrupt(format!(
                "memory run {i} at guest offset {:#x} overlaps or precedes the previous run, which ends at {prev_end:#x}",
                run.guest_offset
            )));
        }
        let end = run
            .guest_offset
            .checked_add(run.len)
            .filter(|&end| end <= len)
            .ok_or_else(|| {
                SnapshotError::corrupt(format!(
                    "memory run {i} (guest offset {:#x}, length {:#x}) extends beyond the memory length {len:#x}",
                    run.guest_offset, run.len
                ))
            })?;
        prev_end = end;
    }
    let mut prev_end = 0u64;
    let mut runs = table.runs.iter().peekable();
    for (i, &(start, n)) in table.zeroed.iter().enumerate() {
        let end = start.checked_add(n).filter(|&e| e <= len);
        let aligned = start.is_multiple_of(CHUNK_SIZE) && n.is_multiple_of(CHUNK_SIZE) && n > 0;
        let Some(end) = end.filter(|_| aligned && start >= prev_end) else {
            return Err(SnapshotError::corrupt(format!(
                "zeroed memory range {i} (guest offset {start:#x}, length {n:#x}) is empty, \
                 unaligned, out of order or beyond the memory length {len:#x}"
            )));
        };
        // Runs are sorted: skip those wholly before this range, then the
        // next one must start at or after its end.
        while runs.peek().is_some_and(|r| r.guest_offset + r.len <= start) {
            runs.next();
        }
        if runs.peek().is_some_and(|r| r.guest_offset < end) {
            return Err(SnapshotError::corrupt(format!(
                "zeroed memory range {i} (guest offset {start:#x}) overlaps a memory run"
            )));
        }
        prev_end = end;
    }
    Ok(())
}

/// Checks every `exnref` of a snapshot: each index, in the frames, the
/// globals, the tables and the exceptions' payloads, names an exception of
/// the list, and no exception's payload leads back to itself (an exception
/// can only hold exceptions that existed when it was thrown, so a real
/// snapshot never has a cycle; refusing one lets a restorer create each
/// exception after those its payload holds). A runtime can then map the
/// indices to its own handles without further checks.
///
/// `thread` is `None` for the main thread's parts, or the id of the thread
/// whose record they are: a thread's `exnref` values index its own list,
/// and the messages name the thread.
pub(crate) fn validate_exception_refs(
    thread: Option<u32>,
    frames: &[FrameRecord],
    globals: &[WasmValue],
    tables: &[Vec<WasmValue>],
    exceptions: &[ExceptionRecord],
) -> Result<(), SnapshotError> {
    let count = exceptions.len();
    let (prefix, holder) = match thread {
        None => (String::new(), "the snapshot".to_string()),
        Some(tid) => (format!("thread {tid} "), format!("thread {tid}'s record")),
    };
    let check = |values: &[WasmValue], place: &dyn Fn(usize) -> String| {
        for (i, v) in values.iter().enumerate() {
            if let WasmValue::ExnRef(Some(x)) = *v
                && x as usize >= count
            {
                return Err(SnapshotError::corrupt(format!(
                    "{prefix}{} refers to exception {x}, but {holder} holds {count} exceptions",
                    place(i)
                )));
            }
        }
        Ok(())
    };
    for (k, f) in frames.iter().enumerate() {
        check(&f.locals, &|i| format!("frame {k} local {i}"))?;
        check(&f.stack, &|i| format!("frame {k} stack value {i}"))?;
    }
    check(globals, &|i| format!("global {i}"))?;
    for (k, t) in tables.iter().enumerate() {
        check(t, &|i| format!("table {k} element {i}"))?;
    }
    for (k, e) in exceptions.iter().enumerate() {
        check(&e.payload, &|i| format!("exception {k} payload value {i}"))?;
    }
    exception_creation_order(exceptions)
        .map(|_| ())
        .map_err(|e| match (thread, e) {
            (Some(tid), SnapshotError::Corrupt { what }) => {
                SnapshotError::corrupt(format!("thread {tid}: {what}"))
            }
            (_, e) => e,
        })
}

/// Checks the Threads section: `last_thread_id` is a possible thread id,
/// every record's thread id is non-zero, at most `last_thread_id` and
/// unique, and each record's `exnref` values are valid within its own
/// exception list (see [`validate_exception_refs`]). The receiver's count
/// limits are checked by the reader, before this.
pub(crate) fn validate_threads(section: &ThreadsSection) -> Result<(), SnapshotError> {
    let last = section.last_thread_id;
    if last > MAX_THREAD_ID {
        return Err(SnapshotError::corrupt(format!(
            "the last thread id given, {last:#x}, is above the largest wasi-threads thread id \
             {MAX_THREAD_ID:#x}"
        )));
    }
    let mut tids = Vec::with_capacity(section.threads.len());
    for (i, t) in section.threads.iter().enumerate() {
        if t.tid == 0 {
            return Err(SnapshotError::corrupt(format!(
                "thread record {i} has thread id 0, which no thread has (ids start at 1)"
            )));
        }
        if t.tid > last {
            return Err(SnapshotError::corrupt(format!(
                "thread record {i} has thread id {}, above the last thread id given ({last})",
                t.tid
            )));
        }
        tids.push(t.tid);
    }
    tids.sort_unstable();
    if let Some(w) = tids.windows(2).find(|w| w[0] == w[1]) {
        return Err(SnapshotError::corrupt(format!(
            "thread id {} appears in more than one thread record",
            w[0]
        )));
    }
    for t in &section.threads {
        validate_exception_refs(Some(t.tid), &t.frames, &t.globals, &t.tables, &t.exceptions)?;
    }
    Ok(())
}

/// The exceptions' indices in an order where every exception comes after
/// those its payload refers to (a depth-first post-order), or a
/// [`SnapshotError::Corrupt`] naming an exception that leads back to
/// itself. Every index must be in range: a snapshot returned by the
/// reader is (an index out of range is reported as `Corrupt` too).
/// Iterative: a long chain of exceptions does not grow the native stack.
pub fn exception_creation_order(exceptions: &[ExceptionRecord]) -> Result<Vec<u32>, SnapshotError> {
    /// Not visited yet, on the current path, done.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let count = exceptions.len();
    let index = |e: usize| {
        u32::try_from(e).map_err(|_| SnapshotError::corrupt("more than 2^32 exceptions"))
    };
    let mut mark = vec![Mark::New; count];
    let mut order = Vec::with_capacity(count);
    // (exception, index of the next payload value to look at): each value
    // is looked at once, so the walk is linear in the section's size.
    let mut path: Vec<(usize, usize)> = Vec::new();
    for root in 0..count {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Open;
        path.push((root, 0));
        while let Some(top) = path.last_mut() {
            let (e, next) = *top;
            let Some(v) = exceptions[e].payload.get(next) else {
                mark[e] = Mark::Done;
                order.push(index(e)?);
                path.pop();
                continue;
            };
            top.1 += 1;
            let WasmValue::ExnRef(Some(child)) = *v else {
                continue;
            };
            let child = child as usize;
            match mark.get(child).copied() {
                Some(Mark::New) => {
                    mark[child] = Mark::Open;
                    path.push((child, 0));
                }
                Some(Mark::Open) => {
                    return Err(SnapshotError::corrupt(format!(
                        "exception {child} holds itself in its payload, directly or through \
                         other exceptions"
                    )));
                }
                Some(Mark::Done) => {}
                None => {
                    return Err(SnapshotError::corrupt(format!(
                        "exception {e} payload value {next} refers to exception {child}, but \
                         the snapshot holds {count} exceptions"
                    )));
                }
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_merges_adjacent_chunks_and_skips_zero_ones() {
        let c = 16usize;
        let mut mem = vec![0u8; 8 * c];
        mem[c] = 1; // chunk 1
        mem[2 * c + 5] = 2; // chunk 2
        mem[5 * c + c - 1] = 3; // chunk 5
        mem[7 * c] = 4; // chunk 7 (last)
        let runs = plan_runs(mem.as_slice(), c);
        let spans: Vec<(u64, u64)> = runs.iter().map(|r| (r.guest_offset, r.len)).collect();
        assert_eq!(spans, vec![(16, 32), (80, 16), (112, 16)]);
        assert_eq!(runs[0].crc32, crc32fast::hash(&mem[16..48]));
    }

    #[test]
    fn dirty_plan_looks_only_at_dirty_chunks() {
        let c = 16usize;
        let mut mem = vec![0u8; 8 * c];
        mem[c] = 1; // chunk 1: dirty, non-zero
        mem[2 * c] = 2; // chunk 2: dirty, non-zero (merged with 1)
        mem[4 * c] = 9; // chunk 4: clean, skipped although non-zero
        // chunks 5 and 6 dirty and zero; 7 is past the bitmap's bits? no:
        // one word covers 64 chunks, so 7 is clean here.
        let dirty = [0b0110_0110u64];
        let (runs, zeroed) = plan_dirty_runs(mem.as_slice(), c, &dirty);
        let spans: Vec<(u64, u64)> = runs.iter().map(|r| (r.guest_offset, r.len)).collect();
        assert_eq!(spans, vec![(16, 32)]);
        assert_eq!(runs[0].crc32, crc32fast::hash(&mem[16..48]));
        assert_eq!(zeroed, vec![(80, 32)]);
        // No bitmap at all: every chunk is dirty.
        let (runs, zeroed) = plan_dirty_runs(mem.as_slice(), c, &[]);
        assert_eq!(runs.len(), 2);
        assert_eq!(zeroed, vec![(0, 16), (48, 16), (80, 48)]);
    }

    #[test]
    fn zero_test_sees_a_byte_anywhere() {
        let mut buf = vec![0u8; 4096 + 7];
        assert!(is_zero(&buf));
        for i in [0, 511, 512, 4095, 4096, 4102] {
            buf[i] = 0x80;
            assert!(!is_zero(&buf), "byte {i}");
            buf[i] = 0;
        }
    }

    #[test]
    fn section_kinds_encode_in_declared_order() {
        for (i, kind) in SectionKind::ALL.iter().enumerate() {
            let bytes = codec::encode(kind).expect("encode");
            assert_eq!(bytes, (i as u32).to_le_bytes(), "{kind:?}");
        }
    }
}
