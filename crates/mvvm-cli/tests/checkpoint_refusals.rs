//! What `mvvm-restore` must refuse, with a clear message and exit 125,
//! without running anything: a snapshot of another module, a truncated or
//! damaged snapshot, a missing one, a file the guest had open that is gone
//! or was replaced (unless `--allow-changed-files`). A refused snapshot is
//! left as it was.

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::*;
use std::path::PathBuf;

/// Checkpoints `program` (loop policy) at half its probes into a fresh
/// directory; returns the directory, the snapshot and the first run.
fn half_way(program: &str, guest: &Guest) -> Result<(Scratch, PathBuf, PathBuf, Baseline, Ran)> {
    let aot = aot(program, Policy::Loop, 3)?;
    let base = baseline(&aot, guest)?;
    let s = Scratch::new(&format!("refuse-{program}"));
    let dir = s.subdir("work");
    let snap = s.join("snap.bin");
    let a = Tool::checkpoint(&aot)
        .args(guest.flags(&dir))
        .count(base.probes / 2)
        .snapshot(&snap)
        .run()?;
    a.expect_code(CHECKPOINTED, &format!("{program} at half way"))?;
    Ok((s, snap, aot, base, a))
}

fn refused(r: &Ran, what: &str, needle: &str) -> Result<()> {
    r.expect_code(FAILURE, what)?;
    ensure!(
        r.stdout.is_empty(),
        "{what}: the guest ran: {:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    ensure!(
        r.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: stderr does not mention `{needle}`:\n{}",
        r.stderr
    );
    ensure!(
        !r.stderr.contains("panicked"),
        "{what}: panic:\n{}",
        r.stderr
    );
    Ok(())
}

#[test]
fn snapshot_of_another_module() -> Result<()> {
    let (_s, snap, _aot, _, _) = half_way("compute", &Guest::default())?;
    let other = aot("indirect", Policy::Loop, 3)?;
    let before = std::fs::read(&snap)?;
    let r = Tool::restore(&other).snapshot(&snap).run()?;
    refused(&r, "snapshot of compute restored into indirect", "refusing")?;
    ensure!(
        std::fs::read(&snap)? == before,
        "the refused snapshot was changed"
    );
    Ok(())
}

#[test]
fn truncated_and_damaged_snapshots() -> Result<()> {
    let (s, snap, aot, base, a) = half_way("memgrow", &Guest::default())?;
    let bytes = std::fs::read(&snap)?;
    for (i, cut) in [0, 7, 64, bytes.len() / 3, bytes.len() - 1]
        .into_iter()
        .enumerate()
    {
        let p = s.join(&format!("cut{i}.bin"));
        std::fs::write(&p, &bytes[..cut])?;
        let r = Tool::restore(&aot).snapshot(&p).run()?;
        refused(
            &r,
            &format!("snapshot truncated to {cut} bytes"),
            "refusing",
        )?;
    }
    for (i, at) in [12, 100, bytes.len() / 2].into_iter().enumerate() {
        let mut v = bytes.clone();
        v[at] ^= 0x5a;
        let p = s.join(&format!("flip{i}.bin"));
        std::fs::write(&p, &v)?;
        let r = Tool::restore(&aot).snapshot(&p).run()?;
        // A flipped byte inside a zero page run may be caught only when
        // memory is verified; every flip must at least never crash.
        ensure!(
            !r.stderr.contains("panicked"),
            "flip at {at}: panic:\n{}",
            r.stderr
        );
        ensure!(
            r.code() == Some(FAILURE) || r.code() == Some(base.code),
            "flip at {at}: {:?}\n{}",
            r.status,
            r.stderr
        );
    }
    // The intact snapshot still restores.
    let r = Tool::restore(&aot).snapshot(&snap).run()?;
    r.expect_code(base.code, "intact snapshot")?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&r.stdout);
    ensure!(out == base.stdout, "output differs after the refusals");
    Ok(())
}

#[test]
fn missing_snapshot() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 3)?;
    let s = Scratch::new("missing");
    let p = s.join("nothing-here.bin");
    let r = Tool::restore(&aot).snapshot(&p).run()?;
    refused(&r, "missing snapshot", "nothing-here.bin")?;
    // The default path (next to the target) is missing too.
    let target = s.join("prog.aot");
    std::fs::copy(&aot, &target)?;
    let r = Tool::restore(&target).run()?;
    refused(&r, "missing default snapshot", "prog.bin")?;
    Ok(())
}

fn files_guest() -> Guest {
    Guest {
        with_dir: true,
        ..Default::default()
    }
}

/// `out.txt` stays open for writing through `files.c`'s main loop, where
/// half of its probes are.
fn open_file(s: &Scratch) -> PathBuf {
    s.join("work").join("out.txt")
}

#[test]
fn open_file_deleted_then_put_back() -> Result<()> {
    let (s, snap, aot, base, a) = half_way("files", &files_guest())?;
    let out = open_file(&s);
    let aside = s.join("out.txt.aside");
    std::fs::rename(&out, &aside)?;
    let r = Tool::restore(&aot)
        .snapshot(&snap)
        .args(files_guest().grants(&s.join("work")))
        .run()?;
    refused(&r, "open file deleted", "out.txt")?;
    ensure!(!out.exists(), "restore created the missing file again");
    // Put back, the same file (same inode): restore completes the run.
    std::fs::rename(&aside, &out)?;
    let r = Tool::restore(&aot)
        .snapshot(&snap)
        .args(files_guest().grants(&s.join("work")))
        .run()?;
    r.expect_code(base.code, "restore once the file is back")?;
    let mut stdout = a.stdout.clone();
    stdout.extend_from_slice(&r.stdout);
    ensure!(stdout == base.stdout, "output differs");
    ensure!(tree(&s.join("work"), &[])? == base.files, "files differ");
    Ok(())
}

#[test]
fn open_file_replaced() -> Result<()> {
    let (s, snap, aot, _base, _a) = half_way("files", &files_guest())?;
    let out = open_file(&s);
    let content = std::fs::read(&out)?;
    // Same bytes, another file (made before the old one goes, so it cannot
    // reuse its inode number), renamed over it as editors do.
    let new = s.join("work").join("out.txt.new");
    std::fs::write(&new, &content)?;
    std::fs::rename(&new, &out)?;
    let r = Tool::restore(&aot)
        .snapshot(&snap)
        .args(files_guest().grants(&s.join("work")))
        .run()?;
    refused(&r, "open file replaced", "out.txt")?;
    ensure!(
        r.stderr.contains("--allow-changed-files"),
        "no hint:\n{}",
        r.stderr
    );
    // Allowed on request: the run goes on with the new file.
    let r = Tool::restore(&aot)
        .snapshot(&snap)
        .args(files_guest().grants(&s.join("work")))
        .arg("--allow-changed-files")
        .run()?;
    r.expect_code(0, "--allow-changed-files")?;
    ensure!(!r.stdout.is_empty(), "nothing printed");
    Ok(())
}

#[test]
fn preopened_directory_gone() -> Result<()> {
    let (s, snap, aot, _base, _a) = half_way("files", &files_guest())?;
    std::fs::rename(s.join("work"), s.join("moved"))?;
    let r = Tool::restore(&aot)
        .snapshot(&snap)
        .args(files_guest().grants(&s.join("work")))
        .run()?;
    refused(&r, "preopened directory gone", "work")?;
    Ok(())
}
