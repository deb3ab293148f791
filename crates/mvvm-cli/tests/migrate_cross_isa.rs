//! Live migration across instruction sets: a program checkpointed by the
//! x86-64 tools is sent over TCP (`-o/-s`) to an aarch64 `mvvm-restore -i/-e`
//! running under qemu-user, which resumes it from its own aarch64
//! compilation of the same wasm; and the other way round. The outputs of
//! the two parts must add up to an uninterrupted run.
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
use checkpoint_support::{CHECKPOINTED, Guest, Policy, TIMEOUT, aot, baseline, ckpt_dir, require};
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

/// `test/ckpt/NAME.wasm` compiled for aarch64.
fn aarch64_aot(name: &str, dir: &Path) -> Result<PathBuf> {
    let wasm = std::fs::read(ckpt_dir().join(format!("{name}.wasm")))?;
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

#[test]
fn tcp_between_x86_64_and_aarch64() -> Result<()> {
    let arm = match arm() {
        Ok(a) => a,
        Err(why) => {
            require::missing("tcp_between_x86_64_and_aarch64", &why);
            return Ok(());
        }
    };
    let x86 = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&x86, &Guest::default())?;
    let dir = x86.parent().context("aot dir")?.to_path_buf();
    let a64 = aarch64_aot("memgrow", &dir)?;
    let c = (base.probes / 2).to_string();
    let ck = env!("CARGO_BIN_EXE_mvvm-checkpoint");
    let rs = env!("CARGO_BIN_EXE_mvvm-restore");

    // x86-64 → aarch64.
    let port = free_port()?.to_string();
    let err = dir.join(format!("x2a-{}.err", std::process::id()));
    let mut r = Command::new(&arm.qemu);
    r.arg(arm.bin.join("mvvm-restore"))
        .arg("-t")
        .arg(&a64)
        .args(["-i", "127.0.0.1", "-e", &port]);
    let restore = start_listening(r, &err)?;
    let mut k = Command::new(ck);
    k.arg("-t")
        .arg(&x86)
        .args(["-c", &c, "-o", "127.0.0.1", "-s", &port]);
    let a = run(k)?;
    ensure!(
        a.status.code() == Some(CHECKPOINTED),
        "x86-64 checkpoint: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    let (b_out, b_code, b_err) = finish(restore, &err)?;
    ensure!(
        b_code == base.code,
        "aarch64 restore exited {b_code}: {b_err}"
    );
    let mut out = a.stdout.clone();
    out.extend(b_out);
    ensure!(out == base.stdout, "x86-64 → aarch64: output differs");

    // aarch64 → x86-64.
    let port = free_port()?.to_string();
    let err = dir.join(format!("a2x-{}.err", std::process::id()));
    let mut r = Command::new(rs);
    r.arg("-t").arg(&x86).args(["-i", "127.0.0.1", "-e", &port]);
    let restore = start_listening(r, &err)?;
    let mut k = Command::new(&arm.qemu);
    k.arg(arm.bin.join("mvvm-checkpoint"))
        .arg("-t")
        .arg(&a64)
        .args(["-c", &c, "-o", "127.0.0.1", "-s", &port]);
    let a = run(k)?;
    ensure!(
        a.status.code() == Some(CHECKPOINTED),
        "aarch64 checkpoint: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    let (b_out, b_code, b_err) = finish(restore, &err)?;
    ensure!(
        b_code == base.code,
        "x86-64 restore exited {b_code}: {b_err}"
    );
    let mut out = a.stdout.clone();
    out.extend(b_out);
    ensure!(out == base.stdout, "aarch64 → x86-64: output differs");
    let _ = std::fs::remove_file(&a64);
    Ok(())
}
