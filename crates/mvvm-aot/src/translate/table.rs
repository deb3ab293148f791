//! Table operators: `table.get/set/size` inline (with a bounds check that
//! traps `TableOutOfBounds`), `table.grow/fill/copy/init` and `elem.drop`
//! through builtins.

use super::{FuncTranslator, OpResult};
use crate::env::trusted;
use cranelift_codegen::ir::{InstBuilder, types};
use mvvm_abi::builtins::Builtin;
use wasmparser::Operator;

impl FuncTranslator<'_, '_, '_> {
    /// Translates a table operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_table(&mut self, op: &Operator<'_>) -> OpResult {
        match op {
            Operator::TableGet { table } => {
                let idx = self.pop()?;
                let addr = self
                    .env
                    .table_element_addr(self.builder, *table, idx)
                    .map_err(|e| self.env_err(e))?;
                let v = self.builder.ins().load(types::I64, trusted(), addr, 0);
                self.stack.push(v);
            }
            Operator::TableSet { table } => {
                let value = self.pop()?;
                let idx = self.pop()?;
                let addr = self
                    .env
                    .table_element_addr(self.builder, *table, idx)
                    .map_err(|e| self.env_err(e))?;
                self.builder.ins().store(trusted(), value, addr, 0);
            }
            Operator::TableSize { table } => {
                let length = self
                    .env
                    .table_length(self.builder, *table)
                    .map_err(|e| self.env_err(e))?;
                let v = self.builder.ins().ireduce(types::I32, length);
                self.stack.push(v);
            }
            Operator::TableGrow { table } => {
                let delta = self.pop()?;
                let init = self.pop()?;
                let t = self.i32_const(*table);
                self.builtin_value(Builtin::TableGrow, &[t, init, delta])?;
            }
            Operator::TableFill { table } => {
                let v = self.pop_n(3)?;
                let t = self.i32_const(*table);
                self.builtin_void(Builtin::TableFill, &[t, v[0], v[1], v[2]])?;
            }
            Operator::TableCopy {
                dst_table,
                src_table,
            } => {
                let v = self.pop_n(3)?;
                let d = self.i32_const(*dst_table);
                let s = self.i32_const(*src_table);
                self.builtin_void(Builtin::TableCopy, &[d, s, v[0], v[1], v[2]])?;
            }
            Operator::TableInit { elem_index, table } => {
                let v = self.pop_n(3)?;
                let t = self.i32_const(*table);
                let seg = self.i32_const(*elem_index);
                self.builtin_void(Builtin::TableInit, &[t, seg, v[0], v[1], v[2]])?;
            }
            Operator::ElemDrop { elem_index } => {
                let seg = self.i32_const(*elem_index);
                self.builtin_void(Builtin::ElemDrop, &[seg])?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
