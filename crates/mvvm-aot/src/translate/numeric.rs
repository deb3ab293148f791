//! Translation of WebAssembly 2.0 numeric operators (no SIMD) to Cranelift IR.
//!
//! "Numeric" means every operator on `i32`/`i64`/`f32`/`f64` values that is
//! not control, memory, table, variable, reference or parametric: constants,
//! tests and comparisons, integer and float arithmetic, bit operations, and
//! every conversion (including the sign-extension and the saturating
//! float-to-int proposals, both part of 2.0).
//!
//! Each operator maps onto one Cranelift instruction (or two: a comparison
//! and its widening to `i32`) because Cranelift's semantics were chosen to
//! match WebAssembly's. What was checked in the Cranelift 0.135.8 sources
//! (instruction docs in `cranelift-codegen-meta`, lowerings for x86-64 and
//! aarch64) so that no explicit guard is needed here:
//!
//! - `sdiv` traps with `INTEGER_DIVISION_BY_ZERO` on a zero divisor and with
//!   `INTEGER_OVERFLOW` on `MIN / -1`; `udiv`/`urem`/`srem` trap with
//!   `INTEGER_DIVISION_BY_ZERO` on a zero divisor. `srem(MIN, -1)` is 0, as
//!   wasm wants (x86-64 uses a checked sequence that skips `idiv` for a `-1`
//!   divisor; aarch64's `sdiv` does not fault and `msub` yields 0; constant
//!   folding also yields 0). On x86-64 the zero-divisor trap of
//!   `udiv`/`urem`/`srem` and the overflow trap of `sdiv` are the `div`/`idiv`
//!   instruction faulting (a `SIGFPE`), not a `ud2`: the runtime must treat
//!   `SIGFPE` in generated code like any other trap site.
//! - Shifts and rotates take their count modulo the bit width, like wasm.
//! - `fcvt_to_sint`/`fcvt_to_uint` trap with `BAD_CONVERSION_TO_INTEGER` on
//!   NaN and `INTEGER_OVERFLOW` out of range; the `_sat` forms saturate and
//!   map NaN to 0.
//! - `fmin`/`fmax` follow the wasm rules (NaN propagation, `-0 < +0`).
//! - `nearest` rounds to even; `fcvt_from_uint` and `fcvt_from_sint` round
//!   once (i64 to f32 included).
//! - On x86-64 without SSE4.1, `ceil`/`floor`/`trunc`/`nearest` are lowered
//!   to libcalls (`ceilf`, `floor`, ...): the compiler either enables
//!   `has_sse41` or must resolve those libcalls.
//!
//! The operand stack is the caller's `Vec<Value>` (top = last element).
//! Operand types are checked against the operator before anything is popped,
//! so a translator bug upstream becomes a [`NumericError`] rather than a
//! Cranelift verifier failure far from its cause.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::types::{F32, F64, I8, I16, I32, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

/// Error for a numeric operator that cannot be translated: an operand is
/// missing from the stack or has the wrong type. This does not happen for
/// validated wasm; it means the caller's operand stack is out of step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NumericError(pub String);

impl std::fmt::Display for NumericError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NumericError {}

/// Emits the instruction(s) of a one-operand operator.
type UnaryFn = fn(&mut FunctionBuilder<'_>, Value) -> Value;
/// Emits the instruction(s) of a two-operand operator (`x` is the deeper
/// operand, `y` the top of the stack).
type BinaryFn = fn(&mut FunctionBuilder<'_>, Value, Value) -> Value;

/// How an operator is lowered: its operand type(s) and the emitter. The
/// result type follows from the emitted instruction.
enum Lowering {
    /// Pushes a value that needs no operand.
    Const(Constant),
    /// Pops one operand of the given type.
    Unary(Type, UnaryFn),
    /// Pops two operands, both of the given type.
    Binary(Type, BinaryFn),
}

/// A constant operand, by type.
enum Constant {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
}

/// Translates a numeric operator. Pops operands from and pushes results onto
/// `stack` (the wasm operand stack; the top is the last element). Returns
/// `Ok(false)`, leaving `stack` untouched, if `op` is not a numeric operator.
/// On error `stack` is also left untouched.
pub(crate) fn translate_numeric(
    op: &Operator<'_>,
    builder: &mut FunctionBuilder<'_>,
    stack: &mut Vec<Value>,
) -> Result<bool, NumericError> {
    let Some(lowering) = lowering(op) else {
        return Ok(false);
    };
    let result = match lowering {
        Lowering::Const(c) => constant(builder, c),
        Lowering::Unary(ty, emit) => {
            let [x] = take_operands(op, builder, stack, ty)?;
            emit(builder, x)
        }
        Lowering::Binary(ty, emit) => {
            let [x, y] = take_operands(op, builder, stack, ty)?;
            emit(builder, x, y)
        }
    };
    stack.push(result);
    Ok(true)
}

/// Checks that the top `N` values of `stack` exist and have type `ty`, then
/// pops them, deepest first. Leaves `stack` untouched on error.
fn take_operands<const N: usize>(
    op: &Operator<'_>,
    builder: &FunctionBuilder<'_>,
    stack: &mut Vec<Value>,
    ty: Type,
) -> Result<[Value; N], NumericError> {
    let Some(base) = stack.len().checked_sub(N) else {
        return Err(NumericError(format!(
            "{op:?} needs {N} operand(s) but the operand stack holds {}",
            stack.len()
        )));
    };
    for &v in &stack[base..] {
        let found = builder.func.dfg.value_type(v);
        if found != ty {
            return Err(NumericError(format!(
                "{op:?} expects {ty} operands, found a {found} on the operand stack"
            )));
        }
    }
    let values = std::array::from_fn(|i| stack[base + i]);
    stack.truncate(base);
    Ok(values)
}

/// Emits a constant. Integer immediates are passed zero-extended from their
/// width, which is what the Cranelift verifier requires of `iconst.i32`.
fn constant(builder: &mut FunctionBuilder<'_>, c: Constant) -> Value {
    match c {
        Constant::I32(v) => builder.ins().iconst(I32, i64::from(v.cast_unsigned())),
        Constant::I64(v) => builder.ins().iconst(I64, v),
        Constant::F32(bits) => builder.ins().f32const(Ieee32::with_bits(bits)),
        Constant::F64(bits) => builder.ins().f64const(Ieee64::with_bits(bits)),
    }
}

/// Widens a Cranelift comparison result (an `i8` that is 0 or 1) to wasm's
/// `i32` boolean.
fn bool_to_i32(builder: &mut FunctionBuilder<'_>, b: Value) -> Value {
    builder.ins().uextend(I32, b)
}

/// Integer comparison with an `i32` result.
fn icmp(builder: &mut FunctionBuilder<'_>, cc: IntCC, x: Value, y: Value) -> Value {
    let b = builder.ins().icmp(cc, x, y);
    bool_to_i32(builder, b)
}

/// Float comparison with an `i32` result.
fn fcmp(builder: &mut FunctionBuilder<'_>, cc: FloatCC, x: Value, y: Value) -> Value {
    let b = builder.ins().fcmp(cc, x, y);
    bool_to_i32(builder, b)
}

/// `eqz`: compare with zero, result `i32`.
fn eqz(builder: &mut FunctionBuilder<'_>, x: Value) -> Value {
    let b = builder.ins().icmp_imm_u(IntCC::Equal, x, 0);
    bool_to_i32(builder, b)
}

/// Sign-extends the low `from` bits of `x` back to `x`'s own type
/// (`i32.extend8_s` and friends).
fn sign_extend_low(builder: &mut FunctionBuilder<'_>, x: Value, from: Type) -> Value {
    let ty = builder.func.dfg.value_type(x);
    let low = builder.ins().ireduce(from, x);
    builder.ins().sextend(ty, low)
}

/// Reinterprets the bits of `x` as `ty` (same size; scalar, so byte order
/// flags do not matter).
fn reinterpret(builder: &mut FunctionBuilder<'_>, ty: Type, x: Value) -> Value {
    builder.ins().bitcast(ty, MemFlagsData::new(), x)
}

/// Builds a [`Lowering::Unary`] from a non-capturing closure.
macro_rules! unary {
    ($ty:expr, |$b:ident, $x:ident| $body:expr) => {
        Lowering::Unary($ty, |$b: &mut FunctionBuilder<'_>, $x: Value| $body)
    };
}

/// Builds a [`Lowering::Binary`] from a non-capturing closure.
macro_rules! binary {
    ($ty:expr, |$b:ident, $x:ident, $y:ident| $body:expr) => {
        Lowering::Binary($ty, |$b: &mut FunctionBuilder<'_>, $x: Value, $y: Value| {
            $body
        })
    };
}

/// The lowering of `op`, or `None` if it is not a numeric operator.
fn lowering(op: &Operator<'_>) -> Option<Lowering> {
    if let Some(l) = int_lowering(op) {
        return Some(l);
    }
    if let Some(l) = float_lowering(op) {
        return Some(l);
    }
    conversion_lowering(op)
}

/// Integer constants, tests, comparisons, arithmetic and bit operations.
fn int_lowering(op: &Operator<'_>) -> Option<Lowering> {
    use Operator as O;
    Some(match *op {
        O::I32Const { value } => Lowering::Const(Constant::I32(value)),
        O::I64Const { value } => Lowering::Const(Constant::I64(value)),

        O::I32Eqz => unary!(I32, |b, x| eqz(b, x)),
        O::I64Eqz => unary!(I64, |b, x| eqz(b, x)),

        O::I32Eq => binary!(I32, |b, x, y| icmp(b, IntCC::Equal, x, y)),
        O::I32Ne => binary!(I32, |b, x, y| icmp(b, IntCC::NotEqual, x, y)),
        O::I32LtS => binary!(I32, |b, x, y| icmp(b, IntCC::SignedLessThan, x, y)),
        O::I32LtU => binary!(I32, |b, x, y| icmp(b, IntCC::UnsignedLessThan, x, y)),
        O::I32GtS => binary!(I32, |b, x, y| icmp(b, IntCC::SignedGreaterThan, x, y)),
        O::I32GtU => binary!(I32, |b, x, y| icmp(b, IntCC::UnsignedGreaterThan, x, y)),
        O::I32LeS => binary!(I32, |b, x, y| icmp(b, IntCC::SignedLessThanOrEqual, x, y)),
        O::I32LeU => binary!(I32, |b, x, y| icmp(b, IntCC::UnsignedLessThanOrEqual, x, y)),
        O::I32GeS => binary!(I32, |b, x, y| icmp(
            b,
            IntCC::SignedGreaterThanOrEqual,
            x,
            y
        )),
        O::I32GeU => binary!(I32, |b, x, y| icmp(
            b,
            IntCC::UnsignedGreaterThanOrEqual,
            x,
            y
        )),
        O::I64Eq => binary!(I64, |b, x, y| icmp(b, IntCC::Equal, x, y)),
        O::I64Ne => binary!(I64, |b, x, y| icmp(b, IntCC::NotEqual, x, y)),
        O::I64LtS => binary!(I64, |b, x, y| icmp(b, IntCC::SignedLessThan, x, y)),
        O::I64LtU => binary!(I64, |b, x, y| icmp(b, IntCC::UnsignedLessThan, x, y)),
        O::I64GtS => binary!(I64, |b, x, y| icmp(b, IntCC::SignedGreaterThan, x, y)),
        O::I64GtU => binary!(I64, |b, x, y| icmp(b, IntCC::UnsignedGreaterThan, x, y)),
        O::I64LeS => binary!(I64, |b, x, y| icmp(b, IntCC::SignedLessThanOrEqual, x, y)),
        O::I64LeU => binary!(I64, |b, x, y| icmp(b, IntCC::UnsignedLessThanOrEqual, x, y)),
        O::I64GeS => binary!(I64, |b, x, y| icmp(
            b,
            IntCC::SignedGreaterThanOrEqual,
            x,
            y
        )),
        O::I64GeU => binary!(I64, |b, x, y| icmp(
            b,
            IntCC::UnsignedGreaterThanOrEqual,
            x,
            y
        )),

        O::I32Clz => unary!(I32, |b, x| b.ins().clz(x)),
        O::I32Ctz => unary!(I32, |b, x| b.ins().ctz(x)),
        O::I32Popcnt => unary!(I32, |b, x| b.ins().popcnt(x)),
        O::I64Clz => unary!(I64, |b, x| b.ins().clz(x)),
        O::I64Ctz => unary!(I64, |b, x| b.ins().ctz(x)),
        O::I64Popcnt => unary!(I64, |b, x| b.ins().popcnt(x)),

        O::I32Add => binary!(I32, |b, x, y| b.ins().iadd(x, y)),
        O::I32Sub => binary!(I32, |b, x, y| b.ins().isub(x, y)),
        O::I32Mul => binary!(I32, |b, x, y| b.ins().imul(x, y)),
        O::I32DivS => binary!(I32, |b, x, y| b.ins().sdiv(x, y)),
        O::I32DivU => binary!(I32, |b, x, y| b.ins().udiv(x, y)),
        O::I32RemS => binary!(I32, |b, x, y| b.ins().srem(x, y)),
        O::I32RemU => binary!(I32, |b, x, y| b.ins().urem(x, y)),
        O::I32And => binary!(I32, |b, x, y| b.ins().band(x, y)),
        O::I32Or => binary!(I32, |b, x, y| b.ins().bor(x, y)),
        O::I32Xor => binary!(I32, |b, x, y| b.ins().bxor(x, y)),
        O::I32Shl => binary!(I32, |b, x, y| b.ins().ishl(x, y)),
        O::I32ShrS => binary!(I32, |b, x, y| b.ins().sshr(x, y)),
        O::I32ShrU => binary!(I32, |b, x, y| b.ins().ushr(x, y)),
        O::I32Rotl => binary!(I32, |b, x, y| b.ins().rotl(x, y)),
        O::I32Rotr => binary!(I32, |b, x, y| b.ins().rotr(x, y)),
        O::I64Add => binary!(I64, |b, x, y| b.ins().iadd(x, y)),
        O::I64Sub => binary!(I64, |b, x, y| b.ins().isub(x, y)),
        O::I64Mul => binary!(I64, |b, x, y| b.ins().imul(x, y)),
        O::I64DivS => binary!(I64, |b, x, y| b.ins().sdiv(x, y)),
        O::I64DivU => binary!(I64, |b, x, y| b.ins().udiv(x, y)),
        O::I64RemS => binary!(I64, |b, x, y| b.ins().srem(x, y)),
        O::I64RemU => binary!(I64, |b, x, y| b.ins().urem(x, y)),
        O::I64And => binary!(I64, |b, x, y| b.ins().band(x, y)),
        O::I64Or => binary!(I64, |b, x, y| b.ins().bor(x, y)),
        O::I64Xor => binary!(I64, |b, x, y| b.ins().bxor(x, y)),
        O::I64Shl => binary!(I64, |b, x, y| b.ins().ishl(x, y)),
        O::I64ShrS => binary!(I64, |b, x, y| b.ins().sshr(x, y)),
        O::I64ShrU => binary!(I64, |b, x, y| b.ins().ushr(x, y)),
        O::I64Rotl => binary!(I64, |b, x, y| b.ins().rotl(x, y)),
        O::I64Rotr => binary!(I64, |b, x, y| b.ins().rotr(x, y)),

        _ => return None,
    })
}

/// Float constants, comparisons and arithmetic.
fn float_lowering(op: &Operator<'_>) -> Option<Lowering> {
    use Operator as O;
    Some(match *op {
        O::F32Const { value } => Lowering::Const(Constant::F32(value.bits())),
        O::F64Const { value } => Lowering::Const(Constant::F64(value.bits())),

        // `Equal`, `LessThan`... are ordered (false on NaN); `NotEqual` is
        // unordered-or-not-equal (true on NaN), as wasm's `ne`.
        O::F32Eq => binary!(F32, |b, x, y| fcmp(b, FloatCC::Equal, x, y)),
        O::F32Ne => binary!(F32, |b, x, y| fcmp(b, FloatCC::NotEqual, x, y)),
        O::F32Lt => binary!(F32, |b, x, y| fcmp(b, FloatCC::LessThan, x, y)),
        O::F32Gt => binary!(F32, |b, x, y| fcmp(b, FloatCC::GreaterThan, x, y)),
        O::F32Le => binary!(F32, |b, x, y| fcmp(b, FloatCC::LessThanOrEqual, x, y)),
        O::F32Ge => binary!(F32, |b, x, y| fcmp(b, FloatCC::GreaterThanOrEqual, x, y)),
        O::F64Eq => binary!(F64, |b, x, y| fcmp(b, FloatCC::Equal, x, y)),
        O::F64Ne => binary!(F64, |b, x, y| fcmp(b, FloatCC::NotEqual, x, y)),
        O::F64Lt => binary!(F64, |b, x, y| fcmp(b, FloatCC::LessThan, x, y)),
        O::F64Gt => binary!(F64, |b, x, y| fcmp(b, FloatCC::GreaterThan, x, y)),
        O::F64Le => binary!(F64, |b, x, y| fcmp(b, FloatCC::LessThanOrEqual, x, y)),
        O::F64Ge => binary!(F64, |b, x, y| fcmp(b, FloatCC::GreaterThanOrEqual, x, y)),

        // abs, neg and copysign are pure sign-bit operations (NaN payloads
        // kept), as the spec requires.
        O::F32Abs => unary!(F32, |b, x| b.ins().fabs(x)),
        O::F32Neg => unary!(F32, |b, x| b.ins().fneg(x)),
        O::F32Ceil => unary!(F32, |b, x| b.ins().ceil(x)),
        O::F32Floor => unary!(F32, |b, x| b.ins().floor(x)),
        O::F32Trunc => unary!(F32, |b, x| b.ins().trunc(x)),
        O::F32Nearest => unary!(F32, |b, x| b.ins().nearest(x)),
        O::F32Sqrt => unary!(F32, |b, x| b.ins().sqrt(x)),
        O::F64Abs => unary!(F64, |b, x| b.ins().fabs(x)),
        O::F64Neg => unary!(F64, |b, x| b.ins().fneg(x)),
        O::F64Ceil => unary!(F64, |b, x| b.ins().ceil(x)),
        O::F64Floor => unary!(F64, |b, x| b.ins().floor(x)),
        O::F64Trunc => unary!(F64, |b, x| b.ins().trunc(x)),
        O::F64Nearest => unary!(F64, |b, x| b.ins().nearest(x)),
        O::F64Sqrt => unary!(F64, |b, x| b.ins().sqrt(x)),

        O::F32Add => binary!(F32, |b, x, y| b.ins().fadd(x, y)),
        O::F32Sub => binary!(F32, |b, x, y| b.ins().fsub(x, y)),
        O::F32Mul => binary!(F32, |b, x, y| b.ins().fmul(x, y)),
        O::F32Div => binary!(F32, |b, x, y| b.ins().fdiv(x, y)),
        O::F32Min => binary!(F32, |b, x, y| b.ins().fmin(x, y)),
        O::F32Max => binary!(F32, |b, x, y| b.ins().fmax(x, y)),
        O::F32Copysign => binary!(F32, |b, x, y| b.ins().fcopysign(x, y)),
        O::F64Add => binary!(F64, |b, x, y| b.ins().fadd(x, y)),
        O::F64Sub => binary!(F64, |b, x, y| b.ins().fsub(x, y)),
        O::F64Mul => binary!(F64, |b, x, y| b.ins().fmul(x, y)),
        O::F64Div => binary!(F64, |b, x, y| b.ins().fdiv(x, y)),
        O::F64Min => binary!(F64, |b, x, y| b.ins().fmin(x, y)),
        O::F64Max => binary!(F64, |b, x, y| b.ins().fmax(x, y)),
        O::F64Copysign => binary!(F64, |b, x, y| b.ins().fcopysign(x, y)),

        _ => return None,
    })
}

/// Conversions between types, and the in-type sign extensions.
fn conversion_lowering(op: &Operator<'_>) -> Option<Lowering> {
    use Operator as O;
    Some(match *op {
        O::I32WrapI64 => unary!(I64, |b, x| b.ins().ireduce(I32, x)),
        O::I64ExtendI32S => unary!(I32, |b, x| b.ins().sextend(I64, x)),
        O::I64ExtendI32U => unary!(I32, |b, x| b.ins().uextend(I64, x)),

        // Trapping float to int: Cranelift traps with
        // BAD_CONVERSION_TO_INTEGER on NaN and INTEGER_OVERFLOW out of range.
        O::I32TruncF32S => unary!(F32, |b, x| b.ins().fcvt_to_sint(I32, x)),
        O::I32TruncF32U => unary!(F32, |b, x| b.ins().fcvt_to_uint(I32, x)),
        O::I32TruncF64S => unary!(F64, |b, x| b.ins().fcvt_to_sint(I32, x)),
        O::I32TruncF64U => unary!(F64, |b, x| b.ins().fcvt_to_uint(I32, x)),
        O::I64TruncF32S => unary!(F32, |b, x| b.ins().fcvt_to_sint(I64, x)),
        O::I64TruncF32U => unary!(F32, |b, x| b.ins().fcvt_to_uint(I64, x)),
        O::I64TruncF64S => unary!(F64, |b, x| b.ins().fcvt_to_sint(I64, x)),
        O::I64TruncF64U => unary!(F64, |b, x| b.ins().fcvt_to_uint(I64, x)),

        // Saturating float to int: NaN gives 0, out of range the nearest
        // bound.
        O::I32TruncSatF32S => unary!(F32, |b, x| b.ins().fcvt_to_sint_sat(I32, x)),
        O::I32TruncSatF32U => unary!(F32, |b, x| b.ins().fcvt_to_uint_sat(I32, x)),
        O::I32TruncSatF64S => unary!(F64, |b, x| b.ins().fcvt_to_sint_sat(I32, x)),
        O::I32TruncSatF64U => unary!(F64, |b, x| b.ins().fcvt_to_uint_sat(I32, x)),
        O::I64TruncSatF32S => unary!(F32, |b, x| b.ins().fcvt_to_sint_sat(I64, x)),
        O::I64TruncSatF32U => unary!(F32, |b, x| b.ins().fcvt_to_uint_sat(I64, x)),
        O::I64TruncSatF64S => unary!(F64, |b, x| b.ins().fcvt_to_sint_sat(I64, x)),
        O::I64TruncSatF64U => unary!(F64, |b, x| b.ins().fcvt_to_uint_sat(I64, x)),

        O::F32ConvertI32S => unary!(I32, |b, x| b.ins().fcvt_from_sint(F32, x)),
        O::F32ConvertI32U => unary!(I32, |b, x| b.ins().fcvt_from_uint(F32, x)),
        O::F32ConvertI64S => unary!(I64, |b, x| b.ins().fcvt_from_sint(F32, x)),
        O::F32ConvertI64U => unary!(I64, |b, x| b.ins().fcvt_from_uint(F32, x)),
        O::F64ConvertI32S => unary!(I32, |b, x| b.ins().fcvt_from_sint(F64, x)),
        O::F64ConvertI32U => unary!(I32, |b, x| b.ins().fcvt_from_uint(F64, x)),
        O::F64ConvertI64S => unary!(I64, |b, x| b.ins().fcvt_from_sint(F64, x)),
        O::F64ConvertI64U => unary!(I64, |b, x| b.ins().fcvt_from_uint(F64, x)),

        O::F32DemoteF64 => unary!(F64, |b, x| b.ins().fdemote(F32, x)),
        O::F64PromoteF32 => unary!(F32, |b, x| b.ins().fpromote(F64, x)),

        O::I32ReinterpretF32 => unary!(F32, |b, x| reinterpret(b, I32, x)),
        O::I64ReinterpretF64 => unary!(F64, |b, x| reinterpret(b, I64, x)),
        O::F32ReinterpretI32 => unary!(I32, |b, x| reinterpret(b, F32, x)),
        O::F64ReinterpretI64 => unary!(I64, |b, x| reinterpret(b, F64, x)),

        O::I32Extend8S => unary!(I32, |b, x| sign_extend_low(b, x, I8)),
        O::I32Extend16S => unary!(I32, |b, x| sign_extend_low(b, x, I16)),
        O::I64Extend8S => unary!(I64, |b, x| sign_extend_low(b, x, I8)),
        O::I64Extend16S => unary!(I64, |b, x| sign_extend_low(b, x, I16)),
        O::I64Extend32S => unary!(I64, |b, x| sign_extend_low(b, x, I32)),

        _ => return None,
    })
}
