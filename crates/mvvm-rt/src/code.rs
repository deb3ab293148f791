//! Executable memory for a loaded module, and the process-wide registry of
//! code ranges that the signal handler consults.
//!
//! The mapping is written while read-write, then switched to read-execute
//! (text) and read-only (constants, GOT): never writable and executable at
//! the same time. On aarch64 the instruction cache is flushed before the
//! switch (see [`crate::sys::icache::flush`]), and after it every other
//! core of the process is made to resynchronise its instruction stream
//! (see [`crate::sys::membarrier::sync_cores`]): the data cache and the
//! instruction cache are not coherent there, unlike on x86-64. qemu-user
//! needs neither (it translates from memory and watches code pages), real
//! hardware needs both.
//!
//! The text may be mapped copy-on-write from the `.aot` file instead of
//! copied ([`CodeMemory::map_file`]): its pages then come from the page
//! cache, shared with every process that runs the same object, and are
//! read only when executed. Only the bytes the loader writes afterwards
//! (relocations, a last partial page) become private copies, and only
//! those are flushed from the data cache on aarch64: flushing the whole
//! text would read all of it.

use crate::sys::mman::{self, Prot};
use crate::sys::{icache, membarrier, sched};
use crate::trap::{CodeInfo, SiteLookup, TrapLookup};
use std::sync::{Arc, RwLock};

/// Host page size.
pub(crate) fn page_size() -> usize {
    crate::sys::sysconf::page_size()
}

/// Rounds `n` up to a multiple of `align` (a power of two).
pub(crate) fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// An anonymous mapping holding a module's code and read-only data.
#[derive(Debug)]
pub struct CodeMemory {
    base: *mut u8,
    len: usize,
    /// Bytes at the start that become read+execute; the rest read-only.
    text_len: usize,
    published: bool,
    /// Whether part of the text is mapped from a file.
    file_backed: bool,
    /// Pages (offset / page size) written through [`CodeMemory::write`]:
    /// with a file-backed text, the only ones whose instruction cache
    /// needs flushing.
    written_pages: Vec<usize>,
}

// SAFETY: after `publish` the mapping is immutable; before it, it is only
// reachable through `&mut CodeMemory`.
unsafe impl Send for CodeMemory {}
// SAFETY: as above, shared access only reads.
unsafe impl Sync for CodeMemory {}

impl CodeMemory {
    /// Maps `len` bytes read-write, zeroed; the first `text_len` bytes (a
    /// multiple of the page size) will become executable.
    pub fn new(len: usize, text_len: usize) -> std::io::Result<CodeMemory> {
        let len = align_up(len.max(1), page_size());
        let p = mman::map_anon(len, Prot::ReadWrite, false)?;
        Ok(CodeMemory {
            base: p,
            len,
            text_len: text_len.min(len),
            published: false,
            file_backed: false,
            written_pages: Vec::new(),
        })
    }

    /// Replaces `offset..offset + len` (page aligned, inside the mapping)
    /// by a private copy-on-write mapping of `file` from `file_offset`
    /// (page aligned): pages are read from the file when first touched.
    pub(crate) fn map_file(
        &mut self,
        offset: usize,
        len: usize,
        file: &std::fs::File,
        file_offset: u64,
    ) -> std::io::Result<()> {
        use std::os::fd::AsFd;
        let page = page_size();
        let in_bounds = offset.checked_add(len).is_some_and(|end| end <= self.len);
        if self.published || !in_bounds || !offset.is_multiple_of(page) || !len.is_multiple_of(page)
        {
            return Err(std::io::Error::other(
                "file mapping outside the code memory",
            ));
        }
        let file_offset = libc::off_t::try_from(file_offset)
            .ok()
            .filter(|o| (*o as u64).is_multiple_of(page as u64))
            .ok_or_else(|| std::io::Error::other("misaligned file offset"))?;
        // SAFETY: the range is page aligned and inside our own mapping
        // (checked above); `&mut self` means no slice from `bytes_mut` is
        // alive, and nothing else refers to the unpublished mapping. The
        // file offset is page aligned (checked).
        unsafe { mman::map_file_fixed(self.base.add(offset), len, file.as_fd(), file_offset)? };
        self.file_backed = true;
        Ok(())
    }

    /// Writes `bytes` at `offset` (before [`CodeMemory::publish`]) and
    /// remembers the pages touched.
    ///
    /// # Panics
    /// If the range is outside the mapping (a loader bug: every caller
    /// checks its offsets against the layout first).
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.bytes_mut()[offset..offset + bytes.len()].copy_from_slice(bytes);
        let page = page_size();
        for p in offset / page..=(offset + bytes.len() - 1) / page {
            if self.written_pages.last() != Some(&p) {
                self.written_pages.push(p);
            }
        }
    }

    /// The whole mapping, read only (reading a file-backed page faults it
    /// in from the page cache but does not copy it).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and readable for its whole
        // life (read-write, then read-execute or read-only); `&self`
        // excludes the writable slice of `bytes_mut`.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// Start address.
    pub fn base(&self) -> usize {
        self.base as usize
    }

    /// Mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The whole mapping, writable; only before [`CodeMemory::publish`].
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        assert!(!self.published, "code memory written after publish");
        // SAFETY: the mapping is `len` bytes, read-write until publish, and
        // `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }

    /// Switches the text part to read+execute and the rest to read-only.
    pub fn publish(&mut self) -> std::io::Result<()> {
        if self.file_backed {
            // Only what was written: pages still mapped from the file are
            // made coherent by the kernel when faulted in executable.
            let page = page_size();
            self.written_pages.sort_unstable();
            self.written_pages.dedup();
            for &p in &self.written_pages {
                let start = p * page;
                if start >= self.text_len {
                    break;
                }
                // SAFETY: one page of our mapping, inside the text
                // (`start < text_len <= len`, both page multiples).
                unsafe { icache::flush(self.base.add(start), self.base.add(start + page)) };
            }
        } else {
            // SAFETY: the range lies inside our mapping (`text_len <= len`).
            unsafe { icache::flush(self.base, self.base.add(self.text_len)) };
        }
        if self.text_len > 0 {
            // SAFETY: a page-aligned sub-range of our own mapping (`base`
            // is page-aligned, `text_len` a multiple of the page size by
            // the contract of `new`), holding the finished code; `&mut
            // self` means no reference from `bytes_mut` is alive.
            unsafe { mman::protect(self.base, self.text_len, Prot::ReadExec)? };
        }
        if self.len > self.text_len {
            // SAFETY: as above, the rest of the mapping; it only loses
            // write access, and no `bytes_mut` slice is alive.
            unsafe {
                mman::protect(
                    self.base.add(self.text_len),
                    self.len - self.text_len,
                    Prot::Read,
                )?
            };
        }
        membarrier::sync_cores();
        self.published = true;
        Ok(())
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; nothing refers to it any more (the
        // module that owns us is gone, and with it every instance).
        unsafe { mman::unmap(self.base, self.len) };
    }
}

/// One registered range of generated code.
struct Registered {
    start: usize,
    end: usize,
    info: Arc<CodeInfo>,
}

/// Every range of generated code currently loaded, sorted by start.
static REGISTRY: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

/// Registers `info`'s text range; undone by dropping the returned guard.
pub(crate) fn register(info: Arc<CodeInfo>) -> RegistrationGuard {
    let (start, end) = (info.text_start, info.text_end);
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let pos = reg.partition_point(|r| r.start < start);
    reg.insert(pos, Registered { start, end, info });
    RegistrationGuard { start }
}

/// Removes a code range from the registry when dropped.
#[derive(Debug)]
pub(crate) struct RegistrationGuard {
    start: usize,
}

impl Drop for RegistrationGuard {
    fn drop(&mut self) {
        let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        reg.retain(|r| r.start != self.start);
    }
}

/// Whether `pc` is inside registered code, and what trap is there.
///
/// Called from the signal handler, so it never allocates and never blocks
/// indefinitely: while another thread is registering a module (the write
/// lock is held for a `Vec` insert only) it retries with `sched_yield`, and
/// gives up after a bounded number of tries (the fault is then "not ours";
/// that only happens if this very thread faulted while holding the lock,
/// which is a runtime bug that would otherwise deadlock).
pub(crate) fn lookup_pc(pc: usize) -> Option<TrapLookup> {
    let mut tries = 0u32;
    let reg = loop {
        match REGISTRY.try_read() {
            Ok(r) => break r,
            Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                tries += 1;
                if tries > 1_000_000 {
                    return None;
                }
                sched::yield_now();
            }
        }
    };
    let i = reg.partition_point(|r| r.start <= pc);
    if i == 0 {
        return None;
    }
    let r = &reg[i - 1];
    if pc >= r.end {
        return None;
    }
    Some(r.info.lookup(pc))
}

/// Whether `pc` is inside registered code, trying the registry's lock
/// once: for a handler of an asynchronous signal, which may interrupt this
/// very thread while it holds the lock (or waits for it). `None` when the
/// lock is not free at once; the caller tries again later.
pub(crate) fn lookup_pc_now(pc: usize) -> Option<TrapLookup> {
    let reg = match REGISTRY.try_read() {
        Ok(r) => r,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    let i = reg.partition_point(|r| r.start <= pc);
    let r = reg.get(i.checked_sub(1)?)?;
    if pc >= r.end {
        return None;
    }
    Some(r.info.lookup(pc))
}

/// The function containing `pc` (index and name), for trap descriptions,
/// and why its trap sites cannot be trusted, if they cannot (checked
/// here, on first use). Unlike [`lookup_pc`] this may block; never call
/// it from a signal handler.
pub(crate) fn func_at(pc: usize) -> Option<(Option<u32>, Option<String>, Option<String>)> {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let i = reg.partition_point(|r| r.start <= pc);
    if i == 0 || pc >= reg[i - 1].end {
        return None;
    }
    let info = &reg[i - 1].info;
    let f = info.range_at(pc)?;
    Some((Some(f.index), info.name(&f), info.damage(&f)))
}

/// Runs `f` on what the registry knows of the return address `pc` (see
/// [`CodeInfo::call_site`]): the exception walk's view of one frame. The
/// registry stays read-locked while `f` runs, so `f` must not load or
/// drop a module. May block; never call it from a signal handler.
pub(crate) fn with_call_site<R>(pc: usize, f: impl FnOnce(SiteLookup<'_>) -> R) -> R {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let at = pc.wrapping_sub(1);
    let i = reg.partition_point(|r| r.start <= at);
    match i.checked_sub(1).map(|i| &reg[i]) {
        Some(r) if at < r.end => f(r.info.call_site(pc)),
        _ => f(SiteLookup::NotWasm),
    }
}

/// Runs `f` on what the registry knows of the return address `pc` for the
/// frame walk of `crate::frame_walk`: `None` when `pc` is not in a wasm
/// body (the walk ends), else the function, the return offset in the body
/// and the site of the module's frame map there, if any. The registry
/// stays read-locked while `f` runs. May block; never call it from a
/// signal handler.
pub(crate) fn with_frame_site<R>(
    pc: usize,
    f: impl FnOnce(Option<crate::frame_walk::FrameSiteLookup<'_>>) -> R,
) -> R {
    use mvvm_abi::frame_map::FrameBody;
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let at = pc.wrapping_sub(1);
    let i = reg.partition_point(|r| r.start <= at);
    let Some(r) = i.checked_sub(1).map(|i| &reg[i]).filter(|r| at < r.end) else {
        return f(None);
    };
    let info = &r.info;
    let Some(g) = info.range_at(at) else {
        return f(None);
    };
    if !g.body() {
        return f(None);
    }
    let ret_offset = u32::try_from(pc - g.start).unwrap_or(u32::MAX);
    let body = info.frames.as_ref().and_then(|maps| match g.kind {
        crate::trap::RangeKind::Clone => maps.body(g.index, FrameBody::Resume),
        _ => maps
            .body(g.index, FrameBody::Hot)
            .or_else(|| maps.body(g.index, FrameBody::Whole)),
    });
    let kind = match (g.kind, body.map(|b| b.body)) {
        (crate::trap::RangeKind::Clone, _) => 2,
        (_, Some(FrameBody::Hot)) => 1,
        _ => 0,
    };
    f(Some(crate::frame_walk::FrameSiteLookup {
        func: g.index,
        ret_offset,
        site: body.and_then(|b| b.site(ret_offset)),
        saves: body.map_or(&[], |b| &b.saves[..]),
        maps: info.frames.as_ref(),
        body: kind,
    }))
}
