//! SIMD (`v128`) and relaxed SIMD through `mvvm_aot::compile`: every place
//! a `v128` can live (parameters and results of defined, imported and
//! exported functions, locals, globals, block parameters, `select`, the
//! operand stack across calls and loops with checkpoint instrumentation),
//! on both ISAs and at both ends of the optimisation scale, and the CPU
//! feature rules of `docs/simd.md`.
//!
//! The values these programs compute are checked by the runtime's spec
//! runner (`MVVM_SPEC_SUITE=proposals/simd`); this test guards the
//! compiler: no verifier failure, no unresolved libcall, typed errors.

mod meta_support;

use meta_support::read_meta;
use mvvm_aot::{CompileOptions, Policy, TargetArch, compile};

/// A module where `v128` values cross every boundary the translator,
/// the trampolines and the checkpoint instrumentation handle.
const PLUMBING: &str = r#"
(module
  (import "env" "host" (func $host (param i32 v128 f64 v128) (result v128 i64 v128)))
  (import "env" "g" (global $gi v128))
  (global $g (mut v128) (global.get $gi))
  (memory 1)
  (func $id (export "id") (param v128) (result v128) (local.get 0))
  (func (export "mixed") (param i32 v128 i64 v128) (result v128 i32 v128)
    (local v128 f32)
    (local.set 4 (i32x4.add (local.get 1) (local.get 3)))
    (call $host (local.get 0) (local.get 4) (f64.const 1) (global.get $gi))
    (global.set $g)
    (drop)
    (local.get 0)
    (select (result v128) (local.get 1) (local.get 3) (local.get 0)))
  (func (export "loop") (param i32 v128) (result v128)
    (local v128)
    (local.get 1)
    (loop $l (param v128) (result v128)
      (local.set 2 (call $id))
      (v128.store (local.get 0) (local.get 2))
      (local.get 2)
      (f32x4.mul (v128.load (local.get 0)) (local.get 2))
      (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31)
      (local.tee 0 (i32.sub (local.get 0) (i32.const 16)))
      (br_if $l)))
  (func (export "lanes") (param v128 i32) (result i32 i64 f64 v128)
    (i8x16.extract_lane_s 3 (local.get 0))
    (i64x2.extract_lane 1 (local.get 0))
    (f64x2.extract_lane 0 (local.get 0))
    (v128.load16_lane 5 (local.get 1)
      (i16x8.replace_lane 2 (local.get 0) (local.get 1)))
    (v128.store32_lane 3 (local.get 1) (local.get 0)))
)
"#;

/// One function per relaxed-SIMD operator.
const RELAXED: &str = r#"
(module
  (func (export "swizzle") (param v128 v128) (result v128)
    (i8x16.relaxed_swizzle (local.get 0) (local.get 1)))
  (func (export "trunc") (param v128) (result v128 v128 v128 v128)
    (i32x4.relaxed_trunc_f32x4_s (local.get 0))
    (i32x4.relaxed_trunc_f32x4_u (local.get 0))
    (i32x4.relaxed_trunc_f64x2_s_zero (local.get 0))
    (i32x4.relaxed_trunc_f64x2_u_zero (local.get 0)))
  (func (export "laneselect") (param v128 v128 v128) (result v128 v128 v128 v128)
    (i8x16.relaxed_laneselect (local.get 0) (local.get 1) (local.get 2))
    (i16x8.relaxed_laneselect (local.get 0) (local.get 1) (local.get 2))
    (i32x4.relaxed_laneselect (local.get 0) (local.get 1) (local.get 2))
    (i64x2.relaxed_laneselect (local.get 0) (local.get 1) (local.get 2)))
  (func (export "minmax") (param v128 v128) (result v128 v128 v128 v128)
    (f32x4.relaxed_min (local.get 0) (local.get 1))
    (f32x4.relaxed_max (local.get 0) (local.get 1))
    (f64x2.relaxed_min (local.get 0) (local.get 1))
    (f64x2.relaxed_max (local.get 0) (local.get 1)))
  (func (export "q15_dot") (param v128 v128 v128) (result v128 v128 v128)
    (i16x8.relaxed_q15mulr_s (local.get 0) (local.get 1))
    (i16x8.relaxed_dot_i8x16_i7x16_s (local.get 0) (local.get 1))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get 0) (local.get 1) (local.get 2)))
)
"#;

/// The fused multiply-adds, which need FMA on x86-64.
const MADD: &str = r#"
(module
  (func (export "madd") (param v128 v128 v128) (result v128 v128 v128 v128)
    (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))
    (f32x4.relaxed_nmadd (local.get 0) (local.get 1) (local.get 2))
    (f64x2.relaxed_madd (local.get 0) (local.get 1) (local.get 2))
    (f64x2.relaxed_nmadd (local.get 0) (local.get 1) (local.get 2)))
)
"#;

/// Every combination the other tests use: both ISAs, levels 0 and 3, and
/// instrumented code (resume points keep `v128` values in frames).
fn all_options() -> Vec<CompileOptions> {
    let mut v = Vec::new();
    for target in [TargetArch::X86_64, TargetArch::Aarch64] {
        for opt_level in [0, 3] {
            for policy in [Policy::None, Policy::Loop, Policy::FunctionEntry] {
                v.push(CompileOptions {
                    opt_level,
                    target,
                    policy,
                    portable: false,
                });
            }
        }
    }
    v
}

#[test]
fn v128_plumbing_compiles_everywhere() {
    for opts in all_options() {
        compile(PLUMBING.as_bytes(), &opts).unwrap_or_else(|e| panic!("{opts:?}: {e}"));
    }
}

#[test]
fn relaxed_simd_compiles_everywhere() {
    for opts in all_options() {
        compile(RELAXED.as_bytes(), &opts).unwrap_or_else(|e| panic!("{opts:?}: {e}"));
    }
}

/// The fused multiply-add is native on aarch64, and on x86-64 with FMA
/// (and AVX): Cranelift uses `vfmadd` only when both are enabled.
#[test]
fn relaxed_madd_compiles_where_fma_is_native() {
    let aarch64 = CompileOptions {
        target: TargetArch::Aarch64,
        ..CompileOptions::default()
    };
    compile(MADD.as_bytes(), &aarch64).unwrap_or_else(|e| panic!("aarch64: {e}"));
    let host_has_fma = cfg!(target_arch = "x86_64")
        && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
            c.split_whitespace().any(|f| f == "fma") && c.split_whitespace().any(|f| f == "avx")
        });
    if host_has_fma {
        let native = CompileOptions {
            target: TargetArch::X86_64,
            ..CompileOptions::default()
        };
        compile(MADD.as_bytes(), &native).unwrap_or_else(|e| panic!("x86-64 native: {e}"));
    }
}

/// The portable x86-64 baseline (x86-64-v2) has no FMA: a fused
/// multiply-add there would be a libcall, which the object may not hold,
/// and an unfused one would differ from aarch64. So a module that uses
/// relaxed madd gets AVX and FMA added to its portable build, and records
/// them (a CPU without them refuses the object); a module that does not
/// keeps the baseline.
#[test]
fn relaxed_madd_adds_fma_to_the_portable_baseline() {
    let portable = CompileOptions {
        target: TargetArch::X86_64,
        portable: true,
        ..CompileOptions::default()
    };
    let features = |wat: &str| {
        let obj = compile(wat.as_bytes(), &portable).unwrap_or_else(|e| panic!("portable: {e}"));
        read_meta(&obj).cpu_features
    };
    let fused = features(MADD);
    for f in ["has_avx", "has_fma"] {
        assert!(fused.iter().any(|x| x == f), "{f} missing: {fused:?}");
    }
    for wat in [RELAXED, PLUMBING] {
        let plain = features(wat);
        assert!(
            !plain.iter().any(|x| x == "has_fma" || x == "has_avx"),
            "{plain:?}"
        );
    }
}

/// Lane immediates out of range are invalid wasm: refused by validation,
/// never a panic in Cranelift.
#[test]
fn bad_lane_is_invalid() {
    let wat = r#"(module (func (param v128) (result i32) (i32x4.extract_lane 4 (local.get 0))))"#;
    assert!(compile(wat.as_bytes(), &CompileOptions::default()).is_err());
}
