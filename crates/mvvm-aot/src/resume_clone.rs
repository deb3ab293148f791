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
use mvvm_abi::exception::CallSite;
use mvvm_abi::{FuncTables, TrapSite};
use std::collections::HashMap;
use std::time::Duration;

/// What a call in a clone's code calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// The body (`mvvm_func_N`) of defined function `N` (imports included
    /// in the numbering).
    Body(u32),
    /// The resume clone (`mvvm_resume_N`) of defined function `N`.
    Clone(u32),
    /// The stub (`mvvm_import_N`) of imported function `N`.
    ImportStub(u32),
    /// The array-call trampoline (`mvvm_array_N`) of function `N`.
    ArrayTrampoline(u32),
    /// The module's `preserve_all` probe trampoline (`mvvm_probe`).
    ProbeTrampoline,
}

/// How a call's field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallField {
    /// x86-64: a 32-bit PC-relative displacement (`R_X86_64_PLT32` or
    /// `R_X86_64_PC32`), the 4 bytes at the call's offset.
    X86Rel32,
    /// aarch64: the 26-bit word offset of a `bl` (`R_AARCH64_CALL26`),
    /// the low 26 bits of the instruction at the call's offset.
    Arm64Call26,
}

/// One unresolved call in a clone's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneCall {
    /// Where the field is, from the start of the clone's code.
    pub offset: u32,
    /// What it is.
    pub field: CallField,
    /// The function called.
    pub target: CallTarget,
    /// Offset into the target (0 but for Cranelift's `FunctionOffset`).
    pub target_offset: u32,
    /// The relocation's addend (-4 for an x86-64 call).
    pub addend: i64,
}

/// Where the time of [`compile_resume_clone`] went.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneTimes {
    /// Parsing and validating the module's sections, its metadata, symbol
    /// declarations and the module-wide analyses (call graph, unwinding
    /// functions, tail calls): what a restore pays once per module.
    pub prepare: Duration,
    /// Translating and compiling the one clone.
    pub compile: Duration,
}

/// A resume clone compiled alone.
#[derive(Debug, Clone)]
pub struct CloneCode {
    /// The function (imports included in the numbering).
    pub func: u32,
    /// Machine code, calls not patched (their fields hold zeros).
    pub bytes: Vec<u8>,
    /// Required alignment of the code.
    pub alignment: u64,
    /// Every call to patch, by offset.
    pub calls: Vec<CloneCall>,
    /// Trap sites, sorted by code offset (as the object's trap section
    /// holds the clone's).
    pub traps: Vec<TrapSite>,
    /// Calls inside exception handler scopes (as the object's metadata
    /// holds the clone's).
    pub call_sites: Vec<CallSite>,
    /// Locals and stable points of the clone (those of the function's
    /// tables in the object: a clone has its body's stable points).
    pub tables: FuncTables,
    /// Where the time went.
    pub times: CloneTimes,
}

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
