//! What `mvvm-restore` does: read a snapshot, check it belongs to the
//! program, rebuild the guest (memory, globals, tables, files, clocks),
//! rewind its frames and run it to the end, or to the next checkpoint: the
//! same triggers as `mvvm-checkpoint` apply, so runs chain (A → B → A).
//!
//! A new snapshot replaces the one the run came from unless
//! `--snapshot-out` says otherwise. The replacement is atomic (temporary
//! name, sync, rename): the old snapshot stays intact until the new one is
//! complete, and the restored run keeps reading the old file (its memory
//! is mapped from it) because a rename does not touch an open inode.

use crate::checkpoint_cmd::finish;
use crate::exit::Exit;
use crate::run::{max_stack_bytes, on_guest_thread};
use crate::trigger_flags::TriggerFlags;
use anyhow::{Context, Result, bail};
use mvvm_rt::checkpoint::{
    CheckpointConfig, CheckpointError, RestoreOptions, SnapshotSink, SnapshotSource,
};
use std::path::PathBuf;

/// Everything `mvvm-restore` was asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Bytes of the `.aot` object.
    pub aot: Vec<u8>,
    /// The program's name, for messages.
    pub program: String,
    /// The snapshot to resume.
    pub snapshot: PathBuf,
    /// Where a new checkpoint goes (default: replaces `snapshot`).
    pub snapshot_out: Option<PathBuf>,
    /// When to checkpoint the resumed run.
    pub triggers: TriggerFlags,
    /// Continue even if a file the guest had open is gone or was replaced.
    pub allow_changed_files: bool,
    /// `--max-wasm-stack`, in MiB.
    pub max_wasm_stack_mib: usize,
    /// `--json` destination.
    pub json: Option<PathBuf>,
    /// Whether probe logging is on (`-i` or `MVVM_LOG`).
    pub log_probes: bool,
}

/// Name used in messages.
const TOOL: &str = "mvvm-restore";

/// Resumes the program; returns how the process should exit.
pub fn execute(req: RestoreRequest) -> Result<Exit> {
    if !req.snapshot.is_file() {
        bail!(
            "no snapshot at {} (was the checkpoint written elsewhere? use --snapshot PATH)",
            req.snapshot.display()
        );
    }
    let module = mvvm_rt::Module::from_aot(&req.aot).context("cannot load the program")?;
    let max_stack = max_stack_bytes(req.max_wasm_stack_mib)?;
    let out = req
        .snapshot_out
        .clone()
        .unwrap_or_else(|| req.snapshot.clone());
    let cfg = CheckpointConfig {
        trigger: req.triggers.trigger(),
        sink: SnapshotSink::File(out),
        log_probes: req.log_probes,
        signals: true,
    };
    let source = SnapshotSource::File(req.snapshot.clone());
    let opts = RestoreOptions {
        allow_changed_files: req.allow_changed_files,
    };
    let outcome = on_guest_thread(max_stack, move || {
        mvvm_rt::checkpoint::restore(&module, source, max_stack, cfg, opts)
    })?;
    let snapshot = req.snapshot.display();
    match outcome {
        Err(e @ CheckpointError::FileChanged { .. }) => Err(anyhow::Error::new(e).context(format!(
            "refusing to restore {snapshot}: the guest's files changed since the checkpoint (--allow-changed-files continues anyway)"
        ))),
        Err(e @ (CheckpointError::Snapshot(_) | CheckpointError::Mismatch(_))) => {
            Err(anyhow::Error::new(e).context(format!("refusing to restore {snapshot}")))
        }
        outcome => finish(TOOL, &req.program, outcome, req.json.as_ref()),
    }
}
