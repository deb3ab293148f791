//! Restoring hostile but well-formed snapshots: every checksum right, every
//! structure decodable, but asking for more than the receiver allows or
//! naming things that do not exist. Each must be refused with a clear
//! error, before the part concerned is read or allocated.
//!
//! The snapshots are built through the snapshot crate's own types and
//! writer from a real checkpoint of a small program. "Quickly, with
//! bounded memory" holds by construction: every refusal here happens on a
//! section's length or a count, before the section's contents (or the
//! memory data) are read, so each test costs what its input costs to
//! build (at most a few tens of MB, for the million-frame case).

mod ckpt_common;

use ckpt_common::{cfg, checkpoint_at, temp_dir};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointError, Outcome, RestoreLimits, RestoreOptions, SnapshotSource, Trigger,
};
use mvvm_snapshot::{
    BaseRef, FrameRecord, Snapshot, SnapshotError, SnapshotInfo, SnapshotParts, WasmValue,
};
use mvvm_wasi::WasiState;
use mvvm_wasi::{Command, DEFAULT_MAX_DESCRIPTORS};
use std::path::{Path, PathBuf};

/// Wasm stack of the restores: 1 MiB, so at most 65537 frames and 131136
/// saved values (see `RestoreLimits::read_limits`).
const STACK: usize = 1 << 20;

/// `_start` calls a loop over a memory of at most 16 pages: a snapshot
/// holds two frames, `_start` at the call and `$work` in its loop.
const WAT: &str = r#"(module
  (memory (export "memory") 1 16)
  (func $work (local $i i32)
    (loop $l
      (i32.store (i32.const 64) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000)))))
  (func (export "_start") (call $work)))"#;

fn module() -> Module {
    ckpt_common::compile(WAT, Policy::Loop, 0)
}

/// A real snapshot of [`WAT`] at its 10th probe, in a fresh directory.
fn real_snapshot(m: &Module, tag: &str) -> (PathBuf, Snapshot) {
    let dir = temp_dir("hostile", tag);
    let path = dir.join("real.bin");
    checkpoint_at(m, &dir, STACK, 10, &path);
    let snap = mvvm_snapshot::open_file(&path).expect("open the real snapshot");
    (path, snap)
}

/// Everything of a snapshot, owned, to be altered and written again.
struct Owned {
    info: SnapshotInfo,
    frames: Vec<FrameRecord>,
    globals: Vec<WasmValue>,
    tables: Vec<Vec<WasmValue>>,
    exceptions: Vec<mvvm_snapshot::ExceptionRecord>,
    dropped_data: Vec<u32>,
    dropped_elems: Vec<u32>,
    wasi: Vec<u8>,
    monotonic_offset_nanos: u64,
    memory: Vec<u8>,
    max_pages: Option<u64>,
}

impl Owned {
    fn of(s: &Snapshot) -> Owned {
        Owned {
            info: s.info.clone(),
            frames: s.frames.clone(),
            globals: s.globals.clone(),
            tables: s.tables.clone(),
            exceptions: s.exceptions.clone(),
            dropped_data: s.dropped_data.clone(),
            dropped_elems: s.dropped_elems.clone(),
            wasi: s.wasi.clone(),
            monotonic_offset_nanos: s.monotonic_offset_nanos,
            memory: s.memory_bytes().unwrap(),
            max_pages: s.memory.max_pages(),
        }
    }

    fn parts(&self) -> SnapshotParts<'_> {
        SnapshotParts {
            info: self.info.clone(),
            frames: self.frames.clone(),
            globals: self.globals.clone(),
            tables: self.tables.clone(),
            exceptions: self.exceptions.clone(),
            dropped_data: self.dropped_data.clone(),
            dropped_elems: self.dropped_elems.clone(),
            wasi: self.wasi.clone(),
            monotonic_offset_nanos: self.monotonic_offset_nanos,
            memory: &self.memory,
            max_pages: self.max_pages,
            threads: Vec::new(),
            last_thread_id: 0,
        }
    }

    /// Writes the snapshot to `path` (the crate's atomic writer).
    fn write_file(&self, path: &Path) -> PathBuf {
        mvvm_snapshot::write_file_atomic(path, &self.parts()).expect("write the snapshot");
        path.to_path_buf()
    }

    /// The snapshot as a byte stream (the crate's streaming writer).
    fn stream(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        mvvm_snapshot::write(&mut bytes, &self.parts()).expect("write the snapshot");
        bytes
    }
}

/// Restores from `source` with the runtime's `limits` and at most
/// `max_descriptors` WASI descriptors, granting `dir` as `/work` (where
/// the checkpointed guest had it).
fn restore_with(
    m: &Module,
    source: SnapshotSource,
    (limits, max_descriptors): (RestoreLimits, u64),
    dir: &Path,
) -> Result<Outcome, mvvm_wasi::Error> {
    Command::new(m)
        .max_wasm_stack(STACK)
        .grants(ckpt_common::grants(dir))
        .max_descriptors(max_descriptors)
        .restore(
            source,
            cfg(Trigger::None, &dir.join("next.bin")),
            RestoreOptions {
                limits,
                ..Default::default()
            },
        )
}

fn restore_file(m: &Module, path: &Path) -> Result<Outcome, mvvm_wasi::Error> {
    restore_with(
        m,
        SnapshotSource::File(path.to_path_buf()),
        (RestoreLimits::default(), DEFAULT_MAX_DESCRIPTORS),
        path.parent().unwrap(),
    )
}

fn restore_stream(m: &Module, bytes: Vec<u8>, dir: &Path) -> Result<Outcome, mvvm_wasi::Error> {
    restore_with(
        m,
        SnapshotSource::Stream(Box::new(std::io::Cursor::new(bytes))),
        (RestoreLimits::default(), DEFAULT_MAX_DESCRIPTORS),
        dir,
    )
}

/// The limit error inside `r`, as (what, found, limit); panics otherwise.
fn limit_exceeded(r: Result<Outcome, mvvm_wasi::Error>) -> (String, u64, u64) {
    match r {
        Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(
            SnapshotError::LimitExceeded { what, found, limit },
        ))) => (what, found, limit),
        other => panic!("expected a limit refusal, got {other:?}"),
    }
}

#[test]
fn the_real_snapshot_restores() {
    // The baseline every hostile variant is derived from is good.
    let m = module();
    let (path, snap) = real_snapshot(&m, "baseline");
    let again = Owned::of(&snap).write_file(&path.with_file_name("again.bin"));
    let out = restore_file(&m, &again).expect("restore");
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
}

#[test]
fn memory_above_the_module_maximum_or_max_memory_is_refused() {
    let m = module();
    let (path, snap) = real_snapshot(&m, "memory");
    let mut o = Owned::of(&snap);
    // 32 pages, non-zero, and no declared maximum: the module allows 16.
    o.memory = vec![0x5a; 32 << 16];
    o.max_pages = None;
    let big = o.write_file(&path.with_file_name("big.bin"));
    let (what, found, limit) = limit_exceeded(restore_file(&m, &big));
    assert!(what.contains("memory length"), "{what}");
    assert_eq!((found, limit), (32 << 16, 16 << 16));
    // The same from a stream: refused before the 2 MiB of runs are read
    // (the stream ends right after the sections, and still it is the
    // limit, not a truncation, that is reported).
    let bytes = o.stream();
    let cut = bytes.len() - (32 << 16);
    let dir = path.parent().unwrap();
    let (what, ..) = limit_exceeded(restore_stream(&m, bytes[..cut].to_vec(), dir));
    assert!(what.contains("memory length"), "{what}");
    // Within the module's maximum but above the receiver's --max-memory.
    o.memory = vec![0x5a; 4 << 16];
    let four = o.write_file(&path.with_file_name("four.bin"));
    let limits = RestoreLimits {
        max_memory_bytes: 2 << 16,
        ..Default::default()
    };
    let r = restore_with(
        &m,
        SnapshotSource::File(four),
        (limits, DEFAULT_MAX_DESCRIPTORS),
        dir,
    );
    let (what, found, limit) = limit_exceeded(r);
    assert!(what.contains("memory length"), "{what}");
    assert_eq!((found, limit), (4 << 16, 2 << 16));
}

#[test]
fn deep_frame_stacks_are_refused_by_the_stack_size() {
    let m = module();
    let (path, snap) = real_snapshot(&m, "frames");
    let dir = path.parent().unwrap();
    let mut o = Owned::of(&snap);
    let frame = o.frames.last().unwrap().clone();
    let bare = FrameRecord {
        func: frame.func,
        resume_offset: frame.resume_offset,
        locals: vec![],
        stack: vec![],
    };
    // A million frames (24 MB of frames section): its length alone
    // exceeds what a 1 MiB stack allows (about 4 MB), so it is refused
    // before a byte of it is read.
    o.frames = vec![bare.clone(); 1_000_000];
    let bytes = o.stream();
    let (what, found, limit) = limit_exceeded(restore_stream(&m, bytes, dir));
    assert!(what.contains("frames section"), "{what}");
    assert!(found > 24_000_000 && limit < 5_000_000, "{found} {limit}");
    // Small frames, just over the count: the section fits its byte bound,
    // the count does not (65537 frames for 1 MiB).
    o.frames = vec![bare; 70_000];
    let (what, found, limit) = limit_exceeded(restore_stream(&m, o.stream(), dir));
    assert!(what.contains("number of frames"), "{what}");
    assert_eq!((found, limit), (70_000, 65_537));
    // Few frames, too many values: 200000 locals in one frame.
    o.frames = vec![FrameRecord {
        locals: vec![WasmValue::I32(0); 200_000],
        ..frame
    }];
    let (what, found, limit) = limit_exceeded(restore_stream(&m, o.stream(), dir));
    assert!(what.contains("saved values"), "{what}");
    assert_eq!((found, limit), (200_000, (1 << 17) + 64));
}

#[test]
fn frames_naming_nothing_in_the_module_are_refused() {
    let m = module();
    let (path, snap) = real_snapshot(&m, "bad-frames");
    assert_eq!(snap.frames.len(), 2, "_start and $work");
    let outer = snap.frames[0].clone();
    let inner = snap.frames[1].clone();
    let cases: Vec<(Vec<FrameRecord>, &str)> = vec![
        (vec![], "no frame"),
        (
            vec![FrameRecord {
                func: u32::MAX,
                ..outer.clone()
            }],
            "neither",
        ),
        (
            vec![
                outer.clone(),
                FrameRecord {
                    func: 9999,
                    ..inner.clone()
                },
            ],
            "no such defined function",
        ),
        (
            vec![
                outer.clone(),
                FrameRecord {
                    resume_offset: 0xdead_beef,
                    ..inner.clone()
                },
            ],
            "stable point",
        ),
        (vec![inner.clone(), inner.clone()], "neither"),
        (
            vec![
                outer.clone(),
                FrameRecord {
                    locals: vec![WasmValue::I64(1); inner.locals.len() + 3],
                    ..inner.clone()
                },
            ],
            "locals saved",
        ),
        (
            vec![
                outer.clone(),
                FrameRecord {
                    locals: vec![WasmValue::FuncRef(Some(u32::MAX)); inner.locals.len()],
                    ..inner.clone()
                },
            ],
            "local 0",
        ),
    ];
    let mut o = Owned::of(&snap);
    for (k, (frames, expect)) in cases.into_iter().enumerate() {
        o.frames = frames;
        let p = o.write_file(&path.with_file_name(format!("frames{k}.bin")));
        match restore_file(&m, &p) {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Mismatch(msg))) => {
                assert!(msg.contains(expect), "{k}: {msg}")
            }
            other => panic!("case {k}: expected a mismatch, got {other:?}"),
        }
    }
}

#[test]
fn thousands_of_descriptors_are_refused_before_any_is_opened() {
    let m = module();
    let (path, snap) = real_snapshot(&m, "fds");
    let state: WasiState = mvvm_abi::codec::decode(&snap.wasi).expect("the real WASI state");
    let (_, entry) = state
        .fds
        .iter()
        .next_back()
        .map(|(k, v)| (*k, v.clone()))
        .expect("a descriptor");
    let mut o = Owned::of(&snap);
    // 100000 copies of a descriptor: above the default 65536.
    let mut many = state.clone();
    for fd in 10..100_010u32 {
        many.fds.insert(fd, entry.clone());
    }
    o.wasi = mvvm_abi::codec::encode(&many).unwrap();
    let p = o.write_file(&path.with_file_name("fds.bin"));
    let (what, found, limit) = limit_exceeded(restore_file(&m, &p));
    assert!(what.contains("WASI descriptors"), "{what}");
    assert_eq!(limit, DEFAULT_MAX_DESCRIPTORS);
    assert!(found >= 100_000, "{found}");
    // A receiver's tighter limit, and a WASI state larger than allowed.
    let mut some = state.clone();
    for fd in 10..2010u32 {
        some.fds.insert(fd, entry.clone());
    }
    o.wasi = mvvm_abi::codec::encode(&some).unwrap();
    let p = o.write_file(&path.with_file_name("fds2.bin"));
    let limits = (RestoreLimits::default(), 1000);
    let dir = path.parent().unwrap();
    let r = restore_with(&m, SnapshotSource::File(p.clone()), limits, dir);
    let (what, ..) = limit_exceeded(r);
    assert!(what.contains("WASI descriptors"), "{what}");
    let limits = (
        RestoreLimits {
            max_host_state_bytes: 4096,
            ..Default::default()
        },
        DEFAULT_MAX_DESCRIPTORS,
    );
    let (what, ..) = limit_exceeded(restore_with(&m, SnapshotSource::File(p), limits, dir));
    assert!(what.contains("wasi section"), "{what}");
}

/// Rewrites the header of the incremental snapshot at `path` so that it
/// names its base as `recorded`, through the crate's own types: the header
/// is `codec(SnapshotInfo, Option<BaseRef>, section table)` (see
/// `docs/snapshot-format.md`); its checksum is recomputed.
fn rename_base(path: &Path, recorded: &str) {
    type SectionEntry = (u32, u64, u32);
    type Header = (SnapshotInfo, Option<BaseRef>, Vec<SectionEntry>);
    let bytes = std::fs::read(path).unwrap();
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let (info, base, sections): Header =
        mvvm_abi::codec::decode(&bytes[20..20 + header_len]).unwrap();
    let mut base = base.expect("an incremental snapshot");
    base.path = recorded.to_string();
    // The sections, unchanged, then zero padding to 64 KiB and the memory
    // data, unchanged (the padding follows the new header's length).
    let sections_start = 20 + header_len;
    let sections_end = sections_start + sections.iter().map(|s| s.1 as usize).sum::<usize>();
    let align = |n: usize| n.div_ceil(1 << 16) << 16;
    let data_start = if bytes.len() > sections_end {
        align(sections_end)
    } else {
        sections_end
    };
    let header = mvvm_abi::codec::encode(&(info, Some(base), sections)).unwrap();
    let mut out = bytes[..8 + 4].to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    let mut crc = crc32(&out);
    crc.update(&header);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[sections_start..sections_end]);
    if data_start < bytes.len() {
        out.resize(align(out.len()), 0);
        out.extend_from_slice(&bytes[data_start..]);
    }
    std::fs::write(path, out).unwrap();
}

fn crc32(bytes: &[u8]) -> Crc32 {
    let mut c = Crc32::default();
    c.update(bytes);
    c
}

/// A byte-wise CRC-32 (IEEE), enough for a header of a few hundred bytes.
#[derive(Default)]
struct Crc32(u32);

impl Crc32 {
    fn update(&mut self, bytes: &[u8]) {
        let mut c = !self.0;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        self.0 = !c;
    }

    fn finalize(&self) -> u32 {
        self.0
    }
}

#[test]
fn a_base_named_by_a_host_path_is_never_opened() {
    let m = module();
    let (path, snap) = real_snapshot(&m, "base");
    // An honest incremental snapshot next to its base restores.
    let o = Owned::of(&snap);
    let inc_path = path.with_file_name("inc.bin");
    let inc = mvvm_snapshot::Incremental {
        base: BaseRef {
            id: snap.id,
            path: "real.bin".into(),
            base_depth: 0,
        },
        dirty: vec![],
    };
    mvvm_snapshot::write_incremental_file_atomic(&inc_path, &o.parts(), &inc).unwrap();
    let out = restore_file(&m, &inc_path).expect("honest incremental restore");
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    // The crate's writer refuses to name a host path...
    for bad in ["/etc/passwd", "../x.bin"] {
        let inc = mvvm_snapshot::Incremental {
            base: BaseRef {
                path: bad.into(),
                ..inc.base.clone()
            },
            dirty: vec![],
        };
        let e =
            mvvm_snapshot::write_incremental_file_atomic(&inc_path, &o.parts(), &inc).unwrap_err();
        assert!(matches!(e, SnapshotError::InvalidInput { .. }), "{e}");
    }
    // ...and a snapshot from another writer that does is refused, naming
    // the rule, whatever the path names (a real base, here, reached by
    // `../` or by its absolute path, or /etc/passwd).
    let dir = path.parent().unwrap();
    let dir_name = dir.file_name().unwrap().to_str().unwrap();
    let absolute = path.display().to_string();
    let up = format!("../{dir_name}/real.bin");
    for bad in ["/etc/passwd", "../x.bin", absolute.as_str(), up.as_str()] {
        mvvm_snapshot::write_incremental_file_atomic(&inc_path, &o.parts(), &inc).unwrap();
        rename_base(&inc_path, bad);
        match restore_file(&m, &inc_path) {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(
                SnapshotError::BasePathRefused { path, reason, .. },
            ))) => {
                assert_eq!(path, bad);
                assert!(reason.contains("plain file name"), "{reason}");
            }
            other => panic!("base {bad}: expected a refusal, got {other:?}"),
        }
    }
    // A plain name that is a symbolic link to the real base: refused too.
    std::os::unix::fs::symlink(&path, dir.join("link.bin")).unwrap();
    mvvm_snapshot::write_incremental_file_atomic(&inc_path, &o.parts(), &inc).unwrap();
    rename_base(&inc_path, "link.bin");
    match restore_file(&m, &inc_path) {
        Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(
            SnapshotError::BasePathRefused { reason, .. },
        ))) => {
            assert!(reason.contains("symbolic link"), "{reason}")
        }
        other => panic!("symlinked base: expected a refusal, got {other:?}"),
    }
}
