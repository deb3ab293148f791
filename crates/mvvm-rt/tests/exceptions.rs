//! Exception handling end to end: WAT compiled by `mvvm-aot` (at -O0 and
//! -O3), loaded and run by the runtime. Covers `throw` caught in the same
//! function, one frame up and many frames up through frames without
//! handlers; `catch`, `catch_ref`, `catch_all`, `catch_all_ref`,
//! `throw_ref`; payloads of every value type (NaN bits kept); tags across
//! instances (identity, not structure); `exnref` through the host API,
//! globals and tables; uncaught exceptions and `throw_ref` of null; that
//! exceptions are freed (the store's live count) over 100 000 throws; and
//! the legacy `try`/`catch`/`catch_all`/`rethrow`/`delegate`.

use mvvm_rt::{
    Extern, Func, FuncType, Instance, InstantiationError, Linker, Module, RunError, Store,
    TrapCode, Val, ValType,
};

/// The optimisation levels every test runs at.
const OPT_LEVELS: [u8; 2] = [0, 3];

fn compile(wat: &str, opt_level: u8) -> Module {
    let opts = mvvm_aot::CompileOptions {
        opt_level,
        ..Default::default()
    };
    let aot = mvvm_aot::compile(wat.as_bytes(), &opts).unwrap_or_else(|e| {
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        panic!("compile at -O{opt_level}: {e}: {source:?}")
    });
    Module::from_aot(&aot).unwrap_or_else(|e| panic!("load at -O{opt_level}: {e}"))
}

/// A store with `host.live` (the store's live exception count, as seen
/// from inside wasm) in `linker`.
fn store_and_linker() -> (Store, Linker) {
    let mut store = Store::new();
    let mut linker = Linker::new();
    let live = Func::host(
        &mut store,
        FuncType {
            params: vec![],
            results: vec![ValType::I32],
        },
        |caller, _, out| {
            out[0] = Val::I32(caller.live_exceptions() as i32);
            Ok(())
        },
    );
    linker.define("host", "live", Extern::Func(live));
    (store, linker)
}

/// Instantiates `wat` at `opt_level` in a fresh store.
fn instance(wat: &str, opt_level: u8) -> (Store, Instance) {
    let (mut store, linker) = store_and_linker();
    let module = compile(wat, opt_level);
    let inst = linker
        .instantiate(&mut store, &module)
        .unwrap_or_else(|e| panic!("instantiate at -O{opt_level}: {e}"));
    (store, inst)
}

fn call(store: &mut Store, inst: Instance, name: &str, args: &[Val]) -> Vec<Val> {
    inst.invoke(store, name, args)
        .unwrap_or_else(|e| panic!("{name}({args:?}): {e}"))
}

fn call_i32(store: &mut Store, inst: Instance, name: &str, args: &[Val]) -> i32 {
    match call(store, inst, name, args)[..] {
        [Val::I32(v)] => v,
        ref other => panic!("{name}: expected one i32, got {other:?}"),
    }
}

fn trap_code(r: Result<Vec<Val>, RunError>) -> TrapCode {
    match r {
        Err(RunError::Trap(t)) => t.code,
        other => panic!("expected a trap, got {other:?}"),
    }
}

const BASIC: &str = r#"
(module
  (tag $e (param i32))
  (tag $f (param i32))
  (tag $empty)
  (table $ft 1 funcref)
  (elem (table $ft) (i32.const 0) func $thrower)

  (func $thrower (param i32) (throw $e (local.get 0)))
  (func $f3 (param i32) (call $thrower (i32.add (local.get 0) (i32.const 1))))
  (func $f2 (param i32) (result i32)
    (call $f3 (local.get 0)) (i32.const 99))
  (func $f1 (param i32) (result i32)
    (i32.add (call $f2 (local.get 0)) (i32.const 1000)))
  (func $rec (param i32) (result i32)
    (if (i32.eqz (local.get 0)) (then (throw $e (i32.const 42))))
    (i32.add (call $rec (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))

  (func (export "same") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw $e (local.get 0)))
      (i32.const -1)))

  (func (export "across") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h)
        (call $thrower (local.get 0)) (i32.const -1))))

  (func (export "indirect") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h)
        (call_indirect $ft (param i32) (local.get 0) (i32.const 0)) (i32.const -1))))

  ;; Four frames up: $f1 and $f2 have no handler, $f3 calls the thrower.
  (func (export "deep3") (param i32) (result i32) (local $keep i64)
    (local.set $keep (i64.const 0x123456789abc))
    (block $h (result i32)
      (try_table (result i32) (catch $e $h)
        (call $f1 (local.get 0))))
    (i32.wrap_i64 (i64.sub (local.get $keep) (i64.const 0x123456789abc)))
    (i32.add))

  (func (export "recursive") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (call $rec (local.get 0)))))

  ;; The first matching clause wins; a clause of another tag is skipped.
  (func (export "clauses") (param i32) (result i32)
    (block $hf (result i32)
      (block $he (result i32)
        (try_table (result i32) (catch $f $hf) (catch $e $he)
          (call $thrower (local.get 0)) (i32.const -1)))
      (i32.const 100) (i32.add)))

  ;; Inner try_table without a matching clause: the outer one catches.
  (func (export "nested") (param i32) (result i32)
    (block $outer (result i32)
      (try_table (result i32) (catch $e $outer)
        (block $inner (result i32)
          (try_table (result i32) (catch $f $inner)
            (call $thrower (local.get 0)) (i32.const -1)))
        (i32.const 1000) (i32.add))))

  ;; A throw from inside a handler's code goes to the enclosing handler.
  (func (export "throw_in_handler") (param i32) (result i32)
    (block $outer (result i32)
      (try_table (result i32) (catch $f $outer)
        (block $inner (result i32)
          (try_table (result i32) (catch $e $inner)
            (call $thrower (local.get 0)) (i32.const -1)))
        (throw $f (i32.mul (i32.const 2)))
        )))

  ;; Locals written in the try body before the throw keep their values.
  (func (export "locals") (param i32) (result i32)
    (local $a i32) (local $b i64) (local $c f64)
    (local.set $a (i32.const 1))
    (local.set $b (i64.const 2))
    (local.set $c (f64.const 3))
    (block $h
      (try_table (catch_all $h)
        (local.set $a (i32.const 10))
        (local.set $b (i64.const 20))
        (call $thrower (local.get 0))
        (local.set $a (i32.const 99))))
    (i32.add (local.get $a)
      (i32.add (i32.wrap_i64 (local.get $b)) (i32.trunc_f64_s (local.get $c)))))

  (func (export "catch_all") (param i32) (result i32)
    (block $h
      (try_table (catch_all $h) (call $thrower (local.get 0)))
      (return (i32.const -1)))
    (i32.const 7))

  (func (export "empty_payload") (result i32)
    (block $h
      (try_table (catch $empty $h) (throw $empty))
      (return (i32.const -1)))
    (i32.const 8))

  (func (export "uncaught") (param i32) (result i32)
    (call $f1 (local.get 0)))

  (func (export "uncaught_other_tag") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $f $h) (call $f1 (local.get 0)))))

  (func (export "throw_ref_null")
    (throw_ref (ref.null exn)))

  (func (export "trap_not_caught") (result i32)
    (block $h
      (try_table (catch_all $h) (unreachable)))
    (i32.const -1))

  ;; A tail call leaves the try_table: its callee's throw is not caught.
  (func (export "return_call_in_try") (param i32) (result i32)
    (block $h
      (try_table (catch_all $h) (return_call $f1 (local.get 0))))
    (i32.const -1))
)
"#;

#[test]
fn throw_is_caught_in_the_same_function_and_up_the_stack() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(BASIC, opt);
        assert_eq!(call_i32(&mut s, i, "same", &[Val::I32(7)]), 7, "-O{opt}");
        assert_eq!(call_i32(&mut s, i, "across", &[Val::I32(8)]), 8, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "indirect", &[Val::I32(9)]),
            9,
            "-O{opt}"
        );
        assert_eq!(call_i32(&mut s, i, "deep3", &[Val::I32(10)]), 11, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "recursive", &[Val::I32(3000)]),
            42,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "clauses", &[Val::I32(5)]),
            105,
            "-O{opt}"
        );
        assert_eq!(call_i32(&mut s, i, "nested", &[Val::I32(6)]), 6, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "throw_in_handler", &[Val::I32(6)]),
            12,
            "-O{opt}"
        );
        assert_eq!(call_i32(&mut s, i, "locals", &[Val::I32(1)]), 33, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "catch_all", &[Val::I32(1)]),
            7,
            "-O{opt}"
        );
        assert_eq!(call_i32(&mut s, i, "empty_payload", &[]), 8, "-O{opt}");
        // Caught by value: nothing is left in the table.
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
        // The stack is usable after all of that.
        assert_eq!(
            call_i32(&mut s, i, "recursive", &[Val::I32(10)]),
            42,
            "-O{opt}"
        );
    }
}

#[test]
fn uncaught_exceptions_and_null_throw_ref_trap() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(BASIC, opt);
        let r = i.invoke(&mut s, "uncaught", &[Val::I32(1)]);
        match &r {
            Err(RunError::Trap(t)) => {
                assert_eq!(t.code, TrapCode::UncaughtException, "-O{opt}");
                assert!(t.to_string().contains("uncaught exception"), "{t}");
            }
            other => panic!("-O{opt}: expected a trap, got {other:?}"),
        }
        assert_eq!(
            trap_code(i.invoke(&mut s, "uncaught_other_tag", &[Val::I32(1)])),
            TrapCode::UncaughtException,
            "-O{opt}"
        );
        assert_eq!(
            trap_code(i.invoke(&mut s, "throw_ref_null", &[])),
            TrapCode::NullReference,
            "-O{opt}"
        );
        assert_eq!(
            trap_code(i.invoke(&mut s, "trap_not_caught", &[])),
            TrapCode::Unreachable,
            "-O{opt}"
        );
        assert_eq!(
            trap_code(i.invoke(&mut s, "return_call_in_try", &[Val::I32(1)])),
            TrapCode::UncaughtException,
            "-O{opt}"
        );
        // An uncaught exception is freed.
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
        // And the instance still works.
        assert_eq!(call_i32(&mut s, i, "across", &[Val::I32(3)]), 3, "-O{opt}");
    }
}

#[test]
fn a_start_function_that_throws_fails_instantiation() {
    let wat = r#"(module (tag $e) (func $s (throw $e)) (start $s))"#;
    for opt in OPT_LEVELS {
        let (mut store, linker) = store_and_linker();
        let module = compile(wat, opt);
        match linker.instantiate(&mut store, &module) {
            Err(InstantiationError::Trap(t)) => {
                assert_eq!(t.code, TrapCode::UncaughtException, "-O{opt}")
            }
            other => panic!("-O{opt}: expected an uncaught exception, got {other:?}"),
        }
    }
}

const PAYLOADS: &str = r#"
(module
  (tag $all (param i32 i64 f32 f64 v128 externref funcref))
  (tag $x (param exnref i32))
  (tag $e (param i32))
  (func $f)
  (elem declare func $f)

  (func (export "by_value") (param i32 i64 f32 f64 v128 externref)
    (result i32 i64 f32 f64 v128 externref)
    (block $h (result i32 i64 f32 f64 v128 externref funcref)
      (try_table (catch $all $h)
        (throw $all (local.get 0) (local.get 1) (local.get 2) (local.get 3)
          (local.get 4) (local.get 5) (ref.func $f)))
      (unreachable))
    (if (ref.is_null) (then (unreachable))))

  ;; Caught by reference, rethrown with throw_ref, caught by value (the
  ;; payload is then the escaped exception's own).
  (func (export "by_ref") (param i32 i64 f32 f64 v128 externref)
    (result i32 i64 f32 f64 v128 externref)
    (local $x exnref)
    (block $h2 (result i32 i64 f32 f64 v128 externref funcref)
      (try_table (catch $all $h2)
        (block $h1 (result i32 i64 f32 f64 v128 externref funcref exnref)
          (try_table (catch_ref $all $h1)
            (throw $all (local.get 0) (local.get 1) (local.get 2) (local.get 3)
              (local.get 4) (local.get 5) (ref.func $f)))
          (unreachable))
        (local.set $x)
        (drop) (drop) (drop) (drop) (drop) (drop) (drop)
        (throw_ref (local.get $x)))
      (unreachable))
    (if (ref.is_null) (then (unreachable))))

  ;; An exnref in a payload: the inner exception is rethrown from it.
  (func (export "exnref_payload") (param i32) (result i32)
    (block $outer (result i32)
      (try_table (result i32) (catch $e $outer)
        (block $hx (result exnref i32)
          (try_table (catch $x $hx)
            (block $he (result exnref)
              (try_table (catch_all_ref $he) (throw $e (local.get 0)))
              (unreachable))
            (throw $x (i32.const 5)))
          (unreachable))
        (drop)
        (throw_ref))))
)
"#;

#[test]
fn payloads_of_every_type_arrive_bit_exact() {
    let f32_snan = 0x7fa0_0001u32;
    let f64_nan = 0x7ff4_0000_0000_0001u64;
    let v128 = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128;
    let args = [
        Val::I32(-5),
        Val::I64(-1234567890123),
        Val::F32(f32_snan),
        Val::F64(f64_nan),
        Val::V128(v128),
        Val::ExternRef(Some(77)),
    ];
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(PAYLOADS, opt);
        assert_eq!(call(&mut s, i, "by_value", &args), args, "-O{opt}");
        assert_eq!(call(&mut s, i, "by_ref", &args), args, "-O{opt}");
        let nulls = [
            Val::I32(0),
            Val::I64(0),
            Val::F32(0x8000_0000),
            Val::F64(0),
            Val::V128(u128::MAX),
            Val::ExternRef(None),
        ];
        assert_eq!(call(&mut s, i, "by_value", &nulls), nulls, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "exnref_payload", &[Val::I32(31)]),
            31,
            "-O{opt}"
        );
    }
}

const EXPORTER: &str = r#"
(module
  (tag $e (export "e") (param i32))
  (func (export "throw") (param i32) (throw $e (local.get 0))))
"#;

const IMPORTER: &str = r#"
(module
  (import "a" "e" (tag $e (param i32)))
  (import "a" "e" (tag $e_alias (param i32)))
  (import "b" "throw" (func $throw (param i32)))
  (tag $mine (export "mine") (param i32))
  (func (export "catch_imported") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (call $throw (local.get 0)) (i32.const -1))))
  (func (export "catch_alias") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e_alias $h) (throw $e (local.get 0)))))
  (func (export "own_tag") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (throw $mine (local.get 0))))))
"#;

#[test]
fn tags_are_identities_shared_by_import() {
    for opt in OPT_LEVELS {
        let (mut s, mut linker) = store_and_linker();
        let exporter = compile(EXPORTER, opt);
        let a1 = linker.instantiate(&mut s, &exporter).unwrap();
        let a2 = linker.instantiate(&mut s, &exporter).unwrap();
        let importer = compile(IMPORTER, opt);
        let tag = match a1.get_export(&s, "e") {
            Some(Extern::Tag(t)) => t,
            other => panic!("export e: {other:?}"),
        };
        assert_eq!(tag.ty(&s).params, vec![ValType::I32]);

        // Tag and thrower from the same instance: caught.
        linker.define_instance(&s, "a", a1);
        linker.define_instance(&s, "b", a1);
        let b = linker.instantiate(&mut s, &importer).unwrap();
        assert_eq!(
            call_i32(&mut s, b, "catch_imported", &[Val::I32(4)]),
            4,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, b, "catch_alias", &[Val::I32(5)]),
            5,
            "-O{opt}"
        );
        assert_eq!(
            trap_code(b.invoke(&mut s, "own_tag", &[Val::I32(1)])),
            TrapCode::UncaughtException,
            "-O{opt}: a tag of the same type is another tag"
        );
        // Thrower from another instance of the same module: its tag is
        // another tag.
        linker.define_instance(&s, "b", a2);
        let c = linker.instantiate(&mut s, &importer).unwrap();
        assert_eq!(
            trap_code(c.invoke(&mut s, "catch_imported", &[Val::I32(4)])),
            TrapCode::UncaughtException,
            "-O{opt}"
        );
        // Each instance of the importer defines its own `mine`.
        assert_ne!(b.get_export(&s, "mine"), c.get_export(&s, "mine"));
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}

#[test]
fn tag_imports_are_type_checked() {
    let (mut s, mut linker) = store_and_linker();
    let a = linker.instantiate(&mut s, &compile(EXPORTER, 0)).unwrap();
    linker.define_instance(&s, "a", a);
    let wrong = r#"(module (import "a" "e" (tag (param i64))))"#;
    match linker.instantiate(&mut s, &compile(wrong, 0)) {
        Err(InstantiationError::Unlinkable(m)) => {
            assert!(m.contains("incompatible import type"), "{m}")
        }
        other => panic!("expected unlinkable, got {other:?}"),
    }
    let not_a_tag = r#"(module (import "a" "throw" (tag (param i32))))"#;
    assert!(matches!(
        linker.instantiate(&mut s, &compile(not_a_tag, 0)),
        Err(InstantiationError::Unlinkable(_))
    ));
}

const EXNREFS: &str = r#"
(module
  (tag $e (param i32))
  (global $g (export "g") (mut exnref) (ref.null exn))
  (table $t 2 exnref)
  (func $make (export "make") (param i32) (result exnref)
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (throw $e (local.get 0)))
      (unreachable)))
  (func $unwrap (export "unwrap") (param exnref) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw_ref (local.get 0)))
      (unreachable)))
  (func (export "stash") (param i32)
    (global.set $g (call $make (local.get 0)))
    (table.set $t (i32.const 1) (call $make (i32.add (local.get 0) (i32.const 1)))))
  (func (export "from_global") (result i32) (call $unwrap (global.get $g)))
  (func (export "from_table") (result i32) (call $unwrap (table.get $t (i32.const 1))))
  (func (export "null_from_table") (result i32) (call $unwrap (table.get $t (i32.const 0)))))
"#;

#[test]
fn exnrefs_travel_through_the_host_globals_and_tables() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(EXNREFS, opt);
        let exn = match call(&mut s, i, "make", &[Val::I32(5)])[..] {
            [Val::ExnRef(Some(h))] => h,
            ref other => panic!("-O{opt}: make: {other:?}"),
        };
        // Escaped (handed to wasm as an exnref): kept, and rethrowable
        // any number of times.
        for _ in 0..3 {
            assert_eq!(
                call_i32(&mut s, i, "unwrap", &[Val::ExnRef(Some(exn))]),
                5,
                "-O{opt}"
            );
        }
        assert_eq!(
            trap_code(i.invoke(&mut s, "unwrap", &[Val::ExnRef(None)])),
            TrapCode::NullReference
        );
        // A handle that names no exception is refused, not followed.
        for bogus in [exn ^ (1 << 40), exn + 1000, u64::MAX] {
            assert_eq!(
                trap_code(i.invoke(&mut s, "unwrap", &[Val::ExnRef(Some(bogus))])),
                TrapCode::NullReference,
                "-O{opt}: handle {bogus:#x}"
            );
        }
        call(&mut s, i, "stash", &[Val::I32(20)]);
        assert_eq!(call_i32(&mut s, i, "from_global", &[]), 20, "-O{opt}");
        assert_eq!(call_i32(&mut s, i, "from_table", &[]), 21, "-O{opt}");
        assert_eq!(
            trap_code(i.invoke(&mut s, "null_from_table", &[])),
            TrapCode::NullReference
        );
        match i.get_export(&s, "g") {
            Some(Extern::Global(g)) => {
                assert!(matches!(g.get(&s), Val::ExnRef(Some(_))), "-O{opt}");
                assert_eq!(g.ty(&s).ty, ValType::ExnRef);
            }
            other => panic!("export g: {other:?}"),
        }
        // Three escaped exceptions: `make`'s, the global's, the table's.
        assert_eq!(s.live_exceptions(), 3, "-O{opt}");
    }
}

const LOOPS: &str = r#"
(module
  (import "host" "live" (func $live (result i32)))
  (tag $e (param i32))
  (func $thrower (param i32) (throw $e (local.get 0)))

  ;; n throws caught by value in the same function; returns the sum of the
  ;; payloads and the live count at the end, still inside wasm.
  (func (export "catch") (param $n i32) (result i32 i32) (local $sum i32)
    (loop $l
      (block $h (result i32)
        (try_table (catch $e $h) (throw $e (local.get $n)))
        (unreachable))
      (local.set $sum (i32.add (local.get $sum)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $sum) (call $live))

  (func (export "catch_all_across") (param $n i32) (result i32 i32) (local $k i32)
    (loop $l
      (block $h
        (try_table (catch_all $h) (call $thrower (local.get $n)))
        (unreachable))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $k) (call $live))

  (func (export "legacy") (param $n i32) (result i32 i32) (local $sum i32)
    (loop $l
      try
        local.get $n
        call $thrower
      catch $e
        local.get $sum
        i32.add
        local.set $sum
      end
      try
        i32.const 1
        throw $e
      catch_all
      end
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $sum) (call $live))

  ;; A legacy catch rethrows to its caller, which catches by value: the
  ;; rethrowing frame is abandoned, and with it its hold.
  (func $rethrower (param i32)
    try
      local.get 0
      throw $e
    catch $e
      drop
      rethrow 0
    end)
  (func (export "rethrow_to_caller") (param $n i32) (result i32 i32) (local $sum i32)
    (loop $l
      (block $h (result i32)
        (try_table (catch $e $h) (call $rethrower (local.get $n)))
        (unreachable))
      (local.set $sum (i32.add (local.get $sum)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $sum) (call $live))
)
"#;

#[test]
fn a_hundred_thousand_throws_leak_nothing() {
    const N: i32 = 100_000;
    let sum = (1..=N).fold(0i32, |a, b| a.wrapping_add(b));
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(LOOPS, opt);
        assert_eq!(
            call(&mut s, i, "catch", &[Val::I32(N)]),
            [Val::I32(sum), Val::I32(0)],
            "-O{opt}"
        );
        assert_eq!(
            call(&mut s, i, "catch_all_across", &[Val::I32(N)]),
            [Val::I32(N), Val::I32(0)],
            "-O{opt}"
        );
        assert_eq!(
            call(&mut s, i, "rethrow_to_caller", &[Val::I32(N)]),
            [Val::I32(sum), Val::I32(0)],
            "-O{opt}"
        );
        // Legacy catch bodies free their exception when they end (ExnDrop).
        assert_eq!(
            call(&mut s, i, "legacy", &[Val::I32(N)]),
            [Val::I32(sum), Val::I32(0)],
            "-O{opt}"
        );
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}

/// Legacy catch bodies left by a branch, `br_if`, `br_table`, `return`
/// or a tail call free their exception on the way out, like the ones that
/// fall through: the live count seen from inside the one long call is 0.
const LEGACY_EXITS: &str = r#"
(module
  (import "host" "live" (func $live (result i32)))
  (tag $e (param i32))
  (func $ret (param i32) (result i32)
    try (result i32)
      local.get 0
      throw $e
    catch $e
      return
    end)
  (func $tail (param i32) (result i32)
    try (result i32)
      local.get 0
      throw $e
    catch $e
      return_call $id
    end)
  (func $id (param i32) (result i32) (local.get 0))
  (func (export "run") (param $n i32) (result i32) (local $k i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (local.set $k (i32.rem_u (local.get $n) (i32.const 5)))
        (block $b
          try
            local.get $n
            throw $e
          catch $e
            drop
            ;; k = 0: br, 1: br_if, 2: br_table, 3, 4: calls below
            local.get $k
            i32.eqz
            br_if $l
            local.get $k
            i32.const 1
            i32.eq
            if
              br $l
            end
            local.get $k
            br_table $b $b $l $b $b
          end)
        (drop (call $ret (local.get $n)))
        (drop (call $tail (local.get $n)))
        (br $l)))
    (call $live))
)
"#;

#[test]
fn legacy_catch_bodies_left_by_branches_leak_nothing() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(LEGACY_EXITS, opt);
        assert_eq!(call_i32(&mut s, i, "run", &[Val::I32(1000)]), 0, "-O{opt}");
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}

/// A legacy catch body left by a throw that a handler of the same frame
/// catches (C++ `catch (...) { ...; throw; }` inlined into its caller): the
/// landing frees the abandoned body's exception, for an outer legacy catch
/// and for a `try_table` around it alike. Before, each throw left a hold
/// behind: a leak, and a hold list every later throw scanned.
const SAME_FRAME_RETHROW: &str = r#"
(module
  (import "host" "live" (func $live (result i32)))
  (tag $e (param i32))
  (func (export "legacy") (param $n i32) (result i32) (local $sum i32)
    (loop $l
      try
        try
          local.get $n
          throw $e
        catch $e
          drop
          rethrow 0
        end
      catch $e
        local.get $sum
        i32.add
        local.set $sum
      end
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (i32.add (local.get $sum) (i32.mul (call $live) (i32.const 1000000))))
  (func (export "try_table") (param $n i32) (result i32) (local $sum i32)
    (loop $l
      (block $h (result i32)
        (try_table (catch $e $h)
          try
            local.get $n
            throw $e
          catch $e
            i32.const 1
            i32.add
            throw $e
          end)
        (unreachable))
      (local.set $sum (i32.add (local.get $sum)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (i32.add (local.get $sum) (i32.mul (call $live) (i32.const 1000000))))
)
"#;

#[test]
fn catch_bodies_left_by_a_throw_caught_in_the_same_frame_leak_nothing() {
    const N: i32 = 20_000;
    let sum = (1..=N).sum::<i32>();
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(SAME_FRAME_RETHROW, opt);
        assert_eq!(
            call_i32(&mut s, i, "legacy", &[Val::I32(N)]),
            sum,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "try_table", &[Val::I32(N)]),
            sum + N,
            "-O{opt}"
        );
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}

#[test]
fn uncaught_exceptions_leak_nothing() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(BASIC, opt);
        for k in 0..10_000 {
            assert_eq!(
                trap_code(i.invoke(&mut s, "uncaught", &[Val::I32(k)])),
                TrapCode::UncaughtException
            );
        }
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}

/// Legacy exception handling, in the flat syntax (the `wat` crate parses
/// no folded `try`).
const LEGACY: &str = r#"
(module
  (tag $e (param i32))
  (tag $f)
  (func $thrower (param i32) (throw $e (local.get 0)))

  (func (export "catch") (param i32) (result i32)
    try (result i32)
      local.get 0
      call $thrower
      i32.const -1
    catch $e
      i32.const 1
      i32.add
    end)

  (func (export "catch_all") (result i32)
    try (result i32)
      throw $f
    catch $e
    catch_all
      i32.const 77
    end)

  (func (export "rethrow") (param i32) (result i32)
    try (result i32)
      try (result i32)
        local.get 0
        call $thrower
        i32.const -1
      catch $e
        drop
        rethrow 0
      end
    catch $e
      i32.const 1000
      i32.add
    end)

  ;; rethrow 1 from inside a nested catch: the outer caught exception.
  (func (export "rethrow_outer") (param i32) (result i32)
    try (result i32)
      try (result i32)
        local.get 0
        call $thrower
        i32.const -1
      catch $e
        drop
        try (result i32)
          throw $f
        catch $f
          rethrow 1
        end
      end
    catch $e
      i32.const 2000
      i32.add
    end)

  (func (export "delegate") (param i32) (result i32)
    try $outer (result i32)
      try (result i32)
        local.get 0
        call $thrower
        i32.const -1
      delegate $outer
    catch $e
      i32.const 100
      i32.add
    end)

  ;; delegate skips the try in between.
  (func (export "delegate_skip") (param i32) (result i32)
    try $outer (result i32)
      try (result i32)
        try (result i32)
          local.get 0
          throw $e
        delegate $outer
      catch $e
        drop
        i32.const -2
      end
    catch $e
      i32.const 300
      i32.add
    end)

  ;; delegate to the caller (the function body's label).
  (func $delegating (param i32) (result i32)
    try (result i32)
      local.get 0
      throw $e
    delegate 0)
  (func (export "delegate_out") (param i32) (result i32)
    try (result i32)
      local.get 0
      call $delegating
    catch $e
      i32.const 400
      i32.add
    end)

  ;; A legacy try inside a try_table: the try_table catches what the
  ;; legacy catch does not.
  (func (export "mixed") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h)
        try (result i32)
          local.get 0
          call $thrower
          i32.const -1
        catch $f
          i32.const -3
        end)))
)
"#;

#[test]
fn legacy_try_catch_rethrow_delegate() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(LEGACY, opt);
        assert_eq!(call_i32(&mut s, i, "catch", &[Val::I32(4)]), 5, "-O{opt}");
        assert_eq!(call_i32(&mut s, i, "catch_all", &[]), 77, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "rethrow", &[Val::I32(4)]),
            1004,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "rethrow_outer", &[Val::I32(4)]),
            2004,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "delegate", &[Val::I32(4)]),
            104,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "delegate_skip", &[Val::I32(4)]),
            304,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "delegate_out", &[Val::I32(4)]),
            404,
            "-O{opt}"
        );
        assert_eq!(call_i32(&mut s, i, "mixed", &[Val::I32(6)]), 6, "-O{opt}");
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}

const PRESSURE: &str = r#"
(module
  (tag $e (param i32))
  (tag $f (param i64))
  (tag $g)
  (func $thrower (param i32) (throw $e (local.get 0)))
  (func $id (param i32) (result i32) (local.get 0))

  ;; Many values of every kind live across the throwing call and used after
  ;; the handler: they must survive the exceptional edge.
  (func (export "live_values") (param $x i32) (result i32)
    (local $a i64) (local $b f64) (local $c v128) (local $d f32) (local $k i32)
    (local.set $a (i64.extend_i32_u (call $id (i32.add (local.get $x) (i32.const 1)))))
    (local.set $b (f64.convert_i32_s (call $id (i32.add (local.get $x) (i32.const 2)))))
    (local.set $c (i32x4.splat (call $id (i32.add (local.get $x) (i32.const 3)))))
    (local.set $d (f32.convert_i32_s (call $id (i32.add (local.get $x) (i32.const 4)))))
    (i32.add (local.get $x)
      (block $h (result i32)
        (try_table (result i32) (catch $e $h)
          (local.set $k (call $id (i32.const 5)))
          (call $thrower (i32.const 100))
          (i32.const -1000))))
    (i32.add (i32.wrap_i64 (local.get $a)))
    (i32.add (i32.trunc_f64_s (local.get $b)))
    (i32.add (i32x4.extract_lane 3 (local.get $c)))
    (i32.add (i32.trunc_f32_s (local.get $d)))
    (i32.add (local.get $k)))

  ;; try_table with a parameter and a result.
  (func (export "params") (param i32) (result i32)
    (block $h (result i32)
      (local.get 0)
      (try_table (param i32) (result i32) (catch $e $h)
        (call $thrower) (i32.const -1))))

  ;; Every frame of the recursion has a handler for another tag; only the
  ;; outermost one catches $e.
  (func $layers (param i32) (result i32)
    (if (i32.eqz (local.get 0)) (then (throw $e (i32.const 9))))
    (block $hg
      (block $hf (result i64)
        (try_table (result i32) (catch $f $hf) (catch $g $hg)
          (call $layers (i32.sub (local.get 0) (i32.const 1))))
        (return))
      (return (i32.wrap_i64)))
    (i32.const -7))
  (func (export "layers") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (call $layers (local.get 0)))))

  ;; A throw inside a loop inside a try_table, with an accumulator.
  (func (export "loop_in_try") (param $n i32) (result i32) (local $acc i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h)
        (loop $l
          (local.set $acc (i32.add (local.get $acc) (local.get $n)))
          (if (i32.eq (local.get $n) (i32.const 3))
            (then (throw $e (local.get $acc))))
          (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
        (i32.const -1)))
    (i32.mul (i32.const 1000) (local.get $acc)) (i32.add))

  ;; The handler rethrows to a caller, which catches with catch_ref and
  ;; rethrows again to its caller.
  (func $mid (param i32) (result i32)
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (call $thrower (local.get 0)))
      (unreachable))
    (throw_ref))
  (func $mid2 (param i32) (result i32)
    (block $h (result i32 exnref)
      (try_table (result i32) (catch_ref $e $h) (call $mid (local.get 0)))
      (return))
    (throw_ref) (drop))
  (func (export "rethrow_chain") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (call $mid2 (local.get 0)))))
)
"#;

#[test]
fn values_survive_the_exceptional_edge() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(PRESSURE, opt);
        // x + 100 + (x+1) + (x+2) + (x+3) + (x+4) + 5
        assert_eq!(
            call_i32(&mut s, i, "live_values", &[Val::I32(10)]),
            10 + 100 + 11 + 12 + 13 + 14 + 5,
            "-O{opt}"
        );
        assert_eq!(call_i32(&mut s, i, "params", &[Val::I32(6)]), 6, "-O{opt}");
        assert_eq!(
            call_i32(&mut s, i, "layers", &[Val::I32(500)]),
            9,
            "-O{opt}"
        );
        // n = 5: acc 5, 9, 12 (thrown at n = 3)
        assert_eq!(
            call_i32(&mut s, i, "loop_in_try", &[Val::I32(5)]),
            12 + 12000,
            "-O{opt}"
        );
        assert_eq!(
            call_i32(&mut s, i, "rethrow_chain", &[Val::I32(44)]),
            44,
            "-O{opt}"
        );
    }
}

/// Code compiled with a checkpoint policy (probes, resume clones) throws
/// and catches alike, without any checkpoint being taken.
#[test]
fn checkpoint_instrumented_code_throws_alike() {
    for policy in [
        mvvm_abi::Policy::FunctionEntry,
        mvvm_abi::Policy::Loop,
        mvvm_abi::Policy::CounterLoop { threshold_bits: 0 },
    ] {
        for (wat, checks) in [
            (
                BASIC,
                &[("deep3", 10, 11), ("recursive", 100, 42), ("locals", 1, 33)][..],
            ),
            (
                PRESSURE,
                &[
                    ("live_values", 10, 165),
                    ("layers", 50, 9),
                    ("loop_in_try", 5, 12012),
                ][..],
            ),
        ] {
            let opts = mvvm_aot::CompileOptions {
                policy,
                ..Default::default()
            };
            let aot = mvvm_aot::compile(wat.as_bytes(), &opts)
                .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
            let module = Module::from_aot(&aot).unwrap();
            let (mut s, linker) = store_and_linker();
            let i = linker.instantiate(&mut s, &module).unwrap();
            for (name, arg, want) in checks {
                assert_eq!(
                    call_i32(&mut s, i, name, &[Val::I32(*arg)]),
                    *want,
                    "{policy:?} {name}"
                );
            }
        }
    }
}

/// An exception a legacy catch holds, rethrown and caught by value inside
/// the catch body, is still the catch's to rethrow afterwards.
const HELD_THEN_VALUES: &str = r#"
(module
  (tag $e (param i32))
  (func (export "run") (param i32) (result i32)
    try (result i32)
      try (result i32)
        local.get 0
        throw $e
      catch $e
        drop
        (block $h
          (try_table (catch_all $h)
            rethrow 2))
        rethrow 0
      end
    catch $e
      i32.const 1000
      i32.add
    end))
"#;

#[test]
fn a_held_exception_caught_by_value_stays_held() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(HELD_THEN_VALUES, opt);
        assert_eq!(call_i32(&mut s, i, "run", &[Val::I32(5)]), 1005, "-O{opt}");
        assert_eq!(s.live_exceptions(), 0, "-O{opt}");
    }
}
