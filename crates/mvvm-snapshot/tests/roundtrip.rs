//! Round trips through a byte vector, a file, a pipe and a trickling
//! reader; the layout properties a restorer relies on; input checks.

mod common;

use common::{PAGE, assert_same, memory, parts, temp_dir};
use mvvm_snapshot::{
    CHUNK_SIZE, DATA_ALIGN, OpenOptions, SnapshotError, SnapshotParts, open_file, read, read_info,
    write, write_file_atomic,
};
use std::io::{Read, Write};

/// Writes `parts` to a vector, reads it back, checks equality; returns the bytes.
fn roundtrip(parts: &SnapshotParts<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let stats = write(&mut bytes, parts).expect("write");
    assert_eq!(stats.total_bytes, bytes.len() as u64);
    let snap = read(&bytes[..]).expect("read");
    assert_same(&snap, parts);
    snap.memory.verify().expect("verify");
    bytes
}

/// Checks what a restorer that maps runs relies on.
fn check_run_layout(snap: &mvvm_snapshot::Snapshot) {
    let mut prev_end = 0;
    for run in snap.memory.runs() {
        assert_eq!(run.file_offset % DATA_ALIGN, 0);
        assert_eq!(run.guest_offset % CHUNK_SIZE, 0);
        assert_eq!(run.len % CHUNK_SIZE, 0);
        assert!(run.len > 0);
        assert!(run.guest_offset >= prev_end);
        prev_end = run.guest_offset + run.len;
    }
    assert!(prev_end <= snap.memory.length_bytes());
}

#[test]
fn empty_memory() {
    let p = SnapshotParts {
        max_pages: None,
        ..parts(&[])
    };
    let bytes = roundtrip(&p);
    // No runs: no padding, no data region.
    assert!(bytes.len() < 1024, "{} bytes", bytes.len());
    let snap = read(&bytes[..]).unwrap();
    assert!(snap.memory.runs().is_empty());
}

#[test]
fn all_zero_memory_has_no_runs() {
    let mem = vec![0u8; 5 * PAGE];
    let bytes = roundtrip(&parts(&mem));
    assert!(bytes.len() < 1024, "{} bytes", bytes.len());
}

#[test]
fn sparse_memory() {
    let mem = memory(40, |p| matches!(p, 0 | 1 | 2 | 7 | 20 | 21 | 39));
    let bytes = roundtrip(&parts(&mem));
    let snap = read(&bytes[..]).unwrap();
    let spans: Vec<(u64, u64)> = snap
        .memory
        .runs()
        .iter()
        .map(|r| (r.guest_offset / PAGE as u64, r.len / PAGE as u64))
        .collect();
    assert_eq!(spans, vec![(0, 3), (7, 1), (20, 2), (39, 1)]);
    check_run_layout(&snap);
    assert_eq!(snap.memory.data_bytes(), 7 * PAGE as u64);
    // Header and sections, padding to 64 KiB, then 7 pages.
    assert_eq!(bytes.len(), 8 * PAGE);
    for (i, run) in snap.memory.runs().iter().enumerate() {
        let g = run.guest_offset as usize;
        assert_eq!(
            snap.memory.run_bytes(i).unwrap(),
            &mem[g..g + run.len as usize]
        );
        let f = run.file_offset as usize;
        assert_eq!(
            &bytes[f..f + run.len as usize],
            &mem[g..g + run.len as usize]
        );
    }
}

#[test]
fn full_memory() {
    let mem: Vec<u8> = (0..6 * PAGE).map(|i| (i % 251) as u8 | 1).collect();
    let bytes = roundtrip(&parts(&mem));
    let snap = read(&bytes[..]).unwrap();
    assert_eq!(snap.memory.runs().len(), 1);
    assert_eq!(snap.memory.runs()[0].len, mem.len() as u64);
    check_run_layout(&snap);
}

#[test]
fn file_roundtrip_maps_runs_from_the_file() {
    let dir = temp_dir("file-roundtrip");
    let path = dir.join("snap.bin");
    let mem = memory(16, |p| p % 3 == 1);
    let p = parts(&mem);
    let stats = write_file_atomic(&path, &p).expect("write file");
    assert_eq!(stats.total_bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(stats.runs, 5);
    assert_eq!(stats.memory_length, mem.len() as u64);

    for opts in [OpenOptions::new(), OpenOptions::new().verify_memory(false)] {
        let snap = opts.open(&path).expect("open");
        assert_same(&snap, &p);
        check_run_layout(&snap);
        let file = snap.memory.file().expect("file-backed");
        assert!(snap.memory.run_bytes(0).is_none());
        // What a restorer mapping the runs would see.
        use std::os::unix::fs::FileExt;
        for run in snap.memory.runs() {
            let mut buf = vec![0u8; run.len as usize];
            file.read_exact_at(&mut buf, run.file_offset).unwrap();
            let g = run.guest_offset as usize;
            assert_eq!(buf, &mem[g..g + buf.len()]);
        }
        snap.memory.verify().expect("verify");
    }
    // The stream reader reads the same file.
    let snap = read(std::fs::File::open(&path).unwrap()).unwrap();
    assert_same(&snap, &p);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_into_leaves_other_bytes_alone_and_checks_size() {
    let mem = memory(4, |p| p == 2);
    let mut bytes = Vec::new();
    write(&mut bytes, &parts(&mem)).unwrap();
    let snap = read(&bytes[..]).unwrap();
    // A destination larger than the memory (a reservation) is fine.
    let mut dest = vec![0u8; 6 * PAGE];
    snap.memory.copy_into(&mut dest).unwrap();
    assert_eq!(&dest[..mem.len()], &mem[..]);
    assert!(dest[mem.len()..].iter().all(|&b| b == 0));
    let mut small = vec![0u8; 3 * PAGE];
    assert!(matches!(
        snap.memory.copy_into(&mut small),
        Err(SnapshotError::InvalidInput { .. })
    ));
}

/// A writer that cannot seek and accepts at most 3 bytes per call.
struct Trickle<'a>(&'a mut Vec<u8>);

impl Write for Trickle<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(3);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader that cannot seek, returns at most 5 bytes per call and
/// sometimes reports `Interrupted`.
struct Dribble<'a> {
    data: &'a [u8],
    calls: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(7) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(5).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn non_seekable_writer_and_reader() {
    let mem = memory(3, |p| p != 1);
    let p = parts(&mem);
    let mut bytes = Vec::new();
    write(Trickle(&mut bytes), &p).expect("write");
    let mut direct = Vec::new();
    write(&mut direct, &p).unwrap();
    assert_eq!(bytes, direct);
    let snap = read(Dribble {
        data: &bytes,
        calls: 0,
    })
    .expect("read");
    assert_same(&snap, &p);
}

#[test]
fn through_a_pipe() {
    let mem = memory(8, |p| p % 2 == 0);
    let (mut rx, tx) = std::io::pipe().expect("pipe");
    let writer = std::thread::spawn({
        let mem = mem.clone();
        move || {
            let p = parts(&mem);
            // Two snapshots back to back on one stream.
            let mut tx = tx;
            write(&mut tx, &p).expect("write 1");
            let p2 = SnapshotParts {
                monotonic_offset_nanos: 2,
                ..p
            };
            write(&mut tx, &p2).expect("write 2");
        }
    });
    let first = read(&mut rx).expect("read 1");
    let second = read(&mut rx).expect("read 2");
    writer.join().unwrap();
    assert_same(&first, &parts(&mem));
    assert_eq!(second.monotonic_offset_nanos, 2);
    assert_eq!(second.memory_bytes().unwrap(), mem);
    // The stream is at its end: nothing was read past the snapshots.
    let mut rest = Vec::new();
    rx.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn read_info_reads_only_the_header() {
    let mem = memory(2, |_| true);
    let mut bytes = Vec::new();
    write(&mut bytes, &parts(&mem)).unwrap();
    // The header alone is enough.
    let info = read_info(&bytes[..400]).expect("info");
    assert_eq!(info, common::info());
}

#[test]
fn check_module_shows_both_hashes() {
    let mut bytes = Vec::new();
    write(&mut bytes, &parts(&[])).unwrap();
    let snap = read(&bytes[..]).unwrap();
    snap.check_module(&common::info().wasm_sha256)
        .expect("same module");
    let other = [0xabu8; 32];
    let err = snap.check_module(&other).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&"ab".repeat(32)), "{msg}");
    assert!(msg.contains("01080f16"), "{msg}");
}

#[test]
fn invalid_parts_are_refused_before_writing() {
    let odd = vec![1u8; PAGE + 1];
    let mut out = Vec::new();
    let err = write(&mut out, &parts(&odd)).unwrap_err();
    assert!(matches!(err, SnapshotError::InvalidInput { .. }), "{err}");
    assert!(out.is_empty());

    let mem = vec![0u8; 3 * PAGE];
    let p = SnapshotParts {
        max_pages: Some(2),
        ..parts(&mem)
    };
    let err = write(&mut out, &p).unwrap_err();
    assert!(err.to_string().contains("maximum of 2 pages"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn foreign_and_future_files_are_refused() {
    assert!(matches!(
        read(&b"\x7fELF\x02\x01\x01\0\0\0\0\0"[..]),
        Err(SnapshotError::NotASnapshot)
    ));
    assert!(matches!(
        read(&b"MVVM"[..]),
        Err(SnapshotError::Truncated { .. })
    ));
    let mut bytes = Vec::new();
    write(&mut bytes, &parts(&[])).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let err = read(&bytes[..]).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::FormatVersion {
                found: 7,
                expected: mvvm_snapshot::SNAPSHOT_FORMAT_VERSION
            }
        ),
        "{err}"
    );
}

#[test]
fn trailing_bytes_in_a_file_are_refused() {
    let dir = temp_dir("trailing");
    let path = dir.join("snap");
    let mem = memory(2, |p| p == 0);
    write_file_atomic(&path, &parts(&mem)).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    let err = open_file(&path).unwrap_err();
    assert!(err.to_string().contains("1 unexpected bytes"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
