//! Rewinding through tail calls: forwarding a frame to the function that
//! replaced this one.
//!
//! A `return_call` replaces the caller's activation, and leaves no frame
//! record: when the program is unwound inside the tail callee `D`, the
//! frame below `D`'s is the one of the call site that called the original
//! function `B`. On rewind that call site calls `B` again, and `B` finds
//! `D`'s frame next. So a function that contains a tail call asks
//! `RewindFrame` with [`REWIND_MAY_FORWARD`]: on a frame of another
//! function `f` it gets `REWIND_FORWARD | f` back (the frame stays next)
//! and tail-calls `f`, still rewinding, with zero arguments (a rewinding
//! function takes its locals, parameters included, from its frame); `f`
//! takes the frame. `B`'s own activation is replaced exactly as the
//! original `return_call` replaced it, so the rewound program has the
//! frames an uninterrupted run has.
//!
//! `f` is called through its `VMFuncRef` (`vmctx.funcs[f]`), whose type id
//! is compared with each type a tail call can enter a function with and
//! that returns what `B` returns (`ModuleInfo::tail_target_types`): one
//! compare and one `return_call_indirect` per such type, not per function.
//! Any other function traps `Unreachable`, as a frame of a wrong function
//! always did. All of it is in the cold rewind path.

use super::FuncTranslator;
use crate::CompileError;
use crate::env::zero_value;
use cranelift_codegen::ir::{InstBuilder, Value, condcodes::IntCC, types};
use mvvm_abi::checkpoint::{REWIND_FORWARD, REWIND_MAY_FORWARD};
use mvvm_abi::vmctx::{VMFUNCREF_CODE, VMFUNCREF_TYPE_ID, VMFUNCREF_VMCTX};

impl FuncTranslator<'_, '_, '_> {
    /// Whether this function contains a tail call (and so may have to
    /// forward a frame while rewinding).
    fn has_tail_calls(&self) -> bool {
        self.env
            .info
            .tail_calls
            .get(self.func_index as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The function index this function passes to `RewindFrame`: with
    /// [`REWIND_MAY_FORWARD`] if it contains a tail call.
    pub(super) fn rewind_frame_func(&self) -> u32 {
        if self.has_tail_calls() {
            self.func_index | REWIND_MAY_FORWARD
        } else {
            self.func_index
        }
    }

    /// In the rewind path's block for a `RewindFrame` result `index` that
    /// is no stable point of this function: if it is `REWIND_FORWARD | f`,
    /// tail-calls `f`; falls through (into a fresh current block) for
    /// anything else, where the caller traps. Emits nothing in a function
    /// without tail calls.
    pub(super) fn checkpoint_rewind_forward(&mut self, index: Value) -> Result<(), CompileError> {
        if !self.has_tail_calls() {
            return Ok(());
        }
        let info = self.env.info;
        let own = info
            .func_type(self.func_index)
            .ok_or_else(|| self.error("function without a type"))?
            .clone();
        let candidates: Vec<u32> = info
            .tail_target_types
            .iter()
            .copied()
            .filter(|t| {
                info.meta
                    .types
                    .get(*t as usize)
                    .is_some_and(|ft| ft.results == own.results)
            })
            .collect();
        let fail = self.builder.create_block();
        self.builder.set_cold_block(fail);
        let dispatch = self.builder.create_block();
        self.builder.set_cold_block(dispatch);
        let forward = self
            .builder
            .ins()
            .band_imm_u(index, i64::from(REWIND_FORWARD));
        self.builder.ins().brif(forward, dispatch, &[], fail, &[]);
        self.builder.seal_block(dispatch);
        self.builder.switch_to_block(dispatch);
        let func = self
            .builder
            .ins()
            .band_imm_u(index, i64::from(!REWIND_FORWARD));
        let funcref = self
            .env
            .func_ref_dynamic(self.builder, func)
            .map_err(|e| self.env_err(e))?;
        let flags = crate::env::trusted();
        let actual = self
            .builder
            .ins()
            .load(types::I32, flags, funcref, VMFUNCREF_TYPE_ID);
        let code = self
            .builder
            .ins()
            .load(types::I64, flags, funcref, VMFUNCREF_CODE);
        let vmctx = self
            .builder
            .ins()
            .load(types::I64, flags, funcref, VMFUNCREF_VMCTX);
        for t in candidates {
            let params = info
                .meta
                .types
                .get(t as usize)
                .map(|ft| ft.params.clone())
                .unwrap_or_default();
            let expected = self
                .env
                .type_id(self.builder, t)
                .map_err(|e| self.env_err(e))?;
            let hit = self.builder.ins().icmp(IntCC::Equal, actual, expected);
            let call = self.builder.create_block();
            let next = self.builder.create_block();
            self.builder.set_cold_block(call);
            self.builder.set_cold_block(next);
            self.builder.ins().brif(hit, call, &[], next, &[]);
            self.builder.seal_block(call);
            self.builder.seal_block(next);
            self.builder.switch_to_block(call);
            let sig = self
                .env
                .wasm_sig(self.builder, t)
                .map_err(|e| self.env_err(e))?;
            let mut args = Vec::with_capacity(params.len() + 1);
            args.push(vmctx);
            for p in &params {
                args.push(zero_value(self.builder, *p));
            }
            self.builder.ins().return_call_indirect(sig, code, &args);
            self.builder.switch_to_block(next);
        }
        self.builder.ins().jump(fail, &[]);
        self.builder.seal_block(fail);
        self.builder.switch_to_block(fail);
        Ok(())
    }
}
