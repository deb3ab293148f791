//! The runtime functions generated code calls through `vmctx.builtins`,
//! in exactly [`Builtin::ALL`] order.
//!
//! Builtins that may trap are entered through C shims (`native/entry.c`):
//! the Rust half below returns a status (0, or a trap code) and the shim
//! then unwinds with `longjmp`, so the `longjmp` skips no frame of these
//! Rust halves. Builtins that cannot trap are plain `extern "C"` functions.
//! One does skip its own frame: `rewind_frame` raises after every value of
//! its frame has been moved out or dropped (nothing is leaked or left
//! half-updated). A trap in wasm that a host function entered through
//! `host_call` never crosses `host_call`: it ends at the nested entry in
//! `call::call_raw`, which returns it as an error.
//!
//! # The store
//!
//! Builtins reach the store through [`host_of`], which returns the base
//! pointer kept in the instance's `InstanceHost` (see `vm_box.rs`). Each
//! builtin derives one reference from it for its own duration (`store_of`)
//! and holds none across anything that can enter wasm again (`host_call`).

use crate::call::{PendingError, call_raw, set_pending};
use crate::instance::InstanceHost;
use crate::store::{FuncKind, RunError, StoreInner};
use crate::vmctx::{VMContext, VMTable};
use mvvm_abi::TrapCode;
use mvvm_abi::builtins::{BUILTIN_COUNT, Builtin};
use mvvm_abi::checkpoint::HOST_CALL_UNWIND;
use mvvm_abi::vmctx::WASM_PAGE_SIZE;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

unsafe extern "C" {
    fn mvvm_b_raise(vmctx: *mut VMContext, code: i32);
    fn mvvm_b_memory_fill(vmctx: *mut VMContext, dst: u32, val: u32, len: u32);
    fn mvvm_b_memory_copy(vmctx: *mut VMContext, dst: u32, src: u32, len: u32);
    fn mvvm_b_memory_init(vmctx: *mut VMContext, seg: u32, dst: u32, src: u32, len: u32);
    fn mvvm_b_table_fill(vmctx: *mut VMContext, table: u32, dst: u32, val: u64, len: u32);
    fn mvvm_b_table_copy(vmctx: *mut VMContext, dt: u32, st: u32, dst: u32, src: u32, len: u32);
    fn mvvm_b_table_init(vmctx: *mut VMContext, table: u32, seg: u32, dst: u32, src: u32, len: u32);
    fn mvvm_b_throw(vmctx: *mut VMContext, tag: u32, values: *const u64);
    fn mvvm_b_throw_ref(vmctx: *mut VMContext, exn: u64);
    fn mvvm_b_memory_atomic_wait32(vmctx: *mut VMContext, addr: u64, exp: u32, t: i64) -> i32;
    fn mvvm_b_memory_atomic_wait64(vmctx: *mut VMContext, addr: u64, exp: u64, t: i64) -> i32;
    fn mvvm_b_memory_atomic_notify(vmctx: *mut VMContext, addr: u64, count: u32) -> i32;
}

static TABLE: LazyLock<[usize; BUILTIN_COUNT]> = LazyLock::new(|| {
    let mut t = [0usize; BUILTIN_COUNT];
    for (i, b) in Builtin::ALL.iter().enumerate() {
        t[i] = match b {
            Builtin::MemoryGrow => memory_grow as *const () as usize,
            Builtin::MemoryFill => mvvm_b_memory_fill as *const () as usize,
            Builtin::MemoryCopy => mvvm_b_memory_copy as *const () as usize,
            Builtin::MemoryInit => mvvm_b_memory_init as *const () as usize,
            Builtin::DataDrop => data_drop as *const () as usize,
            Builtin::TableGrow => table_grow as *const () as usize,
            Builtin::TableFill => mvvm_b_table_fill as *const () as usize,
            Builtin::TableCopy => mvvm_b_table_copy as *const () as usize,
            Builtin::TableInit => mvvm_b_table_init as *const () as usize,
            Builtin::ElemDrop => elem_drop as *const () as usize,
            Builtin::HostCall => host_call as *const () as usize,
            Builtin::Raise => mvvm_b_raise as *const () as usize,
            // Checkpoint builtins: only code compiled with a checkpoint
            // policy calls them (see `crate::checkpoint`).
            Builtin::Probe => probe as *const () as usize,
            Builtin::UnwindFrame => unwind_frame as *const () as usize,
            Builtin::ProbeWalk => crate::frame_walk::probe_walk_entry as *const () as usize,
            Builtin::RewindFrame => rewind_frame as *const () as usize,
            // Exception handling (see `crate::throw`).
            Builtin::Throw => mvvm_b_throw as *const () as usize,
            Builtin::ThrowRef => mvvm_b_throw_ref as *const () as usize,
            Builtin::ExnDrop => exn_drop as *const () as usize,
            // Threads: wait and notify (see `crate::atomic_wait`).
            Builtin::MemoryAtomicWait32 => mvvm_b_memory_atomic_wait32 as *const () as usize,
            Builtin::MemoryAtomicWait64 => mvvm_b_memory_atomic_wait64 as *const () as usize,
            Builtin::MemoryAtomicNotify => mvvm_b_memory_atomic_notify as *const () as usize,
            // Developer option `frame_map`: the same calls, walking the
            // wasm frames when they start an unwind (see
            // `crate::frame_walk`).
            Builtin::HostCallWalk => crate::frame_walk::host_call_walk_entry as *const () as usize,
            Builtin::MemoryAtomicWait32Walk => {
                crate::frame_walk::wait32_walk_entry as *const () as usize
            }
            Builtin::MemoryAtomicWait64Walk => {
                crate::frame_walk::wait64_walk_entry as *const () as usize
            }
            Builtin::UnwindWalked => unwind_walked as *const () as usize,
            Builtin::ResumeCode => resume_code as *const () as usize,
        };
    }
    t
});

/// The builtin table every `VMContext` points to.
pub(crate) fn table() -> &'static [usize; BUILTIN_COUNT] {
    &TABLE
}

const OK: i32 = 0;
const MEM_OOB: i32 = TrapCode::MemoryOutOfBounds as i32;
const TABLE_OOB: i32 = TrapCode::TableOutOfBounds as i32;

/// The store (its base pointer) and instance index behind a `VMContext`.
///
/// # Safety
/// `vmctx` must be the context of a live instance, passed by generated
/// code that the instance's store is running.
pub(crate) unsafe fn host_of(vmctx: *mut VMContext) -> (*mut StoreInner, u32) {
    // SAFETY: per the contract above, `vmctx` is a live, aligned
    // `VMContext` whose `host` is the base pointer of the instance's
    // `InstanceHost` (set in `instance::wire_vmctx`, freed only with the
    // instance, which outlives its running code); both are only read.
    unsafe {
        let h = (*vmctx).host as *const InstanceHost;
        ((*h).store, (*h).instance)
    }
}

/// [`host_of`], with the store as a reference for the builtin's duration.
///
/// # Safety
/// As [`host_of`]; besides, the reference must not be used after anything
/// that can run wasm again (the builtin returns, or calls into wasm).
pub(crate) unsafe fn store_of<'a>(vmctx: *mut VMContext) -> (&'a mut StoreInner, u32) {
    // SAFETY: `host_of`'s contract is the caller's. The base pointer is
    // valid (the store outlives its running code) and no other reference
    // into the store is in use: wasm was entered by `call::call_raw`, which
    // holds none across the call (the invariant of `vm_box.rs`), and this
    // reference dies before wasm runs again (caller).
    unsafe {
        let (s, i) = host_of(vmctx);
        (&mut *s, i)
    }
}

/// Whether `start..start+len` fits in `size`. Computed in `u64`: the end
/// of a 32-bit access may be 2^32 exactly (the last byte of a 4 GiB
/// memory), which a `u32` sum would wrap to 0.
fn in_bounds(start: u32, len: u32, size: u64) -> bool {
    u64::from(start) + u64::from(len) <= size
}

/// `start..start+len` as indices into something of `size` elements, or
/// `None` when it does not fit (the bounds computed in `u64`, see
/// [`in_bounds`]).
fn range(start: u32, len: u32, size: usize) -> Option<std::ops::Range<usize>> {
    let end = u64::from(start) + u64::from(len);
    if end > size as u64 {
        return None;
    }
    // Both fit: end <= size, a usize.
    Some(start as usize..end as usize)
}

extern "C" fn memory_grow(vmctx: *mut VMContext, delta: u32) -> i32 {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, i) = unsafe { store_of(vmctx) };
    let Some(&m) = s.instances[i as usize].memories.first() else {
        return -1;
    };
    match s.memories[m as usize].grow(delta as u64) {
        Some(old) => old as i32,
        None => -1,
    }
}

/// The current length of the memory behind `m`: an atomic load, since
/// another thread may be growing a shared memory.
///
/// # Safety
/// `m` must be the live `VMMemory` of a memory of the running instance.
unsafe fn vm_length(m: *mut crate::vmctx::VMMemory) -> u64 {
    // SAFETY: live and aligned (contract; `repr(C)` `u64` field), and
    // every concurrent access to `length` is atomic.
    unsafe { AtomicU64::from_ptr(&raw mut (*m).length).load(Ordering::SeqCst) }
}

/// Rust half of `memory.fill`.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_memory_fill(vmctx: *mut VMContext, dst: u32, val: u32, len: u32) -> i32 {
    // SAFETY: generated code passes its own live vmctx, whose `memory` is
    // null or the base pointer of memory 0's `VMMemory` (checked for null);
    // the range is checked against its `length`, all of which is mapped
    // read-write (or write-tracked: faults are resolved and retried); `u8`
    // needs no alignment; no Rust reference into linear memory is alive
    // while wasm runs.
    unsafe {
        let m = (*vmctx).memory;
        if m.is_null() || !in_bounds(dst, len, vm_length(m)) {
            return MEM_OOB;
        }
        std::ptr::write_bytes((*m).base.add(dst as usize), val as u8, len as usize);
    }
    OK
}

/// Rust half of `memory.copy`.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_memory_copy(vmctx: *mut VMContext, dst: u32, src: u32, len: u32) -> i32 {
    // SAFETY: as in `mvvm_rt_memory_fill`, for both ranges (checked);
    // `copy` allows them to overlap.
    unsafe {
        let m = (*vmctx).memory;
        if m.is_null() || !in_bounds(dst, len, vm_length(m)) || !in_bounds(src, len, vm_length(m)) {
            return MEM_OOB;
        }
        let b = (*m).base;
        std::ptr::copy(b.add(src as usize), b.add(dst as usize), len as usize);
    }
    OK
}

/// Rust half of `memory.init`.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_memory_init(
    vmctx: *mut VMContext,
    seg: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> i32 {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, i) = unsafe { store_of(vmctx) };
    let inst = &s.instances[i as usize];
    let bytes: &[u8] = match inst.data_dropped.get(seg as usize) {
        Some(false) => &inst.module.inner.meta.data[seg as usize].bytes,
        _ => &[],
    };
    let Some(from) = range(src, len, bytes.len()) else {
        return MEM_OOB;
    };
    let Some(&m) = inst.memories.first() else {
        return MEM_OOB;
    };
    let mem = &s.memories[m as usize];
    if !in_bounds(dst, len, mem.pages() * WASM_PAGE_SIZE) {
        return MEM_OOB;
    }
    if len == 0 {
        // In bounds, nothing to copy (the segment may be dropped).
        return OK;
    }
    // A raw copy, not a slice: other threads may run on a shared memory.
    // The bounds were checked above against a length that never shrinks.
    if !mem.write_at(u64::from(dst), &bytes[from]) {
        return MEM_OOB;
    }
    OK
}

extern "C" fn data_drop(vmctx: *mut VMContext, seg: u32) {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, i) = unsafe { store_of(vmctx) };
    if let Some(d) = s.instances[i as usize].data_dropped.get_mut(seg as usize) {
        *d = true;
    }
}

extern "C" fn table_grow(vmctx: *mut VMContext, table: u32, init: u64, delta: u32) -> i32 {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, i) = unsafe { store_of(vmctx) };
    let Some(&t) = s.instances[i as usize].tables.get(table as usize) else {
        return -1;
    };
    match s.tables[t as usize].grow(delta as u64, init) {
        Some(old) => old as i32,
        None => -1,
    }
}

/// The `VMTable` of table `table` of the instance.
///
/// # Safety
/// `vmctx` must be a live instance's context and `table` a valid index.
unsafe fn vm_table(vmctx: *mut VMContext, table: u32) -> *mut VMTable {
    // SAFETY: per the contract, `vmctx` is live and aligned and its
    // `tables` array (a `VmBox` of the instance) has an entry per table
    // index: the base pointer of that table's `VMTable`.
    unsafe { *(*vmctx).tables.add(table as usize) }
}

/// Rust half of `table.fill`.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_table_fill(
    vmctx: *mut VMContext,
    table: u32,
    dst: u32,
    val: u64,
    len: u32,
) -> i32 {
    // SAFETY: validated module: `table` exists, so `t` is a live `VMTable`
    // whose `elements` has `length` initialised, aligned `u64`s; the range
    // is checked against it; no Rust reference into the elements is alive
    // while wasm runs.
    unsafe {
        let t = vm_table(vmctx, table);
        if !in_bounds(dst, len, (*t).length) {
            return TABLE_OOB;
        }
        std::slice::from_raw_parts_mut((*t).elements.add(dst as usize), len as usize).fill(val);
    }
    OK
}

/// Rust half of `table.copy`.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_table_copy(
    vmctx: *mut VMContext,
    dt: u32,
    st: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> i32 {
    // SAFETY: as in `mvvm_rt_table_fill`, for both tables (validated
    // module) and both ranges (checked); `copy` allows overlap (same
    // table).
    unsafe {
        let d = vm_table(vmctx, dt);
        let s = vm_table(vmctx, st);
        if !in_bounds(dst, len, (*d).length) || !in_bounds(src, len, (*s).length) {
            return TABLE_OOB;
        }
        std::ptr::copy(
            (*s).elements.add(src as usize),
            (*d).elements.add(dst as usize),
            len as usize,
        );
    }
    OK
}

/// Rust half of `table.init`.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_table_init(
    vmctx: *mut VMContext,
    table: u32,
    seg: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> i32 {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, i) = unsafe { store_of(vmctx) };
    let inst = &s.instances[i as usize];
    let items: &[u64] = inst.elems.get(seg as usize).map(|v| &v[..]).unwrap_or(&[]);
    let Some(from) = range(src, len, items.len()) else {
        return TABLE_OOB;
    };
    let Some(&t) = inst.tables.get(table as usize) else {
        return TABLE_OOB;
    };
    let items = items[from].to_vec();
    let elems = s.tables[t as usize].elems_mut();
    let Some(to) = range(dst, len, elems.len()) else {
        return TABLE_OOB;
    };
    elems[to].copy_from_slice(&items);
    OK
}

extern "C" fn elem_drop(vmctx: *mut VMContext, seg: u32) {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, i) = unsafe { store_of(vmctx) };
    if let Some(e) = s.instances[i as usize].elems.get_mut(seg as usize) {
        *e = Vec::new();
    }
}

/// Calls imported function `import` with its arguments in `values`.
/// Returns 0, or `TrapCode::HostError` with the failure recorded for the
/// host entry point (the import stub then raises it).
pub(crate) extern "C" fn host_call(vmctx: *mut VMContext, import: u32, values: *mut u64) -> i32 {
    // SAFETY: called by generated code with its own vmctx.
    let (sp, i) = unsafe { host_of(vmctx) };
    // SAFETY: `sp` is the store's base pointer, valid while its code runs;
    // the shared reference lives for this one lookup only.
    let provider = unsafe { &*sp }.instances[i as usize]
        .func_imports
        .get(import as usize)
        .copied();
    let Some(f) = provider else {
        set_pending(PendingError::Run(RunError::NotCallable(import)));
        return TrapCode::HostError as i32;
    };
    let r = match f.kind {
        // SAFETY: `sp` is the base pointer and no reference into the store
        // is live across the call; `values` has the slots of the import's
        // type (generated stub).
        FuncKind::Host(h) => unsafe { crate::call::call_host(sp, h, Some(i), values) },
        // SAFETY: as above (a wasm provider is normally called directly
        // through the copied `VMFuncRef`; this path is a fallback).
        FuncKind::Wasm { .. } => unsafe { call_raw(sp, f, values) },
    };
    // SAFETY: the host function has returned; no other reference into the
    // store is live, and this one ends before wasm runs again.
    if unsafe { &*sp }
        .thread
        .as_ref()
        .is_some_and(|t| t.terminated())
    {
        // Another thread ended the program while this one was in the host
        // (a blocking call that gave up, say): whatever the call did, this
        // thread's wasm stops here.
        return TrapCode::Terminated as i32;
    }
    match r {
        Ok(()) => {
            // SAFETY: the host function has returned; no other reference
            // into the store is live.
            let st = unsafe { &mut *sp };
            if crate::checkpoint::control::take_host_unwind(st) {
                // The call was interrupted by a checkpoint request: the
                // stub returns without results and its caller unwinds.
                return HOST_CALL_UNWIND as i32;
            }
            0
        }
        Err(RunError::Trap(t)) => {
            set_pending(PendingError::Trap(t));
            TrapCode::HostError as i32
        }
        Err(e) => {
            set_pending(PendingError::Run(e));
            TrapCode::HostError as i32
        }
    }
}

/// Builtin `Probe`: see [`crate::checkpoint::control::probe`].
extern "C" fn probe(vmctx: *mut VMContext, func: u32, offset: u32) -> u32 {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, _) = unsafe { store_of(vmctx) };
    crate::checkpoint::control::probe(s, func, offset)
}

/// Builtin `UnwindFrame`: records the first `count` slots of the frame
/// buffer. `values` is always `VMLimits::frame_slots` (the buffer the
/// store owns), so the Rust half reads the store's own `Vec` instead of
/// the pointer.
extern "C" fn unwind_frame(
    vmctx: *mut VMContext,
    func: u32,
    offset: u32,
    _values: *const u64,
    count: u32,
) {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, _) = unsafe { store_of(vmctx) };
    crate::checkpoint::control::unwind_frame(s, func, offset, count as usize);
}

/// Builtin `UnwindWalked`: see [`crate::checkpoint::control::unwind_walked`].
extern "C" fn unwind_walked(vmctx: *mut VMContext, func: u32) {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, _) = unsafe { store_of(vmctx) };
    crate::checkpoint::control::unwind_walked(s, func);
}

/// Builtin `RewindFrame`: fills `capacity` slots at `values` with the next
/// frame and returns its stable point index; raises a host error when the
/// frame does not belong to `func` (frames are validated before a restore
/// runs, so this means generated code and metadata disagree).
extern "C" fn rewind_frame(
    vmctx: *mut VMContext,
    func: u32,
    values: *mut u64,
    capacity: u32,
) -> u32 {
    let r = {
        // SAFETY: called by generated code with its own vmctx; the
        // reference ends with this block, before any raise.
        let (s, _) = unsafe { store_of(vmctx) };
        let out: &mut [u64] = if capacity == 0 || values.is_null() {
            &mut []
        } else {
            // SAFETY: generated code passes an area of `capacity` aligned
            // slots in its own frame, alive and not otherwise accessed until
            // this builtin returns.
            unsafe { std::slice::from_raw_parts_mut(values, capacity as usize) }
        };
        crate::checkpoint::control::rewind_frame(s, func, out)
    };
    match r {
        Ok(point) => point,
        Err(message) => {
            set_pending(PendingError::Run(RunError::Host(format!(
                "restore failed: {message}"
            ))));
            // SAFETY: called only by generated code with its own live
            // vmctx, inside the protected entry that `mvvm_b_raise` unwinds
            // to; every value of this frame has been moved out or dropped.
            unsafe { mvvm_b_raise(vmctx, TrapCode::HostError as i32) };
            0
        }
    }
}

/// Builtin `ResumeCode`: the entry of `func`'s resume clone (see
/// [`crate::resume`]); raises a host error when there is none (the
/// object left it out and it cannot be compiled), which ends the rewind.
extern "C" fn resume_code(vmctx: *mut VMContext, func: u32) -> usize {
    let module = {
        // SAFETY: called by generated code with its own vmctx; the
        // reference ends with this block, before anything else runs.
        let (s, i) = unsafe { store_of(vmctx) };
        s.instances.get(i as usize).map(|inst| inst.module.clone())
    };
    let r = match module {
        Some(m) => crate::resume::resume_code(&m, func),
        None => Err("no instance behind the rewinding function".into()),
    };
    match r {
        Ok(entry) => entry,
        Err(message) => {
            set_pending(PendingError::Run(RunError::Host(format!(
                "restore failed: {message}"
            ))));
            // SAFETY: called only by generated code with its own live
            // vmctx, inside the protected entry that `mvvm_b_raise` unwinds
            // to; the module handle and the message have been dropped or
            // moved out (`m` is dropped at the end of the match above).
            unsafe { mvvm_b_raise(vmctx, TrapCode::HostError as i32) };
            0
        }
    }
}

/// Builtin `ExnDrop`: a legacy catch body that held exception `exn` ended;
/// frees it unless something else keeps it (see `crate::exception`).
extern "C" fn exn_drop(vmctx: *mut VMContext, exn: u64) {
    // SAFETY: called by generated code with its own vmctx; the reference
    // ends with this builtin, which runs no wasm.
    let (s, _) = unsafe { store_of(vmctx) };
    s.exceptions.unhold(exn);
}

#[cfg(test)]
mod tests;
