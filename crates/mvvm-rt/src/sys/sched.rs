//! `sched_yield`.

/// Gives the CPU to another thread. Async-signal-safe (the signal handler
/// uses it while another thread holds the code registry's lock).
pub(crate) fn yield_now() {
    // SAFETY: `sched_yield` takes no arguments, touches no memory of ours
    // and is async-signal-safe; its result (always 0 on Linux) is moot.
    unsafe { libc::sched_yield() };
}
