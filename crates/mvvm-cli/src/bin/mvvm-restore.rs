//! `mvvm-restore`: resumes a program from a snapshot written by
//! `mvvm-checkpoint` (or by a previous `mvvm-restore`) and runs it to the
//! end, or to its next checkpoint. The logic lives in
//! `mvvm_cli::restore_cmd`.

use anyhow::Result;
use clap::Parser;
use mvvm_cli::compile_cache::CacheFlags;
use mvvm_cli::exit::{self, Exit};
use mvvm_cli::grant_flags::GrantFlags;
use mvvm_cli::key_flags::{self, InsecureFlag, KeyFlags};
use mvvm_cli::offload_flags::OffloadFlags;
use mvvm_cli::restore_cmd::{self, RestoreRequest};
use mvvm_cli::snapshot_location::SnapshotLocation;
use mvvm_cli::sync_flag::SyncFlag;
use mvvm_cli::trigger_flags::TriggerFlags;
use std::path::PathBuf;
use std::process::ExitCode;

/// Resume a checkpointed WebAssembly program and run it to the end.
///
/// The target may be any compilation of the same wasm module with a
/// checkpoint policy (another policy, opt level or ISA than the one that
/// was checkpointed). The guest's arguments, environment, open files and
/// clocks come from the snapshot; each open file is checked to be the same
/// file as at the checkpoint, and restore refuses when one is gone or was
/// replaced (unless `--allow-changed-files`).
///
/// A `.wasm` or `.wat` target is compiled first, and the object cached in
/// `$XDG_CACHE_HOME/mvvm` (default `~/.cache/mvvm`) for later runs of the
/// same module with the same MVVM build on this CPU; `--no-cache` (or
/// `MVVM_NO_CACHE=1`) compiles in memory every time.
///
/// Capabilities come from this command, never from the snapshot: every
/// preopened directory the snapshot names (by its guest path) must be
/// granted with `-d DIR` or `--dir HOST::GUEST` (the host directory may
/// differ from the one at checkpoint time), every listener with
/// `--tcplisten ADDR:PORT`, every socket the guest bound itself with
/// `--allow-bind`. A snapshot that needs one not granted is refused before
/// anything runs, naming it. Every file is reopened beneath its granted
/// directory. Network access of the resumed guest (`--allow-connect`,
/// `--allow-bind`, `--allow-resolve`) is granted anew; its TCP
/// connections are seen reset (docs/sockets.md).
///
/// The same triggers as `mvvm-checkpoint` apply to the resumed run; a new
/// snapshot atomically replaces the one read, or goes to `--snapshot-out`
/// (or over TCP to the next hop with `-o ADDR -s PORT`: chains A → B → C).
/// For a program compiled with `--enable-loop-dirty-checkpoint` (or with
/// `--incremental`), a new snapshot to a file is incremental: it holds only
/// the memory chunks written since the restore and names the snapshot read
/// as its base (kept as `STEM.ID.bin` when the new one replaces it). A
/// missing or replaced base is refused, naming it.
///
/// Migration: `-i ADDR -e PORT` listens there for one `mvvm-checkpoint -o
/// ADDR -s PORT`; `--snapshot /dev/stdin` reads a snapshot piped in. The
/// whole snapshot is received and checked (checksums, module hash) before
/// anything runs. The downtime (trigger to first resumed instruction) is
/// printed with `-v`/`--log-probes` and is `downtime_ms` in `--json`.
///
/// Authentication: with `--key FILE` (the same as the sender's;
/// `--new-key FILE` writes one) the sender must prove it holds the key
/// before any snapshot byte is read, and every byte is authenticated; a
/// snapshot file or stream must be sealed. Without `--key`, listening on
/// an address other than loopback is refused (exit 125) unless
/// `--insecure` is given. See docs/security.md.
///
/// Exit status: the guest's own, exactly as an uninterrupted run would
/// end; 75 when a new checkpoint was written; 134 when the guest traps;
/// 125 when MVVM fails or refuses the snapshot (missing, truncated or
/// damaged, of another module, files changed, not authenticated or sealed
/// with another key, a non-loopback listening address without `--key` or
/// `--insecure`); 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "mvvm-restore", version)]
struct Restore {
    /// The program: an `.aot` object compiled with a checkpoint policy.
    #[arg(short = 't', long = "target", value_name = "PROGRAM")]
    target: PathBuf,

    #[command(flatten)]
    cache: CacheFlags,

    /// The snapshot to resume: a file (default: the target's path with the
    /// extension `.bin`, where `mvvm-checkpoint` writes it); a stream that
    /// cannot seek (`/dev/stdin` or `-`, a FIFO, `/dev/fd/N`), read front
    /// to back; or `tcp-listen://ADDR:PORT` (same as `-i ADDR -e PORT`).
    #[arg(long = "snapshot", value_name = "PATH|tcp-listen://ADDR:PORT", value_parser = SnapshotLocation::parse, conflicts_with_all = ["listen_addr", "listen_port"])]
    snapshot: Option<SnapshotLocation>,

    /// Live migration: listen on ADDR (e.g. `0.0.0.0`), port `-e`, accept
    /// one `mvvm-checkpoint -o ADDR -s PORT`, receive and check its whole
    /// snapshot, then resume. A sender that stops midway leaves an error
    /// (exit 125) and nothing resumed.
    #[arg(
        short = 'i',
        long = "listen-addr",
        value_name = "ADDR",
        requires = "listen_port"
    )]
    listen_addr: Option<String>,

    /// With `-i`: the port to listen on.
    #[arg(
        short = 'e',
        long = "listen-port",
        value_name = "PORT",
        requires = "listen_addr"
    )]
    listen_port: Option<u16>,

    /// Where a new checkpoint of the resumed run goes: a file, a stream or
    /// `tcp://HOST:PORT` (same as `-o HOST -s PORT`; default: it replaces
    /// the snapshot file read; for a snapshot received over TCP or from a
    /// stream, the target's path with `.bin`).
    #[arg(long = "snapshot-out", value_name = "PATH|tcp://HOST:PORT", value_parser = SnapshotLocation::parse, conflicts_with_all = ["offload_addr", "offload_port"])]
    snapshot_out: Option<SnapshotLocation>,

    #[command(flatten)]
    offload: OffloadFlags,

    #[command(flatten)]
    keys: KeyFlags,

    #[command(flatten)]
    insecure: InsecureFlag,

    #[command(flatten)]
    triggers: TriggerFlags,

    #[command(flatten)]
    grants: GrantFlags,

    /// Do not check the memory's checksums before resuming: restore then
    /// takes the same time whatever the memory size (the memory is mapped
    /// copy-on-write from the snapshot and read only when touched),
    /// instead of reading every byte first (about 0.1 s per GiB from the
    /// page cache, more from disk). Everything else is still checked:
    /// headers, frames, globals, tables, WASI state, the memory table and
    /// the ids of incremental snapshots' bases. The trade-off: a damaged
    /// memory byte (disk error, tampering) goes unnoticed and the program
    /// runs on with it. Checking it later, after the program has had side
    /// effects, would be worse than useless, so it is never done lazily.
    #[arg(long = "no-verify-memory")]
    no_verify_memory: bool,

    /// Track the memory chunks the resumed run writes (as a program
    /// compiled with `--enable-loop-dirty-checkpoint` always does), so that
    /// its next checkpoint to a file is incremental against the snapshot
    /// restored: only the chunks written since are stored. Costs one
    /// page fault per 64 KiB chunk first written.
    #[arg(long = "incremental")]
    incremental: bool,

    /// How durable each snapshot file is when it is reported written:
    /// `full` (fsync the file and its directory: it survives a power loss),
    /// `data` (fdatasync: the same for reading it back, without
    /// timestamps), `none` (no sync: a crash of this tool still never
    /// leaves a half snapshot under the final name, a power loss may).
    /// Streams are never synced.
    #[arg(long = "sync", value_enum, default_value_t = SyncFlag::Full)]
    sync: SyncFlag,

    /// Resume even if a file the guest had open is gone or was replaced
    /// (a missing file is then reported to the guest as a closed
    /// descriptor, a replaced one is used as it is).
    #[arg(long = "allow-changed-files")]
    allow_changed_files: bool,

    /// Write a one-line JSON summary at exit to FILE (`-` for stderr), as
    /// `mvvm-checkpoint --json` does, with downtime_ms (from the
    /// checkpoint's trigger to the first restored instruction).
    #[arg(long = "json", value_name = "FILE")]
    json: Option<PathBuf>,

    /// Largest wasm stack in MiB before a call-stack-exhausted trap. It
    /// also bounds what a snapshot may hold: at most one frame per 16
    /// bytes and one saved value per 8 bytes of it (a snapshot with more
    /// is refused before its frames are read).
    #[arg(long = "max-wasm-stack", value_name = "MIB", default_value_t = 64)]
    max_wasm_stack: usize,

    /// Largest linear memory a snapshot may restore, in MiB (default 4096:
    /// 4 GiB, the whole wasm32 address space). The module's declared
    /// maximum applies as well. A snapshot declaring more is refused
    /// (exit 125) before its memory is read or allocated.
    #[arg(long = "max-memory", value_name = "MIB", default_value_t = 4096)]
    max_memory: u64,

    /// Log every step (same as `MVVM_LOG=debug`), and print the downtime
    /// (from the checkpoint's trigger to the first resumed instruction).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,

    /// Debug mode: log each frame as it is restored and each probe taken,
    /// and print the downtime (`MVVM_LOG=debug` does the same). Spelled
    /// `-i` in `mvvm-checkpoint`; here `-i` is the address to listen on.
    #[arg(long = "log-probes")]
    log_probes: bool,
}

impl Restore {
    fn execute(self) -> Result<Exit> {
        let key = self.keys.load()?;
        let cache = self.cache.cache();
        let module = mvvm_cli::target::load_module(&self.target, &cache)?;
        mvvm_cli::clone_compiler::install(cache);
        let snapshot = match (self.snapshot, &self.listen_addr, self.listen_port) {
            (Some(s), _, _) => s,
            (None, Some(addr), Some(port)) => SnapshotLocation::listen(addr, port)?,
            _ => SnapshotLocation::File(mvvm_cli::target::default_snapshot_path(&self.target)),
        };
        let snapshot_out = self
            .snapshot_out
            .or_else(|| self.offload.location())
            .unwrap_or_else(|| restore_cmd::default_snapshot_out(&snapshot, &self.target));
        let log_probes = self.log_probes || mvvm_cli::logging::checkpoint_log_enabled();
        let debug = self.verbose || log_probes;
        restore_cmd::execute(RestoreRequest {
            module,
            program: mvvm_cli::target::program_name(&self.target),
            snapshot,
            snapshot_out,
            triggers: self.triggers,
            allow_changed_files: self.allow_changed_files,
            grants: self.grants.grants()?,
            max_wasm_stack_mib: self.max_wasm_stack,
            max_memory_mib: self.max_memory,
            json: self.json,
            log_probes,
            debug,
            no_verify_memory: self.no_verify_memory,
            incremental: self.incremental,
            sync: self.sync.into(),
            key,
            insecure: self.insecure.insecure,
            live: self.offload.live_options(),
        })
    }
}

fn main() -> ExitCode {
    // `--new-key FILE` alone, without the otherwise required `-t`.
    if let Some(exit) = key_flags::new_key_command("mvvm-restore") {
        return exit;
    }
    let cmd = Restore::parse();
    mvvm_cli::logging::init_with(cmd.verbose, cmd.log_probes);
    match cmd.execute() {
        Ok(exit) => exit.into(),
        Err(e) => exit::report("mvvm-restore", &e).into(),
    }
}
