//! Shared harness of the `checkpoint_*` tests: compiles the programs of
//! `test/ckpt` with `mvvm_aot` under each checkpoint policy (once per test
//! process), runs `mvvm-checkpoint` and `mvvm-restore` in fresh directories,
//! and compares what an interrupted-then-resumed run produced (stdout, exit
//! code, files) with an uninterrupted one.
//!
//! Rebuild the `.wasm` files with `test/ckpt/build.sh` after editing a
//! source.
#![allow(dead_code)] // each test file uses its own part of the harness

pub mod netns_script;
pub mod require;

use anyhow::{Context, Result, bail, ensure};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest a single tool run may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Exit code of a run that wrote a checkpoint (see `exit.rs`).
pub const CHECKPOINTED: i32 = 75;
/// Exit code of MVVM failing or refusing.
pub const FAILURE: i32 = 125;

/// A checkpoint policy (`mvvm-aot` flag in each variant's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `--enable-checkpoint`
    Function,
    /// `--enable-loop-checkpoint`
    Loop,
    /// `--enable-counter-loop-checkpoint --threshold-bits=N`
    CounterLoop(u8),
    /// `--enable-loop-dirty-checkpoint`
    LoopDirty,
}

/// Every policy, with the counter-loop one polling every 16 iterations
/// (small enough that short programs still poll many times).
pub const POLICIES: [Policy; 4] = [
    Policy::Function,
    Policy::Loop,
    Policy::CounterLoop(4),
    Policy::LoopDirty,
];

impl Policy {
    /// The compiler's policy.
    pub fn abi(self) -> mvvm_aot::Policy {
        match self {
            Policy::Function => mvvm_aot::Policy::FunctionEntry,
            Policy::Loop => mvvm_aot::Policy::Loop,
            Policy::CounterLoop(threshold_bits) => mvvm_aot::Policy::CounterLoop { threshold_bits },
            Policy::LoopDirty => mvvm_aot::Policy::LoopDirty,
        }
    }

    /// Short label for file names and messages.
    pub fn label(self) -> String {
        match self {
            Policy::Function => "function".into(),
            Policy::Loop => "loop".into(),
            Policy::CounterLoop(b) => format!("counter{b}"),
            Policy::LoopDirty => "loopdirty".into(),
        }
    }
}

/// `test/ckpt`.
pub fn ckpt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/ckpt")
}

/// A fresh empty directory under the target dir (kept for post-mortems
/// when a test fails; removed when it passes).
///
/// Every path has the same length: a guest that prints or formats its
/// directory's path (`files.c`) then runs the same loops, so probe counts
/// of runs in different directories agree. The label goes in a file
/// `label` inside, for post-mortems.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "ckpt-{:010}-{:06}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("label"), label).unwrap();
        Scratch(p.canonicalize().unwrap())
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A fresh subdirectory (the guest's preopened directory).
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

type AotKey = (String, Policy, u8, bool);
type AotCache = Mutex<HashMap<AotKey, Arc<OnceLock<Result<PathBuf, String>>>>>;

/// `test/ckpt/NAME.wasm` (or an arbitrary `.wasm`/`.wat` path given as
/// NAME) compiled under `policy` at `opt_level`, once per test process (in
/// process with `mvvm_aot::compile`, which is what `mvvm-aot` runs).
pub fn aot(name: &str, policy: Policy, opt_level: u8) -> Result<PathBuf> {
    aot_with(name, policy, opt_level, false)
}

/// [`aot`], with the resume clones left out of the object and compiled
/// by the runtime when a rewind needs them (`mvvm-aot
/// --resume-clones=on-demand`) when `clones_on_demand`.
pub fn aot_with(
    name: &str,
    policy: Policy,
    opt_level: u8,
    clones_on_demand: bool,
) -> Result<PathBuf> {
    static CACHE: OnceLock<AotCache> = OnceLock::new();
    let cell = {
        let mut map = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry((name.to_owned(), policy, opt_level, clones_on_demand))
            .or_default()
            .clone()
    };
    cell.get_or_init(|| {
        compile(name, policy, opt_level, clones_on_demand).map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

fn compile(name: &str, policy: Policy, opt_level: u8, clones_on_demand: bool) -> Result<PathBuf> {
    let src = if name.ends_with(".wasm") || name.ends_with(".wat") {
        PathBuf::from(name)
    } else {
        ckpt_dir().join(format!("{name}.wasm"))
    };
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ckpt-aot");
    std::fs::create_dir_all(&out_dir)?;
    let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
    let out = out_dir.join(format!(
        "{stem}-{}-O{opt_level}{}-{}.aot",
        policy.label(),
        if clones_on_demand { "-od" } else { "" },
        std::process::id()
    ));
    let input = std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
    let opts = mvvm_aot::CompileOptions {
        opt_level,
        policy: policy.abi(),
        ..Default::default()
    };
    let choices = mvvm_aot::ObjectOptions {
        clones_on_demand,
        ..Default::default()
    };
    let bytes = mvvm_aot::compile_with(&input, &opts, choices)
        .with_context(|| format!("cannot compile {} ({})", src.display(), policy.label()))?;
    std::fs::write(&out, bytes)?;
    Ok(out)
}

/// What a tool run gave.
#[derive(Debug, Clone)]
pub struct Ran {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub status: ExitStatus,
    /// The `--json` summary line, if one was asked for and written.
    pub json: Option<String>,
    pub elapsed: Duration,
}

impl Ran {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// A numeric field of the JSON summary.
    pub fn json_u64(&self, key: &str) -> Option<u64> {
        json_field(self.json.as_deref()?, key)?.parse().ok()
    }

    /// A string field of the JSON summary (no escapes expected).
    pub fn json_str(&self, key: &str) -> Option<String> {
        let v = json_field(self.json.as_deref()?, key)?;
        Some(v.strip_prefix('"')?.strip_suffix('"')?.to_owned())
    }

    /// Fails with the stderr when the exit code is not `want`.
    pub fn expect_code(&self, want: i32, what: &str) -> Result<()> {
        if self.code() != Some(want) {
            bail!(
                "{what}: exit {:?}, wanted {want}; stderr:\n{}",
                self.status,
                self.stderr
            );
        }
        Ok(())
    }
}

/// The raw text of `"key":VALUE` in a one-line JSON object of scalars.
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = json.find(&pat)? + pat.len();
    let rest = &json[start..];
    let end = if let Some(body) = rest.strip_prefix('"') {
        body.find('"')? + 2
    } else {
        rest.find([',', '}'])?
    };
    Some(&rest[..end])
}

/// A tool invocation being built.
pub struct Tool {
    cmd: Command,
    json: PathBuf,
    label: String,
    /// Bytes written to the guest's stdin, which is then closed.
    stdin: Option<Vec<u8>>,
}

static JSON_N: AtomicU32 = AtomicU32::new(0);

impl Tool {
    fn new(bin: &str, label: &str) -> Tool {
        let mut cmd = Command::new(bin);
        let json = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "ckpt-json-{}-{}.json",
            std::process::id(),
            JSON_N.fetch_add(1, Ordering::Relaxed)
        ));
        cmd.arg("--json").arg(&json);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("MVVM_LOG");
        Tool {
            cmd,
            json,
            label: label.to_owned(),
            stdin: None,
        }
    }

    /// `mvvm-checkpoint -t AOT`.
    pub fn checkpoint(aot: &Path) -> Tool {
        let mut t = Tool::new(env!("CARGO_BIN_EXE_mvvm-checkpoint"), "mvvm-checkpoint");
        t.cmd.arg("-t").arg(aot);
        t
    }

    /// `mvvm-restore -t AOT`.
    pub fn restore(aot: &Path) -> Tool {
        let mut t = Tool::new(env!("CARGO_BIN_EXE_mvvm-restore"), "mvvm-restore");
        t.cmd.arg("-t").arg(aot);
        t
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, a: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(a);
        self
    }

    /// `--snapshot PATH`.
    pub fn snapshot(self, p: &Path) -> Tool {
        self.arg("--snapshot").arg(p)
    }

    /// `-c N`.
    pub fn count(self, n: u64) -> Tool {
        self.arg("-c").arg(n.to_string())
    }

    /// Sets an environment variable of the tool (not the guest's).
    pub fn env(mut self, k: &str, v: &str) -> Tool {
        self.cmd.env(k, v);
        self
    }

    /// Gives the guest `data` on stdin (then end of file).
    pub fn stdin_bytes(mut self, data: &[u8]) -> Tool {
        self.cmd.stdin(Stdio::piped());
        self.stdin = Some(data.to_vec());
        self
    }

    /// Gives the guest a stdin pipe that stays open and empty until
    /// [`Running::wait`] (a read blocks).
    pub fn stdin_open(mut self) -> Tool {
        self.cmd.stdin(Stdio::piped());
        self
    }

    pub fn current_dir(mut self, d: &Path) -> Tool {
        self.cmd.current_dir(d);
        self
    }

    /// Starts the tool (stdout and stderr piped).
    pub fn spawn(mut self) -> Result<Running> {
        let mut child = self
            .cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.label))?;
        if let Some(data) = self.stdin {
            let mut pipe = child.stdin.take().context("stdin not piped")?;
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            });
        }
        Ok(Running {
            child,
            json: self.json,
            start: Instant::now(),
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
            stdout_rx: None,
            stderr_rx: None,
        })
    }

    /// Runs the tool to its end.
    pub fn run(self) -> Result<Ran> {
        self.spawn()?.wait()
    }
}

/// A tool that is running.
pub struct Running {
    pub child: Child,
    json: PathBuf,
    start: Instant,
    /// Stdout read so far by [`Running::wait_for_stdout`].
    stdout_seen: Vec<u8>,
    /// Stderr read so far by [`Running::wait_for_stderr`].
    stderr_seen: Vec<u8>,
    /// Chunks of stdout from its reader thread, once one was started.
    stdout_rx: Option<Receiver<Vec<u8>>>,
    /// Chunks of stderr from its reader thread, once one was started.
    stderr_rx: Option<Receiver<Vec<u8>>>,
}

/// Moves a pipe's reads to a thread that sends each chunk on a channel
/// (closed at end of file), so a waiter can give up after a deadline
/// instead of blocking in `read` for a line that never comes.
fn pipe_reader(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Which output stream of the tool.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Running {
    /// Process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout until it contains `needle` (the guest must flush it);
    /// fails (and kills the tool) when it has not come within [`TIMEOUT`]
    /// of the start.
    pub fn wait_for_stdout(&mut self, needle: &str) -> Result<()> {
        self.wait_for(Stream::Stdout, needle)
    }

    /// Reads stderr until it contains `needle`, with the same deadline.
    pub fn wait_for_stderr(&mut self, needle: &str) -> Result<()> {
        self.wait_for(Stream::Stderr, needle)
    }

    /// The reader thread of `stream`, started at its first use.
    fn receiver(&mut self, stream: Stream) -> Result<&Receiver<Vec<u8>>> {
        let (rx, name) = match stream {
            Stream::Stdout => (&mut self.stdout_rx, "stdout"),
            Stream::Stderr => (&mut self.stderr_rx, "stderr"),
        };
        if rx.is_none() {
            let r = match stream {
                Stream::Stdout => pipe_reader(
                    self.child
                        .stdout
                        .take()
                        .with_context(|| format!("{name} not piped"))?,
                ),
                Stream::Stderr => pipe_reader(
                    self.child
                        .stderr
                        .take()
                        .with_context(|| format!("{name} not piped"))?,
                ),
            };
            *rx = Some(r);
        }
        Ok(rx.as_ref().expect("set above"))
    }

    /// What was read of `stream` so far.
    fn seen(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => &mut self.stdout_seen,
            Stream::Stderr => &mut self.stderr_seen,
        }
    }

    fn wait_for(&mut self, stream: Stream, needle: &str) -> Result<()> {
        let name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        while !String::from_utf8_lossy(self.seen(stream)).contains(needle) {
            let left = TIMEOUT.saturating_sub(self.start.elapsed());
            match self.receiver(stream)?.recv_timeout(left) {
                Ok(chunk) => self.seen(stream).extend_from_slice(&chunk),
                Err(e) => {
                    let seen = String::from_utf8_lossy(self.seen(stream)).into_owned();
                    if matches!(e, RecvTimeoutError::Timeout) {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        bail!(
                            "timed out after {TIMEOUT:?} waiting for `{needle}` on {name} (killed): {seen:?}"
                        );
                    }
                    bail!("{name} closed before `{needle}` appeared: {seen:?}");
                }
            }
        }
        Ok(())
    }

    /// Sends a signal by name (`USR1`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) -> Result<()> {
        let st = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .context("cannot run kill")?;
        ensure!(st.success(), "kill -{name} failed");
        Ok(())
    }

    /// Whether it has ended (without waiting).
    pub fn has_ended(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_some())
    }

    /// Waits for the end (killing the process after [`TIMEOUT`]).
    pub fn wait(mut self) -> Result<Ran> {
        // An open stdin pipe ends here (end of file for a reading guest).
        drop(self.child.stdin.take());
        // Every pipe gets a reader thread, so a chatty guest never blocks.
        // (A stream that is not piped has no reader: nothing to collect.)
        let _ = self.receiver(Stream::Stdout);
        let _ = self.receiver(Stream::Stderr);
        let status = loop {
            if let Some(st) = self.child.try_wait()? {
                break st;
            }
            if self.start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("timed out after {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let elapsed = self.start.elapsed();
        // The pipes reach end of file once the tool (and any child that
        // inherited them) has gone; a grandchild keeping one open must
        // not hang the test either.
        let drain = |rx: Option<&Receiver<Vec<u8>>>, into: &mut Vec<u8>| {
            let Some(rx) = rx else { return };
            let deadline = Instant::now() + Duration::from_secs(10);
            while let Ok(chunk) =
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                into.extend_from_slice(&chunk);
            }
        };
        let mut stdout = std::mem::take(&mut self.stdout_seen);
        let mut stderr = std::mem::take(&mut self.stderr_seen);
        drain(self.stdout_rx.as_ref(), &mut stdout);
        drain(self.stderr_rx.as_ref(), &mut stderr);
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let json = std::fs::read_to_string(&self.json)
            .ok()
            .map(|s| s.trim().to_owned());
        let _ = std::fs::remove_file(&self.json);
        Ok(Ran {
            stdout,
            stderr,
            status,
            json,
            elapsed,
        })
    }
}

/// Every file under `root` except `skip` names at the top: relative path →
/// content (directories as "dir", symbolic links as their target).
pub fn tree(root: &Path, skip: &[&str]) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(
        root: &Path,
        dir: &Path,
        skip: &[&str],
        out: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            if dir == root && skip.contains(&rel.as_str()) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_symlink() {
                let to = std::fs::read_link(&p)?;
                out.insert(rel, format!("symlink -> {}", to.display()).into_bytes());
            } else if ft.is_dir() {
                out.insert(rel, b"dir".to_vec());
                walk(root, &p, skip, out)?;
            } else {
                out.insert(rel, std::fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out)?;
    Ok(out)
}

/// How a program is run: its guest arguments, and whether it gets a fresh
/// preopened directory as its first argument.
#[derive(Debug, Clone, Default)]
pub struct Guest {
    pub args: Vec<String>,
    /// Environment variables, `K=V`.
    pub env: Vec<String>,
    pub with_dir: bool,
    /// A known limitation: a restore that refuses (exit 125) with a message
    /// containing this text is counted apart instead of failing.
    pub known_refusal: Option<&'static str>,
}

impl Guest {
    /// The `mvvm-checkpoint` flags that give the guest its world, with
    /// `dir` as its directory.
    pub fn flags(&self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut args = Vec::new();
        if self.with_dir {
            let d = dir.to_str().expect("temp paths are UTF-8").to_owned();
            out.push("-d".into());
            out.push(d.clone());
            args.push(d);
        }
        args.extend(self.args.iter().cloned());
        if !args.is_empty() {
            out.push("-a".into());
            out.push(args.join(","));
        }
        for kv in &self.env {
            out.push("-e".into());
            out.push(kv.clone());
        }
        out
    }
}

impl Guest {
    /// The `mvvm-restore` flags that grant what [`Guest::flags`] gave:
    /// a restore gets its capabilities from its command, never from the
    /// snapshot.
    pub fn grants(&self, dir: &Path) -> Vec<String> {
        if self.with_dir {
            let d = dir.to_str().expect("temp paths are UTF-8").to_owned();
            vec!["-d".into(), d]
        } else {
            Vec::new()
        }
    }
}

/// The result of an uninterrupted run: what every interrupted run must
/// add up to.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub stdout: Vec<u8>,
    pub code: i32,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Probes executed (polls for counter-loop).
    pub probes: u64,
}

/// Runs `aot` uninterrupted and records what it does.
pub fn baseline(aot: &Path, guest: &Guest) -> Result<Baseline> {
    let s = Scratch::new("base");
    let dir = s.subdir("work");
    let r = Tool::checkpoint(aot)
        .arg("--count-probes")
        .args(guest.flags(&dir))
        .current_dir(&s.0)
        .run()?;
    let code = r.code().with_context(|| format!("killed: {}", r.stderr))?;
    ensure!(
        r.json_str("status").as_deref() == Some("exited"),
        "uninterrupted run did not exit normally: {:?}; stderr:\n{}",
        r.json,
        r.stderr
    );
    let probes = r
        .json_u64("probes")
        .with_context(|| format!("no probe count in {:?}", r.json))?;
    Ok(Baseline {
        stdout: r.stdout,
        code,
        files: tree(&dir, &[])?,
        probes,
    })
}

/// `count` checkpoint positions spread over `1..=probes`: always the
/// first, second, last and second-to-last probe, the rest evenly between.
pub fn spread(probes: u64, count: usize) -> Vec<u64> {
    let mut v = vec![1, 2, probes.saturating_sub(1), probes];
    let inner = count.saturating_sub(4) as u64;
    for i in 1..=inner {
        v.push(probes * i / (inner + 1));
    }
    v.retain(|&c| c >= 1 && c <= probes);
    v.sort_unstable();
    v.dedup();
    v
}

/// Checkpoints `ckpt_aot` at probe `c`, restores with `restore_aot`, and
/// requires stdout, exit code and files to add up to `base`.
pub fn checkpoint_and_restore(
    ckpt_aot: &Path,
    restore_aot: &Path,
    guest: &Guest,
    base: &Baseline,
    c: u64,
    what: &str,
) -> Result<Restored> {
    let s = Scratch::new("cr");
    let dir = s.subdir("work");
    let snap = s.join("snap.bin");
    let a = Tool::checkpoint(ckpt_aot)
        .args(guest.flags(&dir))
        .count(c)
        .snapshot(&snap)
        .current_dir(&s.0)
        .run()?;
    a.expect_code(CHECKPOINTED, &format!("{what}: checkpoint at -c {c}"))?;
    ensure!(
        snap.is_file(),
        "{what}: -c {c}: exit 75 but no snapshot; stderr:\n{}",
        a.stderr
    );
    ensure!(
        a.json_str("status").as_deref() == Some("checkpointed"),
        "{what}: -c {c}: summary {:?}",
        a.json
    );
    let b = Tool::restore(restore_aot)
        .snapshot(&snap)
        .args(guest.grants(&dir))
        .current_dir(&s.0)
        .run()?;
    if let Some(known) = guest.known_refusal
        && b.code() == Some(FAILURE)
        && b.stderr.contains(known)
    {
        return Ok(Restored::KnownRefusal);
    }
    b.expect_code(base.code, &format!("{what}: restore after -c {c}"))?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "{what}: -c {c}: output differs\n--- checkpointed run:\n{}\n--- restored run:\n{}\n--- uninterrupted:\n{}\n--- restore stderr:\n{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&base.stdout),
        b.stderr
    );
    let files = tree(&dir, &[])?;
    ensure!(
        files == base.files,
        "{what}: -c {c}: files differ: {:?} vs {:?}",
        files.keys().collect::<Vec<_>>(),
        base.files.keys().collect::<Vec<_>>()
    );
    Ok(Restored::Same)
}

/// How a checkpoint and restore pair ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// Everything added up to the uninterrupted run.
    Same,
    /// Restore refused with the guest's `known_refusal` message.
    KnownRefusal,
}

/// For `program` under every policy: an uninterrupted baseline, then a
/// checkpoint and restore at `points` spread probe counts. Runs policies
/// one after another; failures are collected so one report shows them all.
pub fn everywhere(program: &str, guest: &Guest, points: usize) -> Result<()> {
    everywhere_under(program, guest, points, &POLICIES)
}

/// [`everywhere`] under the given policies only.
pub fn everywhere_under(
    program: &str,
    guest: &Guest,
    points: usize,
    policies: &[Policy],
) -> Result<()> {
    everywhere_with(program, guest, points, policies, false)
}

/// [`everywhere_under`], with objects whose resume clones are compiled on
/// demand when `clones_on_demand` (see [`aot_with`]).
pub fn everywhere_with(
    program: &str,
    guest: &Guest,
    points: usize,
    policies: &[Policy],
    clones_on_demand: bool,
) -> Result<()> {
    let mut failures = Vec::new();
    let mut known = Vec::new();
    let mut done = 0;
    for &policy in policies {
        let what = format!(
            "{program} [{}{}]",
            policy.label(),
            if clones_on_demand {
                ", clones on demand"
            } else {
                ""
            }
        );
        let aot = aot_with(program, policy, 3, clones_on_demand)?;
        let base = baseline(&aot, guest).with_context(|| what.clone())?;
        ensure!(base.probes > 0, "{what}: no probe executed");
        for c in spread(base.probes, points) {
            match checkpoint_and_restore(&aot, &aot, guest, &base, c, &what) {
                Ok(Restored::Same) => done += 1,
                Ok(Restored::KnownRefusal) => known.push(c),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        // One probe past the end: nothing is checkpointed.
        let s = Scratch::new("past");
        let dir = s.subdir("work");
        let r = Tool::checkpoint(&aot)
            .args(guest.flags(&dir))
            .count(base.probes + 1)
            .snapshot(&s.join("snap.bin"))
            .current_dir(&s.0)
            .run()?;
        if r.code() != Some(base.code) || r.stdout != base.stdout || s.join("snap.bin").exists() {
            failures.push(format!(
                "{what}: -c {} (past the last probe) should run to the end: {:?}\n{}",
                base.probes + 1,
                r.status,
                r.stderr
            ));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} checkpoint/restore pairs failed:\n{}",
            failures.len(),
            failures.len() + done,
            failures.join("\n\n")
        );
    }
    eprintln!("{program}: {done} checkpoint/restore pairs passed");
    if !known.is_empty() {
        eprintln!(
            "{program}: restore refused as known ({:?}) at -c {known:?}",
            guest.known_refusal.unwrap_or_default()
        );
    }
    Ok(())
}

/// Accepts one connection on `listener`, giving up after [`TIMEOUT`]: a
/// tool that fails before it connects must fail the test, not leave it
/// waiting in `accept` for ever. The accepted stream is blocking.
pub fn accept_within(listener: &std::net::TcpListener) -> Result<std::net::TcpStream> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ensure!(
                    start.elapsed() < TIMEOUT,
                    "no connection within {TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
