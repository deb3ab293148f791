//! What a snapshot holds, in wasm terms only.
//!
//! Nothing here is native: no register, no return address, no host pointer.
//! Function references are function indices, memory addresses are offsets
//! into linear memory, so a snapshot restores on any ISA and into any
//! checkpoint-enabled compilation of the same wasm module.

use serde::{Deserialize, Serialize};

/// Who took the snapshot, of what, and how. Stored in the header, so it can
/// be read without reading the rest.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Producer (toolchain) name and version, e.g. `"mvvm 0.1.0"`
    /// (`mvvm_abi::version::PRODUCER_VERSION`).
    pub producer: String,
    /// SHA-256 of the wasm module bytes the snapshot was taken from; the
    /// runtime refuses to restore into another module (see
    /// [`Snapshot::check_module`](crate::Snapshot::check_module)).
    pub wasm_sha256: [u8; 32],
    /// The checkpoint policy of the compilation that took it, e.g.
    /// `"counter-loop:16"`, as `mvvm_abi` `Policy::name()` spells it
    /// (informative: any policy restores any snapshot).
    pub policy: String,
    /// Architecture of the host that took it, e.g. `"x86_64"` (informative).
    pub source_arch: String,
    /// Wall-clock time (CLOCK_REALTIME) of the trigger that took the
    /// snapshot, nanoseconds since the Unix epoch: `mvvm-restore` subtracts
    /// it from its own clock to report downtime (meaningful only when both
    /// hosts' clocks agree, e.g. the same machine or NTP-synced ones).
    pub created_unix_nanos: u64,
    /// Free text (trigger, command line...).
    pub note: String,
}

/// A typed wasm value, little-endian bits for floats so that NaN payloads
/// survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WasmValue {
    /// `i32`
    I32(u32),
    /// `i64`
    I64(u64),
    /// `f32`, as its bit pattern.
    F32(u32),
    /// `f64`, as its bit pattern.
    F64(u64),
    /// `funcref`: a function index, or null.
    FuncRef(Option<u32>),
    /// `externref`: an opaque host value, or null.
    ExternRef(Option<u64>),
    /// `v128`: its 16 bytes in memory order (lane 0 first), the same on
    /// every ISA.
    V128([u8; 16]),
    /// `exnref`: an index into the snapshot's exception list
    /// ([`SnapshotParts::exceptions`], or for a value of another thread
    /// that thread's [`ThreadRecord::exceptions`]), or null. A runtime's exception
    /// handles mean nothing to another process, so a snapshot names each
    /// exception it saves by its position; readers refuse an index past
    /// the end of the list.
    ExnRef(Option<u32>),
}

/// One exception an `exnref` of the snapshot refers to (a frame's value, a
/// global, a table element, or another exception's payload).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExceptionRecord {
    /// The exception's tag, as an index in the tag space of the
    /// checkpointed module (imported tags first): a tag's runtime identity
    /// is per process, its index is what the restoring instance can map
    /// back to its own identity.
    pub tag: u32,
    /// The payload, one value per parameter of the tag's type. An `exnref`
    /// in it is an index into the same exception list.
    pub payload: Vec<WasmValue>,
}

/// The state of one wasm function activation at a stable point.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Function index (imports included in the index space).
    pub func: u32,
    /// Bytecode offset of the stable point (from the start of the module)
    /// where execution resumes.
    pub resume_offset: u32,
    /// Every local, parameters first.
    pub locals: Vec<WasmValue>,
    /// The operand stack, bottom first.
    pub stack: Vec<WasmValue>,
}

/// One thread of the program besides the main one (wasi-threads). Each
/// wasm thread runs its own instance of the module over the one shared
/// linear memory, so it has its own globals, tables, exceptions, dropped
/// segments and frames; the snapshot's top-level ones are the main
/// thread's.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// Its wasi-threads thread id (`1..=0x1FFF_FFFF`; readers refuse 0, an
    /// id above [`SnapshotParts::last_thread_id`] and a repeated one).
    pub tid: u32,
    /// The argument its start function got (`wasi_thread_start(tid,
    /// start_arg)`), so that a thread that had not entered wasm yet can
    /// be started again exactly as it would have been.
    pub start_arg: u32,
    /// Its wasm frames, outermost first. Empty: the thread had not entered
    /// wasm yet, and a restore starts it from its start function.
    pub frames: Vec<FrameRecord>,
    /// Its instance's defined globals (imports excluded), in index order.
    pub globals: Vec<WasmValue>,
    /// Its instance's tables' elements (imports excluded), in index order.
    pub tables: Vec<Vec<WasmValue>>,
    /// This thread's own exception list: a [`WasmValue::ExnRef`] index in
    /// this record (frames, globals, tables, payloads) names an entry of
    /// this list, never of the main thread's or another thread's (an
    /// exception is caught by, and lives in, one thread's instance).
    pub exceptions: Vec<ExceptionRecord>,
    /// Indices of the passive data segments its instance dropped.
    pub dropped_data: Vec<u32>,
    /// Indices of the element segments its instance dropped.
    pub dropped_elems: Vec<u32>,
}

/// Everything a snapshot holds, as given to the writer. Memory is borrowed
/// (it is the guest's whole linear memory, possibly gigabytes); the rest is
/// small and owned.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SnapshotParts<'a> {
    /// Producer, module hash, policy...
    pub info: SnapshotInfo,
    /// Wasm frames, outermost first.
    pub frames: Vec<FrameRecord>,
    /// Defined globals (imports excluded), in index order.
    pub globals: Vec<WasmValue>,
    /// Every table's elements (imports excluded), in index order.
    pub tables: Vec<Vec<WasmValue>>,
    /// The exceptions that `exnref` values of the frames, globals, tables
    /// (and of these exceptions' payloads) refer to, by
    /// [`WasmValue::ExnRef`] index. Writers list only reachable ones.
    pub exceptions: Vec<ExceptionRecord>,
    /// Indices of the passive data segments dropped so far.
    pub dropped_data: Vec<u32>,
    /// Indices of the element segments dropped so far.
    pub dropped_elems: Vec<u32>,
    /// WASI state, opaque to this crate (the runtime encodes it with
    /// `mvvm_abi::codec`).
    pub wasi: Vec<u8>,
    /// Offset the runtime adds to the host's monotonic clock so that the
    /// guest's clock never runs backwards across a restore.
    pub monotonic_offset_nanos: u64,
    /// The whole linear memory (its length is the current size: a multiple
    /// of the wasm page size). Empty when the module has no memory.
    pub memory: &'a [u8],
    /// The memory's maximum size in wasm pages, if declared.
    pub max_pages: Option<u64>,
    /// The program's other threads (wasi-threads), in any order; empty for
    /// a single-threaded program. Frames, globals, tables, exceptions and
    /// dropped segments above are the main thread's.
    pub threads: Vec<ThreadRecord>,
    /// The largest thread id the program ever gave (0 if it never spawned
    /// a thread): a restored program numbers its next thread after it, so
    /// it never reuses an id, even one of a thread that has exited.
    pub last_thread_id: u32,
}

/// The base an incremental snapshot was taken against, as recorded in its
/// header.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BaseRef {
    /// The base's snapshot id: SHA-256 of its bytes from the magic to the
    /// end of its last section (prefix, header, every section, the memory
    /// table with each run's crc32 included; not the memory data, which
    /// its crc32s cover). Computing it reads a few KiB, so restore stays
    /// O(1) in memory size; see [`Snapshot::id`](crate::Snapshot::id).
    pub id: [u8; 32],
    /// The base's plain file name in the directory of the snapshot that
    /// names it (no `/`, not `.` or `..`): readers refuse anything else
    /// ([`SnapshotError::BasePathRefused`](crate::SnapshotError::BasePathRefused)),
    /// so a snapshot never makes them open a host path of its choosing.
    pub path: String,
    /// Incremental snapshots between the base and its full ancestor (0:
    /// the base is a full snapshot). The snapshot naming this base has
    /// depth `base_depth + 1`.
    pub base_depth: u32,
}

/// What turns a write into an incremental snapshot (see
/// [`write_incremental_file_atomic`](crate::write_incremental_file_atomic)).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Incremental {
    /// The base the snapshot applies on.
    pub base: BaseRef,
    /// Chunks written since the base: bit `i % 64` of word `i / 64` for the
    /// 64 KiB chunk `i` of linear memory. Chunks past the end of the bitmap
    /// count as written. Only these chunks are read and stored.
    pub dirty: Vec<u64>,
}
