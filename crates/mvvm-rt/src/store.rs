//! The store: owner of every instance, memory, table, global and host
//! function, and of the execution limits. Handles ([`Func`], [`Memory`],
//! [`Table`], [`Global`], [`Instance`](crate::Instance)) are small indices
//! into one store.
//!
//! # Ownership
//!
//! The store's contents ([`StoreInner`]) live in a
//! [`VmBox`](crate::vm_box::VmBox), not a `Box`: builtins reach them
//! through the base pointer kept in each instance's `InstanceHost`, and a
//! `Box` would be retagged as unique (invalidating that pointer) every time
//! the `Store` moves or is reborrowed. The same holds one level down for
//! everything generated code reads or writes: `VMLimits` (here), each
//! instance's `VMContext`, `VMFuncRef` array and pointer arrays
//! (`instance.rs`), `VMMemory` (`memory.rs`), `VMTable` (`table.rs`) and
//! global cells (`global.rs`) are `VmBox`es too.
//!
//! The invariant (see `vm_box.rs`): while a wasm frame of this store is
//! active, Rust reaches the store only through those base pointers (the
//! builtins, `call::call_raw`, `call::call_host`), deriving short-lived
//! references that never live across a call into wasm; outside wasm, the
//! usual `&Store`/`&mut Store` borrows apply, and entering wasm
//! (`call::call_func`) takes the base pointer afresh from `&mut Store`.

use crate::global::GlobalData;
use crate::instance::InstanceData;
use crate::memory::{LinearMemory, MemoryError, SharedMemory};
use crate::table::Table as TableData;
use crate::threads::{ThreadGroup, ThreadMember};
use crate::trap::Trap;
use crate::vm_box::VmBox;
use crate::vmctx::{VMFuncRef, VMLimits};
use mvvm_abi::meta::{FuncType, GlobalType, MemoryType, TableType, ValType};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default room given to wasm on the stack of the thread that calls into it.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 * 1024;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// A host function's body.
pub type HostFn = Box<dyn FnMut(&mut Caller<'_>, &[Val], &mut [Val]) -> Result<(), HostError>>;

/// A host function failed or asked the program to stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An error: the wasm call ends with it.
    #[error("{0}")]
    Message(String),
    /// The program asked to exit with this code (WASI `proc_exit`).
    #[error("exit with code {0}")]
    Exit(i32),
}

/// Why a call into wasm did not return values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// Wasm trapped.
    #[error("{0}")]
    Trap(Trap),
    /// A host function failed.
    #[error("host function failed: {0}")]
    Host(String),
    /// A host function requested exit.
    #[error("exit with code {0}")]
    Exit(i32),
    /// The arguments do not match the function's parameters.
    #[error("bad arguments: {0}")]
    BadArgs(String),
    /// No export of that name (or not a function).
    #[error("no exported function `{0}`")]
    NoSuchExport(String),
    /// The function cannot be called from the host (it has no array
    /// trampoline: only exported functions and the start function have one).
    #[error("function #{0} cannot be called from the host")]
    NotCallable(u32),
}

/// A wasm value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `f32`, as bits.
    F32(u32),
    /// `f64`, as bits.
    F64(u64),
    /// `v128`, as a little-endian integer: byte `i` of the vector (lane
    /// memory order) is bits `8i..8i+8`, so `to_le_bytes` gives the bytes
    /// as wasm stores them.
    V128(u128),
    /// `funcref` (`None` is `ref.null func`).
    FuncRef(Option<Func>),
    /// `externref` (`None` is `ref.null extern`).
    ExternRef(Option<u32>),
    /// `exnref` (`None` is `ref.null exn`): the raw handle of an exception
    /// of the store, opaque to the host (a handle that names no live
    /// exception makes `throw_ref` trap with a null reference).
    ExnRef(Option<u64>),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
            Val::ExnRef(_) => ValType::ExnRef,
        }
    }

    /// The zero / null value of `ty`.
    pub fn default_for(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(0),
            ValType::FuncRef => Val::FuncRef(None),
            ValType::ExternRef => Val::ExternRef(None),
            ValType::ExnRef => Val::ExnRef(None),
        }
    }
}

/// Writes the raw form `raw` of a value of type `ty` into its
/// [`ValType::slots`] slots at the start of `out` (a `v128` low half
/// first), as array calls, host calls and frames hold it. False when
/// `out` is too short.
pub(crate) fn raw_to_slots(raw: u128, ty: ValType, out: &mut [u64]) -> bool {
    match (ty, out) {
        (ValType::V128, [lo, hi, ..]) => {
            (*lo, *hi) = (raw as u64, (raw >> 64) as u64);
            true
        }
        (ValType::V128, _) | (_, []) => false,
        (_, [slot, ..]) => {
            *slot = raw as u64;
            true
        }
    }
}

/// The raw form of a value of type `ty` from its slots at the start of
/// `slots` (missing slots read as zero).
pub(crate) fn raw_from_slots(slots: &[u64], ty: ValType) -> u128 {
    let at = |i: usize| u128::from(slots.get(i).copied().unwrap_or(0));
    match ty {
        ValType::V128 => at(0) | (at(1) << 64),
        _ => at(0),
    }
}

/// Slots that values of `types` take together (see [`ValType::slots`]).
pub(crate) fn slot_count(types: &[ValType]) -> usize {
    types.iter().map(|t| t.slots()).sum()
}

/// Identifies what a [`Func`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FuncKind {
    /// Host function `n` of the store.
    Host(u32),
    /// Function `index` of instance `instance` (possibly one it imports).
    Wasm { instance: u32, index: u32 },
}

/// A function: defined by the host or by an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) kind: FuncKind,
}

/// A linear memory of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Memory {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

/// A table of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

/// A global of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Global {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

/// An exception tag of a store (exception handling): defined by an
/// instance, exported and imported like a global. Two `Tag`s are the same
/// tag exactly when they are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    pub(crate) store: u64,
    pub(crate) id: crate::exception::TagId,
}

impl Tag {
    /// The tag's type: its parameters are the exception's payload.
    pub fn ty(&self, store: &impl AsStore) -> FuncType {
        let s = store.store_inner();
        check_store(s, self.store);
        s.tags.ty(self.id).cloned().unwrap_or(FuncType {
            params: Vec::new(),
            results: Vec::new(),
        })
    }
}

/// Anything an instance can import or export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A memory.
    Memory(Memory),
    /// A table.
    Table(Table),
    /// A global.
    Global(Global),
    /// An exception tag.
    Tag(Tag),
}

pub(crate) struct HostFuncData {
    pub ty: FuncType,
    pub f: Option<HostFn>,
}

/// The contents of a [`Store`]; reachable by builtins through raw pointers,
/// hence in a `VmBox` (see the module documentation). Not constructible
/// outside the crate.
#[doc(hidden)]
pub struct StoreInner {
    pub(crate) id: u64,
    pub(crate) memories: Vec<LinearMemory>,
    pub(crate) tables: Vec<TableData>,
    pub(crate) globals: Vec<GlobalData>,
    pub(crate) host_funcs: Vec<HostFuncData>,
    pub(crate) instances: Vec<InstanceData>,
    /// Limits shared by every instance of the store (each `VMContext`
    /// holds the base pointer).
    pub(crate) limits: VmBox<VMLimits>,
    /// Backing store of `limits.frame_slots`: checkpoint code writes the
    /// frame it saves here and `RewindFrame` the frame it restores.
    pub(crate) frame_slots: Vec<u64>,
    /// Address of every `VMFuncRef` handed to wasm -> the function.
    pub(crate) funcrefs: HashMap<usize, Func>,
    pub(crate) max_wasm_stack: usize,
    /// Nesting depth of host -> wasm entries.
    pub(crate) depth: u32,
    pub(crate) data: Option<Box<dyn Any>>,
    /// How a checkpoint saves `data` (set together with it by
    /// `Store::set_host_state`, cleared by `set_data`); `None`: the data
    /// has no state to save.
    pub(crate) save_data: Option<crate::checkpoint::host::SaveFn>,
    /// Checkpoint control (trigger, probe counts, frames being saved or
    /// restored); `None` when no checkpoint session is armed.
    pub(crate) ckpt: Option<Box<crate::checkpoint::control::Control>>,
    /// Every tag defined by an instance of the store (see `exception.rs`).
    pub(crate) tags: crate::exception::Tags,
    /// Thrown exceptions, which `exnref` handles name.
    pub(crate) exceptions: crate::exception::ExceptionTable,
    /// The store's membership of its program's threads (wasi-threads),
    /// if it is one of them. Last: fields drop in order, and a thread
    /// must count as alive until its memories (its references to a
    /// shared memory) are gone.
    pub(crate) thread: Option<ThreadMember>,
}

/// Owns instances and everything they use; see the module documentation.
pub struct Store {
    pub(crate) inner: VmBox<StoreInner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.inner.id)
            .field("instances", &self.inner.instances.len())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store {
            inner: VmBox::new(StoreInner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                host_funcs: Vec::new(),
                instances: Vec::new(),
                limits: VmBox::new(VMLimits::default()),
                frame_slots: Vec::new(),
                funcrefs: HashMap::new(),
                max_wasm_stack: DEFAULT_MAX_WASM_STACK,
                depth: 0,
                data: None,
                save_data: None,
                ckpt: None,
                tags: Default::default(),
                exceptions: Default::default(),
                thread: None,
            }),
        }
    }

    /// Sets how many bytes of the calling thread's stack wasm may use
    /// (measured from where the host enters wasm). The thread's stack must
    /// be larger than this, with room to spare for host functions.
    pub fn set_max_wasm_stack(&mut self, bytes: usize) {
        self.inner.max_wasm_stack = bytes;
    }

    /// Attaches user data (WASI state, say) that host functions reach
    /// through [`Caller::data_mut`]. Replaces any previous data.
    pub fn set_data<T: Any>(&mut self, data: T) {
        self.inner.data = Some(Box::new(data));
        self.inner.save_data = None;
    }

    /// The user data, if it is a `T`.
    pub fn data<T: Any>(&self) -> Option<&T> {
        self.inner.data.as_ref()?.downcast_ref()
    }

    /// Number of exceptions the store keeps (thrown and not yet freed: a
    /// handler has not taken them, or an `exnref` to them escaped to wasm,
    /// which keeps them for the store's life). For tests and diagnostics.
    pub fn live_exceptions(&self) -> usize {
        self.inner.exceptions.live_count()
    }

    /// The user data, writable, if it is a `T`.
    pub fn data_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.inner.data.as_mut()?.downcast_mut()
    }

    /// Makes the store one thread of a program ([`ThreadGroup`]): its wasm
    /// then stops when the group is terminated, and a checkpoint of it
    /// waits while other threads of the group are alive. The member
    /// counts as alive until the store is dropped.
    pub fn set_thread(&mut self, member: ThreadMember) {
        self.inner.thread = Some(member);
    }

    /// The thread group the store belongs to, if any.
    pub fn thread_group(&self) -> Option<ThreadGroup> {
        self.inner.thread.as_ref().map(ThreadMember::group)
    }
}

/// Access to a store's contents, from the host ([`Store`]) or from inside a
/// host function ([`Caller`]).
pub trait AsStore {
    #[doc(hidden)]
    fn store_inner(&self) -> &StoreInner;
    #[doc(hidden)]
    fn store_inner_mut(&mut self) -> &mut StoreInner;
}

impl AsStore for Store {
    fn store_inner(&self) -> &StoreInner {
        &self.inner
    }
    fn store_inner_mut(&mut self) -> &mut StoreInner {
        &mut self.inner
    }
}

/// What a host function sees of its caller.
pub struct Caller<'a> {
    pub(crate) store: &'a mut StoreInner,
    /// The calling instance (none when the host called the function itself).
    pub(crate) instance: Option<u32>,
}

impl AsStore for Caller<'_> {
    fn store_inner(&self) -> &StoreInner {
        self.store
    }
    fn store_inner_mut(&mut self) -> &mut StoreInner {
        self.store
    }
}

/// How a host function reaches the memory of its caller.
#[derive(Debug)]
pub enum MemoryAccess<'a> {
    /// The memory is this store's alone: its bytes, as a slice.
    Exclusive(&'a mut [u8]),
    /// A shared memory that other threads may be using: reached by copying
    /// through the handle, never as a slice.
    Shared(SharedMemory),
}

impl Caller<'_> {
    /// Index in the store of memory 0 of the calling instance.
    fn memory0(&self) -> Option<usize> {
        let inst = self.store.instances.get(self.instance? as usize)?;
        inst.memories.first().map(|&m| m as usize)
    }

    /// Memory 0 of the calling instance at its current length, if no other
    /// thread can use it (see [`Caller::memory_access`] for the general
    /// case).
    pub fn memory(&mut self) -> Option<&mut [u8]> {
        let m = self.memory0()?;
        self.store.memories[m].data_mut()
    }

    /// Memory 0 of the calling instance, whether it is this store's alone
    /// or shared with other threads.
    pub fn memory_access(&mut self) -> Option<MemoryAccess<'_>> {
        let m = self.memory0()?;
        Some(memory_access(&mut self.store.memories[m]))
    }

    /// Memory 0 of the calling instance as a handle other threads may use,
    /// if it is a shared memory (wasi-threads gives it to a new thread).
    pub fn shared_memory(&mut self) -> Option<SharedMemory> {
        let m = self.memory0()?;
        self.store.memories[m].share()
    }

    /// The store's thread group, if it is a thread of one.
    pub fn thread_group(&self) -> Option<ThreadGroup> {
        self.store.thread.as_ref().map(ThreadMember::group)
    }

    /// An export of the calling instance.
    pub fn get_export(&self, name: &str) -> Option<Extern> {
        crate::instance::export_of(self.store, self.instance?, name)
    }

    /// The store's user data, if it is a `T`.
    pub fn data<T: Any>(&self) -> Option<&T> {
        self.store.data.as_ref()?.downcast_ref()
    }

    /// [`Store::live_exceptions`], from inside a host function.
    pub fn live_exceptions(&self) -> usize {
        self.store.exceptions.live_count()
    }

    /// The store's user data, writable, if it is a `T`.
    pub fn data_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.store.data.as_mut()?.downcast_mut()
    }

    /// Both the user data and memory 0 of the calling instance (if no
    /// other thread can use it), for host functions that need them at
    /// once.
    pub fn data_and_memory<T: Any>(&mut self) -> (Option<&mut T>, Option<&mut [u8]>) {
        let mem = self.memory0();
        let data = self.store.data.as_mut().and_then(|d| d.downcast_mut());
        let mem = mem.and_then(|m| self.store.memories[m].data_mut());
        (data, mem)
    }

    /// Both the user data and memory 0 of the calling instance, shared or
    /// not (WASI).
    pub fn data_and_memory_access<T: Any>(&mut self) -> (Option<&mut T>, Option<MemoryAccess<'_>>) {
        let mem = self.memory0();
        let data = self.store.data.as_mut().and_then(|d| d.downcast_mut());
        let mem = mem.map(|m| memory_access(&mut self.store.memories[m]));
        (data, mem)
    }
}

/// How host code reaches `m`: as a slice while it is the store's alone,
/// else through a handle.
fn memory_access(m: &mut LinearMemory) -> MemoryAccess<'_> {
    if m.is_exclusive() {
        // `data_mut` is `Some` exactly when the memory is exclusive.
        return MemoryAccess::Exclusive(m.data_mut().unwrap_or_default());
    }
    match m.share() {
        Some(h) => MemoryAccess::Shared(h),
        // Only a shared memory can be used by another thread, so an
        // unshared one is always exclusive; an empty view all the same.
        None => MemoryAccess::Exclusive(&mut []),
    }
}

fn check_store(store: &StoreInner, id: u64) {
    assert_eq!(
        store.id, id,
        "handle used with a store it does not belong to"
    );
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        // The checkpoint control first: a periodic snapshot still being
        // written by a thread reads the memories, which the fields below
        // drop (`checkpoint/background.rs`: dropping it waits for the
        // writer's job and joins the writer thread).
        drop(self.ckpt.take());
    }
}

impl StoreInner {
    /// Grows the checkpoint frame buffer to at least `slots` slots and
    /// points `limits.frame_slots` at it. Called when a module is
    /// instantiated, before any of its code runs (never while wasm code of
    /// this store is between writing a frame and handing it over).
    pub(crate) fn reserve_frame_slots(&mut self, slots: usize) {
        if self.frame_slots.len() < slots {
            self.frame_slots = vec![0; slots];
        }
        self.limits.frame_slots = self.frame_slots.as_mut_ptr();
    }

    /// The raw form of `v` as generated code stores it (in the low 64
    /// bits but for a `v128`: what a global cell holds, or, split by
    /// [`raw_to_slots`], value slots); `None` for a host function
    /// reference (which has no `VMFuncRef` of its own).
    pub(crate) fn val_to_raw(&self, v: Val) -> Option<u128> {
        Some(match v {
            Val::I32(x) => u128::from(x as u32),
            Val::I64(x) => u128::from(x as u64),
            Val::F32(x) => u128::from(x),
            Val::F64(x) => u128::from(x),
            Val::V128(x) => x,
            Val::FuncRef(None) => 0,
            Val::FuncRef(Some(f)) => self.funcref_ptr(f)? as u128,
            Val::ExternRef(None) => 0,
            Val::ExternRef(Some(n)) => u128::from(n) + 1,
            Val::ExnRef(h) => u128::from(h.unwrap_or(0)),
        })
    }

    /// Reads a raw value of type `ty` (see [`StoreInner::val_to_raw`]).
    pub(crate) fn val_from_raw(&self, raw: u128, ty: ValType) -> Val {
        let low = raw as u64;
        match ty {
            ValType::I32 => Val::I32(low as u32 as i32),
            ValType::I64 => Val::I64(low as i64),
            ValType::F32 => Val::F32(low as u32),
            ValType::F64 => Val::F64(low),
            ValType::V128 => Val::V128(raw),
            ValType::FuncRef => Val::FuncRef(if low == 0 {
                None
            } else {
                self.funcrefs.get(&(low as usize)).copied()
            }),
            ValType::ExternRef => Val::ExternRef(if low == 0 {
                None
            } else {
                Some((low - 1) as u32)
            }),
            ValType::ExnRef => Val::ExnRef((low != 0).then_some(low)),
        }
    }

    /// `vals` (of types `tys`, already checked) written into `out` as
    /// slots; `Err(i)` when value `i` is a host function reference or
    /// `out` is too short.
    pub(crate) fn vals_to_slots(
        &self,
        vals: &[Val],
        tys: &[ValType],
        out: &mut [u64],
    ) -> Result<(), usize> {
        let mut k = 0;
        for (i, (v, t)) in vals.iter().zip(tys).enumerate() {
            let raw = self.val_to_raw(*v).ok_or(i)?;
            if !raw_to_slots(raw, *t, out.get_mut(k..).unwrap_or_default()) {
                return Err(i);
            }
            k += t.slots();
        }
        Ok(())
    }

    /// The values of types `tys` held in `slots`.
    pub(crate) fn vals_from_slots(&self, slots: &[u64], tys: &[ValType]) -> Vec<Val> {
        let mut k = 0;
        tys.iter()
            .map(|t| {
                let v =
                    self.val_from_raw(raw_from_slots(slots.get(k..).unwrap_or_default(), *t), *t);
                k += t.slots();
                v
            })
            .collect()
    }

    /// The `VMFuncRef` of a wasm function.
    pub(crate) fn funcref_ptr(&self, f: Func) -> Option<*const VMFuncRef> {
        match f.kind {
            FuncKind::Host(_) => None,
            FuncKind::Wasm { instance, index } => {
                let inst = self.instances.get(instance as usize)?;
                inst.funcs
                    .get(index as usize)
                    .map(|r| r as *const VMFuncRef)
            }
        }
    }

    /// The signature of `f`.
    pub(crate) fn func_type(&self, f: Func) -> FuncType {
        match f.kind {
            FuncKind::Host(h) => self.host_funcs[h as usize].ty.clone(),
            FuncKind::Wasm { instance, index } => {
                let meta = &self.instances[instance as usize].module.inner.meta;
                meta.types[meta.funcs[index as usize] as usize].clone()
            }
        }
    }
}

impl Func {
    /// Defines a host function of type `ty` in `store`.
    pub fn host(
        store: &mut Store,
        ty: FuncType,
        f: impl FnMut(&mut Caller<'_>, &[Val], &mut [Val]) -> Result<(), HostError> + 'static,
    ) -> Func {
        let inner = &mut store.inner;
        inner.host_funcs.push(HostFuncData {
            ty,
            f: Some(Box::new(f)),
        });
        Func {
            store: inner.id,
            kind: FuncKind::Host(inner.host_funcs.len() as u32 - 1),
        }
    }

    /// The function's signature.
    pub fn ty(&self, store: &impl AsStore) -> FuncType {
        let s = store.store_inner();
        check_store(s, self.store);
        s.func_type(*self)
    }

    /// Calls the function with `args`, returning its results.
    pub fn call(&self, store: &mut Store, args: &[Val]) -> Result<Vec<Val>, RunError> {
        check_store(&store.inner, self.store);
        crate::call::call_func(store, *self, args)
    }
}

impl Memory {
    /// A new memory of type `ty` (for host modules such as `spectest`).
    pub fn new(store: &mut Store, ty: MemoryType) -> Result<Memory, MemoryError> {
        let m = LinearMemory::new(ty)?;
        store.inner.memories.push(m);
        Ok(Memory {
            store: store.inner.id,
            index: store.inner.memories.len() as u32 - 1,
        })
    }

    /// Its type, with the current size as minimum.
    pub fn ty(&self, store: &impl AsStore) -> MemoryType {
        let s = store.store_inner();
        check_store(s, self.store);
        let m = &s.memories[self.index as usize];
        let mut ty = m.ty();
        ty.limits.min = m.pages();
        ty
    }

    /// Current size in pages.
    pub fn size_pages(&self, store: &impl AsStore) -> u64 {
        let s = store.store_inner();
        check_store(s, self.store);
        s.memories[self.index as usize].pages()
    }

    /// The memory's bytes.
    ///
    /// # Panics
    /// When the memory is shared with other threads (another store, or a
    /// [`SharedMemory`] handle): its bytes are then reached by copying,
    /// through [`Memory::shared`].
    pub fn data<'a>(&self, store: &'a impl AsStore) -> &'a [u8] {
        let s = store.store_inner();
        check_store(s, self.store);
        s.memories[self.index as usize]
            .data()
            .expect("Memory::data on a memory shared with other threads (use Memory::shared)")
    }

    /// The memory's bytes, writable.
    ///
    /// # Panics
    /// As [`Memory::data`].
    pub fn data_mut<'a>(&self, store: &'a mut impl AsStore) -> &'a mut [u8] {
        let s = store.store_inner_mut();
        check_store(s, self.store);
        s.memories[self.index as usize]
            .data_mut()
            .expect("Memory::data_mut on a memory shared with other threads (use Memory::shared)")
    }

    /// A handle on the memory that other threads may use, if it is a
    /// shared memory (`None` otherwise).
    pub fn shared(&self, store: &mut impl AsStore) -> Option<SharedMemory> {
        let s = store.store_inner_mut();
        check_store(s, self.store);
        s.memories[self.index as usize].share()
    }

    /// Grows by `delta` pages; the old size, or `None`.
    pub fn grow(&self, store: &mut impl AsStore, delta: u64) -> Option<u64> {
        let s = store.store_inner_mut();
        check_store(s, self.store);
        s.memories[self.index as usize].grow(delta)
    }
}

impl SharedMemory {
    /// The memory as a [`Memory`] of `store` (to import it into an
    /// instance of that store: each thread of a program imports the same
    /// shared memory into its own store).
    pub fn attach(&self, store: &mut Store) -> Memory {
        store.inner.memories.push(LinearMemory::from_shared(self));
        Memory {
            store: store.inner.id,
            index: store.inner.memories.len() as u32 - 1,
        }
    }
}

impl Table {
    /// A new table of type `ty` with every element `init`.
    pub fn new(store: &mut Store, ty: TableType, init: Val) -> Result<Table, RunError> {
        let is_ref = matches!(
            ty.elem,
            ValType::FuncRef | ValType::ExternRef | ValType::ExnRef
        );
        if !is_ref || init.ty() != ty.elem {
            return Err(RunError::BadArgs(format!(
                "table of {:?} initialised with {:?}",
                ty.elem,
                init.ty()
            )));
        }
        let raw = store
            .inner
            .val_to_raw(init)
            .ok_or_else(|| RunError::BadArgs("host function as table element".into()))?
            as u64;
        let t = TableData::new(ty, raw)
            .ok_or_else(|| RunError::BadArgs(format!("table of {} elements", ty.limits.min)))?;
        store.inner.tables.push(t);
        Ok(Table {
            store: store.inner.id,
            index: store.inner.tables.len() as u32 - 1,
        })
    }

    /// Its type, with the current size as minimum.
    pub fn ty(&self, store: &impl AsStore) -> TableType {
        let s = store.store_inner();
        check_store(s, self.store);
        let t = &s.tables[self.index as usize];
        let mut ty = t.ty();
        ty.limits.min = t.len();
        ty
    }

    /// Number of elements.
    pub fn size(&self, store: &impl AsStore) -> u64 {
        let s = store.store_inner();
        check_store(s, self.store);
        s.tables[self.index as usize].len()
    }

    /// Element `i`, or `None` out of bounds.
    pub fn get(&self, store: &impl AsStore, i: u64) -> Option<Val> {
        let s = store.store_inner();
        check_store(s, self.store);
        let t = &s.tables[self.index as usize];
        let raw = *t.elems().get(usize::try_from(i).ok()?)?;
        Some(s.val_from_raw(u128::from(raw), t.ty().elem))
    }

    /// Sets element `i`; false when out of bounds or of the wrong type.
    pub fn set(&self, store: &mut impl AsStore, i: u64, v: Val) -> bool {
        let s = store.store_inner_mut();
        check_store(s, self.store);
        if v.ty() != s.tables[self.index as usize].ty().elem {
            return false;
        }
        // A reference (the type matches the table's): its low 64 bits.
        let Some(raw) = s.val_to_raw(v).map(|r| r as u64) else {
            return false;
        };
        match s.tables[self.index as usize]
            .elems_mut()
            .get_mut(i as usize)
        {
            Some(slot) => {
                *slot = raw;
                true
            }
            None => false,
        }
    }
}

impl Global {
    /// A new global of type `ty` holding `v`.
    pub fn new(store: &mut Store, ty: GlobalType, v: Val) -> Result<Global, RunError> {
        if v.ty() != ty.ty {
            return Err(RunError::BadArgs(format!(
                "global of type {:?} initialised with {:?}",
                ty.ty,
                v.ty()
            )));
        }
        let raw = store
            .inner
            .val_to_raw(v)
            .ok_or_else(|| RunError::BadArgs("host function in a global".into()))?;
        store.inner.globals.push(GlobalData::new(ty, raw));
        Ok(Global {
            store: store.inner.id,
            index: store.inner.globals.len() as u32 - 1,
        })
    }

    /// Its type.
    pub fn ty(&self, store: &impl AsStore) -> GlobalType {
        let s = store.store_inner();
        check_store(s, self.store);
        s.globals[self.index as usize].ty
    }

    /// Its current value.
    pub fn get(&self, store: &impl AsStore) -> Val {
        let s = store.store_inner();
        check_store(s, self.store);
        let g = &s.globals[self.index as usize];
        s.val_from_raw(g.cell.get_u128(), g.ty.ty)
    }

    /// Sets its value (it must be mutable and `v` of its type).
    pub fn set(&self, store: &mut impl AsStore, v: Val) -> Result<(), RunError> {
        let s = store.store_inner_mut();
        check_store(s, self.store);
        let ty = s.globals[self.index as usize].ty;
        if !ty.mutable || v.ty() != ty.ty {
            return Err(RunError::BadArgs("immutable global or wrong type".into()));
        }
        let raw = s
            .val_to_raw(v)
            .ok_or_else(|| RunError::BadArgs("host function in a global".into()))?;
        s.globals[self.index as usize].cell.set_u128(raw);
        Ok(())
    }
}
