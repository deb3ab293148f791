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
/// returns the failure exit. Each cause is printed once (see
/// [`chain_messages`]).
pub fn report(program: &str, err: &anyhow::Error) -> Exit {
    let messages = chain_messages(err.chain());
    let mut lines = messages.iter();
    if let Some(first) = lines.next() {
        eprintln!("{program}: error: {first}");
    }
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
    Exit::Failure
}

/// The messages of an error chain (the error first, then its sources),
/// each cause once.
///
/// Our own errors do not repeat their source in their message, but some
/// library errors do (a `Display` written as `"...: {source}"` whose source
/// is also returned by `source()`): a cause whose message the last kept
/// message already contains is left out, so the user does not read it
/// twice.
pub fn chain_messages<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for e in chain {
        let message = e.to_string();
        let repeated = kept
            .last()
            .is_some_and(|last| message.is_empty() || last.contains(&message));
        if !repeated {
            kept.push(message);
        }
    }
    kept
}

/// `err` and its causes on one line, `: `-separated, each cause once: for
/// refusals meant to fit on one line.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    chain_messages(std::iter::successors(Some(err), |e| e.source())).join(": ")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message includes its source, as some libraries write
    /// them.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "outer: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_contained_in_the_message_before_it_is_left_out() {
        let io = std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(Repeats(io)).context("cannot save");
        assert_eq!(
            chain_messages(err.chain()),
            ["cannot save", "outer: disk on fire"]
        );
        let one = one_line(&Repeats(std::io::Error::other("x")));
        assert_eq!(one, "outer: x");
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let err = anyhow::Error::new(std::io::Error::other("root cause"))
            .context("middle")
            .context("top");
        assert_eq!(chain_messages(err.chain()), ["top", "middle", "root cause"]);
    }
}
