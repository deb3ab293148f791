//! Instances: linking imports, building the `VMContext`, running segment
//! initialisation and the start function, and exports. Calls into wasm
//! are in `call.rs`.
//!
//! Instantiation, step by step ([`Instance::new_with`]):
//!
//! ```text
//!  link_imports      check each import against its declaration  ─▶ Linked
//!  build_funcs       VMContext (base pointers only) + VMFuncRef array
//!  define_entities   the module's own globals, memories, tables (into the store)
//!  eval_elems        element segments evaluated to raw slots
//!  wire_vmctx        point the VMContext at memory 0, globals, tables, host data
//!  register_funcrefs remember which Func each VMFuncRef address is
//!  ── the instance exists from here; with `initialise`: ──
//!  init_elems, init_data, run_start
//! ```
//!
//! Every structure generated code reaches is a [`VmBox`], so the pointers
//! written into the `VMContext` stay valid however the `InstanceData` is
//! moved (see `vm_box.rs` for the invariant).

use crate::exception::{TagHome, TagId};
use crate::global::GlobalData;
use crate::memory::LinearMemory;
use crate::module::Module;
use crate::store::{
    Extern, Func, FuncKind, Global, Memory, RunError, Store, StoreInner, Table, Tag, Val,
};
use crate::table::Table as TableData;
use crate::trap::Trap;
use crate::vm_box::VmBox;
use crate::vmctx::{GlobalCell, VMContext, VMFuncRef, VMTable};
use mvvm_abi::TrapCode;
use mvvm_abi::meta::{ConstExpr, ConstOp, ExportKind, ImportKind, Limits, ModuleMeta, SegmentMode};

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
    /// The base pointer of the store's contents (`Store::inner.as_ptr()`).
    pub store: *mut StoreInner,
    pub instance: u32,
}

/// Everything one instance owns or refers to.
pub(crate) struct InstanceData {
    pub module: Module,
    pub vmctx: VmBox<VMContext>,
    /// Kept alive for `vmctx.host`, `vmctx.globals`, `vmctx.tables`.
    pub _host: VmBox<InstanceHost>,
    pub _global_ptrs: VmBox<[*mut GlobalCell]>,
    pub _table_ptrs: VmBox<[*mut VMTable]>,
    pub funcs: VmBox<[VMFuncRef]>,
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
    /// The identity of each tag (imported first; see `exception.rs`).
    pub tags: Vec<crate::exception::TagId>,
}

impl InstanceData {
    /// The base pointer of the instance's context, for generated code.
    pub(crate) fn vmctx_ptr(&self) -> *mut VMContext {
        self.vmctx.as_ptr()
    }

    /// The base pointer of the `VMFuncRef` array (function `i` is at
    /// `funcs_base().add(i)`).
    pub(crate) fn funcs_base(&self) -> *const VMFuncRef {
        self.funcs.as_ptr().cast::<VMFuncRef>()
    }
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

/// What the imports provide, as store indices (imported entities first in
/// each index space; the module's own are appended by `define_entities`).
struct Linked {
    funcs: Vec<Func>,
    memories: Vec<u32>,
    tables: Vec<u32>,
    globals: Vec<u32>,
    /// Tag identities (imported first).
    tags: Vec<TagId>,
}

/// The `VMFuncRef` array of an instance being built: where it is and how
/// many functions it has (for `ref.func` in constant expressions).
#[derive(Clone, Copy)]
struct FuncsRef {
    base: *const VMFuncRef,
    len: usize,
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
    ///
    /// A failure before the instance exists may leave globals, memories and
    /// tables it created in the store (unreachable, freed with the store);
    /// a trap while initialising leaves the instance and its effects.
    pub(crate) fn new_with(
        store: &mut Store,
        module: &Module,
        imports: &[Extern],
        initialise: bool,
    ) -> Result<Instance, InstantiationError> {
        let index = build_instance(store, module, imports)?;
        let me = Instance {
            store: store.inner.id,
            index,
        };
        if !initialise {
            return Ok(me);
        }
        // From here on the instance exists; a trap leaves its effects.
        init_elems(&mut store.inner, index)?;
        init_data(&mut store.inner, index)?;
        run_start(store, index)?;
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

/// Builds the next instance of `module` in `store` (every step up to its
/// registration) and returns its index.
fn build_instance(
    store: &mut Store,
    module: &Module,
    imports: &[Extern],
) -> Result<u32, InstantiationError> {
    // The base pointer builtins will use; taking it creates no reference.
    let store_ptr = store.inner.as_ptr();
    let s: &mut StoreInner = &mut store.inner;
    let meta = &module.inner.meta;
    s.reserve_frame_slots(module.inner.frame_slots);
    let mut linked = link_imports(s, meta, imports)?;
    let index = s.instances.len() as u32;
    let vmctx = VmBox::new(VMContext {
        memory: std::ptr::null_mut(),
        globals: std::ptr::null(),
        tables: std::ptr::null(),
        funcs: std::ptr::null(),
        type_ids: module.inner.type_ids.as_ptr(),
        builtins: crate::builtins::table().as_ptr(),
        limits: s.limits.as_ptr(),
        host: std::ptr::null_mut(),
        reserved: 0,
    });
    let funcs = build_funcs(s, module, vmctx.as_ptr(), &linked.funcs)?;
    let fr = FuncsRef {
        base: funcs.as_ptr().cast::<VMFuncRef>(),
        len: funcs.len(),
    };
    define_entities(s, meta, index, &mut linked, fr)?;
    let elems = eval_elems(s, meta, &linked.globals, fr)?;
    let mut data = InstanceData {
        module: module.clone(),
        vmctx,
        _host: VmBox::new(InstanceHost {
            store: std::ptr::null_mut(),
            instance: index,
        }),
        _global_ptrs: VmBox::from_box(Box::default()),
        _table_ptrs: VmBox::from_box(Box::default()),
        funcs,
        func_imports: linked.funcs,
        memories: linked.memories,
        tables: linked.tables,
        globals: linked.globals,
        data_dropped: vec![false; meta.data.len()],
        elems,
        tags: linked.tags,
    };
    wire_vmctx(s, store_ptr, &mut data);
    register_funcrefs(s, index, &data);
    s.instances.push(data);
    Ok(index)
}

/// Checks `imports` against the module's import declarations.
fn link_imports(
    s: &StoreInner,
    meta: &ModuleMeta,
    imports: &[Extern],
) -> Result<Linked, InstantiationError> {
    if imports.len() != meta.imports.len() {
        return Err(unlinkable(format!(
            "expected {} imports, got {}",
            meta.imports.len(),
            imports.len()
        )));
    }
    let mut linked = Linked {
        funcs: Vec::new(),
        memories: Vec::new(),
        tables: Vec::new(),
        globals: Vec::new(),
        tags: Vec::new(),
    };
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
            Extern::Tag(t) => t.store,
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
                linked.funcs.push(*f);
            }
            (ImportKind::Memory(mt), Extern::Memory(m)) => {
                let have = &s.memories[m.index as usize];
                if mt.shared != have.ty().shared
                    || !limits_match(have.pages(), have.ty().limits.max, mt.limits)
                {
                    return Err(bad());
                }
                linked.memories.push(m.index);
            }
            (ImportKind::Table(tt), Extern::Table(t)) => {
                let have = &s.tables[t.index as usize];
                if tt.elem != have.ty().elem
                    || !limits_match(have.len(), have.ty().limits.max, tt.limits)
                {
                    return Err(bad());
                }
                linked.tables.push(t.index);
            }
            (ImportKind::Global(gt), Extern::Global(g)) => {
                if s.globals[g.index as usize].ty != *gt {
                    return Err(bad());
                }
                linked.globals.push(g.index);
            }
            (ImportKind::Tag(t), Extern::Tag(tag)) => {
                let want = meta
                    .types
                    .get(*t as usize)
                    .ok_or_else(|| meta_err("type"))?;
                // Structural: the payload types (and the empty results)
                // must be the same.
                if s.tags.ty(tag.id) != Some(want) {
                    return Err(bad());
                }
                linked.tags.push(tag.id);
            }
            _ => return Err(bad()),
        }
    }
    Ok(linked)
}

/// The instance's `VMFuncRef` array: imports first (a host import calls
/// its stub with this instance's context, a wasm import is the provider's
/// own reference), then the module's functions. Allocated before anything
/// (globals, elements) refers to it, so its addresses are final.
fn build_funcs(
    s: &StoreInner,
    module: &Module,
    vmctx: *mut VMContext,
    func_imports: &[Func],
) -> Result<VmBox<[VMFuncRef]>, InstantiationError> {
    let meta = &module.inner.meta;
    let nimp = meta.num_imported_funcs as usize;
    let mut funcs: Box<[VMFuncRef]> = vec![VMFuncRef::NULL; meta.funcs.len()].into_boxed_slice();
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
                    vmctx,
                    type_id,
                },
                FuncKind::Wasm { .. } => {
                    let p = s
                        .funcref_ptr(provider)
                        .ok_or_else(|| meta_err("provider"))?;
                    // SAFETY: `p` points into the `VMFuncRef` array of a
                    // live instance of this store (`funcref_ptr` checked
                    // the indices), initialised and aligned; we only copy
                    // it, and no mutable reference to that array exists.
                    unsafe { *p }
                }
            };
        } else {
            let code = module.inner.code.body_addr(i - nimp).map_err(|why| {
                InstantiationError::Resource(format!("corrupt .aot metadata: {why}"))
            })?;
            *slot = VMFuncRef {
                code: code as *const u8,
                vmctx,
                type_id,
            };
        }
    }
    if func_imports.len() != nimp {
        return Err(meta_err("imported function count"));
    }
    Ok(VmBox::from_box(funcs))
}

/// Creates the module's own globals (evaluating their initialisers),
/// memories, tables and tags in the store (the instance being built is
/// `instance`), appending their indices (tag identities) to `linked`.
fn define_entities(
    s: &mut StoreInner,
    meta: &ModuleMeta,
    instance: u32,
    linked: &mut Linked,
    funcs: FuncsRef,
) -> Result<(), InstantiationError> {
    for g in &meta.globals {
        let raw = eval_const(s, &linked.globals, funcs, &g.init)?;
        s.globals.push(GlobalData::new(g.ty, raw));
        linked.globals.push(s.globals.len() as u32 - 1);
    }
    for mt in &meta.memories {
        let m = LinearMemory::new(*mt).map_err(|e| InstantiationError::Resource(e.to_string()))?;
        s.memories.push(m);
        linked.memories.push(s.memories.len() as u32 - 1);
    }
    for tt in &meta.tables {
        let t = TableData::new(*tt, 0).ok_or_else(|| {
            InstantiationError::Resource(format!("table of {} elements", tt.limits.min))
        })?;
        s.tables.push(t);
        linked.tables.push(s.tables.len() as u32 - 1);
    }
    for ty in &meta.tags {
        let ft = meta
            .types
            .get(*ty as usize)
            .ok_or_else(|| meta_err("tag type"))?
            .clone();
        let home = TagHome {
            instance,
            index: linked.tags.len() as u32,
        };
        linked.tags.push(s.tags.define(ft, home));
    }
    Ok(())
}

/// Every element segment evaluated to raw slots.
fn eval_elems(
    s: &StoreInner,
    meta: &ModuleMeta,
    globals: &[u32],
    funcs: FuncsRef,
) -> Result<Vec<Vec<u64>>, InstantiationError> {
    let mut elems = Vec::with_capacity(meta.elems.len());
    for seg in &meta.elems {
        let mut items = Vec::with_capacity(seg.items.len());
        for e in &seg.items {
            // A reference: its low 64 bits (validation typed the segment).
            items.push(eval_const(s, globals, funcs, e)? as u64);
        }
        elems.push(items);
    }
    Ok(elems)
}

/// Points the instance's `VMContext` at memory 0, its globals and tables
/// (arrays of base pointers), its functions and its host data (`store` is
/// the store's base pointer).
fn wire_vmctx(s: &StoreInner, store: *mut StoreInner, data: &mut InstanceData) {
    let global_ptrs: Box<[*mut GlobalCell]> = data
        .globals
        .iter()
        .map(|&g| s.globals[g as usize].cell_ptr())
        .collect();
    let table_ptrs: Box<[*mut VMTable]> = data
        .tables
        .iter()
        .map(|&t| s.tables[t as usize].vm_ptr())
        .collect();
    data._global_ptrs = VmBox::from_box(global_ptrs);
    data._table_ptrs = VmBox::from_box(table_ptrs);
    data._host.store = store;
    let memory = match data.memories.first() {
        Some(&m) => s.memories[m as usize].vm_ptr(),
        None => std::ptr::null_mut(),
    };
    let vmctx = &mut *data.vmctx;
    vmctx.memory = memory;
    vmctx.globals = data._global_ptrs.as_ptr().cast::<*mut GlobalCell>();
    vmctx.tables = data._table_ptrs.as_ptr().cast::<*mut VMTable>();
    vmctx.funcs = data.funcs.as_ptr().cast::<VMFuncRef>();
    vmctx.host = data._host.as_ptr().cast();
}

/// Records which [`Func`] each of the instance's `VMFuncRef` addresses is
/// (an imported wasm function keeps the provider's identity).
fn register_funcrefs(s: &mut StoreInner, index: u32, data: &InstanceData) {
    let base = data.funcs_base();
    // One reservation instead of a rehash at every doubling (a module of
    // tens of thousands of functions rehashed about sixteen times here).
    s.funcrefs.reserve(data.funcs.len());
    for (i, provider) in (0..data.funcs.len()).map(|i| (i, data.func_imports.get(i))) {
        let own = Func {
            store: s.id,
            kind: FuncKind::Wasm {
                instance: index,
                index: i as u32,
            },
        };
        let f = match provider {
            Some(p) if matches!(p.kind, FuncKind::Wasm { .. }) => *p,
            _ => own,
        };
        s.funcrefs.entry(base.wrapping_add(i) as usize).or_insert(f);
    }
}

/// Applies the active element segments of instance `index` (and drops the
/// declared ones).
fn init_elems(s: &mut StoreInner, index: u32) -> Result<(), InstantiationError> {
    let inst = &s.instances[index as usize];
    let module = inst.module.clone();
    let funcs = FuncsRef {
        base: inst.funcs_base(),
        len: inst.funcs.len(),
    };
    for (k, seg) in module.inner.meta.elems.iter().enumerate() {
        match &seg.mode {
            SegmentMode::Active { index: t, offset } => {
                let inst = &s.instances[index as usize];
                let off = eval_const(s, &inst.globals, funcs, offset)? as u32;
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
    Ok(())
}

/// Copies the active data segments of instance `index` into its memories.
fn init_data(s: &mut StoreInner, index: u32) -> Result<(), InstantiationError> {
    let inst = &s.instances[index as usize];
    let module = inst.module.clone();
    let funcs = FuncsRef {
        base: inst.funcs_base(),
        len: inst.funcs.len(),
    };
    for (k, seg) in module.inner.meta.data.iter().enumerate() {
        if let SegmentMode::Active { index: m, offset } = &seg.mode {
            let inst = &s.instances[index as usize];
            let off = eval_const(s, &inst.globals, funcs, offset)? as u32;
            let mix = *inst
                .memories
                .get(*m as usize)
                .ok_or_else(|| meta_err("memory"))?;
            s.instances[index as usize].data_dropped[k] = true;
            // A raw copy, not a slice: other threads may already run on a
            // shared memory (a thread's instance of a wasi-threads module).
            if !s.memories[mix as usize].write_at(u64::from(off), &seg.bytes) {
                return Err(InstantiationError::Trap(Trap::new(
                    TrapCode::MemoryOutOfBounds,
                )));
            }
        }
    }
    Ok(())
}

/// Runs the start function of instance `index`, if its module has one.
fn run_start(store: &mut Store, index: u32) -> Result<(), InstantiationError> {
    let Some(start) = store.inner.instances[index as usize]
        .module
        .inner
        .meta
        .start
    else {
        return Ok(());
    };
    let f = Func {
        store: store.inner.id,
        kind: FuncKind::Wasm {
            instance: index,
            index: start,
        },
    };
    match crate::call::call_func(store, f, &[]) {
        Ok(_) => Ok(()),
        Err(RunError::Trap(t)) => Err(InstantiationError::Trap(t)),
        Err(e) => Err(InstantiationError::Start(e)),
    }
}

/// Evaluates a constant expression to its raw value (a global cell's
/// contents: little-endian, in the low 64 bits but for a `v128`).
fn eval_const(
    s: &StoreInner,
    globals: &[u32],
    funcs: FuncsRef,
    e: &ConstExpr,
) -> Result<u128, InstantiationError> {
    Ok(match e {
        ConstExpr::I32(v) => u128::from(*v as u32),
        ConstExpr::I64(v) => u128::from(*v as u64),
        ConstExpr::F32(v) => u128::from(*v),
        ConstExpr::F64(v) => u128::from(*v),
        ConstExpr::V128(b) => u128::from_le_bytes(*b),
        ConstExpr::RefNull(_) => 0,
        ConstExpr::RefFunc(i) => {
            if *i as usize >= funcs.len {
                return Err(meta_err("ref.func index"));
            }
            // Only the address is computed (it is what a funcref slot
            // holds); in bounds of the instance's array (checked above).
            funcs.base.wrapping_add(*i as usize) as u128
        }
        ConstExpr::GlobalGet(g) => {
            let gi = *globals
                .get(*g as usize)
                .ok_or_else(|| meta_err("global.get index"))?;
            s.globals[gi as usize].cell.get_u128()
        }
        ConstExpr::Extended(ops) => u128::from(eval_extended(s, globals, ops)?),
    })
}

/// Evaluates an extended constant expression (integers only: its value is
/// an `i32`, zero-extended, or an `i64`) on a value stack, with wrapping
/// arithmetic. The compiler copied a validated expression, so a stack
/// that underflows or does not end with one value is a metadata error.
fn eval_extended(
    s: &StoreInner,
    globals: &[u32],
    ops: &[ConstOp],
) -> Result<u64, InstantiationError> {
    let mut stack: Vec<u64> = Vec::with_capacity(4);
    for op in ops {
        let v = match *op {
            ConstOp::I32Const(v) => u64::from(v as u32),
            ConstOp::I64Const(v) => v as u64,
            ConstOp::GlobalGet(g) => {
                let gi = *globals
                    .get(g as usize)
                    .ok_or_else(|| meta_err("global.get index"))?;
                s.globals
                    .get(gi as usize)
                    .ok_or_else(|| meta_err("global.get index"))?
                    .cell
                    .get_u64()
            }
            binary => {
                let (Some(b), Some(a)) = (stack.pop(), stack.pop()) else {
                    return Err(meta_err("constant expression stack"));
                };
                binary
                    .apply(a, b)
                    .ok_or_else(|| meta_err("constant expression operator"))?
            }
        };
        stack.push(v);
    }
    match stack.as_slice() {
        [v] => Ok(*v),
        _ => Err(meta_err("constant expression stack")),
    }
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
        ExportKind::Tag(i) => Extern::Tag(Tag {
            store: s.id,
            id: *inst.tags.get(i as usize)?,
        }),
    })
}
