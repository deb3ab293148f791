//! The pre-copy live-migration stream (`mvvm-checkpoint --live`): the
//! guest's memory crosses the connection in rounds while the program runs,
//! and only the chunks written since the last round go with the final,
//! stopped part. Byte for byte in `docs/migration.md` ("The live stream").
//!
//! ```text
//!  preamble  "MVVMLIVE" | version u32 = 1 | session id [u8; 32] | crc32 of the 44 bytes before
//!  record*   1 CHUNKS    | length_bytes u64 | guest_offset u64 | len u32 | crc32 u32 | len bytes
//!            2 ROUND_END | round u32 | bytes u64 | crc32 u32
//!            4 PAD       | len u32 | crc32 u32 of the 5 bytes before | len zero bytes
//!  final     3 FINAL     | an incremental snapshot (docs/snapshot-format.md) whose
//!                          base is the pre-copied image: BaseRef { id: session id,
//!                          path: "live-precopy", base_depth: 0 }
//! ```
//!
//! Every record's crc32 covers its own header bytes (from the tag) and its
//! data. A receiver that has a way back (the TCP connection) answers each
//! ROUND_END, once every chunk of the round is stored, with the round's
//! number (u32, little-endian): the sender then knows the pipe is empty
//! and measures the rate end to end (see [`read_stream`]). Acknowledgements
//! only ever change *when* the sender stops, never what it sends. The receiver ([`read_live`], reached through
//! [`read_with_limits`](crate::read_with_limits), which tells the two
//! magics apart) writes each checked chunk at its guest offset into an
//! anonymous file of the memory's size; the final snapshot's memory then
//! has that file as its parent layer ([`MemoryImage::parent`]), which a
//! restorer maps copy-on-write whole (one `mmap`), so nothing is copied
//! again after the program stopped except the final part's own chunks.

use crate::error::SnapshotError;
use crate::layout::{CHUNK_SIZE, MAX_MEMORY_BYTES};
use crate::limits::ReadLimits;
use crate::snapshot::{MemoryImage, MemoryRun, Snapshot};
use crate::types::{BaseRef, Incremental, SnapshotParts};
use crate::write::WriteStats;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// First bytes of a live stream.
pub const LIVE_MAGIC: [u8; 8] = *b"MVVMLIVE";
/// Version of the live stream's framing (the final part carries its own
/// snapshot format version).
pub const LIVE_FORMAT_VERSION: u32 = 1;
/// Largest data record: 64 chunks (4 MiB). Bounds what a receiver
/// allocates for one record.
pub const MAX_RECORD_BYTES: u32 = 64 * CHUNK_SIZE as u32;
/// Most pre-copy rounds a stream may hold (a receiver refuses more: with
/// each round at most the memory's size, the pre-copy is bounded).
pub const MAX_LIVE_ROUNDS: u32 = 64;
/// The base name the final part records (informative: the receiver checks
/// the id).
pub const LIVE_BASE_NAME: &str = "live-precopy";

const TAG_CHUNKS: u8 = 1;
const TAG_ROUND_END: u8 = 2;
const TAG_FINAL: u8 = 3;
const TAG_PAD: u8 = 4;
/// Bytes of padding after a ROUND_END: more than a sealing layer's record
/// (`seal::RECORD_MAX`), which it holds back until more data comes, so the
/// ROUND_END reaches the receiver (and is acknowledged) without waiting
/// for the next round.
pub const PAD_BYTES: u32 = crate::seal::RECORD_MAX as u32 + 1;
/// Bytes of a CHUNKS record before its data.
const CHUNKS_HEAD: usize = 1 + 8 + 8 + 4 + 4;
/// Bytes of a ROUND_END record.
const ROUND_END_LEN: usize = 1 + 4 + 8 + 4;
/// Bytes of the preamble.
const PREAMBLE_LEN: usize = 8 + 4 + 32 + 4;

/// Writes the preamble of a live stream for session `id`; the bytes
/// written.
pub fn write_preamble(out: &mut dyn Write, id: &[u8; 32]) -> io::Result<u64> {
    let mut b = Vec::with_capacity(PREAMBLE_LEN);
    b.extend_from_slice(&LIVE_MAGIC);
    b.extend_from_slice(&LIVE_FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(id);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    out.write_all(&b)?;
    Ok(b.len() as u64)
}

/// Writes one CHUNKS record: `data` (a non-zero multiple of 64 KiB, at
/// most [`MAX_RECORD_BYTES`]) belongs at `guest_offset` of a memory of
/// `length_bytes`. The bytes written.
pub fn write_chunks(
    out: &mut dyn Write,
    length_bytes: u64,
    guest_offset: u64,
    data: &[u8],
) -> io::Result<u64> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&l| l > 0 && l <= MAX_RECORD_BYTES && u64::from(l) % CHUNK_SIZE == 0)
        .ok_or_else(|| io::Error::other(format!("bad live record of {} bytes", data.len())))?;
    let mut head = [0u8; CHUNKS_HEAD];
    head[0] = TAG_CHUNKS;
    head[1..9].copy_from_slice(&length_bytes.to_le_bytes());
    head[9..17].copy_from_slice(&guest_offset.to_le_bytes());
    head[17..21].copy_from_slice(&len.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head[..21]);
    h.update(data);
    head[21..25].copy_from_slice(&h.finalize().to_le_bytes());
    out.write_all(&head)?;
    out.write_all(data)?;
    Ok((CHUNKS_HEAD + data.len()) as u64)
}

/// Writes the end of pre-copy round `round` (0-based), which carried
/// `bytes` bytes of chunk data.
pub fn write_round_end(out: &mut dyn Write, round: u32, bytes: u64) -> io::Result<u64> {
    let mut b = [0u8; ROUND_END_LEN];
    b[0] = TAG_ROUND_END;
    b[1..5].copy_from_slice(&round.to_le_bytes());
    b[5..13].copy_from_slice(&bytes.to_le_bytes());
    let crc = crc32fast::hash(&b[..13]);
    b[13..17].copy_from_slice(&crc.to_le_bytes());
    out.write_all(&b)?;
    Ok(ROUND_END_LEN as u64)
}

/// Writes a PAD record of [`PAD_BYTES`] zero bytes (see there).
pub fn write_pad(out: &mut dyn Write) -> io::Result<u64> {
    let mut head = [0u8; 9];
    head[0] = TAG_PAD;
    head[1..5].copy_from_slice(&PAD_BYTES.to_le_bytes());
    let crc = crc32fast::hash(&head[..5]);
    head[5..9].copy_from_slice(&crc.to_le_bytes());
    out.write_all(&head)?;
    out.write_all(&vec![0u8; PAD_BYTES as usize])?;
    Ok(9 + u64::from(PAD_BYTES))
}

/// Writes the final part: the tag, then `parts` as an incremental
/// snapshot over the pre-copied image of session `id`, holding the chunks
/// `dirty` marks (written since the last round), and flushes `out`.
pub fn write_final(
    out: &mut dyn Write,
    id: &[u8; 32],
    parts: &SnapshotParts<'_>,
    dirty: Vec<u64>,
) -> Result<WriteStats, SnapshotError> {
    let inc = Incremental {
        base: BaseRef {
            id: *id,
            path: LIVE_BASE_NAME.to_string(),
            base_depth: 0,
        },
        dirty,
    };
    out.write_all(&[TAG_FINAL])
        .map_err(|e| SnapshotError::io("writing the live stream's final part", e))?;
    let mut stats = crate::write::write_incremental_stream(&mut *out, parts, &inc)?;
    stats.total_bytes += 1;
    Ok(stats)
}

/// What a receiver saw of the pre-copy rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveReceipt {
    /// Chunk data bytes of each round, in order.
    pub round_bytes: Vec<u64>,
    /// The memory size the last round described.
    pub precopied_length: u64,
}

/// Reads a live stream after its magic (which the caller consumed), with
/// the receiver's `limits`; every record is checked before it is used.
/// The pre-copied memory goes to an anonymous file in `/dev/shm` (or the
/// temporary directory); the returned snapshot's memory has it as parent.
pub fn read_live<R: Read>(
    mut input: R,
    limits: &ReadLimits,
    mut acks: Option<&mut (dyn Write + Send)>,
) -> Result<(Snapshot, LiveReceipt), SnapshotError> {
    let mut pre = [0u8; PREAMBLE_LEN];
    pre[..8].copy_from_slice(&LIVE_MAGIC);
    read_exact(&mut input, &mut pre[8..], "live stream preamble")?;
    let crc = u32::from_le_bytes(pre[44..48].try_into().unwrap_or_default());
    if crc32fast::hash(&pre[..44]) != crc {
        return Err(SnapshotError::Checksum {
            section: "live stream preamble".into(),
        });
    }
    let version = u32::from_le_bytes(pre[8..12].try_into().unwrap_or_default());
    if version != LIVE_FORMAT_VERSION {
        return Err(SnapshotError::corrupt(format!(
            "live stream version {version} is not supported (this build reads version {LIVE_FORMAT_VERSION})"
        )));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&pre[12..44]);
    let max_len = limits.max_memory_bytes.min(MAX_MEMORY_BYTES);
    let mut file = anonymous_file(true)?;
    let mut moved = false;
    let mut receipt = LiveReceipt::default();
    let mut length = 0u64;
    let mut round_bytes = 0u64;
    let mut pads = 0usize;
    let mut buf = Vec::new();
    loop {
        let mut tag = [0u8; 1];
        read_exact(&mut input, &mut tag, "live stream record")?;
        match tag[0] {
            TAG_CHUNKS => {
                let mut head = [0u8; CHUNKS_HEAD];
                head[0] = TAG_CHUNKS;
                read_exact(&mut input, &mut head[1..], "live chunk record")?;
                let new_length = u64::from_le_bytes(head[1..9].try_into().unwrap_or_default());
                let offset = u64::from_le_bytes(head[9..17].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(head[17..21].try_into().unwrap_or_default());
                let crc = u32::from_le_bytes(head[21..25].try_into().unwrap_or_default());
                check_chunk_record(new_length, offset, len, length, max_len)?;
                if round_bytes.saturating_add(u64::from(len)) > new_length {
                    return Err(SnapshotError::corrupt(format!(
                        "live round {} carries more than the memory's {new_length} bytes",
                        receipt.round_bytes.len()
                    )));
                }
                buf.resize(len as usize, 0);
                read_exact(&mut input, &mut buf, "live chunk data")?;
                let mut h = crc32fast::Hasher::new();
                h.update(&head[..21]);
                h.update(&buf);
                if h.finalize() != crc {
                    return Err(SnapshotError::Checksum {
                        section: format!("live chunk record (guest offset {offset:#x})"),
                    });
                }
                if new_length > length {
                    file.set_len(new_length).map_err(|e| {
                        SnapshotError::io("growing the pre-copied memory's file", e)
                    })?;
                    length = new_length;
                }
                if let Err(e) = file.write_all_at(&buf, offset) {
                    if e.kind() != io::ErrorKind::StorageFull || moved {
                        return Err(SnapshotError::io("storing pre-copied memory", e));
                    }
                    // /dev/shm is full (a container's is 64 MiB): go on in
                    // the temporary directory, with what came so far.
                    file = move_to_temp_dir(&file, length)?;
                    moved = true;
                    file.write_all_at(&buf, offset)
                        .map_err(|e| SnapshotError::io("storing pre-copied memory", e))?;
                }
                round_bytes += u64::from(len);
            }
            TAG_ROUND_END => {
                let mut b = [0u8; ROUND_END_LEN];
                b[0] = TAG_ROUND_END;
                read_exact(&mut input, &mut b[1..], "live round end")?;
                let round = u32::from_le_bytes(b[1..5].try_into().unwrap_or_default());
                let bytes = u64::from_le_bytes(b[5..13].try_into().unwrap_or_default());
                let crc = u32::from_le_bytes(b[13..17].try_into().unwrap_or_default());
                if crc32fast::hash(&b[..13]) != crc {
                    return Err(SnapshotError::Checksum {
                        section: "live round end".into(),
                    });
                }
                let expected = receipt.round_bytes.len() as u32;
                if round != expected || bytes != round_bytes || round >= MAX_LIVE_ROUNDS {
                    return Err(SnapshotError::corrupt(format!(
                        "live round end says round {round} of {bytes} bytes; \
                         round {expected} carried {round_bytes} bytes (at most {MAX_LIVE_ROUNDS} rounds)"
                    )));
                }
                receipt.round_bytes.push(bytes);
                round_bytes = 0;
                if let Some(a) = acks.as_mut()
                    && a.write_all(&round.to_le_bytes())
                        .and_then(|()| a.flush())
                        .is_err()
                {
                    // The sender no longer listens: it goes on without.
                    acks = None;
                }
            }
            TAG_PAD => {
                let mut b = [0u8; 9];
                b[0] = TAG_PAD;
                read_exact(&mut input, &mut b[1..], "live padding record")?;
                let len = u32::from_le_bytes(b[1..5].try_into().unwrap_or_default());
                let crc = u32::from_le_bytes(b[5..9].try_into().unwrap_or_default());
                if crc32fast::hash(&b[..5]) != crc {
                    return Err(SnapshotError::Checksum {
                        section: "live padding record".into(),
                    });
                }
                pads += 1;
                if len > PAD_BYTES || pads > receipt.round_bytes.len() {
                    return Err(SnapshotError::corrupt(format!(
                        "live padding of {len} bytes (at most {PAD_BYTES}, one per round)"
                    )));
                }
                buf.resize(len as usize, 0);
                read_exact(&mut input, &mut buf, "live padding")?;
                if buf.iter().any(|&x| x != 0) {
                    return Err(SnapshotError::corrupt("live padding is not all zero"));
                }
            }
            TAG_FINAL => {
                if round_bytes != 0 {
                    return Err(SnapshotError::corrupt(
                        "the live stream's final part follows an unfinished round",
                    ));
                }
                break;
            }
            other => {
                return Err(SnapshotError::corrupt(format!(
                    "unknown live stream record {other}"
                )));
            }
        }
    }
    receipt.precopied_length = length;
    let base = BaseRef {
        id,
        path: LIVE_BASE_NAME.to_string(),
        base_depth: 0,
    };
    let mut snap = crate::read::read_over_base(&mut input, limits, &base)?;
    if snap.memory.length_bytes < length {
        return Err(SnapshotError::corrupt(format!(
            "the final part's memory ({} bytes) is smaller than the pre-copied one ({length} bytes)",
            snap.memory.length_bytes
        )));
    }
    let runs = if length == 0 {
        Vec::new()
    } else {
        vec![MemoryRun {
            guest_offset: 0,
            len: length,
            file_offset: 0,
            crc32: 0,
        }]
    };
    snap.memory.parent = Some(Box::new(MemoryImage::from_live_file(
        length,
        snap.memory.max_pages,
        runs,
        file,
    )));
    Ok((snap, receipt))
}

/// Checks a CHUNKS record's header against what came before and the
/// receiver's limit on memory size.
fn check_chunk_record(
    length: u64,
    offset: u64,
    len: u32,
    previous_length: u64,
    max_len: u64,
) -> Result<(), SnapshotError> {
    if !length.is_multiple_of(CHUNK_SIZE) || length > MAX_MEMORY_BYTES {
        return Err(SnapshotError::corrupt(format!(
            "live chunk record: memory length {length} is not a multiple of 64 KiB up to 4 GiB"
        )));
    }
    ReadLimits::check("the memory length in bytes", length, max_len)?;
    if length < previous_length {
        return Err(SnapshotError::corrupt(format!(
            "live chunk record: memory shrank from {previous_length} to {length} bytes"
        )));
    }
    if len == 0 || len > MAX_RECORD_BYTES || !u64::from(len).is_multiple_of(CHUNK_SIZE) {
        return Err(SnapshotError::corrupt(format!(
            "live chunk record of {len} bytes (a non-zero multiple of 64 KiB up to {MAX_RECORD_BYTES})"
        )));
    }
    if !offset.is_multiple_of(CHUNK_SIZE) || offset.saturating_add(u64::from(len)) > length {
        return Err(SnapshotError::corrupt(format!(
            "live chunk record at guest offset {offset:#x} ({len} bytes) is unaligned or beyond the memory's {length} bytes"
        )));
    }
    Ok(())
}

/// Copies the first `length` bytes of `old` into a new unnamed file in
/// the temporary directory.
fn move_to_temp_dir(old: &File, length: u64) -> Result<File, SnapshotError> {
    let new = anonymous_file(false)?;
    new.set_len(length)
        .map_err(|e| SnapshotError::io("sizing the pre-copied memory's file", e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < length {
        let n = (length - at).min(buf.len() as u64) as usize;
        old.read_exact_at(&mut buf[..n], at)
            .map_err(|e| SnapshotError::io("moving pre-copied memory", e))?;
        if buf[..n].iter().any(|&b| b != 0) {
            new.write_all_at(&buf[..n], at)
                .map_err(|e| SnapshotError::io("moving pre-copied memory", e))?;
        }
        at += n as u64;
    }
    Ok(new)
}

/// An unnamed file for the pre-copied memory: `O_TMPFILE` in `/dev/shm`
/// (memory, no disk; when `shm`), else in the temporary directory
/// (`TMPDIR`); a named file removed at once where `O_TMPFILE` is not
/// supported.
fn anonymous_file(shm: bool) -> Result<File, SnapshotError> {
    let shm_dir = Path::new("/dev/shm");
    let mut dirs = Vec::new();
    if shm && shm_dir.is_dir() {
        dirs.push(shm_dir.to_path_buf());
    }
    dirs.push(std::env::temp_dir());
    let mut last = None;
    for dir in &dirs {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
        {
            Ok(f) => return Ok(f),
            Err(e) => last = Some(e),
        }
        let name = dir.join(format!(".mvvm-live-{}.mem", std::process::id()));
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&name)
        {
            let _ = std::fs::remove_file(&name);
            return Ok(f);
        }
    }
    Err(SnapshotError::io(
        "creating a file for the pre-copied memory",
        last.unwrap_or_else(|| io::Error::other("no temporary directory")),
    ))
}

/// Fills `buf` or fails with [`SnapshotError::Truncated`] naming `what`.
fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<(), SnapshotError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(SnapshotError::Truncated {
                    section: what.to_string(),
                    expected: buf.len() as u64,
                    found: done as u64,
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SnapshotError::io(format!("reading the {what}"), e)),
        }
    }
    Ok(())
}

/// A fresh session id for a live stream (random; names the pre-copied
/// image the final part applies on).
pub fn new_session_id() -> Result<[u8; 32], SnapshotError> {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| {
        SnapshotError::io("drawing a live session id", io::Error::other(e.to_string()))
    })?;
    Ok(id)
}

/// [`crate::read_with_limits`] with a way back to the sender: a live
/// stream's rounds are acknowledged on `acks` (a plain snapshot is read as
/// usual and `acks` is not used).
pub fn read_stream<R: Read>(
    mut input: R,
    limits: &ReadLimits,
    acks: Option<&mut (dyn Write + Send)>,
) -> Result<Snapshot, SnapshotError> {
    let mut magic = [0u8; 8];
    let mut n = 0;
    while n < magic.len() {
        match input.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SnapshotError::io("reading the snapshot", e)),
        }
    }
    if n == magic.len() && magic == LIVE_MAGIC {
        return read_live(input, limits, acks).map(|(snap, _)| snap);
    }
    crate::read::read_plain(io::Cursor::new(&magic[..n]).chain(input), limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FrameRecord, SnapshotInfo, WasmValue};

    /// A live stream: 4 pages pre-copied in round 0 (page 2 left out: all
    /// zero), page 1 again in round 1, then a final part in which page 3
    /// changed and the memory grew to 5 pages; with the memory it stands for.
    fn stream() -> (Vec<u8>, Vec<u8>) {
        let page = CHUNK_SIZE as usize;
        let mut mem = vec![0u8; 5 * page];
        for (i, b) in mem[..4 * page].iter_mut().enumerate() {
            if i / page != 2 {
                *b = (i % 251) as u8 + 1;
            }
        }
        let id = [9u8; 32];
        let mut out = Vec::new();
        write_preamble(&mut out, &id).unwrap();
        write_chunks(&mut out, 4 * CHUNK_SIZE, 0, &mem[..2 * page]).unwrap();
        write_chunks(
            &mut out,
            4 * CHUNK_SIZE,
            3 * CHUNK_SIZE,
            &mem[3 * page..4 * page],
        )
        .unwrap();
        write_round_end(&mut out, 0, 3 * CHUNK_SIZE).unwrap();
        write_pad(&mut out).unwrap();
        mem[page + 7] = 0xee;
        write_chunks(&mut out, 4 * CHUNK_SIZE, CHUNK_SIZE, &mem[page..2 * page]).unwrap();
        write_round_end(&mut out, 1, CHUNK_SIZE).unwrap();
        mem[3 * page + 1] = 0x77;
        mem[4 * page + 3] = 0x55;
        let parts = SnapshotParts {
            info: SnapshotInfo {
                wasm_sha256: [7; 32],
                ..Default::default()
            },
            frames: vec![FrameRecord {
                func: 1,
                resume_offset: 0x2a,
                locals: vec![WasmValue::I32(5)],
                stack: vec![],
            }],
            memory: &mem,
            ..Default::default()
        };
        // Dirty since round 1: pages 3 and 4.
        write_final(&mut out, &id, &parts, vec![0b11000]).unwrap();
        (out, mem)
    }

    fn read_all(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        crate::read_with_limits(bytes, &ReadLimits::default())
    }

    #[test]
    fn rounds_and_final_part_rebuild_the_memory() {
        let (bytes, mem) = stream();
        let mut acks = Vec::new();
        let snap = read_stream(&bytes[..], &ReadLimits::default(), Some(&mut acks)).unwrap();
        assert_eq!(acks, [0u32.to_le_bytes(), 1u32.to_le_bytes()].concat());
        assert_eq!(snap.frames.len(), 1);
        assert_eq!(snap.memory.layers().len(), 2);
        assert_eq!(snap.memory.to_vec().unwrap(), mem);
    }

    #[test]
    fn every_truncation_is_refused() {
        let (bytes, _) = stream();
        // Every cut in the rounds, and a stride through the final part.
        let rounds_end = bytes.len() - 70_000;
        for n in (0..rounds_end).step_by(97).chain(rounds_end..bytes.len()) {
            assert!(read_all(&bytes[..n]).is_err(), "cut at {n} accepted");
        }
    }

    #[test]
    fn altered_bytes_are_refused() {
        let (bytes, _) = stream();
        for i in (0..bytes.len()).step_by(331) {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            if let Ok(snap) = read_all(&b) {
                // Only padding's own bytes beyond what is checked could
                // pass; there are none: every byte is covered.
                panic!("byte {i} altered and accepted: {snap:?}");
            }
        }
    }

    #[test]
    fn records_beyond_the_memory_or_limits_are_refused() {
        let id = [1u8; 32];
        let data = vec![1u8; CHUNK_SIZE as usize];
        for (length, offset) in [
            (CHUNK_SIZE, CHUNK_SIZE),           // beyond the memory
            (CHUNK_SIZE + 1, 0),                // unaligned length
            (2 * CHUNK_SIZE, 100),              // unaligned offset
            (MAX_MEMORY_BYTES + CHUNK_SIZE, 0), // above 4 GiB
        ] {
            let mut out = Vec::new();
            write_preamble(&mut out, &id).unwrap();
            write_chunks(&mut out, length, offset, &data).unwrap();
            assert!(read_all(&out).is_err(), "{length} {offset}");
        }
        let mut out = Vec::new();
        write_preamble(&mut out, &id).unwrap();
        write_chunks(&mut out, 16 * CHUNK_SIZE, 0, &data).unwrap();
        let limits = ReadLimits {
            max_memory_bytes: 8 * CHUNK_SIZE,
            ..ReadLimits::default()
        };
        assert!(matches!(
            crate::read_with_limits(&out[..], &limits),
            Err(SnapshotError::LimitExceeded { .. })
        ));
    }
}
