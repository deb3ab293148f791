//! Names inside the `.aot` object (an ELF relocatable file).
//!
//! Written by `mvvm-aot`'s object emitter, read by `mvvm-rt`'s loader.

/// Section holding [`META_MAGIC`](crate::version::META_MAGIC), then a
/// little-endian `u32` format version, then the [`codec`](crate::codec)
/// encoding of [`ModuleMeta`](crate::meta::ModuleMeta).
pub const META_SECTION: &str = ".mvvm.meta";

/// Section holding every defined function's checkpoint tables (locals and
/// stable points), indexed per function and decoded on first use; see
/// [`tables`](crate::tables) for its layout. Apart from
/// [`META_SECTION`] so that loading a module does not decode them.
pub const CKPT_SECTION: &str = ".mvvm.ckpt";

/// Section holding every body's and resume clone's trap sites as
/// fixed-width little-endian records, read in place by the runtime (its
/// signal handler searches them); see [`trap_sites`](crate::trap_sites)
/// for the layout. Apart from [`META_SECTION`] so that loading a module
/// decodes nothing per function.
pub const TRAPS_SECTION: &str = ".mvvm.traps";

/// Section holding the offset in `.text` of every body, resume clone,
/// import stub and array trampoline (with the size of each but the
/// trampolines), read in place by the loader and searched by the trap
/// handler; see [`entries`](crate::entries) for its layout.
pub const ENTRIES_SECTION: &str = ".mvvm.entries";

/// Section holding the function names of the wasm name section, read in
/// place when a message, a log line or the perf map names a function; see
/// [`names`](crate::names) for its layout.
pub const NAMES_SECTION: &str = ".mvvm.names";

/// Section holding the [`FrameMaps`](crate::frame_map::FrameMaps) of the
/// module, written only by the compiler's developer option `frame_map`
/// (absent otherwise): where each frame value of a stable point is in the
/// native frames, which the runtime checks against the unwind blocks.
pub const FRAMES_SECTION: &str = ".mvvm.frames";

/// Section of an object whose resume clones are compiled on demand
/// (`mvvm-aot --resume-clones=on-demand`): the module's wasm, from which
/// the runtime compiles a function's clone when a rewind needs it. The
/// custom sections after the code section are left out (names, debug
/// information: translation does not read them); everything else is as
/// compiled, so every function body lies at the offset it had, and the
/// wasm offsets of a clone compiled from it agree with its hot body's.
pub const WASM_SECTION: &str = ".mvvm.wasm";

/// The sections of metadata that the loader reads from the object and
/// never places in the code mapping.
pub const METADATA_SECTIONS: [&str; 7] = [
    META_SECTION,
    CKPT_SECTION,
    TRAPS_SECTION,
    ENTRIES_SECTION,
    NAMES_SECTION,
    FRAMES_SECTION,
    WASM_SECTION,
];

/// Symbol of the body of function `index` (defined functions only),
/// written only by `mvvm-aot --symbols` (the runtime finds code through
/// [`ENTRIES_SECTION`], names it through [`NAMES_SECTION`]); called
/// with the wasm calling convention: `(callee_vmctx, params...) -> results`
/// in the target's default calling convention with multi-value returns
/// lowered by Cranelift.
pub fn func_symbol(index: u32) -> String {
    format!("mvvm_func_{index}")
}

/// Symbol of the resume clone of defined function `index`, when it has one
/// (its entry in [`ENTRIES_SECTION`] has a size): a second compilation of
/// the same body, with the same signature, that can be entered while
/// rewinding (see `mvvm_abi::checkpoint`). Only the function's own body
/// calls it, from its entry, when `unwind_state` is `REWINDING`.
///
/// Why a clone: a rewind enters a function in the middle, at a loop header
/// or a call, with every live local taken from the frame record. In one
/// body, that entry is one more predecessor of every resume point, and
/// Cranelift's SSA turns each local live there into a new value, carried by
/// every enclosing loop (measured: jacobi-2d 1.27x of the uninstrumented
/// time with the entry, 1.08x without). The body that normal calls run
/// therefore has no rewind entry; a clone that has one runs the remainder
/// of each restored activation.
pub fn resume_symbol(index: u32) -> String {
    format!("mvvm_resume_{index}")
}

/// Symbol of the stub of imported function `index`: it has the wasm calling
/// convention and forwards the call to the `host_call` builtin with the
/// arguments spilled into a `u64` array.
pub fn import_stub_symbol(index: u32) -> String {
    format!("mvvm_import_{index}")
}

/// Symbol of the array-call trampoline of function `index` (any function the
/// host may call: exports and the start function). Signature, in the
/// target's C calling convention:
/// `extern "C" fn(vmctx: *mut VMContext, values: *mut u64)`, where `values`
/// holds the parameters on entry and the results on return (one `u64` slot
/// per value, see [`crate::vmctx::VALUE_SLOT_SIZE`]).
pub fn array_trampoline_symbol(index: u32) -> String {
    format!("mvvm_array_{index}")
}

/// Symbol of the module's probe trampoline, present when the module was
/// compiled with a checkpoint policy. It has Cranelift's `preserve_all`
/// calling convention (arguments as in the target's C convention, no
/// register clobbered, no result): `(vmctx, func: u32, offset: u32)`. It
/// calls builtin [`Probe`](crate::builtins::Builtin::Probe) and discards
/// its result; the probe reads `VMLimits::unwind_state` afterwards
/// ([`UNWINDING`](crate::checkpoint::UNWINDING): save the frame and return).
///
/// Why: a call that clobbers nothing lets every value of a loop stay in its
/// register across the (cold) probe call, so a probe costs the hot path
/// only its flag test, whatever the register pressure of the loop.
pub const PROBE_TRAMPOLINE_SYMBOL: &str = "mvvm_probe";
