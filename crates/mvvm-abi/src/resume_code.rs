//! A resume clone compiled on its own, as the compiler hands it to the
//! runtime: machine code whose calls are not patched yet, with what the
//! runtime must register beside it (trap sites, exception call sites) and
//! the function's checkpoint tables.
//!
//! Written once here because both sides read it: `mvvm-aot` produces it
//! (`mvvm_aot::resume_clone`), `mvvm-rt` places, patches and registers it
//! when a rewind needs a clone the object does not hold ("Resume clones
//! compiled on demand" in `crates/mvvm-aot/CHECKPOINT.md`).

use crate::exception::CallSite;
use crate::{FuncTables, TrapSite};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a call in a clone's code calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallField {
    /// x86-64: a 32-bit PC-relative displacement (`R_X86_64_PLT32` or
    /// `R_X86_64_PC32`), the 4 bytes at the call's offset.
    X86Rel32,
    /// aarch64: the 26-bit word offset of a `bl` (`R_AARCH64_CALL26`),
    /// the low 26 bits of the instruction at the call's offset.
    Arm64Call26,
}

/// One unresolved call in a clone's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Where the time of compiling one clone went (`mvvm_aot::resume_clone::compile_resume_clone`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CloneTimes {
    /// Parsing and validating the module's sections, its metadata, symbol
    /// declarations and the module-wide analyses (call graph, unwinding
    /// functions, tail calls): what a restore pays once per module.
    pub prepare: Duration,
    /// Translating and compiling the one clone.
    pub compile: Duration,
}

/// A resume clone compiled alone.
/// Serialisable (its times left out) so that an embedder can keep
/// compiled clones in a cache (`mvvm-cli`'s clone cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Where the time went (not stored: zero when read back).
    #[serde(skip)]
    pub times: CloneTimes,
}
