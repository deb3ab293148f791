//! Checkpoints taken while the guest waits for a connection on a listener
//! preopened with `--tcplisten`, before any client came:
//!
//! - blocked in `sock_accept` itself (a WAT guest, SIGUSR1): the runtime
//!   interrupts the wait (50 ms slices), unwinds with the call site of
//!   `sock_accept` as the resume point, writes the snapshot and exits 75;
//! - blocked in `poll_oneoff` with a socket read subscription (the C echo
//!   server of `test/c`, `--after`).
//!
//! In both cases the restore binds the listener again on the same port
//! (from the snapshot's WASI state), the wait is made again, a client
//! connects, is served correctly, and the program ends as an uninterrupted
//! run does (same stdout in total, same exit code).

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{CHECKPOINTED, Policy, Ran, Running, Scratch, Tool, aot};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Waits in `sock_accept` on fd 3 (the listener: no preopened directory),
/// then answers `echo:` followed by everything the client sends until it
/// shuts down, and exits with 3. Prints `waiting`, `accepted`, `done`.
const ACCEPT_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv"
    (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "waiting\n")
  (data (i32.const 16) "accepted\n")
  (data (i32.const 32) "done\n")
  (data (i32.const 48) "echo:")
  (func $print (param $p i32) (param $n i32)
    (i32.store (i32.const 100) (local.get $p))
    (i32.store (i32.const 104) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108))))
  (func $send_all (param $fd i32) (param $p i32) (param $n i32) (local $err i32)
    (i32.store (i32.const 140) (local.get $p))
    (i32.store (i32.const 144) (local.get $n))
    (local.set $err (call $send (local.get $fd) (i32.const 140) (i32.const 1) (i32.const 0) (i32.const 148)))
    (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 40) (local.get $err))))))
  (func (export "_start") (local $err i32) (local $conn i32) (local $n i32)
    (call $print (i32.const 0) (i32.const 8))
    (local.set $err (call $accept (i32.const 3) (i32.const 0) (i32.const 112)))
    (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 10) (local.get $err)))))
    (call $print (i32.const 16) (i32.const 9))
    (local.set $conn (i32.load (i32.const 112)))
    (call $send_all (local.get $conn) (i32.const 48) (i32.const 5))
    (i32.store (i32.const 120) (i32.const 1024))
    (i32.store (i32.const 124) (i32.const 256))
    (loop $l
      (local.set $err (call $recv (local.get $conn) (i32.const 120) (i32.const 1) (i32.const 0)
        (i32.const 128) (i32.const 132)))
      (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 20) (local.get $err)))))
      (local.set $n (i32.load (i32.const 128)))
      (if (local.get $n)
        (then
          (call $send_all (local.get $conn) (i32.const 1024) (local.get $n))
          (br $l))))
    (drop (call $shutdown (local.get $conn) (i32.const 2)))
    (drop (call $close (local.get $conn)))
    (call $print (i32.const 32) (i32.const 5))
    (call $proc_exit (i32.const 3))))"#;

/// `ACCEPT_WAT` written once under the target directory.
fn accept_wat() -> Result<PathBuf> {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ckpt-accept.wat");
    std::fs::write(&p, ACCEPT_WAT)?;
    Ok(p)
}

/// A free loopback port (bound, then released for the guest's listener).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Connects to `port` (retrying while nothing listens yet), sends `msg`,
/// shuts down its side and reads the whole answer.
fn client(port: u16, msg: &[u8]) -> Result<Vec<u8>> {
    let start = Instant::now();
    let mut c = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) => {
                ensure!(
                    start.elapsed() < Duration::from_secs(30),
                    "cannot connect to port {port}: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    c.write_all(msg)?;
    c.shutdown(Shutdown::Write)?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer)?;
    Ok(answer)
}

/// Runs `tool` (already listening on `port`) with a client talking to it.
fn serve_one(tool: Tool, port: u16, msg: &[u8]) -> Result<(Ran, Vec<u8>)> {
    let running = tool.spawn()?;
    let answer = client(port, msg);
    let ran = running.wait()?;
    let answer = answer.with_context(|| format!("client failed; tool stderr:\n{}", ran.stderr))?;
    Ok((ran, answer))
}

/// Starts the checkpointing run, waits until the guest printed `ready`
/// and then a little more (it is then blocked), triggers, and checks the
/// snapshot was written with exit code 75 while nobody connected.
fn checkpoint_while_waiting(
    mut running: Running,
    ready: &str,
    signal: Option<&str>,
    snap: &Path,
) -> Result<Ran> {
    running.wait_for_stdout(ready)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        !running.has_ended()?,
        "the guest ended instead of waiting for a connection"
    );
    if let Some(sig) = signal {
        running.signal(sig)?;
    }
    let ran = running.wait()?;
    ran.expect_code(CHECKPOINTED, "checkpoint while waiting for a connection")?;
    ensure!(snap.is_file(), "exit 75 but no snapshot: {}", ran.stderr);
    ensure!(
        ran.json_str("status").as_deref() == Some("checkpointed"),
        "summary {:?}",
        ran.json
    );
    Ok(ran)
}

/// The accept test under `policy`; with `chain`, the restored run is
/// itself checkpointed by SIGINT while blocked in `sock_accept` again, and
/// that snapshot is restored and served.
fn accept_under(policy: Policy, chain: bool) -> Result<()> {
    let wat = accept_wat()?;
    let aot = aot(wat.to_str().context("temp path is UTF-8")?, policy, 3)?;
    let msg = b"hello over a restored listener";
    let mut want_answer = b"echo:".to_vec();
    want_answer.extend_from_slice(msg);

    // Uninterrupted.
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let s = Scratch::new("accept-base");
    let (base, answer) = serve_one(
        Tool::checkpoint(&aot)
            .args(["--tcplisten", &listen])
            .current_dir(&s.0),
        port,
        msg,
    )?;
    base.expect_code(3, "uninterrupted run")?;
    ensure!(base.stdout == b"waiting\naccepted\ndone\n", "{base:?}");
    ensure!(answer == want_answer, "answer {answer:?}");

    // Checkpoint while blocked in sock_accept, nobody connected yet.
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let s = Scratch::new("accept");
    let mut snap = s.join("snap.bin");
    let running = Tool::checkpoint(&aot)
        .args(["--tcplisten", &listen])
        .snapshot(&snap)
        .current_dir(&s.0)
        .spawn()?;
    let a = checkpoint_while_waiting(running, "waiting\n", Some("USR1"), &snap)?;
    ensure!(a.stdout == b"waiting\n", "{:?}", a.stdout);
    stopped_at_accept(&snap)?;

    if chain {
        // The restored run binds the listener again and blocks in
        // sock_accept again (redone); SIGINT checkpoints it there.
        let snap2 = s.join("snap2.bin");
        let mut running = Tool::restore(&aot)
            .snapshot(&snap)
            .args(["--tcplisten", &listen])
            .arg("--snapshot-out")
            .arg(&snap2)
            .current_dir(&s.0)
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        ensure!(!running.has_ended()?, "the restored run did not wait");
        running.signal("INT")?;
        let r = running.wait()?;
        r.expect_code(CHECKPOINTED, "restore checkpointed by SIGINT")?;
        ensure!(r.stdout.is_empty(), "{:?}", r.stdout);
        ensure!(snap2.is_file(), "exit 75 but no snapshot: {}", r.stderr);
        stopped_at_accept(&snap2)?;
        snap = snap2;
    }

    // Restore: the listener is bound again on the same port; a client is
    // accepted and served.
    let (b, answer) = serve_one(
        Tool::restore(&aot)
            .snapshot(&snap)
            .args(["--tcplisten", &listen])
            .current_dir(&s.0),
        port,
        msg,
    )?;
    b.expect_code(base.code().unwrap_or(-1), "restore")?;
    ensure!(answer == want_answer, "answer after restore {answer:?}");
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "output {:?}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// The snapshot stopped in `_start` at the call of sock_accept, whose
/// arguments (fd 3, flags 0, result pointer 112) end its operand stack.
fn stopped_at_accept(snap: &Path) -> Result<()> {
    let snapshot = mvvm_snapshot::open_file(snap)?;
    ensure!(snapshot.frames.len() == 1, "{:?}", snapshot.frames);
    let frame = &snapshot.frames[0];
    use mvvm_snapshot::WasmValue::I32;
    ensure!(
        frame.stack.ends_with(&[I32(3), I32(0), I32(112)]),
        "not stopped at the sock_accept call: {frame:?}"
    );
    Ok(())
}

#[test]
fn checkpoint_while_blocked_in_sock_accept() -> Result<()> {
    accept_under(Policy::Loop, false)
}

/// Function-entry probes (none in the wait), and a chain: the restored
/// run is checkpointed again while blocked in `sock_accept`.
#[test]
fn checkpoint_while_blocked_in_sock_accept_twice() -> Result<()> {
    accept_under(Policy::Function, true)
}

/// The C echo server polls its listener (`poll` = `poll_oneoff` with an
/// fd_read subscription and a 20 s timeout) before accepting.
#[test]
fn checkpoint_while_blocked_in_poll_on_a_listener() -> Result<()> {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/c/tcp_echo.wasm");
    let aot = aot(wasm.to_str().context("path is UTF-8")?, Policy::Loop, 3)?;
    let msg: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();

    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let s = Scratch::new("poll-base");
    let (base, answer) = serve_one(
        Tool::checkpoint(&aot)
            .args(["--tcplisten", &listen])
            .current_dir(&s.0),
        port,
        &msg,
    )?;
    base.expect_code(0, "uninterrupted run")?;
    ensure!(answer == msg, "echo differs ({} bytes)", answer.len());
    let text = String::from_utf8_lossy(&base.stdout);
    ensure!(
        text.starts_with("listening\n")
            && text.contains("connection 0: echoed 5000 bytes\n")
            && text.ends_with("served 1 connections\n"),
        "{text:?}"
    );

    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let s = Scratch::new("poll");
    let snap = s.join("snap.bin");
    let running = Tool::checkpoint(&aot)
        .args(["--tcplisten", &listen, "--after", "2"])
        .snapshot(&snap)
        .current_dir(&s.0)
        .spawn()?;
    let a = checkpoint_while_waiting(running, "listening\n", None, &snap)?;
    ensure!(a.stdout == b"listening\n", "{:?}", a.stdout);

    let (b, answer) = serve_one(
        Tool::restore(&aot)
            .snapshot(&snap)
            .args(["--tcplisten", &listen])
            .current_dir(&s.0),
        port,
        &msg,
    )?;
    b.expect_code(0, "restore")?;
    ensure!(
        answer == msg,
        "echo after restore differs ({} bytes)",
        answer.len()
    );
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "output {:?}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}
