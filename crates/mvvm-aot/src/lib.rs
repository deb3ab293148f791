//! MVVM's ahead-of-time compiler: WebAssembly 2.0 (without SIMD) to an ELF
//! object (`.aot`) with Cranelift.
//!
//! ```text
//! wasm/WAT ─▶ module.rs (validate, ModuleMeta) ─▶ translate/ (per function,
//!   in parallel: wasm operators ─▶ Cranelift IR, env.rs decides how the
//!   VMContext is reached) ─▶ Cranelift ─▶ object.rs (symbols in index order,
//!   metadata section) ─▶ .aot bytes
//! ```
//!
//! The contract with the runtime (symbol names, VMContext layout, builtins,
//! trap codes, metadata) lives in `mvvm_abi`.
#![forbid(unsafe_code)]

mod driver;
mod env;
mod error;
mod isa;
mod module;
mod object;
mod trampolines;
mod translate;

pub use error::CompileError;
pub use mvvm_abi::TargetArch;
pub use object::META_SYMBOL;

/// Options of [`compile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// Optimisation level, 0..=3 (values above 3 act as 3). 0 is
    /// Cranelift's `none`, 1 and 2 are `speed`, 3 is `speed_and_size`.
    pub opt_level: u8,
    /// Target architecture.
    pub target: TargetArch,
}

impl Default for CompileOptions {
    /// Level 3 for the host architecture (x86-64 when the host is neither
    /// x86-64 nor aarch64: the object can still be produced, not run).
    fn default() -> Self {
        CompileOptions {
            opt_level: 3,
            target: TargetArch::host().unwrap_or(TargetArch::X86_64),
        }
    }
}

/// Compiles a wasm module (binary, or WAT text) into the bytes of an `.aot`
/// ELF object.
///
/// The same input and options always give the same bytes.
pub fn compile(input: &[u8], opts: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    let wasm = wat::parse_bytes(input)?;
    match driver::compile_wasm(&wasm, opts) {
        // A module that only fails because of a feature we leave out (SIMD,
        // threads, a later proposal) is reported as unsupported.
        Err(CompileError::Invalid { offset, message })
            if module::valid_with_all_features(&wasm) =>
        {
            Err(CompileError::Unsupported {
                feature: message,
                offset,
            })
        }
        other => other,
    }
}
