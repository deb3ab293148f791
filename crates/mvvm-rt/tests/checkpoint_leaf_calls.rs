//! Calls whose callee cannot unwind: under a loop policy a function with no
//! loop, no import call, no indirect call and no such callee never starts a
//! checkpoint, so the compiler leaves out the `unwind_state` test after a
//! call of it, and in a hot body (a function with a resume clone) the
//! call's resume block (see `callgraph::unwinding_functions` and
//! "Stable points a frame can be at" in `crates/mvvm-aot/CHECKPOINT.md`).
//! The stable point stays in the tables, so a snapshot of a compilation
//! that probes function entries, which holds frames at those calls, must
//! still restore into such a compilation: through the resume clone for a
//! function with a loop, through the rewind landing for one without.

mod ckpt_common;

use ckpt_common::{compile, reference};
use mvvm_abi::Policy;
use mvvm_rt::Module;

const STACK: usize = 1 << 20;

/// `_start` loops over `$mid` (no loop: a single body) and `$leaf` (a leaf)
/// and writes its accumulator to `out`. `$mid` calls `$leaf` twice with
/// values live across the calls; under the loop policies neither `$leaf`
/// nor `$mid` can unwind, so none of these calls is tested afterwards.
const PROGRAM: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "out")
  (func $emit (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 16))
    (i32.store (i32.const 44) (i32.const 8))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48))))
  (func $leaf (param $x i64) (param $k i32) (result i64)
    (i64.xor (i64.rotl (local.get $x) (i64.const 13))
             (i64.mul (i64.extend_i32_u (local.get $k)) (i64.const 0x9e3779b97f4a7c15))))
  (func $mid (param $x i64) (param $k i32) (result i64) (local $a i64)
    (local.set $a (call $leaf (local.get $x) (local.get $k)))
    (i64.add (local.get $a)
      (call $leaf (i64.add (local.get $x) (local.get $a)) (i32.add (local.get $k) (i32.const 7)))))
  (func (export "_start") (local $i i32) (local $acc i64) (local $f f64)
    (local.set $f (f64.const 1.5))
    (loop $l
      (local.set $acc (i64.add
        (call $leaf (local.get $acc) (local.get $i))
        (call $mid (local.get $acc) (local.get $i))))
      (local.set $f (f64.add (local.get $f) (f64.convert_i64_u (i64.and (local.get $acc) (i64.const 255)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 300))))
    (call $emit (i64.add (local.get $acc) (i64.trunc_f64_u (local.get $f))))
    (call $proc_exit (i32.const 5))))
"#;

/// [`ckpt_common::checkpoint_restore`] with this file's stack and tag.
fn checkpoint_restore(module: &Module, target: &Module, n: u64, want: &(i32, Vec<u8>)) -> usize {
    ckpt_common::checkpoint_restore(module, target, STACK, "leaf-calls", n, want)
}

/// Every probe of the function-entry compilation (frames at the calls of
/// `$leaf` and `$mid`, three deep inside `$leaf`), restored into
/// compilations where those calls have no unwind test.
#[test]
fn frames_at_calls_without_unwind_code_restore() {
    let entry = compile(PROGRAM, Policy::FunctionEntry, 2);
    let (code, bytes, p) = reference(&entry, STACK, "leaf-calls");
    assert_eq!(code, 5);
    let want = (code, bytes);
    let targets = [
        compile(PROGRAM, Policy::Loop, 2),
        compile(PROGRAM, Policy::CounterLoop { threshold_bits: 0 }, 3),
        compile(PROGRAM, Policy::LoopDirty, 0),
    ];
    let mut deepest = 0;
    for n in 1..=p {
        let target = &targets[(n % 3) as usize];
        deepest = deepest.max(checkpoint_restore(&entry, target, n, &want));
    }
    // `_start` -> `$mid` -> `$leaf`: the landing of a single body was used.
    assert_eq!(deepest, 3, "no snapshot held a frame inside $mid's call");
    // And the other way: loop probes, restored into the function-entry
    // compilation and into itself.
    let looping = &targets[0];
    let (_, _, q) = reference(looping, STACK, "leaf-calls");
    for n in [1, q / 2, q] {
        checkpoint_restore(looping, &entry, n, &want);
        checkpoint_restore(looping, looping, n, &want);
    }
}
