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
use crate::snapshot_location::SnapshotLocation;
use crate::trigger_flags::TriggerFlags;
use anyhow::{Context, Result};
use mvvm_rt::checkpoint::{CheckpointConfig, CheckpointError, RestoreOptions};
use std::path::{Path, PathBuf};

/// Everything `mvvm-restore` was asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Bytes of the `.aot` object.
    pub aot: Vec<u8>,
    /// The program's name, for messages.
    pub program: String,
    /// The snapshot to resume.
    pub snapshot: SnapshotLocation,
    /// Where a new checkpoint goes (see [`default_snapshot_out`]).
    pub snapshot_out: SnapshotLocation,
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

/// Where a new checkpoint of a restored run goes without `--snapshot-out`:
/// over the snapshot file it came from, or, for a snapshot received over
/// TCP, next to the target (`bc.aot` → `bc.bin`).
pub fn default_snapshot_out(snapshot: &SnapshotLocation, target: &Path) -> SnapshotLocation {
    match snapshot {
        SnapshotLocation::File(p) => SnapshotLocation::File(p.clone()),
        _ => SnapshotLocation::File(crate::target::default_snapshot_path(target)),
    }
}

/// Resumes the program; returns how the process should exit.
pub fn execute(req: RestoreRequest) -> Result<Exit> {
    let module = mvvm_rt::Module::from_aot(&req.aot).context("cannot load the program")?;
    let max_stack = max_stack_bytes(req.max_wasm_stack_mib)?;
    let cfg = CheckpointConfig {
        trigger: req.triggers.trigger(),
        sink: req.snapshot_out.sink()?,
        log_probes: req.log_probes,
        signals: true,
    };
    let source = req.snapshot.source(TOOL)?;
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
        outcome => finish(
            TOOL,
            &req.program,
            outcome,
            req.json.as_ref(),
            &req.snapshot_out,
        ),
    }
}
