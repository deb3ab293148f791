//! A periodic checkpoint written in the background (`checkpoint/
//! background.rs`) saves what a stop-the-world checkpoint of the same
//! point saves (project issue 14).
//!
//! A deterministic WASI guest runs with `Trigger::Every` and incremental
//! snapshots; each snapshot is kept. Its point is the loop counter `$i` in
//! its innermost frame (a loop probe per iteration, at the loop header).
//! The stop-the-world snapshot of that point comes from a second run with
//! `Trigger::ProbeCount`: for the first (full) snapshot a fresh run; for
//! each later one a restore of the previous background snapshot, with
//! dirty tracking, under the name the background run kept it as, so that
//! the stop-the-world snapshot is of the same kind over the same base.
//!
//! The two files are then compared byte for byte except for what
//! legitimately differs per write, read off `docs/snapshot-format.md`:
//! - the header's `created_unix_nanos` (time of the trigger) and `note`
//!   (the trigger's name and the probe count, which a periodic run does
//!   not count), hence the header's length, crc and the snapshot id, and
//!   the zero padding before the memory runs;
//! - the guest's monotonic clock at the checkpoint: the Clock section and
//!   the `clocks` of the WASI state (a restored run also continues the
//!   clock with an offset). The rest of the WASI state is compared decoded.
//!
//! Everything else must be equal bytes: the section table (kinds, lengths,
//! crc32s), frames, globals, tables, exceptions, segments, threads, the
//! memory table and every memory run, the base an incremental names; and
//! decoded, the chain-resolved memory image. A writer that read memory
//! after the program went on would save another iteration's fill beside
//! `$i`; one that captured state elsewhere would differ in frames.
//! Finally the last background snapshot, chain resolved, is compared with
//! a fresh stop-the-world run to its point (no restore in between).

mod ckpt_common;

use ckpt_common::{cfg, grants, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointStats, Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger, base_keep_path,
};
use mvvm_snapshot::{Snapshot, WasmValue};
use mvvm_wasi::Command;
use mvvm_wasi::state::WasiState;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const STACK: usize = 1 << 20;

/// Opens `/work/out`, then 40 000 iterations: fill 256 KiB (pages 1..=4)
/// with the byte `$i`, store `$i` at address 0, add it to a global, put a
/// function or null in table slot 1 by its parity, and every 64th
/// iteration append its 4 bytes to the file (the descriptor's position is
/// in the WASI state). About a second of work.
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 8)
  (global $sum (mut i64) (i64.const 0))
  (table 2 funcref)
  (elem declare func $main)
  (data (i32.const 32) "out")
  (func $main (export "_start") (local $i i32) (local $fd i32)
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 3)
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 8))
      (then unreachable))
    (local.set $fd (i32.load (i32.const 8)))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 4))
    (loop $l
      (memory.fill (i32.const 65536) (local.get $i) (i32.const 262144))
      (i32.store (i32.const 0) (local.get $i))
      (global.set $sum (i64.add (global.get $sum) (i64.extend_i32_u (local.get $i))))
      (table.set (i32.const 1)
        (select (result funcref) (ref.func $main) (ref.null func)
          (i32.and (local.get $i) (i32.const 1))))
      (if (i32.eqz (i32.and (local.get $i) (i32.const 63)))
        (then
          (if (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))
            (then unreachable))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40000))))))"#;

/// The tests share [`KEPT`]: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The run's snapshot directory and the kept snapshots (`on_checkpoint`
/// is a plain function).
static KEPT: Mutex<Option<(PathBuf, Vec<PathBuf>)>> = Mutex::new(None);

/// Keeps the snapshot just reported, by a hard link into `keep/` (the run
/// replaces it by rename, the link keeps the inode), and the bases the
/// run kept for its chain under their own names: they go once a full
/// snapshot follows, and the kept incrementals name them.
fn keep(stats: &CheckpointStats) {
    let mut kept = KEPT.lock().unwrap();
    let Some((dir, copies)) = kept.as_mut() else {
        return;
    };
    let to = dir.join("keep");
    for e in std::fs::read_dir(&*dir).unwrap() {
        let name = e.unwrap().file_name();
        let name = name.to_str().unwrap();
        if name.starts_with("p.") && name.ends_with(".snap") && name != "p.snap" {
            let link = to.join(name);
            if !link.exists() {
                std::fs::hard_link(dir.join(name), link).unwrap();
            }
        }
    }
    let copy = to.join(format!("bg-{}.snap", copies.len()));
    std::fs::hard_link(&stats.location, &copy).unwrap();
    copies.push(copy);
}

/// The loop counter in the innermost frame.
fn counter(s: &Snapshot) -> u32 {
    let frame = s.frames.last().expect("a frame");
    match frame.locals[0] {
        WasmValue::I32(i) => i,
        other => panic!("local 0 is {other:?}"),
    }
}

fn checkpointed(out: Result<Outcome, mvvm_wasi::Error>, what: &str) {
    match out {
        Ok(Outcome::Checkpointed { .. }) => {}
        other => panic!("{what}: expected a checkpoint, got {other:?}"),
    }
}

/// The WASI state with the clocks left out (they hold the guest's
/// monotonic time at the checkpoint).
fn wasi_without_clocks(s: &Snapshot) -> WasiState {
    let mut w: WasiState = mvvm_abi::codec::decode(&s.wasi).expect("WASI state decodes");
    w.clocks = Default::default();
    w
}

/// `a` and `b` describe the same program state: everything decoded but
/// the clock, and the whole memory image (chains resolved).
fn same_state(a: &Snapshot, b: &Snapshot, what: &str) {
    assert_eq!(a.frames, b.frames, "{what}: frames");
    assert_eq!(a.globals, b.globals, "{what}: globals");
    assert_eq!(a.tables, b.tables, "{what}: tables");
    assert_eq!(a.exceptions, b.exceptions, "{what}: exceptions");
    assert_eq!(a.dropped_data, b.dropped_data, "{what}: dropped data");
    assert_eq!(a.dropped_elems, b.dropped_elems, "{what}: dropped elems");
    assert_eq!(a.threads, b.threads, "{what}: threads");
    assert_eq!(a.last_thread_id, b.last_thread_id, "{what}: last thread");
    assert_eq!(
        wasi_without_clocks(a),
        wasi_without_clocks(b),
        "{what}: WASI state"
    );
    let (ia, ib) = (&a.info, &b.info);
    assert_eq!(
        (&ia.producer, ia.wasm_sha256, &ia.policy, &ia.source_arch),
        (&ib.producer, ib.wasm_sha256, &ib.policy, &ib.source_arch),
        "{what}: info"
    );
    assert_eq!(a.memory.length_bytes(), b.memory.length_bytes(), "{what}");
    assert_eq!(a.memory.max_pages(), b.memory.max_pages(), "{what}");
    let (ma, mb) = (a.memory_bytes().unwrap(), b.memory_bytes().unwrap());
    if let Some(at) = ma.iter().zip(&mb).position(|(x, y)| x != y) {
        panic!(
            "{what}: memory differs from guest address {at:#x} on ({} against {})",
            ma[at], mb[at]
        );
    }
}

/// A snapshot file cut at the places `docs/snapshot-format.md` gives.
struct Layout {
    bytes: Vec<u8>,
    /// Header length H.
    header_len: usize,
    /// (kind, len, crc32) of the nine sections, in file order.
    table: Vec<(u32, u64, u32)>,
}

const CLOCK: u32 = 5;
const WASI: u32 = 7;

impl Layout {
    fn read(path: &Path) -> Layout {
        let bytes = std::fs::read(path).unwrap();
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        assert_eq!(&bytes[..8], b"MVVMSNAP");
        let header_len = u32_at(12) as usize;
        // The header ends with the section table: a u64 count, then
        // (kind u32, len u64, crc32 u32) per section.
        let end = 20 + header_len;
        let start = end - (8 + 9 * 16);
        assert_eq!(u64_at(start), 9, "{}: section count", path.display());
        let table: Vec<_> = (0..9)
            .map(|k| {
                let o = start + 8 + k * 16;
                (u32_at(o), u64_at(o + 4), u32_at(o + 12))
            })
            .collect();
        let kinds: Vec<u32> = table.iter().map(|t| t.0).collect();
        assert_eq!(kinds, (0..9).collect::<Vec<u32>>(), "{}", path.display());
        Layout {
            bytes,
            header_len,
            table,
        }
    }

    /// The bytes of section `kind`.
    fn section(&self, kind: u32) -> &[u8] {
        let before: u64 = self.table[..kind as usize].iter().map(|t| t.1).sum();
        let at = 20 + self.header_len + before as usize;
        &self.bytes[at..at + self.table[kind as usize].1 as usize]
    }

    /// The memory runs' bytes (after the padding), `data` bytes of them.
    fn runs(&self, data: u64) -> &[u8] {
        let sections: u64 = self.table.iter().map(|t| t.1).sum();
        let s = 20 + self.header_len as u64 + sections;
        let d = if data == 0 {
            s
        } else {
            s.next_multiple_of(65536)
        };
        assert_eq!(d + data, self.bytes.len() as u64, "file length");
        &self.bytes[d as usize..]
    }
}

/// The files `a` and `b` are the same bytes but for the fields written
/// per write (see the module documentation), and describe the same state.
fn same_snapshot(a: &Path, b: &Path, what: &str) {
    let (sa, sb) = (
        mvvm_snapshot::open_file(a).unwrap(),
        mvvm_snapshot::open_file(b).unwrap(),
    );
    same_state(&sa, &sb, what);
    assert_eq!(sa.base, sb.base, "{what}: base (kind, id, path, depth)");
    let (la, lb) = (Layout::read(a), Layout::read(b));
    for (ta, tb) in la.table.iter().zip(&lb.table) {
        if ta.0 == CLOCK || ta.0 == WASI {
            assert_eq!(ta.1, tb.1, "{what}: length of section {}", ta.0);
        } else {
            assert_eq!(ta, tb, "{what}: section table entry {}", ta.0);
            assert!(
                la.section(ta.0) == lb.section(ta.0),
                "{what}: bytes of section {}",
                ta.0
            );
        }
    }
    let data = sa.memory.data_bytes();
    assert_eq!(data, sb.memory.data_bytes(), "{what}: memory run bytes");
    assert!(la.runs(data) == lb.runs(data), "{what}: memory runs differ");
}

/// [`GUEST`] with a 68 MiB memory (above the 64 MiB from which dirty
/// tracking protects 2 MiB units on huge pages) and, per iteration, 1 MiB
/// filled at `64 KiB + ($i % 64) MiB` (every 2 MiB unit of the memory is
/// written within 64 iterations, so the program writes hard through each
/// background write: the copy-on-write image saves many chunks), 3 000
/// iterations.
fn large_guest() -> String {
    let g = GUEST
        .replace("(memory 8)", "(memory 1088)")
        .replace(
            "(memory.fill (i32.const 65536) (local.get $i) (i32.const 262144))",
            "(memory.fill (i32.add (i32.const 65536) (i32.shl (i32.and (local.get $i) (i32.const 63)) (i32.const 20))) (local.get $i) (i32.const 1048576))",
        )
        .replace("(i32.const 40000)", "(i32.const 3000)");
    assert!(g.contains("1048576") && g.contains("1088") && g.contains("3000"));
    g
}

#[test]
fn background_snapshots_equal_stop_the_world_ones_of_the_same_point() {
    identity(GUEST, "run", 15);
}

/// The same on a memory large enough for 2 MiB tracking units, written
/// hard while each snapshot is written: every chunk the program changes
/// during the write must come from the image's saved copy.
#[test]
fn background_snapshots_of_a_large_memory_written_during_the_write() {
    identity(&large_guest(), "large", 40);
}

/// Runs `guest` with periodic background checkpoints every `period_ms`
/// and compares each snapshot with the stop-the-world one of its point.
fn identity(guest: &str, tag: &str, period_ms: u64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let module: Module = ckpt_common::compile(guest, Policy::Loop, 2);
    // How many periods fire depends on how fast the guest and the writer
    // run (a period that comes while a write is pending is skipped): on a
    // slow host (qemu, a loaded machine) the run is tried again with a
    // shorter period rather than compared on too few snapshots, and at
    // the shortest period up to three times (how many writes fit in the
    // run varies with the host's load).
    let mut period = period_ms;
    let mut tries_at_floor = 0;
    let (dir, keep_dir, copies) = loop {
        let dir = temp_dir("bgident", tag);
        let keep_dir = dir.join("keep");
        std::fs::create_dir(&keep_dir).unwrap();
        *KEPT.lock().unwrap() = Some((dir.clone(), Vec::new()));
        let out = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(
                cfg(
                    Trigger::Every(Duration::from_millis(period)),
                    &dir.join("p.snap"),
                ),
                RunOptions {
                    on_checkpoint: Some(keep),
                    incremental: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
        let copies = KEPT.lock().unwrap().take().unwrap().1;
        if period <= 5 {
            tries_at_floor += 1;
        }
        if copies.len() >= 3 || tries_at_floor == 3 {
            break (dir, keep_dir, copies);
        }
        let shorter = (period / 4).max(5);
        eprintln!(
            "only {} periodic checkpoints every {period} ms: again every {shorter} ms",
            copies.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
        period = shorter;
    };
    assert!(
        copies.len() >= 3,
        "only {} periodic checkpoints in the run, even every {period} ms",
        copies.len()
    );
    let snaps: Vec<Snapshot> = copies
        .iter()
        .map(|c| mvvm_snapshot::open_file(c).unwrap())
        .collect();
    assert!(
        snaps[0].base.is_none(),
        "the first periodic snapshot is full"
    );
    assert!(
        snaps[1].base.is_some(),
        "the second periodic snapshot is incremental"
    );
    let incremental = snaps.iter().filter(|s| s.base.is_some()).count();
    eprintln!(
        "{} periodic snapshots ({incremental} incremental), compared with stop-the-world ones",
        snaps.len()
    );
    let mut previous: Option<u32> = None;
    for (j, (copy, snap)) in copies.iter().zip(&snaps).enumerate() {
        let k = counter(snap);
        let stw = keep_dir.join(format!("stw-{j}.snap"));
        let what = format!("periodic snapshot {j} ($i = {k})");
        match previous {
            // Loop probe n (1-based) is at the header with $i = n - 1.
            None => checkpointed(
                Command::new(&module)
                    .config(wasi(&dir))
                    .max_wasm_stack(STACK)
                    .run(
                        cfg(Trigger::ProbeCount(u64::from(k) + 1), &stw),
                        RunOptions::default(),
                    ),
                &what,
            ),
            Some(before) => {
                assert!(k > before, "{what}: after $i = {before}");
                // The previous snapshot under the name the run kept it as,
                // which the incremental names as its base.
                let id = snaps[j - 1].id;
                let kept_name = base_keep_path(&dir.join("p.snap"), &id);
                let base = keep_dir.join(kept_name.file_name().unwrap());
                if !base.exists() {
                    std::fs::hard_link(&copies[j - 1], &base).unwrap();
                }
                // Counting starts again at the restore, whose first
                // probe is the one the previous snapshot was taken at.
                checkpointed(
                    Command::new(&module)
                        .grants(grants(&dir))
                        .max_wasm_stack(STACK)
                        .restore(
                            SnapshotSource::File(base),
                            cfg(Trigger::ProbeCount(u64::from(k - before) + 1), &stw),
                            RestoreOptions {
                                incremental: true,
                                ..Default::default()
                            },
                        ),
                    &what,
                );
            }
        }
        let stw_snap = mvvm_snapshot::open_file(&stw).unwrap();
        assert_eq!(counter(&stw_snap), k, "{what}: the stop-the-world point");
        same_snapshot(copy, &stw, &what);
        previous = Some(k);
    }
    // The last one against a fresh run to its point: the chain resolved
    // equals the state reached without any checkpoint on the way.
    let last = snaps.last().unwrap();
    let k = counter(last);
    let fresh = keep_dir.join("fresh.snap");
    checkpointed(
        Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(
                cfg(Trigger::ProbeCount(u64::from(k) + 1), &fresh),
                RunOptions::default(),
            ),
        "fresh run",
    );
    let fresh_snap = mvvm_snapshot::open_file(&fresh).unwrap();
    assert!(fresh_snap.base.is_none());
    same_state(
        last,
        &fresh_snap,
        "last periodic snapshot against a fresh run",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
