//! `pthread_self` and `pthread_kill`: naming an OS thread and sending it
//! a signal (ending the wasm of the other threads of a program, see
//! `threads.rs`).

/// An OS thread, as `pthread_kill` names it.
pub(crate) type ThreadId = libc::pthread_t;

/// The calling thread.
pub(crate) fn current() -> ThreadId {
    // SAFETY: `pthread_self` takes nothing and cannot fail.
    unsafe { libc::pthread_self() }
}

/// Sends `sig` to thread `t`.
///
/// # Safety
/// `t` must be a thread that has not ended (and been joined or detached):
/// `pthread_kill` on the id of a thread that is gone is undefined
/// behaviour (the id may name freed memory, or another thread).
pub(crate) unsafe fn kill(t: ThreadId, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `t` names a live thread (caller); `sig` is only a number.
    match unsafe { libc::pthread_kill(t, sig) } {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}
