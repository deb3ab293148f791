//! Format and producer versions.
//!
//! `AOT_FORMAT_VERSION` changes whenever the layout of anything in this crate
//! changes in a way that makes old `.aot` files unsafe to run; the runtime
//! refuses any other value. The producer version is informative and is
//! printed in error messages.

/// Version of the `.aot` format (metadata encoding, VMContext layout, builtin
/// table, symbol naming, calling conventions). Bump on every incompatible
/// change. 4: wasm functions use Cranelift's `tail` convention (tail
/// calls), and constant expressions may be `ConstExpr::Extended`. 5:
/// exception handling (tags, `exnref`, call-site handler tables, builtins
/// `throw`, `throw_ref`, `exn_drop`). 6: threads (shared memories, trap
/// codes `UnalignedAtomic` and `WaitOnUnsharedMemory`, builtins
/// `memory_atomic_wait32`, `memory_atomic_wait64`, `memory_atomic_notify`
/// at the end of the table: a runtime with a shorter table must refuse
/// such code). 7: `memory.atomic.wait32/wait64` are stable points
/// (`StablePointKind::AtomicWait`) under a policy, and code compiled with
/// one tests `unwind_state` after each wait: a runtime may then interrupt
/// a wait for a checkpoint, which older code would not unwind from. 8:
/// locals and stable points moved out of `FuncInfo` into the section
/// `.mvvm.ckpt` (decoded per function on first use), and
/// `ModuleMeta::frame_slots` records the frame buffer's size. 9: trap
/// sites moved out of `FuncInfo` and `ResumeCode` into the section
/// `.mvvm.traps` (fixed-width records read in place). 10: the calls
/// between functions are applied by the writer and their relocations
/// left out of the object (no `.mvvm.prelinked` marker any more: every
/// relocation an object holds is to be applied), and the entry points
/// are in the section `.mvvm.entries` (offsets read in place) rather than
/// found by symbol name. 11: `FuncInfo` is gone: the sizes of bodies and
/// clones are in `.mvvm.entries` (pairs of offset and size, read in place
/// by the trap handler), the exception call sites are listed only for the
/// functions that have some (`ModuleMeta::call_sites`), the function
/// names are in the section `.mvvm.names` (read in place), and the
/// per-function ELF symbols are written only on request. 12: a hot
/// body's rewind block asks builtin `ResumeCode` (new, last in the table)
/// for its resume clone instead of calling the clone's symbol, so an
/// object may leave its clones out and the runtime compile them.
pub const AOT_FORMAT_VERSION: u32 = 12;

/// Version of the MVVM toolchain that produced a file.
pub const PRODUCER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Magic bytes at the start of the metadata section.
pub const META_MAGIC: [u8; 8] = *b"MVVMAOT\0";
