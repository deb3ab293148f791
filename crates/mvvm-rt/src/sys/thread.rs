//! `pthread_self` and `pthread_kill`: naming an OS thread and sending it
//! a signal (ending the wasm of the other threads of a program, see
//! `threads.rs`); the calling thread's CPU time and involuntary context
//! switches (where a checkpoint's pause went: working, or waiting for a
//! CPU on a loaded machine).

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

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`: exact, where
/// `getrusage` samples at the tick), its involuntary and its voluntary
/// context switches so far (`getrusage(RUSAGE_THREAD)`); `None` if the
/// kernel refuses.
pub(crate) fn usage() -> Option<(std::time::Duration, u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return None;
    }
    let cpu = std::time::Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    );
    // SAFETY: `rusage` is plain old data, all zeroes is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable `rusage` for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return None;
    }
    Some((cpu, u.ru_nivcsw.max(0) as u64, u.ru_nvcsw.max(0) as u64))
}
