//! Variable and parametric operators: `local.get/set/tee`,
//! `global.get/set`, `select`, `drop`, and the reference operators
//! `ref.null`, `ref.is_null`, `ref.func`.

use super::{FuncTranslator, OpResult};
use crate::CompileError;
use crate::env::{clif_type, trusted};
use cranelift_codegen::ir::{InstBuilder, condcodes::IntCC, types};
use cranelift_frontend::Variable;
use wasmparser::Operator;

impl FuncTranslator<'_, '_, '_> {
    fn local(&self, index: u32) -> Result<Variable, CompileError> {
        self.locals
            .get(index as usize)
            .map(|(v, _)| *v)
            .ok_or_else(|| self.error(format!("local {index} out of range")))
    }

    /// Translates a variable, parametric or reference operator; `Ok(false)`
    /// if `op` is not one.
    pub(super) fn translate_variable(&mut self, op: &Operator<'_>) -> OpResult {
        match op {
            Operator::LocalGet { local_index } => {
                let var = self.local(*local_index)?;
                let v = self.builder.use_var(var);
                self.stack.push(v);
            }
            Operator::LocalSet { local_index } => {
                let var = self.local(*local_index)?;
                let v = self.pop()?;
                self.builder.def_var(var, v);
            }
            Operator::LocalTee { local_index } => {
                let var = self.local(*local_index)?;
                let v = *self
                    .stack
                    .last()
                    .ok_or_else(|| self.error("operand stack underflow"))?;
                self.builder.def_var(var, v);
            }
            Operator::GlobalGet { global_index } => {
                let (cell, ty) = self
                    .env
                    .global_cell(self.builder, *global_index)
                    .map_err(|e| self.env_err(e))?;
                let v = self.builder.ins().load(clif_type(ty), trusted(), cell, 0);
                self.stack.push(v);
            }
            Operator::GlobalSet { global_index } => {
                let v = self.pop()?;
                let (cell, _) = self
                    .env
                    .global_cell(self.builder, *global_index)
                    .map_err(|e| self.env_err(e))?;
                self.builder.ins().store(trusted(), v, cell, 0);
            }
            Operator::Drop => {
                self.pop()?;
            }
            Operator::Select | Operator::TypedSelect { .. } => {
                let cond = self.pop()?;
                let b = self.pop()?;
                let a = self.pop()?;
                let v = self.builder.ins().select(cond, a, b);
                self.stack.push(v);
            }
            Operator::TypedSelectMulti { .. } => {
                return Err(self.error("select with several results is not WebAssembly 2.0"));
            }
            Operator::RefNull { .. } => {
                let v = self.builder.ins().iconst(types::I64, 0);
                self.stack.push(v);
            }
            Operator::RefIsNull => {
                let r = self.pop()?;
                let is_null = self.builder.ins().icmp_imm_u(IntCC::Equal, r, 0);
                let v = self.builder.ins().uextend(types::I32, is_null);
                self.stack.push(v);
            }
            Operator::RefFunc { function_index } => {
                let v = self
                    .env
                    .func_ref(self.builder, *function_index)
                    .map_err(|e| self.env_err(e))?;
                self.stack.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
