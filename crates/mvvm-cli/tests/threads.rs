//! wasi-threads through the tool: `mvvm-checkpoint -t prog.wasm` runs the
//! threaded C programs of `test/threads` (pthreads over wasi-threads,
//! built with `test/threads/build.sh`) to completion with the output of
//! their native builds, and a program ends with the right code and
//! message when a thread other than the main one exits or traps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest a single program may run.
const TIMEOUT: Duration = Duration::from_secs(300);

fn threads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/threads")
}

fn scratch(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "threads-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Runs `mvvm-checkpoint -t target args..` (compiled in memory, no cache)
/// in `dir`, with a timeout.
fn checkpoint_tool(dir: &Path, target: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mvvm-checkpoint"))
        .current_dir(dir)
        .arg("--no-cache")
        .arg("-t")
        .arg(target)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mvvm-checkpoint");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{} timed out; stderr:\n{}",
                target.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every committed program of `test/threads`, run at its default thread
/// count and at 3 threads: exit 0, stdout equal to `NAME.expected`.
#[test]
fn threaded_c_programs_run_to_completion_with_their_native_output() {
    let dir = threads_dir();
    let mut programs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("test/threads")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    programs.sort();
    assert!(
        programs.len() >= 3,
        "test/threads holds {} programs",
        programs.len()
    );
    let work = scratch("corpus");
    for wasm in &programs {
        let expected = std::fs::read(wasm.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: no .expected: {e}", wasm.display()));
        for threads in [None, Some("3")] {
            let env: Vec<String> = threads
                .map(|n| vec!["-e".to_string(), format!("OMP_NUM_THREADS={n}")])
                .unwrap_or_default();
            let args: Vec<&str> = env.iter().map(String::as_str).collect();
            let out = checkpoint_tool(&work, wasm, &args);
            let label = format!("{} (OMP_NUM_THREADS={threads:?})", wasm.display());
            assert_eq!(
                out.status.code(),
                Some(0),
                "{label}: stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stdout == expected,
                "{label}: stdout differs:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// A WAT program: `_start` spawns one thread running `$body`, then runs
/// `$main`; both may use `$park` (wait forever) and `$spin`.
fn program(thread_body: &str, main_body: &str) -> String {
    format!(
        r#"(module
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory 1 1 shared))
  (export "memory" (memory 0))
  (data (i32.const 100) "hello from the main thread\n")
  (func $park
    (loop $l
      (drop (memory.atomic.wait32 (i32.const 8) (i32.const 0) (i64.const -1)))
      (br $l)))
  (func $spin (local $x i32)
    (loop $l (local.set $x (i32.add (local.get $x) (i32.const 1))) (br $l)))
  (func $crash (export "crash") (param $p i32) (result i32)
    (i32.load (local.get $p)))
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    {thread_body})
  (func (export "_start")
    ;; iovec at 16: 27 bytes at 100
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 27))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (if (i32.lt_s (call $spawn (i32.const 0)) (i32.const 1)) (then unreachable))
    {main_body}))"#
    )
}

fn run_wat(label: &str, wat: &str) -> Output {
    let dir = scratch(label);
    let path = dir.join(format!("{label}.wat"));
    std::fs::write(&path, wat).unwrap();
    let out = checkpoint_tool(&dir, &path, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn proc_exit_in_another_thread_is_the_exit_code() {
    let out = run_wat(
        "exit",
        &program("(call $exit (i32.const 23))", "(call $park)"),
    );
    assert_eq!(
        out.status.code(),
        Some(23),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello from the main thread\n");
}

#[test]
fn a_trap_in_another_thread_is_a_trap_of_the_program() {
    // The thread reads far out of bounds; the main thread spins.
    let out = run_wat(
        "trap",
        &program(
            "(drop (call $crash (i32.const 0x7ffffff0)))",
            "(call $spin)",
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "stderr:\n{stderr}");
    assert!(
        stderr.contains("out of bounds memory access") && stderr.contains("thread 1"),
        "{stderr}"
    );
    assert!(stderr.contains("crash"), "{stderr}");
}

#[test]
fn start_returning_ends_a_program_whose_threads_still_run() {
    let out = run_wat("main-returns", &program("(call $spin)", ""));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello from the main thread\n");
}
