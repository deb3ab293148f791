//! The runtime's side of threads (wasi-threads itself, and checkpoints of
//! threaded programs, are tested in `mvvm-wasi/tests/threads.rs` and
//! `mvvm-cli/tests/threads_checkpoint.rs`): a checkpoint waits for every
//! live thread of the group (one that has not entered wasm yet holds it
//! until it deposits its record or ends), and a terminated group stops a
//! store's wasm.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir};
use mvvm_abi::Policy;
use mvvm_rt::checkpoint::{
    Outcome, Restore, RestoreOptions, Run, RunOptions, SnapshotSource, Trigger,
};
use mvvm_rt::{RunError, Store, ThreadGroup, TrapCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Counts to 2^31 - 1 in a loop (a second or more of work), then returns its
/// count's low bits in memory: long enough for a held-back checkpoint to
/// be taken first.
const LOOP: &str = r#"(module
  (memory 1)
  (func (export "_start") (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.ne (local.get $i) (i32.const 0x7fffffff))))
    (i32.store (i32.const 0) (local.get $i))))"#;

#[test]
fn a_checkpoint_waits_until_the_other_threads_have_ended() {
    let dir = temp_dir("threads", "defer");
    let snap = dir.join("t.bin");
    let module = ckpt_common::compile(LOOP, Policy::Loop, 3);
    let group = ThreadGroup::new();
    let mut store = Store::new();
    store.set_max_wasm_stack(1 << 20);
    store.set_thread(group.add_thread());
    // Another thread of the program, alive for 300 ms.
    let other = group.add_thread();
    assert_eq!(group.alive(), 2);
    let dropped = Arc::new(AtomicBool::new(false));
    let run = Run::new(
        &module,
        cfg(Trigger::ProbeCount(10), &snap),
        RunOptions::default(),
    )
    .unwrap();
    let ender = {
        let dropped = Arc::clone(&dropped);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // Set first: the checkpoint can only come after the drop.
            dropped.store(true, Ordering::SeqCst);
            drop(other);
        })
    };
    let out = run.start(&mut store, &[]).unwrap();
    // The other member never runs a thread (as one that is still
    // starting): the checkpoint (at the 10th probe) waits for it to end,
    // else it would be taken within microseconds.
    let waited = dropped.load(Ordering::SeqCst);
    ender.join().unwrap();
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    assert!(waited, "the checkpoint did not wait for the other thread");
    assert!(snap.exists());
    // The snapshot (one thread) restores and runs to the end.
    let mut restored = Store::new();
    restored.set_max_wasm_stack(1 << 20);
    let r = Restore::open(
        &module,
        SnapshotSource::File(snap.clone()),
        1 << 20,
        cfg(Trigger::None, &dir.join("u.bin")),
        RestoreOptions::default(),
    )
    .unwrap();
    let out = r.resume(&mut restored, &[]).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_terminated_group_stops_running_wasm_and_refuses_entries() {
    let module = ckpt_common::compile(
        r#"(module (func (export "spin") (loop $l (br $l))) (func (export "nop")))"#,
        Policy::None,
        3,
    );
    let group = ThreadGroup::new();
    let member = group.add_thread();
    let spinner = std::thread::spawn(move || {
        let mut store = Store::new();
        store.set_thread(member);
        let inst = mvvm_rt::Instance::new(&mut store, &module, &[]).unwrap();
        let r = inst.invoke(&mut store, "spin", &[]);
        let again = inst.invoke(&mut store, "nop", &[]);
        (r, again)
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(group.alive(), 1);
    assert!(!group.is_terminated());
    group.terminate();
    assert!(group.is_terminated());
    let (r, again) = spinner.join().unwrap();
    for r in [r, again] {
        match r {
            Err(RunError::Trap(t)) => assert_eq!(t.code, TrapCode::Terminated, "{t}"),
            other => panic!("expected a terminated trap, got {other:?}"),
        }
    }
    assert_eq!(group.alive(), 0);
}

/// A member of a terminated group is refused entry into wasm (from the
/// runtime's unit test, which cannot install the signal handler under
/// Miri).
#[test]
fn a_terminated_group_refuses_its_idle_members() {
    let module = ckpt_common::compile(r#"(module (func (export "nop")))"#, Policy::None, 3);
    let group = ThreadGroup::new();
    let member = group.add_thread();
    let mut store = Store::new();
    store.set_thread(member);
    let inst = mvvm_rt::Instance::new(&mut store, &module, &[]).unwrap();
    assert!(inst.invoke(&mut store, "nop", &[]).is_ok());
    group.terminate();
    assert!(group.is_terminated());
    match inst.invoke(&mut store, "nop", &[]) {
        Err(RunError::Trap(t)) => assert_eq!(t.code, TrapCode::Terminated, "{t}"),
        other => panic!("expected a terminated trap, got {other:?}"),
    }
    drop(store);
    assert_eq!(group.alive(), 0);
}
