//! `mvvm-restore`: resumes a program from a snapshot written by
//! `mvvm-checkpoint` (or by a previous `mvvm-restore`) and runs it to the
//! end, or to its next checkpoint. The logic lives in
//! `mvvm_cli::restore_cmd`.

use anyhow::Result;
use clap::Parser;
use mvvm_cli::exit::{self, Exit};
use mvvm_cli::restore_cmd::{self, RestoreRequest};
use mvvm_cli::snapshot_location::SnapshotLocation;
use mvvm_cli::trigger_flags::TriggerFlags;
use std::path::PathBuf;
use std::process::ExitCode;

/// Resume a checkpointed WebAssembly program and run it to the end.
///
/// The target may be any compilation of the same wasm module with a
/// checkpoint policy (another policy, opt level or ISA than the one that
/// was checkpointed). The guest's arguments, environment, preopened
/// directories, open files and clocks come from the snapshot; each open
/// file is checked to be the same file as at the checkpoint, and restore
/// refuses when one is gone or was replaced (unless
/// `--allow-changed-files`).
///
/// The same triggers as `mvvm-checkpoint` apply to the resumed run; a new
/// snapshot atomically replaces the one read, or goes to `--snapshot-out`.
///
/// Exit status: the guest's own, exactly as an uninterrupted run would
/// end; 75 when a new checkpoint was written; 134 when the guest traps;
/// 125 when MVVM fails or refuses the snapshot (missing, truncated or
/// damaged, of another module, files changed); 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "mvvm-restore", version)]
struct Restore {
    /// The program: an `.aot` object compiled with a checkpoint policy.
    #[arg(short = 't', long = "target", value_name = "PROGRAM")]
    target: PathBuf,

    /// The snapshot to resume: a file (default: the target's path with the
    /// extension `.bin`, where `mvvm-checkpoint` writes it), or
    /// `tcp-listen://ADDR:PORT` to wait for one sent by `mvvm-checkpoint
    /// --snapshot tcp://HOST:PORT`.
    #[arg(long = "snapshot", value_name = "PATH|tcp-listen://ADDR:PORT", value_parser = SnapshotLocation::parse)]
    snapshot: Option<SnapshotLocation>,

    /// Where a new checkpoint of the resumed run goes: a file or
    /// `tcp://HOST:PORT` (default: it replaces the snapshot file read; for
    /// a snapshot received over TCP, the target's path with `.bin`).
    #[arg(long = "snapshot-out", value_name = "PATH|tcp://HOST:PORT", value_parser = SnapshotLocation::parse)]
    snapshot_out: Option<SnapshotLocation>,

    #[command(flatten)]
    triggers: TriggerFlags,

    /// Resume even if a file the guest had open is gone or was replaced
    /// (a missing file is then reported to the guest as a closed
    /// descriptor, a replaced one is used as it is).
    #[arg(long = "allow-changed-files")]
    allow_changed_files: bool,

    /// Write a one-line JSON summary at exit to FILE (`-` for stderr), as
    /// `mvvm-checkpoint --json` does.
    #[arg(long = "json", value_name = "FILE")]
    json: Option<PathBuf>,

    /// Largest wasm stack in MiB before a call-stack-exhausted trap.
    #[arg(long = "max-wasm-stack", value_name = "MIB", default_value_t = 64)]
    max_wasm_stack: usize,

    /// Log every step (same as `MVVM_LOG=debug`).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

impl Restore {
    fn execute(self) -> Result<Exit> {
        let aot = mvvm_cli::target::load_aot_bytes(&self.target)?;
        let snapshot = self.snapshot.unwrap_or_else(|| {
            SnapshotLocation::File(mvvm_cli::target::default_snapshot_path(&self.target))
        });
        let snapshot_out = self
            .snapshot_out
            .unwrap_or_else(|| restore_cmd::default_snapshot_out(&snapshot, &self.target));
        let log_probes = self.triggers.log_probes || mvvm_cli::logging::checkpoint_log_enabled();
        restore_cmd::execute(RestoreRequest {
            aot,
            program: mvvm_cli::target::program_name(&self.target),
            snapshot,
            snapshot_out,
            triggers: self.triggers,
            allow_changed_files: self.allow_changed_files,
            max_wasm_stack_mib: self.max_wasm_stack,
            json: self.json,
            log_probes,
        })
    }
}

fn main() -> ExitCode {
    let cmd = Restore::parse();
    mvvm_cli::logging::init_with(cmd.verbose, cmd.triggers.log_probes);
    match cmd.execute() {
        Ok(exit) => exit.into(),
        Err(e) => exit::report("mvvm-restore", &e).into(),
    }
}
