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
    let mut clones = crate::driver::compile_clones(&wasm, opts, &[func], 1)?;
    clones.pop().ok_or(CompileError::Codegen {
        func,
        message: "no clone was compiled".into(),
    })
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

/// The options an object was compiled with, as its metadata records them:
/// what its clones must be compiled with to agree with its hot bodies.
/// The CPU features are the host's when the object is for this host (a
/// clone runs here, beside code the loader checked against this host), the
/// baseline otherwise.
pub fn options_of(meta: &mvvm_abi::ModuleMeta) -> CompileOptions {
    CompileOptions {
        opt_level: meta.opt_level,
        target: meta.target,
        policy: meta.policy,
        portable: mvvm_abi::TargetArch::host() != Some(meta.target),
    }
}

/// The resume clones of functions `funcs` (imports included in the
/// numbering; any order, duplicates ignored) of the object whose metadata
/// is `meta`, compiled from `wasm` (the object's
/// [`WASM_SECTION`](mvvm_abi::object::WASM_SECTION)) on at most
/// `max_threads` of the available cores, in increasing function order.
/// The module-wide preparation is done once for all of them. Refused for
/// an object another build made ([`CompileError::OtherCompiler`]).
pub fn compile_clones_for(
    meta: &mvvm_abi::ModuleMeta,
    wasm: &[u8],
    funcs: &[u32],
    max_threads: usize,
) -> Result<Vec<CloneCode>, CompileError> {
    let mut all = Vec::with_capacity(funcs.len());
    compile_clones_for_in_batches(meta, wasm, funcs, max_threads, usize::MAX, &mut |b| {
        all.extend(b);
        true
    })?;
    Ok(all)
}

/// [`compile_clones_for`], `batch` functions at a time after one
/// module-wide preparation: each batch goes to `sink` as soon as it is
/// compiled (in increasing function order), and `sink` returning `false`
/// stops. A background compile of every clone of a large module thus
/// prepares the module once instead of once per batch. The number of
/// clones handed over.
pub fn compile_clones_for_in_batches(
    meta: &mvvm_abi::ModuleMeta,
    wasm: &[u8],
    funcs: &[u32],
    max_threads: usize,
    batch: usize,
    sink: &mut dyn FnMut(Vec<CloneCode>) -> bool,
) -> Result<usize, CompileError> {
    same_compiler(meta)?;
    if !wasm.starts_with(crate::WASM_MAGIC) {
        return Err(CompileError::NotAModule);
    }
    let mut funcs = funcs.to_vec();
    funcs.sort_unstable();
    funcs.dedup();
    crate::driver::compile_clones_in_batches(
        wasm,
        &options_of(meta),
        &funcs,
        max_threads.max(1),
        batch,
        sink,
    )
}

/// Whether this compiler may make clones for the object whose metadata is
/// `meta`: only the build that compiled its hot bodies can
/// ([`CompileError::OtherCompiler`] otherwise). A clone kept from an
/// earlier compilation (a cache) must pass the same check.
pub fn same_compiler(meta: &mvvm_abi::ModuleMeta) -> Result<(), CompileError> {
    if meta.producer == crate::producer() {
        return Ok(());
    }
    Err(CompileError::OtherCompiler {
        object: meta.producer.clone(),
        this: crate::producer(),
    })
}

/// The wasm an object with clones compiled on demand carries: `wasm`
/// without the custom sections that follow its code section (the name
/// section, debug information), which translation does not read. Only
/// sections after the code section are left out, so every function body
/// stays at its offset (the wasm offsets of trap sites and stable points
/// are counted from the module's start). Fails on a module whose section
/// headers do not parse (it was validated before, so never in practice).
pub(crate) fn carried_wasm(wasm: &[u8]) -> Result<Vec<u8>, String> {
    const CUSTOM: u8 = 0;
    const CODE: u8 = 10;
    let mut out = Vec::with_capacity(wasm.len());
    let header = wasm.get(..8).ok_or("module shorter than its header")?;
    out.extend_from_slice(header);
    let mut pos = 8;
    let mut after_code = false;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let (size, used) = read_leb_u32(&wasm[pos..]).ok_or("bad section size")?;
        pos += used;
        let end = pos
            .checked_add(size as usize)
            .filter(|&e| e <= wasm.len())
            .ok_or("section runs past the module's end")?;
        if !(after_code && id == CUSTOM) {
            out.extend_from_slice(&wasm[start..end]);
        }
        after_code |= id == CODE;
        pos = end;
    }
    Ok(out)
}

/// An unsigned LEB128 `u32` at the start of `bytes`, and its length.
fn read_leb_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        let bits = u32::from(b & 0x7f);
        if i == 4 && bits > 0x0f {
            return None;
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}
