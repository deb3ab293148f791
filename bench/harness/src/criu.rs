//! CRIU as the baseline for checkpoint and restore: the *native* build of
//! each workload is started, dumped with `criu dump` at about the point
//! where MVVM's trial checkpoints (the same fraction of its run), then
//! restored with `criu restore` and run to the end; its output must carry
//! the native checksum.
//!
//! Figures per trial: dump latency (wall time of `criu dump`, from the
//! command's start to its exit: the process is frozen, its memory written,
//! and it is killed), image size (disk usage of the images directory),
//! restore latency to the first instruction (wall time of `criu restore
//! --restore-detached`, which returns once the restored task runs again)
//! and to the end of the program, and the peak RSS seen during restore.
//!
//! The restore runs in a helper process (the harness's hidden
//! `criu-restore` subcommand) that makes itself a child subreaper: the
//! detached task is re-parented to it when `criu` exits, so it can wait for
//! the task, get its exit status and exact end time, and read the peak RSS
//! of `criu` and the task from `getrusage(RUSAGE_CHILDREN)`.
//!
//! CRIU needs root, a version that works on this kernel (Debian bookworm's
//! 3.17 does not, 4.1 does) and a passing `criu check`; [`find`] says why
//! when it cannot be used, and the report shows that reason instead of
//! figures.

use crate::measure::run_captured;
use crate::tools::{Paths, ensure_dir};
use crate::{BenchError, Result, command_line, workloads};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The oldest CRIU major version used: 3.x fails on recent kernels.
pub const MIN_MAJOR: u32 = 4;

/// Time limit of `criu check` and of the build script.
const SETUP_LIMIT: Duration = Duration::from_secs(900);

/// Whether CRIU can be used, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriuTool {
    /// A working `criu` (version at least [`MIN_MAJOR`], `criu check` passed).
    Ready {
        /// The binary.
        path: PathBuf,
        /// Its version, as `criu --version` prints it.
        version: String,
    },
    /// CRIU cannot run here; the reason goes into the report.
    Unavailable(String),
    /// Not asked for (`--no-criu` or `--no-checkpoint`).
    Off,
}

/// The `major.minor[.patch]` text out of `criu --version`'s output
/// (`Version: 4.1.1`).
pub fn parse_version(text: &str) -> Option<String> {
    let rest = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))?
        .trim();
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Whether a version text is at least [`MIN_MAJOR`].
pub fn recent_enough(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= MIN_MAJOR)
}

fn version_of(criu: &Path) -> Option<String> {
    let (out, _) = run_captured(criu, &["--version".into()], Duration::from_secs(30)).ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `bench/criu/build.sh`.
pub fn build_script(paths: &Paths) -> PathBuf {
    paths.bench().join("criu").join("build.sh")
}

/// Runs `bench/criu/build.sh` (which may install build packages with
/// apt-get and takes about a minute); returns the binary it printed, or
/// the last line of its complaint. Its log goes to `target/criu/script.log`.
fn build(paths: &Paths) -> std::result::Result<PathBuf, String> {
    let script = build_script(paths);
    let cache = paths.root.join("target").join("criu");
    ensure_dir(&cache).map_err(|e| e.to_string())?;
    eprintln!(
        "CRIU {MIN_MAJOR}.x not found: building it with {} (about a minute)",
        script.display()
    );
    let (out, timed_out) = run_captured(
        Path::new("bash"),
        &[script.clone().into_os_string(), cache.into_os_string()],
        SETUP_LIMIT,
    )
    .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::write(
        paths.root.join("target").join("criu").join("script.log"),
        stderr.as_bytes(),
    );
    if timed_out || !out.status.success() {
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!("{} failed: {}", script.display(), why.trim()));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let path = printed.lines().last().unwrap_or("").trim();
    if path.is_empty() {
        return Err(format!("{} printed no path", script.display()));
    }
    Ok(PathBuf::from(path))
}

/// Finds a usable CRIU: `given` (from `--criu`), else `criu` on `PATH` if
/// it is recent enough, else the one `bench/criu/build.sh` built before,
/// else (when `allow_build`) builds it. Then runs `criu check`.
pub fn find(paths: &Paths, given: Option<&Path>, allow_build: bool) -> CriuTool {
    if !nix::unistd::geteuid().is_root() {
        return CriuTool::Unavailable("not root (criu dump and restore need root)".to_owned());
    }
    let cached = paths
        .root
        .join("target")
        .join("criu")
        .join("criu-4.1.1")
        .join("criu")
        .join("criu");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(g) = given {
        candidates.push(g.to_path_buf());
    } else {
        candidates.extend(on_path("criu"));
        candidates.push(cached);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut chosen = None;
    for c in candidates {
        match version_of(&c) {
            Some(v) if recent_enough(&v) => {
                chosen = Some((c, v));
                break;
            }
            Some(v) => seen.push(format!("{} is {v}", c.display())),
            None if c.is_file() => seen.push(format!("{} does not run", c.display())),
            None => {}
        }
    }
    let (path, version) = match chosen {
        Some(found) => found,
        None if given.is_some() => {
            return CriuTool::Unavailable(format!(
                "no CRIU {MIN_MAJOR}.x: {}",
                if seen.is_empty() {
                    "the given path does not exist".to_owned()
                } else {
                    seen.join("; ")
                }
            ));
        }
        None if !allow_build => {
            return CriuTool::Unavailable(format!(
                "no CRIU {MIN_MAJOR}.x found{}; run bench/criu/build.sh",
                if seen.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", seen.join("; "))
                }
            ));
        }
        None => match build(paths) {
            Ok(p) => match version_of(&p) {
                Some(v) if recent_enough(&v) => (p, v),
                _ => {
                    return CriuTool::Unavailable(format!(
                        "the CRIU built by bench/criu/build.sh ({}) does not run",
                        p.display()
                    ));
                }
            },
            Err(why) => return CriuTool::Unavailable(format!("cannot build CRIU: {why}")),
        },
    };
    match run_captured(&path, &["check".into()], SETUP_LIMIT) {
        Ok((out, false)) if out.status.success() => CriuTool::Ready { path, version },
        Ok((out, _)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            CriuTool::Unavailable(format!(
                "`criu check` fails with CRIU {version}: {}",
                last_error_line(&text)
            ))
        }
        Err(e) => CriuTool::Unavailable(format!("cannot run criu check: {e}")),
    }
}

/// The most telling line of a CRIU log or output: the last line containing
/// "Error" other than the closing "Dumping FAILED." / "Restoring FAILED."
/// (which says nothing of the cause), else the last non-empty line.
pub fn last_error_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.contains("Error") && !l.contains("FAILED."))
        .or(lines.iter().rev().find(|l| l.contains("Error")))
        .or(lines.last())
        .map_or("no message".to_owned(), |l| l.trim().replace('|', "/"))
}

/// One CRIU dump-and-restore trial of a native build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CriuRecord {
    /// Workload name (with the memory size for the memfill sweep), the
    /// same label as the matching MVVM trial.
    pub label: String,
    /// Guest (here: program) arguments.
    pub args: String,
    /// Uninterrupted run time of the native build, seconds.
    pub straight_s: f64,
    /// When the dump was started, seconds after the program.
    pub after_s: f64,
    /// Wall time of `criu dump`, seconds.
    pub dump_s: Option<f64>,
    /// CRIU's own figures for the dump and the restore (its `stats-dump`
    /// and `stats-restore` files).
    pub stats: CriuStats,
    /// Disk usage of the images directory, bytes.
    pub image_bytes: Option<u64>,
    /// Wall time of `criu restore --restore-detached`: until the restored
    /// task runs again, seconds.
    pub restore_first_s: Option<f64>,
    /// From the start of the restore to the end of the program, seconds.
    pub restore_end_s: Option<f64>,
    /// Peak RSS of the restore (criu and the restored task), KiB.
    pub restore_rss_kib: Option<u64>,
    /// Whether the restored program printed the native checksum.
    pub checksum_ok: bool,
    /// What went wrong, if anything.
    pub note: String,
}

impl CriuRecord {
    /// Whether the trial failed (as opposed to succeeding or finishing
    /// before the dump).
    pub fn failed(&self) -> bool {
        !self.checksum_ok && self.note != crate::cr::FINISHED_EARLY
    }
}

/// What a trial needs.
pub struct CriuTrial<'a> {
    /// The CRIU binary.
    pub criu: &'a Path,
    /// The harness binary (runs the `criu-restore` helper).
    pub wrapper: &'a Path,
    /// Scratch directory (images, logs, program output).
    pub dir: &'a Path,
    /// Time limit of each step.
    pub limit: Duration,
}

/// Total disk usage (allocated blocks) of the files under `dir`, like
/// `du -s`.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| BenchError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    ensure_dir(dir)
}

fn create(path: &Path) -> Result<File> {
    File::create(path).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl CriuTrial<'_> {
    /// Runs `native args`, dumps it at half of `straight_s` (the point
    /// where MVVM's trial checkpoints, as a fraction of the run), restores
    /// it to the end and compares its checksum with `reference`. A program
    /// that ends before the dump (run times vary on a loaded machine) is
    /// tried once more, dumped at a quarter of `straight_s`.
    pub fn run(
        &self,
        label: &str,
        native: &Path,
        args: &[&str],
        straight_s: f64,
        reference: Option<&str>,
    ) -> Result<CriuRecord> {
        let first = self.attempt(label, native, args, straight_s, 0.5, reference)?;
        if first.note != crate::cr::FINISHED_EARLY {
            return Ok(first);
        }
        self.attempt(label, native, args, straight_s, 0.25, reference)
    }

    fn attempt(
        &self,
        label: &str,
        native: &Path,
        args: &[&str],
        straight_s: f64,
        fraction: f64,
        reference: Option<&str>,
    ) -> Result<CriuRecord> {
        let after_s = (straight_s * fraction).max(0.001);
        let mut rec = CriuRecord {
            label: label.to_owned(),
            args: args.join(" "),
            straight_s,
            after_s,
            ..Default::default()
        };
        let stem = label.replace(' ', "_");
        let images = self.dir.join(format!("{stem}.img"));
        let work = self.dir.join(format!("{stem}.work"));
        fresh_dir(&images)?;
        fresh_dir(&work)?;
        // Output goes to files: CRIU restores a file descriptor by path and
        // offset, but not a pipe whose other end is outside the dumped tree.
        let out_path = work.join("stdout.txt");
        let stdout = create(&out_path)?;
        let stderr = create(&work.join("stderr.txt"))?;
        let os_args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let mut child = Command::new(native)
            .args(&os_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own process group, so that no signal meant for the
            // harness's group reaches it; `--shell-job` lets CRIU dump a
            // task whose session leader is outside the tree.
            .process_group(0)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                command: command_line(native, &os_args),
                source,
            })?;
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(after_s));
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() {
            rec.note = crate::cr::FINISHED_EARLY.to_owned();
            let _ = std::fs::remove_dir_all(&images);
            return Ok(rec);
        }
        rec.after_s = started.elapsed().as_secs_f64();
        let pid = child.id().to_string();
        let dump_args: Vec<OsString> = [
            "dump",
            "-t",
            &pid,
            "-D",
            &images.to_string_lossy(),
            "-W",
            &work.to_string_lossy(),
            "-o",
            "dump.log",
            "--shell-job",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let t0 = Instant::now();
        let dumped = run_captured(self.criu, &dump_args, self.limit);
        let dump_s = t0.elapsed().as_secs_f64();
        // After a successful dump CRIU has killed the task; otherwise it
        // still runs and is stopped here. Either way it is reaped, so its
        // pid is free for the restore.
        if !matches!(&dumped, Ok((o, false)) if o.status.success()) {
            // A program that ended on its own while CRIU was seizing it
            // finished before the dump rather than making it fail.
            if let Ok(Some(status)) = child.try_wait()
                && status.success()
            {
                rec.note = crate::cr::FINISHED_EARLY.to_owned();
                let _ = std::fs::remove_dir_all(&images);
                return Ok(rec);
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(work.join("dump.log")).unwrap_or_default();
            rec.note = match dumped {
                Ok((_, true)) => "criu dump timed out".to_owned(),
                Ok(_) => format!("criu dump failed: {}", last_error_line(&log)),
                Err(e) => format!("cannot run criu dump: {e}"),
            };
            let _ = std::fs::remove_dir_all(&images);
            return Ok(rec);
        }
        let _ = child.wait();
        rec.dump_s = Some(dump_s);
        rec.stats.read_dump(&work.join("stats-dump"));
        rec.image_bytes = Some(disk_usage(&images));

        let report_file = work.join("restore-report.txt");
        let pidfile = work.join("restore.pid");
        let hargs: Vec<OsString> = vec![
            "criu-restore".into(),
            "--criu".into(),
            self.criu.as_os_str().to_owned(),
            "--images".into(),
            images.clone().into_os_string(),
            "--work".into(),
            work.clone().into_os_string(),
            "--pidfile".into(),
            pidfile.into_os_string(),
            "--report".into(),
            report_file.clone().into_os_string(),
            "--timeout-secs".into(),
            self.limit.as_secs().max(1).to_string().into(),
        ];
        let helper = run_captured(
            self.wrapper,
            &hargs,
            self.limit * 2 + Duration::from_secs(30),
        );
        let report = std::fs::read_to_string(&report_file)
            .ok()
            .and_then(|t| RestoreReport::parse(&t));
        let _ = std::fs::remove_dir_all(&images);
        let Some(report) = report else {
            rec.note = match helper {
                Ok((o, _)) => format!(
                    "restore helper failed: {}",
                    last_error_line(&String::from_utf8_lossy(&o.stderr))
                ),
                Err(e) => format!("cannot run the restore helper: {e}"),
            };
            return Ok(rec);
        };
        if !report.restored {
            let log = std::fs::read_to_string(work.join("restore.log")).unwrap_or_default();
            rec.note = format!("criu restore failed: {}", last_error_line(&log));
            return Ok(rec);
        }
        rec.restore_first_s = Some(report.first_s);
        rec.restore_end_s = report.end_s;
        rec.restore_rss_kib = Some(report.max_rss_kib);
        rec.stats.read_restore(&work.join("stats-restore"));
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let checksum = workloads::parse_checksum(&output);
        let exit_ok = report.exit_code.is_none_or(|c| c == 0);
        rec.checksum_ok =
            !report.timed_out && exit_ok && checksum.is_some() && checksum.as_deref() == reference;
        if !rec.checksum_ok {
            rec.note = if report.timed_out {
                format!(
                    "restored program timed out after {} s",
                    self.limit.as_secs()
                )
            } else if !exit_ok {
                format!("restored program exited {:?}", report.exit_code)
            } else {
                format!("checksum {checksum:?} vs native {reference:?}")
            };
        }
        Ok(rec)
    }
}

/// CRIU's own timing of a dump and a restore, from the `stats-dump` and
/// `stats-restore` images it writes into its work directory. The frozen
/// time is how long the task was stopped by the dump (freezing, collecting
/// and writing its state; without CRIU's start-up and the kill), the
/// closest CRIU figure to MVVM's trigger-to-snapshot time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CriuStats {
    /// `frozen_time`: the task was frozen for this long, ms.
    pub frozen_ms: Option<f64>,
    /// `memdump_time` + `memwrite_time`: collecting and writing memory, ms.
    pub memory_ms: Option<f64>,
    /// `pages_written`: pages in the images.
    pub pages_written: Option<u64>,
    /// `restore_time`: CRIU's restore phase, ms.
    pub restore_ms: Option<f64>,
}

/// Reads one protobuf varint at `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The varint fields of a flat protobuf message, by field number (other
/// wire types are skipped; `None` when the message is malformed).
fn varint_fields(msg: &[u8]) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < msg.len() {
        let key = varint(msg, &mut pos)?;
        match key & 7 {
            0 => out.push((key >> 3, varint(msg, &mut pos)?)),
            1 => pos = pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(msg, &mut pos)?).ok()?;
                pos = pos.checked_add(len)?;
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
    }
    (pos == msg.len()).then_some(out)
}

/// The `stats_entry` sub-message `field` (1: dump, 2: restore) of a CRIU
/// stats image: two magic words, a little-endian u32 length, the entry.
pub fn stats_submessage(image: &[u8], field: u64) -> Option<Vec<(u64, u64)>> {
    let len = u32::from_le_bytes(image.get(8..12)?.try_into().ok()?);
    let entry = image.get(12..12 + usize::try_from(len).ok()?)?;
    let mut pos = 0;
    while pos < entry.len() {
        let key = varint(entry, &mut pos)?;
        if key & 7 != 2 {
            return None;
        }
        let n = usize::try_from(varint(entry, &mut pos)?).ok()?;
        let body = entry.get(pos..pos.checked_add(n)?)?;
        if key >> 3 == field {
            return varint_fields(body);
        }
        pos += n;
    }
    None
}

impl CriuStats {
    fn field(fields: &[(u64, u64)], n: u64) -> Option<u64> {
        fields.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    /// Takes the dump figures from a `stats-dump` image (missing or
    /// malformed: left empty).
    pub fn read_dump(&mut self, path: &Path) {
        let Some(f) = std::fs::read(path)
            .ok()
            .and_then(|b| stats_submessage(&b, 1))
        else {
            return;
        };
        self.frozen_ms = Self::field(&f, 2).map(|v| v as f64 / 1000.0);
        self.memory_ms = Self::field(&f, 3)
            .zip(Self::field(&f, 4))
            .map(|(a, b)| a.saturating_add(b) as f64 / 1000.0);
        self.pages_written = Self::field(&f, 7);
    }

    /// Takes the restore figure from a `stats-restore` image.
    pub fn read_restore(&mut self, path: &Path) {
        let Some(f) = std::fs::read(path)
            .ok()
            .and_then(|b| stats_submessage(&b, 2))
        else {
            return;
        };
        self.restore_ms = Self::field(&f, 4).map(|v| v as f64 / 1000.0);
    }
}

/// What the `criu-restore` helper reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    /// Whether `criu restore` succeeded.
    pub restored: bool,
    /// Wall time of `criu restore --restore-detached`, seconds.
    pub first_s: f64,
    /// From the start of the restore to the task's exit, seconds (`None`
    /// when the restore failed).
    pub end_s: Option<f64>,
    /// The task's exit code (`None`: killed by a signal, or not known
    /// because the task could not be waited for).
    pub exit_code: Option<i32>,
    /// Whether the task was killed at the time limit.
    pub timed_out: bool,
    /// Peak RSS of the helper's children (criu, the restored task), KiB.
    pub max_rss_kib: u64,
}

impl RestoreReport {
    /// One line, `key=value` separated by spaces.
    pub fn to_line(&self) -> String {
        format!(
            "restored={} first_s={} end_s={} exit={} timed_out={} maxrss_kib={}\n",
            self.restored,
            self.first_s,
            self.end_s.map_or("none".to_owned(), |v| v.to_string()),
            self.exit_code.map_or("none".to_owned(), |v| v.to_string()),
            self.timed_out,
            self.max_rss_kib
        )
    }

    /// Parses [`RestoreReport::to_line`]'s output.
    pub fn parse(text: &str) -> Option<RestoreReport> {
        let mut r = RestoreReport {
            restored: false,
            first_s: f64::NAN,
            end_s: None,
            exit_code: None,
            timed_out: false,
            max_rss_kib: 0,
        };
        let mut seen = 0;
        for field in text.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            let opt =
                |v: &str| -> Option<Option<String>> { Some((v != "none").then(|| v.to_owned())) };
            match k {
                "restored" => r.restored = v.parse().ok()?,
                "first_s" => r.first_s = v.parse().ok()?,
                "end_s" => {
                    r.end_s = match opt(v)? {
                        Some(s) => Some(s.parse().ok()?),
                        None => None,
                    }
                }
                "exit" => {
                    r.exit_code = match opt(v)? {
                        Some(s) => Some(s.parse().ok()?),
                        None => None,
                    }
                }
                "timed_out" => r.timed_out = v.parse().ok()?,
                "maxrss_kib" => r.max_rss_kib = v.parse().ok()?,
                _ => return None,
            }
            seen += 1;
        }
        (seen == 6).then_some(r)
    }
}

/// The helper side (`mvvm-bench criu-restore`): restores the images
/// detached, waits for the restored task to end, and returns the figures.
/// Makes the calling process a child subreaper, so call it only from the
/// helper process.
pub fn restore_here(
    criu: &Path,
    images: &Path,
    work: &Path,
    pidfile: &Path,
    limit: Duration,
) -> Result<RestoreReport> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| BenchError::Spawn {
        command: "prctl(PR_SET_CHILD_SUBREAPER)".to_owned(),
        source: std::io::Error::from(e),
    })?;
    let _ = std::fs::remove_file(pidfile);
    let args: Vec<OsString> = vec![
        "restore".into(),
        "-D".into(),
        images.as_os_str().to_owned(),
        "-W".into(),
        work.as_os_str().to_owned(),
        "-o".into(),
        "restore.log".into(),
        "--shell-job".into(),
        "--restore-detached".into(),
        "--pidfile".into(),
        pidfile.as_os_str().to_owned(),
    ];
    let started = Instant::now();
    let (out, timed_out) = run_captured(criu, &args, limit)?;
    let first_s = started.elapsed().as_secs_f64();
    let pid = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    let (Some(pid), true, false) = (pid, out.status.success(), timed_out) else {
        return Ok(RestoreReport {
            restored: false,
            first_s,
            end_s: None,
            exit_code: None,
            timed_out,
            max_rss_kib: children_max_rss(),
        });
    };
    let (exit_code, timed_out) = wait_task(Pid::from_raw(pid), started, limit);
    let end_s = started.elapsed().as_secs_f64();
    Ok(RestoreReport {
        restored: true,
        first_s,
        end_s: Some(end_s),
        exit_code,
        timed_out,
        max_rss_kib: children_max_rss(),
    })
}

fn children_max_rss() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

/// Waits for the restored task (re-parented to this subreaper), killing it
/// at `limit` after `started`. Returns its exit code and whether it was
/// killed. If it cannot be waited for (not our child after all), polls
/// for its end instead, without an exit code.
fn wait_task(pid: Pid, started: Instant, limit: Duration) -> (Option<i32>, bool) {
    let remaining = limit.saturating_sub(started.elapsed());
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(remaining) {
            // It may have ended meanwhile; the error is irrelevant.
            let _ = kill(pid, Signal::SIGKILL);
            return true;
        }
        false
    });
    let code = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => break Some(c),
            Ok(WaitStatus::Signaled(..)) => break None,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => {
                // Not our child: poll until it is gone (a zombie of
                // another parent counts as gone).
                while kill(pid, None).is_ok() && !is_zombie(pid) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                break None;
            }
        }
    };
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    (code, timed_out)
}

fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_and_compared() {
        assert_eq!(
            parse_version("Version: 4.1.1\nGitID: v4.1.1\n").as_deref(),
            Some("4.1.1")
        );
        assert_eq!(
            parse_version("Version: 3.17.1\n").as_deref(),
            Some("3.17.1")
        );
        assert_eq!(parse_version("criu: command not found"), None);
        assert!(recent_enough("4.1.1") && recent_enough("10.0"));
        assert!(!recent_enough("3.17.1") && !recent_enough(""));
    }

    #[test]
    fn restore_reports_round_trip() {
        let r = RestoreReport {
            restored: true,
            first_s: 0.125,
            end_s: Some(1.5),
            exit_code: Some(0),
            timed_out: false,
            max_rss_kib: 2048,
        };
        assert_eq!(RestoreReport::parse(&r.to_line()), Some(r.clone()));
        let failed = RestoreReport {
            restored: false,
            end_s: None,
            exit_code: None,
            ..r
        };
        assert_eq!(RestoreReport::parse(&failed.to_line()), Some(failed));
        assert_eq!(RestoreReport::parse("restored=true"), None);
        assert_eq!(RestoreReport::parse("garbage"), None);
    }

    #[test]
    fn stats_images_are_decoded() {
        // A stats-dump and a stats-restore written by CRIU 4.1.1.
        let dump: &[u8] = &[
            0x40, 0x59, 0x10, 0x55, 0x06, 0x33, 0x09, 0x57, 0x21, 0, 0, 0, 0x0a, 0x1f, 0x08, 0x6e,
            0x10, 0xe5, 0xb9, 0x01, 0x18, 0xe7, 0x02, 0x20, 0x5c, 0x28, 0x2c, 0x30, 0x00, 0x38,
            0x1d, 0x40, 0x00, 0x48, 0x00, 0x50, 0x08, 0x58, 0x08, 0x60, 0x00, 0x68, 0x00, 0x70,
            0x00,
        ];
        let restore: &[u8] = &[
            0x40, 0x59, 0x10, 0x55, 0x06, 0x33, 0x09, 0x57, 0x0d, 0, 0, 0, 0x12, 0x0b, 0x08, 0x00,
            0x10, 0x00, 0x18, 0x00, 0x20, 0xa5, 0x18, 0x28, 0x1d,
        ];
        let dir = std::env::temp_dir().join(format!("mvvm-bench-criu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("d"), dump).unwrap();
        std::fs::write(dir.join("r"), restore).unwrap();
        let mut s = CriuStats::default();
        s.read_dump(&dir.join("d"));
        s.read_restore(&dir.join("r"));
        assert_eq!(s.frozen_ms, Some(23.781));
        assert_eq!(s.memory_ms, Some(0.451));
        assert_eq!(s.pages_written, Some(29));
        assert_eq!(s.restore_ms, Some(3.109));
        // Truncated or absent images leave the figures empty.
        std::fs::write(dir.join("t"), &dump[..20]).unwrap();
        let mut t = CriuStats::default();
        t.read_dump(&dir.join("t"));
        t.read_restore(&dir.join("missing"));
        assert_eq!(t, CriuStats::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_error_line_of_a_log_is_found() {
        let log = "(00.001) Warn  something\n(00.002) Error (criu/cr-dump.c:1): Can't dump | x\n(00.003) Error (criu/cr-dump.c:2): Dumping FAILED.\n";
        assert_eq!(
            last_error_line(log),
            "(00.002) Error (criu/cr-dump.c:1): Can't dump / x"
        );
        assert_eq!(last_error_line("only\n\n"), "only");
        assert_eq!(last_error_line(""), "no message");
    }
}
