//! `Policy::None` must produce no checkpoint code at all: the machine code
//! is byte-identical to what the compiler produced before checkpointing
//! existed, and the metadata has no stable points.
//!
//! The golden hashes below are SHA-256 digests of the `.text` section (the
//! metadata section is left out: it gained `locals` and `policy`). They were
//! taken from the compiler just before the instrumentation was added
//! (commit `97b5775`). Cranelift is pinned to an exact version, so they only
//! change when the translator itself changes on purpose; then regenerate
//! them with `MVVM_PRINT_GOLDEN=1 cargo test -p mvvm-aot --test
//! checkpoint_none -- --nocapture` and say why in the commit message.

use mvvm_abi::object::META_SECTION;
use mvvm_abi::{ModuleMeta, Policy, TargetArch};
use mvvm_aot::{CompileOptions, compile};
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
        "71c6ac5fdd7f39bc8c341a7a48b13af60ba9819c6d485db32f3469e7ca0f3eb8",
    ),
    (
        "inline",
        TargetArch::X86_64,
        3,
        "327f754e9f17f1be9daa53d43ec85f2738c5cebbd68918a2ac83f3e715640ef6",
    ),
    (
        "inline",
        TargetArch::Aarch64,
        0,
        "d9fa52c926ff0584ad3cb4fd219c7cca8690a812b38d036ba6077d864465ef2e",
    ),
    (
        "inline",
        TargetArch::Aarch64,
        3,
        "f7e18d2ec33c7c246995cd0332fabdd0ca04de477d40c6f7d3f3a7380a7ee825",
    ),
    (
        "bench/wasm/bc.wasm@f2678916fffc3afdbd3c4fb391098114b0075e3e0657b236ae1f1d06257866c0",
        TargetArch::X86_64,
        0,
        "e2436e7d33297ff214dda5b448c8c78eb016166c312684ccd5a876567c84ec90",
    ),
    (
        "bench/wasm/bc.wasm@f2678916fffc3afdbd3c4fb391098114b0075e3e0657b236ae1f1d06257866c0",
        TargetArch::X86_64,
        3,
        "74be801ab949f7c4aee0bfc23157817ec3bb7f6f2c23f69c7fa2186d0262e7b5",
    ),
    (
        "bench/wasm/bc.wasm@f2678916fffc3afdbd3c4fb391098114b0075e3e0657b236ae1f1d06257866c0",
        TargetArch::Aarch64,
        0,
        "33e9788f0d98c1a00b2d53823cb2112b97de9529b33a3fd1ae926077e802bec9",
    ),
    (
        "bench/wasm/bc.wasm@f2678916fffc3afdbd3c4fb391098114b0075e3e0657b236ae1f1d06257866c0",
        TargetArch::Aarch64,
        3,
        "c918cf8be190718f4e2be784816249611425c613ccf3380d5dc3fbb512b51bbd",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::X86_64,
        0,
        "cee1f36e58e3039a981531032c94614e896439a25a8e7b0618a5db9a04c2d71a",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::X86_64,
        3,
        "674e9f2c46750437c3b7bf825c0df58395f66f863ca45187afe17e4c3ebaa6a6",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::Aarch64,
        0,
        "2c5e7e99e673e9fa9e1411b4eb721f16a755f1ceee8d3b2a23bd06586ecc2299",
    ),
    (
        "test/c/files.wasm@3492bf111fdae1486662a2bea7ea171b962a97de1c27fd786fc2af921658f022",
        TargetArch::Aarch64,
        3,
        "da650c825062249c9d32f7786f7d4194e405986673aad1346932e7139d971ed7",
    ),
];

/// Wasm files of the repository (from the workspace root) also checked.
const FILES: &[&str] = &["bench/wasm/bc.wasm", "test/c/files.wasm"];

fn text_and_meta(obj: &[u8]) -> (Vec<u8>, ModuleMeta) {
    let file = object::File::parse(obj).expect("ELF");
    let text = file
        .section_by_name(".text")
        .expect(".text")
        .data()
        .expect("text data")
        .to_vec();
    let meta = file
        .section_by_name(META_SECTION)
        .expect("meta")
        .data()
        .expect("meta data")
        .to_vec();
    let meta: ModuleMeta = mvvm_abi::codec::decode(&meta[12..]).expect("meta decodes");
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
                let obj = compile(bytes, &opts).expect("compiles");
                let (text, meta) = text_and_meta(&obj);
                assert_eq!(meta.policy, Policy::None);
                assert!(meta.func_infos.iter().all(|f| f.stable_points.is_empty()));
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
