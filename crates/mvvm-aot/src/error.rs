//! The errors [`compile`](crate::compile) reports.
//!
//! Every variant says where: a byte offset in the wasm module for problems
//! of the input, a function index for problems of code generation.

/// The error of a library the compiler calls (Cranelift, the object
/// writer, the metadata codec), kept as the source of a [`CompileError`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a module could not be compiled.
///
/// When a variant has a source, its message does not repeat it: a caller
/// that prints the cause chain (as the MVVM tools do) shows each cause
/// once.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The input is neither a wasm binary (it does not start with the
    /// `\0asm` magic) nor text: it is not UTF-8, so it cannot be WAT.
    #[error("not a WebAssembly module: no \\0asm magic, and not UTF-8 text")]
    NotAModule,
    /// The input looked like WAT text but did not parse; the parser's
    /// message (with line and column) is the source.
    #[error("invalid WAT text")]
    Wat(#[from] wat::Error),
    /// The module is malformed or does not validate.
    #[error("invalid module at offset {offset:#x}: {message}")]
    Invalid {
        /// Byte offset in the module.
        offset: usize,
        /// wasmparser's message.
        message: String,
    },
    /// The module is valid but uses a feature MVVM does not support
    /// (multiple memories, shared-everything threads, or another proposal
    /// after WebAssembly 2.0).
    #[error("unsupported feature at offset {offset:#x}: {feature}")]
    Unsupported {
        /// What is unsupported (wasmparser's message or a short name).
        feature: String,
        /// Byte offset in the module.
        offset: usize,
    },
    /// Resume clones were asked for an object another build of the
    /// compiler made: a clone must agree with its hot body frame for
    /// frame, which only the same compiler guarantees.
    #[error(
        "the object was compiled by {object}, and its resume clones can only be compiled by \
         that same build (this is {this}): compile the object again with this mvvm-aot, or \
         restore with the MVVM build that compiled it"
    )]
    OtherCompiler {
        /// The object's producer.
        object: String,
        /// This compiler's ([`crate::producer`]).
        this: String,
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
    /// Cranelift could not be set up for the target (triple, flags, CPU
    /// detection, ISA).
    #[error("{what}")]
    Target {
        /// What was being set up.
        what: String,
        /// Cranelift's error.
        #[source]
        source: BackendError,
    },
    /// The ELF object could not be produced.
    #[error("object emission failed: cannot {step}")]
    Object {
        /// What the emitter was doing.
        step: String,
        /// The object writer's (or the metadata codec's) error.
        #[source]
        source: BackendError,
    },
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
