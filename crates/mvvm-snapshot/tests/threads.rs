//! The threads section: the records of a wasi-threads program's other
//! threads travel with every kind of snapshot (stream, file, incremental,
//! sealed), and a reader refuses thread ids that cannot be, `exnref`
//! indices past their own record's exception list, and more than its
//! limits allow.

mod common;

use common::{PAGE, assert_same, parts, small_memory, temp_dir, threaded_parts, threads};
use mvvm_snapshot::seal::{SealKey, open_reader};
use mvvm_snapshot::{
    BaseRef, ExceptionRecord, FrameRecord, Incremental, ReadLimits, SnapshotError, SnapshotParts,
    ThreadRecord, WasmValue, open_file, read, read_with_limits, write, write_file_atomic,
    write_incremental_file_atomic, write_sealed_file_atomic,
};

fn bytes_of(p: &SnapshotParts<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    write(&mut bytes, p).expect("write");
    bytes
}

/// Reads `bytes` from a stream and from a file: both must fail with
/// `Corrupt`, whose message contains every one of `words`.
fn assert_refused(bytes: &[u8], words: &[&str]) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("threads-refused-{n}"));
    let path = dir.join("snap");
    std::fs::write(&path, bytes).unwrap();
    for (how, r) in [("read", read(bytes)), ("open_file", open_file(&path))] {
        match r {
            Err(SnapshotError::Corrupt { what }) => {
                for w in words {
                    assert!(what.contains(w), "{how}: {what:?} lacks {w:?}");
                }
            }
            other => panic!("{how}: expected Corrupt with {words:?}, got {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn thread_records_round_trip_through_a_stream_and_a_file() {
    let mem = small_memory();
    let p = threaded_parts(&mem);
    let snap = read(&bytes_of(&p)[..]).expect("read");
    assert_same(&snap, &p);
    assert_eq!(snap.threads, threads());
    assert_eq!(snap.last_thread_id, 9);
    // Record order is kept (the writer does not sort by id).
    assert_eq!(snap.threads[0].tid, 7);
    assert_eq!(snap.threads[1].tid, 3);
    assert!(snap.threads[1].frames.is_empty());
    // The main thread's parts are not mixed with the threads'.
    assert_eq!(snap.exceptions, common::exceptions());
    assert_eq!(snap.frames, common::frames());

    let dir = temp_dir("threads-file");
    let path = dir.join("snap");
    write_file_atomic(&path, &p).unwrap();
    let snap = open_file(&path).unwrap();
    assert_same(&snap, &p);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_single_threaded_snapshot_has_no_records() {
    let mem = small_memory();
    let p = parts(&mem);
    let plain = bytes_of(&p);
    let snap = read(&plain[..]).unwrap();
    assert!(snap.threads.is_empty());
    assert_eq!(snap.last_thread_id, 0);
    // A program whose threads all exited keeps its last id, so a restored
    // program does not reuse it.
    let exited = SnapshotParts {
        last_thread_id: 41,
        ..parts(&mem)
    };
    let snap = read(&bytes_of(&exited)[..]).unwrap();
    assert!(snap.threads.is_empty());
    assert_eq!(snap.last_thread_id, 41);
    // The records cost their encoding and nothing else.
    let threaded = bytes_of(&threaded_parts(&mem));
    assert_ne!(plain, threaded);
}

#[test]
fn thread_records_travel_in_incremental_snapshots() {
    let dir = temp_dir("threads-inc");
    let mut mem: Vec<u8> = (0..4 * PAGE).map(|i| (i / PAGE) as u8 + 1).collect();
    let base = threaded_parts(&mem);
    let full = write_file_atomic(&dir.join("a.bin"), &base).unwrap();
    // Since the base: thread 3 entered wasm, thread 7 exited, thread 10
    // was spawned; chunk 2 was written.
    mem[2 * PAGE + 5] = 0xee;
    let mut now = threads();
    now.remove(0);
    now[0].frames = vec![FrameRecord {
        func: 2,
        resume_offset: 0x33,
        locals: vec![WasmValue::ExnRef(Some(0))],
        stack: vec![WasmValue::V128([1; 16])],
    }];
    now[0].exceptions = vec![ExceptionRecord {
        tag: 0,
        payload: vec![],
    }];
    now.push(ThreadRecord {
        tid: 10,
        start_arg: 5,
        ..ThreadRecord::default()
    });
    let p = SnapshotParts {
        threads: now.clone(),
        last_thread_id: 10,
        ..threaded_parts(&mem)
    };
    let inc = Incremental {
        base: BaseRef {
            id: full.id,
            path: "a.bin".into(),
            base_depth: 0,
        },
        dirty: vec![1 << 2],
    };
    write_incremental_file_atomic(&dir.join("b.bin"), &p, &inc).unwrap();
    let snap = open_file(&dir.join("b.bin")).unwrap();
    assert_eq!(snap.depth(), 1);
    assert_same(&snap, &p);
    assert_eq!(snap.threads, now);
    // The base still holds its own records.
    assert_eq!(open_file(&dir.join("a.bin")).unwrap().threads, threads());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn thread_records_travel_in_sealed_snapshots() {
    let dir = temp_dir("threads-sealed");
    let path = dir.join("s.bin");
    let key = SealKey::from_bytes(&[0x5a; 32]).unwrap();
    let mem = small_memory();
    let p = threaded_parts(&mem);
    write_sealed_file_atomic(&path, &p, &key).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let snap = read(open_reader(&bytes[..], &key, "s.bin").unwrap()).unwrap();
    assert_same(&snap, &p);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Where the threads section starts in `bytes`: thread 7's record begins
/// with its id then its start argument, a pattern found nowhere else.
fn thread_7_record(bytes: &[u8]) -> usize {
    let mut pattern = 7u32.to_le_bytes().to_vec();
    pattern.extend_from_slice(&0x0001_0040u32.to_le_bytes());
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("thread 7's record");
    assert_eq!(
        bytes[at + 8..]
            .windows(pattern.len())
            .position(|w| w == pattern),
        None
    );
    at
}

#[test]
fn a_damaged_threads_section_is_an_error() {
    let mem = small_memory();
    let mut bytes = bytes_of(&threaded_parts(&mem));
    let at = thread_7_record(&bytes);
    // The section's start (last_thread_id and the records' count) to well
    // into the second record.
    for i in at - 12..at + 300 {
        bytes[i] ^= 0x08;
        let r = read(&bytes[..]);
        bytes[i] ^= 0x08;
        assert!(
            matches!(r, Err(SnapshotError::Checksum { ref section }) if section == "threads section"),
            "byte {i}: {r:?}"
        );
    }
    read(&bytes[..]).expect("untouched");
}

#[test]
fn every_truncation_of_a_threaded_snapshot_is_an_error() {
    let mem = small_memory();
    let bytes = bytes_of(&threaded_parts(&mem));
    assert_eq!(bytes.len(), 2 * PAGE);
    let at = thread_7_record(&bytes);
    // Every length through the metadata (the threads section included),
    // then a stride through the padding and the data.
    for len in (0..bytes.len()).filter(|&l| l < at + 2048 || l % 331 == 0) {
        match read(&bytes[..len]) {
            Err(SnapshotError::Truncated { section, .. }) => {
                if len > at && len < at + 300 {
                    assert_eq!(section, "threads section", "length {len}");
                }
            }
            other => panic!("truncated at {len}: expected Truncated, got {other:?}"),
        }
    }
    let dir = temp_dir("threads-truncated-file");
    let path = dir.join("snap");
    for len in [at - 5, at, at + 1, at + 100] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        assert!(
            matches!(open_file(&path), Err(SnapshotError::Truncated { ref section, .. }) if section == "threads section"),
            "file truncated at {len}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn impossible_thread_ids_are_refused() {
    let mem = small_memory();
    type Edit = fn(&mut SnapshotParts<'_>);
    let cases: [(Edit, &[&str]); 5] = [
        (
            |p| p.threads[1].tid = 7,
            &["thread id 7", "more than one thread record"],
        ),
        (
            |p| p.threads[1].tid = 0,
            &["thread record 1", "thread id 0"],
        ),
        (
            |p| p.threads[0].tid = 10,
            &[
                "thread record 0",
                "thread id 10",
                "last thread id given (9)",
            ],
        ),
        // A program that never spawned cannot have threads.
        (
            |p| p.last_thread_id = 0,
            &["thread record 0", "thread id 7", "(0)"],
        ),
        (
            |p| {
                p.last_thread_id = 0x2000_0000;
                p.threads[0].tid = 0x2000_0000;
            },
            &["0x20000000", "largest wasi-threads thread id 0x1fffffff"],
        ),
    ];
    for (edit, words) in cases {
        let mut p = threaded_parts(&mem);
        edit(&mut p);
        // The writer writes what it is given; the reader checks.
        assert_refused(&bytes_of(&p), words);
    }
    // The largest id is fine.
    let mut p = threaded_parts(&mem);
    p.last_thread_id = 0x1FFF_FFFF;
    p.threads[1].tid = 0x1FFF_FFFF;
    assert_same(&read(&bytes_of(&p)[..]).unwrap(), &p);
}

#[test]
fn an_exnref_indexes_its_own_threads_list() {
    let mem = small_memory();
    type Edit = fn(&mut SnapshotParts<'_>);
    // Thread 7 holds 2 exceptions, thread 3 none (the main thread 3).
    let cases: [(Edit, &[&str]); 6] = [
        (
            |p| p.threads[0].frames[1].locals[0] = WasmValue::ExnRef(Some(2)),
            &[
                "thread 7 frame 1 local 0",
                "exception 2",
                "thread 7's record holds 2",
            ],
        ),
        (
            |p| p.threads[0].frames[0].stack[0] = WasmValue::ExnRef(Some(u32::MAX)),
            &["thread 7 frame 0 stack value 0"],
        ),
        // Index 1 is valid in the main thread's list, not in thread 3's.
        (
            |p| p.threads[1].globals[2] = WasmValue::ExnRef(Some(1)),
            &["thread 3 global 2", "thread 3's record holds 0"],
        ),
        (
            |p| p.threads[1].tables[3] = vec![WasmValue::ExnRef(Some(0))],
            &["thread 3 table 3 element 0"],
        ),
        (
            |p| p.threads[0].exceptions[1].payload[0] = WasmValue::ExnRef(Some(2)),
            &["thread 7 exception 1 payload value 0"],
        ),
        (
            |p| p.threads[0].exceptions[1].payload[0] = WasmValue::ExnRef(Some(0)),
            &["thread 7: exception", "holds itself"],
        ),
    ];
    for (edit, words) in cases {
        let mut p = threaded_parts(&mem);
        edit(&mut p);
        assert_refused(&bytes_of(&p), words);
    }
}

#[test]
fn counts_above_the_receivers_limits_are_refused() {
    let mem = small_memory();
    let p = threaded_parts(&mem);
    let bytes = bytes_of(&p);
    // Exactly two records: accepted; one: refused, by count.
    let two = ReadLimits {
        max_threads: 2,
        ..ReadLimits::default()
    };
    read_with_limits(&bytes[..], &two).expect("two threads allowed");
    let one = ReadLimits {
        max_threads: 1,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &one).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found: 2, limit: 1 }
            if what == "the number of threads"),
        "{err}"
    );
    // No thread allowed (a single-threaded receiver): the section's length
    // alone refuses it, before it is read...
    let none = ReadLimits {
        max_threads: 0,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &none).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, .. } if what.contains("threads section")),
        "{err}"
    );
    // ... while a single-threaded snapshot passes.
    read_with_limits(&bytes_of(&parts(&mem))[..], &none).expect("no threads");

    // The per-instance limits still apply to the main thread's parts,
    // named as before.
    let main_thread = [
        (
            ReadLimits {
                max_globals: 2,
                ..ReadLimits::default()
            },
            "the number of globals",
            3,
        ),
        (
            ReadLimits {
                max_exception_values: 2,
                ..ReadLimits::default()
            },
            "the number of exception payload values",
            7,
        ),
        (
            ReadLimits {
                max_frames: 2,
                ..ReadLimits::default()
            },
            "the number of frames",
            3,
        ),
    ];
    for (limits, what_main, found_main) in main_thread {
        let err = read_with_limits(&bytes[..], &limits).unwrap_err();
        assert!(
            matches!(&err, SnapshotError::LimitExceeded { what, found, .. }
                if what == what_main && *found == found_main),
            "{what_main}: {err}"
        );
    }
    // And to each record, named by its thread: limits the main thread
    // meets but a thread does not.
    let mut p = threaded_parts(&mem);
    p.threads[0].frames.extend(vec![FrameRecord::default(); 2]);
    let bytes = bytes_of(&p);
    let frames = ReadLimits {
        max_frames: 3,
        ..ReadLimits::default()
    };
    let err = read_with_limits(&bytes[..], &frames).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found: 4, limit: 3 }
            if what == "the number of frames of thread 7"),
        "{err}"
    );
    let mut p = threaded_parts(&mem);
    p.threads[1].dropped_elems = vec![0, 1, 2];
    let err = read_with_limits(
        &bytes_of(&p)[..],
        &ReadLimits {
            max_segments: 2,
            ..ReadLimits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, SnapshotError::LimitExceeded { what, found: 3, limit: 2 }
            if what == "the number of dropped segments of thread 3"),
        "{err}"
    );
}

#[test]
fn snapshots_of_format_version_4_are_refused_with_a_clear_message() {
    let mut bytes = bytes_of(&threaded_parts(&small_memory()));
    bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
    let err = read(&bytes[..]).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::FormatVersion {
                found: 4,
                expected: 6
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "snapshot format version 4 is not supported (this build reads version 6)"
    );
}
