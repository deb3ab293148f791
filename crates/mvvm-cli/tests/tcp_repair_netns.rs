//! Project issue 14: a client keeps one TCP connection open while the
//! program serving it migrates twice, between two network namespaces,
//! with its service address moving along.
//!
//! ```text
//!   netns A ── eth0 ─┐                    ┌─ eth0 ── netns B
//!   10.88.0.2        │   netns C: br0     │        10.88.0.3
//!   (+ 10.88.0.10 at └── vA ─ 10.88.0.1 ─ vB   (+ 10.88.0.10 after
//!    first and last)       client               the first move)
//! ```
//!
//! The echo guest (as in `tcp_repair.rs`: 300 ms sleep, then at most 512
//! bytes echoed, per round) runs under `mvvm-checkpoint` in A, listening
//! on 10.88.0.10:7000. Each migration: the address leaves the old
//! namespace first (from then on, what the client sends is lost in the
//! network and retransmitted later, and what the guest echoes goes
//! unacknowledged: the network is "locked" as CRIU locks it), the client
//! sends more meanwhile, the program is checkpointed (SIGUSR1, then SIGINT
//! for the restored run) and restored in the new namespace with the same
//! `--tcplisten` grant; once it has rebuilt the connection (before, a
//! segment of the client would meet no socket there and draw a reset),
//! the address comes up there and C forgets the old neighbour. A -> B -> A; then the client ends its side
//! and must have received every byte it sent, in order, on the connection
//! it opened at the start.
//!
//! Needs root and `ip netns` with bridges: under CI=true it fails saying
//! what is missing, otherwise it is skipped with the reason. No timing is
//! asserted.

mod checkpoint_support;

use anyhow::{Context, Result, bail, ensure};
use checkpoint_support::{CHECKPOINTED, Policy, Running, Scratch, Tool, aot};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The service address that moves with the program.
const SERVICE: &str = "10.88.0.10";
/// Its port.
const PORT: u16 = 7000;

/// The echo guest of `tcp_repair.rs` (same WAT, shared by path).
fn echo_aot() -> Result<PathBuf> {
    let wat = include_str!("tcp_repair_echo.wat");
    let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tcp-repair-netns-echo-{}.wat", std::process::id()));
    std::fs::write(&p, wat)?;
    aot(p.to_str().context("temp path is UTF-8")?, Policy::Loop, 2)
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip")?;
    ensure!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Three namespaces (A, B, C) joined by a bridge in C; deleted on drop.
struct Net {
    a: String,
    b: String,
    c: String,
}

impl Net {
    fn new() -> Result<Net> {
        let id = std::process::id();
        let net = Net {
            a: format!("mvvm-rep-a-{id}"),
            b: format!("mvvm-rep-b-{id}"),
            c: format!("mvvm-rep-c-{id}"),
        };
        for ns in [&net.a, &net.b, &net.c] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let c = net.c.as_str();
        ip(&["-n", c, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", c, "addr", "add", "10.88.0.1/24", "dev", "br0"])?;
        ip(&["-n", c, "link", "set", "br0", "up"])?;
        // Each namespace has an address of its own on the network (a host
        // does); the service address comes and goes beside it.
        for (ns, port, own) in [
            (&net.a, "vA", "10.88.0.2/24"),
            (&net.b, "vB", "10.88.0.3/24"),
        ] {
            ip(&[
                "-n", c, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ])?;
            ip(&["-n", c, "link", "set", port, "master", "br0"])?;
            ip(&["-n", c, "link", "set", port, "up"])?;
            ip(&["-n", ns, "addr", "add", own, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// Moves the service address out of `from` (the network is then
    /// locked: nothing reaches the program or its peer through it).
    fn release(&self, from: &str) -> Result<()> {
        ip(&[
            "-n",
            from,
            "addr",
            "del",
            &format!("{SERVICE}/24"),
            "dev",
            "eth0",
        ])
    }

    /// Brings the service address up in `to` and makes C forget where it
    /// was (its next segment asks again, and `to` answers).
    fn take(&self, to: &str) -> Result<()> {
        ip(&[
            "-n",
            to,
            "addr",
            "add",
            &format!("{SERVICE}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &self.c, "neigh", "flush", "dev", "br0"])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b, &self.c] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Moves the calling thread into namespace `ns`: the processes it starts
/// and the sockets it makes from then on live there (sockets made before
/// stay in their own namespace).
fn enter(ns: &str) -> Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("cannot open namespace {ns}"))?;
    // SAFETY: setns only reads the descriptor, which `f` keeps open for
    // the call; CLONE_NEWNET changes this thread's network namespace only.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    ensure!(r == 0, "setns({ns}): {}", std::io::Error::last_os_error());
    Ok(())
}

/// Whether this test can run here; says why not (a failure under CI).
fn runnable() -> bool {
    let missing = |what: &str| {
        checkpoint_support::require::missing("connection_survives_two_migrations", what);
        false
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return missing("it needs root (namespaces, TCP repair)");
    }
    let probe = format!("mvvm-rep-probe-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    if !ok {
        return missing("`ip netns add` does not work here (iproute2, CAP_SYS_ADMIN)");
    }
    true
}

/// `n` bytes of a pattern that shows any loss, duplication or reordering.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// Waits until more than `seen` bytes of echo wait in the client.
fn wait_for_echo(client: &TcpStream, seen: usize) -> Result<usize> {
    let start = Instant::now();
    let mut peek = vec![0u8; 1 << 20];
    loop {
        let n = client.peek(&mut peek)?;
        if n > seen {
            return Ok(n);
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no new echo after 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One migration of the program running as `running` from namespace
/// `from` to `to`, the client sending `more` while the network is locked.
/// `signal` checkpoints it; the restored run writes its next snapshot to
/// `next` (when given) and is returned.
#[allow(clippy::too_many_arguments)]
fn migrate(
    net: &Net,
    running: Running,
    signal: &str,
    snap: &Path,
    next: Option<&Path>,
    from: &str,
    to: &str,
    client: &mut TcpStream,
    more: &[u8],
    aot: &Path,
) -> Result<Running> {
    let t0 = Instant::now();
    net.release(from)?;
    // Lost in the network for now; the client retransmits it later.
    client.write_all(more)?;
    running.signal(signal)?;
    let ran = running.wait()?;
    eprintln!("{from}: checkpointed after {:?}", t0.elapsed());
    ran.expect_code(CHECKPOINTED, &format!("checkpoint in {from}"))?;
    ensure!(
        ran.stderr.contains("TCP connection saved in repair mode"),
        "the checkpoint in {from} did not save the connection:\n{}",
        ran.stderr
    );
    if let Some(line) = ran
        .stderr
        .lines()
        .find(|l| l.contains("saved in repair mode"))
    {
        eprintln!("{from} -> {to}: {line}");
    }
    enter(to)?;
    let listen = format!("{SERVICE}:{PORT}");
    let mut tool = Tool::restore(aot)
        .snapshot(snap)
        .args(["--tcplisten", &listen])
        .env("MVVM_LOG", "info");
    if let Some(n) = next {
        tool = tool.arg("--snapshot-out").arg(n);
    }
    let mut restored = tool.spawn()?;
    restored
        .wait_for_stderr("TCP connection repaired")
        .with_context(|| format!("restore in {to}"))?;
    // Only now may the peer's segments reach this namespace: before, they
    // would meet no socket and draw a reset.
    net.take(to)?;
    eprintln!(
        "{to}: repaired {:?} after the address left {from}",
        t0.elapsed()
    );
    Ok(restored)
}

#[test]
fn connection_survives_two_migrations() -> Result<()> {
    if !runnable() {
        return Ok(());
    }
    let aot = echo_aot()?;
    let s = Scratch::new("tcp-repair-netns");
    let (snap1, snap2) = (s.join("snap1.bin"), s.join("snap2.bin"));
    let net = match Net::new() {
        Ok(n) => n,
        Err(e) => {
            checkpoint_support::require::missing(
                "connection_survives_two_migrations",
                &format!("the namespaces cannot be set up: {e:#}"),
            );
            return Ok(());
        }
    };
    // This thread moves between namespaces; the test harness gives each
    // test a thread of its own, which ends with the test.
    net.take(&net.a)?;
    enter(&net.a)?;
    let listen = format!("{SERVICE}:{PORT}");
    let mut running = Tool::checkpoint(&aot)
        .args(["--tcplisten", &listen])
        .snapshot(&snap1)
        .env("MVVM_LOG", "info")
        .spawn()?;
    enter(&net.c)?;
    let start = Instant::now();
    let mut client = loop {
        match TcpStream::connect((SERVICE, PORT)) {
            Ok(c) => break c,
            Err(e) if start.elapsed() > Duration::from_secs(30) => bail!("cannot connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let local = client.local_addr()?;
    running.wait_for_stdout("accepted\n")?;

    let mut sent = pattern(2 << 10, 0x11);
    client.write_all(&sent)?;
    let seen = wait_for_echo(&client, 0)?;

    let more = pattern(1 << 10, 0x22);
    let restored = migrate(
        &net,
        running,
        "USR1",
        &snap1,
        Some(&snap2),
        &net.a,
        &net.b,
        &mut client,
        &more,
        &aot,
    )?;
    sent.extend_from_slice(&more);
    enter(&net.c)?;
    let t = Instant::now();
    wait_for_echo(&client, seen)?;
    eprintln!("echo again after {:?}", t.elapsed());

    let more = pattern(1 << 10, 0x33);
    let back = migrate(
        &net,
        restored,
        "INT",
        &snap2,
        None,
        &net.b,
        &net.a,
        &mut client,
        &more,
        &aot,
    )?;
    sent.extend_from_slice(&more);

    client.shutdown(Shutdown::Write)?;
    let t = Instant::now();
    let mut echoed = Vec::new();
    let read = client.read_to_end(&mut echoed);
    eprintln!(
        "read {} bytes to the end in {:?}: {read:?}",
        echoed.len(),
        t.elapsed()
    );
    let ran = back.wait()?;
    read.with_context(|| format!("the client's read failed; last restore:\n{}", ran.stderr))?;
    ran.expect_code(3, "the guest back in A")?;
    ensure!(client.local_addr()? == local, "the client's socket changed");
    ensure!(
        echoed.len() == sent.len(),
        "echoed {} bytes of {} sent",
        echoed.len(),
        sent.len()
    );
    ensure!(echoed == sent, "the echo differs from what was sent");
    Ok(())
}
