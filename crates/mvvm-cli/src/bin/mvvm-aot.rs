//! `mvvm-aot`: compiles a WebAssembly module (`.wasm` or `.wat`) ahead of
//! time into an `.aot` object that `mvvm-checkpoint` runs.

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use mvvm_abi::{Policy, TargetArch};
use mvvm_cli::exit::{self, Exit};
use mvvm_cli::target::{InputKind, not_a_program};
use std::path::PathBuf;
use std::process::ExitCode;

/// Compile a WebAssembly module ahead of time into an MVVM `.aot` object.
///
/// The output holds native code for one ISA plus everything needed to
/// instantiate it (types, imports, exports, segments, trap table) and the
/// SHA-256 of the wasm it came from. The same input and flags always give
/// the same bytes.
#[derive(Debug, Parser)]
#[command(name = "mvvm-aot", version)]
#[command(group(
    clap::ArgGroup::new("policy").multiple(false).args([
        "enable_checkpoint",
        "enable_loop_checkpoint",
        "enable_counter_loop_checkpoint",
        "enable_loop_dirty_checkpoint",
    ])
))]
struct Aot {
    /// The module to compile: a `.wasm` binary or `.wat` text.
    input: PathBuf,

    /// Where to write the object. A file is replaced atomically (written
    /// under a temporary name, synced, renamed), so an interrupted compile
    /// never leaves a truncated object; a character device or FIFO (e.g.
    /// `/dev/null`, `/dev/stdout`, a named pipe) is written to as it is,
    /// never replaced.
    #[arg(short = 'o', long = "output", value_name = "OUT.aot")]
    output: PathBuf,

    /// Optimisation level: 0 (none, fastest compile) to 3 (full).
    #[arg(long = "opt-level", default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
    opt_level: u8,

    /// ISA to generate code for; defaults to this host's. Cross-compiled
    /// objects use only the ISA's baseline features; host objects use
    /// every feature this CPU has (and refuse to run on a CPU without them).
    #[arg(long = "target", value_enum)]
    target: Option<Target>,

    /// Generate code for the ISA's baseline CPU (x86-64-v2, or armv8.0)
    /// instead of this machine's, so the object, and snapshots taken from
    /// it, run on any machine of the ISA. Host code may use wider vector
    /// and bit-manipulation instructions; a portable object is what to
    /// ship to machines whose CPUs differ.
    #[arg(long = "portable")]
    portable: bool,

    /// Keep an ELF symbol for every compiled function (`mvvm_func_N`,
    /// `mvvm_resume_N`, `mvvm_import_N`, `mvvm_array_N`), for `nm`,
    /// `objdump -d` and other ELF tools. Off by default: the runtime does
    /// not need them (it names functions from the module's name section,
    /// also in `MVVM_PERF_MAP=1` perf maps), and they are 2-6 % of an
    /// object's size.
    #[arg(long = "symbols")]
    symbols: bool,

    /// Where the resume clones of a policy object come from (a second
    /// compilation of each function with a loop, run only after a
    /// restore). `in-object`: compiled now, into the object. `on-demand`:
    /// left out, and the object carries the wasm instead; a restore
    /// compiles the clones of the functions on the snapshot's stacks (a
    /// few milliseconds each, up to ~0.2 s for a very large function) and
    /// a continuing checkpoint compiles a clone the first time it needs it.
    /// On demand makes the compile about twice as fast and the object
    /// about half the size.
    #[arg(long = "resume-clones", value_enum, default_value_t = ResumeClones::InObject)]
    resume_clones: ResumeClones,

    /// Checkpoint policy "function": probes at every function entry. Like
    /// every policy, it also gives every call site, loop header and
    /// function entry a resume point, so the program can be checkpointed
    /// and restored into any checkpoint-enabled compilation of the same
    /// wasm (other ISA, opt level or policy). At most one policy flag.
    #[arg(long = "enable-checkpoint")]
    enable_checkpoint: bool,

    /// Checkpoint policy "loop": probes at every loop header.
    #[arg(long = "enable-loop-checkpoint")]
    enable_loop_checkpoint: bool,

    /// Checkpoint policy "counter-loop": probes at loop headers and at the
    /// entries of functions that may recurse, that test the checkpoint flag
    /// (one load and a branch) and,
    /// while it is up, call the runtime only once every 2^N of them (N from
    /// --threshold-bits), so `-c N` counts polls of 2^N probes.
    #[arg(long = "enable-counter-loop-checkpoint")]
    enable_counter_loop_checkpoint: bool,

    /// Checkpoint policy "loop-dirty": loop-header probes plus dirty-page
    /// tracking of linear memory by the runtime (incremental snapshots).
    #[arg(long = "enable-loop-dirty-checkpoint")]
    enable_loop_dirty_checkpoint: bool,

    /// log2 of the polling period of --enable-counter-loop-checkpoint
    /// (0..=31; 0 polls at every loop header and function entry).
    #[arg(long = "threshold-bits", value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u8).range(0..=31))]
    threshold_bits: u8,

    /// Accepted for compatibility with the original MVVM and ignored: MVVM
    /// (Rust) adds no aux-stack (C shadow stack) instrumentation at all,
    /// and the native stack of wasm code is checked by every function's
    /// prologue against the runtime's limit, whatever the flags.
    #[arg(long = "disable-aux-stack-check")]
    disable_aux_stack_check: bool,

    /// Log every step (same as `MVVM_LOG=debug`).
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ResumeClones {
    InObject,
    OnDemand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
    #[value(name = "aarch64", alias = "arm64")]
    Aarch64,
}

impl Aot {
    /// The checkpoint policy the flags ask for (clap has already refused
    /// more than one).
    fn policy(&self) -> Policy {
        if self.enable_checkpoint {
            Policy::FunctionEntry
        } else if self.enable_loop_checkpoint {
            Policy::Loop
        } else if self.enable_counter_loop_checkpoint {
            Policy::CounterLoop {
                threshold_bits: self.threshold_bits,
            }
        } else if self.enable_loop_dirty_checkpoint {
            Policy::LoopDirty
        } else {
            Policy::None
        }
    }

    fn execute(self) -> Result<Exit> {
        let input = std::fs::read(&self.input)
            .with_context(|| format!("cannot read {}", self.input.display()))?;
        match InputKind::of(&input) {
            InputKind::Wasm | InputKind::Text => {}
            InputKind::Object => bail!(
                "{}: an ELF file (an MVVM object?), not a WebAssembly module: give mvvm-aot the .wasm or .wat",
                self.input.display()
            ),
            InputKind::Other => return Err(not_a_program(&self.input)),
        }
        let mut opts = mvvm_aot::CompileOptions {
            opt_level: self.opt_level,
            policy: self.policy(),
            portable: self.portable,
            ..Default::default()
        };
        if let Some(t) = self.target {
            opts.target = match t {
                Target::X86_64 => TargetArch::X86_64,
                Target::Aarch64 => TargetArch::Aarch64,
            };
        }
        let started = std::time::Instant::now();
        let choices = mvvm_aot::ObjectOptions {
            symbols: self.symbols,
            clones_on_demand: self.resume_clones == ResumeClones::OnDemand,
            ..Default::default()
        };
        let object = mvvm_aot::compile_with(&input, &opts, choices)
            .with_context(|| format!("cannot compile {}", self.input.display()))?;
        tracing::info!(
            bytes = object.len(),
            policy = %opts.policy.name(),
            millis = started.elapsed().as_millis() as u64,
            "compiled"
        );
        write_output(&self.output, &object)?;
        Ok(Exit::Guest(0))
    }
}

/// Writes the object to `path`: straight into a character device or FIFO
/// that is there (following a symlink such as `/dev/stdout`: it is opened,
/// never replaced or created), else atomically through
/// `mvvm_snapshot::write_bytes_file_atomic` (which also refuses to rename
/// over a socket).
fn write_output(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::FileTypeExt;
    let stream = std::fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_fifo());
    if stream {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(());
    }
    mvvm_snapshot::write_bytes_file_atomic(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn main() -> ExitCode {
    let cmd = Aot::parse();
    mvvm_cli::logging::init(cmd.verbose);
    match cmd.execute() {
        Ok(exit) => exit.into(),
        Err(e) => exit::report("mvvm-aot", &e).into(),
    }
}
