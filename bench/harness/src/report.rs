//! Writing results: a CSV of every run and compilation, and a Markdown page
//! of tables (execution time, ratios to native and to MVVM without a
//! policy, compile time, peak RSS).

use crate::runner::{NOT_SUPPORTED, Results};
use crate::stats::{Summary, geomean};
use crate::tools::CompileOutcome;
use crate::{BenchError, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The CSV header.
///
/// `bytes` is the size of the object a compilation wrote (`.aot`,
/// `.cwasm`); `startup_ms` the start-up time an MVVM run's `--json`
/// summary reported (empty when it reports none). The threaded workloads'
/// runs have variants `native-tN`, `mvvm-none-tN`, `wasmtime-tN` (N
/// threads).
pub const CSV_HEADER: &str = "kind,workload,variant,round,warmup,wall_s,user_s,sys_s,max_rss_kib,exit,timed_out,checksum,checksum_ok,bytes,startup_ms,note";

/// The CSV text: one row per execution and one per compilation.
pub fn csv(res: &Results) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in &res.runs {
        let _ = writeln!(
            s,
            "run,{},{},{},{},{:.6},{:.6},{:.6},{},{},{},{},{},,{},",
            r.workload,
            r.variant,
            r.round,
            r.warmup,
            r.m.wall_s,
            r.m.user_s,
            r.m.sys_s,
            r.m.max_rss_kib,
            r.m.exit_code.map_or("signal".to_owned(), |c| c.to_string()),
            r.m.timed_out,
            r.checksum.as_deref().unwrap_or(""),
            r.checksum_ok,
            opt(r.startup_ms)
        );
    }
    for c in &res.compiles {
        let (secs, note) = match &c.outcome {
            CompileOutcome::Done(t) => (format!("{t:.6}"), String::new()),
            CompileOutcome::Unsupported(_) => (String::new(), NOT_SUPPORTED.to_owned()),
            CompileOutcome::Failed(e) => (String::new(), format!("failed: {}", csv_text(e))),
        };
        let _ = writeln!(
            s,
            "compile,{},{},0,false,{secs},,,,,,,,{},,{note}",
            c.workload,
            c.variant,
            opt(c.bytes)
        );
    }
    for c in &res.checkpoints {
        let note = format!(
            "after_s={:.3};straight_s={:.6};snapshot_bytes={};memory_bytes={};frames={};checkpoint_ms={};{}",
            c.after_s,
            c.straight_s,
            opt(c.summary.snapshot_bytes),
            opt(c.summary.memory_bytes),
            opt(c.summary.frames),
            opt(c.summary.checkpoint_ms),
            csv_text(&c.note)
        );
        for (kind, m) in [("checkpoint", &c.checkpoint), ("restore", &c.restore)] {
            let Some(m) = m else { continue };
            let _ = writeln!(
                s,
                "{kind},{},mvvm-{},0,false,{:.6},{:.6},{:.6},{},{},{},,{},,,{note}",
                c.label,
                c.policy,
                m.wall_s,
                m.user_s,
                m.sys_s,
                m.max_rss_kib,
                m.exit_code.map_or("signal".to_owned(), |c| c.to_string()),
                m.timed_out,
                kind == "restore" && c.checksum_ok
            );
        }
    }
    for p in &res.periodic {
        let pauses: Vec<String> = p.pauses_ms.iter().map(|v| format!("{v:.3}")).collect();
        let note = format!(
            "every_s={};straight_s={:.6};pause_ms={};{}",
            p.every_s,
            p.straight_s,
            pauses.join(" "),
            csv_text(&p.note)
        );
        let _ = writeln!(
            s,
            "periodic,{},mvvm,0,false,{},,,,,,,{},,,{note}",
            csv_text(&p.label),
            opt(p.wall_s.map(|v| format!("{v:.6}"))),
            p.checksum_ok
        );
    }
    for c in &res.criu {
        let note = format!(
            "after_s={:.3};straight_s={:.6};image_bytes={};restore_first_ms={};frozen_ms={};memory_ms={};pages_written={};criu_restore_ms={};{}",
            c.after_s,
            c.straight_s,
            opt(c.image_bytes),
            opt(c.restore_first_s.map(|v| format!("{:.3}", v * 1000.0))),
            opt(c.stats.frozen_ms),
            opt(c.stats.memory_ms),
            opt(c.stats.pages_written),
            opt(c.stats.restore_ms),
            csv_text(&c.note)
        );
        let _ = writeln!(
            s,
            "criu-dump,{},criu,0,false,{},,,,,,,,,,{note}",
            c.label,
            opt(c.dump_s.map(|v| format!("{v:.6}")))
        );
        if let Some(end) = c.restore_end_s {
            let _ = writeln!(
                s,
                "criu-restore,{},criu,0,false,{end:.6},,,{},,,,{},,,{note}",
                c.label,
                opt(c.restore_rss_kib),
                c.checksum_ok
            );
        }
    }
    if res.criu.is_empty() && !res.criu_status.is_empty() {
        let _ = writeln!(
            s,
            "criu,,criu,0,false,,,,,,,,,,,{}",
            csv_text(&res.criu_status)
        );
    }
    if !res.threaded.is_empty() && !res.threaded_wasmtime.is_empty() {
        let _ = writeln!(
            s,
            "wasmtime-threads,,wasmtime,0,false,,,,,,,,,,,{}",
            csv_text(&res.threaded_wasmtime)
        );
    }
    s
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// Makes free text safe for one CSV field without quoting.
fn csv_text(s: &str) -> String {
    s.lines().next().unwrap_or("").replace([',', '"'], " ")
}

fn cell_missing(res: &Results, w: &str, v: &str) -> String {
    res.why_missing(w, v).unwrap_or("—").replace('|', "/")
}

/// The Markdown report.
pub fn markdown(res: &Results, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n");
    let _ = writeln!(
        s,
        "Median wall-clock time of the measured runs (± half the range, as a percentage of the median). \
         Every run's checksum was compared with the native build's; a cell with a failed or mismatching run \
         says why instead of giving a time.\n"
    );
    let header = |s: &mut String, first: &str, cols: &[String]| {
        let _ = writeln!(s, "| {first} | {} |", cols.join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(cols.len()));
    };

    // The serial workloads' tables (none when only threaded workloads ran).
    if !res.workloads.is_empty() {
        // Execution time.
        let _ = writeln!(s, "## Execution time (s)\n");
        header(&mut s, "workload", &res.variants);
        for w in &res.workloads {
            let cells: Vec<String> = res
                .variants
                .iter()
                .map(|v| match Summary::of(&res.samples(w, v)) {
                    Some(sm) => format!("{:.3} ±{:.1}%", sm.median, sm.spread_percent()),
                    None => cell_missing(res, w, v),
                })
                .collect();
            let _ = writeln!(s, "| {w} | {} |", cells.join(" | "));
        }

        // Ratios, of wall time and of CPU time.
        type Samples = fn(&Results, &str, &str) -> Vec<f64>;
        let ratio_tables: [(&str, &str, &str, Samples); 4] = [
            ("native", "native", "Execution time", Results::samples),
            (
                "mvvm-none",
                "MVVM without a checkpoint policy",
                "Execution time",
                Results::samples,
            ),
            ("wasmtime", "Wasmtime", "Execution time", Results::samples),
            (
                "native",
                "native",
                "CPU time (user + system)",
                Results::cpu_samples,
            ),
        ];
        for (base, what, quantity, samples) in ratio_tables {
            if !res.variants.iter().any(|v| v == base) {
                continue;
            }
            let cols: Vec<String> = res
                .variants
                .iter()
                .filter(|v| *v != base)
                .cloned()
                .collect();
            if cols.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "\n## {quantity} relative to {what} (×, lower is better)\n"
            );
            header(&mut s, "workload", &cols);
            let mut per_col: Vec<Vec<f64>> = vec![Vec::new(); cols.len()];
            for w in &res.workloads {
                let b = Summary::of(&samples(res, w, base)).map(|x| x.median);
                let cells: Vec<String> = cols
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match (b, Summary::of(&samples(res, w, v))) {
                        (Some(b), Some(x)) if b > 0.0 => {
                            per_col[i].push(x.median / b);
                            format!("{:.2}", x.median / b)
                        }
                        (_, None) => cell_missing(res, w, v),
                        _ => "—".to_owned(),
                    })
                    .collect();
                let _ = writeln!(s, "| {w} | {} |", cells.join(" | "));
            }
            let means: Vec<String> = per_col
                .iter()
                .map(|c| geomean(c).map_or("—".to_owned(), |g| format!("**{g:.2}**")))
                .collect();
            let _ = writeln!(s, "| **geometric mean** | {} |", means.join(" | "));
        }

        // Compile time.
        let compile_cols: Vec<String> = res
            .variants
            .iter()
            .filter(|v| res.compiles.iter().any(|c| &c.variant == *v))
            .cloned()
            .collect();
        if !compile_cols.is_empty() {
            let _ = writeln!(
                s,
                "\n## Compile time (s, median of {}): `mvvm-aot --opt-level=3` per policy, `wasmtime compile`\n",
                crate::runner::COMPILE_REPS
            );
            let both = compile_cols.iter().any(|v| v == "mvvm-none")
                && compile_cols.iter().any(|v| v == "wasmtime");
            let mut cols = compile_cols.clone();
            if both {
                cols.push("mvvm-none / wasmtime".to_owned());
            }
            header(&mut s, "workload", &cols);
            let done = |w: &str, v: &str| {
                res.compiles
                    .iter()
                    .find(|c| c.workload == w && c.variant == v)
                    .and_then(|c| match c.outcome {
                        CompileOutcome::Done(t) => Some(t),
                        _ => None,
                    })
            };
            let mut ratios = Vec::new();
            for w in &res.workloads {
                let mut cells: Vec<String> = compile_cols
                    .iter()
                    .map(|v| {
                        match res
                            .compiles
                            .iter()
                            .find(|c| c.workload == *w && &c.variant == v)
                        {
                            Some(c) => match &c.outcome {
                                CompileOutcome::Done(t) => format!("{t:.3}"),
                                CompileOutcome::Unsupported(_) => NOT_SUPPORTED.to_owned(),
                                CompileOutcome::Failed(e) => {
                                    format!("failed: {}", csv_text(e).replace('|', "/"))
                                }
                            },
                            None => cell_missing(res, w, v),
                        }
                    })
                    .collect();
                if both {
                    cells.push(match (done(w, "mvvm-none"), done(w, "wasmtime")) {
                        (Some(a), Some(b)) if b > 0.0 => {
                            ratios.push(a / b);
                            format!("{:.2}", a / b)
                        }
                        _ => "—".to_owned(),
                    });
                }
                let _ = writeln!(s, "| {w} | {} |", cells.join(" | "));
            }
            if let (true, Some(g)) = (both, geomean(&ratios)) {
                let blanks = vec![""; compile_cols.len()].join(" | ");
                let _ = writeln!(s, "| **geometric mean** | {blanks} | **{g:.2}** |");
            }
        }

        // Peak RSS.
        let rss_cols: Vec<String> = res
            .variants
            .iter()
            .filter(|v| *v == "native" || *v == "mvvm-none" || *v == "wasmtime")
            .cloned()
            .collect();
        let _ = writeln!(s, "\n## Peak resident set size (MiB, median)\n");
        let mut cols = rss_cols.clone();
        if rss_cols.iter().any(|v| v == "mvvm-none") {
            cols.push("mvvm-none / native".to_owned());
        }
        header(&mut s, "workload", &cols);
        for w in &res.workloads {
            let med = |v: &str| Summary::of(&res.rss_samples(w, v)).map(|x| x.median / 1024.0);
            let mut cells: Vec<String> = rss_cols
                .iter()
                .map(|v| med(v).map_or_else(|| cell_missing(res, w, v), |m| format!("{m:.1}")))
                .collect();
            if rss_cols.iter().any(|v| v == "mvvm-none") {
                cells.push(match (med("mvvm-none"), med("native")) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                    _ => "—".to_owned(),
                });
            }
            let _ = writeln!(s, "| {w} | {} |", cells.join(" | "));
        }
    }

    policy_tables(&mut s, res);
    threaded_tables(&mut s, res);

    if !res.checkpoints.is_empty() {
        let _ = writeln!(
            s,
            "\n## Checkpoint and restore\n\n`mvvm-checkpoint --after T` with T half the uninterrupted run, then \
             `mvvm-restore` to the end; the restored run must print the native checksum. Checkpoint time is from \
             the trigger to the snapshot being durable (the runner's `--json` summary).\n"
        );
        let _ = writeln!(
            s,
            "| workload | policy | straight run (s) | trigger after (s) | checkpoint (ms) | snapshot (MiB) | \
             memory (MiB) | frames | downtime (ms) | restore to the end (s) | restore peak RSS (MiB) | result |"
        );
        let _ = writeln!(
            s,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let mib =
            |b: Option<u64>| b.map_or("—".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0));
        for c in &res.checkpoints {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.label,
                c.policy,
                c.straight_s,
                c.after_s,
                c.summary
                    .checkpoint_ms
                    .map_or("—".to_owned(), |v| format!("{v:.1}")),
                mib(c.summary.snapshot_bytes),
                mib(c.summary.memory_bytes),
                c.summary.frames.map_or("—".to_owned(), |v| v.to_string()),
                c.downtime_ms.map_or("—".to_owned(), |v| format!("{v:.1}")),
                c.restore
                    .as_ref()
                    .map_or("—".to_owned(), |m| format!("{:.3}", m.wall_s)),
                c.restore.as_ref().map_or("—".to_owned(), |m| format!(
                    "{:.1}",
                    m.max_rss_kib as f64 / 1024.0
                )),
                if c.checksum_ok {
                    "checksum ok".to_owned()
                } else {
                    c.note.replace('|', "/")
                }
            );
        }
    }

    periodic_table(&mut s, res);
    criu_tables(&mut s, res);

    let bad = res.mismatches();
    let _ = writeln!(s, "\n## Checksums\n");
    if bad.is_empty() {
        let _ = writeln!(s, "Every run printed the native build's checksum.");
    } else {
        let _ = writeln!(
            s,
            "{} run(s) failed or printed a different checksum:\n",
            bad.len()
        );
        for r in bad {
            let _ = writeln!(
                s,
                "- {} / {} round {}: exit {:?}, checksum {}",
                r.workload,
                r.variant,
                r.round,
                r.m.exit_code,
                r.checksum.as_deref().unwrap_or("(none)")
            );
        }
    }
    s
}

/// A figure and its ratio to the no-policy one: `12.5 (1.04×)`; the
/// no-policy column itself has no ratio.
fn with_ratio(v: f64, base: Option<f64>, shown: &str, is_base: bool) -> (String, Option<f64>) {
    match base {
        Some(b) if b > 0.0 && !is_base => (format!("{shown} ({:.2}×)", v / b), Some(v / b)),
        _ => (shown.to_owned(), None),
    }
}

/// A cell's figure and its text, or why the cell has none (by workload and
/// variant).
type CellFigure<'a> = dyn Fn(&str, &str) -> Result<(f64, String), String> + 'a;

/// One per-policy table: a row per workload, a column per MVVM policy,
/// each cell `value` with its ratio to `mvvm-none`, and the geometric mean
/// of the ratios. `value` gives a cell's figure (already formatted too),
/// or why there is none.
fn per_policy_table(
    s: &mut String,
    res: &Results,
    heading: &str,
    intro: &str,
    value: &CellFigure<'_>,
) {
    let cols: Vec<&String> = res
        .variants
        .iter()
        .filter(|v| v.starts_with("mvvm-"))
        .collect();
    if cols.is_empty() || res.workloads.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## {heading}\n\n{intro}\n");
    let names: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(s, "| workload | {} |", names.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(cols.len()));
    let mut per_col: Vec<Vec<f64>> = vec![Vec::new(); cols.len()];
    for w in &res.workloads {
        let base = value(w, "mvvm-none").ok().map(|(v, _)| v);
        let cells: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, v)| match value(w, v) {
                Ok((x, shown)) => {
                    let (cell, ratio) = with_ratio(x, base, &shown, *v == "mvvm-none");
                    per_col[i].extend(ratio);
                    cell
                }
                Err(why) => why.replace('|', "/"),
            })
            .collect();
        let _ = writeln!(s, "| {w} | {} |", cells.join(" | "));
    }
    if per_col.iter().any(|c| !c.is_empty()) {
        let means: Vec<String> = per_col
            .iter()
            .zip(&cols)
            .map(|(c, v)| match geomean(c) {
                Some(g) => format!("**{g:.2}×**"),
                None if *v == "mvvm-none" => "1.00×".to_owned(),
                None => "—".to_owned(),
            })
            .collect();
        let _ = writeln!(
            s,
            "| **geometric mean of the ratios** | {} |",
            means.join(" | ")
        );
    }
}

/// What start-up cells say when the runner's summary has no `startup_ms`.
pub const STARTUP_NA: &str = "n/a";

/// Object size, start-up time and peak RSS of every policy against no
/// policy.
fn policy_tables(s: &mut String, res: &Results) {
    let missing = |w: &str, v: &str| cell_missing(res, w, v);
    per_policy_table(
        s,
        res,
        "Object size per policy (`.aot` bytes; × the no-policy object)",
        "Size of the object `mvvm-aot --opt-level=3` wrote for each policy.",
        &|w, v| match res.object_bytes(w, v) {
            Some(b) => Ok((b as f64, b.to_string())),
            None => Err(missing(w, v)),
        },
    );
    per_policy_table(
        s,
        res,
        "Start-up time per policy (ms, median; × no policy)",
        &format!(
            "`startup_ms` of the runner's `--json` summary: loading, relocating and instantiating \
             the object, up to the guest's first instruction. \"{STARTUP_NA}\": the runner does \
             not report it."
        ),
        &|w, v| {
            if res.samples(w, v).is_empty() {
                return Err(missing(w, v));
            }
            Summary::of(&res.startup_samples(w, v))
                .map(|m| (m.median, format!("{:.2}", m.median)))
                .ok_or_else(|| STARTUP_NA.to_owned())
        },
    );
    per_policy_table(
        s,
        res,
        "Peak RSS per policy (MiB, median; × no policy)",
        "Largest resident set of the runner process over the whole run (`ru_maxrss` of the \
         measured child).",
        &|w, v| match Summary::of(&res.rss_samples(w, v)) {
            Some(m) => Ok((m.median, format!("{:.1}", m.median / 1024.0))),
            None => Err(missing(w, v)),
        },
    );
}

/// The threaded workloads: time per thread count natively, under MVVM and
/// under Wasmtime, the ratios, and the checkpoint trial's outcome.
fn threaded_tables(s: &mut String, res: &Results) {
    if res.threaded.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Threaded workloads (wasi-threads against pthreads)\n\n\
         Programs of `test/threads` (pthreads), their thread count from `{}`: native build `gcc {} {}`, \
         MVVM `mvvm-aot --opt-level=3` without a policy run with `mvvm-checkpoint -e {}=N`, Wasmtime \
         precompiled with `{}` and run with `{}`. Wasmtime: {}. Median wall-clock time of the \
         measured runs (± half the range); every run must print the checksum of the native build \
         at the first thread count. Ratios of medians, lower is better for MVVM.\n",
        crate::threads::THREADS_ENV,
        crate::tools::NATIVE_CFLAGS.join(" "),
        crate::tools::NATIVE_THREADS_CFLAGS.join(" "),
        crate::threads::THREADS_ENV,
        crate::tools::WASMTIME_THREADS_COMPILE_FLAGS.join(" "),
        crate::tools::WASMTIME_THREADS_RUN_FLAGS.join(" "),
        if res.threaded_wasmtime.is_empty() {
            "—".to_owned()
        } else {
            res.threaded_wasmtime.replace('|', "/")
        }
    );
    let _ = writeln!(
        s,
        "| workload | threads | native (s) | MVVM (s) | Wasmtime (s) | MVVM / native | MVVM / Wasmtime |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    let label = crate::threads::label;
    for w in &res.threaded {
        for &n in &res.thread_counts {
            let med = |base: &str| Summary::of(&res.samples(w, &label(base, n)));
            let time = |base: &str| match med(base) {
                Some(m) => format!("{:.3} ±{:.1}%", m.median, m.spread_percent()),
                None => cell_missing(res, w, &label(base, n)),
            };
            let ratio = |a: &str, b: &str| match (med(a), med(b)) {
                (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
                _ => "—".to_owned(),
            };
            let _ = writeln!(
                s,
                "| {w} | {n} | {} | {} | {} | {} | {} |",
                time("native"),
                time("mvvm-none"),
                time("wasmtime"),
                ratio("mvvm-none", "native"),
                ratio("mvvm-none", "wasmtime")
            );
        }
    }
    let _ = writeln!(
        s,
        "\nCheckpoint latency with {} threads (`mvvm-checkpoint --after T`, T half the uninterrupted \
         run; figures in the checkpoint table when the runner checkpoints):\n",
        crate::threads::CHECKPOINT_THREADS
    );
    for w in &res.threaded {
        let prefix = format!("{w} (");
        let line = match res
            .checkpoints
            .iter()
            .find(|c| c.label.starts_with(&prefix))
        {
            None => "not measured (checkpoint trials off, or no MVVM build or policy)".to_owned(),
            Some(c) if c.checksum_ok => format!(
                "{} ms ({}), snapshot {} MiB, restored run printed the native checksum",
                c.summary
                    .checkpoint_ms
                    .map_or("—".to_owned(), |v| format!("{v:.1}")),
                c.policy,
                mib(c.summary.snapshot_bytes)
            ),
            Some(c) => c.note.clone(),
        };
        let _ = writeln!(s, "- {w}: {line}");
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".to_owned(), |v| format!("{v:.1}"))
}

fn mib(b: Option<u64>) -> String {
    b.map_or("—".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0))
}

/// The CRIU table, and MVVM against CRIU as ratios, trial by trial.
/// memfill with periodic checkpoints written in the background: the
/// program's pause per checkpoint and the run's slowdown.
fn periodic_table(s: &mut String, res: &Results) {
    if res.periodic.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Periodic checkpoints in the background\n\n`mvvm-checkpoint --every {}` on memfill to its end: \
         each snapshot is written by a thread from the memory's copy-on-write image while the program runs on \
         (docs/migration.md). Pause: from the trigger to the program running on, per checkpoint (the runner's \
         `--json` `periodic.pause_ms`). Slowdown: the run's wall time against the uninterrupted run; it includes \
         writing and syncing every snapshot on the same cores.\n",
        res.periodic[0].every_s
    );
    let _ = writeln!(
        s,
        "| workload | checkpoints | median pause (ms) | max pause (ms) | run (s) | uninterrupted (s) | slowdown (×) | result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
    for p in &res.periodic {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} |",
            p.label,
            p.pauses_ms.len(),
            ms(p.median_pause()),
            ms(p.max_pause()),
            p.wall_s.map_or("—".to_owned(), |v| format!("{v:.3}")),
            p.straight_s,
            p.wall_s
                .filter(|_| p.straight_s > 0.0)
                .map_or("—".to_owned(), |v| format!("{:.2}", v / p.straight_s)),
            if p.checksum_ok {
                "checksum ok".to_owned()
            } else {
                p.note.replace('|', "/")
            }
        );
    }
}

fn criu_tables(s: &mut String, res: &Results) {
    if res.criu_status.is_empty() && res.criu.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## CRIU on the native build\n");
    if res.criu.is_empty() {
        let _ = writeln!(s, "{}.", res.criu_status.replace('|', "/"));
        return;
    }
    let _ = writeln!(
        s,
        "{}. The native build of the same program, with the same arguments, is started with its output \
         going to a file, and `criu dump -t PID --shell-job` is run at half its uninterrupted run (the point \
         where MVVM's trial checkpoints, as a fraction of the run). Dump: wall time of `criu dump` (start-up, \
         freeze, write the images, kill). Frozen: how long the task was stopped, from CRIU's own statistics \
         (images are written but not synced, unlike MVVM's snapshot). Images: disk usage of the images directory. Restore to the first \
         instruction: wall time of `criu restore --shell-job --restore-detached`, which returns once the \
         task runs again; to the end: until the restored program exits. The restored program must print the \
         native checksum.\n",
        res.criu_status.replace('|', "/")
    );
    let _ = writeln!(
        s,
        "| workload | native run (s) | dump after (s) | dump (ms) | frozen (ms) | images (MiB) | \
         restore to first instruction (ms) | restore to the end (s) | restore peak RSS (MiB) | result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for c in &res.criu {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} | {} |",
            c.label,
            c.straight_s,
            c.after_s,
            ms(c.dump_s.map(|v| v * 1000.0)),
            ms(c.stats.frozen_ms),
            mib(c.image_bytes),
            ms(c.restore_first_s.map(|v| v * 1000.0)),
            c.restore_end_s
                .map_or("—".to_owned(), |v| format!("{v:.3}")),
            mib(c.restore_rss_kib.map(|k| k * 1024)),
            if c.checksum_ok {
                "checksum ok".to_owned()
            } else {
                c.note.replace('|', "/")
            }
        );
    }

    // MVVM against CRIU, where both trials succeeded.
    let pairs: Vec<_> = res
        .checkpoints
        .iter()
        .filter(|m| m.checksum_ok)
        .filter_map(|m| {
            let c = res
                .criu
                .iter()
                .find(|c| c.label == m.label && c.checksum_ok)?;
            Some((m, c))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## MVVM against CRIU (ratio MVVM / CRIU, lower is better for MVVM)\n\n\
         Checkpoint: MVVM's trigger-to-durable-snapshot time against the wall time of `criu dump`; \
         against frozen: the same against the time CRIU kept the task frozen. \
         Size: snapshot against images. Restore to the first instruction: MVVM's downtime minus its \
         checkpoint time (so it includes starting `mvvm-restore` and loading the module) against \
         `criu restore --restore-detached`. Downtime: MVVM's trigger to first resumed instruction against \
         CRIU's dump plus restore to the first instruction. Restore to the end: wall time of the whole \
         restored run (MVVM runs the wasm build, CRIU the native one, so this also carries their speed \
         difference).\n"
    );
    let cols = [
        "checkpoint",
        "checkpoint against frozen",
        "size",
        "restore to first instruction",
        "downtime",
        "restore to the end",
    ];
    let _ = writeln!(s, "| workload | {} |", cols.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(cols.len()));
    let mut per_col: Vec<Vec<f64>> = vec![Vec::new(); cols.len()];
    for (m, c) in &pairs {
        let mvvm_first = match (m.downtime_ms, m.summary.checkpoint_ms) {
            (Some(d), Some(k)) if d >= k => Some(d - k),
            _ => None,
        };
        let figures = [
            (m.summary.checkpoint_ms, c.dump_s.map(|v| v * 1000.0)),
            (m.summary.checkpoint_ms, c.stats.frozen_ms),
            (
                m.summary.snapshot_bytes.map(|b| b as f64),
                c.image_bytes.map(|b| b as f64),
            ),
            (mvvm_first, c.restore_first_s.map(|v| v * 1000.0)),
            (
                m.downtime_ms,
                c.dump_s
                    .zip(c.restore_first_s)
                    .map(|(d, r)| (d + r) * 1000.0),
            ),
            (m.restore.as_ref().map(|r| r.wall_s), c.restore_end_s),
        ];
        let cells: Vec<String> = figures
            .iter()
            .enumerate()
            .map(|(i, f)| match f {
                (Some(a), Some(b)) if *a > 0.0 && *b > 0.0 => {
                    per_col[i].push(a / b);
                    format!("{:.3}", a / b)
                }
                _ => "—".to_owned(),
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", m.label, cells.join(" | "));
    }
    let means: Vec<String> = per_col
        .iter()
        .map(|c| geomean(c).map_or("—".to_owned(), |g| format!("**{g:.3}**")))
        .collect();
    let _ = writeln!(s, "| **geometric mean** | {} |", means.join(" | "));
}

/// Writes `text` to `path`.
pub fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Measurement;
    use crate::runner::{CompileRecord, RunRecord};

    fn run(w: &'static str, v: &str, round: usize, wall: f64, ok: bool) -> RunRecord {
        RunRecord {
            workload: w,
            variant: v.to_owned(),
            round,
            warmup: round == 0,
            m: Measurement {
                wall_s: wall,
                user_s: wall,
                sys_s: 0.0,
                max_rss_kib: 2048,
                exit_code: Some(0),
                timed_out: false,
            },
            checksum: Some("00".to_owned()),
            checksum_ok: ok,
            startup_ms: None,
        }
    }

    pub(crate) fn sample() -> Results {
        let mut r = Results {
            workloads: vec!["gemm"],
            variants: vec!["native".into(), "mvvm-none".into(), "mvvm-loop".into()],
            ..Default::default()
        };
        for round in 0..3 {
            r.runs.push(run("gemm", "native", round, 1.0, true));
            r.runs.push(run("gemm", "mvvm-none", round, 1.5, true));
        }
        r.missing
            .insert(("gemm".into(), "mvvm-loop".into()), NOT_SUPPORTED.into());
        r.checkpoints.push(crate::cr::CrRecord {
            label: "gemm".into(),
            args: "-s32".into(),
            policy: "loop",
            straight_s: 2.0,
            after_s: 1.0,
            checkpoint: Some(run("gemm", "mvvm-loop", 1, 1.0, true).m),
            summary: crate::cr::RunSummary {
                status: Some("checkpointed".into()),
                snapshot_bytes: Some(3 << 20),
                memory_bytes: Some(4 << 20),
                frames: Some(3),
                checkpoint_ms: Some(12.5),
            },
            restore: Some(run("gemm", "mvvm-loop", 1, 1.25, true).m),
            downtime_ms: Some(40.0),
            checksum_ok: true,
            note: String::new(),
        });
        r.compiles.push(CompileRecord {
            workload: "gemm",
            variant: "mvvm-none".into(),
            outcome: CompileOutcome::Done(0.25),
            bytes: Some(1000),
        });
        r
    }

    #[test]
    fn markdown_has_ratios_and_marks_unsupported_policies() {
        let md = markdown(&sample(), "t");
        assert!(
            md.contains("| gemm | 1.000 ±0.0% | 1.500 ±0.0% | n/a (not yet supported) |"),
            "{md}"
        );
        assert!(
            md.contains("| gemm | 1.50 | n/a (not yet supported) |"),
            "{md}"
        );
        assert!(md.contains("| gemm | 0.250 |"), "{md}");
        assert!(
            md.contains("Every run printed the native build's checksum."),
            "{md}"
        );
    }

    #[test]
    fn csv_has_one_row_per_run_and_compile() {
        let text = csv(&sample());
        assert_eq!(text.lines().count(), 1 + 6 + 1 + 2);
        let cols = CSV_HEADER.split(',').count();
        assert!(text.lines().all(|l| l.split(',').count() == cols), "{text}");
    }

    #[test]
    fn periodic_runs_are_tabled_with_their_pauses() {
        let mut r = sample();
        r.periodic.push(crate::cr::PeriodicRecord {
            label: "memfill 64 MiB".into(),
            every_s: 0.2,
            straight_s: 1.0,
            wall_s: Some(1.5),
            pauses_ms: vec![0.25, 4.0, 0.5],
            checksum_ok: true,
            note: String::new(),
        });
        let md = markdown(&r, "t");
        assert!(
            md.contains("## Periodic checkpoints in the background"),
            "{md}"
        );
        assert!(
            md.contains("| memfill 64 MiB | 3 | 0.5 | 4.0 | 1.500 | 1.000 | 1.50 | checksum ok |"),
            "{md}"
        );
        let text = csv(&r);
        let row = text.lines().find(|l| l.starts_with("periodic,")).unwrap();
        assert_eq!(
            row.split(',').count(),
            CSV_HEADER.split(',').count(),
            "{row}"
        );
        assert!(row.contains("pause_ms=0.250 4.000 0.500"), "{row}");
    }

    #[test]
    fn criu_trials_are_tabled_and_compared_with_mvvm() {
        let mut r = sample();
        r.criu_status = "CRIU 4.1.1 (/x/criu)".into();
        r.criu.push(crate::criu::CriuRecord {
            label: "gemm".into(),
            args: "-s32".into(),
            straight_s: 1.0,
            after_s: 0.5,
            dump_s: Some(0.025),
            stats: crate::criu::CriuStats {
                frozen_ms: Some(6.25),
                ..Default::default()
            },
            image_bytes: Some(3 << 20),
            restore_first_s: Some(0.0125),
            restore_end_s: Some(0.5),
            restore_rss_kib: Some(4096),
            checksum_ok: true,
            note: String::new(),
        });
        let md = markdown(&r, "t");
        assert!(
            md.contains(
                "| gemm | 1.000 | 0.500 | 25.0 | 6.2 | 3.0 | 12.5 | 0.500 | 4.0 | checksum ok |"
            ),
            "{md}"
        );
        // checkpoint 12.5 / 25 and / 6.25, size 3 / 3 MiB, first
        // 27.5 / 12.5, downtime 40 / 37.5, to the end 1.25 / 0.5.
        assert!(
            md.contains("| gemm | 0.500 | 2.000 | 1.000 | 2.200 | 1.067 | 2.500 |"),
            "{md}"
        );
        let text = csv(&r);
        assert_eq!(text.lines().filter(|l| l.starts_with("criu-")).count(), 2);
        let cols = CSV_HEADER.split(',').count();
        assert!(text.lines().all(|l| l.split(',').count() == cols), "{text}");
    }

    #[test]
    fn an_unusable_criu_is_explained() {
        let mut r = sample();
        r.criu_status = "CRIU not run: not root".into();
        assert!(
            markdown(&r, "t").contains("## CRIU on the native build\n\nCRIU not run: not root.")
        );
        let text = csv(&r);
        assert!(
            text.lines()
                .any(|l| l == "criu,,criu,0,false,,,,,,,,,,,CRIU not run: not root"),
            "{text}"
        );
    }

    #[test]
    fn policies_get_object_size_start_up_and_rss_with_ratios() {
        let mut r = sample();
        r.variants = vec!["native".into(), "mvvm-none".into(), "mvvm-loop".into()];
        r.missing.clear();
        for round in 0..3 {
            let mut a = run("gemm", "mvvm-loop", round, 1.6, true);
            a.m.max_rss_kib = 3072;
            a.startup_ms = Some(3.0);
            r.runs.push(a);
        }
        for rec in r.runs.iter_mut().filter(|x| x.variant == "mvvm-none") {
            rec.startup_ms = Some(2.0);
        }
        r.compiles.push(CompileRecord {
            workload: "gemm",
            variant: "mvvm-loop".into(),
            outcome: CompileOutcome::Done(0.5),
            bytes: Some(1250),
        });
        let md = markdown(&r, "t");
        assert!(md.contains("| gemm | 1000 | 1250 (1.25×) |"), "{md}");
        assert!(md.contains("| gemm | 2.00 | 3.00 (1.50×) |"), "{md}");
        assert!(md.contains("| gemm | 2.0 | 3.0 (1.50×) |"), "{md}");
        assert!(
            md.contains("| **geometric mean of the ratios** | 1.00× | **1.25×** |"),
            "{md}"
        );
        // A runner that writes no `startup_ms`: "n/a", not a number.
        for rec in &mut r.runs {
            rec.startup_ms = None;
        }
        let md = markdown(&r, "t");
        assert!(
            md.contains(&format!("| gemm | {STARTUP_NA} | {STARTUP_NA} |")),
            "{md}"
        );
        let text = csv(&r);
        assert!(
            text.lines()
                .any(|l| l.starts_with("compile,gemm,mvvm-loop,") && l.contains(",1250,,")),
            "{text}"
        );
    }

    #[test]
    fn threaded_workloads_are_tabled_per_thread_count() {
        let mut r = Results {
            threaded: vec!["gemm_mt"],
            thread_counts: vec![1, 4],
            threaded_wasmtime: format!("{} (hint)", crate::tools::WASMTIME_THREADS_MISSING),
            ..Default::default()
        };
        for round in 0..3 {
            r.runs.push(run("gemm_mt", "native-t1", round, 1.0, true));
            r.runs
                .push(run("gemm_mt", "mvvm-none-t1", round, 1.5, true));
            r.runs.push(run("gemm_mt", "native-t4", round, 0.5, true));
            r.runs
                .push(run("gemm_mt", "mvvm-none-t4", round, 1.0, true));
        }
        for n in [1, 4] {
            r.missing.insert(
                ("gemm_mt".into(), crate::threads::label("wasmtime", n)),
                crate::tools::WASMTIME_THREADS_MISSING.into(),
            );
        }
        r.checkpoints.push(crate::cr::CrRecord {
            label: "gemm_mt (4 threads)".into(),
            args: String::new(),
            policy: "loop",
            straight_s: 1.0,
            after_s: 0.5,
            checkpoint: None,
            summary: crate::cr::RunSummary::default(),
            restore: None,
            downtime_ms: None,
            checksum_ok: false,
            note: format!(
                "{}: the module imports its memory",
                crate::cr::CHECKPOINT_REFUSED
            ),
        });
        let md = markdown(&r, "t");
        assert!(
            md.contains(
                "| gemm_mt | 1 | 1.000 ±0.0% | 1.500 ±0.0% | wasmtime: not available | 1.50 | — |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| gemm_mt | 4 | 0.500 ±0.0% | 1.000 ±0.0% | wasmtime: not available | 2.00 | — |"
            ),
            "{md}"
        );
        assert!(
            md.contains("Wasmtime: wasmtime: not available (hint)."),
            "{md}"
        );
        assert!(
            md.contains("- gemm_mt: not yet supported (the runner refused the checkpoint): the module imports its memory"),
            "{md}"
        );
        let text = csv(&r);
        assert!(
            text.lines().any(|l| l.starts_with("wasmtime-threads,")),
            "{text}"
        );
        let cols = CSV_HEADER.split(',').count();
        assert!(text.lines().all(|l| l.split(',').count() == cols), "{text}");
    }

    #[test]
    fn mismatches_are_listed() {
        let mut r = sample();
        r.runs.push(run("gemm", "mvvm-none", 3, 1.5, false));
        assert!(markdown(&r, "t").contains("1 run(s) failed"));
    }
}
