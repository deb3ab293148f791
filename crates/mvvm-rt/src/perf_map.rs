//! `MVVM_PERF_MAP=1`: a perf map of the generated code
//! (`/tmp/perf-PID.map`, one `START SIZE NAME` line per function, in hex),
//! so `perf report` names wasm functions instead of showing `[JIT]`
//! addresses. A developer aid, off unless the variable is set. With it,
//! the loader copies the text instead of mapping it from the `.aot`
//! file: `perf` reads a perf map only for anonymous memory, and names
//! file-backed code from the file's ELF symbols, which an object has
//! only when compiled with `mvvm-aot --symbols` (then named `mvvm_func_N`
//! rather than by the wasm name section, as the map does).

use std::io::Write;

/// Whether the user asked for a perf map.
pub(crate) fn wanted() -> bool {
    std::env::var_os("MVVM_PERF_MAP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Appends `entries` (start address, size, name) to this process's perf
/// map. Failures are logged and otherwise ignored: profiling aids never
/// stop a run.
pub(crate) fn append(entries: &[(usize, usize, String)]) {
    let path = format!("/tmp/perf-{}.map", std::process::id());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    let mut out = match file {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            tracing::warn!("cannot write the perf map {path}: {e}");
            return;
        }
    };
    for (start, size, name) in entries {
        // perf reads the name to the end of the line.
        let name: String = name.chars().filter(|c| *c != '\n').collect();
        if let Err(e) = writeln!(out, "{start:x} {size:x} {name}") {
            tracing::warn!("cannot write the perf map {path}: {e}");
            return;
        }
    }
    if let Err(e) = out.flush() {
        tracing::warn!("cannot write the perf map {path}: {e}");
    }
}
