//! Linear-memory operators: loads, stores (scalar and `v128`, including
//! the SIMD splat, extend, zero and lane forms), `memory.size/grow/fill/
//! copy/init` and `data.drop`.
//!
//! Accesses are not bounds checked: the runtime reserves
//! [`MEMORY_RESERVATION`](mvvm_abi::vmctx::MEMORY_RESERVATION) bytes per memory, so `base + u32 address + u32
//! offset` always lands inside the reservation and an access beyond the
//! committed length faults in the `PROT_NONE` tail. Each access carries the
//! `HEAP_OUT_OF_BOUNDS` trap code so Cranelift records its trap site.

use super::{FuncTranslator, OpResult};
use crate::CompileError;
use crate::env::{clif_trap, heap};
use cranelift_codegen::ir::{self, InstBuilder, condcodes::IntCC, types};
use mvvm_abi::TrapCode;
use mvvm_abi::builtins::Builtin;
use mvvm_abi::vmctx::MEMORY_GUARD_OFFSET_LIMIT;
use wasmparser::{MemArg, Operator};

/// How a load widens its value.
#[derive(Clone, Copy)]
enum Load {
    /// Full width of the result type.
    Plain(ir::Type),
    /// Narrow load, zero- or sign-extended to `result`.
    Ext {
        bits: u8,
        signed: bool,
        result: ir::Type,
    },
}

fn load_kind(op: &Operator<'_>) -> Option<(Load, MemArg)> {
    use Load::*;
    let ext = |bits, signed, result| Ext {
        bits,
        signed,
        result,
    };
    Some(match *op {
        Operator::I32Load { memarg } => (Plain(types::I32), memarg),
        Operator::I64Load { memarg } => (Plain(types::I64), memarg),
        Operator::F32Load { memarg } => (Plain(types::F32), memarg),
        Operator::F64Load { memarg } => (Plain(types::F64), memarg),
        Operator::I32Load8S { memarg } => (ext(8, true, types::I32), memarg),
        Operator::I32Load8U { memarg } => (ext(8, false, types::I32), memarg),
        Operator::I32Load16S { memarg } => (ext(16, true, types::I32), memarg),
        Operator::I32Load16U { memarg } => (ext(16, false, types::I32), memarg),
        Operator::I64Load8S { memarg } => (ext(8, true, types::I64), memarg),
        Operator::I64Load8U { memarg } => (ext(8, false, types::I64), memarg),
        Operator::I64Load16S { memarg } => (ext(16, true, types::I64), memarg),
        Operator::I64Load16U { memarg } => (ext(16, false, types::I64), memarg),
        Operator::I64Load32S { memarg } => (ext(32, true, types::I64), memarg),
        Operator::I64Load32U { memarg } => (ext(32, false, types::I64), memarg),
        _ => return None,
    })
}

/// Stores: the number of bytes written (0 = the value's full width).
fn store_kind(op: &Operator<'_>) -> Option<(u8, MemArg)> {
    Some(match *op {
        Operator::I32Store { memarg }
        | Operator::I64Store { memarg }
        | Operator::F32Store { memarg }
        | Operator::F64Store { memarg } => (0, memarg),
        Operator::I32Store8 { memarg } | Operator::I64Store8 { memarg } => (1, memarg),
        Operator::I32Store16 { memarg } | Operator::I64Store16 { memarg } => (2, memarg),
        Operator::I64Store32 { memarg } => (4, memarg),
        _ => return None,
    })
}

impl FuncTranslator<'_, '_, '_> {
    /// The native address of an access of `size` bytes at wasm address
    /// `addr` (an i32) plus `memarg.offset`, as `(pointer, immediate)`.
    /// Atomic accesses (`atomics.rs`) use it too, after their alignment
    /// check, so that their bounds behave like those of plain accesses.
    pub(super) fn heap_addr(
        &mut self,
        memarg: &MemArg,
        addr: ir::Value,
        size: u64,
    ) -> Result<(ir::Value, i32), CompileError> {
        if memarg.target != wasmparser::MemArgTarget::Memory(0) {
            return Err(CompileError::Unsupported {
                feature:
                    "multiple memories (the multi-memory proposal, which MVVM does not support)"
                        .into(),
                offset: 0,
            });
        }
        let base = self.env.memory_base().map_err(|e| self.env_err(e))?;
        let index = self.builder.ins().uextend(types::I64, addr);
        let offset = memarg.offset;
        if offset >= MEMORY_GUARD_OFFSET_LIMIT {
            // Impossible with u32 offsets in a 32-bit memory; kept so a
            // larger static offset can never reach past the reservation.
            let length = self
                .env
                .memory_length(self.builder)
                .map_err(|e| self.env_err(e))?;
            let code = clif_trap(TrapCode::MemoryOutOfBounds);
            let extra = offset.saturating_add(size);
            let extra = self
                .builder
                .ins()
                .iconst(types::I64, i64::try_from(extra).unwrap_or(i64::MAX));
            let end = self.builder.ins().uadd_overflow_trap(index, extra, code);
            let oob = self
                .builder
                .ins()
                .icmp(IntCC::UnsignedGreaterThan, end, length);
            self.builder.ins().trapnz(oob, code);
        }
        let ptr = self.builder.ins().iadd(base, index);
        match i32::try_from(offset) {
            Ok(imm) => Ok((ptr, imm)),
            Err(_) => {
                let wide = i64::try_from(offset).unwrap_or(i64::MAX);
                Ok((self.builder.ins().iadd_imm_u(ptr, wide), 0))
            }
        }
    }

    /// Translates a memory operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_memory(&mut self, op: &Operator<'_>, offset: usize) -> OpResult {
        if self.translate_v128_memory(op)? {
            return Ok(true);
        }
        if let Some((kind, memarg)) = load_kind(op) {
            let addr = self.pop()?;
            let flags = heap();
            let v = match kind {
                Load::Plain(ty) => {
                    let (ptr, imm) = self.heap_addr(&memarg, addr, u64::from(ty.bytes()))?;
                    self.builder.ins().load(ty, flags, ptr, imm)
                }
                Load::Ext {
                    bits,
                    signed,
                    result,
                } => {
                    let (ptr, imm) = self.heap_addr(&memarg, addr, u64::from(bits / 8))?;
                    let ins = self.builder.ins();
                    match (bits, signed) {
                        (8, false) => ins.uload8(result, flags, ptr, imm),
                        (8, true) => ins.sload8(result, flags, ptr, imm),
                        (16, false) => ins.uload16(result, flags, ptr, imm),
                        (16, true) => ins.sload16(result, flags, ptr, imm),
                        (_, false) => ins.uload32(flags, ptr, imm),
                        (_, true) => ins.sload32(flags, ptr, imm),
                    }
                }
            };
            self.stack.push(v);
            return Ok(true);
        }
        if let Some((bytes, memarg)) = store_kind(op) {
            let value = self.pop()?;
            let addr = self.pop()?;
            let flags = heap();
            let width = if bytes == 0 {
                u64::from(self.builder.func.dfg.value_type(value).bytes())
            } else {
                u64::from(bytes)
            };
            let (ptr, imm) = self.heap_addr(&memarg, addr, width)?;
            let ins = self.builder.ins();
            match bytes {
                1 => ins.istore8(flags, value, ptr, imm),
                2 => ins.istore16(flags, value, ptr, imm),
                4 => ins.istore32(flags, value, ptr, imm),
                _ => ins.store(flags, value, ptr, imm),
            };
            return Ok(true);
        }
        match op {
            Operator::MemorySize { mem } => {
                self.check_memory(*mem, offset)?;
                let length = if self.memory_is_shared() {
                    self.env.memory_length_atomic(self.builder)
                } else {
                    self.env.memory_length(self.builder)
                }
                .map_err(|e| self.env_err(e))?;
                let pages = self.builder.ins().ushr_imm_u(length, 16);
                let v = self.builder.ins().ireduce(types::I32, pages);
                self.stack.push(v);
            }
            Operator::MemoryGrow { mem } => {
                self.check_memory(*mem, offset)?;
                let delta = self.pop()?;
                self.builtin_value(Builtin::MemoryGrow, &[delta])?;
            }
            Operator::MemoryFill { mem } => {
                self.check_memory(*mem, offset)?;
                let v = self.pop_n(3)?;
                self.builtin_void(Builtin::MemoryFill, &v)?;
            }
            Operator::MemoryCopy { dst_mem, src_mem } => {
                self.check_memory(*dst_mem, offset)?;
                self.check_memory(*src_mem, offset)?;
                let v = self.pop_n(3)?;
                self.builtin_void(Builtin::MemoryCopy, &v)?;
            }
            Operator::MemoryInit { data_index, mem } => {
                self.check_memory(*mem, offset)?;
                let v = self.pop_n(3)?;
                let seg = self.i32_const(*data_index);
                self.builtin_void(Builtin::MemoryInit, &[seg, v[0], v[1], v[2]])?;
            }
            Operator::DataDrop { data_index } => {
                let seg = self.i32_const(*data_index);
                self.builtin_void(Builtin::DataDrop, &[seg])?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Translates a `v128` memory operator; `Ok(false)` if `op` is not
    /// one.
    ///
    /// Every access goes through [`Self::heap_addr`] like the scalar ones
    /// and uses the same unaligned, little-endian [`heap`] flags: wasm's
    /// alignment hint is only a hint, and an unaligned 16-byte access must
    /// not be folded into an SSE instruction that requires alignment.
    fn translate_v128_memory(&mut self, op: &Operator<'_>) -> OpResult {
        use Operator::*;
        let flags = heap();
        match *op {
            V128Load { memarg } => {
                let addr = self.pop()?;
                let (ptr, imm) = self.heap_addr(&memarg, addr, 16)?;
                let v = self.builder.ins().load(types::I8X16, flags, ptr, imm);
                self.vpush(v);
            }
            V128Store { memarg } => {
                let value = self.vpop(types::I8X16)?;
                let addr = self.pop()?;
                let (ptr, imm) = self.heap_addr(&memarg, addr, 16)?;
                self.builder.ins().store(flags, value, ptr, imm);
            }
            V128Load8x8S { memarg }
            | V128Load8x8U { memarg }
            | V128Load16x4S { memarg }
            | V128Load16x4U { memarg }
            | V128Load32x2S { memarg }
            | V128Load32x2U { memarg } => {
                let addr = self.pop()?;
                let (ptr, imm) = self.heap_addr(&memarg, addr, 8)?;
                let ins = self.builder.ins();
                let v = match *op {
                    V128Load8x8S { .. } => ins.sload8x8(flags, ptr, imm),
                    V128Load8x8U { .. } => ins.uload8x8(flags, ptr, imm),
                    V128Load16x4S { .. } => ins.sload16x4(flags, ptr, imm),
                    V128Load16x4U { .. } => ins.uload16x4(flags, ptr, imm),
                    V128Load32x2S { .. } => ins.sload32x2(flags, ptr, imm),
                    _ => ins.uload32x2(flags, ptr, imm),
                };
                self.vpush(v);
            }
            V128Load8Splat { memarg } => self.load_splat(&memarg, types::I8, types::I8X16)?,
            V128Load16Splat { memarg } => self.load_splat(&memarg, types::I16, types::I16X8)?,
            V128Load32Splat { memarg } => self.load_splat(&memarg, types::I32, types::I32X4)?,
            V128Load64Splat { memarg } => self.load_splat(&memarg, types::I64, types::I64X2)?,
            V128Load32Zero { memarg } | V128Load64Zero { memarg } => {
                let (scalar, vector) = match *op {
                    V128Load32Zero { .. } => (types::I32, types::I32X4),
                    _ => (types::I64, types::I64X2),
                };
                let addr = self.pop()?;
                let (ptr, imm) = self.heap_addr(&memarg, addr, u64::from(scalar.bytes()))?;
                let x = self.builder.ins().load(scalar, flags, ptr, imm);
                // `scalar_to_vector` zeroes every other lane.
                let v = self.builder.ins().scalar_to_vector(vector, x);
                self.vpush(v);
            }
            V128Load8Lane { memarg, lane } => self.load_lane(&memarg, types::I8X16, lane)?,
            V128Load16Lane { memarg, lane } => self.load_lane(&memarg, types::I16X8, lane)?,
            V128Load32Lane { memarg, lane } => self.load_lane(&memarg, types::I32X4, lane)?,
            V128Load64Lane { memarg, lane } => self.load_lane(&memarg, types::I64X2, lane)?,
            V128Store8Lane { memarg, lane } => self.store_lane(&memarg, types::I8X16, lane)?,
            V128Store16Lane { memarg, lane } => self.store_lane(&memarg, types::I16X8, lane)?,
            V128Store32Lane { memarg, lane } => self.store_lane(&memarg, types::I32X4, lane)?,
            V128Store64Lane { memarg, lane } => self.store_lane(&memarg, types::I64X2, lane)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `v128.loadN_splat`: one `scalar` from memory into every lane.
    fn load_splat(
        &mut self,
        memarg: &MemArg,
        scalar: ir::Type,
        vector: ir::Type,
    ) -> Result<(), CompileError> {
        let addr = self.pop()?;
        let (ptr, imm) = self.heap_addr(memarg, addr, u64::from(scalar.bytes()))?;
        let x = self.builder.ins().load(scalar, heap(), ptr, imm);
        let v = self.builder.ins().splat(vector, x);
        self.vpush(v);
        Ok(())
    }

    /// `v128.loadN_lane`: pops the vector, then the address; replaces lane
    /// `lane` with the value loaded.
    fn load_lane(
        &mut self,
        memarg: &MemArg,
        vector: ir::Type,
        lane: u8,
    ) -> Result<(), CompileError> {
        self.check_lane(vector, lane)?;
        let v = self.vpop(vector)?;
        let addr = self.pop()?;
        let scalar = vector.lane_type();
        let (ptr, imm) = self.heap_addr(memarg, addr, u64::from(scalar.bytes()))?;
        let x = self.builder.ins().load(scalar, heap(), ptr, imm);
        let r = self.builder.ins().insertlane(v, x, lane);
        self.vpush(r);
        Ok(())
    }

    /// `v128.storeN_lane`: pops the vector, then the address; stores lane
    /// `lane`.
    fn store_lane(
        &mut self,
        memarg: &MemArg,
        vector: ir::Type,
        lane: u8,
    ) -> Result<(), CompileError> {
        self.check_lane(vector, lane)?;
        let v = self.vpop(vector)?;
        let addr = self.pop()?;
        let scalar = vector.lane_type();
        let (ptr, imm) = self.heap_addr(memarg, addr, u64::from(scalar.bytes()))?;
        let x = self.builder.ins().extractlane(v, lane);
        self.builder.ins().store(heap(), x, ptr, imm);
        Ok(())
    }

    fn check_memory(&self, mem: u32, offset: usize) -> Result<(), CompileError> {
        if mem == 0 {
            Ok(())
        } else {
            Err(CompileError::Unsupported {
                feature:
                    "multiple memories (the multi-memory proposal, which MVVM does not support)"
                        .into(),
                offset,
            })
        }
    }

    /// An `i32.const` of an index immediate (indices are below 2^32, the
    /// bits are what matters).
    pub(super) fn i32_const(&mut self, v: u32) -> ir::Value {
        self.builder.ins().iconst(types::I32, i64::from(v as i32))
    }

    /// Calls a builtin that returns nothing.
    pub(super) fn builtin_void(
        &mut self,
        b: Builtin,
        args: &[ir::Value],
    ) -> Result<(), CompileError> {
        self.env
            .call_builtin(self.builder, b, args)
            .map_err(|e| self.env_err(e))?;
        Ok(())
    }

    /// Calls a builtin with one result and pushes it.
    pub(super) fn builtin_value(
        &mut self,
        b: Builtin,
        args: &[ir::Value],
    ) -> Result<(), CompileError> {
        let v = self
            .env
            .call_builtin(self.builder, b, args)
            .map_err(|e| self.env_err(e))?
            .ok_or_else(|| self.error(format!("builtin {} has no result", b.sig().name)))?;
        self.stack.push(v);
        Ok(())
    }
}
