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
//!
//! A module with a checkpoint policy also reserves address space right
//! after its mapping, a [`CodeArena`], where resume clones compiled at run
//! time are placed (`crate::jit_clone`): next to the text so that the
//! clones' PC-relative calls reach it. Each clone gets fresh pages, written
//! while read-write, then read-execute, and never written again. A clone
//! the arena cannot hold gets [`CodePages`] of its own, the same way. The
//! registry holds those clones' ranges beside the modules'.

use crate::jit_clone::JitClone;
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
    /// As [`CodeMemory::new`], followed by a [`CodeArena`] of `arena_len`
    /// bytes (a multiple of the page size) reserved right after the
    /// mapping (none when `arena_len` is 0). Both come from one `mmap`, so
    /// the arena is adjacent whatever else the process maps; the arena
    /// costs address space only (inaccessible and not committed until a
    /// clone is placed).
    pub(crate) fn with_arena(
        len: usize,
        text_len: usize,
        arena_len: usize,
    ) -> std::io::Result<(CodeMemory, Option<CodeArena>)> {
        if arena_len == 0 {
            return Ok((CodeMemory::new(len, text_len)?, None));
        }
        let page = page_size();
        let len = align_up(len.max(1), page);
        let arena_len = align_up(arena_len, page);
        let total = len
            .checked_add(arena_len)
            .ok_or_else(|| std::io::Error::other("code arena too large"))?;
        // Not `noreserve`: a private mapping is charged to the commit limit
        // when it becomes writable, so the code part is charged as
        // `CodeMemory::new` charges it, and arena pages only when a clone
        // is placed in them.
        let p = mman::map_anon(total, Prot::None, false)?;
        // SAFETY: the first `len` bytes of the mapping just made, which
        // nothing else refers to yet.
        if let Err(e) = unsafe { mman::protect(p, len, Prot::ReadWrite) } {
            // SAFETY: our fresh mapping, not handed out.
            unsafe { mman::unmap(p, total) };
            return Err(e);
        }
        let code = CodeMemory::over(p, len, text_len);
        let arena = CodeArena {
            // SAFETY: `len < total`: still inside the mapping.
            base: unsafe { p.add(len) },
            len: arena_len,
            used: 0,
        };
        Ok((code, Some(arena)))
    }

    /// Maps `len` bytes read-write, zeroed; the first `text_len` bytes (a
    /// multiple of the page size) will become executable.
    pub fn new(len: usize, text_len: usize) -> std::io::Result<CodeMemory> {
        let len = align_up(len.max(1), page_size());
        let p = mman::map_anon(len, Prot::ReadWrite, false)?;
        Ok(CodeMemory::over(p, len, text_len))
    }

    /// The code memory of a fresh read-write mapping of `len` bytes at `p`
    /// (page multiples), the first `text_len` of which become executable.
    fn over(p: *mut u8, len: usize, text_len: usize) -> CodeMemory {
        CodeMemory {
            base: p,
            len,
            text_len: text_len.min(len),
            published: false,
            file_backed: false,
            written_pages: Vec::new(),
        }
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

/// Address space reserved right after a module's [`CodeMemory`] (see
/// [`CodeMemory::with_arena`]) for the resume clones compiled at run time.
/// Inaccessible until a clone is placed; [`CodeArena::place`] hands out
/// each clone fresh pages (a bump allocator: the used part only grows),
/// writes them while read-write and makes them read-execute: no page is
/// ever writable and executable at once, and no executable page is
/// written again.
#[derive(Debug)]
pub(crate) struct CodeArena {
    base: *mut u8,
    len: usize,
    /// Bytes handed out (a multiple of the page size): `base..base + used`
    /// holds placed code (read-execute), the rest is inaccessible.
    used: usize,
}

// SAFETY: the placed pages are immutable; the rest is only written through
// `&mut CodeArena` (`place`), which the owner serialises.
unsafe impl Send for CodeArena {}
// SAFETY: as above, shared access only reads placed pages.
unsafe impl Sync for CodeArena {}

impl CodeArena {
    /// The address the next [`CodeArena::place`] writes at (page aligned).
    pub fn next_addr(&self) -> usize {
        self.base as usize + self.used
    }

    /// Bytes still free.
    pub fn free(&self) -> usize {
        self.len - self.used
    }

    /// Start and end of the whole reservation.
    pub fn span(&self) -> (usize, usize) {
        (self.base as usize, self.base as usize + self.len)
    }

    /// Places `bytes` (finished code, patched for [`CodeArena::next_addr`])
    /// at [`CodeArena::next_addr`] and makes them executable; returns
    /// their address. The pages are used up even on failure (their state
    /// is then unknown: they are never handed out again).
    pub fn place(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let size = align_up(bytes.len().max(1), page_size());
        if size > self.free() {
            return Err(std::io::Error::other("code arena full"));
        }
        // SAFETY: `used + size <= len`: inside the reservation.
        let at = unsafe { self.base.add(self.used) };
        self.used += size;
        // SAFETY: `at..at + size` lies in the reservation (checked above),
        // was never handed out before (`used` only grows) so nothing refers
        // to it, and is page aligned (`base` and `used` are).
        unsafe { mman::protect(at, size, Prot::ReadWrite)? };
        // SAFETY: the destination was just made writable, holds `size >=
        // bytes.len()` bytes, and cannot overlap `bytes` (a heap or stack
        // buffer of the caller, never inside the reservation's unplaced
        // part).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len()) };
        // SAFETY: inside the mapping (above), `at <= at + len`.
        unsafe { icache::flush(at, at.add(bytes.len())) };
        // SAFETY: as for the first `protect`: our fresh pages, now holding
        // finished code; no reference into them exists.
        if let Err(e) = unsafe { mman::protect(at, size, Prot::ReadExec) } {
            // SAFETY: as above; best effort, the pages are never used.
            let _ = unsafe { mman::protect(at, size, Prot::None) };
            return Err(e);
        }
        membarrier::sync_cores();
        Ok(at as usize)
    }

    /// The placed bytes at `addr..addr + len`, if they lie in the placed
    /// part (readable, immutable).
    #[cfg(test)]
    pub fn bytes_at(&self, addr: usize, len: usize) -> Option<&[u8]> {
        let off = addr.checked_sub(self.base as usize)?;
        if off.checked_add(len)? > self.used {
            return None;
        }
        // SAFETY: inside the placed part (checked): mapped read-execute
        // for the arena's life and never written again.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(off), len) })
    }
}

#[cfg(test)]
impl CodeArena {
    /// Marks all but `leave` bytes (rounded up to pages) as handed out, as
    /// if clones had filled them: an arena that is nearly full. The pages
    /// given up stay inaccessible.
    pub fn use_up(&mut self, leave: usize) {
        let leave = align_up(leave, page_size()).min(self.len);
        self.used = self.used.max(self.len - leave);
    }
}

impl Drop for CodeArena {
    fn drop(&mut self) {
        // SAFETY: we own the reservation; its owner (the module) dropped
        // the registrations of the code in it first, and nothing runs that
        // code any more (no instance of the module is left).
        unsafe { mman::unmap(self.base, self.len) };
    }
}

/// Pages of their own for one resume clone that no arena could hold
/// (`crate::jit_clone`): mapped read-write anywhere (near a hint),
/// written once, then read-execute for their whole life, as an arena's
/// pages ([`CodeArena::place`]): never writable and executable at once.
#[derive(Debug)]
pub(crate) struct CodePages {
    base: *mut u8,
    len: usize,
    /// Whether the code is in and the pages read-execute.
    sealed: bool,
}

// SAFETY: the pages are written only through `&mut CodePages` before
// `seal`, and are immutable after it.
unsafe impl Send for CodePages {}
// SAFETY: as above, shared access only reads sealed pages.
unsafe impl Sync for CodePages {}

impl CodePages {
    /// Fresh read-write pages for `len` bytes, at `hint` if that range is
    /// free (see [`mman::map_anon_near`]), else anywhere: code to be
    /// placed there is laid out for [`CodePages::addr`] afterwards.
    pub fn map(len: usize, hint: usize) -> std::io::Result<CodePages> {
        let len = align_up(len.max(1), page_size());
        let hint = hint & !(page_size() - 1);
        let base = mman::map_anon_near(len, Prot::ReadWrite, hint)?;
        Ok(CodePages {
            base,
            len,
            sealed: false,
        })
    }

    /// Where the pages start.
    pub fn addr(&self) -> usize {
        self.base as usize
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes `bytes` (finished code, laid out for [`CodePages::addr`]) at
    /// the start of the pages and makes them read-execute; once only.
    pub fn seal(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.sealed || bytes.len() > self.len {
            return Err(std::io::Error::other(
                "code pages already sealed, or too small",
            ));
        }
        // SAFETY: our fresh read-write mapping of `len >= bytes.len()`
        // bytes (checked), not sealed yet, so nothing executes or refers
        // to it; `bytes` is the caller's buffer, outside it.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base, bytes.len()) };
        // SAFETY: inside our mapping, `base <= base + bytes.len()`.
        unsafe { icache::flush(self.base, self.base.add(bytes.len())) };
        // SAFETY: our whole page-aligned mapping, holding finished code; no
        // reference into it exists. The pages only lose write access.
        unsafe { mman::protect(self.base, self.len, Prot::ReadExec)? };
        membarrier::sync_cores();
        self.sealed = true;
        Ok(())
    }

    /// The sealed bytes at `addr..addr + len`, if they lie in the pages.
    #[cfg(test)]
    pub fn bytes_at(&self, addr: usize, len: usize) -> Option<&[u8]> {
        let off = addr.checked_sub(self.base as usize)?;
        if !self.sealed || off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: inside the mapping (checked), read-execute and never
        // written again once sealed (checked).
        Some(unsafe { std::slice::from_raw_parts(self.base.add(off), len) })
    }
}

impl Drop for CodePages {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; its owner dropped the clone's
        // registration first, and nothing runs the clone any more (no
        // instance of its module is left).
        unsafe { mman::unmap(self.base, self.len) };
    }
}

/// What a registered range holds: a module's text, or one resume clone
/// placed at run time.
enum Registrant {
    Module(Arc<CodeInfo>),
    Clone(Arc<JitClone>),
}

impl Registrant {
    /// See [`CodeInfo::lookup`]: allocation-free.
    fn lookup(&self, pc: usize) -> TrapLookup {
        match self {
            Registrant::Module(info) => info.lookup(pc),
            Registrant::Clone(c) => c.lookup(pc),
        }
    }

    /// See [`CodeInfo::call_site`].
    fn call_site(&self, pc: usize) -> SiteLookup<'_> {
        match self {
            Registrant::Module(info) => info.call_site(pc),
            Registrant::Clone(c) => c.call_site(pc),
        }
    }
}

/// One registered range of generated code.
struct Registered {
    start: usize,
    end: usize,
    info: Registrant,
}

/// Every range of generated code currently loaded, sorted by start.
static REGISTRY: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

/// Registers `info`'s text range; undone by dropping the returned guard.
pub(crate) fn register(info: Arc<CodeInfo>) -> RegistrationGuard {
    let (start, end) = (info.text_start, info.text_end);
    insert(start, end, Registrant::Module(info))
}

/// Registers a resume clone placed at run time (its own range, in its
/// module's arena, outside the module's text); undone by dropping the
/// returned guard. Registered before its entry is handed out, so the
/// signal handler knows it before it can run.
pub(crate) fn register_clone(clone: Arc<JitClone>) -> RegistrationGuard {
    let (start, end) = (clone.start, clone.end);
    insert(start, end, Registrant::Clone(clone))
}

fn insert(start: usize, end: usize, info: Registrant) -> RegistrationGuard {
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
    match &reg[i - 1].info {
        Registrant::Module(info) => {
            let f = info.range_at(pc)?;
            Some((Some(f.index), info.name(&f), info.damage(&f)))
        }
        Registrant::Clone(c) => Some((Some(c.func), c.module.name(&c.range()), None)),
    }
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
    // A clone placed at run time has no frame map of its own: it is
    // walked as an object's clone without one (the module's maps still
    // give the saves of its probe trampoline and import stubs).
    let (info, g, jit) = match &r.info {
        Registrant::Module(info) => match info.range_at(at) {
            Some(g) => (&**info, g, false),
            None => return f(None),
        },
        Registrant::Clone(c) => (&*c.module, c.range(), true),
    };
    if !g.body() {
        return f(None);
    }
    let ret_offset = u32::try_from(pc - g.start).unwrap_or(u32::MAX);
    let maps = info.frames.as_ref().filter(|_| !jit);
    let body = maps.and_then(|maps| match g.kind {
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
