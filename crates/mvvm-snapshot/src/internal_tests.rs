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
        dropped_data: vec![],
        dropped_elems: vec![],
        wasi: vec![],
        monotonic_offset_nanos: 0,
        memory,
        max_pages: None,
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
        assert!(err.to_string().contains("injected"), "{err}");
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

fn entries(lens: [u64; 7]) -> Vec<SectionEntry> {
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
    let bytes = crafted(entries([1 << 40, 0, 0, 0, 0, 0, 0]), &[]);
    let err = read(&bytes[..]).unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    // Below the limit but absent: truncated after reading what is there
    // (this would take 1 GiB if the length were trusted).
    let bytes = crafted(entries([1 << 30, 0, 0, 0, 0, 0, 0]), &[1, 2, 3]);
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
    let mut table = entries([0; 7]);
    table.swap(0, 1);
    let err = read(&crafted(table, &[])[..]).unwrap_err();
    assert!(err.to_string().contains("section table"), "{err}");
    let mut table = entries([0; 7]);
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
    assert_eq!(SNAPSHOT_FORMAT_VERSION, 2);
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
    let table = 20 + header_len - (8 + 7 * 16);
    assert_eq!(u64_at(table), 7);
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
    let mem_len = u64_at(table + 8 + 6 * 16 + 4) as usize;
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
