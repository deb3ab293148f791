//! Throwing: the Rust halves of builtins `Throw` and `ThrowRef`, the walk
//! up the wasm frames to a handler, and the jump into it (the protocol is
//! [`mvvm_abi::exception`]'s; the table of exceptions is
//! [`crate::exception`]'s).
//!
//! ```text
//!  wasm ─call─▶ mvvm_b_throw (C shim, entry.c: return address + caller fp)
//!                 ─▶ mvvm_rt_throw ─▶ find_handler: walk (pc, fp) pairs
//!                      handler found ─▶ resume: set sp, fp, payload regs, jump
//!                      none          ─▶ mvvm_rt_trap_at(UncaughtException): longjmp
//! ```
//!
//! Like the trap path, leaving does not return through the Rust frames:
//! [`mvvm_rt_throw`] and [`mvvm_rt_throw_ref`] do all their work in
//! [`throw_new`] / [`throw_existing`], which return a plain-data
//! [`Outcome`] after every value with a destructor (the registry lock
//! guard, vectors) has been dropped; only then is the frame abandoned.

use crate::call::{PendingError, set_pending};
use crate::exception::Handle;
use crate::store::{RunError, StoreInner, slot_count};
use crate::trap::SiteLookup;
use crate::vmctx::VMContext;
use mvvm_abi::TrapCode;
use mvvm_abi::exception::Delivery;

/// What a throw ends with; plain data, so nothing needs dropping when the
/// frame that computed it is abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Jump to a handler.
    Resume(Target),
    /// Unwind to the host entry with this trap (raised at the throw).
    Trap(TrapCode),
}

/// A handler to jump to, with the machine state it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// The handler's address.
    pc: usize,
    /// Stack pointer of the handler's frame at the call (`fp -
    /// frame_offset`).
    sp: usize,
    /// Frame pointer of the handler's frame.
    fp: usize,
    /// Payload register 0: the exception's handle.
    handle: u64,
    /// Payload register 1: the address of its payload.
    payload: usize,
}

/// Frames a walk visits at most: a bound against a corrupt frame chain
/// (the wasm stack limit allows far fewer frames than this).
const MAX_FRAMES: usize = 1 << 24;

/// Rust half of builtin `Throw`: `throw tag` with its payload in `values`;
/// `pc` and `fp` are the return address into, and the frame pointer of,
/// the wasm function that called the builtin. Never returns.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_throw(
    vmctx: *mut VMContext,
    tag: u32,
    values: *const u64,
    pc: usize,
    fp: usize,
) -> ! {
    // SAFETY: called by the shim `mvvm_b_throw` that generated code calls
    // with its own vmctx, its payload area and, from the shim, its own
    // return address and frame pointer (the contract of `throw_new`).
    let outcome = unsafe { throw_new(vmctx, tag, values, pc, fp) };
    // SAFETY: `outcome` comes from a walk of this thread's wasm frames
    // starting at `pc`/`fp`, which are still live (this builtin has not
    // returned); this frame holds nothing that needs dropping.
    unsafe { finish(outcome, pc) }
}

/// Rust half of builtin `ThrowRef`: `throw_ref` of handle `exn`. Never
/// returns; a null or stale handle traps with a null reference.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_throw_ref(vmctx: *mut VMContext, exn: u64, pc: usize, fp: usize) -> ! {
    // SAFETY: as in `mvvm_rt_throw`.
    let outcome = unsafe { throw_existing(vmctx, exn, pc, fp) };
    // SAFETY: as in `mvvm_rt_throw`.
    unsafe { finish(outcome, pc) }
}

/// Leaves a throw: jumps to the handler or raises the trap at `pc`.
///
/// # Safety
/// A [`Outcome::Resume`] must come from [`find_handler`] on the frames of
/// the current thread, still live; the caller's frame must own nothing
/// that needs dropping.
unsafe fn finish(outcome: Outcome, pc: usize) -> ! {
    match outcome {
        // SAFETY: the caller's contract.
        Outcome::Resume(t) => unsafe { resume(t) },
        Outcome::Trap(code) => crate::trap::mvvm_rt_trap_at(code as i32, pc as *const u8),
    }
}

/// Records `message` for the host entry and returns the trap that carries
/// it there (a metadata inconsistency or an exhausted table: not a guest
/// error the spec names).
fn host_error(message: String) -> Outcome {
    set_pending(PendingError::Run(RunError::Host(message)));
    Outcome::Trap(TrapCode::HostError)
}

/// Creates the exception of `throw tag` and finds its handler.
///
/// # Safety
/// `vmctx` is the live context of the calling generated code, `values`
/// points to the payload slots of tag `tag` (may dangle when the tag has
/// none), and `pc`/`fp` are that code's return address and frame pointer
/// in a live chain of wasm frames.
unsafe fn throw_new(
    vmctx: *mut VMContext,
    tag: u32,
    values: *const u64,
    pc: usize,
    fp: usize,
) -> Outcome {
    let handle = {
        // SAFETY: generated code passes its own vmctx; the reference dies
        // at the end of this block and no wasm runs meanwhile.
        let (s, inst) = unsafe { crate::builtins::store_of(vmctx) };
        let Some(id) = crate::exception::instance_tag(s, inst, tag) else {
            return host_error(format!(
                "throw of tag {tag}, which the instance does not have"
            ));
        };
        let n = match s.tags.ty(id) {
            Some(ty) => slot_count(&ty.params),
            None => return host_error(format!("throw of an unknown tag {id:?}")),
        };
        let payload: Box<[u64]> = if n == 0 {
            Box::new([])
        } else {
            // SAFETY: generated code passes an area holding the tag's
            // payload, `n` initialised, aligned slots in its frame, not
            // written while this builtin runs.
            unsafe { std::slice::from_raw_parts(values, n) }.into()
        };
        match s.exceptions.create(id, payload) {
            Some(h) => h,
            None => return host_error("too many live exceptions".into()),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { find_handler(vmctx, handle, pc, fp) }
}

/// Finds the handler of the existing exception `exn` (`throw_ref`).
///
/// # Safety
/// As [`throw_new`].
unsafe fn throw_existing(vmctx: *mut VMContext, exn: Handle, pc: usize, fp: usize) -> Outcome {
    {
        // SAFETY: as in `throw_new`; the reference dies with the block.
        let (s, _) = unsafe { crate::builtins::store_of(vmctx) };
        if s.exceptions.get(exn).is_none() {
            return Outcome::Trap(TrapCode::NullReference);
        }
    }
    // SAFETY: the caller's contract.
    unsafe { find_handler(vmctx, exn, pc, fp) }
}

/// What the walk does after looking at one frame.
enum Step {
    /// The walk has left wasm (or the frame belongs to another store): no
    /// handler.
    Stop,
    /// No handler here; go on with the caller.
    Next,
    /// This handler.
    Found {
        pc: usize,
        sp: usize,
        delivery: Delivery,
    },
}

/// Walks the wasm frames from (`pc`, `fp`), the return address into the
/// thrower and its frame pointer, for the first handler that catches
/// exception `handle` (live), and settles the exception's fate by the
/// handler's [`Delivery`] (or, uncaught, frees it unless escaped).
///
/// # Safety
/// As [`throw_new`]; besides, `handle` names a live exception of the
/// store of `vmctx`.
unsafe fn find_handler(
    vmctx: *mut VMContext,
    handle: Handle,
    mut pc: usize,
    mut fp: usize,
) -> Outcome {
    // SAFETY: generated code passed its own vmctx (caller).
    let (store, _) = unsafe { crate::builtins::host_of(vmctx) };
    let thrown = {
        // SAFETY: `store` is the base pointer of the running store; the
        // shared reference lives for this lookup only.
        let s = unsafe { &*store };
        match s.exceptions.get(handle) {
            Some(e) => e.tag,
            None => return Outcome::Trap(TrapCode::NullReference),
        }
    };
    let mut found = None;
    for _ in 0..MAX_FRAMES {
        let step = crate::code::with_call_site(pc, |l| match l {
            SiteLookup::NotWasm => Step::Stop,
            SiteLookup::Wasm { site: None, .. } => Step::Next,
            SiteLookup::Wasm {
                code_start,
                site: Some(site),
            } => {
                let sp = fp.wrapping_sub(site.frame_offset as usize);
                // SAFETY: `pc` returns into a wasm body and `fp` is that
                // body's frame pointer (the walk's invariant); the call
                // site's metadata says its frame keeps the vmctx at `sp +
                // vmctx_sp_offset`, inside the live frame, aligned.
                let frame_vmctx =
                    unsafe { *((sp + site.vmctx_sp_offset as usize) as *const *mut VMContext) };
                // SAFETY: a vmctx generated code keeps for itself: the live
                // context of an instance (of some store).
                let (frame_store, inst) = unsafe { crate::builtins::host_of(frame_vmctx) };
                if frame_store != store {
                    return Step::Stop;
                }
                // SAFETY: the same store's base pointer; a shared
                // reference for these lookups only (no other is in use:
                // the builtin's own ended above).
                let s = unsafe { &*frame_store };
                for h in &site.handlers {
                    let catches = match h.tag {
                        None => true,
                        Some(t) => crate::exception::instance_tag(s, inst, t) == Some(thrown),
                    };
                    if catches {
                        return Step::Found {
                            pc: code_start + h.code_offset as usize,
                            sp,
                            delivery: h.delivery,
                        };
                    }
                }
                Step::Next
            }
        });
        match step {
            Step::Stop => break,
            Step::Found { pc, sp, delivery } => {
                found = Some((pc, sp, fp, delivery));
                break;
            }
            Step::Next => {
                // SAFETY: `fp` is the frame pointer of a live wasm frame
                // (the walk's invariant): its frame record holds the
                // caller's frame pointer and the return address, aligned.
                let (next_fp, next_pc) =
                    unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
                // Frames lie at increasing addresses; anything else is a
                // corrupt chain, which ends the walk.
                if next_fp <= fp {
                    break;
                }
                (pc, fp) = (next_pc, next_fp);
            }
        }
    }
    // SAFETY: the store's base pointer; no other reference into the store
    // is in use, and this one dies before the caller jumps.
    let s = unsafe { &mut *store };
    match found {
        None => {
            // Every frame walked is abandoned, the last one included.
            s.exceptions.abandon_frames_below(fp, true, handle);
            s.exceptions.release(handle);
            Outcome::Trap(TrapCode::UncaughtException)
        }
        Some((pc, sp, fp, delivery)) => match deliver(s, handle, delivery, fp) {
            Some(payload) => Outcome::Resume(Target {
                pc,
                sp,
                fp,
                handle,
                payload,
            }),
            None => Outcome::Trap(TrapCode::NullReference),
        },
    }
}

/// Settles exception `handle` for a handler with `delivery` in the frame at
/// `fp` and returns the address of the payload the handler reads (see
/// [`mvvm_abi::exception::Delivery`] and, for holds, `crate::exception`).
fn deliver(s: &mut StoreInner, handle: Handle, delivery: Delivery, fp: usize) -> Option<usize> {
    let t = &mut s.exceptions;
    t.abandon_frames_below(fp, false, handle);
    let escaped = t.get(handle)?.escaped;
    match delivery {
        Delivery::Values if !escaped && !t.is_held(handle) => {
            let e = t.remove(handle)?;
            return Some(t.keep_delivered(e.payload) as usize);
        }
        Delivery::Values => {}
        Delivery::Ref => t.get_mut(handle)?.escaped = true,
        Delivery::Held => t.hold(handle, fp),
    }
    Some(t.get(handle)?.payload.as_ptr() as usize)
}

/// Jumps to a handler: the stack and frame pointers of its frame, the
/// payload registers of the platform (x86-64 `rax`, `rdx`; aarch64 `x0`,
/// `x1`), then the handler's address. Cranelift treats every register as
/// clobbered on the exceptional edge of a `try_call`, so nothing else
/// needs restoring.
///
/// # Safety
/// `t` must come from a walk of the current thread's live wasm frames:
/// `sp`/`fp` those of the handler's frame at its call, `pc` a handler of
/// that call. Every frame below (builtin, shims, wasm frames being
/// unwound) is abandoned and must own nothing that needs dropping.
unsafe fn resume(t: Target) -> ! {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract: the handler's frame is live and
    // expects exactly this state. `rbp`/`rsp` are not operands (LLVM
    // reserves them), so writing `rsp` first leaves the other inputs
    // intact.
    unsafe {
        std::arch::asm!(
            "mov rsp, {sp}",
            "mov rbp, {fp}",
            "jmp {pc}",
            sp = in(reg) t.sp,
            fp = in(reg) t.fp,
            pc = in(reg) t.pc,
            in("rax") t.handle,
            in("rdx") t.payload,
            options(noreturn, nostack),
        )
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; `x29` and `sp` are not operands (reserved).
    unsafe {
        std::arch::asm!(
            "mov sp, {sp}",
            "mov x29, {fp}",
            "br {pc}",
            sp = in(reg) t.sp,
            fp = in(reg) t.fp,
            pc = in(reg) t.pc,
            in("x0") t.handle,
            in("x1") t.payload,
            options(noreturn, nostack),
        )
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    compile_error!("exception handling supports x86-64 and aarch64 only");
}
