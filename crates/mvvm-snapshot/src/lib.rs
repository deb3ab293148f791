//! The MVVM snapshot format: what a checkpoint of a running wasm program
//! holds, and how it is written to and read from a file, a pipe or a socket.
//!
//! A snapshot is expressed in wasm terms only (frame records at stable
//! points, globals, tables, linear memory, WASI state as opaque bytes), so
//! it restores on any ISA and into any checkpoint-enabled compilation of the
//! same module. A wasi-threads program's other threads each have a
//! [`ThreadRecord`] (their own instance's frames, globals, tables,
//! exceptions and dropped segments) beside the main thread's parts; they
//! share the one memory. The layout, in short (documented byte by byte, with the
//! reasons and measured costs, in `docs/snapshot-format.md`):
//!
//! ```text
//!  "MVVMSNAP" | version | header len | header crc | header (info, section table)
//!  | frames | globals | tables | exceptions | segments | clock | threads | wasi
//!  | memory table
//!  | zero padding to 64 KiB | memory runs (non-zero 64 KiB chunks, back to back)
//! ```
//!
//! An incremental snapshot ([`write_incremental_file_atomic`]) names its
//! base ([`BaseRef`]: the base's [`Snapshot::id`] and its path relative to
//! the snapshot) and holds only the memory chunks written since the base;
//! everything else is complete. [`open_file`] resolves and checks the
//! whole chain of bases.
//!
//! - [`write`](fn@write) streams a snapshot to any [`std::io::Write`] (no seek needed);
//!   [`write_file_atomic`] writes a file so that a crash never leaves a half
//!   snapshot under the final name.
//! - [`read`] reads from any [`std::io::Read`] and checks every checksum;
//!   [`open_file`] reads a file and leaves the memory runs in it, at 64 KiB
//!   aligned offsets, ready to be mapped copy-on-write by the runtime.
//!
//! ```
//! use mvvm_snapshot::{FrameRecord, SnapshotInfo, SnapshotParts, WasmValue, read, write};
//!
//! let mut memory = vec![0u8; 4 * 65536]; // 4 wasm pages
//! memory[70000] = 42;
//! let parts = SnapshotParts {
//!     info: SnapshotInfo { wasm_sha256: [7; 32], ..Default::default() },
//!     frames: vec![FrameRecord { func: 1, resume_offset: 0x2a, locals: vec![WasmValue::I32(5)], stack: vec![] }],
//!     memory: &memory,
//!     ..Default::default()
//! };
//! let mut bytes = Vec::new(); // or a pipe, a socket: no seek needed
//! write(&mut bytes, &parts)?;
//!
//! let snap = read(&bytes[..])?;
//! snap.check_module(&[7; 32])?;
//! assert_eq!(snap.frames, parts.frames);
//! assert_eq!(snap.memory.runs().len(), 1); // only page 1 is not zero
//! let mut restored = vec![0u8; 4 * 65536];
//! snap.memory.copy_into(&mut restored)?;
//! assert_eq!(restored, memory);
//! # Ok::<(), mvvm_snapshot::SnapshotError>(())
//! ```
//!
//! Every byte is covered by the magic and version check, a crc32, or a
//! zero-padding check: a damaged or truncated snapshot is a
//! [`SnapshotError`], never a panic.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
#[cfg(test)]
mod internal_tests;
mod layout;
mod limits;
pub mod live;
mod read;
pub mod seal;
mod snapshot;
mod source;
mod types;
mod write;

pub use error::{Cause, SnapshotError};
pub use layout::{
    CHUNK_SIZE, DATA_ALIGN, MAX_CHAIN_DEPTH, MAX_MEMORY_BYTES, SNAPSHOT_FORMAT_VERSION,
    SNAPSHOT_MAGIC, exception_creation_order,
};
pub use limits::ReadLimits;
pub use read::{OpenOptions, open_file, read, read_identity, read_info, read_with_limits};
pub use snapshot::{MemoryImage, MemoryRun, Snapshot};
pub use source::MemorySource;
pub use types::{
    BaseRef, ExceptionRecord, FrameRecord, Incremental, SnapshotInfo, SnapshotParts, ThreadRecord,
    WasmValue,
};
pub use write::{
    SyncMode, WriteStats, write, write_bytes_file_atomic, write_file_atomic,
    write_file_from_source, write_file_with_sync, write_incremental_file_atomic,
    write_sealed_file_atomic,
};
