//! Control operators: `block`, `loop`, `if`, `else`, `end`, branches,
//! `return`, `unreachable`, `nop`, calls and tail calls.
//!
//! Every frame's results travel as parameters of its `next` block (a loop's
//! branch target is its header, whose parameters are the loop's
//! parameters), so multi-value blocks need no special case.

use super::{Frame, FrameKind, FuncTranslator, OpResult};
use crate::CompileError;
use crate::env::clif_trap;
use cranelift_codegen::ir::{self, BlockArg, BlockCall, InstBuilder, JumpTableData};
use mvvm_abi::TrapCode;
use std::collections::BTreeMap;
use wasmparser::Operator;

fn args(values: &[ir::Value]) -> Vec<BlockArg> {
    values.iter().map(|v| BlockArg::Value(*v)).collect()
}

impl FuncTranslator<'_, '_, '_> {
    /// The frame `depth` levels up from the innermost.
    fn frame_at(&mut self, depth: u32) -> Result<&mut Frame, CompileError> {
        let len = self.control.len();
        let i = len
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| self.error(format!("branch depth {depth} out of range")))?;
        Ok(&mut self.control[i])
    }

    /// The target block and arity of a branch to `depth`; marks the frame's
    /// exit reachable.
    fn branch_to(&mut self, depth: u32) -> Result<(ir::Block, usize), CompileError> {
        let frame = self.frame_at(depth)?;
        if !matches!(frame.kind, FrameKind::Loop { .. }) {
            frame.exit_reachable = true;
        }
        Ok(frame.branch_target())
    }

    /// In unreachable code only the nesting matters: count the blocks that
    /// open and close, and resume at the `else` or `end` of the frame that
    /// became unreachable.
    pub(super) fn translate_unreachable(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        match op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => {
                self.unreachable_depth += 1;
            }
            Operator::Else if self.unreachable_depth == 0 => {
                self.translate_control(op, offset)?;
            }
            Operator::Catch { .. } | Operator::CatchAll if self.unreachable_depth == 0 => {
                self.translate_exceptions(op, offset)?;
            }
            Operator::End | Operator::Delegate { .. } => {
                if self.unreachable_depth > 0 {
                    self.unreachable_depth -= 1;
                } else if !self.translate_exceptions(op, offset)? {
                    self.translate_control(op, offset)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Translates a control operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_control(&mut self, op: &Operator<'_>, offset: usize) -> OpResult {
        match op {
            Operator::Nop => {}
            Operator::Unreachable => {
                self.builder.ins().trap(clif_trap(TrapCode::Unreachable));
                self.reachable = false;
            }
            Operator::Block { blockty } => {
                let (params, results) = self.block_type(*blockty, offset)?;
                let next = self.block_with_params(&results);
                let height = self
                    .stack
                    .len()
                    .checked_sub(params.len())
                    .ok_or_else(|| self.error("operand stack underflow"))?;
                self.checkpoint_save_stack_below(height)?;
                self.control.push(Frame {
                    kind: FrameKind::Block,
                    next,
                    params,
                    results,
                    height,
                    exit_reachable: false,
                    exn: None,
                });
            }
            Operator::Loop { blockty } => {
                let (params, results) = self.block_type(*blockty, offset)?;
                let header = self.block_with_params(&params);
                let next = self.block_with_params(&results);
                let values = self.pop_n(params.len())?;
                let height = self.stack.len();
                self.checkpoint_save_stack_below(height)?;
                self.builder.ins().jump(header, &args(&values));
                self.builder.switch_to_block(header);
                // Taken before `checkpoint_reload_stack_below`: in the
                // unsealed header the SSA builder appends parameters for the
                // variables it reads.
                let loop_params = self.builder.block_params(header).to_vec();
                self.checkpoint_reload_stack_below(height)?;
                self.stack.extend_from_slice(&loop_params);
                self.control.push(Frame {
                    kind: FrameKind::Loop { header },
                    next,
                    params,
                    results,
                    height,
                    exit_reachable: false,
                    exn: None,
                });
                let at = u32::try_from(offset).unwrap_or(u32::MAX);
                self.checkpoint_loop_header_probe(at)?;
            }
            Operator::If { blockty } => {
                let (params, results) = self.block_type(*blockty, offset)?;
                let cond = self.pop()?;
                let then_block = self.block_with_params(&params);
                let else_block = self.block_with_params(&params);
                let next = self.block_with_params(&results);
                let values = self.pop_n(params.len())?;
                let height = self.stack.len();
                self.checkpoint_save_stack_below(height)?;
                let a = args(&values);
                self.builder
                    .ins()
                    .brif(cond, then_block, &a, else_block, &a);
                self.builder.seal_block(then_block);
                self.builder.seal_block(else_block);
                self.builder.switch_to_block(then_block);
                self.stack
                    .extend_from_slice(self.builder.block_params(then_block));
                self.control.push(Frame {
                    kind: FrameKind::If {
                        else_block,
                        else_seen: false,
                    },
                    next,
                    params,
                    results,
                    height,
                    exit_reachable: false,
                    exn: None,
                });
            }
            Operator::Else => {
                self.fall_through_to_next()?;
                let Some(frame) = self.control.last_mut() else {
                    return Err(self.error("else outside if"));
                };
                let FrameKind::If {
                    else_block,
                    else_seen,
                } = &mut frame.kind
                else {
                    return Err(self.error("else outside if"));
                };
                *else_seen = true;
                let else_block = *else_block;
                let height = frame.height;
                self.stack.truncate(height);
                self.builder.switch_to_block(else_block);
                let params = self.builder.block_params(else_block).to_vec();
                self.checkpoint_reload_stack_below(height)?;
                self.stack.extend_from_slice(&params);
                self.reachable = true;
            }
            Operator::End => self.translate_end()?,
            Operator::Br { relative_depth } => {
                let (target, n) = self.branch_to(*relative_depth)?;
                let values = self.peek_n(n)?.to_vec();
                let left = self.catches_left(Some(*relative_depth));
                self.drop_catches(&left)?;
                self.builder.ins().jump(target, &args(&values));
                self.reachable = false;
            }
            Operator::BrIf { relative_depth } => {
                let cond = self.pop()?;
                let (target, n) = self.branch_to(*relative_depth)?;
                let values = self.peek_n(n)?.to_vec();
                let fallthrough = self.builder.create_block();
                let left = self.catches_left(Some(*relative_depth));
                if left.is_empty() {
                    self.builder
                        .ins()
                        .brif(cond, target, &args(&values), fallthrough, &[]);
                } else {
                    // The taken edge leaves legacy catch bodies: it frees
                    // their exceptions on the way.
                    let taken = self.builder.create_block();
                    self.builder.ins().brif(cond, taken, &[], fallthrough, &[]);
                    self.builder.seal_block(taken);
                    self.builder.switch_to_block(taken);
                    self.drop_catches(&left)?;
                    self.builder.ins().jump(target, &args(&values));
                }
                self.builder.seal_block(fallthrough);
                self.builder.switch_to_block(fallthrough);
            }
            Operator::BrTable { targets } => self.translate_br_table(targets)?,
            Operator::Return => {
                let (target, n) = self.branch_to(
                    u32::try_from(self.control.len().saturating_sub(1)).unwrap_or(u32::MAX),
                )?;
                let values = self.peek_n(n)?.to_vec();
                let left = self.catches_left(None);
                self.drop_catches(&left)?;
                self.builder.ins().jump(target, &args(&values));
                self.reachable = false;
            }
            Operator::Call { function_index } => {
                let ty =
                    self.env.info.func_type(*function_index).ok_or_else(|| {
                        self.error(format!("function {function_index} has no type"))
                    })?;
                let nparams = ty.params.len();
                let values = self.pop_n(nparams)?;
                let results = self
                    .env
                    .call(self.builder, *function_index, &values)
                    .map_err(|e| self.env_err(e))?;
                self.stack.extend_from_slice(&results);
                let at = u32::try_from(offset).unwrap_or(u32::MAX);
                self.checkpoint_after_call(at)?;
            }
            Operator::CallIndirect {
                type_index,
                table_index,
            } => {
                let ty = self
                    .env
                    .info
                    .meta
                    .types
                    .get(*type_index as usize)
                    .ok_or_else(|| self.error(format!("type {type_index} out of range")))?;
                let nparams = ty.params.len();
                let idx = self.pop()?;
                let values = self.pop_n(nparams)?;
                let results = self
                    .env
                    .call_indirect(self.builder, *type_index, *table_index, idx, &values)
                    .map_err(|e| self.env_err(e))?;
                self.stack.extend_from_slice(&results);
                let at = u32::try_from(offset).unwrap_or(u32::MAX);
                self.checkpoint_after_call(at)?;
            }
            Operator::ReturnCall { function_index } => {
                self.translate_return_call(*function_index, offset)?;
            }
            Operator::ReturnCallIndirect {
                type_index,
                table_index,
            } => self.translate_return_call_indirect(*type_index, *table_index, offset)?,
            Operator::ReturnCallRef { .. } => {
                return Err(CompileError::Unsupported {
                    feature: "return_call_ref (the function-references proposal)".into(),
                    offset,
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `return_call f`: a Cranelift `return_call` (every wasm function has
    /// the tail convention), so the caller's frame is gone and a chain of
    /// tail calls runs in constant stack.
    ///
    /// With checkpoints, a tail call of an import is a plain call followed
    /// by `return`, and a stable point: an interrupted host call must be
    /// made again on restore, and only a frame at its call site can say so
    /// (a tail-called host function leaves no wasm frame behind; see
    /// "Tail calls" in CHECKPOINT.md).
    fn translate_return_call(&mut self, index: u32, offset: usize) -> Result<(), CompileError> {
        let ty = self
            .env
            .info
            .func_type(index)
            .ok_or_else(|| self.error(format!("function {index} has no type")))?;
        let (nparams, nresults) = (ty.params.len(), ty.results.len());
        let values = self.pop_n(nparams)?;
        // The frame ends: legacy catch bodies around free their exceptions.
        let left = self.catches_left(None);
        self.drop_catches(&left)?;
        if self.ckpt.is_some() && self.env.info.is_imported(index) {
            // A tail call leaves this frame: the callee's exceptions go to
            // the caller, never to handlers around the call here.
            let handlers = std::mem::take(&mut self.env.handlers);
            let results = self.env.call(self.builder, index, &values);
            self.env.handlers = handlers;
            let results = results.map_err(|e| self.env_err(e))?;
            self.stack.extend_from_slice(&results);
            let at = u32::try_from(offset).unwrap_or(u32::MAX);
            self.checkpoint_after_call(at)?;
            let results = self.pop_n(nresults)?;
            self.builder.ins().return_(&results);
        } else {
            self.env
                .return_call(self.builder, index, &values)
                .map_err(|e| self.env_err(e))?;
        }
        self.reachable = false;
        Ok(())
    }

    /// `return_call_indirect`: the checks of `call_indirect`, then a
    /// Cranelift `return_call_indirect`.
    ///
    /// With checkpoints it is a stable point, and a callee that turns out
    /// to be one of the instance's imports (a host function in the table)
    /// is called and returned from instead, for the reason given at
    /// [`FuncTranslator::translate_return_call`]. That test (an address
    /// range compare) costs the instrumented code one compare and branch.
    fn translate_return_call_indirect(
        &mut self,
        type_index: u32,
        table_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        let ty = self
            .env
            .info
            .meta
            .types
            .get(type_index as usize)
            .ok_or_else(|| self.error(format!("type {type_index} out of range")))?;
        let (nparams, nresults) = (ty.params.len(), ty.results.len());
        let idx = self.pop()?;
        let values = self.pop_n(nparams)?;
        let callee = self
            .env
            .indirect_callee(self.builder, type_index, table_index, idx)
            .map_err(|e| self.env_err(e))?;
        // The frame ends: legacy catch bodies around free their exceptions.
        let left = self.catches_left(None);
        self.drop_catches(&left)?;
        if self.ckpt.is_some() && self.env.info.meta.num_imported_funcs > 0 {
            let is_import = self
                .env
                .is_own_import(self.builder, callee.funcref)
                .map_err(|e| self.env_err(e))?;
            let host = self.builder.create_block();
            let tail = self.builder.create_block();
            self.builder.ins().brif(is_import, host, &[], tail, &[]);
            self.builder.seal_block(host);
            self.builder.seal_block(tail);
            self.builder.set_cold_block(host);
            self.builder.switch_to_block(host);
            // As in `translate_return_call`: no handlers for a tail call.
            let handlers = std::mem::take(&mut self.env.handlers);
            let results = self.env.call_callee(self.builder, &callee, &values);
            self.env.handlers = handlers;
            let results = results.map_err(|e| self.env_err(e))?;
            self.stack.extend_from_slice(&results);
            let at = u32::try_from(offset).unwrap_or(u32::MAX);
            self.checkpoint_after_call(at)?;
            let results = self.pop_n(nresults)?;
            self.builder.ins().return_(&results);
            self.builder.switch_to_block(tail);
        }
        self.env
            .return_call_callee(self.builder, &callee, &values)
            .map_err(|e| self.env_err(e))?;
        self.reachable = false;
        Ok(())
    }

    /// When the current position is reachable, ends the innermost frame's
    /// current arm by jumping to its `next` block with its results (at
    /// `else`, `end`, a legacy `catch` or `delegate`); the position stays
    /// where it is, for the caller to move.
    pub(super) fn fall_through_to_next(&mut self) -> Result<(), CompileError> {
        if !self.reachable {
            return Ok(());
        }
        let (next, nres) = self
            .control
            .last()
            .map(|f| (f.next, f.results.len()))
            .ok_or_else(|| self.error("end of a block outside any"))?;
        let values = self.pop_n(nres)?;
        self.builder.ins().jump(next, &args(&values));
        if let Some(f) = self.control.last_mut() {
            f.exit_reachable = true;
        }
        Ok(())
    }

    /// `end`: closes the innermost frame and continues in its `next` block.
    pub(super) fn translate_end(&mut self) -> Result<(), CompileError> {
        self.fall_through_to_next()?;
        let mut frame = self
            .control
            .pop()
            .ok_or_else(|| self.error("end without a frame"))?;
        self.stack.truncate(frame.height);
        match frame.kind {
            FrameKind::If {
                else_block,
                else_seen: false,
            } => {
                // No else arm: the parameters flow to the results unchanged
                // (validation guarantees the types agree).
                self.builder.switch_to_block(else_block);
                let params = self.builder.block_params(else_block).to_vec();
                self.builder.ins().jump(frame.next, &args(&params));
                frame.exit_reachable = true;
            }
            FrameKind::Loop { header } => self.builder.seal_block(header),
            _ => {}
        }
        self.builder.switch_to_block(frame.next);
        self.builder.seal_block(frame.next);
        // The frame's results, taken before `checkpoint_reload_stack_below`
        // makes the SSA builder append parameters for the variables it
        // reads.
        let results = self.builder.block_params(frame.next).to_vec();
        if frame.exit_reachable {
            // (An unreachable `next` must stay empty.)
            self.checkpoint_reload_stack_below(frame.height)?;
        }
        self.stack.extend_from_slice(&results);
        self.reachable = frame.exit_reachable;
        Ok(())
    }

    /// `br_table`: a Cranelift jump table. Targets that take values get an
    /// intermediate block each that forwards the values.
    fn translate_br_table(
        &mut self,
        targets: &wasmparser::BrTable<'_>,
    ) -> Result<(), CompileError> {
        let index = self.pop()?;
        let mut depths = Vec::with_capacity(targets.len() as usize);
        for t in targets.targets() {
            depths.push(t.map_err(|e| CompileError::invalid(&e))?);
        }
        let default = targets.default();
        let mut blocks: BTreeMap<u32, ir::Block> = BTreeMap::new();
        // Forwarding blocks are filled after the jump table ends the
        // current block.
        let mut forwards = Vec::new();
        for depth in depths.iter().copied().chain(std::iter::once(default)) {
            if blocks.contains_key(&depth) {
                continue;
            }
            let (target, n) = self.branch_to(depth)?;
            let left = self.catches_left(Some(depth));
            let block = if n == 0 && left.is_empty() {
                target
            } else {
                let values = self.peek_n(n)?.to_vec();
                let forward = self.builder.create_block();
                forwards.push((forward, target, values, left));
                forward
            };
            blocks.insert(depth, block);
        }
        let pool = &mut self.builder.func.dfg.value_lists;
        let call = |b: ir::Block, pool: &mut ir::ValueListPool| BlockCall::new(b, [], pool);
        let default_call = call(blocks[&default], pool);
        let table: Vec<BlockCall> = depths.iter().map(|d| call(blocks[d], pool)).collect();
        let jt = self
            .builder
            .create_jump_table(JumpTableData::new(default_call, &table));
        self.builder.ins().br_table(index, jt);
        for (forward, target, values, left) in forwards {
            self.builder.switch_to_block(forward);
            self.builder.seal_block(forward);
            // Legacy catch bodies the branch leaves free their exceptions.
            self.drop_catches(&left)?;
            self.builder.ins().jump(target, &args(&values));
        }
        self.reachable = false;
        Ok(())
    }
}
