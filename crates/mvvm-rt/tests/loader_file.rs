//! Loading an `.aot` object from its file: mapped rather than read, its
//! text mapped from the file and pre-linked (see docs/startup.md).

use mvvm_aot::{CompileOptions, Policy};
use mvvm_rt::loader::LoadError;
use mvvm_rt::{Instance, Module, Store, Val};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::PathBuf;

/// Calls in both directions (forward and backward in the text), a
/// recursion and a loop, so that wrong call displacements show.
const WAT: &str = r#"(module
  (memory 1)
  (func $inc (param i32) (result i32) local.get 0 i32.const 1 i32.add)
  (func $fib (export "fib") (param i32) (result i32)
    local.get 0 i32.const 2 i32.lt_u
    if (result i32) local.get 0
    else
      local.get 0 i32.const 1 i32.sub call $fib
      local.get 0 i32.const 2 i32.sub call $fib
      i32.add
    end)
  (func (export "count") (param i32) (result i32) (local i32)
    loop $l
      local.get 1 call $inc local.set 1
      local.get 1 local.get 0 i32.lt_u br_if $l
    end
    local.get 1 call $dec call $inc)
  (func $dec (param i32) (result i32) local.get 0 i32.const 1 i32.sub)"#;

/// Links in the chain `$c0 → $c1 → ...` (each adds its number and calls
/// `$inc`, defined first, then the next): several pages of text, so that
/// most of it is mapped from the file rather than copied.
const CHAIN: u32 = 400;

fn wat() -> String {
    let mut w = WAT.to_string();
    for k in 0..CHAIN {
        let next = if k + 1 < CHAIN {
            format!("call $c{}", k + 1)
        } else {
            String::new()
        };
        w.push_str(&format!(
            "\n  (func $c{k} (param i32) (result i32) local.get 0 i32.const {k} i32.add call $inc i32.const 1 i32.sub {next})"
        ));
    }
    w.push_str("\n  (export \"chain\" (func $c0)))");
    w
}

fn compile(policy: Policy) -> Vec<u8> {
    let opts = CompileOptions {
        policy,
        ..Default::default()
    };
    let bytes = mvvm_aot::compile(wat().as_bytes(), &opts).expect("compile");
    let file = object::File::parse(&*bytes).unwrap();
    let text = file.section_by_name(".text").expect(".text").size();
    assert!(text > 4 * 4096, "only {text} bytes of text: little to map");
    bytes
}

/// A file in a fresh directory of the test's own, holding `bytes`.
fn file_with(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mvvm-loader-file-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.aot");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn check_runs(m: &Module) {
    let mut store = Store::new();
    let i = Instance::new(&mut store, m, &[]).unwrap();
    assert_eq!(
        i.invoke(&mut store, "fib", &[Val::I32(15)]).unwrap(),
        vec![Val::I32(610)]
    );
    assert_eq!(
        i.invoke(&mut store, "count", &[Val::I32(1000)]).unwrap(),
        vec![Val::I32(1000)]
    );
    let sum = (0..CHAIN as i32).sum::<i32>();
    assert_eq!(
        i.invoke(&mut store, "chain", &[Val::I32(7)]).unwrap(),
        vec![Val::I32(7 + sum)]
    );
}

#[test]
fn a_mapped_object_runs_like_a_copied_one() {
    for policy in [Policy::None, Policy::Loop] {
        let bytes = compile(policy);
        let path = file_with(&format!("{policy:?}"), &bytes);
        check_runs(&Module::from_aot_file(&path).unwrap());
        check_runs(&Module::from_aot(&bytes).unwrap());
        // The module keeps its own mapping: replacing the file (as
        // mvvm-aot does, by renaming) does not disturb it.
        let m = Module::from_aot_file(&path).unwrap();
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, b"not an object any more").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        check_runs(&m);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}

#[test]
fn the_text_is_page_aligned_prelinked_and_clones_come_last() {
    use mvvm_abi::object::ENTRIES_SECTION;
    let bytes = compile(Policy::Loop);
    let file = object::File::parse(&*bytes).unwrap();
    let text = file.section_by_name(".text").expect(".text");
    let (offset, _) = text.file_range().unwrap();
    assert_eq!(offset % 4096, 0, ".text at file offset {offset:#x}");
    // The calls are applied and their relocations left out: the loader
    // has nothing to read or write in the text.
    assert_eq!(text.relocations().count(), 0);
    // Where the bodies and clones are: the entries section (the object
    // has no per-function symbols unless compiled with them).
    assert!(
        !file
            .symbols()
            .any(|s| s.name().is_ok_and(|n| n.starts_with("mvvm_func_"))),
        "function symbols only with --symbols"
    );
    let meta = mvvm_rt::loader::read_meta(&bytes).unwrap();
    let data = file
        .section_by_name(ENTRIES_SECTION)
        .expect("entries")
        .data()
        .unwrap();
    let t = mvvm_abi::entries::EntryTable::parse(
        data,
        meta.num_defined_funcs(),
        meta.num_imported_funcs as usize,
        meta.array_trampolines.len(),
    )
    .unwrap();
    let last_body = (0..t.funcs())
        .map(|k| t.body(k).unwrap().end())
        .max()
        .unwrap();
    let first_clone = (0..t.funcs())
        .filter_map(|k| t.clone_of(k))
        .map(|c| u64::from(c.offset))
        .min()
        .expect("resume clones with a policy");
    assert!(
        last_body <= first_clone,
        "bodies end at {last_body:#x}, clones start at {first_clone:#x}"
    );
}

#[test]
fn file_errors_name_the_file() {
    let missing = std::env::temp_dir().join("mvvm-loader-file-no-such.aot");
    let e = Module::from_aot_file(&missing).unwrap_err();
    assert!(matches!(e, LoadError::Read { .. }), "{e:?}");
    assert!(
        e.to_string().contains("mvvm-loader-file-no-such.aot"),
        "{e}"
    );

    let bytes = compile(Policy::None);
    let path = file_with("cut", &bytes[..bytes.len() / 2]);
    assert!(Module::from_aot_file(&path).is_err());
    std::fs::write(&path, b"").unwrap();
    assert!(Module::from_aot_file(&path).is_err());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn the_process_start_is_recorded_before_main() {
    let start = mvvm_rt::loader::process_start().expect("recorded by .init_array");
    assert!(start.elapsed().as_secs() < 3600);
}

/// Every call the writer pre-linked holds the displacement a linker would
/// write (`S + A - P`), on both ISAs (the other one is only compiled, not
/// run, so its bytes are checked here). The relocations are read from an
/// object compiled with them kept, whose text must equal the usual one's;
/// the loader applies them again (to the same bytes) and it runs.
#[test]
fn prelinked_calls_hold_their_displacements_on_both_isas() {
    use object::{RelocationFlags, RelocationTarget, elf};
    for target in [mvvm_aot::TargetArch::X86_64, mvvm_aot::TargetArch::Aarch64] {
        let opts = CompileOptions {
            policy: Policy::Loop,
            target,
            ..Default::default()
        };
        let bytes =
            mvvm_aot::compile_keeping_relocations(wat().as_bytes(), &opts).expect("compile");
        let plain = mvvm_aot::compile(wat().as_bytes(), &opts).expect("compile");
        let plain = object::File::parse(&*plain).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        let text = file.section_by_name(".text").unwrap();
        let data = text.data().unwrap();
        assert_eq!(
            plain.section_by_name(".text").unwrap().data().unwrap(),
            data,
            "{target:?}: the text differs with the relocations kept"
        );
        if mvvm_abi::meta::TargetArch::host() == Some(target) {
            check_runs(&Module::from_aot(&bytes).unwrap());
        }
        let mut checked = 0;
        for (place, r) in text.relocations() {
            let (RelocationFlags::Elf { r_type }, RelocationTarget::Symbol(s)) =
                (r.flags(), r.target())
            else {
                panic!("unexpected relocation {r:?}");
            };
            let sym = file.symbol_by_index(s).unwrap();
            if sym.section_index() != Some(text.index()) {
                continue;
            }
            let d = (sym.address() as i64 + r.addend()) - place as i64;
            let at = place as usize;
            let word = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            match r_type {
                elf::R_X86_64_PLT32 | elf::R_X86_64_PC32 => assert_eq!(word as i32 as i64, d),
                elf::R_AARCH64_CALL26 => {
                    assert_eq!(word & 0x03ff_ffff, ((d >> 2) as u32) & 0x03ff_ffff);
                    assert!(
                        matches!(word >> 26, 0b100101 | 0b000101),
                        "a bl or b instruction: {word:#x}"
                    );
                }
                other => panic!("relocation type {other} in .text"),
            }
            checked += 1;
        }
        assert!(checked > CHAIN as usize, "{target:?}: only {checked} calls");
    }
}
