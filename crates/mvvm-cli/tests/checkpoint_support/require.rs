//! Tests that need something of the machine (root and `ip netns`, the
//! aarch64 tools and qemu, `mkfifo`) skip without it on a developer's
//! machine, saying why; in CI they must run, because a test that skips
//! there passes without having tested anything.
//!
//! "In CI" is `CI=true` (what CI services set) or `MVVM_REQUIRE_ALL=1`
//! (which `.ci/run` exports, so a local run of it behaves the same).

/// Whether every test must run (`CI` or `MVVM_REQUIRE_ALL` set, and not
/// to `0` or `false`).
pub fn everything_must_run() -> bool {
    ["CI", "MVVM_REQUIRE_ALL"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"))
}

/// Says that `test` cannot run here because `what` is missing: a failure
/// when [`everything_must_run`], else a note on stderr (the caller then
/// returns).
pub fn missing(test: &str, what: &str) {
    assert!(
        !everything_must_run(),
        "{test} cannot run: {what} (CI=true or MVVM_REQUIRE_ALL=1: every test must run)"
    );
    eprintln!("skipped {test}: {what}");
}
