//! Exception handling compiles for both ISAs, under every policy, at both
//! ends of the opt levels, in the `try_table` form and the legacy
//! `try`/`catch`/`delegate`/`rethrow` form, and the metadata records each
//! call site's handlers in the wasm match order. Running the code is the
//! runtime's tests' job (`crates/mvvm-rt/tests/exceptions.rs` and the spec
//! proposal `exceptions`).

mod meta_support;

use meta_support::read_meta;
use mvvm_abi::exception::Delivery;
use mvvm_aot::{CompileOptions, Policy, TargetArch, compile};

/// The new form: clauses of every kind, a payload with every value type,
/// `throw_ref` of a caught `exnref`, calls and a loop inside the body.
const TRY_TABLE: &str = r#"
(module
  (tag $e (param i32 i64 f32 f64 v128))
  (tag $f)
  (func $thrower (param i32)
    (if (local.get 0) (then
      (throw $e (local.get 0) (i64.const 2) (f32.const 3) (f64.const 4) (v128.const i32x4 1 2 3 4)))))
  (func (export "run") (param $n i32) (result i32)
    (local $x exnref)
    (local $acc i32)
    (block $all (result exnref)
      (block $one (result i32 i64 f32 f64 v128)
        (try_table (catch $e $one) (catch_all_ref $all)
          (loop $l
            (call $thrower (local.get $n))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
        (return (local.get $acc)))
      (drop) (drop) (drop) (drop)
      (return))
    (local.set $x)
    (throw_ref (local.get $x)))
)
"#;

/// The legacy form: `catch`, `catch_all`, `rethrow` from a nested catch,
/// `delegate` to an outer `try` and to the caller.
const LEGACY: &str = r#"
(module
  (tag $e (param i32))
  (func $thrower (param i32) (throw $e (local.get 0)))
  (func (export "run") (param $n i32) (result i32)
    (local $r i32)
    try (result i32)
      try (result i32)
        local.get $n
        call $thrower
        i32.const 0
      delegate 0
    catch $e
      local.set $r
      try (result i32)
        local.get $r
        call $thrower
        i32.const 1
      catch_all
        local.get $r
        i32.eqz
        if
          rethrow 1
        end
        local.get $r
      end
    end)
  (func (export "out") (param i32)
    try
      local.get 0
      call $thrower
    delegate 0)
)
"#;

fn all_options() -> Vec<CompileOptions> {
    let policies = [
        Policy::None,
        Policy::FunctionEntry,
        Policy::Loop,
        Policy::CounterLoop { threshold_bits: 4 },
        Policy::LoopDirty,
    ];
    let mut all = Vec::new();
    for target in [TargetArch::X86_64, TargetArch::Aarch64] {
        for policy in policies {
            for opt_level in [0, 3] {
                all.push(CompileOptions {
                    opt_level,
                    target,
                    policy,
                    portable: true,
                });
            }
        }
    }
    all
}

#[test]
fn both_forms_compile_for_both_isas_under_every_policy() {
    for (name, wat, tags) in [("try_table", TRY_TABLE, 2), ("legacy", LEGACY, 1)] {
        for opts in all_options() {
            let aot =
                compile(wat.as_bytes(), &opts).unwrap_or_else(|e| panic!("{name} {opts:?}: {e}"));
            let meta = read_meta(&aot);
            assert_eq!(meta.tags.len(), tags, "{name}");
            let sizes = meta_support::code_sizes(&aot, &meta);
            assert!(!meta.call_sites.is_empty(), "{name}");
            for c in &meta.call_sites {
                let (body, clone) = sizes[c.func as usize];
                for (sites, size) in [(&c.body, body), (&c.clone, clone.unwrap_or(0))] {
                    for site in sites {
                        assert!(site.handlers.iter().all(|h| h.code_offset < size));
                        assert!(site.return_offset <= size);
                    }
                }
            }
        }
    }
}

#[test]
fn try_table_call_sites_list_the_clauses_in_order() {
    let aot = compile(TRY_TABLE.as_bytes(), &CompileOptions::default()).expect("compiles");
    let meta = read_meta(&aot);
    // Function 1 ("run"): the call of $thrower in the body.
    let run = meta.func_call_sites(1).expect("run has call sites");
    assert_eq!(run.body.len(), 1, "{:?}", run.body);
    let handlers = &run.body[0].handlers;
    let kinds: Vec<(Option<u32>, Delivery)> =
        handlers.iter().map(|h| (h.tag, h.delivery)).collect();
    assert_eq!(
        kinds,
        vec![(Some(0), Delivery::Values), (None, Delivery::Ref)]
    );
    // The thrower's own throw has no handler around it.
    assert!(meta.func_call_sites(0).is_none());
}

#[test]
fn legacy_delegate_uses_the_outer_handlers() {
    let aot = compile(LEGACY.as_bytes(), &CompileOptions::default()).expect("compiles");
    let meta = read_meta(&aot);
    let run = meta.func_call_sites(1).expect("run has call sites");
    // The first call (inside `try ... delegate 0`) is handled by the outer
    // try's `catch $e`; the second (in the catch body's inner try) by the
    // inner `catch_all` only: the outer try's handlers do not cover its own
    // catch bodies. The `rethrow` in the catch_all body has no handler.
    let sites: Vec<Vec<(Option<u32>, Delivery)>> = run
        .body
        .iter()
        .map(|s| s.handlers.iter().map(|h| (h.tag, h.delivery)).collect())
        .collect();
    assert_eq!(
        sites,
        vec![
            vec![(Some(0), Delivery::Held)],
            vec![(None, Delivery::Held)],
        ]
    );
    // A hidden exnref local per nesting level of catch bodies: two.
    let hidden = meta
        .func_tables(meta.num_imported_funcs + 1)
        .expect("tables")
        .locals
        .iter()
        .filter(|t| **t == mvvm_abi::ValType::ExnRef)
        .count();
    assert_eq!(hidden, 2);
    // `delegate` to the caller: no handler at all.
    assert!(meta.func_call_sites(2).is_none());
}
