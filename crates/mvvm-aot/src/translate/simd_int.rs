//! Integer `v128` operators: comparisons, arithmetic, shifts, lane tests,
//! narrowing and widening, extended multiplication, pairwise addition and
//! the dot product.
//!
//! Each maps onto Cranelift instructions whose semantics match wasm's for
//! every input (checked in the 0.135.8 instruction docs): `swizzle`,
//! `sqmul_round_sat` (Q15 with `MIN * MIN` saturating), `avg_round`
//! (rounding up), `snarrow`/`unarrow` (signed input, saturating),
//! `vhigh_bits` (lane sign bits, lane 0 in bit 0). The widening patterns
//! (`imul` of two `swiden_low`s, `iadd_pairwise` of `swiden_low/high`)
//! are the shapes the x86-64 and aarch64 backends match to single
//! instructions (`pmaddwd`, `smull`, ...).

use super::simd::Binary;
use super::{FuncTranslator, OpResult};
use crate::CompileError;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I8X16, I16X8, I32, I32X4, I64X2};
use cranelift_codegen::ir::{InstBuilder, Type};
use wasmparser::Operator;

/// Which half of the lanes a widening operator takes.
#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

impl FuncTranslator<'_, '_, '_> {
    /// Translates an integer SIMD operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_simd_int(&mut self, op: &Operator<'_>) -> OpResult {
        use Operator::*;
        if let Some((ty, cc)) = int_compare(op) {
            let b = self.vpop(ty)?;
            let a = self.vpop(ty)?;
            let v = self.builder.ins().icmp(cc, a, b);
            self.vpush(v);
            return Ok(true);
        }
        if let Some((ty, f)) = int_binary(op) {
            self.v_binary(ty, f)?;
            return Ok(true);
        }
        match op {
            I8x16Abs => self.v_unary(I8X16, |b, x| b.ins().iabs(x))?,
            I16x8Abs => self.v_unary(I16X8, |b, x| b.ins().iabs(x))?,
            I32x4Abs => self.v_unary(I32X4, |b, x| b.ins().iabs(x))?,
            I64x2Abs => self.v_unary(I64X2, |b, x| b.ins().iabs(x))?,
            I8x16Neg => self.v_unary(I8X16, |b, x| b.ins().ineg(x))?,
            I16x8Neg => self.v_unary(I16X8, |b, x| b.ins().ineg(x))?,
            I32x4Neg => self.v_unary(I32X4, |b, x| b.ins().ineg(x))?,
            I64x2Neg => self.v_unary(I64X2, |b, x| b.ins().ineg(x))?,
            I8x16Popcnt => self.v_unary(I8X16, |b, x| b.ins().popcnt(x))?,

            I8x16Shl => self.shift(I8X16, ShiftKind::Left)?,
            I8x16ShrS => self.shift(I8X16, ShiftKind::Signed)?,
            I8x16ShrU => self.shift(I8X16, ShiftKind::Unsigned)?,
            I16x8Shl => self.shift(I16X8, ShiftKind::Left)?,
            I16x8ShrS => self.shift(I16X8, ShiftKind::Signed)?,
            I16x8ShrU => self.shift(I16X8, ShiftKind::Unsigned)?,
            I32x4Shl => self.shift(I32X4, ShiftKind::Left)?,
            I32x4ShrS => self.shift(I32X4, ShiftKind::Signed)?,
            I32x4ShrU => self.shift(I32X4, ShiftKind::Unsigned)?,
            I64x2Shl => self.shift(I64X2, ShiftKind::Left)?,
            I64x2ShrS => self.shift(I64X2, ShiftKind::Signed)?,
            I64x2ShrU => self.shift(I64X2, ShiftKind::Unsigned)?,

            I8x16AllTrue => self.all_true(I8X16)?,
            I16x8AllTrue => self.all_true(I16X8)?,
            I32x4AllTrue => self.all_true(I32X4)?,
            I64x2AllTrue => self.all_true(I64X2)?,
            I8x16Bitmask => self.bitmask(I8X16)?,
            I16x8Bitmask => self.bitmask(I16X8)?,
            I32x4Bitmask => self.bitmask(I32X4)?,
            I64x2Bitmask => self.bitmask(I64X2)?,

            I8x16NarrowI16x8S => self.v_binary(I16X8, |b, x, y| b.ins().snarrow(x, y))?,
            I8x16NarrowI16x8U => self.v_binary(I16X8, |b, x, y| b.ins().unarrow(x, y))?,
            I16x8NarrowI32x4S => self.v_binary(I32X4, |b, x, y| b.ins().snarrow(x, y))?,
            I16x8NarrowI32x4U => self.v_binary(I32X4, |b, x, y| b.ins().unarrow(x, y))?,

            I16x8ExtendLowI8x16S => self.extend(I8X16, Half::Low, true)?,
            I16x8ExtendHighI8x16S => self.extend(I8X16, Half::High, true)?,
            I16x8ExtendLowI8x16U => self.extend(I8X16, Half::Low, false)?,
            I16x8ExtendHighI8x16U => self.extend(I8X16, Half::High, false)?,
            I32x4ExtendLowI16x8S => self.extend(I16X8, Half::Low, true)?,
            I32x4ExtendHighI16x8S => self.extend(I16X8, Half::High, true)?,
            I32x4ExtendLowI16x8U => self.extend(I16X8, Half::Low, false)?,
            I32x4ExtendHighI16x8U => self.extend(I16X8, Half::High, false)?,
            I64x2ExtendLowI32x4S => self.extend(I32X4, Half::Low, true)?,
            I64x2ExtendHighI32x4S => self.extend(I32X4, Half::High, true)?,
            I64x2ExtendLowI32x4U => self.extend(I32X4, Half::Low, false)?,
            I64x2ExtendHighI32x4U => self.extend(I32X4, Half::High, false)?,

            I16x8ExtMulLowI8x16S => self.ext_mul(I8X16, Half::Low, true)?,
            I16x8ExtMulHighI8x16S => self.ext_mul(I8X16, Half::High, true)?,
            I16x8ExtMulLowI8x16U => self.ext_mul(I8X16, Half::Low, false)?,
            I16x8ExtMulHighI8x16U => self.ext_mul(I8X16, Half::High, false)?,
            I32x4ExtMulLowI16x8S => self.ext_mul(I16X8, Half::Low, true)?,
            I32x4ExtMulHighI16x8S => self.ext_mul(I16X8, Half::High, true)?,
            I32x4ExtMulLowI16x8U => self.ext_mul(I16X8, Half::Low, false)?,
            I32x4ExtMulHighI16x8U => self.ext_mul(I16X8, Half::High, false)?,
            I64x2ExtMulLowI32x4S => self.ext_mul(I32X4, Half::Low, true)?,
            I64x2ExtMulHighI32x4S => self.ext_mul(I32X4, Half::High, true)?,
            I64x2ExtMulLowI32x4U => self.ext_mul(I32X4, Half::Low, false)?,
            I64x2ExtMulHighI32x4U => self.ext_mul(I32X4, Half::High, false)?,

            I16x8ExtAddPairwiseI8x16S => self.ext_add_pairwise(I8X16, true)?,
            I16x8ExtAddPairwiseI8x16U => self.ext_add_pairwise(I8X16, false)?,
            I32x4ExtAddPairwiseI16x8S => self.ext_add_pairwise(I16X8, true)?,
            I32x4ExtAddPairwiseI16x8U => self.ext_add_pairwise(I16X8, false)?,

            I32x4DotI16x8S => {
                let b = self.vpop(I16X8)?;
                let a = self.vpop(I16X8)?;
                let lo = self.widen_mul(a, b, Half::Low, true);
                let hi = self.widen_mul(a, b, Half::High, true);
                let v = self.builder.ins().iadd_pairwise(lo, hi);
                self.vpush(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A vector shift by an `i32` count taken modulo the lane width, as
    /// wasm says (masked here so the IR states it, whatever a backend does
    /// with larger counts).
    fn shift(&mut self, ty: Type, kind: ShiftKind) -> Result<(), CompileError> {
        let count = self.spop(I32)?;
        let a = self.vpop(ty)?;
        let bits = i64::from(ty.lane_bits()) - 1;
        let count = self.builder.ins().band_imm_u(count, bits);
        let ins = self.builder.ins();
        let v = match kind {
            ShiftKind::Left => ins.ishl(a, count),
            ShiftKind::Signed => ins.sshr(a, count),
            ShiftKind::Unsigned => ins.ushr(a, count),
        };
        self.vpush(v);
        Ok(())
    }

    /// `all_true`: 1 if no lane is zero.
    fn all_true(&mut self, ty: Type) -> Result<(), CompileError> {
        let a = self.vpop(ty)?;
        let t = self.builder.ins().vall_true(a);
        let v = self.builder.ins().uextend(I32, t);
        self.stack.push(v);
        Ok(())
    }

    /// `bitmask`: the lanes' sign bits, lane 0 in bit 0.
    fn bitmask(&mut self, ty: Type) -> Result<(), CompileError> {
        let a = self.vpop(ty)?;
        let v = self.builder.ins().vhigh_bits(I32, a);
        self.stack.push(v);
        Ok(())
    }

    /// Widens half of `a`'s lanes (of type `from`) to twice their width.
    fn widen(
        &mut self,
        a: cranelift_codegen::ir::Value,
        half: Half,
        signed: bool,
    ) -> cranelift_codegen::ir::Value {
        let ins = self.builder.ins();
        match (half, signed) {
            (Half::Low, true) => ins.swiden_low(a),
            (Half::High, true) => ins.swiden_high(a),
            (Half::Low, false) => ins.uwiden_low(a),
            (Half::High, false) => ins.uwiden_high(a),
        }
    }

    /// `extend_{low,high}`.
    fn extend(&mut self, from: Type, half: Half, signed: bool) -> Result<(), CompileError> {
        let a = self.vpop(from)?;
        let v = self.widen(a, half, signed);
        self.vpush(v);
        Ok(())
    }

    /// The product of the widened halves of `a` and `b`.
    fn widen_mul(
        &mut self,
        a: cranelift_codegen::ir::Value,
        b: cranelift_codegen::ir::Value,
        half: Half,
        signed: bool,
    ) -> cranelift_codegen::ir::Value {
        let a = self.widen(a, half, signed);
        let b = self.widen(b, half, signed);
        self.builder.ins().imul(a, b)
    }

    /// `extmul_{low,high}`: exact products (the wide lanes cannot
    /// overflow).
    fn ext_mul(&mut self, from: Type, half: Half, signed: bool) -> Result<(), CompileError> {
        let b = self.vpop(from)?;
        let a = self.vpop(from)?;
        let v = self.widen_mul(a, b, half, signed);
        self.vpush(v);
        Ok(())
    }

    /// `extadd_pairwise`: sums of adjacent lanes, widened first (exact).
    fn ext_add_pairwise(&mut self, from: Type, signed: bool) -> Result<(), CompileError> {
        let a = self.vpop(from)?;
        let lo = self.widen(a, Half::Low, signed);
        let hi = self.widen(a, Half::High, signed);
        let v = self.builder.ins().iadd_pairwise(lo, hi);
        self.vpush(v);
        Ok(())
    }
}

/// The direction of a shift.
#[derive(Clone, Copy)]
enum ShiftKind {
    Left,
    Signed,
    Unsigned,
}

/// Integer comparisons: the operand lane type and the condition. The
/// result is a lane mask (all ones or all zeros), as wasm wants.
fn int_compare(op: &Operator<'_>) -> Option<(Type, IntCC)> {
    use IntCC::*;
    use Operator::*;
    Some(match op {
        I8x16Eq => (I8X16, Equal),
        I8x16Ne => (I8X16, NotEqual),
        I8x16LtS => (I8X16, SignedLessThan),
        I8x16LtU => (I8X16, UnsignedLessThan),
        I8x16GtS => (I8X16, SignedGreaterThan),
        I8x16GtU => (I8X16, UnsignedGreaterThan),
        I8x16LeS => (I8X16, SignedLessThanOrEqual),
        I8x16LeU => (I8X16, UnsignedLessThanOrEqual),
        I8x16GeS => (I8X16, SignedGreaterThanOrEqual),
        I8x16GeU => (I8X16, UnsignedGreaterThanOrEqual),
        I16x8Eq => (I16X8, Equal),
        I16x8Ne => (I16X8, NotEqual),
        I16x8LtS => (I16X8, SignedLessThan),
        I16x8LtU => (I16X8, UnsignedLessThan),
        I16x8GtS => (I16X8, SignedGreaterThan),
        I16x8GtU => (I16X8, UnsignedGreaterThan),
        I16x8LeS => (I16X8, SignedLessThanOrEqual),
        I16x8LeU => (I16X8, UnsignedLessThanOrEqual),
        I16x8GeS => (I16X8, SignedGreaterThanOrEqual),
        I16x8GeU => (I16X8, UnsignedGreaterThanOrEqual),
        I32x4Eq => (I32X4, Equal),
        I32x4Ne => (I32X4, NotEqual),
        I32x4LtS => (I32X4, SignedLessThan),
        I32x4LtU => (I32X4, UnsignedLessThan),
        I32x4GtS => (I32X4, SignedGreaterThan),
        I32x4GtU => (I32X4, UnsignedGreaterThan),
        I32x4LeS => (I32X4, SignedLessThanOrEqual),
        I32x4LeU => (I32X4, UnsignedLessThanOrEqual),
        I32x4GeS => (I32X4, SignedGreaterThanOrEqual),
        I32x4GeU => (I32X4, UnsignedGreaterThanOrEqual),
        I64x2Eq => (I64X2, Equal),
        I64x2Ne => (I64X2, NotEqual),
        I64x2LtS => (I64X2, SignedLessThan),
        I64x2GtS => (I64X2, SignedGreaterThan),
        I64x2LeS => (I64X2, SignedLessThanOrEqual),
        I64x2GeS => (I64X2, SignedGreaterThanOrEqual),
        _ => return None,
    })
}

/// Lane-wise two-operand integer operators: operand lane type and emitter.
fn int_binary(op: &Operator<'_>) -> Option<(Type, Binary)> {
    use Operator::*;
    Some(match op {
        I8x16Add => (I8X16, |b, x, y| b.ins().iadd(x, y)),
        I16x8Add => (I16X8, |b, x, y| b.ins().iadd(x, y)),
        I32x4Add => (I32X4, |b, x, y| b.ins().iadd(x, y)),
        I64x2Add => (I64X2, |b, x, y| b.ins().iadd(x, y)),
        I8x16Sub => (I8X16, |b, x, y| b.ins().isub(x, y)),
        I16x8Sub => (I16X8, |b, x, y| b.ins().isub(x, y)),
        I32x4Sub => (I32X4, |b, x, y| b.ins().isub(x, y)),
        I64x2Sub => (I64X2, |b, x, y| b.ins().isub(x, y)),
        I16x8Mul => (I16X8, |b, x, y| b.ins().imul(x, y)),
        I32x4Mul => (I32X4, |b, x, y| b.ins().imul(x, y)),
        I64x2Mul => (I64X2, |b, x, y| b.ins().imul(x, y)),
        I8x16AddSatS => (I8X16, |b, x, y| b.ins().sadd_sat(x, y)),
        I8x16AddSatU => (I8X16, |b, x, y| b.ins().uadd_sat(x, y)),
        I8x16SubSatS => (I8X16, |b, x, y| b.ins().ssub_sat(x, y)),
        I8x16SubSatU => (I8X16, |b, x, y| b.ins().usub_sat(x, y)),
        I16x8AddSatS => (I16X8, |b, x, y| b.ins().sadd_sat(x, y)),
        I16x8AddSatU => (I16X8, |b, x, y| b.ins().uadd_sat(x, y)),
        I16x8SubSatS => (I16X8, |b, x, y| b.ins().ssub_sat(x, y)),
        I16x8SubSatU => (I16X8, |b, x, y| b.ins().usub_sat(x, y)),
        I8x16MinS => (I8X16, |b, x, y| b.ins().smin(x, y)),
        I8x16MinU => (I8X16, |b, x, y| b.ins().umin(x, y)),
        I8x16MaxS => (I8X16, |b, x, y| b.ins().smax(x, y)),
        I8x16MaxU => (I8X16, |b, x, y| b.ins().umax(x, y)),
        I16x8MinS => (I16X8, |b, x, y| b.ins().smin(x, y)),
        I16x8MinU => (I16X8, |b, x, y| b.ins().umin(x, y)),
        I16x8MaxS => (I16X8, |b, x, y| b.ins().smax(x, y)),
        I16x8MaxU => (I16X8, |b, x, y| b.ins().umax(x, y)),
        I32x4MinS => (I32X4, |b, x, y| b.ins().smin(x, y)),
        I32x4MinU => (I32X4, |b, x, y| b.ins().umin(x, y)),
        I32x4MaxS => (I32X4, |b, x, y| b.ins().smax(x, y)),
        I32x4MaxU => (I32X4, |b, x, y| b.ins().umax(x, y)),
        I8x16AvgrU => (I8X16, |b, x, y| b.ins().avg_round(x, y)),
        I16x8AvgrU => (I16X8, |b, x, y| b.ins().avg_round(x, y)),
        I16x8Q15MulrSatS => (I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y)),
        _ => return None,
    })
}
