//! `mmap`, `mprotect`, `munmap`: linear memory reservations, code memory,
//! alternate signal stacks, copy-on-write snapshot mappings.
//!
//! Creating a fresh mapping is safe (nothing else can be using addresses
//! the kernel just handed out). Changing or removing an existing mapping
//! is `unsafe`: Rust code may hold references into it, and the caller must
//! argue that it owns the range and that no such reference is harmed.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Page protections used by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prot {
    /// No access (guard pages, unused reservation).
    None,
    /// Read only (code constants, write-tracked memory).
    Read,
    /// Read and write.
    ReadWrite,
    /// Read and execute (published code).
    ReadExec,
}

impl Prot {
    fn bits(self) -> libc::c_int {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Prot::ReadExec => libc::PROT_READ | libc::PROT_EXEC,
        }
    }
}

/// A fresh private anonymous mapping of `len` bytes (zeroed), anywhere.
/// With `noreserve`, no swap is reserved for it (large reservations whose
/// pages are committed later by [`protect`]).
pub(crate) fn map_anon(len: usize, prot: Prot, noreserve: bool) -> io::Result<*mut u8> {
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    if noreserve {
        flags |= libc::MAP_NORESERVE;
    }
    // SAFETY: no address hint and no `MAP_FIXED`, so the kernel picks
    // addresses nothing else uses: no existing memory is affected. The
    // result is checked before use.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot.bits(), flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// A fresh private anonymous mapping of `len` bytes (zeroed), at `hint`
/// if that range is free, else anywhere (no `MAP_FIXED`: the hint is only
/// a hint; the caller checks where the mapping went if it matters).
pub(crate) fn map_anon_near(len: usize, prot: Prot, hint: usize) -> io::Result<*mut u8> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: without `MAP_FIXED` the kernel maps at the hint only if the
    // range is free, and elsewhere otherwise: no existing memory is
    // affected. The result is checked before use.
    let p = unsafe { libc::mmap(hint as *mut libc::c_void, len, prot.bits(), flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Changes the protection of `addr..addr+len`.
///
/// # Safety
/// The range must be page-aligned and lie in a mapping the caller owns.
/// Making it less accessible must not break Rust code: no reference into
/// it may be used in a way the new protection forbids, unless a fault
/// handler resolves the fault (dirty tracking). Making it executable
/// requires the bytes to be finished code.
pub(crate) unsafe fn protect(addr: *mut u8, len: usize, prot: Prot) -> io::Result<()> {
    // SAFETY: `mprotect` only changes page permissions; the caller
    // guarantees the range is its own and that the change is harmless to
    // any live reference. Async-signal-safe (used by the fault handler).
    let r = unsafe { libc::mprotect(addr.cast(), len, prot.bits()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for transparent huge pages on `addr..addr+len` (`MADV_HUGEPAGE`):
/// pages touched from now on in 2 MiB-aligned, fully mapped ranges may be
/// huge. Contents and protections do not change; an error (a kernel
/// without THP) only means small pages.
///
/// # Safety
/// The range must be page-aligned and lie in mappings the caller owns.
pub(crate) unsafe fn advise_huge(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: `madvise(MADV_HUGEPAGE)` changes no byte and no permission
    // of the caller's range (contract), only how later faults fill it.
    let r = unsafe { libc::madvise(addr.cast(), len, libc::MADV_HUGEPAGE) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmaps `addr..addr+len`; failures are ignored (nothing can be done
/// about them while dropping).
///
/// # Safety
/// The range must be a mapping (or part of one) the caller owns, and
/// nothing may use it afterwards: no reference, no generated code, no
/// pointer kept by the kernel (an alternate signal stack).
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: the caller owns the range and guarantees it is unused from
    // now on.
    unsafe { libc::munmap(addr.cast(), len) };
}

/// Maps `len` bytes of `file` at `file_offset`, private and read-write,
/// over `addr..addr+len` (copy-on-write: pages are read when touched,
/// writes stay private).
///
/// # Safety
/// The range must be page-aligned, lie in a mapping the caller owns, and
/// hold no bytes any Rust reference depends on (its contents are
/// replaced); `file_offset` must be page-aligned.
pub(crate) unsafe fn map_file_fixed(
    addr: *mut u8,
    len: usize,
    file: BorrowedFd<'_>,
    file_offset: libc::off_t,
) -> io::Result<()> {
    // SAFETY: `MAP_FIXED` replaces only the caller's own pages (contract);
    // the descriptor is open for the duration of the call (`BorrowedFd`);
    // the result is checked.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            file.as_raw_fd(),
            file_offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces `addr..addr+len` by fresh private zero pages, read-write.
///
/// # Safety
/// As [`map_file_fixed`].
pub(crate) unsafe fn map_zero_fixed(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: `MAP_FIXED` replaces only the caller's own pages (contract)
    // with anonymous zero pages; the result is checked.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the whole mapping `from..from+len` to `to..to+len`, replacing
/// whatever was mapped there, in one step (`mremap` with
/// `MREMAP_MAYMOVE | MREMAP_FIXED`): a thread touching `to..to+len`
/// meanwhile waits for the move (the kernel holds the address space's
/// lock) and then sees the moved pages, never a hole. When both
/// addresses are 2 MiB-aligned, a huge page moves as one page-table
/// entry. `from..from+len` is unmapped afterwards.
///
/// # Safety
/// `from..from+len` must be a whole mapping the caller owns and nothing
/// uses afterwards; `to..to+len` must lie in a mapping the caller owns
/// whose bytes no Rust reference depends on beyond what the moved pages
/// hold (the caller copies them first); both page-aligned.
pub(crate) unsafe fn move_fixed(from: *mut u8, len: usize, to: *mut u8) -> io::Result<()> {
    // SAFETY: both ranges are the caller's own (contract); `MREMAP_FIXED`
    // replaces only `to..to+len`; the result is checked.
    let p = unsafe {
        libc::mremap(
            from.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to.cast::<libc::c_void>(),
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
