//! Behaviour of `mvvm_aot::compile`: determinism, options, targets, errors,
//! and the metadata section.

mod meta_support;

use meta_support::read_meta;
use mvvm_abi::object::{array_trampoline_symbol, func_symbol, import_stub_symbol};
use mvvm_abi::{ModuleMeta, TargetArch};
use mvvm_aot::{CompileError, CompileOptions, compile};
use object::{Object, ObjectSection, ObjectSymbol};

const SAMPLE: &str = r#"
(module
  (import "env" "log" (func $log (param i32 f64) (result i64)))
  (import "env" "g" (global $g (mut i32)))
  (type $bin (func (param i32 i32) (result i32)))
  (memory (export "mem") 1 2)
  (table $t 4 funcref)
  (global $h (mut i64) (i64.const 7))
  (elem (table $t) (i32.const 0) func $add $sub)
  (data (i32.const 16) "hello")
  (func $add (export "add") (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func (export "dispatch") (param i32 i32 i32) (result i32)
    (call_indirect $t (type $bin) (local.get 1) (local.get 2) (local.get 0)))
  (func (export "multi") (param i32) (result i32 i64 f32 f64)
    (local.get 0) (i64.const 1) (f32.const 2) (f64.const 3))
  (func (export "memops") (param i32) (result i32)
    (i32.store offset=4 (local.get 0) (i32.load8_u (local.get 0)))
    (drop (memory.grow (i32.const 1)))
    (memory.size))
  (func (export "loop") (param i32) (result i32) (local i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set 1 (i32.add (local.get 1) (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br $l)))
    (global.set $g (local.get 1))
    (global.set $h (call $log (local.get 1) (f64.const 1.5)))
    (local.get 1))
  (func $start (unreachable))
  (start $start)
  (export "log" (func $log))
)
"#;

fn host_opts(opt_level: u8) -> CompileOptions {
    CompileOptions {
        opt_level,
        ..CompileOptions::default()
    }
}

#[test]
fn same_input_gives_identical_bytes() {
    let a = compile(SAMPLE.as_bytes(), &host_opts(3)).unwrap();
    let b = compile(SAMPLE.as_bytes(), &host_opts(3)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn every_opt_level_compiles() {
    for level in 0..=3 {
        let obj = compile(SAMPLE.as_bytes(), &host_opts(level)).unwrap();
        assert_eq!(read_meta(&obj).opt_level, level);
    }
}

#[test]
fn cross_targets_have_the_right_machine() {
    for (target, arch) in [
        (TargetArch::X86_64, object::Architecture::X86_64),
        (TargetArch::Aarch64, object::Architecture::Aarch64),
    ] {
        let opts = CompileOptions {
            opt_level: 2,
            target,
            ..CompileOptions::default()
        };
        let obj = compile(SAMPLE.as_bytes(), &opts).unwrap();
        let file = object::File::parse(&*obj).unwrap();
        assert_eq!(file.architecture(), arch);
        assert_eq!(file.format(), object::BinaryFormat::Elf);
        assert_eq!(read_meta(&obj).target, target);
    }
}

/// `portable` gives the host's ISA its baseline features: exactly those of
/// a cross compilation for the same ISA, never more than the host's.
#[test]
fn portable_objects_use_the_baseline_features() {
    let host = CompileOptions::default();
    let portable = CompileOptions {
        portable: true,
        ..CompileOptions::default()
    };
    let native = read_meta(&compile(SAMPLE.as_bytes(), &host).unwrap()).cpu_features;
    let base = read_meta(&compile(SAMPLE.as_bytes(), &portable).unwrap()).cpu_features;
    for f in &base {
        assert!(
            native.contains(f),
            "baseline feature {f} missing on the host"
        );
    }
    if host.target == TargetArch::X86_64 {
        assert!(base.iter().any(|f| f == "has_sse41"), "{base:?}");
        assert!(!base.iter().any(|f| f.starts_with("has_avx")), "{base:?}");
    }
}

#[test]
fn symbols_and_metadata_describe_the_module() {
    let obj = compile(SAMPLE.as_bytes(), &host_opts(1)).unwrap();
    let meta = read_meta(&obj);
    assert_eq!(meta.num_imported_funcs, 1);
    assert_eq!(meta.funcs.len(), 8);
    assert_eq!(meta.num_defined_funcs(), 7);
    assert_eq!(meta.start, Some(7));
    // Exports add, dispatch, multi, mem, loop, log; plus the start function.
    assert_eq!(meta.array_trampolines, vec![0, 1, 3, 4, 5, 6, 7]);
    assert_eq!(meta.func_name(1), Some("add"));
    let sizes = meta_support::code_sizes(&obj, &meta);
    assert_eq!(sizes.len(), 7);
    assert!(
        sizes
            .iter()
            .all(|&(body, clone)| body > 0 && clone.is_none())
    );
    // The start function's `unreachable` is a trap site with its offset.
    assert!(
        meta.trap_sites
            .body(6)
            .iter()
            .any(|t| t.code == mvvm_abi::TrapCode::Unreachable && t.wasm_offset > 0)
    );
    // Memory accesses are recorded as out-of-bounds trap sites.
    assert!(
        meta.trap_sites
            .body(4)
            .iter()
            .any(|t| t.code == mvvm_abi::TrapCode::MemoryOutOfBounds)
    );

    // The functions' symbols only on request (`--symbols`): the same
    // object otherwise, same code.
    let defined = |obj: &[u8]| -> Vec<String> {
        object::File::parse(obj)
            .unwrap()
            .symbols()
            .filter(|s| s.is_definition())
            .filter_map(|s| s.name().ok().map(str::to_string))
            .collect()
    };
    let plain = defined(&obj);
    assert!(
        !plain
            .iter()
            .any(|n| n.starts_with("mvvm_func_") || n.starts_with("mvvm_array_")),
        "{plain:?}"
    );
    let obj_sym = mvvm_aot::compile_with_symbols(SAMPLE.as_bytes(), &host_opts(1)).unwrap();
    assert!(obj_sym.len() > obj.len());
    let text = |obj: &[u8]| {
        let file = object::File::parse(obj).unwrap();
        file.section_by_name(".text")
            .unwrap()
            .data()
            .unwrap()
            .to_vec()
    };
    assert_eq!(text(&obj), text(&obj_sym));
    assert_eq!(read_meta(&obj), read_meta(&obj_sym));
    let file = object::File::parse(&*obj_sym).unwrap();
    let names = defined(&obj_sym);
    for i in 1..8 {
        assert!(names.contains(&func_symbol(i)), "{}", func_symbol(i));
    }
    assert!(names.contains(&import_stub_symbol(0)));
    for i in &meta.array_trampolines {
        assert!(names.contains(&array_trampoline_symbol(*i)));
    }
    // No relocation may name an undefined symbol.
    for section in file.sections() {
        for (_, reloc) in section.relocations() {
            if let object::RelocationTarget::Symbol(idx) = reloc.target() {
                let sym = file.symbol_by_index(idx).unwrap();
                assert!(!sym.is_undefined(), "undefined {:?}", sym.name());
            }
        }
    }
}

#[test]
fn metadata_round_trips() {
    let obj = compile(SAMPLE.as_bytes(), &host_opts(0)).unwrap();
    let meta = read_meta(&obj);
    let again = mvvm_abi::codec::encode(&meta).unwrap();
    // The checkpoint tables are not part of this encoding (they have
    // their own section): everything else round-trips.
    let mut back = mvvm_abi::codec::decode::<ModuleMeta>(&again).unwrap();
    assert!(back.checkpoint_tables.is_empty());
    back.checkpoint_tables = meta.checkpoint_tables.clone();
    // Nor are the trap sites.
    assert!(back.trap_sites.is_empty());
    back.trap_sites = meta.trap_sites.clone();
    // Nor are the names (read in place from their own section).
    assert!(back.func_names.is_empty());
    assert!(!meta.func_names.is_empty());
    back.func_names = meta.func_names.clone();
    assert_eq!(back, meta);
    assert!(!meta.checkpoint_tables.encoded().is_empty());
    assert!(!meta.trap_sites.body(6).is_empty());
    let wasm = wat::parse_str(SAMPLE).unwrap();
    let from_binary = read_meta(&compile(&wasm, &host_opts(0)).unwrap());
    assert_eq!(from_binary, meta);
}

/// SIMD is compiled (see `tests/simd.rs` and `docs/simd.md`).
#[test]
fn simd_compiles() {
    let wat = r#"(module (func (drop (v128.const i32x4 0 0 0 0))))"#;
    compile(wat.as_bytes(), &host_opts(3)).unwrap();
}

#[test]
fn refused_proposals_are_named() {
    let cases = [
        (
            "(module (global (shared mut i32) (i32.const 0)))",
            "shared-everything threads",
        ),
        ("(module (memory 1) (memory 1))", "multi-memory"),
        ("(module (memory i64 1))", "memory64"),
        (
            "(module (func (param (ref func))))",
            "typed function references",
        ),
        (
            "(module (type $s (struct (field i32))) (func (result (ref null $s)) (ref.null $s)))",
            "GC",
        ),
        (
            "(module (type $f (func)) (func $a) (elem declare func $a) (func (call_ref $f (ref.func $a))))",
            "typed function references",
        ),
        (
            "(module (func (param i64 i64 i64 i64) (result i64 i64) (i64.add128 (local.get 0) (local.get 1) (local.get 2) (local.get 3))))",
            "wide arithmetic",
        ),
    ];
    for (wat, proposal) in cases {
        match compile(wat.as_bytes(), &host_opts(3)) {
            Err(CompileError::Unsupported { feature, .. }) => assert!(
                feature.contains(&format!("the {proposal} proposal")),
                "{wat}: {feature}"
            ),
            other => panic!(
                "{wat}: expected unsupported, got {:?}",
                other.map(|b| b.len())
            ),
        }
    }
}

#[test]
fn garbage_and_invalid_modules_are_errors() {
    assert!(compile(b"\0asm\x01\0\0\0\xff\xff", &host_opts(3)).is_err());
    assert!(compile(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2], &host_opts(3)).is_err());
    assert!(compile(b"(module (func (result i32)))", &host_opts(3)).is_err());
    let err = compile(b"(module (func (result i32) (i64.const 0)))", &host_opts(3)).unwrap_err();
    assert!(matches!(err, CompileError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("type mismatch"), "{err}");
}

/// The runtime's loader applies relocations itself; it supports exactly
/// these kinds, all against defined function symbols in `.text`.
#[test]
fn relocations_are_the_kinds_the_runtime_applies() {
    for (target, allowed) in [
        (TargetArch::X86_64, object::elf::R_X86_64_PLT32),
        (TargetArch::Aarch64, object::elf::R_AARCH64_CALL26),
    ] {
        let opts = CompileOptions {
            opt_level: 3,
            target,
            ..CompileOptions::default()
        };
        // The usual object holds no relocation: its calls are applied.
        let plain = compile(SAMPLE.as_bytes(), &opts).unwrap();
        let plain = object::File::parse(&*plain).unwrap();
        assert_eq!(
            plain
                .sections()
                .map(|s| s.relocations().count())
                .sum::<usize>(),
            0
        );
        let obj = mvvm_aot::compile_keeping_relocations(SAMPLE.as_bytes(), &opts).unwrap();
        if let Ok(dir) = std::env::var("MVVM_AOT_DUMP") {
            std::fs::write(format!("{dir}/sample-{}.o", target.name()), &obj).unwrap();
        }
        let file = object::File::parse(&*obj).unwrap();
        let mut seen = 0;
        for section in file.sections() {
            for (_, reloc) in section.relocations() {
                assert_eq!(section.name().unwrap(), ".text");
                match reloc.flags() {
                    object::RelocationFlags::Elf { r_type } => assert_eq!(r_type, allowed),
                    other => panic!("unexpected relocation {other:?}"),
                }
                seen += 1;
            }
        }
        assert!(seen > 0);
    }
}

/// Compiles the files named in `MVVM_AOT_FILES` (colon-separated) at every
/// level and prints the time each took; does nothing without it.
#[test]
fn compile_files_from_env() {
    let Ok(files) = std::env::var("MVVM_AOT_FILES") else {
        return;
    };
    for path in files.split(':').filter(|p| !p.is_empty()) {
        let wasm = std::fs::read(path).unwrap();
        for level in [0, 3] {
            let start = std::time::Instant::now();
            let obj = compile(&wasm, &host_opts(level)).unwrap_or_else(|e| panic!("{path}: {e}"));
            println!(
                "{path} -O{level}: {} bytes wasm -> {} bytes object in {:?}",
                wasm.len(),
                obj.len(),
                start.elapsed()
            );
        }
    }
}

/// Trap sites carry the module offset of the wasm instruction that traps.
#[test]
fn trap_sites_point_at_the_wasm_instruction() {
    let wasm = wat::parse_str(
        r#"(module
             (memory 1)
             (func (export "f") (param i32) (result i32)
               (nop) (nop)
               (drop (i32.load offset=8 (local.get 0)))
               (unreachable)))"#,
    )
    .unwrap();
    let mut load_at = None;
    let mut unreachable_at = None;
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let mut ops = body.get_operators_reader().unwrap();
            while !ops.eof() {
                let (op, offset) = ops.read_with_offset().unwrap();
                match op {
                    wasmparser::Operator::I32Load { .. } => load_at = Some(offset as u32),
                    wasmparser::Operator::Unreachable => unreachable_at = Some(offset as u32),
                    _ => {}
                }
            }
        }
    }
    for level in [0, 3] {
        let meta = read_meta(&compile(&wasm, &host_opts(level)).unwrap());
        let traps = meta.trap_sites.body(0).to_vec();
        let find = |code| traps.iter().find(|t| t.code == code).map(|t| t.wasm_offset);
        assert_eq!(
            find(mvvm_abi::TrapCode::MemoryOutOfBounds),
            load_at,
            "{traps:?}"
        );
        assert_eq!(
            find(mvvm_abi::TrapCode::Unreachable),
            unreachable_at,
            "{traps:?}"
        );
        assert!(
            traps
                .windows(2)
                .all(|w| w[0].code_offset <= w[1].code_offset)
        );
    }
}
