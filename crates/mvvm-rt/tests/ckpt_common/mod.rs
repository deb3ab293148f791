//! Scaffolding shared by the in-process checkpoint tests: compiling a WAT
//! guest, fresh directories, a WASI configuration with one preopen, and a
//! checkpoint session writing to a file. Each test file uses a part of it.
#![allow(dead_code)]

pub mod in_memory;

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_wasi::{Command, Grants, Preopen, WasiConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `wat` compiled under `policy` at `opt_level` and loaded.
pub fn compile(wat: &str, policy: Policy, opt_level: u8) -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy,
        opt_level,
        ..Default::default()
    };
    let aot = mvvm_aot::compile(wat.as_bytes(), &opts).expect("compile");
    Module::from_aot(&aot).expect("load")
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh empty directory, named after the test (`prefix`) and `tag`.
pub fn temp_dir(prefix: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mvvm-{prefix}-{}-{tag}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Program name `prog`, `dir` preopened as `/work`.
pub fn wasi(dir: &Path) -> WasiConfig {
    WasiConfig {
        args: vec!["prog".into()],
        preopens: vec![Preopen {
            host: dir.to_path_buf(),
            guest: "/work".into(),
        }],
        ..Default::default()
    }
}

/// What a restore grants a guest that ran with [`wasi`]`(dir)`: `dir` as
/// `/work`.
pub fn grants(dir: &Path) -> Grants {
    Grants::none().preopen(dir, "/work")
}

/// A session on `trigger` that writes its snapshot to `snap`.
pub fn cfg(trigger: Trigger, snap: &Path) -> CheckpointConfig {
    CheckpointConfig {
        trigger,
        sink: SnapshotSink::File(snap.to_path_buf()),
        log_probes: false,
        signals: false,
    }
}

/// Runs `module` (WASI on `dir`, a wasm stack of `stack` bytes) until its
/// `probe`-th probe and writes the snapshot to `snap`; panics unless a
/// checkpoint was written.
pub fn checkpoint_at(module: &Module, dir: &Path, stack: usize, probe: u64, snap: &Path) {
    let out = Command::new(module)
        .config(wasi(dir))
        .max_wasm_stack(stack)
        .run(cfg(Trigger::ProbeCount(probe), snap), RunOptions::default())
        .expect("run");
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
}

/// Checkpoints `module` (WASI on a fresh directory, a `stack`-byte wasm
/// stack) at probe `n`, restores the snapshot into `target`, runs it to
/// the end and checks its exit code and `out` file against `want`; returns
/// the number of frames the snapshot held.
pub fn checkpoint_restore(
    module: &Module,
    target: &Module,
    stack: usize,
    tag: &str,
    n: u64,
    want: &(i32, Vec<u8>),
) -> usize {
    let dir = temp_dir(tag, "cr");
    let snap = dir.join("snap");
    let out = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(stack)
        .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default())
        .unwrap_or_else(|e| panic!("run to probe {n}: {e}"));
    let Outcome::Checkpointed { stats } = out else {
        panic!("probe {n}: no checkpoint: {out:?}");
    };
    let out = Command::new(target)
        .max_wasm_stack(stack)
        .grants(grants(&dir))
        .restore(
            SnapshotSource::File(snap),
            cfg(Trigger::CountProbes, &dir.join("snap2")),
            RestoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("restore of probe {n}: {e}"));
    let Outcome::Exited { code, .. } = out else {
        panic!("restore of probe {n} did not exit: {out:?}");
    };
    let bytes = std::fs::read(dir.join("out")).expect("output after restore");
    assert_eq!((code, bytes), want.clone(), "checkpoint at probe {n}");
    let _ = std::fs::remove_dir_all(&dir);
    stats.frames
}

/// An uninterrupted run of `module` (its `_start`, with a WASI preopen of
/// a fresh directory and a `stack`-byte wasm stack) that counts probes:
/// its exit code, the contents of the `out` file it wrote, and its probe
/// count P, what the checkpoint-everywhere tests spread their points over.
pub fn reference(module: &Module, stack: usize, tag: &str) -> (i32, Vec<u8>, u64) {
    let dir = temp_dir(tag, "ref");
    let out = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(stack)
        .run(
            cfg(Trigger::CountProbes, &dir.join("snap")),
            RunOptions::default(),
        )
        .expect("reference run");
    let Outcome::Exited { code, probes } = out else {
        panic!("reference run checkpointed: {out:?}");
    };
    let bytes = std::fs::read(dir.join("out")).expect("reference output");
    let _ = std::fs::remove_dir_all(&dir);
    (code, bytes, probes)
}
