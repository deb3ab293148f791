//! The WASI sandbox seen from a guest: `test/c/sandbox.c` tries every way
//! out of its preopened directory (`..`, absolute paths, symlinks to `/`
//! and to `..`, renames and links across the boundary) and each must fail
//! with the errno a wasi-libc program gets under wasmtime (`EPERM`, or
//! `ENOTCAPABLE` where wasi-libc itself finds no preopen). Also: bad guest
//! pointers give `EFAULT` and never crash the host, and imports WASI does
//! not provide are refused by name.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn scratch(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "wasi-sandbox-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p.canonicalize().unwrap()
}

fn mvvm(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_mvvm-checkpoint"))
        .args(args)
        .output()?)
}

#[test]
fn escapes_are_refused() -> Result<()> {
    let root = scratch("escape");
    let pre = root.join("pre");
    std::fs::create_dir(&pre)?;
    std::fs::write(root.join("outside.txt"), "secret")?;
    std::fs::write(pre.join("inside.txt"), "inside")?;
    std::os::unix::fs::symlink("/", pre.join("to_root"))?;
    std::os::unix::fs::symlink("..", pre.join("to_parent"))?;
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/c/sandbox.wasm");
    let pre_s = pre.to_str().unwrap();
    let out = mvvm(&["-t", wasm.to_str().unwrap(), "-a", pre_s, "-d", pre_s])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let expected = "\
open ../x: EPERM
open ../outside.txt: EPERM
open /etc/passwd: ENOTCAPABLE
open to_root/etc/passwd: EPERM
open to_parent/outside.txt: EPERM
stat to_root/etc: EPERM
stat ..: EPERM
opendir to_root: EPERM
mkdir ../escape: EPERM
create to_parent/escape: EPERM
unlink ../outside.txt: EPERM
rename into ..: EPERM
link to_parent/outside.txt: EPERM
symlink then open: EPERM
open sneaky: ENOENT
open inside.txt: OK
";
    assert_eq!(stdout, expected);
    // Nothing outside moved or appeared.
    assert_eq!(std::fs::read_to_string(root.join("outside.txt"))?, "secret");
    assert!(!root.join("escape").exists());
    assert!(!root.join("stolen.txt").exists());
    assert!(pre.join("inside.txt").exists());
    // A symlink to an absolute path is never created (as with wasmtime).
    assert!(std::fs::symlink_metadata(pre.join("sneaky")).is_err());
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[test]
fn without_preopens_nothing_is_visible() -> Result<()> {
    let root = scratch("none");
    let pre = root.join("pre");
    std::fs::create_dir(&pre)?;
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/c/sandbox.wasm");
    let out = mvvm(&["-t", wasm.to_str().unwrap(), "-a", pre.to_str().unwrap()])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for line in stdout.lines() {
        assert!(line.ends_with("ENOTCAPABLE"), "{line}");
    }
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

/// Each call gets pointers outside the 1-page memory; `_start` exits with
/// the sum of the errnos, which must be `EFAULT` (21) every time.
const BAD_POINTERS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\f0\ff\00\00\20\00\00\00")
  (func (export "_start")
    (local $sum i32)
    ;; iovec table past the end
    (local.set $sum (call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 0)))
    ;; iovec whose buffer (0xfff0, 32 bytes) runs past the end
    (local.set $sum (i32.add (local.get $sum)
      (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 0))))
    ;; huge iovec count
    (local.set $sum (i32.add (local.get $sum)
      (call $fd_read (i32.const 0) (i32.const 16) (i32.const 0x7fffffff) (i32.const 0))))
    (local.set $sum (i32.add (local.get $sum)
      (call $args_get (i32.const -8) (i32.const 0))))
    (local.set $sum (i32.add (local.get $sum)
      (call $random_get (i32.const 65000) (i32.const 1000))))
    (local.set $sum (i32.add (local.get $sum)
      (call $clock (i32.const 1) (i64.const 0) (i32.const 65530))))
    (local.set $sum (i32.add (local.get $sum)
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 65000) (i32.const 4096)
        (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))))
    (local.set $sum (i32.add (local.get $sum)
      (call $poll (i32.const 65520) (i32.const 0) (i32.const 1) (i32.const 0))))
    (call $exit (local.get $sum))))"#;

#[test]
fn bad_guest_pointers_give_efault() -> Result<()> {
    let root = scratch("efault");
    let wat = root.join("bad.wat");
    std::fs::write(&wat, BAD_POINTERS)?;
    let r = root.to_str().unwrap();
    let out = mvvm(&["-t", wat.to_str().unwrap(), "-d", r])?;
    assert_eq!(
        out.status.code(),
        Some(8 * 21),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[test]
fn unknown_imports_are_refused_by_name() -> Result<()> {
    let root = scratch("imports");
    for (wat, name) in [
        (r#"(module (import "env" "mystery" (func)))"#, "env.mystery"),
        (
            r#"(module (import "wasi_snapshot_preview1" "fd_frobnicate" (func)))"#,
            "wasi_snapshot_preview1.fd_frobnicate",
        ),
        (
            r#"(module (import "wasi_snapshot_preview1" "fd_close" (func (param i64) (result i32))))"#,
            "wasi_snapshot_preview1.fd_close",
        ),
    ] {
        let f = root.join("m.wat");
        std::fs::write(&f, wat)?;
        let out = mvvm(&["-t", f.to_str().unwrap()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[test]
fn dir_maps_a_host_directory_under_another_name() -> Result<()> {
    let root = scratch("mapped");
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/c/files.wasm");
    let map = format!("{}::/sandbox", root.to_str().unwrap());
    let out = mvvm(&[
        "-t",
        wasm.to_str().unwrap(),
        "--dir",
        &map,
        "-a",
        "/sandbox",
    ])?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("big: 1000000 size=1000000"));
    assert_eq!(std::fs::metadata(root.join("big.bin"))?.len(), 1_000_000);
    // The host path itself means nothing to the guest.
    let host = root.to_str().unwrap();
    let out = mvvm(&["-t", wasm.to_str().unwrap(), "--dir", &map, "-a", host])?;
    assert_eq!(out.status.code(), Some(99));
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
