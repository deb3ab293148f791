//! Coverage test of the numeric operator translator
//! (`src/translate/numeric.rs`), compiled here on its own so it can be
//! checked independently of the function translator.
//!
//! The list of operators comes from wasmparser's own table
//! (`for_each_operator!`), so the test cannot miss one: every operator
//! without immediates of the WebAssembly 2.0 numeric proposals (`@mvp`,
//! `@sign_extension`, `@saturating_float_to_int`) whose arity is `1 -> 1` or
//! `2 -> 1` is numeric, and every other operator without immediates (control,
//! parametric, SIMD, GC, ...) must be refused with `Ok(false)`. Each numeric
//! operator is wrapped in a one-operator function that must pass the
//! Cranelift verifier and compile for x86-64 (baseline and SSE4.1) and
//! aarch64. Behaviour is checked by the spec testsuite run through the whole
//! pipeline.

#[path = "../src/translate/numeric.rs"]
#[allow(dead_code)]
mod numeric;

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::types::{F32, F64, I32, I64};
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, Signature, Type, UserFuncName, Value,
};
use cranelift_codegen::isa::{self, CallConv, OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use numeric::translate_numeric;
use wasmparser::{Ieee32, Ieee64, MemArg, MemArgTarget, Operator};

/// One entry of wasmparser's operator table.
struct OpInfo {
    proposal: &'static str,
    name: &'static str,
    arity: &'static str,
    /// The operator itself, for operators without immediates.
    op: Option<Operator<'static>>,
}

macro_rules! make_op {
    ($op:ident) => {
        Some(Operator::$op)
    };
    ($op:ident { $($arg:ident),* }) => {
        None
    };
}

macro_rules! collect_ops {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
        vec![$(
            OpInfo {
                proposal: stringify!($proposal),
                name: stringify!($op),
                arity: stringify!($($ann)*),
                op: make_op!($op $({ $($arg),* })?),
            },
        )*]
    };
}

fn all_ops() -> Vec<OpInfo> {
    wasmparser::for_each_operator!(collect_ops)
}

/// Whether the table entry is a numeric operator without immediates.
fn is_numeric(info: &OpInfo) -> bool {
    matches!(
        info.proposal,
        "mvp" | "sign_extension" | "saturating_float_to_int"
    ) && info.op.is_some()
        && (info.arity == "arity 1 -> 1" || info.arity == "arity 2 -> 1")
}

fn type_named(s: &str) -> Option<Type> {
    match s {
        "I32" => Some(I32),
        "I64" => Some(I64),
        "F32" => Some(F32),
        "F64" => Some(F64),
        _ => None,
    }
}

/// Operand and result types of a numeric operator, from its name:
/// `<T><op>` operates on `T` unless the rest names a source type
/// (`I32TruncF64S`, `F64PromoteF32`); comparisons and `eqz` give `i32`.
fn signature_of(name: &str) -> (Type, Type) {
    let own = type_named(&name[..3]).unwrap_or_else(|| panic!("type prefix of {name}"));
    let rest = &name[3..];
    let source = ["I32", "I64", "F32", "F64"]
        .iter()
        .find(|t| rest.contains(*t))
        .and_then(|t| type_named(t))
        .unwrap_or(own);
    let comparison = [
        "Eqz", "Eq", "Ne", "LtS", "LtU", "GtS", "GtU", "LeS", "LeU", "GeS", "GeU", "Lt", "Gt",
        "Le", "Ge",
    ]
    .contains(&rest);
    (source, if comparison { I32 } else { own })
}

fn isas() -> Vec<(&'static str, OwnedTargetIsa)> {
    let mut shared = settings::builder();
    shared.set("opt_level", "speed").unwrap();
    let flags = settings::Flags::new(shared);
    let x64 = isa::lookup_by_name("x86_64-unknown-linux-gnu").unwrap();
    let mut x64_sse41 = isa::lookup_by_name("x86_64-unknown-linux-gnu").unwrap();
    x64_sse41.enable("has_sse41").unwrap();
    let arm = isa::lookup_by_name("aarch64-unknown-linux-gnu").unwrap();
    vec![
        ("x86_64", x64.finish(flags.clone()).unwrap()),
        ("x86_64+sse41", x64_sse41.finish(flags.clone()).unwrap()),
        ("aarch64", arm.finish(flags).unwrap()),
    ]
}

/// Builds `fn(params...) -> result` whose body is `op` applied to the
/// parameters; checks what `translate_numeric` did to the stack.
fn one_op_function(
    op: &Operator<'_>,
    params: &[Type],
    result: Type,
    config: TargetFrontendConfig,
) -> Function {
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    sig.returns.push(AbiParam::new(result));
    let mut func = Function::with_name_signature(UserFuncName::default(), sig);
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    let mut stack: Vec<Value> = b.block_params(block).to_vec();
    let handled =
        translate_numeric(op, &mut b, &mut stack).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert!(handled, "{op:?} was not recognised as numeric");
    assert_eq!(stack.len(), 1, "{op:?} left {} values", stack.len());
    assert_eq!(
        b.func.dfg.value_type(stack[0]),
        result,
        "{op:?} result type"
    );
    b.ins().return_(&stack);
    b.finalize(config);
    func
}

fn compile_everywhere(what: &str, func: &Function, isas: &[(&str, OwnedTargetIsa)]) {
    for (name, isa) in isas {
        cranelift_codegen::verify_function(func, isa.as_ref())
            .unwrap_or_else(|e| panic!("{what} fails verification for {name}: {e}\n{func}"));
        let mut ctx = Context::for_function(func.clone());
        if let Err(e) = ctx.compile(isa.as_ref(), &mut ControlPlane::default()) {
            panic!("{what} does not compile for {name}: {:?}\n{func}", e.inner);
        }
    }
}

#[test]
fn every_numeric_operator_translates_and_compiles() {
    let isas = isas();
    let mut count = 0;
    for info in all_ops().iter().filter(|i| is_numeric(i)) {
        let op = info.op.as_ref().unwrap();
        let (operand, result) = signature_of(info.name);
        let arity = if info.arity == "arity 2 -> 1" { 2 } else { 1 };
        let func = one_op_function(
            op,
            &vec![operand; arity],
            result,
            isas[0].1.frontend_config(),
        );
        compile_everywhere(info.name, &func, &isas);
        count += 1;
    }
    // 2.0 has 123 such operators in the MVP, 5 sign extensions and 8
    // saturating truncations: a shrinking count means the filter broke.
    assert_eq!(count, 136);
}

#[test]
fn constants_translate_and_compile() {
    let isas = isas();
    let cases: Vec<(Operator<'static>, Type)> = vec![
        (Operator::I32Const { value: -1 }, I32),
        (Operator::I32Const { value: i32::MIN }, I32),
        (Operator::I32Const { value: 7 }, I32),
        (Operator::I64Const { value: i64::MIN }, I64),
        (Operator::I64Const { value: -1 }, I64),
        (
            Operator::F32Const {
                value: Ieee32::from(f32::NAN),
            },
            F32,
        ),
        (
            Operator::F32Const {
                value: Ieee32::from(-0.0f32),
            },
            F32,
        ),
        (
            Operator::F64Const {
                value: Ieee64::from(f64::NEG_INFINITY),
            },
            F64,
        ),
        (
            Operator::F64Const {
                value: Ieee64::from(1.5f64),
            },
            F64,
        ),
    ];
    for (op, ty) in cases {
        let func = one_op_function(&op, &[], ty, isas[0].1.frontend_config());
        compile_everywhere(&format!("{op:?}"), &func, &isas);
    }
}

#[test]
fn every_other_operator_is_refused_untouched() {
    let mut fctx = FunctionBuilderContext::new();
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.extend([I32, I32, I32].map(AbiParam::new));
    let mut func = Function::with_name_signature(UserFuncName::default(), sig);
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    let params = b.block_params(block).to_vec();

    let memarg = MemArg {
        align: 2,
        max_align: 2,
        offset: 0,
        target: MemArgTarget::Memory(0),
        ordering: None,
    };
    let mut others: Vec<Operator<'static>> = all_ops()
        .into_iter()
        .filter(|i| !is_numeric(i))
        .filter_map(|i| i.op)
        .collect();
    let fieldless = others.len();
    others.extend([
        Operator::LocalGet { local_index: 0 },
        Operator::LocalTee { local_index: 0 },
        Operator::GlobalGet { global_index: 0 },
        Operator::Call { function_index: 0 },
        Operator::MemoryGrow { mem: 0 },
        Operator::MemorySize { mem: 0 },
        Operator::I32Load { memarg },
        Operator::I64Store32 { memarg },
        Operator::BrIf { relative_depth: 0 },
    ]);
    assert!(fieldless > 200, "only {fieldless} other operators listed");
    for op in &others {
        let mut stack = params.clone();
        assert_eq!(
            translate_numeric(op, &mut b, &mut stack),
            Ok(false),
            "{op:?}"
        );
        assert_eq!(stack, params, "{op:?} touched the stack");
    }
}

#[test]
fn bad_operands_are_errors_and_leave_the_stack_untouched() {
    let mut fctx = FunctionBuilderContext::new();
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.extend([I64, I32].map(AbiParam::new));
    let mut func = Function::with_name_signature(UserFuncName::default(), sig);
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    let params = b.block_params(block).to_vec();

    // i32.add over (i64, i32): wrong type below the top.
    let mut stack = params.clone();
    let err = translate_numeric(&Operator::I32Add, &mut b, &mut stack).unwrap_err();
    assert!(err.to_string().contains("i64"), "{err}");
    assert_eq!(stack, params);

    // f32.neg of an i32.
    let err = translate_numeric(&Operator::F32Neg, &mut b, &mut stack).unwrap_err();
    assert!(err.to_string().contains("f32"), "{err}");
    assert_eq!(stack, params);

    // Underflow.
    let mut short = vec![params[1]];
    let err = translate_numeric(&Operator::I32Sub, &mut b, &mut short).unwrap_err();
    assert!(err.to_string().contains("2 operand"), "{err}");
    assert_eq!(short, vec![params[1]]);

    // Operand order: x is deeper, y on top (i64.shl over (i64, i64)).
    let ext = b.ins().uextend(I64, params[1]);
    let mut stack = vec![params[0], ext];
    assert_eq!(
        translate_numeric(&Operator::I64Shl, &mut b, &mut stack),
        Ok(true)
    );
    let inst = b.func.dfg.value_def(stack[0]).unwrap_inst();
    assert_eq!(b.func.dfg.inst_args(inst), &[params[0], ext]);
}
