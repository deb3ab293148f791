//! What `mvvm-checkpoint` does: run the program under the checkpoint
//! machinery, and on a trigger write the snapshot, say where it is, and
//! stop with [`Exit::Checkpointed`]. Also what `mvvm-restore` does once the
//! snapshot is read, since a restored run ends the same ways
//! ([`finish`]).

use crate::exit::Exit;
use crate::guest_flags::GuestFlags;
use crate::run::{max_stack_bytes, on_guest_thread, wasi_config};
use crate::snapshot_location::SnapshotLocation;
use crate::summary::{self, Status, Summary};
use crate::trigger_flags::TriggerFlags;
use anyhow::Result;
use mvvm_rt::checkpoint::{
    CheckpointConfig, CheckpointError, CheckpointStats, Outcome, RunOptions,
};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Everything `mvvm-checkpoint` was asked to do.
#[derive(Debug, Clone)]
pub struct CheckpointRequest {
    /// The program, loaded (see `target::load_module`).
    pub module: mvvm_rt::Module,
    /// The guest's `argv[0]`.
    pub program: String,
    /// Arguments, environment, preopens.
    pub guest: GuestFlags,
    /// When to checkpoint.
    pub triggers: TriggerFlags,
    /// Where the snapshot goes.
    pub snapshot: SnapshotLocation,
    /// `--max-wasm-stack`, in MiB.
    pub max_wasm_stack_mib: usize,
    /// `--json` destination.
    pub json: Option<PathBuf>,
    /// Whether probe logging is on (`-i` or `MVVM_LOG`).
    pub log_probes: bool,
    /// `--incremental`: periodic checkpoints after the first are
    /// incremental whatever the policy.
    pub incremental: bool,
    /// `--sync`: how durable snapshot files are made.
    pub sync: mvvm_snapshot::SyncMode,
    /// `--key`: seal the snapshot (file or stream) or authenticate the
    /// TCP transfer with this shared secret.
    pub key: Option<mvvm_snapshot::seal::SealKey>,
    /// `--live`: pre-copy live migration to the `-o/-s` receiver.
    pub live: Option<mvvm_rt::checkpoint::LiveOptions>,
}

/// Name used in messages.
const TOOL: &str = "mvvm-checkpoint";

/// Runs the program; returns how the process should exit.
pub fn execute(req: CheckpointRequest) -> Result<Exit> {
    let module = req.module;
    let wasi = wasi_config(&req.guest, &req.program)?;
    let max_stack = max_stack_bytes(req.max_wasm_stack_mib)?;
    crate::sealed_transport::check_combination(
        req.key.is_some(),
        req.triggers.every.is_some(),
        req.incremental,
    )?;
    check_live(req.live.is_some(), req.triggers.every.is_some())?;
    if req.triggers.every.is_some() {
        // Periodic checkpoints continue by rewinding: have the clones an
        // on-demand object left out ready before the first one.
        module.compile_clones_in_background();
    }
    let cfg = CheckpointConfig {
        trigger: req.triggers.trigger(),
        sink: crate::sealed_transport::sink(&req.snapshot, TOOL, req.key.as_ref())?,
        log_probes: req.log_probes,
        signals: true,
    };
    let _ = PERIODIC_TOOL.set(TOOL);
    let opts = RunOptions {
        on_checkpoint: Some(report_periodic),
        incremental: req.incremental,
        on_thread_probes: Some(report_thread_probes),
        write_in_foreground: false,
        sync: req.sync,
        live: req.live,
    };
    let program = module.clone();
    let outcome = on_guest_thread(max_stack, move || {
        let command = mvvm_wasi::Command::new(&module)
            .max_wasm_stack(max_stack)
            .config(wasi);
        // Start-up ends here: the module is loaded, the guest thread runs;
        // what follows is instantiation and `_start`.
        summary::mark_guest_start();
        command.run(cfg, opts)
    })?;
    if !matches!(outcome, Ok(Outcome::Checkpointed { .. }))
        && let SnapshotLocation::File(p) = &req.snapshot
    {
        crate::stream_path::release_fifo(p);
    }
    finish(
        TOOL,
        &req.program,
        &program,
        outcome,
        req.json.as_ref(),
        &req.snapshot,
        None,
    )
}

/// Refuses `--live` with `--every`: periodic checkpoints go to files, a
/// live migration to one receiver.
pub(crate) fn check_live(live: bool, every: bool) -> Result<()> {
    if live && every {
        anyhow::bail!(
            "--live does not combine with --every: a live migration goes once to the -o/-s receiver"
        );
    }
    Ok(())
}

/// The tool named in [`report_periodic`]'s messages (one tool per process).
pub(crate) static PERIODIC_TOOL: OnceLock<&'static str> = OnceLock::new();

/// Says on stderr where a periodic checkpoint (`--every`) went; the run
/// goes on.
pub(crate) fn report_periodic(stats: &CheckpointStats) {
    summary::record_periodic(stats);
    let tool = PERIODIC_TOOL.get().copied().unwrap_or("mvvm");
    fresh_line();
    eprintln!(
        "{tool}: periodic checkpoint written to {} ({}, {} bytes, {:.1} ms; the program paused {:.1} ms); running on",
        stats.location,
        kind_of(stats),
        stats.snapshot_bytes,
        stats.trigger_to_durable.as_secs_f64() * 1e3,
        stats.pause.as_secs_f64() * 1e3
    );
}

/// Says on stderr how many probes a thread other than the main one
/// executed (`--count-probes`, `-c`: the count in the summary is the main
/// thread's, which `-c` counts).
pub(crate) fn report_thread_probes(tid: u32, probes: u64) {
    let tool = PERIODIC_TOOL.get().copied().unwrap_or("mvvm");
    fresh_line();
    eprintln!("{tool}: thread {tid} ended after {probes} probes");
}

/// Ends the guest's unfinished stderr line, if it left one, so that the
/// tool's message that follows starts a line of its own.
fn fresh_line() {
    if mvvm_wasi::take_stderr_mid_line() {
        eprintln!();
    }
}

/// Says on stderr what a live migration sent: its rounds, bytes, time and
/// the program's pause (stop to last byte sent).
fn report_live(tool: &str, live: &mvvm_rt::checkpoint::LiveStats) {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let rounds: Vec<String> = live
        .round_bytes
        .iter()
        .map(|&b| format!("{:.1}", mib(b)))
        .collect();
    eprintln!(
        "{tool}: live migration: {} pre-copy round(s) of [{}] MiB ({}), final part {:.2} MiB; \
         {:.1} MiB in {:.1} ms; the program paused {:.1} ms (stop to last byte sent)",
        live.round_bytes.len(),
        rounds.join(", "),
        live.stop_reason,
        mib(live.final_bytes),
        mib(live.total_bytes),
        live.total_time.as_secs_f64() * 1e3,
        live.pause.as_secs_f64() * 1e3
    );
}

/// "full" or "incremental against BASE".
fn kind_of(stats: &CheckpointStats) -> String {
    if stats.live.is_some() {
        return "live, pre-copied".to_string();
    }
    match &stats.base {
        Some(b) => format!("incremental against {b}"),
        None => "full".to_string(),
    }
}

/// Turns the runtime's outcome into an exit status: reports a checkpoint on
/// stderr, a trap with its message, writes the `--json` summary, and gives
/// other errors back (printed by the binary with their cause chain).
/// `sink` names a snapshot that went to a stream; `downtime_ms` is the
/// downtime of the migration a restored run came from. After a snapshot
/// written to a file, the resume clones its restore will need are put in
/// the clone cache (`clone_compiler::keep_for_restore`; `module` is the
/// program's).
pub fn finish(
    tool: &str,
    program: &str,
    module: &mvvm_rt::Module,
    outcome: Result<Outcome, mvvm_wasi::Error>,
    json: Option<&PathBuf>,
    sink: &SnapshotLocation,
    downtime_ms: Option<f64>,
) -> Result<Exit> {
    match outcome {
        Ok(Outcome::Exited { code, probes }) => {
            let exit = Exit::Guest(code);
            let mut s = Summary::new(Status::Exited, exit.code());
            s.probes = Some(probes);
            s.downtime_ms = downtime_ms;
            summary::emit(tool, json, &s);
            Ok(exit)
        }
        Ok(Outcome::Checkpointed { stats }) => {
            let ms = stats.trigger_to_durable.as_secs_f64() * 1e3;
            let location = match sink {
                SnapshotLocation::File(_) => stats.location.clone(),
                other => other.display(),
            };
            fresh_line();
            eprintln!(
                "{tool}: checkpoint written to {location} ({}, {} frames, {} bytes, {:.1} ms from the trigger); resume with mvvm-restore",
                kind_of(&stats),
                stats.frames,
                stats.snapshot_bytes,
                ms
            );
            if let Some(live) = &stats.live {
                report_live(tool, live);
            }
            let mut s = Summary::new(Status::Checkpointed, Exit::Checkpointed.code());
            s.live = stats.live.clone();
            s.probes = Some(stats.probes);
            s.snapshot = Some(location);
            s.snapshot_bytes = Some(stats.snapshot_bytes);
            s.memory_bytes = Some(stats.memory_bytes);
            s.frames = Some(stats.frames);
            s.checkpoint_ms = Some(ms);
            s.downtime_ms = downtime_ms;
            summary::emit(tool, json, &s);
            if let SnapshotLocation::File(_) = sink {
                crate::clone_compiler::keep_for_restore(module, &stats);
            }
            Ok(Exit::Checkpointed)
        }
        Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Trap(trap))) => {
            fresh_line();
            eprintln!("{program}: {trap}");
            let mut s = Summary::new(Status::Trapped, Exit::Trap.code());
            s.downtime_ms = downtime_ms;
            summary::emit(tool, json, &s);
            Ok(Exit::Trap)
        }
        Err(e) => Err(e.into()),
    }
}
