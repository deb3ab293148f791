//! Signal handlers that turn hardware faults in generated code into traps.
//!
//! Installed once per process for SIGSEGV, SIGBUS, SIGILL and SIGFPE, on an
//! alternate signal stack (so a fault on an exhausted stack can still be
//! handled). A fault is claimed only when this thread is running wasm (it
//! has a jump buffer installed) and the faulting PC lies in registered
//! generated code: then a trap site at that PC gives the trap code, and a
//! SIGSEGV/SIGBUS without one is a linear memory access out of bounds.
//! Anything else is passed to the handler that was installed before ours
//! (Rust's own stack-overflow reporter, for instance), or to the default
//! action.
//!
//! Handlers are installed with `SA_NODEFER`: the claimed path leaves the
//! handler with `longjmp` (see `native/entry.c`), which does not restore the
//! signal mask, so the signal must not be blocked while it runs.

use crate::code;
use crate::sys::{sigaltstack, signal, ucontext};
use crate::trap::{RawTrap, current_jmp_buf, unwind_with};
use mvvm_abi::TrapCode;
use std::cell::Cell;
use std::sync::{Once, OnceLock};

const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Handlers that were installed before ours, in `SIGNALS` order.
static PREVIOUS: OnceLock<[signal::Saved; 4]> = OnceLock::new();
static INSTALL: Once = Once::new();

/// Installs the handlers (once per process) and an alternate signal stack
/// for the calling thread (once per thread). Cheap after the first call.
pub(crate) fn prepare_thread() {
    INSTALL.call_once(|| {
        // Record the previous handlers first, so that ours can always chain.
        let _ = PREVIOUS.set(SIGNALS.map(signal::query));
        for &sig in &SIGNALS {
            signal::install_info(sig, handler, true, true);
        }
    });
    ALT_STACK.with(|s| {
        if s.get().is_none() {
            s.set(Some(AltStack::install()));
        }
    });
}

thread_local! {
    static ALT_STACK: Cell<Option<AltStack>> = const { Cell::new(None) };
}

/// The alternate signal stack of one thread (ours, or one that was already
/// there, e.g. installed by Rust's runtime).
#[derive(Clone, Copy, Debug)]
struct AltStack {
    /// Whether we mapped it (rather than finding one in place).
    _ours: bool,
}

const ALT_STACK_SIZE: usize = 64 * 1024;

impl AltStack {
    fn install() -> AltStack {
        if sigaltstack::has_stack(16 * 1024) {
            return AltStack { _ours: false };
        }
        AltStack {
            _ours: sigaltstack::install_new(ALT_STACK_SIZE),
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // A write into a write-protected chunk of a dirty-tracked memory (by
    // wasm or by host code): record it, unprotect, retry the store. Checked
    // first since it is not an error and may come from any code.
    if sig == libc::SIGSEGV && !info.is_null() {
        // SAFETY: the kernel's non-null `siginfo_t` for a SIGSEGV.
        let addr = unsafe { signal::fault_addr(info) };
        if crate::memory::handle_write_fault(addr) {
            return;
        }
    }
    // SAFETY: `ctx` is the kernel's `ucontext_t` for this running handler.
    let pc = unsafe { ucontext::fault_pc(ctx) };
    let jb = current_jmp_buf();
    if !jb.is_null()
        && let Some(l) = code::lookup_pc(pc)
    {
        let code = match (l.code, sig) {
            (Some(c), _) => Some(c),
            (None, libc::SIGSEGV | libc::SIGBUS) => Some(TrapCode::MemoryOutOfBounds),
            // A trap instruction whose site was missed because the
            // function's sites are damaged: a trap all the same, which
            // its description reports as the damage.
            (None, _) if l.damaged => Some(TrapCode::Unreachable),
            _ => None,
        };
        if let Some(code) = code {
            // SAFETY: `jb` is the jump buffer of the `mvvm_rt_enter` frame
            // that is live on this thread's stack below the generated code
            // that faulted (the PC is in registered code and a jump buffer
            // is installed); between it and here lie only generated code
            // and this handler's frame, which holds nothing to drop.
            unsafe {
                unwind_with(
                    jb,
                    RawTrap {
                        code,
                        pc,
                        exact: l.code.is_some(),
                        wasm_offset: l.wasm_offset,
                    },
                )
            }
        }
    }
    // Not ours: chain.
    let i = SIGNALS.iter().position(|&s| s == sig).unwrap_or(0);
    let Some(prev) = PREVIOUS.get().map(|p| &p[i]) else {
        return;
    };
    // SAFETY: we are the handler of `sig`, with the kernel's arguments;
    // `prev` is the disposition the kernel reported for `sig` before ours.
    unsafe { signal::chain(sig, prev, info, ctx) };
}
