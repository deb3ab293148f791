//! Reading the program given to `-t`: an `.aot` object, or a `.wasm`/`.wat`
//! module that is compiled in memory first.

use anyhow::{Context, Result};
use std::path::Path;

/// The ELF magic that starts every `.aot` file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Reads `path` and returns `.aot` object bytes, compiling wasm or WAT input
/// in memory with default options.
pub fn load_aot_bytes(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(ELF_MAGIC) {
        return Ok(bytes);
    }
    tracing::debug!(path = %path.display(), "not an .aot object: compiling it in memory");
    mvvm_aot::compile(&bytes, &mvvm_aot::CompileOptions::default())
        .with_context(|| format!("cannot compile {}", path.display()))
}
