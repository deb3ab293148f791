//! `membarrier`: making every core of the process resynchronise its
//! instruction stream after new code was written (aarch64).

/// From the kernel's uapi `linux/membarrier.h` (not exported by `libc`).
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 5;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 6;

/// Makes every thread of the process execute a context synchronisation
/// event (the equivalent of an `isb` on each core) before the new code can
/// run anywhere.
///
/// On aarch64 [`super::icache::flush`] cleans the data cache and
/// invalidates the instruction cache over the new code (`dc cvau`, `ic
/// ivau`, broadcast to every core), but only the calling core then discards
/// instructions it may already have fetched; another core could run stale
/// instructions from the same addresses (a mapping of an unloaded module
/// reused for a new one). `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`
/// closes that gap, as JITs do. Kernels without it (before 4.16, or
/// qemu-user without the syscall) get only the flush: a best effort, never
/// an error.
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub(crate) fn sync_cores() {
    use std::sync::OnceLock;
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        // SAFETY: `membarrier` takes plain integers and touches no memory
        // of ours; registering the process for the command has no other
        // effect.
        let r = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
                0,
                0,
            )
        };
        r == 0
    });
    if registered {
        // SAFETY: as above; the barrier only interrupts this process'
        // threads. Failure leaves the flush alone, which is all we can do.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
                0,
                0,
            )
        };
    }
}

/// x86-64 keeps instruction fetch coherent with stores: nothing to do.
#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
pub(crate) fn sync_cores() {}
