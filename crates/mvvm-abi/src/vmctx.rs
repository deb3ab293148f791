//! The `VMContext`: the one structure generated code reads the instance
//! through.
//!
//! Generated code receives a pointer to it as its first argument and reaches
//! everything else from there. Every field is pointer sized (8 bytes: MVVM
//! targets 64-bit hosts only), so the layout is the same on x86-64 and
//! aarch64. The runtime pins its `#[repr(C)]` mirror of each struct to these
//! offsets with tests.
//!
//! ```text
//!  VMContext                         (owned by the instance, never moves)
//!  +0   memory ─────────────▶ VMMemory { base, length }   (null: no memory)
//!  +8   globals ────────────▶ [*mut cell; nglobals]  each cell 16 bytes
//!  +16  tables ─────────────▶ [*mut VMTable; ntables]
//!  +24  funcs ──────────────▶ [VMFuncRef; nfuncs]   imports first
//!  +32  type_ids ───────────▶ [u32; ntypes]  canonical signature ids
//!  +40  builtins ───────────▶ [fn ptr; BUILTIN_COUNT]
//!  +48  limits ─────────────▶ VMLimits { stack_limit, probe_flag, unwind_state, frame_slots }
//!  +56  host                  opaque pointer for the runtime
//!  +64  reserved              (checkpoint state, later formats)
//! ```
//!
//! Linear memory on 64-bit hosts is a reservation of
//! [`MEMORY_RESERVATION`] bytes whose start never moves; accesses are not
//! bounds checked: an address beyond the committed length faults in the
//! `PROT_NONE` remainder and the fault is reported as an out-of-bounds trap.

/// Size of one value slot in array calls, globals are [`GLOBAL_CELL_SIZE`].
pub const VALUE_SLOT_SIZE: u32 = 8;
/// Size of a global's storage cell (room for a future `v128`).
pub const GLOBAL_CELL_SIZE: u32 = 16;

/// Offset of the `*mut VMMemory` field.
pub const VMCTX_MEMORY: i32 = 0;
/// Offset of the `*const *mut u8` array of global cells.
pub const VMCTX_GLOBALS: i32 = 8;
/// Offset of the `*const *mut VMTable` array.
pub const VMCTX_TABLES: i32 = 16;
/// Offset of the `*const VMFuncRef` array, indexed by function index.
pub const VMCTX_FUNCS: i32 = 24;
/// Offset of the `*const u32` array of canonical signature ids, indexed by
/// the module's type index.
pub const VMCTX_TYPE_IDS: i32 = 32;
/// Offset of the `*const usize` table of builtin function pointers.
pub const VMCTX_BUILTINS: i32 = 40;
/// Offset of the `*mut VMLimits` shared by all instances run on one thread.
pub const VMCTX_LIMITS: i32 = 48;
/// Offset of the runtime's opaque pointer; generated code never reads it.
pub const VMCTX_HOST: i32 = 56;
/// Offset of a reserved word (zero for now).
pub const VMCTX_RESERVED: i32 = 64;
/// Size of the `VMContext` structure.
pub const VMCTX_SIZE: u32 = 72;

/// Offset of `base: *mut u8` in `VMMemory`.
pub const VMMEMORY_BASE: i32 = 0;
/// Offset of `length: u64` (current size in bytes) in `VMMemory`.
pub const VMMEMORY_LENGTH: i32 = 8;
/// Size of `VMMemory`.
pub const VMMEMORY_SIZE: u32 = 16;

/// Offset of `elements: *mut u64` in `VMTable`. Each element is one `u64`:
/// for `funcref` a `*const VMFuncRef` (0 is null), for `externref` an opaque
/// host value (0 is null). The pointer moves when the table grows.
pub const VMTABLE_ELEMENTS: i32 = 0;
/// Offset of `length: u64` (element count) in `VMTable`.
pub const VMTABLE_LENGTH: i32 = 8;
/// Size of `VMTable`.
pub const VMTABLE_SIZE: u32 = 16;

/// Offset of `code: *const u8` in `VMFuncRef`: the function's entry with the
/// wasm calling convention.
pub const VMFUNCREF_CODE: i32 = 0;
/// Offset of `vmctx: *mut VMContext`: the context to pass as first argument.
pub const VMFUNCREF_VMCTX: i32 = 8;
/// Offset of `type_id: u32`: the canonical signature id.
pub const VMFUNCREF_TYPE_ID: i32 = 16;
/// Size of `VMFuncRef` (8-byte aligned).
pub const VMFUNCREF_SIZE: u32 = 24;

/// Offset of `stack_limit: usize` in `VMLimits`: the lowest stack address
/// wasm code may use; each function's prologue compares against it and
/// traps with [`TrapCode::StackOverflow`](crate::TrapCode::StackOverflow).
pub const VMLIMITS_STACK_LIMIT: i32 = 0;
/// Offset of `probe_flag: u32` in `VMLimits`: non-zero when probes must
/// call builtin `Probe` (a checkpoint is wanted, or probes are being
/// counted). Written asynchronously by the runtime (signal, timer).
pub const VMLIMITS_PROBE_FLAG: i32 = 8;
/// Offset of `unwind_state: u32` in `VMLimits`: one of
/// [`UNWIND_NONE`](crate::checkpoint::UNWIND_NONE),
/// [`UNWINDING`](crate::checkpoint::UNWINDING),
/// [`REWINDING`](crate::checkpoint::REWINDING).
pub const VMLIMITS_UNWIND_STATE: i32 = 12;
/// Offset of `frame_slots: *mut u64` in `VMLimits`: the buffer checkpoint
/// code writes a frame into before `UnwindFrame`/`Probe`, and `RewindFrame`
/// fills. The runtime makes it at least
/// [`FuncTables::frame_capacity`](crate::tables::FuncTables::frame_capacity)
/// slots of [`VALUE_SLOT_SIZE`] bytes for every function of every module
/// instantiated in the store (one buffer is enough: a frame is copied out
/// or read back before any other frame is written).
///
/// Why not a stack slot: generated code reads this pointer with a plain
/// load inside each cold path, which Cranelift never moves; a stack slot's
/// address is an argument-less pure value that Cranelift hoists out of the
/// innermost loop, where it would hold a register across the hot loop.
pub const VMLIMITS_FRAME_SLOTS: i32 = 16;
/// Size of `VMLimits`.
pub const VMLIMITS_SIZE: u32 = 24;

/// Wasm page size.
pub const WASM_PAGE_SIZE: u64 = 65536;
/// Bytes reserved for one linear memory: 4 GiB addressable by an `i32`
/// address, plus 4 GiB so that any `u32` static offset added to it stays
/// inside the reservation, plus one page of slack.
pub const MEMORY_RESERVATION: u64 = (8 << 30) + WASM_PAGE_SIZE;
/// Largest static offset that needs no explicit check; the compiler adds an
/// explicit check above it (never, for 32-bit memories).
pub const MEMORY_GUARD_OFFSET_LIMIT: u64 = 4 << 30;
