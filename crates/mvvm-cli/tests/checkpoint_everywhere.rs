//! Checkpoint everywhere: every program of `test/ckpt`, compiled under
//! every policy, is checkpointed at a spread of probe counts (the first,
//! second, second-to-last and last probe and evenly between), restored,
//! and must add up to an uninterrupted run: same stdout (checkpointed part
//! then restored part), same exit code, same files.
//!
//! One test per program so the two cores share the work; about 8 points
//! per policy, more for `compute`.

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::{Guest, Policy, aot, baseline, everywhere};

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
