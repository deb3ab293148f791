//! End-to-end tests of the runtime core: compile with `mvvm-aot`, load the
//! object, instantiate, call, trap.

use mvvm_rt::{
    Extern, Func, FuncType, Global, GlobalType, HostError, Instance, Linker, Module, RunError,
    Store, TrapCode, Val, ValType,
};

fn module(wat: &str) -> Module {
    let aot =
        mvvm_aot::compile(wat.as_bytes(), &mvvm_aot::CompileOptions::default()).expect("compile");
    Module::from_aot(&aot).expect("load")
}

fn instance(store: &mut Store, wat: &str) -> Instance {
    Instance::new(store, &module(wat), &[]).expect("instantiate")
}

#[test]
fn add_two_numbers() {
    let mut store = Store::new();
    let i = instance(
        &mut store,
        r#"(module (func (export "add") (param i32 i32) (result i32)
              local.get 0 local.get 1 i32.add))"#,
    );
    let r = i
        .invoke(&mut store, "add", &[Val::I32(2), Val::I32(40)])
        .unwrap();
    assert_eq!(r, vec![Val::I32(42)]);
}

fn trap_of(r: Result<Vec<Val>, RunError>) -> mvvm_rt::Trap {
    match r {
        Err(RunError::Trap(t)) => t,
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// The binary encoding of a text module (to check reported offsets).
fn wasm_bytes(wat: &str) -> Vec<u8> {
    let buf = wast::parser::ParseBuffer::new(wat).unwrap();
    let mut w = wast::parser::parse::<wast::Wat<'_>>(&buf).unwrap();
    w.encode().unwrap()
}

const TRAPS_WAT: &str = r#"(module
          (memory 1)
          (table 2 funcref)
          (type $t (func))
          (func $unreach (export "unreach") unreachable)
          (func $oob (export "oob") (result i32) i32.const 70000 i32.load)
          (func $div (export "div") (param i32) (result i32) i32.const 1 local.get 0 i32.div_s)
          (func $ovf (export "ovf") (result i32) i32.const 0x80000000 i32.const -1 i32.div_s)
          (func $conv (export "conv") (result i32) f32.const nan i32.trunc_f32_s)
          (func $null (export "null") i32.const 1 call_indirect (type $t))
          (func $undef (export "undef") i32.const 5 call_indirect (type $t))
          (func $rec (export "rec") call $rec)
          (func $fill (export "fill") i32.const 65530 i32.const 0 i32.const 100 memory.fill)
        )"#;

#[test]
fn traps_name_code_function_and_offset() {
    let mut store = Store::new();
    let i = instance(&mut store, TRAPS_WAT);
    let wasm = wasm_bytes(TRAPS_WAT);
    let cases = [
        ("unreach", TrapCode::Unreachable, "unreach"),
        ("oob", TrapCode::MemoryOutOfBounds, "oob"),
        ("div", TrapCode::IntegerDivisionByZero, "div"),
        ("ovf", TrapCode::IntegerOverflow, "ovf"),
        ("conv", TrapCode::BadConversionToInteger, "conv"),
        ("null", TrapCode::IndirectCallToNull, "null"),
        ("undef", TrapCode::TableOutOfBounds, "undef"),
        ("rec", TrapCode::StackOverflow, "rec"),
        ("fill", TrapCode::MemoryOutOfBounds, "fill"),
    ];
    for (name, code, fname) in cases {
        let args: &[Val] = if name == "div" { &[Val::I32(0)] } else { &[] };
        let t = trap_of(i.invoke(&mut store, name, args));
        assert_eq!(t.code, code, "{name}: {t}");
        assert_eq!(t.func_name.as_deref(), Some(fname), "{name}: {t}");
        assert!(t.func.is_some(), "{name}: {t}");
        // The offset names the trapping instruction's opcode.
        let opcode = match name {
            "unreach" => Some(0x00),
            "oob" => Some(0x28),
            "div" | "ovf" => Some(0x6d),
            "conv" => Some(0xa8),
            "null" | "undef" => Some(0x11),
            _ => None,
        };
        if let Some(op) = opcode {
            let off = t
                .wasm_offset
                .unwrap_or_else(|| panic!("{name}: no offset in {t}"));
            assert_eq!(wasm[off as usize], op, "{name}: {t}");
        }
        assert!(
            t.to_string()
                .starts_with(&format!("wasm trap: {}", code.message())),
            "{t}"
        );
    }
    // Still usable after all those traps.
    let t = trap_of(i.invoke(&mut store, "div", &[Val::I32(0)]));
    assert_eq!(t.code, TrapCode::IntegerDivisionByZero);
    assert_eq!(
        i.invoke(&mut store, "div", &[Val::I32(1)]).unwrap(),
        vec![Val::I32(1)]
    );
}

#[test]
fn host_functions_memory_and_exit() {
    let mut store = Store::new();
    store.set_data(Vec::<i32>::new());
    let log = Func::host(
        &mut store,
        FuncType {
            params: vec![ValType::I32],
            results: vec![ValType::I32],
        },
        |caller, args, results| {
            let Val::I32(v) = args[0] else { unreachable!() };
            let byte = caller.memory().map(|m| m[0]).unwrap_or(0);
            caller.data_mut::<Vec<i32>>().unwrap().push(v);
            results[0] = Val::I32(v + byte as i32);
            Ok(())
        },
    );
    let exit = Func::host(
        &mut store,
        FuncType {
            params: vec![ValType::I32],
            results: vec![],
        },
        |_, args, _| match args[0] {
            Val::I32(c) => Err(HostError::Exit(c)),
            _ => Err(HostError::Message("bad".into())),
        },
    );
    let mut linker = Linker::new();
    linker.define("env", "log", Extern::Func(log));
    linker.define("env", "exit", Extern::Func(exit));
    let m = module(
        r#"(module
          (import "env" "log" (func $log (param i32) (result i32)))
          (import "env" "exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\05")
          (func (export "run") (param i32) (result i32) local.get 0 call $log)
          (func (export "quit") i32.const 3 call $exit unreachable))"#,
    );
    let i = linker.instantiate(&mut store, &m).unwrap();
    assert_eq!(
        i.invoke(&mut store, "run", &[Val::I32(10)]).unwrap(),
        vec![Val::I32(15)]
    );
    assert_eq!(store.data::<Vec<i32>>().unwrap(), &vec![10]);
    assert_eq!(i.invoke(&mut store, "quit", &[]), Err(RunError::Exit(3)));
    assert_eq!(
        i.invoke(&mut store, "run", &[Val::I32(1)]).unwrap(),
        vec![Val::I32(6)]
    );
}

/// `v128` through the public API: arguments and results of exports,
/// parameters and results of a host function (two value slots each,
/// between scalars), and a host-defined mutable global read and written by
/// wasm and by the host.
#[test]
fn v128_values_through_calls_host_functions_and_globals() {
    let mut store = Store::new();
    // (a: v128, n: i32, b: v128) -> (i64, v128): a + n*b lane-wise (i32x4),
    // and the low 64 bits of a.
    let host = Func::host(
        &mut store,
        FuncType {
            params: vec![ValType::V128, ValType::I32, ValType::V128],
            results: vec![ValType::I64, ValType::V128],
        },
        |_, args, results| {
            let (Val::V128(a), Val::I32(n), Val::V128(b)) = (args[0], args[1], args[2]) else {
                return Err(HostError::Message(format!("bad arguments {args:?}")));
            };
            let lane = |v: u128, i: u32| (v >> (32 * i)) as u32;
            let mut r = 0u128;
            for i in 0..4 {
                let x = lane(a, i).wrapping_add((n as u32).wrapping_mul(lane(b, i)));
                r |= u128::from(x) << (32 * i);
            }
            results[0] = Val::I64(a as u64 as i64);
            results[1] = Val::V128(r);
            Ok(())
        },
    );
    let init: u128 = 0x0f0e0d0c_0b0a0908_07060504_03020100;
    let g = Global::new(
        &mut store,
        GlobalType {
            ty: ValType::V128,
            mutable: true,
        },
        Val::V128(init),
    )
    .unwrap();
    let mut linker = Linker::new();
    linker.define("env", "h", Extern::Func(host));
    linker.define("env", "g", Extern::Global(g));
    let m = module(
        r#"(module
          (import "env" "h" (func $h (param v128 i32 v128) (result i64 v128)))
          (import "env" "g" (global $g (mut v128)))
          (func (export "swap") (param v128 v128) (result v128 v128)
            local.get 1 local.get 0)
          ;; calls the host with the global and the argument, keeps the
          ;; v128 result in the global and returns the i64 and the old
          ;; global
          (func (export "run") (param v128) (result i64 v128)
            (local $old v128) (local $lo i64)
            (local.set $old (global.get $g))
            (call $h (global.get $g) (i32.const 3) (local.get 0))
            (global.set $g)
            (local.set $lo)
            (local.get $lo) (local.get $old)))"#,
    );
    let i = linker.instantiate(&mut store, &m).unwrap();
    let (a, b) = (Val::V128(1 << 100 | 7), Val::V128(u128::MAX - 5));
    assert_eq!(i.invoke(&mut store, "swap", &[a, b]).unwrap(), vec![b, a]);
    let arg: u128 = 0x00000004_00000003_00000002_00000001;
    let r = i.invoke(&mut store, "run", &[Val::V128(arg)]).unwrap();
    assert_eq!(r, vec![Val::I64(init as u64 as i64), Val::V128(init)]);
    let want: u128 = 0x0f0e0d0c_0b0a0908_07060504_03020100 + 0x0000000c_00000009_00000006_00000003;
    assert_eq!(g.get(&store), Val::V128(want));
    g.set(&mut store, Val::V128(5)).unwrap();
    let r = i.invoke(&mut store, "run", &[Val::V128(0)]).unwrap();
    assert_eq!(r, vec![Val::I64(5), Val::V128(5)]);
    assert!(g.set(&mut store, Val::I32(5)).is_err(), "wrong type");
    assert!(matches!(
        i.invoke(&mut store, "run", &[Val::I64(0)]),
        Err(RunError::BadArgs(_))
    ));
}

/// A fault outside generated code must not be taken for a trap: with the
/// runtime's handlers installed, a host null-pointer write still kills the
/// process with SIGSEGV. Checked in a child process (this test re-runs
/// itself with an environment variable set).
#[test]
fn host_fault_is_not_claimed() {
    if std::env::var_os("MVVM_RT_SEGV_CHILD").is_some() {
        let mut store = Store::new();
        let i = instance(&mut store, r#"(module (func (export "nop")))"#);
        i.invoke(&mut store, "nop", &[]).unwrap();
        let p = std::hint::black_box(std::ptr::null_mut::<u32>());
        // SAFETY: deliberately faulting; the test expects the process to die.
        unsafe { p.write_volatile(1) };
        std::process::exit(0);
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "host_fault_is_not_claimed", "--nocapture"])
        .env("MVVM_RT_SEGV_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn instantiation_trap_keeps_partial_effects() {
    let mut store = Store::new();
    let provider = instance(
        &mut store,
        r#"(module (memory (export "mem") 1) (table (export "tab") 3 funcref)
             (func (export "get") (param i32) (result i32) local.get 0 i32.load8_u))"#,
    );
    let mut linker = Linker::new();
    linker.define_instance(&store, "p", provider);
    let m = module(
        r#"(module (import "p" "mem" (memory 1))
             (data (i32.const 0) "\2a")
             (data (i32.const 65535) "xx"))"#,
    );
    match linker.instantiate(&mut store, &m) {
        Err(mvvm_rt::InstantiationError::Trap(t)) => {
            assert_eq!(t.code, TrapCode::MemoryOutOfBounds)
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(
        provider.invoke(&mut store, "get", &[Val::I32(0)]).unwrap(),
        vec![Val::I32(42)]
    );
    let bad = module(r#"(module (import "p" "mem" (memory 2)))"#);
    assert!(matches!(
        linker.instantiate(&mut store, &bad),
        Err(mvvm_rt::InstantiationError::Unlinkable(m)) if m.contains("incompatible import type")
    ));
    let unknown = module(r#"(module (import "p" "nope" (func)))"#);
    assert!(matches!(
        linker.instantiate(&mut store, &unknown),
        Err(mvvm_rt::InstantiationError::Unlinkable(m)) if m.contains("unknown import")
    ));
}
