//! The smoke check as part of the test suite: every workload at its smoke
//! size, natively (always: gcc is always present) and under MVVM when the
//! debug build of `mvvm-cli` exists (`cargo build -p mvvm-cli` first; a test
//! never runs cargo itself). Checksums must equal the committed
//! expectations in `bench/expected-smoke.txt`.
//!
//! Without that build the MVVM half is skipped with the reason, except in
//! CI (`CI=true` or `MVVM_REQUIRE_ALL=1`), where it fails:
//! `scripts/test.sh` builds the binaries before it runs the tests.

use mvvm_bench::smoke;
use mvvm_bench::threads;
use mvvm_bench::tools::{MvvmTools, Paths};
use mvvm_bench::workloads;

// The one rule of what must run in CI, shared with the CLI's tests.
#[path = "../../../crates/mvvm-cli/tests/checkpoint_support/require.rs"]
mod require;
use require::missing;

fn all() -> Vec<&'static workloads::Workload> {
    workloads::ALL.iter().collect()
}

fn check(outcomes: &[smoke::SmokeOutcome]) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| o.describe())
        .collect();
    assert_eq!(outcomes.len(), workloads::ALL.len());
    assert!(
        failed.is_empty(),
        "checksum mismatches:\n{}",
        failed.join("\n")
    );
}

#[test]
fn native_builds_print_the_expected_checksums() {
    let paths = Paths::from_build();
    let dir = paths.work().join("smoke-test-native");
    let outcomes = smoke::smoke(&paths, &all(), None, None, &dir, 2).expect("smoke check runs");
    check(&outcomes);
}

#[test]
fn mvvm_prints_the_native_checksums() {
    let paths = Paths::from_build();
    const TEST: &str = "mvvm_prints_the_native_checksums";
    let Some(tools) = MvvmTools::in_dir(&paths.root.join("target").join("debug")) else {
        missing(TEST, "no debug build of mvvm-cli (cargo build -p mvvm-cli)");
        return;
    };
    if !tools.responds() {
        missing(
            TEST,
            "target/debug/mvvm-aot or mvvm-checkpoint does not answer --version \
             (a stale placeholder build); rebuild mvvm-cli first (cargo build -p mvvm-cli)",
        );
        return;
    }
    let dir = paths.work().join("smoke-test-mvvm");
    let outcomes =
        smoke::smoke(&paths, &all(), Some(&tools), None, &dir, 2).expect("smoke check runs");
    check(&outcomes);
}

#[test]
fn every_workload_has_a_source_a_wasm_build_and_an_expected_checksum() {
    let paths = Paths::from_build();
    let expected = smoke::read_expected(&paths.expected_smoke()).expect("expected-smoke.txt reads");
    for w in workloads::ALL {
        assert!(paths.source(w).is_file(), "{} has no C source", w.name);
        let wasm = std::fs::read(paths.wasm(w)).unwrap_or_default();
        assert!(
            wasm.starts_with(b"\0asm"),
            "{} has no committed wasm build",
            w.name
        );
        assert!(
            expected.contains_key(w.name),
            "{} has no expected smoke checksum",
            w.name
        );
    }
    assert_eq!(
        expected.len(),
        workloads::ALL.len(),
        "stale names in expected-smoke.txt"
    );
}

#[test]
fn simd_variants_and_only_they_are_built_with_simd128() {
    // bench/build-wasm.sh builds the `simd of` workloads with -msimd128;
    // clang records that in the module's target_features section.
    let paths = Paths::from_build();
    for w in workloads::ALL {
        let wasm = std::fs::read(paths.wasm(w)).unwrap_or_default();
        let features = mvvm_bench::tools::target_features(&wasm).unwrap_or_default();
        assert_eq!(
            features.iter().any(|f| f == "+simd128"),
            w.simd,
            "{}: target_features {features:?}",
            w.name
        );
    }
}

fn check_threaded(outcomes: &[smoke::SmokeOutcome]) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| o.describe())
        .collect();
    assert_eq!(
        outcomes.len(),
        threads::ALL.len() * threads::THREAD_COUNTS.len()
    );
    assert!(
        failed.is_empty(),
        "checksum mismatches:\n{}",
        failed.join("\n")
    );
}

#[test]
fn threaded_native_builds_print_their_serial_workloads_checksums_at_every_thread_count() {
    let paths = Paths::from_build();
    let dir = paths.work().join("smoke-test-threads-native");
    let all: Vec<_> = threads::ALL.iter().collect();
    let outcomes = smoke::smoke_threads(&paths, &all, threads::THREAD_COUNTS, None, None, &dir)
        .expect("threaded smoke check runs");
    check_threaded(&outcomes);
}

#[test]
fn mvvm_runs_the_threaded_workloads_with_the_native_checksums() {
    let paths = Paths::from_build();
    const TEST: &str = "mvvm_runs_the_threaded_workloads_with_the_native_checksums";
    let Some(tools) = MvvmTools::in_dir(&paths.root.join("target").join("debug")) else {
        missing(TEST, "no debug build of mvvm-cli (cargo build -p mvvm-cli)");
        return;
    };
    if !tools.responds() {
        missing(
            TEST,
            "target/debug/mvvm-aot or mvvm-checkpoint does not answer --version \
             (a stale placeholder build); rebuild mvvm-cli first (cargo build -p mvvm-cli)",
        );
        return;
    }
    let dir = paths.work().join("smoke-test-threads-mvvm");
    let all: Vec<_> = threads::ALL.iter().collect();
    let outcomes = smoke::smoke_threads(
        &paths,
        &all,
        threads::THREAD_COUNTS,
        Some(&tools),
        None,
        &dir,
    )
    .expect("threaded smoke check runs");
    check_threaded(&outcomes);
    assert!(outcomes.iter().all(|o| o.mvvm.is_some()));
}

#[test]
fn every_threaded_workload_has_a_source_and_a_threads_build() {
    let paths = Paths::from_build();
    for w in threads::ALL {
        assert!(
            paths.threaded_source(w).is_file(),
            "{} has no C source",
            w.name
        );
        let wasm = std::fs::read(paths.threaded_wasm(w)).unwrap_or_default();
        assert!(wasm.starts_with(b"\0asm"), "{} has no wasm build", w.name);
        let features = mvvm_bench::tools::target_features(&wasm).unwrap_or_default();
        assert!(
            features.iter().any(|f| f == "+atomics"),
            "{}: target_features {features:?}",
            w.name
        );
    }
}
