//! MVVM's runtime: loads `.aot` objects produced by `mvvm-aot`, links and
//! instantiates them, runs them, and reports traps.
//!
//! ```text
//!  Module::from_aot(bytes) ── loader: checks, maps code, relocates ──▶ Module
//!  Store::new() ─ owns ─▶ instances, memories, tables, globals, host funcs
//!  Instance::new(&mut store, &module, &imports) ─▶ Instance
//!  instance.invoke(&mut store, "name", &args) ─▶ Vec<Val> | RunError
//! ```
//!
//! Most of MVVM's unsafe code lives in this crate: every OS call behind
//! the fence of `sys` (one file per thing wrapped), the ownership of what
//! generated code reaches by pointer (`vm_box`, and its invariant), code
//! memory (`code`, with the arena of the resume clones placed at run time
//! by `jit_clone`), linear memory (`memory`), the `VMContext` mirrors
//! (`vmctx`), calls into wasm (`call`), builtins (with the parking lot of
//! `memory.atomic.wait`, `atomic_wait`), traps and signal handling
//! (`trap`, `signals`, `native/entry.c`), checkpoint and restore
//! (`checkpoint`; `frame_walk`, the developer check of frame maps), the threads of a program and how they end together
//! (`threads`). WASI is a layer on top, in the
//! `mvvm-wasi` crate: it plugs in through the [`Linker`] and the host
//! interface of [`checkpoint::host`].

// Every unsafe operation sits in an `unsafe` block of its own, with a
// `// SAFETY:` comment arguing it, even inside an `unsafe fn`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod atomic_wait;
mod builtins;
mod call;
pub mod checkpoint;
mod code;
mod exception;
mod frame_walk;
mod global;
mod instance;
mod jit_clone;
mod linker;
pub mod loader;
mod memory;
mod module;
mod perf_map;
mod resume;
mod signals;
mod store;
mod sys;
mod table;
mod threads;
mod throw;
mod trap;
mod types;
mod vm_box;
pub mod vmctx;

pub use instance::{Instance, InstantiationError};
pub use jit_clone::{InstallError, PatchError};
pub use linker::Linker;
pub use loader::LoadError;
pub use memory::{MAX_PAGES, MemoryError, SharedMemory};
pub use module::Module;
pub use mvvm_abi::TrapCode;
pub use mvvm_abi::meta::{FuncType, GlobalType, Limits, MemoryType, TableType, ValType};
pub use resume::{CloneCompiler, ClonePurpose, ResumeError, batch_by_batch, set_clone_compiler};
pub use store::{
    AsStore, Caller, DEFAULT_MAX_WASM_STACK, Extern, Func, Global, HostError, HostFn, Memory,
    MemoryAccess, RunError, Store, Table, Tag, Val,
};
pub use threads::{
    ThreadGroup, ThreadMember, current_in_group, current_terminated, terminate_signal,
};
pub use trap::Trap;
pub use types::canonical_type_id;
