//! Stable-point tables: the same for every policy, opt level and target
//! (a snapshot taken with one compilation restores into any other), and
//! exactly where the contract puts them.

mod meta_support;

use meta_support::read_meta;
use mvvm_abi::{FuncTables, ModuleMeta, Policy, StablePoint, StablePointKind, TargetArch, ValType};
use mvvm_aot::{CompileOptions, compile};

/// Every policy with checkpoint code.
const POLICIES: [Policy; 5] = [
    Policy::FunctionEntry,
    Policy::Loop,
    Policy::CounterLoop { threshold_bits: 16 },
    Policy::CounterLoop { threshold_bits: 0 },
    Policy::LoopDirty,
];

fn compile_meta(wasm: &[u8], policy: Policy, opt_level: u8, target: TargetArch) -> ModuleMeta {
    let opts = CompileOptions {
        opt_level,
        target,
        policy,
        portable: false,
    };
    let obj = compile(wasm, &opts)
        .unwrap_or_else(|e| panic!("{} -O{opt_level} {target:?}: {e}", policy.name()));
    let meta = read_meta(&obj);
    assert_eq!(meta.policy, policy);
    meta
}

fn workspace_file(rel: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn tables(meta: &ModuleMeta) -> Vec<(Vec<ValType>, Vec<StablePoint>)> {
    meta.all_func_tables()
        .expect("tables decode")
        .into_iter()
        .map(|f: &FuncTables| (f.locals.clone(), f.stable_points.clone()))
        .collect()
}

/// Checks what holds for every table: an Entry point first, offsets
/// strictly increasing, Entry stacks empty.
fn check_shape(meta: &ModuleMeta) {
    for (k, f) in meta
        .all_func_tables()
        .expect("tables decode")
        .iter()
        .enumerate()
    {
        let pts = &f.stable_points;
        assert!(!pts.is_empty(), "function {k} has no stable point");
        assert_eq!(pts[0].kind, StablePointKind::Entry, "function {k}");
        assert!(pts[0].stack.is_empty());
        assert!(pts[1..].iter().all(|p| p.kind != StablePointKind::Entry));
        assert!(
            pts.windows(2).all(|w| w[0].offset < w[1].offset),
            "function {k}: offsets not increasing"
        );
    }
}

/// The full matrix on one clang-built program (bc), a few combinations on
/// one with many imports (files): kept short, instrumented compiles are
/// several times slower than plain ones.
#[test]
fn tables_identical_across_policies_opt_levels_and_targets() {
    for (rel, full) in [("bench/wasm/bc.wasm", true), ("test/c/files.wasm", false)] {
        let wasm = workspace_file(rel);
        let reference = compile_meta(&wasm, Policy::Loop, 0, TargetArch::X86_64);
        check_shape(&reference);
        let expected = tables(&reference);
        let calls: usize = expected
            .iter()
            .map(|(_, p)| p.iter().filter(|p| p.kind == StablePointKind::Call).count())
            .sum();
        let loops: usize = expected
            .iter()
            .map(|(_, p)| p.iter().filter(|p| p.kind == StablePointKind::Loop).count())
            .sum();
        println!(
            "{rel}: {} functions, {calls} calls, {loops} loops",
            expected.len()
        );
        assert!(
            calls > 10 && loops > 5,
            "{rel}: too few points to mean anything"
        );
        for policy in POLICIES {
            for opt_level in [0, 3] {
                for target in [TargetArch::X86_64, TargetArch::Aarch64] {
                    if !full && (opt_level, target) != (3, TargetArch::Aarch64) {
                        continue;
                    }
                    let meta = compile_meta(&wasm, policy, opt_level, target);
                    assert!(
                        tables(&meta) == expected,
                        "{rel}: {} -O{opt_level} {target:?} differs",
                        policy.name()
                    );
                }
            }
        }
        let none = compile_meta(&wasm, Policy::None, 3, TargetArch::X86_64);
        let none_tables = none.all_func_tables().expect("tables decode");
        assert!(none_tables.iter().all(|f| f.stable_points.is_empty()));
        let locals: Vec<_> = none_tables.iter().map(|f| f.locals.clone()).collect();
        let expected_locals: Vec<_> = expected.iter().map(|(l, _)| l.clone()).collect();
        assert_eq!(
            locals, expected_locals,
            "locals are filled without a policy too"
        );
    }
}

/// Every kind of stable point with the exact operand stack the contract
/// asks for: a loop with a parameter, a call of an import inside it (the
/// stack holds the loop's value and the argument), a `call_indirect` (the
/// arguments then the table index), reference-typed locals.
#[test]
fn stable_points_name_kinds_and_stacks() {
    let wat = r#"
(module
  (import "env" "h" (func $h (param i64) (result i64)))
  (type $t (func (param f32) (result f32)))
  (table 1 funcref)
  (func $f (param $r funcref) (param $x f32) (result f32) (local $e externref) (local $i i32)
    (f64.const 1)
    (loop $l (param f64) (result f64)
      (drop (call $h (i64.const 5)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (drop)
    (call_indirect (type $t) (local.get $x) (i32.const 0)))
  (func $g (result i32) (i32.const 1))
)
"#;
    for policy in POLICIES {
        let meta = compile_meta(wat.as_bytes(), policy, 3, TargetArch::X86_64);
        check_shape(&meta);
        let all = meta.all_func_tables().expect("tables decode");
        let f = all[0];
        assert_eq!(
            f.locals,
            [
                ValType::FuncRef,
                ValType::F32,
                ValType::ExternRef,
                ValType::I32
            ]
        );
        let got: Vec<(StablePointKind, Vec<ValType>)> = f
            .stable_points
            .iter()
            .map(|p| (p.kind, p.stack.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (StablePointKind::Entry, vec![]),
                (StablePointKind::Loop, vec![ValType::F64]),
                (StablePointKind::Call, vec![ValType::F64, ValType::I64]),
                (StablePointKind::Call, vec![ValType::F32, ValType::I32]),
            ],
            "{}",
            policy.name()
        );
        // A function without loops or calls still has its entry.
        let g = all[1];
        assert_eq!(g.stable_points.len(), 1);
        assert!(g.stable_points[0].offset < f.stable_points[0].offset + 1000);
    }
}

/// Code after `unreachable`/`br` is not translated and has no stable
/// point; the tables still agree between policies.
#[test]
fn unreachable_code_has_no_stable_points() {
    let wat = r#"
(module
  (func $a)
  (func (result i32)
    (block (br 0) (call $a) (loop (br 0)))
    (unreachable)
    (call $a)
    (i32.const 0)))
"#;
    let a = compile_meta(wat.as_bytes(), Policy::Loop, 0, TargetArch::X86_64);
    let b = compile_meta(
        wat.as_bytes(),
        Policy::FunctionEntry,
        3,
        TargetArch::Aarch64,
    );
    assert_eq!(tables(&a), tables(&b));
    assert_eq!(
        a.all_func_tables().unwrap()[1].stable_points.len(),
        1,
        "only the entry"
    );
}
