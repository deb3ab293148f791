//! Dirty tracking and incremental snapshots, in-process: a loop-dirty
//! program checkpointed, restored and checkpointed again writes an
//! incremental snapshot much smaller than the full one, and restoring the
//! chain ends exactly as the uninterrupted run. Host writes into guest
//! memory (`args_get`, `random_get`) between the two checkpoints must be
//! in the incremental snapshot. Periodic checkpoints (`Trigger::Every`)
//! continue the run and write a chain.

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, CheckpointError, CheckpointStats, Outcome, RestoreOptions, RunOptions,
    SnapshotSink, SnapshotSource, Trigger, base_keep_path,
};
use mvvm_wasi::Command;
use mvvm_wasi::WasiConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const STACK: usize = 1 << 20;
const PAGE: i32 = 65536;

/// 64 pages, all filled (so a full snapshot is ~4 MiB); then `$work`
/// iterations each storing into one of pages 1..=4; at iteration 100 the
/// host writes the arguments into page 60 and random bytes into page 61.
/// Exit code: a checksum of pages 1..=4, of the argument bytes, and
/// whether the random bytes are there (not all zero).
fn wat(work: u32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory 64)
  (func (export "_start") (local $i i32) (local $k i32) (local $acc i32)
    (loop $fill
      (i32.store (i32.shl (local.get $i) (i32.const 12)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 1024))))
    (i32.store (i32.const {p60}) (i32.const 0))
    (i32.store (i32.const {p61}) (i32.const 0))
    (loop $work
      (i32.store
        (i32.add (i32.mul (i32.add (i32.const 1) (i32.rem_u (local.get $k) (i32.const 4))) (i32.const {PAGE}))
                 (i32.const 8))
        (i32.add (local.get $k)
          (i32.load (i32.add (i32.mul (i32.add (i32.const 1) (i32.rem_u (local.get $k) (i32.const 4))) (i32.const {PAGE}))
                 (i32.const 8)))))
      (if (i32.eq (local.get $k) (i32.const 100))
        (then
          (drop (call $args_get (i32.const {p60}) (i32.add (i32.const {p60}) (i32.const 64))))
          (drop (call $random_get (i32.const {p61}) (i32.const 16)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $work (i32.lt_u (local.get $k) (i32.const {work}))))
    (local.set $i (i32.const 1))
    (loop $sum
      (local.set $acc (i32.add (local.get $acc)
        (i32.load (i32.add (i32.mul (local.get $i) (i32.const {PAGE})) (i32.const 8)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $sum (i32.le_u (local.get $i) (i32.const 4))))
    (local.set $i (i32.const 0))
    (loop $args
      (local.set $acc (i32.add (local.get $acc)
        (i32.load8_u (i32.add (i32.const {p60}) (i32.add (i32.const 64) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $args (i32.lt_u (local.get $i) (i32.const 12))))
    (local.set $acc (i32.mul (local.get $acc) (i32.const 2)))
    (if (i64.ne (i64.or (i64.load (i32.const {p61})) (i64.load (i32.const {p61_8}))) (i64.const 0))
      (then (local.set $acc (i32.add (local.get $acc) (i32.const 1)))))
    (call $exit (i32.and (local.get $acc) (i32.const 255)))))"#,
        p60 = 60 * PAGE,
        p61 = 61 * PAGE,
        p61_8 = 61 * PAGE + 8,
    )
}

fn module(work: u32, policy: Policy) -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy,
        ..Default::default()
    };
    Module::from_aot(&mvvm_aot::compile(wat(work).as_bytes(), &opts).unwrap()).unwrap()
}

fn wasi() -> WasiConfig {
    WasiConfig {
        args: vec!["inc".into(), "hello-world".into()],
        ..Default::default()
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mvvm-inc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(trigger: Trigger, out: &Path) -> CheckpointConfig {
    CheckpointConfig {
        trigger,
        sink: SnapshotSink::File(out.to_path_buf()),
        log_probes: false,
        signals: false,
    }
}

fn exited(o: Outcome) -> (i32, u64) {
    match o {
        Outcome::Exited { code, probes } => (code, probes),
        other => panic!("expected an exit, got {other:?}"),
    }
}

fn checkpointed(o: Result<Outcome, mvvm_wasi::Error>) -> CheckpointStats {
    match o {
        Ok(Outcome::Checkpointed { stats }) => stats,
        other => panic!("expected a checkpoint, got {other:?}"),
    }
}

#[test]
fn chain_of_incremental_snapshots_restores_exactly() {
    let m = module(400, Policy::LoopDirty);
    let d = dir("chain");
    let snap = d.join("p.bin");
    let (want, probes) = exited(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::CountProbes, &snap), RunOptions::default())
            .unwrap(),
    );
    assert_eq!(want & 1, 1, "random bytes seen by the straight run");
    // First checkpoint inside $work before the host writes (probe 1024 +
    // 50), second after them: the host writes fall between.
    for (first, second) in [
        (1024 + 50, 200),
        (1024 + 50, 20),
        (1030, 300),
        (1024 + 120, 100),
    ] {
        let full = checkpointed(Command::new(&m).config(wasi()).max_wasm_stack(STACK).run(
            cfg(Trigger::ProbeCount(first), &snap),
            RunOptions::default(),
        ));
        assert_eq!(full.base, None);
        // Restore, checkpoint again to the same path: the base is kept
        // under a derived name, the new snapshot is incremental.
        let id = mvvm_snapshot::read_identity(&snap).unwrap().0;
        let inc = checkpointed(Command::new(&m).max_wasm_stack(STACK).restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::ProbeCount(second), &snap),
            RestoreOptions::default(),
        ));
        let kept = base_keep_path(&snap, &id);
        assert_eq!(
            inc.base.as_deref(),
            Some(kept.file_name().unwrap().to_str().unwrap())
        );
        assert!(kept.is_file());
        assert!(
            inc.snapshot_bytes * 8 < full.snapshot_bytes,
            "incremental {} bytes, full {}",
            inc.snapshot_bytes,
            full.snapshot_bytes
        );
        // A third link, to another path.
        let third = d.join("p3.bin");
        let inc2 = checkpointed(Command::new(&m).max_wasm_stack(STACK).restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::ProbeCount(5), &third),
            RestoreOptions::default(),
        ));
        assert_eq!(inc2.base.as_deref(), Some("p.bin"));
        for (from, verify) in [(&snap, true), (&third, true), (&third, false)] {
            let out = Command::new(&m)
                .max_wasm_stack(STACK)
                .restore(
                    SnapshotSource::File(from.clone()),
                    cfg(Trigger::None, &d.join("unused.bin")),
                    RestoreOptions {
                        skip_memory_verification: !verify,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(
                exited(out).0,
                want,
                "{first}/{second} from {}",
                from.display()
            );
        }
        let _ = std::fs::remove_file(&kept);
    }
    assert!(probes > 1024 + 400);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn altered_or_missing_base_is_refused_by_name() {
    let m = module(400, Policy::LoopDirty);
    let d = dir("refuse");
    let a = d.join("a.bin");
    let b = d.join("b.bin");
    checkpointed(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(1030), &a), RunOptions::default()),
    );
    let inc = checkpointed(Command::new(&m).max_wasm_stack(STACK).restore(
        SnapshotSource::File(a.clone()),
        cfg(Trigger::ProbeCount(10), &b),
        RestoreOptions::default(),
    ));
    assert_eq!(inc.base.as_deref(), Some("a.bin"));
    // Replace the base by another snapshot of the same program.
    checkpointed(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(1031), &a), RunOptions::default()),
    );
    let restore_b = || {
        Command::new(&m).max_wasm_stack(STACK).restore(
            SnapshotSource::File(b.clone()),
            cfg(Trigger::None, &d.join("unused.bin")),
            RestoreOptions::default(),
        )
    };
    let e = restore_b().unwrap_err().to_string();
    assert!(
        e.contains("a.bin") && e.contains("altered or replaced"),
        "{e}"
    );
    std::fs::remove_file(&a).unwrap();
    let e = restore_b().unwrap_err().to_string();
    assert!(e.contains("a.bin") && e.contains("no such file"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn policies_without_tracking_write_full_snapshots_unless_asked() {
    let m = module(400, Policy::Loop);
    let d = dir("loop");
    let a = d.join("a.bin");
    let full = checkpointed(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(1030), &a), RunOptions::default()),
    );
    let again = checkpointed(Command::new(&m).max_wasm_stack(STACK).restore(
        SnapshotSource::File(a.clone()),
        cfg(Trigger::ProbeCount(10), &d.join("b.bin")),
        RestoreOptions::default(),
    ));
    assert_eq!(again.base, None);
    assert!(again.snapshot_bytes * 2 > full.snapshot_bytes);
    let inc = checkpointed(Command::new(&m).max_wasm_stack(STACK).restore(
        SnapshotSource::File(a.clone()),
        cfg(Trigger::ProbeCount(10), &d.join("c.bin")),
        RestoreOptions {
            incremental: true,
            ..Default::default()
        },
    ));
    assert_eq!(inc.base.as_deref(), Some("a.bin"));
    let _ = std::fs::remove_dir_all(&d);
}

static PERIODIC: AtomicUsize = AtomicUsize::new(0);

fn count_periodic(stats: &CheckpointStats) {
    assert!(stats.snapshot_bytes > 0);
    PERIODIC.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn periodic_checkpoints_continue_and_write_a_chain() {
    let m = module(40_000_000, Policy::LoopDirty);
    let d = dir("every");
    let snap = d.join("e.bin");
    let (want, _) = exited(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::None, &snap), RunOptions::default())
            .unwrap(),
    );
    let out = Command::new(&m)
        .config(wasi())
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::Every(std::time::Duration::from_millis(3)), &snap),
            RunOptions {
                on_checkpoint: Some(count_periodic),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(exited(out).0, want, "the run went on after each checkpoint");
    let n = PERIODIC.load(Ordering::SeqCst);
    eprintln!("{n} periodic checkpoints");
    if n == 0 {
        // The machine was too slow to see one period: nothing to check.
        eprintln!("no periodic checkpoint taken");
        let _ = std::fs::remove_dir_all(&d);
        return;
    }
    let s = mvvm_snapshot::open_file(&snap).unwrap();
    // Depths 0, 1, ..., 16, then a full snapshot again.
    let max = mvvm_rt::checkpoint::MAX_INCREMENTAL_DEPTH as usize;
    assert_eq!(
        s.depth() as usize,
        (n - 1) % (max + 1),
        "{n} periodic checkpoints"
    );
    // Kept bases: only those the last snapshot's chain needs.
    let files = std::fs::read_dir(&d).unwrap().count();
    assert_eq!(files, 1 + s.depth() as usize, "{n} periodic checkpoints");
    let out = Command::new(&m)
        .max_wasm_stack(STACK)
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::None, &d.join("unused.bin")),
            RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(exited(out).0, want);
    // Streams cannot take periodic checkpoints.
    let mut c = cfg(Trigger::Every(std::time::Duration::from_millis(3)), &snap);
    c.sink = SnapshotSink::Stream(Box::new(std::io::sink()));
    assert!(matches!(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(c, RunOptions::default()),
        Err(mvvm_wasi::Error::Checkpoint(CheckpointError::BadTrigger(_)))
    ));
    let _ = std::fs::remove_dir_all(&d);
}

/// Grows memory from 2 to 6 pages at iteration 50 of 200, writes into new
/// page 3 (page 4 stays zero, page 5 is written and zeroed again); exits
/// with a checksum of pages 1 and 3 and the memory size.
const GROW_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 2)
  (func (export "_start") (local $k i32) (local $acc i32)
    (i32.store (i32.const 65540) (i32.const 5))
    (loop $work
      (if (i32.eq (local.get $k) (i32.const 50))
        (then
          (drop (memory.grow (i32.const 4)))
          (i32.store (i32.const 327680) (i32.const 9))
          (i32.store (i32.const 327680) (i32.const 0))))
      (if (i32.ge_u (local.get $k) (i32.const 50))
        (then (i32.store (i32.const 196616)
          (i32.add (i32.load (i32.const 196616)) (local.get $k)))))
      (i32.store (i32.const 65540) (i32.add (i32.load (i32.const 65540)) (i32.const 1)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $work (i32.lt_u (local.get $k) (i32.const 200))))
    (local.set $acc (i32.add (i32.add (i32.load (i32.const 65540)) (i32.load (i32.const 196616)))
      (memory.size)))
    (call $exit (i32.and (local.get $acc) (i32.const 255)))))"#;

#[test]
fn memory_growth_between_snapshots_is_in_the_increment() {
    let opts = mvvm_aot::CompileOptions {
        policy: Policy::LoopDirty,
        ..Default::default()
    };
    let m = Module::from_aot(&mvvm_aot::compile(GROW_WAT.as_bytes(), &opts).unwrap()).unwrap();
    let d = dir("grow");
    let snap = d.join("g.bin");
    let (want, _) = exited(
        Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::None, &snap), RunOptions::default())
            .unwrap(),
    );
    for (first, second) in [(10, 100), (10, 45), (49, 2), (60, 20)] {
        checkpointed(Command::new(&m).config(wasi()).max_wasm_stack(STACK).run(
            cfg(Trigger::ProbeCount(first), &snap),
            RunOptions::default(),
        ));
        let inc = checkpointed(Command::new(&m).max_wasm_stack(STACK).restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::ProbeCount(second), &snap),
            RestoreOptions::default(),
        ));
        assert!(inc.base.is_some(), "{first}/{second}");
        let out = Command::new(&m)
            .max_wasm_stack(STACK)
            .restore(
                SnapshotSource::File(snap.clone()),
                cfg(Trigger::None, &d.join("unused.bin")),
                RestoreOptions::default(),
            )
            .unwrap();
        assert_eq!(exited(out).0, want, "{first}/{second}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

static LOOP_FULL: AtomicUsize = AtomicUsize::new(0);
static LOOP_INC: AtomicUsize = AtomicUsize::new(0);

fn count_kinds(stats: &CheckpointStats) {
    match stats.base {
        Some(_) => LOOP_INC.fetch_add(1, Ordering::SeqCst),
        None => LOOP_FULL.fetch_add(1, Ordering::SeqCst),
    };
}

#[test]
fn periodic_checkpoints_of_other_policies_are_full_unless_asked() {
    let m = module(40_000_000, Policy::Loop);
    let d = dir("every-loop");
    for incremental in [false, true] {
        let snap = d.join(format!("l{incremental}.bin"));
        LOOP_FULL.store(0, Ordering::SeqCst);
        LOOP_INC.store(0, Ordering::SeqCst);
        let out = Command::new(&m)
            .config(wasi())
            .max_wasm_stack(STACK)
            .run(
                cfg(Trigger::Every(std::time::Duration::from_millis(3)), &snap),
                RunOptions {
                    on_checkpoint: Some(count_kinds),
                    incremental,
                    ..Default::default()
                },
            )
            .unwrap();
        exited(out);
        let (full, inc) = (
            LOOP_FULL.load(Ordering::SeqCst),
            LOOP_INC.load(Ordering::SeqCst),
        );
        if incremental {
            assert!(full <= 1 + inc / 16, "{full} full, {inc} incremental");
        } else {
            assert_eq!(inc, 0, "{full} full");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
