//! Checkpoint trigger flags, shared by `mvvm-checkpoint` and `mvvm-restore`
//! (so a restored run can be checkpointed again exactly like a first run).
//!
//! At most one of `-c`, `-f` and `--after` may be given; SIGINT and SIGUSR1
//! are always armed on top of it (a second SIGINT still ends the process).
//!
//! The debug switch (`--log-probes`) is not here: `mvvm-checkpoint` spells
//! it `-i` as the original MVVM did, while in `mvvm-restore` `-i` is the
//! address to listen on for a migrating snapshot (also the original's
//! spelling), so each binary declares it itself.

use clap::Args;
use mvvm_rt::checkpoint::{FuncSelector, Trigger};
use std::time::Duration;

/// When to take a checkpoint.
#[derive(Debug, Clone, Default, Args)]
pub struct TriggerFlags {
    /// Checkpoint at the N-th probe executed (1 = the first; with the
    /// counter-loop policy, the N-th poll). Deterministic: the same N stops
    /// the same program at the same place on every run. `--json` of an
    /// uninterrupted run with `--count-probes` reports how many there are.
    #[arg(
        short = 'c',
        long = "count",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        conflicts_with_all = ["function", "after"],
    )]
    pub count: Option<u64>,

    /// Checkpoint at the first stable point after the `-x`-th entry into
    /// function FUNC (a name from the name section, or an index). Needs a
    /// module compiled with `--enable-checkpoint` (function-entry probes).
    #[arg(
        short = 'f',
        long = "function",
        value_name = "FUNC",
        conflicts_with = "after"
    )]
    pub function: Option<String>,

    /// With `-f`: which entry into the function triggers (1 = the first).
    #[arg(
        short = 'x',
        long = "entries",
        value_name = "N",
        requires = "function",
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub entries: Option<u64>,

    /// Checkpoint at the first stable point after SECONDS of running
    /// (fractions allowed: `--after 0.5`).
    #[arg(long = "after", value_name = "SECONDS", value_parser = parse_seconds)]
    pub after: Option<Duration>,

    /// Count every probe executed and report the total in `--json`
    /// (`probes`), to choose `-c` values. Slower: each probe then calls
    /// the runtime. Without it (and without `-c`/`-f`) probes stay on their
    /// fast path.
    #[arg(long = "count-probes", conflicts_with_all = ["count", "function", "after", "every"])]
    pub count_probes: bool,

    /// Periodic checkpoints: every SECONDS (fractions allowed), write a
    /// snapshot and keep running. Each snapshot replaces the previous one
    /// at the snapshot path; the first is full, the next ones incremental
    /// (only the 64 KiB chunks written since the previous one) when the
    /// program was compiled with `--enable-loop-dirty-checkpoint` (or with
    /// `--incremental`), each
    /// previous one then kept as `STEM.ID.bin` next to it (ID: 12 hex
    /// digits of its id), as long as the chain needs it. Needs a snapshot
    /// file (not a stream or TCP). SIGINT/SIGUSR1 still write a last
    /// snapshot and stop.
    #[arg(
        long = "every",
        value_name = "SECONDS",
        value_parser = parse_positive_seconds,
        conflicts_with_all = ["count", "function", "after"],
    )]
    pub every: Option<Duration>,
}

impl TriggerFlags {
    /// The runtime trigger these flags describe.
    pub fn trigger(&self) -> Trigger {
        if let Some(n) = self.count {
            Trigger::ProbeCount(n)
        } else if let Some(func) = &self.function {
            Trigger::FunctionEntry {
                func: func_selector(func),
                count: self.entries.unwrap_or(1),
            }
        } else if let Some(d) = self.after {
            Trigger::After(d)
        } else if let Some(d) = self.every {
            Trigger::Every(d)
        } else if self.count_probes {
            Trigger::CountProbes
        } else {
            Trigger::None
        }
    }

    /// Whether any trigger flag was given (signals aside).
    pub fn any(&self) -> bool {
        self.count.is_some()
            || self.function.is_some()
            || self.after.is_some()
            || self.every.is_some()
    }
}

/// `-f` value: all digits is a function index, anything else a name.
fn func_selector(s: &str) -> FuncSelector {
    match s.parse::<u32>() {
        Ok(i) => FuncSelector::Index(i),
        Err(_) => FuncSelector::Name(s.to_owned()),
    }
}

/// Parses a non-negative, finite number of seconds.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a valid duration"))
}

/// Parses a positive, finite number of seconds.
fn parse_positive_seconds(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    if d.is_zero() {
        return Err("the period must be more than zero seconds".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        t: TriggerFlags,
    }

    fn parse(args: &[&str]) -> Result<Trigger, clap::Error> {
        let mut v = vec!["x"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| t.t.trigger())
    }

    #[test]
    fn no_flag_is_no_trigger() {
        assert!(matches!(parse(&[]).unwrap(), Trigger::None));
    }

    #[test]
    fn count() {
        assert!(matches!(
            parse(&["-c", "17"]).unwrap(),
            Trigger::ProbeCount(17)
        ));
        assert!(parse(&["-c", "0"]).is_err());
        assert!(parse(&["-c", "-3"]).is_err());
    }

    #[test]
    fn function_by_name_or_index() {
        match parse(&["-f", "main", "-x", "3"]).unwrap() {
            Trigger::FunctionEntry {
                func: FuncSelector::Name(n),
                count: 3,
            } => assert_eq!(n, "main"),
            t => panic!("{t:?}"),
        }
        assert!(matches!(
            parse(&["-f", "12"]).unwrap(),
            Trigger::FunctionEntry {
                func: FuncSelector::Index(12),
                count: 1
            }
        ));
    }

    #[test]
    fn entries_without_function_is_a_usage_error() {
        let e = parse(&["-x", "3"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn triggers_conflict() {
        for args in [
            &["-c", "1", "-f", "main"][..],
            &["-c", "1", "--after", "2"],
            &["-f", "main", "--after", "2"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
    }

    #[test]
    fn after_seconds() {
        assert!(matches!(
            parse(&["--after", "0.25"]).unwrap(),
            Trigger::After(d) if d == Duration::from_millis(250)
        ));
        assert!(parse(&["--after", "-1"]).is_err());
        assert!(parse(&["--after", "soon"]).is_err());
        assert!(parse(&["--after", "inf"]).is_err());
    }

    #[test]
    fn every_seconds() {
        assert!(matches!(
            parse(&["--every", "1.5"]).unwrap(),
            Trigger::Every(d) if d == Duration::from_millis(1500)
        ));
        assert!(parse(&["--every", "0"]).is_err());
        assert!(parse(&["--every", "1", "-c", "3"]).is_err());
        assert!(parse(&["--every", "1", "--after", "3"]).is_err());
    }
}
