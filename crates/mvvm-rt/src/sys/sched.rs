//! `sched_yield`, and the batch scheduling policy of a background thread.

/// Gives the CPU to another thread. Async-signal-safe (the signal handler
/// uses it while another thread holds the code registry's lock).
pub(crate) fn yield_now() {
    // SAFETY: `sched_yield` takes no arguments, touches no memory of ours
    // and is async-signal-safe; its result (always 0 on Linux) is moot.
    unsafe { libc::sched_yield() };
}

/// Puts the calling thread under `SCHED_BATCH`: the same share of the CPU
/// as a normal thread, but waking it never preempts the thread that woke
/// it (the scheduler treats it as CPU-bound; it waits for the waker's
/// tick). For a thread that works in the background of the program's
/// threads: handing it work must not stall the program.
pub(crate) fn set_batch() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid, initialised
    // `sched_param` that outlives the call; only the thread's scheduling
    // policy changes.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
