//! Migration downtime, MVVM against CRIU, side by side in one run
//! (`mvvm-bench migration`).
//!
//! The measuring itself stays in the two scripts that already do it, so
//! there is one implementation of each side: `scripts/netns/downtime.sh`
//! (MVVM, stop-and-copy and pre-copy `--live`, over loopback and between
//! two network namespaces) and `bench/criu/migrate.sh` (CRIU stop-and-copy
//! through its page server, and why pre-dump and lazy-pages cannot run).
//! Both run the same workload, `memfill -m MIB -p 30 -w 8 -d 20000` (the
//! whole memory filled and live, passes over an 8 MiB working set at about
//! 50 MiB/s of writes), and both compare every migrated run's output with
//! an uninterrupted run's. This module calls them once per size,
//! repetition and mode, interleaved (so a change of the machine's load
//! falls on every mode alike), parses their result lines and writes the
//! table, the raw runs and the data of the plot.
//!
//! Downtime is not defined the same way on both sides (see
//! bench/README.md): MVVM's is from the checkpoint's trigger on the sender
//! to the first instruction on the receiver; CRIU's from the start of
//! `criu dump` to the return of `criu restore -d`.

use crate::stats::Summary;
use crate::{BenchError, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// MVVM stop-and-copy (`mvvm-checkpoint -o ADDR -s PORT`).
pub const MVVM_STOP: &str = "MVVM stop-and-copy";
/// MVVM pre-copy (`--live`).
pub const MVVM_LIVE: &str = "MVVM pre-copy (--live)";
/// CRIU stop-and-copy (`criu dump --page-server`, `criu restore -d`).
pub const CRIU_STOP: &str = "CRIU stop-and-copy";
/// CRIU pre-copy (`criu pre-dump`).
pub const CRIU_PRE: &str = "CRIU pre-copy (pre-dump)";
/// CRIU post-copy (`--lazy-pages`).
pub const CRIU_LAZY: &str = "CRIU lazy (lazy-pages)";

/// Loopback (both sides on 127.0.0.1).
pub const LOOPBACK: &str = "loopback";
/// Two network namespaces joined by a veth pair.
pub const NETNS: &str = "netns";

/// One migrated run that printed `output ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationRun {
    /// One of the mode names above.
    pub mode: String,
    /// [`LOOPBACK`] or [`NETNS`].
    pub network: String,
    /// Memory filled by the program, MiB.
    pub mib: u32,
    /// Repetition, from 1.
    pub rep: usize,
    /// Downtime, ms (each side's definition).
    pub downtime_ms: f64,
    /// Total migration time, ms: from the first byte's trigger (pre-copy:
    /// the first round's) to the program running on the receiver.
    pub migration_ms: f64,
    /// Bytes the sender sent.
    pub sent_bytes: u64,
}

/// A mode that did not run, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// One of the mode names above.
    pub mode: String,
    /// [`LOOPBACK`] or [`NETNS`].
    pub network: String,
    /// Why, in a few words.
    pub reason: String,
}

/// Everything one `mvvm-bench migration` measured.
#[derive(Debug, Clone, Default)]
pub struct MigrationResults {
    /// The runs, in the order they ran.
    pub runs: Vec<MigrationRun>,
    /// The modes that did not run (each once).
    pub skipped: Vec<Skipped>,
    /// Runs that failed (wrong output, a tool's error): what the script
    /// said.
    pub failures: Vec<String>,
}

impl MigrationResults {
    fn skip(&mut self, mode: &str, network: &str, reason: &str) {
        if !self
            .skipped
            .iter()
            .any(|s| s.mode == mode && s.network == network)
        {
            self.skipped.push(Skipped {
                mode: mode.to_owned(),
                network: network.to_owned(),
                reason: reason.trim().to_owned(),
            });
        }
    }

    /// The (mode, network) pairs with runs, in the order of first run.
    pub fn series(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        for r in &self.runs {
            let k = (r.mode.clone(), r.network.clone());
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    /// The runs of one mode, network and size.
    pub fn of(&self, mode: &str, network: &str, mib: u32) -> Vec<&MigrationRun> {
        self.runs
            .iter()
            .filter(|r| r.mode == mode && r.network == network && r.mib == mib)
            .collect()
    }

    /// The sizes measured, ascending.
    pub fn sizes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.runs.iter().map(|r| r.mib).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Median downtime per size of each (mode, network) series, for the
    /// plot: `("MODE, NETWORK", [(MiB, ms)])`.
    pub fn downtime_lines(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        self.series()
            .into_iter()
            .map(|(mode, net)| {
                let pts = self
                    .sizes()
                    .into_iter()
                    .filter_map(|m| {
                        let d: Vec<f64> = self
                            .of(&mode, &net, m)
                            .iter()
                            .map(|r| r.downtime_ms)
                            .collect();
                        Some((f64::from(m), Summary::of(&d)?.median))
                    })
                    .collect();
                (format!("{mode}, {net}"), pts)
            })
            .collect()
    }
}

/// The figures of one result line of either script.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The first word: `loopback`, `netns` or `criu`.
    pub label: String,
    /// Memory size, MiB.
    pub mib: u32,
    /// `sent N bytes`.
    pub sent_bytes: u64,
    /// `downtime N ms`.
    pub downtime_ms: f64,
    /// `migration N ms`.
    pub migration_ms: f64,
}

/// The number after the word `key` in `words` (`downtime 12.5 ms`).
fn after<T: std::str::FromStr>(words: &[&str], key: &str) -> Option<T> {
    let i = words.iter().position(|w| *w == key)?;
    words.get(i + 1)?.parse().ok()
}

/// Parses a result line of downtime.sh or migrate.sh (`LABEL M MiB ...
/// sent N bytes ... downtime N ms  migration N ms ... output ok`); `None`
/// for any other line, or one whose figures are missing or not numbers.
pub fn parse_line(line: &str) -> Option<Line> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 3 || words[2] != "MiB" || !line.trim_end().ends_with("output ok") {
        return None;
    }
    let l = Line {
        label: words[0].to_owned(),
        mib: words[1].parse().ok()?,
        sent_bytes: after(&words, "sent")?,
        downtime_ms: after(&words, "downtime")?,
        migration_ms: after(&words, "migration")?,
    };
    (l.downtime_ms.is_finite() && l.migration_ms.is_finite()).then_some(l)
}

/// The modes migrate.sh says it cannot run (`criu: pre-copy (pre-dump)
/// unavailable: WHY`, `criu: lazy (lazy-pages) not run: WHY`), with the
/// reason.
pub fn parse_criu_notes(stdout: &str) -> Vec<(&'static str, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("criu: ")?;
            let mode = if rest.starts_with("pre-copy") {
                CRIU_PRE
            } else if rest.starts_with("lazy") {
                CRIU_LAZY
            } else {
                return None;
            };
            let (_, why) = rest.split_once(") ")?;
            let why = why
                .strip_prefix("not run: ")
                .or_else(|| why.strip_prefix("unavailable: "))
                .unwrap_or(why);
            Some((mode, why.to_owned()))
        })
        .collect()
}

/// What one `mvvm-bench migration` runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Memory sizes, MiB.
    pub sizes: Vec<u32>,
    /// Repetitions of every mode at every size.
    pub reps: usize,
    /// The directory of mvvm-aot, mvvm-checkpoint and mvvm-restore; `None`:
    /// every MVVM row is skipped with `mvvm_missing`.
    pub mvvm_dir: Option<PathBuf>,
    /// Why the MVVM rows are skipped when `mvvm_dir` is `None`.
    pub mvvm_missing: String,
    /// The CRIU binary, or why CRIU does not run.
    pub criu: std::result::Result<PathBuf, String>,
    /// Also between two network namespaces (MVVM; needs root).
    pub netns: bool,
    /// Work directory (kept module, baselines).
    pub work: PathBuf,
    /// The first TCP port (each call of a script takes the next ten).
    pub port: u32,
}

/// Runs a script; returns (exit code, stdout, stderr).
fn script(program: &Path, args: &[String]) -> Result<(i32, String, String)> {
    let out = Command::new("bash")
        .arg(program)
        .args(args)
        .output()
        .map_err(|source| BenchError::Spawn {
            command: format!("bash {} {}", program.display(), args.join(" ")),
            source,
        })?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Adds the result lines of `stdout` as runs of `mode` (network from the
/// line's label); a script that failed or printed no line for `mib` is a
/// failure, with its stderr.
fn collect(
    res: &mut MigrationResults,
    mode: &str,
    mib: u32,
    rep: usize,
    (code, stdout, stderr): &(i32, String, String),
    what: &str,
) {
    let lines: Vec<Line> = stdout
        .lines()
        .filter_map(parse_line)
        .filter(|l| l.mib == mib)
        .collect();
    for l in &lines {
        let network = if l.label == NETNS { NETNS } else { LOOPBACK };
        res.runs.push(MigrationRun {
            mode: mode.to_owned(),
            network: network.to_owned(),
            mib,
            rep,
            downtime_ms: l.downtime_ms,
            migration_ms: l.migration_ms,
            sent_bytes: l.sent_bytes,
        });
    }
    if *code != 0 || lines.is_empty() {
        res.failures.push(format!(
            "{mode}, {mib} MiB, rep {rep}: {what} exited {code}: {}",
            stderr.trim()
        ));
    }
}

/// Runs every mode at every size and repetition, interleaved; `progress`
/// sees the results after each step (to write partial reports).
pub fn run(
    root: &Path,
    cfg: &Config,
    progress: &mut dyn FnMut(&MigrationResults),
) -> Result<MigrationResults> {
    let mut res = MigrationResults::default();
    let downtime = root.join("scripts/netns/downtime.sh");
    let migrate = root.join("bench/criu/migrate.sh");
    crate::tools::ensure_dir(&cfg.work)?;
    let mvvm_work = cfg.work.join("mvvm").display().to_string();
    let criu_work = cfg.work.join("criu").display().to_string();
    let mut port = cfg.port;
    if !cfg.netns {
        for mode in [MVVM_STOP, MVVM_LIVE] {
            res.skip(mode, NETNS, "not asked for (--netns)");
        }
    }
    res.skip(
        "CRIU (every mode)",
        NETNS,
        "migrate.sh runs CRIU over loopback only",
    );
    for &mib in &cfg.sizes {
        for rep in 1..=cfg.reps {
            match &cfg.mvvm_dir {
                Some(dir) => {
                    for (mode, flag) in [(MVVM_STOP, "--slow-writer"), (MVVM_LIVE, "--live")] {
                        let args: Vec<String> = vec![
                            "--sizes".into(),
                            mib.to_string(),
                            "--bin".into(),
                            dir.display().to_string(),
                            "--mode".into(),
                            if cfg.netns { "both" } else { "loopback" }.into(),
                            flag.into(),
                            "--work".into(),
                            mvvm_work.clone(),
                            "--port".into(),
                            port.to_string(),
                        ];
                        port += 10;
                        let out = script(&downtime, &args)?;
                        if let Some(why) = out
                            .2
                            .lines()
                            .find_map(|l| l.split_once("network-namespace mode skipped: "))
                            .map(|(_, w)| w.to_owned())
                        {
                            res.skip(mode, NETNS, &why);
                        }
                        collect(&mut res, mode, mib, rep, &out, "downtime.sh");
                        progress(&res);
                    }
                }
                None => {
                    for mode in [MVVM_STOP, MVVM_LIVE] {
                        res.skip(mode, LOOPBACK, &cfg.mvvm_missing);
                        res.skip(mode, NETNS, &cfg.mvvm_missing);
                    }
                }
            }
            match &cfg.criu {
                Ok(criu) => {
                    let args: Vec<String> = vec![
                        "--sizes".into(),
                        mib.to_string(),
                        "--criu".into(),
                        criu.display().to_string(),
                        "--work".into(),
                        criu_work.clone(),
                        "--port".into(),
                        port.to_string(),
                    ];
                    port += 10;
                    let out = script(&migrate, &args)?;
                    if out.0 == 77 {
                        let why = out.2.trim().trim_start_matches("migrate.sh: skipped: ");
                        for mode in [CRIU_STOP, CRIU_PRE, CRIU_LAZY] {
                            res.skip(mode, LOOPBACK, why);
                        }
                    } else {
                        for (mode, why) in parse_criu_notes(&out.1) {
                            res.skip(mode, LOOPBACK, &why);
                        }
                        collect(&mut res, CRIU_STOP, mib, rep, &out, "migrate.sh");
                    }
                    progress(&res);
                }
                Err(why) => {
                    for mode in [CRIU_STOP, CRIU_PRE, CRIU_LAZY] {
                        res.skip(mode, LOOPBACK, why);
                    }
                }
            }
        }
    }
    Ok(res)
}

/// The raw runs as CSV.
pub fn csv(res: &MigrationResults) -> String {
    let mut s = String::from("mode,network,mib,rep,downtime_ms,migration_ms,sent_bytes\n");
    for r in &res.runs {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            r.mode, r.network, r.mib, r.rep, r.downtime_ms, r.migration_ms, r.sent_bytes
        );
    }
    s
}

/// A millisecond figure: three significant digits, at least no decimals.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown table: per mode, network and size, downtime median
/// (min-max), total migration time median, MiB sent (median) and runs;
/// then the modes that did not run and why, and the failures.
pub fn markdown(res: &MigrationResults, title: &str) -> String {
    let mut s = format!("# {title}\n\n");
    s.push_str(
        "| mode | network | memory (MiB) | downtime median (ms) | downtime min-max (ms) \
         | total migration median (ms) | sent median (MiB) | runs |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (mode, net) in res.series() {
        for mib in res.sizes() {
            let runs = res.of(&mode, &net, mib);
            let d: Vec<f64> = runs.iter().map(|r| r.downtime_ms).collect();
            let Some(ds) = Summary::of(&d) else { continue };
            let m: Vec<f64> = runs.iter().map(|r| r.migration_ms).collect();
            let b: Vec<f64> = runs
                .iter()
                .map(|r| r.sent_bytes as f64 / 1_048_576.0)
                .collect();
            let _ = writeln!(
                s,
                "| {mode} | {net} | {mib} | {} | {}-{} | {} | {:.1} | {} |",
                ms(ds.median),
                ms(ds.min),
                ms(ds.max),
                Summary::of(&m).map_or("-".into(), |x| ms(x.median)),
                Summary::of(&b).map_or(0.0, |x| x.median),
                ds.count
            );
        }
    }
    for k in &res.skipped {
        let _ = writeln!(
            s,
            "| {} | {} | - | not run: {} | | | | 0 |",
            k.mode,
            k.network,
            k.reason.replace('|', "/")
        );
    }
    if !res.failures.is_empty() {
        s.push_str("\nFailed runs (not in the table):\n\n");
        for f in &res.failures {
            let _ = writeln!(s, "- {}", f.replace('\n', " "));
        }
    }
    s
}

/// Per size, the CRIU stop-and-copy median downtime over `mode`'s (an
/// MVVM mode), over loopback: how many times shorter MVVM's is.
pub fn ratios(res: &MigrationResults, mode: &str) -> BTreeMap<u32, f64> {
    let median = |mode: &str, mib| {
        let d: Vec<f64> = res
            .of(mode, LOOPBACK, mib)
            .iter()
            .map(|r| r.downtime_ms)
            .collect();
        Summary::of(&d).map(|s| s.median)
    };
    res.sizes()
        .into_iter()
        .filter_map(|m| {
            let c = median(CRIU_STOP, m)?;
            let x = median(mode, m)?;
            (x > 0.0).then(|| (m, c / x))
        })
        .collect()
}

/// What was run and how the figures are defined (below the table).
pub fn settings(cfg: &Config) -> String {
    format!(
        "\nWorkload: memfill `-m MIB -p 30 -w 8 -d 20000` (all of MIB filled and live, \
         passes over an 8 MiB working set at about 50 MiB/s of writes), as wasm under MVVM \
         (checkpointed a quarter into its passes) and as the native gcc -O2 build under CRIU \
         (dumped about a quarter into its passes); every migrated run's output equals an \
         uninterrupted run's. Sizes {:?} MiB, {} repetition(s), every mode interleaved per \
         size and repetition.\n\n\
         Downtime: MVVM, from the checkpoint's trigger on the sender to the first \
         instruction on the receiver (pre-copy: the final stop's trigger); CRIU, from the \
         start of `criu dump` (the task is frozen from then) to the return of \
         `criu restore -d` (the task runs again). Total migration: MVVM stop-and-copy and \
         CRIU, the downtime; MVVM pre-copy, from the first round's trigger to the first \
         instruction on the receiver. Sent: MVVM, the snapshot stream (pre-copy: every round \
         and the final part); CRIU, every image file the receiver ends up with.\n\n\
         Measured by scripts/netns/downtime.sh and bench/criu/migrate.sh, driven by \
         `mvvm-bench migration` (bench/README.md).\n",
        cfg.sizes, cfg.reps
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MVVM: &str = "loopback    64 MiB  snapshot   67239936 bytes  sent   67239936 bytes  checkpoint+send   80.2 ms  downtime   110.5 ms  migration   110.5 ms  total     5142 ms  no-key  output ok";
    const LIVE: &str = "netns       8 MiB  snapshot    9830551 bytes  sent    9830551 bytes  checkpoint+send    0.491 ms  downtime    3.042 ms  migration    30.16 ms  total     5193 ms  live rounds [8.1] MiB  final 1245185 B  transfer 27.606 ms  pause 0.488 ms  no-key  output ok";
    const CRIU: &str = "criu        64 MiB  pages   67227648 bytes  sent   67233153 bytes  dump      805 ms  restore    611 ms  downtime     1417 ms  migration     1417 ms  rest of run   4799 ms  output ok";

    #[test]
    fn parses_the_lines_of_both_scripts() {
        let l = parse_line(MVVM).unwrap();
        assert_eq!(
            (l.label.as_str(), l.mib, l.sent_bytes),
            ("loopback", 64, 67239936)
        );
        assert_eq!((l.downtime_ms, l.migration_ms), (110.5, 110.5));
        let l = parse_line(LIVE).unwrap();
        assert_eq!(
            (l.label.as_str(), l.downtime_ms, l.migration_ms),
            ("netns", 3.042, 30.16)
        );
        let l = parse_line(CRIU).unwrap();
        assert_eq!(
            (l.label.as_str(), l.sent_bytes, l.downtime_ms),
            ("criu", 67233153, 1417.0)
        );
        // Not result lines, or figures missing or garbled.
        assert_eq!(
            parse_line("downtime.sh: loopback 64 MiB: checkpoint exited 1"),
            None
        );
        assert_eq!(
            parse_line(&MVVM.replace("downtime   110.5", "downtime x")),
            None
        );
        assert_eq!(parse_line(&MVVM.replace("sent", "got")), None);
        assert_eq!(parse_line(&MVVM.replace("output ok", "")), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn reads_why_criu_modes_do_not_run() {
        let out = "criu: pre-copy (pre-dump) unavailable: no soft-dirty bits\n\
                   criu: lazy (lazy-pages) not run: needs a PID namespace\n\
                   criu: nonsense\n";
        assert_eq!(
            parse_criu_notes(out),
            vec![
                (CRIU_PRE, "no soft-dirty bits".to_owned()),
                (CRIU_LAZY, "needs a PID namespace".to_owned()),
            ]
        );
    }

    #[test]
    fn a_failed_script_is_a_failure_not_a_run() {
        let mut r = MigrationResults::default();
        collect(
            &mut r,
            MVVM_STOP,
            64,
            1,
            &(1, String::new(), "boom".into()),
            "downtime.sh",
        );
        assert!(r.runs.is_empty());
        assert!(r.failures[0].contains("boom"), "{:?}", r.failures);
        // A line for another size does not count.
        collect(
            &mut r,
            CRIU_STOP,
            256,
            1,
            &(0, CRIU.into(), String::new()),
            "migrate.sh",
        );
        assert_eq!(r.failures.len(), 2);
        collect(
            &mut r,
            CRIU_STOP,
            64,
            1,
            &(0, CRIU.into(), String::new()),
            "migrate.sh",
        );
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].network, LOOPBACK);
    }
}
