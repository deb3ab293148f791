//! `mvvm-bench`: builds and runs the MVVM benchmark workloads.
//!
//! `cargo run --release -p mvvm-bench` does the full run: builds `mvvm-cli`
//! in release mode, builds the native workloads with gcc, compiles each
//! module with every checkpoint policy `mvvm-aot` accepts (and with
//! `wasmtime compile` when Wasmtime is installed), runs everything
//! interleaved with warm-up, and writes `artifact/bench/{runs.csv,
//! results.md, exec-ratio.svg}`. `--smoke` runs every workload once at its
//! smoke size and only checks checksums.
//!
//! Exit status: 0 when every run printed the expected checksum, 1 when one
//! did not (or failed), 2 on a usage error.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use mvvm_bench::criu::{self, CriuTool};
use mvvm_bench::policy::{self, Policy};
use mvvm_bench::runner::{self, Config};
use mvvm_bench::threads::{self, ThreadedWorkload};
use mvvm_bench::tools::{self, MvvmTools, Paths};
use mvvm_bench::workloads::{self, Workload};
use mvvm_bench::{measure, migration, plot, report, smoke};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Benchmark MVVM against native code and Wasmtime on the workloads in
/// bench/.
#[derive(Debug, Parser)]
#[command(name = "mvvm-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Smoke check: every workload once at its smoke size, checksums of
    /// native, MVVM and Wasmtime compared (no timing).
    #[arg(long)]
    smoke: bool,

    /// Measured rounds per workload.
    #[arg(long, default_value_t = 5)]
    reps: usize,

    /// Warm-up rounds before the measured ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,

    /// Only these workloads (comma-separated names; the threaded ones,
    /// bc_mt, gemm_mt and jacobi-2d_mt, included).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Thread counts of the threaded workloads (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = threads::THREAD_COUNTS.to_vec())]
    threads: Vec<u32>,

    /// The Wasmtime that runs the threaded workloads (version 36 or older,
    /// the last with wasi-threads). Default: $WASMTIME, else the one
    /// bench/threads/fetch-wasmtime.sh or test/threads/build.sh fetched,
    /// else `wasmtime` on PATH if old enough.
    #[arg(long, value_name = "PATH")]
    wasmtime_threads: Option<PathBuf>,

    /// Only these policies (comma-separated: none, func-entry, loop,
    /// counter-8, counter-16, counter-20, loop-dirty).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,

    /// Use mvvm-aot and mvvm-checkpoint from this directory instead of
    /// building them.
    #[arg(long, value_name = "DIR")]
    mvvm_dir: Option<PathBuf>,

    /// Do not run cargo; use the MVVM tools next to this binary.
    #[arg(long)]
    no_build: bool,

    /// Full pipeline at the smoke sizes (to try the harness quickly).
    #[arg(long)]
    quick: bool,

    /// Where results go (default: artifact/bench in the workspace).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Time limit of one run, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,

    /// Skip the checkpoint-and-restore trials.
    #[arg(long)]
    no_checkpoint: bool,

    /// Memory sizes (MiB, comma-separated) at which memfill is checkpointed
    /// and restored (default 64,256,1024; 8 with --quick).
    #[arg(long, value_delimiter = ',')]
    memfill_sweep: Vec<u32>,

    #[command(flatten)]
    criu: CriuFlags,

    /// Parallel jobs for --smoke.
    #[arg(long, default_value_t = 2)]
    jobs: usize,

    /// A remark added to the Markdown report (machine, load, ...).
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,

    /// Rewrite bench/expected-smoke.txt from the native smoke runs.
    #[arg(long)]
    write_expected: bool,
}

/// How the run finds CRIU (the benchmark's and the migration's trials).
#[derive(Debug, clap::Args)]
struct CriuFlags {
    /// Skip the CRIU trials (dumping and restoring the native builds);
    /// their rows then say so.
    #[arg(long)]
    no_criu: bool,

    /// The CRIU binary to use (default: `criu` on PATH if it is 4.x or
    /// newer, else the one bench/criu/build.sh builds into target/criu,
    /// building it if needed).
    #[arg(long, value_name = "PATH")]
    criu: Option<PathBuf>,

    /// With CRIU missing, do not run bench/criu/build.sh (it may install
    /// build packages with apt-get); the table then says CRIU was not found.
    #[arg(long)]
    no_criu_build: bool,
}

impl CriuFlags {
    /// The CRIU these flags ask for ([`CriuTool::Off`] with `--no-criu`).
    fn find(&self, paths: &Paths) -> CriuTool {
        if self.no_criu {
            CriuTool::Off
        } else {
            criu::find(paths, self.criu.as_deref(), !self.no_criu_build)
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migration downtime, MVVM against CRIU in one run: per memory size
    /// and repetition, interleaved, MVVM stop-and-copy, MVVM pre-copy
    /// (--live) and CRIU stop-and-copy of memfill with a slow writer
    /// (`-m MIB -p 30 -w 8 -d 20000`), over loopback (and for MVVM between
    /// two network namespaces with --netns, as root). CRIU's pre-copy and
    /// lazy modes get a row saying why they do not run. Drives
    /// scripts/netns/downtime.sh and bench/criu/migrate.sh; writes
    /// migration.md, migration.csv and migration.svg.
    Migration(MigrationArgs),
    /// Internal: run PROGRAM, then write its wall time, CPU times and peak
    /// RSS to REPORT (used by the harness for every measured run).
    #[command(hide = true)]
    Measure {
        /// Report file.
        #[arg(long)]
        report: PathBuf,
        /// Time limit in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Environment variables added to the program's, `K=V` (repeated).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
    /// Internal: restore CRIU images detached, wait for the restored task
    /// as its subreaper, and write the figures to REPORT (used by the
    /// CRIU trials).
    #[command(hide = true)]
    CriuRestore {
        /// The CRIU binary.
        #[arg(long)]
        criu: PathBuf,
        /// The images directory.
        #[arg(long)]
        images: PathBuf,
        /// CRIU's work directory (logs).
        #[arg(long)]
        work: PathBuf,
        /// Where CRIU writes the restored task's pid.
        #[arg(long)]
        pidfile: PathBuf,
        /// Report file.
        #[arg(long)]
        report: PathBuf,
        /// Time limit in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
}

#[derive(Debug, clap::Args)]
struct MigrationArgs {
    /// Memory sizes, MiB (comma-separated; default 64,256,1024, or 8 with
    /// --quick).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u32>,

    /// Repetitions of every mode at every size (default 3, or 1 with
    /// --quick).
    #[arg(long)]
    reps: Option<usize>,

    /// Small and fast: 8 MiB, one repetition (to try the harness).
    #[arg(long)]
    quick: bool,

    /// MVVM also between two network namespaces (needs root and `ip`;
    /// otherwise those rows say why they did not run).
    #[arg(long)]
    netns: bool,

    #[command(flatten)]
    criu: CriuFlags,

    /// Use mvvm-aot, mvvm-checkpoint and mvvm-restore from this directory
    /// instead of building them.
    #[arg(long, value_name = "DIR")]
    mvvm_dir: Option<PathBuf>,

    /// Do not run cargo; use the MVVM tools next to this binary.
    #[arg(long)]
    no_build: bool,

    /// Where results go (default: artifact/bench in the workspace).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// A remark added to migration.md (machine, load, ...).
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,

    /// The first TCP port the scripts listen on (each call takes the
    /// next ten; loopback and the private namespaces only).
    #[arg(long, default_value_t = 7990)]
    port: u32,
}

/// The serial and the threaded workloads `--only` names (all of both
/// without it).
type Selection = (Vec<&'static Workload>, Vec<&'static ThreadedWorkload>);

fn selected_workloads(only: &[String]) -> Result<Selection> {
    if only.is_empty() {
        return Ok((
            workloads::ALL.iter().collect(),
            threads::ALL.iter().collect(),
        ));
    }
    let mut sel: Selection = (Vec::new(), Vec::new());
    for n in only {
        if let Some(w) = workloads::by_name(n) {
            sel.0.push(w);
        } else if let Some(w) = threads::by_name(n) {
            sel.1.push(w);
        } else {
            bail!("unknown workload `{n}`");
        }
    }
    Ok(sel)
}

fn selected_policies(names: &[String]) -> Result<Vec<Policy>> {
    if names.is_empty() {
        return Ok(policy::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            policy::ALL
                .iter()
                .copied()
                .find(|p| p.name == n)
                .with_context(|| format!("unknown policy `{n}`"))
        })
        .collect()
}

/// The MVVM tools for a full run: `--mvvm-dir`, or next to this binary with
/// `--no-build`, or a fresh release build.
fn full_run_tools(cli: &Cli, paths: &Paths) -> Option<MvvmTools> {
    if let Some(dir) = &cli.mvvm_dir {
        let t = MvvmTools::in_dir(dir);
        if t.is_none() {
            eprintln!(
                "mvvm-bench: warning: no mvvm-aot/mvvm-checkpoint in {}",
                dir.display()
            );
        }
        return t;
    }
    if cli.no_build {
        let here = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from));
        return here.and_then(|d| MvvmTools::in_dir(&d));
    }
    match MvvmTools::build_release(paths) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("mvvm-bench: warning: cannot build mvvm-cli, MVVM columns skipped: {e}");
            None
        }
    }
}

/// The MVVM tools for a smoke check: never built here.
fn smoke_tools(cli: &Cli, paths: &Paths) -> Option<MvvmTools> {
    if let Some(dir) = &cli.mvvm_dir {
        return MvvmTools::in_dir(dir);
    }
    let here = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from));
    [
        here,
        Some(paths.root.join("target").join("debug")),
        Some(paths.root.join("target").join("release")),
    ]
    .into_iter()
    .flatten()
    .filter_map(|d| MvvmTools::in_dir(&d))
    .find(MvvmTools::responds)
}

fn run_smoke(cli: &Cli, paths: &Paths) -> Result<bool> {
    let (selected, threaded) = selected_workloads(&cli.only)?;
    let tools = if cli.write_expected {
        None
    } else {
        smoke_tools(cli, paths)
    };
    match &tools {
        Some(t) => eprintln!("MVVM: {} and {}", t.aot.display(), t.checkpoint.display()),
        None if !cli.write_expected => {
            eprintln!("MVVM: skipped (build mvvm-cli first: cargo build -p mvvm-cli)")
        }
        None => {}
    }
    let wasmtime = if cli.write_expected {
        None
    } else {
        tools::find_wasmtime()
    };
    if wasmtime.is_none() && !cli.write_expected {
        eprintln!("{}", tools::WASMTIME_INSTALL_HINT);
    }
    let dir = paths.work().join("smoke");
    if cli.write_expected {
        let mut sums = std::collections::BTreeMap::new();
        for w in &selected {
            let exe = tools::build_native(paths, w, &dir.join("native"))?;
            let args: Vec<OsString> = w.smoke.iter().map(OsString::from).collect();
            let sum = smoke::checksum_of(&exe, &args, Duration::from_secs(cli.timeout_secs))
                .map_err(|e| anyhow::anyhow!("{}: {e}", w.name))?;
            sums.insert(w.name.to_owned(), sum);
        }
        smoke::write_expected(&paths.expected_smoke(), &sums)?;
        eprintln!("wrote {}", paths.expected_smoke().display());
        return Ok(true);
    }
    let mut outcomes = smoke::smoke(
        paths,
        &selected,
        tools.as_ref(),
        wasmtime.as_deref(),
        &dir,
        cli.jobs,
    )?;
    if !threaded.is_empty() {
        let wasmtime_threads = match tools::find_wasmtime_threads(cli.wasmtime_threads.as_deref()) {
            Ok((path, version)) => {
                eprintln!("threaded workloads: {version} ({})", path.display());
                Some(path)
            }
            Err(why) => {
                eprintln!("threaded workloads: {why}");
                None
            }
        };
        outcomes.extend(smoke::smoke_threads(
            paths,
            &threaded,
            &cli.threads,
            tools.as_ref(),
            wasmtime_threads.as_deref(),
            &dir,
        )?);
    }
    let mut passed = 0;
    for o in &outcomes {
        println!("{}", o.describe());
        passed += usize::from(o.ok());
    }
    println!("smoke: {passed} passed, {} failed", outcomes.len() - passed);
    Ok(passed == outcomes.len())
}

fn run_full(cli: &Cli, paths: &Paths) -> Result<bool> {
    let selected = selected_workloads(&cli.only)?;
    let selected_threads = !selected.1.is_empty();
    if cli.threads.is_empty() || cli.threads.iter().any(|&t| !(1..=64).contains(&t)) {
        bail!("--threads takes counts from 1 to 64");
    }
    let cfg = Config {
        reps: cli.reps.max(1),
        warmup: cli.warmup,
        smoke_sizes: cli.quick,
        workloads: selected.0,
        threaded: selected.1,
        thread_counts: cli.threads.clone(),
        wasmtime_threads: if selected_threads {
            Some(tools::find_wasmtime_threads(
                cli.wasmtime_threads.as_deref(),
            ))
        } else {
            None
        },
        policies: selected_policies(&cli.policies)?,
        run_limit: Duration::from_secs(cli.timeout_secs),
        compile_limit: Duration::from_secs(cli.timeout_secs),
        checkpoint_trials: !cli.no_checkpoint,
        memfill_sweep: match (&cli.memfill_sweep, cli.quick) {
            (v, _) if !v.is_empty() => v.clone(),
            (_, true) => vec![8],
            (_, false) => vec![64, 256, 1024],
        },
        criu: if cli.no_checkpoint {
            CriuTool::Off
        } else {
            cli.criu.find(paths)
        },
    };
    match &cfg.wasmtime_threads {
        Some(Ok((path, version))) => {
            eprintln!("threaded workloads: {version} ({})", path.display())
        }
        Some(Err(why)) => eprintln!("threaded workloads: {why}"),
        None => {}
    }
    match &cfg.criu {
        CriuTool::Ready { path, version } => {
            eprintln!("CRIU: {version} ({})", path.display())
        }
        CriuTool::Unavailable(why) => eprintln!("CRIU: not run: {why}"),
        CriuTool::Off => {}
    }
    let mvvm = full_run_tools(cli, paths);
    let wasmtime = tools::find_wasmtime();
    if wasmtime.is_none() {
        eprintln!("{}", tools::WASMTIME_INSTALL_HINT);
    }
    let me = std::env::current_exe().context("cannot locate the mvvm-bench binary")?;
    let out = cli.out.clone().unwrap_or_else(|| paths.artifact());
    tools::ensure_dir(&out)?;
    let write_reports = |res: &runner::Results| -> mvvm_bench::Result<String> {
        report::write(&out.join("runs.csv"), &report::csv(res))?;
        let title = if cli.quick {
            "MVVM benchmarks (quick: smoke sizes)"
        } else {
            "MVVM benchmarks"
        };
        let mut md = report::markdown(res, title);
        md.push_str(&format!(
            "\nSettings: {} measured round(s) after {} warm-up round(s), runs interleaved; \
             native built with `gcc {}`; MVVM with `mvvm-aot --opt-level=3`. \
             The `-simd` workloads are the same sources compiled to wasm with \
             `clang -msimd128` (auto-vectorised to 128-bit SIMD), natively with \
             `gcc {} {}`.{}\n",
            cfg.reps,
            cfg.warmup,
            tools::NATIVE_CFLAGS.join(" "),
            tools::NATIVE_CFLAGS.join(" "),
            tools::NATIVE_SIMD_CFLAGS.join(" "),
            if wasmtime.is_none() {
                format!(
                    " Wasmtime column skipped: {}.",
                    tools::WASMTIME_INSTALL_HINT
                )
            } else {
                String::new()
            }
        ));
        if let Some(note) = &cli.note {
            md.push_str(&format!("\n{note}\n"));
        }
        report::write(&out.join("results.md"), &md)?;
        Ok(md)
    };
    let res = runner::run(
        paths,
        &cfg,
        &me,
        mvvm.as_ref(),
        wasmtime.as_deref(),
        &mut |r| write_reports(r).map(|_| ()),
    )?;
    let md = write_reports(&res)?;
    let plotted = plot::ratio_plot(&out.join("exec-ratio.svg"), &res)?;
    let latency = plot::latency_plot(&out.join("cr-latency.svg"), &res)?;
    eprintln!(
        "wrote {}/runs.csv, results.md{}{}",
        out.display(),
        if plotted {
            ", exec-ratio.svg"
        } else {
            " (no plot: nothing but native ran)"
        },
        if latency { ", cr-latency.svg" } else { "" }
    );
    print!("{md}");
    Ok(res.mismatches().is_empty() && !res.checkpoints.iter().any(|c| c.failed()))
}

/// The MVVM tools for the migration mode (mvvm-restore included), or why
/// there are none.
fn migration_tools(a: &MigrationArgs, paths: &Paths) -> Result<PathBuf, String> {
    let dir = if let Some(dir) = &a.mvvm_dir {
        dir.clone()
    } else if a.no_build {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from))
            .ok_or("cannot locate the mvvm-bench binary")?
    } else {
        let t =
            MvvmTools::build_release(paths).map_err(|e| format!("cannot build mvvm-cli: {e}"))?;
        t.aot
            .parent()
            .map(PathBuf::from)
            .ok_or("no tools directory")?
    };
    match MvvmTools::in_dir(&dir) {
        Some(t) if t.restore.is_some() => Ok(dir),
        _ => Err(format!(
            "no mvvm-aot, mvvm-checkpoint and mvvm-restore in {} (cargo build --release -p mvvm-cli)",
            dir.display()
        )),
    }
}

fn run_migration(a: &MigrationArgs, paths: &Paths) -> Result<bool> {
    let sizes = match (&a.sizes, a.quick) {
        (v, _) if !v.is_empty() => v.clone(),
        (_, true) => vec![8],
        (_, false) => vec![64, 256, 1024],
    };
    if sizes.iter().any(|&m| !(8..=3584).contains(&m)) {
        bail!("--sizes takes MiB from 8 (the working set) to 3584");
    }
    let reps = a.reps.unwrap_or(if a.quick { 1 } else { 3 }).max(1);
    let (mvvm_dir, mvvm_missing) = match migration_tools(a, paths) {
        Ok(d) => {
            eprintln!("MVVM: tools in {}", d.display());
            (Some(d), String::new())
        }
        Err(why) => {
            eprintln!("MVVM: not run: {why}");
            (None, why)
        }
    };
    let criu = match a.criu.find(paths) {
        CriuTool::Ready { path, version } => {
            eprintln!("CRIU: {version} ({})", path.display());
            Ok(path)
        }
        CriuTool::Unavailable(why) => Err(why),
        CriuTool::Off => Err("not asked for (--no-criu)".to_owned()),
    };
    if let Err(why) = &criu {
        eprintln!("CRIU: not run: {why}");
    }
    let cfg = migration::Config {
        sizes,
        reps,
        mvvm_dir,
        mvvm_missing,
        criu,
        netns: a.netns,
        work: paths.work().join("migration"),
        port: a.port,
    };
    let out = a.out.clone().unwrap_or_else(|| paths.artifact());
    tools::ensure_dir(&out)?;
    let write = |res: &migration::MigrationResults| -> mvvm_bench::Result<String> {
        report::write(&out.join("migration.csv"), &migration::csv(res))?;
        let mut md = migration::markdown(res, "Migration downtime: MVVM and CRIU");
        md.push_str(&migration::settings(&cfg));
        if let Some(note) = &a.note {
            md.push_str(&format!("\n{note}\n"));
        }
        report::write(&out.join("migration.md"), &md)?;
        Ok(md)
    };
    let res = migration::run(&paths.root, &cfg, &mut |r| {
        if let Err(e) = write(r) {
            eprintln!("mvvm-bench: warning: {e}");
        }
    })?;
    let md = write(&res)?;
    let plotted = plot::downtime_plot(&out.join("migration.svg"), &res.downtime_lines())?;
    eprintln!(
        "wrote {}/migration.csv, migration.md{}",
        out.display(),
        if plotted {
            ", migration.svg"
        } else {
            " (no plot: nothing ran)"
        }
    );
    print!("{md}");
    Ok(res.failures.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Migration(a)) = &cli.command {
        return match run_migration(a, &Paths::from_build()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("mvvm-bench migration: error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::Measure {
        report,
        timeout_secs,
        env,
        cmd,
    }) = &cli.command
    {
        return match measure_command(report, *timeout_secs, env, cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mvvm-bench measure: error: {e:#}");
                ExitCode::from(125)
            }
        };
    }
    if let Some(Command::CriuRestore {
        criu,
        images,
        work,
        pidfile,
        report,
        timeout_secs,
    }) = &cli.command
    {
        let done = criu::restore_here(
            criu,
            images,
            work,
            pidfile,
            Duration::from_secs(*timeout_secs),
        )
        .map_err(anyhow::Error::from)
        .and_then(|r| {
            std::fs::write(report, r.to_line())
                .with_context(|| format!("cannot write {}", report.display()))
        });
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mvvm-bench criu-restore: error: {e:#}");
                ExitCode::from(125)
            }
        };
    }
    let paths = Paths::from_build();
    let result = if cli.smoke || cli.write_expected {
        run_smoke(&cli, &paths)
    } else {
        run_full(&cli, &paths)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mvvm-bench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn measure_command(
    report: &std::path::Path,
    timeout_secs: u64,
    env: &[String],
    cmd: &[OsString],
) -> Result<()> {
    let Some((program, args)) = cmd.split_first() else {
        bail!("no program to measure")
    };
    let m = measure::measure_here(
        std::path::Path::new(program),
        args,
        env,
        Duration::from_secs(timeout_secs),
    )?;
    std::fs::write(report, m.to_report())
        .with_context(|| format!("cannot write {}", report.display()))?;
    Ok(())
}
