//! The MVVM benchmark harness.
//!
//! It builds the workloads of `bench/` natively (gcc -O2) and for MVVM
//! (`mvvm-aot` with every checkpoint policy the compiler accepts) and
//! Wasmtime (when installed), runs them interleaved, checks that every build
//! prints the native build's checksum, and writes the results to
//! `artifact/bench/` as CSV, Markdown and an SVG plot.
//!
//! The library part is what the smoke integration test shares with the
//! `mvvm-bench` binary: the workload table, tool discovery, the measured
//! child runner and the smoke check.
#![forbid(unsafe_code)]

pub mod cr;
pub mod criu;
pub mod measure;
pub mod migration;
pub mod plot;
pub mod policy;
pub mod report;
pub mod runner;
pub mod smoke;
pub mod stats;
pub mod threads;
pub mod tools;
pub mod workloads;

use std::path::PathBuf;

/// Everything that can go wrong in the harness, with the file or command
/// it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A build step (gcc, cargo) failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    BuildFailed {
        /// The command line.
        command: String,
        /// Its exit status, as text.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The measuring wrapper wrote a report that cannot be read.
    #[error("malformed measurement report `{0}`")]
    BadReport(String),
    /// A required tool is missing.
    #[error("{0}")]
    MissingTool(String),
    /// The SVG plot could not be drawn.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
}

/// Result type of the harness library.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Formats a command line for messages (arguments separated by spaces).
pub fn command_line(program: &std::path::Path, args: &[std::ffi::OsString]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
