//! Instances: linking imports, building the `VMContext`, running segment
//! initialisation and the start function, exports, and calls into wasm.

use crate::global::GlobalData;
use crate::memory::LinearMemory;
use crate::module::Module;
use crate::store::{
    Caller, Extern, Func, FuncKind, Global, HostError, Memory, RunError, Store, StoreInner, Table,
    Val,
};
use crate::table::Table as TableData;
use crate::trap::{Trap, enter_wasm};
use crate::vmctx::{GlobalCell, VMContext, VMFuncRef, VMTable};
use mvvm_abi::TrapCode;
use mvvm_abi::meta::{ConstExpr, ExportKind, ImportKind, Limits, SegmentMode};
use std::cell::RefCell;

/// An instance of a module in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instance {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

/// Why instantiation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantiationError {
    /// The imports do not match the module's import declarations.
    #[error("unlinkable: {0}")]
    Unlinkable(String),
    /// A segment was out of bounds or the start function trapped; effects
    /// made before the trap remain (per the spec).
    #[error("{0}")]
    Trap(Trap),
    /// The start function failed in a host function or exited.
    #[error("start function: {0}")]
    Start(RunError),
    /// A memory or table could not be created, or the metadata is
    /// inconsistent.
    #[error("cannot instantiate: {0}")]
    Resource(String),
}

/// Host-side data the builtins reach from a `VMContext`.
#[derive(Debug)]
pub(crate) struct InstanceHost {
    pub store: *mut StoreInner,
    pub instance: u32,
}

/// Everything one instance owns or refers to.
pub(crate) struct InstanceData {
    pub module: Module,
    pub vmctx: Box<VMContext>,
    /// Kept alive for `vmctx.host`, `vmctx.globals`, `vmctx.tables`.
    pub _host: Box<InstanceHost>,
    pub _global_ptrs: Box<[*mut GlobalCell]>,
    pub _table_ptrs: Box<[*mut VMTable]>,
    pub funcs: Box<[VMFuncRef]>,
    /// The provider of each imported function.
    pub func_imports: Vec<Func>,
    /// Store indices of memories, tables and globals (imported first).
    pub memories: Vec<u32>,
    pub tables: Vec<u32>,
    pub globals: Vec<u32>,
    /// Dropped data segments (their bytes stay in the module metadata).
    pub data_dropped: Vec<bool>,
    /// Element segments, evaluated (raw `u64` per item); emptied by drop.
    pub elems: Vec<Vec<u64>>,
}

impl InstanceData {
    pub(crate) fn vmctx_ptr(&self) -> *mut VMContext {
        &*self.vmctx as *const VMContext as *mut VMContext
    }
}

/// What must be handed back to the wasm caller after a failed host call
/// (recorded by the `host_call` builtin, picked up where wasm was entered).
#[derive(Debug)]
pub(crate) enum PendingError {
    Trap(Trap),
    Run(RunError),
}

thread_local! {
    static PENDING_HOST: RefCell<Option<PendingError>> = const { RefCell::new(None) };
}

pub(crate) fn set_pending(e: PendingError) {
    PENDING_HOST.with(|p| *p.borrow_mut() = Some(e));
}

fn unlinkable(msg: impl Into<String>) -> InstantiationError {
    InstantiationError::Unlinkable(msg.into())
}

fn limits_match(actual_min: u64, actual_max: Option<u64>, expected: Limits) -> bool {
    if actual_min < expected.min {
        return false;
    }
    match expected.max {
        None => true,
        Some(em) => matches!(actual_max, Some(am) if am <= em),
    }
}

fn meta_err(what: &str) -> InstantiationError {
    InstantiationError::Resource(format!("inconsistent module metadata: {what}"))
}

impl Instance {
    /// Instantiates `module` in `store` with `imports` (one per import
    /// declaration, in order).
    pub fn new(
        store: &mut Store,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance, InstantiationError> {
        Instance::new_with(store, module, imports, true)
    }

    /// [`Instance::new`], optionally without the effects of instantiation:
    /// with `initialise == false`, no element or data segment is applied
    /// and the start function does not run (a restore brings memory,
    /// tables, globals and dropped segments back from a snapshot instead).
    pub(crate) fn new_with(
        store: &mut Store,
        module: &Module,
        imports: &[Extern],
        initialise: bool,
    ) -> Result<Instance, InstantiationError> {
        let s: &mut StoreInner = &mut store.inner;
        let meta = &module.inner.meta;
        s.reserve_frame_slots(module.inner.frame_slots);
        if imports.len() != meta.imports.len() {
            return Err(unlinkable(format!(
                "expected {} imports, got {}",
                meta.imports.len(),
                imports.len()
            )));
        }
        let index = s.instances.len() as u32;
        let mut func_imports = Vec::new();
        let mut memories = Vec::new();
        let mut tables = Vec::new();
        let mut globals = Vec::new();
        for (imp, ext) in meta.imports.iter().zip(imports) {
            let bad = || {
                unlinkable(format!(
                    "incompatible import type for `{}.{}`",
                    imp.module, imp.name
                ))
            };
            let ext_store = match ext {
                Extern::Func(f) => f.store,
                Extern::Memory(m) => m.store,
                Extern::Table(t) => t.store,
                Extern::Global(g) => g.store,
            };
            if ext_store != s.id {
                return Err(unlinkable(format!(
                    "import `{}.{}` comes from another store",
                    imp.module, imp.name
                )));
            }
            match (&imp.kind, ext) {
                (ImportKind::Func(t), Extern::Func(f)) => {
                    let want = meta
                        .types
                        .get(*t as usize)
                        .ok_or_else(|| meta_err("type"))?;
                    if &s.func_type(*f) != want {
                        return Err(bad());
                    }
                    func_imports.push(*f);
                }
                (ImportKind::Memory(mt), Extern::Memory(m)) => {
                    let have = &s.memories[m.index as usize];
                    if mt.shared != have.ty().shared
                        || !limits_match(have.pages(), have.ty().limits.max, mt.limits)
                    {
                        return Err(bad());
                    }
                    memories.push(m.index);
                }
                (ImportKind::Table(tt), Extern::Table(t)) => {
                    let have = &s.tables[t.index as usize];
                    if tt.elem != have.ty().elem
                        || !limits_match(have.len(), have.ty().limits.max, tt.limits)
                    {
                        return Err(bad());
                    }
                    tables.push(t.index);
                }
                (ImportKind::Global(gt), Extern::Global(g)) => {
                    if s.globals[g.index as usize].ty != *gt {
                        return Err(bad());
                    }
                    globals.push(g.index);
                }
                _ => return Err(bad()),
            }
        }

        // Functions: imports first, then defined ones. The array is
        // allocated now, so its addresses are final before anything
        // (globals, elements) refers to them.
        let nfuncs = meta.funcs.len();
        let nimp = meta.num_imported_funcs as usize;
        let mut funcs: Box<[VMFuncRef]> = vec![VMFuncRef::NULL; nfuncs].into_boxed_slice();
        let mut vmctx = Box::new(VMContext {
            memory: std::ptr::null_mut(),
            globals: std::ptr::null(),
            tables: std::ptr::null(),
            funcs: std::ptr::null(),
            type_ids: module.inner.type_ids.as_ptr(),
            builtins: crate::builtins::table().as_ptr(),
            limits: &mut *s.limits,
            host: std::ptr::null_mut(),
            reserved: 0,
        });
        let vmctx_ptr: *mut VMContext = &mut *vmctx;
        for (i, slot) in funcs.iter_mut().enumerate() {
            let ty = *meta.funcs.get(i).ok_or_else(|| meta_err("funcs"))? as usize;
            let type_id = *module
                .inner
                .type_ids
                .get(ty)
                .ok_or_else(|| meta_err("type"))?;
            if i < nimp {
                let provider = func_imports
                    .get(i)
                    .copied()
                    .ok_or_else(|| meta_err("imported function count"))?;
                *slot = match provider.kind {
                    FuncKind::Host(_) => VMFuncRef {
                        code: module.inner.import_stubs[i] as *const u8,
                        vmctx: vmctx_ptr,
                        type_id,
                    },
                    FuncKind::Wasm { .. } => {
                        let p = s
                            .funcref_ptr(provider)
                            .ok_or_else(|| meta_err("provider"))?;
                        // SAFETY: `p` points into a live instance's funcs.
                        unsafe { *p }
                    }
                };
            } else {
                *slot = VMFuncRef {
                    code: module.inner.funcs[i - nimp] as *const u8,
                    vmctx: vmctx_ptr,
                    type_id,
                };
            }
        }
        if func_imports.len() != nimp {
            return Err(meta_err("imported function count"));
        }
        let funcs_base = funcs.as_ptr();

        // Globals.
        for g in &meta.globals {
            let raw = eval_const(s, &globals, funcs_base, nfuncs, &g.init)?;
            s.globals.push(GlobalData::new(g.ty, raw));
            globals.push(s.globals.len() as u32 - 1);
        }
        // Memories and tables.
        for mt in &meta.memories {
            let m =
                LinearMemory::new(*mt).map_err(|e| InstantiationError::Resource(e.to_string()))?;
            s.memories.push(m);
            memories.push(s.memories.len() as u32 - 1);
        }
        for tt in &meta.tables {
            let t = TableData::new(*tt, 0).ok_or_else(|| {
                InstantiationError::Resource(format!("table of {} elements", tt.limits.min))
            })?;
            s.tables.push(t);
            tables.push(s.tables.len() as u32 - 1);
        }
        // Element segments, evaluated.
        let mut elems = Vec::with_capacity(meta.elems.len());
        for seg in &meta.elems {
            let mut items = Vec::with_capacity(seg.items.len());
            for e in &seg.items {
                items.push(eval_const(s, &globals, funcs_base, nfuncs, e)?);
            }
            elems.push(items);
        }

        let global_ptrs: Box<[*mut GlobalCell]> = globals
            .iter()
            .map(|&g| s.globals[g as usize].cell_ptr())
            .collect();
        let table_ptrs: Box<[*mut VMTable]> = tables
            .iter()
            .map(|&t| s.tables[t as usize].vm_ptr())
            .collect();
        vmctx.memory = match memories.first() {
            Some(&m) => s.memories[m as usize].vm_ptr(),
            None => std::ptr::null_mut(),
        };
        vmctx.globals = global_ptrs.as_ptr();
        vmctx.tables = table_ptrs.as_ptr();
        vmctx.funcs = funcs_base;
        let mut host = Box::new(InstanceHost {
            store: s as *mut StoreInner,
            instance: index,
        });
        vmctx.host = (&mut *host as *mut InstanceHost).cast();

        let me = Instance { store: s.id, index };
        for i in 0..nfuncs {
            let f = if i < nimp {
                match func_imports[i].kind {
                    FuncKind::Host(_) => Func {
                        store: s.id,
                        kind: FuncKind::Wasm {
                            instance: index,
                            index: i as u32,
                        },
                    },
                    FuncKind::Wasm { .. } => func_imports[i],
                }
            } else {
                Func {
                    store: s.id,
                    kind: FuncKind::Wasm {
                        instance: index,
                        index: i as u32,
                    },
                }
            };
            // An imported wasm function keeps the provider's identity.
            s.funcrefs
                .entry(&funcs[i] as *const VMFuncRef as usize)
                .or_insert(f);
        }
        let ndata = meta.data.len();
        s.instances.push(InstanceData {
            module: module.clone(),
            vmctx,
            _host: host,
            _global_ptrs: global_ptrs,
            _table_ptrs: table_ptrs,
            funcs,
            func_imports,
            memories,
            tables,
            globals,
            data_dropped: vec![false; ndata],
            elems,
        });

        if !initialise {
            return Ok(me);
        }
        // From here on the instance exists; a trap leaves its effects.
        for (k, seg) in meta.elems.iter().enumerate() {
            match &seg.mode {
                SegmentMode::Active { index: t, offset } => {
                    let inst = &s.instances[index as usize];
                    let off = eval_const(s, &inst.globals, funcs_base, nfuncs, offset)? as u32;
                    let tix = *inst
                        .tables
                        .get(*t as usize)
                        .ok_or_else(|| meta_err("table"))?;
                    let items = std::mem::take(&mut s.instances[index as usize].elems[k]);
                    let table = &mut s.tables[tix as usize];
                    let end = off as u64 + items.len() as u64;
                    if end > table.len() {
                        let mut t = Trap::new(TrapCode::TableOutOfBounds);
                        t.message = "out of bounds table access".into();
                        return Err(InstantiationError::Trap(t));
                    }
                    table.elems_mut()[off as usize..end as usize].copy_from_slice(&items);
                }
                SegmentMode::Declared => {
                    s.instances[index as usize].elems[k].clear();
                }
                SegmentMode::Passive => {}
            }
        }
        for (k, seg) in meta.data.iter().enumerate() {
            if let SegmentMode::Active { index: m, offset } = &seg.mode {
                let inst = &s.instances[index as usize];
                let off = eval_const(s, &inst.globals, funcs_base, nfuncs, offset)? as u32;
                let mix = *inst
                    .memories
                    .get(*m as usize)
                    .ok_or_else(|| meta_err("memory"))?;
                s.instances[index as usize].data_dropped[k] = true;
                let mem = s.memories[mix as usize].data_mut();
                let end = off as u64 + seg.bytes.len() as u64;
                if end > mem.len() as u64 {
                    return Err(InstantiationError::Trap(Trap::new(
                        TrapCode::MemoryOutOfBounds,
                    )));
                }
                mem[off as usize..end as usize].copy_from_slice(&seg.bytes);
            }
        }
        if let Some(start) = meta.start {
            let f = Func {
                store: s.id,
                kind: FuncKind::Wasm {
                    instance: index,
                    index: start,
                },
            };
            match call_func(s, f, &[]) {
                Ok(_) => {}
                Err(RunError::Trap(t)) => return Err(InstantiationError::Trap(t)),
                Err(e) => return Err(InstantiationError::Start(e)),
            }
        }
        Ok(me)
    }

    /// The export named `name`.
    pub fn get_export(&self, store: &impl crate::store::AsStore, name: &str) -> Option<Extern> {
        let s = store.store_inner();
        if s.id != self.store {
            return None;
        }
        export_of(s, self.index, name)
    }

    /// Every export, by name, in declaration order.
    pub fn exports(&self, store: &impl crate::store::AsStore) -> Vec<(String, Extern)> {
        let s = store.store_inner();
        let Some(inst) = s.instances.get(self.index as usize) else {
            return Vec::new();
        };
        inst.module
            .inner
            .meta
            .exports
            .iter()
            .filter_map(|e| Some((e.name.clone(), export_of(s, self.index, &e.name)?)))
            .collect()
    }

    /// Calls the exported function `name` with `args`.
    pub fn invoke(
        &self,
        store: &mut Store,
        name: &str,
        args: &[Val],
    ) -> Result<Vec<Val>, RunError> {
        match self.get_export(store, name) {
            Some(Extern::Func(f)) => f.call(store, args),
            _ => Err(RunError::NoSuchExport(name.to_string())),
        }
    }

    /// The module this is an instance of.
    pub fn module(&self, store: &impl crate::store::AsStore) -> Option<Module> {
        let s = store.store_inner();
        s.instances
            .get(self.index as usize)
            .map(|i| i.module.clone())
    }
}

/// Evaluates a constant expression to its raw slot value.
fn eval_const(
    s: &StoreInner,
    globals: &[u32],
    funcs_base: *const VMFuncRef,
    nfuncs: usize,
    e: &ConstExpr,
) -> Result<u64, InstantiationError> {
    Ok(match e {
        ConstExpr::I32(v) => *v as u32 as u64,
        ConstExpr::I64(v) => *v as u64,
        ConstExpr::F32(v) => *v as u64,
        ConstExpr::F64(v) => *v,
        ConstExpr::RefNull(_) => 0,
        ConstExpr::RefFunc(i) => {
            if *i as usize >= nfuncs {
                return Err(meta_err("ref.func index"));
            }
            // SAFETY: in bounds of the instance's funcs array (checked).
            unsafe { funcs_base.add(*i as usize) as u64 }
        }
        ConstExpr::GlobalGet(g) => {
            let gi = *globals
                .get(*g as usize)
                .ok_or_else(|| meta_err("global.get index"))?;
            s.globals[gi as usize].cell.get_u64()
        }
    })
}

/// The export `name` of instance `index`.
pub(crate) fn export_of(s: &StoreInner, index: u32, name: &str) -> Option<Extern> {
    let inst = s.instances.get(index as usize)?;
    let e = inst
        .module
        .inner
        .meta
        .exports
        .iter()
        .find(|e| e.name == name)?;
    Some(match e.kind {
        ExportKind::Func(i) => Extern::Func(match inst.func_imports.get(i as usize) {
            Some(f) => *f,
            None => Func {
                store: s.id,
                kind: FuncKind::Wasm {
                    instance: index,
                    index: i,
                },
            },
        }),
        ExportKind::Memory(i) => Extern::Memory(Memory {
            store: s.id,
            index: *inst.memories.get(i as usize)?,
        }),
        ExportKind::Table(i) => Extern::Table(Table {
            store: s.id,
            index: *inst.tables.get(i as usize)?,
        }),
        ExportKind::Global(i) => Extern::Global(Global {
            store: s.id,
            index: *inst.globals.get(i as usize)?,
        }),
    })
}

/// Follows imports until a host function or a defined wasm function.
fn resolve(s: &StoreInner, mut f: Func) -> Func {
    loop {
        match f.kind {
            FuncKind::Wasm { instance, index } => {
                let inst = &s.instances[instance as usize];
                match inst.func_imports.get(index as usize) {
                    Some(g) => f = *g,
                    None => return f,
                }
            }
            FuncKind::Host(_) => return f,
        }
    }
}

/// Calls `f` with typed arguments.
pub(crate) fn call_func(s: &mut StoreInner, f: Func, args: &[Val]) -> Result<Vec<Val>, RunError> {
    let ty = s.func_type(f);
    if args.len() != ty.params.len() || args.iter().zip(&ty.params).any(|(a, t)| a.ty() != *t) {
        return Err(RunError::BadArgs(format!(
            "expected {:?}, got {:?}",
            ty.params,
            args.iter().map(Val::ty).collect::<Vec<_>>()
        )));
    }
    let mut values = vec![0u64; ty.params.len().max(ty.results.len()).max(1)];
    for (slot, a) in values.iter_mut().zip(args) {
        *slot = s.val_to_raw(*a).ok_or_else(|| {
            RunError::BadArgs("a host function cannot be passed as a funcref".into())
        })?;
    }
    // SAFETY: `s` is the store's boxed contents; `values` is large enough
    // for the function's parameters and results.
    unsafe { call_raw(s, f, values.as_mut_ptr())? };
    Ok(ty
        .results
        .iter()
        .zip(&values)
        .map(|(t, raw)| s.val_from_raw(*raw, *t))
        .collect())
}

/// Calls `f` with raw slots (parameters in, results out).
///
/// # Safety
/// `s` must be a store's boxed contents, and `values` must hold
/// max(params, results) slots of `f`'s type. While wasm runs, builtins
/// reach the store through the raw pointer kept in each instance, so no
/// reference derived from `s` may be used until this returns.
pub(crate) unsafe fn call_raw(
    s: *mut StoreInner,
    f: Func,
    values: *mut u64,
) -> Result<(), RunError> {
    // SAFETY: `s` is valid (caller); the reference ends before wasm runs.
    let (tramp, vmctx, outermost) = unsafe {
        let st = &mut *s;
        let f = resolve(st, f);
        match f.kind {
            FuncKind::Host(h) => return call_host(s, h, None, values),
            FuncKind::Wasm { instance, index } => {
                let inst = &st.instances[instance as usize];
                let tramp = *inst
                    .module
                    .inner
                    .trampolines
                    .get(&index)
                    .ok_or(RunError::NotCallable(index))?;
                let outermost = st.depth == 0;
                if outermost {
                    let marker = 0u8;
                    let sp = std::hint::black_box(&marker) as *const u8 as usize;
                    st.limits.stack_limit = sp.saturating_sub(st.max_wasm_stack);
                }
                st.depth += 1;
                (tramp, inst.vmctx_ptr(), outermost)
            }
        }
    };
    // SAFETY: `tramp` is an array trampoline of the instance's module (kept
    // alive by the instance), `vmctx` that instance's context, `values`
    // large enough (caller).
    let r = unsafe { enter_wasm(tramp, vmctx.cast(), values) };
    // SAFETY: wasm has returned; `s` is valid.
    let st = unsafe { &mut *s };
    st.depth -= 1;
    if outermost {
        st.limits.stack_limit = 0;
    }
    match r {
        Ok(()) => Ok(()),
        Err(raw) => {
            let pending = PENDING_HOST.with(|p| p.borrow_mut().take());
            if raw.code == TrapCode::HostError {
                return Err(match pending {
                    Some(PendingError::Trap(t)) => RunError::Trap(t),
                    Some(PendingError::Run(e)) => e,
                    None => RunError::Trap(raw.describe(None)),
                });
            }
            let message = if !raw.exact && raw.code == TrapCode::TableOutOfBounds {
                Some("out of bounds table access".to_string())
            } else {
                None
            };
            Err(RunError::Trap(raw.describe(message)))
        }
    }
}

/// Runs host function `h` on raw slots.
///
/// # Safety
/// As [`call_raw`].
pub(crate) unsafe fn call_host(
    s: *mut StoreInner,
    h: u32,
    instance: Option<u32>,
    values: *mut u64,
) -> Result<(), RunError> {
    // SAFETY: caller guarantees `s` valid and unaliased for this call.
    let st = unsafe { &mut *s };
    let hf = &mut st.host_funcs[h as usize];
    let ty = hf.ty.clone();
    let Some(mut body) = hf.f.take() else {
        return Err(RunError::Host("host function called recursively".into()));
    };
    let n = ty.params.len().max(ty.results.len());
    // SAFETY: `values` has `n` slots (caller).
    let slots = unsafe { std::slice::from_raw_parts_mut(values, n) };
    let args: Vec<Val> = ty
        .params
        .iter()
        .zip(slots.iter())
        .map(|(t, r)| st.val_from_raw(*r, *t))
        .collect();
    let mut results: Vec<Val> = ty.results.iter().map(|t| Val::default_for(*t)).collect();
    let outcome = {
        let mut caller = Caller {
            store: &mut *st,
            instance,
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            body(&mut caller, &args, &mut results)
        }))
    };
    st.host_funcs[h as usize].f = Some(body);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(HostError::Exit(c))) => return Err(RunError::Exit(c)),
        Ok(Err(HostError::Message(m))) => return Err(RunError::Host(m)),
        Err(_) => return Err(RunError::Host("host function panicked".into())),
    }
    for ((slot, v), t) in slots.iter_mut().zip(&results).zip(&ty.results) {
        if v.ty() != *t {
            return Err(RunError::Host(format!(
                "host function returned {:?} for a {:?} result",
                v.ty(),
                t
            )));
        }
        *slot = st
            .val_to_raw(*v)
            .ok_or_else(|| RunError::Host("host function returned a host funcref".into()))?;
    }
    Ok(())
}
