//! Resume clones that no arena holds run correctly: with the developer
//! knob `MVVM_DEV_CLONE_ARENA=0` no module reserves an arena, and each
//! clone compiled on demand is placed in pages of its own 16 GiB away from
//! its module's code, so every call it makes (of a body, an import stub,
//! the probe trampoline) goes through a veneer. A program checkpointed
//! and restored (twice, the second checkpoint taken inside a clone) must
//! end as the uninterrupted run does.
//!
//! The knob is read once per process: this file is its own test binary and
//! holds one test, which sets it before anything else runs. Under qemu
//! (`scripts/aarch64/test.sh`) this runs the aarch64 veneers.

mod aot_clones;
mod ckpt_common;

use aot_clones::AotClones;
use ckpt_common::{cfg, grants, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger};
use mvvm_wasi::Command;

const STACK: usize = 1 << 20;

/// Nested loops; the outer one calls a helper, an import (`args_sizes_get`)
/// and a function with a loop of its own, so that a snapshot holds two
/// frames with clones and each clone calls bodies, an import stub and the
/// probe trampoline.
const WAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory 1)
  (func $mix (param $a i32) (param $b i32) (result i32)
    (i32.xor (i32.mul (local.get $a) (i32.const 31)) (local.get $b)))
  (func $inner (param $n i32) (result i32) (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (call $mix (local.get $s) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $s))
  (func (export "_start") (local $i i32) (local $acc i32)
    (loop $l
      (drop (call $sizes (i32.const 16) (i32.const 20)))
      (local.set $acc
        (call $mix (local.get $acc)
          (i32.add (call $inner (i32.and (local.get $i) (i32.const 15)))
                   (i32.load (i32.const 16)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 60))))
    (call $proc_exit (i32.and (local.get $acc) (i32.const 127)))))
"#;

fn compile_on_demand(policy: Policy) -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy,
        opt_level: 2,
        ..Default::default()
    };
    let choices = mvvm_aot::ObjectOptions {
        clones_on_demand: true,
        ..Default::default()
    };
    let aot = mvvm_aot::compile_with(WAT.as_bytes(), &opts, choices).expect("compile");
    Module::from_aot(&aot).expect("load")
}

fn exit_code(out: Outcome, what: &str) -> i32 {
    match out {
        Outcome::Exited { code, .. } => code,
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn clones_in_their_own_pages_run_through_veneers() {
    // SAFETY: the only test of this binary, before it starts a thread or
    // reads the environment (the runtime reads both variables later).
    unsafe {
        std::env::set_var("MVVM_DEV_CLONE_ARENA", "0");
        std::env::set_var("MVVM_PERF_MAP", "1");
    }
    mvvm_rt::set_clone_compiler(std::sync::Arc::new(AotClones));
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
    for policy in [Policy::Loop, Policy::CounterLoop { threshold_bits: 2 }] {
        let module = compile_on_demand(policy);
        let dir = temp_dir("clone-veneers", "run");
        let want = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(
                cfg(Trigger::CountProbes, &dir.join("none")),
                RunOptions::default(),
            )
            .expect("uninterrupted run");
        let Outcome::Exited {
            code: want,
            probes: total,
        } = want
        else {
            panic!("{policy:?}: {want:?}");
        };
        assert!(total >= 30, "{policy:?}: {total} probes");
        for k in [2, total / 3, 2 * total / 3] {
            let what = format!("{policy:?} at probe {k} of {total}");
            let snap = dir.join(format!("s{k}"));
            ckpt_common::checkpoint_at(&module, &dir, STACK, k, &snap);
            // A fresh module each time: its clones are compiled and placed
            // (far away) by this restore.
            let target = compile_on_demand(policy);
            let next = dir.join(format!("n{k}"));
            let out = Command::new(&target)
                .max_wasm_stack(STACK)
                .grants(grants(&dir))
                .restore(
                    SnapshotSource::File(snap),
                    cfg(Trigger::ProbeCount(3), &next),
                    RestoreOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{what}: restore: {e}"));
            assert!(
                matches!(out, Outcome::Checkpointed { .. }),
                "{what}: second checkpoint: {out:?}"
            );
            let out = Command::new(&target)
                .max_wasm_stack(STACK)
                .grants(grants(&dir))
                .restore(
                    SnapshotSource::File(next),
                    cfg(Trigger::None, &dir.join("end")),
                    RestoreOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{what}: second restore: {e}"));
            assert_eq!(exit_code(out, &what), want, "{what}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The clones were placed outside any arena and called through
    // veneers: the perf map has their lines.
    let lines = std::fs::read_to_string(&map).expect("the perf map");
    let _ = std::fs::remove_file(&map);
    let veneers = lines.lines().filter(|l| l.ends_with("(veneers)")).count();
    let clones = lines.lines().filter(|l| l.contains("mvvm_resume_")).count();
    assert!(
        veneers > 0 && 2 * veneers == clones,
        "every clone placed has veneers: {veneers} veneer lines, {clones} clone lines\n{lines}"
    );
}
