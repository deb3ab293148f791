//! Shape of the checkpoint code in Cranelift IR, read from the
//! `MVVM_CLIF_DIR` dumps (`func_N.in.clif`, the IR handed to Cranelift).
//!
//! Two things the hot path of a policy depends on (CHECKPOINT.md, "Where
//! counter-loop's instructions go"):
//! - a probe's cold path rejoins the hot one through a cold block of its
//!   own, so the edge block Cranelift lays out on the hot path stays
//!   empty;
//! - a function that never touches memory keeps no memory-base load (with
//!   a policy the loads are not movable, so Cranelift would keep them).
//!
//! The dump directory is read from the environment when a function is
//! compiled, so the test runs the compilation in a child process (this
//! same test binary, with `MVVM_CLIF_DIR` set) instead of changing its own
//! environment.

use mvvm_abi::Policy;
use mvvm_abi::vmctx::VMCTX_MEMORY;
use mvvm_aot::{CompileOptions, compile};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Set in the child process: compile and return.
const CHILD: &str = "MVVM_CODE_SHAPE_CHILD";

/// Function 0 has a loop (a probe under the loop policy, and a hot body
/// plus a resume clone), so calls of it may unwind; function 1 calls it
/// and touches no memory; function 2 calls it and reads memory. Nothing
/// is exported: an export's entry trampoline is dumped under a
/// `func_N.*.clif` name too and would overwrite a function's dump.
const MODULE: &str = r#"(module
  (memory 1)
  (func $looper (param i32) (result i32)
    (loop $l
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))
    (i32.load (local.get 0)))
  (func $wrap (param i32) (result i32)
    (call $looper (local.get 0)))
  (func $reads (param i32) (result i32)
    (i32.add (i32.load (local.get 0)) (call $looper (local.get 0)))))"#;

fn compile_module() {
    let wasm = wat::parse_str(MODULE).expect("module parses");
    let opts = CompileOptions {
        policy: Policy::Loop,
        ..CompileOptions::default()
    };
    compile(&wasm, &opts).expect("module compiles");
}

/// One block of a `.clif` dump: whether it is cold, and its instructions.
struct ClifBlock {
    cold: bool,
    insts: Vec<String>,
}

/// The blocks of a dump by name, and the names of the functions declared
/// with a `preserve_all` signature (the probe trampoline).
fn parse(text: &str) -> (HashMap<String, ClifBlock>, Vec<String>) {
    let mut blocks = HashMap::new();
    let mut preserve_sigs = Vec::new();
    let mut probe_fns = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some((sig, rest)) = t.split_once(" = ")
            && sig.starts_with("sig")
            && rest.ends_with("preserve_all")
        {
            preserve_sigs.push(sig.to_string());
        }
        if let Some((f, rest)) = t.split_once(" = ")
            && f.starts_with("fn")
            && preserve_sigs
                .iter()
                .any(|s| rest.ends_with(&format!(" {s}")))
        {
            probe_fns.push(f.to_string());
        }
        if t.starts_with("block") && t.ends_with(':') {
            let head = t.trim_end_matches(':');
            let cold = head.ends_with(" cold");
            let name: String = head
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            blocks.insert(
                name.clone(),
                ClifBlock {
                    cold,
                    insts: Vec::new(),
                },
            );
            current = Some(name);
            continue;
        }
        if let Some(b) = current.as_ref().and_then(|n| blocks.get_mut(n)) {
            // Instructions start with a source location (`@0031`) or a
            // value; alias lines (`v44 -> v1`) are not instructions.
            if !t.is_empty() && !t.contains(" -> ") {
                let inst = match t.split_once(' ') {
                    Some((loc, rest)) if loc.starts_with('@') => rest.trim(),
                    _ => t,
                };
                b.insts.push(inst.to_string());
            }
        }
    }
    (blocks, probe_fns)
}

/// `brif c, a(args), b(args)` -> the names of `a` and `b`.
fn brif_targets(inst: &str) -> Option<(String, String)> {
    let rest = inst.strip_prefix("brif ")?;
    let mut names = rest
        .split([',', ' ', '('])
        .filter(|w| w.starts_with("block"));
    Some((names.next()?.to_string(), names.next()?.to_string()))
}

/// Checks every probe of the dump: the flag test branches to a cold block
/// that calls the probe trampoline; that block's `unwind_state` test
/// continues through a cold block holding only a jump to the flag test's
/// hot successor. Returns how many probes it checked.
fn check_probes(name: &str, text: &str) -> usize {
    let (blocks, probe_fns) = parse(text);
    assert!(
        !probe_fns.is_empty(),
        "{name}: no preserve_all probe function"
    );
    let mut probes = 0;
    for block in blocks.values() {
        let Some((probe, hot)) = block.insts.last().and_then(|i| brif_targets(i)) else {
            continue;
        };
        let Some(p) = blocks.get(&probe) else {
            continue;
        };
        let calls_probe = p.insts.iter().any(|i| {
            probe_fns
                .iter()
                .any(|f| i.starts_with(&format!("call {f}(")))
        });
        if !calls_probe {
            continue;
        }
        probes += 1;
        assert!(p.cold, "{name}: probe block {probe} is not cold");
        let (_, back) = p
            .insts
            .last()
            .and_then(|i| brif_targets(i))
            .unwrap_or_else(|| panic!("{name}: probe block {probe} does not end in a brif"));
        assert_ne!(
            back, hot,
            "{name}: probe block {probe} rejoins {hot} directly (a critical edge on the hot path)"
        );
        let b = &blocks[&back];
        assert!(b.cold, "{name}: rejoin block {back} is not cold");
        assert_eq!(
            b.insts,
            vec![format!("jump {hot}")],
            "{name}: rejoin block {back} should only jump to {hot}"
        );
    }
    probes
}

/// Whether the dump loads the `VMMemory` pointer from the vmctx (the first
/// of the two memory-base loads).
fn loads_memory_pointer(text: &str) -> bool {
    let addr = if VMCTX_MEMORY == 0 {
        "v0".to_string()
    } else {
        format!("v0+{VMCTX_MEMORY}")
    };
    text.lines()
        .any(|l| l.contains("= load.i64") && l.trim_end().ends_with(&format!("readonly {addr}")))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn probes_rejoin_through_a_cold_block_and_unused_memory_bases_go() {
    if std::env::var_os(CHILD).is_some() {
        compile_module();
        return;
    }
    let dir = std::env::temp_dir().join(format!("mvvm-code-shape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dump directory");
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "probes_rejoin_through_a_cold_block_and_unused_memory_bases_go",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MVVM_CLIF_DIR", &dir)
        .output()
        .expect("child test runs");
    assert!(
        out.status.success(),
        "child compilation failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The hot body and the resume clone of $looper each have the loop's
    // probe.
    for file in ["func_0.in.clif", "func_0.resume.in.clif"] {
        let text = read(&dir, file);
        assert_eq!(check_probes(file, &text), 1, "{file}: one probe expected");
    }
    // $wrap touches no memory: no memory-base load is left. $reads does:
    // its load stays (the check can tell them apart).
    assert!(
        !loads_memory_pointer(&read(&dir, "func_1.in.clif")),
        "func_1 ($wrap) still loads the memory base"
    );
    assert!(
        loads_memory_pointer(&read(&dir, "func_2.in.clif")),
        "func_2 ($reads) lost its memory-base load"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
