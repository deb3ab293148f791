//! SIGINT as a checkpoint request, in a child process (this test binary
//! run again with `MVVM_SIGINT_CHILD` set): the first SIGINT checkpoints
//! a program sleeping in `poll_oneoff`, and the snapshot restores here.

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};

use mvvm_wasi::WasiConfig;
use std::process::Command;
use std::time::Duration;

/// Sleeps 40 x 50 ms, then exits with the number of sleeps done.
const WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32)
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 50000000))
    (loop $l
      (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 352)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40))))
    (call $proc_exit (local.get $i))))"#;

fn module() -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy: Policy::Loop,
        ..Default::default()
    };
    Module::from_aot(&mvvm_aot::compile(WAT.as_bytes(), &opts).unwrap()).unwrap()
}

fn cfg(trigger: Trigger, sink: SnapshotSink, signals: bool) -> CheckpointConfig {
    CheckpointConfig {
        trigger,
        sink,
        log_probes: false,
        signals,
    }
}

/// The child half: does nothing unless run by [`first_sigint_checkpoints`].
#[test]
fn sigint_child() {
    let Some(snap) = std::env::var_os("MVVM_SIGINT_CHILD") else {
        return;
    };
    let module = module();
    // Tell the parent we are about to run (the handlers are installed a
    // moment later, well before the program's first sleep ends).
    std::fs::write(std::path::Path::new(&snap).with_extension("ready"), b"").unwrap();
    let out = mvvm_wasi::Command::new(&module)
        .config(WasiConfig::default())
        .max_wasm_stack(1 << 20)
        .run(
            cfg(Trigger::None, SnapshotSink::File(snap.into()), true),
            RunOptions::default(),
        )
        .unwrap();
    eprintln!("outcome: {out:?}");
    std::process::exit(if matches!(out, Outcome::Checkpointed { .. }) {
        42
    } else {
        1
    });
}

#[test]
fn first_sigint_checkpoints() {
    let snap = std::env::temp_dir().join(format!("mvvm-sigint-{}.snap", std::process::id()));
    let _ = std::fs::remove_file(&snap);
    let _ = std::fs::remove_file(snap.with_extension("ready"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigint_child", "--nocapture", "--test-threads=1"])
        .env("MVVM_SIGINT_CHILD", &snap)
        .spawn()
        .unwrap();
    let ready = snap.with_extension("ready");
    for _ in 0..500 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42), "{status:?}");
    let out = mvvm_wasi::Command::new(&module())
        .max_wasm_stack(1 << 20)
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(
                Trigger::None,
                SnapshotSink::File(snap.with_extension("next")),
                false,
            ),
            RestoreOptions::default(),
        )
        .unwrap();
    assert!(matches!(out, Outcome::Exited { code: 40, .. }), "{out:?}");
    let _ = std::fs::remove_file(&snap);
    let _ = std::fs::remove_file(&ready);
}
