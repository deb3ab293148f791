//! Plan step 7 of "Reading frames where they are"
//! (`crates/mvvm-aot/CHECKPOINT.md`): objects compiled with the developer
//! option `frame_map` carry, beside today's unwind blocks, a map of where
//! each frame value is at each stable point. At every checkpoint the
//! runtime walks the native wasm frames, reads the values the map puts in
//! stack slots, and compares every walked frame with the record its
//! unwind block writes (function, stable point, every value read); a
//! difference fails the checkpoint (`mvvm_rt::frame_walk`). These tests
//! checkpoint real programs at many probes and require the check to have
//! compared frames and values, not just to have found nothing wrong.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_aot::frame_labels::{DevOptions, compile_with};
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{FrameWalkStats, Outcome, RunOptions, Trigger};
use mvvm_wasi::Command;

const STACK: usize = 1 << 20;

/// `input` (wasm or WAT) compiled with frame maps under `policy`.
fn compile_mapped(input: &[u8], policy: Policy, opt_level: u8) -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy,
        opt_level,
        ..Default::default()
    };
    let (aot, _) = compile_with(input, &opts, &DevOptions::frame_map()).expect("compile");
    Module::from_aot(&aot).expect("load")
}

/// A bench or test program of the repository. Missing under CI is a
/// failure; elsewhere the caller skips, saying why.
fn repo_file(rel: &str) -> Option<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
            panic!("{} is needed by this test: {e}", path.display())
        }
        Err(e) => {
            eprintln!("skipped: {} not readable ({e})", path.display());
            None
        }
    }
}

/// The probe count of an uninterrupted run with `args`.
fn probes(module: &Module, args: &[&str], tag: &str) -> u64 {
    let dir = temp_dir("walk", tag);
    let mut w = wasi(&dir);
    w.args.extend(args.iter().map(|a| a.to_string()));
    let out = Command::new(module)
        .config(w)
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::CountProbes, &dir.join("snap")),
            RunOptions::default(),
        )
        .expect("reference run");
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Outcome::Exited { probes, .. } => probes,
        other => panic!("reference run: {other:?}"),
    }
}

/// Checkpoints `module` (run with `args`) at each probe of `at`, each in
/// a run of its own; every checkpoint must carry a passed check. Returns
/// the check's counts, summed.
fn check_at(module: &Module, args: &[&str], at: &[u64], tag: &str) -> FrameWalkStats {
    let mut total = FrameWalkStats::default();
    for &n in at {
        let dir = temp_dir("walk", tag);
        let mut w = wasi(&dir);
        w.args.extend(args.iter().map(|a| a.to_string()));
        let out = Command::new(module)
            .config(w)
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(n), &dir.join("snap")), RunOptions::default())
            .unwrap_or_else(|e| panic!("{tag}: checkpoint at probe {n}: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        let Outcome::Checkpointed { stats } = out else {
            panic!("{tag}: probe {n}: no checkpoint: {out:?}");
        };
        let walk = stats
            .frame_walk
            .unwrap_or_else(|| panic!("{tag}: probe {n}: the frames were not walked"));
        assert_eq!(
            walk.frames_walked + walk.frames_not_walked,
            stats.frames as u64,
            "{tag}: probe {n}: {walk:?}"
        );
        total.add(&walk);
    }
    eprintln!("{tag}: {} checkpoints: {total:?}", at.len());
    total
}

/// `count` probe numbers spread over `1..=p` (all of them if fewer).
fn spread(p: u64, count: u64) -> Vec<u64> {
    assert!(p > 0, "the program never probed");
    if p <= count {
        return (1..=p).collect();
    }
    let mut v: Vec<u64> = (0..count).map(|i| 1 + i * (p - 1) / (count - 1)).collect();
    v.dedup();
    v
}

/// The checks every program must pass: frames compared, values read and
/// found equal.
fn assert_compared(total: &FrameWalkStats, tag: &str) {
    assert!(total.frames_compared > 0, "{tag}: no frame compared: {total:?}");
    assert!(total.values_compared > 0, "{tag}: no value compared: {total:?}");
}

/// Values live across calls in a loop-free function (`$mid`: a single
/// body) and a loop (`_start`: hot body and resume clone), of every
/// scalar type and a `v128`, three frames deep at the leaf's probes.
const LEAF_CALLS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func $leaf (param $x i64) (param $k i32) (result i64)
    (i64.xor (i64.rotl (local.get $x) (i64.const 13))
             (i64.mul (i64.extend_i32_u (local.get $k)) (i64.const 0x9e3779b97f4a7c15))))
  (func $mid (param $x i64) (param $k i32) (result i64)
    (local $a i64) (local $f f32) (local $d f64) (local $v v128)
    (local.set $f (f32.convert_i32_u (local.get $k)))
    (local.set $d (f64.convert_i64_s (local.get $x)))
    (local.set $v (i32x4.splat (local.get $k)))
    (local.set $a (call $leaf (local.get $x) (local.get $k)))
    (i64.add
      (i64.add (local.get $a) (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $v))))
      (i64.add
        (i64.trunc_f64_s (f64.add (local.get $d) (f64.promote_f32 (local.get $f))))
        (call $leaf (i64.add (local.get $x) (local.get $a)) (i32.add (local.get $k) (i32.const 7))))))
  (func (export "_start") (local $i i32) (local $acc i64) (local $f f64)
    (local.set $f (f64.const 1.5))
    (loop $l
      (local.set $acc (i64.add
        (call $leaf (local.get $acc) (local.get $i))
        (call $mid (local.get $acc) (local.get $i))))
      (local.set $f (f64.add (local.get $f) (f64.convert_i64_u (i64.and (local.get $acc) (i64.const 255)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (call $proc_exit (i32.wrap_i64 (i64.and (i64.add (local.get $acc) (i64.trunc_f64_u (local.get $f))) (i64.const 63))))))
"#;

/// Every probe of the function-entry compilation (the innermost frame at
/// an entry, its callers at calls), at `-O0` and `-O3`; the loop policy
/// (probes at the loop header) too.
#[test]
fn leaf_calls_walked_frames_equal_the_unwind() {
    for (policy, opt) in [
        (Policy::FunctionEntry, 0),
        (Policy::FunctionEntry, 3),
        (Policy::Loop, 3),
    ] {
        let tag = format!("leaf-{policy:?}-O{opt}");
        let module = compile_mapped(LEAF_CALLS.as_bytes(), policy, opt);
        let p = probes(&module, &[], &tag);
        let total = check_at(&module, &[], &spread(p, 120), &tag);
        assert_compared(&total, &tag);
    }
}

/// binary-trees (recursion, allocation) under the loop policy at `-O3`,
/// checkpointed at 40 probes spread over its run.
#[test]
fn binary_trees_walked_frames_equal_the_unwind() {
    let Some(wasm) = repo_file("bench/wasm/binary-trees.wasm") else {
        return;
    };
    let module = compile_mapped(&wasm, Policy::Loop, 3);
    let args = ["-n", "6"];
    let p = probes(&module, &args, "binary-trees");
    let total = check_at(&module, &args, &spread(p, 40), "binary-trees");
    assert_compared(&total, "binary-trees");
}

/// bc (graph kernels, C++ with deep call chains) under counter-loop at
/// `-O3`, every 16th probe a poll.
#[test]
fn bc_walked_frames_equal_the_unwind() {
    let Some(wasm) = repo_file("bench/wasm/bc.wasm") else {
        return;
    };
    let module = compile_mapped(&wasm, Policy::CounterLoop { threshold_bits: 4 }, 3);
    let args = ["-g", "6", "-n", "1"];
    let p = probes(&module, &args, "bc");
    let total = check_at(&module, &args, &spread(p, 40), "bc");
    assert_compared(&total, "bc");
}
