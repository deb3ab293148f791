//! Restore to the first executed instruction, with and without memory
//! verification, for 64, 256 and 1024 MiB of touched linear memory.
//! Ignored by default (it writes up to 1 GiB of snapshots); run it with
//! `cargo test --release -p mvvm-rt --test restore_fast -- --ignored --nocapture`.
//!
//! The clock starts before `restore` is called (the module already
//! loaded, as a migration target would have it) and stops in
//! `RestoreOptions::on_resume`, right before the rewind's first call into
//! wasm. The snapshot file is in the page cache (just written).

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_snapshot::SnapshotInfo;
use mvvm_wasi::Command;
use mvvm_wasi::WasiConfig;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Grows memory to `pages` pages, writes one word in every 4 KiB page,
/// then a short loop (where the checkpoint is taken) and exits with a
/// checksum.
fn wat(pages: u32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory 1)
  (func (export "_start") (local $i i32) (local $acc i32)
    (drop (memory.grow (i32.const {grow})))
    (loop $touch
      (i32.store (i32.shl (local.get $i) (i32.const 12)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $touch (i32.lt_u (local.get $i) (i32.const {words}))))
    (local.set $i (i32.const 0))
    (loop $tail
      (local.set $acc (i32.add (local.get $acc)
        (i32.load (i32.shl (i32.mul (local.get $i) (i32.const 97)) (i32.const 12)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $tail (i32.lt_u (local.get $i) (i32.const 10))))
    (call $proc_exit (i32.and (local.get $acc) (i32.const 127)))))"#,
        grow = pages - 1,
        words = pages * 16,
    )
}

static RESUMED: Mutex<Option<Instant>> = Mutex::new(None);

fn on_resume(_: &SnapshotInfo) {
    *RESUMED.lock().unwrap() = Some(Instant::now());
}

fn cfg(trigger: Trigger, sink: SnapshotSink) -> CheckpointConfig {
    CheckpointConfig {
        trigger,
        sink,
        log_probes: false,
        signals: false,
    }
}

/// Median of `n` restores to the first instruction.
fn first_instruction(module: &Module, snap: &std::path::Path, verify: bool, want: i32) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        *RESUMED.lock().unwrap() = None;
        let t = Instant::now();
        let out = Command::new(module)
            .max_wasm_stack(1 << 20)
            .restore(
                SnapshotSource::File(snap.to_path_buf()),
                cfg(
                    Trigger::None,
                    SnapshotSink::Stream(Box::new(std::io::sink())),
                ),
                RestoreOptions {
                    on_resume: Some(on_resume),
                    skip_memory_verification: !verify,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(
            matches!(out, Outcome::Exited { code, .. } if code == want),
            "{out:?}"
        );
        let resumed = RESUMED.lock().unwrap().expect("on_resume called");
        times.push(resumed - t);
    }
    times.sort();
    times[times.len() / 2]
}

#[test]
#[ignore = "writes snapshots of up to 1 GiB; run with --release --ignored --nocapture"]
fn restore_to_first_instruction() {
    let dir = std::env::temp_dir().join(format!("mvvm-restore-fast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (mib, policy) in [
        (64u32, Policy::Loop),
        (256, Policy::Loop),
        (1024, Policy::Loop),
        (256, Policy::LoopDirty),
    ] {
        let opts = mvvm_aot::CompileOptions {
            policy,
            ..Default::default()
        };
        let module =
            Module::from_aot(&mvvm_aot::compile(wat(mib * 16).as_bytes(), &opts).unwrap()).unwrap();
        let snap = dir.join("snap.bin");
        let wasi = || WasiConfig {
            args: vec!["fast".into()],
            ..Default::default()
        };
        let Outcome::Exited { code: want, probes } = Command::new(&module)
            .config(wasi())
            .max_wasm_stack(1 << 20)
            .run(
                cfg(Trigger::CountProbes, SnapshotSink::File(snap.clone())),
                RunOptions::default(),
            )
            .unwrap()
        else {
            panic!("reference run checkpointed")
        };
        let out = Command::new(&module)
            .config(wasi())
            .max_wasm_stack(1 << 20)
            .run(
                cfg(
                    Trigger::ProbeCount(probes - 5),
                    SnapshotSink::File(snap.clone()),
                ),
                RunOptions::default(),
            )
            .unwrap();
        assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
        let verified = first_instruction(&module, &snap, true, want);
        let unverified = first_instruction(&module, &snap, false, want);
        println!(
            "{mib:5} MiB ({}): restore to first instruction {:8.3} ms verified, {:6.3} ms with \
             --no-verify-memory",
            policy.name(),
            verified.as_secs_f64() * 1e3,
            unverified.as_secs_f64() * 1e3,
        );
        std::fs::remove_file(&snap).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Like [`wat`], but the loop after the checkpoint writes every 4 KiB page
/// again (so every 64 KiB chunk faults once when tracked).
fn rewrite_wat(pages: u32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory 1)
  (func (export "_start") (local $i i32)
    (drop (memory.grow (i32.const {grow})))
    (loop $touch
      (i32.store (i32.shl (local.get $i) (i32.const 12)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $touch (i32.lt_u (local.get $i) (i32.const {words}))))
    (local.set $i (i32.const 0))
    (loop $again
      (i32.store (i32.shl (local.get $i) (i32.const 12)) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {words}))))
    (call $proc_exit (i32.const 0))))"#,
        grow = pages - 1,
        words = pages * 16,
    )
}

#[test]
#[ignore = "writes a 256 MiB snapshot; run with --release --ignored --nocapture"]
fn cost_of_dirty_tracking_faults() {
    let dir = std::env::temp_dir().join(format!("mvvm-track-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pages = 256 * 16;
    let mut results = Vec::new();
    for policy in [Policy::Loop, Policy::LoopDirty] {
        let opts = mvvm_aot::CompileOptions {
            policy,
            ..Default::default()
        };
        let module =
            Module::from_aot(&mvvm_aot::compile(rewrite_wat(pages).as_bytes(), &opts).unwrap())
                .unwrap();
        let snap = dir.join("snap.bin");
        let wasi = || WasiConfig {
            args: vec!["cost".into()],
            ..Default::default()
        };
        // Checkpoint at the first probe of the second loop.
        let out = Command::new(&module)
            .config(wasi())
            .max_wasm_stack(1 << 20)
            .run(
                cfg(
                    Trigger::ProbeCount(u64::from(pages) * 16 + 1),
                    SnapshotSink::File(snap.clone()),
                ),
                RunOptions::default(),
            )
            .unwrap();
        assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let out = Command::new(&module)
                .max_wasm_stack(1 << 20)
                .restore(
                    SnapshotSource::File(snap.clone()),
                    cfg(
                        Trigger::None,
                        SnapshotSink::Stream(Box::new(std::io::sink())),
                    ),
                    RestoreOptions {
                        skip_memory_verification: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
            times.push(t.elapsed());
        }
        times.sort();
        results.push(times[1]);
    }
    let chunks = f64::from(pages);
    println!(
        "restored run rewriting 256 MiB: {:.1} ms untracked (loop), {:.1} ms tracked \
         (loop-dirty, {} chunk faults): {:.2} us per chunk",
        results[0].as_secs_f64() * 1e3,
        results[1].as_secs_f64() * 1e3,
        pages,
        (results[1].as_secs_f64() - results[0].as_secs_f64()) * 1e6 / chunks,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
