//! The `--json FILE` summary: one line of JSON written when a run ends, for
//! scripts and tests (which read `probes` from an uninterrupted run to
//! choose `-c` values).
//!
//! ```json
//! {"status":"checkpointed","exit_code":75,"probes":1234,"snapshot":"bc.bin",
//!  "snapshot_bytes":65712,"memory_bytes":131072,"frames":5,"checkpoint_ms":0.41,
//!  "startup_ms":3.2,"downtime_ms":null}
//! ```
//!
//! `startup_ms` is the process's start-up: from the process start (the
//! runtime's constructor that runs before `main`, see
//! [`mvvm_rt::loader::process_start`]) to the guest's first instruction:
//! for `mvvm-restore` the moment the downtime ends too (the runtime's
//! `on_resume` hook, after the snapshot is read and the store rebuilt), for
//! `mvvm-checkpoint` the call into the runtime's run, once the module is
//! loaded and the guest thread started (instantiation, which follows, is
//! not included: it is a small fraction, see docs/startup.md). `null` if
//! the guest never started.
//!
//! `downtime_ms` is set by `mvvm-restore`: from the checkpoint's trigger
//! (its wall-clock time travels in the snapshot) to the first instruction
//! of the resumed program, on the receiver's clock.
//!
//! A live migration's sender (`--live`) adds `"live":{"rounds":N,
//! "round_bytes":[...],"final_bytes":B,"total_bytes":B,"transfer_ms":T,
//! "pause_ms":P,"stop_reason":"..."}`: chunk data of each pre-copy round,
//! the stopped part's bytes, the whole stream, the time from the first
//! trigger to the last byte, and the pause (the final stop's trigger to
//! the last byte sent).
//!
//! A run with periodic checkpoints (`--every`, either tool) adds
//! `"periodic":{"count":N,"pause_ms":[...],"pause_max_ms":P,
//! "durable_ms":[...],"bytes":[...]}`: per periodic snapshot, in order, how
//! long the program was paused for it (trigger to the program running on:
//! the unwind, the capture and, written in the background, taking the
//! memory's copy-on-write image), the time from the trigger to the file
//! being durable, and its size.
//!
//! `status` is `exited`, `checkpointed` or `trapped`; fields that do not
//! apply are `null`. Written by hand: it is a dozen fields of numbers and
//! strings, not worth a serialisation dependency.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How a run ended, as reported in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The guest exited (returned from `_start` or called `proc_exit`).
    Exited,
    /// A snapshot was written and the process stopped.
    Checkpointed,
    /// The guest trapped.
    Trapped,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Exited => "exited",
            Status::Checkpointed => "checkpointed",
            Status::Trapped => "trapped",
        }
    }
}

/// The summary of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// How it ended.
    pub status: Status,
    /// The process exit code.
    pub exit_code: i32,
    /// Probes executed (polls for the counter-loop policy), when known.
    pub probes: Option<u64>,
    /// Where the snapshot went (checkpointed runs).
    pub snapshot: Option<String>,
    /// Size of the snapshot.
    pub snapshot_bytes: Option<u64>,
    /// Bytes of linear memory in the snapshot.
    pub memory_bytes: Option<u64>,
    /// Frames saved.
    pub frames: Option<usize>,
    /// From the trigger to the snapshot being durable, in milliseconds.
    pub checkpoint_ms: Option<f64>,
    /// From the trigger of the checkpoint this run resumed to its first
    /// instruction, in milliseconds (restored runs only).
    pub downtime_ms: Option<f64>,
    /// From the process start to the guest's first instruction, in
    /// milliseconds (see the module documentation).
    pub startup_ms: Option<f64>,
    /// A live migration's rounds and times (`--live`): written as a
    /// `"live"` object, only when set.
    pub live: Option<mvvm_rt::checkpoint::LiveStats>,
    /// The periodic checkpoints of the run ([`record_periodic`]): written
    /// as a `"periodic"` object, only when there were some.
    pub periodic: Vec<Periodic>,
}

/// One periodic checkpoint, as the summary reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Periodic {
    /// How long the program was paused, in milliseconds.
    pub pause_ms: f64,
    /// From the trigger to the snapshot being durable, in milliseconds.
    pub durable_ms: f64,
    /// The snapshot's size.
    pub bytes: u64,
}

/// The periodic checkpoints recorded so far in this process.
static PERIODIC: std::sync::Mutex<Vec<Periodic>> = std::sync::Mutex::new(Vec::new());

/// Records a periodic checkpoint for the summary (called from the
/// runtime's `on_checkpoint` report).
pub fn record_periodic(stats: &mvvm_rt::checkpoint::CheckpointStats) {
    let p = Periodic {
        pause_ms: stats.pause.as_secs_f64() * 1e3,
        durable_ms: stats.trigger_to_durable.as_secs_f64() * 1e3,
        bytes: stats.snapshot_bytes,
    };
    PERIODIC
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(p);
}

/// This process's start-up time, set by [`mark_guest_start`].
static STARTUP_MS: OnceLock<f64> = OnceLock::new();

/// Records the start-up time: to be called right before the guest's first
/// instruction (once per process; later calls are ignored). Logs it at
/// debug level.
pub fn mark_guest_start() {
    let Some(start) = mvvm_rt::loader::process_start() else {
        return;
    };
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if STARTUP_MS.set(ms).is_ok() {
        tracing::debug!(startup_ms = ms, "guest starting");
    }
}

/// The start-up time recorded by [`mark_guest_start`], if it was.
pub fn startup_ms() -> Option<f64> {
    STARTUP_MS.get().copied()
}

impl Summary {
    /// A summary with only the status and exit code set.
    pub fn new(status: Status, exit_code: i32) -> Summary {
        Summary {
            status,
            exit_code,
            probes: None,
            snapshot: None,
            snapshot_bytes: None,
            memory_bytes: None,
            frames: None,
            checkpoint_ms: None,
            downtime_ms: None,
            startup_ms: startup_ms(),
            live: None,
            periodic: PERIODIC
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// The summary as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        fn num<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "null".to_owned(), |v| v.to_string())
        }
        fn ms(v: Option<f64>) -> String {
            v.filter(|v| v.is_finite())
                .map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"))
        }
        let live = self.live.as_ref().map_or_else(String::new, |l| {
            let rounds: Vec<String> = l.round_bytes.iter().map(u64::to_string).collect();
            format!(
                ",\"live\":{{\"rounds\":{},\"round_bytes\":[{}],\"final_bytes\":{},\"total_bytes\":{},\"transfer_ms\":{},\"pause_ms\":{},\"stop_reason\":{}}}",
                l.round_bytes.len(),
                rounds.join(","),
                l.final_bytes,
                l.total_bytes,
                ms(Some(l.total_time.as_secs_f64() * 1e3)),
                ms(Some(l.pause.as_secs_f64() * 1e3)),
                json_string(&l.stop_reason)
            )
        });
        let periodic = if self.periodic.is_empty() {
            String::new()
        } else {
            let list = |f: &dyn Fn(&Periodic) -> String| {
                self.periodic.iter().map(f).collect::<Vec<_>>().join(",")
            };
            let max = self
                .periodic
                .iter()
                .map(|p| p.pause_ms)
                .fold(0.0f64, f64::max);
            format!(
                ",\"periodic\":{{\"count\":{},\"pause_ms\":[{}],\"pause_max_ms\":{},\"durable_ms\":[{}],\"bytes\":[{}]}}",
                self.periodic.len(),
                list(&|p| ms(Some(p.pause_ms))),
                ms(Some(max)),
                list(&|p| ms(Some(p.durable_ms))),
                list(&|p| p.bytes.to_string()),
            )
        };
        format!(
            "{{\"status\":\"{}\",\"exit_code\":{},\"probes\":{},\"snapshot\":{},\"snapshot_bytes\":{},\"memory_bytes\":{},\"frames\":{},\"checkpoint_ms\":{},\"startup_ms\":{},\"downtime_ms\":{}{live}{periodic}}}",
            self.status.name(),
            self.exit_code,
            num(self.probes),
            self.snapshot
                .as_deref()
                .map_or_else(|| "null".to_owned(), json_string),
            num(self.snapshot_bytes),
            num(self.memory_bytes),
            num(self.frames),
            ms(self.checkpoint_ms),
            ms(self.startup_ms),
            ms(self.downtime_ms),
        )
    }

    /// Writes the summary to `dest` (`-` is stderr), replacing the file.
    pub fn write_to(&self, dest: &Path) -> Result<()> {
        let line = self.to_json();
        if dest == Path::new("-") {
            eprintln!("{line}");
            return Ok(());
        }
        std::fs::write(dest, format!("{line}\n"))
            .with_context(|| format!("cannot write the summary to {}", dest.display()))
    }
}

/// Writes `summary` to `dest` if `--json` was given; a failure to write it
/// is reported but does not change the exit code of a run that happened.
pub fn emit(program: &str, dest: Option<&PathBuf>, summary: &Summary) {
    if let Some(dest) = dest
        && let Err(e) = summary.write_to(dest)
    {
        eprintln!("{program}: warning: {e:#}");
    }
}

/// A JSON string literal for `s`.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_line() {
        let mut s = Summary::new(Status::Exited, 0);
        s.probes = Some(42);
        s.startup_ms = None;
        assert_eq!(
            s.to_json(),
            r#"{"status":"exited","exit_code":0,"probes":42,"snapshot":null,"snapshot_bytes":null,"memory_bytes":null,"frames":null,"checkpoint_ms":null,"startup_ms":null,"downtime_ms":null}"#
        );
    }

    #[test]
    fn checkpointed_line_escapes_paths() {
        let mut s = Summary::new(Status::Checkpointed, 75);
        s.snapshot = Some("a \"b\"\\c\n.bin".into());
        s.snapshot_bytes = Some(10);
        s.frames = Some(3);
        s.checkpoint_ms = Some(1.5);
        s.downtime_ms = Some(2.25);
        s.startup_ms = Some(4.0);
        let j = s.to_json();
        assert!(j.contains(r#""startup_ms":4.000,"#), "{j}");
        assert!(j.ends_with(r#""downtime_ms":2.250}"#), "{j}");
        assert!(j.contains(r#""snapshot":"a \"b\"\\c\n.bin""#), "{j}");
        assert!(j.contains(r#""checkpoint_ms":1.500"#), "{j}");
        assert!(j.contains(r#""frames":3"#), "{j}");
    }

    #[test]
    fn periodic_pauses_are_listed() {
        let mut s = Summary::new(Status::Exited, 0);
        s.periodic = vec![
            Periodic {
                pause_ms: 0.5,
                durable_ms: 120.0,
                bytes: 100,
            },
            Periodic {
                pause_ms: 2.25,
                durable_ms: 80.0,
                bytes: 40,
            },
        ];
        let j = s.to_json();
        assert!(
            j.ends_with(
                r#","periodic":{"count":2,"pause_ms":[0.500,2.250],"pause_max_ms":2.250,"durable_ms":[120.000,80.000],"bytes":[100,40]}}"#
            ),
            "{j}"
        );
    }
}
