//! Tail calls (`return_call`, `return_call_indirect`) under checkpoints.
//!
//! A tail call replaces its caller's activation, so a program unwound
//! inside a chain of tail calls has, below the tail callee's frame, the
//! frame of the call site that called the chain's first function. These
//! programs run such chains a million calls deep (they must not overflow
//! a 1 MiB wasm stack), through direct and indirect tail calls between
//! functions of different signatures, with loops (resume clones) and
//! ordinary calls inside the chain; each is checkpointed at many probes,
//! restored (into the same and into another compilation) and must end
//! with the result of an uninterrupted run. See "Tail calls" in
//! `crates/mvvm-aot/CHECKPOINT.md`.

mod ckpt_common;

use ckpt_common::{cfg, compile, reference, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger};
use mvvm_wasi::Command;
use std::time::Duration;

const STACK: usize = 1 << 20;

/// Imports and `$emit(v)`: writes the 8 bytes of `v` to `out` (created,
/// truncated) in the preopened directory.
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
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
"#;

/// `$a` -> `$b` -> `$c` -> (`$a` directly or through the table), a million
/// rounds of three tail calls, each function of another signature; `$b`
/// makes an ordinary call every 1000 rounds (a call stable point inside
/// the chain), `$c` has a loop (a resume clone, loop probes). `$calls`
/// counts the rounds in a global.
const CHAIN: &str = r#"
  (type $ta (func (param i64 i64) (result i64)))
  (type $tc (func (param i64 i32 f32) (result i64)))
  (table 4 funcref)
  (elem (i32.const 0) $a $b $c $mix)
  (global $calls (mut i64) (i64.const 0))
  (func $a (type $ta) (param $n i64) (param $acc i64) (result i64)
    (global.set $calls (i64.add (global.get $calls) (i64.const 1)))
    (if (i64.eqz (local.get $n)) (then (return (local.get $acc))))
    (return_call $b (i32.wrap_i64 (i64.sub (local.get $n) (i64.const 1)))
                    (f64.convert_i64_s (local.get $n))
                    (i64.add (i64.mul (local.get $acc) (i64.const 31)) (local.get $n))))
  (func $b (param $n i32) (param $x f64) (param $acc i64) (result i64)
    (if (i32.eqz (i32.rem_u (local.get $n) (i32.const 1000)))
      (then (local.set $acc (call $mix (local.get $acc) (local.get $n)))))
    (return_call_indirect (type $tc)
      (local.get $acc) (local.get $n) (f32.demote_f64 (local.get $x)) (i32.const 2)))
  (func $c (type $tc) (param $acc i64) (param $n i32) (param $y f32) (result i64) (local $i i32)
    (loop $l
      (local.set $acc (i64.xor (local.get $acc) (i64.shl (local.get $acc) (i64.const 7))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (local.set $acc (i64.add (local.get $acc) (i64.trunc_f32_s (local.get $y))))
    (if (i32.and (local.get $n) (i32.const 1))
      (then (return_call_indirect (type $ta)
        (i64.extend_i32_u (local.get $n)) (local.get $acc) (i32.const 0))))
    (return_call $a (i64.extend_i32_u (local.get $n)) (local.get $acc)))
  (func $mix (param $acc i64) (param $n i32) (result i64)
    (i64.add (i64.rotl (local.get $acc) (i64.const 13)) (i64.extend_i32_u (local.get $n))))
  (func $run (result i64)
    (i64.add (call $a (i64.const 1000000) (i64.const 1)) (global.get $calls)))
  (func (export "_start")
    (call $emit (call $run))
    (call $proc_exit (i32.const 7)))
"#;

/// Self and mutual tail recursion of functions whose results are several
/// values, with the loop in the tail callee and the function that starts
/// the chain called from inside a loop.
const MULTI: &str = r#"
  (type $t2 (func (param i32 i64 i64) (result i64 i32)))
  (table 1 funcref)
  (elem (i32.const 0) $even)
  (func $even (type $t2) (param $n i32) (param $x i64) (param $y i64) (result i64 i32)
    (if (i32.eqz (local.get $n))
      (then (return (i64.xor (local.get $x) (local.get $y)) (local.get $n))))
    (return_call $odd (i64.add (local.get $x) (local.get $y))
                      (i32.sub (local.get $n) (i32.const 1))))
  (func $odd (param $s i64) (param $n i32) (result i64 i32) (local $k i32)
    (loop $l
      (local.set $s (i64.add (i64.mul (local.get $s) (i64.const 3)) (i64.const 1)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.and (local.get $n) (i32.const 3)))))
    (if (i32.eq (i32.and (local.get $n) (i32.const 7)) (i32.const 4))
      (then (return_call $odd (i64.rotl (local.get $s) (i64.const 5))
                              (i32.sub (local.get $n) (i32.const 1)))))
    (return_call_indirect (type $t2)
      (local.get $n) (local.get $s) (i64.extend_i32_u (local.get $n)) (i32.const 0)))
  (func (export "_start") (local $i i32) (local $acc i64) (local $r i64) (local $m i32)
    (loop $l
      (call $even (i32.const 300000) (i64.extend_i32_u (local.get $i)) (i64.const 1))
      (local.set $m)
      (local.set $r)
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 1000003))
        (i64.add (local.get $r) (i64.extend_i32_u (local.get $m)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (call $emit (local.get $acc))
    (call $proc_exit (i32.const 7)))
"#;

fn program(body: &str) -> String {
    format!("(module {PRELUDE} {body})")
}

/// [`ckpt_common::checkpoint_restore`] with this file's stack and tag.
fn checkpoint_restore(module: &Module, target: &Module, n: u64, want: &(i32, Vec<u8>)) -> usize {
    ckpt_common::checkpoint_restore(module, target, STACK, "tail", n, want)
}

/// Checkpoints at every `p / steps`-th probe (and the first and last) and
/// once into a compilation with another policy and opt level.
fn everywhere(body: &str, policy: Policy, steps: u64) {
    let wat = program(body);
    let module = compile(&wat, policy, 3);
    let (code, bytes, p) = reference(&module, STACK, "tail");
    assert!(p >= steps, "too few probes ({p}) to test");
    let want = (code, bytes);
    let mut ns: Vec<u64> = (1..=steps).map(|k| k * p / steps).collect();
    ns.extend([1, 2, p - 1]);
    ns.sort();
    ns.dedup();
    let mut deepest = 0;
    for &n in &ns {
        deepest = deepest.max(checkpoint_restore(&module, &module, n, &want));
    }
    // Frames never pile up along a chain of tail calls: _start, $run (or
    // the loop of _start), the chain's current function, and an ordinary
    // callee at most.
    assert!(deepest <= 4, "{deepest} frames");
    let other = compile(&wat, Policy::Loop, 0);
    checkpoint_restore(&module, &other, p / 2 + 1, &want);
}

#[test]
fn chain_runs_in_constant_stack_without_a_policy() {
    for wat in [CHAIN, MULTI] {
        let module = compile(&program(wat), Policy::None, 3);
        let dir = temp_dir("tail", "none");
        let out = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(cfg(Trigger::None, &dir.join("snap")), RunOptions::default())
            .expect("run");
        assert!(matches!(out, Outcome::Exited { code: 7, .. }), "{out:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn chain_function_entry_policy() {
    everywhere(CHAIN, Policy::FunctionEntry, 16);
}

#[test]
fn chain_loop_policy() {
    everywhere(CHAIN, Policy::Loop, 16);
}

#[test]
fn chain_counter_loop_policy() {
    // Loop-free tail recursion still polls: the chain's functions are on a
    // cycle of the call graph (tail calls count as edges).
    everywhere(CHAIN, Policy::CounterLoop { threshold_bits: 4 }, 16);
}

#[test]
fn multi_value_chain_function_entry_policy() {
    everywhere(MULTI, Policy::FunctionEntry, 12);
}

#[test]
fn multi_value_chain_loop_policy() {
    everywhere(MULTI, Policy::Loop, 12);
}

/// A tail call of a host function through the table and directly: the
/// sleep is interrupted by a timer, and the restore makes the host call
/// again from the frame of the function that tail-called it.
const HOST_TAIL: &str = r#"
  (type $poll (func (param i32 i32 i32 i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $poll_oneoff)
  (global $sleeps (mut i64) (i64.const 0))
  (func $prepare (param $ms i64)
    (global.set $sleeps (i64.add (global.get $sleeps) (i64.const 1)))
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.mul (local.get $ms) (i64.const 1000000)))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0)))
  ;; tail-calls poll_oneoff through the table after a chain of tail calls
  (func $sleep_indirect (param $k i32) (result i32)
    (if (local.get $k)
      (then (return_call $sleep_indirect (i32.sub (local.get $k) (i32.const 1)))))
    (call $prepare (i64.const 60))
    (return_call_indirect (type $poll)
      (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 352) (i32.const 0)))
  ;; tail-calls the import directly
  (func $sleep_direct (param $k i64) (result i32)
    (if (i64.ne (local.get $k) (i64.const 0))
      (then (return_call $sleep_direct (i64.sub (local.get $k) (i64.const 1)))))
    (call $prepare (i64.const 60))
    (return_call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 352)))
  (func (export "_start") (local $i i32)
    (loop $l
      (drop (call $sleep_indirect (i32.const 1000)))
      (drop (call $sleep_direct (i64.const 1000)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
    (call $emit (i64.add (i64.mul (global.get $sleeps) (i64.const 100)) (i64.extend_i32_u (local.get $i))))
    (call $proc_exit (i32.const 7)))
"#;

#[test]
fn interrupted_host_call_reached_by_tail_calls_is_made_again() {
    let module = compile(&program(HOST_TAIL), Policy::FunctionEntry, 3);
    let want = (7, (8u64 * 100 + 4).to_le_bytes().to_vec());
    for (k, after) in [90u64, 150, 210, 270].into_iter().enumerate() {
        let dir = temp_dir("tail", &format!("host{k}"));
        let snap = dir.join("s");
        let out = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(
                cfg(Trigger::After(Duration::from_millis(after)), &snap),
                RunOptions::default(),
            )
            .unwrap();
        let Outcome::Checkpointed { stats } = out else {
            panic!("{out:?}")
        };
        // _start at its call, and the function that tail-called the
        // import at that call: no frame of the chain before it.
        assert!((2..=3).contains(&stats.frames), "{} frames", stats.frames);
        let out = Command::new(&module)
            .max_wasm_stack(STACK)
            .grants(ckpt_common::grants(&dir))
            .restore(
                SnapshotSource::File(snap),
                cfg(Trigger::CountProbes, &dir.join("s2")),
                RestoreOptions::default(),
            )
            .unwrap();
        let Outcome::Exited { code, .. } = out else {
            panic!("{out:?}")
        };
        let bytes = std::fs::read(dir.join("out")).unwrap();
        assert_eq!((code, bytes), want.clone(), "timer at {after} ms");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
