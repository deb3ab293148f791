//! Checkpoint and restore latency with 256 MiB of touched linear memory.
//! Ignored by default (it writes a 256 MiB snapshot); run it with
//! `cargo test --release -p mvvm-rt --test checkpoint_latency -- --ignored --nocapture`.

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_wasi::Command;
use mvvm_wasi::{Preopen, WasiConfig};
use std::time::Instant;

/// Grows memory to 4096 pages, writes one word in every 4 KiB page, then
/// a short loop (where the checkpoint is taken) and exits with a checksum
/// of a few words as exit code.
const WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32) (local $acc i32)
    (drop (memory.grow (i32.const 4095)))
    (loop $touch
      (i32.store (i32.shl (local.get $i) (i32.const 12)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $touch (i32.lt_u (local.get $i) (i32.const 65536))))
    (local.set $i (i32.const 0))
    (loop $tail
      (local.set $acc (i32.add (local.get $acc)
        (i32.load (i32.shl (i32.mul (local.get $i) (i32.const 6553)) (i32.const 12)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $tail (i32.lt_u (local.get $i) (i32.const 10))))
    (call $proc_exit (i32.and (local.get $acc) (i32.const 127)))))"#;

#[test]
#[ignore = "writes a 256 MiB snapshot; run with --release --ignored --nocapture"]
fn latency_with_256_mib_of_memory() {
    let opts = mvvm_aot::CompileOptions {
        policy: Policy::Loop,
        ..Default::default()
    };
    let module = Module::from_aot(&mvvm_aot::compile(WAT.as_bytes(), &opts).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("mvvm-ckpt-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wasi = || WasiConfig {
        args: vec!["lat".into()],
        preopens: vec![Preopen {
            host: dir.clone(),
            guest: "/w".into(),
        }],
        ..Default::default()
    };
    let cfg = |trigger| CheckpointConfig {
        trigger,
        sink: SnapshotSink::File(dir.join("snap")),
        log_probes: false,
        signals: false,
    };
    let Outcome::Exited { code: want, probes } = Command::new(&module)
        .config(wasi())
        .max_wasm_stack(1 << 20)
        .run(cfg(Trigger::CountProbes), RunOptions::default())
        .unwrap()
    else {
        panic!("reference run checkpointed")
    };
    // Checkpoint in the tail loop, after every page was touched.
    let out = Command::new(&module)
        .config(wasi())
        .max_wasm_stack(1 << 20)
        .run(cfg(Trigger::ProbeCount(probes - 5)), RunOptions::default())
        .unwrap();
    let Outcome::Checkpointed { stats } = out else {
        panic!("{out:?}")
    };
    assert_eq!(stats.memory_bytes, 256 << 20);
    // The same checkpoint to nowhere (cost of unwinding, capture, scan and
    // checksums without I/O).
    let mut c = cfg(Trigger::ProbeCount(probes - 5));
    c.sink = SnapshotSink::Stream(Box::new(std::io::sink()));
    let Outcome::Checkpointed { stats: sunk } = Command::new(&module)
        .config(wasi())
        .max_wasm_stack(1 << 20)
        .run(c, RunOptions::default())
        .unwrap()
    else {
        panic!("no checkpoint to the sink")
    };
    // The same checkpoint to a stream (a file written without fsync).
    let mut c = cfg(Trigger::ProbeCount(probes - 5));
    c.sink = SnapshotSink::Stream(Box::new(std::fs::File::create(dir.join("stream")).unwrap()));
    let Outcome::Checkpointed { stats: streamed } = Command::new(&module)
        .config(wasi())
        .max_wasm_stack(1 << 20)
        .run(c, RunOptions::default())
        .unwrap()
    else {
        panic!("no checkpoint to the stream")
    };
    let t = Instant::now();
    let snap = mvvm_snapshot::open_file(&dir.join("snap")).unwrap();
    let open_verify = t.elapsed();
    drop(snap);
    let t = Instant::now();
    let out = Command::new(&module)
        .max_wasm_stack(1 << 20)
        .grants(mvvm_wasi::Grants::none().preopen(&dir, "/w"))
        .restore(
            SnapshotSource::File(dir.join("snap")),
            cfg(Trigger::CountProbes),
            RestoreOptions::default(),
        )
        .unwrap();
    let restore_file = t.elapsed();
    assert!(
        matches!(out, Outcome::Exited { code, .. } if code == want),
        "{out:?}"
    );
    let t = Instant::now();
    let out = Command::new(&module)
        .max_wasm_stack(1 << 20)
        .grants(mvvm_wasi::Grants::none().preopen(&dir, "/w"))
        .restore(
            SnapshotSource::Stream(Box::new(std::fs::File::open(dir.join("snap")).unwrap())),
            cfg(Trigger::CountProbes),
            RestoreOptions::default(),
        )
        .unwrap();
    let restore_stream = t.elapsed();
    assert!(matches!(out, Outcome::Exited { code, .. } if code == want));
    println!(
        "256 MiB touched: checkpoint (trigger to durable, fsync included) {:.1} ms, to a stream \
         (no fsync) {:.1} ms, to io::sink {:.1} ms, snapshot {} MiB; \
         restore from file (mmap, all checksums verified) {:.1} ms, of which opening and verifying \
         {:.1} ms; restore from a stream (copy) {:.1} ms",
        stats.trigger_to_durable.as_secs_f64() * 1e3,
        streamed.trigger_to_durable.as_secs_f64() * 1e3,
        sunk.trigger_to_durable.as_secs_f64() * 1e3,
        stats.snapshot_bytes >> 20,
        restore_file.as_secs_f64() * 1e3,
        open_verify.as_secs_f64() * 1e3,
        restore_stream.as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
