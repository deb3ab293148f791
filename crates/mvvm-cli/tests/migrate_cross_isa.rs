//! Live migration across instruction sets: a program checkpointed by the
//! x86-64 tools is sent over TCP (`-o/-s`) to an aarch64 `mvvm-restore -i/-e`
//! running under qemu-user, which resumes it from its own aarch64
//! compilation of the same wasm; and the other way round. The outputs of
//! the two parts must add up to an uninterrupted run.
//!
//! Programs: `memgrow` (checkpointed halfway), and the SIMD programs
//! `simd_auto` and `simd_intrin`, checkpointed where a local x86-64
//! checkpoint shows v128 values live in the most frames and, for
//! `simd_intrin`, where one sits on an operand stack (`v128_points`); and
//! the C++ exception program `cpp_exceptions` in both encodings (legacy
//! and exnref), checkpointed where a local x86-64 checkpoint holds caught
//! exceptions (`exception_points`).
//!
//! Needs an x86-64 host, `qemu-aarch64-static` (or `qemu-aarch64`) and the
//! aarch64 tools built from this tree (`scripts/aarch64/test.sh`, or
//! `source scripts/aarch64/env.sh && /usr/bin/cargo build --target
//! aarch64-unknown-linux-gnu -p mvvm-cli --bins`); they are looked for in
//! `$MVVM_AARCH64_BIN`, then `target/aarch64/aarch64-unknown-linux-gnu/
//! {debug,release}`. Skipped, with the reason printed, when any is missing
//! (see `checkpoint_support::require`); in CI a failure.

mod checkpoint_support;

use anyhow::{Context, Result, bail, ensure};
use checkpoint_support::{
    Baseline, CHECKPOINTED, Guest, Policy, Scratch, TIMEOUT, Tool, aot, baseline, ckpt_dir,
    require, spread,
};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The aarch64 tools and the emulator to run them, or why not.
struct Arm {
    qemu: PathBuf,
    bin: PathBuf,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn arm() -> Result<Arm, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("not an x86-64 host".into());
    }
    let qemu = find_on_path("qemu-aarch64-static")
        .or_else(|| find_on_path("qemu-aarch64"))
        .ok_or("no qemu-aarch64-static or qemu-aarch64 on PATH")?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs: Vec<PathBuf> = std::env::var_os("MVVM_AARCH64_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for profile in ["debug", "release"] {
        dirs.push(
            root.join("target/aarch64/aarch64-unknown-linux-gnu")
                .join(profile),
        );
    }
    for bin in dirs {
        if !bin.join("mvvm-restore").is_file() || !bin.join("mvvm-checkpoint").is_file() {
            continue;
        }
        let help = Command::new(&qemu)
            .arg(bin.join("mvvm-restore"))
            .arg("--help")
            .output()
            .map_err(|e| format!("cannot run qemu: {e}"))?;
        if String::from_utf8_lossy(&help.stdout).contains("--listen-port") {
            return Ok(Arm { qemu, bin });
        }
    }
    Err(
        "no aarch64 mvvm-restore/mvvm-checkpoint with the migration flags \
         (build them: scripts/aarch64/test.sh)"
            .into(),
    )
}

/// `test/ckpt/NAME.wasm` (or the `.wasm` at `src`) compiled for aarch64.
fn aarch64_aot(name: &str, src: Option<&Path>, dir: &Path) -> Result<PathBuf> {
    let path = src.map_or_else(
        || ckpt_dir().join(format!("{name}.wasm")),
        Path::to_path_buf,
    );
    let wasm = std::fs::read(path)?;
    let opts = mvvm_aot::CompileOptions {
        opt_level: 3,
        policy: mvvm_aot::Policy::Loop,
        target: mvvm_aot::TargetArch::Aarch64,
        portable: false,
    };
    let out = dir.join(format!("{name}-aarch64-{}.aot", std::process::id()));
    std::fs::write(&out, mvvm_aot::compile(&wasm, &opts)?)?;
    Ok(out)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `cmd` as a listening restore (stderr to `err`), once it says so.
fn start_listening(mut cmd: Command, err: &Path) -> Result<Child> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(err)?)
        .env_remove("MVVM_LOG")
        .spawn()
        .context("cannot start the restore")?;
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(err).unwrap_or_default();
        if text.contains("waiting for a snapshot") {
            return Ok(child);
        }
        if child.try_wait()?.is_some() || start.elapsed() > TIMEOUT {
            let _ = child.kill();
            bail!("the restore did not listen: {text}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the listening restore, killing it after the timeout.
fn finish(mut child: Child, err: &Path) -> Result<(Vec<u8>, i32, String)> {
    let mut out = Vec::new();
    let mut pipe = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || {
        let _ = pipe.read_to_end(&mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            bail!("the restore timed out");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap_or_default();
    let stderr = std::fs::read_to_string(err).unwrap_or_default();
    Ok((out, status.code().unwrap_or(-1), stderr))
}

fn run(mut cmd: Command) -> Result<Output> {
    Ok(cmd.stdin(Stdio::null()).env_remove("MVVM_LOG").output()?)
}

/// A program compiled under the loop policy for both ISAs, the guest
/// arguments it runs with, and its uninterrupted x86-64 run.
struct Program {
    name: &'static str,
    x86: PathBuf,
    a64: PathBuf,
    guest: Guest,
    base: Baseline,
    dir: PathBuf,
}

impl Program {
    /// `test/ckpt/NAME.wasm`, without arguments.
    fn new(name: &'static str) -> Result<Program> {
        Program::from(name, None, Guest::default())
    }

    /// `name` built from `src` (default `test/ckpt/NAME.wasm`), run as
    /// `guest` says.
    fn from(name: &'static str, src: Option<&Path>, guest: Guest) -> Result<Program> {
        let source = src.map_or_else(|| name.to_owned(), |p| p.to_string_lossy().into_owned());
        let x86 = aot(&source, Policy::Loop, 3)?;
        let base = baseline(&x86, &guest)?;
        let dir = x86.parent().context("aot dir")?.to_path_buf();
        let a64 = aarch64_aot(name, src, &dir)?;
        Ok(Program {
            name,
            x86,
            a64,
            guest,
            base,
            dir,
        })
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.a64);
    }
}

/// Checkpoints `p` at probe `c` on x86-64, resumes it on aarch64 over TCP,
/// then the same the other way round; both must add up to `p.base`.
fn both_ways(arm: &Arm, p: &Program, c: u64) -> Result<()> {
    let c = c.to_string();
    let what = format!("{} -c {c}", p.name);
    let ck = env!("CARGO_BIN_EXE_mvvm-checkpoint");
    let rs = env!("CARGO_BIN_EXE_mvvm-restore");

    // x86-64 → aarch64.
    let port = free_port()?.to_string();
    let err = p
        .dir
        .join(format!("x2a-{}-{c}-{}.err", p.name, std::process::id()));
    let mut r = Command::new(&arm.qemu);
    r.arg(arm.bin.join("mvvm-restore"))
        .arg("-t")
        .arg(&p.a64)
        .args(["-i", "127.0.0.1", "-e", &port]);
    let restore = start_listening(r, &err)?;
    let mut k = Command::new(ck);
    k.arg("-t").arg(&p.x86).args(p.guest.flags(&p.dir)).args([
        "-c",
        &c,
        "-o",
        "127.0.0.1",
        "-s",
        &port,
    ]);
    let a = run(k)?;
    ensure!(
        a.status.code() == Some(CHECKPOINTED),
        "{what}: x86-64 checkpoint: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    let (b_out, b_code, b_err) = finish(restore, &err)?;
    ensure!(
        b_code == p.base.code,
        "{what}: aarch64 restore exited {b_code}: {b_err}"
    );
    let mut out = a.stdout.clone();
    out.extend(b_out);
    ensure!(
        out == p.base.stdout,
        "{what}: x86-64 → aarch64: output differs:\n{}\nwant:\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&p.base.stdout)
    );

    // aarch64 → x86-64.
    let port = free_port()?.to_string();
    let err = p
        .dir
        .join(format!("a2x-{}-{c}-{}.err", p.name, std::process::id()));
    let mut r = Command::new(rs);
    r.arg("-t")
        .arg(&p.x86)
        .args(["-i", "127.0.0.1", "-e", &port]);
    let restore = start_listening(r, &err)?;
    let mut k = Command::new(&arm.qemu);
    k.arg(arm.bin.join("mvvm-checkpoint"))
        .arg("-t")
        .arg(&p.a64)
        .args(p.guest.flags(&p.dir))
        .args(["-c", &c, "-o", "127.0.0.1", "-s", &port]);
    let a = run(k)?;
    ensure!(
        a.status.code() == Some(CHECKPOINTED),
        "{what}: aarch64 checkpoint: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    let (b_out, b_code, b_err) = finish(restore, &err)?;
    ensure!(
        b_code == p.base.code,
        "{what}: x86-64 restore exited {b_code}: {b_err}"
    );
    let mut out = a.stdout.clone();
    out.extend(b_out);
    ensure!(
        out == p.base.stdout,
        "{what}: aarch64 → x86-64: output differs:\n{}\nwant:\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&p.base.stdout)
    );
    Ok(())
}

/// A program of four threads (`test/threads/jacobi-2d_mt`, whose main
/// thread computes too) migrates with all its threads, each at its own
/// stable point, both ways; at two probe counts of the main thread, each
/// checked first by a local checkpoint to stop the three other threads.
#[test]
fn four_threads_between_x86_64_and_aarch64() -> Result<()> {
    let test = "four_threads_between_x86_64_and_aarch64";
    let arm = match arm() {
        Ok(a) => a,
        Err(why) => {
            require::missing(test, &why);
            return Ok(());
        }
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/threads/jacobi-2d_mt.wasm");
    let guest = Guest {
        args: vec!["-s".into(), "200".into(), "-t".into(), "30".into()],
        env: vec!["OMP_NUM_THREADS=4".into()],
        ..Guest::default()
    };
    let p = Program::from("jacobi-2d_mt", Some(&src), guest)?;
    for c in [p.base.probes / 3, p.base.probes * 2 / 3] {
        let s = Scratch::new("threads-points");
        let snap = s.join("t.snap");
        let local = Tool::checkpoint(&p.x86)
            .args(p.guest.flags(&s.0))
            .count(c)
            .snapshot(&snap)
            .current_dir(&s.0)
            .run()?;
        local.expect_code(CHECKPOINTED, &format!("{test}: local -c {c}"))?;
        let threads = mvvm_snapshot::open_file(&snap)?.threads.len();
        ensure!(
            threads == 3,
            "{test}: -c {c} stopped {threads} other threads, not 3"
        );
        both_ways(&arm, &p, c)?;
    }
    Ok(())
}

/// Where the v128 values of a snapshot are: how many frames hold one (in
/// a local or on the operand stack) and how many sit on operand stacks.
#[derive(Debug, Clone, Copy, Default)]
struct V128Live {
    frames: usize,
    on_stack: usize,
}

fn v128_live(snapshot: &Path) -> Result<V128Live> {
    let s = mvvm_snapshot::open_file(snapshot)?;
    let is_v128 = |v: &mvvm_snapshot::WasmValue| matches!(v, mvvm_snapshot::WasmValue::V128(_));
    let mut live = V128Live::default();
    for f in &s.frames {
        let on_stack = f.stack.iter().filter(|v| is_v128(v)).count();
        if on_stack > 0 || f.locals.iter().any(is_v128) {
            live.frames += 1;
        }
        live.on_stack += on_stack;
    }
    Ok(live)
}

/// Probe counts where a local x86-64 checkpoint of `p` holds v128 values:
/// the one with the most frames holding a v128 and, if another, the first
/// with a v128 on an operand stack (required when `need_stack`). Fails
/// when no candidate has v128 values in at least `min_frames` frames: the
/// migration would then prove less than it claims.
fn v128_points(p: &Program, min_frames: usize, need_stack: bool) -> Result<Vec<u64>> {
    let mut best: Option<(u64, V128Live)> = None;
    let mut stack: Option<(u64, V128Live)> = None;
    for c in spread(p.base.probes, 48) {
        let s = Scratch::new("v128-points");
        let snap = s.join("snap.bin");
        let r = Tool::checkpoint(&p.x86)
            .count(c)
            .snapshot(&snap)
            .current_dir(&s.0)
            .run()?;
        r.expect_code(CHECKPOINTED, &format!("{} -c {c}", p.name))?;
        let live = v128_live(&snap)?;
        if best.is_none_or(|(_, b)| live.frames > b.frames) {
            best = Some((c, live));
        }
        if stack.is_none() && live.on_stack > 0 {
            stack = Some((c, live));
        }
    }
    let (c, live) = best.context("no probe")?;
    ensure!(
        live.frames >= min_frames,
        "{}: no checkpoint with v128 values in {min_frames} frames (best: -c {c}, {live:?})",
        p.name
    );
    ensure!(
        !need_stack || stack.is_some(),
        "{}: no checkpoint with a v128 on an operand stack",
        p.name
    );
    eprintln!("{}: v128 live at -c {c}: {live:?}", p.name);
    let mut points = vec![c];
    if let Some((s, l)) = stack {
        eprintln!("{}: v128 on an operand stack at -c {s}: {l:?}", p.name);
        if s != c {
            points.push(s);
        }
    }
    Ok(points)
}

#[test]
fn tcp_between_x86_64_and_aarch64() -> Result<()> {
    let arm = match arm() {
        Ok(a) => a,
        Err(why) => {
            require::missing("tcp_between_x86_64_and_aarch64", &why);
            return Ok(());
        }
    };
    let p = Program::new("memgrow")?;
    both_ways(&arm, &p, p.base.probes / 2)
}

/// v128 values live in frames (vector loops' accumulators, SIMD
/// intrinsics' values in locals and on operand stacks) cross the ISA
/// boundary both ways.
fn simd_between(test: &str, name: &'static str, min_frames: usize, need_stack: bool) -> Result<()> {
    let arm = match arm() {
        Ok(a) => a,
        Err(why) => {
            require::missing(test, &why);
            return Ok(());
        }
    };
    let p = Program::new(name)?;
    for c in v128_points(&p, min_frames, need_stack)? {
        both_ways(&arm, &p, c)?;
    }
    Ok(())
}

/// Vectorized loops: the v128 accumulators are in the innermost frame
/// (the kernel's loop); its callers hold none.
#[test]
fn simd_auto_between_x86_64_and_aarch64() -> Result<()> {
    simd_between(
        "simd_auto_between_x86_64_and_aarch64",
        "simd_auto",
        1,
        false,
    )
}

/// Intrinsics: v128 values in several frames (the recursion of `tree`)
/// and on operand stacks.
#[test]
fn simd_intrin_between_x86_64_and_aarch64() -> Result<()> {
    simd_between(
        "simd_intrin_between_x86_64_and_aarch64",
        "simd_intrin",
        4,
        true,
    )
}

/// Probe counts where a local x86-64 checkpoint of `p` holds exceptions
/// (caught by a handler that was running, or kept by an `exnref`): the
/// one with the most, then others spread over the run, `count` in all.
/// Fails when none does: the migration would then carry no exception.
fn exception_points(p: &Program, count: usize) -> Result<Vec<u64>> {
    let mut held = Vec::new();
    for c in spread(p.base.probes, 32) {
        let s = Scratch::new("exn-points");
        let snap = s.join("snap.bin");
        let r = Tool::checkpoint(&p.x86)
            .count(c)
            .snapshot(&snap)
            .current_dir(&s.0)
            .run()?;
        r.expect_code(CHECKPOINTED, &format!("{} -c {c}", p.name))?;
        let n = mvvm_snapshot::open_file(&snap)?.exceptions.len();
        if n > 0 {
            held.push((c, n));
        }
    }
    ensure!(
        !held.is_empty(),
        "{}: no checkpoint among 32 holds an exception",
        p.name
    );
    let most = *held
        .iter()
        .max_by_key(|&&(c, n)| (n, std::cmp::Reverse(c)))
        .context("none")?;
    let mut points = vec![most.0];
    let step = held.len().div_ceil(count.max(1)).max(1);
    points.extend(held.iter().step_by(step).map(|&(c, _)| c));
    points.dedup();
    points.truncate(count);
    eprintln!(
        "{}: exceptions held at {held:?}; migrating at {points:?}",
        p.name
    );
    Ok(points)
}

/// C++ exceptions in flight (caught, about to be rethrown, kept by an
/// `exnref`) cross the ISA boundary both ways; the handlers go on, and
/// rethrow, on the other ISA.
fn cpp_exceptions_between(test: &str, name: &'static str) -> Result<()> {
    let arm = match arm() {
        Ok(a) => a,
        Err(why) => {
            require::missing(test, &why);
            return Ok(());
        }
    };
    let p = Program::new(name)?;
    for c in exception_points(&p, 3)? {
        both_ways(&arm, &p, c)?;
    }
    Ok(())
}

/// `cpp_exceptions.wasm`: legacy exception handling (`try`/`catch`/`rethrow`).
#[test]
fn cpp_exceptions_between_x86_64_and_aarch64() -> Result<()> {
    cpp_exceptions_between(
        "cpp_exceptions_between_x86_64_and_aarch64",
        "cpp_exceptions",
    )
}

/// `cpp_exceptions_exnref.wasm`: the exnref form (`try_table`/`throw_ref`).
#[test]
fn cpp_exceptions_exnref_between_x86_64_and_aarch64() -> Result<()> {
    cpp_exceptions_between(
        "cpp_exceptions_exnref_between_x86_64_and_aarch64",
        "cpp_exceptions_exnref",
    )
}
