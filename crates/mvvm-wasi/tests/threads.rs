//! wasi-threads, in process: `thread-spawn`, `wasi_thread_start`, one
//! shared memory and one WASI state for every thread, and how a program
//! of several threads ends (`docs/threads.md`).

use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_rt::{Module, TrapCode};
use mvvm_wasi::{Command, WasiConfig, WasiRunError};
use std::time::{Duration, Instant};

fn module_with(wat: &str, opts: &mvvm_aot::CompileOptions) -> Module {
    let aot = mvvm_aot::compile(wat.as_bytes(), opts).expect("compile");
    Module::from_aot(&aot).expect("load")
}

fn module(wat: &str) -> Module {
    module_with(wat, &mvvm_aot::CompileOptions::default())
}

fn run(m: &Module) -> Result<i32, WasiRunError> {
    Command::new(m)
        .max_wasm_stack(1 << 20)
        .config(WasiConfig {
            args: vec!["threads".into()],
            ..Default::default()
        })
        .run_to_exit()
}

/// The imports and helpers every test module shares: `$spawn`, `$exit`,
/// the shared memory (address 0: a counter, 4: threads done, 8: a flag
/// nobody sets).
const PRELUDE: &str = r#"
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (import "env" "memory" (memory 1 4 shared))
  ;; Spawns a thread with `arg`; traps if thread-spawn fails.
  (func $must_spawn (param $arg i32)
    (if (i32.lt_s (call $spawn (local.get $arg)) (i32.const 1)) (then unreachable)))
  ;; Blocks for good: waits on address 8, which nobody notifies.
  (func $park
    (loop $l
      (drop (memory.atomic.wait32 (i32.const 8) (i32.const 0) (i64.const -1)))
      (br $l)))
  ;; Spins for good without a call (only a signal can stop it).
  (func $spin
    (local $x i32)
    (loop $l
      (local.set $x (i32.add (local.get $x) (i32.const 1)))
      (br $l)))
  ;; Sleeps `ns` nanoseconds in WASI (poll_oneoff, one relative clock
  ;; subscription at 64: userdata 0, tag clock (0), clock id 1
  ;; (monotonic), precision 0, flags 0): a blocking host call.
  (func $sleep_ns (param $ns i64)
    (i64.store (i32.const 64) (i64.const 0))
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) (local.get $ns))
    (i64.store (i32.const 96) (i64.const 0))
    (i32.store16 (i32.const 104) (i32.const 0))
    (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160))))
  ;; Sleeps for good, 1000 s at a time.
  (func $sleep
    (loop $l
      (call $sleep_ns (i64.const 1000000000000))
      (br $l)))
  ;; Waits until `n` threads said they are done (address 4).
  (func $join (param $n i32)
    (local $done i32)
    (block $b (loop $w
      (local.set $done (i32.atomic.load (i32.const 4)))
      (br_if $b (i32.ge_u (local.get $done) (local.get $n)))
      (drop (memory.atomic.wait32 (i32.const 4) (local.get $done) (i64.const -1)))
      (br $w))))
  ;; Says this thread is done (address 4) and wakes the waiters.
  (func $done
    (drop (i32.atomic.rmw.add (i32.const 4) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 4) (i32.const -1))))
"#;

/// 4 threads x 100000 atomic increments of one counter; the main thread
/// waits for them with `memory.atomic.wait32` and exits with 42 when the
/// total is exact (the counter's low byte otherwise).
fn counter_wat() -> String {
    format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $n i32)
    (local $i i32)
    (loop $l
      (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (call $done))
  (func (export "_start")
    (call $must_spawn (i32.const 100000))
    (call $must_spawn (i32.const 100000))
    (call $must_spawn (i32.const 100000))
    (call $must_spawn (i32.const 100000))
    (call $join (i32.const 4))
    (if (i32.eq (i32.atomic.load (i32.const 0)) (i32.const 400000))
      (then (call $exit (i32.const 42))))
    (call $exit (i32.atomic.load (i32.const 0)))))"#
    )
}

#[test]
fn four_threads_count_to_the_exact_total() {
    let m = module(&counter_wat());
    for _ in 0..3 {
        assert_eq!(run(&m).unwrap(), 42);
    }
}

#[test]
fn four_threads_count_to_the_exact_total_at_o0() {
    let opts = mvvm_aot::CompileOptions {
        opt_level: 0,
        ..Default::default()
    };
    assert_eq!(run(&module_with(&counter_wat(), &opts)).unwrap(), 42);
}

#[test]
fn proc_exit_in_a_thread_ends_the_program_with_its_code() {
    // The main thread is parked in an infinite wait; another thread spins;
    // the thread that exits says 7.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (if (i32.eq (local.get $arg) (i32.const 1)) (then (call $spin)))
    (call $exit (i32.const 7)))
  (func (export "_start")
    (call $must_spawn (i32.const 1))
    (call $must_spawn (i32.const 2))
    (call $park)))"#
    );
    let start = Instant::now();
    assert_eq!(run(&module(&wat)).unwrap(), 7);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_trap_in_a_thread_ends_the_program_with_that_trap() {
    // The main thread spins without a call: only the signal stops it.
    let wat = format!(
        r#"(module {PRELUDE}
  (func $boom (export "boom") (param $x i32) (result i32)
    (i32.div_u (i32.const 1) (local.get $x)))
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (call $boom (i32.const 0))))
  (func (export "_start")
    (call $must_spawn (i32.const 0))
    (call $spin)))"#
    );
    match run(&module(&wat)) {
        Err(WasiRunError::Trap(t)) => {
            assert_eq!(t.code, TrapCode::IntegerDivisionByZero, "{t}");
            assert!(t.message.contains("thread 1"), "{t}");
            assert_eq!(t.func_name.as_deref(), Some("boom"), "{t}");
        }
        other => panic!("expected the thread's trap, got {other:?}"),
    }
}

#[test]
fn start_returning_ends_the_program_whatever_the_threads_do() {
    // One thread spins, one is parked, one sleeps in WASI: `_start`
    // returning ends them all, with code 0.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $done)
    (if (i32.eq (local.get $arg) (i32.const 1)) (then (call $spin)))
    (if (i32.eq (local.get $arg) (i32.const 2)) (then (call $park)))
    (call $sleep))
  (func (export "_start")
    (call $must_spawn (i32.const 1))
    (call $must_spawn (i32.const 2))
    (call $must_spawn (i32.const 3))
    (call $join (i32.const 3))))"#
    );
    let start = Instant::now();
    assert_eq!(run(&module(&wat)).unwrap(), 0);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_thread_that_returns_ends_only_itself() {
    // The thread returns; the main thread goes on, sees its work, and
    // exits with what it found.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (i32.atomic.store (i32.const 0) (local.get $arg))
    (call $done))
  (func (export "_start")
    (call $must_spawn (i32.const 33))
    (call $join (i32.const 1))
    ;; the thread is gone or going: wait a little, then exit with its value
    (drop (memory.atomic.wait32 (i32.const 8) (i32.const 0) (i64.const 20000000)))
    (call $exit (i32.atomic.load (i32.const 0)))))"#
    );
    assert_eq!(run(&module(&wat)).unwrap(), 33);
}

#[test]
fn memory_grown_by_a_thread_is_seen_by_all() {
    // The thread grows the memory by 2 pages and writes into the last
    // one; the main thread sees the size and the byte.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (memory.grow (i32.const 2)))
    (i32.store8 (i32.const 196607) (i32.const 9))
    (call $done))
  (func (export "_start")
    (call $must_spawn (i32.const 0))
    (call $join (i32.const 1))
    (call $exit (i32.add (i32.mul (memory.size) (i32.const 10))
                         (i32.load8_u (i32.const 196607))))))"#
    );
    assert_eq!(run(&module(&wat)).unwrap(), 39);
}

#[test]
fn thread_ids_are_distinct_and_positive() {
    // Each thread adds 1 << tid to address 0; 3 threads: ids 1, 2, 3.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (i32.atomic.rmw.or (i32.const 0) (i32.shl (i32.const 1) (local.get $tid))))
    (call $done))
  (func (export "_start")
    (call $must_spawn (i32.const 0))
    (call $must_spawn (i32.const 0))
    (call $must_spawn (i32.const 0))
    (call $join (i32.const 3))
    (call $exit (i32.atomic.load (i32.const 0)))))"#
    );
    assert_eq!(run(&module(&wat)).unwrap(), 0b1110);
}

#[test]
fn modules_that_cannot_spawn_threads_are_unlinkable_with_a_reason() {
    let cases = [
        (
            r#"(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))
                 (import "env" "memory" (memory 1 1 shared))
                 (func (export "_start")))"#,
            "wasi_thread_start",
        ),
        (
            r#"(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))
                 (memory 1 1 shared)
                 (func (export "wasi_thread_start") (param i32 i32))
                 (func (export "_start")))"#,
            "shared memory",
        ),
        (
            r#"(module (import "wasi" "thread-spawn" (func (param i32)))
                 (import "env" "memory" (memory 1 1 shared))
                 (func (export "wasi_thread_start") (param i32 i32)))"#,
            "(i32) -> i32",
        ),
        (
            r#"(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))
                 (import "env" "memory" (memory 1 1 shared))
                 (func (export "wasi_thread_start") (param i32)))"#,
            "(i32, i32) -> ()",
        ),
    ];
    for (wat, want) in cases {
        match run(&module(wat)) {
            Err(WasiRunError::Unlinkable(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("expected unlinkable ({want}), got {other:?}"),
        }
    }
}

#[test]
fn a_threaded_program_checkpointed_at_main_thread_probes_restores_every_thread() {
    // Four threads count 100000 each into one atomic cell while the main
    // thread waits for them (its probes: the join loop's). Checkpointed at
    // several of the main thread's probe counts, each snapshot holds every
    // live thread (frames, globals, the thread ids), and the restored
    // program counts on to the exact total: no increment lost or doubled.
    let opts = mvvm_aot::CompileOptions {
        policy: mvvm_abi::Policy::Loop,
        ..Default::default()
    };
    let m = module_with(&counter_wat(), &opts);
    let dir = std::env::temp_dir().join(format!("mvvm-threads-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = |trigger: Trigger, snap: &std::path::Path| CheckpointConfig {
        trigger,
        sink: SnapshotSink::File(snap.to_path_buf()),
        log_probes: false,
        signals: false,
    };
    let mut with_threads = 0;
    for n in [1u64, 2, 5, 20] {
        let snap = dir.join(format!("t{n}.bin"));
        let out = Command::new(&m)
            .max_wasm_stack(1 << 20)
            .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default())
            .unwrap();
        let Outcome::Checkpointed { stats } = out else {
            // The threads finished before the main thread's n-th probe.
            assert!(matches!(out, Outcome::Exited { code: 42, .. }), "{out:?}");
            continue;
        };
        let saved = mvvm_snapshot::open_file(&snap).unwrap();
        assert!(saved.last_thread_id >= saved.threads.len() as u32);
        assert_eq!(
            stats.frames,
            saved.frames.len() + saved.threads.iter().map(|t| t.frames.len()).sum::<usize>()
        );
        for t in &saved.threads {
            assert!((1..=4).contains(&t.tid), "thread id {}", t.tid);
            assert_eq!(t.start_arg, 100000);
        }
        with_threads += usize::from(!saved.threads.is_empty());
        let out = Command::new(&m)
            .max_wasm_stack(1 << 20)
            .restore(
                SnapshotSource::File(snap.clone()),
                cfg(Trigger::None, &dir.join("u.bin")),
                RestoreOptions::default(),
            )
            .unwrap();
        assert!(
            matches!(out, Outcome::Exited { code: 42, .. }),
            "-c {n}: {out:?}"
        );
    }
    assert!(
        with_threads > 0,
        "no snapshot held a thread besides the main one"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sleeping_thread_does_not_hold_up_the_others_wasi_calls() {
    // The thread sleeps 3 s in `poll_oneoff`; 100 ms later the main thread
    // makes a WASI call (`clock_time_get`), then exits with 5. Were the
    // sleep holding the WASI context's lock, the call would wait for it.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $done)
    (call $sleep_ns (i64.const 3000000000)))
  (func (export "_start")
    (call $must_spawn (i32.const 0))
    (call $join (i32.const 1))
    (drop (memory.atomic.wait32 (i32.const 8) (i32.const 0) (i64.const 100000000)))
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 200)))
    (call $exit (i32.const 5))))"#
    );
    let start = Instant::now();
    assert_eq!(run(&module(&wat)).unwrap(), 5);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn proc_exit_in_the_main_thread_ends_running_threads() {
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $done)
    (call $spin))
  (func (export "_start")
    (call $must_spawn (i32.const 0))
    (call $must_spawn (i32.const 0))
    (call $join (i32.const 2))
    (call $exit (i32.const 3))))"#
    );
    assert_eq!(run(&module(&wat)).unwrap(), 3);
}

#[test]
fn threads_trapping_together_end_the_program_with_one_of_their_traps() {
    // Eight threads trap at once while the main thread is parked: the
    // program ends with one trap (the first recorded), without hanging.
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    unreachable)
  (func (export "_start") (local $i i32)
    (loop $l
      (call $must_spawn (i32.const 0))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 8))))
    (call $park)))"#
    );
    for _ in 0..5 {
        match run(&module(&wat)) {
            Err(WasiRunError::Trap(t)) => {
                assert_eq!(t.code, TrapCode::Unreachable, "{t}");
                assert!(t.message.contains("(thread "), "{t}");
            }
            other => panic!("expected a thread's trap, got {other:?}"),
        }
    }
}
