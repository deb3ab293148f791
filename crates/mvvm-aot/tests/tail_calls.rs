//! Tail calls and extended constant expressions compile for both ISAs,
//! under every policy and at both ends of the opt levels (Cranelift's
//! verifier runs on every function: tail calls must be between functions
//! of the `tail` convention with the caller's results). Running them is
//! the runtime's tests' job (`crates/mvvm-rt/tests/tail_calls.rs`, the
//! spec proposals `tail-call` and `extended-const`).

use mvvm_aot::{CompileError, CompileOptions, Policy, TargetArch, compile};

const MODULE: &str = r#"
(module
  (import "env" "host" (func $host (param i32 i64) (result i64)))
  (import "env" "g" (global $g i32))
  (type $t (func (param i32 i64) (result i64)))
  (type $u (func (param f64 i32 f32 i64 i64 i64 i64 i64 i64 i64 i64) (result i64)))
  (memory 1)
  (table 8 funcref)
  (global $base i32 (i32.add (global.get $g) (i32.mul (i32.const 2) (i32.const 3))))
  (global $wide i64 (i64.sub (i64.const 10) (i64.mul (i64.const 3) (i64.const 4))))
  (elem (table 0) (offset (i32.sub (global.get $g) (global.get $g))) func $a $b $host)
  (data (offset (i32.add (global.get $g) (i32.const 16))) "x")
  (func $a (type $t) (param $n i32) (param $x i64) (result i64)
    (if (i32.eqz (local.get $n)) (then (return_call $host (local.get $n) (local.get $x))))
    (return_call $b (f64.const 1) (local.get $n) (f32.const 2)
      (local.get $x) (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)
      (i64.const 5) (i64.const 6) (i64.const 7)))
  (func $b (type $u) (param f64 i32 f32 i64 i64 i64 i64 i64 i64 i64 i64) (result i64)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (return_call_indirect (type $t)
      (i32.sub (local.get 1) (i32.const 1)) (local.get 3) (i32.and (local.get 1) (i32.const 1))))
  (func (export "_start") (result i64)
    (call $a (i32.const 10) (i64.const 0)))
)
"#;

#[test]
fn tail_calls_compile_for_both_isas_under_every_policy() {
    let policies = [
        Policy::None,
        Policy::FunctionEntry,
        Policy::Loop,
        Policy::CounterLoop { threshold_bits: 4 },
        Policy::LoopDirty,
    ];
    for target in [TargetArch::X86_64, TargetArch::Aarch64] {
        for policy in policies {
            for opt_level in [0, 3] {
                let opts = CompileOptions {
                    opt_level,
                    target,
                    policy,
                    portable: true,
                };
                let aot = compile(MODULE.as_bytes(), &opts).unwrap_or_else(|e| {
                    panic!("{target:?} {policy:?} -O{opt_level}: {e}");
                });
                assert!(!aot.is_empty());
            }
        }
    }
}

#[test]
fn return_call_ref_is_refused_as_unsupported() {
    let wat = r#"
    (module
      (type $t (func (result i32)))
      (func $f (type $t) (i32.const 1))
      (elem declare func $f)
      (func (result i32) (return_call_ref $t (ref.func $f))))
    "#;
    match compile(wat.as_bytes(), &CompileOptions::default()) {
        Err(CompileError::Unsupported { .. }) => {}
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
