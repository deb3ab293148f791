//! Exit codes of the MVVM tools, and how errors reach the user.
//!
//! | code | meaning |
//! |---|---|
//! | guest's | the guest returned from `_start` (0) or called `proc_exit(n)` (n) |
//! | 2 | usage error: a wrong or missing flag (clap's convention) |
//! | 75 | checkpointed: a snapshot was written and the program stopped, to be resumed by `mvvm-restore` (EX_TEMPFAIL) |
//! | 125 | MVVM itself failed: missing or unreadable file, malformed wasm, an `.aot` from another version or target, instantiation failure; `mvvm-restore` refusing a snapshot (missing, truncated, of another module, a file the guest had open gone or replaced) |
//! | 134 | the guest trapped (like Wasmtime; 128 + SIGABRT) |
//!
//! A guest may of course call `proc_exit(75)`, `proc_exit(125)` or
//! `proc_exit(134)`; the message on stderr (and `--json`) tells the cases
//! apart.

use std::process::ExitCode;

/// How a tool ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The guest's own exit status.
    Guest(i32),
    /// The guest trapped.
    Trap,
    /// A snapshot was written; the program stopped, to be resumed.
    Checkpointed,
    /// MVVM failed (the error has been printed).
    Failure,
}

/// Exit code for a usage error.
pub const USAGE: u8 = 2;
/// Exit code when MVVM itself fails.
pub const FAILURE: u8 = 125;
/// Exit code when a checkpoint was written and the program stopped
/// (`EX_TEMPFAIL` of sysexits.h: "try again later").
pub const CHECKPOINTED: u8 = 75;
/// Exit code when the guest traps.
pub const TRAP: u8 = 134;

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            // The OS keeps the low 8 bits, as it would for a native program.
            Exit::Guest(n) => ExitCode::from(n as u8),
            Exit::Trap => ExitCode::from(TRAP),
            Exit::Checkpointed => ExitCode::from(CHECKPOINTED),
            Exit::Failure => ExitCode::from(FAILURE),
        }
    }
}

/// Prints `err` with its cause chain, prefixed by the program's name, and
/// returns the failure exit.
pub fn report(program: &str, err: &anyhow::Error) -> Exit {
    eprintln!("{program}: error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    Exit::Failure
}

impl Exit {
    /// The process exit code as a number (for `--json`).
    pub fn code(self) -> i32 {
        match self {
            Exit::Guest(n) => i32::from(n as u8),
            Exit::Trap => i32::from(TRAP),
            Exit::Checkpointed => i32::from(CHECKPOINTED),
            Exit::Failure => i32::from(FAILURE),
        }
    }
}
