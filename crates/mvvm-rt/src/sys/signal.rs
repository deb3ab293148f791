//! `sigaction`: installing, saving, restoring and chaining signal
//! handlers.
//!
//! A disposition is saved as a [`Saved`] (a copy of the kernel's `struct
//! sigaction`), so that a handler installed over it can be put back or
//! called in turn.

/// A handler taking `siginfo_t` and `ucontext_t` (`SA_SIGINFO`).
pub(crate) type InfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
/// A plain handler.
pub(crate) type PlainHandler = extern "C" fn(libc::c_int);

/// A saved disposition.
#[derive(Clone, Copy)]
pub(crate) struct Saved(libc::sigaction);

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved")
            .field("handler", &self.0.sa_sigaction)
            .field("flags", &self.0.sa_flags)
            .finish()
    }
}

impl Saved {
    /// The default action (`SIG_DFL`), no flags.
    pub(crate) fn default_action() -> Saved {
        let mut sa = zeroed_action();
        sa.sa_sigaction = libc::SIG_DFL;
        Saved(sa)
    }
}

/// An all-zero `struct sigaction` with an empty mask.
fn zeroed_action() -> libc::sigaction {
    // SAFETY: `struct sigaction` is plain old data (integers, a function
    // address as an integer, a bit set): all-zero is a valid value.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `sa.sa_mask` is a valid, exclusively borrowed `sigset_t`.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    sa
}

/// Installs `sa` for `sig`, returning the previous disposition (the default
/// action if the call fails, which it only does for an invalid signal).
fn install(sig: libc::c_int, sa: &libc::sigaction) -> Saved {
    let mut old = zeroed_action();
    // SAFETY: both pointers are valid for the call (a shared and an
    // exclusive borrow of initialised `sigaction`s); the handler in `sa`
    // is one of the typed handlers of this module, or `SIG_DFL`/`SIG_IGN`.
    if unsafe { libc::sigaction(sig, sa, &mut old) } != 0 {
        return Saved::default_action();
    }
    Saved(old)
}

/// The current disposition of `sig` (the default action if it cannot be
/// queried).
pub(crate) fn query(sig: libc::c_int) -> Saved {
    let mut old = zeroed_action();
    // SAFETY: a null new action only queries; `old` is a valid exclusive
    // out-pointer for the call.
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
        return Saved::default_action();
    }
    Saved(old)
}

/// Installs `handler` for `sig` with `SA_SIGINFO` and, as asked,
/// `SA_ONSTACK` (run on the alternate signal stack) and `SA_NODEFER` (the
/// signal stays unblocked while the handler runs, for handlers that leave
/// with `longjmp`). Returns the previous disposition.
pub(crate) fn install_info(
    sig: libc::c_int,
    handler: InfoHandler,
    on_stack: bool,
    no_defer: bool,
) -> Saved {
    let mut sa = zeroed_action();
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    if on_stack {
        sa.sa_flags |= libc::SA_ONSTACK;
    }
    if no_defer {
        sa.sa_flags |= libc::SA_NODEFER;
    }
    install(sig, &sa)
}

/// Installs the plain `handler` for `sig` with `SA_RESTART` (interrupted
/// system calls are restarted). Returns the previous disposition.
pub(crate) fn install_plain(sig: libc::c_int, handler: PlainHandler) -> Saved {
    let mut sa = zeroed_action();
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART;
    install(sig, &sa)
}

/// Puts the default action back for `sig`. Async-signal-safe.
pub(crate) fn set_default(sig: libc::c_int) {
    install(sig, &Saved::default_action().0);
}

/// Reinstalls a saved disposition. Async-signal-safe.
pub(crate) fn restore(sig: libc::c_int, saved: &Saved) {
    install(sig, &saved.0);
}

/// Hands a signal our handler does not claim to the disposition saved
/// before ours: the default action or `SIG_IGN` is reinstalled (and the
/// faulting instruction, run again, gets it), a handler is called with
/// the kernel's arguments.
///
/// # Safety
/// Only from a signal handler for `sig`, with the `info` and `ctx` the
/// kernel passed it; `saved` must be a disposition the kernel reported
/// for `sig`.
pub(crate) unsafe fn chain(
    sig: libc::c_int,
    saved: &Saved,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    let prev = &saved.0;
    if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        restore(sig, saved);
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the kernel reported this address as an `SA_SIGINFO`
        // handler of `sig`, so it is a function with that signature;
        // calling it with the kernel's arguments is what the kernel would
        // have done.
        unsafe {
            let f: InfoHandler = std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        }
    } else {
        // SAFETY: as above, for a plain handler.
        unsafe {
            let f: PlainHandler = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

/// The faulting address of a SIGSEGV or SIGBUS.
///
/// # Safety
/// `info` must be the non-null `siginfo_t` the kernel passed to a handler
/// of SIGSEGV or SIGBUS (for which it fills `si_addr`).
pub(crate) unsafe fn fault_addr(info: *const libc::siginfo_t) -> usize {
    // SAFETY: a valid, aligned `siginfo_t` from the kernel (caller); for
    // these signals `si_addr` is the initialised member of the union.
    unsafe { (*info).si_addr() as usize }
}
