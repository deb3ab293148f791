//! `memory.atomic.wait32/wait64` as stable points (one thread, a shared
//! memory the module defines):
//!
//! - a wait parked with a long finite timeout is woken by a timer's
//!   checkpoint request; the snapshot's innermost frame is at the wait's
//!   `AtomicWait` point and holds the time that was left instead of the
//!   timeout; the restored program waits that long, not the whole timeout
//!   again, sees "timed-out" (2) and writes what an uninterrupted run
//!   writes (loop and function policies);
//! - an infinite wait stays infinite through a checkpoint (its timeout
//!   operand is kept), and the restored wait can be interrupted again;
//! - periodic checkpoints during a finite wait: the run goes on after
//!   each, and the wait still ends once, at about its timeout;
//! - waits that never park (the memory differs: "not-equal" at once; a
//!   zero timeout: "timed-out" at once) under a checkpoint at every probe,
//!   restored into the same compilation or another policy's, give the
//!   uninterrupted run's output.

mod ckpt_common;

use ckpt_common::in_memory::{SharedBuf, checkpoint, config, output, reference, restore};
use ckpt_common::{compile, grants, temp_dir, wasi};
use mvvm_abi::{Policy, StablePointKind};
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointStats, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_snapshot::WasmValue;
use mvvm_wasi::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const STACK: usize = 1 << 20;

/// A WASI guest that stores `0x1111` at 1024, calls `$w`, which waits on
/// the word at 256 (which holds 0, the expected value: the wait parks)
/// with `timeout` and returns the wait's result plus 40, stores that at
/// 1032, writes the 16 bytes at 1024 to `out` and exits with 7.
fn parked_wait_program(timeout: i64) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1 1 shared)
  (data (i32.const 0) "out")
  (func $w (param $t i64) (result i32) (local $k i32)
    (local.set $k (i32.const 40))
    (i32.add
      (memory.atomic.wait32 (i32.const 256) (i32.const 0) (local.get $t))
      (local.get $k)))
  (func (export "_start") (local $r i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (i64.store (i32.const 1024) (i64.const 0x1111))
    (local.set $r (call $w (i64.const {timeout})))
    (i64.store (i32.const 1032) (i64.extend_i32_u (local.get $r)))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 1024))
    (i32.store (i32.const 44) (i32.const 16))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
    (call $proc_exit (i32.const 7))))"#
    )
}

/// What [`parked_wait_program`] writes when its wait times out.
fn timed_out_output() -> Vec<u8> {
    let mut v = 0x1111u64.to_le_bytes().to_vec();
    v.extend_from_slice(&42u64.to_le_bytes());
    v
}

/// The kind of the stable point of `module`'s function `func` at `offset`.
fn point_kind(module: &Module, func: u32, offset: u32) -> Option<StablePointKind> {
    let meta = module.meta();
    let info = meta.func_tables(func).ok()?;
    info.stable_points
        .iter()
        .find(|p| p.offset == offset)
        .map(|p| p.kind)
}

/// The innermost frame of the snapshot `bytes`: it must be at an
/// `AtomicWait` point of `module`, with the wait's operands (256, 0,
/// timeout) on top of its stack; returns the timeout it holds.
fn saved_wait_timeout(module: &Module, bytes: &[u8]) -> i64 {
    let snap = mvvm_snapshot::read(bytes).expect("read the snapshot");
    let inner = snap.frames.last().expect("frames");
    assert_eq!(
        point_kind(module, inner.func, inner.resume_offset),
        Some(StablePointKind::AtomicWait),
        "innermost frame {inner:?}"
    );
    // `$w`'s local `$k` was set before the wait and is read after it.
    assert_eq!(inner.locals[1], WasmValue::I32(40), "{inner:?}");
    match inner.stack[..] {
        [WasmValue::I32(256), WasmValue::I32(0), WasmValue::I64(t)] => t as i64,
        _ => panic!("stack of the wait frame: {:?}", inner.stack),
    }
}

/// Runs `module` under `trigger` with an in-memory sink: the snapshot and
/// how long the run took. Panics unless it checkpointed.
fn checkpoint_after(
    module: &Module,
    trigger: Trigger,
    tag: &str,
) -> (Vec<u8>, std::path::PathBuf, Duration) {
    let snap = SharedBuf::default();
    let dir = temp_dir(tag, "ckpt");
    let start = Instant::now();
    let r = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            config(trigger, SnapshotSink::Stream(Box::new(snap.clone()))),
            RunOptions::default(),
        )
        .expect("checkpointed run");
    let took = start.elapsed();
    assert!(matches!(r, Outcome::Checkpointed { .. }), "{r:?}");
    assert!(!dir.join("out").exists(), "output before the checkpoint");
    (snap.take(), dir, took)
}

/// (a) A wait of `TIMEOUT` interrupted after `AFTER` and restored.
fn finite_wait_is_interrupted_and_resumed(policy: Policy, tag: &str) {
    const TIMEOUT: Duration = Duration::from_secs(4);
    const AFTER: Duration = Duration::from_millis(1500);
    let timeout = TIMEOUT.as_nanos() as i64;
    let module = compile(&parked_wait_program(timeout), policy, 3);
    let start = Instant::now();
    let (snap, dir, took) = checkpoint_after(&module, Trigger::After(AFTER), tag);
    // Interrupted within a few slices of the request, not at the timeout.
    assert!(took >= AFTER, "{took:?}");
    assert!(took < AFTER + Duration::from_millis(1000), "{took:?}");
    let left = saved_wait_timeout(&module, &snap);
    let least = TIMEOUT.saturating_sub(took).as_nanos() as i64;
    // The timer starts when the session is armed, a little before the
    // wait does (instantiation): allow for that.
    let most = (TIMEOUT - AFTER + Duration::from_millis(200)).as_nanos() as i64;
    assert!(
        (least..=most).contains(&left),
        "saved timeout {left} ns: not what was left ({least}..={most})"
    );
    let restored_at = Instant::now();
    let out = restore(&module, snap, &dir, STACK).expect("restore");
    let restored_for = restored_at.elapsed();
    let total = start.elapsed();
    assert_eq!(out, timed_out_output(), "{}", policy.name());
    // The restored wait ran out what was left, not the whole timeout.
    assert!(
        restored_for >= Duration::from_nanos(left as u64),
        "{restored_for:?} < {left} ns"
    );
    assert!(restored_for < TIMEOUT, "{restored_for:?}");
    assert!(total < TIMEOUT + TIMEOUT / 2, "total {total:?}");
}

#[test]
fn finite_wait_interrupted_under_the_loop_policy_waits_what_was_left() {
    finite_wait_is_interrupted_and_resumed(Policy::Loop, "wait-loop");
}

#[test]
fn finite_wait_interrupted_under_the_function_policy_waits_what_was_left() {
    finite_wait_is_interrupted_and_resumed(Policy::FunctionEntry, "wait-func");
}

/// An uninterrupted run writes what the restored ones write.
#[test]
fn uninterrupted_finite_wait_times_out() {
    let module = compile(&parked_wait_program(300_000_000), Policy::Loop, 3);
    let start = Instant::now();
    let (out, _) = reference(&module, STACK, "wait-ref");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(out, timed_out_output());
    let plain = compile(&parked_wait_program(300_000_000), Policy::None, 3);
    let dir = temp_dir("wait-ref", "none");
    let r = Command::new(&plain)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            config(
                Trigger::None,
                SnapshotSink::Stream(Box::new(std::io::sink())),
            ),
            RunOptions::default(),
        )
        .expect("run without a policy");
    assert!(matches!(r, Outcome::Exited { code: 7, .. }), "{r:?}");
    assert_eq!(output(&dir), timed_out_output());
}

/// An infinite wait keeps its timeout (-1) through a checkpoint; the
/// restored wait parks again and a second request interrupts it again.
#[test]
fn infinite_wait_stays_infinite_and_is_interrupted_again_after_restore() {
    let module = compile(&parked_wait_program(-1), Policy::Loop, 3);
    let (snap, dir, took) = checkpoint_after(
        &module,
        Trigger::After(Duration::from_millis(200)),
        "wait-inf",
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(saved_wait_timeout(&module, &snap), -1);
    let again = SharedBuf::default();
    let r = Command::new(&module)
        .max_wasm_stack(STACK)
        .grants(grants(&dir))
        .restore(
            SnapshotSource::Stream(Box::new(std::io::Cursor::new(snap))),
            config(
                Trigger::After(Duration::from_millis(200)),
                SnapshotSink::Stream(Box::new(again.clone())),
            ),
            RestoreOptions::default(),
        )
        .expect("restore");
    assert!(matches!(r, Outcome::Checkpointed { .. }), "{r:?}");
    assert_eq!(saved_wait_timeout(&module, &again.take()), -1);
    assert!(output(&dir).is_empty(), "the program cannot have ended");
}

static PERIODIC: AtomicU64 = AtomicU64::new(0);

fn count_periodic(_: &CheckpointStats) {
    PERIODIC.fetch_add(1, Ordering::SeqCst);
}

/// Periodic checkpoints during a 2 s wait: each interrupts the wait,
/// writes a snapshot and rewinds into the wait with what was left; the
/// wait times out once, at about 2 s. (Were the whole timeout waited again
/// after each checkpoint, a period shorter than it would keep the wait
/// from ever ending: the run is bounded, and that is a failure.)
#[test]
fn periodic_checkpoints_during_a_wait_do_not_lengthen_it() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let module = compile(
        &parked_wait_program(TIMEOUT.as_nanos() as i64),
        Policy::Loop,
        3,
    );
    let dir = temp_dir("wait-every", "run");
    PERIODIC.store(0, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    let run_dir = dir.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        let r = Command::new(&module)
            .config(wasi(&run_dir))
            .max_wasm_stack(STACK)
            .run(
                config(
                    Trigger::Every(Duration::from_millis(400)),
                    SnapshotSink::File(run_dir.join("e.bin")),
                ),
                RunOptions {
                    on_checkpoint: Some(count_periodic),
                    incremental: false,
                    ..Default::default()
                },
            );
        let _ = tx.send((r.map_err(|e| e.to_string()), start.elapsed()));
    });
    let (r, took) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the wait never ended ({} periodic checkpoints in 30 s)",
                PERIODIC.load(Ordering::SeqCst)
            )
        });
    let r = r.expect("periodic run");
    assert!(matches!(r, Outcome::Exited { code: 7, .. }), "{r:?}");
    let n = PERIODIC.load(Ordering::SeqCst);
    assert!(n >= 2, "{n} periodic checkpoints");
    assert!(took >= TIMEOUT, "{took:?}");
    assert!(
        took < TIMEOUT + TIMEOUT / 2,
        "{took:?} after {n} checkpoints"
    );
    assert_eq!(output(&dir), timed_out_output());
}

/// (b) Waits that return at once, in a loop: `wait32`/`wait64` whose
/// memory differs ("not-equal", infinite and finite timeouts) and a
/// `wait64` with a zero timeout whose memory matches ("timed-out").
const NEVER_PARKS: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1 1 shared)
  (data (i32.const 0) "out")
  (func $step (param $i i32) (result i64) (local $r i64)
    (i32.atomic.store (i32.const 256) (local.get $i))
    (local.set $r (i64.extend_i32_u
      (memory.atomic.wait32 (i32.const 256) (i32.add (local.get $i) (i32.const 1)) (i64.const -1))))
    (local.set $r (i64.add (i64.mul (local.get $r) (i64.const 10)) (i64.extend_i32_u
      (memory.atomic.wait64 offset=8 (i32.const 256) (i64.const 99) (i64.const 1000000000)))))
    (i64.add (i64.mul (local.get $r) (i64.const 10)) (i64.extend_i32_u
      (memory.atomic.wait64 (i32.const 272) (i64.atomic.load (i32.const 272)) (i64.const 0)))))
  (func (export "_start") (local $i i32) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 3))
        (call $step (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 12))))
    (i64.store (i32.const 1024) (local.get $acc))
    (i64.store (i32.const 1032) (i64.extend_i32_u (i32.atomic.load (i32.const 256))))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 1024))
    (i32.store (i32.const 44) (i32.const 16))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
    (call $proc_exit (i32.const 7))))"#;

/// What [`NEVER_PARKS`] writes: each step is 1, 1, 2 ("not-equal" twice,
/// "timed-out") = 112.
fn never_parks_output() -> Vec<u8> {
    let mut acc = 0u64;
    for _ in 0..12 {
        acc = acc.wrapping_mul(3).wrapping_add(112);
    }
    let mut v = acc.to_le_bytes().to_vec();
    v.extend_from_slice(&11u64.to_le_bytes());
    v
}

#[test]
fn waits_that_never_park_checkpointed_at_every_probe() {
    let policies = [
        Policy::Loop,
        Policy::FunctionEntry,
        Policy::CounterLoop { threshold_bits: 0 },
    ];
    let modules: Vec<Module> = policies
        .iter()
        .map(|p| compile(NEVER_PARKS, *p, 3))
        .collect();
    let want = never_parks_output();
    let mut restores = 0;
    for (i, (policy, module)) in policies.iter().zip(&modules).enumerate() {
        let (out, probes) = reference(module, STACK, "wait-never");
        assert_eq!(out, want, "{}: uninterrupted run", policy.name());
        assert!(probes >= 12, "{}: {probes} probes", policy.name());
        for k in 1..=probes {
            let (snap, dir) = checkpoint(module, k, STACK, "wait-never");
            let target = if k % 2 == 0 {
                module
            } else {
                &modules[(i + 1) % modules.len()]
            };
            let got = restore(target, snap, &dir, STACK)
                .unwrap_or_else(|e| panic!("{}: restore at probe {k}: {e}", policy.name()));
            assert_eq!(got, want, "{}: checkpoint at probe {k}", policy.name());
            restores += 1;
        }
    }
    assert!(restores >= 36, "{restores} restores");
}

/// (c) The function with the wait lists an `AtomicWait` point, and the
/// tables agree between policies and opt levels.
#[test]
fn wait_sites_are_stable_points_of_every_policy() {
    let wat = parked_wait_program(1);
    let tables = |m: &Module| {
        m.meta()
            .all_func_tables()
            .expect("tables decode")
            .iter()
            .map(|f| f.stable_points.clone())
            .collect::<Vec<_>>()
    };
    let loop3 = compile(&wat, Policy::Loop, 3);
    let w = loop3.meta().all_func_tables().expect("tables decode")[0];
    let kinds: Vec<StablePointKind> = w.stable_points.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [StablePointKind::Entry, StablePointKind::AtomicWait],
        "{:?}",
        w.stable_points
    );
    assert_eq!(w.stable_points[1].stack.len(), 3);
    for (policy, opt) in [
        (Policy::FunctionEntry, 3),
        (Policy::Loop, 0),
        (Policy::CounterLoop { threshold_bits: 4 }, 3),
        (Policy::LoopDirty, 0),
    ] {
        assert_eq!(
            tables(&compile(&wat, policy, opt)),
            tables(&loop3),
            "{} -O{opt}",
            policy.name()
        );
    }
}
