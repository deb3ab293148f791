//! Checkpoint everywhere: every program of `test/ckpt`, compiled under
//! every policy, is checkpointed at a spread of probe counts (the first,
//! second, second-to-last and last probe and evenly between), restored,
//! and must add up to an uninterrupted run: same stdout (checkpointed part
//! then restored part), same exit code, same files.
//!
//! One test per program so the two cores share the work; about 8 points
//! per policy, more for `compute`.

mod checkpoint_support;

use anyhow::Result;
use checkpoint_support::{Guest, everywhere};

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
