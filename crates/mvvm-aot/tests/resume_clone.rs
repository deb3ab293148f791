//! A resume clone compiled alone (`mvvm_aot::resume_clone`) is the clone
//! of the whole-module compilation: the same bytes once the call
//! displacements (which the object holds applied) are masked, calls to the
//! same functions, and the same trap sites, exception call sites and
//! checkpoint tables. This is what compiling clones on demand at restore
//! needs ("Resume clones compiled on demand" in CHECKPOINT.md).

mod meta_support;

use meta_support::read_meta;
use mvvm_abi::object::{
    PROBE_TRAMPOLINE_SYMBOL, array_trampoline_symbol, func_symbol, import_stub_symbol,
    resume_symbol,
};
use mvvm_abi::{Policy, TargetArch};
use mvvm_aot::resume_clone::{CallField, CallTarget, CloneCode, compile_resume_clone};
use mvvm_aot::{CompileError, CompileOptions, compile_keeping_relocations};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::collections::HashMap;

fn workspace_file(rel: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn symbol_of(t: CallTarget) -> String {
    match t {
        CallTarget::Body(i) => func_symbol(i),
        CallTarget::Clone(i) => resume_symbol(i),
        CallTarget::ImportStub(i) => import_stub_symbol(i),
        CallTarget::ArrayTrampoline(i) => array_trampoline_symbol(i),
        CallTarget::ProbeTrampoline => PROBE_TRAMPOLINE_SYMBOL.to_string(),
    }
}

/// Zeroes the call fields of `code` named by `clone`'s calls.
fn mask(code: &mut [u8], clone: &CloneCode) {
    for c in &clone.calls {
        let at = c.offset as usize;
        let field = &mut code[at..at + 4];
        match c.field {
            CallField::X86Rel32 => field.fill(0),
            CallField::Arm64Call26 => {
                let insn = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
                field.copy_from_slice(&(insn & !0x03ff_ffff).to_le_bytes());
            }
        }
    }
}

/// Compiles `wasm` whole and each of its clones alone; checks them equal.
/// Returns the number of clones and of calls compared.
fn check_module(name: &str, wasm: &[u8], opts: &CompileOptions) -> (usize, usize) {
    let obj = compile_keeping_relocations(wasm, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let file = object::File::parse(&*obj).expect("ELF");
    let meta = read_meta(&obj);
    let text = file.section_by_name(".text").expect(".text");
    let text_data = text.data().expect("text data");
    let names: HashMap<object::SymbolIndex, String> = file
        .symbols()
        .map(|s| (s.index(), s.name().unwrap_or("").to_string()))
        .collect();
    // Every relocation of `.text`, by offset: symbol and addend.
    let relocs: HashMap<u64, (String, i64)> = text
        .relocations()
        .filter_map(|(at, r)| match r.target() {
            RelocationTarget::Symbol(s) => Some((at, (names[&s].clone(), r.addend()))),
            _ => None,
        })
        .collect();
    let mut clones = 0;
    let mut calls = 0;
    for sym in file.symbols() {
        let Some(index) = sym
            .name()
            .ok()
            .and_then(|n| n.strip_prefix("mvvm_resume_"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let start = sym.address() as usize;
        let size = sym.size() as usize;
        let alone = compile_resume_clone(wasm, opts, index)
            .unwrap_or_else(|e| panic!("{name}: clone of {index}: {e}"));
        assert_eq!(alone.func, index);
        assert_eq!(alone.bytes.len(), size, "{name}: clone of {index}: size");
        let mut whole = text_data[start..start + size].to_vec();
        let mut alone_bytes = alone.bytes.clone();
        mask(&mut whole, &alone);
        mask(&mut alone_bytes, &alone);
        assert!(
            whole == alone_bytes,
            "{name}: clone of {index}: code differs at byte {:?}",
            whole.iter().zip(&alone_bytes).position(|(a, b)| a != b)
        );
        // The same calls, to the same functions: every relocation of the
        // clone's range in the object is one of the clone's calls.
        let in_range = relocs
            .keys()
            .filter(|&&at| (start as u64..(start + size) as u64).contains(&at))
            .count();
        assert_eq!(
            in_range,
            alone.calls.len(),
            "{name}: clone of {index}: calls"
        );
        for c in &alone.calls {
            let at = start as u64 + u64::from(c.offset);
            let (sym, addend) = relocs
                .get(&at)
                .unwrap_or_else(|| panic!("{name}: clone of {index}: no relocation at {at:#x}"));
            assert_eq!(
                *sym,
                symbol_of(c.target),
                "{name}: clone of {index} at {at:#x}"
            );
            assert_eq!(c.target_offset, 0);
            assert_eq!(*addend, c.addend, "{name}: clone of {index} at {at:#x}");
        }
        calls += alone.calls.len();
        // Trap sites, exception call sites and tables, as the object has
        // them for this clone.
        let k = (index - meta.num_imported_funcs) as usize;
        assert_eq!(
            meta.trap_sites.clone_of(k).to_vec(),
            alone.traps,
            "{name}: clone of {index}: trap sites"
        );
        let sites = meta
            .call_sites
            .iter()
            .find(|s| s.func as usize == k)
            .map(|s| s.clone.clone())
            .unwrap_or_default();
        assert_eq!(
            sites, alone.call_sites,
            "{name}: clone of {index}: call sites"
        );
        let tables = meta.func_tables(index).expect("tables");
        assert_eq!(*tables, alone.tables, "{name}: clone of {index}: tables");
        clones += 1;
    }
    (clones, calls)
}

#[test]
fn clones_compiled_alone_are_the_clones_of_the_object() {
    let host = TargetArch::host().unwrap_or(TargetArch::X86_64);
    for (module, policy) in [
        ("bc", Policy::Loop),
        ("binary-trees", Policy::CounterLoop { threshold_bits: 16 }),
        ("llama2", Policy::Loop),
        ("floyd-warshall", Policy::CounterLoop { threshold_bits: 16 }),
        ("mg", Policy::Loop),
    ] {
        let wasm = workspace_file(&format!("bench/wasm/{module}.wasm"));
        let opts = CompileOptions {
            opt_level: 3,
            target: host,
            policy,
            portable: false,
        };
        let (clones, calls) = check_module(module, &wasm, &opts);
        println!(
            "{module} ({}): {clones} clones, {calls} calls",
            policy.name()
        );
        assert!(clones >= 5, "{module}: only {clones} clones compared");
        assert!(calls > 0, "{module}: no call compared");
    }
}

/// The other ISA (a cross compilation) and the host's baseline, and a
/// module with exception handlers and a probe in a loop, at level 0 too.
#[test]
fn clones_compiled_alone_on_the_other_isa_and_with_handlers() {
    let other = match TargetArch::host() {
        Some(TargetArch::Aarch64) => TargetArch::X86_64,
        _ => TargetArch::Aarch64,
    };
    let wasm = workspace_file("bench/wasm/binary-trees.wasm");
    // The host's baseline (`portable`) too: other CPU features.
    let host = TargetArch::host().unwrap_or(TargetArch::X86_64);
    for target in [other, host] {
        let opts = CompileOptions {
            opt_level: 3,
            target,
            policy: Policy::Loop,
            portable: true,
        };
        let (clones, calls) = check_module("binary-trees", &wasm, &opts);
        assert!(clones >= 5 && calls > 0, "{target:?}: {clones} clones");
    }
    let wat = br#"(module
      (tag $e (param i32))
      (import "env" "f" (func $f (param i32)))
      (func $thrower (param i32) (if (local.get 0) (then (throw $e (local.get 0)))))
      (func (export "run") (param $n i32) (result i32) (local $s i32)
        (block $out
          (loop $l
            (br_if $out (i32.eqz (local.get $n)))
            (block $h (result i32)
              (try_table (catch $e $h)
                (call $thrower (i32.rem_u (local.get $n) (i32.const 3)))
                (call $f (local.get $n)))
              (i32.const 0))
            (local.set $s (i32.add (local.get $s)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $l)))
        (local.get $s)))"#;
    for (opt_level, target) in [(0, TargetArch::X86_64), (3, TargetArch::X86_64), (3, other)] {
        let opts = CompileOptions {
            opt_level,
            target,
            policy: Policy::CounterLoop { threshold_bits: 4 },
            portable: true,
        };
        let (clones, calls) = check_module("handlers", wat, &opts);
        assert_eq!(clones, 1, "-O{opt_level} {target:?}");
        assert!(calls >= 3, "-O{opt_level} {target:?}: {calls} calls");
        let alone = compile_resume_clone(wat, &opts, 2).expect("clone");
        assert!(
            !alone.call_sites.is_empty(),
            "-O{opt_level} {target:?}: no exception call site in the clone"
        );
    }
}

#[test]
fn only_functions_with_a_clone_compile_alone() {
    let wat = br#"(module
      (import "env" "f" (func $f))
      (func $flat (call $f))
      (func $looped (param i32) (loop $l (br_if $l (local.get 0)))))"#;
    let loop_opts = CompileOptions {
        policy: Policy::Loop,
        ..CompileOptions::default()
    };
    assert!(compile_resume_clone(wat, &loop_opts, 2).is_ok());
    for (func, opts) in [
        (0, loop_opts),                 // an import
        (1, loop_opts),                 // no loop
        (3, loop_opts),                 // out of range
        (2, CompileOptions::default()), // no policy
    ] {
        match compile_resume_clone(wat, &opts, func) {
            Err(CompileError::Codegen { func: f, .. }) => assert_eq!(f, func),
            other => panic!("function {func}: {other:?}"),
        }
    }
    assert!(matches!(
        compile_resume_clone(b"\xff\xfe", &loop_opts, 2),
        Err(CompileError::NotAModule)
    ));
}

/// Clones compiled in batches after one preparation (what the background
/// compile of an on-demand object uses) are the clones compiled alone:
/// the same code, calls, sites and tables; each batch is handed over as
/// it is compiled, only the first carries the preparation's time, and a
/// sink that says stop stops. An object of another build is refused.
#[test]
fn clones_compiled_in_batches_after_one_preparation() {
    use mvvm_aot::resume_clone::{compile_clones_for, compile_clones_for_in_batches};
    let wasm = workspace_file("bench/wasm/bc.wasm");
    let host = TargetArch::host().unwrap_or(TargetArch::X86_64);
    let opts = CompileOptions {
        opt_level: 3,
        target: host,
        policy: Policy::Loop,
        portable: false,
    };
    let obj = mvvm_aot::compile(&wasm, &opts).unwrap();
    let meta = read_meta(&obj);
    let with_loop: Vec<u32> = (meta.num_imported_funcs..meta.funcs.len() as u32)
        .filter(|&f| compile_resume_clone(&wasm, &opts, f).is_ok())
        .take(7)
        .collect();
    assert_eq!(
        with_loop.len(),
        7,
        "bc has fewer than 7 functions with a clone"
    );
    let alone = compile_clones_for(&meta, &wasm, &with_loop, 1).unwrap();
    let mut batches: Vec<Vec<CloneCode>> = Vec::new();
    let n = compile_clones_for_in_batches(&meta, &wasm, &with_loop, 1, 3, &mut |b| {
        batches.push(b);
        true
    })
    .unwrap();
    assert_eq!(n, 7);
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "batch sizes"
    );
    assert!(batches[0][0].times.prepare > std::time::Duration::ZERO);
    for b in &batches[1..] {
        assert!(
            b.iter().all(|c| c.times.prepare.is_zero()),
            "prepared again"
        );
    }
    let untimed = |mut c: CloneCode| {
        c.times = Default::default();
        c
    };
    let batched: Vec<CloneCode> = batches.into_iter().flatten().map(untimed).collect();
    let alone: Vec<CloneCode> = alone.into_iter().map(untimed).collect();
    assert_eq!(batched.len(), alone.len());
    for (b, a) in batched.iter().zip(&alone) {
        assert!(
            b == a,
            "function {}: batched clone differs from the one compiled alone",
            a.func
        );
    }
    let mut calls = 0;
    let n = compile_clones_for_in_batches(&meta, &wasm, &with_loop, 1, 2, &mut |_| {
        calls += 1;
        false
    })
    .unwrap();
    assert_eq!((n, calls), (2, 1), "a sink that says stop was not obeyed");
    let mut other = meta.clone();
    other.producer.push_str(" (another build)");
    let err =
        compile_clones_for_in_batches(&other, &wasm, &with_loop, 1, 2, &mut |_| true).unwrap_err();
    assert!(matches!(err, CompileError::OtherCompiler { .. }), "{err}");
}
