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

use ckpt_common::{cfg, grants, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_aot::frame_labels::{DevOptions, compile_with};
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    FrameWalkStats, Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger,
};
use mvvm_wasi::Command;

const STACK: usize = 1 << 20;

/// `input` (wasm or WAT) compiled with frame maps under `policy`.
fn compile_mapped(input: &[u8], policy: Policy, opt_level: u8) -> Module {
    compile_dev(input, policy, opt_level, &DevOptions::frame_map())
}

/// `input` compiled under `policy` with the developer options `dev`.
fn compile_dev(input: &[u8], policy: Policy, opt_level: u8, dev: &DevOptions) -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy,
        opt_level,
        ..Default::default()
    };
    let (aot, _) = compile_with(input, &opts, dev).expect("compile");
    Module::from_aot(&aot).expect("load")
}

/// A bench or test program committed in the repository: a missing one is
/// a broken checkout, so it fails the test everywhere.
fn repo_file(rel: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} is needed by this test: {e}", path.display()))
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

/// The check's counts of a checkpointed outcome, which must carry a
/// passed check that accounts for every frame saved.
fn walk_of(out: Outcome, what: &str) -> FrameWalkStats {
    let Outcome::Checkpointed { stats } = out else {
        panic!("{what}: no checkpoint: {out:?}");
    };
    let walk = stats
        .frame_walk
        .unwrap_or_else(|| panic!("{what}: the frames were not walked"));
    assert_eq!(
        walk.frames_walked + walk.frames_not_walked,
        stats.frames as u64,
        "{what}: {walk:?}"
    );
    *walk
}

/// Checkpoints `module` (run with `args`) at each probe of `at`, each in
/// a run of its own, then restores every other snapshot and checkpoints
/// the restored run at its second probe (its frames then run the resume
/// clones); every checkpoint must carry a passed check. Returns the
/// check's counts, summed.
fn check_at(module: &Module, args: &[&str], at: &[u64], tag: &str) -> FrameWalkStats {
    let mut total = FrameWalkStats::default();
    let mut checkpoints = 0;
    for (k, &n) in at.iter().enumerate() {
        let dir = temp_dir("walk", tag);
        let mut w = wasi(&dir);
        w.args.extend(args.iter().map(|a| a.to_string()));
        let snap = dir.join("snap");
        let out = Command::new(module)
            .config(w)
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default())
            .unwrap_or_else(|e| panic!("{tag}: checkpoint at probe {n}: {e}"));
        total.add(&walk_of(out, &format!("{tag}: probe {n}")));
        checkpoints += 1;
        if k % 2 == 1 {
            let out = Command::new(module)
                .max_wasm_stack(STACK)
                .grants(grants(&dir))
                .restore(
                    SnapshotSource::File(snap),
                    cfg(Trigger::ProbeCount(2), &dir.join("snap2")),
                    RestoreOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{tag}: restore of probe {n}, checkpoint: {e}"));
            // A run that ends within two probes has nothing to check.
            if !matches!(out, Outcome::Exited { .. }) {
                total.add(&walk_of(
                    out,
                    &format!("{tag}: probe {n}, restored, probe 2"),
                ));
                checkpoints += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!("{tag}: {checkpoints} checkpoints: {total:?}");
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
/// found equal (for every program that loops: in resume clones too).
fn assert_compared(total: &FrameWalkStats, tag: &str) {
    assert!(
        total.frames_compared > 0,
        "{tag}: no frame compared: {total:?}"
    );
    assert!(
        total.values_compared + total.registers_compared > 0,
        "{tag}: no value compared: {total:?}"
    );
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
    let wasm = repo_file("bench/wasm/binary-trees.wasm");
    let module = compile_mapped(&wasm, Policy::Loop, 3);
    let args = ["-n", "6"];
    let p = probes(&module, &args, "binary-trees");
    let total = check_at(&module, &args, &spread(p, 40), "binary-trees");
    assert_compared(&total, "binary-trees");
    assert!(
        total.compared_by_body[2] > 0,
        "no resume clone frame: {total:?}"
    );
}

/// bc (graph kernels, C++ with deep call chains) under counter-loop at
/// `-O3`, every 16th probe a poll.
#[test]
fn bc_walked_frames_equal_the_unwind() {
    let wasm = repo_file("bench/wasm/bc.wasm");
    let module = compile_mapped(&wasm, Policy::CounterLoop { threshold_bits: 4 }, 3);
    let args = ["-g", "6", "-n", "1"];
    let p = probes(&module, &args, "bc");
    let total = check_at(&module, &args, &spread(p, 40), "bc");
    assert_compared(&total, "bc");
    assert!(
        total.compared_by_body[2] > 0,
        "no resume clone frame: {total:?}"
    );
}

/// A `try_table` whose body calls a function that probes (its loop) and
/// sometimes throws: frames at `try_call`s, with values live across them.
const EXCEPTIONS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (tag $e (param i32))
  (func $work (param $n i32) (result i32) (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (i32.mul (local.get $i) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (if (i32.eq (i32.and (local.get $n) (i32.const 7)) (i32.const 3))
      (then (throw $e (local.get $s))))
    (local.get $s))
  (func $guarded (param $n i32) (result i32) (local $keep i64) (local $d f64)
    (local.set $keep (i64.extend_i32_u (i32.mul (local.get $n) (i32.const 31))))
    (local.set $d (f64.convert_i32_u (local.get $n)))
    (i32.add
      (i32.add (i32.wrap_i64 (local.get $keep)) (i32.trunc_f64_u (local.get $d)))
      (block $caught (result i32)
        (try_table (result i32) (catch $e $caught)
          (call $work (local.get $n))))))
  (func (export "_start") (local $n i32) (local $sum i32)
    (loop $l
      (local.set $sum (i32.add (local.get $sum) (call $guarded (local.get $n))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $n) (i32.const 40))))
    (call $proc_exit (i32.and (local.get $sum) (i32.const 63)))))
"#;

/// `return_call` chains whose links loop (and probe): the frames the
/// walk finds are the tail callees', as the unwind saves them.
const TAIL_CALLS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (func $count (param $n i32) (param $acc i64) (result i64) (local $i i32)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 20))))
    (if (result i64) (i32.eqz (local.get $n))
      (then (local.get $acc))
      (else (return_call $count (i32.sub (local.get $n) (i32.const 1)) (local.get $acc)))))
  (func $outer (param $n i32) (result i64) (local $k i64)
    (local.set $k (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 3)))
    (i64.add (local.get $k) (call $count (local.get $n) (i64.const 0))))
  (func (export "_start") (local $n i32) (local $sum i64)
    (loop $l
      (local.set $sum (i64.add (local.get $sum) (call $outer (local.get $n))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $n) (i32.const 12))))
    (call $proc_exit (i32.wrap_i64 (i64.and (local.get $sum) (i64.const 63))))))
"#;

/// Frames at `try_call`s and at calls reached by tail calls, under the
/// function-entry and loop policies.
#[test]
fn exceptions_and_tail_calls_walked_frames_equal_the_unwind() {
    for (name, wat) in [("exceptions", EXCEPTIONS), ("tail-calls", TAIL_CALLS)] {
        for policy in [Policy::FunctionEntry, Policy::Loop] {
            let tag = format!("{name}-{policy:?}");
            let module = compile_mapped(wat.as_bytes(), policy, 3);
            let p = probes(&module, &[], &tag);
            let total = check_at(&module, &[], &spread(p, 80), &tag);
            assert_compared(&total, &tag);
        }
    }
}

/// More of the bench (their smoke sizes, `bench/harness/src/workloads.rs`)
/// under counter-loop at `-O3`: 16 checkpoints spread over each run.
#[test]
fn bench_workloads_walked_frames_equal_the_unwind() {
    let workloads: [(&str, &[&str]); 9] = [
        ("llama2", &["-d32", "-l1", "-a2", "-v64", "-t8"]),
        ("mg", &["-s4", "-i1"]),
        ("fannkuch-redux", &["-n6"]),
        ("floyd-warshall", &["-s48"]),
        ("spectral-norm", &["-n50"]),
        ("nbody", &["-n1000"]),
        ("gemm-simd", &["-s32"]),
        ("kvstore", &["-k200", "-n2000"]),
        ("cg", &["-s500", "-k5", "-i2"]),
    ];
    let mut all = FrameWalkStats::default();
    for (name, args) in workloads {
        let wasm = repo_file(&format!("bench/wasm/{name}.wasm"));
        let module = compile_mapped(&wasm, Policy::CounterLoop { threshold_bits: 4 }, 3);
        let p = probes(&module, args, name);
        let total = check_at(&module, args, &spread(p, 16), name);
        assert_compared(&total, name);
        assert!(
            total.compared_by_body[2] > 0,
            "{name}: no resume clone frame: {total:?}"
        );
        all.add(&total);
    }
    eprintln!("bench workloads: {all:?}");
}

/// The check is not vacuous: the same leaf-calls object with every stack
/// location of its frame maps moved by one slot (the section rewritten in
/// place) must fail checkpoints, each with the check's message, and no
/// snapshot must be written for them.
#[test]
fn a_wrong_frame_map_fails_the_checkpoint() {
    use mvvm_abi::frame_map::{FrameMaps, ValueLocation};
    use object::{Object, ObjectSection};
    let opts = mvvm_aot::CompileOptions {
        policy: Policy::FunctionEntry,
        opt_level: 0,
        ..Default::default()
    };
    let (mut aot, _) =
        compile_with(LEAF_CALLS.as_bytes(), &opts, &DevOptions::frame_map()).expect("compile");
    let (start, len) = {
        let file = object::File::parse(&*aot).expect("ELF");
        let sec = file
            .section_by_name(mvvm_abi::object::FRAMES_SECTION)
            .expect("a frames section");
        let (start, len) = sec.file_range().expect("in the file");
        (start as usize, len as usize)
    };
    let mut maps = FrameMaps::decode(&aot[start..start + len]).expect("frame maps");
    let mut moved = 0;
    for v in maps
        .bodies
        .iter_mut()
        .flat_map(|b| b.sites.iter_mut())
        .flat_map(|s| s.values.iter_mut())
    {
        if let ValueLocation::Stack { cfa_offset } = &mut v.loc {
            *cfa_offset -= 8;
            moved += 1;
        }
    }
    assert!(moved > 0, "no stack location to move");
    let bytes = maps.encode().expect("encode");
    assert_eq!(bytes.len(), len, "same encoded size");
    aot[start..start + len].copy_from_slice(&bytes);
    let module = Module::from_aot(&aot).expect("load");
    let p = probes(&module, &[], "wrong-map");
    let mut failed = 0;
    let at = spread(p, 40);
    for &n in &at {
        let dir = temp_dir("walk", "wrong-map");
        let snap = dir.join("snap");
        let out = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default());
        if let Err(e) = out {
            let msg = e.to_string();
            assert!(msg.contains("disagree with the unwind"), "probe {n}: {msg}");
            assert!(!snap.exists(), "probe {n}: a snapshot was written");
            failed += 1;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        failed > 0,
        "no checkpoint failed with {moved} locations moved"
    );
    eprintln!("wrong map: {failed} of {} checkpoints failed", at.len());
}

/// Sleeps in `poll_oneoff` (`$nap`, a loop-free function: no probe under
/// the loop policy) three calls deep, with values of every scalar type
/// and a `v128` live across the calls; exits with 26.
const HOST_CALLS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func $nap (param $ns i64) (param $k i32) (result i32) (local $f f64) (local $v v128)
    (local.set $f (f64.convert_i32_u (local.get $k)))
    (local.set $v (i32x4.splat (local.get $k)))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (local.get $ns))
    (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 352)))
    (i32.add (i32.trunc_f64_u (local.get $f)) (i32x4.extract_lane 2 (local.get $v))))
  (func $mid (param $k i32) (result i32) (local $a i64)
    (local.set $a (i64.mul (i64.extend_i32_u (local.get $k)) (i64.const 77)))
    (i32.add (i32.wrap_i64 (local.get $a)) (call $nap (i64.const 300000000) (local.get $k))))
  (func (export "_start") (local $i i32) (local $sum i32)
    (loop $l
      (local.set $sum (i32.add (local.get $sum) (call $mid (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
    (call $proc_exit (i32.and (local.get $sum) (i32.const 63)))))
"#;

/// Waits (`$w`, loop-free: no probe under the loop policy) on a shared
/// memory word nobody changes, for 600 ms each time, three calls deep
/// with values live across; `WAIT` is `wait32` or `wait64`; exits with 10
/// (every wait times out: 2).
fn waits(wait: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1 1 shared)
  (func $w (param $t i64) (param $k i32) (result i32) (local $d f64)
    (local.set $d (f64.convert_i32_u (local.get $k)))
    (i32.add
      (i32.trunc_f64_u (local.get $d))
      (memory.atomic.{wait} (i32.const 256) ({ty}.const 0) (local.get $t))))
  (func $mid (param $k i32) (result i32) (local $a i64)
    (local.set $a (i64.mul (i64.extend_i32_u (local.get $k)) (i64.const 5)))
    (i32.add (i32.wrap_i64 (local.get $a)) (call $w (i64.const 600000000) (local.get $k))))
  (func (export "_start") (local $i i32) (local $sum i32)
    (loop $l
      (local.set $sum (i32.add (local.get $sum) (call $mid (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
    (call $proc_exit (i32.and (local.get $sum) (i32.const 63)))))"#,
        ty = if wait == "wait32" { "i32" } else { "i64" },
    )
}

/// Checkpoints `module` by a timer while it is in the host call or wait
/// of function `inner` (which has no probe: the unwind can only start
/// there, which the snapshot's innermost frame shows), restores the
/// snapshot and checkpoints it the same way (its frames then run the
/// resume clones), then restores that one and runs it to the end, which
/// must exit with `code`. Both checkpoints must carry a passed check with
/// frames compared. Returns the counts.
fn check_interrupted(module: &Module, inner: u32, code: i32, tag: &str) -> FrameWalkStats {
    use std::time::Duration;
    let innermost = |snap: &std::path::Path, what: &str| {
        let bytes = std::fs::read(snap).expect("snapshot");
        let s = mvvm_snapshot::read(&bytes[..]).expect("read the snapshot");
        let f = s.frames.last().expect("frames");
        assert_eq!(f.func, inner, "{tag}, {what}: innermost frame {f:?}");
    };
    let dir = temp_dir("walk", tag);
    let (snap, snap2) = (dir.join("snap"), dir.join("snap2"));
    let mut total = FrameWalkStats::default();
    let out = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::After(Duration::from_millis(150)), &snap),
            RunOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{tag}: checkpoint: {e}"));
    let first = walk_of(out, tag);
    assert!(first.frames_compared > 0, "{tag}: {first:?}");
    innermost(&snap, "first checkpoint");
    total.add(&first);
    let out = Command::new(module)
        .max_wasm_stack(STACK)
        .grants(grants(&dir))
        .restore(
            SnapshotSource::File(snap),
            cfg(Trigger::After(Duration::from_millis(150)), &snap2),
            RestoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{tag}: restore, checkpoint: {e}"));
    let second = walk_of(out, &format!("{tag}, restored"));
    assert!(second.frames_compared > 0, "{tag}, restored: {second:?}");
    // Compared, or (`walk_frames`) made from the walk.
    assert!(
        second.compared_by_body[2] + second.made_by_body[2] > 0,
        "{tag}, restored: no resume clone frame: {second:?}"
    );
    innermost(&snap2, "second checkpoint");
    total.add(&second);
    let out = Command::new(module)
        .max_wasm_stack(STACK)
        .grants(grants(&dir))
        .restore(
            SnapshotSource::File(snap2),
            cfg(Trigger::None, &dir.join("snap3")),
            RestoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{tag}: restore to the end: {e}"));
    let Outcome::Exited { code: got, .. } = out else {
        panic!("{tag}: the restored run did not exit: {out:?}");
    };
    assert_eq!(got, code, "{tag}: exit code");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{tag}: 2 checkpoints: {total:?}");
    total
}

/// Unwinds that start in a host call (an interrupted `poll_oneoff`): the
/// walk starts at the import stub's frame, through its prologue's saves.
#[test]
fn host_call_walked_frames_equal_the_unwind() {
    for (policy, opt) in [
        (Policy::Loop, 3),
        (Policy::Loop, 0),
        (Policy::CounterLoop { threshold_bits: 4 }, 3),
    ] {
        let tag = format!("host-call-{policy:?}-O{opt}");
        let module = compile_mapped(HOST_CALLS.as_bytes(), policy, opt);
        let total = check_interrupted(&module, 2, 26, &tag);
        assert_compared(&total, &tag);
    }
}

/// Unwinds that start in `memory.atomic.wait32`/`wait64`: the walk starts
/// at the waiting body's frame. The wait's timeout operand, where it is
/// read, is compared with what was left of it (what the record holds).
#[test]
fn atomic_wait_walked_frames_equal_the_unwind() {
    for wait in ["wait32", "wait64"] {
        for (policy, opt) in [(Policy::Loop, 3), (Policy::Loop, 0)] {
            let tag = format!("{wait}-{policy:?}-O{opt}");
            let module = compile_mapped(waits(wait).as_bytes(), policy, opt);
            let total = check_interrupted(&module, 1, 10, &tag);
            assert_compared(&total, &tag);
        }
    }
}

/// The exit code of `module` restored from `snap` and run to the end.
fn restored_exit(module: &Module, dir: &std::path::Path, snap: &std::path::Path, tag: &str) -> i32 {
    let out = Command::new(module)
        .max_wasm_stack(STACK)
        .grants(grants(dir))
        .restore(
            SnapshotSource::File(snap.to_path_buf()),
            cfg(Trigger::None, &dir.join("snap-end")),
            RestoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{tag}: restore to the end: {e}"));
    match out {
        Outcome::Exited { code, .. } => code,
        other => panic!("{tag}: the restored run did not exit: {other:?}"),
    }
}

/// Developer option `walk_frames`: `walk` (that compilation of a program
/// whose normal compilation is `normal`) checkpointed at each probe of
/// `at`: every checkpoint must carry a passed check; its snapshot,
/// restored into `normal` and into `walk` (checkpointed again at the
/// restored run's second probe, that snapshot restored into `normal`),
/// must exit as an uninterrupted run does. Returns the counts.
fn made_at(walk: &Module, normal: &Module, at: &[u64], tag: &str) -> FrameWalkStats {
    let want = {
        let dir = temp_dir("walk", tag);
        let out = Command::new(normal)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::None, &dir.join("snap")), RunOptions::default())
            .expect("reference run");
        let _ = std::fs::remove_dir_all(&dir);
        match out {
            Outcome::Exited { code, .. } => code,
            other => panic!("{tag}: reference run: {other:?}"),
        }
    };
    let mut total = FrameWalkStats::default();
    for &n in at {
        let dir = temp_dir("walk", tag);
        let (snap, snap2) = (dir.join("snap"), dir.join("snap2"));
        let out = Command::new(walk)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default())
            .unwrap_or_else(|e| panic!("{tag}: checkpoint at probe {n}: {e}"));
        total.add(&walk_of(out, &format!("{tag}: probe {n}")));
        assert_eq!(
            restored_exit(normal, &dir, &snap, tag),
            want,
            "{tag}: probe {n}, restored into the normal compilation"
        );
        let out = Command::new(walk)
            .max_wasm_stack(STACK)
            .grants(grants(&dir))
            .restore(
                SnapshotSource::File(snap),
                cfg(Trigger::ProbeCount(2), &snap2),
                RestoreOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{tag}: probe {n}, restored, checkpoint: {e}"));
        match out {
            Outcome::Exited { code, .. } => assert_eq!(code, want, "{tag}: probe {n}, restored"),
            out => {
                total.add(&walk_of(
                    out,
                    &format!("{tag}: probe {n}, restored, probe 2"),
                ));
                assert_eq!(
                    restored_exit(normal, &dir, &snap2, tag),
                    want,
                    "{tag}: probe {n}, restored, checkpointed again, restored"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!("{tag}: {total:?}");
    total
}

/// Records made from the walk (developer option `walk_frames`), for the
/// leaf-calls, exception and tail-call programs: restored, they exit as
/// an uninterrupted run, and some of their records were made.
#[test]
fn records_made_from_the_walk_restore() {
    for (name, wat) in [
        ("leaf", LEAF_CALLS),
        ("exceptions", EXCEPTIONS),
        ("tail-calls", TAIL_CALLS),
    ] {
        for (policy, opt) in [
            (Policy::FunctionEntry, 3),
            (Policy::Loop, 3),
            (Policy::Loop, 0),
            (Policy::CounterLoop { threshold_bits: 2 }, 3),
        ] {
            let tag = format!("made-{name}-{policy:?}-O{opt}");
            let walk = compile_dev(wat.as_bytes(), policy, opt, &DevOptions::walk_frames());
            let normal = compile_dev(wat.as_bytes(), policy, opt, &DevOptions::default());
            let p = probes(&walk, &[], &tag);
            let total = made_at(&walk, &normal, &spread(p, 24), &tag);
            assert!(
                total.made_by_body.iter().sum::<u64>() > 0,
                "{tag}: no record made from the walk: {total:?}"
            );
        }
    }
}

/// Records made from the walk when the unwind starts in a host call or a
/// wait (whose own frame keeps its stores: the call is re-issued on
/// restore with its arguments).
#[test]
fn records_made_from_the_walk_at_host_calls_and_waits() {
    for (tag, wat, inner, code) in [
        ("made-host-call", HOST_CALLS.to_string(), 2, 26),
        ("made-wait32", waits("wait32"), 1, 10),
    ] {
        let walk = compile_dev(wat.as_bytes(), Policy::Loop, 3, &DevOptions::walk_frames());
        let total = check_interrupted(&walk, inner, code, tag);
        assert!(
            total.made_by_body.iter().sum::<u64>() > 0,
            "{tag}: no record made from the walk: {total:?}"
        );
    }
}
