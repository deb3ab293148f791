//! The full benchmark run: build, compile every configuration, then run
//! every workload in interleaved rounds (one run of each configuration per
//! round) after warm-up rounds, checking each run's checksum against the
//! native build's.

use crate::Result;
use crate::cr::{self, CrRecord};
use crate::criu::{CriuRecord, CriuTool, CriuTrial};
use crate::measure::{Measurement, measure_via, measure_via_env};
use crate::policy::Policy;
use crate::stats::Summary;
use crate::threads::{self, ThreadedWorkload};
use crate::tools::{self, CompileOutcome, MvvmTools, Paths};
use crate::workloads::{self, Workload};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Marker shown for a policy the compiler does not accept yet.
pub const NOT_SUPPORTED: &str = "n/a (not yet supported)";

/// One way of running a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The gcc build.
    Native,
    /// MVVM with a checkpoint policy.
    Mvvm(Policy),
    /// Wasmtime (`wasmtime run` of a precompiled module).
    Wasmtime,
}

impl Variant {
    /// Column and CSV label.
    pub fn label(&self) -> String {
        match self {
            Variant::Native => "native".to_owned(),
            Variant::Mvvm(p) => format!("mvvm-{}", p.name),
            Variant::Wasmtime => "wasmtime".to_owned(),
        }
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Measured rounds per workload.
    pub reps: usize,
    /// Unmeasured rounds before them.
    pub warmup: usize,
    /// Use the smoke sizes (for trying the harness quickly).
    pub smoke_sizes: bool,
    /// Workloads to run.
    pub workloads: Vec<&'static Workload>,
    /// MVVM policies to try.
    pub policies: Vec<Policy>,
    /// Time limit of one run.
    pub run_limit: Duration,
    /// Time limit of one compilation.
    pub compile_limit: Duration,
    /// Checkpoint and restore each workload once (with the first supported
    /// policy of [`cr::POLICY_PREFERENCE`]).
    pub checkpoint_trials: bool,
    /// Memory sizes (MiB) at which `memfill` is checkpointed and restored.
    pub memfill_sweep: Vec<u32>,
    /// CRIU, for the same trials on the native builds (only used with
    /// `checkpoint_trials`).
    pub criu: CriuTool,
    /// Threaded workloads to run.
    pub threaded: Vec<&'static ThreadedWorkload>,
    /// Their thread counts.
    pub thread_counts: Vec<u32>,
    /// The Wasmtime that runs them (path and version), or why there is
    /// none; `None` when no threaded workload is selected.
    pub wasmtime_threads: Option<std::result::Result<(PathBuf, String), String>>,
}

/// One measured (or warm-up) execution.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Workload name.
    pub workload: &'static str,
    /// Variant label.
    pub variant: String,
    /// Round number (warm-up rounds first, counted separately).
    pub round: usize,
    /// Whether this was a warm-up round (excluded from statistics).
    pub warmup: bool,
    /// Figures.
    pub m: Measurement,
    /// Printed checksum.
    pub checksum: Option<String>,
    /// Whether it equals the native build's.
    pub checksum_ok: bool,
    /// Start-up time from the runner's `--json` summary (`startup_ms`: load,
    /// relocate, instantiate, up to the guest's first instruction), when it
    /// reports one (MVVM runs only).
    pub startup_ms: Option<f64>,
}

/// One compilation.
#[derive(Debug, Clone)]
pub struct CompileRecord {
    /// Workload name.
    pub workload: &'static str,
    /// Variant label (`mvvm-POLICY` or `wasmtime`).
    pub variant: String,
    /// Result.
    pub outcome: CompileOutcome,
    /// Size of the object written (`.aot` or `.cwasm`), when compiled.
    pub bytes: Option<u64>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Workloads, in order.
    pub workloads: Vec<&'static str>,
    /// Variant labels, in column order.
    pub variants: Vec<String>,
    /// Every execution.
    pub runs: Vec<RunRecord>,
    /// Every compilation.
    pub compiles: Vec<CompileRecord>,
    /// Why a (workload, variant) cell has no figures, e.g. [`NOT_SUPPORTED`].
    pub missing: BTreeMap<(String, String), String>,
    /// Checkpoint-and-restore trials.
    pub checkpoints: Vec<CrRecord>,
    /// memfill runs with periodic checkpoints written in the background.
    pub periodic: Vec<cr::PeriodicRecord>,
    /// CRIU dump-and-restore trials of the native builds.
    pub criu: Vec<CriuRecord>,
    /// Which CRIU was used, or why none could be (empty when not asked
    /// for).
    pub criu_status: String,
    /// Threaded workloads run, in order (their runs are in `runs`, with
    /// the variants of [`threaded_variants`] at each thread count).
    pub threaded: Vec<&'static str>,
    /// Thread counts of the threaded workloads.
    pub thread_counts: Vec<u32>,
    /// The Wasmtime used for them, or why none was
    /// ([`crate::tools::WASMTIME_THREADS_MISSING`]).
    pub threaded_wasmtime: String,
}

/// The ways a threaded workload is run at each thread count (labels
/// without the thread count, see [`crate::threads::label`]).
pub const THREADED_BASES: [&str; 3] = ["native", "mvvm-none", "wasmtime"];

/// Every label of a threaded workload's runs.
pub fn threaded_variants(counts: &[u32]) -> Vec<String> {
    counts
        .iter()
        .flat_map(|&n| THREADED_BASES.iter().map(move |b| threads::label(b, n)))
        .collect()
}

impl Results {
    /// Wall times of the measured runs of a cell whose checksum was right.
    pub fn samples(&self, workload: &str, variant: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| {
                r.workload == workload && r.variant == variant && !r.warmup && r.checksum_ok
            })
            .map(|r| r.m.wall_s)
            .collect()
    }

    /// CPU seconds (user + system) of the measured runs of a cell whose
    /// checksum was right: less sensitive than wall time to other load on
    /// a shared machine.
    pub fn cpu_samples(&self, workload: &str, variant: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| {
                r.workload == workload && r.variant == variant && !r.warmup && r.checksum_ok
            })
            .map(|r| r.m.user_s + r.m.sys_s)
            .collect()
    }

    /// Start-up times (ms) that the measured runs of a cell reported.
    pub fn startup_samples(&self, workload: &str, variant: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| {
                r.workload == workload && r.variant == variant && !r.warmup && r.checksum_ok
            })
            .filter_map(|r| r.startup_ms)
            .collect()
    }

    /// Size of the object a compilation wrote.
    pub fn object_bytes(&self, workload: &str, variant: &str) -> Option<u64> {
        self.compiles
            .iter()
            .find(|c| c.workload == workload && c.variant == variant)
            .and_then(|c| c.bytes)
    }

    /// Peak RSS (KiB) of the measured runs of a cell.
    pub fn rss_samples(&self, workload: &str, variant: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| {
                r.workload == workload && r.variant == variant && !r.warmup && r.checksum_ok
            })
            .map(|r| r.m.max_rss_kib as f64)
            .collect()
    }

    /// Why a cell is empty, if it is.
    pub fn why_missing(&self, workload: &str, variant: &str) -> Option<&str> {
        self.missing
            .get(&(workload.to_owned(), variant.to_owned()))
            .map(String::as_str)
    }

    /// Whether any run printed a wrong checksum.
    pub fn mismatches(&self) -> Vec<&RunRecord> {
        self.runs.iter().filter(|r| !r.checksum_ok).collect()
    }
}

struct Prepared {
    variant: Variant,
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    /// Environment variables added (`K=V`).
    env: Vec<String>,
    /// The `--json` summary the run writes (MVVM), read for `startup_ms`.
    json: Option<PathBuf>,
}

impl Prepared {
    fn plain(variant: Variant, label: String, program: PathBuf, args: Vec<OsString>) -> Prepared {
        Prepared {
            variant,
            label,
            program,
            args,
            env: Vec::new(),
            json: None,
        }
    }
}

/// `startup_ms` of a runner's `--json` summary, if written and present.
pub fn startup_ms_of(summary: Option<&Path>) -> Option<f64> {
    let text = std::fs::read_to_string(summary?).ok()?;
    cr::json_field(&text, "startup_ms").and_then(|v| v.parse().ok())
}

/// Runs one prepared configuration through the measuring wrapper, its
/// `--json` summary (if any) removed before and read after.
fn measure_prepared(
    wrapper: &Path,
    report_file: &Path,
    p: &Prepared,
    limit: Duration,
) -> Result<(crate::measure::MeasuredRun, Option<f64>)> {
    if let Some(j) = &p.json {
        let _ = std::fs::remove_file(j);
    }
    let run = measure_via_env(wrapper, report_file, &p.program, &p.args, &p.env, limit)?;
    Ok((run, startup_ms_of(p.json.as_deref())))
}

/// The size of a file, if it exists.
fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Runs the benchmark. `wrapper` is the harness binary (for the `measure`
/// subcommand); `mvvm` and `wasmtime` are the tools found. `progress` is
/// called with the results so far after each workload, so that an
/// interrupted run still leaves its figures behind.
pub fn run(
    paths: &Paths,
    cfg: &Config,
    wrapper: &Path,
    mvvm: Option<&MvvmTools>,
    wasmtime: Option<&Path>,
    progress: &mut dyn FnMut(&Results) -> Result<()>,
) -> Result<Results> {
    let work = paths.work();
    let mut res = Results::default();
    let mut variants: Vec<Variant> = vec![Variant::Native];
    if mvvm.is_some() {
        variants.extend(cfg.policies.iter().map(|p| Variant::Mvvm(*p)));
    }
    if wasmtime.is_some() {
        variants.push(Variant::Wasmtime);
    }
    res.variants = variants.iter().map(Variant::label).collect();
    let criu = match (&cfg.criu, cfg.checkpoint_trials) {
        (CriuTool::Ready { path, version }, true) => {
            res.criu_status = format!("CRIU {version} ({})", path.display());
            Some(path.as_path())
        }
        (CriuTool::Unavailable(why), true) => {
            res.criu_status = format!("CRIU not run: {why}");
            None
        }
        _ => None,
    };
    let mut unsupported: BTreeMap<String, String> = BTreeMap::new();
    let report_file = work.join("measure-report.txt");
    tools::ensure_dir(&work)?;
    let json_dir = work.join("json");
    tools::ensure_dir(&json_dir)?;

    for w in &cfg.workloads {
        res.workloads.push(w.name);
        let args = w.args(cfg.smoke_sizes);
        eprintln!("== {} {}", w.name, args.join(" "));
        let native = tools::build_native(paths, w, &work.join("native"))?;
        let mut prepared = vec![Prepared::plain(
            Variant::Native,
            "native".to_owned(),
            native,
            args.iter().map(OsString::from).collect(),
        )];
        for v in &variants[1..] {
            let label = v.label();
            if let Some(why) = unsupported.get(&label) {
                res.missing
                    .insert((w.name.to_owned(), label.clone()), why.clone());
                continue;
            }
            let (outcome, program, run_args, object, json) = match v {
                Variant::Mvvm(p) => {
                    let Some(t) = mvvm else { continue };
                    let dir = work.join("aot").join(p.name);
                    tools::ensure_dir(&dir)?;
                    let aot = dir.join(format!("{}.aot", w.name));
                    let o = timed_compile(|| {
                        tools::compile_aot(t, &paths.wasm(w), &aot, p.flags, cfg.compile_limit)
                    })?;
                    let json = json_dir.join(format!("{}.{}.json", w.name, p.name));
                    let mut run_args = t.run_args(&aot, args);
                    run_args.extend(["--json".into(), json.clone().into_os_string()]);
                    (o, t.checkpoint.clone(), run_args, aot, Some(json))
                }
                Variant::Wasmtime => {
                    let Some(wt) = wasmtime else { continue };
                    let dir = work.join("cwasm");
                    tools::ensure_dir(&dir)?;
                    let cwasm = dir.join(format!("{}.cwasm", w.name));
                    let flags = tools::wasmtime_flags(w);
                    let o = timed_compile(|| {
                        tools::compile_wasmtime(
                            wt,
                            &paths.wasm(w),
                            &cwasm,
                            flags,
                            cfg.compile_limit,
                        )
                    })?;
                    (
                        o,
                        wt.to_path_buf(),
                        tools::wasmtime_run_args(&cwasm, flags, args),
                        cwasm,
                        None,
                    )
                }
                Variant::Native => continue,
            };
            res.compiles.push(CompileRecord {
                workload: w.name,
                variant: label.clone(),
                outcome: outcome.clone(),
                bytes: match outcome {
                    CompileOutcome::Done(_) => file_size(&object),
                    _ => None,
                },
            });
            match outcome {
                CompileOutcome::Done(secs) => {
                    eprintln!("   compiled {label} in {secs:.2} s");
                    prepared.push(Prepared {
                        variant: *v,
                        label,
                        program,
                        args: run_args,
                        env: Vec::new(),
                        json,
                    });
                }
                CompileOutcome::Unsupported(msg) => {
                    eprintln!("   {label}: {NOT_SUPPORTED}: {}", first_line(&msg));
                    unsupported.insert(label.clone(), NOT_SUPPORTED.to_owned());
                    res.missing
                        .insert((w.name.to_owned(), label), NOT_SUPPORTED.to_owned());
                }
                CompileOutcome::Failed(msg) => {
                    eprintln!("   {label}: compile failed: {}", first_line(&msg));
                    res.missing.insert(
                        (w.name.to_owned(), label),
                        format!("compile failed: {}", first_line(&msg)),
                    );
                }
            }
        }

        let (reference, failed) =
            run_rounds(wrapper, &report_file, cfg, w.name, &prepared, &mut res)?;
        if let (true, Some(t)) = (cfg.checkpoint_trials, mvvm) {
            let chosen = cr::POLICY_PREFERENCE.iter().find_map(|name| {
                prepared.iter().find_map(|p| match p.variant {
                    Variant::Mvvm(pol) if pol.name == *name && !failed.contains_key(&p.label) => {
                        Some((pol, p.label.clone()))
                    }
                    _ => None,
                })
            });
            if let Some((pol, label)) = chosen {
                let straight = Summary::of(&res.samples(w.name, &label)).map_or(1.0, |s| s.median);
                let aot = work
                    .join("aot")
                    .join(pol.name)
                    .join(format!("{}.aot", w.name));
                let trial = cr::Trial {
                    wrapper,
                    report_file: &report_file,
                    tools: t,
                    dir: &work.join("snapshots"),
                    limit: cfg.run_limit,
                    guest_env: &[],
                };
                let rec =
                    trial.run(w.name, &aot, pol.name, args, straight, reference.as_deref())?;
                log_trial(&rec);
                res.checkpoints.push(rec);
            }
        }
        if let Some(criu) = criu {
            let native = &prepared[0];
            let straight = Summary::of(&res.samples(w.name, "native")).map(|s| s.median);
            if let (Some(straight), false) = (straight, failed.contains_key("native")) {
                let trial = CriuTrial {
                    criu,
                    wrapper,
                    dir: &work.join("criu"),
                    limit: cfg.run_limit,
                };
                let rec = trial.run(
                    w.name,
                    &native.program,
                    args,
                    straight,
                    reference.as_deref(),
                )?;
                log_criu(&rec);
                res.criu.push(rec);
            }
        }
        for (label, why) in failed {
            res.missing.insert((w.name.to_owned(), label), why);
        }
        progress(&res)?;
    }
    if !cfg.threaded.is_empty() {
        let threaded = Threaded {
            paths,
            cfg,
            wrapper,
            mvvm,
            report_file: &report_file,
        };
        threaded.run(&mut res, progress)?;
    }
    if cfg.checkpoint_trials && !cfg.memfill_sweep.is_empty() && (mvvm.is_some() || criu.is_some())
    {
        let sweep = Sweep {
            paths,
            cfg,
            wrapper,
            mvvm,
            criu,
            report_file: &report_file,
        };
        sweep.run(&unsupported, &mut res)?;
        progress(&res)?;
    }
    Ok(res)
}

/// How many times each module is compiled; the compile time reported is
/// the median (one compilation is too noisy on a shared machine).
pub const COMPILE_REPS: usize = 3;

/// Compiles with `compile` up to [`COMPILE_REPS`] times and returns the
/// median time; the first outcome that is not a success is returned as it
/// is.
fn timed_compile(mut compile: impl FnMut() -> Result<CompileOutcome>) -> Result<CompileOutcome> {
    let mut secs = Vec::with_capacity(COMPILE_REPS);
    for _ in 0..COMPILE_REPS {
        match compile()? {
            CompileOutcome::Done(t) => secs.push(t),
            other => return Ok(other),
        }
    }
    Ok(CompileOutcome::Done(
        Summary::of(&secs).map_or(f64::NAN, |s| s.median),
    ))
}

fn log_trial(rec: &CrRecord) {
    let ms = rec
        .summary
        .checkpoint_ms
        .map_or("?".to_owned(), |v| format!("{v:.1}"));
    let mib = rec
        .summary
        .snapshot_bytes
        .map_or("?".to_owned(), |v| format!("{:.1}", v as f64 / 1048576.0));
    let restore = rec
        .restore
        .as_ref()
        .map_or("-".to_owned(), |m| format!("{:.3} s", m.wall_s));
    eprintln!(
        "   checkpoint ({}) after {:.2} s: {ms} ms, {mib} MiB snapshot; restore to the end {restore}; {}",
        rec.policy,
        rec.after_s,
        if rec.checksum_ok {
            "checksum ok".to_owned()
        } else if rec.failed() {
            format!("FAILED: {}", rec.note)
        } else {
            format!("skipped: {}", rec.note)
        }
    );
}

fn log_criu(rec: &CriuRecord) {
    let ms = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{:.1} ms", v * 1000.0));
    eprintln!(
        "   criu dump after {:.2} s: {}, {} MiB images; restore to first instruction {}, to the end {}; {}",
        rec.after_s,
        ms(rec.dump_s),
        rec.image_bytes
            .map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0)),
        ms(rec.restore_first_s),
        rec.restore_end_s
            .map_or("-".to_owned(), |v| format!("{v:.3} s")),
        if rec.checksum_ok {
            "checksum ok".to_owned()
        } else if rec.failed() {
            format!("FAILED: {}", rec.note)
        } else {
            format!("skipped: {}", rec.note)
        }
    );
}

/// The period of the memfill sweep's periodic-checkpoint runs, seconds.
const PERIODIC_EVERY_S: f64 = 0.2;

/// The `memfill` sweep: checkpoint and restore at each memory size, with
/// MVVM (when its tools and a checkpoint policy are available) and with
/// CRIU on the native build (when CRIU is usable).
struct Sweep<'a> {
    paths: &'a Paths,
    cfg: &'a Config,
    wrapper: &'a Path,
    mvvm: Option<&'a MvvmTools>,
    criu: Option<&'a Path>,
    report_file: &'a Path,
}

impl Sweep<'_> {
    /// The memfill module compiled with the preferred supported policy.
    fn mvvm_module(
        &self,
        w: &Workload,
        unsupported: &BTreeMap<String, String>,
    ) -> Result<Option<(&'static str, PathBuf)>> {
        let Some(t) = self.mvvm else { return Ok(None) };
        let policy = cr::POLICY_PREFERENCE.iter().find_map(|n| {
            self.cfg
                .policies
                .iter()
                .find(|p| p.name == *n && !unsupported.contains_key(&Variant::Mvvm(**p).label()))
        });
        let Some(policy) = policy else {
            return Ok(None);
        };
        let dir = self.paths.work().join("aot").join(policy.name);
        tools::ensure_dir(&dir)?;
        let aot = dir.join("memfill.aot");
        Ok(
            match tools::compile_aot(
                t,
                &self.paths.wasm(w),
                &aot,
                policy.flags,
                self.cfg.compile_limit,
            )? {
                CompileOutcome::Done(_) => Some((policy.name, aot)),
                _ => None,
            },
        )
    }

    fn run(&self, unsupported: &BTreeMap<String, String>, res: &mut Results) -> Result<()> {
        let Some(w) = workloads::by_name("memfill") else {
            return Ok(());
        };
        let work = self.paths.work();
        let module = self.mvvm_module(w, unsupported)?;
        let native = tools::build_native(self.paths, w, &work.join("native"))?;
        let limit = self.cfg.run_limit;
        for size in &self.cfg.memfill_sweep {
            let owned = [format!("-m{size}"), "-p4".to_owned()];
            let args: Vec<&str> = owned.iter().map(String::as_str).collect();
            let label = format!("memfill {size} MiB");
            eprintln!("== {label} (checkpoint and restore)");
            let os: Vec<OsString> = args.iter().map(OsString::from).collect();
            let n = measure_via(self.wrapper, self.report_file, &native, &os, limit)?;
            let reference = workloads::parse_checksum(&n.stdout);
            if let (Some(t), Some((policy, aot))) = (self.mvvm, &module) {
                let straight = measure_via(
                    self.wrapper,
                    self.report_file,
                    &t.checkpoint,
                    &t.run_args(aot, &args),
                    limit,
                )?;
                let trial = cr::Trial {
                    wrapper: self.wrapper,
                    report_file: self.report_file,
                    tools: t,
                    dir: &work.join("snapshots"),
                    limit,
                    guest_env: &[],
                };
                let rec = trial.run(
                    &label,
                    aot,
                    policy,
                    &args,
                    straight.m.wall_s,
                    reference.as_deref(),
                )?;
                log_trial(&rec);
                res.checkpoints.push(rec);
                eprintln!("== {label} (periodic checkpoints in the background)");
                let p = trial.run_periodic(
                    &label,
                    aot,
                    &args,
                    PERIODIC_EVERY_S,
                    straight.m.wall_s,
                    reference.as_deref(),
                )?;
                eprintln!(
                    "   {} periodic checkpoints, pause median {} ms, max {} ms, wall {:.2} s (uninterrupted {:.2} s){}",
                    p.pauses_ms.len(),
                    p.median_pause().map_or("—".into(), |v| format!("{v:.2}")),
                    p.max_pause().map_or("—".into(), |v| format!("{v:.2}")),
                    p.wall_s.unwrap_or(f64::NAN),
                    p.straight_s,
                    if p.checksum_ok {
                        String::new()
                    } else {
                        format!(": {}", p.note)
                    }
                );
                res.periodic.push(p);
            }
            if let (Some(criu), Some(0)) = (self.criu, n.m.exit_code) {
                let trial = CriuTrial {
                    criu,
                    wrapper: self.wrapper,
                    dir: &work.join("criu"),
                    limit,
                };
                let rec = trial.run(&label, &native, &args, n.m.wall_s, reference.as_deref())?;
                log_criu(&rec);
                res.criu.push(rec);
            }
        }
        Ok(())
    }
}

/// Runs `prepared` in interleaved rounds (warm-up first) and records every
/// run in `res`. The reference checksum is the first native run's; a
/// configuration that fails (exit, time-out, other checksum) is not run
/// again. Returns the reference and the failed labels with the reason.
fn run_rounds(
    wrapper: &Path,
    report_file: &Path,
    cfg: &Config,
    workload: &'static str,
    prepared: &[Prepared],
    res: &mut Results,
) -> Result<(Option<String>, BTreeMap<String, String>)> {
    let mut reference: Option<String> = None;
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..cfg.warmup + cfg.reps {
        let warmup = round < cfg.warmup;
        for p in prepared {
            if failed.contains_key(&p.label) {
                continue;
            }
            let (run, startup_ms) = measure_prepared(wrapper, report_file, p, cfg.run_limit)?;
            let checksum = workloads::parse_checksum(&run.stdout);
            if p.variant == Variant::Native && reference.is_none() {
                reference = checksum.clone();
            }
            let clean_exit = run.m.exit_code == Some(0) && !run.m.timed_out;
            let checksum_ok = clean_exit && checksum.is_some() && checksum == reference;
            if !checksum_ok {
                let why = if run.m.timed_out {
                    format!("timed out after {} s", cfg.run_limit.as_secs())
                } else if !clean_exit {
                    format!("exit {:?}: {}", run.m.exit_code, first_line(&run.stderr))
                } else {
                    format!(
                        "checksum mismatch: {:?} vs native {:?}",
                        checksum, reference
                    )
                };
                eprintln!("   {}: FAILED: {why}", p.label);
                failed.insert(p.label.clone(), why);
            } else if !warmup {
                eprintln!(
                    "   {:<18} {:>8.3} s  {:>8} KiB{}",
                    p.label,
                    run.m.wall_s,
                    run.m.max_rss_kib,
                    startup_ms.map_or(String::new(), |v| format!("  start-up {v:.2} ms"))
                );
            }
            res.runs.push(RunRecord {
                workload,
                variant: p.label.clone(),
                round,
                warmup,
                m: run.m,
                checksum,
                checksum_ok,
                startup_ms,
            });
        }
    }
    Ok((reference, failed))
}

/// The threaded workloads: each at every thread count, natively (gcc
/// `-pthread`), under MVVM without a policy (`-e OMP_NUM_THREADS=N`) and
/// under a Wasmtime that runs wasi-threads, in interleaved rounds; then,
/// with checkpoint trials on, a checkpoint-and-restore trial at
/// [`threads::CHECKPOINT_THREADS`] threads.
struct Threaded<'a> {
    paths: &'a Paths,
    cfg: &'a Config,
    wrapper: &'a Path,
    mvvm: Option<&'a MvvmTools>,
    report_file: &'a Path,
}

impl Threaded<'_> {
    /// Marks a threaded configuration missing at every thread count.
    fn missing_everywhere(&self, res: &mut Results, workload: &str, base: &str, why: &str) {
        for &n in &self.cfg.thread_counts {
            res.missing.insert(
                (workload.to_owned(), threads::label(base, n)),
                why.to_owned(),
            );
        }
    }

    /// Compiles with `compile` (timed), records it as `variant`, and
    /// returns whether the object is usable; when not, every thread
    /// count's `base` cell says why.
    fn compile(
        &self,
        res: &mut Results,
        workload: &'static str,
        (variant, base): (&str, &str),
        object: &Path,
        compile: impl FnMut() -> Result<CompileOutcome>,
    ) -> Result<bool> {
        let outcome = timed_compile(compile)?;
        res.compiles.push(CompileRecord {
            workload,
            variant: variant.to_owned(),
            outcome: outcome.clone(),
            bytes: match outcome {
                CompileOutcome::Done(_) => file_size(object),
                _ => None,
            },
        });
        let why = match outcome {
            CompileOutcome::Done(secs) => {
                eprintln!("   compiled {variant} in {secs:.2} s");
                return Ok(true);
            }
            CompileOutcome::Unsupported(msg) | CompileOutcome::Failed(msg) => {
                format!("compile failed: {}", first_line(&msg))
            }
        };
        eprintln!("   {variant}: {why}");
        self.missing_everywhere(res, workload, base, &why);
        Ok(false)
    }

    fn run(
        &self,
        res: &mut Results,
        progress: &mut dyn FnMut(&Results) -> Result<()>,
    ) -> Result<()> {
        let cfg = self.cfg;
        let work = self.paths.work();
        let json_dir = work.join("json");
        tools::ensure_dir(&json_dir)?;
        res.thread_counts = cfg.thread_counts.clone();
        let wasmtime = match &cfg.wasmtime_threads {
            Some(Ok((path, version))) => {
                res.threaded_wasmtime = format!("{version} ({})", path.display());
                Some(path.as_path())
            }
            Some(Err(why)) => {
                res.threaded_wasmtime = why.clone();
                None
            }
            None => None,
        };
        for w in &cfg.threaded {
            res.threaded.push(w.name);
            let args = w.args(cfg.smoke_sizes);
            let counts: Vec<String> = cfg.thread_counts.iter().map(u32::to_string).collect();
            eprintln!(
                "== {} {} ({} threads)",
                w.name,
                args.join(" "),
                counts.join(", ")
            );
            let native = tools::build_native_threaded(self.paths, w, &work.join("native"))?;
            let wasm = self.paths.threaded_wasm(w);
            let mut aot = None;
            if let Some(t) = self.mvvm {
                let dir = work.join("aot").join("none");
                tools::ensure_dir(&dir)?;
                let file = dir.join(format!("{}.aot", w.name));
                let ok = self.compile(res, w.name, ("mvvm-none", "mvvm-none"), &file, || {
                    tools::compile_aot(t, &wasm, &file, &[], cfg.compile_limit)
                })?;
                aot = ok.then_some((t, file));
            }
            let mut cwasm = None;
            match wasmtime {
                Some(wt) => {
                    let dir = work.join("cwasm");
                    tools::ensure_dir(&dir)?;
                    let file = dir.join(format!("{}.cwasm", w.name));
                    let ok = self.compile(res, w.name, ("wasmtime", "wasmtime"), &file, || {
                        tools::compile_wasmtime(
                            wt,
                            &wasm,
                            &file,
                            tools::WASMTIME_THREADS_COMPILE_FLAGS,
                            cfg.compile_limit,
                        )
                    })?;
                    cwasm = ok.then_some((wt, file));
                }
                None => self.missing_everywhere(
                    res,
                    w.name,
                    "wasmtime",
                    tools::WASMTIME_THREADS_MISSING,
                ),
            }
            let mut prepared = Vec::new();
            for &n in &cfg.thread_counts {
                let env = threads::env_entry(n);
                prepared.push(Prepared {
                    variant: Variant::Native,
                    label: threads::label("native", n),
                    program: native.clone(),
                    args: args.iter().map(OsString::from).collect(),
                    env: vec![env.clone()],
                    json: None,
                });
                if let Some((t, file)) = &aot {
                    let json = json_dir.join(format!("{}.t{n}.json", w.name));
                    let mut run_args = threads::mvvm_env_args(n);
                    run_args.extend(t.run_args(file, args));
                    run_args.extend(["--json".into(), json.clone().into_os_string()]);
                    prepared.push(Prepared {
                        variant: Variant::Mvvm(crate::policy::NONE),
                        label: threads::label("mvvm-none", n),
                        program: t.checkpoint.clone(),
                        args: run_args,
                        env: Vec::new(),
                        json: Some(json),
                    });
                }
                if let Some((wt, file)) = &cwasm {
                    let mut flags: Vec<&str> = tools::WASMTIME_THREADS_RUN_FLAGS.to_vec();
                    flags.extend(["--env", env.as_str()]);
                    prepared.push(Prepared {
                        variant: Variant::Wasmtime,
                        label: threads::label("wasmtime", n),
                        program: wt.to_path_buf(),
                        args: tools::wasmtime_run_args(file, &flags, args),
                        env: Vec::new(),
                        json: None,
                    });
                }
            }
            let (reference, failed) =
                run_rounds(self.wrapper, self.report_file, cfg, w.name, &prepared, res)?;
            let straight_label = threads::label("mvvm-none", threads::CHECKPOINT_THREADS);
            let straight = Summary::of(&res.samples(w.name, &straight_label)).map(|s| s.median);
            for (label, why) in failed {
                res.missing.insert((w.name.to_owned(), label), why);
            }
            if let (true, Some(t), Some(straight)) = (cfg.checkpoint_trials, self.mvvm, straight) {
                self.checkpoint_trial(res, t, w, straight, reference.as_deref())?;
            }
            progress(res)?;
        }
        Ok(())
    }

    /// Checkpoints the workload at [`threads::CHECKPOINT_THREADS`] threads
    /// (module compiled with the first policy of
    /// [`cr::POLICY_PREFERENCE`] that is selected and compiles) and
    /// restores it. A runner that refuses to checkpoint the program is
    /// recorded as such ([`cr::CHECKPOINT_REFUSED`]), with no figures.
    fn checkpoint_trial(
        &self,
        res: &mut Results,
        t: &MvvmTools,
        w: &ThreadedWorkload,
        straight: f64,
        reference: Option<&str>,
    ) -> Result<()> {
        let work = self.paths.work();
        let wasm = self.paths.threaded_wasm(w);
        let mut chosen = None;
        for name in cr::POLICY_PREFERENCE {
            let Some(p) = self.cfg.policies.iter().find(|p| p.name == *name) else {
                continue;
            };
            let dir = work.join("aot").join(p.name);
            tools::ensure_dir(&dir)?;
            let file = dir.join(format!("{}.aot", w.name));
            if let CompileOutcome::Done(_) =
                tools::compile_aot(t, &wasm, &file, p.flags, self.cfg.compile_limit)?
            {
                chosen = Some((p.name, file));
                break;
            }
        }
        let Some((policy, file)) = chosen else {
            return Ok(());
        };
        let n = threads::CHECKPOINT_THREADS;
        let env = threads::mvvm_env_args(n);
        let trial = cr::Trial {
            wrapper: self.wrapper,
            report_file: self.report_file,
            tools: t,
            dir: &work.join("snapshots"),
            limit: self.cfg.run_limit,
            guest_env: &env,
        };
        let label = format!("{} ({n} threads)", w.name);
        let rec = trial.run(
            &label,
            &file,
            policy,
            w.args(self.cfg.smoke_sizes),
            straight,
            reference,
        )?;
        log_trial(&rec);
        res.checkpoints.push(rec);
        Ok(())
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}
