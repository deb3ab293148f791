//! Reading the program given to `-t`: an `.aot` object, or a `.wasm`/`.wat`
//! module that is compiled first (or taken from the compiled-object cache).

use crate::compile_cache::CompileCache;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The ELF magic that starts every `.aot` file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// What an input file is, judged by its bytes (never by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An ELF file: an MVVM object, or the loader will say why not.
    Object,
    /// A wasm binary (the `\0asm` magic).
    Wasm,
    /// UTF-8 text: compiled as WAT.
    Text,
    /// None of those: not a program MVVM can run or compile.
    Other,
}

impl InputKind {
    /// Classifies `bytes`.
    pub fn of(bytes: &[u8]) -> InputKind {
        if bytes.starts_with(ELF_MAGIC) {
            InputKind::Object
        } else if bytes.starts_with(mvvm_aot::WASM_MAGIC) {
            InputKind::Wasm
        } else if std::str::from_utf8(bytes).is_ok() {
            InputKind::Text
        } else {
            InputKind::Other
        }
    }
}

/// The refusal of an input of kind [`InputKind::Other`]: without it such a
/// file would be reported as WAT that does not parse.
pub fn not_a_program(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: not a WebAssembly module or MVVM object (neither the \\0asm nor the ELF magic, and not UTF-8 text)",
        path.display()
    )
}

/// Loads `path`: an `.aot` object mapped from its file (its code pages are
/// read when run, and shared with other processes running the same
/// object: start-up does not grow with the object's size, see
/// `docs/startup.md`); a wasm or WAT module read and compiled with default
/// options, through the compiled-object cache `cache` (see
/// [`crate::compile_cache`]).
pub fn load_module(path: &Path, cache: &CompileCache) -> Result<mvvm_rt::Module> {
    let cannot_read = || format!("cannot read {}", path.display());
    let mut head = Vec::with_capacity(ELF_MAGIC.len());
    std::fs::File::open(path)
        .and_then(|f| {
            use std::io::Read;
            f.take(ELF_MAGIC.len() as u64).read_to_end(&mut head)
        })
        .with_context(cannot_read)?;
    if InputKind::of(&head) == InputKind::Object {
        return mvvm_rt::Module::from_aot_file(path).context("cannot load the program");
    }
    let bytes = std::fs::read(path).with_context(cannot_read)?;
    let load = |aot: &[u8]| mvvm_rt::Module::from_aot(aot).context("cannot load the program");
    match InputKind::of(&bytes) {
        InputKind::Object => return load(&bytes),
        InputKind::Other => bail!(not_a_program(path)),
        InputKind::Wasm | InputKind::Text => {}
    }
    tracing::debug!(path = %path.display(), "not an .aot object: compiling it (or taking it from the cache)");
    let opts = mvvm_aot::CompileOptions::default();
    Ok(cache.load_or_compile(path, &bytes, &opts, load)?.value)
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

    #[test]
    fn inputs_are_classified_by_their_bytes() {
        assert_eq!(InputKind::of(b"\x7fELF\x02\x01"), InputKind::Object);
        assert_eq!(InputKind::of(b"\0asm\x01\0\0\0"), InputKind::Wasm);
        assert_eq!(InputKind::of(b"(module)"), InputKind::Text);
        assert_eq!(InputKind::of(b""), InputKind::Text);
        assert_eq!(InputKind::of(b"\x89PNG\r\n\x1a\n\xff"), InputKind::Other);
    }
}
