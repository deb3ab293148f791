//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use mvvm_snapshot::{
    ExceptionRecord, FrameRecord, SnapshotInfo, SnapshotParts, ThreadRecord, WasmValue,
};
use std::path::PathBuf;

/// Wasm page size.
pub const PAGE: usize = 65536;

/// An info block with every field set.
pub fn info() -> SnapshotInfo {
    SnapshotInfo {
        producer: "mvvm-snapshot tests".to_string(),
        wasm_sha256: std::array::from_fn(|i| i as u8 * 7 + 1),
        policy: "counter-loop:16".to_string(),
        source_arch: "x86_64".to_string(),
        created_unix_nanos: 1_700_000_000_123_456_789,
        note: "fixture ✓".to_string(),
    }
}

/// Frames that use every kind of value, including NaN payloads and nulls.
pub fn frames() -> Vec<FrameRecord> {
    vec![
        FrameRecord {
            func: 3,
            resume_offset: 0x41,
            locals: vec![
                WasmValue::I32(0xdead_beef),
                WasmValue::I64(u64::MAX),
                WasmValue::F32(0x7fc0_0001),
                WasmValue::F64(0x7ff8_0000_0000_0001),
            ],
            stack: vec![WasmValue::FuncRef(Some(9)), WasmValue::FuncRef(None)],
        },
        FrameRecord {
            func: 12,
            resume_offset: 0x1234,
            locals: vec![
                WasmValue::ExternRef(Some(0x0123_4567_89ab_cdef)),
                WasmValue::ExternRef(None),
                WasmValue::V128(std::array::from_fn(|i| 0xf0 | i as u8)),
                WasmValue::ExnRef(None),
            ],
            stack: vec![WasmValue::ExnRef(Some(0)), WasmValue::ExnRef(Some(2))],
        },
        FrameRecord::default(),
    ]
}

/// Exceptions for [`frames`], the globals and the tables of [`parts`]:
/// payloads with every kind of value, one exception held by another.
pub fn exceptions() -> Vec<ExceptionRecord> {
    vec![
        ExceptionRecord {
            tag: 2,
            payload: vec![
                WasmValue::I32(7),
                WasmValue::F32(0x7fa0_0003),
                WasmValue::V128(std::array::from_fn(|i| i as u8)),
                WasmValue::ExnRef(Some(1)),
                WasmValue::ExnRef(None),
            ],
        },
        ExceptionRecord {
            tag: 0,
            payload: vec![],
        },
        ExceptionRecord {
            tag: 5,
            payload: vec![WasmValue::I64(u64::MAX), WasmValue::ExnRef(Some(1))],
        },
    ]
}

/// Parts with everything set and the given memory.
pub fn parts(memory: &[u8]) -> SnapshotParts<'_> {
    SnapshotParts {
        info: info(),
        frames: frames(),
        globals: vec![
            WasmValue::I32(1),
            WasmValue::F64(2.5f64.to_bits()),
            WasmValue::ExnRef(Some(1)),
        ],
        tables: vec![
            vec![WasmValue::FuncRef(Some(1)), WasmValue::FuncRef(None)],
            vec![],
            vec![WasmValue::ExternRef(Some(5))],
            vec![WasmValue::ExnRef(None), WasmValue::ExnRef(Some(2))],
        ],
        exceptions: exceptions(),
        dropped_data: vec![0, 2],
        dropped_elems: vec![1],
        wasi: b"opaque wasi state \x00\x01\x02".to_vec(),
        monotonic_offset_nanos: 987_654_321,
        memory,
        max_pages: Some(100),
        threads: vec![],
        last_thread_id: 0,
    }
}

/// Two thread records besides the main thread: one in the middle of its
/// work (frames with v128 and exnref values, its own exceptions, one of
/// them held by another, dropped segments), one that had not entered wasm
/// yet (no frames). Their `exnref` indices name their own lists: thread 7
/// refers to its exception 1, which the main thread's list of three also
/// has, but thread 3's list of one does not.
pub fn threads() -> Vec<ThreadRecord> {
    vec![
        ThreadRecord {
            tid: 7,
            start_arg: 0x0001_0040,
            frames: vec![
                FrameRecord {
                    func: 4,
                    resume_offset: 0x90,
                    locals: vec![
                        WasmValue::I32(7),
                        WasmValue::V128(std::array::from_fn(|i| 0x80 | i as u8)),
                        WasmValue::ExnRef(Some(1)),
                    ],
                    stack: vec![
                        WasmValue::ExnRef(None),
                        WasmValue::F64(0x7ff8_0000_0000_0002),
                    ],
                },
                FrameRecord {
                    func: 9,
                    resume_offset: 0x1f0,
                    locals: vec![WasmValue::ExnRef(Some(0))],
                    stack: vec![],
                },
            ],
            globals: vec![
                WasmValue::I32(70),
                WasmValue::F64(0),
                WasmValue::ExnRef(Some(1)),
            ],
            tables: vec![
                vec![WasmValue::FuncRef(Some(2))],
                vec![],
                vec![],
                vec![WasmValue::ExnRef(Some(0))],
            ],
            exceptions: vec![
                ExceptionRecord {
                    tag: 1,
                    payload: vec![WasmValue::V128([0xab; 16]), WasmValue::ExnRef(Some(1))],
                },
                ExceptionRecord {
                    tag: 3,
                    payload: vec![WasmValue::I64(77)],
                },
            ],
            dropped_data: vec![1],
            dropped_elems: vec![0, 3],
        },
        ThreadRecord {
            tid: 3,
            start_arg: 0xffff_fff0,
            frames: vec![],
            globals: vec![
                WasmValue::I32(30),
                WasmValue::F64(1),
                WasmValue::ExnRef(None),
            ],
            tables: vec![vec![], vec![], vec![], vec![]],
            exceptions: vec![],
            dropped_data: vec![],
            dropped_elems: vec![],
        },
    ]
}

/// [`parts`] of a program that gave thread ids up to 9 and still runs
/// the threads of [`threads`].
pub fn threaded_parts(memory: &[u8]) -> SnapshotParts<'_> {
    SnapshotParts {
        threads: threads(),
        last_thread_id: 9,
        ..parts(memory)
    }
}

/// A memory of `pages` wasm pages where page `p` is non-zero iff
/// `nonzero(p)`; non-zero pages hold a pattern that depends on the page.
pub fn memory(pages: usize, nonzero: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut mem = vec![0u8; pages * PAGE];
    for p in 0..pages {
        if nonzero(p) {
            // Only a few bytes, at page-dependent places, to check that a
            // mostly zero page is still kept whole.
            mem[p * PAGE + (p * 977) % PAGE] = p as u8 | 1;
            mem[p * PAGE + PAGE - 1] = 0x5a;
        }
    }
    mem
}

/// The small snapshot used by the exhaustive damage tests: two pages, the
/// second one non-zero, so it has every part (sections, padding, one run).
pub fn small_memory() -> Vec<u8> {
    memory(2, |p| p == 1)
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mvvm-snapshot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Asserts that a snapshot read back holds exactly `parts`.
pub fn assert_same(snap: &mvvm_snapshot::Snapshot, parts: &SnapshotParts<'_>) {
    assert_eq!(snap.info, parts.info);
    assert_eq!(snap.frames, parts.frames);
    assert_eq!(snap.globals, parts.globals);
    assert_eq!(snap.tables, parts.tables);
    assert_eq!(snap.exceptions, parts.exceptions);
    assert_eq!(snap.dropped_data, parts.dropped_data);
    assert_eq!(snap.dropped_elems, parts.dropped_elems);
    assert_eq!(snap.wasi, parts.wasi);
    assert_eq!(snap.monotonic_offset_nanos, parts.monotonic_offset_nanos);
    assert_eq!(snap.threads, parts.threads);
    assert_eq!(snap.last_thread_id, parts.last_thread_id);
    assert_eq!(snap.memory.length_bytes(), parts.memory.len() as u64);
    assert_eq!(snap.memory.max_pages(), parts.max_pages);
    let bytes = snap.memory_bytes().expect("memory bytes");
    assert!(bytes == parts.memory, "memory differs");
}

/// `err` and its causes on one line, `: `-separated (what a user sees:
/// a message no longer repeats its source, the chain is printed).
pub fn chain(err: &dyn std::error::Error) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
