//! `mvvm-checkpoint`: runs an MVVM program and, on a trigger, stops it at
//! the next stable point and writes a snapshot that `mvvm-restore` resumes.
//!
//! With no trigger flag it runs the guest to its end (SIGINT and SIGUSR1
//! still checkpoint a program compiled with a policy). The logic lives in
//! `mvvm_cli::checkpoint_cmd`.

use anyhow::Result;
use clap::Parser;
use mvvm_cli::checkpoint_cmd::{self, CheckpointRequest};
use mvvm_cli::compile_cache::CacheFlags;
use mvvm_cli::exit::{self, Exit};
use mvvm_cli::guest_flags::GuestFlags;
use mvvm_cli::key_flags::{self, KeyFlags};
use mvvm_cli::offload_flags::OffloadFlags;
use mvvm_cli::snapshot_location::SnapshotLocation;
use mvvm_cli::sync_flag::SyncFlag;
use mvvm_cli::trigger_flags::TriggerFlags;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a WebAssembly program compiled by `mvvm-aot` (a `.wasm` or `.wat`
/// is compiled first, without a checkpoint policy) and checkpoint it on a
/// trigger.
///
/// The object compiled from a `.wasm` or `.wat` is cached in
/// `$XDG_CACHE_HOME/mvvm` (default `~/.cache/mvvm`) and reused by later
/// runs of the same module with the same MVVM build on this CPU;
/// `--no-cache` (or `MVVM_NO_CACHE=1`) compiles in memory every time.
///
/// Triggers: SIGINT or SIGUSR1 (a second SIGINT ends the process), `-c N`,
/// `-f FUNC [-x N]`, `--after SECONDS`. On a trigger the program stops at
/// its next stable point, the snapshot is written (atomically) to
/// `--snapshot` or next to the target (`bc.aot` → `bc.bin`), its path is
/// printed on stderr, and the process exits with 75.
///
/// `--every SECONDS` writes a snapshot periodically and keeps running; with
/// `--enable-loop-dirty-checkpoint` (or `--incremental`) the snapshots after
/// the first are incremental (only the memory written since the previous
/// one).
///
/// Migration: `-o ADDR -s PORT` sends the snapshot over TCP to a
/// `mvvm-restore -t PROGRAM -i ADDR -e PORT` that listens there and
/// resumes the program at once; `--snapshot` also takes a pipe, a FIFO or
/// `/dev/fd/N` read by `mvvm-restore --snapshot /dev/stdin` (see
/// docs/migration.md).
///
/// Authentication: with `--key FILE` (the same on both sides; `--new-key
/// FILE` writes one) a TCP transfer starts with a mutual proof of the key
/// and is encrypted and authenticated throughout, and a snapshot file or
/// stream is written sealed; see docs/security.md.
///
/// Exit status: the guest's own (0 when `_start` returns, n on
/// `proc_exit(n)`); 75 when a checkpoint was written; 134 when the guest
/// traps; 125 when MVVM itself fails (missing file, malformed module,
/// object from another version or CPU, trigger on a module compiled without
/// a checkpoint policy); 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "mvvm-checkpoint", version)]
struct Checkpoint {
    /// The program: an `.aot` object, or a `.wasm`/`.wat` module.
    #[arg(short = 't', long = "target", value_name = "PROGRAM")]
    target: PathBuf,

    #[command(flatten)]
    cache: CacheFlags,

    #[command(flatten)]
    guest: GuestFlags,

    #[command(flatten)]
    triggers: TriggerFlags,

    /// Where to write the snapshot: a file (default: the target's path
    /// with the extension `.bin`, written atomically); a stream that cannot
    /// seek (a pipe or FIFO, `/dev/fd/N`, e.g. `--snapshot >(ssh B
    /// mvvm-restore -t prog.aot --snapshot /dev/stdin)`), written front to
    /// back; or `tcp://HOST:PORT` (same as `-o HOST -s PORT`). A stream that
    /// is this process's stdout or stderr (`/dev/stdout`, `-`) is refused:
    /// the guest's output would be mixed into the snapshot.
    #[arg(long = "snapshot", value_name = "PATH|tcp://HOST:PORT", value_parser = SnapshotLocation::parse, conflicts_with_all = ["offload_addr", "offload_port"])]
    snapshot: Option<SnapshotLocation>,

    #[command(flatten)]
    offload: OffloadFlags,

    #[command(flatten)]
    keys: KeyFlags,

    /// With `--every`: make the snapshots after the first incremental (only
    /// the 64 KiB chunks written since the previous one) even if the
    /// program was not compiled with `--enable-loop-dirty-checkpoint`
    /// (with it, they always are). Costs one page fault per chunk first
    /// written in each period.
    #[arg(long = "incremental", requires = "every")]
    incremental: bool,

    /// How durable each snapshot file is when it is reported written:
    /// `full` (fsync the file and its directory: it survives a power loss),
    /// `data` (fdatasync: the same for reading it back, without
    /// timestamps), `none` (no sync: a crash of this tool still never
    /// leaves a half snapshot under the final name, a power loss may).
    /// Streams are never synced.
    #[arg(long = "sync", value_enum, default_value_t = SyncFlag::Full)]
    sync: SyncFlag,

    /// Write a one-line JSON summary at exit to FILE (`-` for stderr):
    /// status, exit_code, probes (the main thread's), snapshot,
    /// snapshot_bytes, memory_bytes, frames, checkpoint_ms, startup_ms
    /// (process start to the guest's first instruction); with `--every`,
    /// `periodic` (per periodic snapshot: the program's pause, the time
    /// to durable and the size, in ms and bytes).
    #[arg(long = "json", value_name = "FILE")]
    json: Option<PathBuf>,

    /// Largest wasm stack in MiB before a call-stack-exhausted trap.
    #[arg(long = "max-wasm-stack", value_name = "MIB", default_value_t = 64)]
    max_wasm_stack: usize,

    /// Log every step (same as `MVVM_LOG=debug`).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,

    /// Debug mode: log every probe taken and each frame as it is saved
    /// (to stderr; `MVVM_LOG=debug` does the same). `-i` as in the
    /// original MVVM; `mvvm-restore` spells it `--log-probes` only, its
    /// `-i` being the address to listen on.
    #[arg(short = 'i', long = "log-probes")]
    log_probes: bool,
}

impl Checkpoint {
    fn execute(self) -> Result<Exit> {
        let key = self.keys.load()?;
        let cache = self.cache.cache();
        let module = mvvm_cli::target::load_module(&self.target, &cache)?;
        mvvm_cli::clone_compiler::install(cache);
        let snapshot = self
            .snapshot
            .or_else(|| self.offload.location())
            .unwrap_or_else(|| {
                SnapshotLocation::File(mvvm_cli::target::default_snapshot_path(&self.target))
            });
        let log_probes = self.log_probes || mvvm_cli::logging::checkpoint_log_enabled();
        checkpoint_cmd::execute(CheckpointRequest {
            module,
            program: mvvm_cli::target::program_name(&self.target),
            guest: self.guest,
            triggers: self.triggers,
            snapshot,
            max_wasm_stack_mib: self.max_wasm_stack,
            json: self.json,
            log_probes,
            incremental: self.incremental,
            sync: self.sync.into(),
            key,
            live: self.offload.live_options(),
        })
    }
}

fn main() -> ExitCode {
    // `--new-key FILE` alone, without the otherwise required `-t`.
    if let Some(exit) = key_flags::new_key_command("mvvm-checkpoint") {
        return exit;
    }
    let cmd = Checkpoint::parse();
    mvvm_cli::logging::init_with(cmd.verbose, cmd.log_probes);
    match cmd.execute() {
        Ok(exit) => exit.into(),
        Err(e) => exit::report("mvvm-checkpoint", &e).into(),
    }
}
