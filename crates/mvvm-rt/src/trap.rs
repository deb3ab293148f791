//! Traps as the user sees them, and the per-module tables that map a code
//! address back to a trap code, a function and a wasm bytecode offset.

use mvvm_abi::TrapCode;
use mvvm_abi::entries::{Entry, EntryKind, EntrySection};
use mvvm_abi::exception::CallSite;
use mvvm_abi::meta::ModuleMeta;
use mvvm_abi::trap_sites::Sites;
use std::fmt;
use std::sync::Arc;

/// Why and where wasm execution stopped abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// The trap.
    pub code: TrapCode,
    /// Index of the wasm function that trapped, when known (a trap raised
    /// by a builtin or an import stub is attributed to its caller).
    pub func: Option<u32>,
    /// Its name from the name section (or its import name).
    pub func_name: Option<String>,
    /// Bytecode offset of the trapping instruction in the module.
    pub wasm_offset: Option<u32>,
    /// Human readable reason: the spec message of `code`, or a host
    /// function's message for [`TrapCode::HostError`].
    pub message: String,
}

impl Trap {
    /// A trap with no location.
    pub fn new(code: TrapCode) -> Trap {
        Trap {
            code,
            func: None,
            func_name: None,
            wasm_offset: None,
            message: code.message().to_string(),
        }
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.message)?;
        match (&self.func_name, self.func) {
            (Some(n), Some(i)) => write!(f, " in function '{n}' (#{i})")?,
            (None, Some(i)) => write!(f, " in function #{i}")?,
            _ => {}
        }
        if let Some(o) = self.wasm_offset {
            write!(f, " at offset {o:#x}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}

/// One function's (or import stub's) code range, as a lookup found it in
/// the entries section. Its trap sites, call sites and name are read from
/// the module's metadata ([`CodeInfo::meta`]) when needed: nothing is
/// built per function at load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FuncRange {
    /// Absolute start address.
    pub start: usize,
    /// Absolute end address (exclusive).
    pub end: usize,
    /// Wasm function index (for a stub: the imported function's index).
    pub index: u32,
    /// What code this is.
    pub kind: RangeKind,
}

/// The code a [`FuncRange`] holds. For a body or clone, its tables are
/// those of defined function `k = index - num_imported_funcs`, see
/// [`CodeInfo::defined`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeKind {
    /// The body of the function.
    Body,
    /// The function's resume clone.
    Clone,
    /// An import stub: no trap sites, no call sites, and a throw does not
    /// walk through it.
    Stub,
}

impl FuncRange {
    /// Whether this is a wasm function's body (or resume clone), as
    /// opposed to an import stub: a throw walks through bodies only.
    pub fn body(&self) -> bool {
        self.kind != RangeKind::Stub
    }
}

/// What the signal handler needs about one module's code.
#[derive(Debug)]
pub(crate) struct CodeInfo {
    /// Start of the executable range.
    pub text_start: usize,
    /// End of the executable range.
    pub text_end: usize,
    /// Where the `.text` section (which the entries count from) starts,
    /// and its length.
    pub code_start: usize,
    pub code_len: usize,
    /// Where each body, clone and stub is, read in place (see
    /// `mvvm_abi::entries`): searched by the signal handler.
    pub entries: EntrySection,
    /// The module's metadata, shared with the module: the trap sites,
    /// call sites and names of the ranges. Nothing the signal handler
    /// reads here is ever written after load.
    pub meta: Arc<ModuleMeta>,
    /// The frame maps of an object compiled with the developer option
    /// `frame_map` (see [`crate::frame_walk`]); `None` otherwise.
    pub frames: Option<mvvm_abi::frame_map::FrameMaps>,
}

/// The result of looking up a PC inside registered code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrapLookup {
    /// The function containing the PC, if any.
    pub func: Option<u32>,
    /// The trap code of the exact trap site at the PC, if any.
    pub code: Option<TrapCode>,
    /// Its wasm offset.
    pub wasm_offset: Option<u32>,
    /// No site was found and the function's trap sites are damaged (they
    /// are checked when used, not at load): the fault is reported as a
    /// trap whose description names the damage, not passed on.
    pub damaged: bool,
}

/// Where a return address lies, for the exception walk
/// ([`CodeInfo::call_site`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SiteLookup<'a> {
    /// Not in the body of a wasm function: the walk ends.
    NotWasm,
    /// In a wasm body starting at `code_start`; `site` is the call site
    /// returning there, if the call has handlers.
    Wasm {
        code_start: usize,
        site: Option<&'a CallSite>,
    },
}

impl CodeInfo {
    /// The defined-function number `k` of the body or clone `f`.
    fn defined(&self, f: &FuncRange) -> usize {
        f.index.wrapping_sub(self.meta.num_imported_funcs) as usize
    }

    /// `e` as an absolute range, if it lies inside `.text`.
    fn range_of(&self, e: Entry) -> Option<FuncRange> {
        if e.end() > self.code_len as u64 {
            return None;
        }
        let start = self.code_start + e.offset as usize;
        let nimp = self.meta.num_imported_funcs;
        let (index, kind) = match e.kind {
            EntryKind::Body => (nimp.checked_add(e.number as u32)?, RangeKind::Body),
            EntryKind::Clone => (nimp.checked_add(e.number as u32)?, RangeKind::Clone),
            EntryKind::Stub => (e.number as u32, RangeKind::Stub),
        };
        Some(FuncRange {
            start,
            end: start + e.size as usize,
            index,
            kind,
        })
    }

    /// The body, clone or stub holding `pc`: a binary search of the
    /// entries, in place (no allocation, so the signal handler may call
    /// this). An entry outside `.text` (a damaged section) is not found.
    pub fn range_at(&self, pc: usize) -> Option<FuncRange> {
        let off = pc.checked_sub(self.code_start)?;
        if off >= self.code_len {
            return None;
        }
        let f = self.range_of(self.entries.table().find(off as u64)?)?;
        (f.start <= pc && pc < f.end).then_some(f)
    }

    /// The address of defined function `k`'s body, once its entry is
    /// checked to lie inside `.text`; or why not.
    pub fn body_addr(&self, k: usize) -> Result<usize, String> {
        let e = self
            .entries
            .table()
            .body(k)
            .ok_or_else(|| format!("no entry for defined function {k}"))?;
        self.range_of(e).map(|r| r.start).ok_or_else(|| {
            format!(
                "the body of function {} ({} bytes at {:#x}) is outside the text",
                self.meta.num_imported_funcs as usize + k,
                e.size,
                e.offset
            )
        })
    }

    /// Every body, stub and clone inside `.text`, in the entries' order:
    /// for the perf map (reads the whole section).
    pub fn all_ranges(&self) -> impl Iterator<Item = FuncRange> + '_ {
        let t = self.entries.table();
        let bodies = (0..t.funcs()).filter_map(move |k| t.body(k));
        let stubs = (0..t.imports()).filter_map(move |j| t.stub(j));
        let clones = (0..t.funcs()).filter_map(move |k| t.clone_of(k));
        bodies
            .chain(stubs)
            .chain(clones)
            .filter_map(|e| self.range_of(e))
    }

    /// Trap sites of `f`, sorted by `code_offset`: a view of the records
    /// of the trap sites section, read in place (no allocation, so the
    /// signal handler may call this).
    pub fn traps(&self, f: &FuncRange) -> Sites<'_> {
        match f.kind {
            RangeKind::Body => self.meta.trap_sites.body(self.defined(f)),
            RangeKind::Clone => self.meta.trap_sites.clone_of(self.defined(f)),
            RangeKind::Stub => Sites::default(),
        }
    }

    /// Call sites of `f` that have handlers, sorted by `return_offset`
    /// (checked at load).
    pub fn call_sites(&self, f: &FuncRange) -> &[CallSite] {
        let sites = match f.kind {
            RangeKind::Stub => None,
            _ => self.meta.func_call_sites(self.defined(f)),
        };
        match (sites, f.kind) {
            (Some(c), RangeKind::Body) => &c.body,
            (Some(c), RangeKind::Clone) => &c.clone,
            _ => &[],
        }
    }

    /// Name of `f` for messages: from the name section, or for an import
    /// stub its `module.name`. Allocates; not for the signal handler.
    pub fn name(&self, f: &FuncRange) -> Option<String> {
        if let Some(n) = self.meta.func_name(f.index) {
            return Some(n.to_string());
        }
        if f.kind != RangeKind::Stub {
            return None;
        }
        self.meta
            .imports
            .iter()
            .filter(|i| matches!(i.kind, mvvm_abi::meta::ImportKind::Func(_)))
            .nth(f.index as usize)
            .map(|i| format!("{}.{}", i.module, i.name))
    }

    /// Looks up the return address `pc` (in `text_start..=text_end`): the
    /// body it returns into and that call's handlers. A return address
    /// may lie just past its function's last byte (a call that never
    /// returns ends the function), so the function is the one holding
    /// `pc - 1`.
    pub fn call_site(&self, pc: usize) -> SiteLookup<'_> {
        let at = pc.wrapping_sub(1);
        let Some(f) = self.range_at(at) else {
            return SiteLookup::NotWasm;
        };
        if !f.body() {
            return SiteLookup::NotWasm;
        }
        let off = (pc - f.start) as u64;
        let sites = self.call_sites(&f);
        let site = sites
            .binary_search_by_key(&off, |c| u64::from(c.return_offset))
            .ok()
            .map(|k| &sites[k]);
        SiteLookup::Wasm {
            code_start: f.start,
            site,
        }
    }

    /// Looks up `pc`, which lies in `text_start..text_end`.
    pub fn lookup(&self, pc: usize) -> TrapLookup {
        let mut out = TrapLookup {
            func: None,
            code: None,
            wasm_offset: None,
            damaged: false,
        };
        let Some(f) = self.range_at(pc) else {
            return out;
        };
        out.func = Some(f.index);
        let off = (pc - f.start) as u64;
        if let Some(t) = self.traps(&f).find(off) {
            out.code = Some(t.code);
            out.wasm_offset = Some(t.wasm_offset);
        } else if f.body() {
            out.damaged = !self.meta.trap_sites.sound(self.defined(&f));
        }
        out
    }

    /// Why the trap sites of `f` cannot be trusted, if they cannot (the
    /// check a load leaves to their first use); for trap descriptions.
    pub fn damage(&self, f: &FuncRange) -> Option<String> {
        if !f.body() {
            return None;
        }
        self.meta
            .trap_sites
            .check_func(self.defined(f))
            .err()
            .map(|e| format!("corrupt .aot metadata: {e}"))
    }
}

// ---------------------------------------------------------------------------
// Entering and leaving wasm.

use std::cell::Cell;

/// A trap as first recorded (in a signal handler or a builtin), before it
/// is described for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTrap {
    /// The trap.
    pub code: TrapCode,
    /// The faulting PC, or the return address into generated code of the
    /// builtin that raised it.
    pub pc: usize,
    /// Whether `pc` is the exact trap site (faults) rather than a return
    /// address (builtins).
    pub exact: bool,
    /// Bytecode offset, when the trap site is known.
    pub wasm_offset: Option<u32>,
}

thread_local! {
    /// Jump buffer of the innermost `mvvm_rt_enter` on this thread (null
    /// when no wasm is running).
    static JMP_BUF: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
    /// The trap being unwound.
    static PENDING: Cell<Option<RawTrap>> = const { Cell::new(None) };
}

unsafe extern "C" {
    fn mvvm_rt_enter(
        f: unsafe extern "C" fn(*mut u8, *mut u64),
        vmctx: *mut u8,
        values: *mut u64,
        slot: *mut *mut u8,
    ) -> i32;
    fn mvvm_rt_longjmp(buf: *mut u8, code: i32) -> !;
}

/// The jump buffer of the wasm activation running on this thread, or null.
/// Safe to call from a signal handler (constant-initialised thread local,
/// no allocation).
pub(crate) fn current_jmp_buf() -> *mut u8 {
    JMP_BUF
        .try_with(|c| c.get())
        .unwrap_or(std::ptr::null_mut())
}

/// Records `trap` and jumps back to the `mvvm_rt_enter` owning `jb`.
///
/// # Safety
/// `jb` must be the jump buffer of a live `mvvm_rt_enter` frame of this
/// thread, and no frame between here and it may own values that need
/// dropping.
pub(crate) unsafe fn unwind_with(jb: *mut u8, trap: RawTrap) -> ! {
    PENDING.with(|p| p.set(Some(trap)));
    // SAFETY: `jb` is the jump buffer of a live `mvvm_rt_enter` frame of
    // this thread (caller), so the `longjmp` lands in a frame that still
    // exists; the frames it skips own nothing to drop (caller); the code is
    // non-zero, so `mvvm_rt_enter` sees a trap, not a normal return.
    unsafe { mvvm_rt_longjmp(jb, i32::from(trap.code as u8).max(1)) }
}

/// Called by the trapping builtin shims in `native/entry.c` (and `raise`)
/// with their return address into generated code. Never returns.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_trap_at(code: i32, pc: *const u8) -> ! {
    let code = u8::try_from(code)
        .ok()
        .and_then(TrapCode::from_u8)
        .unwrap_or(TrapCode::Unreachable);
    let jb = current_jmp_buf();
    if jb.is_null() {
        // A builtin called outside of any wasm activation: nothing to
        // unwind to. This is a runtime bug, not a guest error.
        eprintln!("mvvm-rt: trap `{code}` raised outside of wasm execution");
        std::process::abort();
    }
    // SAFETY: `jb` belongs to the live activation of this thread (not
    // null, and `mvvm_rt_enter` clears it on the way out); between it and
    // here there are only generated code, the C shim (the Rust half of the
    // builtin has already returned) or, for `RewindFrame`, a Rust frame
    // that has moved out or dropped all its values, and this frame, which
    // owns nothing.
    unsafe {
        unwind_with(
            jb,
            RawTrap {
                code,
                pc: pc as usize,
                exact: false,
                wasm_offset: None,
            },
        )
    }
}

/// Calls the array trampoline at `tramp` with `vmctx` and `values` under a
/// jump buffer, returning the trap if one unwound it.
///
/// # Safety
/// `tramp` must be an array trampoline of loaded code whose module is alive,
/// `vmctx` the context of an instance of that module, and `values` must
/// hold at least max(params, results) slots.
pub(crate) unsafe fn enter_wasm(
    tramp: usize,
    vmctx: *mut u8,
    values: *mut u64,
) -> Result<(), RawTrap> {
    crate::signals::prepare_thread();
    // SAFETY: `tramp` is the address of an array trampoline of loaded,
    // published code (caller contract), a function with exactly this
    // signature and C calling convention; the code stays mapped while its
    // module (kept by the instance) lives.
    let f: unsafe extern "C" fn(*mut u8, *mut u64) = unsafe { std::mem::transmute(tramp) };
    let slot = JMP_BUF.with(|c| c.as_ptr());
    // SAFETY: `f`, `vmctx` and `values` satisfy the trampoline's contract
    // (caller). `slot` is this thread's jump buffer cell, valid and aligned
    // for the whole call (a thread local outlives it) and written only by
    // the C side, which restores its previous value before returning, so
    // entries nest. No Rust reference is held across the call: `vmctx` and
    // `values` are raw, and the store is reached by builtins through its
    // base pointer (`vm_box.rs`).
    let code = unsafe { mvvm_rt_enter(f, vmctx, values, slot) };
    if code == 0 {
        return Ok(());
    }
    let raw = PENDING.with(|p| p.take()).unwrap_or(RawTrap {
        code: TrapCode::from_u8(code as u8).unwrap_or(TrapCode::Unreachable),
        pc: 0,
        exact: false,
        wasm_offset: None,
    });
    Err(raw)
}

impl RawTrap {
    /// Describes the trap: function index and name from the registered code.
    pub(crate) fn describe(self, message: Option<String>) -> Trap {
        // A return address may sit just past its function's last byte.
        let pc = if self.exact {
            self.pc
        } else {
            self.pc.wrapping_sub(1)
        };
        let (func, func_name, damage) = crate::code::func_at(pc).unwrap_or((None, None, None));
        // A trap in a function whose trap sites are damaged may have been
        // found (or missed) through them: say so rather than trust them.
        let (wasm_offset, message) = match damage {
            Some(why) => (None, why),
            None => (
                self.wasm_offset,
                message.unwrap_or_else(|| self.code.message().to_string()),
            ),
        };
        Trap {
            code: self.code,
            func,
            func_name,
            wasm_offset,
            message,
        }
    }
}
