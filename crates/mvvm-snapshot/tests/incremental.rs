//! Incremental snapshots: a snapshot naming its base by id and path,
//! holding only the chunks written since; chains resolved and checked when
//! opened.

mod common;

use common::{PAGE, parts};
use mvvm_snapshot::{
    BaseRef, Incremental, OpenOptions, SnapshotError, open_file, read_identity, write_file_atomic,
    write_incremental_file_atomic,
};
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mvvm-snap-inc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Bitmap with the given chunks set.
fn bits(chunks: &[usize]) -> Vec<u64> {
    let mut v = vec![0u64; 1024];
    for &c in chunks {
        v[c / 64] |= 1 << (c % 64);
    }
    v
}

fn inc(id: [u8; 32], path: &str, base_depth: u32, dirty: &[usize]) -> Incremental {
    Incremental {
        base: BaseRef {
            id,
            path: path.into(),
            base_depth,
        },
        dirty: bits(dirty),
    }
}

#[test]
fn a_chain_rebuilds_memory_and_is_smaller() {
    let d = dir("chain");
    // 16 pages, all non-zero.
    let mut mem: Vec<u8> = (0..16 * PAGE).map(|i| (i / PAGE) as u8 + 1).collect();
    let full = write_file_atomic(&d.join("a.bin"), &parts(&mem)).unwrap();
    assert_eq!(read_identity(&d.join("a.bin")).unwrap(), (full.id, 0));
    // Change chunk 3, zero chunk 5, grow by two pages (one zero, one not).
    mem[3 * PAGE + 10] = 0xaa;
    mem[5 * PAGE..6 * PAGE].fill(0);
    mem.extend(std::iter::repeat_n(0u8, PAGE));
    mem.extend(std::iter::repeat_n(7u8, PAGE));
    let i1 = write_incremental_file_atomic(
        &d.join("b.bin"),
        &parts(&mem),
        &inc(full.id, "a.bin", 0, &[3, 5, 16, 17]),
    )
    .unwrap();
    assert!(
        i1.total_bytes * 4 < full.total_bytes,
        "incremental {} bytes, full {}",
        i1.total_bytes,
        full.total_bytes
    );
    assert_eq!(i1.memory_data_bytes, 2 * PAGE as u64);
    // A base is a plain file name in the snapshot's directory: a writer
    // refuses a path (readers would refuse it too).
    std::fs::create_dir_all(d.join("sub")).unwrap();
    mem[PAGE] = 0x55;
    for bad in ["../b.bin", "/tmp/b.bin", "..", ".", "x/b.bin"] {
        let e = write_incremental_file_atomic(
            &d.join("sub/c.bin"),
            &parts(&mem),
            &inc(i1.id, bad, 1, &[1]),
        )
        .unwrap_err();
        assert!(
            matches!(e, SnapshotError::InvalidInput { .. }),
            "{bad}: {e}"
        );
    }
    // Second level, in a subdirectory, next to a hard link of its base.
    std::fs::hard_link(d.join("b.bin"), d.join("sub/b.bin")).unwrap();
    std::fs::hard_link(d.join("a.bin"), d.join("sub/a.bin")).unwrap();
    let i2 = write_incremental_file_atomic(
        &d.join("sub/c.bin"),
        &parts(&mem),
        &inc(i1.id, "b.bin", 1, &[1]),
    )
    .unwrap();
    let snap = open_file(&d.join("sub/c.bin")).unwrap();
    assert_eq!(snap.id, i2.id);
    assert_eq!(snap.depth(), 2);
    assert_eq!(snap.memory.layers().len(), 3);
    assert_eq!(snap.memory_bytes().unwrap(), mem);
    assert_eq!(read_identity(&d.join("sub/c.bin")).unwrap(), (i2.id, 2));
    // Without memory verification: the same bytes.
    let snap = OpenOptions::new()
        .verify_memory(false)
        .open(&d.join("sub/c.bin"))
        .unwrap();
    assert_eq!(snap.memory_bytes().unwrap(), mem);
    snap.memory.verify().unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_missing_or_replaced_base_is_refused_by_name() {
    let d = dir("refuse");
    let mem = vec![1u8; 4 * PAGE];
    let full = write_file_atomic(&d.join("a.bin"), &parts(&mem)).unwrap();
    write_incremental_file_atomic(
        &d.join("b.bin"),
        &parts(&mem),
        &inc(full.id, "a.bin", 0, &[]),
    )
    .unwrap();
    open_file(&d.join("b.bin")).unwrap();
    // Replaced by another snapshot: refused, naming it and both ids.
    let mut other = mem.clone();
    other[0] = 2;
    write_file_atomic(&d.join("a.bin"), &parts(&other)).unwrap();
    let e = open_file(&d.join("b.bin")).unwrap_err();
    assert!(matches!(e, SnapshotError::BaseMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("a.bin") && msg.contains("altered or replaced"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    // A flipped byte in the base's memory data: its crc32 catches it when
    // memory is verified (the id covers the crc32s, not the data).
    write_file_atomic(&d.join("a.bin"), &parts(&mem)).unwrap();
    open_file(&d.join("b.bin")).unwrap();
    let mut bytes = std::fs::read(d.join("a.bin")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(d.join("a.bin"), &bytes).unwrap();
    let e = open_file(&d.join("b.bin")).unwrap_err();
    assert!(matches!(e, SnapshotError::BaseUnreadable { .. }), "{e}");
    // The base's own error is the source, not part of the message.
    assert!(common::chain(&e).contains("checksum"), "{e}");
    assert!(!e.to_string().contains("checksum"), "{e}");
    // Gone.
    std::fs::remove_file(d.join("a.bin")).unwrap();
    let e = open_file(&d.join("b.bin")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SnapshotError::BaseUnreadable { .. }), "{msg}");
    assert!(
        msg.contains("a.bin") && msg.contains("no such file"),
        "{msg}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_cycle_of_bases_ends() {
    let d = dir("cycle");
    let mem = vec![1u8; PAGE];
    // A snapshot naming itself (its own id cannot be known in advance, so
    // the id check fails first; a chain of distinct files is bounded by
    // MAX_CHAIN_DEPTH).
    write_incremental_file_atomic(
        &d.join("x.bin"),
        &parts(&mem),
        &inc([0; 32], "x.bin", 0, &[]),
    )
    .unwrap();
    let e = open_file(&d.join("x.bin")).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::BaseMismatch { .. } | SnapshotError::BaseUnreadable { .. }
        ),
        "{e}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn every_damaged_byte_of_an_incremental_snapshot_is_an_error() {
    let d = dir("damage");
    let mut mem: Vec<u8> = (0..4 * PAGE).map(|i| (i % 251) as u8 + 1).collect();
    let full = write_file_atomic(&d.join("a.bin"), &parts(&mem)).unwrap();
    mem[2 * PAGE + 1] ^= 0xff;
    mem[3 * PAGE..].fill(0);
    let path = d.join("b.bin");
    write_incremental_file_atomic(&path, &parts(&mem), &inc(full.id, "a.bin", 0, &[2, 3])).unwrap();
    let good = std::fs::read(&path).unwrap();
    assert_eq!(open_file(&path).unwrap().memory_bytes().unwrap(), mem);
    let damaged = d.join("damaged.bin");
    // A stride through the metadata (the first 4 KiB: header and
    // sections), then through padding and data; the header's bytes all.
    let picks = (0..128)
        .chain((128..4096).step_by(7))
        .chain((4096..good.len()).step_by(1021));
    for i in picks {
        let mut bytes = good.clone();
        bytes[i] ^= 0x21;
        std::fs::write(&damaged, &bytes).unwrap();
        assert!(open_file(&damaged).is_err(), "byte {i} of {}", good.len());
    }
    for len in (0..good.len()).step_by(997) {
        std::fs::write(&damaged, &good[..len]).unwrap();
        assert!(open_file(&damaged).is_err(), "truncated to {len}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
