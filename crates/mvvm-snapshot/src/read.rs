//! The reader: from any [`Read`] (no seek: a pipe, a socket) or from a file
//! path (memory runs stay in the file, to be `mmap`ed).
//!
//! Reading is strictly front to back and checks as it goes: magic, version,
//! header checksum, then each section's checksum before decoding it, then
//! the memory table's consistency, the padding, and each run's checksum.
//! Lengths read from the input are never trusted for allocation: sections
//! and runs are read in bounded pieces, so a truncated or lying input fails
//! with [`SnapshotError::Truncated`] before much memory is taken.

use crate::error::{SnapshotError, hex};
use crate::layout::MAX_CHAIN_DEPTH;
use crate::layout::{
    ClockState, DATA_ALIGN, DroppedSegments, Header, MAX_HEADER_LEN, MAX_SECTION_LEN, MemoryTable,
    PREFIX_LEN, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC, SectionKind, ThreadsSection, align_up,
    decode_section, is_zero, validate_exception_refs, validate_memory_table, validate_threads,
};
use crate::limits::ReadLimits;
use crate::snapshot::{
    MemoryImage, MemoryRun, Snapshot, read_exact_at, run_name, verify_file_runs,
};
use crate::types::{ExceptionRecord, FrameRecord, SnapshotInfo, WasmValue};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Reads a whole snapshot from `input`, which need not support seeking,
/// and verifies every checksum before returning. Reading stops right after
/// the last byte of the snapshot: whatever follows on the stream is left
/// unread. Only the format's own limits apply ([`ReadLimits::default`]);
/// a receiver with tighter ones uses [`read_with_limits`].
pub fn read<R: Read>(input: R) -> Result<Snapshot, SnapshotError> {
    read_with_limits(input, &ReadLimits::default())
}

/// [`read`] with the receiver's `limits`: a snapshot above them is refused
/// with [`SnapshotError::LimitExceeded`] before the part concerned is read
/// (a section, the memory data), so a lying or hostile sender cannot make
/// the reader allocate more than the limits allow.
///
/// A live-migration stream (`crate::live`, magic `MVVMLIVE`) is read too:
/// its pre-copied memory becomes the parent layer of the snapshot's
/// memory.
pub fn read_with_limits<R: Read>(input: R, limits: &ReadLimits) -> Result<Snapshot, SnapshotError> {
    crate::live::read_stream(input, limits, None)
}

/// A plain (not live) snapshot from a stream.
pub(crate) fn read_plain<R: Read>(
    mut input: R,
    limits: &ReadLimits,
) -> Result<Snapshot, SnapshotError> {
    let prelude = read_prelude(&mut input, limits, None)?;
    if let Some(base) = &prelude.header.base {
        return Err(SnapshotError::IncrementalUnsupported {
            base: format!("{} (id {})", base.path, hex(&base.id)),
        });
    }
    read_body(&mut input, prelude)
}

/// Reads an incremental snapshot whose base must be `base` (by id) from a
/// stream: the final part of a live migration (`crate::live`). Its memory
/// is this layer only; the caller attaches the parent.
pub(crate) fn read_over_base<R: Read>(
    mut input: R,
    limits: &ReadLimits,
    base: &crate::types::BaseRef,
) -> Result<Snapshot, SnapshotError> {
    let prelude = read_prelude(&mut input, limits, None)?;
    match &prelude.header.base {
        Some(b) if b.id == base.id => {}
        Some(b) => {
            return Err(SnapshotError::corrupt(format!(
                "the live stream's final part applies on {} (id {}), not on this stream's pre-copied memory (id {})",
                b.path,
                hex(&b.id),
                hex(&base.id)
            )));
        }
        None => {
            return Err(SnapshotError::corrupt(
                "the live stream's final part is a full snapshot, not one over the pre-copied memory",
            ));
        }
    }
    read_body(&mut input, prelude)
}

/// The padding and memory runs after `prelude`, each checked.
fn read_body<R: Read>(mut input: R, prelude: Prelude) -> Result<Snapshot, SnapshotError> {
    let runs = prelude.runs();
    let padding = prelude.data_offset() - prelude.sections_end;
    if !runs.is_empty() {
        let pad = read_bounded(&mut input, padding, "padding before memory data")?;
        check_zero_padding(&pad)?;
    }
    let total: u64 = runs.iter().map(|r| r.len).sum();
    let mut data = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let mut hasher = crc32fast::Hasher::new();
        append_bounded(&mut input, &mut data, run.len, &run_name(i, run), |piece| {
            hasher.update(piece)
        })?;
        if hasher.finalize() != run.crc32 {
            return Err(SnapshotError::Checksum {
                section: run_name(i, run),
            });
        }
    }
    debug_assert_eq!(data.len() as u64, total);
    let data_offset = prelude.data_offset();
    let memory = MemoryImage::from_bytes(
        prelude.memory.length_bytes,
        prelude.memory.max_pages,
        runs,
        data_offset,
        data,
    );
    Ok(prelude.into_snapshot(memory))
}

/// The identity of a snapshot file: its id (see [`Snapshot::id`]) and its
/// depth (0 for a full snapshot, `n` for the n-th incremental one of a
/// chain). Reads only the header and the sections (a few KiB), not the
/// memory data nor the bases: cheap enough to check, before writing an
/// incremental snapshot, that its base is still the file it was.
pub fn read_identity(path: &Path) -> Result<([u8; 32], u32), SnapshotError> {
    let file = File::open(path)
        .map_err(|e| SnapshotError::io(format!("opening {}", path.display()), e))?;
    let available = file.metadata().ok().map(|m| m.len());
    let prelude = read_prelude(
        &mut BufReader::with_capacity(1 << 16, &file),
        &ReadLimits::default(),
        available,
    )?;
    let depth = prelude
        .header
        .base
        .as_ref()
        .map_or(0, |b| b.base_depth.saturating_add(1));
    Ok((prelude.id, depth))
}

/// Reads only the header of a snapshot (magic, version, header checksum)
/// and returns its info: cheap, for tools that list snapshots.
pub fn read_info<R: Read>(mut input: R) -> Result<SnapshotInfo, SnapshotError> {
    Ok(read_header(&mut input, &mut Sha256::new())?.0.info)
}

/// Opens the snapshot file at `path` with the default options: every
/// checksum is verified, memory runs included (see [`OpenOptions`]).
pub fn open_file(path: &Path) -> Result<Snapshot, SnapshotError> {
    OpenOptions::new().open(path)
}

/// How [`OpenOptions::open`] reads a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    verify_memory: bool,
    limits: ReadLimits,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_memory: true,
            limits: ReadLimits::default(),
        }
    }
}

impl OpenOptions {
    /// The defaults: verify memory runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to check every memory run against its crc32 when opening
    /// (default: yes). Checking reads the whole data region once, at page
    /// cache or disk speed (the crc itself runs at several GB/s); skipping
    /// it makes opening cost independent of memory size, which is the point
    /// of mapping runs lazily, at the price of trusting the data bytes
    /// ([`MemoryImage::verify`] can still be called later). Header,
    /// sections, memory table and padding are always checked.
    pub fn verify_memory(mut self, verify: bool) -> Self {
        self.verify_memory = verify;
        self
    }

    /// The receiver's limits (default: the format's own, see
    /// [`ReadLimits`]). They apply to the snapshot and to every base of its
    /// chain; sections are also checked to fit in the file before they are
    /// read.
    pub fn limits(mut self, limits: ReadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens the snapshot file at `path`. The memory runs stay in the file:
    /// [`MemoryImage::file`] and each [`MemoryRun::file_offset`] let the
    /// caller map them; [`MemoryImage::copy_into`] copies them. The file
    /// must not change while the snapshot is in use (it is written once
    /// under a temporary name and renamed, so it never does in MVVM).
    ///
    /// An incremental snapshot is opened with its whole chain of bases: each
    /// base is found in the directory of the snapshot naming it, under the
    /// plain file name recorded (a recorded path with a `/`, `..` or `.`, or
    /// an absolute one, is refused with [`SnapshotError::BasePathRefused`]:
    /// a snapshot never makes the reader open a host path of its choosing),
    /// opened without following a symbolic link and required to be a
    /// regular file, opened with the same options,
    /// and checked to have the recorded id and the same wasm module; its
    /// memory becomes the [`MemoryImage::parent`] of the snapshot's. A
    /// missing, unreadable or replaced base is an error naming it.
    pub fn open(&self, path: &Path) -> Result<Snapshot, SnapshotError> {
        let file = File::open(path)
            .map_err(|e| SnapshotError::io(format!("opening {}", path.display()), e))?;
        self.open_at_depth(path, file, 0)
    }

    /// Reads `file`, opened at `path`, which is `depth` bases below the
    /// snapshot asked for, and its chain of bases.
    fn open_at_depth(
        &self,
        path: &Path,
        file: File,
        depth: u32,
    ) -> Result<Snapshot, SnapshotError> {
        let mut snap = self.open_one(path, file)?;
        let Some(base) = snap.base.clone() else {
            return Ok(snap);
        };
        let needed_by = path.display().to_string();
        let base_path =
            resolve_base(path, &base.path).map_err(|reason| SnapshotError::BasePathRefused {
                path: base.path.clone(),
                needed_by: needed_by.clone(),
                reason,
            })?;
        let shown = base_path.display().to_string();
        if depth + 1 >= MAX_CHAIN_DEPTH {
            return Err(SnapshotError::BaseUnreadable {
                path: shown,
                needed_by,
                reason: format!("the chain of bases is longer than {MAX_CHAIN_DEPTH}"),
                source: None,
            });
        }
        let base_file = match open_base_file(&base_path) {
            Ok(f) => f,
            Err(Err(reason)) => {
                return Err(SnapshotError::BasePathRefused {
                    path: base.path.clone(),
                    needed_by,
                    reason: reason.to_string(),
                });
            }
            Err(Ok(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::BaseUnreadable {
                    path: shown,
                    needed_by,
                    reason: "no such file".into(),
                    source: None,
                });
            }
            Err(Ok(e)) => {
                return Err(SnapshotError::BaseUnreadable {
                    path: shown,
                    needed_by,
                    reason: "it cannot be opened".into(),
                    source: Some(Box::new(e)),
                });
            }
        };
        let parent = match self.open_at_depth(&base_path, base_file, depth + 1) {
            Ok(p) => p,
            Err(
                e @ (SnapshotError::BaseUnreadable { .. }
                | SnapshotError::BaseMismatch { .. }
                | SnapshotError::BasePathRefused { .. }),
            ) => {
                return Err(e);
            }
            Err(SnapshotError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(SnapshotError::BaseUnreadable {
                    path: shown,
                    needed_by,
                    reason: "no such file".into(),
                    source: None,
                });
            }
            Err(e) => {
                return Err(SnapshotError::BaseUnreadable {
                    path: shown,
                    needed_by,
                    reason: "it is not a readable snapshot".into(),
                    source: Some(Box::new(e)),
                });
            }
        };
        if parent.id != base.id {
            return Err(SnapshotError::BaseMismatch {
                path: shown,
                needed_by,
                expected: hex(&base.id),
                found: hex(&parent.id),
            });
        }
        if parent.info.wasm_sha256 != snap.info.wasm_sha256 {
            return Err(SnapshotError::BaseUnreadable {
                path: shown,
                needed_by,
                reason: "it was taken from another wasm module".into(),
                source: None,
            });
        }
        if parent.memory.length_bytes() > snap.memory.length_bytes() {
            return Err(SnapshotError::corrupt(format!(
                "{needed_by} has a smaller memory ({} bytes) than its base {shown} ({} bytes)",
                snap.memory.length_bytes(),
                parent.memory.length_bytes()
            )));
        }
        snap.memory.parent = Some(Box::new(parent.memory));
        Ok(snap)
    }

    /// Reads one file of a chain, `file` opened at `path` (its base not
    /// resolved).
    fn open_one(&self, path: &Path, file: File) -> Result<Snapshot, SnapshotError> {
        let file_len = file
            .metadata()
            .map_err(|e| SnapshotError::io(format!("reading metadata of {}", path.display()), e))?
            .len();
        let prelude = read_prelude(
            &mut BufReader::with_capacity(1 << 16, &file),
            &self.limits,
            Some(file_len),
        )?;
        let runs = prelude.runs();
        let data_offset = prelude.data_offset();
        let end = data_offset + runs.iter().map(|r| r.len).sum::<u64>();
        if file_len < end {
            return Err(truncation_at(
                file_len,
                prelude.sections_end,
                data_offset,
                &runs,
            ));
        }
        if file_len > end {
            return Err(SnapshotError::corrupt(format!(
                "{} unexpected bytes after the end of the snapshot",
                file_len - end
            )));
        }
        let padding = data_offset - prelude.sections_end;
        if padding > 0 {
            // Padding is below DATA_ALIGN (64 KiB).
            let mut pad = vec![0u8; padding as usize];
            read_exact_at(
                &file,
                &mut pad,
                prelude.sections_end,
                "padding before memory data",
            )?;
            check_zero_padding(&pad)?;
        }
        if self.verify_memory {
            verify_file_runs(&file, &runs)?;
        }
        let memory = MemoryImage::from_file(
            prelude.memory.length_bytes,
            prelude.memory.max_pages,
            runs,
            data_offset,
            file,
        );
        Ok(prelude.into_snapshot(memory))
    }
}

/// Where the base recorded as `recorded` by the snapshot at `snapshot` is:
/// the file of that name in the snapshot's directory. Anything but a plain
/// file name (empty, absolute, with a `/`, `.` or `..`, a NUL byte) is
/// refused, with the reason: the recorded path comes from the snapshot,
/// which is untrusted, and must not name any other host file.
fn resolve_base(snapshot: &Path, recorded: &str) -> Result<PathBuf, String> {
    let plain = !recorded.is_empty()
        && !recorded.contains('/')
        && !recorded.contains('\0')
        && matches!(
            Path::new(recorded).components().collect::<Vec<_>>()[..],
            [Component::Normal(_)]
        );
    if !plain {
        return Err(
            "a base is named by a plain file name in the snapshot's own directory \
             (no `/`, `..` or absolute path)"
                .to_string(),
        );
    }
    Ok(match snapshot.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(recorded),
        _ => PathBuf::from(recorded),
    })
}

/// Opens a base snapshot file: never through a symbolic link (`O_NOFOLLOW`
/// on the last component, the only one the snapshot chose), without
/// blocking on a FIFO (`O_NONBLOCK`, which changes nothing for a regular
/// file), and only if it is a regular file. `Err(Err(reason))`: refused;
/// `Err(Ok(e))`: it cannot be opened.
fn open_base_file(path: &Path) -> Result<File, Result<std::io::Error, &'static str>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Err("it is a symbolic link, which a base is never opened through")
            } else {
                Ok(e)
            }
        })?;
    let meta = file.metadata().map_err(Ok)?;
    if !meta.file_type().is_file() {
        return Err(Err("it is not a regular file"));
    }
    Ok(file)
}

/// The error for a file that ends at `file_len`, before the end of its
/// memory data: names the part that is cut.
fn truncation_at(
    file_len: u64,
    sections_end: u64,
    data_offset: u64,
    runs: &[MemoryRun],
) -> SnapshotError {
    if file_len < data_offset {
        return SnapshotError::Truncated {
            section: "padding before memory data".to_string(),
            expected: data_offset - sections_end,
            found: file_len.saturating_sub(sections_end),
        };
    }
    for (i, run) in runs.iter().enumerate() {
        if file_len < run.file_offset + run.len {
            return SnapshotError::Truncated {
                section: run_name(i, run),
                expected: run.len,
                found: file_len.saturating_sub(run.file_offset),
            };
        }
    }
    SnapshotError::Truncated {
        section: "memory data".to_string(),
        expected: data_offset,
        found: file_len,
    }
}

/// Everything before the memory data, read and checked.
struct Prelude {
    header: Header,
    frames: Vec<FrameRecord>,
    globals: Vec<WasmValue>,
    tables: Vec<Vec<WasmValue>>,
    exceptions: Vec<ExceptionRecord>,
    segments: DroppedSegments,
    clock: ClockState,
    threads: ThreadsSection,
    wasi: Vec<u8>,
    memory: MemoryTable,
    /// Offset of the first byte after the sections.
    sections_end: u64,
    /// SHA-256 of every byte before `sections_end`.
    id: [u8; 32],
}

impl Prelude {
    /// Offset of the memory data region.
    fn data_offset(&self) -> u64 {
        if self.memory.runs.is_empty() {
            self.sections_end
        } else {
            // sections_end is at most a few GiB (capped section lengths).
            align_up(self.sections_end, DATA_ALIGN).unwrap_or(self.sections_end)
        }
    }

    /// The runs with their offsets in the file.
    fn runs(&self) -> Vec<MemoryRun> {
        let mut file_offset = self.data_offset();
        self.memory
            .runs
            .iter()
            .map(|r| {
                let run = MemoryRun {
                    guest_offset: r.guest_offset,
                    len: r.len,
                    file_offset,
                    crc32: r.crc32,
                };
                // Validated: the runs' total is at most the memory length.
                file_offset += r.len;
                run
            })
            .collect()
    }

    fn into_snapshot(self, mut memory: MemoryImage) -> Snapshot {
        memory.zeroed = self.memory.zeroed;
        Snapshot {
            id: self.id,
            base: self.header.base.clone(),
            info: self.header.info,
            frames: self.frames,
            globals: self.globals,
            tables: self.tables,
            exceptions: self.exceptions,
            dropped_data: self.segments.data,
            dropped_elems: self.segments.elems,
            wasi: self.wasi,
            monotonic_offset_nanos: self.clock.monotonic_offset_nanos,
            threads: self.threads.threads,
            last_thread_id: self.threads.last_thread_id,
            memory,
        }
    }
}

/// Reads and checks the prefix and the header; returns the header and the
/// offset just after it, and feeds every byte read to `id`.
fn read_header<R: Read>(r: &mut R, id: &mut Sha256) -> Result<(Header, u64), SnapshotError> {
    let mut prefix = [0u8; PREFIX_LEN as usize];
    let n = read_full(r, &mut prefix[..8])?;
    if prefix[..n] != SNAPSHOT_MAGIC[..n] {
        // A sealed file or stream (or a sender that wants to authenticate)
        // read without a key: say so, rather than "not a snapshot".
        if prefix[..n] == crate::seal::SEAL_MAGIC[..] {
            return Err(crate::seal::SealError::NeedsKey {
                what: "the snapshot".to_string(),
            }
            .into());
        }
        return Err(SnapshotError::NotASnapshot);
    }
    if n < 8 {
        return Err(SnapshotError::Truncated {
            section: "magic".to_string(),
            expected: 8,
            found: n as u64,
        });
    }
    read_exact(r, &mut prefix[8..12], "format version")?;
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotError::FormatVersion {
            found: version,
            expected: SNAPSHOT_FORMAT_VERSION,
        });
    }
    read_exact(r, &mut prefix[12..20], "header length and checksum")?;
    let header_len = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]);
    let header_crc = u32::from_le_bytes([prefix[16], prefix[17], prefix[18], prefix[19]]);
    if header_len > MAX_HEADER_LEN {
        return Err(SnapshotError::corrupt(format!(
            "header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes"
        )));
    }
    let header_bytes = read_bounded(r, u64::from(header_len), "header")?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&prefix[..16]);
    hasher.update(&header_bytes);
    if hasher.finalize() != header_crc {
        return Err(SnapshotError::Checksum {
            section: "header".to_string(),
        });
    }
    id.update(prefix);
    id.update(&header_bytes);
    let header: Header =
        mvvm_abi::codec::decode(&header_bytes).map_err(|source| SnapshotError::Decode {
            section: "header".to_string(),
            source,
        })?;
    if header.base.as_ref().is_some_and(|b| b.path.is_empty()) {
        return Err(SnapshotError::corrupt("the base snapshot's path is empty"));
    }
    let kinds: Vec<SectionKind> = header.sections.iter().map(|s| s.kind).collect();
    if kinds != SectionKind::ALL {
        return Err(SnapshotError::corrupt(format!(
            "section table lists {kinds:?}, expected {:?}",
            SectionKind::ALL
        )));
    }
    Ok((header, PREFIX_LEN + u64::from(header_len)))
}

/// Reads the header and every section, checking each: a section longer
/// than `limits` allow, or than what is left of a file of `available`
/// bytes, is refused before it is read.
fn read_prelude<R: Read>(
    r: &mut R,
    limits: &ReadLimits,
    available: Option<u64>,
) -> Result<Prelude, SnapshotError> {
    let mut id = Sha256::new();
    let (header, mut offset) = read_header(r, &mut id)?;
    let mut raw: Vec<Vec<u8>> = Vec::with_capacity(header.sections.len());
    for entry in &header.sections {
        let name = entry.kind.name();
        if entry.len > MAX_SECTION_LEN {
            return Err(SnapshotError::corrupt(format!(
                "{name} length {} exceeds the limit of {MAX_SECTION_LEN} bytes",
                entry.len
            )));
        }
        ReadLimits::check(
            &format!("the {name}'s length in bytes"),
            entry.len,
            limits.max_section_len(entry.kind),
        )?;
        if let Some(available) = available
            && offset.saturating_add(entry.len) > available
        {
            return Err(SnapshotError::Truncated {
                section: name.to_string(),
                expected: entry.len,
                found: available.saturating_sub(offset),
            });
        }
        let bytes = read_bounded(r, entry.len, name)?;
        if crc32fast::hash(&bytes) != entry.crc32 {
            return Err(SnapshotError::Checksum {
                section: name.to_string(),
            });
        }
        offset += entry.len;
        id.update(&bytes);
        raw.push(bytes);
    }
    // The table was checked to list exactly SectionKind::ALL, in order.
    let [
        frames,
        globals,
        tables,
        exceptions,
        segments,
        clock,
        threads,
        wasi,
        memory,
    ]: [Vec<u8>; 9] = raw
        .try_into()
        .map_err(|_| SnapshotError::corrupt("section table has the wrong number of entries"))?;
    let memory: MemoryTable = decode_section(&memory)?;
    ReadLimits::check(
        "the memory length in bytes",
        memory.length_bytes,
        limits.max_memory_bytes,
    )?;
    validate_memory_table(&memory)?;
    if header.base.is_none() && !memory.zeroed.is_empty() {
        return Err(SnapshotError::corrupt(
            "a full snapshot lists zeroed memory ranges (only incremental ones may)",
        ));
    }
    let frames: Vec<FrameRecord> = decode_section(&frames)?;
    let globals: Vec<WasmValue> = decode_section(&globals)?;
    let tables: Vec<Vec<WasmValue>> = decode_section(&tables)?;
    let exceptions: Vec<ExceptionRecord> = decode_section(&exceptions)?;
    let segments: DroppedSegments = decode_section(&segments)?;
    let main = Instance {
        frames: &frames,
        globals: &globals,
        tables: &tables,
        exceptions: &exceptions,
        dropped_data: &segments.data,
        dropped_elems: &segments.elems,
    };
    main.check_limits(limits, "")?;
    validate_exception_refs(None, &frames, &globals, &tables, &exceptions)?;
    let threads: ThreadsSection = decode_section(&threads)?;
    ReadLimits::check(
        "the number of threads",
        len64(&threads.threads),
        limits.max_threads,
    )?;
    for t in &threads.threads {
        let instance = Instance {
            frames: &t.frames,
            globals: &t.globals,
            tables: &t.tables,
            exceptions: &t.exceptions,
            dropped_data: &t.dropped_data,
            dropped_elems: &t.dropped_elems,
        };
        instance.check_limits(limits, &format!(" of thread {}", t.tid))?;
    }
    validate_threads(&threads)?;
    Ok(Prelude {
        frames,
        globals,
        tables,
        exceptions,
        segments,
        clock: decode_section(&clock)?,
        threads,
        wasi,
        memory,
        header,
        sections_end: offset,
        id: id.finalize().into(),
    })
}

/// The parts one wasm instance (the main thread's, or another thread's)
/// contributes to a snapshot, for the checks they share.
struct Instance<'a> {
    frames: &'a [FrameRecord],
    globals: &'a [WasmValue],
    tables: &'a [Vec<WasmValue>],
    exceptions: &'a [ExceptionRecord],
    dropped_data: &'a [u32],
    dropped_elems: &'a [u32],
}

impl Instance<'_> {
    /// Compares every count with `limits`; `whose` ends each limit's name
    /// in messages (`""` for the main thread, `" of thread 3"`).
    fn check_limits(&self, limits: &ReadLimits, whose: &str) -> Result<(), SnapshotError> {
        let values = sum(self
            .frames
            .iter()
            .map(|f| len64(&f.locals).saturating_add(len64(&f.stack))));
        let elements = sum(self.tables.iter().map(|t| len64(t)));
        let payload_values = sum(self.exceptions.iter().map(|e| len64(&e.payload)));
        let dropped = len64(self.dropped_data).max(len64(self.dropped_elems));
        for (what, found, limit) in [
            (
                "the number of frames",
                len64(self.frames),
                limits.max_frames,
            ),
            ("the number of saved values", values, limits.max_values),
            (
                "the number of globals",
                len64(self.globals),
                limits.max_globals,
            ),
            (
                "the number of tables",
                len64(self.tables),
                limits.max_tables,
            ),
            (
                "the number of table elements",
                elements,
                limits.max_table_elements,
            ),
            (
                "the number of exceptions",
                len64(self.exceptions),
                limits.max_exceptions,
            ),
            (
                "the number of exception payload values",
                payload_values,
                limits.max_exception_values,
            ),
            (
                "the number of dropped segments",
                dropped,
                limits.max_segments,
            ),
        ] {
            ReadLimits::check(&format!("{what}{whose}"), found, limit)?;
        }
        Ok(())
    }
}

/// The sum of `counts`, saturating (counts come from the snapshot).
fn sum(counts: impl Iterator<Item = u64>) -> u64 {
    counts.fold(0u64, u64::saturating_add)
}

/// A slice's length as a `u64`.
fn len64<T>(v: &[T]) -> u64 {
    v.len() as u64
}

/// Fails unless every byte of the padding is zero (the padding is covered
/// by this check instead of a checksum).
fn check_zero_padding(pad: &[u8]) -> Result<(), SnapshotError> {
    if is_zero(pad) {
        Ok(())
    } else {
        Err(SnapshotError::corrupt(
            "non-zero byte in the padding before memory data",
        ))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, SnapshotError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SnapshotError::io("reading the snapshot", e)),
        }
    }
    Ok(done)
}

/// Fills `buf` or fails with [`SnapshotError::Truncated`] naming `section`.
fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], section: &str) -> Result<(), SnapshotError> {
    let n = read_full(r, buf)?;
    if n < buf.len() {
        return Err(SnapshotError::Truncated {
            section: section.to_string(),
            expected: buf.len() as u64,
            found: n as u64,
        });
    }
    Ok(())
}

/// Reads `len` bytes into a new vector (see [`append_bounded`]).
fn read_bounded<R: Read>(r: &mut R, len: u64, section: &str) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::new();
    append_bounded(r, &mut out, len, section, |_| {})?;
    Ok(out)
}

/// Appends exactly `len` bytes from `r` to `out`, passing each piece to
/// `on_piece` while it is still in cache. `out` grows with the data
/// actually received (one piece ahead, amortized doubling), so a length
/// field can never make the reader allocate much more than the input holds.
fn append_bounded<R: Read>(
    r: &mut R,
    out: &mut Vec<u8>,
    len: u64,
    section: &str,
    mut on_piece: impl FnMut(&[u8]),
) -> Result<(), SnapshotError> {
    /// Bytes read (and allocated ahead) at a time: small enough to stay in
    /// cache for the checksum.
    const PIECE: u64 = 1 << 20;
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(PIECE);
        // want <= 64 MiB fits usize.
        out.reserve(want as usize);
        let got = r
            .by_ref()
            .take(want)
            .read_to_end(out)
            .map_err(|e| SnapshotError::io(format!("reading {section}"), e))?
            as u64;
        done += got;
        on_piece(&out[out.len() - got as usize..]);
        if got < want {
            return Err(SnapshotError::Truncated {
                section: section.to_string(),
                expected: len,
                found: done,
            });
        }
    }
    Ok(())
}
