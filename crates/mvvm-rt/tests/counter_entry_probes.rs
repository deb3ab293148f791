//! Where the counter-loop policy probes: every loop header, and the entry
//! of each function that may be part of a recursion (direct, mutual, or
//! through `call_indirect`), not the entries of the others. Counted with
//! `threshold_bits = 0`, where every probe is a poll.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::checkpoint::{Outcome, RunOptions, Trigger};
use mvvm_wasi::Command;

const STACK: usize = 1 << 20;

/// Probes executed by an uninterrupted run of `wat` under counter-loop:0.
fn probes(wat: &str) -> u64 {
    let module = ckpt_common::compile(wat, Policy::CounterLoop { threshold_bits: 0 }, 2);
    let dir = temp_dir("counter-entry", "run");
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::CountProbes, &dir.join("snap")),
            RunOptions::default(),
        )
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Outcome::Exited { probes, .. } => probes,
        other => panic!("{other:?}"),
    }
}

/// A loop of 10 iterations calling `$leaf` (no loop, no recursion) and
/// `$rec 3` (which calls itself down to 0: 4 entries per iteration).
const DIRECT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (global $g (mut i32) (i32.const 0))
  (func $leaf (global.set $g (i32.add (global.get $g) (i32.const 1))))
  (func $rec (param $n i32)
    (if (local.get $n) (then (call $rec (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "_start") (local $i i32)
    (loop $l
      (call $leaf)
      (call $rec (i32.const 3))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (call $proc_exit (i32.const 0))))
"#;

#[test]
fn only_recursive_functions_have_entry_probes() {
    // 10 loop headers + 10 x 4 entries of $rec; none for $leaf or _start.
    assert_eq!(probes(DIRECT), 50);
}

/// `$a` calls `$b` through a table and `$b` calls `$a` directly: a cycle
/// the direct calls alone do not show. `$a` runs 3 times, `$b` 2 times.
const INDIRECT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (type $t (func (param i32)))
  (table 1 funcref)
  (elem (i32.const 0) $b)
  (func $a (param $n i32)
    (if (local.get $n)
      (then (call_indirect (type $t) (local.get $n) (i32.const 0)))))
  (func $b (param $n i32) (call $a (i32.sub (local.get $n) (i32.const 1))))
  (func $leaf (param $n i32) (drop (local.get $n)))
  (func (export "_start")
    (call $leaf (i32.const 1))
    (call $a (i32.const 2))
    (call $proc_exit (i32.const 0))))
"#;

#[test]
fn a_cycle_through_call_indirect_is_probed() {
    // $a 3 entries + $b 2 entries + _start 1: the graph counts every
    // exported function as a possible target of `call_indirect` (another
    // instance may put it in a shared table), so _start -> $a -> _start is
    // a cycle too. $leaf has none.
    assert_eq!(probes(INDIRECT), 6);
}
