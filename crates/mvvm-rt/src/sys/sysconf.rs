//! `sysconf`: the host page size.

/// The host page size in bytes (4096 if the system will not say).
pub(crate) fn page_size() -> usize {
    // SAFETY: `sysconf` takes an integer name and has no memory effects;
    // `_SC_PAGESIZE` is a valid name on every POSIX system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}
