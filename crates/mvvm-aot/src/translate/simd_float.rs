//! Float `v128` operators: comparisons, arithmetic, rounding, `min`/`max`,
//! `pmin`/`pmax`, and the conversions between lane types.
//!
//! Cranelift's vector `fmin`/`fmax` follow wasm (NaN propagates, `-0 <
//! +0`); `fcvt_to_*_sat` saturate and map NaN to 0; `nearest` rounds to
//! even. `pmin`/`pmax` are defined by wasm as a plain comparison and
//! select (`b < a ? b : a`), which is what is emitted. The rounding
//! operators need SSE4.1 on x86-64 (otherwise Cranelift emits libcalls),
//! which every x86-64 target we build enables (see `isa.rs`).

use super::simd::Binary;
use super::{FuncTranslator, OpResult};
use crate::CompileError;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32X4, F64X2, I32X4, I64X2};
use cranelift_codegen::ir::{InstBuilder, Type};
use wasmparser::Operator;

impl FuncTranslator<'_, '_, '_> {
    /// Translates a float SIMD operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_simd_float(&mut self, op: &Operator<'_>) -> OpResult {
        use Operator::*;
        if let Some((ty, cc)) = float_compare(op) {
            let b = self.vpop(ty)?;
            let a = self.vpop(ty)?;
            let v = self.builder.ins().fcmp(cc, a, b);
            self.vpush(v);
            return Ok(true);
        }
        if let Some((ty, f)) = float_binary(op) {
            self.v_binary(ty, f)?;
            return Ok(true);
        }
        match op {
            F32x4Ceil => self.v_unary(F32X4, |b, x| b.ins().ceil(x))?,
            F32x4Floor => self.v_unary(F32X4, |b, x| b.ins().floor(x))?,
            F32x4Trunc => self.v_unary(F32X4, |b, x| b.ins().trunc(x))?,
            F32x4Nearest => self.v_unary(F32X4, |b, x| b.ins().nearest(x))?,
            F32x4Abs => self.v_unary(F32X4, |b, x| b.ins().fabs(x))?,
            F32x4Neg => self.v_unary(F32X4, |b, x| b.ins().fneg(x))?,
            F32x4Sqrt => self.v_unary(F32X4, |b, x| b.ins().sqrt(x))?,
            F64x2Ceil => self.v_unary(F64X2, |b, x| b.ins().ceil(x))?,
            F64x2Floor => self.v_unary(F64X2, |b, x| b.ins().floor(x))?,
            F64x2Trunc => self.v_unary(F64X2, |b, x| b.ins().trunc(x))?,
            F64x2Nearest => self.v_unary(F64X2, |b, x| b.ins().nearest(x))?,
            F64x2Abs => self.v_unary(F64X2, |b, x| b.ins().fabs(x))?,
            F64x2Neg => self.v_unary(F64X2, |b, x| b.ins().fneg(x))?,
            F64x2Sqrt => self.v_unary(F64X2, |b, x| b.ins().sqrt(x))?,
            F32x4PMin => self.pseudo_min_max(F32X4, true)?,
            F32x4PMax => self.pseudo_min_max(F32X4, false)?,
            F64x2PMin => self.pseudo_min_max(F64X2, true)?,
            F64x2PMax => self.pseudo_min_max(F64X2, false)?,

            I32x4TruncSatF32x4S
            | I32x4TruncSatF32x4U
            | I32x4TruncSatF64x2SZero
            | I32x4TruncSatF64x2UZero => self.trunc_sat(op)?,
            F32x4ConvertI32x4S => self.v_unary(I32X4, |b, x| b.ins().fcvt_from_sint(F32X4, x))?,
            F32x4ConvertI32x4U => self.v_unary(I32X4, |b, x| b.ins().fcvt_from_uint(F32X4, x))?,
            // Widen the low two lanes to i64 first: the shape both backends
            // match to one conversion instruction.
            F64x2ConvertLowI32x4S => self.v_unary(I32X4, |b, x| {
                let wide = b.ins().swiden_low(x);
                b.ins().fcvt_from_sint(F64X2, wide)
            })?,
            F64x2ConvertLowI32x4U => self.v_unary(I32X4, |b, x| {
                let wide = b.ins().uwiden_low(x);
                b.ins().fcvt_from_uint(F64X2, wide)
            })?,
            // `fvdemote` zeroes the two high lanes, as wasm's `_zero` wants.
            F32x4DemoteF64x2Zero => self.v_unary(F64X2, |b, x| b.ins().fvdemote(x))?,
            F64x2PromoteLowF32x4 => self.v_unary(F32X4, |b, x| b.ins().fvpromote_low(x))?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `pmin` (`b < a ? b : a`) and `pmax` (`a < b ? b : a`), lane-wise:
    /// a comparison mask and a bit select, which the backends match to
    /// `minps`/`maxps`-style instructions where those agree with wasm.
    fn pseudo_min_max(&mut self, ty: Type, min: bool) -> Result<(), CompileError> {
        let b = self.vpop(ty)?;
        let a = self.vpop(ty)?;
        let ins = &mut *self.builder;
        let mask = if min {
            ins.ins().fcmp(FloatCC::LessThan, b, a)
        } else {
            ins.ins().fcmp(FloatCC::LessThan, a, b)
        };
        let mask = super::simd::cast(ins, ty, mask);
        let v = ins.ins().bitselect(mask, b, a);
        self.vpush(v);
        Ok(())
    }

    /// The saturating float-to-`i32` truncations, also the deterministic
    /// form of the relaxed ones: NaN becomes 0, out-of-range values
    /// saturate. The `f64x2` forms convert to `i64` lanes, then narrow
    /// with saturation against a zero vector (the high lanes are 0), the
    /// shape both backends match.
    pub(super) fn trunc_sat(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        use Operator::*;
        match op {
            I32x4TruncSatF32x4S | I32x4RelaxedTruncF32x4S => {
                self.v_unary(F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x))
            }
            I32x4TruncSatF32x4U | I32x4RelaxedTruncF32x4U => {
                self.v_unary(F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x))
            }
            I32x4TruncSatF64x2SZero | I32x4RelaxedTruncF64x2SZero => self.v_unary(F64X2, |b, x| {
                let wide = b.ins().fcvt_to_sint_sat(I64X2, x);
                let zero = zero_i64x2(b);
                b.ins().snarrow(wide, zero)
            }),
            I32x4TruncSatF64x2UZero | I32x4RelaxedTruncF64x2UZero => self.v_unary(F64X2, |b, x| {
                let wide = b.ins().fcvt_to_uint_sat(I64X2, x);
                let zero = zero_i64x2(b);
                b.ins().uunarrow(wide, zero)
            }),
            other => Err(self.error(format!("{other:?} is no saturating truncation"))),
        }
    }
}

/// An all-zero `I64X2`, as a `vconst` of that type: the x86-64 backend
/// lowers `snarrow`/`uunarrow` of `i64x2` lanes only in the pattern
/// "saturating conversion narrowed against a zero `vconst`" (it has no
/// general `i64x2` narrowing), and a bitcast zero would not match.
fn zero_i64x2(b: &mut cranelift_frontend::FunctionBuilder<'_>) -> cranelift_codegen::ir::Value {
    let c = b
        .func
        .dfg
        .constants
        .insert(cranelift_codegen::ir::ConstantData::from(&[0u8; 16][..]));
    b.ins().vconst(I64X2, c)
}

/// Float comparisons: operand lane type and condition. `Ne` is unordered
/// (true when either lane is NaN), the others ordered, as in wasm.
fn float_compare(op: &Operator<'_>) -> Option<(Type, FloatCC)> {
    use FloatCC::*;
    use Operator::*;
    Some(match op {
        F32x4Eq => (F32X4, Equal),
        F32x4Ne => (F32X4, NotEqual),
        F32x4Lt => (F32X4, LessThan),
        F32x4Gt => (F32X4, GreaterThan),
        F32x4Le => (F32X4, LessThanOrEqual),
        F32x4Ge => (F32X4, GreaterThanOrEqual),
        F64x2Eq => (F64X2, Equal),
        F64x2Ne => (F64X2, NotEqual),
        F64x2Lt => (F64X2, LessThan),
        F64x2Gt => (F64X2, GreaterThan),
        F64x2Le => (F64X2, LessThanOrEqual),
        F64x2Ge => (F64X2, GreaterThanOrEqual),
        _ => return None,
    })
}

/// Lane-wise two-operand float operators.
fn float_binary(op: &Operator<'_>) -> Option<(Type, Binary)> {
    use Operator::*;
    Some(match op {
        F32x4Add => (F32X4, |b, x, y| b.ins().fadd(x, y)),
        F32x4Sub => (F32X4, |b, x, y| b.ins().fsub(x, y)),
        F32x4Mul => (F32X4, |b, x, y| b.ins().fmul(x, y)),
        F32x4Div => (F32X4, |b, x, y| b.ins().fdiv(x, y)),
        F32x4Min => (F32X4, |b, x, y| b.ins().fmin(x, y)),
        F32x4Max => (F32X4, |b, x, y| b.ins().fmax(x, y)),
        F64x2Add => (F64X2, |b, x, y| b.ins().fadd(x, y)),
        F64x2Sub => (F64X2, |b, x, y| b.ins().fsub(x, y)),
        F64x2Mul => (F64X2, |b, x, y| b.ins().fmul(x, y)),
        F64x2Div => (F64X2, |b, x, y| b.ins().fdiv(x, y)),
        F64x2Min => (F64X2, |b, x, y| b.ins().fmin(x, y)),
        F64x2Max => (F64X2, |b, x, y| b.ins().fmax(x, y)),
        _ => return None,
    })
}
