//! Calls between the host and wasm: typed calls from the host
//! ([`call_func`]), raw calls into wasm under a jump buffer ([`call_raw`]),
//! host functions on raw slots ([`call_host`]), and the error a failed host
//! call leaves for the entry point that unwinds to.
//!
//! ```text
//!  Func::call(&mut Store) ─▶ call_func ─▶ call_raw(base pointer) ─▶ trap::enter_wasm
//!                                             generated code ─▶ builtin host_call
//!                                                 ─▶ call_host (or call_raw again)
//! ```
//!
//! This is where the store invariant of `vm_box.rs` is kept: `call_raw`
//! takes the store's base pointer, derives a reference for its own
//! bookkeeping, and lets it die before generated code runs; builtins
//! re-derive theirs from the base pointer in the `InstanceHost`.

use crate::store::{
    Caller, Func, FuncKind, HostError, RunError, Store, StoreInner, Val, slot_count,
};
use crate::trap::{Trap, enter_wasm};
use mvvm_abi::TrapCode;
use std::cell::RefCell;

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

/// Records `e` for the innermost host entry of this thread.
pub(crate) fn set_pending(e: PendingError) {
    PENDING_HOST.with(|p| *p.borrow_mut() = Some(e));
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

/// Calls `f` (a function of `store`) with typed arguments.
pub(crate) fn call_func(store: &mut Store, f: Func, args: &[Val]) -> Result<Vec<Val>, RunError> {
    let (ty, mut values) = {
        let s: &StoreInner = &store.inner;
        let ty = s.func_type(f);
        if args.len() != ty.params.len() || args.iter().zip(&ty.params).any(|(a, t)| a.ty() != *t) {
            return Err(RunError::BadArgs(format!(
                "expected {:?}, got {:?}",
                ty.params,
                args.iter().map(Val::ty).collect::<Vec<_>>()
            )));
        }
        // Slots, not values: a `v128` takes two (`ValType::slots`).
        let n = slot_count(&ty.params).max(slot_count(&ty.results)).max(1);
        let mut values = vec![0u64; n];
        s.vals_to_slots(args, &ty.params, &mut values)
            .map_err(|_| {
                RunError::BadArgs("a host function cannot be passed as a funcref".into())
            })?;
        (ty, values)
    };
    // SAFETY: the base pointer of the store's contents, taken while no
    // reference into them is alive (the block above has ended; `&mut
    // Store` excludes any other); `values` has the slots of max(params,
    // results), at least one, of `f`'s type.
    unsafe { call_raw(store.inner.as_ptr(), f, values.as_mut_ptr())? };
    let s: &StoreInner = &store.inner;
    Ok(s.vals_from_slots(&values, &ty.results))
}

/// Calls `f` with raw slots (parameters in, results out).
///
/// # Safety
/// `s` must be the base pointer of a live store's contents
/// (`Store::inner.as_ptr()`, or `InstanceHost::store`), and `values` must
/// hold the slots of max(params, results) of `f`'s type (counted with
/// `ValType::slots`: two per `v128`). No reference into the
/// store may be in use across this call: while wasm runs, builtins derive
/// their own from `s` (the invariant of `vm_box.rs`).
pub(crate) unsafe fn call_raw(
    s: *mut StoreInner,
    f: Func,
    values: *mut u64,
) -> Result<(), RunError> {
    // SAFETY: `s` is valid and unaliased by the caller's contract; the
    // reference dies at the end of the block, before wasm runs.
    let (tramp, vmctx, outermost, _running) = unsafe {
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
                // A thread of a program runs wasm only while the program
                // goes on; its outermost entry is where `terminate` finds
                // it (the guard lives until wasm has returned).
                let running = match (&st.thread, outermost) {
                    (Some(t), true) => match t.enter() {
                        Some(g) => Some(g),
                        None => return Err(RunError::Trap(Trap::new(TrapCode::Terminated))),
                    },
                    (Some(t), false) if t.terminated() => {
                        return Err(RunError::Trap(Trap::new(TrapCode::Terminated)));
                    }
                    _ => None,
                };
                if outermost {
                    let marker = 0u8;
                    let sp = std::hint::black_box(&marker) as *const u8 as usize;
                    st.limits.stack_limit = sp.saturating_sub(st.max_wasm_stack);
                }
                st.depth += 1;
                (tramp, inst.vmctx_ptr(), outermost, running)
            }
        }
    };
    // SAFETY: `tramp` is an array trampoline of the instance's module (the
    // instance keeps the module, hence the code, alive), `vmctx` that
    // instance's context (a base pointer), `values` large enough (caller).
    let r = unsafe { enter_wasm(tramp, vmctx.cast(), values) };
    // SAFETY: wasm has returned, so no builtin reference into the store is
    // alive; `s` is valid (caller).
    let st = unsafe { &mut *s };
    st.depth -= 1;
    if outermost {
        st.limits.stack_limit = 0;
        // No wasm frame of the store is left, so no frame holds the
        // handle of an exception a legacy `catch` kept: every exception
        // that never escaped is unreachable now. Not so when the call
        // ended by unwinding for a checkpoint: its frames (handles
        // included) are saved and come back.
        if r.is_err() || st.limits.unwind_state != mvvm_abi::checkpoint::UNWINDING {
            st.exceptions.release_unescaped();
        }
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
    // SAFETY: `s` is valid and no other reference into the store is in use
    // (caller). The host function cannot enter wasm (a `Caller` offers no
    // call), so this reference is the only one until it returns.
    let st = unsafe { &mut *s };
    let hf = &mut st.host_funcs[h as usize];
    let ty = hf.ty.clone();
    let Some(mut body) = hf.f.take() else {
        return Err(RunError::Host("host function called recursively".into()));
    };
    let n = slot_count(&ty.params).max(slot_count(&ty.results));
    // SAFETY: `values` has `n` initialised slots (caller), a spill area of
    // generated code or of `call_func`, not otherwise referenced while the
    // host function runs.
    let slots = unsafe { std::slice::from_raw_parts_mut(values, n) };
    let args = st.vals_from_slots(slots, &ty.params);
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
    for (v, t) in results.iter().zip(&ty.results) {
        if v.ty() != *t {
            return Err(RunError::Host(format!(
                "host function returned {:?} for a {:?} result",
                v.ty(),
                t
            )));
        }
    }
    st.vals_to_slots(&results, &ty.results, slots)
        .map_err(|_| RunError::Host("host function returned a host funcref".into()))?;
    Ok(())
}
