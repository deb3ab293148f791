//! `mvvm-checkpoint`: runs an MVVM program.
//!
//! With no checkpoint trigger it is the plain runner: it runs the guest to
//! its end and exits with the guest's status.

use anyhow::Result;
use clap::Parser;
use mvvm_cli::exit::{self, Exit};
use mvvm_cli::guest_flags::GuestFlags;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a WebAssembly program compiled by `mvvm-aot` (a `.wasm` or `.wat`
/// is compiled in memory first).
///
/// Exit status: the guest's own (0 when `_start` returns, n on
/// `proc_exit(n)`); 134 when the guest traps; 125 when MVVM itself fails
/// (missing file, malformed module, object from another version or CPU);
/// 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "mvvm-checkpoint", version)]
struct Checkpoint {
    /// The program: an `.aot` object, or a `.wasm`/`.wat` module.
    #[arg(short = 't', long = "target", value_name = "PROGRAM")]
    target: PathBuf,

    #[command(flatten)]
    guest: GuestFlags,

    /// Largest wasm stack in MiB before a call-stack-exhausted trap.
    #[arg(long = "max-wasm-stack", value_name = "MIB", default_value_t = 64)]
    max_wasm_stack: usize,

    /// Log every step (same as `MVVM_LOG=debug`).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

impl Checkpoint {
    fn execute(self) -> Result<Exit> {
        let aot = mvvm_cli::target::load_aot_bytes(&self.target)?;
        let program = self
            .target
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        mvvm_cli::run::run_program(&aot, &self.guest, &program, self.max_wasm_stack)
    }
}

fn main() -> ExitCode {
    let cmd = Checkpoint::parse();
    mvvm_cli::logging::init(cmd.verbose);
    match cmd.execute() {
        Ok(exit) => exit.into(),
        Err(e) => exit::report("mvvm-checkpoint", &e).into(),
    }
}
