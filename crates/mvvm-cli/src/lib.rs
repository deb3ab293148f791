//! Shared parts of the MVVM command-line tools: exit codes, logging,
//! reading targets (and the compiled-object cache of `.wasm` targets),
//! guest-environment and checkpoint-trigger flags, where snapshots go
//! (files, streams, TCP), and the checkpoint and restore commands
//! themselves.
//!
//! The binaries in `src/bin/` are thin: one clap struct each, an
//! `execute` that returns an [`ExitCode`](exit::Exit), and errors printed to
//! stderr with their whole cause chain by [`exit::report`].

pub mod checkpoint_cmd;
pub mod clone_compiler;
pub mod compile_cache;
pub mod exit;
pub mod grant_flags;
pub mod guest_flags;
pub mod key_flags;
pub mod logging;
mod net_timeouts;
pub mod offload_flags;
pub mod restore_cmd;
pub mod run;
pub mod sealed_transport;
pub mod snapshot_location;
pub mod stream_path;
pub mod summary;
pub mod sync_flag;
pub mod target;
pub mod trigger_flags;
