//! The developer option `walk_frames` (`mvvm_aot::frame_labels`, plan
//! step 3 of "Reading frames where they are" in
//! `crates/mvvm-aot/CHECKPOINT.md`): whole bodies and resume clones write
//! no record at the sites their frame maps locate, and the runtime makes
//! those records from its walk of the native frames. The oracle is the
//! checkpoint-everywhere one: a program compiled so, checkpointed at
//! probes spread over its run, restored into the normal compilation of the
//! same policy and into its own, must add up to an uninterrupted run
//! (stdout, exit code, files); and a restored run checkpointed again (its
//! frames then in resume clones, whose stores are gone) too. Every
//! checkpoint must have made records from the walk (the runtime's debug
//! log says how many), so the test cannot pass by never using them.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{
    CHECKPOINTED, Guest, Policy, Scratch, Tool, aot, baseline, checkpoint_and_restore, ckpt_dir,
    spread, tree,
};
use mvvm_aot::frame_labels::{DevOptions, compile_with};
use std::path::{Path, PathBuf};

/// `src` compiled under `policy` at `-O3` with `walk_frames`.
fn walk_aot(src: &Path, policy: Policy) -> Result<PathBuf> {
    let input = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    let opts = mvvm_aot::CompileOptions {
        opt_level: 3,
        policy: policy.abi(),
        ..Default::default()
    };
    let (bytes, _) = compile_with(&input, &opts, &DevOptions::walk_frames())
        .with_context(|| format!("cannot compile {} (walk_frames)", src.display()))?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("walk-aot");
    std::fs::create_dir_all(&dir)?;
    let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
    // The same file name as `aot`'s (in another directory): the guest's
    // argv[0] is the file stem, and a stem of another length changes what
    // libc's start-up allocates and so the probe count compared below.
    let out = dir.join(format!(
        "{stem}-{}-O3-{}.aot",
        policy.label(),
        std::process::id()
    ));
    std::fs::write(&out, bytes)?;
    Ok(out)
}

/// The records made from the walk, summed over the runtime's debug lines
/// of one run (`frame walk checked`, `made_by_body: [w, h, c]`).
fn made(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.split("made_by_body: [").nth(1))
        .filter_map(|rest| rest.split(']').next())
        .flat_map(|list| list.split(',').filter_map(|n| n.trim().parse::<u64>().ok()))
        .sum()
}

/// A wasm committed in the repository: a missing one is a broken
/// checkout, so it fails the test everywhere.
fn repo_wasm(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    assert!(p.is_file(), "{} is needed by this test", p.display());
    p
}

/// Checkpoints the walk compilation at probe `c` (its records partly made
/// from the walk), restores it into the walk compilation with a second
/// checkpoint at the restored run's probe `again`, restores that into the
/// normal compilation, and requires stdout, exit code and files to add up
/// to `base`. Returns the records made from the walk in both checkpoints.
fn chain(
    walk: &Path,
    normal: &Path,
    guest: &Guest,
    base: &checkpoint_support::Baseline,
    c: u64,
    again: u64,
    what: &str,
) -> Result<u64> {
    let s = Scratch::new("walk-chain");
    let dir = s.subdir("work");
    let (snap, snap2) = (s.join("snap.bin"), s.join("snap2.bin"));
    let a = Tool::checkpoint(walk)
        .args(guest.flags(&dir))
        .count(c)
        .snapshot(&snap)
        .env("MVVM_LOG", "mvvm_rt=debug")
        .current_dir(&s.0)
        .run()?;
    a.expect_code(CHECKPOINTED, &format!("{what}: checkpoint at -c {c}"))?;
    let b = Tool::restore(walk)
        .snapshot(&snap)
        .args(guest.grants(&dir))
        .args(["-c", &again.to_string(), "--snapshot-out"])
        .arg(&snap2)
        .env("MVVM_LOG", "mvvm_rt=debug")
        .current_dir(&s.0)
        .run()?;
    let mut out = a.stdout.clone();
    out.extend_from_slice(&b.stdout);
    let code = if b.code() == Some(CHECKPOINTED) {
        let d = Tool::restore(normal)
            .snapshot(&snap2)
            .args(guest.grants(&dir))
            .current_dir(&s.0)
            .run()?;
        out.extend_from_slice(&d.stdout);
        d.code()
    } else {
        b.code()
    };
    ensure!(
        code == Some(base.code),
        "{what}: -c {c}, restored -c {again}: exit {code:?}; stderr:\n{}",
        b.stderr
    );
    ensure!(
        out == base.stdout,
        "{what}: -c {c}, restored -c {again}: output differs\n--- got:\n{}\n--- uninterrupted:\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&base.stdout)
    );
    ensure!(
        tree(&dir, &[])? == base.files,
        "{what}: -c {c}, restored -c {again}: files differ"
    );
    Ok(made(&a.stderr) + made(&b.stderr))
}

/// The whole matrix for one program under `policy`: `points` checkpoints
/// of the walk compilation restored into the normal one and into itself,
/// a chain through a second checkpoint of a restored run at every other
/// point, and one snapshot of the normal compilation restored into the
/// walk one. Returns the records made from the walk.
fn walk_everywhere(src: &Path, guest: &Guest, policy: Policy, points: usize) -> Result<u64> {
    let what = format!(
        "{} [{}, walk_frames]",
        src.file_stem().unwrap().to_string_lossy(),
        policy.label()
    );
    let normal = aot(src.to_str().expect("UTF-8 path"), policy, 3)?;
    let walk = walk_aot(src, policy)?;
    let base = baseline(&normal, guest).with_context(|| what.clone())?;
    let wbase = baseline(&walk, guest).with_context(|| what.clone())?;
    ensure!(
        (&wbase.stdout, wbase.code, &wbase.files, wbase.probes)
            == (&base.stdout, base.code, &base.files, base.probes),
        "{what}: the walk compilation runs differently (probes {} against {}, exit {} against {}, stdout equal: {}, files equal: {})",
        wbase.probes,
        base.probes,
        wbase.code,
        base.code,
        wbase.stdout == base.stdout,
        wbase.files == base.files
    );
    ensure!(base.probes > 0, "{what}: no probe executed");
    let mut failures = Vec::new();
    let mut made_total = 0;
    for (k, c) in spread(base.probes, points).into_iter().enumerate() {
        for target in [&normal, &walk] {
            if let Err(e) = checkpoint_and_restore(&walk, target, guest, &base, c, &what) {
                failures.push(format!("{e:#}"));
            }
        }
        if k % 2 == 1 {
            match chain(&walk, &normal, guest, &base, c, 2, &what) {
                Ok(n) => made_total += n,
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
    }
    let mid = (base.probes / 2).max(1);
    if let Err(e) = checkpoint_and_restore(&normal, &walk, guest, &base, mid, &what) {
        failures.push(format!("{e:#}"));
    }
    ensure!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{what}: {made_total} records made from the walk in the chains");
    Ok(made_total)
}

/// The checkpoint-everywhere programs of `test/ckpt` (C: loops, calls,
/// recursion, indirect calls, floats, memory growth, files) under the
/// loop and counter-loop policies.
#[test]
fn checkpoint_programs_restore_from_walked_records() -> Result<()> {
    let mut made_total = 0;
    for (name, guest) in [
        ("compute", Guest::default()),
        ("recursion", Guest::default()),
        ("indirect", Guest::default()),
        ("floats", Guest::default()),
        ("memgrow", Guest::default()),
        (
            "files",
            Guest {
                with_dir: true,
                ..Default::default()
            },
        ),
    ] {
        let src = ckpt_dir().join(format!("{name}.wasm"));
        for policy in [Policy::Loop, Policy::CounterLoop(4), Policy::Function] {
            made_total += walk_everywhere(&src, &guest, policy, 6)?;
        }
    }
    ensure!(made_total > 0, "no record was made from the walk");
    Ok(())
}

/// Bench programs at their smoke sizes (`bench/harness/src/workloads.rs`)
/// under counter-loop:16 and loop.
#[test]
fn bench_programs_restore_from_walked_records() -> Result<()> {
    let workloads: [(&str, &[&str]); 5] = [
        ("binary-trees", &["-n", "6"]),
        ("bc", &["-g", "6", "-n", "1"]),
        ("fannkuch-redux", &["-n6"]),
        ("llama2", &["-d32", "-l1", "-a2", "-v64", "-t8"]),
        ("kvstore", &["-k200", "-n2000"]),
    ];
    let mut made_total = 0;
    for (name, args) in workloads {
        let src = repo_wasm(&format!("bench/wasm/{name}.wasm"));
        let guest = Guest {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        };
        for policy in [Policy::CounterLoop(4), Policy::Loop] {
            made_total += walk_everywhere(&src, &guest, policy, 6)?;
        }
    }
    ensure!(made_total > 0, "no record was made from the walk");
    Ok(())
}
