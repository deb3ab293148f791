//! Names inside the `.aot` object (an ELF relocatable file).
//!
//! Written by `mvvm-aot`'s object emitter, read by `mvvm-rt`'s loader.

/// Section holding [`META_MAGIC`](crate::version::META_MAGIC), then a
/// little-endian `u32` format version, then the [`codec`](crate::codec)
/// encoding of [`ModuleMeta`](crate::meta::ModuleMeta).
pub const META_SECTION: &str = ".mvvm.meta";

/// Symbol of the body of function `index` (defined functions only), called
/// with the wasm calling convention: `(callee_vmctx, params...) -> results`
/// in the target's default calling convention with multi-value returns
/// lowered by Cranelift.
pub fn func_symbol(index: u32) -> String {
    format!("mvvm_func_{index}")
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
