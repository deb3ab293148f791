//! `--sync=full|data|none`: every mode writes a snapshot that restores to
//! the uninterrupted run's output, for both tools (a restored run that
//! checkpoints again), and a bad mode is refused before anything runs.
//! (What each mode leaves after a power loss cannot be tested here; see
//! `docs/migration.md`, "Durability of snapshot files".)

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::{CHECKPOINTED, Guest, Policy, Scratch, Tool, aot, baseline};

#[test]
fn every_sync_mode_writes_a_snapshot_that_restores() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 2)?;
    let base = baseline(&aot, &Guest::default())?;
    ensure!(base.probes >= 3, "compute polls {} times", base.probes);
    let (c1, c2) = (base.probes / 3, base.probes / 3);
    for mode in ["full", "data", "none"] {
        let s = Scratch::new(&format!("sync-{mode}"));
        let (a, b) = (s.join("a.snap"), s.join("b.snap"));
        let first = Tool::checkpoint(&aot)
            .args(["--sync", mode])
            .count(c1)
            .snapshot(&a)
            .current_dir(&s.0)
            .run()?;
        first.expect_code(CHECKPOINTED, &format!("--sync {mode}: checkpoint"))?;
        let second = Tool::restore(&aot)
            .args(["--sync", mode, "--snapshot"])
            .arg(&a)
            .arg("--snapshot-out")
            .arg(&b)
            .count(c2)
            .current_dir(&s.0)
            .run()?;
        second.expect_code(
            CHECKPOINTED,
            &format!("--sync {mode}: restore and checkpoint"),
        )?;
        let last = Tool::restore(&aot)
            .arg("--snapshot")
            .arg(&b)
            .current_dir(&s.0)
            .run()?;
        last.expect_code(base.code, &format!("--sync {mode}: last restore"))?;
        let mut out = first.stdout.clone();
        out.extend_from_slice(&second.stdout);
        out.extend_from_slice(&last.stdout);
        ensure!(out == base.stdout, "--sync {mode}: output differs");
    }
    Ok(())
}

#[test]
fn an_unknown_sync_mode_is_refused() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 2)?;
    let r = Tool::checkpoint(&aot).args(["--sync", "sometimes"]).run()?;
    ensure!(r.code() == Some(2), "exit {:?}: {}", r.code(), r.stderr);
    ensure!(r.stderr.contains("--sync"), "{}", r.stderr);
    ensure!(r.stdout.is_empty(), "the program ran");
    Ok(())
}
