//! The runtime's fence around the operating system: every libc call of
//! `mvvm-rt` (outside the checkpoint session's own signal handling, which
//! uses [`signal`] too) goes through one of these modules, named after what
//! it wraps. Each wrapper states what it needs from its caller (an `unsafe
//! fn` with a `# Safety` section when the call can break memory safety,
//! such as changing the protection of memory Rust may be using), and each
//! `unsafe` block argues why the call is valid.
//!
//! Unsafe code that is inherent to running generated code (entering it,
//! reading `VMContext` fields, the builtins) stays in the modules that do
//! it: `call`, `trap`, `builtins`, `signals`.

pub(crate) mod icache;
pub(crate) mod membarrier;
pub(crate) mod mman;
pub(crate) mod process;
pub(crate) mod sched;
pub(crate) mod sigaltstack;
pub(crate) mod signal;
pub(crate) mod sysconf;
pub(crate) mod thread;
pub(crate) mod ucontext;
