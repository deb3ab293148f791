//! Running a child program and measuring it: wall time, CPU time, peak RSS.
//!
//! Peak RSS comes from `getrusage(RUSAGE_CHILDREN)`, which reports the
//! largest resident set of all waited-for children of the calling process.
//! To get it per run, every measured program is started through the
//! harness's own hidden `measure` subcommand: that wrapper process has
//! exactly one child, so its `RUSAGE_CHILDREN` is the child's own figure. It
//! writes the figures to a small report file and the caller reads it back.
//! The child's stdout and stderr pass straight through the wrapper.

use crate::{BenchError, Result, command_line};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one measured run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Wall-clock seconds from spawn to exit.
    pub wall_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set size in KiB.
    pub max_rss_kib: u64,
    /// Exit code, `None` when killed by a signal (including the timeout).
    pub exit_code: Option<i32>,
    /// Whether the run was killed for exceeding its time limit.
    pub timed_out: bool,
}

impl Measurement {
    /// The one-line report format written by the wrapper.
    pub fn to_report(&self) -> String {
        format!(
            "wall={} user={} sys={} maxrss_kib={} exit={} timed_out={}\n",
            self.wall_s,
            self.user_s,
            self.sys_s,
            self.max_rss_kib,
            self.exit_code
                .map_or("signal".to_owned(), |c| c.to_string()),
            self.timed_out
        )
    }

    /// Parses [`Measurement::to_report`]'s output.
    pub fn from_report(text: &str) -> Result<Measurement> {
        let bad = || BenchError::BadReport(text.trim().to_owned());
        let mut m = Measurement {
            wall_s: f64::NAN,
            user_s: f64::NAN,
            sys_s: f64::NAN,
            max_rss_kib: 0,
            exit_code: None,
            timed_out: false,
        };
        let mut seen = 0;
        for field in text.split_whitespace() {
            let (k, v) = field.split_once('=').ok_or_else(bad)?;
            match k {
                "wall" => m.wall_s = v.parse().map_err(|_| bad())?,
                "user" => m.user_s = v.parse().map_err(|_| bad())?,
                "sys" => m.sys_s = v.parse().map_err(|_| bad())?,
                "maxrss_kib" => m.max_rss_kib = v.parse().map_err(|_| bad())?,
                "exit" => {
                    m.exit_code = if v == "signal" {
                        None
                    } else {
                        Some(v.parse().map_err(|_| bad())?)
                    }
                }
                "timed_out" => m.timed_out = v.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
            seen += 1;
        }
        if seen != 6 {
            return Err(bad());
        }
        Ok(m)
    }
}

/// Waits for `child`, killing it after `timeout`. Returns the status, the
/// wall time since `started`, and whether the limit was hit.
///
/// A watchdog thread sends SIGKILL when the limit passes; the main thread
/// blocks in `wait`, so the measured wall time is exact. (The watchdog is
/// told to stand down as soon as `wait` returns; a pid reused in the
/// microseconds between the two is a risk accepted for a benchmark tool.)
fn wait_limited(
    child: std::process::Child,
    started: Instant,
    timeout: Duration,
    capture: bool,
) -> std::io::Result<(Output, f64, bool)> {
    let pid = Pid::from_raw(child.id() as i32);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
            // The child may have exited meanwhile; the error is irrelevant.
            let _ = kill(pid, Signal::SIGKILL);
            return true;
        }
        false
    });
    let result = if capture {
        child.wait_with_output()
    } else {
        let mut child = child;
        child.wait().map(|status| Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    };
    let wall = started.elapsed().as_secs_f64();
    // The watchdog may already have gone (after a timeout): ignore.
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    result.map(|out| (out, wall, timed_out))
}

/// Runs `program args` with captured output and a time limit (used by the
/// smoke check, which needs no RSS figure).
pub fn run_captured(
    program: &Path,
    args: &[OsString],
    timeout: Duration,
) -> Result<(Output, bool)> {
    run_captured_env(program, args, &[], timeout)
}

/// [`run_captured`] with environment variables (`K=V`) added.
pub fn run_captured_env(
    program: &Path,
    args: &[OsString],
    env: &[String],
    timeout: Duration,
) -> Result<(Output, bool)> {
    let started = Instant::now();
    let mut cmd = Command::new(program);
    apply_env(&mut cmd, env)?;
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            command: command_line(program, args),
            source,
        })?;
    let (out, _, timed_out) =
        wait_limited(child, started, timeout, true).map_err(|source| BenchError::Spawn {
            command: command_line(program, args),
            source,
        })?;
    Ok((out, timed_out))
}

/// The wrapper side: runs `program args` with inherited stdio and the
/// environment variables `env` (`K=V`) added, waits with a time limit, and
/// returns the figures. Call it only from a process that has no other
/// children, or the RSS figure covers them too.
pub fn measure_here(
    program: &Path,
    args: &[OsString],
    env: &[String],
    timeout: Duration,
) -> Result<Measurement> {
    let started = Instant::now();
    let mut cmd = Command::new(program);
    apply_env(&mut cmd, env)?;
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            command: command_line(program, args),
            source,
        })?;
    let (out, wall, timed_out) =
        wait_limited(child, started, timeout, false).map_err(|source| BenchError::Spawn {
            command: command_line(program, args),
            source,
        })?;
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| BenchError::Spawn {
        command: "getrusage".to_owned(),
        source: std::io::Error::from(e),
    })?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    Ok(Measurement {
        wall_s: wall,
        user_s: secs(usage.user_time()),
        sys_s: secs(usage.system_time()),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
        exit_code: exit_code(out.status),
        timed_out,
    })
}

/// Adds `K=V` entries to a command's environment.
fn apply_env(cmd: &mut Command, env: &[String]) -> Result<()> {
    for e in env {
        let Some((k, v)) = e.split_once('=') else {
            return Err(BenchError::BadReport(format!(
                "environment entry `{e}` is not K=V"
            )));
        };
        cmd.env(k, v);
    }
    Ok(())
}

fn exit_code(status: ExitStatus) -> Option<i32> {
    status.code()
}

/// One measured run as seen by the harness: the figures and what the
/// program printed.
#[derive(Debug, Clone)]
pub struct MeasuredRun {
    /// The figures.
    pub m: Measurement,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The caller side: runs `program args` through `wrapper measure` (the
/// harness binary itself) and reads the report back.
pub fn measure_via(
    wrapper: &Path,
    report_file: &Path,
    program: &Path,
    args: &[OsString],
    timeout: Duration,
) -> Result<MeasuredRun> {
    measure_via_env(wrapper, report_file, program, args, &[], timeout)
}

/// [`measure_via`] with environment variables (`K=V`) added to the
/// program's (the native threaded builds take their thread count so).
pub fn measure_via_env(
    wrapper: &Path,
    report_file: &Path,
    program: &Path,
    args: &[OsString],
    env: &[String],
    timeout: Duration,
) -> Result<MeasuredRun> {
    let mut wargs: Vec<OsString> = vec![
        "measure".into(),
        "--report".into(),
        report_file.as_os_str().to_owned(),
        "--timeout-secs".into(),
        timeout.as_secs().max(1).to_string().into(),
    ];
    for e in env {
        wargs.push("--env".into());
        wargs.push(e.into());
    }
    wargs.extend(["--".into(), program.as_os_str().to_owned()]);
    wargs.extend(args.iter().cloned());
    let _ = std::fs::remove_file(report_file);
    // The wrapper's own limit is the child's plus a margin for itself.
    let (out, _) = run_captured(wrapper, &wargs, timeout + Duration::from_secs(30))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // No report: the wrapper itself failed (say, the program is missing);
    // its stderr says why.
    let Ok(text) = std::fs::read_to_string(report_file) else {
        return Err(BenchError::BuildFailed {
            command: command_line(program, args),
            status: out.status.to_string(),
            stderr,
        });
    };
    Ok(MeasuredRun {
        m: Measurement::from_report(&text)?,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let m = Measurement {
            wall_s: 1.25,
            user_s: 1.0,
            sys_s: 0.125,
            max_rss_kib: 4096,
            exit_code: Some(3),
            timed_out: false,
        };
        assert_eq!(Measurement::from_report(&m.to_report()).unwrap(), m);
        let killed = Measurement {
            exit_code: None,
            timed_out: true,
            ..m
        };
        assert_eq!(
            Measurement::from_report(&killed.to_report()).unwrap(),
            killed
        );
        assert!(Measurement::from_report("wall=1").is_err());
        assert!(Measurement::from_report("nonsense").is_err());
    }

    #[test]
    fn the_wrapper_measures_a_child_and_reports_a_missing_one() {
        // The test binary is not the harness, so drive measure_here directly.
        let m = measure_here(Path::new("true"), &[], &[], Duration::from_secs(10)).unwrap();
        assert_eq!(m.exit_code, Some(0));
        assert!(!m.timed_out && m.wall_s >= 0.0 && m.max_rss_kib > 0);
        assert!(
            measure_here(
                Path::new("/nonexistent/program"),
                &[],
                &[],
                Duration::from_secs(1)
            )
            .is_err()
        );
    }

    #[test]
    fn the_wrapper_passes_environment_variables() {
        // `sh -c 'exit $X'` exits with the variable's value.
        let args: Vec<OsString> = vec!["-c".into(), "exit $MVVM_BENCH_T".into()];
        let m = measure_here(
            Path::new("sh"),
            &args,
            &["MVVM_BENCH_T=7".to_owned()],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(m.exit_code, Some(7));
        assert!(
            measure_here(
                Path::new("true"),
                &[],
                &["NOEQUALS".to_owned()],
                Duration::from_secs(1)
            )
            .is_err()
        );
    }

    #[test]
    fn a_hung_child_is_killed_at_the_limit() {
        let started = Instant::now();
        let (out, timed_out) = run_captured(
            Path::new("sleep"),
            &["30".into()],
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(timed_out);
        assert!(!out.status.success());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
