//! Fixed-width SIMD (`v128`) and relaxed-SIMD operators, except the
//! memory ones (`memory.rs` owns every access to linear memory).
//!
//! Representation: every `v128` on the operand stack, in a local, a block
//! parameter or a function signature is an `I8X16` Cranelift value
//! ([`clif_type`](crate::env::clif_type)). An operator bitcasts its operands
//! to the lane type it works on (`I32X4`, `F64X2`, ...) and its result back
//! to `I8X16`. One canonical type keeps block parameters, `select`, locals
//! and the checkpoint frames simple; the bitcasts are free (the same
//! register on both ISAs) and Cranelift folds back-to-back pairs.
//!
//! The operators are split by family: this file has the dispatcher, the
//! helpers, constants, shuffles, lanes, bitwise operators and relaxed SIMD;
//! `simd_int.rs` the integer arithmetic and comparisons; `simd_float.rs` the
//! float arithmetic, comparisons and conversions.
//!
//! Relaxed SIMD is translated with the deterministic semantics the relaxed
//! SIMD specification allows (the choice Wasmtime makes under
//! `relaxed_simd_deterministic`), so x86-64 and aarch64 compute the same
//! bits and a checkpoint taken on one restores exactly on the other. See
//! `docs/simd.md` for each choice and why.

use super::{FuncTranslator, OpResult};
use crate::CompileError;
use crate::env::v128_const;
use cranelift_codegen::ir::types::{F32X4, F64X2, I8, I8X16, I16, I16X8, I32, I32X4, I64X2};
use cranelift_codegen::ir::{
    self, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

/// Emits a one-operand operator on values of the operator's lane type.
pub(super) type Unary = fn(&mut FunctionBuilder<'_>, Value) -> Value;
/// Emits a two-operand operator (`a` deeper on the stack, `b` on top).
pub(super) type Binary = fn(&mut FunctionBuilder<'_>, Value, Value) -> Value;

/// Flags of a lane-type bitcast: explicitly little-endian, the byte order
/// wasm defines for `v128` lanes, whatever the target's.
fn lane_cast_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Reinterprets a 128-bit vector as `ty` (nothing if it already is one).
pub(super) fn cast(builder: &mut FunctionBuilder<'_>, ty: Type, v: Value) -> Value {
    if builder.func.dfg.value_type(v) == ty {
        v
    } else {
        builder.ins().bitcast(ty, lane_cast_flags(), v)
    }
}

impl FuncTranslator<'_, '_, '_> {
    /// Pops a `v128` operand and views it with lane type `ty`.
    ///
    /// Checks that the operand is a 128-bit vector, so an operand stack out
    /// of step becomes a typed error instead of ill-typed IR.
    pub(super) fn vpop(&mut self, ty: Type) -> Result<Value, CompileError> {
        let v = self.pop()?;
        let actual = self.builder.func.dfg.value_type(v);
        if !actual.is_vector() || actual.bits() != 128 {
            return Err(self.error(format!("expected a v128 operand, found {actual}")));
        }
        Ok(cast(self.builder, ty, v))
    }

    /// Pops a scalar operand of type `ty`.
    pub(super) fn spop(&mut self, ty: Type) -> Result<Value, CompileError> {
        let v = self.pop()?;
        let actual = self.builder.func.dfg.value_type(v);
        if actual != ty {
            return Err(self.error(format!("expected a {ty} operand, found {actual}")));
        }
        Ok(v)
    }

    /// Pushes a vector result in the canonical `I8X16` form.
    pub(super) fn vpush(&mut self, v: Value) {
        let v = cast(self.builder, I8X16, v);
        self.stack.push(v);
    }

    /// `op a`: pops one `ty` operand, pushes the result.
    pub(super) fn v_unary(&mut self, ty: Type, f: Unary) -> Result<(), CompileError> {
        let a = self.vpop(ty)?;
        let r = f(self.builder, a);
        self.vpush(r);
        Ok(())
    }

    /// `a op b`: pops two `ty` operands, pushes the result.
    pub(super) fn v_binary(&mut self, ty: Type, f: Binary) -> Result<(), CompileError> {
        let b = self.vpop(ty)?;
        let a = self.vpop(ty)?;
        let r = f(self.builder, a, b);
        self.vpush(r);
        Ok(())
    }

    /// Translates a SIMD operator (not a memory one); `Ok(false)` if `op`
    /// is none (the caller then reports it as unsupported, by name).
    pub(super) fn translate_simd(&mut self, op: &Operator<'_>) -> OpResult {
        if self.translate_simd_lanes(op)?
            || self.translate_simd_int(op)?
            || self.translate_simd_float(op)?
        {
            return Ok(true);
        }
        self.translate_relaxed_simd(op)
    }

    /// Constants, shuffles, splats, lane access and bitwise operators.
    fn translate_simd_lanes(&mut self, op: &Operator<'_>) -> OpResult {
        use Operator::*;
        match op {
            V128Const { value } => {
                let v = v128_const(self.builder, *value.bytes());
                self.stack.push(v);
            }
            I8x16Shuffle { lanes } => {
                let b = self.vpop(I8X16)?;
                let a = self.vpop(I8X16)?;
                // Validation guarantees every index is below 32.
                let mask = self
                    .builder
                    .func
                    .dfg
                    .immediates
                    .push(ConstantData::from(&lanes[..]));
                let v = self.builder.ins().shuffle(a, b, mask);
                self.vpush(v);
            }
            // Cranelift's `swizzle` has wasm's semantics: an index of 16 or
            // more selects 0.
            I8x16Swizzle => self.v_binary(I8X16, |b, x, s| b.ins().swizzle(x, s))?,
            I8x16Splat => self.splat(I32, Some(I8), I8X16)?,
            I16x8Splat => self.splat(I32, Some(I16), I16X8)?,
            I32x4Splat => self.splat(I32, None, I32X4)?,
            I64x2Splat => self.splat(ir::types::I64, None, I64X2)?,
            F32x4Splat => self.splat(ir::types::F32, None, F32X4)?,
            F64x2Splat => self.splat(ir::types::F64, None, F64X2)?,
            I8x16ExtractLaneS { lane } => self.extract(I8X16, *lane, Some(true))?,
            I8x16ExtractLaneU { lane } => self.extract(I8X16, *lane, Some(false))?,
            I16x8ExtractLaneS { lane } => self.extract(I16X8, *lane, Some(true))?,
            I16x8ExtractLaneU { lane } => self.extract(I16X8, *lane, Some(false))?,
            I32x4ExtractLane { lane } => self.extract(I32X4, *lane, None)?,
            I64x2ExtractLane { lane } => self.extract(I64X2, *lane, None)?,
            F32x4ExtractLane { lane } => self.extract(F32X4, *lane, None)?,
            F64x2ExtractLane { lane } => self.extract(F64X2, *lane, None)?,
            I8x16ReplaceLane { lane } => self.replace(I8X16, I32, *lane)?,
            I16x8ReplaceLane { lane } => self.replace(I16X8, I32, *lane)?,
            I32x4ReplaceLane { lane } => self.replace(I32X4, I32, *lane)?,
            I64x2ReplaceLane { lane } => self.replace(I64X2, ir::types::I64, *lane)?,
            F32x4ReplaceLane { lane } => self.replace(F32X4, ir::types::F32, *lane)?,
            F64x2ReplaceLane { lane } => self.replace(F64X2, ir::types::F64, *lane)?,
            V128Not => self.v_unary(I8X16, |b, x| b.ins().bnot(x))?,
            V128And => self.v_binary(I8X16, |b, x, y| b.ins().band(x, y))?,
            // `band_not(x, y)` is `x & !y`, wasm's `andnot`.
            V128AndNot => self.v_binary(I8X16, |b, x, y| b.ins().band_not(x, y))?,
            V128Or => self.v_binary(I8X16, |b, x, y| b.ins().bor(x, y))?,
            V128Xor => self.v_binary(I8X16, |b, x, y| b.ins().bxor(x, y))?,
            V128Bitselect => self.bitselect(I8X16)?,
            V128AnyTrue => {
                let a = self.vpop(I8X16)?;
                let t = self.builder.ins().vany_true(a);
                let v = self.builder.ins().uextend(I32, t);
                self.stack.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `splat`: pops a scalar of type `from`, narrows it to `narrow` if
    /// given (the `i8`/`i16` lanes of an `i32` operand), fills `vector`.
    fn splat(
        &mut self,
        from: Type,
        narrow: Option<Type>,
        vector: Type,
    ) -> Result<(), CompileError> {
        let mut x = self.spop(from)?;
        if let Some(n) = narrow {
            x = self.builder.ins().ireduce(n, x);
        }
        let v = self.builder.ins().splat(vector, x);
        self.vpush(v);
        Ok(())
    }

    /// `extract_lane`: `signed` says how a narrow (`i8`/`i16`) lane widens
    /// to `i32`; `None` for the lanes that are already a wasm type.
    fn extract(
        &mut self,
        vector: Type,
        lane: u8,
        signed: Option<bool>,
    ) -> Result<(), CompileError> {
        self.check_lane(vector, lane)?;
        let a = self.vpop(vector)?;
        let x = self.builder.ins().extractlane(a, lane);
        let v = match signed {
            Some(true) => self.builder.ins().sextend(I32, x),
            Some(false) => self.builder.ins().uextend(I32, x),
            None => x,
        };
        self.stack.push(v);
        Ok(())
    }

    /// `replace_lane`: pops the scalar (of wasm type `scalar`), then the
    /// vector.
    fn replace(&mut self, vector: Type, scalar: Type, lane: u8) -> Result<(), CompileError> {
        self.check_lane(vector, lane)?;
        let mut x = self.spop(scalar)?;
        let lane_ty = vector.lane_type();
        if lane_ty != scalar {
            x = self.builder.ins().ireduce(lane_ty, x);
        }
        let a = self.vpop(vector)?;
        let v = self.builder.ins().insertlane(a, x, lane);
        self.vpush(v);
        Ok(())
    }

    /// Refuses a lane index out of range (validation already does; this
    /// keeps a bad index from reaching Cranelift, which would panic).
    pub(super) fn check_lane(&self, vector: Type, lane: u8) -> Result<(), CompileError> {
        if u32::from(lane) < vector.lane_count() {
            Ok(())
        } else {
            Err(self.error(format!("lane {lane} out of range for {vector}")))
        }
    }

    /// `v128.bitselect(a, b, mask)` (also the deterministic laneselect):
    /// bits of `a` where `mask` is 1, of `b` where it is 0.
    fn bitselect(&mut self, ty: Type) -> Result<(), CompileError> {
        let mask = self.vpop(ty)?;
        let b = self.vpop(ty)?;
        let a = self.vpop(ty)?;
        let v = self.builder.ins().bitselect(mask, a, b);
        self.vpush(v);
        Ok(())
    }

    /// Relaxed SIMD with deterministic semantics (see the module docs and
    /// `docs/simd.md`).
    fn translate_relaxed_simd(&mut self, op: &Operator<'_>) -> OpResult {
        use Operator::*;
        match op {
            // As `i8x16.swizzle`: out-of-range indices select 0.
            I8x16RelaxedSwizzle => self.v_binary(I8X16, |b, x, s| b.ins().swizzle(x, s))?,
            // As the saturating truncations: NaN is 0, out of range
            // saturates.
            I32x4RelaxedTruncF32x4S
            | I32x4RelaxedTruncF32x4U
            | I32x4RelaxedTruncF64x2SZero
            | I32x4RelaxedTruncF64x2UZero => self.trunc_sat(op)?,
            // Fused: one rounding, as the hardware FMA of both ISAs does.
            F32x4RelaxedMadd => self.madd(F32X4, false)?,
            F32x4RelaxedNmadd => self.madd(F32X4, true)?,
            F64x2RelaxedMadd => self.madd(F64X2, false)?,
            F64x2RelaxedNmadd => self.madd(F64X2, true)?,
            // As `v128.bitselect`: every bit of the mask counts.
            I8x16RelaxedLaneselect
            | I16x8RelaxedLaneselect
            | I32x4RelaxedLaneselect
            | I64x2RelaxedLaneselect => self.bitselect(I8X16)?,
            // As `f32x4.min` and friends: NaN propagates, -0 < +0.
            F32x4RelaxedMin => self.v_binary(F32X4, |b, x, y| b.ins().fmin(x, y))?,
            F32x4RelaxedMax => self.v_binary(F32X4, |b, x, y| b.ins().fmax(x, y))?,
            F64x2RelaxedMin => self.v_binary(F64X2, |b, x, y| b.ins().fmin(x, y))?,
            F64x2RelaxedMax => self.v_binary(F64X2, |b, x, y| b.ins().fmax(x, y))?,
            // As `i16x8.q15mulr_sat_s`: MIN * MIN saturates to MAX.
            I16x8RelaxedQ15mulrS => {
                self.v_binary(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y))?
            }
            I16x8RelaxedDotI8x16I7x16S => {
                let b = self.vpop(I8X16)?;
                let a = self.vpop(I8X16)?;
                let v = dot_i8x16_s(self.builder, a, b);
                self.vpush(v);
            }
            I32x4RelaxedDotI8x16I7x16AddS => {
                let c = self.vpop(I32X4)?;
                let b = self.vpop(I8X16)?;
                let a = self.vpop(I8X16)?;
                let dot = dot_i8x16_s(self.builder, a, b);
                let ins = &mut *self.builder;
                let lo = ins.ins().swiden_low(dot);
                let hi = ins.ins().swiden_high(dot);
                let sum = ins.ins().iadd_pairwise(lo, hi);
                let v = ins.ins().iadd(sum, c);
                self.vpush(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `relaxed_madd` (`a * b + c`) and `relaxed_nmadd` (`-(a * b) + c`),
    /// fused: `fma(-a, b, c)` is `-(a * b) + c` rounded once.
    fn madd(&mut self, ty: Type, negate: bool) -> Result<(), CompileError> {
        let c = self.vpop(ty)?;
        let b = self.vpop(ty)?;
        let mut a = self.vpop(ty)?;
        if negate {
            a = self.builder.ins().fneg(a);
        }
        let v = self.builder.ins().fma(a, b, c);
        self.vpush(v);
        Ok(())
    }
}

/// The deterministic `i16x8.relaxed_dot_i8x16_i7x16_s`: both operands'
/// lanes signed, products of adjacent lanes added with 16-bit wrapping
/// (only `-128 * -128` twice can wrap, and only with a `b` lane outside the
/// 7-bit range the operator is specified for).
fn dot_i8x16_s(builder: &mut FunctionBuilder<'_>, a: Value, b: Value) -> Value {
    let al = builder.ins().swiden_low(a);
    let bl = builder.ins().swiden_low(b);
    let lo = builder.ins().imul(al, bl);
    let ah = builder.ins().swiden_high(a);
    let bh = builder.ins().swiden_high(b);
    let hi = builder.ins().imul(ah, bh);
    builder.ins().iadd_pairwise(lo, hi)
}
