//! Restoring a snapshot: everything in it is checked against the module
//! before anything runs (frames at stable points with the right value
//! types, globals, tables, exceptions, segments, memory size), then the
//! embedder rebuilds its host data from the snapshot's host state and
//! builds the store, and the instance is made in it (without segment
//! initialisation or start function, memory mapped copy-on-write from the
//! file), the saved exceptions are made again in the store's exception
//! table, and the frames are rewound from the entry function.
//!
//! Exceptions: each saved one is made again under a fresh handle, with the
//! restored instance's identity for the tag index it records, those its
//! payload holds first (the reader refuses a snapshot where an exception
//! leads back to itself); every `exnref` of the snapshot (an index into
//! its exception list) becomes that handle. A restored exception counts as
//! escaped (never freed): the snapshot does not say whether wasm was ever
//! handed an `exnref` to it, and freeing one it was would leave that
//! `exnref` dangling. What this costs is one table slot per exception a
//! legacy `catch` body held at the checkpoint, which its end (`ExnDrop`)
//! would otherwise have freed.

use super::capture::Funcs;
use super::control::{BaseInfo, RawFrame, Session, SessionConfig};
use super::worker::{THREAD_ENTRY, Thread, WorkerSession, thread_entry};
use super::{
    CheckpointConfig, CheckpointError, Outcome, Phase, RestoreOptions, SnapshotSink,
    SnapshotSource, call_entry, drive, finish_err, main_func, session_config,
};
use crate::Module;
use crate::exception::{Exception, Handle, instance_tag};
use crate::instance::Instance;
use crate::store::RunError;
use crate::store::{Extern, Store};
use mvvm_abi::checkpoint::{REWINDING, UNWINDING};
use mvvm_abi::meta::{ModuleMeta, ValType};
use mvvm_abi::vmctx::WASM_PAGE_SIZE;
use mvvm_abi::{Policy, StablePointKind, TablesError};
use mvvm_snapshot::{ExceptionRecord, FrameRecord, Snapshot, ThreadRecord, WasmValue};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// A snapshot read and checked against its module, waiting for the store
/// to resume in: [`Restore::open`] reads and checks, the embedder rebuilds
/// its host data from [`Restore::host_state`] and builds the store, and
/// [`Restore::resume`] runs the program on from where it stopped (to its
/// end or to the next checkpoint the configuration asks for).
pub struct Restore {
    module: Module,
    snap: Snapshot,
    path: Option<PathBuf>,
    points: Vec<u32>,
    entry: u32,
    /// Indices into `snap.exceptions`, each after those its payload holds.
    exn_order: Vec<u32>,
    /// The other threads of the program, checked.
    threads: Vec<ThreadRestore>,
    session: SessionConfig,
    sink: SnapshotSink,
    opts: RestoreOptions,
}

impl std::fmt::Debug for Restore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore")
            .field("path", &self.path)
            .field("frames", &self.snap.frames.len())
            .field("entry", &self.entry)
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// One thread of a snapshot besides the main one, checked against the
/// module, to be rebuilt in a store of its own on its own OS thread
/// ([`ThreadRestore::run`]). `Send`: the embedder moves it to that thread.
pub struct ThreadRestore {
    module: Module,
    record: ThreadRecord,
    points: Vec<u32>,
    exn_order: Vec<u32>,
    entry: u32,
}

impl std::fmt::Debug for ThreadRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadRestore")
            .field("tid", &self.record.tid)
            .field("frames", &self.record.frames.len())
            .finish()
    }
}

impl Restore {
    /// Reads the snapshot in `source` for `module` (any checkpoint-enabled
    /// compilation of the same wasm) and checks it, within `opts.limits`
    /// and the frames a `max_wasm_stack` of wasm stack can hold (the store
    /// given to [`Restore::resume`] must have that limit too). Nothing is
    /// opened or run yet.
    pub fn open(
        module: &Module,
        source: SnapshotSource,
        max_wasm_stack: usize,
        cfg: CheckpointConfig,
        opts: RestoreOptions,
    ) -> Result<Restore, CheckpointError> {
        let meta = module.meta();
        if !meta.policy.is_instrumented() {
            return Err(CheckpointError::NotInstrumented);
        }
        let session = session_config(module, &cfg)?.ok_or(CheckpointError::NotInstrumented)?;
        let read_limits = opts.limits.read_limits(meta, max_wasm_stack);
        let (snap, path) = match source {
            SnapshotSource::File(path) => (
                mvvm_snapshot::OpenOptions::new()
                    .verify_memory(!opts.skip_memory_verification)
                    .limits(read_limits)
                    .open(&path)?,
                Some(path),
            ),
            SnapshotSource::Stream(r) => (mvvm_snapshot::read_with_limits(r, &read_limits)?, None),
            SnapshotSource::Connection(r, mut acks) => (
                mvvm_snapshot::live::read_stream(r, &read_limits, Some(&mut *acks))?,
                None,
            ),
        };
        snap.check_module(&meta.wasm_sha256)?;
        let mut snap = snap;
        let entries: Vec<u32> = main_func(module).into_iter().chain(meta.start).collect();
        let (points, entry) = check_frames(
            module,
            &snap.frames,
            &entries,
            "`_start` nor the start function",
        )?;
        check_memory(meta, &snap)?;
        check_instance(
            meta,
            &snap.globals,
            &snap.tables,
            &snap.dropped_data,
            &snap.dropped_elems,
        )?;
        let exn_order = check_exceptions(meta, &snap.exceptions)?;
        let threads = std::mem::take(&mut snap.threads)
            .into_iter()
            .map(|r| ThreadRestore::check(module, r))
            .collect::<Result<Vec<_>, _>>()?;
        // An object that left its resume clones out: compile those of
        // the frames' functions now, all at once, before anything runs
        // (see `crate::resume`).
        let funcs: Vec<u32> = snap
            .frames
            .iter()
            .chain(threads.iter().flat_map(|t| t.record.frames.iter()))
            .map(|f| f.func)
            .collect();
        module
            .prepare_clones(&funcs)
            .map_err(|e| CheckpointError::Host(e.to_string()))?;
        Ok(Restore {
            module: module.clone(),
            snap,
            path,
            points,
            entry,
            exn_order,
            threads,
            session,
            sink: cfg.sink,
            opts,
        })
    }

    /// The host state the snapshot holds (what the store's host data
    /// saved, [`HostState::save`](super::HostState::save)); untrusted
    /// input like the rest of the snapshot.
    pub fn host_state(&self) -> &[u8] {
        &self.snap.wasi
    }

    /// The number of threads besides the main one the snapshot holds.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Instantiates the module in `store` with `imports` (no segment
    /// initialisation, no start function), brings memory, globals and
    /// tables back, and runs the program on from its saved frames. A
    /// snapshot of several threads needs [`Restore::resume_with_threads`].
    pub fn resume(self, store: &mut Store, imports: &[Extern]) -> Result<Outcome, CheckpointError> {
        self.resume_with_threads(store, imports, |_, threads| {
            Err(format!(
                "the snapshot holds {} other thread(s), and this embedder cannot start threads",
                threads.len()
            ))
        })
    }

    /// [`Restore::resume`] for a program of several threads: once the main
    /// thread's store is rebuilt (memory included), `spawn` is given the
    /// store and the other threads, and must start each on an OS thread of
    /// its own (a store per thread, a member of `store`'s thread group,
    /// the same imports with `store`'s shared memory) that calls
    /// [`ThreadRestore::run`]. No thread runs wasm before all are rebuilt.
    pub fn resume_with_threads(
        self,
        store: &mut Store,
        imports: &[Extern],
        spawn: impl FnOnce(&mut Store, Vec<ThreadRestore>) -> Result<(), String>,
    ) -> Result<Outcome, CheckpointError> {
        let Restore {
            module,
            snap,
            path,
            points,
            entry,
            exn_order,
            threads,
            session,
            sink,
            opts,
        } = self;
        let module = &module;
        let meta = module.meta();
        let instance = Instance::new_with(store, module, imports, false)
            .map_err(CheckpointError::Instantiate)?;
        let handles = make_exceptions(store, instance, &snap.exceptions, &exn_order)?;
        apply_memory(store, instance, &snap)?;
        apply_instance(
            store,
            instance,
            &snap.globals,
            &snap.tables,
            &snap.dropped_data,
            &snap.dropped_elems,
            &handles,
        )?;

        let (counting, log) = (session.count, session.log_probes);
        let background_every = !opts.write_in_foreground && session.every;
        let session = Session::arm(store, module, session);
        super::share_with_threads(store, counting, log, opts.on_thread_probes);
        if let Some(c) = store.inner.ckpt.as_deref_mut() {
            c.on_checkpoint = opts.on_checkpoint;
            c.incremental |= opts.incremental;
            c.background = !opts.write_in_foreground;
            c.sync = opts.sync;
        }
        if background_every {
            // What the restored memory commits from now on (the snapshot's
            // pages are file mappings, never huge).
            super::advise_huge_pages(store);
        }
        // The memory equals the snapshot file now: track what changes, so
        // the next checkpoint can be incremental against it.
        if let Some(path) = path
            && (meta.policy == Policy::LoopDirty || opts.incremental)
        {
            let base = BaseInfo {
                path,
                id: snap.id,
                depth: snap.depth(),
            };
            super::capture::track_from(store, instance, base);
        }
        if background_every {
            super::huge_pages_after_restore(store, instance);
        }
        let (sink, _live_guard) = super::arm_live(store, sink, opts.live)?;
        load_rewind_frames(store, instance, &snap.frames, points, &handles)?;
        let nthreads = threads.len();
        match store.thread_group() {
            Some(group) => {
                group.set_last_thread_id(snap.last_thread_id);
                let rv = group.rendezvous();
                rv.expect_restored(nthreads);
                if nthreads > 0 {
                    spawn(store, threads).map_err(|e| {
                        CheckpointError::Host(format!("cannot start the restored threads: {e}"))
                    })?;
                }
                rv.open_gate(group.terminated_flag()).map_err(|e| {
                    CheckpointError::Host(format!("a thread could not be restored: {e}"))
                })?;
            }
            None if nthreads > 0 => {
                return Err(CheckpointError::Mismatch(format!(
                    "the snapshot holds {nthreads} other thread(s), but the store is no thread \
                     of a program"
                )));
            }
            None => {}
        }
        tracing::info!(
            frames = snap.frames.len(),
            threads = nthreads,
            memory = snap.memory.length_bytes(),
            entry,
            "restoring"
        );
        if let Some(hook) = opts.on_resume {
            hook(&snap.info);
        }
        drop(snap);
        let phase = if Some(entry) == main_func(module) {
            Phase::AfterMain
        } else {
            Phase::AfterStart
        };
        let r = match call_entry(store, instance, entry) {
            Err(e) => finish_err(store, e),
            Ok(()) => {
                let left = store.inner.ckpt.as_ref().map_or(0, |c| c.rewind.len());
                if left > 0 && store.inner.limits.unwind_state != UNWINDING {
                    Err(CheckpointError::Host(format!(
                        "the entry function returned with {left} frames not rewound"
                    )))
                } else {
                    drive(store, module, instance, phase, sink)
                }
            }
        };
        let r = super::settle(store, r);
        drop(_live_guard);
        drop(session);
        r
    }
}

/// Hands the snapshot's frames (checked, at stable points `points`) to the
/// session as raw slots to rewind, and sets the store rewinding.
fn load_rewind_frames(
    store: &mut Store,
    instance: Instance,
    frames: &[FrameRecord],
    points: Vec<u32>,
    handles: &[Handle],
) -> Result<(), CheckpointError> {
    let s = &mut *store.inner;
    let funcs = Funcs::of(&s.instances[instance.index as usize].funcs);
    let refs = Refs {
        funcs: &funcs,
        exns: handles,
    };
    let mut rewind = std::collections::VecDeque::with_capacity(frames.len());
    for (f, point) in frames.iter().zip(points) {
        let mut slots = Vec::with_capacity(f.locals.len() + f.stack.len());
        for v in f.locals.iter().chain(&f.stack) {
            push_slots(&mut slots, *v, &refs)?;
        }
        rewind.push_back(RawFrame {
            func: f.func,
            offset: f.resume_offset,
            point,
            slots,
        });
    }
    if let Some(c) = s.ckpt.as_deref_mut() {
        c.rewind = rewind;
    }
    s.limits.unwind_state = REWINDING;
    Ok(())
}

fn value_type(v: &WasmValue) -> ValType {
    match v {
        WasmValue::I32(_) => ValType::I32,
        WasmValue::I64(_) => ValType::I64,
        WasmValue::F32(_) => ValType::F32,
        WasmValue::F64(_) => ValType::F64,
        WasmValue::FuncRef(_) => ValType::FuncRef,
        WasmValue::ExternRef(_) => ValType::ExternRef,
        WasmValue::V128(_) => ValType::V128,
        WasmValue::ExnRef(_) => ValType::ExnRef,
    }
}

/// Appends the slots of `v` to `slots`: one, two for a `v128` (low half
/// first, `ValType::slots`), the layout of frame buffers and payloads.
fn push_slots(slots: &mut Vec<u64>, v: WasmValue, refs: &Refs<'_>) -> Result<(), CheckpointError> {
    let raw = refs.raw(v)?;
    slots.push(raw as u64);
    if let WasmValue::V128(_) = v {
        slots.push((raw >> 64) as u64);
    }
    Ok(())
}

/// Checks that `values` have types `tys` and that function references name
/// functions of the module; `what` names the values in messages.
fn check_values(
    meta: &ModuleMeta,
    values: &[WasmValue],
    tys: &[ValType],
    what: &str,
) -> Result<(), String> {
    if values.len() != tys.len() {
        return Err(format!(
            "{} {what}s saved, the module has {} there",
            values.len(),
            tys.len()
        ));
    }
    for (i, (v, t)) in values.iter().zip(tys).enumerate() {
        if value_type(v) != *t {
            return Err(format!(
                "{what} {i} is {:?}, the module has {t:?}",
                value_type(v)
            ));
        }
        if let WasmValue::FuncRef(Some(f)) = v
            && *f as usize >= meta.funcs.len()
        {
            return Err(format!(
                "{what} {i} refers to function #{f}, the module has {}",
                meta.funcs.len()
            ));
        }
    }
    Ok(())
}

/// Checks every frame against the module's stable-point tables; returns
/// each frame's stable point index and the entry function (the outermost
/// frame's), which must be one of `entries` (`entry_names` says which in
/// messages).
fn check_frames(
    module: &Module,
    frames: &[FrameRecord],
    entries: &[u32],
    entry_names: &str,
) -> Result<(Vec<u32>, u32), CheckpointError> {
    let meta = module.meta();
    let name = |f: u32| match meta.func_name(f) {
        Some(n) => format!("`{n}` (#{f})"),
        None => format!("#{f}"),
    };
    let Some(outer) = frames.first() else {
        return Err(CheckpointError::Mismatch(
            "the snapshot holds no frame".into(),
        ));
    };
    if !entries.contains(&outer.func) {
        return Err(CheckpointError::Mismatch(format!(
            "frame 0 (outermost) is in function {}, which is neither {entry_names}: \
             the thread cannot be entered there",
            name(outer.func)
        )));
    }
    if meta.array_trampolines.binary_search(&outer.func).is_err() {
        return Err(CheckpointError::Mismatch(format!(
            "frame 0 (outermost) is in function {}, which has no array trampoline",
            name(outer.func)
        )));
    }
    let mut points = Vec::with_capacity(frames.len());
    for (k, f) in frames.iter().enumerate() {
        let bad = |why: String| {
            CheckpointError::Mismatch(format!(
                "frame {k} of {} (function {}, resume offset {:#x}): {why}",
                frames.len(),
                name(f.func),
                f.resume_offset
            ))
        };
        let info = meta.func_tables(f.func).map_err(|e| match e {
            TablesError::NotDefined(_) => bad(format!(
                "no such defined function (the module defines #{}..#{})",
                meta.num_imported_funcs,
                meta.funcs.len()
            )),
            e => bad(e.to_string()),
        })?;
        let idx = info
            .stable_points
            .binary_search_by_key(&f.resume_offset, |p| p.offset)
            .map_err(|_| {
                bad(format!(
                    "the resume offset is not one of the function's {} stable points",
                    info.stable_points.len()
                ))
            })?;
        let sp = &info.stable_points[idx];
        if k + 1 < frames.len() && sp.kind != StablePointKind::Call {
            return Err(bad(format!(
                "an outer frame must be at a call site, this one is at a {:?} point",
                sp.kind
            )));
        }
        check_values(meta, &f.locals, &info.locals, "local").map_err(&bad)?;
        check_values(meta, &f.stack, &sp.stack, "stack value").map_err(&bad)?;
        points.push(idx as u32);
    }
    Ok((points, outer.func))
}

/// Checks one instance's globals, tables and dropped segments against the
/// module.
fn check_instance(
    meta: &ModuleMeta,
    globals: &[WasmValue],
    tables: &[Vec<WasmValue>],
    dropped_data: &[u32],
    dropped_elems: &[u32],
) -> Result<(), CheckpointError> {
    let mismatch = |m: String| CheckpointError::Mismatch(m);
    if meta.num_imported_globals() + meta.num_imported_tables() > 0 {
        return Err(mismatch(
            "modules importing globals or tables cannot be restored".into(),
        ));
    }
    let gtys: Vec<ValType> = meta.globals.iter().map(|g| g.ty.ty).collect();
    check_values(meta, globals, &gtys, "global").map_err(|e| mismatch(format!("globals: {e}")))?;
    if tables.len() != meta.tables.len() {
        return Err(mismatch(format!(
            "{} tables saved, the module defines {}",
            tables.len(),
            meta.tables.len()
        )));
    }
    for (k, (t, ty)) in tables.iter().zip(&meta.tables).enumerate() {
        let len = t.len() as u64;
        let max = ty
            .limits
            .max
            .unwrap_or(u32::MAX as u64)
            .min(crate::table::MAX_TABLE_ELEMENTS);
        if len < ty.limits.min || len > max {
            return Err(mismatch(format!(
                "table {k} has {len} elements, outside its limits {}..={max}",
                ty.limits.min
            )));
        }
        let tys = vec![ty.elem; t.len()];
        check_values(meta, t, &tys, "element").map_err(|e| mismatch(format!("table {k}: {e}")))?;
    }
    if let Some(d) = dropped_data
        .iter()
        .find(|d| **d as usize >= meta.data.len())
    {
        return Err(mismatch(format!(
            "dropped data segment {d}, the module has {}",
            meta.data.len()
        )));
    }
    if let Some(d) = dropped_elems
        .iter()
        .find(|d| **d as usize >= meta.elems.len())
    {
        return Err(mismatch(format!(
            "dropped element segment {d}, the module has {}",
            meta.elems.len()
        )));
    }
    Ok(())
}

/// Checks the snapshot's memory against the module's memory 0, defined
/// or imported (an imported one only if shared: a wasi-threads program's,
/// which the snapshot holds once for all its threads).
fn check_memory(meta: &ModuleMeta, snap: &Snapshot) -> Result<(), CheckpointError> {
    let mismatch = |m: String| CheckpointError::Mismatch(m);
    let imported = meta.imports.iter().find_map(|i| match i.kind {
        mvvm_abi::meta::ImportKind::Memory(m) => Some(m),
        _ => None,
    });
    if imported.is_some_and(|m| !m.shared) || meta.num_imported_memories() > 1 {
        return Err(mismatch(
            "modules importing an unshared memory cannot be restored".into(),
        ));
    }
    let len = snap.memory.length_bytes();
    match imported.or_else(|| meta.memories.first().copied()) {
        None if len > 0 => {
            return Err(mismatch(format!(
                "the snapshot has {len} bytes of memory, the module has no memory"
            )));
        }
        None => {}
        Some(mt) => {
            let pages = len / WASM_PAGE_SIZE;
            let max = mt
                .limits
                .max
                .unwrap_or(crate::MAX_PAGES)
                .min(crate::MAX_PAGES);
            if !len.is_multiple_of(WASM_PAGE_SIZE) || pages < mt.limits.min || pages > max {
                return Err(mismatch(format!(
                    "memory of {len} bytes is outside the module's limits {}..={max} pages",
                    mt.limits.min
                )));
            }
        }
    }
    Ok(())
}

/// What turns snapshot references back into raw ones: function indices
/// into the instance's function pointers, exception indices into the
/// handles [`make_exceptions`] gave them.
struct Refs<'a> {
    funcs: &'a Funcs,
    exns: &'a [Handle],
}

impl Refs<'_> {
    /// A typed value as a raw value: a global cell's contents,
    /// little-endian, in the low 64 bits but for a `v128` (whose bytes are
    /// in memory order, as the snapshot holds them).
    fn raw(&self, v: WasmValue) -> Result<u128, CheckpointError> {
        Ok(match v {
            WasmValue::I32(x) | WasmValue::F32(x) => u128::from(x),
            WasmValue::I64(x) | WasmValue::F64(x) => u128::from(x),
            WasmValue::V128(b) => u128::from_le_bytes(b),
            WasmValue::FuncRef(None) | WasmValue::ExternRef(None) | WasmValue::ExnRef(None) => 0,
            WasmValue::FuncRef(Some(i)) => u128::from(self.funcs.ptr_of(i).ok_or_else(|| {
                CheckpointError::Mismatch(format!("reference to function #{i} out of range"))
            })?),
            WasmValue::ExternRef(Some(x)) => u128::from(x),
            WasmValue::ExnRef(Some(i)) => {
                u128::from(*self.exns.get(i as usize).ok_or_else(|| {
                    CheckpointError::Mismatch(format!(
                        "reference to exception {i}, the snapshot holds {}",
                        self.exns.len()
                    ))
                })?)
            }
        })
    }
}

/// Checks the saved exceptions against the module: each names a tag of
/// the module's tag space (imports first) and has a payload of that tag's
/// types (function references naming functions of the module), and none
/// leads back to itself. Returns the order to make them in (those a
/// payload holds first).
fn check_exceptions(
    meta: &ModuleMeta,
    exceptions: &[ExceptionRecord],
) -> Result<Vec<u32>, CheckpointError> {
    let tag_types = meta.tag_types();
    for (k, e) in exceptions.iter().enumerate() {
        let bad = |why: String| CheckpointError::Mismatch(format!("exception {k}: {why}"));
        let ty = tag_types
            .get(e.tag as usize)
            .ok_or_else(|| {
                bad(format!(
                    "its tag is #{}, the module has {} tags",
                    e.tag,
                    tag_types.len()
                ))
            })
            .and_then(|&t| {
                meta.types
                    .get(t as usize)
                    .ok_or_else(|| bad(format!("tag #{} has no type in the module", e.tag)))
            })?;
        check_values(meta, &e.payload, &ty.params, "payload value")
            .map_err(|m| bad(format!("tag #{}: {m}", e.tag)))?;
    }
    mvvm_snapshot::exception_creation_order(exceptions)
        .map_err(|e| CheckpointError::Mismatch(format!("exceptions: {e}")))
}

/// Makes the snapshot's exceptions again in the store's exception table,
/// in `order` (see [`check_exceptions`]), each with `instance`'s identity
/// for its tag index; returns each one's handle, by snapshot index.
fn make_exceptions(
    store: &mut Store,
    instance: Instance,
    exceptions: &[ExceptionRecord],
    order: &[u32],
) -> Result<Vec<Handle>, CheckpointError> {
    let s = &mut *store.inner;
    let funcs = Funcs::of(&s.instances[instance.index as usize].funcs);
    // 0 (null) until made: `order` makes every held exception first, so a
    // payload never sees a 0 here (checked anyway below).
    let mut handles: Vec<Handle> = vec![0; exceptions.len()];
    for &k in order {
        let e = exceptions.get(k as usize).ok_or_else(|| {
            CheckpointError::Host(format!(
                "exception order names exception {k} of {}",
                exceptions.len()
            ))
        })?;
        let tag = instance_tag(s, instance.index, e.tag).ok_or_else(|| {
            CheckpointError::Mismatch(format!(
                "exception {k}: the restored instance has no tag #{}",
                e.tag
            ))
        })?;
        if let Some(held) = e.payload.iter().find_map(|v| match *v {
            WasmValue::ExnRef(Some(i)) if handles.get(i as usize) == Some(&0) => Some(i),
            _ => None,
        }) {
            return Err(CheckpointError::Host(format!(
                "exception {k} holds exception {held}, which is not made yet"
            )));
        }
        let refs = Refs {
            funcs: &funcs,
            exns: &handles,
        };
        let mut payload = Vec::with_capacity(e.payload.len());
        for v in &e.payload {
            push_slots(&mut payload, *v, &refs)?;
        }
        let handle = s
            .exceptions
            .insert(Exception {
                tag,
                payload: payload.into_boxed_slice(),
                escaped: true,
            })
            .ok_or_else(|| CheckpointError::Host("the store's exception table is full".into()))?;
        handles[k as usize] = handle;
    }
    Ok(handles)
}

/// Brings the memory back into the fresh instance (checked by
/// [`check_memory`]): mapped copy-on-write from a snapshot file, copied
/// from a stream. Before any other thread can use it.
fn apply_memory(
    store: &mut Store,
    instance: Instance,
    snap: &Snapshot,
) -> Result<(), CheckpointError> {
    let s = &mut *store.inner;
    let mems = s.instances[instance.index as usize].memories.clone();
    if let Some(&m) = mems.first() {
        let mem = &mut s.memories[m as usize];
        let pages = snap.memory.length_bytes() / WASM_PAGE_SIZE;
        let cur = mem.pages();
        if pages > cur && mem.grow(pages - cur).is_none() {
            return Err(CheckpointError::Host(format!(
                "cannot grow memory to {pages} pages"
            )));
        }
        // The chain of an incremental snapshot, the full snapshot first:
        // each layer's zeroed ranges, then its runs, over the previous.
        for layer in snap.memory.layers() {
            match layer.file() {
                Some(file) => {
                    for &(offset, len) in layer.zeroed() {
                        mem.map_zero(offset, len)
                            .map_err(|source| CheckpointError::Memory {
                                what: format!("zeroing snapshot memory at {offset:#x}"),
                                source,
                            })?;
                    }
                    for run in layer.runs() {
                        mem.map_file_private(
                            run.guest_offset,
                            run.len,
                            file.as_fd(),
                            run.file_offset,
                        )
                        .map_err(|source| CheckpointError::Memory {
                            what: format!("mapping snapshot memory at {:#x}", run.guest_offset),
                            source,
                        })?;
                    }
                }
                None => {
                    // Bytes read from a stream: a full snapshot (one
                    // layer), or the final part of a live migration over
                    // its mapped pre-copied memory (the last layer).
                    let bytes = mem.data_mut().ok_or_else(|| {
                        CheckpointError::Host(
                            "cannot restore into a shared memory another thread uses".into(),
                        )
                    })?;
                    layer.copy_layer_into(bytes)?;
                }
            }
        }
    }
    Ok(())
}

/// Brings one instance's globals, tables and dropped segments back
/// (checked by [`check_instance`]), with `handles` for its exceptions.
fn apply_instance(
    store: &mut Store,
    instance: Instance,
    saved_globals: &[WasmValue],
    saved_tables: &[Vec<WasmValue>],
    dropped_data: &[u32],
    dropped_elems: &[u32],
    handles: &[Handle],
) -> Result<(), CheckpointError> {
    let s = &mut *store.inner;
    let inst = &s.instances[instance.index as usize];
    let funcs = Funcs::of(&inst.funcs);
    let refs = Refs {
        funcs: &funcs,
        exns: handles,
    };
    let (globals, tables) = (inst.globals.clone(), inst.tables.clone());
    for (g, v) in globals.iter().zip(saved_globals) {
        let raw = refs.raw(*v)?;
        s.globals[*g as usize].cell.set_u128(raw);
    }
    for (t, elems) in tables.iter().zip(saved_tables) {
        let table = &mut s.tables[*t as usize];
        let want = elems.len() as u64;
        if want > table.len() && table.grow(want - table.len(), 0).is_none() {
            return Err(CheckpointError::Host(format!(
                "cannot grow a table to {want} elements"
            )));
        }
        for (slot, v) in table.elems_mut().iter_mut().zip(elems) {
            // A reference (checked against the element type): 64 bits.
            *slot = refs.raw(*v)? as u64;
        }
    }
    let inst = &mut s.instances[instance.index as usize];
    for &d in dropped_data {
        if let Some(x) = inst.data_dropped.get_mut(d as usize) {
            *x = true;
        }
    }
    for &d in dropped_elems {
        if let Some(x) = inst.elems.get_mut(d as usize) {
            *x = Vec::new();
        }
    }
    Ok(())
}

impl ThreadRestore {
    /// Checks `record` against `module` (as the main thread's state is).
    fn check(module: &Module, record: ThreadRecord) -> Result<ThreadRestore, CheckpointError> {
        let meta = module.meta();
        let in_thread =
            |e: CheckpointError| CheckpointError::Mismatch(format!("thread {}: {e}", record.tid));
        let entry = thread_entry(module).ok_or_else(|| {
            CheckpointError::Mismatch(format!(
                "the snapshot holds threads, the module exports no `{THREAD_ENTRY}`"
            ))
        })?;
        let points = if record.frames.is_empty() {
            Vec::new()
        } else {
            check_frames(module, &record.frames, &[entry], THREAD_ENTRY)
                .map_err(in_thread)?
                .0
        };
        check_instance(
            meta,
            &record.globals,
            &record.tables,
            &record.dropped_data,
            &record.dropped_elems,
        )
        .map_err(in_thread)?;
        let exn_order = check_exceptions(meta, &record.exceptions).map_err(in_thread)?;
        Ok(ThreadRestore {
            module: module.clone(),
            record,
            points,
            exn_order,
            entry,
        })
    }

    /// The thread's id.
    pub fn tid(&self) -> u32 {
        self.record.tid
    }

    /// The argument its start function was given.
    pub fn start_arg(&self) -> u32 {
        self.record.start_arg
    }

    /// On the thread's own OS thread, in its own `store` (a member of the
    /// restored program's thread group) with `imports` (the program's
    /// shared memory among them): rebuilds the thread's instance, waits
    /// until every thread of the program is rebuilt, and runs it on from
    /// its frames (from its start function if it had not entered wasm),
    /// as [`run_thread`](super::run_thread) runs a new thread.
    pub fn run(self, store: &mut Store, imports: &[Extern]) -> Result<(), RunError> {
        let group = store
            .thread_group()
            .ok_or_else(|| RunError::Host("a restored thread needs a thread group".into()))?;
        let rebuilt = self.rebuild(store, imports);
        let ready = rebuilt
            .as_ref()
            .map(|_| ())
            .map_err(|e| format!("thread {}: {e}", self.record.tid));
        if !group.rendezvous().arrive(ready, group.terminated_flag()) {
            // The restore failed (this thread's error is the restore's) or
            // the program ends: nothing of this thread ran.
            return Ok(());
        }
        let (instance, session) = rebuilt.map_err(|e| RunError::Host(e.to_string()))?;
        let thread = Thread {
            instance,
            entry: self.entry,
            tid: self.record.tid,
            start_arg: self.record.start_arg,
        };
        thread.run(store, session.as_ref(), !self.record.frames.is_empty())
    }

    /// The instance with the thread's state, its session armed and its
    /// frames loaded.
    fn rebuild(
        &self,
        store: &mut Store,
        imports: &[Extern],
    ) -> Result<(Instance, Option<WorkerSession>), CheckpointError> {
        let r = &self.record;
        let instance = Instance::new_with(store, &self.module, imports, false)
            .map_err(CheckpointError::Instantiate)?;
        let handles = make_exceptions(store, instance, &r.exceptions, &self.exn_order)?;
        apply_instance(
            store,
            instance,
            &r.globals,
            &r.tables,
            &r.dropped_data,
            &r.dropped_elems,
            &handles,
        )?;
        let session = WorkerSession::arm(store, &self.module);
        if !r.frames.is_empty() {
            load_rewind_frames(store, instance, &r.frames, self.points.clone(), &handles)?;
        }
        Ok((instance, session))
    }
}
