//! Incremental snapshots through the tools: `mvvm-restore` of a
//! loop-dirty program checkpoints again in place (the base kept under a
//! derived name, the new snapshot incremental and much smaller), the chain
//! restores to the same output as an uninterrupted run, an altered or
//! missing base is refused in one line naming it, `mvvm-checkpoint --every`
//! writes a chain while the program runs on, and `--no-verify-memory`
//! skips exactly the memory checksums.

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::{CHECKPOINTED, FAILURE, Policy, Scratch, Tool, aot};
use std::path::{Path, PathBuf};

/// 64 pages filled; then `$work` iterations each adding into one of pages
/// 1..=4; at the end prints "sum=<hex>\n" on stdout, exit 0.
fn wat(work: u32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 64)
  (data (i32.const 4000) "sum=")
  (func (export "_start") (local $i i32) (local $k i32) (local $acc i32) (local $a i32)
    (loop $fill
      (i32.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 12)))
        (i32.mul (local.get $i) (i32.const 2654435761)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 1000))))
    (loop $work
      (local.set $a (i32.add (i32.mul (i32.add (i32.const 1) (i32.rem_u (local.get $k) (i32.const 4)))
                                      (i32.const 65536)) (i32.const 8)))
      (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (local.get $k)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $work (i32.lt_u (local.get $k) (i32.const {work}))))
    (local.set $i (i32.const 0))
    (loop $sum
      (local.set $acc (i32.add (i32.rotl (local.get $acc) (i32.const 5))
        (i32.load (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 12))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $sum (i32.lt_u (local.get $i) (i32.const 1000))))
    ;; 8 hex digits at 4004, then a newline
    (local.set $i (i32.const 0))
    (loop $hex
      (local.set $a (i32.and (i32.shr_u (local.get $acc) (i32.sub (i32.const 28) (i32.shl (local.get $i) (i32.const 2)))) (i32.const 15)))
      (i32.store8 (i32.add (i32.const 4004) (local.get $i))
        (i32.add (local.get $a) (select (i32.const 87) (i32.const 48) (i32.gt_u (local.get $a) (i32.const 9)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $hex (i32.lt_u (local.get $i) (i32.const 8))))
    (i32.store8 (i32.const 4012) (i32.const 10))
    (i32.store (i32.const 3000) (i32.const 4000))
    (i32.store (i32.const 3004) (i32.const 13))
    (drop (call $fd_write (i32.const 1) (i32.const 3000) (i32.const 1) (i32.const 3008)))))"#
    )
}

fn program(s: &Scratch, work: u32, policy: Policy) -> Result<PathBuf> {
    let src = s.join(&format!("inc{work}.wat"));
    std::fs::write(&src, wat(work))?;
    aot(src.to_str().unwrap(), policy, 2)
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The files of `dir` whose name starts with `prefix` and ends `.bin`.
fn kept_bases(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".bin") && n.len() == prefix.len() + 12 + 4
        })
        .collect();
    v.sort();
    v
}

#[test]
fn restore_checkpoints_again_incrementally_and_the_chain_restores() -> Result<()> {
    let s = Scratch::new("incremental-chain");
    let a = program(&s, 3000, Policy::LoopDirty)?;
    let straight = Tool::checkpoint(&a).run()?;
    straight.expect_code(0, "straight run")?;
    let snap = s.join("p.bin");
    Tool::checkpoint(&a)
        .snapshot(&snap)
        .count(1000 + 500)
        .run()?
        .expect_code(CHECKPOINTED, "first checkpoint")?;
    let full = size(&snap);
    let again = Tool::restore(&a).snapshot(&snap).count(700).run()?;
    again.expect_code(CHECKPOINTED, "checkpoint of the restored run")?;
    ensure!(
        again.stderr.contains("incremental against p."),
        "{}",
        again.stderr
    );
    let kept = kept_bases(&s.0, "p.");
    ensure!(kept.len() == 1, "kept bases: {kept:?}");
    ensure!(size(&kept[0]) == full, "the base is kept whole");
    let inc = size(&snap);
    ensure!(inc * 8 < full, "incremental {inc} bytes, full {full}");
    // Once more (depth 2), then restore the chain to the end.
    Tool::restore(&a)
        .snapshot(&snap)
        .count(300)
        .run()?
        .expect_code(CHECKPOINTED, "third checkpoint")?;
    ensure!(kept_bases(&s.0, "p.").len() == 2);
    for extra in [&[][..], &["--no-verify-memory"][..]] {
        let end = Tool::restore(&a)
            .snapshot(&snap)
            .args(extra)
            .snapshot_out_unused(&s)
            .run()?;
        end.expect_code(0, "restore of the chain")?;
        ensure!(
            end.stdout == straight.stdout,
            "{:?} vs {:?}",
            String::from_utf8_lossy(&end.stdout),
            String::from_utf8_lossy(&straight.stdout)
        );
    }
    Ok(())
}

#[test]
fn altered_or_missing_base_is_refused_in_one_line() -> Result<()> {
    let s = Scratch::new("incremental-refuse");
    let a = program(&s, 3000, Policy::LoopDirty)?;
    let snap = s.join("q.bin");
    Tool::checkpoint(&a)
        .snapshot(&snap)
        .count(1200)
        .run()?
        .expect_code(CHECKPOINTED, "first checkpoint")?;
    Tool::restore(&a)
        .snapshot(&snap)
        .count(100)
        .run()?
        .expect_code(CHECKPOINTED, "second checkpoint")?;
    let kept = kept_bases(&s.0, "q.");
    ensure!(kept.len() == 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    // Replace the base by another full snapshot of the same program.
    let other = s.join("other.bin");
    Tool::checkpoint(&a)
        .snapshot(&other)
        .count(1300)
        .run()?
        .expect_code(CHECKPOINTED, "other checkpoint")?;
    std::fs::rename(&other, &kept[0])?;
    let r = Tool::restore(&a).snapshot(&snap).run()?;
    r.expect_code(FAILURE, "altered base")?;
    ensure!(
        r.stderr.lines().count() == 1
            && r.stderr.contains(&name)
            && r.stderr.contains("altered or replaced"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(&kept[0])?;
    let r = Tool::restore(&a).snapshot(&snap).run()?;
    r.expect_code(FAILURE, "missing base")?;
    ensure!(
        r.stderr.lines().count() == 1
            && r.stderr.contains(&name)
            && r.stderr.contains("no such file"),
        "{}",
        r.stderr
    );
    Ok(())
}

#[test]
fn every_writes_a_chain_while_the_program_runs_on() -> Result<()> {
    let s = Scratch::new("incremental-every");
    let a = program(&s, 30_000_000, Policy::LoopDirty)?;
    let straight = Tool::checkpoint(&a).run()?;
    straight.expect_code(0, "straight run")?;
    let snap = s.join("e.bin");
    let r = Tool::checkpoint(&a)
        .snapshot(&snap)
        .args(["--every", "0.005"])
        .run()?;
    r.expect_code(0, "periodic run")?;
    ensure!(r.stdout == straight.stdout, "{}", r.stderr);
    let n = r.stderr.matches("periodic checkpoint written").count();
    let summary = r.json.clone().unwrap_or_default();
    if n == 0 {
        ensure!(!summary.contains("\"periodic\""), "{summary}");
        eprintln!("the run was too short for one period: {}", r.stderr);
        return Ok(());
    }
    // The summary lists each periodic checkpoint's pause.
    ensure!(
        summary.contains(&format!("\"periodic\":{{\"count\":{n},\"pause_ms\":["))
            && summary.contains("\"pause_max_ms\":"),
        "{summary}"
    );
    ensure!(
        n < 2 || r.stderr.contains("incremental against e."),
        "{}",
        r.stderr
    );
    let end = Tool::restore(&a)
        .snapshot(&snap)
        .snapshot_out_unused(&s)
        .run()?;
    end.expect_code(0, "restore of the last periodic snapshot")?;
    ensure!(end.stdout == straight.stdout);
    // A stream cannot take periodic snapshots: a usage error of MVVM.
    let r = Tool::checkpoint(&a)
        .snapshot(Path::new("/dev/null"))
        .args(["--every", "1"])
        .run()?;
    r.expect_code(FAILURE, "--every to a stream")?;
    Ok(())
}

#[test]
fn no_verify_memory_skips_only_the_memory_checksums() -> Result<()> {
    let s = Scratch::new("incremental-noverify");
    let a = program(&s, 3000, Policy::Loop)?;
    let snap = s.join("v.bin");
    Tool::checkpoint(&a)
        .snapshot(&snap)
        .count(1500)
        .run()?
        .expect_code(CHECKPOINTED, "checkpoint")?;
    // Flip a byte of the last memory run (far from the pages summed).
    let mut bytes = std::fs::read(&snap)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&snap, &bytes)?;
    let r = Tool::restore(&a)
        .snapshot(&snap)
        .snapshot_out_unused(&s)
        .run()?;
    r.expect_code(FAILURE, "damaged memory, verified")?;
    ensure!(r.stderr.contains("checksum"), "{}", r.stderr);
    let r = Tool::restore(&a)
        .snapshot(&snap)
        .arg("--no-verify-memory")
        .snapshot_out_unused(&s)
        .run()?;
    r.expect_code(0, "damaged memory, not verified: runs on")?;
    // Damage outside memory is still refused.
    let mut bytes = std::fs::read(&snap)?;
    bytes[100] ^= 0x40;
    std::fs::write(&snap, &bytes)?;
    let r = Tool::restore(&a)
        .snapshot(&snap)
        .arg("--no-verify-memory")
        .snapshot_out_unused(&s)
        .run()?;
    r.expect_code(FAILURE, "damaged header, not verified")?;
    Ok(())
}

/// `--snapshot-out` to a throwaway path (these runs end without one).
trait SnapshotOut {
    fn snapshot_out_unused(self, s: &Scratch) -> Tool;
}

impl SnapshotOut for Tool {
    fn snapshot_out_unused(self, s: &Scratch) -> Tool {
        self.arg("--snapshot-out").arg(s.join("unused.bin"))
    }
}
