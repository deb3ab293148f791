//! Checkpoint and restore figures.
//!
//! For a module compiled with a checkpoint policy: run it with
//! `mvvm-checkpoint --after T` (T = half its uninterrupted run time), which
//! stops at the next stable point, writes the snapshot and exits with 75;
//! then `mvvm-restore` runs it to the end, and its output must carry the
//! native build's checksum. The figures are those of the runner's `--json`
//! summary (time from trigger to durable snapshot, snapshot and memory
//! bytes, frames) plus the measured wall time and peak RSS of both halves.
//! `memfill` is also run at several memory sizes, to show how checkpoint
//! and restore cost grow with the footprint.

use crate::measure::{MeasuredRun, Measurement, measure_via};
use crate::tools::{self, MvvmTools};
use crate::{Result, workloads};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Policies used for checkpoint trials, best first: the first one the
/// compiler supports is used.
pub const POLICY_PREFERENCE: &[&str] = &[
    "counter-16",
    "loop",
    "counter-20",
    "counter-8",
    "func-entry",
    "loop-dirty",
];

/// Exit status of `mvvm-checkpoint` after writing a snapshot.
pub const EXIT_CHECKPOINTED: i32 = 75;

/// The fields of the runner's `--json` summary used here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// `exited`, `checkpointed` or `trapped`.
    pub status: Option<String>,
    /// Size of the snapshot file.
    pub snapshot_bytes: Option<u64>,
    /// Linear memory bytes in the snapshot.
    pub memory_bytes: Option<u64>,
    /// Frames saved.
    pub frames: Option<u64>,
    /// Trigger to durable snapshot, in milliseconds.
    pub checkpoint_ms: Option<f64>,
}

/// The raw text of `key`'s value in a flat one-line JSON object (strings
/// without their quotes; `None` for a missing key or `null`). Enough for
/// the runner's summary, which has no nesting and no escaped quotes.
pub fn json_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = text.find(&pat)? + pat.len();
    let rest = text[start..].trim_start();
    let value = if let Some(stripped) = rest.strip_prefix('"') {
        &stripped[..stripped.find('"')?]
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim()
    };
    (value != "null").then_some(value)
}

impl RunSummary {
    /// Parses the summary line.
    pub fn parse(text: &str) -> RunSummary {
        RunSummary {
            status: json_field(text, "status").map(str::to_owned),
            snapshot_bytes: json_field(text, "snapshot_bytes").and_then(|v| v.parse().ok()),
            memory_bytes: json_field(text, "memory_bytes").and_then(|v| v.parse().ok()),
            frames: json_field(text, "frames").and_then(|v| v.parse().ok()),
            checkpoint_ms: json_field(text, "checkpoint_ms").and_then(|v| v.parse().ok()),
        }
    }
}

/// One checkpoint-and-restore trial.
#[derive(Debug, Clone)]
pub struct CrRecord {
    /// Workload name (with its memory size for the memfill sweep).
    pub label: String,
    /// Guest arguments.
    pub args: String,
    /// Policy the module was compiled with.
    pub policy: &'static str,
    /// Uninterrupted run time of the same build, seconds.
    pub straight_s: f64,
    /// Trigger time given to `--after`, seconds.
    pub after_s: f64,
    /// The checkpointing run.
    pub checkpoint: Option<Measurement>,
    /// Its summary.
    pub summary: RunSummary,
    /// The restoring run.
    pub restore: Option<Measurement>,
    /// Downtime from the restore's `--json`: the trigger to the first
    /// resumed instruction, in ms (same machine, so one clock).
    pub downtime_ms: Option<f64>,
    /// Whether the restored run printed the native checksum.
    pub checksum_ok: bool,
    /// What went wrong, if anything.
    pub note: String,
}

/// Note of a trial whose program ended before the trigger fired.
pub const FINISHED_EARLY: &str = "finished before the trigger";
/// Note of a trial skipped because `mvvm-restore` is missing.
pub const NO_RESTORE: &str = "mvvm-restore not built";
/// Start of the note of a trial whose runner refused the checkpoint (and
/// ran the program on), followed by its reason: a checkpoint of such a
/// program is not supported yet (threaded programs, for now).
pub const CHECKPOINT_REFUSED: &str = "not yet supported (the runner refused the checkpoint)";

/// The runner's reason for refusing a checkpoint, from its stderr: the
/// text of its `checkpoint (...) refused, ...` warning from the word
/// `checkpoint` on (without the log's time stamp and level).
pub fn refusal(stderr: &str) -> Option<&str> {
    let line = stderr
        .lines()
        .find(|l| l.contains("checkpoint") && l.contains("refused"))?;
    Some(line[line.find("checkpoint")?..].trim())
}

impl CrRecord {
    /// Whether the trial found a bug (a failed checkpoint or restore, or a
    /// wrong result after restore), as opposed to succeeding or not
    /// applying.
    pub fn failed(&self) -> bool {
        !self.checksum_ok
            && self.note != FINISHED_EARLY
            && self.note != NO_RESTORE
            && !self.note.starts_with(CHECKPOINT_REFUSED)
    }
}

/// What a trial needs to know.
pub struct Trial<'a> {
    /// The harness binary (measuring wrapper).
    pub wrapper: &'a Path,
    /// Scratch file for the wrapper's report.
    pub report_file: &'a Path,
    /// MVVM tools (with `mvvm-restore`).
    pub tools: &'a MvvmTools,
    /// Directory for snapshots and summaries.
    pub dir: &'a Path,
    /// Time limit of each half.
    pub limit: Duration,
    /// Runner arguments that set the guest's environment (`-e K=V`: the
    /// threaded workloads' thread count); a restored guest's environment
    /// comes from its snapshot.
    pub guest_env: &'a [OsString],
}

impl Trial<'_> {
    /// Runs `mvvm-checkpoint` on `aot` with the guest's `args`, the
    /// `trigger` flags, `--snapshot snapshot` and `--json json`, measured.
    fn checkpoint_tool(
        &self,
        aot: &Path,
        args: &[&str],
        trigger: &[OsString],
        snapshot: &Path,
        json: &Path,
    ) -> Result<MeasuredRun> {
        let mut cargs = self.guest_env.to_vec();
        cargs.extend(self.tools.run_args(aot, args));
        cargs.extend(trigger.iter().cloned());
        cargs.extend([
            OsString::from("--snapshot"),
            snapshot.into(),
            "--json".into(),
            json.into(),
        ]);
        measure_via(
            self.wrapper,
            self.report_file,
            &self.tools.checkpoint,
            &cargs,
            self.limit,
        )
    }

    /// Checkpoints `aot` (compiled with `policy`) at half of `straight_s`,
    /// restores it, and compares the checksum with `reference`.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        label: &str,
        aot: &Path,
        policy: &'static str,
        args: &[&str],
        straight_s: f64,
        reference: Option<&str>,
    ) -> Result<CrRecord> {
        let after_s = (straight_s * 0.5).max(0.001);
        let mut rec = CrRecord {
            label: label.to_owned(),
            args: args.join(" "),
            policy,
            straight_s,
            after_s,
            checkpoint: None,
            summary: RunSummary::default(),
            restore: None,
            downtime_ms: None,
            checksum_ok: false,
            note: String::new(),
        };
        let Some(restore) = &self.tools.restore else {
            rec.note = NO_RESTORE.to_owned();
            return Ok(rec);
        };
        tools::ensure_dir(self.dir)?;
        let stem = label.replace(' ', "_");
        let snapshot = self.dir.join(format!("{stem}.bin"));
        let json1 = self.dir.join(format!("{stem}.checkpoint.json"));
        let json2 = self.dir.join(format!("{stem}.restore.json"));
        for f in [&snapshot, &json1, &json2] {
            let _ = std::fs::remove_file(f);
        }
        let trigger = [OsString::from("--after"), format!("{after_s:.3}").into()];
        let c = self.checkpoint_tool(aot, args, &trigger, &snapshot, &json1)?;
        rec.summary = RunSummary::parse(&std::fs::read_to_string(&json1).unwrap_or_default());
        let exit = c.m.exit_code;
        rec.checkpoint = Some(c.m);
        if exit != Some(EXIT_CHECKPOINTED) {
            rec.note = if let Some(why) = refusal(&c.stderr) {
                format!("{CHECKPOINT_REFUSED}: {why}")
            } else if exit == Some(0) {
                FINISHED_EARLY.to_owned()
            } else {
                format!("checkpoint run exited {exit:?}: {}", first_line(&c.stderr))
            };
            return Ok(rec);
        }
        let rargs: Vec<OsString> = vec![
            "-t".into(),
            aot.as_os_str().to_owned(),
            "--snapshot".into(),
            snapshot.clone().into_os_string(),
            "--json".into(),
            json2.clone().into_os_string(),
        ];
        let r = measure_via(self.wrapper, self.report_file, restore, &rargs, self.limit)?;
        rec.downtime_ms = json_field(
            &std::fs::read_to_string(&json2).unwrap_or_default(),
            "downtime_ms",
        )
        .and_then(|v| v.parse().ok());
        let checksum = workloads::parse_checksum(&r.stdout);
        rec.checksum_ok =
            r.m.exit_code == Some(0) && checksum.is_some() && checksum.as_deref() == reference;
        if !rec.checksum_ok {
            rec.note = if r.m.exit_code != Some(0) {
                format!(
                    "restore exited {:?}: {}",
                    r.m.exit_code,
                    first_line(&r.stderr)
                )
            } else {
                format!("checksum {checksum:?} vs native {reference:?}")
            };
        }
        rec.restore = Some(r.m);
        let _ = std::fs::remove_file(&snapshot);
        Ok(rec)
    }
}

/// One run of memfill with periodic checkpoints written in the
/// background (`--every`), to its end.
#[derive(Debug, Clone, Default)]
pub struct PeriodicRecord {
    /// Workload name with its memory size.
    pub label: String,
    /// The period, seconds.
    pub every_s: f64,
    /// Uninterrupted run time of the same build, seconds.
    pub straight_s: f64,
    /// Wall time of the run with periodic checkpoints, seconds.
    pub wall_s: Option<f64>,
    /// Each periodic checkpoint's pause, ms (the summary's
    /// `periodic.pause_ms`).
    pub pauses_ms: Vec<f64>,
    /// Whether the run printed the native checksum.
    pub checksum_ok: bool,
    /// What went wrong, if anything.
    pub note: String,
}

impl PeriodicRecord {
    /// The median pause, ms.
    pub fn median_pause(&self) -> Option<f64> {
        let mut v = self.pauses_ms.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// The longest pause, ms.
    pub fn max_pause(&self) -> Option<f64> {
        self.pauses_ms.iter().copied().reduce(f64::max)
    }
}

/// The numbers of the array `key` holds in the summary line (`[]` when
/// absent).
pub fn json_numbers(text: &str, key: &str) -> Vec<f64> {
    let pat = format!("\"{key}\":[");
    let Some(start) = text.find(&pat).map(|i| i + pat.len()) else {
        return Vec::new();
    };
    let rest = &text[start..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

impl Trial<'_> {
    /// Runs `aot` to its end with a periodic checkpoint every `every_s`
    /// seconds written in the background, and reads each one's pause from
    /// the summary.
    pub fn run_periodic(
        &self,
        label: &str,
        aot: &Path,
        args: &[&str],
        every_s: f64,
        straight_s: f64,
        reference: Option<&str>,
    ) -> Result<PeriodicRecord> {
        let mut rec = PeriodicRecord {
            label: label.to_owned(),
            every_s,
            straight_s,
            ..Default::default()
        };
        tools::ensure_dir(self.dir)?;
        let stem = label.replace(' ', "_");
        let snapshot = self.dir.join(format!("{stem}.every.bin"));
        let json = self.dir.join(format!("{stem}.every.json"));
        let _ = std::fs::remove_file(&json);
        let trigger = [OsString::from("--every"), format!("{every_s}").into()];
        let c = self.checkpoint_tool(aot, args, &trigger, &snapshot, &json)?;
        rec.wall_s = Some(c.m.wall_s);
        rec.pauses_ms = json_numbers(
            &std::fs::read_to_string(&json).unwrap_or_default(),
            "pause_ms",
        );
        let checksum = workloads::parse_checksum(&c.stdout);
        rec.checksum_ok =
            c.m.exit_code == Some(0) && checksum.is_some() && checksum.as_deref() == reference;
        if !rec.checksum_ok {
            rec.note = format!(
                "exit {:?}, checksum {checksum:?} vs native {reference:?}: {}",
                c.m.exit_code,
                first_line(&c.stderr)
            );
        }
        // The snapshot and the bases kept beside it.
        if let Ok(dir) = std::fs::read_dir(self.dir) {
            for e in dir.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{stem}.every"))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(rec)
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_checkpoint_is_recognised() {
        let stderr = "gemm 600x600\n2026-12-07T05:06:30.851475Z  WARN checkpoint (request (signal or timer)) refused, the program runs on: the module imports its memory\n";
        assert_eq!(
            refusal(stderr),
            Some(
                "checkpoint (request (signal or timer)) refused, the program runs on: the module imports its memory"
            )
        );
        assert_eq!(refusal("checkpoint written to x.bin\n"), None);
        let rec = CrRecord {
            label: "gemm_mt (4 threads)".into(),
            args: String::new(),
            policy: "loop",
            straight_s: 1.0,
            after_s: 0.5,
            checkpoint: None,
            summary: RunSummary::default(),
            restore: None,
            downtime_ms: None,
            checksum_ok: false,
            note: format!("{CHECKPOINT_REFUSED}: {}", refusal(stderr).unwrap_or("")),
        };
        assert!(!rec.failed());
        assert!(
            CrRecord {
                note: "restore exited Some(1): boom".into(),
                ..rec
            }
            .failed()
        );
    }

    #[test]
    fn periodic_pauses_are_read_from_the_json_line() {
        let line = r#"{"status":"exited","downtime_ms":null,"periodic":{"count":3,"pause_ms":[0.336,2.5,0.373],"pause_max_ms":2.500,"durable_ms":[1.0,2.0,3.0],"bytes":[1,2,3]}}"#;
        let rec = PeriodicRecord {
            pauses_ms: json_numbers(line, "pause_ms"),
            ..Default::default()
        };
        assert_eq!(rec.pauses_ms, vec![0.336, 2.5, 0.373]);
        assert_eq!(rec.median_pause(), Some(0.373));
        assert_eq!(rec.max_pause(), Some(2.5));
        assert!(json_numbers("{}", "pause_ms").is_empty());
    }

    #[test]
    fn summary_fields_are_read_from_the_json_line() {
        let line = r#"{"status":"checkpointed","exit_code":75,"probes":1234,"snapshot":"bc.bin","snapshot_bytes":65712,"memory_bytes":131072,"frames":5,"checkpoint_ms":0.41}"#;
        let s = RunSummary::parse(line);
        assert_eq!(s.status.as_deref(), Some("checkpointed"));
        assert_eq!(s.snapshot_bytes, Some(65712));
        assert_eq!(s.memory_bytes, Some(131072));
        assert_eq!(s.frames, Some(5));
        assert_eq!(s.checkpoint_ms, Some(0.41));
        let exited = RunSummary::parse(r#"{"status":"exited","frames":null,"checkpoint_ms":null}"#);
        assert_eq!(exited.frames, None);
        assert_eq!(exited.checkpoint_ms, None);
        assert_eq!(RunSummary::parse(""), RunSummary::default());
    }
}
