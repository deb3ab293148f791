//! Checkpointing threaded programs through the tools: the programs of
//! `test/threads` (pthreads over wasi-threads: a worker pool on condition
//! variables, atomics, futex producers and consumers, threaded bc, gemm
//! and jacobi-2d) are stopped with all their threads at many moments,
//! restored, stopped again after the restore (chains), and must print
//! exactly what their native builds print (`NAME.expected`).
//!
//! - at wall-clock times (`--after`), which land anywhere: threads in
//!   loops, in `memory.atomic.wait` (condition variables, barriers,
//!   joins), in host calls;
//! - at probe counts of the main thread (`-c N`, the deterministic
//!   trigger: see `docs/threads.md`);
//! - periodically (`--every`), incremental snapshots of the shared
//!   memory, the last one taken by SIGUSR1, then restored.

mod checkpoint_support;

use anyhow::{Context, Result, bail, ensure};
use checkpoint_support::{CHECKPOINTED, Policy, Ran, Scratch, Tool, aot};
use std::path::{Path, PathBuf};

fn threads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/threads")
}

fn program(name: &str) -> String {
    threads_dir()
        .join(format!("{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

fn expected(name: &str) -> Result<Vec<u8>> {
    let p = threads_dir().join(format!("{name}.expected"));
    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
}

/// Longest chain of restores a test follows before it calls the program
/// stuck (each link runs at least the trigger's delay).
const MAX_LINKS: usize = 200;

/// What a chain of runs gave.
struct Chain {
    /// Every run's stdout, in order.
    stdout: Vec<u8>,
    /// Every run's stderr.
    stderr: String,
    /// Snapshots taken.
    snapshots: usize,
}

/// Runs `name` under `policy`, stopped by `trigger` (tool arguments) in
/// the first run and in every restored one, until it exits, having checked
/// each exit code.
fn chain(name: &str, policy: Policy, trigger: &[&str], dir: &Scratch) -> Result<Chain> {
    let aot = aot(&program(name), policy, 2)?;
    let snap = dir.join(&format!("{name}.snap"));
    let mut out = Vec::new();
    let first = Tool::checkpoint(&aot)
        .args(trigger)
        .snapshot(&snap)
        .current_dir(&dir.0)
        .run()?;
    out.extend_from_slice(&first.stdout);
    let mut stderr = first.stderr.clone();
    let mut last: Ran = first;
    let mut snapshots = 0;
    while last.code() == Some(CHECKPOINTED) {
        snapshots += 1;
        ensure!(
            snapshots <= MAX_LINKS,
            "{name} ({}, {trigger:?}): still running after {MAX_LINKS} restores",
            policy.label()
        );
        let input = dir.join(&format!("{name}.{snapshots}.snap"));
        std::fs::rename(&snap, &input)?;
        last = Tool::restore(&aot)
            .arg("--snapshot")
            .arg(&input)
            .arg("--snapshot-out")
            .arg(&snap)
            .args(trigger)
            .current_dir(&dir.0)
            .run()?;
        out.extend_from_slice(&last.stdout);
        stderr.push_str(&last.stderr);
        let _ = std::fs::remove_file(&input);
    }
    last.expect_code(0, &format!("{name} ({}, {trigger:?})", policy.label()))?;
    Ok(Chain {
        stdout: out,
        stderr,
        snapshots,
    })
}

fn check_output(name: &str, what: &str, got: &[u8]) -> Result<()> {
    let want = expected(name)?;
    if got != want.as_slice() {
        bail!(
            "{name} {what}: output differs from the native run\n--- got\n{}\n--- wanted\n{}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&want)
        );
    }
    Ok(())
}

/// Every program, stopped every few tens of milliseconds wherever its
/// threads are, restored each time: the native output, and at least one
/// checkpoint actually taken.
#[test]
fn threads_stopped_at_any_moment_resume_to_the_native_output() -> Result<()> {
    let dir = Scratch::new("threads-after");
    for name in [
        "pool",
        "atomic_reduce",
        "futex_pc",
        "bc_mt",
        "gemm_mt",
        "jacobi-2d_mt",
        "libc_threads",
    ] {
        // Under the function policy a loop without calls has no probe: a
        // thread spinning on another (atomic_reduce's spin barrier,
        // libc_threads' spin locks) would wait forever for a thread the
        // checkpoint has already stopped (docs/threads.md, limits).
        let spins = matches!(name, "atomic_reduce" | "libc_threads");
        let policies: &[(Policy, &str)] = if spins {
            &[(Policy::Loop, "0.03")]
        } else {
            &[(Policy::Loop, "0.03"), (Policy::Function, "0.05")]
        };
        for &(policy, after) in policies {
            let c = chain(name, policy, &["--after", after], &dir)?;
            check_output(
                name,
                &format!("({}, --after {after})", policy.label()),
                &c.stdout,
            )?;
            ensure!(
                c.snapshots > 0,
                "{name} ({}): ended before its first checkpoint at {after} s",
                policy.label()
            );
        }
    }
    Ok(())
}

/// A worker pool whose main thread waits on condition variables
/// (`memory.atomic.wait32` under pthreads): stopped again and again, some
/// stops find the main thread parked in a wait (its innermost frame at an
/// `AtomicWait` point, as `--log-probes` shows), and every restore wakes
/// the pool to the native output.
#[test]
fn threads_stopped_while_waiting_resume() -> Result<()> {
    let dir = Scratch::new("threads-wait");
    let c = chain(
        "pool",
        Policy::Loop,
        &["--after", "0.02", "--log-probes"],
        &dir,
    )?;
    check_output("pool", "(stopped while waiting)", &c.stdout)?;
    ensure!(
        c.stderr.contains("kind=Some(AtomicWait)"),
        "no checkpoint of {} found a thread in a wait:\n{}",
        c.snapshots,
        c.stderr
    );
    Ok(())
}

/// `-c N` counts the main thread's probes: stopping at several counts
/// (spread over a run, found with `--count-probes`) and restoring gives
/// the native output each time; the counter-loop policy too.
#[test]
fn threads_stopped_at_main_thread_probe_counts_resume_to_the_native_output() -> Result<()> {
    let dir = Scratch::new("threads-count");
    // Programs whose main thread computes (its probe count is the same in
    // every run up to the final join): a main thread that only waits for
    // its workers polls as often as the scheduling makes it.
    for (name, policy) in [
        ("jacobi-2d_mt", Policy::Loop),
        ("gemm_mt", Policy::CounterLoop(4)),
    ] {
        let aot = aot(&program(name), policy, 2)?;
        let counted = Tool::checkpoint(&aot)
            .arg("--count-probes")
            .current_dir(&dir.0)
            .run()?;
        counted.expect_code(0, name)?;
        let probes = counted
            .json_u64("probes")
            .context("no probe count in the summary")?;
        ensure!(
            probes >= 4,
            "{name}: only {probes} probes in the main thread"
        );
        // The other threads report their own counts.
        let reported = counted
            .stderr
            .lines()
            .filter(|l| l.contains(": thread ") && l.contains(" ended after "))
            .count();
        ensure!(
            reported >= 2,
            "{name}: {reported} threads reported their probes:\n{}",
            counted.stderr
        );
        for k in 1..=3 {
            let n = (probes * k / 4).max(1).to_string();
            let snap = dir.join(&format!("{name}-{n}.snap"));
            let first = Tool::checkpoint(&aot)
                .args(["-c", &n])
                .snapshot(&snap)
                .current_dir(&dir.0)
                .run()?;
            first.expect_code(CHECKPOINTED, &format!("{name} -c {n}"))?;
            let rest = Tool::restore(&aot)
                .arg("--snapshot")
                .arg(&snap)
                .current_dir(&dir.0)
                .run()?;
            rest.expect_code(0, &format!("{name} restored from -c {n}"))?;
            let mut out = first.stdout.clone();
            out.extend_from_slice(&rest.stdout);
            check_output(name, &format!("(-c {n})"), &out)?;
        }
    }
    Ok(())
}

/// Periodic incremental checkpoints of a program whose threads all write
/// the shared memory, the last one taken by SIGUSR1 at a few moments:
/// each restores to the native output, and the periodic ones after the
/// first were incremental. The moments are fractions of an uninterrupted
/// run with the same checkpoints (fixed delays were right on a loaded
/// machine and after the end on an idle one).
#[test]
fn periodic_incremental_snapshots_of_threads_restore() -> Result<()> {
    let dir = Scratch::new("threads-every");
    let name = "jacobi-2d_mt";
    let aot = aot(&program(name), Policy::Loop, 2)?;
    let every = ["--every", "0.05", "--incremental"];
    let straight = Tool::checkpoint(&aot)
        .args(every)
        .snapshot(&dir.join("straight.snap"))
        .current_dir(&dir.0)
        .run()?;
    straight.expect_code(
        0,
        &format!("{name} with periodic checkpoints, uninterrupted"),
    )?;
    check_output(name, "(periodic, uninterrupted)", &straight.stdout)?;
    let whole = straight.elapsed;
    for fraction in [0.35, 0.5, 0.65] {
        let wait = whole.mul_f64(fraction);
        let wait_ms = wait.as_millis();
        let snap = dir.join(&format!("every-{wait_ms}.snap"));
        let mut running = Tool::checkpoint(&aot)
            .args(every)
            .snapshot(&snap)
            .current_dir(&dir.0)
            .spawn()?;
        std::thread::sleep(wait);
        if running.has_ended()? {
            bail!(
                "{name} ended before {wait_ms} ms ({fraction} of an uninterrupted run's {} ms): nothing to stop",
                whole.as_millis()
            );
        }
        running.signal("USR1")?;
        let first = running.wait()?;
        first.expect_code(CHECKPOINTED, &format!("{name} stopped at {wait_ms} ms"))?;
        ensure!(
            first.stderr.contains("the program paused"),
            "the periodic checkpoints were not written in the background:\n{}",
            first.stderr
        );
        ensure!(
            first.stderr.contains("incremental against"),
            "no incremental snapshot was written:\n{}",
            first.stderr
        );
        let rest = Tool::restore(&aot)
            .arg("--snapshot")
            .arg(&snap)
            .current_dir(&dir.0)
            .run()?;
        rest.expect_code(0, &format!("{name} restored after {wait_ms} ms"))?;
        let mut out = first.stdout.clone();
        out.extend_from_slice(&rest.stdout);
        check_output(name, &format!("(periodic, stopped at {wait_ms} ms)"), &out)?;
    }
    Ok(())
}
