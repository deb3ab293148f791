//! One function's resume clone compiled alone, from the module's wasm
//! bytes and the options of the object it belongs to: the first step of
//! compiling clones on demand ("Resume clones compiled on demand" in
//! CHECKPOINT.md, issues 12 and 16). Nothing calls it yet: the objects
//! [`crate::compile`] writes still hold every clone.
//!
//! The clone is translated with the same module-wide information as in the
//! whole-module compilation (the parse and metadata, the call graph of
//! `counter-loop`, which calls may unwind, the tail-call scan), so its code
//! is the same: `tests/resume_clone.rs` compares it, call displacements
//! masked, with the clone in the object of every bench module. Its calls
//! are left unresolved and returned as [`CloneCall`]s naming the function
//! they call, for whoever places the code to patch.

use crate::{CompileError, CompileOptions};
use cranelift_codegen::binemit::Reloc;
use cranelift_module::{ModuleReloc, ModuleRelocTarget};
pub use mvvm_abi::resume_code::{CallField, CallTarget, CloneCall, CloneCode, CloneTimes};
use std::collections::HashMap;

/// Compiles the resume clone of function `func` (imports included in the
/// numbering) of the module `wasm` (binary, or WAT text) alone, with the
/// options `opts` of the object it is for. Fails if the function is an
/// import, out of range, has no clone (no `loop`, or `opts.policy` is
/// `None`), or the module does not compile.
pub fn compile_resume_clone(
    wasm: &[u8],
    opts: &CompileOptions,
    func: u32,
) -> Result<CloneCode, CompileError> {
    if !wasm.starts_with(crate::WASM_MAGIC) && std::str::from_utf8(wasm).is_err() {
        return Err(CompileError::NotAModule);
    }
    let wasm = wat::parse_bytes(wasm)?;
    crate::driver::compile_clone(&wasm, opts, func)
}

/// The calls of a clone compiled alone, from its relocations, whose
/// targets are object symbol ids: `targets` names the function, clone,
/// stub or trampoline behind each id. Sorted by offset; any other
/// relocation is refused (the message says which).
pub(crate) fn calls_of(
    relocs: &[ModuleReloc],
    targets: &HashMap<u32, CallTarget>,
) -> Result<Vec<CloneCall>, String> {
    let mut calls = Vec::with_capacity(relocs.len());
    for r in relocs {
        let (id, target_offset) = match r.name {
            ModuleRelocTarget::User {
                namespace: 0,
                index,
            } => (index, 0),
            ModuleRelocTarget::FunctionOffset(f, off) => (f.as_u32(), off),
            ref other => return Err(format!("relocation against {other}")),
        };
        let target = *targets
            .get(&id)
            .ok_or_else(|| format!("relocation against undeclared #{id}"))?;
        let field = match r.kind {
            Reloc::X86PCRel4 | Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 => CallField::X86Rel32,
            Reloc::Arm64Call => CallField::Arm64Call26,
            other => return Err(format!("relocation kind {other:?}")),
        };
        calls.push(CloneCall {
            offset: r.offset,
            field,
            target,
            target_offset,
            addend: r.addend,
        });
    }
    calls.sort_by_key(|c| c.offset);
    Ok(calls)
}
