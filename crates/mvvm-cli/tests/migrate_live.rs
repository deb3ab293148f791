//! Pre-copy live migration (`mvvm-checkpoint --live -o ADDR -s PORT` to
//! the usual `mvvm-restore -i ADDR -e PORT`): `bench/wasm/memfill.wasm`
//! keeps writing an 8 MiB working set slowly (`-w 8 -d USEC`) while its
//! whole memory is pre-copied; the migrated output must equal an
//! uninterrupted run, and the part sent while stopped must be smaller
//! than the first round (no timing is asserted). Also: programs with
//! threads, a keyed chain (a restore forwarding with `--live`). Also: the same between
//! two network namespaces (through `scripts/netns/downtime.sh --live`),
//! and a receiver fed a cut or altered live stream refuses it cleanly.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{
    CHECKPOINTED, FAILURE, Guest, Policy, Ran, Tool, accept_within, aot, baseline,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// A free loopback port (bound, then released for a tool to take).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free port below the kernel's ephemeral range (which starts at 32768
/// by default), where no test's `bind(0)` listener and no outgoing
/// connection can land meanwhile: a port that must stay without a
/// listener. (One from [`free_port`] was once taken by a parallel test's
/// listener between its release and its use.)
fn port_nobody_takes() -> Result<u16> {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (start..32_000)
        .chain(20_000..start)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .context("no free port between 20000 and 32000")
}

/// memfill compiled with the counter-loop policy (a poll every 2^16
/// iterations: few probes, cheap counting).
fn memfill() -> Result<PathBuf> {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/wasm/memfill.wasm");
    aot(
        wasm.to_str().context("UTF-8 path")?,
        Policy::CounterLoop(16),
        3,
    )
}

/// memfill's arguments: `mib` of memory, `passes` over an 8 MiB working
/// set, sleeping `delay_us` per MiB written.
fn workload(mib: u64, passes: u64, delay_us: u64) -> Guest {
    Guest {
        args: vec![
            "-m".into(),
            mib.to_string(),
            "-p".into(),
            passes.to_string(),
            "-w".into(),
            "8".into(),
            "-d".into(),
            delay_us.to_string(),
        ],
        ..Default::default()
    }
}

/// A `--live` sender of `aot` running `guest` to port `port` of the
/// loopback, triggered at probe `count`.
fn live_sender(aot: &Path, guest: Guest, port: u16, count: &str) -> Tool {
    Tool::checkpoint(aot)
        .args(guest.flags(Path::new(".")))
        .args([
            "-o",
            "127.0.0.1",
            "-s",
            &port.to_string(),
            "--live",
            "-c",
            count,
        ])
}

/// The numbers of the `"live"` object of a sender's summary.
struct LiveSummary {
    round_bytes: Vec<u64>,
    final_bytes: u64,
}

fn live_summary(r: &Ran) -> Result<LiveSummary> {
    let json = r.json.clone().unwrap_or_default();
    let live = json
        .split("\"live\":")
        .nth(1)
        .with_context(|| format!("no live object in {json}"))?;
    let rounds = live
        .split("\"round_bytes\":[")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .with_context(|| format!("no round_bytes in {json}"))?;
    let round_bytes = rounds
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()?;
    let final_bytes = live
        .split("\"final_bytes\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no final_bytes in {json}"))?;
    Ok(LiveSummary {
        round_bytes,
        final_bytes,
    })
}

/// The probe count at which to trigger: a quarter into the passes (the
/// fill's polls come from a run without passes).
/// Returns it with the uninterrupted run.
fn trigger_point(
    aot: &Path,
    mib: u64,
    passes: u64,
    delay_us: u64,
) -> Result<(u64, checkpoint_support::Baseline)> {
    let fill = baseline(aot, &workload(mib, 0, delay_us))?.probes;
    let whole = baseline(aot, &workload(mib, passes, delay_us))?;
    ensure!(whole.probes > fill, "{} <= {fill}", whole.probes);
    Ok((fill + (whole.probes - fill) / 4, whole))
}

/// The size tests run one at a time: each keeps a core busy copying, and
/// a program that ends before its pre-copy does cannot be migrated.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Migrates memfill at `mib` MiB with `--live` over loopback and checks
/// the result.
fn live_migration(mib: u64, passes: u64, delay_us: u64) -> Result<()> {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let aot = memfill()?;
    let guest = workload(mib, passes, delay_us);
    let (c, base) = trigger_point(&aot, mib, passes, delay_us)?;
    let port = free_port()?;
    let mut restore = Tool::restore(&aot)
        .args(["-i", "127.0.0.1", "-e", &port.to_string(), "-v"])
        .spawn()?;
    restore.wait_for_stderr("waiting for a snapshot")?;
    let a = Tool::checkpoint(&aot)
        .args(guest.flags(Path::new(".")))
        .args(["-o", "127.0.0.1", "-s", &port.to_string(), "--live"])
        .args(["-c", &c.to_string()])
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint --live")?;
    let b = restore.wait()?;
    b.expect_code(base.code, "restore of a live stream")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "migrated output differs:\n{}\nvs\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&base.stdout)
    );
    let live = live_summary(&a)?;
    let first = *live.round_bytes.first().context("no pre-copy round")?;
    ensure!(
        first >= mib << 20,
        "round 0 ({first} bytes) is not the whole {mib} MiB"
    );
    let last = *live.round_bytes.last().unwrap_or(&first);
    ensure!(
        live.round_bytes.len() == 1 || last < first,
        "last round {last} not smaller than the first {first}: {:?}",
        live.round_bytes
    );
    ensure!(
        live.final_bytes < first,
        "the stopped part ({} bytes) is not smaller than the first round ({first})",
        live.final_bytes
    );
    ensure!(
        a.stderr.contains("live migration:") && a.stderr.contains("paused"),
        "{}",
        a.stderr
    );
    ensure!(
        b.stderr
            .contains("after the checkpoint's trigger (downtime"),
        "{}",
        b.stderr
    );
    ensure!(
        b.json
            .as_deref()
            .is_some_and(|j| j.contains("\"downtime_ms\":") && !j.contains("\"downtime_ms\":null")),
        "{:?}",
        b.json
    );
    eprintln!(
        "{mib} MiB: rounds {:?}, final {} bytes",
        live.round_bytes, live.final_bytes
    );
    Ok(())
}

#[test]
fn live_migration_64_mib() -> Result<()> {
    live_migration(64, 12, 15_000)
}

#[test]
fn live_migration_256_mib() -> Result<()> {
    live_migration(256, 24, 15_000)
}

#[test]
fn live_migration_1_gib() -> Result<()> {
    live_migration(1024, 60, 20_000)
}

/// `--key` on both sides: the live stream goes through the sealed
/// transport (its PAD records push each round's end through it, so the
/// receiver's acknowledgements work too); and a chain A → B → C where B,
/// a restore, forwards its next checkpoint with `-o/-s --live`.
#[test]
fn keyed_live_chain() -> Result<()> {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let aot = memfill()?;
    let (c, base) = trigger_point(&aot, 32, 24, 15_000)?;
    let guest = workload(32, 24, 15_000);
    let key =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("live-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&key);
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_mvvm-restore"))
        .arg("--new-key")
        .arg(&key)
        .status()?;
    ensure!(st.success(), "--new-key: {st:?}");
    let key = key.to_str().context("UTF-8 path")?.to_owned();
    let (p1, p2) = (free_port()?, free_port()?);
    let mut third = Tool::restore(&aot)
        .args([
            "-i",
            "127.0.0.1",
            "-e",
            &p2.to_string(),
            "--key",
            &key,
            "-v",
        ])
        .spawn()?;
    third.wait_for_stderr("waiting for a snapshot")?;
    // B checkpoints again 4 polls (a quarter pass) after it resumed.
    let mut second = Tool::restore(&aot)
        .args(["-i", "127.0.0.1", "-e", &p1.to_string(), "--key", &key])
        .args([
            "-c",
            "4",
            "-o",
            "127.0.0.1",
            "-s",
            &p2.to_string(),
            "--live",
        ])
        .spawn()?;
    second.wait_for_stderr("waiting for a snapshot")?;
    let a = Tool::checkpoint(&aot)
        .args(guest.flags(Path::new(".")))
        .args([
            "-o",
            "127.0.0.1",
            "-s",
            &p1.to_string(),
            "--key",
            &key,
            "--live",
        ])
        .args(["-c", &c.to_string()])
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint --live --key")?;
    let b = second.wait()?;
    b.expect_code(CHECKPOINTED, "restore forwarding --live")?;
    let c3 = third.wait()?;
    c3.expect_code(base.code, "last restore")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    out.extend_from_slice(&c3.stdout);
    ensure!(out == base.stdout, "output of the chain differs");
    for (who, r) in [("A", &a), ("B", &b)] {
        let live = live_summary(r).with_context(|| format!("{who}: {}", r.stderr))?;
        ensure!(!live.round_bytes.is_empty(), "{who}: no pre-copy round");
    }
    ensure!(c3.stderr.contains("downtime"), "{}", c3.stderr);
    Ok(())
}

/// Programs with threads (wasi-threads, one shared memory that every
/// thread writes): pre-copied like the others (every thread's writes
/// fault into the same tracker), stopped with all their threads, and
/// they finish as their native builds do (`test/threads/NAME.expected`).
#[test]
fn live_migration_of_threads() -> Result<()> {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/threads");
    for name in ["jacobi-2d_mt", "bc_mt"] {
        let wasm = dir.join(format!("{name}.wasm"));
        let expected = std::fs::read(dir.join(format!("{name}.expected")))?;
        let aot = aot(wasm.to_str().context("UTF-8 path")?, Policy::Loop, 2)?;
        let base = baseline(&aot, &Guest::default())?;
        ensure!(base.stdout == expected, "{name}: baseline differs");
        let port = free_port()?;
        let mut restore = Tool::restore(&aot)
            .args(["-i", "127.0.0.1", "-e", &port.to_string()])
            .spawn()?;
        restore.wait_for_stderr("waiting for a snapshot")?;
        let a = Tool::checkpoint(&aot)
            .args(["-o", "127.0.0.1", "-s", &port.to_string(), "--live"])
            .args(["-c", &(base.probes / 2).to_string()])
            .run()?;
        a.expect_code(CHECKPOINTED, &format!("{name} --live"))?;
        let b = restore.wait()?;
        b.expect_code(0, &format!("{name} restored"))?;
        let mut out = a.stdout.clone();
        out.extend_from_slice(&b.stdout);
        ensure!(
            out == expected,
            "{name}: migrated output differs:\n{}",
            String::from_utf8_lossy(&out)
        );
        let live = live_summary(&a)?;
        ensure!(!live.round_bytes.is_empty(), "{name}: no pre-copy round");
    }
    Ok(())
}

/// `--max-rounds` needs `--live`, which needs `-o`; `--live` does not go
/// with `--every`.
#[test]
fn live_flag_usage() -> Result<()> {
    let aot = memfill()?;
    for args in [
        &["--live"][..],
        &["--max-rounds", "3"],
        &["-o", "127.0.0.1", "-s", "1", "--live", "--max-rounds", "0"],
    ] {
        let r = Tool::checkpoint(&aot).args(args).run()?;
        r.expect_code(2, &format!("checkpoint {args:?}"))?;
    }
    let r = Tool::checkpoint(&aot)
        .args(["-o", "127.0.0.1", "-s", "1", "--live", "--every", "1"])
        .run()?;
    ensure!(
        r.code() != Some(0) && r.stderr.contains("--every"),
        "{}",
        r.stderr
    );
    // Nobody listening: the pre-copy thread cannot connect, the program
    // stops and the tool says so (exit 125), as without --live.
    let port = port_nobody_takes()?;
    let r = live_sender(&aot, workload(16, 4, 0), port, "3").run()?;
    r.expect_code(FAILURE, "--live to nobody")?;
    ensure!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    Ok(())
}

/// A program that ends while pre-copying (here: the receiver never
/// acknowledges round 0, so pre-copy waits until the program has ended)
/// exits with its own status, and the sender says nothing was migrated.
#[test]
fn a_program_ending_while_pre_copying_says_nothing_was_migrated() -> Result<()> {
    let aot = memfill()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let drain = std::thread::spawn(move || -> Result<u64> {
        let mut s = accept_within(&listener)?;
        let mut sink = Vec::new();
        Ok(s.read_to_end(&mut sink)? as u64)
    });
    let r = live_sender(&aot, workload(16, 2, 0), port, "3").run()?;
    r.expect_code(0, "program ending while pre-copying")?;
    ensure!(
        r.stderr
            .contains("ended while pre-copying; nothing was migrated"),
        "{}",
        r.stderr
    );
    let got = drain.join().expect("drain thread")?;
    ensure!(got > 0, "the receiver got nothing: pre-copy never started");
    Ok(())
}

/// What a relay does to the stream it forwards.
#[derive(Clone, Copy)]
enum Damage {
    /// Close both sides after this many bytes.
    CutAt(u64),
    /// Flip the low bit of the byte at this offset.
    FlipAt(u64),
}

/// Accepts the sender on `from`, connects to `to`, forwards with `damage`.
fn relay(from: TcpListener, to: u16, damage: Damage) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut a) = accept_within(&from) else {
            return;
        };
        let Ok(mut b) = TcpStream::connect(("127.0.0.1", to)) else {
            return;
        };
        let mut buf = vec![0u8; 1 << 16];
        let mut pos = 0u64;
        loop {
            let n = match a.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let piece = &mut buf[..n];
            match damage {
                Damage::CutAt(at) if pos + n as u64 >= at => {
                    let keep = (at - pos) as usize;
                    let _ = b.write_all(&piece[..keep]);
                    break;
                }
                Damage::FlipAt(at) if (pos..pos + n as u64).contains(&at) => {
                    piece[(at - pos) as usize] ^= 1;
                }
                _ => {}
            }
            if b.write_all(piece).is_err() {
                break;
            }
            pos += n as u64;
        }
        let _ = b.shutdown(std::net::Shutdown::Both);
        let _ = a.shutdown(std::net::Shutdown::Both);
    })
}

/// A receiver fed a live stream that is cut (in the preamble, in the
/// first round, in the final part) or altered (a chunk's byte, a record
/// header's byte) refuses it: exit 125, "nothing was resumed", no guest
/// output; never a hang.
#[test]
fn damaged_live_streams_are_refused() -> Result<()> {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let aot = memfill()?;
    let guest = workload(16, 8, 5_000);
    let (c, _) = trigger_point(&aot, 16, 8, 5_000)?;
    // Offsets in the stream: the preamble is 48 bytes, the first record's
    // header 25, then its data.
    for damage in [
        Damage::CutAt(20),
        Damage::CutAt(48 + 25 + 70_000),
        Damage::CutAt(16 << 20),
        Damage::FlipAt(48 + 25 + 1000),
        Damage::FlipAt(48 + 10),
        Damage::FlipAt(5),
    ] {
        let port = free_port()?;
        let mut restore = Tool::restore(&aot)
            .args(["-i", "127.0.0.1", "-e", &port.to_string()])
            .spawn()?;
        restore.wait_for_stderr("waiting for a snapshot")?;
        let front = TcpListener::bind("127.0.0.1:0")?;
        let front_port = front.local_addr()?.port();
        let relay = relay(front, port, damage);
        let a = Tool::checkpoint(&aot)
            .args(guest.flags(Path::new(".")))
            .args(["-o", "127.0.0.1", "-s", &front_port.to_string(), "--live"])
            .args(["-c", &c.to_string()])
            .run()?;
        let b = restore.wait()?;
        let _ = relay.join();
        b.expect_code(FAILURE, "restore of a damaged live stream")?;
        ensure!(
            b.stderr.contains("nothing was resumed") && b.stdout.is_empty(),
            "{}",
            b.stderr
        );
        // The sender either stopped and sent (then its peer went away)
        // or failed to send: never a hang, never a crash by signal.
        ensure!(a.code().is_some(), "sender killed: {}", a.stderr);
    }
    Ok(())
}

/// `scripts/netns/downtime.sh --live` at 64 MiB between two network
/// namespaces (root and `ip netns`; skipped with the reason otherwise,
/// failing under CI=true).
#[test]
fn live_migration_between_network_namespaces() -> Result<()> {
    let line = checkpoint_support::netns_script::netns_line(
        &["--sizes", "64", "--live"],
        240,
        "the network-namespace live migration",
    )?;
    if let Some(line) = line {
        ensure!(line.contains("live rounds"), "{line}");
    }
    Ok(())
}

/// A receiver that accepts and then reads nothing does not hold the
/// sender forever: once it has taken no data for the stall timeout
/// (`MVVM_NET_TIMEOUT`, 2 s here) the send fails with an error that says
/// so (exit 125), with and without `--live`.
#[test]
fn a_receiver_that_stops_reading_fails_the_send() -> Result<()> {
    let aot = memfill()?;
    for live in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || -> Result<()> {
            let _held = accept_within(&listener)?;
            // Keep the connection open, unread, until the sender is done.
            let _ = wait.recv_timeout(std::time::Duration::from_secs(120));
            Ok(())
        });
        // Late, once the whole memory is written (more than the socket
        // buffers hold). Live: with a program that runs well past the
        // stall timeout (about 15 s more; a program that ends first only
        // gets the warning of the test above) and stops at the next probe
        // once pre-copy has failed.
        let (guest, count) = if live {
            (workload(64, 100, 20_000), "100")
        } else {
            (workload(64, 4, 0), "100")
        };
        let mut tool = Tool::checkpoint(&aot)
            .args(guest.flags(Path::new(".")))
            .env("MVVM_NET_TIMEOUT", "2")
            .args(["-o", "127.0.0.1", "-s", &port.to_string(), "-c", count]);
        if live {
            tool = tool.arg("--live");
        }
        let r = tool.run()?;
        let _ = done.send(());
        holder.join().expect("holder thread")?;
        r.expect_code(FAILURE, &format!("stalled receiver, live {live}"))?;
        ensure!(
            r.stderr.contains("took no data for 2 s"),
            "live {live}: {}",
            r.stderr
        );
    }
    Ok(())
}
