//! Tests that need the crate's internals: injected write failures, the
//! reserved incremental field, and crafted headers and memory tables whose
//! checksums are right but whose contents are not.

use crate::layout::{
    CHUNK_SIZE, Header, MemoryTable, RunEntry, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC,
    SectionEntry, SectionKind, validate_memory_table,
};
use crate::types::{SnapshotInfo, SnapshotParts};
use crate::write::write_file_atomic_impl;
use crate::{SnapshotError, open_file, read, write};

fn info() -> SnapshotInfo {
    SnapshotInfo {
        producer: "internal tests".into(),
        wasm_sha256: [3; 32],
        policy: "loop".into(),
        source_arch: "aarch64".into(),
        created_unix_nanos: 5,
        note: String::new(),
    }
}

fn parts(memory: &[u8]) -> SnapshotParts<'_> {
    SnapshotParts {
        info: info(),
        frames: vec![],
        globals: vec![],
        tables: vec![],
        exceptions: vec![],
        dropped_data: vec![],
        dropped_elems: vec![],
        wasi: vec![],
        monotonic_offset_nanos: 0,
        memory,
        max_pages: None,
        threads: vec![],
        last_thread_id: 0,
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mvvm-snapshot-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

#[test]
fn injected_write_failure_keeps_the_previous_snapshot() {
    let dir = temp_dir("inject");
    let path = dir.join("app.snap");
    let mut old_mem = vec![0u8; 2 * CHUNK_SIZE as usize];
    old_mem[5] = 1;
    write_file_atomic_impl(&path, &parts(&old_mem), None, None).expect("first write");
    let before = std::fs::read(&path).unwrap();

    let new_mem = vec![7u8; 4 * CHUNK_SIZE as usize];
    for fail_after in [0u64, 1, 19, 300, 65536, 65536 * 3 + 17] {
        let err =
            write_file_atomic_impl(&path, &parts(&new_mem), None, Some(fail_after)).unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(cause.is_some_and(|c| c.contains("injected")), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "fail after {fail_after}"
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("app.snap")]);
    }
    assert_eq!(open_file(&path).unwrap().memory_bytes().unwrap(), old_mem);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn incremental_snapshots_are_refused_from_a_stream() {
    let dir = temp_dir("inc-stream");
    let mut mem = vec![0u8; CHUNK_SIZE as usize];
    mem[9] = 9;
    let inc = crate::Incremental {
        base: crate::BaseRef {
            id: [0xcd; 32],
            path: "base.bin".into(),
            base_depth: 0,
        },
        dirty: vec![1],
    };
    let path = dir.join("inc.bin");
    crate::write_incremental_file_atomic(&path, &parts(&mem), &inc).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let err = read(&bytes[..]).unwrap_err();
    assert!(
        matches!(err, SnapshotError::IncrementalUnsupported { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("base.bin"), "{msg}");
    assert!(msg.contains(&"cd".repeat(32)), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Builds a snapshot prefix and header with correct checksums around a
/// crafted section table, followed by `body`.
fn crafted(sections: Vec<SectionEntry>, body: &[u8]) -> Vec<u8> {
    let header = Header {
        info: info(),
        base: None,
        sections,
    };
    let header_bytes = mvvm_abi::codec::encode(&header).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out);
    h.update(&header_bytes);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(body);
    out
}

fn entries(lens: [u64; 9]) -> Vec<SectionEntry> {
    SectionKind::ALL
        .iter()
        .zip(lens)
        .map(|(&kind, len)| SectionEntry {
            kind,
            len,
            crc32: 0,
        })
        .collect()
}

#[test]
fn lying_section_lengths_do_not_allocate() {
    // Above the limit: refused outright.
    let bytes = crafted(entries([1 << 40, 0, 0, 0, 0, 0, 0, 0, 0]), &[]);
    let err = read(&bytes[..]).unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    // Below the limit but absent: truncated after reading what is there
    // (this would take 1 GiB if the length were trusted).
    let bytes = crafted(entries([1 << 30, 0, 0, 0, 0, 0, 0, 0, 0]), &[1, 2, 3]);
    let err = read(&bytes[..]).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Truncated {
                expected: 1073741824,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn section_table_must_list_every_section_in_order() {
    let mut table = entries([0; 9]);
    table.swap(0, 1);
    let err = read(&crafted(table, &[])[..]).unwrap_err();
    assert!(err.to_string().contains("section table"), "{err}");
    let mut table = entries([0; 9]);
    table.pop();
    let err = read(&crafted(table, &[])[..]).unwrap_err();
    assert!(err.to_string().contains("section table"), "{err}");
}

fn table(length_bytes: u64, runs: &[(u64, u64)]) -> MemoryTable {
    MemoryTable {
        length_bytes,
        max_pages: None,
        runs: runs
            .iter()
            .map(|&(guest_offset, len)| RunEntry {
                guest_offset,
                len,
                crc32: 0,
            })
            .collect(),
        zeroed: Vec::new(),
    }
}

#[test]
fn memory_table_rules() {
    let c = CHUNK_SIZE;
    validate_memory_table(&table(4 * c, &[(0, c), (c, c), (3 * c, c)])).expect("valid");
    let bad = [
        (table(4 * c + 1, &[]), "not a multiple"),
        (table((1 << 32) + c, &[]), "exceeds the largest"),
        (table(4 * c, &[(0, 0)]), "empty"),
        (table(4 * c, &[(100, c)]), "not aligned"),
        (table(4 * c, &[(0, c + 1)]), "not aligned"),
        (table(4 * c, &[(2 * c, c), (c, c)]), "overlaps or precedes"),
        (table(4 * c, &[(0, 2 * c), (c, c)]), "overlaps or precedes"),
        (table(4 * c, &[(3 * c, 2 * c)]), "beyond the memory length"),
        (
            table(4 * c, &[(u64::MAX - c + 1, c)]),
            "beyond the memory length",
        ),
        (
            table(4 * c, &[(0x7fff_ffff_ffff_0000, 0x8000_0000_0001_0000)]),
            "beyond the memory length",
        ),
    ];
    for (t, what) in bad {
        let err = validate_memory_table(&t).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Corrupt { .. }) && err.to_string().contains(what),
            "{t:?}: {err}"
        );
    }
    let mut t = table(3 * c, &[]);
    t.max_pages = Some(2);
    assert!(validate_memory_table(&t).is_err());
    // Zeroed ranges: aligned, ordered, within the memory, off the runs.
    let zeroed = |runs: &[(u64, u64)], z: Vec<(u64, u64)>| {
        let mut t = table(4 * c, runs);
        t.zeroed = z;
        validate_memory_table(&t)
    };
    zeroed(&[(c, c)], vec![(0, c), (2 * c, 2 * c)]).expect("valid");
    for (runs, z) in [
        (vec![(c, c)], vec![(0, 2 * c)]),
        (vec![], vec![(2 * c, c), (0, c)]),
        (vec![], vec![(3 * c, 2 * c)]),
        (vec![], vec![(0, 0)]),
        (vec![], vec![(7, c)]),
    ] {
        assert!(zeroed(&runs, z.clone()).is_err(), "{runs:?} {z:?}");
    }
}

#[test]
fn writer_output_is_deterministic() {
    let mut mem = vec![0u8; 3 * CHUNK_SIZE as usize];
    mem[CHUNK_SIZE as usize * 2 + 1] = 1;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    write(&mut a, &parts(&mem)).unwrap();
    write(&mut b, &parts(&mem)).unwrap();
    assert_eq!(a, b);
}

/// Pins the byte layout documented in `docs/snapshot-format.md`: a change
/// here is a format change and needs a version bump.
#[test]
fn byte_layout_is_pinned() {
    let mut mem = vec![0u8; 3 * CHUNK_SIZE as usize];
    mem[CHUNK_SIZE as usize + 3] = 0xee;
    let mut bytes = Vec::new();
    write(&mut bytes, &parts(&mem)).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    assert_eq!(&bytes[0..8], b"MVVMSNAP");
    assert_eq!(u32_at(8), SNAPSHOT_FORMAT_VERSION);
    assert_eq!(SNAPSHOT_FORMAT_VERSION, 6);
    let header_len = u32_at(12) as usize;
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..16]);
    h.update(&bytes[20..20 + header_len]);
    assert_eq!(u32_at(16), h.finalize());
    // Header: info.producer as u64 length + UTF-8, then the 32 hash bytes.
    assert_eq!(u64_at(20), 14);
    assert_eq!(&bytes[28..42], b"internal tests");
    assert_eq!(&bytes[42..74], &[3u8; 32]);
    // The header ends with the section table: u64 count, then per entry a
    // u32 kind, a u64 length and a u32 crc (16 bytes).
    let table = 20 + header_len - (8 + 9 * 16);
    assert_eq!(u64_at(table), 9);
    // base: None is one zero byte just before the table.
    assert_eq!(bytes[table - 1], 0);
    let mut offset = 20 + header_len;
    for (i, kind) in SectionKind::ALL.iter().enumerate() {
        let e = table + 8 + i * 16;
        assert_eq!(u32_at(e), i as u32, "{kind:?}");
        let len = u64_at(e + 4) as usize;
        assert_eq!(
            u32_at(e + 12),
            crc32fast::hash(&bytes[offset..offset + len])
        );
        offset += len;
    }
    // The memory section (last): length, max_pages None, one run entry,
    // no zeroed range.
    // The threads section (7th) of a single-threaded program:
    // last_thread_id 0 and an empty list.
    let threads_len = u64_at(table + 8 + 6 * 16 + 4) as usize;
    assert_eq!(threads_len, 4 + 8);
    let mem_len = u64_at(table + 8 + 8 * 16 + 4) as usize;
    let m = offset - mem_len;
    assert_eq!(u64_at(m), 3 * CHUNK_SIZE);
    assert_eq!(bytes[m + 8], 0);
    assert_eq!(u64_at(m + 9), 1);
    assert_eq!(u64_at(m + 17), CHUNK_SIZE);
    assert_eq!(u64_at(m + 25), CHUNK_SIZE);
    assert_eq!(u64_at(m + 37), 0);
    assert_eq!(mem_len, 8 + 1 + 8 + 20 + 8);
    // Zero padding to 64 KiB, then the run, then nothing.
    assert!(bytes[offset..CHUNK_SIZE as usize].iter().all(|&b| b == 0));
    assert_eq!(
        &bytes[CHUNK_SIZE as usize..],
        &mem[CHUNK_SIZE as usize..2 * CHUNK_SIZE as usize]
    );
}

/// A crafted snapshot whose sections are `sections` (kind order), each
/// with its right crc32, followed by `tail`.
fn crafted_sections(sections: [Vec<u8>; 9], tail: &[u8]) -> Vec<u8> {
    let table = SectionKind::ALL
        .iter()
        .zip(&sections)
        .map(|(&kind, bytes)| SectionEntry {
            kind,
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
        .collect();
    let mut body: Vec<u8> = sections.concat();
    body.extend_from_slice(tail);
    crafted(table, &body)
}

/// Encoded empty sections, the memory one describing `memory`.
fn sections_with_memory(memory: &MemoryTable) -> [Vec<u8>; 9] {
    use crate::layout::{ClockState, DroppedSegments, encode_section};
    [
        encode_section::<Vec<crate::FrameRecord>>(&vec![]).unwrap(),
        encode_section::<Vec<crate::WasmValue>>(&vec![]).unwrap(),
        encode_section::<Vec<Vec<crate::WasmValue>>>(&vec![]).unwrap(),
        encode_section::<Vec<crate::ExceptionRecord>>(&vec![]).unwrap(),
        encode_section(&DroppedSegments {
            data: vec![],
            elems: vec![],
        })
        .unwrap(),
        encode_section(&ClockState {
            monotonic_offset_nanos: 0,
        })
        .unwrap(),
        encode_section(&crate::layout::ThreadsSection::default()).unwrap(),
        vec![],
        encode_section(memory).unwrap(),
    ]
}

#[test]
fn sections_above_the_receivers_limits_are_refused_unread() {
    use crate::{ReadLimits, read_with_limits};
    let limits = ReadLimits {
        max_frames: 100,
        max_values: 1000,
        ..ReadLimits::default()
    };
    // 10 MB of frames declared, nothing sent: refused on the length alone
    // (a reader trusting it would wait for, and buffer, 10 MB).
    let bytes = crafted(entries([10 << 20, 0, 0, 0, 0, 0, 0, 0, 0]), &[]);
    let err = read_with_limits(&bytes[..], &limits).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found, .. }
            if what.contains("frames section") && *found == 10 << 20),
        "{err}"
    );
    // A file whose section table declares more than the file holds:
    // refused before reading, by the file's length.
    let dir = temp_dir("limits-file");
    let path = dir.join("lying.bin");
    std::fs::write(
        &path,
        crafted(entries([0, 0, 0, 0, 0, 0, 0, 512 << 20, 0]), &[0; 100]),
    )
    .unwrap();
    let err = open_file(&path).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Truncated {
                expected: 536870912,
                found: 100,
                ..
            }
        ),
        "{err}"
    );
    // Each per-section bound: one over each limit.
    let tight = ReadLimits {
        max_frames: 0,
        max_values: 0,
        max_globals: 0,
        max_tables: 0,
        max_table_elements: 0,
        max_exceptions: 0,
        max_exception_values: 0,
        max_segments: 0,
        max_wasi_bytes: 0,
        max_memory_bytes: 0,
        max_threads: 0,
    };
    for (i, kind) in SectionKind::ALL.iter().enumerate() {
        let mut lens = [0u64; 9];
        lens[i] = tight.max_section_len(*kind) + 1;
        let err = read_with_limits(&crafted(entries(lens), &[])[..], &tight).unwrap_err();
        assert!(
            matches!(err, SnapshotError::LimitExceeded { .. }),
            "{kind:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_memory_above_the_receivers_limit_is_refused_before_its_data() {
    use crate::{ReadLimits, read_with_limits};
    // A memory table declaring 4 GiB, every chunk a run, and no data at
    // all: the limit stops it before a run is read (the stream holds only
    // the header and sections, about 1.3 MB).
    let huge = MemoryTable {
        length_bytes: 1 << 32,
        max_pages: None,
        runs: vec![RunEntry {
            guest_offset: 0,
            len: 1 << 32,
            crc32: 0,
        }],
        zeroed: vec![],
    };
    let bytes = crafted_sections(sections_with_memory(&huge), &[]);
    let limits = ReadLimits {
        max_memory_bytes: 64 << 20,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &limits).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found, limit }
            if what.contains("memory") && *found == 1 << 32 && *limit == 64 << 20),
        "{err}"
    );
    // Within the limit, the same lie is a truncation after what was sent.
    let err = read(&bytes[..]).unwrap_err();
    assert!(matches!(err, SnapshotError::Truncated { .. }), "{err}");
    // A memory table with one entry per chunk fits its bound; one more
    // entry than chunks does not.
    let many = MemoryTable {
        length_bytes: 64 << 20,
        max_pages: None,
        runs: (0..(64 << 20) / CHUNK_SIZE)
            .map(|i| RunEntry {
                guest_offset: i * CHUNK_SIZE,
                len: CHUNK_SIZE,
                crc32: 0,
            })
            .collect(),
        zeroed: vec![],
    };
    let bytes = crafted_sections(sections_with_memory(&many), &[]);
    let err = read_with_limits(&bytes[..], &limits).unwrap_err();
    assert!(matches!(err, SnapshotError::Truncated { .. }), "{err}");
    let small = ReadLimits {
        max_memory_bytes: 32 << 20,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &small).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, .. } if what.contains("memory section")),
        "{err}"
    );
}

#[test]
fn frame_and_value_counts_are_checked_after_decoding() {
    use crate::{FrameRecord, ReadLimits, WasmValue, read_with_limits};
    let frames = vec![
        FrameRecord {
            func: 0,
            resume_offset: 0,
            locals: vec![WasmValue::I32(1); 3],
            stack: vec![],
        };
        4
    ];
    let mut p = parts(&[]);
    p.frames = frames;
    let mut bytes = Vec::new();
    crate::write(&mut bytes, &p).unwrap();
    // The section (4 frames, 12 small values) fits the byte bound of
    // 3 frames and 20 values, but the counts do not.
    let err = read_with_limits(
        &bytes[..],
        &ReadLimits {
            max_frames: 3,
            max_values: 20,
            ..ReadLimits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found: 4, limit: 3 } if what.contains("frames")),
        "{err}"
    );
    let err = read_with_limits(
        &bytes[..],
        &ReadLimits {
            max_frames: 10,
            max_values: 11,
            ..ReadLimits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found: 12, limit: 11 } if what.contains("values")),
        "{err}"
    );
    let ok = read_with_limits(
        &bytes[..],
        &ReadLimits {
            max_frames: 4,
            max_values: 12,
            ..ReadLimits::default()
        },
    );
    assert_eq!(ok.unwrap().frames.len(), 4);
}

/// Writes an incremental snapshot at `dir/NAME` whose base is recorded as
/// `recorded`, bypassing the public writer's check (a hostile producer).
fn hostile_incremental(dir: &std::path::Path, name: &str, id: [u8; 32], recorded: &str) {
    use crate::types::{BaseRef, Incremental};
    let mem = vec![1u8; CHUNK_SIZE as usize];
    let inc = Incremental {
        base: BaseRef {
            id,
            path: recorded.into(),
            base_depth: 0,
        },
        dirty: vec![],
    };
    write_file_atomic_impl(&dir.join(name), &parts(&mem), Some(&inc), None).unwrap();
}

#[test]
fn a_base_is_only_a_plain_regular_file_next_to_the_snapshot() {
    let dir = temp_dir("base-paths");
    let mem = vec![1u8; CHUNK_SIZE as usize];
    let base = write_file_atomic_impl(&dir.join("base.bin"), &parts(&mem), None, None).unwrap();
    // The honest case works.
    hostile_incremental(&dir, "good.bin", base.id, "base.bin");
    assert_eq!(open_file(&dir.join("good.bin")).unwrap().depth(), 1);
    // Paths: never opened, whatever they name.
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::hard_link(dir.join("base.bin"), dir.join("sub/base.bin")).unwrap();
    let abs = dir.join("base.bin").display().to_string();
    for recorded in [
        "/etc/passwd",
        "../x.bin",
        "sub/base.bin",
        "..",
        ".",
        abs.as_str(),
        "./base.bin",
    ] {
        hostile_incremental(&dir, "evil.bin", base.id, recorded);
        let err = open_file(&dir.join("evil.bin")).unwrap_err();
        assert!(
            matches!(&err, SnapshotError::BasePathRefused { path, .. } if path == recorded),
            "{recorded}: {err}"
        );
        assert!(err.to_string().contains("plain file name"), "{err}");
    }
    // A symbolic link to the very base, with the right id: refused.
    std::os::unix::fs::symlink(dir.join("base.bin"), dir.join("link.bin")).unwrap();
    hostile_incremental(&dir, "evil.bin", base.id, "link.bin");
    let err = open_file(&dir.join("evil.bin")).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::BasePathRefused { reason, .. } if reason.contains("symbolic link")),
        "{err}"
    );
    // A directory, a FIFO (must not block): not regular files.
    std::fs::create_dir(dir.join("d.bin")).unwrap();
    hostile_incremental(&dir, "evil.bin", base.id, "d.bin");
    let err = open_file(&dir.join("evil.bin")).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::BasePathRefused { reason, .. } if reason.contains("regular")),
        "{err}"
    );
    let fifo = dir.join("f.bin");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if made {
        hostile_incremental(&dir, "evil.bin", base.id, "f.bin");
        let err = open_file(&dir.join("evil.bin")).unwrap_err();
        assert!(
            matches!(&err, SnapshotError::BasePathRefused { reason, .. } if reason.contains("regular")),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_threads_section_that_does_not_decode_is_refused() {
    use crate::layout::{ThreadsSection, ThreadsSectionRef, encode_section, encode_section_as};
    let empty = table(0, &[]);
    // The borrowed form the writer encodes is byte for byte the section.
    let threads = vec![crate::ThreadRecord {
        tid: 4,
        start_arg: 9,
        globals: vec![crate::WasmValue::V128([2; 16])],
        ..Default::default()
    }];
    let owned = ThreadsSection {
        last_thread_id: 4,
        threads: threads.clone(),
    };
    assert_eq!(
        encode_section(&owned).unwrap(),
        encode_section_as::<ThreadsSection>(&ThreadsSectionRef {
            last_thread_id: 4,
            threads: &threads,
        })
        .unwrap()
    );
    // Right checksums around contents that are not a threads section: cut
    // short, a record count far beyond the bytes, trailing bytes, and a
    // bad value tag.
    let good = encode_section(&owned).unwrap();
    let mut huge_count = good.clone();
    huge_count[4..12].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut trailing = good.clone();
    trailing.push(0);
    let mut bad_tag = good.clone();
    // last_thread_id, count, tid, start_arg, frames count, globals count:
    // then the first global's u32 tag.
    let tag_at = 4 + 8 + 4 + 4 + 8 + 8;
    assert_eq!(&bad_tag[tag_at..tag_at + 4], &6u32.to_le_bytes());
    bad_tag[tag_at..tag_at + 4].copy_from_slice(&99u32.to_le_bytes());
    for (name, section) in [
        ("short", good[..good.len() - 1].to_vec()),
        ("empty", vec![]),
        ("huge count", huge_count),
        ("trailing", trailing),
        ("bad tag", bad_tag),
    ] {
        let mut sections = sections_with_memory(&empty);
        sections[6] = section;
        let bytes = crafted_sections(sections, &[]);
        let err = read(&bytes[..]).unwrap_err();
        assert!(
            matches!(&err, SnapshotError::Decode { section, .. } if section == "threads section"),
            "{name}: {err}"
        );
    }
    let mut sections = sections_with_memory(&empty);
    sections[6] = good;
    assert_eq!(
        read(&crafted_sections(sections, &[])[..]).unwrap().threads,
        threads
    );
}
