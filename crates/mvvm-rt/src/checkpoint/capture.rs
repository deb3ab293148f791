//! Turning a store whose wasm has just unwound into a snapshot: typed
//! frames (outermost first), defined globals, tables, the exceptions their
//! `exnref` values reach, dropped segments, linear memory, the host state
//! (WASI's) and clock, and the info header.
//!
//! Exceptions: an `exnref` is a handle into the store's exception table,
//! meaningless to another process. Capture numbers the exceptions it
//! reaches densely, in the order it first meets them (frames outermost
//! first, then globals, then tables, then the payloads of the exceptions
//! already numbered, which may hold `exnref`s too), and saves each as its
//! tag's index in the checkpointed instance and its typed payload. Live
//! exceptions nothing saved can reach (a `catch` handler's, already
//! delivered) are not saved.

use super::control::{BaseInfo, FLAG_PERIODIC, RawFrame};
use super::host::{self, SavedHostState};
use super::rendezvous::{Release, World};
use super::{CheckpointError, CheckpointStats, SnapshotSink};
use crate::exception::{ExceptionTable, Handle, Tags, instance_tag_index};
use crate::instance::InstanceData;
use crate::memory::LinearMemory;
use crate::store::{Store, StoreInner, raw_from_slots, slot_count};
use crate::vmctx::VMFuncRef;
use crate::{Instance, Module};
use mvvm_abi::checkpoint::{REWINDING, UNWIND_NONE};
use mvvm_abi::meta::{ModuleMeta, TargetArch, ValType};
use mvvm_abi::version::PRODUCER_VERSION;
use mvvm_snapshot::{
    BaseRef, ExceptionRecord, FrameRecord, Incremental, SnapshotInfo, SnapshotParts, ThreadRecord,
    WasmValue,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest chain of incremental snapshots written: the snapshot after a
/// snapshot of this depth is full again. Restore opens one file per link
/// and maps each link's runs, so a bounded chain keeps restore cheap and
/// the number of mappings well under `vm.max_map_count`.
pub const MAX_INCREMENTAL_DEPTH: u32 = 16;

/// Where a base snapshot is kept when a new snapshot is about to replace
/// it at the same path: next to it, named after its id,
/// `DIR/STEM.ID12.EXT` (`bc.bin` → `bc.3f9a0c1d2e4b.bin`, the first 12 hex
/// digits of its snapshot id). A hard link to the same file: nothing is
/// copied, and a restored run that still maps the old file keeps working.
pub fn base_keep_path(path: &Path, id: &[u8; 32]) -> PathBuf {
    let hex: String = id[..6].iter().map(|b| format!("{b:02x}")).collect();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{hex}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{hex}"),
    };
    path.with_file_name(name)
}

/// Writes the snapshot of a periodic checkpoint, then prepares the run to
/// go on: the captured frames become the frames to rewind, dirty tracking
/// restarts with the new snapshot as the base. Returns the function to
/// call to rewind (the outermost frame's), or `None` when nothing was
/// captured to rewind (cannot happen after a successful capture).
pub(crate) fn take_and_continue(
    store: &mut Store,
    module: &Module,
    instance: Instance,
    sink: &mut SnapshotSink,
) -> Result<Option<u32>, CheckpointError> {
    let raw = match store.inner.ckpt.as_deref() {
        Some(c) => c.unwound.clone(),
        None => return Ok(None),
    };
    let stats = take(store, module, instance, sink, Release::Continue)?;
    let s = &mut *store.inner;
    // Written in the background: reported once the writer is done.
    let written = s.ckpt.as_deref().is_none_or(|c| c.pending_write.is_none());
    let rewind = rewind_queue(module.meta(), &raw)?;
    let Some(entry) = rewind.front().map(|f| f.func) else {
        return Ok(None);
    };
    // A tick of the period that came during the write is dropped: the
    // next checkpoint is a whole period after this one's end at the most.
    s.limits
        .probe_flag
        .fetch_and(!FLAG_PERIODIC, Ordering::SeqCst);
    let on_checkpoint = match s.ckpt.as_deref_mut() {
        Some(c) => {
            c.rewind = rewind;
            c.continuing = false;
            c.triggered_at = None;
            c.reason = None;
            c.on_checkpoint
        }
        None => None,
    };
    s.limits.unwind_state = REWINDING;
    if let (true, Some(f)) = (written, on_checkpoint) {
        f(&stats);
    }
    Ok(Some(entry))
}

/// Waits for the periodic snapshot a child process is writing, if any:
/// it becomes the base of the next incremental snapshot (when tracking
/// runs), the bases kept for earlier ones go once it is a full snapshot,
/// and `on_checkpoint` reports it.
pub(crate) fn finish_pending_write(store: &mut Store) -> Result<(), CheckpointError> {
    let Some(c) = store.inner.ckpt.as_deref_mut() else {
        return Ok(());
    };
    let Some(pending) = c.pending_write.take() else {
        return Ok(());
    };
    let (stats, base) = pending.finish()?;
    if base.depth == 0 {
        forget_kept_bases(&mut c.kept);
    }
    if c.incremental {
        c.base = Some(base);
    }
    log_written(&stats);
    if let Some(f) = c.on_checkpoint {
        f(&stats);
    }
    Ok(())
}

/// The frames a run just unwound (innermost first) as frames to rewind
/// (outermost first), each with its stable point's index.
pub(crate) fn rewind_queue(
    meta: &ModuleMeta,
    raw: &[RawFrame],
) -> Result<std::collections::VecDeque<RawFrame>, CheckpointError> {
    let mut rewind = std::collections::VecDeque::with_capacity(raw.len());
    for f in raw.iter().rev() {
        let tables = meta
            .func_tables(f.func)
            .map_err(|e| CheckpointError::Host(format!("frame of function #{}: {e}", f.func)))?;
        let point = tables.point_at(f.offset).ok_or_else(|| {
            CheckpointError::Host(format!(
                "frame of function #{} at {:#x} is not at a stable point",
                f.func, f.offset
            ))
        })?;
        rewind.push_back(RawFrame {
            point: point as u32,
            ..f.clone()
        });
    }
    Ok(rewind)
}

/// Starts dirty tracking of `instance`'s memory with `base` (a snapshot
/// file equal to the memory now) as the base of the next checkpoint.
/// Tracking that cannot start (no free tracker slot, `mprotect` failed)
/// only means the next snapshot is full: logged, not an error.
pub(crate) fn track_from(store: &mut Store, instance: Instance, base: BaseInfo) {
    if start_tracking(store, instance)
        && let Some(c) = store.inner.ckpt.as_deref_mut()
    {
        c.base = Some(base);
    }
}

/// Starts (or restarts) dirty tracking of `instance`'s memory; whether it
/// runs. The next snapshot is incremental only once a base is recorded.
fn start_tracking(store: &mut Store, instance: Instance) -> bool {
    let s = &mut *store.inner;
    let Some(&m) = s.instances[instance.index as usize].memories.first() else {
        // No memory: an incremental snapshot would save nothing anyway.
        return false;
    };
    if let Some(c) = s.ckpt.as_deref_mut() {
        c.base = None;
    }
    match s.memories[m as usize].start_dirty_tracking() {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!("no dirty tracker free: the next snapshot will be full");
            false
        }
        Err(e) => {
            tracing::warn!("dirty tracking not started ({e}): the next snapshot will be full");
            false
        }
    }
}

/// The base to record for an incremental snapshot written to `path`, or
/// `None` (write a full snapshot) when the base file is gone or changed,
/// or cannot be kept. When `path` is the base itself, the base is first
/// kept under [`base_keep_path`]. A base is always recorded by its plain
/// file name in `path`'s directory (readers refuse anything else): a full
/// base in another directory is hard-linked there under
/// [`base_keep_path`]; an incremental one (whose own bases are found in
/// its directory) or one that cannot be linked gives a full snapshot.
fn base_for(path: &Path, base: &BaseInfo, kept: &mut Vec<PathBuf>) -> Option<BaseRef> {
    match mvvm_snapshot::read_identity(&base.path) {
        Ok((id, _)) if id == base.id => {}
        Ok(_) => {
            tracing::warn!(base = %base.path.display(), "base snapshot was replaced: writing a full snapshot");
            return None;
        }
        Err(e) => {
            tracing::warn!(base = %base.path.display(), "base snapshot unreadable ({e}): writing a full snapshot");
            return None;
        }
    }
    let same_file = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    };
    let dir_of = |p: &Path| {
        let d = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::canonicalize(d).ok()
    };
    let same_dir = matches!((dir_of(path), dir_of(&base.path)), (Some(a), Some(b)) if a == b);
    if !same_dir && base.depth > 0 {
        tracing::info!(base = %base.path.display(), "the incremental base is in another directory: writing a full snapshot");
        return None;
    }
    let base_path = if same_file(path, &base.path) || !same_dir {
        let keep = base_keep_path(path, &base.id);
        let already = matches!(mvvm_snapshot::read_identity(&keep), Ok((id, _)) if id == base.id);
        if !already {
            let _ = std::fs::remove_file(&keep);
            if let Err(e) = std::fs::hard_link(&base.path, &keep) {
                tracing::warn!(keep = %keep.display(), "cannot keep the base snapshot ({e}): writing a full snapshot");
                return None;
            }
            kept.push(keep.clone());
        }
        keep
    } else {
        base.path.clone()
    };
    let recorded = match (dir_of(path), dir_of(&base_path), base_path.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => name.to_str()?.to_owned(),
        _ => return None,
    };
    Some(BaseRef {
        id: base.id,
        path: recorded,
        base_depth: base.depth,
    })
}

/// The state of one instance at a checkpoint: everything of a thread but
/// the memory it shares and the host state.
struct InstanceParts {
    frames: Vec<FrameRecord>,
    globals: Vec<WasmValue>,
    tables: Vec<Vec<WasmValue>>,
    exceptions: Vec<ExceptionRecord>,
    dropped_data: Vec<u32>,
    dropped_elems: Vec<u32>,
}

/// Types `raw` (innermost first) and saves the rest of `instance`'s state.
fn instance_parts(
    s: &StoreInner,
    meta: &ModuleMeta,
    instance: Instance,
    raw: &[RawFrame],
) -> Result<InstanceParts, CheckpointError> {
    let inst = &s.instances[instance.index as usize];
    let funcs = Funcs::of(&inst.funcs);
    let mut refs = Refs {
        funcs: &funcs,
        exns: Reached::default(),
    };
    let mut frames = Vec::with_capacity(raw.len());
    for (depth, f) in raw.iter().rev().enumerate() {
        frames.push(type_frame(meta, &mut refs, depth, f)?);
    }
    let globals = save_globals(s, inst, meta, &mut refs)?;
    let tables = save_tables(s, inst, meta, &mut refs)?;
    let exceptions = save_exceptions(s, instance.index, &mut refs)?;
    let (dropped_data, dropped_elems) = dropped_segments(inst);
    Ok(InstanceParts {
        frames,
        globals,
        tables,
        exceptions,
        dropped_data,
        dropped_elems,
    })
}

/// The record of a thread other than the main one: `raw` are the frames
/// it unwound (innermost first; none when it had not entered wasm yet).
pub(crate) fn thread_record(
    store: &Store,
    instance: Instance,
    tid: u32,
    start_arg: u32,
    raw: &[RawFrame],
) -> Result<ThreadRecord, CheckpointError> {
    let s = &*store.inner;
    let module = &s.instances[instance.index as usize].module;
    let p = instance_parts(s, module.meta(), instance, raw)?;
    Ok(ThreadRecord {
        tid,
        start_arg,
        frames: p.frames,
        globals: p.globals,
        tables: p.tables,
        exceptions: p.exceptions,
        dropped_data: p.dropped_data,
        dropped_elems: p.dropped_elems,
    })
}

/// Writes the snapshot of `instance` (whose frames the store's control
/// holds) to `sink`. For a thread of a program, first stops the other
/// threads (each saves its own record, see `rendezvous`) and, once the
/// snapshot is written, lets them go on as `then` says.
pub(crate) fn take(
    store: &mut Store,
    module: &Module,
    instance: Instance,
    sink: &mut SnapshotSink,
    then: Release,
) -> Result<CheckpointStats, CheckpointError> {
    let meta = module.meta();
    // The previous periodic snapshot first: it may be this one's base.
    let entered = Instant::now();
    let usage_at_entry = crate::sys::thread::usage();
    finish_pending_write(store)?;
    let finished = Instant::now();
    let unwound = take_unwound(&mut store.inner)?;
    if unwound.frames.is_empty() {
        return Err(CheckpointError::Host(
            "wasm unwound but saved no frame".into(),
        ));
    }
    let s: &mut StoreInner = &mut store.inner;
    // A live run: the pre-copy thread ends first (what it took and did not
    // send is dirty again), so the dirty set read below is complete.
    let handover = match s.ckpt.as_deref_mut().and_then(|c| c.live.take()) {
        Some(live) => Some(super::live::take_handover(live).map_err(CheckpointError::Host)?),
        None => None,
    };
    let main = instance_parts(s, meta, instance, &unwound.frames)?;
    let group = s.thread.as_ref().map(|t| t.group());
    let (world, mut threads) = match &group {
        Some(g) => {
            let (w, t) = g
                .rendezvous()
                .stop_world(|| g.alive(), g.terminated_flag())
                .map_err(CheckpointError::Host)?;
            (Some(w), t)
        }
        None => (None, Vec::new()),
    };
    threads.sort_by_key(|t| t.tid);
    let inst = &s.instances[instance.index as usize];
    let host = save_host_state(s, then)?;
    let memory = memory_of(&s.memories, inst, world.as_ref())?;
    let base = s.ckpt.as_deref().and_then(|c| c.base.clone());
    let mut kept = s
        .ckpt
        .as_deref_mut()
        .map(|c| std::mem::take(&mut c.kept))
        .unwrap_or_default();
    let parts = SnapshotParts {
        info: snapshot_info(meta, &unwound),
        frames: main.frames,
        globals: main.globals,
        tables: main.tables,
        exceptions: main.exceptions,
        dropped_data: main.dropped_data,
        dropped_elems: main.dropped_elems,
        threads,
        last_thread_id: group.as_ref().map_or(0, |g| g.last_thread_id()),
        wasi: host.bytes,
        monotonic_offset_nanos: host.monotonic_nanos,
        memory: memory.data,
        max_pages: memory.max_pages,
    };
    if let Some(h) = handover {
        let (live, _) = super::live::write_final(h, &parts, memory.dirty, unwound.triggered_at)?;
        let stats = CheckpointStats {
            frames: parts.frames.len()
                + parts.threads.iter().map(|t| t.frames.len()).sum::<usize>(),
            stack_funcs: stack_funcs(&parts),
            snapshot_bytes: live.total_bytes,
            memory_bytes: parts.memory.len() as u64,
            trigger_to_durable: unwound.triggered_at.elapsed(),
            pause: unwound.triggered_at.elapsed(),
            probes: unwound.probes,
            location: "stream".to_string(),
            base: None,
            live: Some(live),
            frame_walk: unwound.frame_walk.map(Box::new),
        };
        drop(parts);
        log_written(&stats);
        if let Some(w) = world {
            w.release(then);
        }
        return Ok(stats);
    }
    let background = then == Release::Continue
        && s.ckpt.as_deref().is_some_and(|c| c.background)
        && matches!(sink, SnapshotSink::File(_));
    if background && let SnapshotSink::File(path) = sink {
        let captured = Instant::now();
        let inc = incremental_for(path, base.as_ref(), memory.dirty, &mut kept);
        let based = Instant::now();
        let depth = match (&inc, &base) {
            (Some(_), Some(b)) => b.depth + 1,
            _ => 0,
        };
        let stats = CheckpointStats {
            frames: parts.frames.len()
                + parts.threads.iter().map(|t| t.frames.len()).sum::<usize>(),
            stack_funcs: stack_funcs(&parts),
            snapshot_bytes: 0,
            memory_bytes: parts.memory.len() as u64,
            trigger_to_durable: Duration::ZERO,
            pause: Duration::ZERO,
            probes: unwound.probes,
            location: path.display().to_string(),
            base: inc.as_ref().map(|i| i.base.path.clone()),
            live: None,
            frame_walk: unwound.frame_walk.map(Box::new),
        };
        let target = path.clone();
        let sync = s.ckpt.as_deref().map_or_else(Default::default, |c| c.sync);
        // The memory's copy-on-write image (cost: what the period wrote,
        // not the memory's size); the snapshot is then written by a
        // thread while the program runs on.
        let needed = inc.as_ref().map(|i| i.dirty.clone());
        let parts = detach(parts);
        let mem_index = s.instances[instance.index as usize]
            .memories
            .first()
            .copied();
        let image = match mem_index {
            Some(m) => {
                // SAFETY: the program's other threads are parked in the
                // rendezvous (`world`) and this one is here, so nothing
                // writes the memory during the call; the image goes to the
                // writer thread, whose job `PendingWrite` waits for before
                // the store can drop its memories (on `finish`, or on
                // drop: the store drops its checkpoint control first).
                let taken =
                    unsafe { s.memories[m as usize].begin_background_image(needed.as_deref()) };
                match taken {
                    Ok(Some(image)) => Some(Some(image)),
                    Ok(None) => {
                        tracing::warn!("no dirty tracker free for the copy-on-write image");
                        None
                    }
                    Err(e) => {
                        tracing::warn!("copy-on-write image not taken ({e})");
                        None
                    }
                }
            }
            None => Some(None),
        };
        let image_taken = image.is_some();
        let imaged = Instant::now();
        let pending = match image {
            Some(image) => {
                // A full snapshot makes the bases this run kept useless
                // once it is durable: the writer removes them then (their
                // removal, a few ms per file with much in the page cache,
                // would otherwise fall in the next checkpoint's pause); if
                // the write fails they stay on disk (the chain still needs
                // them; the run fails anyway).
                let obsolete = if depth == 0 {
                    std::mem::take(&mut kept)
                } else {
                    Vec::new()
                };
                let write = move || {
                    let out = match &image {
                        Some(img) => mvvm_snapshot::write_file_from_source(
                            &target,
                            &parts,
                            img,
                            inc.as_ref(),
                            sync,
                        ),
                        None => mvvm_snapshot::write_file_from_source(
                            &target,
                            &parts,
                            &[][..],
                            inc.as_ref(),
                            sync,
                        ),
                    };
                    // The image ends (the memory is left to the program
                    // and its tracking) before the writer reports.
                    drop(image);
                    let written = out
                        .map(|w| (w.total_bytes, w.id))
                        .map_err(|e| e.to_string());
                    if written.is_ok() {
                        let mut obsolete = obsolete;
                        forget_kept_bases(&mut obsolete);
                    }
                    written
                };
                let c = s
                    .ckpt
                    .as_deref_mut()
                    .ok_or_else(|| CheckpointError::Host("no checkpoint session".into()))?;
                let thread = match c.writer.take() {
                    Some(t) => t,
                    None => super::background::WriterThread::start()?,
                };
                let thread = c.writer.insert(thread);
                super::background::spawn_thread(
                    thread,
                    write,
                    path.clone(),
                    stats,
                    unwound.triggered_at,
                    depth,
                )?
            }
            None => {
                // Fallback: a forked child's copy-on-write image of the
                // whole process.
                let data = memory_of(
                    &s.memories,
                    &s.instances[instance.index as usize],
                    world.as_ref(),
                )?
                .data;
                let parts = SnapshotParts {
                    memory: data,
                    ..parts
                };
                let write = || {
                    mvvm_snapshot::write_file_with_sync(&target, &parts, inc.as_ref(), None, sync)
                        .map(|w| (w.total_bytes, w.id))
                        .map_err(|e| e.to_string())
                };
                let p = super::background::spawn(
                    write,
                    path.clone(),
                    stats,
                    unwound.triggered_at,
                    depth,
                )?;
                drop(parts);
                p
            }
        };
        let continuing_incremental = s
            .ckpt
            .as_deref()
            .is_some_and(|c| c.continuing && c.incremental);
        if let Some(c) = s.ckpt.as_deref_mut() {
            c.kept = kept;
        }
        // The memory equals the snapshot being written: track from here
        // (its id, the next snapshot's base, comes with the writer's
        // report), and only then let the threads run on. The image
        // started a new tracking period already.
        if continuing_incremental {
            if image_taken {
                if let Some(c) = store.inner.ckpt.as_deref_mut() {
                    c.base = None;
                }
            } else {
                start_tracking(store, instance);
            }
        }
        let mut pending = pending;
        pending.stats.pause = unwound.triggered_at.elapsed();
        let stats = pending.stats.clone();
        if let Some(c) = store.inner.ckpt.as_deref_mut() {
            c.pending_write = Some(pending);
        }
        if let Some(w) = world {
            w.release(then);
        }
        // Where the pause went (ms): reaching a probe and unwinding, the
        // previous writer's report, the capture, the incremental base,
        // the copy-on-write image, starting the writer and the rest.
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1e3;
        // This thread's CPU time and involuntary
        // context switches from `take` on: a long pause with little CPU
        // and a switch waited for a CPU (a loaded machine), it did not work;
        // voluntary ones (`blocked`): it slept, on a lock (the address
        // space's, which `mprotect` takes for writing) or in a wait.
        let (cpu_ms, preempted, blocked) = match (usage_at_entry, crate::sys::thread::usage()) {
            (Some((c0, n0, v0)), Some((c1, n1, v1))) => (
                c1.saturating_sub(c0).as_secs_f64() * 1e3,
                n1.saturating_sub(n0),
                v1.saturating_sub(v0),
            ),
            _ => (f64::NAN, 0, 0),
        };
        tracing::debug!(
            cpu_ms,
            preempted,
            blocked,
            pause_ms = stats.pause.as_secs_f64() * 1e3,
            unwind_ms = ms(unwound.triggered_at, entered),
            report_ms = ms(entered, finished),
            capture_ms = ms(finished, captured),
            base_ms = ms(captured, based),
            image_ms = ms(based, imaged),
            rest_ms = ms(imaged, Instant::now()),
            "periodic checkpoint captured; written in the background"
        );
        return Ok(stats);
    }
    let sync = s.ckpt.as_deref().map_or_else(Default::default, |c| c.sync);
    let out = write_snapshot(sink, &parts, base.as_ref(), memory.dirty, &mut kept, sync)?;
    let stats = CheckpointStats {
        frames: parts.frames.len() + parts.threads.iter().map(|t| t.frames.len()).sum::<usize>(),
        stack_funcs: stack_funcs(&parts),
        snapshot_bytes: out.stats.total_bytes,
        memory_bytes: parts.memory.len() as u64,
        trigger_to_durable: unwound.triggered_at.elapsed(),
        pause: unwound.triggered_at.elapsed(),
        probes: unwound.probes,
        location: out.location,
        base: out.base,
        live: None,
        frame_walk: unwound.frame_walk.map(Box::new),
    };
    drop(parts);
    let depth = match (&stats.base, &base) {
        (Some(_), Some(b)) => b.depth + 1,
        _ => 0,
    };
    if depth == 0 {
        // A full snapshot is durable: the bases this run kept are of no
        // use any more.
        forget_kept_bases(&mut kept);
    }
    log_written(&stats);
    if let Some(c) = store.inner.ckpt.as_deref_mut() {
        c.kept = kept;
    }
    if let Some(path) = out.path {
        track_after_write(
            store,
            instance,
            BaseInfo {
                path,
                id: out.stats.id,
                depth,
            },
        );
    }
    // Only now: the memory equals the snapshot and tracking has
    // restarted, so every write of the threads that go on is tracked.
    if let Some(w) = world {
        w.release(then);
    }
    Ok(stats)
}

/// `parts` with its memory left out, owning everything else (for a writer
/// thread that reads the memory from its image).
fn detach(parts: SnapshotParts<'_>) -> SnapshotParts<'static> {
    SnapshotParts {
        info: parts.info,
        frames: parts.frames,
        globals: parts.globals,
        tables: parts.tables,
        exceptions: parts.exceptions,
        dropped_data: parts.dropped_data,
        dropped_elems: parts.dropped_elems,
        wasi: parts.wasi,
        monotonic_offset_nanos: parts.monotonic_offset_nanos,
        memory: &[],
        max_pages: parts.max_pages,
        threads: parts.threads,
        last_thread_id: parts.last_thread_id,
    }
}

/// What the session recorded of the unwind that just ended.
struct Unwound {
    /// The frames, innermost first.
    frames: Vec<RawFrame>,
    /// When the checkpoint was decided.
    triggered_at: Instant,
    /// Probes executed before it.
    probes: u64,
    /// What decided it.
    reason: String,
    /// The check of the frames read where they are (developer option
    /// `frame_map`), when the unwind started at a `ProbeWalk`.
    frame_walk: Option<crate::frame_walk::FrameWalkStats>,
}

/// Ends the unwind (the store is no longer unwinding) and takes the frames
/// the session saved.
fn take_unwound(s: &mut StoreInner) -> Result<Unwound, CheckpointError> {
    s.limits.unwind_state = UNWIND_NONE;
    let Some(c) = s.ckpt.as_deref_mut() else {
        return Err(CheckpointError::Host(
            "wasm unwound without a checkpoint session".into(),
        ));
    };
    // Developer option `frame_map`: the frames read where they are must
    // be the frames the unwind blocks wrote; a difference is a bug of the
    // frame maps (or of the unwind code), and no snapshot is written.
    let frame_walk = match c.walked.take() {
        Some(walked) => {
            // Developer option `walk_frames`: the frames whose unwind
            // wrote no record get the one the walk makes; the others are
            // checked against the walk.
            let made = crate::frame_walk::make_records(&walked, &mut c.unwound);
            let (stats, errors) = match made {
                Ok(made) => crate::frame_walk::compare(&walked, &c.unwound, &made),
                Err(errors) => (Default::default(), errors),
            };
            tracing::debug!(?stats, errors = errors.len(), "frame walk checked");
            if !errors.is_empty() {
                c.unwound.clear();
                let shown: Vec<&str> = errors.iter().take(8).map(String::as_str).collect();
                return Err(CheckpointError::Host(format!(
                    "the frames read where they are disagree with the unwind ({} differences): {}",
                    errors.len(),
                    shown.join("; ")
                )));
            }
            Some(stats)
        }
        None => {
            if let Some(f) = c
                .unwound
                .iter()
                .find(|f| f.offset == super::control::MADE_BY_WALK)
            {
                let func = f.func;
                c.unwound.clear();
                return Err(CheckpointError::Host(format!(
                    "function {func} left its frame to a walk, but the unwind was not walked"
                )));
            }
            None
        }
    };
    Ok(Unwound {
        frame_walk,
        frames: std::mem::take(&mut c.unwound),
        triggered_at: c.triggered_at.unwrap_or_else(Instant::now),
        probes: c.probes,
        reason: c.reason.clone().unwrap_or_default(),
    })
}

/// The values of the globals `inst` defines (imported ones are not its
/// to save).
fn save_globals(
    s: &StoreInner,
    inst: &InstanceData,
    meta: &ModuleMeta,
    refs: &mut Refs<'_>,
) -> Result<Vec<WasmValue>, CheckpointError> {
    let nimp_globals = meta.num_imported_globals() as usize;
    let mut globals = Vec::with_capacity(meta.globals.len());
    for (k, &g) in inst.globals.iter().enumerate().skip(nimp_globals) {
        let gd = &s.globals[g as usize];
        globals.push(
            refs.value(gd.cell.get_u128(), gd.ty.ty)
                .map_err(|e| CheckpointError::Host(format!("global {k}: {e}")))?,
        );
    }
    Ok(globals)
}

/// The elements of the tables `inst` defines.
fn save_tables(
    s: &StoreInner,
    inst: &InstanceData,
    meta: &ModuleMeta,
    refs: &mut Refs<'_>,
) -> Result<Vec<Vec<WasmValue>>, CheckpointError> {
    let nimp_tables = meta.num_imported_tables() as usize;
    let mut tables = Vec::with_capacity(meta.tables.len());
    for (k, &t) in inst.tables.iter().enumerate().skip(nimp_tables) {
        let td = &s.tables[t as usize];
        let elem = td.ty().elem;
        let mut v = Vec::with_capacity(td.elems().len());
        for (i, &raw) in td.elems().iter().enumerate() {
            v.push(
                refs.value(u128::from(raw), elem)
                    .map_err(|e| CheckpointError::Host(format!("table {k} element {i}: {e}")))?,
            );
        }
        tables.push(v);
    }
    Ok(tables)
}

/// The indices of the data and element segments `inst` has dropped.
fn dropped_segments(inst: &InstanceData) -> (Vec<u32>, Vec<u32>) {
    let data = inst
        .data_dropped
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
        .map(|(i, _)| i as u32)
        .collect();
    let elems = inst
        .elems
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_empty())
        .map(|(i, _)| i as u32)
        .collect();
    (data, elems)
}

/// The store's host data as bytes for the snapshot (WASI records its
/// descriptors by path and copies in files deleted while open); empty
/// when the data has no state to save.
fn save_host_state(s: &StoreInner, then: Release) -> Result<SavedHostState, CheckpointError> {
    let after = match then {
        Release::Continue => host::RunAfter::Continues,
        Release::Stop => host::RunAfter::Ends,
    };
    Ok(host::save(s, after)
        .map_err(CheckpointError::HostState)?
        .unwrap_or_default())
}

/// Memory 0 of an instance as a snapshot takes it.
struct MemoryView<'a> {
    /// Its bytes.
    data: &'a [u8],
    /// Its declared maximum, in pages.
    max_pages: Option<u64>,
    /// The chunks written since dirty tracking started (`None`: not
    /// tracked, only a full snapshot will do).
    dirty: Option<Vec<u64>>,
}

/// Memory 0 of `inst` (no memory: empty, and nothing dirty). A shared
/// memory that other threads use is read while `world` holds them
/// stopped; without it (a store outside a thread group holding a shared
/// memory someone else may write) it cannot be read as a whole.
fn memory_of<'a>(
    memories: &'a [LinearMemory],
    inst: &InstanceData,
    world: Option<&'a World<'_>>,
) -> Result<MemoryView<'a>, CheckpointError> {
    Ok(match inst.memories.first() {
        Some(&m) => {
            let mem = &memories[m as usize];
            let data = match (mem.data(), world) {
                (Some(d), _) => d,
                (None, Some(w)) => mem.data_stopped(w),
                (None, None) => {
                    return Err(CheckpointError::Host(
                        "cannot checkpoint: the shared memory is in use by another thread".into(),
                    ));
                }
            };
            MemoryView {
                data,
                max_pages: mem.ty().limits.max,
                dirty: mem.dirty_chunks(),
            }
        }
        None => MemoryView {
            data: &[],
            max_pages: None,
            dirty: Some(Vec::new()),
        },
    })
}

/// The snapshot's info header.
fn snapshot_info(meta: &ModuleMeta, unwound: &Unwound) -> SnapshotInfo {
    SnapshotInfo {
        producer: format!("mvvm {PRODUCER_VERSION}"),
        wasm_sha256: meta.wasm_sha256,
        policy: meta.policy.name(),
        source_arch: TargetArch::host()
            .map(|a| a.name().to_string())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        // The trigger's wall-clock time (not the end of the unwind), so a
        // receiver can compute downtime from the snapshot alone.
        created_unix_nanos: SystemTime::now()
            .checked_sub(unwound.triggered_at.elapsed())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        note: format!("trigger: {}; probes: {}", unwound.reason, unwound.probes),
    }
}

/// Where a snapshot went.
struct WriteOutcome {
    /// Sizes and id of what was written.
    stats: mvvm_snapshot::WriteStats,
    /// The file, or `"stream"`.
    location: String,
    /// The file, when it may be the base of a later incremental snapshot.
    path: Option<PathBuf>,
    /// The base recorded in an incremental snapshot.
    base: Option<String>,
}

/// Writes `parts` to `sink`: to a file incrementally against `base` when
/// the memory is dirty-tracked, the chain is not too long and the base can
/// be recorded (see [`base_for`]; bases kept on the way go to `kept`),
/// in full otherwise.
fn write_snapshot(
    sink: &mut SnapshotSink,
    parts: &SnapshotParts<'_>,
    base: Option<&BaseInfo>,
    dirty: Option<Vec<u64>>,
    kept: &mut Vec<PathBuf>,
    sync: mvvm_snapshot::SyncMode,
) -> Result<WriteOutcome, CheckpointError> {
    Ok(match sink {
        SnapshotSink::File(path) => {
            let inc = incremental_for(path, base, dirty, kept);
            let stats = mvvm_snapshot::write_file_with_sync(path, parts, inc.as_ref(), None, sync)?;
            let base = inc.map(|i| i.base.path);
            WriteOutcome {
                stats,
                location: path.display().to_string(),
                path: Some(path.clone()),
                base,
            }
        }
        SnapshotSink::Stream(w) | SnapshotSink::Connection(w, _) => WriteOutcome {
            stats: mvvm_snapshot::write(w, parts)?,
            location: "stream".to_string(),
            path: None,
            base: None,
        },
        // Never a base for incremental snapshots: `path` stays `None`.
        SnapshotSink::SealedFile(path, key) => WriteOutcome {
            stats: mvvm_snapshot::write_file_with_sync(path, parts, None, Some(key), sync)?,
            location: path.display().to_string(),
            path: None,
            base: None,
        },
    })
}

/// How a snapshot to the file `path` is written: incremental against
/// `base` when the memory is dirty-tracked (`dirty`), the chain is not too
/// long and the base can be recorded (see [`base_for`]; bases kept on the
/// way go to `kept`); full (`None`) otherwise.
fn incremental_for(
    path: &Path,
    base: Option<&BaseInfo>,
    dirty: Option<Vec<u64>>,
    kept: &mut Vec<PathBuf>,
) -> Option<Incremental> {
    match (base, dirty) {
        (Some(b), Some(dirty)) if b.depth < MAX_INCREMENTAL_DEPTH => {
            base_for(path, b, kept).map(|base| Incremental { base, dirty })
        }
        _ => None,
    }
}

/// Removes the bases this run kept under derived names.
fn forget_kept_bases(kept: &mut Vec<PathBuf>) {
    for k in kept.drain(..) {
        let _ = std::fs::remove_file(k);
    }
}

/// Logs a written checkpoint.
fn log_written(stats: &CheckpointStats) {
    tracing::info!(
        frames = stats.frames,
        bytes = stats.snapshot_bytes,
        memory = stats.memory_bytes,
        ms = stats.trigger_to_durable.as_secs_f64() * 1e3,
        location = %stats.location,
        base = ?stats.base,
        "checkpoint written"
    );
}

/// The memory now equals the snapshot just written to a file: if the run
/// goes on (periodic checkpoints) and wants incremental snapshots, the
/// next one is taken against it.
fn track_after_write(store: &mut Store, instance: Instance, base: BaseInfo) {
    let continuing = store
        .inner
        .ckpt
        .as_deref()
        .is_some_and(|c| c.continuing && c.incremental);
    if continuing {
        track_from(store, instance, base);
    }
}

/// The instance's function reference array, to turn `*const VMFuncRef`
/// values into function indices and back.
pub(crate) struct Funcs {
    base: usize,
    len: usize,
}

impl Funcs {
    pub(crate) fn of(funcs: &[VMFuncRef]) -> Funcs {
        Funcs {
            base: funcs.as_ptr() as usize,
            len: funcs.len(),
        }
    }

    /// The function index a non-null funcref points to.
    fn index_of(&self, ptr: u64) -> Result<u32, String> {
        let size = std::mem::size_of::<VMFuncRef>();
        let off = (ptr as usize).wrapping_sub(self.base);
        if (ptr as usize) < self.base || !off.is_multiple_of(size) || off / size >= self.len {
            return Err(format!(
                "funcref {ptr:#x} does not point to a function of this instance \
                 (references into other instances cannot be saved)"
            ));
        }
        Ok((off / size) as u32)
    }

    /// The funcref pointer of function `index`.
    pub(crate) fn ptr_of(&self, index: u32) -> Option<u64> {
        ((index as usize) < self.len)
            .then(|| (self.base + index as usize * std::mem::size_of::<VMFuncRef>()) as u64)
    }
}

/// The exceptions [`Reached`] by the values saved so far, and transitively
/// by their payloads, in their snapshot order: each with its tag's index in
/// the tag space of instance `instance` (the checkpointed one) and its
/// typed payload.
fn save_exceptions(
    s: &StoreInner,
    instance: u32,
    refs: &mut Refs<'_>,
) -> Result<Vec<ExceptionRecord>, CheckpointError> {
    save_reached(&s.exceptions, &s.tags, refs, |id| {
        instance_tag_index(s, instance, id)
    })
}

/// [`save_exceptions`] on its parts: `table` holds the exceptions, `tags`
/// their tags' types, and `index_of` maps a tag identity to its index in
/// the checkpointed instance (`None`: the instance has no such tag).
fn save_reached(
    table: &ExceptionTable,
    tags: &Tags,
    refs: &mut Refs<'_>,
    index_of: impl Fn(crate::exception::TagId) -> Option<u32>,
) -> Result<Vec<ExceptionRecord>, CheckpointError> {
    let mut out = Vec::new();
    // `refs.exns.order` grows while payloads are typed: a breadth-first
    // walk without recursion, each exception typed once.
    while let Some(&handle) = refs.exns.order.get(out.len()) {
        let k = out.len();
        let bad = |why: String| CheckpointError::Host(format!("exception {k}: {why}"));
        let exn = table.get(handle).ok_or_else(|| {
            bad(format!(
                "an exnref holds handle {handle:#x}, which names no live exception"
            ))
        })?;
        let tag = index_of(exn.tag).ok_or_else(|| {
            bad(format!(
                "its tag (store tag #{}) is not a tag of the checkpointed instance, \
                 so a snapshot cannot name it (an exception of another module's own tag, \
                 caught with catch_all_ref?)",
                exn.tag.0
            ))
        })?;
        let params = tags
            .ty(exn.tag)
            .map(|t| t.params.clone())
            .ok_or_else(|| bad(format!("its tag #{} is not in the store", exn.tag.0)))?;
        if exn.payload.len() != slot_count(&params) {
            return Err(bad(format!(
                "its payload has {} slots, its tag's type {} ({:?})",
                exn.payload.len(),
                slot_count(&params),
                params
            )));
        }
        let payload = refs
            .values(&exn.payload, &params)
            .map_err(|(i, e)| bad(format!("payload value {i}: {e}")))?;
        out.push(ExceptionRecord { tag, payload });
    }
    Ok(out)
}

/// What turns references into snapshot values: function pointers into
/// function indices, exception handles into indices of the snapshot's
/// exception list.
struct Refs<'a> {
    funcs: &'a Funcs,
    exns: Reached,
}

/// The exceptions met so far, numbered densely in the order first met.
#[derive(Default)]
struct Reached {
    /// Handle -> index in the snapshot's list.
    index: HashMap<Handle, u32>,
    /// Index -> handle.
    order: Vec<Handle>,
}

impl Reached {
    /// The snapshot index of exception `handle` (not null), numbering it if
    /// it is new.
    fn number(&mut self, handle: Handle) -> Result<u32, String> {
        if let Some(&i) = self.index.get(&handle) {
            return Ok(i);
        }
        let i = u32::try_from(self.order.len())
            .map_err(|_| "more than 2^32 exceptions reachable".to_string())?;
        self.index.insert(handle, i);
        self.order.push(handle);
        Ok(i)
    }
}

impl Refs<'_> {
    /// A raw value (a global cell's contents, or a value's slots joined by
    /// `raw_from_slots`: little-endian, in the low 64 bits but for a
    /// `v128`) as a typed value. A `v128` keeps its 16 bytes in memory
    /// order, so the snapshot holds the same bytes whatever the ISA.
    fn value(&mut self, raw: u128, ty: ValType) -> Result<WasmValue, String> {
        let low = raw as u64;
        Ok(match ty {
            ValType::I32 => WasmValue::I32(low as u32),
            ValType::I64 => WasmValue::I64(low),
            ValType::F32 => WasmValue::F32(low as u32),
            ValType::F64 => WasmValue::F64(low),
            ValType::V128 => WasmValue::V128(raw.to_le_bytes()),
            ValType::FuncRef if low == 0 => WasmValue::FuncRef(None),
            ValType::FuncRef => WasmValue::FuncRef(Some(self.funcs.index_of(low)?)),
            ValType::ExternRef => WasmValue::ExternRef((low != 0).then_some(low)),
            ValType::ExnRef if low == 0 => WasmValue::ExnRef(None),
            ValType::ExnRef => WasmValue::ExnRef(Some(self.exns.number(low)?)),
        })
    }

    /// Values of types `tys` from `raw` slots (two per `v128`); the error
    /// names the value by its index.
    fn values(&mut self, raw: &[u64], tys: &[ValType]) -> Result<Vec<WasmValue>, (usize, String)> {
        let mut k = 0;
        let mut out = Vec::with_capacity(tys.len());
        for (i, t) in tys.iter().enumerate() {
            let r = raw_from_slots(raw.get(k..).unwrap_or_default(), *t);
            k += t.slots();
            out.push(self.value(r, *t).map_err(|e| (i, e))?);
        }
        Ok(out)
    }
}

/// Types the slots of one unwound frame with the function's locals and the
/// stable point's stack (the hidden `exnref` locals the compiler adds for
/// legacy `catch` bodies are among the locals, at the end).
fn type_frame(
    meta: &ModuleMeta,
    refs: &mut Refs<'_>,
    depth: usize,
    f: &RawFrame,
) -> Result<FrameRecord, CheckpointError> {
    let bad = |why: String| {
        CheckpointError::Host(format!(
            "frame {depth} (function #{}, offset {:#x}) handed over by generated code: {why}",
            f.func, f.offset
        ))
    };
    let info = meta.func_tables(f.func).map_err(|e| bad(e.to_string()))?;
    let sp = info
        .point_at(f.offset)
        .map(|i| &info.stable_points[i])
        .ok_or_else(|| bad("not a stable point of the function".into()))?;
    // In slots: two per `v128` (`ValType::slots`).
    let local_slots = slot_count(&info.locals);
    let want = local_slots + slot_count(&sp.stack);
    if f.slots.len() != want {
        return Err(bad(format!(
            "{} slots, the function has {} locals and {} stack values there ({want} slots)",
            f.slots.len(),
            info.locals.len(),
            sp.stack.len()
        )));
    }
    let (l, st) = f.slots.split_at(local_slots);
    let locals = refs
        .values(l, &info.locals)
        .map_err(|(i, e)| bad(format!("local {i}: {e}")))?;
    let stack = refs
        .values(st, &sp.stack)
        .map_err(|(i, e)| bad(format!("stack value {i}: {e}")))?;
    Ok(FrameRecord {
        func: f.func,
        resume_offset: f.offset,
        locals,
        stack,
    })
}

/// The functions of every frame `parts` saves, all threads, sorted and
/// distinct: those whose resume clones a restore of it will need.
fn stack_funcs(parts: &mvvm_snapshot::SnapshotParts<'_>) -> Vec<u32> {
    let mut funcs: Vec<u32> = parts
        .frames
        .iter()
        .chain(parts.threads.iter().flat_map(|t| t.frames.iter()))
        .map(|f| f.func)
        .collect();
    funcs.sort_unstable();
    funcs.dedup();
    funcs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exception::{TagHome, TagId};
    use mvvm_abi::meta::FuncType;

    fn tags() -> (Tags, TagId, TagId, TagId) {
        let mut tags = Tags::default();
        let home = |index| TagHome { instance: 0, index };
        let ty = |params: Vec<ValType>| FuncType {
            params,
            results: vec![],
        };
        let big = tags.define(ty(vec![ValType::I32, ValType::V128]), home(0));
        let wrap = tags.define(ty(vec![ValType::ExnRef, ValType::I64]), home(1));
        // A tag of another instance, which the checkpointed one lacks.
        let foreign = tags.define(
            ty(vec![]),
            TagHome {
                instance: 1,
                index: 0,
            },
        );
        (tags, big, wrap, foreign)
    }

    /// Index of a tag in the checkpointed instance: `big` 0, `wrap` 1.
    fn index_of(big: TagId, wrap: TagId) -> impl Fn(TagId) -> Option<u32> {
        move |id| {
            if id == big {
                Some(0)
            } else if id == wrap {
                Some(1)
            } else {
                None
            }
        }
    }

    #[test]
    fn reachable_exceptions_are_numbered_in_first_met_order() {
        let (tags, big, wrap, _) = tags();
        let mut table = ExceptionTable::default();
        let v = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100u128;
        let a = table
            .create(big, vec![5, v as u64, (v >> 64) as u64].into())
            .unwrap();
        let b = table.create(wrap, vec![a, u64::MAX].into()).unwrap();
        let c = table.create(wrap, vec![b, 1].into()).unwrap();
        // Not reachable: not saved.
        let _lost = table.create(big, vec![0, 0, 0].into()).unwrap();
        let funcs = Funcs::of(&[]);
        let mut refs = Refs {
            funcs: &funcs,
            exns: Reached::default(),
        };
        // A frame holds b, then null, then b again; a global holds c.
        let frame = refs
            .values(&[b, 0, b], &[ValType::ExnRef; 3])
            .expect("frame");
        assert_eq!(
            frame,
            vec![
                WasmValue::ExnRef(Some(0)),
                WasmValue::ExnRef(None),
                WasmValue::ExnRef(Some(0))
            ]
        );
        assert_eq!(
            refs.value(u128::from(c), ValType::ExnRef),
            Ok(WasmValue::ExnRef(Some(1)))
        );
        let saved = save_reached(&table, &tags, &mut refs, index_of(big, wrap)).unwrap();
        assert_eq!(
            saved,
            vec![
                // b: holds a, met while saving b's payload.
                ExceptionRecord {
                    tag: 1,
                    payload: vec![WasmValue::ExnRef(Some(2)), WasmValue::I64(u64::MAX)],
                },
                // c: holds b, already numbered.
                ExceptionRecord {
                    tag: 1,
                    payload: vec![WasmValue::ExnRef(Some(0)), WasmValue::I64(1)],
                },
                ExceptionRecord {
                    tag: 0,
                    payload: vec![WasmValue::I32(5), WasmValue::V128(v.to_le_bytes())],
                },
            ]
        );
    }

    #[test]
    fn unnameable_exceptions_are_errors() {
        let (tags, big, wrap, foreign) = tags();
        let funcs = Funcs::of(&[]);
        // A tag the checkpointed instance does not have.
        let mut table = ExceptionTable::default();
        let f = table.create(foreign, vec![].into()).unwrap();
        let mut refs = Refs {
            funcs: &funcs,
            exns: Reached::default(),
        };
        refs.value(u128::from(f), ValType::ExnRef).unwrap();
        let err = save_reached(&table, &tags, &mut refs, index_of(big, wrap)).unwrap_err();
        assert!(
            err.to_string().contains("not a tag of the checkpointed"),
            "{err}"
        );
        // A handle that names no live exception.
        let a = table.create(big, vec![1, 2, 3].into()).unwrap();
        table.remove(a);
        let mut refs = Refs {
            funcs: &funcs,
            exns: Reached::default(),
        };
        refs.value(u128::from(a), ValType::ExnRef).unwrap();
        let err = save_reached(&table, &tags, &mut refs, index_of(big, wrap)).unwrap_err();
        assert!(err.to_string().contains("names no live exception"), "{err}");
        // A payload whose length is not its tag's.
        let short = table.create(big, vec![1].into()).unwrap();
        let mut refs = Refs {
            funcs: &funcs,
            exns: Reached::default(),
        };
        refs.value(u128::from(short), ValType::ExnRef).unwrap();
        let err = save_reached(&table, &tags, &mut refs, index_of(big, wrap)).unwrap_err();
        assert!(err.to_string().contains("payload has 1 slots"), "{err}");
    }
}
