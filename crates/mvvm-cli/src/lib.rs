//! Shared parts of the MVVM command-line tools: exit codes, logging,
//! reading targets, guest-environment flags.
//!
//! The binaries in `src/bin/` are thin: one clap struct each, an
//! `execute` that returns an [`ExitCode`](exit::Exit), and errors printed to
//! stderr with their whole cause chain by [`exit::report`].

pub mod exit;
pub mod guest_flags;
pub mod logging;
pub mod run;
pub mod target;
