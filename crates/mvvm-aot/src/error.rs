//! The errors [`compile`](crate::compile) reports.
//!
//! Every variant says where: a byte offset in the wasm module for problems
//! of the input, a function index for problems of code generation.

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The input looked like WAT text but did not parse.
    #[error("invalid WAT text: {0}")]
    Wat(#[from] wat::Error),
    /// The module is malformed or does not validate.
    #[error("invalid module at offset {offset:#x}: {message}")]
    Invalid {
        /// Byte offset in the module.
        offset: usize,
        /// wasmparser's message.
        message: String,
    },
    /// The module is valid but uses a feature MVVM does not support (SIMD,
    /// threads, or a proposal after WebAssembly 2.0).
    #[error("unsupported feature at offset {offset:#x}: {feature}")]
    Unsupported {
        /// What is unsupported (wasmparser's message or a short name).
        feature: String,
        /// Byte offset in the module.
        offset: usize,
    },
    /// Cranelift failed on a function (a bug in the compiler, reported with
    /// the function index so it can be reproduced).
    #[error("code generation failed for function {func}: {message}")]
    Codegen {
        /// Function index (imports included), or the index the trampoline
        /// or stub was for.
        func: u32,
        /// Cranelift's message.
        message: String,
    },
    /// The ELF object could not be produced.
    #[error("object emission failed: {0}")]
    Object(String),
}

impl CompileError {
    /// Builds an [`CompileError::Invalid`] from a wasmparser error.
    pub(crate) fn invalid(e: &wasmparser::BinaryReaderError) -> Self {
        CompileError::Invalid {
            offset: usize::try_from(e.offset()).unwrap_or(usize::MAX),
            message: e.message().to_string(),
        }
    }
}
