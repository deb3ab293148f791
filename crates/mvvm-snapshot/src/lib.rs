//! The MVVM snapshot format: what a checkpoint of a running wasm program
//! holds, and how it is written to and read from a file, a pipe or a socket.
//!
//! A snapshot is expressed in wasm terms only (frame records at stable
//! points, globals, tables, linear memory, WASI state as opaque bytes), so
//! it restores on any ISA and into any checkpoint-enabled compilation of the
//! same module. The layout, in short (documented byte by byte, with the
//! reasons and measured costs, in `docs/snapshot-format.md`):
//!
//! ```text
//!  "MVVMSNAP" | version | header len | header crc | header (info, section table)
//!  | frames | globals | tables | segments | clock | wasi | memory table
//!  | zero padding to 64 KiB | memory runs (non-zero 64 KiB chunks, back to back)
//! ```
//!
//! - [`write`] streams a snapshot to any [`std::io::Write`] (no seek needed);
//!   [`write_file_atomic`] writes a file so that a crash never leaves a half
//!   snapshot under the final name.
//! - [`read`] reads from any [`std::io::Read`] and checks every checksum;
//!   [`open_file`] reads a file and leaves the memory runs in it, at 64 KiB
//!   aligned offsets, ready to be mapped copy-on-write by the runtime.
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
mod read;
mod snapshot;
mod types;
mod write;

pub use error::SnapshotError;
pub use layout::{
    CHUNK_SIZE, DATA_ALIGN, MAX_MEMORY_BYTES, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC,
};
pub use read::{OpenOptions, open_file, read, read_info};
pub use snapshot::{MemoryImage, MemoryRun, Snapshot};
pub use types::{FrameRecord, SnapshotInfo, SnapshotParts, WasmValue};
pub use write::{WriteStats, write, write_file_atomic};
