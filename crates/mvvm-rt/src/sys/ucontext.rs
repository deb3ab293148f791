//! `ucontext_t`: the program counter of a faulting thread.

/// The program counter at the time of the fault (0 on platforms we do not
/// know how to read it on: no fault is then claimed).
///
/// # Safety
/// `ctx` must be the `ucontext_t` pointer the kernel passed to an
/// `SA_SIGINFO` handler that is still running.
pub(crate) unsafe fn fault_pc(ctx: *mut libc::c_void) -> usize {
    let uc = ctx as *const libc::ucontext_t;
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: a valid, aligned `ucontext_t` filled by the kernel
        // (caller); `REG_RIP` indexes its general registers.
        unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        // SAFETY: a valid, aligned `ucontext_t` filled by the kernel
        // (caller).
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
