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
//!
//! Incremental snapshots: when the program was compiled with
//! `--enable-loop-dirty-checkpoint` (or with `--incremental`), the restored
//! run tracks the memory chunks it writes, and its next checkpoint to a
//! file holds only those, naming the snapshot it was restored from as its
//! base. Replacing that very file would lose the base: it is first kept
//! (hard link, no copy) as `STEM.ID.bin` next to it (`ID`: 12 hex digits
//! of its snapshot id), and the new snapshot names that. Restoring a chain
//! checks every base by its id and refuses a missing or replaced one,
//! naming it.
//!
//! Downtime: the snapshot carries the wall-clock time of its trigger
//! (`SnapshotInfo::created_unix_nanos`); right before the first
//! instruction of the resumed program the runtime calls [`on_resume`],
//! which takes the difference with this host's clock. On one machine (or
//! two network namespaces of it) that is exact up to the clock's
//! resolution; across machines it is off by their clock difference (NTP
//! keeps that around a millisecond on a LAN, and it may even come out
//! negative).

use crate::checkpoint_cmd::finish;
use crate::exit::Exit;
use crate::run::{max_stack_bytes, on_guest_thread};
use crate::snapshot_location::SnapshotLocation;
use crate::trigger_flags::TriggerFlags;
use anyhow::Result;
use mvvm_rt::checkpoint::{CheckpointConfig, CheckpointError, RestoreOptions};
use mvvm_snapshot::{SnapshotError, SnapshotInfo};
use mvvm_wasi::Error as WasiError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything `mvvm-restore` was asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The program, loaded (see `target::load_module`).
    pub module: mvvm_rt::Module,
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
    /// The capabilities granted to the guest (`-d`, `--dir`,
    /// `--tcplisten`): every preopen and listener the snapshot needs must
    /// be among them.
    pub grants: mvvm_wasi::Grants,
    /// `--max-wasm-stack`, in MiB.
    pub max_wasm_stack_mib: usize,
    /// `--max-memory`, in MiB: the largest linear memory a snapshot may
    /// restore (the module's maximum applies too).
    pub max_memory_mib: u64,
    /// `--json` destination.
    pub json: Option<PathBuf>,
    /// Whether probe logging is on (`--log-probes` or `MVVM_LOG`).
    pub log_probes: bool,
    /// Debug mode (`-v`, `--log-probes` or `MVVM_LOG`): print the downtime
    /// on stderr as soon as the program resumes.
    pub debug: bool,
    /// `--no-verify-memory`: skip the memory runs' checksums (restore in
    /// time independent of the memory size; see the flag's help).
    pub no_verify_memory: bool,
    /// `--incremental`: track dirty chunks whatever the policy, so the next
    /// checkpoint is incremental against the snapshot restored.
    pub incremental: bool,
    /// `--sync`: how durable snapshot files are made.
    pub sync: mvvm_snapshot::SyncMode,
    /// `--key`: the snapshot must be sealed or come through an
    /// authenticated transfer with this shared secret; the next checkpoint
    /// is sealed or authenticated with it too.
    pub key: Option<mvvm_snapshot::seal::SealKey>,
    /// `--insecure`: listen beyond loopback without `--key`.
    pub insecure: bool,
    /// `--live` (with `-o/-s`): the next checkpoint is a pre-copy live
    /// migration.
    pub live: Option<mvvm_rt::checkpoint::LiveOptions>,
}

/// Name used in messages.
const TOOL: &str = "mvvm-restore";

/// Downtime of this process's restore in milliseconds, set by
/// [`on_resume`] (one restore per process).
static DOWNTIME_MS: OnceLock<f64> = OnceLock::new();
/// Whether [`on_resume`] prints the downtime at once.
static PRINT_DOWNTIME: AtomicBool = AtomicBool::new(false);

/// Where a new checkpoint of a restored run goes without `--snapshot-out`:
/// over the snapshot file it came from, or, for a snapshot received over
/// TCP or from a stream, next to the target (`bc.aot` → `bc.bin`).
pub fn default_snapshot_out(snapshot: &SnapshotLocation, target: &Path) -> SnapshotLocation {
    match snapshot {
        SnapshotLocation::File(p) if !snapshot.is_stream() => SnapshotLocation::File(p.clone()),
        _ => SnapshotLocation::File(crate::target::default_snapshot_path(target)),
    }
}

/// Milliseconds from `info`'s trigger to now, on this host's clock.
pub fn downtime_ms(info: &SnapshotInfo, now: SystemTime) -> Option<f64> {
    if info.created_unix_nanos == 0 {
        return None; // a producer that did not know its clock
    }
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_nanos() as f64;
    Some((now - info.created_unix_nanos as f64) / 1e6)
}

/// The runtime's hook, called right before the resumed program's first
/// instruction: records the start-up time (see [`crate::summary`]) and
/// records (and in debug mode prints) the downtime.
fn on_resume(info: &SnapshotInfo) {
    crate::summary::mark_guest_start();
    let Some(ms) = downtime_ms(info, SystemTime::now()) else {
        return;
    };
    let _ = DOWNTIME_MS.set(ms);
    if PRINT_DOWNTIME.load(Ordering::Relaxed) {
        eprintln!(
            "{TOOL}: resumed {ms:.1} ms after the checkpoint's trigger (downtime; {} from {})",
            info.policy, info.source_arch
        );
    }
}

/// Resumes the program; returns how the process should exit.
pub fn execute(req: RestoreRequest) -> Result<Exit> {
    let module = req.module;
    let max_stack = max_stack_bytes(req.max_wasm_stack_mib)?;
    let cfg = CheckpointConfig {
        trigger: req.triggers.trigger(),
        sink: crate::sealed_transport::sink(&req.snapshot_out, TOOL, req.key.as_ref())?,
        log_probes: req.log_probes,
        signals: true,
    };
    crate::sealed_transport::check_combination(
        req.key.is_some(),
        req.triggers.every.is_some(),
        req.incremental,
    )?;
    crate::checkpoint_cmd::check_live(req.live.is_some(), req.triggers.every.is_some())?;
    if req.triggers.every.is_some() {
        // Periodic checkpoints continue by rewinding: have the clones an
        // on-demand object left out ready before the first one.
        module.compile_clones_in_background();
    }
    let source =
        crate::sealed_transport::source(&req.snapshot, TOOL, req.key.as_ref(), req.insecure)?;
    if matches!(source, mvvm_rt::checkpoint::SnapshotSource::Connection(..)) {
        // A migration's memory takes a while to arrive (pre-copy rounds):
        // compile the clones an on-demand object left out meanwhile, so
        // the downtime does not include them.
        module.compile_clones_in_background();
    }
    let opts = RestoreOptions {
        on_resume: Some(on_resume),
        skip_memory_verification: req.no_verify_memory,
        incremental: req.incremental,
        on_checkpoint: Some(crate::checkpoint_cmd::report_periodic),
        on_thread_probes: Some(crate::checkpoint_cmd::report_thread_probes),
        write_in_foreground: false,
        sync: req.sync,
        limits: mvvm_rt::checkpoint::RestoreLimits {
            max_memory_bytes: req.max_memory_mib.saturating_mul(1 << 20),
            ..Default::default()
        },
        live: req.live,
    };
    let _ = crate::checkpoint_cmd::PERIODIC_TOOL.set(TOOL);
    // `MVVM_LOG=mvvm_cli=debug` asks for the downtime without the probe log.
    let debug = req.debug || tracing::enabled!(tracing::Level::DEBUG);
    PRINT_DOWNTIME.store(debug, Ordering::Relaxed);
    let program = module.clone();
    let outcome = on_guest_thread(max_stack, move || {
        mvvm_wasi::Command::new(&module)
            .max_wasm_stack(max_stack)
            .grants(req.grants)
            .allow_changed_files(req.allow_changed_files)
            .restore(source, cfg, opts)
    })?;
    let snapshot = req.snapshot.display();
    let streamed = !matches!(req.snapshot, SnapshotLocation::File(_)) || req.snapshot.is_stream();
    match outcome {
        Err(e @ WasiError::FileChanged { .. }) => Err(anyhow::Error::new(e).context(format!(
            "refusing to restore {snapshot}: the guest's files changed since the checkpoint (--allow-changed-files continues anyway)"
        ))),
        Err(WasiError::NotGranted(e)) => {
            // The whole message is the fix: which guest paths and flags.
            Err(anyhow::anyhow!(
                "refusing to restore {snapshot}: {e}; nothing was run"
            ))
        }
        Err(e) if crate::sealed_transport::seal_failure(&e).is_some() => {
            // Altered, cut, wrong key, or sealed without --key: the
            // sealing layer's message says which.
            let why = crate::sealed_transport::seal_failure(&e)
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(anyhow::anyhow!(
                "refusing to restore {snapshot}: {why}; nothing was resumed"
            ))
        }
        Err(WasiError::Checkpoint(
            e @ CheckpointError::Snapshot(
                SnapshotError::BaseUnreadable { .. } | SnapshotError::BaseMismatch { .. },
            ),
        )) => {
            // One line that names the base: it is what the user must fix
            // (with the base's own error, now a source, on the same line).
            Err(anyhow::anyhow!(
                "refusing to restore {snapshot}: {}",
                crate::exit::one_line(&e)
            ))
        }
        Err(WasiError::Checkpoint(
            e @ (CheckpointError::Snapshot(_) | CheckpointError::Mismatch(_)),
        )) if streamed => {
            let cut = matches!(
                e,
                CheckpointError::Snapshot(
                    SnapshotError::Truncated { .. }
                        | SnapshotError::Io { .. }
                        | SnapshotError::NotASnapshot
                )
            );
            let why = if cut {
                ": the sender stopped before the end of the snapshot"
            } else {
                ""
            };
            Err(anyhow::Error::new(e).context(format!(
                "refusing to restore {snapshot}{why}; nothing was resumed"
            )))
        }
        Err(e @ WasiError::StateDecode(_)) => {
            Err(anyhow::Error::new(e).context(format!("refusing to restore {snapshot}")))
        }
        Err(WasiError::Checkpoint(
            e @ (CheckpointError::Snapshot(_) | CheckpointError::Mismatch(_)),
        )) => {
            Err(anyhow::Error::new(e).context(format!("refusing to restore {snapshot}")))
        }
        outcome => finish(
            TOOL,
            &req.program,
            &program,
            outcome,
            req.json.as_ref(),
            &req.snapshot_out,
            DOWNTIME_MS.get().copied(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn downtime_from_the_trigger_time() {
        let info = SnapshotInfo {
            created_unix_nanos: 1_000_000_000,
            ..Default::default()
        };
        let now = UNIX_EPOCH + Duration::from_millis(1_250);
        let ms = downtime_ms(&info, now).unwrap();
        assert!((ms - 250.0).abs() < 1e-6, "{ms}");
        assert_eq!(downtime_ms(&SnapshotInfo::default(), now), None);
    }

    #[test]
    fn streams_do_not_become_the_next_snapshot() {
        let t = Path::new("dir/bc.aot");
        let stdin = SnapshotLocation::File("/dev/stdin".into());
        assert_eq!(
            default_snapshot_out(&stdin, t),
            SnapshotLocation::File("dir/bc.bin".into())
        );
        let file = SnapshotLocation::File("x/s.bin".into());
        assert_eq!(default_snapshot_out(&file, t), file);
    }
}
