//! The WASI corpus of `test/c` checkpointed everywhere too: programs that
//! keep directories and files open, rename and unlink, read their
//! arguments and environment, draw random numbers and use C++ streams.
//! Their state lives mostly in WASI (descriptors, offsets, directory
//! cookies), so they test what the snapshot carries besides memory.
//! Loop and counter-loop policies only, fewer points than for
//! `test/ckpt`, to keep the suite fast.

mod checkpoint_support;

use anyhow::Result;
use checkpoint_support::{Guest, Policy, everywhere_under};
use std::path::Path;

const POLICIES: [Policy; 2] = [Policy::Loop, Policy::CounterLoop(4)];

fn corpus(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test/c")
        .join(format!("{name}.wasm"))
        .to_str()
        .expect("UTF-8 path")
        .to_owned()
}

fn with_dir() -> Guest {
    Guest {
        with_dir: true,
        ..Default::default()
    }
}

#[test]
fn files() -> Result<()> {
    everywhere_under(&corpus("files"), &with_dir(), 6, &POLICIES)
}

#[test]
fn dirs() -> Result<()> {
    everywhere_under(&corpus("dirs"), &with_dir(), 6, &POLICIES)
}

/// The program also unlinks a file it still has open (`tmp`, the Unix
/// anonymous temporary file idiom): a checkpoint taken between the unlink
/// and the close carries the file's contents, and the restore gives them
/// back as an anonymous file. Every point must restore exactly.
#[test]
fn rename_unlink() -> Result<()> {
    everywhere_under(&corpus("rename_unlink"), &with_dir(), 6, &POLICIES)
}

#[test]
fn stat_times() -> Result<()> {
    everywhere_under(&corpus("stat_times"), &with_dir(), 6, &POLICIES)
}

#[test]
fn args_env() -> Result<()> {
    let guest = Guest {
        args: vec!["x".into(), "-flag=1".into()],
        env: vec!["GREETING=hello world".into(), "A=1".into(), "EMPTY=".into()],
        ..Default::default()
    };
    everywhere_under(&corpus("args_env"), &guest, 6, &POLICIES)
}

#[test]
fn exit_code() -> Result<()> {
    let guest = Guest {
        args: vec!["exit".into(), "42".into()],
        ..Default::default()
    };
    everywhere_under(&corpus("exit_code"), &guest, 4, &POLICIES)
}

#[test]
fn random() -> Result<()> {
    everywhere_under(&corpus("random"), &Guest::default(), 6, &POLICIES)
}

#[test]
fn cpp_streams() -> Result<()> {
    everywhere_under(&corpus("cpp_streams"), &with_dir(), 6, &POLICIES)
}
