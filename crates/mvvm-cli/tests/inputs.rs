//! What the tools say about their inputs and around the guest's output:
//! a file that is no program is named as such (not as WAT that does not
//! parse), an error's cause is printed once, and the "checkpoint written"
//! line starts a line of its own even when the guest left stderr mid-line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const AOT: &str = env!("CARGO_BIN_EXE_mvvm-aot");
const CHECKPOINT: &str = env!("CARGO_BIN_EXE_mvvm-checkpoint");
const RESTORE: &str = env!("CARGO_BIN_EXE_mvvm-restore");

/// Exit code of MVVM failing (see `exit.rs`).
const FAILURE: i32 = 125;
/// Exit code of a run that wrote a checkpoint.
const CHECKPOINTED: i32 = 75;

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("inputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(tool: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("MVVM_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_wat_parse_error_prints_its_cause_once() {
    let d = scratch("wat");
    let wat = d.join("bad.wat");
    std::fs::write(&wat, "(module (func (result i32) i32.const))").unwrap();
    let aot = d.join("bad.aot");
    for (tool, args) in [
        (AOT, vec![wat.as_os_str(), "-o".as_ref(), aot.as_os_str()]),
        (CHECKPOINT, vec!["-t".as_ref(), wat.as_os_str()]),
    ] {
        let out = run(tool, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(FAILURE), "{tool}: {err}");
        assert!(err.contains("invalid WAT text"), "{tool}: {err}");
        // The parser's message, with its caret under the column.
        assert_eq!(
            err.matches("expected a i32").count(),
            1,
            "{tool}: the cause is printed exactly once:\n{err}"
        );
        assert_eq!(err.matches("^").count(), 1, "{tool}:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bytes_that_are_no_program_are_named_so() {
    let d = scratch("binary");
    let junk = d.join("picture.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01binary").unwrap();
    let aot = d.join("out.aot");
    let snap = d.join("snap.bin");
    for (tool, args) in [
        (AOT, vec![junk.as_os_str(), "-o".as_ref(), aot.as_os_str()]),
        (CHECKPOINT, vec!["-t".as_ref(), junk.as_os_str()]),
        (
            RESTORE,
            vec![
                "-t".as_ref(),
                junk.as_os_str(),
                "--snapshot".as_ref(),
                snap.as_os_str(),
            ],
        ),
    ] {
        let out = run(tool, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(FAILURE), "{tool}: {err}");
        assert!(
            err.contains("picture.png: not a WebAssembly module or MVVM object"),
            "{tool}: {err}"
        );
        assert!(!err.contains("WAT"), "{tool}: not a WAT error: {err}");
    }
    assert!(!aot.exists(), "no object was written");
    let _ = std::fs::remove_dir_all(&d);
}

/// A guest that writes `text` to stderr, then runs a loop of 1000
/// iterations (whose first probe `-c 1` checkpoints at) and exits.
fn stderr_then_loop(text: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{text}")
  (func (export "_start") (local $i i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))))"#,
        text = text.replace('\n', "\\n"),
        len = text.len()
    )
}

/// Compiles `wat` with the loop policy and checkpoints it at the first
/// probe; returns its stderr.
fn checkpoint_stderr(d: &Path, wat: &str) -> String {
    let src = d.join("guest.wat");
    std::fs::write(&src, wat).unwrap();
    let aot = d.join("guest.aot");
    let out = run(
        AOT,
        &[
            src.as_os_str(),
            "--enable-loop-checkpoint".as_ref(),
            "-o".as_ref(),
            aot.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let snap = d.join("guest.bin");
    let out = run(
        CHECKPOINT,
        &[
            "-t".as_ref(),
            aot.as_os_str(),
            "-c".as_ref(),
            "1".as_ref(),
            "--snapshot".as_ref(),
            snap.as_os_str(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(CHECKPOINTED), "{err}");
    err
}

#[test]
fn the_checkpoint_line_starts_a_line_of_its_own() {
    let d = scratch("fresh-line");
    // The guest's line is unfinished: the tool ends it.
    let err = checkpoint_stderr(&d, &stderr_then_loop("progress: 41%"));
    assert!(
        err.starts_with("progress: 41%\nmvvm-checkpoint: checkpoint written to "),
        "{err:?}"
    );
    // The guest's line is finished: no blank line.
    let err = checkpoint_stderr(&d, &stderr_then_loop("done\n"));
    assert!(
        err.starts_with("done\nmvvm-checkpoint: checkpoint written to "),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
