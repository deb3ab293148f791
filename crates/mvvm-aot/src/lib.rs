//! MVVM's ahead-of-time compiler: WebAssembly 2.0 (SIMD included, plus
//! deterministic relaxed SIMD) to an ELF object (`.aot`) with Cranelift.
//!
//! ```text
//! wasm/WAT ─▶ module.rs (validate, ModuleMeta) ─▶ translate/ (per function,
//!   in parallel: wasm operators ─▶ Cranelift IR, env.rs decides how the
//!   VMContext is reached, translate/checkpoint.rs adds the checkpoint
//!   instrumentation) ─▶ Cranelift ─▶ object.rs (symbols in index order,
//!   metadata section) ─▶ .aot bytes
//! ```
//!
//! The contract with the runtime (symbol names, VMContext layout, builtins,
//! trap codes, metadata) lives in `mvvm_abi`. What the object looks like,
//! for the loader:
//!
//! - One `.text` section with every function, one `.mvvm.meta` section
//!   (symbol [`META_SYMBOL`]) holding the metadata. All function symbols are
//!   global `FUNC` definitions: `mvvm_func_{i}` (defined functions, wasm
//!   ABI), `mvvm_import_{j}` (stubs of imported functions, wasm ABI, calling
//!   the `HostCall` builtin), `mvvm_array_{i}` (array-call trampolines of
//!   exported functions and of the start function, listed in
//!   `ModuleMeta::array_trampolines`). The wasm ABI is Cranelift's `tail`
//!   calling convention (so that `return_call` works between any two wasm
//!   functions); array trampolines and builtins use the platform's.
//!   The loader does not read the symbols: where each of these starts in
//!   `.text` is in the section `.mvvm.entries` (`mvvm_abi::entries`).
//! - The calls between those functions (`R_X86_64_PLT32`, addend -4, on
//!   x86-64, `R_AARCH64_CALL26` on aarch64: direct calls from trampolines
//!   and between functions) are applied in `.text` by `object.rs`, and
//!   their relocations left out ([`compile_keeping_relocations`] keeps
//!   them). Any other kind, or a libcall, is refused at compile time.
//! - Generated code treats as immutable while it runs (and may hoist loads
//!   of): every pointer field of the `VMContext`, the memory base, each
//!   `VMTable*` in the tables array, each global's cell address, the
//!   `VMFuncRef`s of imported functions, and the type-id array. Memory and
//!   table lengths, table element arrays and global values are reloaded.
//! - Traps: memory accesses fault (SIGSEGV/SIGBUS) at recorded trap sites;
//!   integer division faults on x86-64 are SIGFPE at `div`/`idiv`; other
//!   traps are `ud2`/`udf`-style trap instructions. Every one is in
//!   `ModuleMeta::trap_sites` (section `.mvvm.traps`).
//! - Checkpoints (any [`Policy`] but `None`): `translate/checkpoint.rs`
//!   adds the resume points, probes, unwind and rewind paths of the
//!   contract in `mvvm_abi::checkpoint`, and fills
//!   `FuncTables::stable_points` (section `.mvvm.ckpt`); `FuncTables::locals` is filled always.
#![forbid(unsafe_code)]

mod callgraph;
mod driver;
mod env;
mod error;
#[doc(hidden)]
pub mod frame_labels;
mod isa;
mod module;
mod object;
pub mod resume_clone;
mod trampolines;
mod translate;

pub use error::{BackendError, CompileError};
pub use mvvm_abi::{Policy, TargetArch};
pub use object::{META_SYMBOL, ObjectOptions};

/// The four bytes every wasm binary starts with; any other input must be
/// WAT text.
pub const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// This compiler's build identity: a digest of the sources that decide the
/// code it emits (`build.rs`). Part of every object's producer
/// ([`producer`]); resume clones compiled on demand need the identity of
/// the compiler that made the object.
pub const BUILD_ID: &str = env!("MVVM_AOT_BUILD_ID");

/// What an object records as its producer (`ModuleMeta::producer`): the
/// version and the [`BUILD_ID`] of the compiler that made it.
pub fn producer() -> String {
    format!(
        "mvvm-aot {} build {BUILD_ID}",
        mvvm_abi::version::PRODUCER_VERSION
    )
}

/// Options of [`compile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// Optimisation level, 0..=3 (values above 3 act as 3). 0 is
    /// Cranelift's `none`, 1 and 2 are `speed`, 3 is `speed_and_size`.
    pub opt_level: u8,
    /// Target architecture.
    pub target: TargetArch,
    /// Checkpoint policy: where probes may start a checkpoint. Any policy
    /// but [`Policy::None`] also adds a resume point at every call site,
    /// loop header and function entry (see `mvvm_abi::checkpoint`);
    /// [`Policy::None`] adds no code at all.
    pub policy: Policy,
    /// Use the ISA's baseline CPU features even when compiling for this
    /// host, so the object runs on any machine of the ISA (a snapshot can
    /// then be restored on another x86-64 or aarch64 machine with the same
    /// `.aot`). Cross compilations always use the baseline.
    pub portable: bool,
}

impl Default for CompileOptions {
    /// Level 3 for the host architecture (x86-64 when the host is neither
    /// x86-64 nor aarch64: the object can still be produced, not run), no
    /// checkpoint policy.
    fn default() -> Self {
        CompileOptions {
            opt_level: 3,
            target: TargetArch::host().unwrap_or(TargetArch::X86_64),
            policy: Policy::None,
            portable: false,
        }
    }
}

/// Compiles a wasm module (binary, or WAT text) into the bytes of an `.aot`
/// ELF object.
///
/// The same input and options always give the same bytes.
pub fn compile(input: &[u8], opts: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    compile_with(input, opts, ObjectOptions::default())
}

/// As [`compile`], but every function keeps an ELF symbol (`mvvm_func_N`,
/// `mvvm_resume_N`, `mvvm_import_N`, `mvvm_array_N`, `mvvm_probe`), for
/// `nm`, `objdump -d` and other ELF tools; `mvvm-aot --symbols`. The
/// runtime does not read them (it finds code through the entries section
/// and names it through the names section), so [`compile`] leaves them
/// out: they were about 2 % of an object's size (6 % without a policy).
pub fn compile_with_symbols(input: &[u8], opts: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    compile_with(
        input,
        opts,
        ObjectOptions {
            symbols: true,
            ..ObjectOptions::default()
        },
    )
}

/// As [`compile`], but the calls between functions, which the object
/// holds already applied, keep their relocations in `.rela.text` too (as
/// a relocatable object for a linker would): for ELF tools (`objdump -r`)
/// and tests, with the functions' symbols they name. The runtime loads
/// such an object as well, applying those relocations again (to the same
/// bytes, at the cost of writing into the code pages at start-up);
/// [`compile`] leaves them out.
pub fn compile_keeping_relocations(
    input: &[u8],
    opts: &CompileOptions,
) -> Result<Vec<u8>, CompileError> {
    compile_with(
        input,
        opts,
        ObjectOptions {
            keep_call_relocations: true,
            symbols: true,
            ..ObjectOptions::default()
        },
    )
}

/// As [`compile`], with the choices of what the object holds besides the
/// code the runtime needs (symbols, relocations, and whether a policy
/// object's resume clones are left out for the runtime to compile when a
/// rewind first needs them: `mvvm-aot --resume-clones=on-demand`, see
/// [`ObjectOptions::clones_on_demand`]).
pub fn compile_with(
    input: &[u8],
    opts: &CompileOptions,
    object: ObjectOptions,
) -> Result<Vec<u8>, CompileError> {
    // Without this, bytes that are neither would be reported as WAT that
    // does not parse ("input bytes aren't valid utf-8").
    if !input.starts_with(WASM_MAGIC) && std::str::from_utf8(input).is_err() {
        return Err(CompileError::NotAModule);
    }
    let wasm = wat::parse_bytes(input)?;
    match driver::compile_wasm(&wasm, opts, object) {
        // A module that only fails because of a feature we leave out
        // (multiple memories, GC, a later proposal) is reported as
        // unsupported.
        Err(CompileError::Invalid { offset, message })
            if module::valid_with_all_features(&wasm) =>
        {
            let feature = match module::needed_proposal(&wasm) {
                Some(p) => format!("{message} (the {p} proposal, which MVVM does not support)"),
                None => message,
            };
            Err(CompileError::Unsupported { feature, offset })
        }
        other => other,
    }
}
