//! Translation of one wasm function body into Cranelift IR.
//!
//! The [`FuncTranslator`] keeps the wasm state machine: locals as Cranelift
//! [`Variable`]s, the operand stack as a vector of SSA values, and the
//! control stack of block/loop/if frames whose block parameters carry
//! multi-value results. Operators are dispatched by family to the sibling
//! modules (`control`, `memory`, `atomics`, `table`, `variables`, and
//! `numeric`, which another team member owns). Everything that touches the instance goes
//! through the [`FuncEnv`].
//!
//! With a checkpoint policy, `checkpoint` adds resume points before every
//! reachable `loop` and call, probes, and the unwind and rewind paths.
//!
//! Unreachable code (after `br`, `return`, `unreachable`, ...) is skipped:
//! only the nesting of blocks is tracked until the `else` or `end` that makes
//! code reachable again.

mod atomics;
mod checkpoint;
mod control;
mod exceptions;
mod liveness;
mod memory;
mod numeric;
mod simd;
mod simd_float;
mod simd_int;
mod table;
mod tail_rewind;
mod variables;

use crate::CompileError;
use crate::env::{FuncEnv, ModuleInfo, clif_type, wasm_signature};
pub(crate) use checkpoint::FuncTables;
use cranelift_codegen::ir::{self, Block, InstBuilder, SourceLoc, UserFuncName, Value, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
pub(crate) use exceptions::exception_call_sites;
use mvvm_abi::{FuncType, ValType};
use wasmparser::{FuncValidator, FunctionBody, Operator, ValidatorResources};

/// The kind of a control frame.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FrameKind {
    /// The function body itself; its exit block returns.
    Function,
    /// `block`.
    Block,
    /// `loop`: branches go back to `header`.
    Loop { header: Block },
    /// `if`: `else_block` receives the parameters when the condition is
    /// false; `else_seen` once the `else` arm started.
    If { else_block: Block, else_seen: bool },
}

/// One entry of the control stack.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub kind: FrameKind,
    /// The block after `end`; its parameters are the frame's results.
    pub next: Block,
    /// Parameter types of the frame.
    pub params: Vec<ir::Type>,
    /// Result types of the frame.
    pub results: Vec<ir::Type>,
    /// Operand stack height below the frame's parameters.
    pub height: usize,
    /// Whether anything jumps or falls through to `next`.
    pub exit_reachable: bool,
    /// The exception handlers of a `try_table` or legacy `try`.
    pub exn: Option<Box<exceptions::TryScope>>,
}

impl Frame {
    /// The block a branch to this frame targets, and its arity.
    pub fn branch_target(&self) -> (Block, usize) {
        match self.kind {
            FrameKind::Loop { header } => (header, self.params.len()),
            _ => (self.next, self.results.len()),
        }
    }
}

/// Translator state for one function.
pub(crate) struct FuncTranslator<'m, 'b, 'f> {
    pub builder: &'b mut FunctionBuilder<'f>,
    pub env: FuncEnv<'m>,
    /// Function index (imports included), for error messages.
    pub func_index: u32,
    pub locals: Vec<(Variable, ValType)>,
    pub stack: Vec<Value>,
    pub control: Vec<Frame>,
    /// Whether the current position is reachable.
    pub reachable: bool,
    /// Blocks opened inside unreachable code, not yet closed.
    pub unreachable_depth: u32,
    /// Checkpoint instrumentation (`None` without a policy).
    pub ckpt: Option<checkpoint::Instrumentation>,
    /// Exception handling state (the pre-pass, the hidden locals).
    pub exn: exceptions::FuncExn,
}

/// The result type of operator translators: `Ok(true)` if handled.
pub(crate) type OpResult = Result<bool, CompileError>;

impl FuncTranslator<'_, '_, '_> {
    /// A code generation error in this function.
    pub fn error(&self, message: impl Into<String>) -> CompileError {
        CompileError::Codegen {
            func: self.func_index,
            message: message.into(),
        }
    }

    /// Pops one operand.
    pub fn pop(&mut self) -> Result<Value, CompileError> {
        self.stack
            .pop()
            .ok_or_else(|| self.error("operand stack underflow"))
    }

    /// Pops `n` operands, in stack order (deepest first).
    pub fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, CompileError> {
        let len = self.stack.len();
        if n > len {
            return Err(self.error("operand stack underflow"));
        }
        Ok(self.stack.split_off(len - n))
    }

    /// The top `n` operands, in stack order, left on the stack.
    pub fn peek_n(&self, n: usize) -> Result<&[Value], CompileError> {
        let len = self.stack.len();
        if n > len {
            return Err(self.error("operand stack underflow"));
        }
        Ok(&self.stack[len - n..])
    }

    /// Maps an environment error to a codegen error.
    pub fn env_err(&self, e: String) -> CompileError {
        self.error(e)
    }

    /// The signature `(params, results)` of a block type.
    pub fn block_type(
        &self,
        ty: wasmparser::BlockType,
        offset: usize,
    ) -> Result<(Vec<ir::Type>, Vec<ir::Type>), CompileError> {
        Ok(match ty {
            wasmparser::BlockType::Empty => (Vec::new(), Vec::new()),
            wasmparser::BlockType::Type(t) => (
                Vec::new(),
                vec![clif_type(crate::module::val_type(t, offset as u64)?)],
            ),
            wasmparser::BlockType::FuncType(idx) => {
                let f = self
                    .env
                    .info
                    .meta
                    .types
                    .get(idx as usize)
                    .ok_or_else(|| self.error(format!("block type {idx} out of range")))?;
                (
                    f.params.iter().map(|t| clif_type(*t)).collect(),
                    f.results.iter().map(|t| clif_type(*t)).collect(),
                )
            }
        })
    }

    /// Creates a block with parameters of the given types.
    pub fn block_with_params(&mut self, types: &[ir::Type]) -> Block {
        let b = self.builder.create_block();
        for t in types {
            self.builder.append_block_param(b, *t);
        }
        b
    }

    /// Translates one operator at module offset `offset`.
    fn translate(&mut self, op: &Operator<'_>, offset: usize) -> Result<(), CompileError> {
        if !self.reachable {
            return self.translate_unreachable(op, offset);
        }
        if self.ckpt.is_some() {
            self.checkpoint_begin_stable_point(op, offset)?;
        }
        if self.translate_exceptions(op, offset)?
            || self.translate_control(op, offset)?
            || self.translate_variable(op)?
            || self.translate_memory(op, offset)?
            || self.translate_atomic(op, offset)?
            || self.translate_table(op)?
            || self.translate_simd(op)?
        {
            return Ok(());
        }
        match numeric::translate_numeric(op, self.builder, &mut self.stack) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CompileError::Unsupported {
                feature: format!("operator {op:?}"),
                offset,
            }),
            Err(e) => Err(self.error(format!("at offset {offset:#x}: {e}"))),
        }
    }
}

/// What [`translate_function`] translates.
pub(crate) struct FuncInput<'a, 'm> {
    /// Module-wide information.
    pub info: &'m ModuleInfo<'m>,
    /// Function index (imports included).
    pub index: u32,
    /// Its body.
    pub body: &'a FunctionBody<'a>,
    /// Which of the function's compiled bodies this is.
    pub role: BodyRole,
    /// Developer option `walk_frames`: `Some(keep)` when this body's
    /// probes and direct calls of defined functions write no record,
    /// except at the stable points in `keep` (sorted), which keep
    /// today's store block.
    pub walk_keep: Option<&'a [u32]>,
}

/// The compiled bodies of a function: with a checkpoint policy, a function
/// that has a loop gets two (see `mvvm_abi::object::resume_symbol` for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRole {
    /// The function's only body (under `func_symbol`): it rewinds itself.
    Whole,
    /// The body normal calls run (under `func_symbol`): when rewinding, it
    /// calls its resume clone, object id `resume`, and returns its results.
    Hot { resume: u32 },
    /// The resume clone (under `resume_symbol`, object id `symbol`): the
    /// body of `Whole`, entered only while rewinding.
    Resume { symbol: u32 },
}

/// Validates and translates one defined function into `func`; returns
/// the types of its locals and its stable points for the metadata, and
/// the sites the developer option `frame_labels` labelled (none without
/// it: see `crate::frame_labels`).
pub(crate) fn translate_function(
    input: &FuncInput<'_, '_>,
    mut validator: FuncValidator<ValidatorResources>,
    func: &mut ir::Function,
    fb_ctx: &mut FunctionBuilderContext,
) -> Result<(FuncTables, Vec<crate::frame_labels::PendingSite>), CompileError> {
    // The instrumentation follows operand types with a copy of the
    // validator, taken before it consumes the body.
    let tracker = input
        .info
        .policy
        .is_instrumented()
        .then(|| validator.clone());
    validator
        .validate(input.body)
        .map_err(|e| CompileError::invalid(&e))?;

    let info = input.info;
    let index = input.index;
    let codegen = |message: String| CompileError::Codegen {
        func: index,
        message,
    };
    let ty: FuncType = info
        .func_type(index)
        .cloned()
        .ok_or_else(|| codegen(format!("function {index} has no type")))?;
    let id = *info
        .func_ids
        .get(index as usize)
        .ok_or_else(|| codegen(format!("function {index} has no symbol")))?;
    let symbol = match input.role {
        BodyRole::Resume { symbol } => symbol,
        BodyRole::Whole | BodyRole::Hot { .. } => id,
    };
    func.signature = wasm_signature(&ty, info.call_conv);
    func.name = UserFuncName::user(0, symbol);
    if info.dev.frame_labels && info.policy.is_instrumented() {
        func.dfg.collect_debug_info();
    }

    let mut builder = FunctionBuilder::new(func, fb_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let body_start = input.body.range().start;
    builder.set_srcloc(SourceLoc::new(
        u32::try_from(body_start).unwrap_or(u32::MAX),
    ));
    let params = builder.block_params(entry).to_vec();
    let vmctx = params[0];

    let mut locals = Vec::new();
    for (value, vt) in params[1..].iter().zip(&ty.params) {
        let var = builder.declare_var(clif_type(*vt));
        builder.def_var(var, *value);
        locals.push((var, *vt));
    }
    let reader = input
        .body
        .get_locals_reader()
        .map_err(|e| CompileError::invalid(&e))?;
    for local in reader {
        let (count, vt) = local.map_err(|e| CompileError::invalid(&e))?;
        let vt = crate::module::val_type(vt, body_start)?;
        let ct = clif_type(vt);
        let zero = crate::env::zero_value(&mut builder, vt);
        for _ in 0..count {
            let var = builder.declare_var(ct);
            builder.def_var(var, zero);
            locals.push((var, vt));
        }
    }

    // Legacy catch bodies keep their exception in hidden locals after the
    // wasm ones (see translate/exceptions.rs); the liveness analysis knows
    // only the wasm locals and treats the hidden ones as always live.
    let plan = exceptions::ExnPlan::scan(input.body)?;
    let first_hidden = locals.len();
    for _ in 0..plan.hidden_locals {
        let var = builder.declare_var(types::I64);
        let null = builder.ins().iconst(types::I64, 0);
        builder.def_var(var, null);
        locals.push((var, ValType::ExnRef));
    }

    let mut env = FuncEnv::new(info);
    env.init(&mut builder, vmctx).map_err(codegen)?;

    let results: Vec<ir::Type> = ty.results.iter().map(|t| clif_type(*t)).collect();
    let exit = builder.create_block();
    for t in &results {
        builder.append_block_param(exit, *t);
    }
    let mut t = FuncTranslator {
        builder: &mut builder,
        env,
        func_index: index,
        locals,
        stack: Vec::new(),
        control: vec![Frame {
            kind: FrameKind::Function,
            next: exit,
            params: Vec::new(),
            results,
            height: 0,
            exit_reachable: false,
            exn: None,
        }],
        reachable: true,
        unreachable_depth: 0,
        ckpt: None,
        exn: exceptions::FuncExn { plan, first_hidden },
    };
    if let Some(tracker) = tracker {
        let resume_clone = match input.role {
            BodyRole::Hot { resume } => Some(resume),
            BodyRole::Whole | BodyRole::Resume { .. } => None,
        };
        t.begin_checkpoints(
            info.policy,
            tracker,
            input.body,
            ty.results.clone(),
            resume_clone,
            input.walk_keep.map(<[u32]>::to_vec),
        )?;
    }

    let mut ops = input
        .body
        .get_operators_reader()
        .map_err(|e| CompileError::invalid(&e))?;
    while !ops.eof() {
        let (op, offset) = ops
            .read_with_offset()
            .map_err(|e| CompileError::invalid(&e))?;
        if t.control.is_empty() {
            return Err(t.error(format!("operator after the function's end at {offset:#x}")));
        }
        t.builder
            .set_srcloc(SourceLoc::new(u32::try_from(offset).unwrap_or(u32::MAX)));
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        t.translate(&op, at)?;
        t.checkpoint_track_types(&op, at)?;
    }
    if !t.control.is_empty() {
        return Err(t.error("function body ends inside a block"));
    }
    // The final `end` switched to the exit block and pushed its parameters.
    if t.reachable {
        let rets = std::mem::take(&mut t.stack);
        t.builder.ins().return_(&rets);
    }
    let (stable_points, sites) =
        t.finish_checkpoints(u32::try_from(body_start).unwrap_or(u32::MAX))?;
    let locals = t.locals.iter().map(|(_, vt)| *vt).collect();
    let env = t.env;
    builder.finalize(info.frontend_config);
    env.drop_unused_memory_base(func);
    let mut sites = sites;
    if info.dev.frame_labels {
        crate::frame_labels::move_labels_off_aliases(func, &mut sites);
    }
    Ok((
        FuncTables {
            locals,
            stable_points,
        },
        sites,
    ))
}
