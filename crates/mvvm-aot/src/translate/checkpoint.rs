//! Checkpoint instrumentation: resume points, probes, unwinding and
//! rewinding, following the contract in `mvvm_abi::checkpoint`.
//!
//! Only compilations with a policy other than `Policy::None` get any of
//! this; without one the translator never creates an [`Instrumentation`]
//! and the code is exactly what it was before checkpoints existed.
//!
//! Shape of an instrumented function:
//!
//! ```text
//! entry:   params, locals = 0
//!          limits = vmctx->limits                        (read-only, hoisted)
//!          brif limits->unwind_state == REWINDING, rewind, resume_entry
//! resume_entry:                                          (Entry stable point)
//!          [probe]                                       (FunctionEntry policy)
//!          ...
//!          jump resume_k(stack...)      ; before every loop, call and wait
//! resume_k(stack...):                          (Loop/Call/AtomicWait stable point)
//!          loop:   jump header(params) ; header: [probe] ; body
//!          call:   results = call f(args) ; brif unwind_state == UNWINDING, unwind_k, cont
//!                  (no test when f cannot unwind: `callgraph::unwinding_functions`)
//!          wait:   as a call, of the wait builtin
//! unwind_k (cold):  slots = locals ++ stack ; UnwindFrame(func, offset, slots, n) ; return 0...
//! rewind (cold):    k = RewindFrame(func, slots, capacity) ; locals = slots[..]
//!                   br_table k -> landing_k (else trap)
//! landing_k:        jump resume_k(slots[nlocals..])
//! ```
//!
//! A hot body (one with a resume clone, `BodyRole::Hot`) has no resume
//! blocks and no landings: its rewind path tail-calls the clone.
//!
//! Slots are `u64`s (`VALUE_SLOT_SIZE`): a `v128` local or stack value
//! takes two consecutive ones, stored and loaded as one 16-byte access,
//! little-endian, low half first ([`ValType::slots`], `env::slot_layout`,
//! `env::slot_flags`: slots are only 8-byte aligned); the capacity given to
//! `RewindFrame` counts slots like `FuncTables::frame_capacity`.
//!
//! The operand stack at a stable point becomes the parameters of its resume
//! block, so the normal path and the rewind path meet there with the same
//! SSA values; locals are Cranelift `Variable`s, so the rewind path only has
//! to `def_var` them. The rewind block is filled at the end of the function,
//! once every resume block exists; the resume blocks are sealed then.
//!
//! The translator reaches this file only through hooks named
//! `checkpoint_*` (and [`FuncTranslator::begin_checkpoints`] /
//! [`FuncTranslator::finish_checkpoints`]); each does nothing when the
//! function has no instrumentation, so a reader of `control.rs` can tell
//! at the call which lines exist for checkpoints only.
//!
//! The types of the operand stack come from a second copy of the function's
//! validator run in lock-step with the translation (the translator's SSA
//! values do not tell `i64` from a reference).
//!
//! Probes read `probe_flag` with a plain load (a `mov`, an `ldr` with an
//! offset). Cranelift's alias analysis could replace the flag load of an
//! inner loop header by the one of the enclosing loop if nothing in between
//! wrote memory; it cannot here, because every probe's cold block calls the
//! runtime and rejoins the hot path, and a call is a fence for that
//! analysis: after any probe, and at every loop header (whose back edge
//! carries its probe's call), memory is in a new state and the flag is
//! loaded again. (An `atomic_load` did the same at the price of an `ldar`
//! and a register holding the flag's address on aarch64.)

use super::liveness::Liveness;
use super::{FuncTranslator, OpResult};
use crate::CompileError;
use crate::env::{clif_trap, clif_type, slot_flags, slot_layout, slot_offset, to_slot, trusted};
use crate::frame_labels::{Expected, PendingSite, Role, SiteKind};
use cranelift_codegen::ir::{
    self, Block, BlockArg, BlockCall, InstBuilder, JumpTableData, SourceLoc, Value,
    condcodes::IntCC, types,
};
use cranelift_frontend::Variable;
use mvvm_abi::builtins::Builtin;
use mvvm_abi::checkpoint::{REWINDING, UNWINDING};
use mvvm_abi::vmctx::{VMLIMITS_FRAME_SLOTS, VMLIMITS_PROBE_FLAG, VMLIMITS_UNWIND_STATE};
use mvvm_abi::{Policy, StablePoint, StablePointKind, TrapCode, ValType};
use std::collections::HashMap;
use wasmparser::{FuncValidator, Operator, ValidatorResources};

/// A stable point and the block that resumes there.
struct ResumePoint {
    point: StablePoint,
    /// Its parameters are the operand stack at the point. `None` in a hot
    /// body (one with a resume clone), which never lands on a point: its
    /// rewind path calls the clone.
    block: Option<Block>,
    /// The operand stack at the point: the block's parameters (the SSA
    /// builder may append more to the block for the variables read after
    /// it, so they are kept here), or the translator's values where there
    /// is no block.
    stack: Vec<Value>,
    /// Whether the operator at the point may return unwinding (a call of a
    /// function that may unwind, any indirect call, an import, a wait):
    /// only those are followed by an `unwind_state` test.
    unwinds: bool,
    /// The number of instructions the function had when the point was
    /// recorded: the call made there is the last call created after it
    /// (developer option `frame_labels` only).
    first_inst: usize,
    /// A direct call of a defined function: the callee rewinds from its
    /// own record, so the call's arguments need no value (developer
    /// option `walk_frames` may drop its stores).
    walkable: bool,
}

/// Per-function state of the instrumentation.
pub(crate) struct Instrumentation {
    policy: Policy,
    /// `*mut VMLimits`, loaded once in the entry block.
    limits: Value,
    /// The rewind dispatch, filled at the end.
    rewind: Block,
    /// Resume points in translation order, which is offset order.
    points: Vec<ResumePoint>,
    /// A copy of the function's validator fed every operator after it is
    /// translated: before an operator it knows the operand stack's types.
    tracker: FuncValidator<ValidatorResources>,
    /// Result types of the function, for the zero results of an unwind.
    results: Vec<ValType>,
    /// Which locals a frame must save at each stable point.
    liveness: Liveness,
    /// Variables mirroring operand stack positions, per `(position,
    /// type)`: see [`FuncTranslator::checkpoint_save_stack_below`].
    stack_vars: HashMap<(usize, ir::Type), Variable>,
    /// The object id of the function's resume clone, when this body is the
    /// hot one: the rewind path then calls the clone instead of entering
    /// the resume points.
    resume_clone: Option<u32>,
    /// Developer options (`crate::frame_labels`): the sites labelled so far.
    dev_sites: Vec<PendingSite>,
    /// Developer option `unwind_stores: false`: the one block every
    /// unwinding site of the function jumps to, and whether it is filled.
    shared_return: Option<(Block, bool)>,
    /// Developer option `walk_frames`: `Some(keep)` when probes and
    /// direct calls of defined functions jump to the shared block
    /// (which calls `UnwindWalked`), except at the points in `keep`.
    walk_keep: Option<Vec<u32>>,
}

impl Instrumentation {
    /// Developer option `walk_frames`: whether the site at `offset` (a
    /// probe, or a direct call of a defined function) drops its stores.
    fn walks(&self, offset: u32) -> bool {
        self.walk_keep
            .as_ref()
            .is_some_and(|keep| keep.binary_search(&offset).is_err())
    }

    /// Whether probes go at loop headers.
    fn probes_loops(&self) -> bool {
        matches!(
            self.policy,
            Policy::Loop | Policy::CounterLoop { .. } | Policy::LoopDirty
        )
    }
}

/// The values a cold path derives its constants from: see
/// [`FuncTranslator::cold_root`].
#[derive(Clone, Copy)]
struct ColdRoot {
    /// `VMLimits::frame_slots`.
    base: Value,
    /// Zero, as `i64` and `i32`, opaque to Cranelift.
    zero64: Value,
    zero32: Value,
}

/// The zero of `ty` computed from a cold path's opaque zero.
fn cold_zero(
    builder: &mut cranelift_frontend::FunctionBuilder<'_>,
    root: &ColdRoot,
    ty: ValType,
) -> Value {
    match ty {
        ValType::I32 => root.zero32,
        ValType::F32 => builder
            .ins()
            .bitcast(types::F32, ir::MemFlagsData::new(), root.zero32),
        ValType::F64 => builder
            .ins()
            .bitcast(types::F64, ir::MemFlagsData::new(), root.zero64),
        ValType::V128 => {
            let byte = builder.ins().ireduce(types::I8, root.zero32);
            builder.ins().splat(types::I8X16, byte)
        }
        _ => root.zero64,
    }
}

/// What a function's instrumentation leaves for the metadata: its
/// checkpoint tables, stored in `.mvvm.ckpt`.
pub(crate) use mvvm_abi::FuncTables;

fn block_args(values: &[Value]) -> Vec<BlockArg> {
    values.iter().map(|v| BlockArg::Value(*v)).collect()
}

fn offset_u32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

impl FuncTranslator<'_, '_, '_> {
    fn ckpt(&self) -> Result<&Instrumentation, CompileError> {
        self.ckpt
            .as_ref()
            .ok_or_else(|| self.error("checkpoint code without instrumentation"))
    }

    fn ckpt_mut(&mut self) -> Result<&mut Instrumentation, CompileError> {
        match self.ckpt.as_mut() {
            Some(c) => Ok(c),
            None => Err(CompileError::Codegen {
                func: self.func_index,
                message: "checkpoint code without instrumentation".into(),
            }),
        }
    }

    /// Starts the instrumentation in the entry block (after the locals are
    /// defined and the environment is initialised): the rewind test, the
    /// Entry resume point and, with `FunctionEntry`, its probe.
    /// `tracker` is a fresh copy of the function's validator; `body` the
    /// function's body (for the locals the tracker must know).
    pub(super) fn begin_checkpoints(
        &mut self,
        policy: Policy,
        mut tracker: FuncValidator<ValidatorResources>,
        body: &wasmparser::FunctionBody<'_>,
        results: Vec<ValType>,
        resume_clone: Option<u32>,
        walk_keep: Option<Vec<u32>>,
    ) -> Result<(), CompileError> {
        let mut reader = body.get_binary_reader();
        tracker
            .read_locals(&mut reader)
            .map_err(|e| CompileError::invalid(&e))?;
        let body_offset = u32::try_from(body.range().start).unwrap_or(u32::MAX);

        let limits = self.env.limits(self.builder).map_err(|e| self.env_err(e))?;

        let rewind = self.builder.create_block();
        let resume = self.builder.create_block();
        if self.env.info.dev.entry_rewind_tests {
            self.branch_on_unwind_state(limits, REWINDING, rewind, resume);
        } else {
            // Developer option `entry_rewind_tests: false` (measuring
            // only): no test; `finish_checkpoints` makes `rewind` a trap
            // nothing reaches.
            self.builder.ins().jump(resume, &[]);
            self.builder.set_cold_block(rewind);
        }
        self.builder.seal_block(rewind);
        self.builder.switch_to_block(resume);

        self.ckpt = Some(Instrumentation {
            policy,
            limits,
            rewind,
            points: vec![ResumePoint {
                point: StablePoint {
                    offset: body_offset,
                    kind: StablePointKind::Entry,
                    stack: Vec::new(),
                },
                block: Some(resume),
                stack: Vec::new(),
                unwinds: true,
                first_inst: 0,
                walkable: false,
            }],
            tracker,
            results,
            liveness: Liveness::compute(body, self.exn.first_hidden, body_offset, &self.exn.plan)?,
            stack_vars: HashMap::new(),
            resume_clone,
            dev_sites: Vec::new(),
            shared_return: None,
            walk_keep,
        });
        // Counter-loop also probes the entries of functions that may
        // recurse: recursion without loops (tree walks) must still reach a
        // probe, and any other function runs a bounded amount of code
        // between its callers' probes (see `crate::callgraph`). On the hot
        // path it is one flag test; the runtime counts polls (see
        // `mvvm_abi::checkpoint`).
        let recursive = self
            .env
            .info
            .recursive
            .get(self.func_index as usize)
            .copied()
            .unwrap_or(true);
        let entry_probe = match policy {
            Policy::FunctionEntry => true,
            Policy::CounterLoop { .. } => recursive,
            _ => false,
        };
        if entry_probe {
            self.emit_probe(body_offset, Vec::new())?;
        }
        Ok(())
    }

    /// Reads `unwind_state` and branches to the cold block `taken` when it
    /// is `state`, else to `other`.
    fn branch_on_unwind_state(&mut self, limits: Value, state: u32, taken: Block, other: Block) {
        let now = self
            .builder
            .ins()
            .load(types::I32, trusted(), limits, VMLIMITS_UNWIND_STATE);
        let hit = self
            .builder
            .ins()
            .icmp_imm_u(IntCC::Equal, now, i64::from(state));
        self.builder.ins().brif(hit, taken, &[], other, &[]);
        self.builder.set_cold_block(taken);
    }

    /// The Variable mirroring stack position `i` holding a `ty` value.
    fn stack_var(&mut self, i: usize, ty: ir::Type) -> Result<Variable, CompileError> {
        if let Some(v) = self.ckpt()?.stack_vars.get(&(i, ty)) {
            return Ok(*v);
        }
        let var = self.builder.declare_var(ty);
        self.ckpt_mut()?.stack_vars.insert((i, ty), var);
        Ok(var)
    }

    /// Records the operand stack's lowest `height` values in Variables.
    ///
    /// A resume block redefines the whole operand stack (the rewind path
    /// enters there), including values that belong to enclosing frames; at
    /// the `else` or `end` of such a frame the translator's SSA values would
    /// then not dominate the code that follows. So with checkpoints every
    /// frame records the values below it when it starts, every resume point
    /// records the stack it defines, and
    /// [`FuncTranslator::checkpoint_reload_stack_below`] reads them back
    /// where control flow merges: Cranelift's SSA builder inserts the block
    /// parameters. Without checkpoints this does nothing.
    pub(super) fn checkpoint_save_stack_below(
        &mut self,
        height: usize,
    ) -> Result<(), CompileError> {
        if self.ckpt.is_none() {
            return Ok(());
        }
        for i in 0..height.min(self.stack.len()) {
            let v = self.stack[i];
            let ty = self.builder.func.dfg.value_type(v);
            let var = self.stack_var(i, ty)?;
            self.builder.def_var(var, v);
        }
        Ok(())
    }

    /// Replaces the operand stack's lowest `height` values by the
    /// Variables [`FuncTranslator::checkpoint_save_stack_below`] recorded
    /// (at a merge point, after switching to its block). Without
    /// checkpoints this does nothing.
    pub(super) fn checkpoint_reload_stack_below(
        &mut self,
        height: usize,
    ) -> Result<(), CompileError> {
        if self.ckpt.is_none() {
            return Ok(());
        }
        for i in 0..height.min(self.stack.len()) {
            let ty = self.builder.func.dfg.value_type(self.stack[i]);
            let var = self.stack_var(i, ty)?;
            self.stack[i] = self.builder.use_var(var);
        }
        Ok(())
    }

    /// Feeds the operator just translated to the type tracker (without
    /// checkpoints there is none and this does nothing).
    pub(super) fn checkpoint_track_types(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        if let Some(c) = self.ckpt.as_mut() {
            c.tracker
                .op(offset as u64, op)
                .map_err(|e| CompileError::invalid(&e))?;
        }
        Ok(())
    }

    /// Before a reachable `loop`, call or `memory.atomic.wait*` at `offset`:
    /// records the stable point and moves the translation into its resume
    /// block, whose parameters replace the operand stack.
    pub(super) fn checkpoint_begin_stable_point(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> OpResult {
        let kind = match op {
            Operator::Loop { .. } => StablePointKind::Loop,
            Operator::Call { .. } | Operator::CallIndirect { .. } => StablePointKind::Call,
            // Tail calls that may reach a host function (translate/control.rs).
            Operator::ReturnCallIndirect { .. } => StablePointKind::Call,
            Operator::ReturnCall { function_index }
                if self.env.info.is_imported(*function_index) =>
            {
                StablePointKind::Call
            }
            // A wait the runtime may give up for a checkpoint (see
            // `checkpoint_after_call`, which follows the builtin call
            // in translate/atomics.rs).
            Operator::MemoryAtomicWait32 { .. } | Operator::MemoryAtomicWait64 { .. } => {
                StablePointKind::AtomicWait
            }
            _ => return Ok(false),
        };
        let Some(c) = self.ckpt.as_ref() else {
            return Ok(false);
        };
        let height = c.tracker.operand_stack_height() as usize;
        if height != self.stack.len() {
            return Err(self.error(format!(
                "operand stack out of sync at {offset:#x}: {} values, validator has {height}",
                self.stack.len()
            )));
        }
        let mut stack = Vec::with_capacity(height);
        for depth in (0..height).rev() {
            let ty = match c.tracker.get_operand_type(depth) {
                Some(Some(t)) => crate::module::val_type(t, offset as u64)?,
                _ => {
                    return Err(self.error(format!(
                        "operand of unknown type at a stable point at {offset:#x}"
                    )));
                }
            };
            stack.push(ty);
        }
        // A call of a function that cannot unwind under this policy (see
        // `crate::callgraph::unwinding_functions`) is never left by an
        // unwind in this compilation; a frame of another compilation may
        // still be restored at it.
        let unwinds = match op {
            Operator::Call { function_index } => self.env.info.may_unwind(*function_index),
            _ => true,
        };
        // A hot body never lands on a resume point (its rewind path calls
        // the clone), so it needs no resume block: the point's stack is the
        // translator's, and nothing is redefined for enclosing frames.
        let hot = c.resume_clone.is_some();
        let block = if hot {
            None
        } else {
            let clif: Vec<ir::Type> = stack.iter().map(|t| clif_type(*t)).collect();
            let block = self.block_with_params(&clif);
            let values = std::mem::take(&mut self.stack);
            self.builder.ins().jump(block, &block_args(&values));
            self.builder.switch_to_block(block);
            self.stack = self.builder.block_params(block).to_vec();
            self.checkpoint_save_stack_below(self.stack.len())?;
            Some(block)
        };
        if kind == StablePointKind::Loop && hot {
            self.pin_float_locals(offset_u32(offset))?;
        }
        let walkable = matches!(op, Operator::Call { function_index }
            if !self.env.info.is_imported(*function_index));
        let params = self.stack.clone();
        let first_inst = self.builder.func.dfg.num_insts();
        self.ckpt_mut()?.points.push(ResumePoint {
            point: StablePoint {
                offset: offset_u32(offset),
                kind,
                stack,
            },
            block,
            stack: params,
            unwinds,
            first_inst,
            walkable,
        });
        Ok(true)
    }

    /// In a hot body (one with a resume clone), in the resume block before
    /// a loop: stores every live float local to the frame buffer, a write
    /// nobody reads.
    ///
    /// Why: in a hot body Cranelift's loop-invariant code motion stops at
    /// the first probe of a loop ("the loop-invariant code motion problem"
    /// of the team's design notes, which are not in this repository), and
    /// a pure expression assigned to a local
    /// before the loop is sunk to its uses inside it: mandelbrot computed
    /// its `cr = 2.0 * x / n - 1.5` (two `fdiv`) in every inner iteration.
    /// A store is never moved, so the expression is computed here, once per
    /// entry into the loop. Floats only: their expressions are the costly
    /// ones (division, square root, conversions), and pinning every local
    /// measured slower (nbody 1.22x -> 1.32x of no policy, against 1.26x
    /// for floats; mandelbrot 1.32x -> 1.08x, gemm 1.17x -> 1.10x). The
    /// buffer is scratch here: a hot body never runs its resume blocks
    /// while unwinding or rewinding.
    fn pin_float_locals(&mut self, offset: u32) -> Result<(), CompileError> {
        let live = self.ckpt()?.liveness.live_at(offset);
        let floats: Vec<Variable> = self
            .locals
            .iter()
            .enumerate()
            .filter(|(i, (_, ty))| {
                matches!(ty, ValType::F32 | ValType::F64) && live.get(*i).copied().unwrap_or(true)
            })
            .map(|(_, (var, _))| *var)
            .collect();
        if floats.is_empty() {
            return Ok(());
        }
        let limits = self.ckpt()?.limits;
        let base = self
            .builder
            .ins()
            .load(types::I64, trusted(), limits, VMLIMITS_FRAME_SLOTS);
        for var in floats {
            let v = self.builder.use_var(var);
            self.builder.ins().store(trusted(), v, base, 0);
        }
        Ok(())
    }

    /// At the header of the loop whose stable point was just recorded: the
    /// probe, if the policy puts one there.
    pub(super) fn checkpoint_loop_header_probe(&mut self, offset: u32) -> Result<(), CompileError> {
        let Some(c) = self.ckpt.as_ref() else {
            return Ok(());
        };
        if !c.probes_loops() {
            return Ok(());
        }
        let types = match c.points.last() {
            Some(p) if p.point.offset == offset => p.point.stack.clone(),
            _ => return Err(self.error(format!("loop at {offset:#x} has no stable point"))),
        };
        self.emit_probe(offset, types)
    }

    /// After the call whose stable point was just recorded returned: if
    /// the runtime is unwinding, save this frame (resume = the call, stack
    /// = the resume block's parameters, arguments included) and return.
    /// Also after a `memory.atomic.wait*` builtin, which the runtime may
    /// interrupt for a checkpoint in the same way (its operands are the
    /// top of the saved stack, so restoring makes the wait again).
    pub(super) fn checkpoint_after_call(&mut self, offset: u32) -> Result<(), CompileError> {
        let Some(c) = self.ckpt.as_ref() else {
            return Ok(());
        };
        let (stack, types, first_inst, walkable) = match c.points.last() {
            Some(p) if p.point.offset == offset && !p.unwinds => return Ok(()),
            Some(p) if p.point.offset == offset => (
                p.stack.clone(),
                p.point.stack.clone(),
                p.first_inst,
                p.walkable,
            ),
            _ => return Err(self.error(format!("call at {offset:#x} has no stable point"))),
        };
        // Developer option `after_call_tests: false` (measuring only): no
        // test and no unwind block after the call.
        if !self.env.info.dev.after_call_tests {
            return Ok(());
        }
        let walked = walkable && c.walks(offset);
        let limits = c.limits;
        let dev = self.env.info.dev;
        if dev.frame_labels {
            // The values below the arguments are the prefix the call left
            // on the stack; the rest of the point's stack were arguments.
            let below = stack
                .iter()
                .zip(&self.stack)
                .take_while(|(a, b)| a == b)
                .count();
            self.dev_label_site(
                offset,
                SiteKind::Call,
                first_inst,
                None,
                (&stack, &types),
                below,
            )?;
        }
        // Developer option `stores_in_hot_only`: whole bodies and resume
        // clones, whose frame values the labels located, return without
        // storing.
        let hot = self.ckpt()?.resume_clone.is_some();
        if walked {
            self.dev_site_walked(offset)?;
        }
        if walked || !dev.unwind_stores || (dev.stores_in_hot_only && !hot) {
            let shared = self.shared_return_block()?;
            let cont = self.builder.create_block();
            self.branch_on_unwind_state(limits, UNWINDING, shared, cont);
            self.builder.seal_block(cont);
            self.fill_shared_return()?;
            self.builder.switch_to_block(cont);
            return Ok(());
        }
        let unwind = self.builder.create_block();
        let cont = self.builder.create_block();
        self.branch_on_unwind_state(limits, UNWINDING, unwind, cont);
        self.builder.seal_block(unwind);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(unwind);
        self.emit_unwind(offset, &stack, &types)?;
        self.builder.switch_to_block(cont);
        Ok(())
    }

    /// A probe at stable point `offset` whose operand stack is the current
    /// one (of types `types`): `probe_flag != 0` calls `Probe` through the
    /// `preserve_all` probe trampoline, and if the runtime then says
    /// `UNWINDING`, the frame is written and the function returns. Every
    /// policy has the same probe: the counter-loop policy's polling period
    /// is counted by the runtime, only while the flag is up, because a
    /// counter kept in a register (or any extra block in the loop) cost
    /// more than the flag test itself (measured; the numbers are in the
    /// team's design notes, not in this repository).
    ///
    /// The call clobbers no register, so every value of the loop stays
    /// where it is and the cold path rejoins the hot one without merging
    /// anything. The frame is written after the call, on the unwinding
    /// path alone.
    fn emit_probe(&mut self, offset: u32, types: Vec<ValType>) -> Result<(), CompileError> {
        let c = self.ckpt()?;
        let limits = c.limits;
        let dev = self.env.info.dev;
        // Developer option `frame_labels`: a probe's values are measured
        // where the hot path tests the flag (its cold block is laid out
        // at the end of the function, where Cranelift reports no label
        // ranges), marked by a tagged sequence point.
        let marker = dev
            .frame_labels
            .then(|| self.builder.ins().sequence_point());
        let first_inst = self.builder.func.dfg.num_insts();
        let cont = self.builder.create_block();
        let stack = self.stack.clone();
        if stack.len() != types.len() {
            return Err(self.error(format!(
                "stable point at {offset:#x}: {} values for {} types",
                stack.len(),
                types.len()
            )));
        }
        // A plain load compared with zero (x86-64: `mov`, `test`, `jne`;
        // aarch64: `ldr` with an offset, `cbnz`). It is not merged with an
        // earlier probe's load, because every probe's cold path calls the
        // runtime and rejoins the hot path: Cranelift's alias analysis
        // takes a call as a fence, so after a probe, and at every loop
        // header (whose back edge carries the header probe's call), memory
        // is in a new state and the load is made again. Nor is it hoisted:
        // a load without `can_move` stays where it is.
        let flag = self
            .builder
            .ins()
            .load(types::I32, trusted(), limits, VMLIMITS_PROBE_FLAG);
        let up = self.builder.ins().icmp_imm_u(IntCC::NotEqual, flag, 0);
        let probe = self.builder.create_block();
        self.builder.set_cold_block(probe);
        self.builder.ins().brif(up, probe, &[], cont, &[]);
        self.builder.seal_block(probe);
        self.builder.switch_to_block(probe);
        let root = self.cold_root()?;
        let func = self
            .builder
            .ins()
            .iadd_imm_s(root.zero32, i64::from(self.func_index));
        let at = self
            .builder
            .ins()
            .iadd_imm_s(root.zero32, i64::from(offset));
        self.env
            .call_probe(self.builder, func, at)
            .map_err(|e| self.env_err(e))?;
        if dev.frame_labels {
            let n = stack.len();
            self.dev_label_site(
                offset,
                SiteKind::Probe,
                first_inst,
                marker,
                (&stack, &types),
                n,
            )?;
        }
        let hot = self.ckpt()?.resume_clone.is_some();
        let walked = self.ckpt()?.walks(offset);
        if walked {
            self.dev_site_walked(offset)?;
        }
        // The cold path rejoins the hot one through a block of its own
        // (cold, so laid out at the end of the function). Without it the
        // edge from the probe block to `cont` is critical (two successors,
        // two predecessors), and Cranelift lays an edge block out where the
        // edge's target is: when the register allocator puts a move or a
        // reload on that edge (a value spilled around the call), it lands
        // between the flag test and `cont`, and the hot path jumps over it
        // on every iteration (mg's innermost loop: `jmp` after each
        // probe). A cold block with one successor takes those moves
        // instead, and the hot path falls through.
        let back = self.builder.create_block();
        self.builder.set_cold_block(back);
        if walked || !dev.unwind_stores || (dev.stores_in_hot_only && !hot) {
            let shared = self.shared_return_block()?;
            self.branch_on_unwind_state(limits, UNWINDING, shared, back);
            self.fill_shared_return()?;
        } else {
            let unwind = self.builder.create_block();
            self.branch_on_unwind_state(limits, UNWINDING, unwind, back);
            self.builder.seal_block(unwind);
            self.builder.switch_to_block(unwind);
            self.emit_unwind(offset, &stack, &types)?;
        }
        self.builder.seal_block(back);
        self.builder.switch_to_block(back);
        self.builder.ins().jump(cont, &[]);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
        Ok(())
    }

    /// In the current (cold) block: writes the locals then `stack` into the
    /// slots, calls `UnwindFrame` and returns zero results.
    fn emit_unwind(
        &mut self,
        offset: u32,
        stack: &[Value],
        types: &[ValType],
    ) -> Result<(), CompileError> {
        if stack.len() != types.len() {
            return Err(self.error(format!(
                "stable point at {offset:#x}: {} values for {} types",
                stack.len(),
                types.len()
            )));
        }
        let (count, _, root) = self.store_frame(offset, stack, types)?;
        self.finish_unwind(offset, count, root)
    }

    /// At the start of a cold path: the frame buffer's address and an
    /// opaque zero, the values every constant and address of the path is
    /// computed from.
    ///
    /// Why: Cranelift hoists argument-less pure values (constants, stack
    /// slot addresses) out of the innermost loop around their use. The
    /// builtin arguments of a cold path inside a loop (function index,
    /// offset, slot count, the buffer) would then be materialised before
    /// the loop and hold registers, or spills, through every iteration of
    /// the hot path. A plain load (`VMLIMITS_FRAME_SLOTS`) is never moved,
    /// and the zero comes out of a two-result `uadd_overflow`, which
    /// Cranelift neither moves nor folds; values computed from them stay in
    /// the cold path, and their constants become immediates.
    fn cold_root(&mut self) -> Result<ColdRoot, CompileError> {
        let limits = self.ckpt()?.limits;
        let base = self
            .builder
            .ins()
            .load(types::I64, trusted(), limits, VMLIMITS_FRAME_SLOTS);
        let zero = self.builder.ins().iconst(types::I64, 0);
        let (copy, _) = self.builder.ins().uadd_overflow(base, zero);
        let zero64 = self.builder.ins().isub(copy, base);
        let zero32 = self.builder.ins().ireduce(types::I32, zero64);
        Ok(ColdRoot {
            base,
            zero64,
            zero32,
        })
    }

    /// Writes the frame at `offset` (locals, then `stack`) into the slots
    /// (two for a `v128`, low half first: [`ValType::slots`]); returns the
    /// number of slots written and which locals were live.
    fn store_frame(
        &mut self,
        offset: u32,
        stack: &[Value],
        types: &[ValType],
    ) -> Result<(i64, Vec<bool>, ColdRoot), CompileError> {
        let live = self.ckpt()?.liveness.live_at(offset);
        let root = self.cold_root()?;
        let base = root.base;
        let mut k = 0;
        for (index, (var, ty)) in self.locals.clone().into_iter().enumerate() {
            // A local that cannot be read again is not read (that would
            // keep it in a register or a spill slot until this point, for
            // nothing) nor written: its slots stay zero, as the runtime
            // leaves the buffer zeroed between frames (see
            // `mvvm_abi::checkpoint`). Storing the zeros cost one store
            // per dead local per call site: in llama2's two largest
            // functions, most of their unwind code.
            if live.get(index).copied().unwrap_or(true) {
                let v = self.builder.use_var(var);
                let wide = to_slot(self.builder, v, ty);
                self.builder
                    .ins()
                    .store(slot_flags(ty), wide, base, slot_offset(k));
            }
            k += ty.slots();
        }
        for (v, ty) in stack.iter().zip(types) {
            let wide = to_slot(self.builder, *v, *ty);
            self.builder
                .ins()
                .store(slot_flags(*ty), wide, base, slot_offset(k));
            k += ty.slots();
        }
        let count = i64::try_from(k).map_err(|_| self.error("frame too large"))?;
        Ok((count, live, root))
    }

    /// In the current (cold) block, after `store_frame`: calls
    /// `UnwindFrame` and returns zero results.
    fn finish_unwind(
        &mut self,
        offset: u32,
        count: i64,
        root: ColdRoot,
    ) -> Result<(), CompileError> {
        let func = self
            .builder
            .ins()
            .iadd_imm_s(root.zero32, i64::from(self.func_index));
        let at = self
            .builder
            .ins()
            .iadd_imm_s(root.zero32, i64::from(offset));
        let n = self.builder.ins().iadd_imm_s(root.zero32, count);
        self.env
            .call_builtin_cold(
                self.builder,
                Builtin::UnwindFrame,
                &[func, at, root.base, n],
            )
            .map_err(|e| self.env_err(e))?;
        self.return_zeros(&root)
    }

    /// At the end of the function: fills the rewind dispatch, sizes the
    /// slots, seals the resume blocks and returns the stable points.
    pub(super) fn finish_checkpoints(
        &mut self,
        body_offset: u32,
    ) -> Result<(Vec<StablePoint>, Vec<PendingSite>), CompileError> {
        let Some(mut c) = self.ckpt.take() else {
            return Ok((Vec::new(), Vec::new()));
        };
        if let Some((b, _)) = c.shared_return {
            self.builder.seal_block(b);
        }
        let sites = std::mem::take(&mut c.dev_sites);
        for pair in c.points.windows(2) {
            if pair[0].point.offset >= pair[1].point.offset {
                return Err(self.error(format!(
                    "stable points out of order at {:#x}",
                    pair[1].point.offset
                )));
            }
        }
        // Counted in slots (two per `v128`), as `FuncTables::frame_capacity`
        // counts them for the runtime's frame buffer.
        let local_types: Vec<ValType> = self.locals.iter().map(|(_, t)| *t).collect();
        let (local_slots, nlocal_slots) = slot_layout(&local_types);
        let capacity = c
            .points
            .iter()
            .map(|p| nlocal_slots + slot_layout(&p.point.stack).1)
            .max()
            .unwrap_or(nlocal_slots)
            .max(1);
        let capacity = i64::try_from(capacity).map_err(|_| self.error("frame too large"))?;

        self.builder.set_srcloc(SourceLoc::new(body_offset));
        self.builder.switch_to_block(c.rewind);
        if !self.env.info.dev.entry_rewind_tests {
            // Developer option `entry_rewind_tests: false`: the entry has
            // no branch here, so neither a dispatch nor landings; every
            // resume block keeps its one predecessor.
            self.builder.ins().trap(clif_trap(TrapCode::Unreachable));
            for b in c.points.iter().filter_map(|p| p.block) {
                self.builder.seal_block(b);
            }
            return Ok((c.points.into_iter().map(|p| p.point).collect(), sites));
        }
        if c.resume_clone.is_some() {
            // The hot body: the clone rewinds, runs the rest of this
            // activation and returns what it returns. The object's clone,
            // or one the runtime compiles (clones on demand): the same
            // code either way. No landing is made,
            // so the resume blocks keep their one predecessor.
            // The clone gets this body's arguments: the entry block's
            // parameters (vmctx, then the wasm parameters).
            let entry = self
                .builder
                .func
                .layout
                .entry_block()
                .ok_or_else(|| self.error("function without an entry block"))?;
            let args = self.builder.block_params(entry).to_vec();
            self.env
                .tail_call_resume_clone(self.builder, self.func_index, &args)
                .map_err(|e| self.env_err(e))?;
            for b in c.points.iter().filter_map(|p| p.block) {
                self.builder.seal_block(b);
            }
            return Ok((c.points.into_iter().map(|p| p.point).collect(), sites));
        }
        let ptr = self
            .builder
            .ins()
            .load(types::I64, trusted(), c.limits, VMLIMITS_FRAME_SLOTS);
        // A function with tail calls may find its callee's frame instead
        // of its own: see `checkpoint_rewind_forward` (translate/tail_rewind.rs).
        let asked = self.rewind_frame_func();
        let func = self.builder.ins().iconst(types::I32, i64::from(asked));
        let cap = self.builder.ins().iconst(types::I32, capacity);
        let index = self
            .env
            .call_builtin_cold(self.builder, Builtin::RewindFrame, &[func, ptr, cap])
            .map_err(|e| self.env_err(e))?
            .ok_or_else(|| self.error("rewind_frame has no result"))?;
        for ((var, ty), k) in self.locals.clone().into_iter().zip(local_slots) {
            let v = self
                .builder
                .ins()
                .load(clif_type(ty), slot_flags(ty), ptr, slot_offset(k));
            self.builder.def_var(var, v);
        }
        let bad = self.builder.create_block();
        self.builder.set_cold_block(bad);
        let landings: Vec<Block> = c
            .points
            .iter()
            .map(|_| self.builder.create_block())
            .collect();
        let pool = &mut self.builder.func.dfg.value_lists;
        let default = BlockCall::new(bad, [], pool);
        let table: Vec<BlockCall> = landings
            .iter()
            .map(|b| BlockCall::new(*b, [], pool))
            .collect();
        let jt = self
            .builder
            .create_jump_table(JumpTableData::new(default, &table));
        self.builder.ins().br_table(index, jt);

        self.builder.seal_block(bad);
        self.builder.switch_to_block(bad);
        self.checkpoint_rewind_forward(index)?;
        self.builder.ins().trap(clif_trap(TrapCode::Unreachable));
        for (landing, p) in landings.iter().zip(&c.points) {
            let Some(block) = p.block else {
                return Err(self.error(format!(
                    "stable point at {:#x} has no resume block",
                    p.point.offset
                )));
            };
            self.builder.seal_block(*landing);
            self.builder.set_cold_block(*landing);
            self.builder.switch_to_block(*landing);
            let mut values = Vec::with_capacity(p.point.stack.len());
            let (firsts, _) = slot_layout(&p.point.stack);
            for (ty, j) in p.point.stack.iter().zip(firsts) {
                let v = self.builder.ins().load(
                    clif_type(*ty),
                    slot_flags(*ty),
                    ptr,
                    slot_offset(nlocal_slots + j),
                );
                values.push(v);
            }
            self.builder.ins().jump(block, &block_args(&values));
        }
        for b in c.points.iter().filter_map(|p| p.block) {
            self.builder.seal_block(b);
        }
        Ok((c.points.into_iter().map(|p| p.point).collect(), sites))
    }

    /// Developer option `unwind_stores: false`: the function's one block
    /// that returns zero results for every unwinding site (created on first
    /// use, filled by [`FuncTranslator::fill_shared_return`]).
    fn shared_return_block(&mut self) -> Result<Block, CompileError> {
        if let Some((b, _)) = self.ckpt()?.shared_return {
            return Ok(b);
        }
        let b = self.builder.create_block();
        self.builder.set_cold_block(b);
        self.ckpt_mut()?.shared_return = Some((b, false));
        Ok(b)
    }

    /// Fills the shared return block if it is still empty; the current
    /// block must be terminated, and the caller switches away after.
    fn fill_shared_return(&mut self) -> Result<(), CompileError> {
        let Some((b, false)) = self.ckpt()?.shared_return else {
            return Ok(());
        };
        self.ckpt_mut()?.shared_return = Some((b, true));
        self.builder.switch_to_block(b);
        let root = self.cold_root()?;
        if self.ckpt()?.walk_keep.is_some() {
            // Developer option `walk_frames`: the frame's place in the
            // unwind, whose record the runtime makes from its walk.
            let func = self
                .builder
                .ins()
                .iadd_imm_s(root.zero32, i64::from(self.func_index));
            self.env
                .call_builtin_cold(self.builder, Builtin::UnwindWalked, &[func])
                .map_err(|e| self.env_err(e))?;
        }
        self.return_zeros(&root)
    }

    /// Developer option `walk_frames`: marks the site just labelled at
    /// `offset` as one whose record the runtime makes from its walk.
    fn dev_site_walked(&mut self, offset: u32) -> Result<(), CompileError> {
        match self.ckpt_mut()?.dev_sites.last_mut() {
            Some(site) if site.offset == offset => {
                site.walked = true;
                Ok(())
            }
            _ => Err(self.error(format!(
                "stable point at {offset:#x}: no labelled site to walk"
            ))),
        }
    }

    /// Returns from the function with a zero of each result type (an
    /// unwinding frame's results are never read).
    fn return_zeros(&mut self, root: &ColdRoot) -> Result<(), CompileError> {
        let results = self.ckpt()?.results.clone();
        let zeros: Vec<Value> = results
            .iter()
            .map(|t| cold_zero(self.builder, root, *t))
            .collect();
        self.builder.ins().return_(&zeros);
        Ok(())
    }

    /// Developer option `frame_labels`: tags `marker`, or else the last
    /// call made since instruction `first_inst`, with a new site number
    /// and labels what the
    /// frame record at `offset` holds: the live locals (label = index),
    /// then `stack` (label = number of locals + depth), whose first
    /// `below` values stay on the stack after the call and the rest are
    /// its arguments.
    fn dev_label_site(
        &mut self,
        offset: u32,
        kind: SiteKind,
        first_inst: usize,
        marker: Option<ir::Inst>,
        (stack, types): (&[Value], &[ValType]),
        below: usize,
    ) -> Result<(), CompileError> {
        let dfg = &self.builder.func.dfg;
        let last_call = (first_inst..dfg.num_insts())
            .rev()
            .map(|i| ir::Inst::from_u32(i as u32))
            .find(|i| dfg.insts[*i].opcode().is_call());
        let call = marker.or(last_call);
        let Some(call) = call else {
            return Err(self.error(format!("stable point at {offset:#x}: no call to label")));
        };
        let tag = u32::try_from(self.ckpt()?.dev_sites.len()).unwrap_or(u32::MAX);
        self.builder
            .func
            .debug_tags
            .set(call, [ir::DebugTag::User(tag)]);
        // A probe's trampoline call gets a tag of its own (top bit set):
        // the frame map needs its return address.
        let call_tag = match (marker, last_call) {
            (Some(_), Some(c)) => {
                let t = tag | 1 << 31;
                self.builder.func.debug_tags.set(c, [ir::DebugTag::User(t)]);
                Some(t)
            }
            _ => None,
        };
        let mut frame = Vec::with_capacity(self.locals.len() + types.len());
        let mut k = 0u32;
        for ty in self
            .locals
            .iter()
            .map(|(_, t)| *t)
            .chain(types.iter().copied())
        {
            let width = match ty {
                ValType::I32 | ValType::F32 => 4,
                ValType::V128 => 16,
                _ => 8,
            };
            frame.push((k, width));
            k += ty.slots() as u32;
        }
        let live = self.ckpt()?.liveness.live_at(offset);
        let nlocals = self.locals.len();
        let mut expected = Vec::new();
        // Per-site labels: a label no other value carries, so no later
        // definition ends its range (labels run in layout order from one
        // definition of a label to the next).
        let per_site = self.env.info.dev.per_site_labels;
        let first_label = self
            .ckpt()?
            .dev_sites
            .iter()
            .map(|s| s.expected.len())
            .sum::<usize>()
            + nlocals
            + 1024;
        let label_of = |slot: usize, k: usize| -> u32 {
            if per_site {
                (first_label + k) as u32
            } else {
                slot as u32
            }
        };
        for (index, (var, _)) in self.locals.clone().into_iter().enumerate() {
            if !live.get(index).copied().unwrap_or(true) {
                continue;
            }
            let v = self.builder.use_var(var);
            let label = label_of(index, expected.len());
            self.builder
                .set_val_label(v, ir::ValueLabel::from_u32(label));
            expected.push(Expected {
                role: Role::Local(index as u32),
                label,
                value: v,
                constant: self.is_constant(v),
            });
        }
        for (depth, v) in stack.iter().enumerate() {
            let label = label_of(nlocals + depth, expected.len());
            self.builder
                .set_val_label(*v, ir::ValueLabel::from_u32(label));
            let role = if depth < below {
                Role::Stack(depth as u32)
            } else {
                Role::Arg(depth as u32)
            };
            expected.push(Expected {
                role,
                label,
                value: *v,
                constant: self.is_constant(*v),
            });
        }
        self.ckpt_mut()?.dev_sites.push(PendingSite {
            tag,
            offset,
            kind,
            expected,
            call_tag,
            nlocals,
            frame,
            slots: k,
            args_from: (nlocals + below) as u32,
            walked: false,
        });
        Ok(())
    }

    /// Whether `v` is defined by a constant instruction.
    fn is_constant(&self, v: Value) -> bool {
        let dfg = &self.builder.func.dfg;
        match dfg.value_def(dfg.resolve_aliases(v)) {
            ir::ValueDef::Result(inst, _) => matches!(
                dfg.insts[inst].opcode(),
                ir::Opcode::Iconst
                    | ir::Opcode::F32const
                    | ir::Opcode::F64const
                    | ir::Opcode::Vconst
            ),
            _ => false,
        }
    }
}
