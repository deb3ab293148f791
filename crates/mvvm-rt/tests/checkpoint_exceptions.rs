//! Checkpoint and restore of programs that use exception handling: the
//! handlers in force at a checkpoint must still be in force after the
//! restore, and every `exnref` a frame, a global or a table holds (and
//! every exception such an exception holds) must come back with its tag
//! and its payload bit for bit.
//!
//! Each program logs `i64`s into a buffer in its memory and writes the
//! buffer to the file `out` at the end (fd 3 is the preopened directory),
//! then exits with 7. It is run uninterrupted (compiled without a policy:
//! the log must equal the one computed here), then under each policy
//! checkpointed at every N-th probe and restored into the same
//! compilation, another policy's or an -O0 one: the output must be the
//! uninterrupted run's. The programs:
//! - **handlers**: a checkpoint inside a function called from inside
//!   `try_table`s three frames deep; after the restore the throw must reach
//!   the very handler an uninterrupted run reaches (the nearest one
//!   matching, a `catch_all` two frames out for a tag nothing else
//!   catches);
//! - **exnrefs**: caught `exnref`s (payloads `i32 i64 f32 f64 v128` with
//!   NaN bit patterns) held in a local, a global, a table and on the
//!   operand stack under calls with stable points, one exception held in
//!   another's payload; each is rethrown with `throw_ref` after the
//!   restore and its payload logged;
//! - **legacy**: checkpoints inside legacy `catch` / `catch_all` bodies
//!   (the exception is in a hidden local), then `rethrow` (of the
//!   innermost and of an outer exception) or falling through;
//! - **tail calls**: a chain of `return_call`s under a `try_table` that
//!   throws at its end, and a `try_table` whose body `return_call`s (its
//!   handler is gone with its frame: the caller's catches).
//!
//! Hostile snapshots: an `exnref` index past the exception list, an
//! exception that holds itself, a tag the module does not have, a payload
//! of the wrong types, an `exnref` where the module has an `i32`: each is
//! refused with an error before anything runs.

mod ckpt_common;

use ckpt_common::in_memory::{self};

use ckpt_common::{compile, temp_dir};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::CheckpointError;
use mvvm_snapshot::{Snapshot, SnapshotError, SnapshotParts, WasmValue};
use std::path::Path;

const STACK: usize = 1 << 20;

/// WASI imports, the memory, and the log: `$log(v)` appends the 8 bytes of
/// `v` to the buffer at 1024; `$finish` writes the buffer to `out` and
/// exits with 7. `$spin(k)` returns `k` after a short loop: a call of it
/// is a stable point under every policy (a loop probe, an entry probe).
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "out")
  (global $pos (mut i32) (i32.const 1024))
  (func $log (param $v i64)
    (i64.store (global.get $pos) (local.get $v))
    (global.set $pos (i32.add (global.get $pos) (i32.const 8))))
  (func $finish
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 1024))
    (i32.store (i32.const 44) (i32.sub (global.get $pos) (i32.const 1024)))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
    (call $proc_exit (i32.const 7)))
  (func $spin (param $k i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
    (local.get $k))
"#;

fn program(body: &str) -> String {
    format!("(module {PRELUDE} {body})")
}

/// Little-endian bytes of a log.
fn bytes_of(log: &[u64]) -> Vec<u8> {
    log.iter().flat_map(|v| v.to_le_bytes()).collect()
}

// ---------------------------------------------------------------------
// (a) Handlers several frames deep.

/// `$work` loops (probes), then throws by `$which`: 0 `$e0(n)`,
/// 1 `$e1(n * 0x100000001)`, 2 `$e2`, 3 nothing, 4 `$e3(n)`. `$mid` calls
/// it in a `try_table` catching `$e2`; `$run` calls `$mid` in a
/// `try_table` catching `$e0` and `$e1`; `_start` calls `$run` in a
/// `try_table` with a `catch_all`.
const HANDLERS: &str = r#"
  (tag $e0 (param i32))
  (tag $e1 (param i64))
  (tag $e2)
  (tag $e3 (param i32))
  (func $work (param $n i32) (param $which i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (if (i32.eq (local.get $which) (i32.const 0)) (then (throw $e0 (local.get $n))))
    (if (i32.eq (local.get $which) (i32.const 1))
      (then (throw $e1 (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 0x100000001)))))
    (if (i32.eq (local.get $which) (i32.const 2)) (then (throw $e2)))
    (if (i32.eq (local.get $which) (i32.const 4)) (then (throw $e3 (local.get $n)))))
  (func $mid (param $n i32) (param $which i32) (result i64)
    (block $c2
      (try_table (catch $e2 $c2)
        (call $work (local.get $n) (local.get $which)))
      (return (i64.const 100)))
    (i64.const 222))
  (func $run (param $n i32) (param $which i32) (result i64)
    (block $h0 (result i32)
      (block $h1 (result i64)
        (try_table (result i64) (catch $e0 $h0) (catch $e1 $h1)
          (call $mid (local.get $n) (local.get $which)))
        (return))
      (i64.const 1000)
      (i64.add)
      (return))
    (i64.extend_i32_u)
    (i64.const 2000)
    (i64.add))
  (func (export "_start") (local $i i32)
    (loop $l
      (block $done
        (block $all
          (try_table (catch_all $all)
            (call $log (call $run (local.get $i) (i32.rem_u (local.get $i) (i32.const 5)))))
          (br $done))
        (call $log (i64.const 333)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 15))))
    (call $finish))
"#;

fn handlers_log() -> Vec<u64> {
    (0..15u64)
        .map(|i| match i % 5 {
            0 => 2000 + i,
            1 => 1000 + i * 0x1_0000_0001,
            2 => 222,
            3 => 100,
            _ => 333,
        })
        .collect()
}

#[test]
fn a_throw_after_restore_reaches_the_same_handler() {
    let stats = everywhere(HANDLERS, &handlers_log());
    // Checkpoints in `$work` called from `$mid` from `$run` from `_start`:
    // four frames, three of them in try_table bodies.
    assert!(stats.max_frames >= 4, "{stats:?}");
}

// ---------------------------------------------------------------------
// (b) exnref values in locals, a global, a table, on the operand stack,
// and inside another exception.

/// `$catch_big(k)` returns the `exnref` of a caught `$big` whose payload
/// is made from `k`; `$wrap(x, k)` the `exnref` of a caught `$wrap(x, k)`;
/// `$show(e, extra)` rethrows `e` (a `$big`) with `throw_ref`, catches its
/// payload and logs it and `extra`; `$unwrap(e)` rethrows a `$wrap`, logs
/// its `i32` and returns its `exnref`.
const EXNREFS: &str = r#"
  (tag $big (param i32 i64 f32 f64 v128))
  (tag $wrap (param exnref i32))
  (global $g (mut exnref) (ref.null exn))
  (table $t 4 exnref)
  (func $thrower (param $k i32)
    (throw $big
      (local.get $k)
      (i64.mul (i64.extend_i32_u (local.get $k)) (i64.const 0x100000001))
      (f32.reinterpret_i32 (i32.or (i32.const 0x7fa00000) (local.get $k)))
      (f64.reinterpret_i64 (i64.or (i64.const 0x7ff4000000000000) (i64.extend_i32_u (local.get $k))))
      (i64x2.replace_lane 1
        (i64x2.splat (i64.extend_i32_u (local.get $k)))
        (i64.xor (i64.extend_i32_u (local.get $k)) (i64.const 0x5555aaaa5555aaaa)))))
  (func $catch_big (param $k i32) (result exnref) (local $x exnref)
    (block $h (result i32 i64 f32 f64 v128 exnref)
      (try_table (catch_ref $big $h) (call $thrower (local.get $k)))
      (unreachable))
    (local.set $x)
    (drop) (drop) (drop) (drop) (drop)
    (local.get $x))
  (func $wrap (param $inner exnref) (param $k i32) (result exnref) (local $x exnref)
    (block $h (result exnref i32 exnref)
      (try_table (catch_ref $wrap $h) (throw $wrap (local.get $inner) (local.get $k)))
      (unreachable))
    (local.set $x)
    (drop) (drop)
    (local.get $x))
  (func $show (param $e exnref) (param $extra i32)
    (local $v v128) (local $f f64) (local $s f32) (local $l i64)
    (block $h (result i32 i64 f32 f64 v128)
      (try_table (catch $big $h) (throw_ref (local.get $e)))
      (unreachable))
    (local.set $v) (local.set $f) (local.set $s) (local.set $l)
    (call $log (i64.extend_i32_u))
    (call $log (local.get $l))
    (call $log (i64.extend_i32_u (i32.reinterpret_f32 (local.get $s))))
    (call $log (i64.reinterpret_f64 (local.get $f)))
    (call $log (i64x2.extract_lane 0 (local.get $v)))
    (call $log (i64x2.extract_lane 1 (local.get $v)))
    (call $log (i64.extend_i32_u (local.get $extra))))
  (func $unwrap (param $e exnref) (result exnref)
    (block $h (result exnref i32)
      (try_table (catch $wrap $h) (throw_ref (local.get $e)))
      (unreachable))
    (call $log (i64.extend_i32_u)))
  (func (export "_start") (local $i i32) (local $a exnref) (local $w exnref)
    (loop $l
      (local.set $a (call $catch_big (local.get $i)))
      (global.set $g (call $catch_big (i32.add (local.get $i) (i32.const 50))))
      (local.set $w
        (call $wrap (call $catch_big (i32.add (local.get $i) (i32.const 100))) (local.get $i)))
      (table.set $t (i32.and (local.get $i) (i32.const 3)) (local.get $w))
      ;; an exnref under a call with stable points, in each case
      (call $show (local.get $a) (call $spin (local.get $i)))
      (call $show (global.get $g) (call $spin (i32.const 7)))
      (call $show (call $unwrap (local.get $w)) (call $spin (i32.const 9)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 6))))
    (call $show (call $unwrap (table.get $t (i32.const 1))) (call $spin (i32.const 11)))
    (call $finish))
"#;

/// What `$show` logs for a `$big` made from `k`.
fn big_log(k: u64, extra: u64) -> Vec<u64> {
    vec![
        k,
        k * 0x1_0000_0001,
        0x7fa0_0000 | k,
        0x7ff4_0000_0000_0000 | k,
        k,
        k ^ 0x5555_aaaa_5555_aaaa,
        extra,
    ]
}

fn exnrefs_log() -> Vec<u64> {
    let mut log = Vec::new();
    for i in 0..6 {
        log.extend(big_log(i, i));
        log.extend(big_log(i + 50, 7));
        log.push(i);
        log.extend(big_log(i + 100, 9));
    }
    // Table element 1 was last set at i = 5.
    log.push(5);
    log.extend(big_log(105, 11));
    log
}

#[test]
fn exnrefs_and_their_payloads_survive_a_restore() {
    let stats = everywhere(EXNREFS, &exnrefs_log());
    assert!(stats.with_exceptions > 0, "{stats:?}");
    // One exception held in another's payload was saved.
    assert!(stats.nested_exceptions > 0, "{stats:?}");
}

// ---------------------------------------------------------------------
// (c) Legacy try / catch / rethrow.

/// `$legacy(k)`: an inner `catch` logs the payload, reaches a stable
/// point and rethrows; the outer `catch` returns `5000 + k`. `$legacy2(k)`:
/// `catch $s` holds A (`k`), a nested `catch_all` holds B (`k + 1`) and,
/// after a stable point, `rethrow 1` throws A again: `7000 + k`.
/// `$legacy3(k)`: a `catch` body that ends by falling through after a
/// stable point: `9000 + k`.
const LEGACY: &str = r#"
  (tag $s (param i32))
  (func $thr (param $k i32) (throw $s (local.get $k)))
  (func $legacy (param $k i32) (result i64)
    try (result i64)
      try (result i64)
        (call $thr (local.get $k))
        (i64.const 0)
      catch $s
        (call $log (i64.extend_i32_u))
        (drop (call $spin (local.get $k)))
        rethrow 0
      end
    catch $s
      (i64.extend_i32_u)
      (i64.const 5000)
      (i64.add)
    end)
  (func $legacy2 (param $k i32) (result i64)
    (block $h (result i32)
      (try_table (catch $s $h)
        try
          (call $thr (local.get $k))
        catch $s
          drop
          try
            (call $thr (i32.add (local.get $k) (i32.const 1)))
          catch_all
            (drop (call $spin (local.get $k)))
            rethrow 1
          end
        end)
      (return (i64.const -1)))
    (i64.extend_i32_u)
    (i64.const 7000)
    (i64.add))
  (func $legacy3 (param $k i32) (result i64)
    try (result i64)
      (call $thr (local.get $k))
      (i64.const 0)
    catch $s
      (drop (call $spin (local.get $k)))
      (i64.extend_i32_u)
      (i64.const 9000)
      (i64.add)
    end)
  (func (export "_start") (local $i i32)
    (loop $l
      (call $log (call $legacy (local.get $i)))
      (call $log (call $legacy2 (local.get $i)))
      (call $log (call $legacy3 (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 8))))
    (call $finish))
"#;

fn legacy_log() -> Vec<u64> {
    (0..8u64)
        .flat_map(|k| [k, 5000 + k, 7000 + k, 9000 + k])
        .collect()
}

#[test]
fn legacy_catch_bodies_rethrow_after_restore() {
    let stats = everywhere(LEGACY, &legacy_log());
    // Checkpoints inside catch bodies saved the held exceptions.
    assert!(stats.with_exceptions > 0, "{stats:?}");
}

// ---------------------------------------------------------------------
// (d) return_call chains.

/// `$chain(n, acc)` loops (probes), then throws `$t(acc)` at `n = 0` or
/// `return_call`s itself with `(n - 1, 3 acc + n)`. `$catcher(n)` calls
/// the chain inside a `try_table`; `$escaper(n)`'s `try_table` body
/// `return_call`s the chain, so its handler (which would add 4242) is gone
/// when the chain throws and `$outer`'s (adding 100000) catches.
const TAIL: &str = r#"
  (tag $t (param i64))
  (func $chain (param $n i32) (param $acc i64) (result i64) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
    (if (i32.eqz (local.get $n)) (then (throw $t (local.get $acc))))
    (return_call $chain
      (i32.sub (local.get $n) (i32.const 1))
      (i64.add (i64.mul (local.get $acc) (i64.const 3)) (i64.extend_i32_u (local.get $n)))))
  (func $catcher (param $n i32) (result i64)
    (block $h (result i64)
      (try_table (catch $t $h)
        (drop (call $chain (local.get $n) (i64.const 1))))
      (i64.const -1)))
  (func $escaper (param $n i32) (result i64)
    (block $h (result i64)
      (try_table (catch $t $h)
        (return_call $chain (local.get $n) (i64.const 2)))
      (unreachable))
    (i64.const 4242)
    (i64.add))
  (func $outer (param $n i32) (result i64)
    (block $h (result i64)
      (try_table (catch $t $h)
        (return (call $escaper (local.get $n))))
      (unreachable))
    (i64.const 100000)
    (i64.add))
  (func (export "_start") (local $i i32)
    (loop $l
      (call $log (call $catcher (i32.mul (local.get $i) (i32.const 3))))
      (call $log (call $outer (i32.add (i32.mul (local.get $i) (i32.const 2)) (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 6))))
    (call $finish))
"#;

/// What `$chain(n, acc)` throws.
fn chain(mut n: u64, mut acc: u64) -> u64 {
    while n > 0 {
        acc = acc.wrapping_mul(3).wrapping_add(n);
        n -= 1;
    }
    acc
}

fn tail_log() -> Vec<u64> {
    (0..6u64)
        .flat_map(|i| [chain(i * 3, 1), 100_000 + chain(i * 2 + 1, 2)])
        .collect()
}

#[test]
fn return_call_chains_under_a_try_table() {
    let stats = everywhere(TAIL, &tail_log());
    // Checkpoints inside the chain: `_start`, the function whose
    // try_table called it, and the chain's current frame.
    assert!(stats.max_frames >= 3, "{stats:?}");
}

// ---------------------------------------------------------------------
// The matrix.

/// The uninterrupted run: its output and the number of probes.
fn reference(module: &Module) -> (Vec<u8>, u64) {
    in_memory::reference(module, STACK, "exn")
}

/// The snapshot of `module` at probe `k`, and the directory it ran in.
fn checkpoint(module: &Module, k: u64) -> (Vec<u8>, std::path::PathBuf) {
    in_memory::checkpoint(module, k, STACK, "exn")
}

/// Restores `snap` (taken in `dir`) into `target` and runs it to its end:
/// its output. Removes `dir`.
fn restore(target: &Module, snap: Vec<u8>, dir: &Path) -> Result<Vec<u8>, mvvm_wasi::Error> {
    in_memory::restore(target, snap, dir, STACK)
}

const POLICIES: [Policy; 3] = [
    Policy::FunctionEntry,
    Policy::Loop,
    Policy::CounterLoop { threshold_bits: 0 },
];

/// Checkpoints taken at most, per policy: every probe of a short run,
/// every N-th of a longer one (the last two always).
const MAX_POINTS: u64 = 60;

/// What the checkpoints of [`everywhere`] saved.
#[derive(Debug, Default)]
struct Seen {
    checkpoints: usize,
    /// Most frames in one snapshot.
    max_frames: usize,
    /// Snapshots with at least one exception.
    with_exceptions: usize,
    /// Snapshots with an exception held in another's payload.
    nested_exceptions: usize,
}

/// Runs `body` without a policy (its log must be `want`), then under each
/// policy checkpoints it at every N-th probe and restores each snapshot
/// into the same compilation, an -O0 one or another policy's: every
/// output must be the uninterrupted run's.
fn everywhere(body: &str, want: &[u64]) -> Seen {
    let wat = program(body);
    let plain = compile(&wat, Policy::None, 3);
    let (reference_out, _) = reference(&plain);
    assert_eq!(reference_out, bytes_of(want), "uninterrupted run's log");
    let modules: Vec<Module> = POLICIES.iter().map(|p| compile(&wat, *p, 3)).collect();
    let mut seen = Seen::default();
    for (i, (policy, module)) in POLICIES.iter().zip(&modules).enumerate() {
        let (got, p) = reference(module);
        assert_eq!(got, reference_out, "{policy:?}: uninterrupted run");
        assert!(p >= 10, "{policy:?}: only {p} probes");
        let o0 = compile(&wat, *policy, 0);
        let step = p.div_ceil(MAX_POINTS).max(1);
        let mut ks: Vec<u64> = (1..=p).step_by(step as usize).collect();
        ks.extend([p - 1, p]);
        ks.dedup();
        for k in ks {
            let (snap, dir) = checkpoint(module, k);
            assert!(!dir.join("out").exists(), "output before the end");
            let read = mvvm_snapshot::read(&snap[..]).expect("read the snapshot");
            seen.checkpoints += 1;
            seen.max_frames = seen.max_frames.max(read.frames.len());
            if !read.exceptions.is_empty() {
                seen.with_exceptions += 1;
            }
            let nested = read.exceptions.iter().any(|e| {
                e.payload
                    .iter()
                    .any(|v| matches!(v, WasmValue::ExnRef(Some(_))))
            });
            if nested {
                seen.nested_exceptions += 1;
            }
            let target = match k % 3 {
                0 => module,
                1 => &o0,
                _ => &modules[(i + 1) % modules.len()],
            };
            let after = restore(target, snap, &dir)
                .unwrap_or_else(|e| panic!("{policy:?}: restore of probe {k}: {e}"));
            assert_eq!(
                after, reference_out,
                "{policy:?}: checkpoint at probe {k} of {p}"
            );
        }
    }
    assert!(seen.checkpoints >= 30, "{seen:?}");
    seen
}

// ---------------------------------------------------------------------
// Hostile snapshots.

/// The parts of a snapshot the hostile tests change.
struct Edited {
    frames: Vec<mvvm_snapshot::FrameRecord>,
    globals: Vec<WasmValue>,
    exceptions: Vec<mvvm_snapshot::ExceptionRecord>,
}

/// `snap` written again after `edit` (the writer writes what it is given:
/// a hostile producer does not use the runtime's capture).
fn altered(snap: &Snapshot, edit: impl FnOnce(&mut Edited)) -> Vec<u8> {
    let mut e = Edited {
        frames: snap.frames.clone(),
        globals: snap.globals.clone(),
        exceptions: snap.exceptions.clone(),
    };
    edit(&mut e);
    let memory = snap.memory_bytes().unwrap();
    let parts = SnapshotParts {
        info: snap.info.clone(),
        frames: e.frames,
        globals: e.globals,
        tables: snap.tables.clone(),
        exceptions: e.exceptions,
        dropped_data: snap.dropped_data.clone(),
        dropped_elems: snap.dropped_elems.clone(),
        wasi: snap.wasi.clone(),
        monotonic_offset_nanos: snap.monotonic_offset_nanos,
        memory: &memory,
        max_pages: snap.memory.max_pages(),
        threads: snap.threads.clone(),
        last_thread_id: snap.last_thread_id,
    };
    let mut bytes = Vec::new();
    mvvm_snapshot::write(&mut bytes, &parts).expect("write the snapshot");
    bytes
}

/// A snapshot of the exnrefs program under `policy` that holds an
/// exception held by another (so every kind of reference is there).
fn snapshot_with_nested_exceptions(module: &Module) -> Snapshot {
    let (_, p) = reference(module);
    for k in 1..=p {
        let (bytes, dir) = checkpoint(module, k);
        let _ = std::fs::remove_dir_all(dir);
        let snap = mvvm_snapshot::read(&bytes[..]).expect("read");
        let nested = snap.exceptions.iter().any(|e| {
            e.payload
                .iter()
                .any(|v| matches!(v, WasmValue::ExnRef(Some(_))))
        });
        let in_frame = snap.frames.iter().any(|f| {
            f.locals
                .iter()
                .chain(&f.stack)
                .any(|v| matches!(v, WasmValue::ExnRef(Some(_))))
        });
        if nested && in_frame {
            return snap;
        }
    }
    panic!("no checkpoint of the exnrefs program holds nested exceptions");
}

/// Where the first non-null `exnref` of the frames is: (frame, local).
fn first_exnref_local(snap: &Snapshot) -> (usize, usize) {
    for (k, f) in snap.frames.iter().enumerate() {
        if let Some(i) = f
            .locals
            .iter()
            .position(|v| matches!(v, WasmValue::ExnRef(Some(_))))
        {
            return (k, i);
        }
    }
    panic!("no exnref in a local");
}

#[test]
fn hostile_exception_snapshots_are_refused() {
    let module = compile(&program(EXNREFS), Policy::FunctionEntry, 3);
    let snap = snapshot_with_nested_exceptions(&module);
    let n = snap.exceptions.len() as u32;
    let (fk, li) = first_exnref_local(&snap);
    // The exception held by another, and the one holding it.
    let holder = snap
        .exceptions
        .iter()
        .position(|e| {
            e.payload
                .iter()
                .any(|v| matches!(v, WasmValue::ExnRef(Some(_))))
        })
        .unwrap();
    // Unaltered (rewritten), it restores and runs to the right end.
    let dir = temp_dir("exn", "hostile");
    let out = restore(&module, altered(&snap, |_| {}), &dir).expect("unaltered snapshot");
    assert_eq!(out, bytes_of(&exnrefs_log()));

    type Edit = Box<dyn FnOnce(&mut Edited)>;
    // Refused by the reader: the snapshot is inconsistent in itself.
    let corrupt: Vec<(&str, Edit)> = vec![
        (
            "refers to exception",
            Box::new(move |s| s.frames[fk].locals[li] = WasmValue::ExnRef(Some(n))),
        ),
        (
            "refers to exception",
            Box::new(|s| {
                s.globals.iter_mut().for_each(|g| {
                    if let WasmValue::ExnRef(_) = g {
                        *g = WasmValue::ExnRef(Some(u32::MAX));
                    }
                })
            }),
        ),
        ("refers to exception", Box::new(|s| s.exceptions.clear())),
        (
            "holds itself",
            Box::new(move |s| {
                for v in &mut s.exceptions[holder].payload {
                    if let WasmValue::ExnRef(_) = v {
                        *v = WasmValue::ExnRef(Some(holder as u32));
                    }
                }
            }),
        ),
    ];
    for (what, edit) in corrupt {
        let dir = temp_dir("exn", "corrupt");
        match restore(&module, altered(&snap, edit), &dir) {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(
                SnapshotError::Corrupt { what: msg },
            ))) => assert!(msg.contains(what), "{what}: {msg}"),
            other => panic!("{what}: expected a corrupt snapshot, got {other:?}"),
        }
    }
    // Refused by the runtime: consistent, but not this module's.
    let tags = module.meta().tag_types().len() as u32;
    let mismatch: Vec<(&str, Edit)> = vec![
        (
            "the module has 2 tags",
            Box::new(move |s| s.exceptions[0].tag = tags),
        ),
        ("exception 0", Box::new(|s| s.exceptions[0].tag = u32::MAX)),
        (
            // A `$big` payload under the `$wrap` tag, or the reverse.
            "payload value",
            Box::new(move |s| {
                let e = &mut s.exceptions[holder];
                e.tag = 1 - e.tag;
            }),
        ),
        (
            "payload value",
            Box::new(move |s| {
                let e = &mut s.exceptions[holder];
                e.payload.push(WasmValue::I32(0));
            }),
        ),
        (
            "payload value 1",
            Box::new(move |s| {
                let e = &mut s.exceptions[holder];
                e.payload[1] = WasmValue::I64(1);
            }),
        ),
        (
            "local",
            Box::new(move |s| s.frames[fk].locals[li] = WasmValue::I32(0)),
        ),
    ];
    for (what, edit) in mismatch {
        let dir = temp_dir("exn", "mismatch");
        match restore(&module, altered(&snap, edit), &dir) {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Mismatch(msg))) => {
                assert!(msg.contains(what), "{what}: {msg}")
            }
            other => panic!("{what}: expected a mismatch, got {other:?}"),
        }
    }
    // An exnref where the module has an i32 (the first i32 local).
    let i32_at = snap.frames.iter().enumerate().find_map(|(k, f)| {
        f.locals
            .iter()
            .position(|v| matches!(v, WasmValue::I32(_)))
            .map(|i| (k, i))
    });
    if let Some((k, i)) = i32_at {
        let dir = temp_dir("exn", "mismatch");
        let r = restore(
            &module,
            altered(&snap, move |s| {
                s.frames[k].locals[i] = WasmValue::ExnRef(None)
            }),
            &dir,
        );
        assert!(
            matches!(&r, Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Mismatch(m))) if m.contains("ExnRef")),
            "{r:?}"
        );
    }
}

#[test]
fn a_module_without_tags_accepts_no_exception() {
    // The handlers program's tags exist; a module with none gets a read
    // limit of 0 exceptions: a snapshot naming one is refused unread.
    let wat = program(
        r#"(func (export "_start") (local $i i32)
             (loop $l
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
             (call $finish))"#,
    );
    let module = compile(&wat, Policy::Loop, 3);
    let (bytes, dir) = checkpoint(&module, 2);
    let snap = mvvm_snapshot::read(&bytes[..]).unwrap();
    assert!(snap.exceptions.is_empty());
    let forged = altered(&snap, |s| {
        s.exceptions.push(mvvm_snapshot::ExceptionRecord {
            tag: 0,
            payload: vec![],
        })
    });
    match restore(&module, forged, &dir) {
        Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(
            SnapshotError::LimitExceeded { what, .. },
        ))) => assert!(what.contains("exceptions"), "{what}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
