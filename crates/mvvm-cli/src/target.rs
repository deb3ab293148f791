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

/// The snapshot path used when `--snapshot` is not given: the target's path
/// with the extension `.bin` (`bc.aot` → `bc.bin`), as the original MVVM
/// did, so `mvvm-restore -t bc.aot` finds what `mvvm-checkpoint -t bc.aot`
/// wrote. A target that is itself named `*.bin` gets `*.bin.snapshot`, so
/// a checkpoint never overwrites its own program.
pub fn default_snapshot_path(target: &Path) -> std::path::PathBuf {
    if target.extension().is_some_and(|e| e == "bin") {
        let mut name = target.as_os_str().to_owned();
        name.push(".snapshot");
        return name.into();
    }
    target.with_extension("bin")
}

/// The program name the guest sees as `argv[0]`: the target's file stem.
pub fn program_name(target: &Path) -> String {
    target
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_path_next_to_the_target() {
        assert_eq!(
            default_snapshot_path(Path::new("dir/bc.aot")),
            Path::new("dir/bc.bin")
        );
        assert_eq!(default_snapshot_path(Path::new("bc")), Path::new("bc.bin"));
        assert_eq!(
            default_snapshot_path(Path::new("bc.bin")),
            Path::new("bc.bin.snapshot")
        );
        assert_eq!(program_name(Path::new("/x/bc.aot")), "bc");
    }
}
