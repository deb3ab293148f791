//! Resume clones compiled at run time: placed next to their module's code,
//! their calls patched, and registered like the object's own code.
//!
//! With a checkpoint policy a function with a loop has a resume clone that
//! only a rewind enters ("Resume clones compiled on demand" in
//! `crates/mvvm-aot/CHECKPOINT.md`). When the object does not hold it,
//! `mvvm_aot::resume_clone::compile_resume_clone` compiles it alone into a
//! [`CloneCode`]: machine code whose calls are left unpatched, each named
//! by what it calls (a body, an import stub, an array trampoline, the
//! probe trampoline, another clone). [`Module::install_clone`] places it:
//!
//! ```text
//!  module mapping (CodeMemory)          arena (CodeArena, reserved at load)
//!  +-------------------+-----------+----------+----------+---------------
//!  | .text (R+X)        | rodata (R)| clone A  | clone B  |  PROT_NONE ...
//!  +-------------------+-----------+----------+----------+---------------
//!  ^ bodies, stubs, trampolines      ^ fresh pages per install, RW then RX
//!  |<------------- whole span < the call range of the ISA ------------->|
//! ```
//!
//! - The calls stay PC-relative, as the compiler emitted them (rel32 on
//!   x86-64, the 26-bit `bl` on aarch64): the arena is reserved right after
//!   the module's mapping and sized so that text and arena together fit in
//!   the aarch64 call range ([`arena_len`]), so every target is reachable
//!   from anywhere in it and the clone's code is the object's clone byte
//!   for byte.
//! - When the arena cannot hold the clone (the module has none: no policy,
//!   or aarch64 code larger than ~120 MiB; or it is full), the clone gets
//!   pages of its own ([`CodePages`]), asked for right after the arena or
//!   the module's mapping but placed wherever the kernel puts them. A call
//!   whose target is then out of its field's reach jumps through a
//!   *veneer* placed right after the clone's code, in the same pages
//!   (`veneer`: an absolute jump; only for the field of a call or jump).
//!   The same holds in the arena, should a call there be out of reach (a
//!   clone in the arena calling one in pages of its own far away). Any
//!   other displacement out of range is an error
//!   ([`InstallError::OutOfRange`]), never wrong code.
//! - Clones installed together ([`Module::install_clones`]: a restore's,
//!   a background batch) are laid out one after the other in one run of
//!   fresh pages, each 16-byte aligned with its veneers right after it, so
//!   that small clones share pages instead of taking one each (and, out of
//!   the arena, one mapping per run rather than per clone).
//! - W^X: the code is patched in a heap copy, then written into fresh pages
//!   (of the arena, or its own) while they are read-write, which then
//!   become read-execute and are never written again ([`CodeArena::place`],
//!   [`CodePages::seal`]).
//! - The clone's range, its veneers included, is registered in
//!   `crate::code`'s registry, with its own trap sites and exception call
//!   sites, before its entry is returned: the signal handler, trap
//!   messages, the exception walk, the developer frame walk and the perf
//!   map see it as they see an object's clone. A veneer is jumped through,
//!   never called, so no return address points into one; `func_at` names
//!   a PC there as the clone, and the perf map has a `(veneers)` line.
//!
//! [`Module::install_clone`]: crate::Module::install_clone
//! [`Module::install_clones`]: crate::Module::install_clones

use crate::code::{CodeArena, CodePages, RegistrationGuard, align_up, page_size};
use crate::trap::{CodeInfo, FuncRange, RangeKind, SiteLookup, TrapLookup};
use mvvm_abi::TrapSite;
use mvvm_abi::exception::CallSite;
use mvvm_abi::meta::TargetArch;
use mvvm_abi::resume_code::{CallField, CallTarget, CloneCall, CloneCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

mod veneer;

/// Why a resume clone could not be installed. Nothing is placed or
/// registered when this is returned (but for [`InstallError::Memory`], whose
/// pages are left unused).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The function is not a defined function of the module.
    #[error("function {func} is not a defined function of this module")]
    NotDefined {
        /// The function (imports included in the numbering).
        func: u32,
    },
    /// The code does not hold together (a call field outside the code, a
    /// call of the other ISA, unsorted trap sites, ...), or is not this
    /// module's clone of the function.
    #[error("the resume clone of function {func} is malformed: {why}")]
    BadCode {
        /// The function.
        func: u32,
        /// What is wrong.
        why: String,
    },
    /// A call names a target this module does not have.
    #[error(
        "the resume clone of function {func} calls {target:?} (at offset {offset:#x}), which this module does not have: {why}"
    )]
    UnknownTarget {
        /// The function.
        func: u32,
        /// The call field's offset in the clone.
        offset: u32,
        /// The target.
        target: CallTarget,
        /// Why it is unknown.
        why: String,
    },
    /// A call's displacement does not fit its field, and no veneer can
    /// carry it (the field is not that of a call or jump, or the clone is
    /// too large for the field to reach its own veneers).
    #[error(
        "the call at offset {offset:#x} of the resume clone of function {func} to {target:?} cannot reach it: {why}"
    )]
    OutOfRange {
        /// The function.
        func: u32,
        /// The call field's offset in the clone.
        offset: u32,
        /// The target.
        target: CallTarget,
        /// Why (the displacement and the field's limit).
        why: PatchError,
    },
    /// Mapping pages, or making them writable or executable, failed.
    #[error("cannot make the resume clone of function {func} executable")]
    Memory {
        /// The function.
        func: u32,
        /// The `mprotect` error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a call field could not be patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The field lies (partly) outside the code, or is misaligned for an
    /// instruction.
    #[error("field outside the code or misaligned")]
    Outside,
    /// The displacement does not fit.
    #[error("displacement {disp:#x} out of range for {field:?}")]
    Range {
        /// The displacement (target minus field, addend included).
        disp: i64,
        /// The field.
        field: CallField,
    },
    /// An aarch64 branch displacement that is not a multiple of 4.
    #[error("displacement {0:#x} is not a multiple of 4")]
    Misaligned(i64),
    /// The aarch64 instruction at the field is not a `b` or `bl`.
    #[error("instruction {0:#010x} is not a `b` or `bl`")]
    NotABranch(u32),
    /// The displacement does not fit, and the field is not that of a call
    /// or jump, which alone a veneer can stand in for.
    #[error(
        "displacement {disp:#x} out of range for {field:?}, and the field is not that of a call or jump (no veneer can carry it)"
    )]
    NoVeneer {
        /// The displacement.
        disp: i64,
        /// The field.
        field: CallField,
    },
}

/// Largest arena a module reserves.
const MAX_ARENA: usize = 64 << 20;

/// Slack kept below a call range (for `target_offset` and addends, which
/// are small, and rounding).
const RANGE_SLACK: usize = 8 << 20;

/// The arena to reserve after a module mapping of `mapping_len` bytes
/// for `target`: `min(64 MiB, reach - 8 MiB - mapping_len)` rounded down to
/// pages, 0 when not one page fits.
///
/// Why: a call from the arena's last byte to the text's first must fit
/// the ISA's PC-relative call, so text plus arena must stay inside its
/// range: +-128 MiB for aarch64's `bl` (CALL26), hence at most 120 MiB
/// together; +-2 GiB for x86-64's rel32, where the 1 GiB bound on a
/// mapping leaves the whole 64 MiB. 64 MiB holds hundreds of clones (the
/// largest bench clone is 158 KiB) and costs only address space.
pub(crate) fn arena_len(target: TargetArch, mapping_len: usize) -> usize {
    let reach: usize = match target {
        TargetArch::Aarch64 => 128 << 20,
        TargetArch::X86_64 => 2 << 30,
    };
    let room = (reach - RANGE_SLACK).saturating_sub(mapping_len);
    let len = room.min(MAX_ARENA) & !(page_size() - 1);
    if len < page_size() { 0 } else { len }
}

/// `MVVM_DEV_CLONE_ARENA=BYTES`, a developer knob read once per process:
/// caps the arena of every module loaded afterwards at `BYTES` (rounded
/// down to pages; 0: no arena), and puts the clones the arena cannot hold
/// in pages 16 GiB away from their module's code, so that every call of
/// theirs goes through a veneer. For tests of the fallback
/// (`crates/mvvm-rt/tests/clone_veneers.rs`, `crates/mvvm-cli/tests/
/// clones_on_demand.rs`); unset in normal use. A value that is not a
/// number is ignored with a warning.
pub(crate) fn dev_arena_cap() -> Option<usize> {
    static CAP: OnceLock<Option<usize>> = OnceLock::new();
    *CAP.get_or_init(|| {
        let v = std::env::var("MVVM_DEV_CLONE_ARENA").ok()?;
        let v = v.trim();
        if v.is_empty() {
            return None;
        }
        match v.parse::<usize>() {
            Ok(n) => {
                tracing::warn!(
                    "MVVM_DEV_CLONE_ARENA={n}: arenas capped, clones outside them placed far from their code (developer knob)"
                );
                Some(n)
            }
            Err(_) => {
                tracing::warn!("MVVM_DEV_CLONE_ARENA={v:?} is not a number of bytes: ignored");
                None
            }
        }
    })
}

/// [`arena_len`] capped by the developer knob [`dev_arena_cap`]: the
/// arena the loader reserves.
pub(crate) fn arena_len_for_load(target: TargetArch, mapping_len: usize) -> usize {
    let len = arena_len(target, mapping_len);
    match dev_arena_cap() {
        Some(cap) => len.min(cap) & !(page_size() - 1),
        None => len,
    }
}

/// What the registry knows of one clone placed at run time: the
/// counterpart of an object's clone in [`CodeInfo`] (its trap sites and
/// exception call sites are the clone's own, handed over by the compiler;
/// its name and frame maps are its module's).
#[derive(Debug)]
pub(crate) struct JitClone {
    /// Where its code starts, and where it ends with its veneers (if it
    /// has any: they follow the code, and are part of the clone for
    /// every lookup).
    pub start: usize,
    pub end: usize,
    /// The function (imports included in the numbering).
    pub func: u32,
    /// Its module's code information: names, frame maps.
    pub module: Arc<CodeInfo>,
    /// Trap sites, sorted by strictly increasing code offset (checked).
    traps: Vec<TrapSite>,
    /// Exception call sites, sorted by return offset, inside the code
    /// (checked).
    call_sites: Vec<CallSite>,
}

impl JitClone {
    /// The clone as a function range (kind [`RangeKind::Clone`]).
    pub fn range(&self) -> FuncRange {
        FuncRange {
            start: self.start,
            end: self.end,
            index: self.func,
            kind: RangeKind::Clone,
        }
    }

    /// As [`CodeInfo::lookup`], for `pc` in `start..end`: a binary search,
    /// no allocation (the signal handler calls this).
    pub fn lookup(&self, pc: usize) -> TrapLookup {
        let off = pc.wrapping_sub(self.start) as u64;
        let site = self
            .traps
            .binary_search_by_key(&off, |t| u64::from(t.code_offset))
            .ok()
            .map(|i| self.traps[i]);
        TrapLookup {
            func: Some(self.func),
            code: site.map(|t| t.code),
            wasm_offset: site.map(|t| t.wasm_offset),
            damaged: false,
        }
    }

    /// As [`CodeInfo::call_site`], for the return address `pc` (with `pc -
    /// 1` in `start..end`).
    pub fn call_site(&self, pc: usize) -> SiteLookup<'_> {
        let off = pc.wrapping_sub(self.start) as u64;
        let site = self
            .call_sites
            .binary_search_by_key(&off, |c| u64::from(c.return_offset))
            .ok()
            .map(|k| &self.call_sites[k]);
        SiteLookup::Wasm {
            code_start: self.start,
            site,
        }
    }
}

/// One installed clone.
#[derive(Debug)]
struct Installed {
    entry: usize,
    /// The end of what was placed: its code, then its veneers, if any.
    #[cfg_attr(not(test), allow(dead_code))]
    end: usize,
    _registration: RegistrationGuard,
    /// The pages of its own, when no arena held it (shared with the clones
    /// placed with it). After the registration: unregistered before
    /// unmapped (the last clone of the run unmaps them). Held for its
    /// `Drop` (read by tests only).
    #[cfg_attr(not(test), allow(dead_code))]
    pages: Option<Arc<CodePages>>,
}

/// A module's clones placed at run time, and where they go.
#[derive(Debug)]
struct State {
    /// Field order matters: unregister before unmapping.
    installed: HashMap<u32, Installed>,
    arena: Option<CodeArena>,
    /// Where the next clone's own pages are asked for: right after the
    /// arena (or the module's mapping, without one), where calls may
    /// still reach the module's code directly, then after the last own
    /// pages; far from the code with the developer knob
    /// ([`dev_arena_cap`]), out of every call's direct reach.
    hint: usize,
}

/// The run-time clones of one module (in `ModuleInner`): the arena and
/// what was placed in it or beside it, behind a mutex (installs may come
/// from several threads; one places at a time).
#[derive(Debug)]
pub(crate) struct JitClones {
    state: Mutex<State>,
}

/// Where a module's call targets are, for patching.
pub(crate) struct Targets<'a> {
    pub code: &'a Arc<CodeInfo>,
    pub import_stubs: &'a [usize],
    pub trampolines: &'a HashMap<u32, usize>,
    pub probe_trampoline: Option<usize>,
}

/// A clone's code laid out for one address: calls patched, those out of
/// reach routed through veneers after the code.
struct Laid {
    /// The code, then (from `veneers_at`) the veneers.
    bytes: Vec<u8>,
    /// Where the veneers start (the code's length when there are none).
    veneers_at: usize,
    /// How many veneers.
    veneers: usize,
}

impl JitClones {
    /// Clones go to `arena`, or to pages of their own when it cannot hold
    /// them (none: always); `code_end` is the end of the module's mapping.
    pub fn new(arena: Option<CodeArena>, code_end: usize) -> JitClones {
        let mut hint = arena.as_ref().map_or(code_end, |a| a.span().1);
        if dev_arena_cap().is_some() {
            hint = far_from(hint);
        }
        JitClones {
            state: Mutex::new(State {
                installed: HashMap::new(),
                arena,
                hint,
            }),
        }
    }

    /// The entry of `func`'s clone installed here, if any.
    pub fn entry(&self, func: u32) -> Option<usize> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.installed.get(&func).map(|i| i.entry)
    }

    /// The code placed at `addr..addr + len`, if it is all in the arena's
    /// placed part or in one clone's own pages.
    #[cfg(test)]
    pub fn placed_bytes(&self, addr: usize, len: usize) -> Option<Vec<u8>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let in_arena = state.arena.as_ref().and_then(|a| a.bytes_at(addr, len));
        let own = || {
            state
                .installed
                .values()
                .filter_map(|i| i.pages.as_ref())
                .find_map(|p| p.bytes_at(addr, len))
        };
        in_arena.or_else(own).map(<[u8]>::to_vec)
    }

    /// Start and end of the arena, if there is one.
    #[cfg(test)]
    pub fn arena_span(&self) -> Option<(usize, usize)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.arena.as_ref().map(|a| a.span())
    }

    /// Where `func`'s installed clone is: its entry, the end of its code
    /// and veneers, and whether it has pages of its own.
    #[cfg(test)]
    pub fn placed(&self, func: u32) -> Option<(usize, usize, bool)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let i = state.installed.get(&func)?;
        Some((i.entry, i.end, i.pages.is_some()))
    }

    /// For tests of the fallback: leaves the arena `arena_free` bytes
    /// (`None`: drops it, as a module without one), and puts own pages
    /// far from the code when `far`.
    #[cfg(test)]
    pub fn force_fallback(&self, arena_free: Option<usize>, far: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match arena_free {
            Some(n) => {
                if let Some(a) = state.arena.as_mut() {
                    a.use_up(n);
                }
            }
            None => state.arena = None,
        }
        if far {
            state.hint = far_from(state.hint);
        }
    }

    /// Checks `code`, lays it out for the arena's next pages (or, when the
    /// arena cannot hold it, for pages of its own), places it, registers
    /// it and returns its entry (see the module documentation); the first
    /// entry if `code.func` was installed before.
    pub fn install(&self, t: &Targets<'_>, code: &CloneCode) -> Result<usize, InstallError> {
        let entries = self.install_all(t, std::slice::from_ref(code))?;
        Ok(entries[0])
    }

    /// [`JitClones::install`] for several clones at once: those not
    /// installed yet are laid out one after the other (each aligned to 16
    /// bytes, its veneers right after its code) in one run of fresh pages,
    /// so that small clones share pages (a page each wasted 2-3 KiB per
    /// clone of a typical module, and a mapping each outside the arena).
    /// The entries, in the order of `codes`. Everything is checked and
    /// laid out before anything is placed: on an error nothing is.
    pub fn install_all(
        &self,
        t: &Targets<'_>,
        codes: &[CloneCode],
    ) -> Result<Vec<usize>, InstallError> {
        let meta = &t.code.meta;
        let nimp = meta.num_imported_funcs;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut todo: Vec<(&CloneCode, CallField)> = Vec::new();
        for code in codes {
            let func = code.func;
            let defined = func
                .checked_sub(nimp)
                .is_some_and(|k| (k as usize) < meta.num_defined_funcs());
            if !defined {
                return Err(InstallError::NotDefined { func });
            }
            if state.installed.contains_key(&func) || todo.iter().any(|(c, _)| c.func == func) {
                continue;
            }
            todo.push((code, check_code(meta, code)?));
        }
        if !todo.is_empty() {
            place_together(&mut state, t, &todo)?;
        }
        Ok(codes
            .iter()
            .map(|c| state.installed.get(&c.func).map_or(0, |i| i.entry))
            .collect())
    }
}

/// Alignment of each clone in a run of clones placed together.
const CLONE_ALIGN: usize = 16;

/// A run of clones laid out together: its bytes, and per clone its offset
/// in them and its layout.
type Run = (Vec<u8>, Vec<(usize, Laid)>);

/// The clones of `todo` laid out together at `base`: the bytes of the
/// whole run and, per clone, its offset in it and its layout. Calls to a
/// clone of the same run go to `entries` (its entry, or a guess).
fn lay_out_run(
    state: &State,
    t: &Targets<'_>,
    todo: &[(&CloneCode, CallField)],
    base: usize,
    entries: &[usize],
) -> Result<Run, InstallError> {
    let mut bytes = Vec::new();
    let mut laid_out = Vec::with_capacity(todo.len());
    for (code, field) in todo {
        let func = code.func;
        let targets = code
            .calls
            .iter()
            .map(|c| {
                let in_run = match c.target {
                    CallTarget::Clone(n) if object_clone(t.code, n).is_none() => {
                        todo.iter().position(|(o, _)| o.func == n)
                    }
                    _ => None,
                };
                match in_run {
                    Some(i) => Ok(entries[i]),
                    None => target_addr(t, &state.installed, c).map_err(|why| {
                        InstallError::UnknownTarget {
                            func,
                            offset: c.offset,
                            target: c.target,
                            why,
                        }
                    }),
                }
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let off = align_up(bytes.len(), clone_align(code));
        let laid = lay_out(code, *field, base + off, &targets)?;
        // Between clones: padding that traps if ever run.
        bytes.resize(off, trap_byte(*field));
        bytes.extend_from_slice(&laid.bytes);
        laid_out.push((off, laid));
    }
    Ok((bytes, laid_out))
}

/// Where `code` may start in a run: its own alignment, at least
/// [`CLONE_ALIGN`], at most a page (`check_code` refuses more).
fn clone_align(code: &CloneCode) -> usize {
    usize::try_from(code.alignment)
        .unwrap_or(CLONE_ALIGN)
        .clamp(CLONE_ALIGN, page_size())
}

/// A byte that traps when run, for padding: `int3` on x86-64; on aarch64
/// zero words (`udf #0`).
fn trap_byte(field: CallField) -> u8 {
    match field {
        CallField::X86Rel32 => 0xcc,
        CallField::Arm64Call26 => 0,
    }
}

/// Places the clones of `todo` (checked, none installed) together: in the
/// arena if the run fits, else in pages of their own; then registers each.
fn place_together(
    state: &mut State,
    t: &Targets<'_>,
    todo: &[(&CloneCode, CallField)],
) -> Result<(), InstallError> {
    let page = page_size();
    let first = todo[0].0.func;
    // Lays the run out for `base` until the offsets settle: the first pass
    // guesses `base` for calls between clones of the run, which are in
    // reach of each other, so a second pass normally agrees.
    let settle = |state: &State, base: usize| -> Result<Run, InstallError> {
        let mut entries = vec![base; todo.len()];
        for _ in 0..3 {
            let (bytes, laid) = lay_out_run(state, t, todo, base, &entries)?;
            let now: Vec<usize> = laid.iter().map(|(off, _)| base + off).collect();
            if now == entries {
                return Ok((bytes, laid));
            }
            entries = now;
        }
        Err(InstallError::BadCode {
            func: first,
            why: "the clones placed together do not settle on a layout".into(),
        })
    };
    // The arena first: next to the module, its calls reach directly.
    let in_arena = match state.arena.as_ref() {
        Some(arena) => {
            let base = arena.next_addr();
            let (bytes, laid) = settle(state, base)?;
            (align_up(bytes.len(), page) <= arena.free()).then_some((base, bytes, laid))
        }
        None => None,
    };
    let (base, laid, pages) = match (in_arena, state.arena.as_mut()) {
        (Some((base, bytes, laid)), Some(arena)) => {
            let at = arena.place(&bytes).map_err(|source| InstallError::Memory {
                func: first,
                source,
            })?;
            debug_assert_eq!(at, base);
            (base, laid, None)
        }
        _ => {
            // Pages of their own, sized for the worst case: alignment, and
            // a veneer per call.
            let most: usize = todo
                .iter()
                .map(|(code, field)| {
                    clone_align(code)
                        + align_up(code.bytes.len(), veneer::ALIGN)
                        + code.calls.len() * veneer::size(*field)
                })
                .sum();
            let mut pages =
                CodePages::map(most, state.hint).map_err(|source| InstallError::Memory {
                    func: first,
                    source,
                })?;
            state.hint = pages.addr() + pages.len();
            let (bytes, laid) = settle(state, pages.addr())?;
            debug_assert!(bytes.len() <= pages.len());
            pages.seal(&bytes).map_err(|source| InstallError::Memory {
                func: first,
                source,
            })?;
            (pages.addr(), laid, Some(Arc::new(pages)))
        }
    };
    let mut perf_lines = Vec::new();
    for ((code, _), (off, laid)) in todo.iter().zip(laid) {
        let func = code.func;
        let entry = base + off;
        let size = laid.bytes.len();
        let clone = Arc::new(JitClone {
            start: entry,
            end: entry + size,
            func,
            module: t.code.clone(),
            traps: code.traps.clone(),
            call_sites: code.call_sites.clone(),
        });
        // Registered before the entry leaves this module, veneers
        // included (see `JitClone`).
        let registration = crate::code::register_clone(clone.clone());
        if crate::perf_map::wanted() {
            let name = perf_name(&clone);
            perf_lines.push((entry, code.bytes.len(), name.clone()));
            if laid.veneers > 0 {
                let at = entry + laid.veneers_at;
                perf_lines.push((at, size - laid.veneers_at, format!("{name} (veneers)")));
            }
        }
        tracing::debug!(
            func,
            entry,
            size,
            calls = code.calls.len(),
            veneers = laid.veneers,
            own_pages = pages.is_some(),
            placed_with = todo.len(),
            "installed a resume clone"
        );
        state.installed.insert(
            func,
            Installed {
                entry,
                end: entry + size,
                _registration: registration,
                pages: pages.clone(),
            },
        );
    }
    if !perf_lines.is_empty() {
        crate::perf_map::append(&perf_lines);
    }
    Ok(())
}

/// A hint 16 GiB away from `addr` (below it when there is room): beyond
/// the reach of every call field (rel32: 2 GiB), for the developer knob.
fn far_from(addr: usize) -> usize {
    const FAR: usize = 16 << 30;
    if addr > 4 * FAR {
        addr - FAR
    } else {
        addr + FAR
    }
}

/// `code` laid out at `at`, each call's target at `targets` (before its
/// `target_offset`): every field patched to reach its target directly, or,
/// when it cannot and is the field of a call or jump, a veneer after the
/// code (one per distinct destination) that jumps there.
fn lay_out(
    code: &CloneCode,
    field: CallField,
    at: usize,
    targets: &[usize],
) -> Result<Laid, InstallError> {
    let func = code.func;
    let mut bytes = code.bytes.clone();
    let veneers_at = align_up(bytes.len(), veneer::ALIGN);
    let mut veneers: Vec<u8> = Vec::new();
    let mut by_dest: HashMap<i128, usize> = HashMap::new();
    let bias = i128::from(veneer::pc_bias(field));
    for (c, &target) in code.calls.iter().zip(targets) {
        let offset = c.offset as usize;
        let out_of_range = |why| InstallError::OutOfRange {
            func,
            offset: c.offset,
            target: c.target,
            why,
        };
        let bad = |why: PatchError| InstallError::BadCode {
            func,
            why: format!("call at offset {:#x}: {why}", c.offset),
        };
        let place = at as i128 + i128::from(c.offset);
        let disp = target as i128 + i128::from(c.target_offset) + i128::from(c.addend) - place;
        let direct = i64::try_from(disp)
            .map_err(|_| PatchError::Range {
                disp: i64::MAX,
                field: c.field,
            })
            .and_then(|d| patch_field(&mut bytes, offset, c.field, d));
        match direct {
            Ok(()) => continue,
            Err(PatchError::Range { disp: d, .. }) => {
                if !veneer::is_call_or_jump(&code.bytes, offset, c.field) {
                    return Err(out_of_range(PatchError::NoVeneer {
                        disp: d,
                        field: c.field,
                    }));
                }
            }
            Err(other) => return Err(bad(other)),
        }
        // Where the CPU would have gone: field (+ 4 on x86-64) + disp.
        let dest = place + bias + disp;
        if !(0..=i128::from(u64::MAX)).contains(&dest) {
            return Err(out_of_range(PatchError::Range {
                disp: i64::MAX,
                field: c.field,
            }));
        }
        if field == CallField::Arm64Call26 && dest & 3 != 0 {
            return Err(bad(PatchError::Misaligned(disp as i64)));
        }
        let v = *by_dest.entry(dest).or_insert_with(|| {
            let v = veneers_at + veneers.len();
            veneers.extend(veneer::encode(field, dest as u64));
            v
        });
        let to_veneer = (at + v) as i128 - place - bias;
        let d = i64::try_from(to_veneer).unwrap_or(i64::MAX);
        patch_field(&mut bytes, offset, c.field, d).map_err(|why| match why {
            PatchError::Range { .. } => out_of_range(why),
            other => bad(other),
        })?;
    }
    let count = by_dest.len();
    if count > 0 {
        bytes.resize(veneers_at, trap_byte(field));
        bytes.extend_from_slice(&veneers);
        Ok(Laid {
            bytes,
            veneers_at,
            veneers: count,
        })
    } else {
        let len = bytes.len();
        Ok(Laid {
            bytes,
            veneers_at: len,
            veneers: 0,
        })
    }
}

/// The name of a clone in the perf map: its symbol in an object with
/// symbols (`mvvm_resume_N`), then its wasm name if it has one.
fn perf_name(clone: &JitClone) -> String {
    match clone.module.name(&clone.range()) {
        Some(n) => format!("mvvm_resume_{} {n}", clone.func),
        None => format!("mvvm_resume_{}", clone.func),
    }
}

/// The checks of `code` that do not depend on where it goes: non-empty,
/// an alignment the arena's pages give, each call field inside the code
/// and of the module's ISA, trap sites sorted and inside, exception call
/// sites as the loader wants an object's, and the checkpoint tables of the
/// module's function (a clone compiled from other wasm or with other
/// options would not agree with the hot body's stable points). Returns
/// the module's kind of call field.
fn check_code(
    meta: &mvvm_abi::meta::ModuleMeta,
    code: &CloneCode,
) -> Result<CallField, InstallError> {
    let func = code.func;
    let bad = |why: String| InstallError::BadCode { func, why };
    let size = code.bytes.len();
    if size == 0 {
        return Err(bad("no code".into()));
    }
    if !code.alignment.is_power_of_two() || code.alignment > page_size() as u64 {
        return Err(bad(format!("alignment {}", code.alignment)));
    }
    let field = match meta.target {
        TargetArch::X86_64 => CallField::X86Rel32,
        TargetArch::Aarch64 => CallField::Arm64Call26,
    };
    if let Some(c) = code.calls.iter().find(|c| c.field != field) {
        return Err(bad(format!(
            "a {:?} call (at offset {:#x}) in code for {}",
            c.field,
            c.offset,
            meta.target.name()
        )));
    }
    let traps_ok = code
        .traps
        .windows(2)
        .all(|w| w[0].code_offset < w[1].code_offset)
        && code.traps.iter().all(|t| (t.code_offset as usize) < size);
    if !traps_ok {
        return Err(bad("trap sites unsorted or outside the code".into()));
    }
    let size32 = u32::try_from(size).map_err(|_| bad(format!("{size} bytes of code")))?;
    if !crate::loader::call_sites_sound(&code.call_sites, size32) {
        return Err(bad(
            "exception call sites unsorted or outside the code".into()
        ));
    }
    match meta.func_tables(func) {
        Ok(tables) if *tables == code.tables => Ok(field),
        Ok(_) => Err(bad(
            "its checkpoint tables are not those of this module's function (compiled from other wasm or with other options)".into(),
        )),
        Err(e) => Err(bad(format!("the module's checkpoint tables: {e}"))),
    }
}

/// The address a call of a clone goes to (before its `target_offset`).
fn target_addr(
    t: &Targets<'_>,
    installed: &HashMap<u32, Installed>,
    c: &CloneCall,
) -> Result<usize, String> {
    let nimp = t.code.meta.num_imported_funcs;
    match c.target {
        CallTarget::Body(n) => {
            let k = n
                .checked_sub(nimp)
                .ok_or_else(|| format!("function {n} is an import"))?;
            t.code.body_addr(k as usize)
        }
        CallTarget::Clone(n) => object_clone(t.code, n)
            .or_else(|| installed.get(&n).map(|i| i.entry))
            .ok_or_else(|| format!("function {n} has no resume clone (yet)")),
        CallTarget::ImportStub(j) => t
            .import_stubs
            .get(j as usize)
            .copied()
            .ok_or_else(|| format!("no import {j}")),
        CallTarget::ArrayTrampoline(i) => t
            .trampolines
            .get(&i)
            .copied()
            .ok_or_else(|| format!("function {i} has no array trampoline")),
        CallTarget::ProbeTrampoline => t.probe_trampoline.ok_or_else(|| {
            format!(
                "the object does not name its probe trampoline (`{}` is kept only by `mvvm-aot --symbols`)",
                mvvm_abi::object::PROBE_TRAMPOLINE_SYMBOL
            )
        }),
    }
}

/// The entry of function `func`'s clone in the object (its entries
/// table), if the object holds one inside its text.
pub(crate) fn object_clone(code: &CodeInfo, func: u32) -> Option<usize> {
    let k = func.checked_sub(code.meta.num_imported_funcs)? as usize;
    let e = code.entries.table().clone_of(k)?;
    let start = code.code_start.checked_add(e.offset as usize)?;
    (e.end() <= code.code_len as u64).then_some(start)
}

/// Patches call `c` of code that will sit at `at`, whose target (before
/// `target_offset`) is at `target`, directly (no veneer).
#[cfg(test)]
fn patch_call(code: &mut [u8], at: usize, target: usize, c: &CloneCall) -> Result<(), PatchError> {
    let place = at as i128 + i128::from(c.offset);
    let disp = target as i128 + i128::from(c.target_offset) + i128::from(c.addend) - place;
    let disp = i64::try_from(disp).map_err(|_| PatchError::Range {
        disp: i64::MAX,
        field: c.field,
    })?;
    patch_field(code, c.offset as usize, c.field, disp)
}

/// Writes displacement `disp` (target + addend - field address) into the
/// call field `field` at `offset` of `code`: the 4 bytes of a rel32, or
/// the 26-bit word offset of an aarch64 `b`/`bl` (a multiple of 4 within
/// +-128 MiB).
pub(crate) fn patch_field(
    code: &mut [u8],
    offset: usize,
    field: CallField,
    disp: i64,
) -> Result<(), PatchError> {
    let bytes = offset
        .checked_add(4)
        .and_then(|end| code.get_mut(offset..end))
        .ok_or(PatchError::Outside)?;
    match field {
        CallField::X86Rel32 => {
            let v = i32::try_from(disp).map_err(|_| PatchError::Range { disp, field })?;
            bytes.copy_from_slice(&v.to_le_bytes());
        }
        CallField::Arm64Call26 => {
            if !offset.is_multiple_of(4) {
                return Err(PatchError::Outside);
            }
            let insn = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            // `b` is 0b000101, `bl` 0b100101 in the top six bits.
            if insn & 0x7c00_0000 != 0x1400_0000 {
                return Err(PatchError::NotABranch(insn));
            }
            // Out of reach first: that is the error an arena placed too far
            // away gives, whatever the low bits.
            if !(-(1 << 27)..(1 << 27)).contains(&disp) {
                return Err(PatchError::Range { disp, field });
            }
            if disp & 3 != 0 {
                return Err(PatchError::Misaligned(disp));
            }
            let imm = ((disp >> 2) as u32) & 0x03ff_ffff;
            bytes.copy_from_slice(&((insn & !0x03ff_ffff) | imm).to_le_bytes());
        }
    }
    Ok(())
}

/// The displacement a patched call field holds (the inverse of
/// [`patch_field`]), if the field is inside `code`.
#[cfg(test)]
pub(crate) fn read_field(code: &[u8], offset: usize, field: CallField) -> Option<i64> {
    let b = code.get(offset..offset.checked_add(4)?)?;
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Some(match field {
        CallField::X86Rel32 => i64::from(v as i32),
        // Sign-extend the 26 bits, in words.
        CallField::Arm64Call26 => i64::from(((v << 6) as i32) >> 6) * 4,
    })
}

#[cfg(test)]
mod tests;
