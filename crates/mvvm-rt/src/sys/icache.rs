//! The instruction-cache flush of `native/entry.c`
//! (`__builtin___clear_cache`).

unsafe extern "C" {
    fn mvvm_rt_flush_icache(begin: *mut u8, end: *mut u8);
}

/// Makes freshly written code in `begin..end` visible to instruction
/// fetch on this core: a no-op on x86-64 (coherent caches); on aarch64 it
/// cleans the data cache and invalidates the instruction cache over the
/// range. See [`super::membarrier::sync_cores`] for the other cores.
///
/// # Safety
/// `begin..end` must lie within one live mapping of this process (the
/// cache maintenance instructions fault on unmapped addresses), with
/// `begin <= end`.
pub(crate) unsafe fn flush(begin: *mut u8, end: *mut u8) {
    // SAFETY: the C function only issues cache maintenance over the range,
    // which the caller guarantees is mapped; it reads or writes no byte.
    unsafe { mvvm_rt_flush_icache(begin, end) }
}
