//! The C corpus of `test/c`: every program is built natively with gcc (the
//! oracle) and run next to its committed `.wasm` under `mvvm-checkpoint`,
//! each in a fresh directory; stdout, the exit code and the files left
//! behind must be identical.
//!
//! Rebuild the `.wasm` files with `test/c/build.sh` after editing a source.

use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest a single program may run.
const TIMEOUT: Duration = Duration::from_secs(120);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/c")
}

/// A fresh empty directory (kept under the target dir for post-mortems;
/// removed when the test passes).
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "wasi-corpus-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p.canonicalize().unwrap())
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Builds `test/c/NAME.c` (gcc) or `NAME.cpp` (g++) natively, once per test
/// process and program.
fn native(name: &str) -> Result<PathBuf> {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasi-corpus-native");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(format!("{name}-{}", std::process::id()));
    if out.exists() {
        return Ok(out);
    }
    let c = corpus_dir().join(format!("{name}.c"));
    let (src, compiler, flags) = if c.exists() {
        (c, "gcc", &["-O2"][..])
    } else {
        (
            corpus_dir().join(format!("{name}.cpp")),
            "g++",
            &["-O2", "-std=c++17"][..],
        )
    };
    let tmp = out.with_extension("tmp");
    let st = Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .status()
        .with_context(|| format!("{compiler} is needed to build the native oracle"))?;
    ensure!(st.success(), "{compiler} failed on {}", src.display());
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

fn wasm(name: &str) -> PathBuf {
    corpus_dir().join(format!("{name}.wasm"))
}

/// What a run of the program should get.
#[derive(Default, Clone)]
struct Run<'a> {
    args: Vec<&'a str>,
    env: Vec<(&'a str, &'a str)>,
    stdin: &'a [u8],
    /// Pass a fresh directory as the first argument (preopened for wasm).
    with_dir: bool,
    /// Extra flags for `mvvm-checkpoint`.
    mvvm_flags: Vec<String>,
}

fn wait(mut child: Child, stdin: &[u8]) -> Result<Output> {
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin)?;
    }
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if start.elapsed() > TIMEOUT {
            child.kill()?;
            bail!("timed out after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spawn_native(name: &str, run: &Run<'_>, dir: Option<&Scratch>) -> Result<Child> {
    let mut cmd = Command::new(native(name)?);
    cmd.current_dir(std::env::temp_dir());
    if let Some(d) = dir {
        cmd.arg(d.path());
    }
    cmd.args(&run.args)
        .env_clear()
        .envs(run.env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd.spawn()?)
}

fn spawn_wasm(name: &str, run: &Run<'_>, dir: Option<&Scratch>) -> Result<Child> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mvvm-checkpoint"));
    cmd.arg("-t").arg(wasm(name));
    let mut args: Vec<String> = Vec::new();
    if let Some(d) = dir {
        cmd.args(["-d", d.path()]);
        args.push(d.path().to_string());
    }
    args.extend(run.args.iter().map(|s| s.to_string()));
    if !args.is_empty() {
        cmd.arg("-a").arg(args.join(","));
    }
    for (k, v) in &run.env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    cmd.args(&run.mvvm_flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd.spawn()?)
}

/// Every file under `root`: relative path → description (kind and content).
fn tree(root: &Path) -> Result<BTreeMap<String, String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            let ft = e.file_type()?;
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("symlink -> {}", std::fs::read_link(&p)?.display()),
                );
            } else if ft.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &p, out)?;
            } else {
                let bytes = std::fs::read(&p)?;
                out.insert(rel, format!("file {:?}", String::from_utf8_lossy(&bytes)));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

struct Outcome {
    stdout: String,
    code: Option<i32>,
    tree: BTreeMap<String, String>,
}

fn outcome(out: Output, dir: Option<&Scratch>) -> Result<Outcome> {
    Ok(Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        code: out.status.code(),
        tree: match dir {
            Some(d) => tree(&d.0)?,
            None => BTreeMap::new(),
        },
    })
}

/// Runs `name` both ways and requires the same stdout, exit code and files.
/// Returns the (common) stdout.
fn same(name: &str, run: Run<'_>) -> Result<String> {
    let nd = run
        .with_dir
        .then(|| Scratch::new(&format!("{name}-native")));
    let wd = run.with_dir.then(|| Scratch::new(&format!("{name}-wasm")));
    let n = wait(spawn_native(name, &run, nd.as_ref())?, run.stdin)?;
    let w = wait(spawn_wasm(name, &run, wd.as_ref())?, run.stdin)?;
    let wasm_stderr = String::from_utf8_lossy(&w.stderr).into_owned();
    let n = outcome(n, nd.as_ref())?;
    let w = outcome(w, wd.as_ref())?;
    assert_eq!(
        w.stdout, n.stdout,
        "{name}: stdout differs (left wasm, right native); wasm stderr:\n{wasm_stderr}"
    );
    assert_eq!(
        w.code, n.code,
        "{name}: exit code differs; wasm stderr:\n{wasm_stderr}"
    );
    assert_eq!(w.tree, n.tree, "{name}: resulting files differ (left wasm)");
    Ok(n.stdout)
}

#[test]
fn stdio() -> Result<()> {
    let out = same(
        "stdio",
        Run {
            stdin: b"first line\nsecond\nlast without newline",
            ..Default::default()
        },
    )?;
    assert!(out.contains("3: LAST WITHOUT NEWLINE"), "{out}");
    Ok(())
}

#[test]
fn files() -> Result<()> {
    let out = same(
        "files",
        Run {
            with_dir: true,
            ..Default::default()
        },
    )?;
    assert!(out.contains("big: 1000000 size=1000000"), "{out}");
    Ok(())
}

#[test]
fn rename_unlink() -> Result<()> {
    same(
        "rename_unlink",
        Run {
            with_dir: true,
            ..Default::default()
        },
    )?;
    Ok(())
}

#[test]
fn dirs() -> Result<()> {
    let out = same(
        "dirs",
        Run {
            with_dir: true,
            ..Default::default()
        },
    )?;
    assert!(out.contains("a (154 entries, again 154)"), "{out}");
    Ok(())
}

#[test]
fn stat_times() -> Result<()> {
    same(
        "stat_times",
        Run {
            with_dir: true,
            ..Default::default()
        },
    )?;
    Ok(())
}

#[test]
fn clocks() -> Result<()> {
    let out = same("clocks", Run::default())?;
    assert!(!out.contains("FAIL"), "{out}");
    Ok(())
}

#[test]
fn random() -> Result<()> {
    let out = same("random", Run::default())?;
    assert!(!out.contains("FAIL"), "{out}");
    Ok(())
}

#[test]
fn args_env() -> Result<()> {
    let out = same(
        "args_env",
        Run {
            args: vec!["x", "y z", "-flag=1"],
            env: vec![("GREETING", "hello world"), ("A", "1"), ("EMPTY", "")],
            ..Default::default()
        },
    )?;
    assert!(out.contains("argv[2]: 'y z'"), "{out}");
    assert!(out.contains("getenv GREETING: hello world"), "{out}");
    Ok(())
}

#[test]
fn exit_codes() -> Result<()> {
    for (how, code) in [
        ("return", "0"),
        ("return", "3"),
        ("exit", "42"),
        ("exit", "300"),
        ("_Exit", "5"),
    ] {
        same(
            "exit_code",
            Run {
                args: vec![how, code],
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

/// Connects to `port` (retrying while the server starts), sends `data`,
/// shuts down writing and returns everything echoed back.
fn echo_client(port: u16, data: &[u8]) -> Result<Vec<u8>> {
    let start = Instant::now();
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.into()),
        }
    };
    s.set_read_timeout(Some(TIMEOUT))?;
    let writer = {
        let mut w = s.try_clone()?;
        let data = data.to_vec();
        std::thread::spawn(move || -> std::io::Result<()> {
            for chunk in data.chunks(777) {
                w.write_all(chunk)?;
            }
            w.shutdown(std::net::Shutdown::Write)
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back)?;
    writer.join().expect("writer thread")?;
    Ok(back)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs one side of the echo test: `spawn` starts the server on `port`,
/// then two clients talk to it in turn.
fn echo_side(child: Child, port: u16) -> Result<Outcome> {
    let payloads: [Vec<u8>; 2] = [
        b"hello, echo\n".repeat(3),
        (0..50_000u32).map(|i| (i % 251) as u8).collect(),
    ];
    for p in &payloads {
        let back = echo_client(port, p)?;
        ensure!(
            back == *p,
            "echo returned {} bytes, sent {}",
            back.len(),
            p.len()
        );
    }
    outcome(wait(child, b"")?, None)
}

#[test]
fn tcp_echo() -> Result<()> {
    let port = free_port()?;
    let run = Run {
        args: vec!["0", "2"],
        ..Default::default()
    };
    let native_run = Run {
        args: vec![],
        ..run.clone()
    };
    let port_s = port.to_string();
    let mut native_args = native_run.clone();
    native_args.args = vec![&port_s, "2"];
    let n = echo_side(spawn_native("tcp_echo", &native_args, None)?, port)?;
    let port = free_port()?;
    let wasm_run = Run {
        mvvm_flags: vec!["--tcplisten".into(), format!("127.0.0.1:{port}")],
        ..run
    };
    let w = echo_side(spawn_wasm("tcp_echo", &wasm_run, None)?, port)?;
    assert_eq!(w.stdout, n.stdout);
    assert_eq!(w.code, n.code);
    assert!(
        n.stdout.contains("connection 1: echoed 50000 bytes"),
        "{}",
        n.stdout
    );
    Ok(())
}

#[test]
fn cpp_streams() -> Result<()> {
    let out = same(
        "cpp_streams",
        Run {
            with_dir: true,
            stdin: b"from stdin\n",
            ..Default::default()
        },
    )?;
    assert!(out.contains("stdin: from stdin"), "{out}");
    assert!(out.contains("lines: 3"), "{out}");
    Ok(())
}
