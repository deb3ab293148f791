//! "Checkpoint everywhere" on small WAT programs: each is run without
//! interruption (result and probe count P), then checkpointed at probes
//! 1, 2, P/3, P/2, P-1 and P, restored (sometimes checkpointed again and
//! restored again), and must end with the same result file and exit code.
//!
//! Programs write their result with `path_open` + `fd_write` into the file
//! `out` of a preopened temporary directory, then `proc_exit(7)`.

mod ckpt_common;

use ckpt_common::{cfg, compile, reference, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger};
use mvvm_wasi::Command;

const STACK: usize = 1 << 20;

/// Imports and the `$emit` helper shared by every program: `$emit(v)`
/// writes the 8 bytes of `v` to `out` (created, truncated) in fd 3.
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (data (i32.const 0) "out")
  (func $emit (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 16))
    (i32.store (i32.const 44) (i32.const 8))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48))))
"#;

fn program(body: &str) -> String {
    format!("(module {PRELUDE} {body})")
}

/// Checkpoints `module` at probe `n`, restores into `target` (checkpointing
/// again at probe `again` of the restored run, and restoring that, when
/// given) and checks the result against the reference.
fn checkpoint_restore(
    module: &Module,
    target: &Module,
    n: u64,
    again: Option<u64>,
    want: &(i32, Vec<u8>),
) {
    let dir = temp_dir("ckpt", "cr");
    let snap = dir.join("snap");
    let out = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default())
        .unwrap_or_else(|e| panic!("run to probe {n}: {e}"));
    let Outcome::Checkpointed { stats } = out else {
        panic!("probe {n}: no checkpoint: {out:?}");
    };
    assert!(stats.frames >= 1);
    assert_eq!(stats.probes, n);
    let trigger = match again {
        Some(m) => Trigger::ProbeCount(m),
        None => Trigger::CountProbes,
    };
    let snap2 = dir.join("snap2");
    let mut out = Command::new(target)
        .max_wasm_stack(STACK)
        .grants(ckpt_common::grants(&dir))
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(trigger, &snap2),
            RestoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("restore of probe {n}: {e}"));
    if let Outcome::Checkpointed { .. } = out {
        // Chain: A -> B -> A, the second time through a stream.
        let file = std::fs::File::open(&snap2).unwrap();
        out = Command::new(module)
            .max_wasm_stack(STACK)
            .grants(ckpt_common::grants(&dir))
            .restore(
                SnapshotSource::Stream(Box::new(file)),
                cfg(Trigger::CountProbes, &dir.join("snap3")),
                RestoreOptions::default(),
            )
            .unwrap_or_else(|e| panic!("second restore of probe {n}: {e}"));
    }
    let Outcome::Exited { code, .. } = out else {
        panic!("restore of probe {n} did not exit: {out:?}");
    };
    let bytes = std::fs::read(dir.join("out")).expect("output after restore");
    assert_eq!((code, bytes), want.clone(), "checkpoint at probe {n}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The whole matrix for one program and policy.
fn everywhere(body: &str, policy: Policy) {
    let wat = program(body);
    let module = compile(&wat, policy, 3);
    let (code, bytes, p) = reference(&module, STACK, "ckpt");
    assert!(p >= 2, "too few probes ({p}) to test");
    let want = (code, bytes);
    let mut ns = vec![1, 2, p / 3, p / 2, p - 1, p];
    ns.sort();
    ns.dedup();
    for &n in &ns {
        checkpoint_restore(&module, &module, n, None, &want);
    }
    // Restore into another compilation of the same wasm, then chain.
    let other = compile(&wat, Policy::Loop, 0);
    checkpoint_restore(&module, &other, p / 2, Some(1), &want);
}

const SUM_LOOP: &str = r#"
  (memory (export "memory") 1)
  (global $g (mut i64) (i64.const 0))
  (func $memsum (result i64) (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 64))))
    (local.get $s))
  (func (export "_start") (local $i i32)
    (loop $l
      (i64.store (i32.add (i32.const 1024) (i32.shl (i32.and (local.get $i) (i32.const 63)) (i32.const 3)))
        (i64.add (i64.load (i32.add (i32.const 1024) (i32.shl (i32.and (local.get $i) (i32.const 63)) (i32.const 3))))
                 (i64.extend_i32_u (local.get $i))))
      (global.set $g (i64.add (i64.mul (global.get $g) (i64.const 31)) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3000))))
    (call $emit (i64.add (global.get $g) (call $memsum)))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn sum_loop_loop_policy() {
    everywhere(SUM_LOOP, Policy::Loop);
}

#[test]
fn sum_loop_counter_policy() {
    everywhere(SUM_LOOP, Policy::CounterLoop { threshold_bits: 3 });
}

const FIB: &str = r#"
  (memory (export "memory") 1)
  (func $fib (param $n i32) (result i64)
    (if (result i64) (i32.lt_u (local.get $n) (i32.const 2))
      (then (i64.extend_i32_u (local.get $n)))
      (else (i64.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "_start")
    (call $emit (call $fib (i32.const 16)))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn fib_recursion_function_entry() {
    everywhere(FIB, Policy::FunctionEntry);
}

const FLOATS: &str = r#"
  (memory (export "memory") 1)
  (func $f (param $x f64) (param $k i64) (result f64)
    (if (result f64) (i64.eqz (local.get $k))
      (then (local.get $x))
      (else
        ;; f64 and i64 under the call on the operand stack
        (f64.add (f64.mul (local.get $x) (f64.const 0.5))
          (f64.convert_i64_s (i64.add (i64.const 0x100000000)
            (i64.trunc_f64_s (call $f (f64.add (local.get $x) (f64.const 1.25))
                                      (i64.sub (local.get $k) (i64.const 1))))))))))
  (func $g (param $a f32) (result f32)
    (local $i i32) (local $acc f32)
    (loop $l
      (local.set $acc (f32.add (local.get $acc) (f32.mul (local.get $a) (f32.convert_i32_u (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))
    (local.get $acc))
  (func (export "_start") (local $i i32) (local $s f64)
    (loop $l
      (local.set $s (f64.add (local.get $s)
        (f64.add (f64.promote_f32 (call $g (f32.const 0.75)))
                 (call $f (f64.convert_i32_u (local.get $i)) (i64.const 8)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40))))
    (call $emit (i64.reinterpret_f64 (local.get $s)))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn floats_and_i64_on_the_stack() {
    everywhere(FLOATS, Policy::Loop);
    everywhere(FLOATS, Policy::FunctionEntry);
}

const INDIRECT_MULTI: &str = r#"
  (memory (export "memory") 1)
  (type $t (func (param i64) (result i64)))
  (type $mv (func (param i32) (result i32 i64)))
  (table $tab 4 funcref)
  (elem (table $tab) (i32.const 0) func $dbl $inc $sq $dbl)
  (func $dbl (type $t) (i64.mul (local.get 0) (i64.const 2)))
  (func $inc (type $t) (i64.add (local.get 0) (i64.const 1)))
  (func $sq (type $t) (i64.rem_u (i64.mul (local.get 0) (local.get 0)) (i64.const 1000003)))
  (func $pair (type $mv) (local.get 0) (i64.extend_i32_u (i32.mul (local.get 0) (i32.const 3))))
  (func (export "_start") (local $i i32) (local $acc i64) (local $a i32) (local $b i64)
    (local.set $acc (i64.const 1))
    (loop $l
      (local.set $acc (i64.add (i64.const 5)
        (call_indirect (type $t) (local.get $acc) (i32.and (local.get $i) (i32.const 3)))))
      (call $pair (local.get $i))
      (local.set $b) (local.set $a)
      (local.set $acc (i64.add (local.get $acc) (i64.add (local.get $b) (i64.extend_i32_u (local.get $a)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 500))))
    (call $emit (local.get $acc))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn call_indirect_and_multi_value() {
    everywhere(INDIRECT_MULTI, Policy::Loop);
    everywhere(INDIRECT_MULTI, Policy::FunctionEntry);
}

const GROW_TABLE: &str = r#"
  (memory (export "memory") 1)
  (type $t (func (result i64)))
  (table $tab 1 funcref)
  (func $one (result i64) (i64.const 1))
  (func $two (result i64) (i64.const 2))
  (elem declare func $one $two)
  (func (export "_start") (local $i i32) (local $acc i64) (local $p i32)
    (loop $l
      ;; grow memory by a page every 16 iterations and write into it
      (if (i32.eqz (i32.and (local.get $i) (i32.const 15)))
        (then
          (local.set $p (memory.grow (i32.const 1)))
          (i64.store (i32.shl (local.get $p) (i32.const 16)) (i64.extend_i32_u (local.get $i)))
          (drop (table.grow $tab (ref.func $two) (i32.const 1)))))
      (table.set $tab (i32.const 0) (select (result funcref) (ref.func $one) (ref.func $two)
                                       (i32.and (local.get $i) (i32.const 1))))
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 3))
        (call_indirect (type $t) (i32.rem_u (local.get $i) (table.size $tab)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 160))))
    ;; fold in every grown page's first word and the sizes
    (local.set $i (i32.const 1))
    (loop $s
      (local.set $acc (i64.add (local.get $acc) (i64.load (i32.shl (local.get $i) (i32.const 16)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $s (i32.lt_u (local.get $i) (memory.size))))
    (call $emit (i64.add (local.get $acc)
      (i64.extend_i32_u (i32.add (memory.size) (i32.mul (table.size $tab) (i32.const 1000))))))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn memory_grow_and_table_changes() {
    everywhere(GROW_TABLE, Policy::Loop);
}

#[test]
fn deep_recursion_saves_every_frame() {
    let module = compile(&program(FIB), Policy::FunctionEntry, 3);
    let (_, _, p) = reference(&module, STACK, "ckpt");
    let dir = temp_dir("ckpt", "deep");
    // Probe 1 is the entry of _start, probes 2..=17 the entries of fib(16)
    // down to fib(1), which returns; probe 18 is fib(0) called by fib(2):
    // _start, fib(16)..fib(2), fib(0) = 17 frames.
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::ProbeCount(18), &dir.join("s")),
            RunOptions::default(),
        )
        .unwrap();
    let Outcome::Checkpointed { stats } = out else {
        panic!("{out:?}")
    };
    assert!(p > 1000, "{p}");
    assert_eq!(stats.frames, 17, "{stats:?}");
    let snap = mvvm_snapshot::open_file(&dir.join("s")).unwrap();
    assert_eq!(snap.info.policy, "function");
    assert_eq!(snap.frames[1].func, snap.frames[2].func);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The start function loops too: early checkpoints are taken inside it
/// (outermost frame = the start function), and `_start` runs after it on
/// restore.
const START_FUNC: &str = r#"
  (memory (export "memory") 1)
  (global $g (mut i64) (i64.const 5))
  (func $init (local $i i32)
    (loop $l
      (global.set $g (i64.add (i64.mul (global.get $g) (i64.const 3)) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40)))))
  (start $init)
  (func (export "_start") (local $i i32)
    (loop $l
      (global.set $g (i64.xor (global.get $g) (i64.shl (global.get $g) (i64.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 20))))
    (call $emit (global.get $g))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn checkpoints_inside_the_start_function() {
    everywhere(START_FUNC, Policy::Loop);
    let module = compile(&program(START_FUNC), Policy::Loop, 3);
    let dir = temp_dir("ckpt", "start");
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::ProbeCount(10), &dir.join("s")),
            RunOptions::default(),
        )
        .unwrap();
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    let snap = mvvm_snapshot::open_file(&dir.join("s")).unwrap();
    assert_eq!(Some(snap.frames[0].func), module.meta().start);
    let _ = std::fs::remove_dir_all(&dir);
}
