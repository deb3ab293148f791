//! The smoke check: every workload once at its smoke size, natively and
//! under MVVM (and Wasmtime when installed), with checksums compared to
//! each other and to the committed expectations in
//! `bench/expected-smoke.txt`.
//!
//! The expectations were produced by the native build and checked against
//! a reference wasm engine when the workloads were written; comparing with
//! them catches a wasm rebuild, a compiler change or a C change that alters
//! results, even when MVVM is not built.

use crate::threads::{self, ThreadedWorkload};
use crate::tools::{self, MvvmTools, Paths};
use crate::workloads::{self, Workload};
use crate::{BenchError, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Time limit of one smoke run (they take milliseconds natively).
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Time limit of one compilation (debug builds of the compiler are slow).
const COMPILE_LIMIT: Duration = Duration::from_secs(600);

/// The checksum a build printed, or why there is none.
pub type Checked = std::result::Result<String, String>;

/// Outcome for one workload.
#[derive(Debug, Clone)]
pub struct SmokeOutcome {
    /// The workload.
    pub workload: &'static str,
    /// Thread count of a threaded workload (`None` for the serial ones).
    pub threads: Option<u32>,
    /// Expected checksum from `bench/expected-smoke.txt`.
    pub expected: Option<String>,
    /// Native build.
    pub native: Checked,
    /// MVVM (when its tools were given).
    pub mvvm: Option<Checked>,
    /// Wasmtime (when installed).
    pub wasmtime: Option<Checked>,
}

impl SmokeOutcome {
    /// Whether every build that ran printed the expected checksum.
    pub fn ok(&self) -> bool {
        let Some(want) = &self.expected else {
            return false;
        };
        [
            Some(&self.native),
            self.mvvm.as_ref(),
            self.wasmtime.as_ref(),
        ]
        .into_iter()
        .flatten()
        .all(|c| c.as_ref().is_ok_and(|got| got == want))
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let show = |c: &Option<Checked>| match c {
            None => "-".to_owned(),
            Some(Ok(s)) => s.clone(),
            Some(Err(e)) => format!("ERROR: {e}"),
        };
        let name = match self.threads {
            Some(t) => format!("{} t{t}", self.workload),
            None => self.workload.to_owned(),
        };
        format!(
            "{:<16} {} expected {} native {} mvvm {} wasmtime {}",
            name,
            if self.ok() { "ok      " } else { "MISMATCH" },
            self.expected.as_deref().unwrap_or("(none)"),
            show(&Some(self.native.clone())),
            show(&self.mvvm),
            show(&self.wasmtime),
        )
    }
}

/// Reads `name checksum` lines (blank lines and `#` comments ignored).
pub fn read_expected(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect())
}

/// Writes the expectations file from native results.
pub fn write_expected(path: &Path, sums: &BTreeMap<String, String>) -> Result<()> {
    let mut text = String::from(
        "# Checksums of every workload at its smoke size (written by `mvvm-bench --write-expected`).\n",
    );
    for w in workloads::ALL {
        if let Some(s) = sums.get(w.name) {
            text.push_str(&format!("{} {}\n", w.name, s));
        }
    }
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs a program and extracts its checksum.
pub fn checksum_of(program: &Path, args: &[OsString], limit: Duration) -> Checked {
    checksum_with_env(program, args, &[], limit)
}

/// [`checksum_of`] with environment variables (`K=V`) added.
pub fn checksum_with_env(
    program: &Path,
    args: &[OsString],
    env: &[String],
    limit: Duration,
) -> Checked {
    let (out, timed_out) =
        crate::measure::run_captured_env(program, args, env, limit).map_err(|e| e.to_string())?;
    if timed_out {
        return Err(format!("timed out after {} s", limit.as_secs()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("exited with {}: {}", out.status, stderr.trim()));
    }
    workloads::parse_checksum(&stdout).ok_or_else(|| "no checksum line in the output".to_owned())
}

fn native(paths: &Paths, w: &Workload, dir: &Path) -> Checked {
    let exe = tools::build_native(paths, w, &dir.join("native")).map_err(|e| e.to_string())?;
    let args: Vec<OsString> = w.smoke.iter().map(OsString::from).collect();
    checksum_of(&exe, &args, RUN_LIMIT)
}

fn mvvm(paths: &Paths, t: &MvvmTools, w: &Workload, dir: &Path) -> Checked {
    let out_dir = dir.join("aot");
    tools::ensure_dir(&out_dir).map_err(|e| e.to_string())?;
    let aot = out_dir.join(format!("{}.aot", w.name));
    match tools::compile_aot(t, &paths.wasm(w), &aot, &[], COMPILE_LIMIT)
        .map_err(|e| e.to_string())?
    {
        tools::CompileOutcome::Done(_) => {}
        tools::CompileOutcome::Unsupported(e) | tools::CompileOutcome::Failed(e) => {
            return Err(format!("mvvm-aot failed: {e}"));
        }
    }
    checksum_of(&t.checkpoint, &t.run_args(&aot, w.smoke), RUN_LIMIT)
}

fn wasmtime(paths: &Paths, wt: &Path, w: &Workload) -> Checked {
    let mut args: Vec<OsString> = vec!["run".into()];
    args.extend(tools::wasmtime_flags(w).iter().map(OsString::from));
    args.push(paths.wasm(w).into_os_string());
    args.extend(w.smoke.iter().map(OsString::from));
    checksum_of(wt, &args, RUN_LIMIT)
}

/// Runs the smoke check of `selected` workloads on up to `jobs` threads.
pub fn smoke(
    paths: &Paths,
    selected: &[&'static Workload],
    mvvm_tools: Option<&MvvmTools>,
    wasmtime_exe: Option<&Path>,
    dir: &Path,
    jobs: usize,
) -> Result<Vec<SmokeOutcome>> {
    let expected = read_expected(&paths.expected_smoke())?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SmokeOutcome>>> = Mutex::new(vec![None; selected.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(w) = selected.get(i) else { break };
                    let outcome = SmokeOutcome {
                        workload: w.name,
                        threads: None,
                        expected: expected.get(w.name).cloned(),
                        native: native(paths, w, dir),
                        mvvm: mvvm_tools.map(|t| mvvm(paths, t, w, dir)),
                        wasmtime: wasmtime_exe.map(|wt| wasmtime(paths, wt, w)),
                    };
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(outcome);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(results.into_iter().flatten().collect())
}

/// The smoke check of the threaded workloads: each at its smoke size and
/// at every count of `counts`, natively, under MVVM (`-e
/// OMP_NUM_THREADS=N`) and under `wasmtime` (one that runs wasi-threads,
/// see [`tools::find_wasmtime_threads`]) when given. The expected checksum
/// is the serial workload's, whose output the threaded program reproduces.
pub fn smoke_threads(
    paths: &Paths,
    selected: &[&'static ThreadedWorkload],
    counts: &[u32],
    mvvm_tools: Option<&MvvmTools>,
    wasmtime_exe: Option<&Path>,
    dir: &Path,
) -> Result<Vec<SmokeOutcome>> {
    let expected = read_expected(&paths.expected_smoke())?;
    let mut out = Vec::new();
    for w in selected {
        let args: Vec<OsString> = w.smoke.iter().map(OsString::from).collect();
        let native =
            tools::build_native_threaded(paths, w, &dir.join("native")).map_err(|e| e.to_string());
        let aot = mvvm_tools.map(|t| {
            let out_dir = dir.join("aot");
            tools::ensure_dir(&out_dir).map_err(|e| e.to_string())?;
            let aot = out_dir.join(format!("{}.aot", w.name));
            match tools::compile_aot(t, &paths.threaded_wasm(w), &aot, &[], COMPILE_LIMIT)
                .map_err(|e| e.to_string())?
            {
                tools::CompileOutcome::Done(_) => Ok((t, aot)),
                tools::CompileOutcome::Unsupported(e) | tools::CompileOutcome::Failed(e) => {
                    Err(format!("mvvm-aot failed: {e}"))
                }
            }
        });
        for &n in counts {
            let env = [threads::env_entry(n)];
            let native = native
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|exe| checksum_with_env(exe, &args, &env, RUN_LIMIT));
            let mvvm = aot.as_ref().map(|r| {
                let (t, aot) = r.as_ref().map_err(Clone::clone)?;
                let mut run = threads::mvvm_env_args(n);
                run.extend(t.run_args(aot, w.smoke));
                checksum_of(&t.checkpoint, &run, RUN_LIMIT)
            });
            let wasmtime = wasmtime_exe.map(|wt| {
                let mut run: Vec<OsString> = vec!["run".into()];
                run.extend(tools::WASMTIME_THREADS_RUN_FLAGS.iter().map(OsString::from));
                run.extend(["--env".into(), env[0].clone().into()]);
                run.push(paths.threaded_wasm(w).into_os_string());
                run.extend(args.iter().cloned());
                checksum_of(wt, &run, RUN_LIMIT)
            });
            out.push(SmokeOutcome {
                workload: w.name,
                threads: Some(n),
                expected: expected.get(w.serial).cloned(),
                native,
                mvvm,
                wasmtime,
            });
        }
    }
    Ok(out)
}
