//! Resume clones compiled on demand (`mvvm-aot --resume-clones=on-demand`):
//! the object leaves its clones out and carries its wasm; a restore
//! compiles the clones of the functions on the snapshot's stacks, and a
//! periodic checkpoint that continues compiles a clone when it first
//! rewinds through it. Whatever the object, the program must add up to an
//! uninterrupted run: checkpoint everywhere with such objects, snapshots
//! moved between the two kinds of object of the same wasm, periodic
//! checkpoints, and a clear refusal when no clone can be had.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::Restored;
use checkpoint_support::{
    CHECKPOINTED, FAILURE, Guest, POLICIES, Policy, Scratch, Tool, aot, aot_with, baseline,
    checkpoint_and_restore, ckpt_dir, everywhere_with, spread,
};
use std::path::{Path, PathBuf};

#[test]
fn compute_everywhere() -> Result<()> {
    everywhere_with("compute", &Guest::default(), 10, &POLICIES, true)
}

/// Deep recursion: many frames of the same functions, each clone compiled
/// once for all of them.
#[test]
fn recursion_everywhere() -> Result<()> {
    everywhere_with("recursion", &Guest::default(), 8, &POLICIES, true)
}

/// C++ exceptions (exnref encoding): handlers in clones placed by the
/// runtime must catch what the object's clones catch.
#[test]
fn cpp_exceptions_everywhere() -> Result<()> {
    everywhere_with(
        "cpp_exceptions_exnref",
        &Guest::default(),
        8,
        &[Policy::Loop, Policy::CounterLoop(4)],
        true,
    )
}

/// A snapshot belongs to the wasm, not to the object: one taken with
/// either kind of object restores into the other.
#[test]
fn snapshots_move_between_the_two_kinds_of_object() -> Result<()> {
    for policy in [Policy::Loop, Policy::CounterLoop(4)] {
        let in_object = aot("compute", policy, 3)?;
        let on_demand = aot_with("compute", policy, 3, true)?;
        let base = baseline(&in_object, &Guest::default())?;
        for c in spread(base.probes, 5) {
            for (from, to, what) in [
                (&in_object, &on_demand, "in object -> on demand"),
                (&on_demand, &in_object, "on demand -> in object"),
            ] {
                let what = format!("compute [{}] {what}", policy.label());
                match checkpoint_and_restore(from, to, &Guest::default(), &base, c, &what)? {
                    Restored::Same => {}
                    Restored::KnownRefusal => anyhow::bail!("{what}: refused at -c {c}"),
                }
            }
        }
    }
    Ok(())
}

/// The object really leaves the clones out and is smaller; the carried
/// wasm is what the restore compiles from.
#[test]
fn the_object_holds_no_clone() -> Result<()> {
    let wasm = std::fs::read(ckpt_dir().join("compute.wasm"))?;
    let opts = mvvm_aot::CompileOptions {
        policy: mvvm_aot::Policy::Loop,
        ..Default::default()
    };
    let in_object = mvvm_aot::compile(&wasm, &opts)?;
    let on_demand = mvvm_aot::compile_with(
        &wasm,
        &opts,
        mvvm_aot::ObjectOptions {
            clones_on_demand: true,
            ..Default::default()
        },
    )?;
    let a = mvvm_rt::Module::from_aot(&in_object)?;
    let b = mvvm_rt::Module::from_aot(&on_demand)?;
    let nimp = a.meta().num_imported_funcs;
    let funcs = nimp..nimp + (a.meta().funcs.len() as u32 - nimp);
    let with_clone = funcs
        .clone()
        .filter(|&f| a.code_sizes(f).is_some_and(|(_, c)| c.is_some()))
        .count();
    ensure!(with_clone > 0, "the in-object build has no clone");
    for f in funcs {
        let (_, clone) = b.code_sizes(f).context("no entry")?;
        ensure!(
            clone.is_none(),
            "function {f} has a clone in the on-demand object"
        );
    }
    ensure!(
        on_demand.len() < in_object.len(),
        "on demand {} bytes, in object {}",
        on_demand.len(),
        in_object.len()
    );
    // Without a policy the option changes nothing.
    let plain = mvvm_aot::CompileOptions::default();
    let choices = mvvm_aot::ObjectOptions {
        clones_on_demand: true,
        ..Default::default()
    };
    ensure!(mvvm_aot::compile(&wasm, &plain)? == mvvm_aot::compile_with(&wasm, &plain, choices)?);
    Ok(())
}

/// `--every`: each periodic checkpoint continues by rewinding, which
/// compiles the clones it needs the first time; output as a straight run,
/// and the last periodic snapshot restores.
#[test]
fn periodic_checkpoints_compile_clones_as_they_go() -> Result<()> {
    let s = Scratch::new("od-every");
    let a = aot_with("long", Policy::Loop, 3, true)?;
    let straight = Tool::checkpoint(&a).run()?;
    straight.expect_code(0, "straight run")?;
    let snap = s.join("e.bin");
    let r = Tool::checkpoint(&a)
        .snapshot(&snap)
        .args(["--every", "0.02", "-v"])
        .run()?;
    r.expect_code(0, "periodic run")?;
    ensure!(r.stdout == straight.stdout, "{}", r.stderr);
    let n = r.stderr.matches("periodic checkpoint written").count();
    ensure!(
        n >= 2,
        "{n} periodic checkpoints: the run is too short\n{}",
        r.stderr
    );
    ensure!(
        r.stderr.contains("compiled resume clones on demand"),
        "no clone was compiled:\n{}",
        r.stderr
    );
    let end = Tool::restore(&a).snapshot(&snap).run()?;
    end.expect_code(0, "restore of the last periodic snapshot")?;
    Ok(())
}

/// An object without its clones and without wasm (the developer option
/// that measures the compile without clones) cannot rewind: the restore
/// fails with an error that says why, never a crash.
#[test]
fn no_clone_and_no_wasm_is_a_clear_error() -> Result<()> {
    let s = Scratch::new("od-noclone");
    let wasm = std::fs::read(ckpt_dir().join("compute.wasm"))?;
    let opts = mvvm_aot::CompileOptions {
        policy: mvvm_aot::Policy::Loop,
        ..Default::default()
    };
    let dev = mvvm_aot::frame_labels::DevOptions {
        resume_clones: false,
        ..Default::default()
    };
    let (object, _) = mvvm_aot::frame_labels::compile_with(&wasm, &opts, &dev)?;
    let a = s.join("noclone.aot");
    std::fs::write(&a, object)?;
    let snap = s.join("n.bin");
    Tool::checkpoint(&a)
        .snapshot(&snap)
        .count(200)
        .run()?
        .expect_code(CHECKPOINTED, "checkpoint")?;
    let r = Tool::restore(&a).snapshot(&snap).run()?;
    r.expect_code(FAILURE, "restore without clones")?;
    ensure!(
        r.stderr.contains("has no resume clone in the object"),
        "{}",
        r.stderr
    );
    Ok(())
}

/// The resume clone entries of the cache under `$XDG_CACHE_HOME` `home`.
fn clone_entries(home: &Path) -> Result<Vec<PathBuf>> {
    let dir = home.join("mvvm");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "clone"))
        .collect())
}

/// The clones a restore compiles are kept in the compiled-object cache: a
/// second restore of the same object compiles none; a damaged entry is
/// compiled again; `--no-cache` neither reads nor writes one.
#[test]
fn restored_clones_are_cached() -> Result<()> {
    let s = Scratch::new("od-cache");
    let cache_home = s.subdir("xdg");
    let a = aot_with("compute", Policy::Loop, 3, true)?;
    let base = baseline(&a, &Guest::default())?;
    let snap = s.join("c.bin");
    Tool::checkpoint(&a)
        .snapshot(&snap)
        .count(base.probes / 2)
        .run()?
        .expect_code(CHECKPOINTED, "checkpoint")?;
    let restore = |extra: &[&str]| -> Result<(String, Vec<u8>)> {
        let r = Tool::restore(&a)
            .snapshot(&snap)
            .env("XDG_CACHE_HOME", cache_home.to_str().context("path")?)
            .args(["-v", "--snapshot-out"])
            .arg(s.join("unused.bin"))
            .args(extra)
            .run()?;
        r.expect_code(base.code, "restore")?;
        Ok((r.stderr, r.stdout))
    };
    let entries = || clone_entries(&cache_home);
    let (log, _) = restore(&["--no-cache"])?;
    ensure!(log.contains("cached=0"), "{log}");
    ensure!(entries()?.is_empty(), "--no-cache wrote a clone entry");
    let (log, first) = restore(&[])?;
    ensure!(log.contains("cached=0"), "{log}");
    let stored = entries()?;
    ensure!(!stored.is_empty(), "no clone entry written:\n{log}");
    let (log, second) = restore(&[])?;
    ensure!(
        log.contains("cached=")
            && !log.contains("cached=0")
            && !log.contains("compiled resume clones on demand clones=0"),
        "the second restore compiled again:\n{log}"
    );
    ensure!(first == second);
    // A damaged entry is not used: compiled again, same output.
    for p in &stored {
        let mut bytes = std::fs::read(p)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(p, bytes)?;
    }
    let (log, third) = restore(&[])?;
    ensure!(log.contains("cached=0"), "a damaged entry was used:\n{log}");
    ensure!(third == first);
    Ok(())
}

/// A run that stops at a checkpoint written to a file leaves the clones
/// of its frames in the cache: the restore on this machine compiles none
/// (and with `--no-cache` the checkpoint leaves nothing).
#[test]
fn a_checkpoint_leaves_its_clones_for_the_restore() -> Result<()> {
    let s = Scratch::new("od-keep");
    let a = aot_with("compute", Policy::Loop, 3, true)?;
    let base = baseline(&a, &Guest::default())?;
    for (name, extra, kept) in [("off", &["--no-cache"][..], false), ("on", &[][..], true)] {
        let home = s.subdir(&format!("xdg-{name}"));
        let snap = s.join(&format!("{name}.bin"));
        let c = Tool::checkpoint(&a)
            .snapshot(&snap)
            .count(base.probes / 2)
            .env("XDG_CACHE_HOME", home.to_str().context("path")?)
            .args(extra)
            .run()?;
        c.expect_code(CHECKPOINTED, "checkpoint")?;
        let n = clone_entries(&home)?.len();
        ensure!(
            (n > 0) == kept,
            "{name}: {n} clone entries after the checkpoint"
        );
        if !kept {
            continue;
        }
        let r = Tool::restore(&a)
            .snapshot(&snap)
            .env("XDG_CACHE_HOME", home.to_str().context("path")?)
            .args(["-v", "--snapshot-out"])
            .arg(s.join("unused.bin"))
            .run()?;
        r.expect_code(base.code, "restore")?;
        ensure!(
            r.stderr.contains("cached=") && !r.stderr.contains("cached=0"),
            "the restore compiled what the checkpoint kept:\n{}",
            r.stderr
        );
        ensure!(
            [c.stdout, r.stdout].concat() == base.stdout,
            "checkpoint and restore did not print what an uninterrupted run prints"
        );
    }
    Ok(())
}

/// An object another build of the compiler made (here: this object with
/// its recorded build identity changed) gets no clone compiled by this
/// build, neither fresh nor from the cache: the restore stops with an
/// error that says so (exit 125) and runs nothing.
#[test]
fn clones_for_an_object_of_another_build_are_refused() -> Result<()> {
    let s = Scratch::new("od-build");
    let a = aot_with("compute", Policy::Loop, 3, true)?;
    let base = baseline(&a, &Guest::default())?;
    let snap = s.join("c.bin");
    let home = s.subdir("xdg");
    let home = home.to_str().context("path")?;
    Tool::checkpoint(&a)
        .snapshot(&snap)
        .count(base.probes / 2)
        .env("XDG_CACHE_HOME", home)
        .run()?
        .expect_code(CHECKPOINTED, "checkpoint")?;
    let mut bytes = std::fs::read(&a)?;
    let id = mvvm_aot::BUILD_ID.as_bytes();
    let other: Vec<u8> = id
        .iter()
        .map(|&c| if c == b'0' { b'1' } else { b'0' })
        .collect();
    let mut replaced = 0;
    let mut i = 0;
    while i + id.len() <= bytes.len() {
        if &bytes[i..i + id.len()] == id {
            bytes[i..i + id.len()].copy_from_slice(&other);
            replaced += 1;
            i += id.len();
        } else {
            i += 1;
        }
    }
    ensure!(
        replaced > 0,
        "the object does not record this build's identity"
    );
    let altered = s.join("other-build.aot");
    std::fs::write(&altered, bytes)?;
    let r = Tool::restore(&altered)
        .snapshot(&snap)
        .env("XDG_CACHE_HOME", home)
        .args(["--snapshot-out"])
        .arg(s.join("unused.bin"))
        .run()?;
    r.expect_code(FAILURE, "restore with an object of another build")?;
    ensure!(
        r.stderr.contains("can only be compiled by")
            && r.stderr
                .contains(&String::from_utf8_lossy(&other).into_owned()),
        "{}",
        r.stderr
    );
    ensure!(r.stdout.is_empty(), "the guest ran");
    Ok(())
}

/// The `veneers=N` counts of the clones a `-v` run installed, and whether
/// each went to pages of its own (from `installed a resume clone` lines).
fn installed_clones(stderr: &str) -> Vec<(usize, bool)> {
    let field = |l: &str, k: &str| -> Option<String> {
        let at = l.find(&format!("{k}="))? + k.len() + 1;
        Some(l[at..].split([' ', '\x1b']).next()?.to_owned())
    };
    stderr
        .lines()
        .filter(|l| l.contains("installed a resume clone"))
        .filter_map(|l| {
            let v = field(l, "veneers")?.parse().ok()?;
            let own = field(l, "own_pages")? == "true";
            Some((v, own))
        })
        .collect()
}

/// Clones that no arena holds (developer knob `MVVM_DEV_CLONE_ARENA`: no
/// arena at all, as a module whose aarch64 code is too large for one, or
/// an arena of 64 KiB that the large clones do not fit; clones outside it
/// are placed 16 GiB from the code, so all their calls go through
/// veneers): restores and periodic checkpoints add up to a straight run.
#[test]
fn clones_outside_the_arena_run_through_veneers() -> Result<()> {
    let a = aot_with("compute", Policy::Loop, 3, true)?;
    let base = baseline(&a, &Guest::default())?;
    for cap in ["0", "65536"] {
        let mut own = 0;
        for c in spread(base.probes, 5) {
            let what = format!("MVVM_DEV_CLONE_ARENA={cap}, -c {c}");
            let s = Scratch::new("od-veneer");
            let snap = s.join("v.bin");
            let first = Tool::checkpoint(&a).snapshot(&snap).count(c).run()?;
            first.expect_code(CHECKPOINTED, &format!("{what}: checkpoint"))?;
            let r = Tool::restore(&a)
                .snapshot(&snap)
                .env("MVVM_DEV_CLONE_ARENA", cap)
                .arg("-v")
                .run()?;
            r.expect_code(base.code, &format!("{what}: restore"))?;
            let mut out = first.stdout.clone();
            out.extend_from_slice(&r.stdout);
            ensure!(out == base.stdout, "{what}: output differs\n{}", r.stderr);
            let placed = installed_clones(&r.stderr);
            ensure!(
                !placed.is_empty(),
                "{what}: no clone installed\n{}",
                r.stderr
            );
            for &(veneers, own_pages) in &placed {
                ensure!(
                    own_pages == (veneers > 0),
                    "{what}: {placed:?}: veneers only and always outside the arena"
                );
                own += usize::from(own_pages);
            }
            if cap == "0" {
                ensure!(placed.iter().all(|p| p.1), "{what}: {placed:?}");
            }
        }
        ensure!(
            own > 0,
            "MVVM_DEV_CLONE_ARENA={cap}: no clone outside the arena"
        );
    }
    // `--every` without an arena: the background compile and the
    // continuing checkpoints place every clone in pages of their own,
    // calling through veneers, and the run goes on to the right end.
    // (Which clones land in a small arena and which outside it depends on
    // how the background batches and the rewinds interleave, now that the
    // clones of a batch are placed together: that mix is checked
    // deterministically by `jit_clone`'s
    // `clones_the_arena_cannot_hold_get_their_own_pages`.)
    let s = Scratch::new("od-veneer-every");
    let l = aot_with("long", Policy::Loop, 3, true)?;
    let straight = Tool::checkpoint(&l).run()?;
    straight.expect_code(0, "straight run")?;
    let r = Tool::checkpoint(&l)
        .snapshot(&s.join("e.bin"))
        .env("MVVM_DEV_CLONE_ARENA", "0")
        .args(["--every", "0.02", "-v"])
        .run()?;
    r.expect_code(0, "periodic run")?;
    ensure!(r.stdout == straight.stdout, "{}", r.stderr);
    let placed = installed_clones(&r.stderr);
    ensure!(
        !placed.is_empty() && placed.iter().all(|&(veneers, own)| own && veneers > 0),
        "every clone in pages of its own, through veneers: {placed:?}\n{}",
        r.stderr
    );
    Ok(())
}
