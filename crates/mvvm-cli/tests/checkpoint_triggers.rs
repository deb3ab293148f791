//! The triggers other than `-c` (SIGUSR1, SIGINT, a second SIGINT,
//! `--after`, `-f FUNC -x N`), a checkpoint while the guest sleeps, chains
//! (a restored run checkpointed again), restores into other compilations
//! of the same wasm, the default snapshot path, and usage errors.

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::*;
use std::path::Path;
use std::time::Duration;

/// Rounds of `long.c` for the signal and timer tests: long enough that a
/// signal sent once it has started arrives well before the end (about a
/// second uninterrupted), short enough to keep the suite fast.
const LONG_ROUNDS: &str = "150";

fn long_guest() -> Guest {
    Guest {
        args: vec![LONG_ROUNDS.into()],
        ..Default::default()
    }
}

/// Restores `snap` with `aot` and requires the two parts to add up to
/// `base`.
fn restore_and_compare(aot: &Path, snap: &Path, first: &Ran, base: &Baseline) -> Result<Ran> {
    let b = Tool::restore(aot).snapshot(snap).run()?;
    b.expect_code(base.code, "restore")?;
    let mut out = first.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "output differs:\n--- first:\n{}\n--- restored:\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    Ok(b)
}

/// SIGUSR1 (and SIGINT) from outside: the snapshot appears, the process
/// exits 75, and restore completes the run.
fn signal_trigger(sig: &str, policy: Policy) -> Result<()> {
    let aot = aot("long", policy, 3)?;
    let base = baseline(&aot, &long_guest())?;
    let s = Scratch::new(&format!("sig{sig}"));
    let snap = s.join("long.bin");
    let mut run = Tool::checkpoint(&aot)
        .args(long_guest().flags(&s.0))
        .snapshot(&snap)
        .spawn()?;
    run.wait_for_stdout("started\n")?;
    std::thread::sleep(Duration::from_millis(50));
    run.signal(sig)?;
    let a = run.wait()?;
    a.expect_code(CHECKPOINTED, &format!("SIG{sig}"))?;
    ensure!(snap.is_file(), "no snapshot after SIG{sig}");
    ensure!(
        a.stderr.contains(snap.to_str().unwrap()),
        "stderr does not say where the snapshot is:\n{}",
        a.stderr
    );
    ensure!(
        a.stdout.len() < base.stdout.len(),
        "SIG{sig} arrived after the end"
    );
    restore_and_compare(&aot, &snap, &a, &base)?;
    Ok(())
}

#[test]
fn sigusr1_loop_policy() -> Result<()> {
    signal_trigger("USR1", Policy::Loop)
}

#[test]
fn sigint_function_policy() -> Result<()> {
    signal_trigger("INT", Policy::Function)
}

/// A loop without calls under the function-entry policy never reaches a
/// probe: the first SIGINT only asks, the second ends the process.
#[test]
fn second_sigint_ends_the_process() -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let s = Scratch::new("sigint2");
    let wat = s.join("spin.wat");
    std::fs::write(
        &wat,
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\n")
  (data (i32.const 0) "\10\00\00\00\06\00\00\00")
  (func (export "_start") (local i64)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $l
      (local.set 0 (i64.add (local.get 0) (i64.const 1)))
      (br_if $l (i64.ne (local.get 0) (i64.const -1))))))"#,
    )?;
    let aot = aot(wat.to_str().unwrap(), Policy::Function, 3)?;
    let mut run = Tool::checkpoint(&aot)
        .snapshot(&s.join("spin.bin"))
        .spawn()?;
    // Signals are armed before the guest runs: once it printed, they are.
    run.wait_for_stdout("ready\n")?;
    std::thread::sleep(Duration::from_millis(100));
    run.signal("INT")?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        !run.has_ended()?,
        "a first SIGINT without a probe ended the process"
    );
    run.signal("INT")?;
    let r = run.wait()?;
    ensure!(
        r.status.signal() == Some(2) || r.code() == Some(130),
        "second SIGINT: {:?}\n{}",
        r.status,
        r.stderr
    );
    ensure!(!s.join("spin.bin").exists(), "a snapshot was written");
    Ok(())
}

/// `--after SECONDS`: checkpoints in the middle of the run.
#[test]
fn after_timer() -> Result<()> {
    let aot = aot("long", Policy::CounterLoop(4), 3)?;
    let base = baseline(&aot, &long_guest())?;
    let s = Scratch::new("after");
    let snap = s.join("long.bin");
    let a = Tool::checkpoint(&aot)
        .args(long_guest().flags(&s.0))
        .arg("--after")
        .arg("0.2")
        .snapshot(&snap)
        .run()?;
    a.expect_code(CHECKPOINTED, "--after 0.2")?;
    ensure!(
        a.stdout.len() < base.stdout.len(),
        "the timer fired after the end"
    );
    restore_and_compare(&aot, &snap, &a, &base)?;
    Ok(())
}

/// A checkpoint while the guest sleeps in `nanosleep` (`poll_oneoff`):
/// the sleep is interrupted at once, and made again on restore.
#[test]
fn checkpoint_during_sleep() -> Result<()> {
    let aot = aot("sleeper", Policy::Loop, 3)?;
    let s = Scratch::new("sleep");
    let snap = s.join("sleeper.bin");
    let a = Tool::checkpoint(&aot)
        .args(["-a", "1500"])
        .arg("--after")
        .arg("0.2")
        .snapshot(&snap)
        .run()?;
    a.expect_code(CHECKPOINTED, "--after 0.2 during a sleep")?;
    ensure!(
        a.elapsed < Duration::from_millis(1200),
        "the sleep was not interrupted: {:?}",
        a.elapsed
    );
    ensure!(
        a.stdout == b"before sleep\n",
        "{:?}",
        String::from_utf8_lossy(&a.stdout)
    );
    let b = Tool::restore(&aot).snapshot(&snap).run()?;
    b.expect_code(3, "restore of the sleeper")?;
    ensure!(
        b.stdout == b"after sleep: 0\n",
        "{:?}",
        String::from_utf8_lossy(&b.stdout)
    );
    ensure!(
        b.elapsed >= Duration::from_millis(1000),
        "the sleep was not made again on restore: {:?}",
        b.elapsed
    );
    Ok(())
}

/// A checkpoint while the guest waits on stdin (`fd_read` blocked): the
/// read is interrupted, and made again on restore, which reads the data.
#[test]
fn checkpoint_while_reading_stdin() -> Result<()> {
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/c/stdio.wasm");
    let aot = aot(wasm.to_str().unwrap(), Policy::Loop, 3)?;
    let input = b"first line\nsecond\nlast without newline";
    let base = Tool::checkpoint(&aot).stdin_bytes(input).run()?;
    base.expect_code(0, "uninterrupted stdio")?;
    let s = Scratch::new("stdin");
    let snap = s.join("stdio.bin");
    let a = Tool::checkpoint(&aot)
        .stdin_open()
        .arg("--after")
        .arg("0.3")
        .snapshot(&snap)
        .spawn()?;
    // `wait` closes stdin only after the process ended: a checkpoint that
    // does not interrupt the read would end in a timeout.
    let mut a = a;
    let start = std::time::Instant::now();
    while !a.has_ended()? {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the blocked read was not interrupted by --after"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let a = a.wait()?;
    a.expect_code(CHECKPOINTED, "--after while reading stdin")?;
    let b = Tool::restore(&aot)
        .snapshot(&snap)
        .stdin_bytes(input)
        .run()?;
    b.expect_code(0, "restore reading stdin")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "output differs:\n{}\n--- uninterrupted:\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&base.stdout)
    );
    Ok(())
}

/// `-f FUNC -x N`, by name and by index.
#[test]
fn function_entry_trigger() -> Result<()> {
    let aot = aot("recursion", Policy::Function, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    for (func, n) in [
        ("fib", "1"),
        ("fib", "5000"),
        ("ack", "300"),
        ("hanoi", "2000"),
    ] {
        let s = Scratch::new("fentry");
        let snap = s.join("r.bin");
        let a = Tool::checkpoint(&aot)
            .args(["-f", func, "-x", n])
            .snapshot(&snap)
            .run()?;
        a.expect_code(CHECKPOINTED, &format!("-f {func} -x {n}"))?;
        restore_and_compare(&aot, &snap, &a, &base)?;
    }
    // By index: the same entry of the same function stops at the same place.
    let module = mvvm_rt::Module::from_aot(&std::fs::read(&aot)?)?;
    let fib = module
        .meta()
        .func_names
        .iter()
        .find(|(_, n)| *n == "fib")
        .map(|(i, _)| i)
        .expect("fib in the name section");
    let s = Scratch::new("fentry-index");
    let (by_name, by_index) = (s.join("name.bin"), s.join("index.bin"));
    let a = Tool::checkpoint(&aot)
        .args(["-f", "fib", "-x", "777"])
        .snapshot(&by_name)
        .run()?;
    let b = Tool::checkpoint(&aot)
        .args(["-f", &fib.to_string(), "-x", "777"])
        .snapshot(&by_index)
        .run()?;
    a.expect_code(CHECKPOINTED, "-f fib")?;
    b.expect_code(CHECKPOINTED, "-f INDEX")?;
    ensure!(
        a.stdout == b.stdout,
        "by name and by index stop at different places"
    );
    ensure!(
        a.json_u64("frames") == b.json_u64("frames"),
        "{:?} vs {:?}",
        a.json,
        b.json
    );
    restore_and_compare(&aot, &by_index, &b, &base)?;
    // An unknown function is an error before anything runs.
    let s = Scratch::new("fentry-bad");
    let r = Tool::checkpoint(&aot)
        .args(["-f", "no_such_function"])
        .snapshot(&s.join("r.bin"))
        .run()?;
    r.expect_code(FAILURE, "-f no_such_function")?;
    ensure!(r.stdout.is_empty(), "the program ran");
    ensure!(r.stderr.contains("no_such_function"), "{}", r.stderr);
    // Function-entry triggers need entry probes.
    let loop_aot = checkpoint_support::aot("recursion", Policy::Loop, 3)?;
    let r = Tool::checkpoint(&loop_aot)
        .args(["-f", "fib"])
        .snapshot(&s.join("r.bin"))
        .run()?;
    r.expect_code(FAILURE, "-f on a loop-policy module")?;
    Ok(())
}

/// A restored run checkpointed again, and again: A → B → A, each restore
/// replacing the snapshot it came from; the pieces add up.
#[test]
fn chains() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("chain");
    let snap = s.join("c.bin");
    let step = (base.probes / 4).max(1);
    let a = Tool::checkpoint(&aot).count(step).snapshot(&snap).run()?;
    a.expect_code(CHECKPOINTED, "first checkpoint")?;
    let mut out = a.stdout.clone();
    for i in 0..2 {
        let before = std::fs::metadata(&snap)?.modified()?;
        let r = Tool::restore(&aot).snapshot(&snap).count(step).run()?;
        r.expect_code(CHECKPOINTED, &format!("checkpoint {} of the chain", i + 2))?;
        ensure!(
            std::fs::metadata(&snap)?.modified()? >= before,
            "the snapshot was not replaced"
        );
        out.extend_from_slice(&r.stdout);
    }
    let r = Tool::restore(&aot).snapshot(&snap).run()?;
    r.expect_code(base.code, "end of the chain")?;
    out.extend_from_slice(&r.stdout);
    ensure!(
        out == base.stdout,
        "chained output differs:\n{}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// A snapshot restores into any policy and opt level of the same wasm, and
/// a chain may hop between them.
#[test]
fn restore_into_other_compilations() -> Result<()> {
    let loop3 = aot("recursion", Policy::Loop, 3)?;
    let base = baseline(&loop3, &Guest::default())?;
    let targets = [
        aot("recursion", Policy::Function, 0)?,
        aot("recursion", Policy::CounterLoop(4), 1)?,
        aot("recursion", Policy::LoopDirty, 2)?,
    ];
    for (i, target) in targets.iter().enumerate() {
        let c = base.probes * (i as u64 + 1) / 4;
        checkpoint_and_restore(
            &loop3,
            target,
            &Guest::default(),
            &base,
            c,
            &format!("loop O3 -> {}", target.display()),
        )?;
    }
    // loop O3 → function O0 (checkpointed again) → loop O3.
    let s = Scratch::new("hop");
    let snap = s.join("r.bin");
    let a = Tool::checkpoint(&loop3)
        .count(base.probes / 3)
        .snapshot(&snap)
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint under loop O3")?;
    let b = Tool::restore(&targets[0]).snapshot(&snap).count(50).run()?;
    b.expect_code(CHECKPOINTED, "checkpoint under function O0")?;
    let c = Tool::restore(&loop3).snapshot(&snap).run()?;
    c.expect_code(base.code, "end under loop O3")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    out.extend_from_slice(&c.stdout);
    ensure!(
        out == base.stdout,
        "hopping output differs:\n{}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// Without `--snapshot`, `bc.aot` checkpoints to `bc.bin` and
/// `mvvm-restore -t bc.aot` finds it; `--snapshot-out` sends the next one
/// elsewhere and leaves the first in place.
#[test]
fn default_snapshot_path_and_snapshot_out() -> Result<()> {
    let built = aot("indirect", Policy::Loop, 3)?;
    let base = baseline(&built, &Guest::default())?;
    let s = Scratch::new("default-path");
    let target = s.join("bc.aot");
    std::fs::copy(&built, &target)?;
    let a = Tool::checkpoint(&target).count(base.probes / 4).run()?;
    a.expect_code(CHECKPOINTED, "checkpoint to the default path")?;
    let snap = s.join("bc.bin");
    ensure!(
        snap.is_file(),
        "no bc.bin next to bc.aot; stderr:\n{}",
        a.stderr
    );
    let first = std::fs::read(&snap)?;
    let other = s.join("second.bin");
    let b = Tool::restore(&target)
        .count(base.probes / 4)
        .arg("--snapshot-out")
        .arg(&other)
        .run()?;
    b.expect_code(CHECKPOINTED, "restore with --snapshot-out")?;
    ensure!(other.is_file(), "nothing at --snapshot-out");
    ensure!(
        std::fs::read(&snap)? == first,
        "the first snapshot was changed"
    );
    let c = Tool::restore(&target).snapshot(&other).run()?;
    c.expect_code(base.code, "restore of the second snapshot")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    out.extend_from_slice(&c.stdout);
    ensure!(
        out == base.stdout,
        "output differs:\n{}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// Live migration: the snapshot goes over TCP to a listening
/// `mvvm-restore`, which resumes the run.
#[test]
fn snapshot_over_tcp() -> Result<()> {
    let aot = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let s = Scratch::new("tcp");
    let mut restorer = Tool::restore(&aot)
        .snapshot(Path::new(&format!("tcp-listen://127.0.0.1:{port}")))
        .arg("--snapshot-out")
        .arg(s.join("next.bin"))
        .spawn()?;
    restorer.wait_for_stderr("waiting for a snapshot")?;
    let a = Tool::checkpoint(&aot)
        .count(base.probes / 2)
        .snapshot(Path::new(&format!("tcp://127.0.0.1:{port}")))
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint to tcp://")?;
    ensure!(a.stderr.contains("tcp://127.0.0.1"), "{}", a.stderr);
    let b = restorer.wait()?;
    b.expect_code(base.code, "restore from tcp-listen://")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "output differs:\n{}",
        String::from_utf8_lossy(&out)
    );
    // Nobody listening: the checkpoint fails with a message, not a hang.
    let r = Tool::checkpoint(&aot)
        .count(10)
        .snapshot(Path::new(&format!("tcp://127.0.0.1:{port}")))
        .run()?;
    r.expect_code(FAILURE, "checkpoint to a closed port")?;
    ensure!(r.stderr.contains("connect"), "{}", r.stderr);
    Ok(())
}

/// The three tools as a user runs them (DESIGN.md's example): `mvvm-aot`
/// with a policy flag, `mvvm-checkpoint`, then `mvvm-restore -t` finding
/// the snapshot next to the object.
#[test]
fn the_three_tools() -> Result<()> {
    let s = Scratch::new("tools");
    let target = s.join("bc.aot");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mvvm-aot"))
        .args([
            "--opt-level=3",
            "--threshold-bits=4",
            "--enable-counter-loop-checkpoint",
            "-o",
        ])
        .arg(&target)
        .arg(ckpt_dir().join("compute.wasm"))
        .output()?;
    ensure!(
        o.status.success(),
        "mvvm-aot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let base = baseline(&target, &Guest::default())?;
    let a = Tool::checkpoint(&target)
        .count(base.probes / 2)
        .current_dir(&s.0)
        .run()?;
    a.expect_code(CHECKPOINTED, "mvvm-checkpoint -c")?;
    ensure!(s.join("bc.bin").is_file(), "no bc.bin");
    let b = Tool::restore(&target).current_dir(&s.0).run()?;
    b.expect_code(base.code, "mvvm-restore")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == base.stdout,
        "output differs:\n{}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// `-i` logs probes and frames on stderr without changing the result.
#[test]
fn probe_log() -> Result<()> {
    let aot = aot("recursion", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("plog");
    let snap = s.join("r.bin");
    let quiet = Tool::checkpoint(&aot).count(100).snapshot(&snap).run()?;
    quiet.expect_code(CHECKPOINTED, "-c 100")?;
    let a = Tool::checkpoint(&aot)
        .count(100)
        .arg("-i")
        .snapshot(&snap)
        .run()?;
    a.expect_code(CHECKPOINTED, "-c 100 -i")?;
    ensure!(a.stdout == quiet.stdout, "-i changed the output");
    ensure!(
        a.stderr.lines().count() > quiet.stderr.lines().count() + 2,
        "-i logged nothing:\n{}",
        a.stderr
    );
    restore_and_compare(&aot, &snap, &a, &base)?;
    Ok(())
}

/// Usage errors exit 2; triggers on a module without a policy exit 125.
#[test]
fn usage_errors_and_uninstrumented_modules() -> Result<()> {
    let wasm = ckpt_dir().join("compute.wasm");
    let r = Tool::checkpoint(&wasm).args(["-x", "3"]).run()?;
    r.expect_code(2, "-x without -f")?;
    let r = Tool::checkpoint(&wasm)
        .args(["-c", "3", "--after", "1"])
        .run()?;
    r.expect_code(2, "-c with --after")?;
    let r = Tool::checkpoint(&wasm).args(["-c", "0"]).run()?;
    r.expect_code(2, "-c 0")?;
    let s = Scratch::new("noinstr");
    let r = Tool::checkpoint(&wasm)
        .count(5)
        .snapshot(&s.join("x.bin"))
        .run()?;
    r.expect_code(FAILURE, "-c on a module without a policy")?;
    ensure!(r.stdout.is_empty(), "the program ran");
    ensure!(r.stderr.contains("policy"), "{}", r.stderr);
    // Without a trigger, it is the plain runner.
    let r = Tool::checkpoint(&wasm).run()?;
    r.expect_code(0, "plain run")?;
    ensure!(
        r.json_str("status").as_deref() == Some("exited"),
        "{:?}",
        r.json
    );
    Ok(())
}

/// A program that traps after the checkpoint traps after the restore too,
/// with the same exit code (134) and a "trapped" summary.
#[test]
fn trap_after_restore() -> Result<()> {
    let s = Scratch::new("trap");
    let wat = s.join("trap.wat");
    std::fs::write(
        &wat,
        r#"(module
  (memory (export "memory") 1)
  (func $step (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 3)))
  (func (export "_start") (local i32)
    (loop $l
      (local.set 0 (call $step (local.get 0)))
      (br_if $l (i32.lt_u (local.get 0) (i32.const 3000))))
    unreachable))"#,
    )?;
    let aot = aot(wat.to_str().unwrap(), Policy::Loop, 3)?;
    let base = Tool::checkpoint(&aot).run()?;
    base.expect_code(134, "uninterrupted trap")?;
    ensure!(
        base.json_str("status").as_deref() == Some("trapped"),
        "{:?}",
        base.json
    );
    let snap = s.join("trap.bin");
    let a = Tool::checkpoint(&aot).count(500).snapshot(&snap).run()?;
    a.expect_code(CHECKPOINTED, "-c 500")?;
    let b = Tool::restore(&aot).snapshot(&snap).run()?;
    b.expect_code(134, "restore of a program that traps")?;
    ensure!(
        b.json_str("status").as_deref() == Some("trapped"),
        "{:?}",
        b.json
    );
    ensure!(b.stderr.contains("unreachable"), "{}", b.stderr);
    Ok(())
}

/// `MVVM_LOG=debug` turns on the probe log like `-i`.
#[test]
fn mvvm_log_turns_on_the_probe_log() -> Result<()> {
    let aot = aot("recursion", Policy::Loop, 3)?;
    let s = Scratch::new("mvvmlog");
    let r = Tool::checkpoint(&aot)
        .count(20)
        .snapshot(&s.join("r.bin"))
        .env("MVVM_LOG", "debug")
        .run()?;
    r.expect_code(CHECKPOINTED, "-c 20 with MVVM_LOG=debug")?;
    ensure!(
        r.stderr.contains("frame saved"),
        "no frame log:\n{}",
        r.stderr
    );
    Ok(())
}

/// Counter-loop polls at function entries too: a recursion without any
/// loop (`test/ckpt/treewalk.wat`) has probes, and a checkpoint at a few
/// of them restores to the same exit status.
#[test]
fn counter_loop_polls_in_loop_free_recursion() -> Result<()> {
    let wat = ckpt_dir().join("treewalk.wat");
    let aot = aot(wat.to_str().unwrap(), Policy::CounterLoop(4), 3)?;
    let guest = Guest::default();
    let base = baseline(&aot, &guest)?;
    // fib(24) = 46368: 46368 mod 256 = 32; fib makes 150049 calls, one
    // poll every 16 of them.
    ensure!(base.code == 32, "treewalk exit status {}", base.code);
    ensure!(
        base.probes == 150_049 / 16,
        "{} polls for 150049 entries at threshold 4",
        base.probes
    );
    for c in spread(base.probes, 5) {
        checkpoint_and_restore(&aot, &aot, &guest, &base, c, "treewalk")?;
    }
    Ok(())
}
