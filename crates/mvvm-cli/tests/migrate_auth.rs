//! `--key`: authenticated TCP migration and sealed snapshot files.
//!
//! Every refusal must come from the receiver (exit 125) before anything of
//! the guest runs: a restore that refuses prints nothing on stdout. The
//! man-in-the-middle cases run a relay thread between `mvvm-checkpoint -o`
//! and `mvvm-restore -i` that flips a byte, cuts the stream, or records a
//! session to replay it to a fresh receiver. Loopback only (plus one
//! listener on 0.0.0.0, reached through 127.0.0.1).

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::{
    Baseline, CHECKPOINTED, FAILURE, Guest, Policy, Ran, Running, Scratch, Tool, accept_within,
    aot, baseline,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A free loopback port (bound, then released for a tool to take).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh key written by `mvvm-restore --new-key` into `s`.
fn new_key(s: &Scratch, name: &str) -> Result<PathBuf> {
    let p = s.join(name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mvvm-restore"))
        .arg("--new-key")
        .arg(&p)
        .output()?;
    ensure!(
        out.status.success(),
        "--new-key failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(p)
}

/// `--key PATH`.
fn key_flag(p: &Path) -> Vec<String> {
    vec!["--key".into(), p.to_string_lossy().into_owned()]
}

/// `mvvm-restore -t AOT -i ADDR -e PORT` plus `extra`, once it listens.
fn listening(aot: &Path, addr: &str, port: u16, extra: &[String]) -> Result<Running> {
    let mut r = Tool::restore(aot)
        .args(["-i", addr, "-e", &port.to_string()])
        .args(extra)
        .spawn()?;
    r.wait_for_stderr("waiting for a snapshot")?;
    Ok(r)
}

/// `mvvm-checkpoint -o 127.0.0.1 -s PORT -c C` plus `extra`.
fn sender(aot: &Path, port: u16, c: u64, extra: &[String]) -> Tool {
    Tool::checkpoint(aot)
        .args(["-o", "127.0.0.1", "-s", &port.to_string()])
        .count(c)
        .args(extra)
}

/// The restore refused (125) and ran nothing; its stderr names `why`.
fn refused(r: &Ran, why: &str, what: &str) -> Result<()> {
    r.expect_code(FAILURE, what)?;
    ensure!(
        r.stdout.is_empty(),
        "{what}: the receiver ran the program: {:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    ensure!(
        r.stderr.contains(why),
        "{what}: stderr lacks `{why}`:\n{}",
        r.stderr
    );
    Ok(())
}

/// The sender's and receiver's outputs add up to the uninterrupted run.
fn same_as_baseline(a: &Ran, b: &Ran, base: &Baseline, what: &str) -> Result<()> {
    a.expect_code(CHECKPOINTED, &format!("{what}: checkpoint"))?;
    b.expect_code(base.code, &format!("{what}: restore"))?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "{what}: output differs\n--- sender:\n{}\n--- receiver:\n{}\n--- receiver stderr:\n{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
        b.stderr
    );
    Ok(())
}

/// The program of these tests, its uninterrupted run, and a checkpoint
/// position in its middle.
fn program() -> Result<(PathBuf, Baseline, u64)> {
    let aot = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let c = base.probes / 2;
    Ok((aot, base, c))
}

#[test]
fn keyed_tcp_migration_finishes_like_an_uninterrupted_run() -> Result<()> {
    let (aot, base, c) = program()?;
    let s = Scratch::new("auth-ok");
    let key = new_key(&s, "key")?;
    let port = free_port()?;
    let restore = listening(&aot, "127.0.0.1", port, &key_flag(&key))?;
    let a = sender(&aot, port, c, &key_flag(&key)).run()?;
    let b = restore.wait()?;
    same_as_baseline(&a, &b, &base, "keyed migration")
}

/// A → B → A with the key: B's own checkpoint is authenticated too.
#[test]
fn a_keyed_chain_forwards_with_the_key() -> Result<()> {
    let (aot, base, _) = program()?;
    let c = base.probes / 3;
    let s = Scratch::new("auth-chain");
    let key = new_key(&s, "key")?;
    let (p1, p2) = (free_port()?, free_port()?);
    let third = listening(&aot, "127.0.0.1", p2, &key_flag(&key))?;
    let mut forward = vec![
        "-o".to_string(),
        "127.0.0.1".into(),
        "-s".into(),
        p2.to_string(),
        "-c".into(),
        c.to_string(),
    ];
    forward.extend(key_flag(&key));
    let second = listening(&aot, "127.0.0.1", p1, &forward)?;
    let first = sender(&aot, p1, c, &key_flag(&key)).run()?;
    first.expect_code(CHECKPOINTED, "A: checkpoint")?;
    let second = second.wait()?;
    second.expect_code(CHECKPOINTED, "B: restore and checkpoint")?;
    let third = third.wait()?;
    third.expect_code(base.code, "A again: restore")?;
    let mut out = first.stdout.clone();
    out.extend_from_slice(&second.stdout);
    out.extend_from_slice(&third.stdout);
    ensure!(out == base.stdout, "output differs");
    Ok(())
}

#[test]
fn a_wrong_key_is_refused_on_both_sides() -> Result<()> {
    let (aot, _, c) = program()?;
    let s = Scratch::new("auth-wrong");
    let (k1, k2) = (new_key(&s, "k1")?, new_key(&s, "k2")?);
    let port = free_port()?;
    let restore = listening(&aot, "127.0.0.1", port, &key_flag(&k1))?;
    let a = sender(&aot, port, c, &key_flag(&k2)).run()?;
    a.expect_code(FAILURE, "sender with another key")?;
    ensure!(a.stderr.contains("does not hold this key"), "{}", a.stderr);
    let b = restore.wait()?;
    refused(
        &b,
        "nothing was resumed",
        "receiver, sender with another key",
    )
}

#[test]
fn a_sender_without_the_key_is_refused() -> Result<()> {
    let (aot, _, c) = program()?;
    let s = Scratch::new("auth-nokey");
    let key = new_key(&s, "key")?;
    let port = free_port()?;
    let restore = listening(&aot, "127.0.0.1", port, &key_flag(&key))?;
    let _ = sender(&aot, port, c, &[]).run()?;
    let b = restore.wait()?;
    refused(
        &b,
        "unsealed snapshot instead of authenticating",
        "sender without --key",
    )
}

#[test]
fn a_receiver_without_the_key_refuses_a_keyed_sender() -> Result<()> {
    let (aot, _, c) = program()?;
    let s = Scratch::new("auth-rnokey");
    let key = new_key(&s, "key")?;
    let port = free_port()?;
    let restore = listening(&aot, "127.0.0.1", port, &[])?;
    let a = sender(&aot, port, c, &key_flag(&key)).run()?;
    a.expect_code(FAILURE, "keyed sender to an unkeyed receiver")?;
    ensure!(
        a.stderr.contains("was the receiver started with --key?"),
        "{}",
        a.stderr
    );
    let b = restore.wait()?;
    refused(
        &b,
        "give mvvm-restore the same --key",
        "receiver without --key",
    )
}

/// What the relay does to the sender → receiver direction.
#[derive(Clone, Copy)]
enum Attack {
    /// Flip one bit of the byte at this offset.
    Flip(usize),
    /// Pass this many bytes, then close both connections.
    Cut(usize),
    /// Pass everything (and record it).
    Record,
}

/// A relay between a sender (connecting to its port) and a receiver at
/// `to`; returns its port and the thread, which gives back what went from
/// the sender to the receiver.
fn relay(to: u16, attack: Attack) -> Result<(u16, JoinHandle<Vec<u8>>)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let t = std::thread::spawn(move || {
        let Ok(mut from_sender) = accept_within(&l) else {
            return Vec::new();
        };
        let Ok(mut to_receiver) = TcpStream::connect(("127.0.0.1", to)) else {
            return Vec::new();
        };
        // Receiver → sender: passed as is.
        let back = match (to_receiver.try_clone(), from_sender.try_clone()) {
            (Ok(mut r), Ok(mut s)) => Some(std::thread::spawn(move || {
                let _ = std::io::copy(&mut r, &mut s);
                let _ = s.shutdown(Shutdown::Write);
            })),
            _ => None,
        };
        let mut log = Vec::new();
        let mut seen = 0usize;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match from_sender.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let piece = &mut buf[..n];
            let mut keep = n;
            match attack {
                Attack::Flip(at) if (seen..seen + n).contains(&at) => piece[at - seen] ^= 0x04,
                Attack::Cut(cut) if seen + n >= cut => keep = cut - seen,
                _ => {}
            }
            log.extend_from_slice(&piece[..keep]);
            if to_receiver.write_all(&piece[..keep]).is_err() {
                break;
            }
            seen += n;
            if keep < n {
                break;
            }
        }
        let _ = to_receiver.shutdown(Shutdown::Both);
        let _ = from_sender.shutdown(Shutdown::Both);
        if let Some(b) = back {
            let _ = b.join();
        }
        log
    });
    Ok((port, t))
}

/// A keyed migration through a relay doing `attack`: the receiver's and
/// the sender's results, and the bytes that went to the receiver.
fn through_relay(attack: Attack) -> Result<(Ran, Ran, Vec<u8>)> {
    let (aot, _, c) = program()?;
    let s = Scratch::new("auth-mitm");
    let key = new_key(&s, "key")?;
    let rport = free_port()?;
    let restore = listening(&aot, "127.0.0.1", rport, &key_flag(&key))?;
    let (lport, t) = relay(rport, attack)?;
    let a = sender(&aot, lport, c, &key_flag(&key)).run()?;
    let b = restore.wait()?;
    let wire = t.join().map_err(|_| anyhow::anyhow!("relay panicked"))?;
    Ok((b, a, wire))
}

#[test]
fn a_byte_flipped_in_transit_is_refused() -> Result<()> {
    // Past the handshake (42 + 32 bytes from the sender), inside the
    // snapshot's records.
    let (b, _, _) = through_relay(Attack::Flip(50_000))?;
    refused(&b, "failed authentication", "flipped byte")?;
    // Also inside the handshake: the sender's proof.
    let (b, _, _) = through_relay(Attack::Flip(60))?;
    refused(&b, "does not hold this key", "flipped proof")
}

#[test]
fn a_stream_cut_in_transit_is_refused() -> Result<()> {
    let (b, a, wire) = through_relay(Attack::Cut(100_000))?;
    ensure!(wire.len() == 100_000, "relay passed {} bytes", wire.len());
    // The sender may have handed everything to the kernel before the
    // relay cut (75), or see the connection close under it (125).
    ensure!(
        matches!(a.code(), Some(CHECKPOINTED | FAILURE)),
        "sender: {:?}\n{}",
        a.status,
        a.stderr
    );
    refused(&b, "ended before its final record", "cut stream")
}

#[test]
fn a_recorded_session_replayed_to_a_fresh_receiver_is_refused() -> Result<()> {
    let (aot, base, c) = program()?;
    // Record a keyed session that succeeds.
    let s = Scratch::new("auth-replay");
    let key = new_key(&s, "key")?;
    let rport = free_port()?;
    let restore = listening(&aot, "127.0.0.1", rport, &key_flag(&key))?;
    let (lport, t) = relay(rport, Attack::Record)?;
    let a = sender(&aot, lport, c, &key_flag(&key)).run()?;
    let b = restore.wait()?;
    same_as_baseline(&a, &b, &base, "second recorded session")?;
    let recorded = t.join().map_err(|_| anyhow::anyhow!("relay panicked"))?;
    ensure!(
        recorded.len() > 100_000,
        "only {} bytes recorded",
        recorded.len()
    );
    // Replay it, byte for byte, to a fresh receiver with the same key.
    let rport = free_port()?;
    let fresh = listening(&aot, "127.0.0.1", rport, &key_flag(&key))?;
    let mut conn = TcpStream::connect(("127.0.0.1", rport))?;
    let mut drain = conn.try_clone()?;
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = drain.read_to_end(&mut v);
        v
    });
    let _ = conn.write_all(&recorded);
    let _ = conn.shutdown(Shutdown::Write);
    let r = fresh.wait()?;
    let answer = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    ensure!(
        answer.len() == 74,
        "receiver answered {} bytes",
        answer.len()
    );
    refused(&r, "session is a replay", "replayed session")
}

#[test]
fn listening_beyond_loopback_needs_a_key_or_insecure() -> Result<()> {
    let (aot, base, c) = program()?;
    let port = free_port()?;
    // Refused before binding anything.
    let r = Tool::restore(&aot)
        .args(["-i", "0.0.0.0", "-e", &port.to_string()])
        .run()?;
    refused(&r, "--insecure", "0.0.0.0 without --key")?;
    ensure!(!r.stderr.contains("waiting for a snapshot"), "{}", r.stderr);
    // --insecure: it listens, says the transfer is unauthenticated, works.
    let restore = listening(&aot, "0.0.0.0", port, &["--insecure".into()])?;
    let a = sender(&aot, port, c, &[]).run()?;
    let b = restore.wait()?;
    ensure!(b.stderr.contains("unauthenticated"), "{}", b.stderr);
    same_as_baseline(&a, &b, &base, "--insecure on 0.0.0.0")?;
    // --key: no warning needed, works.
    let s = Scratch::new("auth-any");
    let key = new_key(&s, "key")?;
    let port = free_port()?;
    let restore = listening(&aot, "0.0.0.0", port, &key_flag(&key))?;
    let a = sender(&aot, port, c, &key_flag(&key)).run()?;
    let b = restore.wait()?;
    ensure!(!b.stderr.contains("unauthenticated"), "{}", b.stderr);
    same_as_baseline(&a, &b, &base, "--key on 0.0.0.0")?;
    // --insecure and --key together: a usage error.
    let r = Tool::restore(&aot)
        .args(["-i", "0.0.0.0", "-e", "1", "--insecure"])
        .args(key_flag(&key))
        .run()?;
    r.expect_code(2, "--insecure with --key")
}

/// Checkpoints the program to a file `snap.bin` in `s` with `extra` flags.
fn checkpoint_to_file(aot: &Path, s: &Scratch, c: u64, extra: &[String]) -> Result<(Ran, PathBuf)> {
    let snap = s.join("snap.bin");
    let a = Tool::checkpoint(aot)
        .count(c)
        .snapshot(&snap)
        .args(extra)
        .current_dir(&s.0)
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint to a file")?;
    Ok((a, snap))
}

fn restore_file(aot: &Path, s: &Scratch, snap: &Path, extra: &[String]) -> Result<Ran> {
    Tool::restore(aot)
        .snapshot(snap)
        .args(extra)
        .current_dir(&s.0)
        .run()
}

#[test]
fn a_sealed_file_restores_with_the_key() -> Result<()> {
    let (aot, base, c) = program()?;
    let s = Scratch::new("seal-ok");
    let key = new_key(&s, "key")?;
    let (a, snap) = checkpoint_to_file(&aot, &s, c, &key_flag(&key))?;
    let bytes = std::fs::read(&snap)?;
    ensure!(bytes.starts_with(b"MVVMSEAL"), "not sealed");
    // Atomic write: nothing else left beside it.
    let names: Vec<String> = std::fs::read_dir(&s.0)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    ensure!(
        names
            .iter()
            .all(|n| ["label", "key", "snap.bin"].contains(&n.as_str())),
        "{names:?}"
    );
    let b = restore_file(&aot, &s, &snap, &key_flag(&key))?;
    same_as_baseline(&a, &b, &base, "sealed file")
}

#[test]
fn sealed_file_refusals() -> Result<()> {
    let (aot, _, c) = program()?;
    let s = Scratch::new("seal-bad");
    let key = new_key(&s, "key")?;
    let other = new_key(&s, "other")?;
    let (_, snap) = checkpoint_to_file(&aot, &s, c, &key_flag(&key))?;
    let sealed = std::fs::read(&snap)?;

    // Without --key: sealed, needs the key.
    let r = restore_file(&aot, &s, &snap, &[])?;
    refused(&r, "is sealed", "sealed file without --key")?;
    // Another key.
    let r = restore_file(&aot, &s, &snap, &key_flag(&other))?;
    refused(&r, "sealed with another key", "sealed file, other key")?;
    // One byte altered, in the middle and near the end.
    for at in [sealed.len() / 2, sealed.len() - 3] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        let p = s.join("altered.bin");
        std::fs::write(&p, &bad)?;
        let r = restore_file(&aot, &s, &p, &key_flag(&key))?;
        refused(&r, "failed authentication", &format!("byte {at} altered"))?;
    }
    // Truncated at a record boundary-ish point.
    let p = s.join("cut.bin");
    std::fs::write(&p, &sealed[..sealed.len() - 40])?;
    let r = restore_file(&aot, &s, &p, &key_flag(&key))?;
    refused(&r, "ended before its final record", "truncated sealed file")?;
    // An unsealed snapshot with --key.
    let (_, plain) = checkpoint_to_file(&aot, &s, c, &[])?;
    let r = restore_file(&aot, &s, &plain, &key_flag(&key))?;
    refused(&r, "unsealed snapshot", "unsealed file with --key")
}

#[test]
fn a_sealed_stream_through_a_fifo() -> Result<()> {
    let (aot, base, c) = program()?;
    let s = Scratch::new("seal-fifo");
    let key = new_key(&s, "key")?;
    let fifo = s.join("snap.fifo");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    ensure!(st.success(), "mkfifo failed");
    let restore = Tool::restore(&aot)
        .snapshot(&fifo)
        .args(key_flag(&key))
        .current_dir(&s.0)
        .spawn()?;
    let a = Tool::checkpoint(&aot)
        .count(c)
        .snapshot(&fifo)
        .args(key_flag(&key))
        .current_dir(&s.0)
        .run()?;
    let b = restore.wait()?;
    same_as_baseline(&a, &b, &base, "sealed FIFO")
}

#[test]
fn key_files_and_combinations_are_checked() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (aot, _, c) = program()?;
    let s = Scratch::new("seal-keys");
    let loose = s.join("loose");
    std::fs::write(&loose, "00".repeat(32))?;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644))?;
    let r = Tool::checkpoint(&aot)
        .count(c)
        .args(key_flag(&loose))
        .run()?;
    r.expect_code(FAILURE, "key readable by others")?;
    ensure!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    ensure!(r.stdout.is_empty(), "the program ran");
    let short = s.join("short");
    std::fs::write(&short, "00".repeat(16))?;
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600))?;
    let r = Tool::restore(&aot).args(key_flag(&short)).run()?;
    refused(&r, "16 bytes", "short key")?;
    let key = new_key(&s, "key")?;
    // --new-key never replaces a key.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_mvvm-checkpoint"))
        .arg("--new-key")
        .arg(&key)
        .output()?;
    ensure!(again.status.code() == Some(FAILURE), "{:?}", again.status);
    let r = Tool::checkpoint(&aot)
        .args(["--every", "1"])
        .args(key_flag(&key))
        .run()?;
    r.expect_code(FAILURE, "--every with --key")?;
    ensure!(r.stderr.contains("does not combine"), "{}", r.stderr);
    ensure!(r.stdout.is_empty(), "the program ran");
    Ok(())
}
