//! The checkpoint contract: policies, stable points, the unwind/rewind
//! protocol between generated code and the runtime.
//!
//! A *stable point* is named by `(function index, bytecode offset)`, which is
//! the same for every ISA, opt level and policy. Every compilation with a
//! policy has a resume point at each of them:
//!
//! - [`StablePointKind::Entry`]: the function's entry. Its offset is the
//!   start of the function's body (the byte where its local declarations
//!   begin, `FunctionBody::range().start` in wasmparser terms), which comes
//!   before the first operator, so it never collides with a `loop` or a
//!   call that is the first operator;
//! - [`StablePointKind::Loop`]: a `loop` instruction (resuming re-enters the
//!   loop header, the state being the one at the start of an iteration);
//! - [`StablePointKind::Call`]: a `call`/`call_indirect`, a `return_call`
//!   of an import, a `return_call_indirect` (resuming issues the call
//!   again with the saved arguments; the callee rewinds in turn);
//! - [`StablePointKind::AtomicWait`]: a `memory.atomic.wait32/wait64`
//!   (resuming makes the wait again with the saved operands). Only ever
//!   the innermost frame: the wait builtin gives up a wait that a
//!   checkpoint request interrupts and the code after it unwinds as after
//!   a call; the runtime saves the time that was left of a finite timeout
//!   in place of the timeout operand.
//!
//! Protocol (all through [`VMLimits`](crate::vmctx) fields and builtins):
//!
//! 1. *Probes* (where the policy puts them) test `probe_flag`; when it is
//!    non-zero they call builtin `Probe(func, offset)`. A result of 1 means
//!    "unwind now": the runtime has set `unwind_state = UNWINDING`.
//! 2. *Unwinding*: the function spills its locals and operand stack at the
//!    stable point into `u64` slots, calls `UnwindFrame(func, offset,
//!    values, count)` and returns (with zero results). Every call site whose
//!    callee may unwind (the compiler leaves the test out after a call of a
//!    function that, under the compilation's policy, has no probe, wait or
//!    import call anywhere in its call tree) tests
//!    `unwind_state == UNWINDING` after the callee returns and, if so, does
//!    the same with its own call site as the stable point (its operand stack
//!    includes the call's arguments). Frames therefore reach the runtime
//!    innermost first. An import stub whose `HostCall` returns
//!    [`HOST_CALL_UNWIND`] returns zero results the same way, so a host call
//!    that was interrupted is made again on restore. Only import stubs of
//!    modules compiled with a policy do this (with [`Policy::None`] the stub
//!    is unchanged and treats any non-zero status as a trap code), so the
//!    runtime must never return [`HOST_CALL_UNWIND`] to a module whose
//!    `ModuleMeta::policy` is `None`.
//! 3. *Rewinding*: the runtime sets `unwind_state = REWINDING` and calls the
//!    outermost function. A function entry that sees `REWINDING` calls
//!    `RewindFrame(func, values, capacity)`, which fills the slots with the
//!    frame's locals and stack and returns the index of its stable point in
//!    [`FuncTables::stable_points`](crate::FuncTables); the function redefines
//!    its locals and jumps to that resume point with the stack rebuilt. The
//!    runtime clears `unwind_state` when it hands out the last frame.
//!    `capacity` is the function's largest `locals.len() + stack.len()` over
//!    its stable points ([`FuncTables::frame_capacity`](crate::FuncTables::frame_capacity));
//!    `values` is `VMLimits.frame_slots`, where unwinding frames are written
//!    too;
//!    an index out of range of `stable_points` makes the function trap with
//!    [`TrapCode::Unreachable`](crate::TrapCode::Unreachable) (the runtime
//!    is expected to validate frames before handing them out).
//!    Tail calls: a function that contains a `return_call` or
//!    `return_call_indirect` passes `func | `[`REWIND_MAY_FORWARD`]; if the
//!    next frame belongs to another function `f` (its activation was
//!    replaced by a chain of tail calls ending in `f`), the result is
//!    [`REWIND_FORWARD`]` | f`, the frame is not taken, and the function
//!    tail-calls `f`, which rewinds itself. A tail call is not a stable
//!    point, except one that may call an import (`return_call` of an
//!    import, any `return_call_indirect`), which with a policy calls the
//!    import and returns instead, so an interrupted host call has a frame
//!    that makes it again.
//!
//! Probes read `probe_flag` with a load (an aligned 32-bit load, atomic on
//! every supported ISA) that the compiler may not merge with another
//! probe's, so a flag set by a signal handler or another thread is seen by
//! the next probe executed.
//! A probe that finds the flag set calls `Probe` through the module's
//! `preserve_all` trampoline and then tests `unwind_state` for
//! [`UNWINDING`]. With [`Policy::CounterLoop`] (probes at loop headers and
//! function entries, so recursion without loops still polls) the runtime
//! counts the `Probe` calls and only every `2^threshold_bits`-th is a poll:
//! what `-c N` counts and count triggers act on (a request from a signal or
//! timer is taken at the next probe). Generated code is the same for every
//! policy's probe: one flag test on the hot path, which measured cheaper
//! than any counter kept by generated code.
//!
//! Values in slots use the encoding of array calls: i32/f32 zero-extended,
//! i64/f64 as is, references as pointers (`*const VMFuncRef`, externref
//! words); the runtime turns function pointers into function indices in
//! snapshots. The runtime also zeroes the buffer when an unwind starts and
//! after each `UnwindFrame` (hot bodies use it as scratch while no unwind
//! runs), so a frame never carries bytes of another, and generated code
//! never writes the slots of locals that are dead at the stable point:
//! they read as zero.

use crate::meta::ValType;
use serde::{Deserialize, Serialize};

/// Where probes may start a checkpoint (compiler flags of `mvvm-aot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Policy {
    /// No checkpoint code at all: full speed, cannot be checkpointed.
    None,
    /// `--enable-checkpoint`: probes at function entries.
    FunctionEntry,
    /// `--enable-loop-checkpoint`: probes at loop headers.
    Loop,
    /// `--enable-counter-loop-checkpoint`: probes at loop headers and at
    /// the entries of functions that may recurse, of which every
    /// `2^threshold_bits`-th is a poll.
    CounterLoop {
        /// log2 of the polling period.
        threshold_bits: u8,
    },
    /// `--enable-loop-dirty-checkpoint`: loop probes plus dirty-page
    /// tracking of linear memory (incremental snapshots).
    LoopDirty,
}

impl Policy {
    /// Whether the compilation has resume points (any policy but `None`).
    pub fn is_instrumented(self) -> bool {
        self != Policy::None
    }

    /// Short name, as recorded in snapshots and logs.
    pub fn name(self) -> String {
        match self {
            Policy::None => "none".into(),
            Policy::FunctionEntry => "function".into(),
            Policy::Loop => "loop".into(),
            Policy::CounterLoop { threshold_bits } => format!("counter-loop:{threshold_bits}"),
            Policy::LoopDirty => "loop-dirty".into(),
        }
    }
}

/// What kind of place a stable point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StablePointKind {
    /// The function's first operator.
    Entry,
    /// A `loop` header.
    Loop,
    /// A call site (`call`, `call_indirect`; `return_call` of an import,
    /// `return_call_indirect`).
    Call,
    /// A `memory.atomic.wait32`/`wait64`: its operand stack ends with the
    /// wait's operands (address, expected value, timeout). A frame there
    /// is always the innermost one: the wait builtin interrupted by a
    /// checkpoint request sets `unwind_state = UNWINDING` and the code
    /// after it unwinds as after a call.
    AtomicWait,
}

/// One resume point of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StablePoint {
    /// Bytecode offset (module-relative) of the instruction.
    pub offset: u32,
    /// Its kind.
    pub kind: StablePointKind,
    /// Types of the operand stack there, bottom first (for a call site,
    /// including the call's arguments and, for `call_indirect`, the table
    /// index; for a wait, its three operands).
    pub stack: Vec<ValType>,
}

/// `VMLimits.unwind_state`: running normally.
pub const UNWIND_NONE: u32 = 0;
/// `VMLimits.unwind_state`: frames are being saved; every function returns.
pub const UNWINDING: u32 = 1;
/// `VMLimits.unwind_state`: frames are being restored.
pub const REWINDING: u32 = 2;

/// Or'ed into the function index a function passes to `RewindFrame` when
/// it can forward a frame that is not its own: it contains a tail call
/// (`return_call`, `return_call_indirect`), so when it was unwound its
/// activation may have been replaced by another function's, whose frame
/// then follows its caller's. Function indices stay below `2^31`.
pub const REWIND_MAY_FORWARD: u32 = 1 << 31;

/// Or'ed into the result of `RewindFrame` when the next frame belongs to
/// another function `f` and the caller passed [`REWIND_MAY_FORWARD`]: the
/// result is `REWIND_FORWARD | f`, the frame stays next, and the caller
/// tail-calls `f` (still rewinding), which then takes it. Without
/// [`REWIND_MAY_FORWARD`] a frame of another function is an error.
pub const REWIND_FORWARD: u32 = 1 << 31;

/// Status returned by builtin `HostCall` when the host call was interrupted
/// by a checkpoint request: the runtime has set `unwind_state = UNWINDING`
/// and the import stub must return (zero results) without raising.
pub const HOST_CALL_UNWIND: u32 = 0x100;
