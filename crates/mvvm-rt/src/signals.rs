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
use crate::trap::{RawTrap, current_jmp_buf, unwind_with};
use mvvm_abi::TrapCode;
use std::cell::Cell;
use std::sync::{Once, OnceLock};

const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Handlers that were installed before ours, in `SIGNALS` order.
static PREVIOUS: OnceLock<[libc::sigaction; 4]> = OnceLock::new();
static INSTALL: Once = Once::new();

/// Installs the handlers (once per process) and an alternate signal stack
/// for the calling thread (once per thread). Cheap after the first call.
pub(crate) fn prepare_thread() {
    INSTALL.call_once(|| {
        // Record the previous handlers first, so that ours can always chain.
        let prev = SIGNALS.map(|sig| {
            // SAFETY: querying a disposition into a zeroed out-parameter.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    old = std::mem::zeroed();
                    old.sa_sigaction = libc::SIG_DFL;
                }
                old
            }
        });
        let _ = PREVIOUS.set(prev);
        for &sig in &SIGNALS {
            // SAFETY: `sa` is fully initialised; `handler` has the
            // SA_SIGINFO signature.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
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
        // SAFETY: querying the current alternate stack has no preconditions.
        let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: `old` is a valid out-pointer.
        let r = unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
        if r == 0 && old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= 16 * 1024 {
            return AltStack { _ours: false };
        }
        let page = code::page_size();
        let len = ALT_STACK_SIZE + page;
        // SAFETY: anonymous private mapping; result checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return AltStack { _ours: false };
        }
        // SAFETY: the first page of our own mapping becomes a guard page;
        // the rest is handed to the kernel as the signal stack.
        unsafe {
            libc::mprotect(p, page, libc::PROT_NONE);
            let st = libc::stack_t {
                ss_sp: p.cast::<u8>().add(page).cast(),
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            if libc::sigaltstack(&st, std::ptr::null_mut()) != 0 {
                libc::munmap(p, len);
                return AltStack { _ours: false };
            }
        }
        // The mapping is deliberately kept for the thread's lifetime: the
        // kernel may use it until the thread exits, and a thread-local
        // destructor cannot know that no later signal will need it.
        AltStack { _ours: true }
    }
}

/// The program counter at the time of the fault.
///
/// # Safety
/// `ctx` must be the `ucontext_t` pointer the kernel passed to a handler.
unsafe fn fault_pc(ctx: *mut libc::c_void) -> usize {
    let uc = ctx as *const libc::ucontext_t;
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: guaranteed by the caller.
        unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        // SAFETY: guaranteed by the caller.
        unsafe { (*uc).uc_mcontext.pc as usize }
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = uc;
        0
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // A write into a write-protected chunk of a dirty-tracked memory (by
    // wasm or by host code): record it, unprotect, retry the store. Checked
    // first since it is not an error and may come from any code.
    if sig == libc::SIGSEGV && !info.is_null() {
        // SAFETY: for SIGSEGV the kernel fills `si_addr`.
        let addr = unsafe { (*info).si_addr() } as usize;
        if crate::memory::handle_write_fault(addr) {
            return;
        }
    }
    // SAFETY: `ctx` comes from the kernel.
    let pc = unsafe { fault_pc(ctx) };
    let jb = current_jmp_buf();
    if !jb.is_null()
        && let Some(l) = code::lookup_pc(pc)
    {
        let code = match (l.code, sig) {
            (Some(c), _) => Some(c),
            (None, libc::SIGSEGV | libc::SIGBUS) => Some(TrapCode::MemoryOutOfBounds),
            _ => None,
        };
        if let Some(code) = code {
            // SAFETY: `jb` is the jump buffer of the `mvvm_rt_enter` frame
            // that is live on this thread's stack below the generated code
            // that faulted; only generated code (no Rust frame) lies
            // between.
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
    // SAFETY: `prev` is a disposition the kernel gave us; calling it with
    // the kernel's arguments is what the kernel would have done.
    unsafe {
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Restore it and return: the faulting instruction runs again and
            // gets the default action (for a fault, the process dies).
            libc::sigaction(sig, prev, std::ptr::null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}
