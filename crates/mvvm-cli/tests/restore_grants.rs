//! A restore takes its capabilities from its own command line, never from
//! the snapshot: a snapshot that needs a preopen or a listener the command
//! did not grant is refused before anything runs, and a host path written
//! in a snapshot is never opened.

mod checkpoint_support;

use anyhow::{Result, ensure};
use checkpoint_support::*;
use mvvm_wasi::{FdEntry, FdKind, Preopen, WasiState};
use std::path::{Path, PathBuf};

fn files_guest() -> Guest {
    Guest {
        with_dir: true,
        ..Default::default()
    }
}

/// `files` (loop policy) checkpointed at half its probes with `work`
/// preopened under its own path.
struct HalfWay {
    s: Scratch,
    snap: PathBuf,
    aot: PathBuf,
    base: Baseline,
    first: Ran,
}

impl HalfWay {
    fn new() -> Result<HalfWay> {
        let aot = aot("files", Policy::Loop, 3)?;
        let base = baseline(&aot, &files_guest())?;
        let s = Scratch::new("grants");
        let dir = s.subdir("work");
        let snap = s.join("snap.bin");
        let first = Tool::checkpoint(&aot)
            .args(files_guest().flags(&dir))
            .count(base.probes / 2)
            .snapshot(&snap)
            .run()?;
        first.expect_code(CHECKPOINTED, "files at half way")?;
        Ok(HalfWay {
            s,
            snap,
            aot,
            base,
            first,
        })
    }

    fn work(&self) -> PathBuf {
        self.s.join("work")
    }

    /// The guest path of the preopen: `work`'s host path as given to `-d`.
    fn guest_path(&self) -> String {
        self.work().to_str().expect("UTF-8 temp path").to_owned()
    }

    /// Checks that the restored run `r` completed the program exactly as
    /// the uninterrupted run did, with its files in `dir`.
    fn finished_in(&self, r: &Ran, dir: &Path, what: &str) -> Result<()> {
        r.expect_code(self.base.code, what)?;
        let mut out = self.first.stdout.clone();
        out.extend_from_slice(&r.stdout);
        ensure!(out == self.base.stdout, "{what}: output differs");
        ensure!(tree(dir, &[])? == self.base.files, "{what}: files differ");
        Ok(())
    }
}

fn refused(r: &Ran, what: &str, needles: &[&str]) -> Result<()> {
    r.expect_code(FAILURE, what)?;
    ensure!(
        r.stdout.is_empty(),
        "{what}: the guest ran: {:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    for needle in needles {
        ensure!(
            r.stderr.contains(needle),
            "{what}: stderr does not mention `{needle}`:\n{}",
            r.stderr
        );
    }
    ensure!(
        !r.stderr.contains("panicked"),
        "{what}: panic:\n{}",
        r.stderr
    );
    Ok(())
}

/// Rewrites the WASI state of the snapshot at `snap` through the crates'
/// own types, as an attacker who can edit the file would (crc32s are
/// recomputed by the writer).
fn rewrite_wasi(snap: &Path, edit: impl FnOnce(&mut WasiState)) -> Result<()> {
    let mut s = mvvm_snapshot::open_file(snap)?;
    let mut state: WasiState = mvvm_abi::codec::decode(&s.wasi)?;
    edit(&mut state);
    s.wasi = mvvm_abi::codec::encode(&state)?;
    let memory = s.memory_bytes()?;
    let parts = mvvm_snapshot::SnapshotParts {
        info: s.info.clone(),
        frames: s.frames.clone(),
        globals: s.globals.clone(),
        tables: s.tables.clone(),
        exceptions: s.exceptions.clone(),
        dropped_data: s.dropped_data.clone(),
        dropped_elems: s.dropped_elems.clone(),
        wasi: s.wasi.clone(),
        monotonic_offset_nanos: s.monotonic_offset_nanos,
        memory: &memory,
        max_pages: s.memory.max_pages(),
        threads: s.threads.clone(),
        last_thread_id: s.last_thread_id,
    };
    drop(s);
    mvvm_snapshot::write_file_atomic(snap, &parts)?;
    Ok(())
}

fn out_txt(dir: &Path) -> Result<Vec<u8>> {
    Ok(std::fs::read(dir.join("out.txt"))?)
}

#[test]
fn a_needed_directory_not_granted_is_refused_before_anything_runs() -> Result<()> {
    let h = HalfWay::new()?;
    let before = out_txt(&h.work())?;
    let r = Tool::restore(&h.aot).snapshot(&h.snap).run()?;
    let guest = h.guest_path();
    refused(
        &r,
        "restore without grants",
        &[
            &guest,
            &format!("-d {guest}"),
            "--dir HOST::",
            "nothing was run",
        ],
    )?;
    ensure!(out_txt(&h.work())? == before, "the guest's file changed");
    // Granting another guest path does not help.
    let r = Tool::restore(&h.aot)
        .snapshot(&h.snap)
        .arg("--dir")
        .arg(format!("{}::/elsewhere", h.work().display()))
        .run()?;
    refused(&r, "restore with another guest path", &[&guest])?;
    // The right grant restores.
    let r = Tool::restore(&h.aot)
        .snapshot(&h.snap)
        .arg("-d")
        .arg(h.work())
        .run()?;
    h.finished_in(&r, &h.work(), "restore with -d")
}

#[test]
fn granted_from_another_host_directory_the_program_continues_there() -> Result<()> {
    let h = HalfWay::new()?;
    // The data moves (same files, so their identity check holds).
    let moved = h.s.join("moved");
    std::fs::rename(h.work(), &moved)?;
    let r = Tool::restore(&h.aot)
        .snapshot(&h.snap)
        .arg("--dir")
        .arg(format!("{}::{}", moved.display(), h.guest_path()))
        .run()?;
    h.finished_in(&r, &moved, "restore with --dir MOVED::GUEST")?;
    ensure!(!h.work().exists(), "the old directory was created again");
    Ok(())
}

#[test]
fn a_host_path_written_in_the_snapshot_is_never_opened() -> Result<()> {
    for evil in ["/", "/etc"] {
        let h = HalfWay::new()?;
        rewrite_wasi(&h.snap, |s| {
            s.preopens[0].host = PathBuf::from(evil);
        })?;
        let r = Tool::restore(&h.aot).snapshot(&h.snap).run()?;
        refused(
            &r,
            &format!("host path {evil}, no grant"),
            &[&h.guest_path()],
        )?;
        // Granted: the guest gets the granted directory, not `evil`.
        let r = Tool::restore(&h.aot)
            .snapshot(&h.snap)
            .arg("-d")
            .arg(h.work())
            .run()?;
        h.finished_in(&r, &h.work(), &format!("host path {evil}, granted"))?;
    }
    Ok(())
}

#[test]
fn a_preopen_added_to_the_snapshot_is_refused_by_name() -> Result<()> {
    let h = HalfWay::new()?;
    rewrite_wasi(&h.snap, |s| {
        s.preopens.push(Preopen {
            host: PathBuf::from("/"),
            guest: "/host-root".into(),
        });
    })?;
    let r = Tool::restore(&h.aot)
        .snapshot(&h.snap)
        .arg("-d")
        .arg(h.work())
        .run()?;
    refused(
        &r,
        "an extra preopen",
        &["/host-root", "--dir HOST::/host-root"],
    )
}

#[test]
fn a_listener_must_be_granted_and_is_bound_where_granted() -> Result<()> {
    let h = HalfWay::new()?;
    let saved = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = saved.local_addr()?;
    drop(saved);
    rewrite_wasi(&h.snap, |s| {
        let fd = s.fds.keys().max().copied().unwrap_or(2) + 1;
        s.fds.insert(
            fd,
            FdEntry {
                kind: FdKind::TcpListener { addr },
                preopen: None,
                path: String::new(),
                oflags: 0,
                lookup_flags: 0,
                read: true,
                write: true,
                rights_base: 0,
                rights_inheriting: 0,
                fdflags: 0,
                position: 0,
                file_id: None,
            },
        );
    })?;
    let r = Tool::restore(&h.aot)
        .snapshot(&h.snap)
        .arg("-d")
        .arg(h.work())
        .run()?;
    refused(
        &r,
        "listener not granted",
        &[&format!("--tcplisten {addr}")],
    )?;
    // Granted on the same port of another local address (the port is what
    // a listener keeps across machines).
    let granted = format!("127.0.0.2:{}", addr.port());
    let r = Tool::restore(&h.aot)
        .snapshot(&h.snap)
        .arg("-d")
        .arg(h.work())
        .args(["--tcplisten", &granted])
        .run()?;
    h.finished_in(&r, &h.work(), "listener granted by port")
}
