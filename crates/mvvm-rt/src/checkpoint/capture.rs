//! Turning a store whose wasm has just unwound into a snapshot: typed
//! frames (outermost first), defined globals, tables, dropped segments,
//! linear memory, WASI state and clock, and the info header.

use super::control::RawFrame;
use super::{CheckpointError, CheckpointStats, SnapshotSink};
use crate::store::{Store, StoreInner};
use crate::vmctx::VMFuncRef;
use crate::wasi::WasiCtx;
use crate::{Instance, Module};
use mvvm_abi::checkpoint::UNWIND_NONE;
use mvvm_abi::meta::{ModuleMeta, TargetArch, ValType};
use mvvm_abi::version::PRODUCER_VERSION;
use mvvm_snapshot::{FrameRecord, SnapshotInfo, SnapshotParts, WasmValue};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Writes the snapshot of `instance` (whose frames the store's control
/// holds) to `sink`.
pub(crate) fn take(
    store: &mut Store,
    module: &Module,
    instance: Instance,
    sink: SnapshotSink,
) -> Result<CheckpointStats, CheckpointError> {
    let s: &mut StoreInner = &mut store.inner;
    s.limits.unwind_state = UNWIND_NONE;
    let (raw, triggered_at, probes, reason) = match s.ckpt.as_deref_mut() {
        Some(c) => (
            std::mem::take(&mut c.unwound),
            c.triggered_at.unwrap_or_else(Instant::now),
            c.probes,
            c.reason.clone().unwrap_or_default(),
        ),
        None => {
            return Err(CheckpointError::Host(
                "wasm unwound without a checkpoint session".into(),
            ));
        }
    };
    let meta = module.meta();
    let inst = &s.instances[instance.index as usize];
    let funcs = Funcs::of(&inst.funcs);

    let mut frames = Vec::with_capacity(raw.len());
    for (depth, f) in raw.iter().rev().enumerate() {
        frames.push(type_frame(meta, &funcs, depth, f)?);
    }
    if frames.is_empty() {
        return Err(CheckpointError::Host(
            "wasm unwound but saved no frame".into(),
        ));
    }

    let nimp_globals = meta.num_imported_globals() as usize;
    let mut globals = Vec::with_capacity(meta.globals.len());
    for (k, &g) in inst.globals.iter().enumerate().skip(nimp_globals) {
        let gd = &s.globals[g as usize];
        globals.push(
            to_value(gd.cell.get_u64(), gd.ty.ty, &funcs)
                .map_err(|e| CheckpointError::Host(format!("global {k}: {e}")))?,
        );
    }
    let nimp_tables = meta.num_imported_tables() as usize;
    let mut tables = Vec::with_capacity(meta.tables.len());
    for (k, &t) in inst.tables.iter().enumerate().skip(nimp_tables) {
        let td = &s.tables[t as usize];
        let elem = td.ty().elem;
        let mut v = Vec::with_capacity(td.elems().len());
        for (i, &raw) in td.elems().iter().enumerate() {
            v.push(
                to_value(raw, elem, &funcs)
                    .map_err(|e| CheckpointError::Host(format!("table {k} element {i}: {e}")))?,
            );
        }
        tables.push(v);
    }
    let dropped_data: Vec<u32> = inst
        .data_dropped
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
        .map(|(i, _)| i as u32)
        .collect();
    let dropped_elems: Vec<u32> = inst
        .elems
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_empty())
        .map(|(i, _)| i as u32)
        .collect();
    if meta.num_imported_memories() > 0 {
        return Err(CheckpointError::Host(
            "checkpointing a module that imports its memory is not supported".into(),
        ));
    }
    let (memory, max_pages): (&[u8], Option<u64>) = match inst.memories.first() {
        Some(&m) => {
            let mem = &s.memories[m as usize];
            (mem.data(), mem.ty().limits.max)
        }
        None => (&[], None),
    };

    let wasi_state = s
        .data
        .as_ref()
        .and_then(|d| d.downcast_ref::<WasiCtx>())
        .map(|w| w.save_state());
    let (wasi, monotonic) = match &wasi_state {
        Some(st) => (
            mvvm_abi::codec::encode(st)
                .map_err(|e| CheckpointError::Host(format!("encoding the WASI state: {e}")))?,
            st.clocks.saved_monotonic_ns,
        ),
        None => (Vec::new(), 0),
    };

    let parts = SnapshotParts {
        info: SnapshotInfo {
            producer: format!("mvvm {PRODUCER_VERSION}"),
            wasm_sha256: meta.wasm_sha256,
            policy: meta.policy.name(),
            source_arch: TargetArch::host()
                .map(|a| a.name().to_string())
                .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            // The trigger's wall-clock time (not the end of the unwind), so
            // a receiver can compute downtime from the snapshot alone.
            created_unix_nanos: SystemTime::now()
                .checked_sub(triggered_at.elapsed())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            note: format!("trigger: {reason}; probes: {probes}"),
        },
        frames,
        globals,
        tables,
        dropped_data,
        dropped_elems,
        wasi,
        monotonic_offset_nanos: monotonic,
        memory,
        max_pages,
    };
    let nframes = parts.frames.len();
    let (written, location) = match sink {
        SnapshotSink::File(path) => (
            mvvm_snapshot::write_file_atomic(&path, &parts)?,
            path.display().to_string(),
        ),
        SnapshotSink::Stream(mut w) => {
            (mvvm_snapshot::write(&mut w, &parts)?, "stream".to_string())
        }
    };
    let stats = CheckpointStats {
        frames: nframes,
        snapshot_bytes: written.total_bytes,
        memory_bytes: memory.len() as u64,
        trigger_to_durable: triggered_at.elapsed(),
        probes,
        location,
    };
    tracing::info!(
        frames = stats.frames,
        bytes = stats.snapshot_bytes,
        memory = stats.memory_bytes,
        ms = stats.trigger_to_durable.as_secs_f64() * 1e3,
        location = %stats.location,
        "checkpoint written"
    );
    Ok(stats)
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

/// A raw slot as a typed value.
fn to_value(raw: u64, ty: ValType, funcs: &Funcs) -> Result<WasmValue, String> {
    Ok(match ty {
        ValType::I32 => WasmValue::I32(raw as u32),
        ValType::I64 => WasmValue::I64(raw),
        ValType::F32 => WasmValue::F32(raw as u32),
        ValType::F64 => WasmValue::F64(raw),
        ValType::FuncRef if raw == 0 => WasmValue::FuncRef(None),
        ValType::FuncRef => WasmValue::FuncRef(Some(funcs.index_of(raw)?)),
        ValType::ExternRef => WasmValue::ExternRef((raw != 0).then_some(raw)),
        ValType::V128 => return Err("v128 values cannot be saved yet".into()),
    })
}

/// Types the slots of one unwound frame with the function's locals and the
/// stable point's stack.
fn type_frame(
    meta: &ModuleMeta,
    funcs: &Funcs,
    depth: usize,
    f: &RawFrame,
) -> Result<FrameRecord, CheckpointError> {
    let bad = |why: String| {
        CheckpointError::Host(format!(
            "frame {depth} (function #{}, offset {:#x}) handed over by generated code: {why}",
            f.func, f.offset
        ))
    };
    let info = f
        .func
        .checked_sub(meta.num_imported_funcs)
        .and_then(|i| meta.func_infos.get(i as usize))
        .ok_or_else(|| bad("not a defined function".into()))?;
    let sp = info
        .stable_points
        .binary_search_by_key(&f.offset, |p| p.offset)
        .map(|i| &info.stable_points[i])
        .map_err(|_| bad("not a stable point of the function".into()))?;
    let want = info.locals.len() + sp.stack.len();
    if f.slots.len() != want {
        return Err(bad(format!(
            "{} values, the function has {} locals and {} stack values there",
            f.slots.len(),
            info.locals.len(),
            sp.stack.len()
        )));
    }
    let (l, st) = f.slots.split_at(info.locals.len());
    let conv = |raw: &[u64], tys: &[ValType], what: &str| {
        raw.iter()
            .zip(tys)
            .enumerate()
            .map(|(i, (r, t))| to_value(*r, *t, funcs).map_err(|e| bad(format!("{what} {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(FrameRecord {
        func: f.func,
        resume_offset: f.offset,
        locals: conv(l, &info.locals, "local")?,
        stack: conv(st, &sp.stack, "stack value")?,
    })
}
