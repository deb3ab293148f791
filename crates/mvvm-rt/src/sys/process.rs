//! `_exit`: ending the process from a signal handler.

/// Ends the process with `code` at once, running no destructor and no
/// `atexit` handler. Async-signal-safe, unlike `std::process::exit`.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes an integer, never returns and is
    // async-signal-safe; skipping destructors is memory safe.
    unsafe { libc::_exit(code) }
}
