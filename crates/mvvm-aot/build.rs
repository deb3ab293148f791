//! Computes `MVVM_AOT_BUILD_ID`: a digest of the sources that decide what
//! code the compiler emits (this crate's and `mvvm-abi`'s, and the
//! workspace's `Cargo.lock`, which pins Cranelift). An object records it
//! (`ModuleMeta::producer`), and a resume clone compiled on demand for that
//! object must come from a compiler with the same identity, or its frame
//! layout could differ from the hot body's (`resume_clone.rs`). Two
//! builds of the same sources (another host ISA, another binary) agree;
//! any change of those sources gives another identity.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let inputs = [
        here.join("src"),
        here.join("../mvvm-abi/src"),
        here.join("../../Cargo.lock"),
    ];
    let mut files = Vec::new();
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
        collect(input, &mut files);
    }
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        let name = f.strip_prefix(&here).unwrap_or(f);
        h.update(name.to_string_lossy().as_bytes());
        h.update([0]);
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let id: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=MVVM_AOT_BUILD_ID={id}");
}

/// Every file under `path` (or `path` itself); nothing if it is missing
/// (a crate built outside the workspace has no `Cargo.lock` there).
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for e in entries.flatten() {
        collect(&e.path(), out);
    }
}
