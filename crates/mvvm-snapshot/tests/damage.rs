//! Damaged snapshots: every truncation and every single-byte change of a
//! small snapshot is an error, and random damage never panics.

mod common;

use common::{parts, small_memory, temp_dir};
use mvvm_snapshot::{OpenOptions, SnapshotError, open_file, read, read_info, write};
use std::os::unix::fs::FileExt;

fn small_snapshot() -> Vec<u8> {
    let mem = small_memory();
    let mut bytes = Vec::new();
    write(&mut bytes, &parts(&mem)).expect("write");
    bytes
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_snapshot();
    // The fixture has every part: sections, padding and a memory run.
    assert_eq!(bytes.len(), 2 * 65536);
    for len in 0..bytes.len() {
        match read(&bytes[..len]) {
            Err(SnapshotError::Truncated { .. }) => {}
            other => panic!("truncated at {len}: expected Truncated, got {other:?}"),
        }
    }
    read(&bytes[..]).expect("untouched snapshot reads");
}

#[test]
fn every_truncation_of_a_file_is_an_error() {
    let bytes = small_snapshot();
    let dir = temp_dir("truncated-file");
    let path = dir.join("snap");
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Every length in the metadata and around the region boundaries, and a
    // stride through the padding and data.
    let meta_end = 1024;
    for len in (0..bytes.len()).rev() {
        let near_boundary = len < meta_end || len % 65536 < 16 || len % 65536 > 65520;
        if !near_boundary && len % 97 != 0 {
            continue;
        }
        file.set_len(len as u64).unwrap();
        match open_file(&path) {
            Err(SnapshotError::Truncated { .. }) => {}
            other => panic!("file truncated at {len}: expected Truncated, got {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_single_byte_change_is_an_error() {
    let mut bytes = small_snapshot();
    for i in 0..bytes.len() {
        // Low and high bits in turn.
        let flip = if i % 2 == 0 { 0x01u8 } else { 0x80 };
        bytes[i] ^= flip;
        let result = read(&bytes[..]);
        bytes[i] ^= flip;
        assert!(
            result.is_err(),
            "byte {i} ^ {flip:#x} was not detected: {result:?}"
        );
    }
    read(&bytes[..]).expect("untouched snapshot reads");
}

#[test]
fn single_byte_changes_in_a_file_are_errors() {
    let bytes = small_snapshot();
    let dir = temp_dir("flipped-file");
    let path = dir.join("snap");
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Every metadata byte, a stride through padding and data, and the last
    // byte of each 64 KiB block.
    for (i, &b) in bytes.iter().enumerate() {
        if i >= 1024 && i % 53 != 0 && i % 65536 != 65535 {
            continue;
        }
        file.write_all_at(&[b ^ 0x10], i as u64).unwrap();
        let result = open_file(&path);
        file.write_all_at(&[b], i as u64).unwrap();
        assert!(result.is_err(), "byte {i} was not detected: {result:?}");
    }
    // Without memory verification, a change in the data region goes
    // unnoticed until `verify`.
    let last = bytes.len() - 1;
    file.write_all_at(&[bytes[last] ^ 1], last as u64).unwrap();
    let snap = OpenOptions::new()
        .verify_memory(false)
        .open(&path)
        .expect("not verified");
    assert!(matches!(
        snap.memory.verify(),
        Err(SnapshotError::Checksum { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// xorshift64*: a tiny deterministic PRNG (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_damage_never_panics() {
    let original = small_snapshot();
    // Mutations aimed mostly at the metadata, where the parsing is.
    let meta = 1024;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let mut bytes = original.clone();
        let n = 1 + rng.below(4);
        for _ in 0..n {
            let span = if rng.below(4) == 0 { bytes.len() } else { meta };
            let span = span.min(bytes.len()).max(1);
            match rng.below(5) {
                0 => {
                    let i = rng.below(span);
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(span);
                    bytes[i] = rng.next() as u8;
                }
                2 => {
                    let len = rng.below(bytes.len() + 1);
                    bytes.truncate(len);
                }
                3 => {
                    let i = rng.below(span);
                    bytes.insert(i, rng.next() as u8);
                }
                _ => {
                    if !bytes.is_empty() {
                        let i = rng.below(span.min(bytes.len()));
                        bytes.remove(i);
                    }
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let result = read(&bytes[..]);
        let _ = read_info(&bytes[..]);
        if bytes != original {
            assert!(result.is_err(), "round {round}: damage not detected");
        }
    }
}
