//! Linear memory: a `PROT_NONE` reservation of
//! [`MEMORY_RESERVATION`] bytes whose start never moves; the first
//! `pages * 64 KiB` are read-write. Accesses beyond fault in the remainder
//! and are reported as out-of-bounds traps, so generated code needs no
//! bounds checks.
//!
//! ```text
//!  base                      base+length                 base+8 GiB+64 KiB
//!  |  committed (RW)          |  reserved (PROT_NONE)  ...  |
//! ```
//!
//! With dirty tracking on ([`LinearMemory::start_dirty_tracking`], see
//! `dirty.rs`), the committed part is read-only except for the 64 KiB
//! chunks written since tracking started, which the fault handler makes
//! writable one by one as it records them.

mod cow;
mod dirty;
mod huge;
pub(crate) mod precopy;

pub(crate) use dirty::{handle_write_fault, protect_ahead};

use crate::sys::mman::{self, Prot};
use crate::vmctx::VMMemory;
use mvvm_abi::meta::MemoryType;
use mvvm_abi::vmctx::{MEMORY_RESERVATION, WASM_PAGE_SIZE};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The most pages a 32-bit memory can have.
pub const MAX_PAGES: u64 = 65536;

/// Creating a memory failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The type asks for more than 4 GiB, or is shared without a maximum.
    #[error("unsupported memory type: {0}")]
    Unsupported(String),
    /// The reservation could not be made.
    #[error("cannot reserve linear memory: {0}")]
    Os(#[from] std::io::Error),
}

/// What generated code sees of one linear memory: the reservation and its
/// `VMMemory`. Owned by one store through an `Arc` that nothing else holds
/// (an unshared memory), or by every store of a program's threads and the
/// [`SharedMemory`] handles (a shared memory: one reservation, one
/// `VMMemory`, so a grow by any thread is seen by all).
#[derive(Debug)]
pub(crate) struct Reservation {
    /// The `VMMemory` generated code reads, from `Box::into_raw` (freed in
    /// `Drop`). Never turned into a reference: its `length` is written by
    /// whichever thread grows the memory, so Rust reads and writes it only
    /// atomically (`length`, `grow`).
    vm: NonNull<VMMemory>,
    /// Start of the reservation (the `VMMemory`'s `base`, which never
    /// changes).
    base: *mut u8,
    ty: MemoryType,
    max_pages: u64,
    /// Serialises grows: two threads growing a shared memory at once must
    /// each get the old size the other left.
    grow_lock: Mutex<()>,
}

// SAFETY: a `Reservation` owns its allocations (the boxed `VMMemory`, the
// mapping at `base`); they belong to no thread, so dropping them on any
// thread is fine (`Send`). Shared access (`Sync`) never creates a Rust
// reference to mutable state: `base`, `ty` and `max_pages` are never
// written after construction; `VMMemory::length` is read and written only
// with atomic operations (here, and by generated code with an atomic load
// for a shared memory); grows are serialised by `grow_lock`; the bytes of
// the memory are reached from `&Reservation` only through raw pointers
// (`read`, `write`), and as Rust slices only through `LinearMemory`, which
// hands them out only while its `Arc` is the only one (so no other thread
// can reach the reservation at all). Only a shared memory's reservation is
// ever reachable by more than one `Arc` (`SharedMemory` requires a shared
// type).
unsafe impl Send for Reservation {}
// SAFETY: see `Send` above.
unsafe impl Sync for Reservation {}

impl Reservation {
    /// Reserves a memory of type `ty` and commits its initial pages.
    fn new(ty: MemoryType) -> Result<Reservation, MemoryError> {
        // Validation refuses such a module; a host-made memory must not
        // slip past it (a shared memory never moves nor shrinks, and its
        // maximum bounds what every thread may see).
        if ty.shared && ty.limits.max.is_none() {
            return Err(MemoryError::Unsupported(
                "shared memory without a maximum".into(),
            ));
        }
        if ty.limits.min > MAX_PAGES {
            return Err(MemoryError::Unsupported(format!(
                "{} initial pages (at most {MAX_PAGES})",
                ty.limits.min
            )));
        }
        let base = reserve_aligned()?;
        let vm = Box::into_raw(Box::new(VMMemory { base, length: 0 }));
        let r = Reservation {
            // `Box::into_raw` never returns null.
            vm: NonNull::new(vm).unwrap_or_else(|| unreachable!()),
            base,
            ty,
            max_pages: ty.limits.max.unwrap_or(MAX_PAGES).min(MAX_PAGES),
            grow_lock: Mutex::new(()),
        };
        if ty.limits.min > 0 && r.grow(ty.limits.min).is_none() {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(r)
    }

    /// The current length in bytes.
    fn length(&self) -> u64 {
        // SAFETY: `vm` is the live, boxed `VMMemory` this reservation owns;
        // its `u64` field is 8-byte aligned (`repr(C)`, checked by the
        // vmctx layout tests) and every concurrent access to it is atomic
        // (see the `Sync` argument).
        unsafe { AtomicU64::from_ptr(&raw mut (*self.vm.as_ptr()).length).load(Ordering::SeqCst) }
    }

    /// Grows by `delta` pages: the old size in pages, or `None`.
    fn grow(&self, delta: u64) -> Option<u64> {
        let _serial = self
            .grow_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let start = self.length();
        let old = start / WASM_PAGE_SIZE;
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            return None;
        }
        if delta == 0 {
            return Some(old);
        }
        let len = (delta * WASM_PAGE_SIZE) as usize;
        // SAFETY: `start..start+len` lies inside our reservation (the new
        // size is at most 4 GiB, the reservation is larger), page-aligned
        // (wasm pages are multiples of host pages); the pages were
        // inaccessible, so no reference into them exists and no thread
        // uses them; they only become read-write.
        let r = unsafe { mman::protect(self.base.add(start as usize), len, Prot::ReadWrite) };
        if r.is_err() {
            return None;
        }
        // An atomic store: generated code of other threads may read the
        // length of a shared memory at any time (`memory.size` of a shared
        // memory is an atomic load), and must see the pages made
        // accessible above once it sees the new length.
        // SAFETY: as in `length`.
        unsafe {
            AtomicU64::from_ptr(&raw mut (*self.vm.as_ptr()).length)
                .store(new * WASM_PAGE_SIZE, Ordering::SeqCst);
        }
        Some(old)
    }

    /// The range `offset..offset+len` of the accessible bytes, if it is
    /// one (the memory never shrinks, so it stays one).
    fn range(&self, offset: u64, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len as u64)?;
        if end > self.length() {
            return None;
        }
        // SAFETY: `offset + len <= length`, inside the reservation.
        Some(unsafe { self.base.add(offset as usize) })
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; false (nothing
    /// copied) when they are not all accessible.
    fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(p) = self.range(offset, buf.len()) else {
            return false;
        };
        // SAFETY: `p..p+len` is accessible memory (checked: it is mapped
        // readable, and stays so); `buf` is a distinct Rust allocation (no
        // Rust reference into linear memory is alive while other threads
        // may run, see the `Sync` argument), `u8` needs no alignment. Wasm
        // threads may write these bytes meanwhile: the guest's own race,
        // whose bytes come out unspecified as wasm's memory model says
        // (the same raw copy Wasmtime makes for host access to a shared
        // memory).
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Copies `data` to `offset`; false (nothing copied) when the range is
    /// not all accessible.
    fn write(&self, offset: u64, data: &[u8]) -> bool {
        let Some(p) = self.range(offset, data.len()) else {
            return false;
        };
        // SAFETY: as in `read`, in the other direction: the range is
        // accessible (read-write, or write-tracked: a fault marks the
        // chunk and the copy is retried).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: we own the reservation and the `VMMemory`; the last
        // `Arc` is going, so no store, instance or handle uses them any
        // more (stores drop their instances with their memories).
        unsafe {
            mman::unmap(self.base, MEMORY_RESERVATION as usize);
            drop(Box::from_raw(self.vm.as_ptr()));
        }
    }
}

/// A shared linear memory (threads proposal), usable by every thread of a
/// program: each thread's store imports it ([`SharedMemory::attach`]), and
/// all see one reservation and one length (a grow by any thread is seen by
/// all). `Send` and `Sync` (the compiler checks it: the handle is an `Arc`
/// of a `Sync` reservation); cheap to clone.
///
/// Host code reaches its bytes by copying ([`SharedMemory::read`],
/// [`SharedMemory::write`]), never through a slice: other threads may be
/// running wasm on it.
#[derive(Debug, Clone)]
pub struct SharedMemory(pub(crate) Arc<Reservation>);

impl SharedMemory {
    /// A new shared memory of type `ty` (which must be shared, with a
    /// maximum).
    pub fn new(ty: MemoryType) -> Result<SharedMemory, MemoryError> {
        if !ty.shared {
            return Err(MemoryError::Unsupported(
                "a shared memory needs a shared memory type".into(),
            ));
        }
        Ok(SharedMemory(Arc::new(Reservation::new(ty)?)))
    }

    /// Its type (minimum: the initial size).
    pub fn ty(&self) -> MemoryType {
        self.0.ty
    }

    /// Current size in pages.
    pub fn size_pages(&self) -> u64 {
        self.0.length() / WASM_PAGE_SIZE
    }

    /// Current size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.0.length()
    }

    /// Grows by `delta` pages; the old size, or `None` beyond the maximum.
    pub fn grow(&self, delta: u64) -> Option<u64> {
        self.0.grow(delta)
    }

    /// Copies the bytes at `offset` into `buf`; false (nothing copied) when
    /// they are not all within the memory.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        self.0.read(offset, buf)
    }

    /// Copies `data` to `offset`; false (nothing copied) when the range is
    /// not all within the memory. Not while a checkpoint of the program
    /// that uses the memory is being taken (it reads the memory whole,
    /// with the program's threads stopped): call it from the program's
    /// threads (host functions), which a checkpoint stops.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        self.0.write(offset, data)
    }

    /// Whether `self` and `other` are the same memory.
    pub fn same(&self, other: &SharedMemory) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One linear memory of a store (instances refer to it by pointer).
#[derive(Debug)]
pub(crate) struct LinearMemory {
    /// The reservation; the only `Arc` of it for an unshared memory.
    res: Arc<Reservation>,
    /// Dirty-chunk tracker, claimed on the first
    /// [`Self::start_dirty_tracking`].
    tracker: Option<dirty::Tracker>,
    /// Byte ranges a snapshot file is mapped over
    /// ([`Self::map_file_private`]): small pages, until converted.
    file_mapped: Vec<(usize, usize)>,
    /// The thread moving them onto huge pages
    /// ([`Self::convert_to_huge_pages`]); dropped (joined) before the
    /// tracker and the reservation.
    converter: Option<huge::Converter>,
}

impl LinearMemory {
    /// Reserves and commits a memory of type `ty`.
    pub fn new(ty: MemoryType) -> Result<LinearMemory, MemoryError> {
        Ok(LinearMemory {
            res: Arc::new(Reservation::new(ty)?),
            tracker: None,
            file_mapped: Vec::new(),
            converter: None,
        })
    }

    /// A store's view of the shared memory `m`.
    pub fn from_shared(m: &SharedMemory) -> LinearMemory {
        LinearMemory {
            res: Arc::clone(&m.0),
            tracker: None,
            file_mapped: Vec::new(),
            converter: None,
        }
    }

    /// A handle on this memory for other threads, if it is shared. Takes
    /// `&mut self`: no slice of [`Self::data`] can be alive meanwhile,
    /// which is what makes `data`'s uniqueness test sound.
    pub fn share(&mut self) -> Option<SharedMemory> {
        self.res
            .ty
            .shared
            .then(|| SharedMemory(Arc::clone(&self.res)))
    }

    /// The type it was created with (minimum = initial size).
    pub fn ty(&self) -> MemoryType {
        self.res.ty
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.res.length() / WASM_PAGE_SIZE
    }

    /// Current size in bytes.
    fn length(&self) -> u64 {
        self.res.length()
    }

    /// The structure generated code reads.
    pub fn vm_ptr(&self) -> *mut VMMemory {
        self.res.vm.as_ptr()
    }

    /// Grows by `delta` pages; the old size in pages, or `None` when it
    /// would exceed the maximum (or the system refuses).
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.res.grow(delta)?;
        if let Some(t) = &self.tracker {
            t.grown((old * WASM_PAGE_SIZE) as usize, self.res.length() as usize);
        }
        Some(old)
    }

    /// Copies `data` to `offset` through a raw pointer (instantiation's
    /// data segments, `memory.init`): valid whether or not other threads
    /// use the memory. False (nothing copied) when out of bounds.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> bool {
        self.res.write(offset, data)
    }

    /// Starts (or restarts) a dirty-tracking period: every chunk counts as
    /// clean and the accessible memory becomes read-only; each chunk
    /// written afterwards (by wasm or by host code, on any thread) faults
    /// once, is marked dirty and made writable again. Returns `false` when
    /// no tracker slot is free (the memory is then not tracked: snapshots
    /// stay full).
    pub fn start_dirty_tracking(&mut self) -> std::io::Result<bool> {
        let (base, len) = (self.res.base, self.length() as usize);
        let Some(t) = self.claim_tracker() else {
            return Ok(false);
        };
        // Host code may write into the memory before wasm is entered: the
        // fault handler must be in place first.
        crate::signals::prepare_thread();
        // SAFETY: `base..base+length` is this memory's accessible part;
        // writes through `data_mut` slices and raw copies keep working
        // (they fault once per chunk and are retried).
        unsafe { t.start(base, len)? };
        Ok(true)
    }

    /// The tracker, claimed if not yet (`None` when no slot is free).
    fn claim_tracker(&mut self) -> Option<&dirty::Tracker> {
        if self.tracker.is_none() {
            self.tracker = dirty::Tracker::claim();
        }
        self.tracker.as_ref()
    }

    /// Asks for transparent huge pages for this memory (what it commits
    /// from now on; the base is aligned to them): a periodic checkpoint
    /// written in the background then protects a large memory (tracked
    /// in 2 MiB units, `dirty::unit_for`) at the cost of one page-table
    /// entry per 2 MiB instead of per 4 KiB. Without huge pages in the
    /// kernel, nothing changes.
    pub fn advise_huge_pages(&mut self) {
        // SAFETY: the whole reservation is this memory's own mapping,
        // page-aligned; advising changes no byte nor protection.
        let r = unsafe {
            mman::advise_huge(
                self.res.base,
                mvvm_abi::vmctx::MEMORY_GUARD_OFFSET_LIMIT as usize,
            )
        };
        if let Err(e) = r {
            tracing::debug!("no huge pages for linear memory: {e}");
        }
    }

    /// A restored run with periodic checkpoints written in the
    /// background: starts dirty tracking now, while the snapshot file's
    /// mapping has no page-table entries to protect (so no checkpoint's
    /// pause protects the whole memory), and starts moving the file-mapped
    /// part onto huge pages in a thread (`memory/huge.rs`), so that a
    /// checkpoint's pause protects 2 MiB per page-table entry, as in a
    /// fresh run, once it is done. Memories under
    /// [`dirty::HUGE_FROM`] bytes (tracked in 64 KiB chunks, which would
    /// split huge pages) are only tracked. Returns whether tracking runs.
    pub fn convert_to_huge_pages(&mut self) -> std::io::Result<bool> {
        let tracked = self.tracker.as_ref().is_some_and(|t| t.active());
        if !tracked && !self.start_dirty_tracking()? {
            return Ok(false);
        }
        let len = self.length() as usize;
        if dirty::unit_for(len) != dirty::HUGE_UNIT || self.converter.is_some() {
            return Ok(true);
        }
        let Some(t) = self.tracker.as_ref() else {
            return Ok(true);
        };
        // Until its units are on huge pages (the converter turns this off
        // when done; never without THP), the units the program writes are
        // protected ahead of each periodic checkpoint, beside the program
        // (`dirty::protect_ahead`), not 4 KiB at a time in its pause.
        t.set_protect_ahead(true);
        // SAFETY: `base` is the memory `t` tracks; the converter is
        // dropped (joined) before the tracker and the reservation
        // (`Drop`), and before the mapping is replaced
        // (`map_file_private`, `map_zero`).
        self.converter =
            unsafe { huge::Converter::start(self.res.base, &self.file_mapped, t.view()) };
        Ok(true)
    }

    /// [`Self::convert_to_huge_pages`]'s work done at once on this thread
    /// (tracking must run): how many units were converted.
    #[cfg(test)]
    fn convert_to_huge_pages_now(&mut self) -> usize {
        let t = self.tracker.as_ref().expect("tracked");
        let units = huge::units_of(&self.file_mapped);
        let stop = std::sync::atomic::AtomicBool::new(false);
        // SAFETY: the memory `t` tracks, mapped during the call.
        unsafe { huge::convert(self.res.base, &units, t.view(), &stop) }
    }

    /// Takes the memory's copy-on-write image for a snapshot written while
    /// the program runs on (see `memory/cow.rs`): `needed` are the chunks
    /// the snapshot reads (a bitmap as [`Self::dirty_chunks`] gives;
    /// `None`: all). Dirty tracking goes on, with a new period from now.
    /// `Ok(None)` when no tracker slot is free.
    ///
    /// # Safety
    /// Every thread that uses the memory is stopped for the call (a
    /// checkpoint's pause), and the caller keeps the memory alive until
    /// the returned image is dropped (it waits for the writer job it
    /// gives it to before the store can drop its memories).
    pub(crate) unsafe fn begin_background_image(
        &mut self,
        needed: Option<&[u64]>,
    ) -> std::io::Result<Option<cow::CowImage>> {
        let len = self.length() as usize;
        let base = self.res.base;
        crate::signals::prepare_thread();
        let Some(t) = self.claim_tracker() else {
            return Ok(None);
        };
        let shadow_len = len.max(page_size() as usize);
        let shadow = mman::map_anon(shadow_len, Prot::ReadWrite, true)?;
        // SAFETY: `shadow` is the mapping just made, ours.
        let _ = unsafe { mman::advise_huge(shadow, shadow_len) };
        // SAFETY: `base..base + len` is this memory's accessible part, its
        // threads are stopped (contract); `shadow` is fresh, `len` bytes
        // at least, and owned by the image below, which ends the image
        // before unmapping it.
        if let Err(e) = unsafe { t.begin_image(base, len, needed, shadow) } {
            // SAFETY: ours, and the handler never saw it.
            unsafe { mman::unmap(shadow, shadow_len) };
            return Err(e);
        }
        // SAFETY: `begin_image` succeeded on this memory with `shadow`;
        // the caller keeps the memory alive (contract).
        Ok(Some(unsafe {
            cow::CowImage::new(base, len, shadow, shadow_len, t.view())
        }))
    }

    /// Ends the tracking period, if any: the memory is read-write again.
    /// (Runs never need it: a tracked memory stays tracked until dropped.)
    #[cfg(test)]
    pub fn stop_dirty_tracking(&mut self) {
        if let Some(t) = &self.tracker {
            // SAFETY: this memory's accessible part, as tracked.
            unsafe { t.stop(self.res.base, self.length() as usize) };
        }
    }

    /// The 64 KiB chunks written since tracking started (bit `i % 64` of
    /// word `i / 64` for chunk `i`; every chunk after a tracking overflow),
    /// or `None` when tracking is off. Pages another thread grew a shared
    /// memory by count as written.
    pub fn dirty_chunks(&self) -> Option<Vec<u64>> {
        let t = self.tracker.as_ref()?;
        t.sync_len(self.length() as usize);
        t.bitmap()
    }

    /// A view for a pre-copy thread of this memory while it is
    /// dirty-tracked (`None` otherwise). For a shared memory, chunks that
    /// another thread's store grows are not seen by the rounds (the
    /// tracker learns of them at the snapshot, [`Self::dirty_chunks`],
    /// and they go with the final part).
    ///
    /// # Safety
    /// The caller keeps this memory (and so its reservation and tracker)
    /// alive until the returned value is dropped: it joins the thread it
    /// gives it to before the store can drop its memories.
    pub(crate) unsafe fn precopy_source(&self) -> Option<precopy::PrecopySource> {
        let t = self.tracker.as_ref()?;
        // SAFETY: the base of the memory `t` tracks; kept alive by the
        // caller (contract).
        Some(unsafe { precopy::PrecopySource::new(self.res.base, t.view()) })
    }

    /// Whether a tracking period is running.
    #[cfg(test)]
    pub fn is_tracking_dirty(&self) -> bool {
        self.tracker.as_ref().is_some_and(|t| t.active())
    }

    /// Whether this store is the only user of the memory (always, for an
    /// unshared memory; for a shared one, while no other thread's store and
    /// no [`SharedMemory`] handle refers to it).
    pub fn is_exclusive(&self) -> bool {
        let alone = Arc::strong_count(&self.res) == 1;
        if alone {
            // The count is read relaxed; the last other `Arc` was dropped
            // with a release decrement (on another thread's store, say):
            // this fence orders everything that thread wrote into the
            // memory before what we read through a slice afterwards (as
            // `Arc::get_mut` does).
            std::sync::atomic::fence(Ordering::Acquire);
        }
        alone
    }

    /// An error for an operation that needs the memory to itself.
    fn not_exclusive(what: &str) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            format!("cannot {what}: the shared memory is in use by another thread"),
        )
    }

    /// Maps `len` bytes of `file` at `file_offset` copy-on-write over the
    /// accessible bytes at `guest_offset` (restoring a snapshot: pages are
    /// read from the file only when touched, and writes stay private).
    /// The range must lie within the current size and, like the offsets,
    /// be a multiple of the host page size. Called before dirty tracking
    /// starts (the mapping is read-write), on a memory no other thread
    /// uses (refused otherwise).
    pub fn map_file_private(
        &mut self,
        guest_offset: u64,
        len: u64,
        file: std::os::fd::BorrowedFd<'_>,
        file_offset: u64,
    ) -> std::io::Result<()> {
        let page = page_size();
        let length = self.length();
        let end = guest_offset.checked_add(len);
        if end.is_none_or(|e| e > length)
            || !guest_offset.is_multiple_of(page)
            || !len.is_multiple_of(page)
            || !file_offset.is_multiple_of(page)
            || i64::try_from(file_offset).is_err()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "cannot map {len} bytes at guest offset {guest_offset:#x} from file offset \
                     {file_offset:#x} (memory of {length} bytes, page size {page})"
                ),
            ));
        }
        // No conversion may run while the mapping changes under it, nor
        // protection ahead of checkpoints.
        drop(self.converter.take());
        if let Some(t) = &self.tracker {
            t.set_protect_ahead(false);
        }
        let Some(res) = Arc::get_mut(&mut self.res) else {
            return Err(Self::not_exclusive("map a snapshot into memory"));
        };
        if len == 0 {
            return Ok(());
        }
        self.file_mapped
            .push((guest_offset as usize, (guest_offset + len) as usize));
        // SAFETY: the target range lies inside our reservation (checked
        // against the current length above) and is page-aligned, like
        // `file_offset` (checked, and it fits an `off_t`); `&mut` on the
        // only `Arc` of the reservation means no Rust reference into the
        // memory is alive and no other thread uses it, and wasm does not
        // run while a memory is being restored. The mapping is private,
        // readable and writable like the rest of the accessible memory.
        unsafe {
            mman::map_file_fixed(
                res.base.add(guest_offset as usize),
                len as usize,
                file,
                file_offset as libc::off_t,
            )
        }
    }

    /// Replaces `len` accessible bytes at `guest_offset` by fresh zero
    /// pages (restoring the zeroed ranges of an incremental snapshot over
    /// its base's mapping: O(1) instead of writing zeros). Same rules as
    /// [`Self::map_file_private`].
    pub fn map_zero(&mut self, guest_offset: u64, len: u64) -> std::io::Result<()> {
        let page = page_size();
        let length = self.length();
        if guest_offset.checked_add(len).is_none_or(|e| e > length)
            || !guest_offset.is_multiple_of(page)
            || !len.is_multiple_of(page)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "cannot zero {len} bytes at guest offset {guest_offset:#x} (memory of {length} bytes)"
                ),
            ));
        }
        drop(self.converter.take());
        if let Some(t) = &self.tracker {
            t.set_protect_ahead(false);
        }
        let Some(res) = Arc::get_mut(&mut self.res) else {
            return Err(Self::not_exclusive("zero memory"));
        };
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range lies inside our reservation (checked against
        // the current length above) and is page-aligned (checked); `&mut`
        // on the only `Arc` means no Rust reference into the memory is
        // alive and no other thread uses it. The zero pages are read-write
        // like the rest.
        unsafe { mman::map_zero_fixed(res.base.add(guest_offset as usize), len as usize) }
    }

    /// The accessible bytes, while no other thread can reach the memory
    /// ([`Self::is_exclusive`]; `None` otherwise: copy with
    /// [`SharedMemory::read`] instead).
    pub fn data(&self) -> Option<&[u8]> {
        if !self.is_exclusive() {
            return None;
        }
        // SAFETY: `length` bytes from `base` are mapped readable
        // (read-write, or read-only while dirty tracking), `u8` needs no
        // alignment, and they stay mapped while `&self` lives (only `&mut
        // self` methods change the mapping, and memory never shrinks). Ours
        // is the only `Arc` of the reservation, and another can only be
        // made through `&mut self` (`share`), which this borrow excludes:
        // no other thread can write the bytes. Wasm, which may write them,
        // does not run while this borrow is in use.
        Some(unsafe { std::slice::from_raw_parts(self.res.base, self.length() as usize) })
    }

    /// The accessible bytes while every other thread of the program is
    /// stopped for a checkpoint (`world`): a shared memory's whole
    /// contents, for the snapshot.
    pub(crate) fn data_stopped<'a>(
        &'a self,
        _world: &'a crate::checkpoint::rendezvous::World<'_>,
    ) -> &'a [u8] {
        // SAFETY: `length` bytes from `base` are mapped readable and stay
        // mapped while `&self` lives (as in `data`). Other threads may
        // hold the reservation, but a `World` exists only while every
        // other live thread of the program is parked in the checkpoint
        // rendezvous, outside wasm and outside host calls (it deposited
        // its record after its wasm unwound), and stays there until the
        // `World` is released, which this borrow outlives not. Threads
        // that start meanwhile park there before they run any wasm. Host
        // code outside the program's threads must not write a shared
        // memory during a checkpoint (`SharedMemory::write` documents it).
        unsafe { std::slice::from_raw_parts(self.res.base, self.length() as usize) }
    }

    /// The accessible bytes, writable, while no other thread can reach the
    /// memory (`None` otherwise).
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        let length = self.length() as usize;
        let res = Arc::get_mut(&mut self.res)?;
        // SAFETY: `length` bytes from `base` are mapped (read-write, or
        // read-only with writes resolved by the dirty-tracking fault
        // handler); `&mut` on the only `Arc` gives exclusive access from
        // Rust and from every thread, and wasm does not run while the
        // borrow is in use.
        Some(unsafe { std::slice::from_raw_parts_mut(res.base, length) })
    }
}

/// A fresh reservation of [`MEMORY_RESERVATION`] bytes, inaccessible,
/// whose base is aligned to [`dirty::HUGE_UNIT`] so that the memory can be
/// backed by huge pages (and protected by whole ones) when a run asks for
/// it ([`LinearMemory::advise_huge_pages`]).
fn reserve_aligned() -> std::io::Result<*mut u8> {
    let len = MEMORY_RESERVATION as usize;
    let align = dirty::HUGE_UNIT;
    let raw = mman::map_anon(len + align, Prot::None, true)?;
    let head = (align - raw as usize % align) % align;
    let tail = align - head;
    // SAFETY: `raw..raw + len + align` is the mapping just made, which
    // nothing uses yet; the head and tail cut off are page-aligned (mmap
    // returns pages, `align` is a multiple of the page size) and lie in
    // it, and the part kept (`raw + head`, `len` bytes) is untouched.
    unsafe {
        if head > 0 {
            mman::unmap(raw, head);
        }
        if tail > 0 {
            mman::unmap(raw.add(head + len), tail);
        }
        Ok(raw.add(head))
    }
}

/// The host page size.
fn page_size() -> u64 {
    crate::sys::sysconf::page_size() as u64
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // The converter first: it uses the tracker and the reservation.
        drop(self.converter.take());
        // Release the tracker before the reservation can go: once
        // unmapped, the range may be reused by anyone, and the fault
        // handler must no longer claim it.
        drop(self.tracker.take());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mvvm_abi::meta::Limits;

    /// Whether every test must run here (CI, or `MVVM_REQUIRE_ALL`, as
    /// `.ci/run` sets): a test that lacks what it needs then fails
    /// instead of skipping.
    pub(crate) fn must_run_all() -> bool {
        ["CI", "MVVM_REQUIRE_ALL"]
            .iter()
            .any(|n| std::env::var(n).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"))
    }

    /// Whether the kernel's memory calls are there: not under Miri, which
    /// has no shim for reserving 8 GiB or for `mprotect`
    /// (`scripts/miri.sh`). There such a test is skipped with the reason,
    /// and fails when every test must run.
    fn kernel_memory_here() -> bool {
        not_under_miri("Miri cannot map 8 GiB or call mprotect")
    }

    /// `true` outside Miri; under Miri, which lacks the kernel calls
    /// (`why`), a test that calls this is skipped with the reason, or
    /// fails when every test must run ([`must_run_all`]).
    pub(crate) fn not_under_miri(why: &str) -> bool {
        if !cfg!(miri) {
            return true;
        }
        assert!(!must_run_all(), "{why} (CI: every test must run)");
        eprintln!("skipped: {why}");
        false
    }

    fn ty(min: u64, max: Option<u64>) -> MemoryType {
        MemoryType {
            limits: Limits { min, max },
            shared: false,
        }
    }

    #[test]
    fn grows_up_to_max() {
        if !kernel_memory_here() {
            return;
        }
        let mut m = LinearMemory::new(ty(1, Some(3))).unwrap();
        assert_eq!(m.data().unwrap().len(), 65536);
        m.data_mut().unwrap()[65535] = 7;
        assert_eq!(m.grow(2), Some(1));
        assert_eq!(m.grow(1), None);
        assert_eq!(m.pages(), 3);
        assert_eq!(m.data().unwrap()[65535], 7);
        assert_eq!(m.data().unwrap()[3 * 65536 - 1], 0);
    }

    #[test]
    fn dirty_tracking_records_written_chunks() {
        if !kernel_memory_here() {
            return;
        }
        let mut m = LinearMemory::new(ty(4, Some(8))).unwrap();
        m.data_mut().unwrap()[3] = 1;
        assert_eq!(m.dirty_chunks(), None);
        assert!(m.start_dirty_tracking().unwrap());
        assert!(m.is_tracking_dirty());
        assert_eq!(m.dirty_chunks().unwrap()[0], 0);
        // Reads do not count; writes by host code fault once and count.
        assert_eq!(m.data().unwrap()[3], 1);
        m.data_mut().unwrap()[2 * 65536 + 5] = 9;
        m.data_mut().unwrap()[2 * 65536 + 6] = 9;
        assert_eq!(m.dirty_chunks().unwrap()[0], 0b100);
        // New pages are dirty.
        assert_eq!(m.grow(2), Some(4));
        assert_eq!(m.dirty_chunks().unwrap()[0], 0b11_0100);
        m.data_mut().unwrap()[5 * 65536] = 1;
        // A new period starts clean.
        assert!(m.start_dirty_tracking().unwrap());
        assert_eq!(m.dirty_chunks().unwrap()[0], 0);
        m.data_mut().unwrap()[0] = 7;
        assert_eq!(m.dirty_chunks().unwrap()[0], 1);
        m.stop_dirty_tracking();
        assert_eq!(m.dirty_chunks(), None);
        m.data_mut().unwrap()[65536] = 1;
        assert_eq!(m.data().unwrap()[2 * 65536 + 5], 9);
        assert_eq!(m.data().unwrap()[0], 7);
    }

    /// A memory of type `ty` restored from a file holding `bytes` (mapped
    /// copy-on-write over its start, 4 KiB pages, as a restore does), the
    /// file already removed: the set-up of the huge-page and
    /// protect-ahead tests.
    fn restored_memory(name: &str, bytes: &[u8], ty: MemoryType) -> LinearMemory {
        use std::io::Write;
        use std::os::fd::AsFd;
        let path = std::env::temp_dir().join(format!("mvvm-{name}-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut m = LinearMemory::new(ty).unwrap();
        m.map_file_private(0, bytes.len() as u64, f.as_fd(), 0)
            .unwrap();
        drop(f);
        std::fs::remove_file(&path).unwrap();
        m
    }

    /// A shared memory of [`dirty::HUGE_FROM`] bytes restored from a file
    /// whose unit `u` holds the byte `u`, with dirty tracking started: the
    /// set-up of the race tests.
    fn restored_shared_memory(name: &str) -> LinearMemory {
        const UNIT: usize = dirty::HUGE_UNIT;
        let file_len = dirty::HUGE_FROM;
        let bytes: Vec<u8> = (0..file_len).map(|o| (o / UNIT) as u8).collect();
        let pages = (file_len / CHUNK) as u64;
        let shared = MemoryType {
            limits: Limits {
                min: pages,
                max: Some(pages),
            },
            shared: true,
        };
        let mut m = restored_memory(name, &bytes, shared);
        assert!(m.start_dirty_tracking().unwrap());
        m
    }

    /// The offsets the race tests' writer reads back and writes in unit
    /// `u`: its first, middle and last words.
    fn race_spots(u: usize) -> [u64; 3] {
        const UNIT: usize = dirty::HUGE_UNIT;
        [0, UNIT / 2 + 4096, UNIT - 8].map(|at| (u * UNIT + at) as u64)
    }

    /// A thread that, round after round, reads every spot of every unit of
    /// a [`restored_shared_memory`] back (round 0: the unit's byte; later:
    /// the previous round's number, so a lost write shows) and writes the
    /// round's number, until a round that began with `done` set; it
    /// returns how many rounds it wrote.
    fn spawn_round_writer(
        handle: SharedMemory,
        done: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<u64> {
        const UNIT: usize = dirty::HUGE_UNIT;
        let units = dirty::HUGE_FROM / UNIT;
        std::thread::spawn(move || {
            let mut round = 0u64;
            loop {
                let last = done.load(Ordering::SeqCst);
                for u in 0..units {
                    for off in race_spots(u) {
                        let mut was = [0u8; 8];
                        assert!(handle.read(off, &mut was));
                        let want = if round == 0 {
                            u64::from_ne_bytes([u as u8; 8])
                        } else {
                            round
                        };
                        assert_eq!(u64::from_ne_bytes(was), want, "unit {u}: a write was lost");
                        assert!(handle.write(off, &(round + 1).to_ne_bytes()));
                    }
                }
                round += 1;
                if last {
                    return round;
                }
            }
        })
    }

    /// The bytes `image` gives for chunk `i`.
    fn image_chunk(image: &cow::CowImage, i: usize) -> Vec<u8> {
        use mvvm_snapshot::MemorySource;
        image.with_bytes(i * CHUNK, CHUNK, <[u8]>::to_vec)
    }

    const CHUNK: usize = WASM_PAGE_SIZE as usize;

    #[test]
    fn cow_image_keeps_the_bytes_of_its_instant() {
        if !kernel_memory_here() {
            return;
        }
        let mut m = LinearMemory::new(ty(4, None)).unwrap();
        for (k, c) in m.data_mut().unwrap().chunks_mut(CHUNK).enumerate() {
            c.fill(k as u8 + 1);
        }
        // SAFETY: no other thread uses the memory; the image is dropped
        // before it.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        m.data_mut().unwrap()[CHUNK + 7] = 0xee;
        m.data_mut().unwrap()[3 * CHUNK..].fill(0xdd);
        for k in 0..4 {
            assert_eq!(
                image_chunk(&image, k),
                vec![k as u8 + 1; CHUNK],
                "chunk {k}"
            );
        }
        assert_eq!(m.data().unwrap()[CHUNK + 7], 0xee);
        assert_eq!(m.data().unwrap()[3 * CHUNK], 0xdd);
        // The writes are the new tracking period's.
        assert_eq!(m.dirty_chunks().unwrap()[0], 0b1010);
        drop(image);
        m.data_mut().unwrap()[0] = 9;
        assert_eq!(m.dirty_chunks().unwrap()[0], 0b1011);
        // The next image is incremental: only what it needs is pending.
        let needed = m.dirty_chunks().unwrap();
        // SAFETY: as above.
        let image = unsafe { m.begin_background_image(Some(&needed)) }
            .unwrap()
            .unwrap();
        assert_eq!(m.dirty_chunks().unwrap()[0], 0);
        m.data_mut().unwrap()[CHUNK..2 * CHUNK].fill(1);
        assert_eq!(image_chunk(&image, 1)[7], 0xee);
        assert_eq!(image_chunk(&image, 0)[0], 9);
        drop(image);
    }

    #[test]
    fn large_memories_are_tracked_in_huge_units() {
        if !kernel_memory_here() {
            return;
        }
        let pages = (dirty::HUGE_FROM / CHUNK + 32) as u64;
        let mut m = LinearMemory::new(ty(pages, None)).unwrap();
        m.advise_huge_pages();
        m.data_mut().unwrap()[40 * CHUNK] = 5;
        // SAFETY: no other thread uses the memory; the image is dropped
        // before it.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        m.data_mut().unwrap()[40 * CHUNK] = 6;
        // The whole 2 MiB unit (chunks 32..64) was unprotected and is
        // dirty; the image kept chunk 40 as it was.
        assert_eq!(m.dirty_chunks().unwrap()[0], u64::MAX << 32);
        assert_eq!(image_chunk(&image, 40)[0], 5);
        assert_eq!(image_chunk(&image, 41), vec![0; CHUNK]);
        drop(image);
        assert_eq!(m.data().unwrap()[40 * CHUNK], 6);
    }

    #[test]
    fn cow_image_holds_while_another_thread_writes() {
        if !kernel_memory_here() {
            return;
        }
        let shared = MemoryType {
            limits: Limits {
                min: 64,
                max: Some(64),
            },
            shared: true,
        };
        let mut m = LinearMemory::new(shared).unwrap();
        let handle = m.share().unwrap();
        for k in 0..64u64 {
            assert!(handle.write(k * CHUNK as u64, &[k as u8; CHUNK]));
        }
        // SAFETY: the other thread starts only after the image is taken;
        // it is joined, and the image dropped, before the memory.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        let writer = std::thread::spawn(move || {
            for round in 0..4u8 {
                for k in 0..64u64 {
                    assert!(handle.write(k * CHUNK as u64, &[0x80 | round; 4096]));
                }
            }
        });
        for pass in 0..8 {
            for k in 0..64 {
                assert_eq!(
                    image_chunk(&image, k),
                    vec![k as u8; CHUNK],
                    "chunk {k}, pass {pass}"
                );
            }
        }
        writer.join().unwrap();
        drop(image);
        assert_eq!(m.dirty_chunks().unwrap()[0], u64::MAX);
    }

    /// Bytes of huge pages mapped in `start..end` of this process.
    fn anon_huge_bytes(start: usize, end: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut total = 0;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = a >= start && b <= end;
            } else if inside && let Some(kb) = line.strip_prefix("AnonHugePages:") {
                total += kb
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<usize>()
                    .unwrap()
                    << 10;
            }
        }
        total
    }

    /// Whether a fresh anonymous 2 MiB range advised `MADV_HUGEPAGE` gets
    /// a huge page here, as `/proc/self/smaps` reports it: not when THP is
    /// off, nor under qemu's user-mode emulation (the aarch64 CI stage),
    /// which neither passes the advice on nor reports huge pages. Where it
    /// does not, a converted range cannot show one either.
    fn thp_backs_fresh_memory() -> bool {
        const HUGE: usize = 2 << 20;
        // SAFETY: a new private anonymous mapping that nothing else
        // refers to; it is only written inside its bounds (the aligned
        // 2 MiB range lies within its 4 MiB) and unmapped before return.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * HUGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return false;
            }
            let start = (p as usize).next_multiple_of(HUGE);
            libc::madvise(start as *mut libc::c_void, HUGE, libc::MADV_HUGEPAGE);
            for off in (0..HUGE).step_by(4096) {
                ((start + off) as *mut u8).write_volatile(1);
            }
            let huge = anon_huge_bytes(start, start + HUGE) > 0;
            libc::munmap(p, 2 * HUGE);
            huge
        }
    }

    /// A restored memory (a file mapped over it) moved onto huge pages
    /// while tracked and while an image is being read: the bytes stay,
    /// the image keeps its instant, the dirty bits stay the period's, a
    /// write after the move is still caught, and the range is no longer
    /// the file.
    #[test]
    fn restored_memory_moves_to_huge_pages() {
        if !kernel_memory_here() {
            return;
        }
        const UNIT: usize = dirty::HUGE_UNIT;
        let file_len = dirty::HUGE_FROM;
        let pattern = |o: usize| (o / 4096 * 7 + o % 251) as u8;
        let bytes: Vec<u8> = (0..file_len).map(pattern).collect();
        let pages = (file_len / CHUNK + 32) as u64;
        let mut m = restored_memory("huge-test", &bytes, ty(pages, None));
        m.advise_huge_pages();
        assert!(m.start_dirty_tracking().unwrap());
        m.data_mut().unwrap()[UNIT + 5] = 0xaa;
        // SAFETY: no other thread uses the memory; the image is dropped
        // before it.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        m.data_mut().unwrap()[2 * UNIT + 9] = 0xbb;
        assert_eq!(m.convert_to_huge_pages_now(), file_len / UNIT);
        m.data_mut().unwrap()[5 * UNIT] = 0xcc;
        let mut want = bytes.clone();
        want[UNIT + 5] = 0xaa;
        // The image: its instant's bytes, wherever written since.
        for k in 0..file_len / CHUNK {
            assert!(
                image_chunk(&image, k) == want[k * CHUNK..(k + 1) * CHUNK],
                "chunk {k}"
            );
        }
        drop(image);
        want[2 * UNIT + 9] = 0xbb;
        want[5 * UNIT] = 0xcc;
        assert!(
            m.data().unwrap()[..file_len] == want[..],
            "memory changed by the move"
        );
        // Dirty: units 2 and 5 (chunks 64..96, 160..192), written after
        // the image; unit 1 was the previous period's.
        let dirty = m.dirty_chunks().unwrap();
        assert_eq!(&dirty[..4], &[0, u64::MAX >> 32, u64::MAX << 32, 0]);
        let base = m.res.base as usize;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            !maps.lines().any(|l| l.contains("mvvm-huge-test")),
            "the snapshot file is still mapped:\n{maps}"
        );
        if thp_backs_fresh_memory() {
            let huge = anon_huge_bytes(base, base + file_len);
            assert!(huge > 0, "no huge page in the converted range");
        } else {
            // Under CI only an emulator (scripts/aarch64/env.sh says so)
            // may lack them; a real machine without THP fails here.
            assert!(
                !must_run_all() || std::env::var_os("MVVM_EMULATED").is_some(),
                "no huge pages here to check the move against (CI: every test must run)"
            );
        }
    }

    /// The move onto huge pages races a second thread that reads back and
    /// writes every unit, round after round, while an image is pending:
    /// no write is lost (each round finds the previous one's numbers, the
    /// end the last one's), the image keeps its instant, and every unit
    /// is dirty.
    #[test]
    fn huge_page_move_races_writes() {
        if !kernel_memory_here() {
            return;
        }
        const UNIT: usize = dirty::HUGE_UNIT;
        let file_len = dirty::HUGE_FROM;
        let mut m = restored_shared_memory("huge-race");
        let handle = m.share().unwrap();
        // SAFETY: the other thread starts after the image is taken; it is
        // joined, and the image dropped, before the memory.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        let spots = race_spots;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writing = Arc::clone(&done);
        // Each round reads every spot back (it must hold the previous
        // round's number: a write lost to a move shows there) and writes
        // the round's number, until the moves are done.
        let writer = spawn_round_writer(handle, writing);
        let moved = m.convert_to_huge_pages_now();
        done.store(true, Ordering::SeqCst);
        let rounds = writer.join().unwrap();
        assert_eq!(moved, file_len / UNIT);
        for k in 0..file_len / CHUNK {
            let want = (k * CHUNK / UNIT) as u8;
            assert!(
                image_chunk(&image, k).iter().all(|&b| b == want),
                "image chunk {k}"
            );
        }
        drop(image);
        let mut buf = [0u8; 8];
        for u in 0..file_len / UNIT {
            for off in spots(u) {
                assert!(m.share().unwrap().read(off, &mut buf));
                assert_eq!(
                    u64::from_ne_bytes(buf),
                    rounds,
                    "unit {u}: a write was lost"
                );
            }
        }
        let dirty = m.dirty_chunks().unwrap();
        assert!(
            dirty[..file_len / CHUNK / 64]
                .iter()
                .all(|&w| w == u64::MAX)
        );
    }

    /// Whether the page at `addr` is mapped writable, as
    /// `/proc/self/maps` says.
    fn writable(addr: usize) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else {
                continue;
            };
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            if (a..b).contains(&addr) {
                return perms.as_bytes()[1] == b'w';
            }
        }
        panic!("{addr:#x} is not mapped")
    }

    /// A restored memory (a file mapped over it, 4 KiB pages) protected
    /// ahead of a checkpoint (`dirty::protect_ahead`): the units written
    /// become read-only, the period's record stays as it was (the
    /// snapshot saves the same chunks), a unit written again is caught
    /// and made writable once more, the image taken next keeps its
    /// instant, nothing is protected while an image is being read, what
    /// was written meanwhile is protected as the image ends, and moving
    /// every unit onto huge pages ends it.
    #[test]
    fn protect_ahead_protects_written_units_and_keeps_the_record() {
        if !kernel_memory_here() {
            return;
        }
        const UNIT: usize = dirty::HUGE_UNIT;
        let file_len = dirty::HUGE_FROM;
        let pattern = |o: usize| (o / 4096 * 3 + o % 253) as u8;
        let bytes: Vec<u8> = (0..file_len).map(pattern).collect();
        let pages = (file_len / CHUNK + 32) as u64;
        let mut m = restored_memory("ahead-test", &bytes, ty(pages, None));
        assert!(m.start_dirty_tracking().unwrap());
        let t = m.tracker.as_ref().unwrap().view();
        t.set_protect_ahead(true);
        let base = m.res.base as usize;
        let mut want = bytes.clone();
        for (at, v) in [(UNIT + 5, 0xaa), (3 * UNIT + 7, 0xbb)] {
            m.data_mut().unwrap()[at] = v;
            want[at] = v;
        }
        assert!(writable(base + UNIT) && writable(base + 3 * UNIT));
        assert!(!writable(base + 2 * UNIT), "a clean unit is read-only");
        let record = m.dirty_chunks().unwrap();
        assert_eq!(t.protect_ahead(), 2, "units 1 and 3 protected");
        for u in [1, 3] {
            assert!(!writable(base + u * UNIT), "unit {u} still writable");
        }
        assert_eq!(m.dirty_chunks().unwrap(), record, "the record changed");
        m.data_mut().unwrap()[3 * UNIT + 9] = 0xcc;
        want[3 * UNIT + 9] = 0xcc;
        assert!(writable(base + 3 * UNIT), "a write did not reopen unit 3");
        assert!(!writable(base + UNIT));
        assert_eq!(m.dirty_chunks().unwrap(), record, "the record changed");
        // SAFETY: no other thread uses the memory; the image is dropped
        // before it.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        m.data_mut().unwrap()[UNIT + 5] = 0xdd;
        assert_eq!(t.protect_ahead(), 0, "protected while an image is read");
        for k in 0..file_len / CHUNK {
            assert!(
                image_chunk(&image, k) == want[k * CHUNK..(k + 1) * CHUNK],
                "image chunk {k}"
            );
        }
        assert!(writable(base + UNIT));
        drop(image);
        // Written during the write: protected again as the image ends.
        assert!(!writable(base + UNIT), "not protected as the image ended");
        want[UNIT + 5] = 0xdd;
        assert!(m.data().unwrap()[..file_len] == want[..], "memory changed");
        let dirty = m.dirty_chunks().unwrap();
        assert_eq!(
            &dirty[..2],
            &[u64::MAX << 32, 0],
            "only unit 1 since the image"
        );
        assert!(t.protects_ahead());
        assert_eq!(m.convert_to_huge_pages_now(), file_len / UNIT);
        assert!(!t.protects_ahead(), "still protected ahead once moved");
        assert!(m.data().unwrap()[..file_len] == want[..], "memory changed");
    }

    /// Protection ahead of checkpoints races a second thread that reads
    /// back and writes every unit of a restored memory, round after
    /// round: no write is lost, every unit stays dirty (the record is
    /// never cleared), and an image taken afterwards holds the last
    /// round.
    #[test]
    fn protect_ahead_races_writes() {
        if !kernel_memory_here() {
            return;
        }
        const UNIT: usize = dirty::HUGE_UNIT;
        let file_len = dirty::HUGE_FROM;
        let mut m = restored_shared_memory("ahead-race");
        let t = m.tracker.as_ref().unwrap().view();
        t.set_protect_ahead(true);
        let handle = m.share().unwrap();
        let spots = race_spots;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writing = Arc::clone(&done);
        let writer = spawn_round_writer(handle, writing);
        let mut protected = 0;
        let t0 = std::time::Instant::now();
        while protected < 200 * file_len / UNIT && t0.elapsed() < std::time::Duration::from_secs(5)
        {
            protected += t.protect_ahead();
        }
        done.store(true, Ordering::SeqCst);
        let rounds = writer.join().unwrap();
        assert!(protected > 0, "nothing protected ahead");
        let dirty = m.dirty_chunks().unwrap();
        assert!(
            dirty[..file_len / CHUNK / 64]
                .iter()
                .all(|&w| w == u64::MAX),
            "a unit written is not dirty"
        );
        // SAFETY: the writer is joined; the image is dropped before the
        // memory.
        let image = unsafe { m.begin_background_image(None) }.unwrap().unwrap();
        for u in 0..file_len / UNIT {
            for off in spots(u) {
                let k = off as usize / CHUNK;
                let chunk = image_chunk(&image, k);
                let at = off as usize % CHUNK;
                let got = u64::from_ne_bytes(chunk[at..at + 8].try_into().unwrap());
                assert_eq!(got, rounds, "unit {u}: a write was lost");
            }
        }
        drop(image);
    }

    #[test]
    fn refuses_too_large() {
        if !kernel_memory_here() {
            return;
        }
        assert!(LinearMemory::new(ty(65537, None)).is_err());
        let mut m = LinearMemory::new(ty(0, None)).unwrap();
        assert_eq!(m.grow(65537), None);
        assert_eq!(m.grow(0), Some(0));
    }
}
