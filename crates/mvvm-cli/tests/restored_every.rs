//! Periodic checkpoints of a RESTORED run, written in the background
//! (`mvvm-restore --every`): the restored memory (the snapshot file mapped
//! copy-on-write, on 4 KiB pages) is moved onto huge pages by a thread,
//! unit by unit, while the program runs and while snapshots are written
//! from its copy-on-write image (`crates/mvvm-rt/src/memory/huge.rs`).
//! memfill (96 MiB: 2 MiB units) is checkpointed after its first pass and
//! restored with `--every`; the restored run's output must complete the
//! uninterrupted one, the last periodic snapshot must restore to the same
//! end (memfill's checksum covers its whole memory), and where the kernel
//! has huge pages the log must show units were moved. Also with
//! `--incremental` (periodic snapshots over the one restored).

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{CHECKPOINTED, Guest, Policy, Scratch, Tool, aot, baseline};
use std::path::{Path, PathBuf};

/// memfill compiled with the counter-loop policy.
fn memfill() -> Result<PathBuf> {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/wasm/memfill.wasm");
    aot(
        wasm.to_str().context("UTF-8 path")?,
        Policy::CounterLoop(16),
        3,
    )
}

/// memfill over `mib` MiB, `passes` passes over all of it, sleeping
/// `delay_us` per MiB written (so the restored run lasts long enough for
/// several checkpoints and the conversion).
fn guest(mib: u64, passes: u64, delay_us: u64) -> Guest {
    Guest {
        args: ["-m", &mib.to_string(), "-p", &passes.to_string()]
            .into_iter()
            .chain(["-d", &delay_us.to_string()])
            .map(String::from)
            .collect(),
        ..Default::default()
    }
}

/// The number of units the converter reports moved (`None`: no report).
fn units_moved(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("unit(s) of 2 MiB moved to huge pages"))?;
    line.split("restored memory: ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn restored_run_with_every_moves_to_huge_pages() -> Result<()> {
    restored_run(false)
}

/// The same with `--incremental`: the periodic snapshots hold the units
/// written since the restore over the snapshot restored (their base).
#[test]
fn restored_incremental_run_with_every_moves_to_huge_pages() -> Result<()> {
    restored_run(true)
}

/// Checkpoints memfill after its first pass, restores it with `--every`
/// (and `--incremental`), checks the output, the move's report and the
/// last periodic snapshot.
fn restored_run(incremental: bool) -> Result<()> {
    let aot = memfill()?;
    let (mib, passes, delay) = (96, 8, 1000);
    let g = guest(mib, passes, delay);
    let fill = baseline(&aot, &guest(mib, 0, delay))?.probes;
    let whole = baseline(&aot, &g)?;
    ensure!(whole.probes > fill, "{} <= {fill}", whole.probes);
    let s = Scratch::new("restored-every");
    let snap = s.join("m.bin");
    let periodic = s.join("p.bin");
    let a = Tool::checkpoint(&aot)
        .args(g.flags(&s.0))
        .snapshot(&snap)
        .count(fill + (whole.probes - fill) / passes)
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint after the first pass")?;
    let mut restore = Tool::restore(&aot);
    if incremental {
        restore = restore.arg("--incremental");
    }
    let b = restore
        .snapshot(&snap)
        .arg("--snapshot-out")
        .arg(&periodic)
        .args(["--every", "0.05"])
        .env("MVVM_LOG", "mvvm_rt::memory=debug")
        .run()?;
    b.expect_code(whole.code, "restore with --every")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    ensure!(
        out == whole.stdout,
        "restored run's output differs:\n{}\nvs\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&whole.stdout)
    );
    ensure!(
        b.stderr.contains("periodic checkpoint written"),
        "no periodic checkpoint of the restored run:\n{}",
        b.stderr
    );
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| !s.contains("[never]"));
    if thp {
        let moved = units_moved(&b.stderr)
            .with_context(|| format!("no conversion report:\n{}", b.stderr))?;
        ensure!(moved > 0, "no unit moved to huge pages:\n{}", b.stderr);
    } else {
        checkpoint_support::require::missing(
            "restored_every (huge-page move)",
            "transparent huge pages are off: only the outputs were checked",
        );
    }
    // The last periodic snapshot, taken while units were moved (or after),
    // finishes the run the same way.
    if incremental {
        ensure!(
            b.stderr.contains("(incremental against"),
            "no incremental periodic snapshot:\n{}",
            b.stderr
        );
    }
    let c = Tool::restore(&aot).snapshot(&periodic).run()?;
    c.expect_code(whole.code, "restore of the last periodic snapshot")?;
    ensure!(
        !c.stdout.is_empty() && whole.stdout.ends_with(&c.stdout),
        "the periodic snapshot's run ends differently:\n{}\nvs\n{}",
        String::from_utf8_lossy(&c.stdout),
        String::from_utf8_lossy(&whole.stdout)
    );
    Ok(())
}
