//! `sigaltstack`: the per-thread stack signal handlers run on.

use super::mman::{self, Prot};

/// Whether this thread already has an alternate signal stack of at least
/// `min` bytes.
pub(crate) fn has_stack(min: usize) -> bool {
    // SAFETY: all-zero is a valid `stack_t` (a null pointer and integers).
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `old` is a valid exclusive
    // out-pointer for the call.
    let r = unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
    r == 0 && old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= min
}

/// Maps `size` bytes (plus a guard page below) and makes them this
/// thread's alternate signal stack. The mapping is deliberately never
/// freed: the kernel may use it until the thread exits, and a thread-local
/// destructor cannot know that no later signal will need it. Returns
/// whether it worked.
pub(crate) fn install_new(size: usize) -> bool {
    let page = super::sysconf::page_size();
    let len = size + page;
    let Ok(p) = mman::map_anon(len, Prot::ReadWrite, false) else {
        return false;
    };
    // SAFETY: the first page of the mapping we just made becomes a guard
    // page; nothing refers to it. Should it fail, the stack simply has no
    // guard (the mapping is still ours and valid).
    let _ = unsafe { mman::protect(p, page, Prot::None) };
    let st = libc::stack_t {
        // SAFETY: `page < len`, inside the mapping.
        ss_sp: unsafe { p.add(page) }.cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `st` describes `size` bytes of our own read-write mapping,
    // which is never unmapped while the kernel may use it (see above).
    if unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
        // SAFETY: the mapping is ours and was not handed to the kernel.
        unsafe { mman::unmap(p, len) };
        return false;
    }
    true
}
