//! Checkpoint and restore of running programs.
//!
//! The runtime half knows nothing of WASI: the embedder (`mvvm-wasi`'s
//! `Command`) builds the store, its host data and the imports, and hands
//! them to [`Run::start`] or [`Restore::resume`]; host data that has state
//! to save implements [`host::HostState`], and blocking host calls use the
//! interruption interface of [`host`].
//!
//! ```text
//!  Run::new(module, cfg, opts) ─▶ start(store, imports) ── trigger ──▶ Probe returns 1 ──▶ frames unwind
//!        │                                          (UnwindFrame, innermost first)
//!        ▼                                                   │
//!  Outcome::Exited { code, probes }        capture: frames, globals, tables, dropped
//!                                          segments, memory, host state ──▶ snapshot
//!                                                   │ (file: temp name, fsync, rename)
//!                                                   ▼
//!  Restore::open(module, source, ..) ── verify, check frames ──▶ host_state() bytes
//!        (the embedder rebuilds its host data and the store from them)
//!  resume(store, imports) ── instantiate without init, map memory
//!        copy-on-write ──▶ REWINDING, call the entry
//!        (RewindFrame hands frames out outermost first) ──▶ runs on
//! ```
//!
//! The protocol with generated code is `mvvm_abi::checkpoint`; this module
//! is its runtime half. Files:
//! - `control.rs`: what the builtins work on, signals, timer, session guard;
//! - `host.rs`: the interface for host layers (state as bytes, interrupting
//!   blocking calls);
//! - `capture.rs`: turning the unwound store into a snapshot;
//! - `restore.rs`: checking a snapshot against the module and rebuilding a
//!   store from it;
//! - `live.rs`: pre-copy live migration (rounds of dirty chunks sent by a
//!   thread while the program runs, then the usual stop).
//!
//! Errors keep their causes ([`CheckpointError`]'s `source`): a tool
//! prints the message, then each cause once.
//!
//! Decisions worth knowing:
//! - **Counting**: with [`Trigger::CountProbes`], [`Trigger::ProbeCount`]
//!   and [`Trigger::FunctionEntry`] every probe calls the `Probe` builtin
//!   (the flag stays set), so [`Outcome::Exited::probes`] is exact; this
//!   costs a call per probe. With [`Trigger::None`] or [`Trigger::After`]
//!   (and signals) probes stay on the fast path until a request: `probes`
//!   is then the number of probes seen after requests only (0 or 1).
//! - **Snapshots in place**: restoring from a file maps its memory runs
//!   `MAP_PRIVATE`; a checkpoint of the restored run to the same path is
//!   safe because files are replaced by rename, never rewritten in place.
//! - **Clock**: `SnapshotParts::monotonic_offset_nanos` holds the guest's
//!   monotonic time when the snapshot was taken (an offset relative to one
//!   host's clock means nothing on another host); the host state carries
//!   the same value ([`host::SavedHostState::monotonic_nanos`]) and WASI's
//!   restore continues the clock from it.
//! - **Entry**: the outermost frame must be in `_start` or in the start
//!   function (both have array trampolines); after a start function resumed
//!   this way returns, `_start` runs as in a fresh run.
//! - **Incremental snapshots** (see `docs/snapshot-format.md`): when the
//!   memory is dirty-tracked (`memory/dirty.rs`: write protection, one
//!   fault per 64 KiB chunk written) and the memory is known to equal a
//!   snapshot file (the one a run was restored from, or the last one a
//!   [`Trigger::Every`] run wrote), the next checkpoint to a file holds
//!   only the chunks written since, and names that file as its base.
//!   Tracking runs after a restore of a `Policy::LoopDirty` module (or with
//!   [`RestoreOptions::incremental`]) and between periodic checkpoints. A
//!   snapshot that would replace its own base (the default of
//!   `mvvm-restore`) first keeps the base under a derived name
//!   ([`base_keep_path`]), by a hard link: no copy, and the base can never
//!   be lost. Chains are cut at [`MAX_INCREMENTAL_DEPTH`] (the next
//!   snapshot is full again). Streams always get full snapshots.
//! - **Not done**: threads.

mod background;
pub(crate) mod blocking;
pub(crate) mod capture;
pub(crate) mod control;
pub mod host;
mod limits;
mod live;
pub(crate) mod rendezvous;
mod restore;
mod worker;

pub use crate::frame_walk::FrameWalkStats;
use crate::instance::InstantiationError;
use crate::store::{Extern, RunError, Store};
use crate::{Instance, Module, Trap, Val};
use control::{Armed, Session, SessionConfig};
use mvvm_abi::Policy;
use mvvm_abi::checkpoint::UNWINDING;
use mvvm_abi::meta::ExportKind;
use rendezvous::Release;
use std::path::PathBuf;
use std::time::Duration;

pub use capture::{MAX_INCREMENTAL_DEPTH, base_keep_path};
pub use host::{HostState, HostStateError, RunAfter, SavedHostState};
pub use limits::{
    DEFAULT_MAX_EXCEPTIONS, DEFAULT_MAX_HOST_STATE_BYTES, DEFAULT_MAX_MEMORY_BYTES,
    MIN_NATIVE_FRAME_BYTES, NATIVE_SLOT_BYTES, REGISTER_HEADROOM, RestoreLimits,
};
pub use live::{LiveOptions, LiveStats};

pub use restore::{Restore, ThreadRestore};
pub use worker::{THREAD_ENTRY, run_thread};

/// What starts a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Nothing (signals may still, see [`CheckpointConfig::signals`]);
    /// probes stay on their fast path (a load, a compare, a branch).
    None,
    /// No checkpoint, but every probe is counted so that
    /// [`Outcome::Exited::probes`] is exact (tests use it to choose
    /// [`Trigger::ProbeCount`] values). Costs a runtime call per probe.
    CountProbes,
    /// At the N-th probe executed (for counter-loop policies: the N-th
    /// poll), 1-based, counted from the start of this run or restore.
    ProbeCount(u64),
    /// At the `count`-th entry of a function (needs a module compiled with
    /// `Policy::FunctionEntry`).
    FunctionEntry {
        /// The function.
        func: FuncSelector,
        /// Which entry, 1-based.
        count: u64,
    },
    /// After this much wall-clock time (a timer thread sets the request).
    After(Duration),
    /// Every time this much wall-clock time has passed, write a snapshot
    /// and go on running (the run is rewound in-process from the captured
    /// frames, as a restore would). Needs a file sink; every snapshot
    /// replaces the previous one at that path, the first full, the next
    /// ones (for a loop-dirty module, or with [`RunOptions::incremental`]
    /// / [`RestoreOptions::incremental`]) incremental against the previous
    /// (kept under [`base_keep_path`]). SIGINT/SIGUSR1 still take a last
    /// snapshot and stop.
    Every(Duration),
}

/// A function, by name (name section or export name) or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuncSelector {
    /// Name from the name section, else an export name.
    Name(String),
    /// Function index (imports included).
    Index(u32),
}

/// Where a snapshot goes.
pub enum SnapshotSink {
    /// A file, written atomically: temporary name, fsync, rename.
    File(PathBuf),
    /// Any stream (stdout, a socket); flushed, not synced.
    Stream(Box<dyn std::io::Write + Send>),
    /// A sealed file (`mvvm_snapshot::seal`), written with the same atomic
    /// steps as [`SnapshotSink::File`]; always a full snapshot (a sealed
    /// file is read as a stream, which cannot follow incremental bases).
    SealedFile(PathBuf, mvvm_snapshot::seal::SealKey),
    /// A connection (TCP): written as a [`SnapshotSink::Stream`], with its
    /// way back, which a live migration reads the receiver's
    /// acknowledgements from (`mvvm_snapshot::live`).
    Connection(Box<dyn std::io::Write + Send>, BackChannel),
}

/// The way back of a [`SnapshotSink::Connection`]: called once its first
/// bytes are written (a lazily made connection exists then); `None` when
/// there is none.
pub type BackChannel = Box<dyn FnOnce() -> Option<Box<dyn std::io::Read + Send>> + Send>;

impl std::fmt::Debug for SnapshotSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotSink::File(p) => f.debug_tuple("File").field(p).finish(),
            SnapshotSink::Stream(_) => f.write_str("Stream(..)"),
            SnapshotSink::SealedFile(p, _) => f.debug_tuple("SealedFile").field(p).finish(),
            SnapshotSink::Connection(..) => f.write_str("Connection(..)"),
        }
    }
}

/// Where a snapshot comes from.
pub enum SnapshotSource {
    /// A file: memory runs are mapped copy-on-write from it.
    File(PathBuf),
    /// Any stream: memory runs are copied.
    Stream(Box<dyn std::io::Read + Send>),
    /// A connection: read as a [`SnapshotSource::Stream`]; a live
    /// migration's rounds are acknowledged on the way back.
    Connection(
        Box<dyn std::io::Read + Send>,
        Box<dyn std::io::Write + Send>,
    ),
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotSource::File(p) => f.debug_tuple("File").field(p).finish(),
            SnapshotSource::Stream(_) => f.write_str("Stream(..)"),
            SnapshotSource::Connection(..) => f.write_str("Connection(..)"),
        }
    }
}

/// How a run (or the run after a restore) may be checkpointed.
#[derive(Debug)]
pub struct CheckpointConfig {
    /// What starts the checkpoint.
    pub trigger: Trigger,
    /// Where the snapshot goes.
    pub sink: SnapshotSink,
    /// Log every probe taken and every frame saved or restored at
    /// `tracing::info!` (function name, offset, kind).
    pub log_probes: bool,
    /// Arm SIGINT and SIGUSR1 as checkpoint requests (a second SIGINT ends
    /// the process at once). Ignored for a module without a policy.
    pub signals: bool,
}

/// Options of [`Run`] beyond [`CheckpointConfig`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Called after each periodic checkpoint of a [`Trigger::Every`] run
    /// (the last checkpoint, which stops the run, is in the [`Outcome`]).
    pub on_checkpoint: Option<fn(&CheckpointStats)>,
    /// Make the periodic checkpoints after the first incremental even if
    /// the module's policy is not loop-dirty (which always does).
    pub incremental: bool,
    /// With a counting trigger ([`Trigger::CountProbes`], `ProbeCount`,
    /// `FunctionEntry`), which counts the main thread's probes: every
    /// other thread of the program counts its own too, and reports them
    /// here (thread id, probes) when its start function returns. Called on
    /// that thread.
    pub on_thread_probes: Option<fn(u32, u64)>,
    /// Write periodic snapshots before the program goes on, as a
    /// checkpoint that stops it does, instead of in a child process while
    /// it runs (`background.rs`; the snapshots are the same bytes).
    pub write_in_foreground: bool,
    /// How durable each snapshot file is when the checkpoint is reported
    /// (default: synced, it survives a power loss).
    pub sync: mvvm_snapshot::SyncMode,
    /// Pre-copy live migration to a stream sink (`live.rs`): the trigger
    /// starts sending memory while the program runs; the stop comes once
    /// the rounds are small. Needs [`SnapshotSink::Stream`] and a trigger
    /// other than [`Trigger::Every`].
    pub live: Option<LiveOptions>,
}

/// Options of [`Restore`] (the host layer's own, such as the capabilities
/// WASI grants, are its embedder's business).
// No `PartialEq`: comparing the `on_resume` function pointers means nothing.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Called once with the snapshot's info right before the restored
    /// program's first instruction runs (the snapshot read and checked,
    /// the store rebuilt, only the rewind left): the migration tools
    /// measure downtime there, from `SnapshotInfo::created_unix_nanos`
    /// (the trigger's wall-clock time) to now. A plain function pointer
    /// keeps the options `Copy`.
    pub on_resume: Option<fn(&mvvm_snapshot::SnapshotInfo)>,
    /// Do not check the memory runs' crc32s when opening a snapshot file
    /// (frames, globals, tables, host state, the memory table and every
    /// header are still checked, and the bases' ids). Restore then costs
    /// O(number of runs) instead of reading every byte of memory: the
    /// runs are mapped copy-on-write and read from the file only when
    /// touched. The price: a damaged memory byte is not detected, and the
    /// program runs on with it.
    pub skip_memory_verification: bool,
    /// Track dirty chunks after the restore even if the module's policy
    /// is not loop-dirty, so that its next checkpoint to a file is
    /// incremental against the snapshot restored from.
    pub incremental: bool,
    /// Called after each periodic checkpoint ([`Trigger::Every`]).
    pub on_checkpoint: Option<fn(&CheckpointStats)>,
    /// As [`RunOptions::on_thread_probes`], for the restored run (counts
    /// start again at the restore).
    pub on_thread_probes: Option<fn(u32, u64)>,
    /// As [`RunOptions::write_in_foreground`].
    pub write_in_foreground: bool,
    /// As [`RunOptions::sync`].
    pub sync: mvvm_snapshot::SyncMode,
    /// The receiver's limits on the snapshot (memory size, host state
    /// size; frames and values follow from `max_wasm_stack`):
    /// a snapshot above them is refused before the part concerned is
    /// read or allocated. The default accepts what the format allows.
    pub limits: RestoreLimits,
    /// As [`RunOptions::live`], for the restored run's next checkpoint.
    pub live: Option<LiveOptions>,
}

/// How a run ended.
// One per run, returned by value: boxing the stats (216 bytes since the
// frame walk's counts) would change every caller for nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The program ended by itself.
    Exited {
        /// Exit code (0 when `_start` returned).
        code: i32,
        /// Probes executed during this run (polls for counter-loop
        /// policies); see the module documentation for when it is exact.
        probes: u64,
    },
    /// A checkpoint was taken and the run stopped.
    Checkpointed {
        /// What it took.
        stats: CheckpointStats,
    },
}

/// Measurements of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Wasm frames saved.
    pub frames: usize,
    /// The functions of those frames (all threads), sorted and distinct:
    /// an embedder can have their resume clones ready for a later restore
    /// ([`Module::keep_clones`](crate::Module::keep_clones)).
    pub stack_funcs: Vec<u32>,
    /// Bytes of the snapshot.
    pub snapshot_bytes: u64,
    /// Size of linear memory.
    pub memory_bytes: u64,
    /// From the trigger to the snapshot being durable (file synced and
    /// renamed, or stream flushed).
    pub trigger_to_durable: Duration,
    /// Probes executed before the checkpoint (see [`Outcome::Exited`]).
    pub probes: u64,
    /// From the trigger to the program running on: the whole checkpoint
    /// for one that stops the program or writes before it goes on; for a
    /// periodic one written in the background, the capture alone.
    pub pause: Duration,
    /// The snapshot file, or `"stream"`.
    pub location: String,
    /// For an incremental snapshot, the path of its base as recorded in
    /// it (relative to the snapshot's directory, or absolute); `None` for
    /// a full snapshot.
    pub base: Option<String>,
    /// For a live migration ([`RunOptions::live`]): its rounds, bytes and
    /// times (`snapshot_bytes` is then the whole stream).
    pub live: Option<LiveStats>,
    /// Objects compiled with the developer option `frame_map`: what the
    /// check of the frames read where they are against the unwind's found
    /// (it passed: a difference fails the checkpoint). Boxed: it is rare
    /// and larger than the rest.
    pub frame_walk: Option<Box<FrameWalkStats>>,
}

/// Why a checkpointed run or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A trigger was asked for a module compiled without a checkpoint
    /// policy (or a module without one was given to restore).
    #[error(
        "the module was compiled without a checkpoint policy: compile it with \
         --enable-checkpoint, --enable-loop-checkpoint or --enable-counter-loop-checkpoint"
    )]
    NotInstrumented,
    /// The trigger cannot work with this module (unknown function, a
    /// function-entry trigger without entry probes, a zero count).
    #[error("bad checkpoint trigger: {0}")]
    BadTrigger(String),
    /// The snapshot could not be written or read, or is damaged.
    #[error(transparent)]
    Snapshot(#[from] mvvm_snapshot::SnapshotError),
    /// The snapshot does not fit the module (a frame not at a stable
    /// point, wrong value types...); the message says which part.
    #[error("snapshot does not match the module: {0}")]
    Mismatch(String),
    /// The store's host data (WASI's state, say) could not be saved.
    #[error("the host state cannot be saved")]
    HostState(#[source] HostStateError),
    /// The program trapped.
    #[error("{0}")]
    Trap(Trap),
    /// Instantiation failed.
    #[error("instantiation failed")]
    Instantiate(#[source] InstantiationError),
    /// A call into wasm failed otherwise than by a trap or an exit (a host
    /// function failed, or the runtime refused the call).
    #[error(transparent)]
    Call(RunError),
    /// Memory could not be brought back from the snapshot.
    #[error("{what}")]
    Memory {
        /// What was being done (with the guest address).
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The runtime found itself in a state it cannot go on from; the
    /// message says which.
    #[error("{0}")]
    Host(String),
    /// An I/O error outside the snapshot itself.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A fresh run of a program (start function, then `_start`) that is
/// checkpointed when its trigger (or a signal) fires. Made in two steps so
/// that a bad trigger is refused before the embedder sets anything up:
/// [`Run::new`] checks the configuration, [`Run::start`] runs in the store
/// the embedder built.
pub struct Run {
    module: Module,
    session: Option<SessionConfig>,
    sink: SnapshotSink,
    opts: RunOptions,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("armed", &self.session.is_some())
            .field("sink", &self.sink)
            .finish()
    }
}

impl Run {
    /// Checks `cfg` against `module` (a trigger needs a checkpoint
    /// policy, a periodic one a file, ...).
    pub fn new(
        module: &Module,
        cfg: CheckpointConfig,
        opts: RunOptions,
    ) -> Result<Run, CheckpointError> {
        Ok(Run {
            module: module.clone(),
            session: session_config(module, &cfg)?,
            sink: cfg.sink,
            opts,
        })
    }

    /// Arms the checkpoint session on `store`, instantiates the module
    /// with `imports` (its start function runs armed) and runs it to its
    /// end or to a checkpoint that stops it.
    pub fn start(self, store: &mut Store, imports: &[Extern]) -> Result<Outcome, CheckpointError> {
        let module = &self.module;
        let (counting, log) = self
            .session
            .as_ref()
            .map_or((false, false), |c| (c.count, c.log_probes));
        let background_every =
            !self.opts.write_in_foreground && self.session.as_ref().is_some_and(|c| c.every);
        let session = self.session.map(|c| Session::arm(store, module, c));
        share_with_threads(store, counting, log, self.opts.on_thread_probes);
        if let Some(c) = store.inner.ckpt.as_deref_mut() {
            c.on_checkpoint = self.opts.on_checkpoint;
            c.incremental |= self.opts.incremental;
            c.background = !self.opts.write_in_foreground;
            c.sync = self.opts.sync;
        }
        let (sink, _live_guard) = arm_live(store, self.sink, self.opts.live)?;
        let instance = match Instance::new(store, module, imports) {
            Ok(i) => i,
            Err(InstantiationError::Start(e)) => return finish_err(store, e),
            Err(InstantiationError::Trap(t)) => return Err(CheckpointError::Trap(t)),
            Err(e) => return Err(CheckpointError::Instantiate(e)),
        };
        if background_every {
            advise_huge_pages(store);
        }
        let r = drive(store, module, instance, Phase::AfterStart, sink);
        let r = settle(store, r);
        drop(_live_guard);
        drop(session);
        r
    }
}

/// For a live run ([`RunOptions::live`]): moves the stream sink's writer
/// into the store's control (the pre-copy thread and the final part use
/// it) and returns the sink `drive` gets instead (never written: the live
/// path of `capture::take` comes first) and the guard that joins the
/// pre-copy thread when the run ends.
pub(crate) fn arm_live(
    store: &mut Store,
    sink: SnapshotSink,
    live: Option<LiveOptions>,
) -> Result<(SnapshotSink, Option<live::LiveGuard>), CheckpointError> {
    let Some(opts) = live else {
        return Ok((sink, None));
    };
    let (out, back) = match sink {
        SnapshotSink::Stream(w) => (w, None),
        SnapshotSink::Connection(w, back) => (w, Some(back)),
        other => {
            return Err(CheckpointError::BadTrigger(format!(
                "live migration sends to a stream or a connection, not to {other:?}"
            )));
        }
    };
    let Some(c) = store.inner.ckpt.as_deref_mut() else {
        return Err(CheckpointError::NotInstrumented);
    };
    let (state, guard) = live::Live::arm(opts, out, back);
    c.live = Some(state);
    control::LIVE_ARMED.with(|a| a.set(true));
    Ok((SnapshotSink::Stream(Box::new(std::io::sink())), Some(guard)))
}

/// On the main thread of a program: with a counting session, makes the
/// other threads count their probes and report them to `report`; with
/// logged probes, makes them log theirs.
fn share_with_threads(store: &Store, counting: bool, log: bool, report: Option<fn(u32, u64)>) {
    let Some(t) = store.inner.thread.as_ref() else {
        return;
    };
    let rv = t.group();
    if let (true, Some(report)) = (counting, report) {
        rv.rendezvous().set_counting(report);
    }
    if log {
        rv.rendezvous().set_log_probes();
    }
}

/// Where a run continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The start function has returned (or unwound): look, then `_start`.
    AfterStart,
    /// `_start` has returned (or unwound).
    AfterMain,
}

/// Goes on from `phase` to the end of the program or to a checkpoint that
/// stops it (periodic checkpoints are written and the run goes on).
fn drive(
    store: &mut Store,
    module: &Module,
    instance: Instance,
    mut phase: Phase,
    mut sink: SnapshotSink,
) -> Result<Outcome, CheckpointError> {
    loop {
        if store.inner.limits.unwind_state == UNWINDING {
            let continuing = store.inner.ckpt.as_ref().is_some_and(|c| c.continuing);
            if !continuing {
                let stats = capture::take(store, module, instance, &mut sink, Release::Stop)?;
                return Ok(Outcome::Checkpointed { stats });
            }
            let entry = match capture::take_and_continue(store, module, instance, &mut sink)? {
                Some(entry) => entry,
                None => continue,
            };
            phase = if Some(entry) == main_func(module) {
                Phase::AfterMain
            } else {
                Phase::AfterStart
            };
            if let Err(e) = call_entry(store, instance, entry) {
                return finish_err(store, e);
            }
            let left = store.inner.ckpt.as_ref().map_or(0, |c| c.rewind.len());
            if left > 0 && store.inner.limits.unwind_state != UNWINDING {
                return Err(CheckpointError::Host(format!(
                    "the entry function returned with {left} frames not rewound"
                )));
            }
            continue;
        }
        match phase {
            Phase::AfterMain => {
                return Ok(Outcome::Exited {
                    code: 0,
                    probes: probes(store),
                });
            }
            Phase::AfterStart => {
                phase = Phase::AfterMain;
                let Some(start) = main_func(module) else {
                    continue;
                };
                if let Err(e) = call_entry(store, instance, start) {
                    return finish_err(store, e);
                }
            }
        }
    }
}

/// A restored run with periodic checkpoints written in the background:
/// `instance`'s memory (the one snapshots save) is dirty-tracked from now
/// on, while the snapshot file's mapping is still cheap to protect, and
/// its file-mapped part is moved onto huge pages by a thread while the
/// program runs (`memory/huge.rs`), so that checkpoints' pauses no
/// longer protect it 4 KiB at a time. Failing only costs longer pauses.
pub(crate) fn huge_pages_after_restore(store: &mut Store, instance: Instance) {
    let s = &mut *store.inner;
    let Some(&m) = s.instances[instance.index as usize].memories.first() else {
        return;
    };
    match s.memories[m as usize].convert_to_huge_pages() {
        Ok(true) => {}
        Ok(false) => tracing::debug!("no dirty tracker free for the restored memory"),
        Err(e) => tracing::warn!("restored memory not tracked from the restore ({e})"),
    }
}

/// Periodic checkpoints written in the background: the memories the run
/// commits from now on go on huge pages where the kernel has them, so
/// that taking their copy-on-write image at each checkpoint costs one
/// page-table entry per 2 MiB (`memory/cow.rs`, docs/migration.md); and
/// the writer thread starts.
pub(crate) fn advise_huge_pages(store: &mut Store) {
    for m in &mut store.inner.memories {
        m.advise_huge_pages();
    }
    // The writer thread now, not in the first checkpoint's pause.
    if let Some(c) = store.inner.ckpt.as_deref_mut()
        && c.writer.is_none()
    {
        c.writer = background::WriterThread::start().ok();
    }
}

/// The run ended with `r`: waits for a periodic snapshot still being
/// written in the background (its failure fails the run), then `r`.
fn settle(
    store: &mut Store,
    r: Result<Outcome, CheckpointError>,
) -> Result<Outcome, CheckpointError> {
    let pending = capture::finish_pending_write(store);
    let r = r?;
    pending?;
    Ok(r)
}

/// Calls function `index` of `instance` with zero arguments of its types
/// (entries take none; while rewinding, arguments are ignored).
fn call_entry(store: &mut Store, instance: Instance, index: u32) -> Result<(), RunError> {
    let ty = {
        let meta = &store.inner.instances[instance.index as usize]
            .module
            .inner
            .meta;
        let t = meta.funcs.get(index as usize).copied().unwrap_or(0) as usize;
        meta.types.get(t).cloned().unwrap_or_default()
    };
    let args: Vec<Val> = ty.params.iter().map(|t| Val::default_for(*t)).collect();
    let f = crate::Func {
        store: store.inner.id,
        kind: crate::store::FuncKind::Wasm {
            instance: instance.index,
            index,
        },
    };
    f.call(store, &args).map(|_| ())
}

/// The function index of the exported `_start`, if any.
pub(crate) fn main_func(module: &Module) -> Option<u32> {
    module
        .meta()
        .exports
        .iter()
        .find_map(|e| match (e.name.as_str(), e.kind) {
            ("_start", ExportKind::Func(i)) => Some(i),
            _ => None,
        })
}

fn probes(store: &Store) -> u64 {
    store.inner.ckpt.as_ref().map_or(0, |c| c.probes)
}

/// A call into wasm ended with `e`: an exit is an outcome, the rest errors.
fn finish_err(store: &Store, e: RunError) -> Result<Outcome, CheckpointError> {
    match e {
        RunError::Exit(code) => Ok(Outcome::Exited {
            code,
            probes: probes(store),
        }),
        RunError::Trap(t) => Err(CheckpointError::Trap(t)),
        other => Err(CheckpointError::Call(other)),
    }
}

/// Checks the trigger against the module and says what to arm (`None`:
/// nothing, the module runs at full speed with default signal behaviour).
fn session_config(
    module: &Module,
    cfg: &CheckpointConfig,
) -> Result<Option<SessionConfig>, CheckpointError> {
    let meta = module.meta();
    let policy = meta.policy;
    if !policy.is_instrumented() {
        return match cfg.trigger {
            Trigger::None | Trigger::CountProbes => Ok(None),
            _ => Err(CheckpointError::NotInstrumented),
        };
    }
    let (armed, count, after) = match &cfg.trigger {
        Trigger::None => (Armed::Async, false, None),
        Trigger::CountProbes => (Armed::Async, true, None),
        Trigger::ProbeCount(0) => {
            return Err(CheckpointError::BadTrigger(
                "probe counts start at 1".into(),
            ));
        }
        Trigger::ProbeCount(n) => (Armed::ProbeCount(*n), true, None),
        Trigger::FunctionEntry { func, count } => {
            if policy != Policy::FunctionEntry {
                return Err(CheckpointError::BadTrigger(format!(
                    "a function-entry trigger needs probes at function entries \
                     (compile with --enable-checkpoint); this module has policy `{}`",
                    policy.name()
                )));
            }
            if *count == 0 {
                return Err(CheckpointError::BadTrigger(
                    "entry counts start at 1".into(),
                ));
            }
            let index = resolve_func(module, func)?;
            (
                Armed::FunctionEntry {
                    func: index,
                    count: *count,
                },
                true,
                None,
            )
        }
        Trigger::After(d) | Trigger::Every(d) => (Armed::Async, false, Some(*d)),
    };
    let every = matches!(cfg.trigger, Trigger::Every(_));
    if every && !matches!(cfg.sink, SnapshotSink::File(_)) {
        return Err(CheckpointError::BadTrigger(
            "periodic checkpoints need a snapshot file (each replaces the previous one)".into(),
        ));
    }
    if every && after.is_some_and(|d| d.is_zero()) {
        return Err(CheckpointError::BadTrigger(
            "the period of periodic checkpoints must not be zero".into(),
        ));
    }
    Ok(Some(SessionConfig {
        armed,
        count,
        log_probes: cfg.log_probes,
        signals: cfg.signals,
        after,
        every,
    }))
}

/// The index of a defined function named by `sel`.
fn resolve_func(module: &Module, sel: &FuncSelector) -> Result<u32, CheckpointError> {
    let meta = module.meta();
    let index = match sel {
        FuncSelector::Index(i) => *i,
        FuncSelector::Name(n) => meta
            .func_names
            .iter()
            .find(|(_, name)| name == n)
            .map(|(i, _)| i)
            .or_else(|| {
                meta.exports.iter().find_map(|e| match e.kind {
                    ExportKind::Func(i) if &e.name == n => Some(i),
                    _ => None,
                })
            })
            .ok_or_else(|| {
                CheckpointError::BadTrigger(format!(
                    "no function named `{n}` (neither in the name section nor exported)"
                ))
            })?,
    };
    if index < meta.num_imported_funcs || index as usize >= meta.funcs.len() {
        return Err(CheckpointError::BadTrigger(format!(
            "function #{index} is not a function defined by the module \
             (it defines #{}..#{})",
            meta.num_imported_funcs,
            meta.funcs.len()
        )));
    }
    Ok(index)
}
