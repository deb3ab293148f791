//! The streaming writer.
//!
//! A snapshot is written front to back to any [`Write`], with no seek: the
//! writer first plans everything the header needs (it encodes the small
//! sections and scans the memory once for non-zero chunks, computing each
//! run's crc32 in the same pass), then emits the header, the sections, the
//! padding and the run data in one go. The planning pass reads memory once
//! more than a trailer-checksum design would; its measured cost is in
//! `docs/snapshot-format.md`.

use crate::error::SnapshotError;
use crate::layout::{
    CHUNK_SIZE, ClockState, DATA_ALIGN, DroppedSegments, Header, MAX_MEMORY_BYTES, MAX_SECTION_LEN,
    MemoryTable, PREFIX_LEN, RunEntry, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC, SectionEntry,
    SectionKind, ThreadsSection, ThreadsSectionRef, align_up, encode_section, encode_section_as,
    plan_dirty_runs, plan_runs,
};
use crate::source::MemorySource;
use crate::types::{Incremental, SnapshotParts};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a write produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Bytes written in all.
    pub total_bytes: u64,
    /// Bytes of the prefix, header and sections (everything before the
    /// memory data region and its padding).
    pub metadata_bytes: u64,
    /// Zero bytes written to align the memory data region to 64 KiB.
    pub padding_bytes: u64,
    /// Bytes of memory data written (non-zero chunks).
    pub memory_data_bytes: u64,
    /// Size of the linear memory described.
    pub memory_length: u64,
    /// Number of memory runs.
    pub runs: usize,
    /// The snapshot id of what was written (see [`Snapshot::id`](crate::Snapshot::id)):
    /// an incremental snapshot taken later against this one names it.
    pub id: [u8; 32],
}

/// Everything the writer emits before the memory data, fully computed.
struct Plan<'a> {
    /// Prefix and header.
    head: Vec<u8>,
    /// Section bytes, in file order (the WASI bytes are borrowed).
    sections: Vec<Cow<'a, [u8]>>,
    /// Memory runs.
    runs: Vec<RunEntry>,
    /// Zero bytes between the sections and the data region.
    padding: u64,
    /// SHA-256 of the head and the sections.
    id: [u8; 32],
}

/// Writes `snap` to `out`, which need not support seeking (a pipe, a
/// socket), and flushes it. The writer issues few, large writes: no
/// `BufWriter` is needed. Nothing is written if `snap` is invalid (memory
/// length not a multiple of 64 KiB, above 4 GiB or above `max_pages`).
pub fn write<W: Write>(mut out: W, snap: &SnapshotParts<'_>) -> Result<WriteStats, SnapshotError> {
    let plan = plan(snap, snap.memory, None)?;
    let stats = emit(&mut out, &plan, snap.memory)?;
    out.flush()
        .map_err(|e| SnapshotError::io("flushing the snapshot", e))?;
    Ok(stats)
}

/// Writes `snap` as an incremental snapshot over `inc.base` to a stream
/// (the final part of a live migration, `crate::live`), and flushes it.
pub(crate) fn write_incremental_stream<W: Write>(
    mut out: W,
    snap: &SnapshotParts<'_>,
    inc: &Incremental,
) -> Result<WriteStats, SnapshotError> {
    let plan = plan(snap, snap.memory, Some(inc))?;
    let stats = emit(&mut out, &plan, snap.memory)?;
    out.flush()
        .map_err(|e| SnapshotError::io("flushing the snapshot", e))?;
    Ok(stats)
}

/// Writes `snap` to `path` so that a crash or an error never leaves a half
/// snapshot there: the data goes to a temporary file in the same directory,
/// is synced, and is renamed over `path`; then the directory is synced so
/// the rename itself is durable. On any error before the rename, the
/// temporary file is removed and whatever was at `path` is left untouched.
/// An error syncing the directory after the rename is still reported (the
/// new snapshot is in place but may not survive a power loss).
pub fn write_file_atomic(
    path: &Path,
    snap: &SnapshotParts<'_>,
) -> Result<WriteStats, SnapshotError> {
    write_file_atomic_impl(path, snap, None, None)
}

/// [`write_file_atomic`] for an incremental snapshot: only the chunks
/// `inc.dirty` marks are read and stored (the non-zero ones as runs, the
/// zero ones as `zeroed` ranges), and the header names `inc.base`. The
/// caller vouches that every chunk not marked is byte for byte what the
/// base (with its own bases) holds. Incremental snapshots exist only as
/// files: their base is found in their directory, so `inc.base.path` must
/// be a plain file name (no `/`, not `.` or `..`), as readers require.
pub fn write_incremental_file_atomic(
    path: &Path,
    snap: &SnapshotParts<'_>,
    inc: &Incremental,
) -> Result<WriteStats, SnapshotError> {
    check_base_name(&inc.base.path)?;
    write_file_atomic_impl(path, snap, Some(inc), None)
}

/// Refuses a base that is not a plain file name in the snapshot's
/// directory (readers require one).
fn check_base_name(name: &str) -> Result<(), SnapshotError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        return Err(SnapshotError::InvalidInput {
            what: format!(
                "the base of an incremental snapshot must be a plain file name in its directory, not {name:?}"
            ),
        });
    }
    Ok(())
}

/// [`write_file_atomic`] with an optional injected failure: when
/// `fail_after` is `Some(n)`, writes to the temporary file fail once `n`
/// bytes have been written (tests check that the previous snapshot
/// survives).
pub(crate) fn write_file_atomic_impl(
    path: &Path,
    snap: &SnapshotParts<'_>,
    inc: Option<&Incremental>,
    fail_after: Option<u64>,
) -> Result<WriteStats, SnapshotError> {
    write_file_atomic_with(path, snap, inc, fail_after, None)
}

/// [`write_file_atomic`] for a sealed snapshot file (see [`crate::seal`]):
/// the same snapshot bytes, sealed in records under a key derived from
/// `key` and a fresh salt, behind a sealed-file header; written with the
/// same atomic steps (temporary name, fsync, rename, directory sync). The
/// returned statistics count the snapshot's bytes, not the sealing's (a
/// 76-byte header and 20 bytes per 64 KiB record). Sealed snapshots are
/// always full: an incremental one names a base that a reader would have
/// to map, which a sealed file cannot offer.
pub fn write_sealed_file_atomic(
    path: &Path,
    snap: &SnapshotParts<'_>,
    key: &crate::seal::SealKey,
) -> Result<WriteStats, SnapshotError> {
    write_file_atomic_with(path, snap, None, None, Some(key))
}

/// The atomic file write behind [`write_file_atomic_impl`] and
/// [`write_sealed_file_atomic`]: one routine, so that sealed files get the
/// very same durability steps.
fn write_file_atomic_with(
    path: &Path,
    snap: &SnapshotParts<'_>,
    inc: Option<&Incremental>,
    fail_after: Option<u64>,
    seal: Option<&crate::seal::SealKey>,
) -> Result<WriteStats, SnapshotError> {
    write_file_synced(
        path,
        snap,
        snap.memory,
        inc,
        fail_after,
        seal,
        SyncMode::Full,
    )
}

/// How durable a snapshot file is once written (see `docs/migration.md`,
/// "Durability of snapshot files"). Every mode writes to a temporary name
/// and renames it over the final one, so a crash of the process never
/// leaves a half snapshot under the final name; they differ in what a
/// crash of the machine (power loss, kernel panic) leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fsync` the file before the rename and its directory after: once
    /// the write returns, the snapshot survives a power loss.
    #[default]
    Full,
    /// `fdatasync` the file (its data and the metadata needed to read it,
    /// not timestamps) and `fsync` the directory: as durable as `Full` for
    /// reading the snapshot back, one journal commit cheaper.
    Data,
    /// No sync: the kernel writes the file back when it chooses. A power
    /// loss may leave the previous snapshot, or an empty or partial file,
    /// under the final name (a reader refuses it: checksums).
    None,
}

impl SyncMode {
    /// The name `--sync` takes.
    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Data => "data",
            SyncMode::None => "none",
        }
    }
}

/// [`write_file_atomic`], [`write_incremental_file_atomic`] (with `inc`)
/// or [`write_sealed_file_atomic`] (with `seal`, full snapshots only),
/// synced as `sync` says.
pub fn write_file_with_sync(
    path: &Path,
    snap: &SnapshotParts<'_>,
    inc: Option<&Incremental>,
    seal: Option<&crate::seal::SealKey>,
    sync: SyncMode,
) -> Result<WriteStats, SnapshotError> {
    if let Some(inc) = inc {
        check_base_name(&inc.base.path)?;
    }
    if inc.is_some() && seal.is_some() {
        return Err(SnapshotError::InvalidInput {
            what: "a sealed snapshot cannot be incremental".into(),
        });
    }
    write_file_synced(path, snap, snap.memory, inc, None, seal, sync)
}

/// [`write_file_with_sync`] (unsealed) reading the memory from `memory`
/// instead of `snap.memory` (which is not read: leave it empty). For a
/// memory that changes during the write, `memory` gives the bytes of one
/// instant (see [`MemorySource`]); the file is then the one
/// [`write_file_with_sync`] would write from a slice of those bytes.
pub fn write_file_from_source<M: MemorySource + ?Sized>(
    path: &Path,
    snap: &SnapshotParts<'_>,
    memory: &M,
    inc: Option<&Incremental>,
    sync: SyncMode,
) -> Result<WriteStats, SnapshotError> {
    if let Some(inc) = inc {
        check_base_name(&inc.base.path)?;
    }
    write_file_synced(path, snap, memory, inc, None, None, sync)
}

/// The one atomic file write: plan, temporary file, write, sync as `sync`
/// says, rename, directory sync.
fn write_file_synced<M: MemorySource + ?Sized>(
    path: &Path,
    snap: &SnapshotParts<'_>,
    memory: &M,
    inc: Option<&Incremental>,
    fail_after: Option<u64>,
    seal: Option<&crate::seal::SealKey>,
    sync: SyncMode,
) -> Result<WriteStats, SnapshotError> {
    // Plan first: invalid input must not even create the temporary file.
    let plan = plan(snap, memory, inc)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| SnapshotError::InvalidInput {
            what: format!("{} does not name a file", path.display()),
        })?;
    check_replaceable(path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp_path = dir.join(temp_name(file_name));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| SnapshotError::io(format!("creating {}", tmp_path.display()), e))?;
    let guard = TempFile {
        path: tmp_path,
        armed: true,
    };
    let tmp_err = |what: &str, e| SnapshotError::io(format!("{what} {}", guard.path.display()), e);
    let mut out = BufWriter::with_capacity(
        1 << 20,
        FailAfter {
            inner: &file,
            left: fail_after,
        },
    );
    let stats = match seal {
        None => emit(&mut out, &plan, memory),
        Some(key) => emit_sealed(&mut out, &plan, memory, key),
    }
    .map_err(|e| match e {
        SnapshotError::Io { source, .. } => tmp_err("writing", source),
        other => other,
    })?;
    out.flush().map_err(|e| tmp_err("writing", e))?;
    drop(out);
    match sync {
        SyncMode::Full => file.sync_all(),
        SyncMode::Data => file.sync_data(),
        SyncMode::None => Ok(()),
    }
    .map_err(|e| tmp_err("syncing", e))?;
    drop(file);
    fs::rename(&guard.path, path).map_err(|e| {
        SnapshotError::io(
            format!("renaming {} to {}", guard.path.display(), path.display()),
            e,
        )
    })?;
    guard.disarm();
    if sync != SyncMode::None {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SnapshotError::io(format!("syncing directory {}", dir.display()), e))?;
    }
    Ok(stats)
}

/// Fails unless a rename may replace whatever is at `path`: never a
/// device, a FIFO or a socket (as root, a file "written" to /dev/null by
/// rename would replace the device with a regular file). A symlink is
/// replaced, not followed; a directory makes the rename fail.
fn check_replaceable(path: &Path) -> Result<(), SnapshotError> {
    if let Ok(meta) = fs::symlink_metadata(path)
        && !(meta.file_type().is_file()
            || meta.file_type().is_symlink()
            || meta.file_type().is_dir())
    {
        return Err(SnapshotError::InvalidInput {
            what: format!(
                "{} is a device, FIFO or socket; a file is never renamed over it (write to it as a stream instead)",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Writes `bytes` (any tool's output, e.g. a compiled object) to `path`
/// with the steps of [`write_file_atomic`]: a temporary file beside it,
/// synced, renamed over `path`, the directory synced; on error whatever
/// was at `path` is left untouched. A device, FIFO or socket at `path` is
/// refused ([`SnapshotError::InvalidInput`]), never replaced.
pub fn write_bytes_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    check_replaceable(path)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| SnapshotError::InvalidInput {
            what: format!("{} does not name a file", path.display()),
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let guard = TempFile {
        path: dir.join(temp_name(file_name)),
        armed: true,
    };
    let tmp_err = |what: &str, e| SnapshotError::io(format!("{what} {}", guard.path.display()), e);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard.path)
        .map_err(|e| tmp_err("creating", e))?;
    file.write_all(bytes).map_err(|e| tmp_err("writing", e))?;
    file.sync_all().map_err(|e| tmp_err("syncing", e))?;
    drop(file);
    fs::rename(&guard.path, path).map_err(|e| {
        SnapshotError::io(
            format!("renaming {} to {}", guard.path.display(), path.display()),
            e,
        )
    })?;
    guard.disarm();
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SnapshotError::io(format!("syncing directory {}", dir.display()), e))
}

/// A writer that fails after a given number of bytes (fault injection);
/// with `left: None` it passes everything through.
struct FailAfter<W> {
    inner: W,
    left: Option<u64>,
}

impl<W: Write> Write for FailAfter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(left) = self.left else {
            return self.inner.write(buf);
        };
        if left == 0 {
            return Err(io::Error::other("injected write failure"));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let written = self.inner.write(&buf[..n])?;
        self.left = Some(left - written as u64);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary file removed on drop unless disarmed (after the rename).
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the original error is what the caller needs.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A temporary name unique within this process and unlikely to clash with
/// another process: `.NAME.PID.N.tmp` (hidden, so tools listing snapshots
/// skip it).
fn temp_name(file_name: &std::ffi::OsStr) -> std::ffi::OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(file_name);
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    name
}

/// Checks `snap`, encodes its sections and plans the memory runs (all
/// non-zero chunks, or for an incremental snapshot the dirty ones).
fn plan<'a, M: MemorySource + ?Sized>(
    snap: &'a SnapshotParts<'_>,
    memory: &M,
    inc: Option<&Incremental>,
) -> Result<Plan<'a>, SnapshotError> {
    let memory_length = memory.len() as u64;
    if !memory_length.is_multiple_of(CHUNK_SIZE) {
        return Err(SnapshotError::InvalidInput {
            what: format!(
                "memory length {memory_length} is not a multiple of the wasm page size {CHUNK_SIZE}"
            ),
        });
    }
    if memory_length > MAX_MEMORY_BYTES {
        return Err(SnapshotError::InvalidInput {
            what: format!(
                "memory length {memory_length} exceeds the largest wasm32 memory ({MAX_MEMORY_BYTES} bytes)"
            ),
        });
    }
    if let Some(max) = snap.max_pages
        && memory_length / CHUNK_SIZE > max
    {
        return Err(SnapshotError::InvalidInput {
            what: format!(
                "memory of {} pages exceeds its declared maximum of {max} pages",
                memory_length / CHUNK_SIZE
            ),
        });
    }
    // CHUNK_SIZE is 64 KiB: it fits a usize on every host.
    let (runs, zeroed) = match inc {
        None => (plan_runs(memory, CHUNK_SIZE as usize), Vec::new()),
        Some(inc) => plan_dirty_runs(memory, CHUNK_SIZE as usize, &inc.dirty),
    };
    let sections = encode_sections(snap, memory_length, &runs, zeroed)?;
    let head = encode_head(&snap.info, inc.map(|i| i.base.clone()), &sections)?;
    let mut hasher = Sha256::new();
    hasher.update(&head);
    for s in &sections {
        hasher.update(s);
    }
    let id: [u8; 32] = hasher.finalize().into();
    let sections_end = head.len() as u64 + sections.iter().map(|s| s.len() as u64).sum::<u64>();
    let padding = if runs.is_empty() {
        0
    } else {
        // sections_end is bounded by the codec limits; no overflow.
        align_up(sections_end, DATA_ALIGN).unwrap_or(sections_end) - sections_end
    };
    Ok(Plan {
        head,
        sections,
        runs,
        padding,
        id,
    })
}

/// Encodes every section in file order.
fn encode_sections<'a>(
    snap: &'a SnapshotParts<'_>,
    memory_length: u64,
    runs: &[RunEntry],
    zeroed: Vec<(u64, u64)>,
) -> Result<Vec<Cow<'a, [u8]>>, SnapshotError> {
    let mut zeroed = Some(zeroed);
    let mut out = Vec::with_capacity(SectionKind::ALL.len());
    for kind in SectionKind::ALL {
        let bytes: Cow<'a, [u8]> = match kind {
            SectionKind::Wasi => Cow::Borrowed(&snap.wasi),
            SectionKind::Frames => encode_section(&snap.frames)?.into(),
            SectionKind::Globals => encode_section(&snap.globals)?.into(),
            SectionKind::Tables => encode_section(&snap.tables)?.into(),
            SectionKind::Exceptions => encode_section(&snap.exceptions)?.into(),
            SectionKind::Segments => encode_section(&DroppedSegments {
                data: snap.dropped_data.clone(),
                elems: snap.dropped_elems.clone(),
            })?
            .into(),
            SectionKind::Clock => encode_section(&ClockState {
                monotonic_offset_nanos: snap.monotonic_offset_nanos,
            })?
            .into(),
            SectionKind::Threads => encode_section_as::<ThreadsSection>(&ThreadsSectionRef {
                last_thread_id: snap.last_thread_id,
                threads: &snap.threads,
            })?
            .into(),
            SectionKind::Memory => encode_section(&MemoryTable {
                length_bytes: memory_length,
                max_pages: snap.max_pages,
                runs: runs.to_vec(),
                zeroed: zeroed.take().unwrap_or_default(),
            })?
            .into(),
        };
        if bytes.len() as u64 > MAX_SECTION_LEN {
            return Err(SnapshotError::InvalidInput {
                what: format!(
                    "{} of {} bytes exceeds the limit of {MAX_SECTION_LEN} bytes",
                    kind.name(),
                    bytes.len()
                ),
            });
        }
        out.push(bytes);
    }
    Ok(out)
}

/// Encodes the prefix and the header (with the section table).
fn encode_head(
    info: &crate::types::SnapshotInfo,
    base: Option<crate::types::BaseRef>,
    sections: &[Cow<'_, [u8]>],
) -> Result<Vec<u8>, SnapshotError> {
    let header = Header {
        info: info.clone(),
        base,
        sections: SectionKind::ALL
            .iter()
            .zip(sections)
            .map(|(&kind, bytes)| SectionEntry {
                kind,
                len: bytes.len() as u64,
                crc32: crc32fast::hash(bytes),
            })
            .collect(),
    };
    let header_bytes =
        mvvm_abi::codec::encode(&header).map_err(|source| SnapshotError::Encode {
            section: "header".to_string(),
            source,
        })?;
    let header_len = u32::try_from(header_bytes.len())
        .ok()
        .filter(|&l| l <= crate::layout::MAX_HEADER_LEN)
        .ok_or_else(|| SnapshotError::InvalidInput {
            what: format!(
                "header of {} bytes is too large (info strings too long?)",
                header_bytes.len()
            ),
        })?;
    let mut head = Vec::with_capacity(PREFIX_LEN as usize + header_bytes.len());
    head.extend_from_slice(&SNAPSHOT_MAGIC);
    head.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    head.extend_from_slice(&header_len.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head);
    hasher.update(&header_bytes);
    head.extend_from_slice(&hasher.finalize().to_le_bytes());
    head.extend_from_slice(&header_bytes);
    Ok(head)
}

/// Writes the planned snapshot through a sealing writer (sealed-file
/// header first, final record last).
fn emit_sealed<W: Write, M: MemorySource + ?Sized>(
    out: &mut W,
    plan: &Plan<'_>,
    memory: &M,
    key: &crate::seal::SealKey,
) -> Result<WriteStats, SnapshotError> {
    let mut sealed = crate::seal::seal_writer(out, key)?;
    let stats = emit(&mut sealed, plan, memory)?;
    sealed.finish()?;
    Ok(stats)
}

/// Writes the planned snapshot.
fn emit<W: Write, M: MemorySource + ?Sized>(
    out: &mut W,
    plan: &Plan<'_>,
    memory: &M,
) -> Result<WriteStats, SnapshotError> {
    let io_err = |e: io::Error| SnapshotError::io("writing the snapshot", e);
    out.write_all(&plan.head).map_err(io_err)?;
    let mut metadata_bytes = plan.head.len() as u64;
    for section in &plan.sections {
        out.write_all(section).map_err(io_err)?;
        metadata_bytes += section.len() as u64;
    }
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut left = plan.padding;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..n]).map_err(io_err)?;
        left -= n as u64;
    }
    let mut memory_data_bytes = 0u64;
    // A piece is a whole number of chunks (runs are).
    let piece = (memory.max_piece() / CHUNK_SIZE as usize).max(1) * CHUNK_SIZE as usize;
    for run in &plan.runs {
        // Runs were planned from this very memory: in bounds, unless the
        // source shrank, which a source must not do.
        let start = run.guest_offset as usize;
        let end = start + run.len as usize;
        if end > memory.len() {
            return Err(SnapshotError::InvalidInput {
                what: "memory changed size during the write".to_string(),
            });
        }
        let mut at = start;
        while at < end {
            let n = piece.min(end - at);
            memory
                .with_bytes(at, n, |bytes| out.write_all(bytes))
                .map_err(io_err)?;
            at += n;
        }
        memory_data_bytes += run.len;
    }
    Ok(WriteStats {
        total_bytes: metadata_bytes + plan.padding + memory_data_bytes,
        metadata_bytes,
        padding_bytes: plan.padding,
        memory_data_bytes,
        memory_length: memory.len() as u64,
        runs: plan.runs.len(),
        id: plan.id,
    })
}
