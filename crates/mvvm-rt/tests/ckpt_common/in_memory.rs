//! Checkpoint and restore through an in-memory snapshot, for guests that
//! write their result to the file `out` of their preopened directory and
//! exit with 7 (`checkpoint_v128.rs`, `checkpoint_exceptions.rs`).

use super::{grants, temp_dir, wasi};
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_wasi::Command;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An in-memory snapshot sink the test reads back.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// What was written so far (the buffer is emptied).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A configuration without probe logs or signal handlers.
pub fn config(trigger: Trigger, sink: SnapshotSink) -> CheckpointConfig {
    CheckpointConfig {
        trigger,
        sink,
        log_probes: false,
        signals: false,
    }
}

/// The file `out` of `dir`, empty when there is none; removes `dir`.
pub fn output(dir: &Path) -> Vec<u8> {
    let bytes = std::fs::read(dir.join("out")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(dir);
    bytes
}

/// The uninterrupted run: its output and the number of probes.
pub fn reference(module: &Module, stack: usize, tag: &str) -> (Vec<u8>, u64) {
    let dir = temp_dir(tag, "ref");
    let r = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(stack)
        .run(
            config(
                Trigger::CountProbes,
                SnapshotSink::Stream(Box::new(std::io::sink())),
            ),
            RunOptions::default(),
        )
        .expect("reference run");
    let Outcome::Exited { code: 7, probes } = r else {
        panic!("reference run: {r:?}");
    };
    (output(&dir), probes)
}

/// The snapshot of `module` at probe `k`, and the directory it ran in.
pub fn checkpoint(module: &Module, k: u64, stack: usize, tag: &str) -> (Vec<u8>, PathBuf) {
    let snap = SharedBuf::default();
    let dir = temp_dir(tag, "ckpt");
    let r = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(stack)
        .run(
            config(
                Trigger::ProbeCount(k),
                SnapshotSink::Stream(Box::new(snap.clone())),
            ),
            RunOptions::default(),
        )
        .unwrap_or_else(|e| panic!("checkpoint at probe {k}: {e}"));
    assert!(
        matches!(r, Outcome::Checkpointed { ref stats } if stats.probes == k),
        "probe {k}: {r:?}"
    );
    (snap.take(), dir)
}

/// Restores `snap` (taken in `dir`) into `target` and runs it to its end:
/// its output. Removes `dir`.
pub fn restore(
    target: &Module,
    snap: Vec<u8>,
    dir: &Path,
    stack: usize,
) -> Result<Vec<u8>, mvvm_wasi::Error> {
    let r = Command::new(target)
        .max_wasm_stack(stack)
        .grants(grants(dir))
        .restore(
            SnapshotSource::Stream(Box::new(std::io::Cursor::new(snap))),
            config(
                Trigger::None,
                SnapshotSink::Stream(Box::new(std::io::sink())),
            ),
            RestoreOptions::default(),
        );
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir);
            return Err(e);
        }
    };
    assert!(matches!(r, Outcome::Exited { code: 7, .. }), "{r:?}");
    Ok(output(dir))
}
