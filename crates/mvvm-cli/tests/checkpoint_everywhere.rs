//! Checkpoint everywhere: every program of `test/ckpt`, compiled under
//! every policy, is checkpointed at a spread of probe counts (the first,
//! second, second-to-last and last probe and evenly between), restored,
//! and must add up to an uninterrupted run: same stdout (checkpointed part
//! then restored part), same exit code, same files.
//!
//! One test per program so the two cores share the work; about 8 points
//! per policy, more for `compute`.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{
    Baseline, CHECKPOINTED, Guest, Policy, Scratch, Tool, aot, baseline, checkpoint_and_restore,
    everywhere, spread,
};
use std::path::Path;

#[test]
fn compute() -> Result<()> {
    everywhere("compute", &Guest::default(), 14)
}

#[test]
fn recursion() -> Result<()> {
    everywhere("recursion", &Guest::default(), 8)
}

#[test]
fn indirect_calls() -> Result<()> {
    everywhere("indirect", &Guest::default(), 8)
}

#[test]
fn floats() -> Result<()> {
    everywhere("floats", &Guest::default(), 8)
}

#[test]
fn memory_growth() -> Result<()> {
    everywhere("memgrow", &Guest::default(), 8)
}

#[test]
fn files() -> Result<()> {
    everywhere(
        "files",
        &Guest {
            with_dir: true,
            ..Default::default()
        },
        8,
    )
}

#[test]
fn clocks() -> Result<()> {
    everywhere("clocks", &Guest::default(), 8)
}

/// The last line of an uninterrupted run of `program`, which must be
/// `want`: a checksum of everything the program computed, taken from a
/// reference that is not MVVM (see the callers).
fn reference_line(program: &str, want: &str) -> Result<()> {
    let aot = aot(program, Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let out = String::from_utf8_lossy(&base.stdout);
    ensure!(
        base.code == 0 && out.lines().last() == Some(want),
        "{program}: exit {} and output\n{out}\nwant a last line of {want:?}",
        base.code
    );
    Ok(())
}

/// Loops clang vectorizes by itself (`-O3 -msimd128`): v128 accumulators
/// live in vector loops when the checkpoint is taken. The checksum is that
/// of the same C built natively for x86-64 (gcc and clang, `-O3` and
/// `-O0`, which all print the same output).
#[test]
fn simd_auto_vectorized() -> Result<()> {
    reference_line("simd_auto", "checksum 3f98cdccedede965")?;
    everywhere("simd_auto", &Guest::default(), 10)
}

/// `<wasm_simd128.h>` intrinsics, v128 passed to, returned from and kept
/// across non-inlined calls (and a recursion): v128 values in locals and
/// on the operand stack of several frames. The digest is that of the same
/// .wasm run by the wasmi interpreter (0.51, `simd` feature), which
/// prints the same output.
#[test]
fn simd_intrinsics() -> Result<()> {
    reference_line("simd_intrin", "digest e528d54b39f8cde9")?;
    everywhere("simd_intrin", &Guest::default(), 10)
}

/// The last line of `cpp_exceptions.cpp` built natively (`clang++ -O2`,
/// `g++ -O2`, each with its own C++ runtime), of the legacy-EH `.wasm`
/// run by V8 (node 20) and of the exnref one run by Wasmtime 48: the
/// same in all of them.
const CPP_EXCEPTIONS_CHECKSUM: &str = "checksum 20f9e880f514a67d";

/// Probe counts where a loop-policy checkpoint of `program` holds
/// exceptions (the snapshot's exception list is not empty: a frame keeps a
/// caught exception, of a handler running or one it left): up to `count`
/// of them, spread over the run, the one with the most exceptions first.
/// Fails when no candidate holds one: no exception would be restored.
fn exception_points(program: &str, aot: &Path, base: &Baseline, count: usize) -> Result<Vec<u64>> {
    let mut held = Vec::new();
    for c in spread(base.probes, 32) {
        let s = Scratch::new("exn-points");
        let snap = s.join("snap.bin");
        let r = Tool::checkpoint(aot)
            .count(c)
            .snapshot(&snap)
            .current_dir(&s.0)
            .run()?;
        r.expect_code(CHECKPOINTED, &format!("{program} -c {c}"))?;
        let n = mvvm_snapshot::open_file(&snap)?.exceptions.len();
        if n > 0 {
            held.push((c, n));
        }
    }
    ensure!(
        !held.is_empty(),
        "{program}: no checkpoint among 32 holds an exception"
    );
    let most = *held
        .iter()
        .max_by_key(|&&(c, n)| (n, std::cmp::Reverse(c)))
        .context("none")?;
    let mut points = vec![most.0];
    let step = held.len().div_ceil(count.max(1));
    points.extend(held.iter().step_by(step.max(1)).map(|&(c, _)| c));
    points.dedup();
    points.truncate(count);
    eprintln!("{program}: exceptions held at {held:?}; checking {points:?}");
    Ok(points)
}

/// Checkpoints `program` where its frames hold exceptions and restores
/// it: the restored exceptions are the ones its frames refer to.
fn inside_handlers(program: &str) -> Result<()> {
    let aot = aot(program, Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    for c in exception_points(program, &aot, &base, 4)? {
        checkpoint_and_restore(
            &aot,
            &aot,
            &Guest::default(),
            &base,
            c,
            &format!("{program} [loop, exception held]"),
        )?;
    }
    Ok(())
}

/// Functions of `cpp_exceptions.cpp` that only handlers call, and entries
/// into them: `handler_digest` runs in the handler of a `ParseError`,
/// which then rethrows it (`throw;`); `inner_failure` throws a second
/// exception while the handler of a first one runs, which is rethrown
/// after it when the entry is 1 mod 3 (entries 1, 32002 and 64000, the
/// last one); `unwind_cleanup` is called by a destructor while an
/// exception unwinds its frame, between the catch of the cleanup code and
/// its rethrow (266760 entries).
const HANDLER_ENTRIES: [(&str, u64); 8] = [
    ("handler_digest", 1),
    ("handler_digest", 3000),
    ("inner_failure", 1),
    ("inner_failure", 32002),
    ("inner_failure", 64000),
    ("unwind_cleanup", 1),
    ("unwind_cleanup", 133380),
    ("unwind_cleanup", 266760),
];

/// One entry past the last of each function above: no checkpoint.
const PAST_LAST_ENTRY: [(&str, u64); 2] = [("inner_failure", 64001), ("unwind_cleanup", 266761)];

/// Checkpoints `program` (function-entry policy, `-f FUNC -x N`) inside
/// running handlers and cleanups, at [`HANDLER_ENTRIES`], and restores
/// it: the handler goes on, throws and rethrows in the restored process.
/// The entries of [`PAST_LAST_ENTRY`] must not exist (the run ends without
/// a checkpoint), so the last ones above are the last.
fn at_handler_entries(program: &str) -> Result<()> {
    let aot = aot(program, Policy::Function, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    for (func, entry) in HANDLER_ENTRIES {
        let what = format!("{program} -f {func} -x {entry}");
        let s = Scratch::new("handler");
        let snap = s.join("snap.bin");
        let a = Tool::checkpoint(&aot)
            .args(["-f", func, "-x", &entry.to_string()])
            .snapshot(&snap)
            .current_dir(&s.0)
            .run()?;
        a.expect_code(CHECKPOINTED, &what)?;
        let held = mvvm_snapshot::open_file(&snap)?.exceptions.len();
        // In a cleanup, the exception being unwound is in the frame (the
        // legacy catch_all's, or the exnref kept for throw_ref): it must be
        // in the snapshot. In a handler, the C++ runtime has it in memory
        // and the wasm frames may have dropped theirs.
        ensure!(
            func != "unwind_cleanup" || held > 0,
            "{what}: no exception in a snapshot taken while one unwinds"
        );
        let b = Tool::restore(&aot)
            .snapshot(&snap)
            .current_dir(&s.0)
            .run()?;
        b.expect_code(base.code, &format!("{what}: restore"))?;
        let mut out = a.stdout.clone();
        out.extend_from_slice(&b.stdout);
        ensure!(
            out == base.stdout,
            "{what}: output differs\n--- checkpointed run:\n{}\n--- restored run:\n{}\n--- uninterrupted:\n{}\n--- restore stderr:\n{}",
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout),
            String::from_utf8_lossy(&base.stdout),
            b.stderr
        );
        eprintln!("{what}: restored ({held} exceptions in the snapshot)");
    }
    for (func, entry) in PAST_LAST_ENTRY {
        let s = Scratch::new("handler-past");
        let r = Tool::checkpoint(&aot)
            .args(["-f", func, "-x", &entry.to_string()])
            .snapshot(&s.join("snap.bin"))
            .current_dir(&s.0)
            .run()?;
        ensure!(
            r.code() == Some(base.code) && r.stdout == base.stdout && !s.join("snap.bin").exists(),
            "{program}: -f {func} -x {entry} should run to the end: {:?}\n{}",
            r.status,
            r.stderr
        );
    }
    Ok(())
}

/// C++ exceptions (`cpp_exceptions.cpp`, `build_cpp_eh.sh`), legacy
/// encoding (`try`/`catch`/`rethrow`, clang's default): a custom exception
/// class with a payload thrown from deep recursion, catches by type and by
/// base, `throw;`, nested try in a handler, destructors run by unwinding,
/// tens of thousands of throws; checkpointed anywhere, including while
/// handlers run.
#[test]
fn cpp_exceptions_legacy() -> Result<()> {
    reference_line("cpp_exceptions", CPP_EXCEPTIONS_CHECKSUM)?;
    everywhere("cpp_exceptions", &Guest::default(), 10)?;
    inside_handlers("cpp_exceptions")?;
    at_handler_entries("cpp_exceptions")
}

/// The same C++ in the exnref encoding (`try_table`, `throw_ref`; clang's
/// `-mllvm -wasm-use-legacy-eh=false`).
#[test]
fn cpp_exceptions_exnref() -> Result<()> {
    reference_line("cpp_exceptions_exnref", CPP_EXCEPTIONS_CHECKSUM)?;
    everywhere("cpp_exceptions_exnref", &Guest::default(), 10)?;
    inside_handlers("cpp_exceptions_exnref")?;
    at_handler_entries("cpp_exceptions_exnref")
}
