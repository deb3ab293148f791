//! Exception handling: `try_table`, `throw`, `throw_ref`, and the legacy
//! `try`/`catch`/`catch_all`/`delegate`/`rethrow` form older toolchains emit.
//!
//! Calls made inside a handler scope are Cranelift `try_call`s whose
//! exception table lists, after a `Context` item holding this function's
//! `vmctx`, every handler that applies, innermost first (the wasm match
//! order). The runtime's unwinder reads them back from the call-site
//! records (`mvvm_abi::exception`). A throw is a call of builtin `Throw` or
//! `ThrowRef`, made with the same handlers, so a throw caught in its own
//! function is found by the same walk as one caught further up.
//!
//! A handler block receives two machine words: the exception's `exnref`
//! handle and the address of its payload slots. It loads the payload the
//! clause asks for and branches to the clause's label (`try_table`), or
//! starts the catch body (legacy `catch`, where the handle goes to a hidden
//! local for `rethrow`).
//!
//! Each handler's Cranelift `ExceptionTag` encodes what the runtime must
//! know: `(tag + 1) << 2 | delivery` (tag 0 meaning catch-all), decoded by
//! [`exception_call_sites`] into the metadata.
//!
//! Legacy `try` needs to know its catch clauses (and whether it ends with
//! `delegate`) when it starts, before the body's calls are emitted: a
//! pre-pass over the body ([`ExnPlan::scan`]) records them. The same pass
//! counts how deeply legacy catch bodies nest: each level gets a hidden
//! `exnref` local after the wasm locals, saved in checkpoint frames like
//! any local, so a `rethrow` after a restore rethrows the same exception.

use super::{FrameKind, FuncTranslator};
use crate::CompileError;
use crate::env::{clif_trap, clif_type, slot_flags, slot_layout, slot_offset, to_slot};
use cranelift_codegen::ir::{
    self, Block, BlockArg, ExceptionTag, InstBuilder, StackSlotData, StackSlotKind, types,
};
use cranelift_codegen::{
    ExceptionContextLoc, Final, FinalizedMachExceptionHandler, MachBufferFinalized,
};
use mvvm_abi::builtins::Builtin;
use mvvm_abi::exception::{CallSite, Delivery, Handler};
use mvvm_abi::{TrapCode, ValType};
use std::collections::HashMap;
use wasmparser::{Catch, FunctionBody, Operator};

/// What the pre-pass learnt about one legacy `try`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LegacyTry {
    /// Its catch clauses in order: `Some(tag)` for `catch`, `None` for
    /// `catch_all`.
    pub catches: Vec<Option<u32>>,
    /// `delegate l`: the label, counted from the context around the `try`.
    pub delegate: Option<u32>,
}

/// The pre-pass over a function body (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExnPlan {
    /// Legacy `try`s by the offset of their `try` operator.
    pub tries: HashMap<usize, LegacyTry>,
    /// The deepest nesting of legacy catch bodies: the number of hidden
    /// `exnref` locals.
    pub hidden_locals: usize,
    /// Whether the body uses any exception operator at all.
    pub any: bool,
}

impl ExnPlan {
    /// Scans `body` (already validated).
    pub(crate) fn scan(body: &FunctionBody<'_>) -> Result<Self, CompileError> {
        let mut plan = ExnPlan::default();
        // Open blocks: `Some(offset)` for a legacy try, with whether it is
        // in its catch part.
        let mut open: Vec<Option<(usize, bool)>> = Vec::new();
        let mut ops = body
            .get_operators_reader()
            .map_err(|e| CompileError::invalid(&e))?;
        while !ops.eof() {
            let (op, offset) = ops
                .read_with_offset()
                .map_err(|e| CompileError::invalid(&e))?;
            let at = usize::try_from(offset).unwrap_or(usize::MAX);
            match op {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::TryTable { .. } => {
                    plan.any |= matches!(op, Operator::TryTable { .. });
                    open.push(None);
                }
                Operator::Try { .. } => {
                    plan.any = true;
                    plan.tries.insert(at, LegacyTry::default());
                    open.push(Some((at, false)));
                }
                Operator::Catch { tag_index } => Self::catch(&mut plan, &mut open, Some(tag_index)),
                Operator::CatchAll => Self::catch(&mut plan, &mut open, None),
                Operator::Delegate { relative_depth } => {
                    if let Some(Some((t, _))) = open.pop()
                        && let Some(entry) = plan.tries.get_mut(&t)
                    {
                        entry.delegate = Some(relative_depth);
                    }
                }
                Operator::End => {
                    open.pop();
                }
                Operator::Throw { .. } | Operator::ThrowRef | Operator::Rethrow { .. } => {
                    plan.any = true;
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    fn catch(plan: &mut ExnPlan, open: &mut [Option<(usize, bool)>], tag: Option<u32>) {
        if let Some(Some((t, in_catch))) = open.last_mut() {
            if let Some(entry) = plan.tries.get_mut(t) {
                entry.catches.push(tag);
            }
            *in_catch = true;
        }
        let depth = open.iter().filter(|o| matches!(o, Some((_, true)))).count();
        plan.hidden_locals = plan.hidden_locals.max(depth);
    }
}

/// One handler of a scope.
#[derive(Debug, Clone)]
struct Clause {
    /// The tag caught (module tag index), `None` for a catch-all.
    tag: Option<u32>,
    /// Whether the exception reaches wasm as an `exnref`.
    delivery: Delivery,
    /// The handler block: parameters `(handle, payload address)`.
    block: Block,
    /// `try_table` only: the control-stack index of the clause's label.
    target: Option<usize>,
}

/// The handlers a `try_table` or legacy `try` frame installs.
#[derive(Debug, Clone)]
pub(crate) struct TryScope {
    clauses: Vec<Clause>,
    /// Whether the clauses cover the code being translated (false once a
    /// legacy `try` reached its first `catch`).
    active: bool,
    /// Legacy `try ... delegate l`: the control-stack index whose
    /// handlers (and those outside it) apply to the body instead.
    delegate_to: Option<usize>,
    /// Legacy `try`: the clause whose body is being translated.
    current_catch: Option<usize>,
    /// Legacy `try` in a catch body: its hidden local (index in
    /// `FuncTranslator::locals`).
    hidden: Option<usize>,
}

/// Per-function exception state of the translator.
#[derive(Debug, Default)]
pub(crate) struct FuncExn {
    pub plan: ExnPlan,
    /// Index of the first hidden local in `FuncTranslator::locals`.
    pub first_hidden: usize,
}

/// The `ExceptionTag` of a handler (see the module documentation).
fn encode_tag(tag: Option<u32>, delivery: Delivery) -> ExceptionTag {
    let t = tag.map_or(0, |t| t + 1);
    let d = match delivery {
        Delivery::Values => 0,
        Delivery::Ref => 1,
        Delivery::Held => 2,
    };
    ExceptionTag::from_u32((t << 2) | d)
}

fn decode_tag(bits: u32) -> Option<(Option<u32>, Delivery)> {
    let delivery = match bits & 3 {
        0 => Delivery::Values,
        1 => Delivery::Ref,
        2 => Delivery::Held,
        _ => return None,
    };
    Some(((bits >> 2).checked_sub(1), delivery))
}

/// The call sites with handlers of a compiled function, for its metadata.
pub(crate) fn exception_call_sites(
    buffer: &MachBufferFinalized<Final>,
) -> Result<Vec<CallSite>, String> {
    let mut sites = Vec::new();
    for site in buffer.call_sites() {
        if site.exception_handlers.is_empty() {
            continue;
        }
        let frame_offset = site
            .frame_offset
            .ok_or("a call with exception handlers has no frame offset")?;
        let mut vmctx_sp_offset = None;
        let mut handlers = Vec::new();
        for h in site.exception_handlers {
            match *h {
                FinalizedMachExceptionHandler::Context(ExceptionContextLoc::SPOffset(o)) => {
                    vmctx_sp_offset = Some(o);
                }
                FinalizedMachExceptionHandler::Context(other) => {
                    return Err(format!("exception context in {other:?}, not on the stack"));
                }
                FinalizedMachExceptionHandler::Tag(tag, code_offset) => {
                    let (tag, delivery) = decode_tag(tag.as_u32())
                        .ok_or_else(|| format!("bad exception tag {}", tag.as_u32()))?;
                    handlers.push(Handler {
                        tag,
                        delivery,
                        code_offset,
                    });
                }
                FinalizedMachExceptionHandler::Default(_) => {
                    return Err("unexpected default exception handler".into());
                }
            }
        }
        sites.push(CallSite {
            return_offset: site.ret_addr,
            frame_offset,
            vmctx_sp_offset: vmctx_sp_offset.ok_or("a call with handlers has no context")?,
            handlers,
        });
    }
    sites.sort_by_key(|s| s.return_offset);
    Ok(sites)
}

impl FuncTranslator<'_, '_, '_> {
    /// Recomputes the handlers that calls get from here on (after a scope
    /// opens, closes or a legacy `try` reaches its catches) and gives them
    /// to the environment, which emits `try_call`s while there are any.
    fn refresh_handlers(&mut self) {
        let mut items = Vec::new();
        let mut i = self.control.len();
        while i > 0 {
            i -= 1;
            let Some(scope) = self.control[i].exn.as_deref() else {
                continue;
            };
            if !scope.active {
                continue;
            }
            for c in &scope.clauses {
                items.push((encode_tag(c.tag, c.delivery), c.block));
            }
            if let Some(j) = scope.delegate_to {
                i = j + 1;
            }
        }
        self.env.handlers = items;
    }

    /// The payload types of tag `tag`.
    fn tag_params(&self, tag: u32) -> Result<Vec<ValType>, CompileError> {
        let types = self.env.info.meta.tag_types();
        let ty = types
            .get(tag as usize)
            .and_then(|t| self.env.info.meta.types.get(*t as usize))
            .ok_or_else(|| self.error(format!("tag {tag} out of range")))?;
        Ok(ty.params.clone())
    }

    /// Loads a payload of `types` from the slots at `ptr`.
    fn load_payload(&mut self, ptr: ir::Value, types: &[ValType]) -> Vec<ir::Value> {
        let (firsts, _) = slot_layout(types);
        types
            .iter()
            .zip(firsts)
            .map(|(ty, k)| {
                self.builder
                    .ins()
                    .load(clif_type(*ty), slot_flags(*ty), ptr, slot_offset(k))
            })
            .collect()
    }

    /// Translates an exception operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_exceptions(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<bool, CompileError> {
        match op {
            Operator::TryTable { try_table } => self.try_table(try_table, offset)?,
            Operator::Try { blockty } => self.legacy_try(*blockty, offset)?,
            Operator::Catch { tag_index } => self.legacy_catch(Some(*tag_index))?,
            Operator::CatchAll => self.legacy_catch(None)?,
            Operator::Delegate { .. } => self.end_scope()?,
            Operator::End if self.control.last().is_some_and(|f| f.exn.is_some()) => {
                self.end_scope()?
            }
            Operator::Throw { tag_index } => self.throw(*tag_index)?,
            Operator::ThrowRef => {
                let exn = self.pop()?;
                self.call_throwing(Builtin::ThrowRef, &[exn])?;
            }
            Operator::Rethrow { relative_depth } => {
                let len = self.control.len();
                let hidden = len
                    .checked_sub(1 + *relative_depth as usize)
                    .and_then(|i| self.control[i].exn.as_deref())
                    .and_then(|s| s.hidden)
                    .ok_or_else(|| self.error("rethrow outside a catch"))?;
                let var = self.locals[hidden].0;
                let exn = self.builder.use_var(var);
                self.call_throwing(Builtin::ThrowRef, &[exn])?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Calls a builtin that never returns normally (`Throw`, `ThrowRef`)
    /// with the current handlers; the code after it is unreachable.
    fn call_throwing(&mut self, b: Builtin, args: &[ir::Value]) -> Result<(), CompileError> {
        self.env
            .call_builtin_throwing(self.builder, b, args)
            .map_err(|e| self.env_err(e))?;
        self.builder.ins().trap(clif_trap(TrapCode::Unreachable));
        self.reachable = false;
        Ok(())
    }

    /// `throw tag`: the payload goes to a stack slot for `Throw`.
    fn throw(&mut self, tag: u32) -> Result<(), CompileError> {
        let params = self.tag_params(tag)?;
        let values = self.pop_n(params.len())?;
        let (firsts, nslots) = slot_layout(&params);
        let size = u32::try_from(nslots.max(1) * 8).map_err(|_| self.error("payload too large"))?;
        let slot = self.builder.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            size,
            3,
        ));
        let addr = self.builder.ins().stack_addr(types::I64, slot, 0);
        for ((v, ty), k) in values.iter().zip(&params).zip(firsts) {
            let wide = to_slot(self.builder, *v, *ty);
            self.builder
                .ins()
                .store(slot_flags(*ty), wide, addr, slot_offset(k));
        }
        let tag_value = self.builder.ins().iconst(types::I32, i64::from(tag));
        self.call_throwing(Builtin::Throw, &[tag_value, addr])
    }

    /// Opens a block like `block`, with `scope` installed on its frame.
    fn open_scope(
        &mut self,
        blockty: wasmparser::BlockType,
        offset: usize,
        scope: TryScope,
    ) -> Result<(), CompileError> {
        self.translate_control(&Operator::Block { blockty }, offset)?;
        let frame = self
            .control
            .last_mut()
            .ok_or_else(|| CompileError::Codegen {
                func: self.func_index,
                message: "try without a frame".into(),
            })?;
        frame.exn = Some(Box::new(scope));
        self.refresh_handlers();
        Ok(())
    }

    /// `try_table`: a block whose calls get one handler per clause.
    fn try_table(
        &mut self,
        try_table: &wasmparser::TryTable,
        offset: usize,
    ) -> Result<(), CompileError> {
        let mut clauses = Vec::with_capacity(try_table.catches.len());
        let len = self.control.len();
        for c in &try_table.catches {
            let (tag, delivery, label) = match *c {
                Catch::One { tag, label } => (Some(tag), Delivery::Values, label),
                Catch::OneRef { tag, label } => (Some(tag), Delivery::Ref, label),
                Catch::All { label } => (None, Delivery::Values, label),
                Catch::AllRef { label } => (None, Delivery::Ref, label),
            };
            let target = len
                .checked_sub(1 + label as usize)
                .ok_or_else(|| self.error(format!("catch label {label} out of range")))?;
            let block = self.block_with_params(&[types::I64, types::I64]);
            clauses.push(Clause {
                tag,
                delivery,
                block,
                target: Some(target),
            });
        }
        let scope = TryScope {
            clauses,
            active: true,
            delegate_to: None,
            current_catch: None,
            hidden: None,
        };
        self.open_scope(try_table.ty, offset, scope)
    }

    /// Legacy `try`: a block whose calls get one handler per catch clause
    /// (known from the pre-pass), or those of its `delegate` target.
    fn legacy_try(
        &mut self,
        blockty: wasmparser::BlockType,
        offset: usize,
    ) -> Result<(), CompileError> {
        let plan = self
            .exn
            .plan
            .tries
            .get(&offset)
            .cloned()
            .ok_or_else(|| self.error(format!("try at {offset:#x} missed by the pre-pass")))?;
        let len = self.control.len();
        let delegate_to = match plan.delegate {
            Some(l) => Some(
                len.checked_sub(1 + l as usize)
                    .ok_or_else(|| self.error(format!("delegate label {l} out of range")))?,
            ),
            None => None,
        };
        let clauses = plan
            .catches
            .iter()
            .map(|tag| Clause {
                tag: *tag,
                delivery: Delivery::Held,
                block: self.block_with_params(&[types::I64, types::I64]),
                target: None,
            })
            .collect();
        let scope = TryScope {
            clauses,
            active: true,
            delegate_to,
            current_catch: None,
            hidden: None,
        };
        self.open_scope(blockty, offset, scope)
    }

    /// At the end of a legacy catch body reached by falling through: the
    /// exception can no longer be named, the runtime may free it.
    fn drop_caught(&mut self) -> Result<(), CompileError> {
        let hidden = self
            .control
            .last()
            .and_then(|f| f.exn.as_deref())
            .and_then(|s| s.hidden);
        match (hidden, self.reachable) {
            (Some(h), true) => self.drop_catches(&[h]),
            _ => Ok(()),
        }
    }

    /// The hidden locals of the legacy catch bodies a branch to `depth`
    /// leaves (`None`: a `return` or tail call, which leaves them all):
    /// those of the frames at depths `0..=depth` (a `try` is never a
    /// loop, so a branch to one leaves it too).
    pub(super) fn catches_left(&self, depth: Option<u32>) -> Vec<usize> {
        let len = self.control.len();
        let first = match depth {
            Some(d) => len.saturating_sub(1 + d as usize),
            None => 0,
        };
        self.control[first..]
            .iter()
            .rev()
            .filter_map(|f| f.exn.as_deref().and_then(|s| s.hidden))
            .collect()
    }

    /// Frees the exceptions of the legacy catch bodies a branch leaves
    /// (from [`FuncTranslator::catches_left`]): the branch makes them
    /// unnameable, like the fall-through end of the body does.
    pub(super) fn drop_catches(&mut self, hidden: &[usize]) -> Result<(), CompileError> {
        for h in hidden {
            let var = self.locals[*h].0;
            let exn = self.builder.use_var(var);
            self.env
                .call_builtin(self.builder, Builtin::ExnDrop, &[exn])
                .map_err(|e| self.env_err(e))?;
            // A stale handle must not reach a checkpoint frame.
            let null = self.builder.ins().iconst(types::I64, 0);
            self.builder.def_var(var, null);
        }
        Ok(())
    }

    /// At a handler's landing: frees the exceptions of the legacy catch
    /// bodies the throw left in this frame, those at nesting levels
    /// `from_level` and deeper. Their hidden locals hold the exception
    /// when the throw came from inside the body and are null otherwise (a
    /// body that ends any other way nulls its local), and `ExnDrop` of
    /// null does nothing. Without this, a `catch (...) { ...; throw; }`
    /// caught again in the same frame (C++ after inlining) kept one hold
    /// per throw: a leak, and a runtime hold list that every throw scans.
    fn drop_abandoned(&mut self, from_level: usize) -> Result<(), CompileError> {
        let hidden: Vec<usize> = (from_level..self.exn.plan.hidden_locals)
            .map(|level| self.exn.first_hidden + level)
            .collect();
        self.drop_catches(&hidden)
    }

    /// The number of legacy catch bodies around control-stack index
    /// `index` (exclusive): the nesting level of code just outside it.
    fn catch_level_below(&self, index: usize) -> usize {
        self.control[..index.min(self.control.len())]
            .iter()
            .filter(|f| f.exn.as_deref().is_some_and(|s| s.hidden.is_some()))
            .count()
    }

    /// Legacy `catch tag` / `catch_all`: ends the try body (or the previous
    /// catch body) and starts this clause's body at its handler block.
    fn legacy_catch(&mut self, tag: Option<u32>) -> Result<(), CompileError> {
        self.drop_caught()?;
        // Close the previous part like an `else` closes a `then`.
        self.fall_through_to_next()?;
        let height = self
            .control
            .last()
            .map(|f| f.height)
            .ok_or_else(|| self.error("catch outside try"))?;
        self.stack.truncate(height);
        // Hidden local: one per nesting level of legacy catch bodies.
        let level = self.catch_level_below(self.control.len().saturating_sub(1));
        let hidden = self.exn.first_hidden + level;
        if hidden >= self.locals.len() {
            return Err(self.error("legacy catch nested deeper than the pre-pass counted"));
        }
        let scope = self
            .control
            .last_mut()
            .and_then(|f| f.exn.as_deref_mut())
            .ok_or_else(|| CompileError::Codegen {
                func: self.func_index,
                message: "catch outside try".into(),
            })?;
        scope.active = false;
        let k = scope.current_catch.map_or(0, |k| k + 1);
        scope.current_catch = Some(k);
        scope.hidden = Some(hidden);
        let clause = scope
            .clauses
            .get(k)
            .cloned()
            .ok_or_else(|| CompileError::Codegen {
                func: self.func_index,
                message: "more catch clauses than the pre-pass counted".into(),
            })?;
        if clause.tag != tag {
            return Err(self.error("catch clauses differ from the pre-pass"));
        }
        self.refresh_handlers();
        self.builder.seal_block(clause.block);
        if !self.env.used_handlers.contains(&clause.block) {
            // No call of the try body can land here: the body is dead.
            self.reachable = false;
            self.unreachable_depth = 0;
            return Ok(());
        }
        self.builder.switch_to_block(clause.block);
        let params = self.builder.block_params(clause.block).to_vec();
        let payload = match tag {
            Some(t) => {
                let types = self.tag_params(t)?;
                self.load_payload(params[1], &types)
            }
            None => Vec::new(),
        };
        self.drop_abandoned(level)?;
        let var = self.locals[hidden].0;
        self.builder.def_var(var, params[0]);
        self.checkpoint_reload_stack_below(height)?;
        self.stack.extend(payload);
        self.reachable = true;
        Ok(())
    }

    /// `end` or `delegate` of a frame with a scope: fills the `try_table`
    /// handlers that some call uses, frees a legacy catch's exception,
    /// then closes the frame like any block.
    pub(super) fn end_scope(&mut self) -> Result<(), CompileError> {
        self.drop_caught()?;
        // The fall-through first, so that the current block is filled
        // before the handlers are written.
        self.fall_through_to_next()?;
        self.reachable = false;
        let scope = self.control.last_mut().and_then(|f| f.exn.take());
        if let Some(scope) = scope {
            for c in &scope.clauses {
                if c.target.is_some() {
                    self.fill_try_table_handler(c)?;
                }
            }
            // Legacy clauses whose body was never translated (all of a
            // `try` without catches or one that delegates) are sealed
            // empty; the others were sealed when their body started.
            let translated = scope.current_catch.map_or(0, |k| k + 1);
            for c in scope
                .clauses
                .iter()
                .filter(|c| c.target.is_none())
                .skip(translated)
            {
                self.builder.seal_block(c.block);
            }
        }
        self.translate_end()?;
        self.refresh_handlers();
        Ok(())
    }

    /// A `try_table` clause's handler: the payload (and/or the `exnref`)
    /// to the clause's label.
    fn fill_try_table_handler(&mut self, c: &Clause) -> Result<(), CompileError> {
        self.builder.seal_block(c.block);
        if !self.env.used_handlers.contains(&c.block) {
            return Ok(());
        }
        let target = c
            .target
            .ok_or_else(|| self.error("clause without a label"))?;
        self.builder.switch_to_block(c.block);
        let params = self.builder.block_params(c.block).to_vec();
        let mut values = match c.tag {
            Some(t) => {
                let types = self.tag_params(t)?;
                self.load_payload(params[1], &types)
            }
            None => Vec::new(),
        };
        if c.delivery == Delivery::Ref {
            values.push(params[0]);
        }
        // Legacy catch bodies between the label and the throw are left.
        let level = self.catch_level_below(target);
        if self.exn.plan.hidden_locals > level {
            self.drop_abandoned(level)?;
        }
        let frame = self
            .control
            .get_mut(target)
            .ok_or_else(|| CompileError::Codegen {
                func: self.func_index,
                message: "catch label out of range".into(),
            })?;
        if !matches!(frame.kind, FrameKind::Loop { .. }) {
            frame.exit_reachable = true;
        }
        let (block, arity) = frame.branch_target();
        if arity != values.len() {
            return Err(self.error(format!(
                "catch clause gives {} values to a label of {arity}",
                values.len()
            )));
        }
        let args: Vec<BlockArg> = values.iter().map(|v| BlockArg::Value(*v)).collect();
        self.builder.ins().jump(block, &args);
        Ok(())
    }
}
