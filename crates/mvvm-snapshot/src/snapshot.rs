//! A snapshot as read back: its parts, and its memory as a list of runs
//! whose bytes are either in memory (read from a stream) or in a file
//! (opened by path, ready to be `mmap`ed).

use crate::error::{SnapshotError, hex};
use crate::types::{BaseRef, ExceptionRecord, FrameRecord, SnapshotInfo, ThreadRecord, WasmValue};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// A snapshot read by [`read`](crate::read) or
/// [`open_file`](crate::open_file). Every checksum it was read with has
/// been verified (memory runs of a file opened with
/// `verify_memory(false)` excepted).
#[derive(Debug)]
pub struct Snapshot {
    /// The snapshot id: SHA-256 of the bytes from the magic to the end of
    /// the last section (everything but the memory data, which the memory
    /// table's crc32s cover). An incremental snapshot names its base by
    /// this id; it costs a few KiB of hashing, whatever the memory size.
    pub id: [u8; 32],
    /// The base this snapshot applies on (`None`: a full snapshot). When
    /// the snapshot was opened as a file, the base's memory is already
    /// resolved into [`MemoryImage::parent`].
    pub base: Option<BaseRef>,
    /// Producer, module hash, policy...
    pub info: SnapshotInfo,
    /// Wasm frames, outermost first.
    pub frames: Vec<FrameRecord>,
    /// Defined globals, in index order.
    pub globals: Vec<WasmValue>,
    /// Defined tables' elements, in index order.
    pub tables: Vec<Vec<WasmValue>>,
    /// Exceptions that `exnref` values refer to (see
    /// [`SnapshotParts::exceptions`](crate::SnapshotParts::exceptions)).
    /// The reader has checked that every [`WasmValue::ExnRef`] index, in
    /// frames, globals, tables and payloads, is within this list, and that
    /// no exception's payload leads back to itself.
    pub exceptions: Vec<ExceptionRecord>,
    /// Dropped passive data segments.
    pub dropped_data: Vec<u32>,
    /// Dropped element segments.
    pub dropped_elems: Vec<u32>,
    /// WASI state, opaque to this crate.
    pub wasi: Vec<u8>,
    /// Monotonic clock offset (see [`SnapshotParts`](crate::SnapshotParts)).
    pub monotonic_offset_nanos: u64,
    /// The program's other threads; empty for a single-threaded program.
    /// The reader has checked each record as it checks the main thread's
    /// parts (limits, `ExnRef` indices within the record's own exception
    /// list, no exception holding itself), and that thread ids are
    /// unique, non-zero and at most [`Self::last_thread_id`].
    pub threads: Vec<ThreadRecord>,
    /// The largest thread id the program ever gave (0: it never spawned a
    /// thread; see [`SnapshotParts::last_thread_id`](crate::SnapshotParts::last_thread_id)).
    pub last_thread_id: u32,
    /// Linear memory.
    pub memory: MemoryImage,
}

impl Snapshot {
    /// Checks that the snapshot was taken from the wasm module whose
    /// SHA-256 is `sha256`; the error shows both hashes.
    pub fn check_module(&self, sha256: &[u8; 32]) -> Result<(), SnapshotError> {
        if &self.info.wasm_sha256 == sha256 {
            Ok(())
        } else {
            Err(SnapshotError::ModuleMismatch {
                snapshot: hex(&self.info.wasm_sha256),
                module: hex(sha256),
            })
        }
    }

    /// The whole linear memory as a new vector (zeros where no run is).
    /// Convenient for tests and small memories; a restorer maps or copies
    /// runs instead (see [`MemoryImage`]).
    pub fn memory_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        self.memory.to_vec()
    }

    /// 0 for a full snapshot, `n` for the n-th incremental snapshot after
    /// a full one.
    pub fn depth(&self) -> u32 {
        self.base
            .as_ref()
            .map_or(0, |b| b.base_depth.saturating_add(1))
    }
}

/// One run of non-zero memory: `len` bytes that belong at `guest_offset` in
/// linear memory and sit at `file_offset` in the snapshot. Both offsets and
/// `len` are multiples of [`CHUNK_SIZE`](crate::CHUNK_SIZE) (64 KiB), so a
/// restorer can `mmap(base + guest_offset, len, MAP_PRIVATE | MAP_FIXED,
/// fd, file_offset)` on any host page size up to 64 KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRun {
    /// Offset in linear memory.
    pub guest_offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset of the run's bytes from the start of the snapshot (file or
    /// stream).
    pub file_offset: u64,
    /// crc32 of the run's bytes.
    pub crc32: u32,
}

/// Where the bytes of the runs are.
enum Source {
    /// Read from a stream: every run's bytes, back to back, in run order.
    Bytes(Vec<u8>),
    /// Opened by path: the bytes are in the file at each run's `file_offset`.
    File(File),
    /// The pre-copied memory of a live migration (`crate::live`): the
    /// file holds the memory as is (`file_offset` = guest offset); each
    /// chunk's crc32 was checked as it arrived, so runs carry none.
    Live(File),
}

/// The linear memory of a snapshot: its size and its non-zero runs. Zero
/// chunks are not stored: the caller restores into zeroed memory (a fresh
/// reservation) and copies or maps the runs.
pub struct MemoryImage {
    pub(crate) length_bytes: u64,
    pub(crate) max_pages: Option<u64>,
    pub(crate) runs: Vec<MemoryRun>,
    /// Incremental snapshots: dirty chunks that are now zero.
    pub(crate) zeroed: Vec<(u64, u64)>,
    /// Incremental snapshots opened as files: the base's memory.
    pub(crate) parent: Option<Box<MemoryImage>>,
    /// File offset of the first run (the data region), for `Source::Bytes`.
    pub(crate) data_offset: u64,
    source: Source,
}

impl fmt::Debug for MemoryImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryImage")
            .field("length_bytes", &self.length_bytes)
            .field("max_pages", &self.max_pages)
            .field("runs", &self.runs.len())
            .field("zeroed", &self.zeroed.len())
            .field("parent", &self.parent)
            .field(
                "source",
                &match self.source {
                    Source::Bytes(_) => "bytes",
                    Source::File(_) => "file",
                    Source::Live(_) => "live",
                },
            )
            .finish()
    }
}

impl MemoryImage {
    /// An image whose run bytes were read from a stream.
    pub(crate) fn from_bytes(
        length_bytes: u64,
        max_pages: Option<u64>,
        runs: Vec<MemoryRun>,
        data_offset: u64,
        bytes: Vec<u8>,
    ) -> Self {
        MemoryImage {
            length_bytes,
            max_pages,
            runs,
            zeroed: Vec::new(),
            parent: None,
            data_offset,
            source: Source::Bytes(bytes),
        }
    }

    /// An image whose run bytes stay in `file`.
    pub(crate) fn from_file(
        length_bytes: u64,
        max_pages: Option<u64>,
        runs: Vec<MemoryRun>,
        data_offset: u64,
        file: File,
    ) -> Self {
        MemoryImage {
            length_bytes,
            max_pages,
            runs,
            zeroed: Vec::new(),
            parent: None,
            data_offset,
            source: Source::File(file),
        }
    }

    /// The pre-copied memory of a live migration, held in `file` at guest
    /// offsets (checked chunk by chunk as it arrived).
    pub(crate) fn from_live_file(
        length_bytes: u64,
        max_pages: Option<u64>,
        runs: Vec<MemoryRun>,
        file: File,
    ) -> Self {
        MemoryImage {
            length_bytes,
            max_pages,
            runs,
            zeroed: Vec::new(),
            parent: None,
            data_offset: 0,
            source: Source::Live(file),
        }
    }

    /// Current size of the memory in bytes (a multiple of 64 KiB).
    pub fn length_bytes(&self) -> u64 {
        self.length_bytes
    }

    /// Declared maximum in wasm pages.
    pub fn max_pages(&self) -> Option<u64> {
        self.max_pages
    }

    /// The non-zero runs, ascending by guest offset, never overlapping, all
    /// within `length_bytes`.
    pub fn runs(&self) -> &[MemoryRun] {
        &self.runs
    }

    /// Incremental snapshots: `(guest offset, length)` ranges of chunks
    /// written since the base that are now zero; a restorer zeroes them
    /// after applying the base. Empty for a full snapshot.
    pub fn zeroed(&self) -> &[(u64, u64)] {
        &self.zeroed
    }

    /// The memory of the base snapshot this one applies on (incremental
    /// snapshots opened as files), itself possibly with a parent.
    pub fn parent(&self) -> Option<&MemoryImage> {
        self.parent.as_deref()
    }

    /// Every layer of the chain, the full snapshot first and this one
    /// last: applying each (zeroed ranges, then runs) in this order over
    /// zeroed memory rebuilds the memory.
    pub fn layers(&self) -> Vec<&MemoryImage> {
        let mut out = vec![self];
        while let Some(p) = out.last().and_then(|m| m.parent()) {
            out.push(p);
        }
        out.reverse();
        out
    }

    /// Total bytes of run data (this layer only).
    pub fn data_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// The snapshot file, when it was opened by path: map each run from it
    /// at its `file_offset`. `None` for a snapshot read from a stream.
    pub fn file(&self) -> Option<&File> {
        match &self.source {
            Source::File(f) | Source::Live(f) => Some(f),
            Source::Bytes(_) => None,
        }
    }

    /// The bytes of run `index`, when the snapshot was read from a stream.
    /// `None` for a snapshot opened by path (use [`Self::file`] or
    /// [`Self::copy_into`]) or an index out of range.
    pub fn run_bytes(&self, index: usize) -> Option<&[u8]> {
        let Source::Bytes(bytes) = &self.source else {
            return None;
        };
        let run = self.runs.get(index)?;
        let start = usize::try_from(run.file_offset.checked_sub(self.data_offset)?).ok()?;
        let end = start.checked_add(usize::try_from(run.len).ok()?)?;
        bytes.get(start..end)
    }

    /// Copies every run into `dest`, the guest's linear memory, at its
    /// guest offset, after the base's layers (if any) and this layer's
    /// zeroed ranges. Bytes outside the runs of every layer are not
    /// touched: `dest` must already be zero there (a fresh memory is).
    /// `dest` must hold at least `length_bytes` bytes.
    pub fn copy_into(&self, dest: &mut [u8]) -> Result<(), SnapshotError> {
        for layer in self.layers() {
            layer.copy_layer_into(dest)?;
        }
        Ok(())
    }

    /// [`Self::copy_into`] for this layer only (its zeroed ranges, then its
    /// runs): what a restorer does for a layer whose bytes it cannot map
    /// (read from a stream) over layers it mapped.
    pub fn copy_layer_into(&self, dest: &mut [u8]) -> Result<(), SnapshotError> {
        if (dest.len() as u64) < self.length_bytes {
            return Err(SnapshotError::InvalidInput {
                what: format!(
                    "destination of {} bytes is smaller than the snapshot's memory of {} bytes",
                    dest.len(),
                    self.length_bytes
                ),
            });
        }
        for &(start, len) in &self.zeroed {
            // Validated to lie within length_bytes <= dest.len().
            if let Some(target) = dest.get_mut(start as usize..(start + len) as usize) {
                target.fill(0);
            }
        }
        for (i, run) in self.runs.iter().enumerate() {
            // Runs were validated to lie within length_bytes <= dest.len().
            let start = run.guest_offset as usize;
            let end = start + run.len as usize;
            let Some(target) = dest.get_mut(start..end) else {
                return Err(SnapshotError::corrupt(format!(
                    "memory run {i} lies outside the memory"
                )));
            };
            match &self.source {
                Source::Bytes(_) => {
                    let bytes = self.run_bytes(i).ok_or_else(|| {
                        SnapshotError::corrupt(format!("memory run {i} has no data"))
                    })?;
                    target.copy_from_slice(bytes);
                }
                Source::File(file) | Source::Live(file) => {
                    read_exact_at(file, target, run.file_offset, &run_name(i, run))?;
                }
            }
        }
        Ok(())
    }

    /// The whole memory as a new vector (zeros where no run is).
    pub fn to_vec(&self) -> Result<Vec<u8>, SnapshotError> {
        let len = usize::try_from(self.length_bytes).map_err(|_| SnapshotError::InvalidInput {
            what: format!(
                "memory of {} bytes does not fit this host",
                self.length_bytes
            ),
        })?;
        let mut out = vec![0u8; len];
        self.copy_into(&mut out)?;
        Ok(out)
    }

    /// Checks every run against its crc32 (the bases' runs too). Reading
    /// from a stream and [`open_file`](crate::open_file) already do this;
    /// it is for snapshots opened with `verify_memory(false)` that turn out
    /// to need it. For a file, it reads the whole data region once (page
    /// cache speed).
    pub fn verify(&self) -> Result<(), SnapshotError> {
        if let Some(p) = self.parent() {
            p.verify()?;
        }
        match &self.source {
            Source::Bytes(_) => {
                for (i, run) in self.runs.iter().enumerate() {
                    let bytes = self.run_bytes(i).ok_or_else(|| {
                        SnapshotError::corrupt(format!("memory run {i} has no data"))
                    })?;
                    if crc32fast::hash(bytes) != run.crc32 {
                        return Err(SnapshotError::Checksum {
                            section: run_name(i, run),
                        });
                    }
                }
                Ok(())
            }
            Source::File(file) => verify_file_runs(file, &self.runs),
            // Checked record by record as it arrived.
            Source::Live(_) => Ok(()),
        }
    }
}

/// Name of run `i` for messages.
pub(crate) fn run_name(i: usize, run: &MemoryRun) -> String {
    format!("memory run {i} (guest offset {:#x})", run.guest_offset)
}

/// Reads exactly `buf.len()` bytes at `offset` of `file`; a short file is
/// reported as truncation of `section` (it may have been cut after it was
/// opened).
pub(crate) fn read_exact_at(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    section: &str,
) -> Result<(), SnapshotError> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(SnapshotError::Truncated {
                    section: section.to_string(),
                    expected: buf.len() as u64,
                    found: done as u64,
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SnapshotError::io(format!("reading {section}"), e));
            }
        }
    }
    Ok(())
}

/// Checks every run of a file against its crc32, reading in 1 MiB pieces.
pub(crate) fn verify_file_runs(file: &File, runs: &[MemoryRun]) -> Result<(), SnapshotError> {
    const PIECE: u64 = 1 << 20;
    let mut buf = vec![0u8; PIECE as usize];
    for (i, run) in runs.iter().enumerate() {
        let name = run_name(i, run);
        let mut hasher = crc32fast::Hasher::new();
        let mut done = 0u64;
        while done < run.len {
            let n = (run.len - done).min(PIECE) as usize;
            read_exact_at(file, &mut buf[..n], run.file_offset + done, &name)?;
            hasher.update(&buf[..n]);
            done += n as u64;
        }
        if hasher.finalize() != run.crc32 {
            return Err(SnapshotError::Checksum { section: name });
        }
    }
    Ok(())
}
