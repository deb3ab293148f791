//! Live migration over TCP with the original MVVM's flags: `mvvm-checkpoint
//! -o ADDR -s PORT` sends, `mvvm-restore -i ADDR -e PORT` listens, receives,
//! checks and resumes; a restore with its own `-o/-s` forwards its next
//! checkpoint (chains A → B → A). Loopback only.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{
    CHECKPOINTED, FAILURE, Guest, Policy, Running, Tool, accept_within, aot, baseline,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

/// A free loopback port (bound, then released for a tool to take).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `mvvm-restore -t AOT -i 127.0.0.1 -e PORT` plus `extra`, once it
/// listens.
fn listening_restore(aot: &Path, port: u16, extra: &[String]) -> Result<Running> {
    let mut r = Tool::restore(aot)
        .args(["-i", "127.0.0.1", "-e", &port.to_string()])
        .args(extra)
        .spawn()?;
    r.wait_for_stderr("waiting for a snapshot")?;
    Ok(r)
}

/// `-o 127.0.0.1 -s PORT -c C`.
fn send_flags(port: u16, c: u64) -> Vec<String> {
    vec![
        "-o".into(),
        "127.0.0.1".into(),
        "-s".into(),
        port.to_string(),
        "-c".into(),
        c.to_string(),
    ]
}

/// Checkpoint on one side, resume on the listening side; the downtime is
/// reported in `--json` and printed in debug mode.
#[test]
fn checkpoint_to_a_listening_restore() -> Result<()> {
    let aot = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let port = free_port()?;
    let mut restore = Tool::restore(&aot)
        .args(["-i", "127.0.0.1", "-e", &port.to_string()])
        .env("MVVM_LOG", "mvvm_cli=debug")
        .spawn()?;
    restore.wait_for_stderr("waiting for a snapshot")?;
    let a = Tool::checkpoint(&aot)
        .args(send_flags(port, base.probes / 2))
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint -o/-s")?;
    ensure!(
        a.json_str("snapshot").as_deref() == Some(&*format!("tcp://127.0.0.1:{port}")),
        "{:?}",
        a.json
    );
    let b = restore.wait()?;
    b.expect_code(base.code, "restore -i/-e")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(out == base.stdout, "output differs");
    ensure!(
        b.stderr
            .contains("after the checkpoint's trigger (downtime"),
        "{}",
        b.stderr
    );
    let json = b.json.clone().unwrap_or_default();
    let ms: f64 = json
        .split("\"downtime_ms\":")
        .nth(1)
        .and_then(|v| v.trim_end_matches('}').parse().ok())
        .with_context(|| format!("no downtime in {json}"))?;
    ensure!(ms > 0.0 && ms < 60_000.0, "downtime {ms} ms");
    Ok(())
}

/// Usage: `-o` needs `-s`, `-i` needs `-e`, and neither goes with
/// `--snapshot`.
#[test]
fn flag_pairs() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 3)?;
    for args in [
        &["-o", "127.0.0.1"][..],
        &["-s", "7000"],
        &["-o", "127.0.0.1", "-s", "7000", "--snapshot", "x.bin"],
    ] {
        let r = Tool::checkpoint(&aot).args(args).run()?;
        r.expect_code(2, &format!("checkpoint {args:?}"))?;
    }
    for args in [
        &["-i", "127.0.0.1"][..],
        &["-e", "7000"],
        &["-i", "127.0.0.1", "-e", "7000", "--snapshot", "x.bin"],
        &["-o", "127.0.0.1", "-s", "7000", "--snapshot-out", "x.bin"],
    ] {
        let r = Tool::restore(&aot).args(args).run()?;
        r.expect_code(2, &format!("restore {args:?}"))?;
    }
    Ok(())
}

/// A → B → A: the first restore checkpoints again and forwards to a third
/// process (B is another compilation of the same wasm: opt level 0).
#[test]
fn chain_over_tcp() -> Result<()> {
    let aot_a = aot("memgrow", Policy::Loop, 3)?;
    let aot_b = aot("memgrow", Policy::Loop, 0)?;
    let base = baseline(&aot_a, &Guest::default())?;
    let (p1, p2) = (free_port()?, free_port()?);
    let third = listening_restore(&aot_a, p2, &[])?;
    let second = listening_restore(&aot_b, p1, &send_flags(p2, base.probes / 3))?;
    let first = Tool::checkpoint(&aot_a)
        .args(send_flags(p1, base.probes / 3))
        .run()?;
    first.expect_code(CHECKPOINTED, "A: checkpoint")?;
    let second = second.wait()?;
    second.expect_code(CHECKPOINTED, "B: restore and checkpoint")?;
    ensure!(
        second.json_str("snapshot").as_deref() == Some(&*format!("tcp://127.0.0.1:{p2}")),
        "{:?}",
        second.json
    );
    let third = third.wait()?;
    third.expect_code(base.code, "A again: restore")?;
    let mut out = first.stdout.clone();
    out.extend_from_slice(&second.stdout);
    out.extend_from_slice(&third.stdout);
    ensure!(out == base.stdout, "output differs");
    Ok(())
}

/// The sender dies in the middle of the snapshot (a relay passes on part
/// of it, then the sender is killed and the connection closed): the
/// receiver refuses with 125 and runs nothing.
#[test]
fn sender_killed_midway() -> Result<()> {
    let aot = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let rport = free_port()?;
    let restore = listening_restore(&aot, rport, &[])?;
    let relay = TcpListener::bind("127.0.0.1:0")?;
    let lport = relay.local_addr()?.port();
    let mut sender = Tool::checkpoint(&aot)
        .args(send_flags(lport, base.probes / 2))
        .spawn()?;
    let mut from = accept_within(&relay)?;
    let mut to = TcpStream::connect(("127.0.0.1", rport))?;
    let mut passed = 0usize;
    let mut buf = vec![0u8; 16 << 10];
    while passed < 100_000 {
        let n = from.read(&mut buf)?;
        ensure!(n > 0, "the sender closed after {passed} bytes");
        to.write_all(&buf[..n])?;
        passed += n;
    }
    sender.child.kill()?;
    let _ = sender.child.wait();
    drop(to);
    drop(from);
    let r = restore.wait()?;
    r.expect_code(FAILURE, "restore from a sender killed midway")?;
    ensure!(r.stdout.is_empty(), "the receiver ran the program");
    ensure!(
        r.stderr.contains("stopped before the end") && r.stderr.contains("nothing was resumed"),
        "{}",
        r.stderr
    );
    Ok(())
}

/// A snapshot of another module is refused by the receiver, which runs
/// nothing.
#[test]
fn snapshot_of_another_module_is_refused() -> Result<()> {
    let sender = aot("compute", Policy::Loop, 3)?;
    let receiver = aot("memgrow", Policy::Loop, 3)?;
    let port = free_port()?;
    let restore = listening_restore(&receiver, port, &[])?;
    let a = Tool::checkpoint(&sender).args(send_flags(port, 5)).run()?;
    a.expect_code(CHECKPOINTED, "checkpoint of compute")?;
    let r = restore.wait()?;
    r.expect_code(FAILURE, "restore into another module")?;
    ensure!(r.stdout.is_empty(), "the receiver ran the program");
    ensure!(
        r.stderr.contains("wasm module sha256") && r.stderr.contains("nothing was resumed"),
        "{}",
        r.stderr
    );
    Ok(())
}
