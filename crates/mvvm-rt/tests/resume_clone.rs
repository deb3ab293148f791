//! Resume clones: with a checkpoint policy, a function with a loop has a
//! second body that only rewinds enter (see `mvvm_abi::object::resume_symbol`).
//! A restored activation runs the rest of its work in that clone, so what
//! the runtime knows about generated code (trap sites, which function a PC
//! is in) must hold for the clone as for the function's own body.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir, wasi};
use mvvm_abi::{Policy, TrapCode};
use mvvm_rt::checkpoint::{
    CheckpointError, Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger,
};
use mvvm_wasi::Command;

const STACK: usize = 1 << 20;

/// A loop that stores to memory and, at iteration 80, loads from beyond
/// the end of its one page; a helper without a loop is called on the way.
const TRAPS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory 1)
  (func $twice (param $x i32) (result i32)
    (i32.add (local.get $x) (local.get $x)))
  (func $work (export "_start") (local $i i32)
    (loop $l
      (i32.store (i32.const 64) (call $twice (local.get $i)))
      (if (i32.eq (local.get $i) (i32.const 80))
        (then (drop (i32.load (i32.const 70000)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (call $proc_exit (i32.const 0))))
"#;

#[test]
fn functions_with_a_loop_have_a_resume_clone_under_a_policy() {
    for policy in [
        Policy::FunctionEntry,
        Policy::Loop,
        Policy::CounterLoop { threshold_bits: 4 },
        Policy::LoopDirty,
    ] {
        let module = ckpt_common::compile(TRAPS, policy, 2);
        // Function 1 is `$twice` (no loop), function 2 `$work`.
        let twice = module.code_sizes(1).expect("a defined function");
        assert!(
            twice.0 > 0 && twice.1.is_none(),
            "{policy:?}: $twice has no loop"
        );
        let work = module.code_sizes(2).expect("a defined function");
        assert!(work.1.expect("$work has a loop") > 0, "{policy:?}");
        assert!(
            module
                .meta()
                .trap_sites
                .clone_of(1)
                .iter()
                .any(|t| t.code == TrapCode::MemoryOutOfBounds),
            "{policy:?}: the clone's trap sites are recorded"
        );
    }
    let plain = ckpt_common::compile(TRAPS, Policy::None, 2);
    for f in 1..=2 {
        assert!(plain.code_sizes(f).expect("a defined function").1.is_none());
    }
    assert!(plain.code_sizes(0).is_none(), "an import has no code");
    assert!(plain.code_sizes(3).is_none(), "no function 3");
}

/// A trap in the restored activation (which runs in the clone) is reported
/// exactly as the same trap in an uninterrupted run.
#[test]
fn a_trap_after_restore_is_reported_like_the_uninterrupted_one() {
    for policy in [Policy::Loop, Policy::CounterLoop { threshold_bits: 0 }] {
        let module = ckpt_common::compile(TRAPS, policy, 2);
        let dir = temp_dir("resume-clone", "trap");
        let snap = dir.join("snap");
        let whole = match Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::None, &snap), RunOptions::default())
        {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Trap(t))) => t,
            other => panic!("{policy:?}: expected a trap, got {other:?}"),
        };
        assert_eq!(whole.code, TrapCode::MemoryOutOfBounds);
        assert_eq!(whole.func_name.as_deref(), Some("work"));

        ckpt_common::checkpoint_at(&module, &dir, STACK, 30, &snap);
        let restored = match Command::new(&module)
            .max_wasm_stack(STACK)
            .grants(ckpt_common::grants(&dir))
            .restore(
                SnapshotSource::File(snap.clone()),
                cfg(Trigger::None, &dir.join("next")),
                RestoreOptions::default(),
            ) {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Trap(t))) => t,
            other => panic!("{policy:?}: expected a trap after restore, got {other:?}"),
        };
        assert_eq!(restored.code, whole.code, "{policy:?}");
        assert_eq!(restored.func, whole.func, "{policy:?}");
        assert_eq!(restored.func_name, whole.func_name, "{policy:?}");
        assert_eq!(restored.wasm_offset, whole.wasm_offset, "{policy:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Restored twice in a chain: the second checkpoint is taken inside the
/// clone, and the second restore enters the clone again.
#[test]
fn a_chain_through_the_clone_finishes_like_the_uninterrupted_run() {
    let sum = r#"
    (module
      (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
      (func (export "_start") (local $i i32) (local $acc i32)
        (loop $l
          (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 200))))
        (call $proc_exit (i32.and (local.get $acc) (i32.const 127)))))
    "#;
    let module = ckpt_common::compile(sum, Policy::Loop, 2);
    let dir = temp_dir("resume-clone", "chain");
    let snap = dir.join("snap");
    let want = match Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(cfg(Trigger::None, &snap), RunOptions::default())
        .unwrap()
    {
        Outcome::Exited { code, .. } => code,
        other => panic!("{other:?}"),
    };
    ckpt_common::checkpoint_at(&module, &dir, STACK, 50, &snap);
    let next = dir.join("snap2");
    let out = Command::new(&module)
        .max_wasm_stack(STACK)
        .grants(ckpt_common::grants(&dir))
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::ProbeCount(60), &next),
            RestoreOptions::default(),
        )
        .unwrap();
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    let out = Command::new(&module)
        .max_wasm_stack(STACK)
        .grants(ckpt_common::grants(&dir))
        .restore(
            SnapshotSource::File(next),
            cfg(Trigger::None, &dir.join("snap3")),
            RestoreOptions::default(),
        )
        .unwrap();
    match out {
        Outcome::Exited { code, .. } => assert_eq!(code, want),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
