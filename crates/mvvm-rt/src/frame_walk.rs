//! Reading wasm frames where the native frames hold them, and checking
//! what is read against the records the unwind blocks write (plan step 7
//! of "Reading frames where they are" in `crates/mvvm-aot/CHECKPOINT.md`).
//!
//! Only objects compiled with the developer option `frame_map` carry
//! frame maps ([`mvvm_abi::frame_map`]); their probe trampoline calls
//! `ProbeWalk` with its own frame pointer, through [`probe_walk_entry`],
//! which first copies the callee-saved registers; their import stubs call
//! `HostCallWalk` ([`host_call_walk_entry`]) and their waits
//! `MemoryAtomicWait*Walk` ([`wait32_walk_entry`]), entered the same way
//! ([`Origin`]). When that probe, host call or wait starts an unwind,
//! [`walk`] follows the frame-pointer chain from there,
//! innermost first, as the exception walk does (`throw.rs`): each frame's
//! return address names a body and, if the map has it, a site, whose
//! values are read where the map says: stack slots at a CFA offset (CFA =
//! frame pointer + 16 on x86-64 and aarch64), registers where the chain
//! of saves put the frame's values (the entry's copies, the trampoline's
//! saves, then each inner frame's prologue saves). Then the normal unwind
//! runs, every frame's unwind block writes its record, and [`compare`]
//! checks the two, frame by frame: function, stable point, every value
//! read, zero for dead locals. A disagreement is an error of the
//! checkpoint (`capture.rs` refuses the snapshot), never ignored.
//!
//! Not read, and counted as such ([`FrameWalkStats`]): values the map
//! could not locate (call arguments, values the optimiser recomputes
//! after the call) and values in a register the chain does not reach (a
//! `v128` in a register only half saved by a callee on aarch64).
//!
//! ```text
//!   higher addresses
//!   ┌────────────────────────┐  CFA of frame 1 = fp1 + 16
//!   │ return address, old fp │  ◀── fp1 (caller, at a call site)
//!   │ spill slots (CFA - k)  │
//!   ├────────────────────────┤  CFA of frame 0 = fp0 + 16
//!   │ return address, old fp │  ◀── fp0 (the probing body)
//!   │ spill slots            │
//!   ├────────────────────────┤
//!   │ return address, old fp │  ◀── trampoline fp (given to ProbeWalk)
//!   │ probe trampoline       │
//!   └────────────────────────┘
//! ```

use crate::checkpoint::control::RawFrame;
use crate::vmctx::VMContext;
use mvvm_abi::frame_map::ValueLocation;

/// At most this many frames are walked (as the exception walk).
const MAX_FRAMES: usize = 1 << 20;

/// One value of a walked frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walked {
    /// Read from the frame (or a register's save slot): its slot(s),
    /// zero-extended from its width.
    Read {
        slot: u32,
        bits: [u64; 2],
        wide: bool,
        register: bool,
    },
    /// A dead local: its slot must be zero.
    Dead { slot: u32, wide: bool },
    /// In a register whose value the chain of saves does not reach (a
    /// `v128` in a half-saved register, a map that names a register no
    /// one saved): not read.
    Register,
    /// Not located: not read.
    Unknown,
    /// The map put it outside the frame: an error of the map.
    Outside { slot: u32 },
}

/// A wasm frame found by [`walk`].
#[derive(Debug, Clone)]
pub(crate) struct WalkedFrame {
    /// Function index.
    pub func: u32,
    /// The return address's offset in the body (for messages).
    pub ret_offset: u32,
    /// Which body the frame runs: 0 whole, 1 hot, 2 resume clone (as
    /// [`FrameBody`](mvvm_abi::frame_map::FrameBody)).
    pub body: u8,
    /// The covered site, if the map has one for this return address.
    pub site: Option<WalkedSite>,
}

/// What one checkpoint's check found (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameWalkStats {
    /// Wasm frames walked.
    pub frames_walked: u64,
    /// Of those, frames at a site of the frame map, compared with the
    /// record their unwind block wrote.
    pub frames_compared: u64,
    /// Frames compared whose every value was read (none in an unreached
    /// register, none unlocated; call arguments count as unlocated).
    pub frames_fully_read: u64,
    /// `frames_compared` by body: whole bodies, hot bodies, resume
    /// clones.
    pub compared_by_body: [u64; 3],
    /// `frames_fully_read` by body, as `compared_by_body`.
    pub fully_read_by_body: [u64; 3],
    /// Frames compared whose every value other than the call's arguments
    /// was read, by body: what dropping the unwind stores at a site would
    /// need (the arguments are not needed, see CHECKPOINT.md, plan step 3).
    pub read_but_args_by_body: [u64; 3],
    /// Values read from stack slots and found equal to the record.
    pub values_compared: u64,
    /// Dead locals found zero in the record.
    pub dead_compared: u64,
    /// Values read from where the chain of register saves put them
    /// and found equal to the record.
    pub registers_compared: u64,
    /// Values in registers the chain does not reach: not checked.
    pub values_in_registers: u64,
    /// Values the map could not locate: not checked.
    pub values_unlocated: u64,
    /// Frames the unwind wrote beyond the walk (frames after a host
    /// frame, which the walk stops at).
    pub frames_not_walked: u64,
    /// Frames whose unwind wrote no record, whose record was made from
    /// the walk (developer option `walk_frames`), by body as
    /// `compared_by_body`; not compared (there is nothing to compare
    /// with), and not counted in `frames_compared`.
    pub made_by_body: [u64; 3],
}

impl FrameWalkStats {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &FrameWalkStats) {
        self.frames_walked += o.frames_walked;
        self.frames_compared += o.frames_compared;
        self.frames_fully_read += o.frames_fully_read;
        for k in 0..3 {
            self.compared_by_body[k] += o.compared_by_body[k];
            self.fully_read_by_body[k] += o.fully_read_by_body[k];
            self.read_but_args_by_body[k] += o.read_but_args_by_body[k];
            self.made_by_body[k] += o.made_by_body[k];
        }
        self.values_compared += o.values_compared;
        self.dead_compared += o.dead_compared;
        self.registers_compared += o.registers_compared;
        self.values_in_registers += o.values_in_registers;
        self.values_unlocated += o.values_unlocated;
        self.frames_not_walked += o.frames_not_walked;
    }
}

/// The values of a covered site as the walk read them.
#[derive(Debug, Clone)]
pub(crate) struct WalkedSite {
    /// The stable point.
    pub offset: u32,
    /// Slots of the record.
    pub slots: u32,
    /// Index in `values` of the call's first argument.
    pub args_from: u32,
    /// Whether the site's unwind path writes no record (the map's
    /// `walked`).
    pub walked: bool,
    /// Every value of the record.
    pub values: Vec<Walked>,
}

/// The registers [`probe_walk_entry`] copies into its save area:
/// `(class, hardware number, offset in the area, bytes)`. x86-64: the
/// callee-saved `rbx`, `r12`-`r15` (the trampoline saves every other
/// register it and its callee clobber, and says where).
#[cfg(target_arch = "x86_64")]
const CAPTURED: &[(u8, u8, usize, usize)] = &[
    (0, 3, 0, 8),
    (0, 12, 8, 8),
    (0, 13, 16, 8),
    (0, 14, 24, 8),
    (0, 15, 32, 8),
];
/// aarch64: `x19`-`x28`, then `v0`-`v31` whole. The trampoline saves the
/// vector registers, but Cranelift records no unwind information for a
/// whole-register save (`preserve_all`), so their values are taken at the
/// entry: the trampoline computes nothing in them before its call.
#[cfg(target_arch = "aarch64")]
const CAPTURED: &[(u8, u8, usize, usize)] = &aarch64_captured();

#[cfg(target_arch = "aarch64")]
const fn aarch64_captured() -> [(u8, u8, usize, usize); 42] {
    let mut out = [(0u8, 0u8, 0usize, 0usize); 42];
    let mut k = 0;
    while k < 10 {
        out[k] = (0, 19 + k as u8, 8 * k, 8);
        k += 1;
    }
    let mut v = 0;
    while v < 32 {
        out[10 + v] = (1, v as u8, 80 + 16 * v, 16);
        v += 1;
    }
    out
}

/// Bytes a prologue saves of a float register: the whole register on
/// x86-64 (which has no callee-saved float register: only `preserve_all`
/// saves them), the low 64 bits on aarch64.
#[cfg(target_arch = "x86_64")]
const FLOAT_SAVE: usize = 16;
#[cfg(target_arch = "aarch64")]
const FLOAT_SAVE: usize = 8;

/// The instructions that copy the [`CAPTURED`] registers into the save
/// area at the stack pointer: one template shared by the walk entries.
#[cfg(target_arch = "x86_64")]
macro_rules! save_captured {
    () => {
        concat!(
            "mov [rsp], rbx\n",
            "mov [rsp + 8], r12\n",
            "mov [rsp + 16], r13\n",
            "mov [rsp + 24], r14\n",
            "mov [rsp + 32], r15\n",
        )
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! save_captured {
    () => {
        concat!(
            "stp x19, x20, [sp, #0]\n",
            "stp x21, x22, [sp, #16]\n",
            "stp x23, x24, [sp, #32]\n",
            "stp x25, x26, [sp, #48]\n",
            "stp x27, x28, [sp, #64]\n",
            "stp q0, q1, [sp, #80]\n",
            "stp q2, q3, [sp, #112]\n",
            "stp q4, q5, [sp, #144]\n",
            "stp q6, q7, [sp, #176]\n",
            "stp q8, q9, [sp, #208]\n",
            "stp q10, q11, [sp, #240]\n",
            "stp q12, q13, [sp, #272]\n",
            "stp q14, q15, [sp, #304]\n",
            "stp q16, q17, [sp, #336]\n",
            "stp q18, q19, [sp, #368]\n",
            "stp q20, q21, [sp, #400]\n",
            "stp q22, q23, [sp, #432]\n",
            "stp q24, q25, [sp, #464]\n",
            "stp q26, q27, [sp, #496]\n",
            "stp q28, q29, [sp, #528]\n",
            "stp q30, q31, [sp, #560]\n",
        )
    };
}

/// Size of [`probe_walk_entry`]'s save area, a multiple of 16.
#[cfg(target_arch = "x86_64")]
const AREA: usize = 48;
#[cfg(target_arch = "aarch64")]
const AREA: usize = 592;
const _: () = assert!(AREA.is_multiple_of(16));

/// Where the walk finds each register's value for the frame it reads:
/// `(class, hw) -> (address, bytes there)`.
#[derive(Default)]
struct Registers(Vec<((u8, u8), (usize, usize))>);

impl Registers {
    fn set(&mut self, reg: (u8, u8), at: (usize, usize)) {
        match self.0.iter_mut().find(|(r, _)| *r == reg) {
            Some(e) => e.1 = at,
            None => self.0.push((reg, at)),
        }
    }

    fn get(&self, reg: (u8, u8)) -> Option<(usize, usize)> {
        self.0.iter().find(|(r, _)| *r == reg).map(|e| e.1)
    }

    /// Applies a prologue's `saves` in the frame whose frame pointer is
    /// `fp` and whose lowest address is `floor`: from now on the caller's
    /// values of those registers are there. A save outside that range (a
    /// bad map) makes the register unknown.
    fn saved_by(&mut self, saves: &[mvvm_abi::frame_map::RegSave], fp: usize, floor: usize) {
        for s in saves {
            let size = if s.class == 0 { 8 } else { FLOAT_SAVE };
            let addr = fp.wrapping_add_signed(s.fp_offset as isize);
            let inside = addr >= floor && addr.checked_add(size).is_some_and(|end| end <= fp);
            if inside {
                self.set((s.class, s.hw), (addr, size));
            } else {
                self.0.retain(|(r, _)| *r != (s.class, s.hw));
            }
        }
    }
}

/// Builtin `ProbeWalk` (objects compiled with the developer option
/// `frame_map`): copies the registers of [`CAPTURED`], which still hold
/// the probing body's values (the probe trampoline saves only what it and
/// its callee clobber, and the C convention keeps the callee-saved ones),
/// into a save area on its own stack and calls [`probe_walk_inner`] with its address.
/// Written in assembly because no Rust function can read a register
/// before its own prologue may have changed it.
#[cfg(target_arch = "x86_64")]
// SAFETY: the body saves `rbp`, reserves `AREA` bytes (keeping the stack
// 16-byte aligned: 8 on entry, + 8 for `rbp`, + a multiple of 16), only
// reads the callee-saved registers, calls a C-convention function with
// the caller's four arguments untouched plus the area in `r8`, and
// restores `rsp` and `rbp` before returning its result in `eax`.
#[unsafe(naked)]
pub(crate) extern "C" fn probe_walk_entry(
    vmctx: *mut VMContext,
    func: u32,
    offset: u32,
    tramp_fp: usize,
) -> u32 {
    std::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "sub rsp, {area}",
        save_captured!(),
        "mov r8, rsp",
        "call {inner}",
        "add rsp, {area}",
        "pop rbp",
        "ret",
        area = const AREA,
        inner = sym probe_walk_inner,
    )
}

/// As the x86-64 version: `x19`-`x28` and `q0`-`q31` into the area.
#[cfg(target_arch = "aarch64")]
// SAFETY: the body pushes the frame record (`x29`, `x30`), reserves
// `AREA` bytes (a multiple of 16), only reads the registers it copies,
// calls a C-convention function with the caller's four
// arguments untouched plus the area in `x4`, and restores `sp`, `x29`
// and `x30` before returning its result in `w0`.
#[unsafe(naked)]
pub(crate) extern "C" fn probe_walk_entry(
    vmctx: *mut VMContext,
    func: u32,
    offset: u32,
    tramp_fp: usize,
) -> u32 {
    std::arch::naked_asm!(
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "sub sp, sp, #{area}",
        save_captured!(),
        "mov x4, sp",
        "bl {inner}",
        "add sp, sp, #{area}",
        "ldp x29, x30, [sp], #16",
        "ret",
        area = const AREA,
        inner = sym probe_walk_inner,
    )
}

/// `Probe`, and when it starts an unwind, the walk of the wasm frames
/// from the probe trampoline's frame `tramp_fp` (with `regs`, the
/// entry's copies of the callee-saved registers), kept for the check
/// against the frames the unwind saves.
extern "C" fn probe_walk_inner(
    vmctx: *mut VMContext,
    func: u32,
    offset: u32,
    tramp_fp: usize,
    regs: usize,
) -> u32 {
    let unwind = {
        // SAFETY: called (through `probe_walk_entry`) by generated code
        // with its own vmctx; the reference ends with this block, which
        // runs no wasm.
        let (s, _) = unsafe { crate::builtins::store_of(vmctx) };
        crate::checkpoint::control::probe(s, func, offset)
    };
    if unwind == 1 {
        // SAFETY: only the probe trampoline calls `ProbeWalk`, with its
        // own frame pointer, from a wasm body, and it is live until this
        // returns; `regs` is the entry's area, laid out as `walk` says.
        let walked = unsafe { walk(tramp_fp, regs, Origin::Probe) };
        // SAFETY: as above; the walk's lookups are over, no other
        // reference into the store is alive.
        let (s, _) = unsafe { crate::builtins::store_of(vmctx) };
        if let Some(c) = s.ckpt.as_deref_mut() {
            c.walked = Some(walked);
        }
    }
    unwind
}

/// Where an unwind started, which says whose prologue saves the walk
/// applies first (the frame between the save area and the innermost wasm
/// frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// At a probe: the probe trampoline's frame, with its saves.
    Probe,
    /// In a host call: the import stub of imported function `.0`, with
    /// its saves.
    HostStub(u32),
    /// In a builtin the body called directly (a wait): the entry's own
    /// frame, which saves nothing.
    Direct,
}

/// Builtin `HostCallWalk` (objects compiled with the developer option
/// `frame_map`): as `HostCall`, entered as [`probe_walk_entry`] is (the
/// callee-saved registers copied into a save area, which still hold the
/// import stub's values), and passing the stub's frame pointer (the
/// entry's caller's, read from the entry's own frame record).
#[cfg(target_arch = "x86_64")]
// SAFETY: as `probe_walk_entry`: the caller's three arguments stay in
// `rdi`, `rsi`, `rdx`; `rcx` gets the caller's frame pointer (saved at
// `[rbp]` by the push), `r8` the area; `rsp` and `rbp` are restored.
#[unsafe(naked)]
pub(crate) extern "C" fn host_call_walk_entry(
    vmctx: *mut VMContext,
    import: u32,
    values: *mut u64,
) -> i32 {
    std::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "sub rsp, {area}",
        save_captured!(),
        "mov rcx, [rbp]",
        "mov r8, rsp",
        "call {inner}",
        "add rsp, {area}",
        "pop rbp",
        "ret",
        area = const AREA,
        inner = sym host_call_walk_inner,
    )
}

/// As the x86-64 version: `x19`-`x28` and `q0`-`q31` into the area, the
/// caller's frame pointer in `x3`, the area in `x4`.
#[cfg(target_arch = "aarch64")]
// SAFETY: as `probe_walk_entry` (aarch64), with three arguments kept in
// `x0`-`x2` and the caller's frame pointer, saved at `[x29]`, in `x3`.
#[unsafe(naked)]
pub(crate) extern "C" fn host_call_walk_entry(
    vmctx: *mut VMContext,
    import: u32,
    values: *mut u64,
) -> i32 {
    std::arch::naked_asm!(
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "sub sp, sp, #{area}",
        save_captured!(),
        "ldr x3, [x29]",
        "mov x4, sp",
        "bl {inner}",
        "add sp, sp, #{area}",
        "ldp x29, x30, [sp], #16",
        "ret",
        area = const AREA,
        inner = sym host_call_walk_inner,
    )
}

/// `HostCall`, and when it returns `HOST_CALL_UNWIND`, the walk of the
/// wasm frames from the import stub's frame `stub_fp` (with `regs`, the
/// entry's copies of the callee-saved registers).
extern "C" fn host_call_walk_inner(
    vmctx: *mut VMContext,
    import: u32,
    values: *mut u64,
    stub_fp: usize,
    regs: usize,
) -> i32 {
    let status = crate::builtins::host_call(vmctx, import, values);
    if status == mvvm_abi::checkpoint::HOST_CALL_UNWIND as i32 {
        // SAFETY: only import stubs call `HostCallWalk`, from a wasm
        // body, with their own frame pointer; the stub's frame is live
        // until this returns; `regs` is the entry's area, laid out as
        // `walk` says, directly below the entry's frame record, which
        // lies directly below the stub's frame.
        let walked = unsafe { walk(stub_fp, regs, Origin::HostStub(import)) };
        // SAFETY: called with generated code's own vmctx; the host call
        // and the walk are over, no other reference into the store is
        // alive, and this one ends here.
        let (s, _) = unsafe { crate::builtins::store_of(vmctx) };
        if let Some(c) = s.ckpt.as_deref_mut() {
            c.walked = Some(walked);
        }
    }
    status
}

/// Bytes of a wait entry's frame below its frame record: the register
/// save area, then the wait's result (`i32`), padded to 16.
const WAIT_AREA: usize = AREA + 16;

/// Builtins `MemoryAtomicWait32Walk` and `MemoryAtomicWait64Walk`
/// (objects compiled with the developer option `frame_map`): the waits,
/// entered as [`probe_walk_entry`] is (the callee-saved registers, which
/// hold the waiting body's values, copied into a save area), calling the
/// Rust half `inner` with the area and the entry's own frame pointer (its
/// record holds the body's frame pointer and the return address into it).
/// A non-zero status is raised from here, with that return address, as
/// the C shims of `native/entry.c` raise it: no Rust frame is live then.
macro_rules! wait_walk_entry {
    ($name:ident, $expected:ty, $inner:path) => {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the body saves `rbp` and reserves `WAIT_AREA` bytes
        // (16-byte aligned, as `probe_walk_entry`), only reads the
        // callee-saved registers, calls the Rust half with the caller's
        // four arguments untouched, the area in `r8` and its own frame
        // pointer in `r9`; on status 0 it returns the result the Rust half
        // wrote at the area's end, restoring `rsp` and `rbp`; otherwise it
        // calls `mvvm_rt_trap_at`, which never returns.
        #[unsafe(naked)]
        pub(crate) extern "C" fn $name(
            vmctx: *mut VMContext,
            addr: u64,
            expected: $expected,
            timeout: i64,
        ) -> i32 {
            std::arch::naked_asm!(
                "push rbp",
                "mov rbp, rsp",
                "sub rsp, {frame}",
                save_captured!(),
                "mov r8, rsp",
                "mov r9, rbp",
                "call {inner}",
                "test eax, eax",
                "jnz 2f",
                "mov eax, [rsp + {area}]",
                "add rsp, {frame}",
                "pop rbp",
                "ret",
                "2:",
                "mov edi, eax",
                "mov rsi, [rbp + 8]",
                "call {trap}",
                "ud2",
                frame = const WAIT_AREA,
                area = const AREA,
                inner = sym $inner,
                trap = sym crate::trap::mvvm_rt_trap_at,
            )
        }

        #[cfg(target_arch = "aarch64")]
        // SAFETY: as the x86-64 version: the frame record pushed, the
        // area reserved (a multiple of 16), the caller's four arguments
        // kept in `x0`-`x3`, the area in `x4`, the frame pointer in `x5`;
        // on status 0 the result from the area's end, `sp`, `x29` and
        // `x30` restored; otherwise `mvvm_rt_trap_at`, which never returns.
        #[unsafe(naked)]
        pub(crate) extern "C" fn $name(
            vmctx: *mut VMContext,
            addr: u64,
            expected: $expected,
            timeout: i64,
        ) -> i32 {
            std::arch::naked_asm!(
                "stp x29, x30, [sp, #-16]!",
                "mov x29, sp",
                "sub sp, sp, #{frame}",
                save_captured!(),
                "mov x4, sp",
                "mov x5, x29",
                "bl {inner}",
                "cbnz w0, 2f",
                "ldr w0, [sp, #{area}]",
                "add sp, sp, #{frame}",
                "ldp x29, x30, [sp], #16",
                "ret",
                "2:",
                "ldr x1, [x29, #8]",
                "bl {trap}",
                "brk #1",
                frame = const WAIT_AREA,
                area = const AREA,
                inner = sym $inner,
                trap = sym crate::trap::mvvm_rt_trap_at,
            )
        }
    };
}

wait_walk_entry!(
    wait32_walk_entry,
    u32,
    crate::atomic_wait::wait32_walk_inner
);
wait_walk_entry!(
    wait64_walk_entry,
    u64,
    crate::atomic_wait::wait64_walk_inner
);

/// Where a wait entry's Rust half writes the wait's result.
pub(crate) fn wait_result_slot(area: usize) -> *mut i32 {
    (area + AREA) as *mut i32
}

/// A wait that a checkpoint gave up, entered through a wait entry whose
/// frame pointer is `entry_fp` and whose save area is `regs`: walks the
/// wasm frames from the waiting body's and keeps them for the check. The
/// innermost frame's timeout operand, if read, is made what `UnwindFrame`
/// writes in its place (`blocking::patch_wait_frame`): what was `left` of
/// a finite timeout.
///
/// # Safety
/// `entry_fp` is the live frame of a wait entry called by a wasm body,
/// whose call has not returned; `regs` is its save area. `vmctx` is that
/// body's, and no reference into its store is alive.
pub(crate) unsafe fn walk_wait(
    vmctx: *mut VMContext,
    entry_fp: usize,
    regs: usize,
    left: Option<u64>,
) {
    // SAFETY: the caller's contract: the entry's frame record holds the
    // body's frame pointer and return address, and its area is `regs`.
    let mut walked = unsafe { walk(entry_fp, regs, Origin::Direct) };
    if let (Some(left), Some(site)) = (left, walked.first_mut().and_then(|f| f.site.as_mut())) {
        let top = site.slots.checked_sub(1);
        for v in &mut site.values {
            if let Walked::Read {
                slot, bits, wide, ..
            } = v
                && Some(*slot) == top
                && !*wide
                && let Ok(t) = u64::try_from(bits[0] as i64)
            {
                bits[0] = left.min(t);
            }
        }
    }
    // SAFETY: the caller's contract; the walk's lookups are over.
    let (s, _) = unsafe { crate::builtins::store_of(vmctx) };
    if let Some(c) = s.ckpt.as_deref_mut() {
        c.walked = Some(walked);
    }
}

/// Walks the wasm frames above the frame `tramp_fp` where the unwind
/// started (`origin`: the probe trampoline's, an import stub's, or a wait
/// entry's own), innermost first, and reads the values of every frame at
/// a covered site: stack slots in the frame, registers where the chain of
/// saves says (`regs`: the entry's copies of the callee-saved registers;
/// then the trampoline's or stub's saves; then each frame's prologue
/// saves for its caller).
///
/// # Safety
/// `tramp_fp` is the frame pointer of a live frame (its call into the
/// runtime has not returned) called from a wasm body: its frame record
/// holds the body's frame pointer and the return address into it, and
/// every wasm frame above keeps a frame record (Cranelift's
/// `preserve_frame_pointers`). `regs` is the entry's save area (laid out
/// as [`CAPTURED`] says), live; for [`Origin::Probe`] and
/// [`Origin::HostStub`] it lies directly below the entry's frame record,
/// which lies directly below the frame at `tramp_fp`.
unsafe fn walk(tramp_fp: usize, regs: usize, origin: Origin) -> Vec<WalkedFrame> {
    let mut frames = Vec::new();
    let mut registers = Registers::default();
    for &(class, hw, at, size) in CAPTURED {
        registers.set((class, hw), (regs + at, size));
    }
    // The trampoline's frame: from the entry's frame record (above its
    // save area) up to the trampoline's frame pointer.
    let tramp_floor = regs + AREA + 16;
    // SAFETY: the trampoline's frame record (caller): its frame pointer
    // points at the saved frame pointer, the return address above it,
    // both aligned words of a live frame.
    let (mut fp, mut pc) = unsafe {
        (
            *(tramp_fp as *const usize),
            *((tramp_fp + 8) as *const usize),
        )
    };
    // The lowest address of the frame being read: the CFA of the frame
    // below it (the callee's), where the callee's arguments and frame
    // record begin.
    let mut floor = tramp_fp + 16;
    let mut first = true;
    for _ in 0..MAX_FRAMES {
        let cfa = fp + 16;
        let frame = crate::code::with_frame_site(pc, |found| {
            let found = found?;
            if std::mem::take(&mut first) {
                let saves = match (origin, found.maps) {
                    (Origin::Probe, Some(m)) => &m.probe_saves[..],
                    (Origin::HostStub(j), Some(m)) => {
                        m.stub_saves.get(j as usize).map_or(&[][..], |v| &v[..])
                    }
                    _ => &[],
                };
                registers.saved_by(saves, tramp_fp, tramp_floor);
            }
            let site = found.site.map(|s| {
                let values = s
                    .values
                    .iter()
                    .map(|v| read_value(v, floor, cfa, &registers))
                    .collect();
                WalkedSite {
                    offset: s.offset,
                    slots: s.slots,
                    args_from: s.args_from,
                    walked: s.walked,
                    values,
                }
            });
            registers.saved_by(found.saves, fp, floor);
            Some(WalkedFrame {
                func: found.func,
                ret_offset: found.ret_offset,
                body: found.body,
                site,
            })
        });
        let Some(frame) = frame else {
            break;
        };
        frames.push(frame);
        // SAFETY: `fp` is the frame pointer of a live wasm frame (the
        // walk's invariant, from the trampoline's record on): its record
        // holds the caller's frame pointer and return address.
        let (next_fp, next_pc) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        // Frames lie at increasing addresses; anything else ends the walk.
        if next_fp <= fp {
            break;
        }
        floor = cfa;
        (pc, fp) = (next_pc, next_fp);
    }
    frames
}

/// Reads `width` bytes at `addr`, zero-extended into one or two slots.
///
/// # Safety
/// `addr..addr + width` is readable (inside a live frame of this thread).
unsafe fn read_bits(addr: usize, width: u8) -> [u64; 2] {
    // SAFETY: the caller's contract; unaligned reads of plain integers.
    unsafe {
        match width {
            4 => [u64::from((addr as *const u32).read_unaligned()), 0],
            8 => [(addr as *const u64).read_unaligned(), 0],
            _ => [
                (addr as *const u64).read_unaligned(),
                ((addr + 8) as *const u64).read_unaligned(),
            ],
        }
    }
}

/// Reads value `v` of the frame whose CFA is `cfa` and whose callee's CFA
/// (the lowest address of the frame) is `floor`, with the registers'
/// values where `registers` says.
fn read_value(
    v: &mvvm_abi::frame_map::FrameValue,
    floor: usize,
    cfa: usize,
    registers: &Registers,
) -> Walked {
    let wide = v.width == 16;
    match v.loc {
        ValueLocation::Dead => Walked::Dead { slot: v.slot, wide },
        ValueLocation::Unknown => Walked::Unknown,
        ValueLocation::Reg { class, hw } => match registers.get((class, hw)) {
            Some((addr, size)) if usize::from(v.width) <= size => Walked::Read {
                slot: v.slot,
                // SAFETY: `Registers` holds only addresses checked to lie
                // in a live frame of this thread (`saved_by`) or in the
                // entry's save area, with `size` bytes there.
                bits: unsafe { read_bits(addr, v.width) },
                wide,
                register: true,
            },
            _ => Walked::Register,
        },
        ValueLocation::Stack { cfa_offset } => {
            let addr = cfa.wrapping_add_signed(cfa_offset as isize);
            let end = addr.wrapping_add(usize::from(v.width));
            if addr < floor || end > cfa || end < addr {
                return Walked::Outside { slot: v.slot };
            }
            Walked::Read {
                slot: v.slot,
                // SAFETY: `addr..end` lies inside a live wasm frame of
                // this thread (checked just above: between its callee's
                // CFA and its own, as `walk` passes them), which nothing
                // writes while the runtime runs.
                bits: unsafe { read_bits(addr, v.width) },
                wide,
                register: false,
            }
        }
    }
}

/// A frame the walk found, as [`crate::code::with_frame_site`] reports it.
pub(crate) struct FrameSiteLookup<'a> {
    /// Function index.
    pub func: u32,
    /// Offset of the return address in the body.
    pub ret_offset: u32,
    /// The map's site for it.
    pub site: Option<&'a mvvm_abi::frame_map::FrameSite>,
    /// Where the body's prologue saves registers.
    pub saves: &'a [mvvm_abi::frame_map::RegSave],
    /// The module's frame maps (for the saves of its probe trampoline
    /// and import stubs).
    pub maps: Option<&'a mvvm_abi::frame_map::FrameMaps>,
    /// Which body (0 whole, 1 hot, 2 resume clone).
    pub body: u8,
}

/// Replaces every placeholder of `unwound` (a frame whose unwind path
/// wrote no record: developer option `walk_frames`) by the record made
/// from the walked frame at the same position (both lists innermost
/// first: each frame left one entry, record or placeholder): every value
/// the walk read, zero for dead locals and for the call's arguments (the
/// callee rewinds from its own record). Returns which frames were made,
/// or why a record could not be made (a placeholder beyond the walk, of
/// another function, at a site that the map does not mark as walked, or
/// with a value other than an argument that the walk did not read).
pub(crate) fn make_records(
    walked: &[WalkedFrame],
    unwound: &mut [RawFrame],
) -> Result<Vec<bool>, Vec<String>> {
    use crate::checkpoint::control::MADE_BY_WALK;
    let mut made = vec![false; unwound.len()];
    let mut errors = Vec::new();
    for (i, u) in unwound.iter_mut().enumerate() {
        if u.offset != MADE_BY_WALK {
            continue;
        }
        let Some(w) = walked.get(i) else {
            errors.push(format!(
                "frame {i} (function {}) left its record to the walk, which found {} frames",
                u.func,
                walked.len()
            ));
            continue;
        };
        let at = format!(
            "frame {i} (function {}, return offset {:#x})",
            u.func, w.ret_offset
        );
        if w.func != u.func {
            errors.push(format!("{at}: the walk found function {}", w.func));
            continue;
        }
        let Some(site) = w.site.as_ref().filter(|s| s.walked) else {
            errors.push(format!(
                "{at}: left its record to the walk, but the map has no such site"
            ));
            continue;
        };
        let mut slots = vec![0u64; site.slots as usize];
        let mut ok = true;
        for (j, v) in site.values.iter().enumerate() {
            let arg = j >= site.args_from as usize;
            match *v {
                Walked::Read {
                    slot, bits, wide, ..
                } if !arg => {
                    let k = slot as usize;
                    let n = 1 + usize::from(wide);
                    match slots.get_mut(k..k + n) {
                        Some(dst) => dst.copy_from_slice(&bits[..n]),
                        None => ok = false,
                    }
                }
                Walked::Dead { .. } => {}
                _ if arg => {}
                _ => {
                    errors.push(format!(
                        "{at}, stable point {:#x}: value {j} was not read ({v:?})",
                        site.offset
                    ));
                    ok = false;
                }
            }
        }
        if ok {
            u.offset = site.offset;
            u.slots = slots;
            made[i] = true;
        }
    }
    if errors.is_empty() {
        Ok(made)
    } else {
        Err(errors)
    }
}

/// Compares the walked frames with the frames the unwind saved (both
/// innermost first), except those whose record was made from the walk
/// (`made`, by position): the counts, or every disagreement.
pub(crate) fn compare(
    walked: &[WalkedFrame],
    unwound: &[RawFrame],
    made: &[bool],
) -> (FrameWalkStats, Vec<String>) {
    let mut st = FrameWalkStats {
        frames_walked: walked.len() as u64,
        frames_not_walked: unwound.len().saturating_sub(walked.len()) as u64,
        ..Default::default()
    };
    let mut errors = Vec::new();
    if walked.len() > unwound.len() {
        errors.push(format!(
            "the walk found {} wasm frames, the unwind saved {}",
            walked.len(),
            unwound.len()
        ));
    }
    for (i, (w, u)) in walked.iter().zip(unwound).enumerate() {
        let at = format!(
            "frame {i} (function {}, return offset {:#x})",
            w.func, w.ret_offset
        );
        if w.func != u.func {
            errors.push(format!("{at}: the unwind saved function {}", u.func));
            continue;
        }
        let body = usize::from(w.body.min(2));
        if made.get(i).copied().unwrap_or(false) {
            st.made_by_body[body] += 1;
            continue;
        }
        let Some(WalkedSite {
            offset,
            slots,
            args_from,
            values,
            ..
        }) = &w.site
        else {
            continue;
        };
        st.frames_compared += 1;
        st.compared_by_body[body] += 1;
        if *offset != u.offset {
            errors.push(format!(
                "{at}: map says stable point {offset:#x}, the unwind {:#x}",
                u.offset
            ));
            continue;
        }
        if *slots as usize != u.slots.len() {
            errors.push(format!(
                "{at}: map says {slots} slots, the unwind wrote {}",
                u.slots.len()
            ));
            continue;
        }
        let slot = |k: u32| u.slots.get(k as usize).copied();
        let mut full = true;
        let mut but_args = true;
        for (j, v) in values.iter().enumerate() {
            let arg = j >= *args_from as usize;
            match *v {
                Walked::Read {
                    slot: k,
                    bits,
                    wide,
                    register,
                } => {
                    let want = [slot(k), if wide { slot(k + 1) } else { Some(0) }];
                    if want != [Some(bits[0]), Some(bits[1])] {
                        errors.push(format!(
                            "{at}, stable point {offset:#x}, slot {k}: read {:#x?}, the unwind wrote {:#x?}",
                            &bits[..1 + usize::from(wide)],
                            &want[..1 + usize::from(wide)]
                        ));
                    } else if register {
                        st.registers_compared += 1;
                    } else {
                        st.values_compared += 1;
                    }
                }
                Walked::Dead { slot: k, wide } => {
                    let zero = slot(k) == Some(0) && (!wide || slot(k + 1) == Some(0));
                    if zero {
                        st.dead_compared += 1;
                    } else {
                        errors.push(format!(
                            "{at}, stable point {offset:#x}, slot {k}: a dead local, but the unwind wrote {:#x?}",
                            slot(k)
                        ));
                    }
                }
                Walked::Register => {
                    full = false;
                    but_args &= arg;
                    st.values_in_registers += 1;
                }
                Walked::Unknown => {
                    full = false;
                    but_args &= arg;
                    st.values_unlocated += 1;
                }
                Walked::Outside { slot: k } => {
                    errors.push(format!(
                        "{at}, stable point {offset:#x}, slot {k}: the map puts it outside the frame"
                    ));
                }
            }
        }
        if full {
            st.frames_fully_read += 1;
            st.fully_read_by_body[body] += 1;
        }
        if but_args {
            st.read_but_args_by_body[body] += 1;
        }
    }
    (st, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(func: u32, offset: u32, slots: Vec<u64>) -> RawFrame {
        RawFrame {
            func,
            offset,
            point: u32::MAX,
            slots,
        }
    }

    #[test]
    fn equal_frames_count_and_any_difference_is_an_error() {
        let walked = vec![WalkedFrame {
            func: 3,
            ret_offset: 0x40,
            body: 2,
            site: Some(WalkedSite {
                offset: 0x12,
                slots: 4,
                args_from: 3,
                walked: false,
                values: vec![
                    Walked::Read {
                        slot: 0,
                        bits: [7, 0],
                        wide: false,
                        register: false,
                    },
                    Walked::Dead {
                        slot: 1,
                        wide: false,
                    },
                    Walked::Read {
                        slot: 2,
                        bits: [1, 2],
                        wide: true,
                        register: true,
                    },
                ],
            }),
        }];
        let good = [raw(3, 0x12, vec![7, 0, 1, 2]), raw(1, 0x5, vec![])];
        let (st, errors) = compare(&walked, &good, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (
                st.frames_compared,
                st.values_compared,
                st.registers_compared,
                st.dead_compared,
                st.frames_not_walked
            ),
            (1, 1, 1, 1, 1)
        );
        for bad in [
            raw(3, 0x12, vec![8, 0, 1, 2]),
            raw(3, 0x12, vec![7, 1, 1, 2]),
            raw(3, 0x12, vec![7, 0, 1, 3]),
            raw(3, 0x13, vec![7, 0, 1, 2]),
            raw(4, 0x12, vec![7, 0, 1, 2]),
            raw(3, 0x12, vec![7, 0, 1]),
        ] {
            let (_, errors) = compare(&walked, std::slice::from_ref(&bad), &[]);
            assert_eq!(errors.len(), 1, "{bad:?}: {errors:?}");
        }
        let (_, errors) = compare(&walked, &[], &[]);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn records_are_made_only_where_the_walk_read_what_they_need() {
        use crate::checkpoint::control::MADE_BY_WALK;
        let site = |walked: bool, second: Walked| WalkedSite {
            offset: 0x20,
            slots: 4,
            args_from: 2,
            walked,
            values: vec![
                Walked::Read {
                    slot: 0,
                    bits: [5, 0],
                    wide: false,
                    register: true,
                },
                second,
                // The call's argument, read or not: written as zero.
                Walked::Read {
                    slot: 3,
                    bits: [9, 0],
                    wide: false,
                    register: false,
                },
            ],
        };
        let frame = |site| WalkedFrame {
            func: 4,
            ret_offset: 0x99,
            body: 0,
            site: Some(site),
        };
        let wide = Walked::Read {
            slot: 1,
            bits: [6, 7],
            wide: true,
            register: false,
        };
        let placeholder = || raw(4, MADE_BY_WALK, vec![]);
        let walked = [frame(site(true, wide))];
        let mut unwound = [placeholder(), raw(1, 0x5, vec![])];
        let made = make_records(&walked, &mut unwound).expect("made");
        assert_eq!(made, [true, false]);
        assert_eq!(
            (unwound[0].offset, &unwound[0].slots[..]),
            (0x20, &[5, 6, 7, 0][..])
        );
        let (st, errors) = compare(&walked, &unwound, &made);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((st.made_by_body, st.frames_compared), ([1, 0, 0], 0));
        // Not made: a site the map does not mark, a value not read, a
        // frame beyond the walk, another function.
        for (walked, mut unwound) in [
            (vec![frame(site(false, wide))], vec![placeholder()]),
            (
                vec![frame(site(true, Walked::Unknown))],
                vec![placeholder()],
            ),
            (
                vec![frame(site(true, Walked::Register))],
                vec![placeholder()],
            ),
            (vec![], vec![placeholder()]),
            (
                vec![frame(site(true, wide))],
                vec![raw(5, MADE_BY_WALK, vec![])],
            ),
        ] {
            assert!(make_records(&walked, &mut unwound).is_err(), "{walked:?}");
        }
    }
}
