//! `Policy::None` must produce no checkpoint code at all: the machine code
//! is byte-identical to what the compiler produced before checkpointing
//! existed, and the metadata has no stable points.
//!
//! The golden hashes below are SHA-256 digests of the `.text` section (the
//! metadata section is left out: it gained `locals` and `policy`), with
//! the call fields `mvvm-aot` pre-links put back to zero
//! ([`text_and_meta`]). They were
//! taken from the compiler just before the instrumentation was added
//! (commit `97b5775`), and retaken when wasm functions moved to
//! Cranelift's `tail` calling convention for tail calls (the code was
//! byte-identical with the platform convention just before the switch). Cranelift is pinned to an exact version, so they only
//! change when the translator itself changes on purpose; then regenerate
//! them with `MVVM_PRINT_GOLDEN=1 cargo test -p mvvm-aot --test
//! checkpoint_none -- --nocapture` and say why in the commit message.

use mvvm_abi::object::{CKPT_SECTION, META_SECTION};
use mvvm_abi::{ModuleMeta, Policy, TargetArch};
use mvvm_aot::{CompileOptions, compile_keeping_relocations};
use object::{Object, ObjectSection};
use sha2::{Digest, Sha256};

/// Calls (direct, indirect, import), nested loops with parameters, a
/// multi-value block and locals of every type: everything the
/// instrumentation touches.
const MODULE: &str = r#"
(module
  (import "env" "host" (func $host (param i32 f64) (result i64)))
  (type $bin (func (param i32 i32) (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) func $add $mul)
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))
  (func (export "run") (param $n i32) (result i32)
    (local $acc i32) (local $f f32) (local $d f64) (local $w i64) (local $r funcref)
    (local.set $acc (i32.const 1))
    (block $out
      (loop $outer
        (br_if $out (i32.eqz (local.get $n)))
        (local.set $w
          (i64.add (local.get $w)
            (call $host (local.get $acc) (local.get $d))))
        (i32.const 7)
        (loop $inner (param i32) (result i32)
          (i32.const 1)
          (i32.sub)
          (local.tee $acc)
          (br_if $inner (i32.gt_s (local.get $acc) (i32.const 3))))
        (local.set $acc
          (i32.add (call_indirect (type $bin) (local.get $acc) (local.get $n)
                     (i32.and (local.get $n) (i32.const 1)))))
        (local.set $f (f32.add (local.get $f) (f32.const 1.5)))
        (local.set $d (f64.promote_f32 (local.get $f)))
        (i32.store (local.get $acc) (local.get $n))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $outer)))
    (i32.add (local.get $acc) (i32.wrap_i64 (local.get $w))))
  (func (export "multi") (param i32) (result i32 i64)
    (block (result i32 i64)
      (call $add (local.get 0) (i32.const 2))
      (i64.const 3)))
)
"#;

/// `(input, target, opt_level, hex sha256 of .text)`. `input` is
/// `"inline"` for [`MODULE`], else a wasm file of the repository named with
/// the hex SHA-256 of its bytes (entries whose file changed are skipped:
/// the benchmarks may be rebuilt).
const GOLDEN: &[(&str, TargetArch, u8, &str)] = &[
    (
        "inline",
        TargetArch::X86_64,
        0,
        "4bbc8c2839322a714f12dba4b36a348c875d63a0714f3a91167ecb9dd93368aa",
    ),
    (
        "inline",
        TargetArch::X86_64,
        3,
        "633263ba0d341e68099b0abf0392acabde9a8ad463fefcc7b836b81d83362c1b",
    ),
    (
        "inline",
        TargetArch::Aarch64,
        0,
        "3efe02ed773737cfcec9177dbca3f3d50e0f928845819b8e51f8948c61c1be8b",
    ),
    (
        "inline",
        TargetArch::Aarch64,
        3,
        "a134f00e4539afac21eb7ffe1027d8a661e57122a5d3cff7ad814b5413726f73",
    ),
    (
        "bench/wasm/bc.wasm@b507653f5f20bc6ebb818051e94e129122aa5f6bfa942e9e0de102a589ccb336",
        TargetArch::X86_64,
        0,
        "68c7652039781ca07b292efa88c5e211f8acc20e8de350fbfde0f36edef1d354",
    ),
    (
        "bench/wasm/bc.wasm@b507653f5f20bc6ebb818051e94e129122aa5f6bfa942e9e0de102a589ccb336",
        TargetArch::X86_64,
        3,
        "89e41e8e1375d288eabbaabd602f05b864214157b0b36a921c11bd292d943ea9",
    ),
    (
        "bench/wasm/bc.wasm@b507653f5f20bc6ebb818051e94e129122aa5f6bfa942e9e0de102a589ccb336",
        TargetArch::Aarch64,
        0,
        "cf74d6106800a4a272f86b45e0737421c702af6b33dd8dc20a9b679f15e6ebe9",
    ),
    (
        "bench/wasm/bc.wasm@b507653f5f20bc6ebb818051e94e129122aa5f6bfa942e9e0de102a589ccb336",
        TargetArch::Aarch64,
        3,
        "b86da736b8c0910a5186374ecffa232e45635690665029a1675baf30d403026e",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::X86_64,
        0,
        "5f3f8024303e0dc74747a532886165f1f35f1e271a1ec7d0ec89ff88659dfb2f",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::X86_64,
        3,
        "31b0584ed509f77fd92118c0931905ecc2187ae9707c404b624a78e0462e9c2a",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::Aarch64,
        0,
        "bcadc6b0ad382daf38dae752a1998b125aebdc76f2995d11e4fde7aa7ea5e98a",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::Aarch64,
        3,
        "2758338150f3fe5b5048a20fe4db17b325181fc3bb66ff8552d333fad6329a58",
    ),
];

/// Wasm files of the repository (from the workspace root) also checked.
const FILES: &[&str] = &["bench/wasm/bc.wasm", "test/c/files.wasm"];

/// `.text` as the code generator left it: the fields of the calls between
/// functions that `mvvm-aot` applies itself (the object is pre-linked, so
/// that the runtime can map the code from the file untouched) are put
/// back to the zeros of an unlinked object, so the digest follows the
/// code generated, not where the functions were laid out. `obj` must
/// keep its call relocations (`compile_keeping_relocations`: the same
/// text, with the relocations that say where the calls are).
fn text_and_meta(obj: &[u8]) -> (Vec<u8>, ModuleMeta) {
    let file = object::File::parse(obj).expect("ELF");
    let section = file.section_by_name(".text").expect(".text");
    let mut text = section.data().expect("text data").to_vec();
    for (offset, reloc) in section.relocations() {
        let at = offset as usize;
        let object::RelocationFlags::Elf { r_type } = reloc.flags() else {
            continue;
        };
        match r_type {
            object::elf::R_X86_64_PLT32 | object::elf::R_X86_64_PC32 => {
                text[at..at + 4].fill(0);
            }
            object::elf::R_AARCH64_CALL26 | object::elf::R_AARCH64_JUMP26 => {
                let word = u32::from_le_bytes(text[at..at + 4].try_into().unwrap());
                text[at..at + 4].copy_from_slice(&(word & !0x03ff_ffff).to_le_bytes());
            }
            _ => {}
        }
    }
    let meta = file
        .section_by_name(META_SECTION)
        .expect("meta")
        .data()
        .expect("meta data")
        .to_vec();
    let mut meta: ModuleMeta = mvvm_abi::codec::decode(&meta[12..]).expect("meta decodes");
    let tables = file.section_by_name(CKPT_SECTION).expect("tables");
    meta.attach_tables_section(tables.data().expect("tables data"))
        .expect("tables header");
    (text, meta)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn workspace_file(rel: &str) -> Option<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read(root.join(rel)).ok()
}

#[test]
fn policy_none_code_is_unchanged() {
    let print = std::env::var_os("MVVM_PRINT_GOLDEN").is_some();
    let mut inputs = vec![("inline".to_string(), MODULE.as_bytes().to_vec())];
    for rel in FILES {
        if let Some(bytes) = workspace_file(rel) {
            inputs.push((format!("{rel}@{}", hex(&Sha256::digest(&bytes))), bytes));
        }
    }
    let mut checked = 0;
    for (name, bytes) in &inputs {
        for target in [TargetArch::X86_64, TargetArch::Aarch64] {
            for opt_level in [0u8, 3] {
                let opts = CompileOptions {
                    opt_level,
                    target,
                    ..CompileOptions::default()
                };
                let obj = compile_keeping_relocations(bytes, &opts).expect("compiles");
                let (text, meta) = text_and_meta(&obj);
                assert_eq!(meta.policy, Policy::None);
                let tables = meta.all_func_tables().expect("tables decode");
                assert!(tables.iter().all(|f| f.stable_points.is_empty()));
                assert_eq!(meta.frame_slots, 0);
                let digest = hex(&Sha256::digest(&text));
                if print {
                    println!(
                        "    (\"{name}\", TargetArch::{target:?}, {opt_level}, \"{digest}\"),"
                    );
                    continue;
                }
                let Some(expected) = GOLDEN
                    .iter()
                    .find(|(n, t, o, _)| n == name && *t == target && *o == opt_level)
                    .map(|(_, _, _, h)| *h)
                else {
                    assert_ne!(name, "inline", "no golden entry for the inline module");
                    println!("skipped {name}: the file changed since the goldens were taken");
                    continue;
                };
                assert_eq!(digest, expected, "{name} {target:?} -O{opt_level}");
                checked += 1;
            }
        }
    }
    assert!(print || checked >= 4, "only {checked} goldens checked");
}
