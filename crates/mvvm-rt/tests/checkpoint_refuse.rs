//! What a restore refuses (another module, damaged snapshots, frames that
//! do not fit the module, files that changed), triggers that cannot work,
//! and the asynchronous triggers (timer, signal) with a blocking host call
//! interrupted and made again.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointError, FuncSelector, Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger,
};
use mvvm_snapshot::SnapshotError;
use mvvm_wasi::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STACK: usize = 1 << 20;

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "out")
  (data (i32.const 8) "in")
  (func $emit (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 16))
    (i32.store (i32.const 44) (i32.const 8))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48))))
  ;; sleeps $ms milliseconds with poll_oneoff (one relative clock subscription at 256)
  (func $sleep (param $ms i64)
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.mul (local.get $ms) (i64.const 1000000)))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 352))))
"#;

fn compile(body: &str, policy: Policy) -> Module {
    let wat = format!("(module {IMPORTS} {body})");
    ckpt_common::compile(&wat, policy, mvvm_aot::CompileOptions::default().opt_level)
}

fn restore_file(
    module: &Module,
    snap: &Path,
    allow_changed_files: bool,
) -> Result<Outcome, mvvm_wasi::Error> {
    Command::new(module)
        .max_wasm_stack(STACK)
        // Every snapshot here was taken with its directory as `/work`.
        .grants(ckpt_common::grants(
            snap.parent().expect("snapshot in a directory"),
        ))
        .allow_changed_files(allow_changed_files)
        .restore(
            SnapshotSource::File(snap.to_path_buf()),
            cfg(Trigger::CountProbes, &snap.with_extension("next")),
            RestoreOptions::default(),
        )
}

const COUNT: &str = r#"
  (func (export "_start") (local $i i32) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 7)) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (call $emit (local.get $acc))
    (call $proc_exit (i32.const 3)))
"#;

/// A snapshot of COUNT at probe 50.
fn count_snapshot(tag: &str) -> (Module, PathBuf, PathBuf) {
    let module = compile(COUNT, Policy::Loop);
    let dir = temp_dir("refuse", tag);
    let snap = dir.join("snap");
    ckpt_common::checkpoint_at(&module, &dir, STACK, 50, &snap);
    (module, dir, snap)
}

#[test]
fn another_module_is_refused() {
    let (_, dir, snap) = count_snapshot("other");
    let other = compile(&COUNT.replace("i64.const 7", "i64.const 9"), Policy::Loop);
    let e = restore_file(&other, &snap, false).unwrap_err();
    assert!(
        matches!(
            e,
            mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(
                SnapshotError::ModuleMismatch { .. }
            ))
        ),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_snapshots_are_refused() {
    let (module, dir, snap) = count_snapshot("trunc");
    let bytes = std::fs::read(&snap).unwrap();
    for cut in [10, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&snap, &bytes[..cut]).unwrap();
        let e = restore_file(&module, &snap, false).unwrap_err();
        assert!(
            matches!(
                e,
                mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(_))
            ),
            "cut at {cut}: {e}"
        );
        let e = Command::new(&module)
            .max_wasm_stack(STACK)
            .restore(
                SnapshotSource::Stream(Box::new(std::io::Cursor::new(bytes[..cut].to_vec()))),
                cfg(Trigger::CountProbes, &dir.join("x")),
                RestoreOptions::default(),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                mvvm_wasi::Error::Checkpoint(CheckpointError::Snapshot(_))
            ),
            "stream cut at {cut}: {e}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites the snapshot at `snap` after `edit` changed its parts.
fn rewrite(snap: &Path, edit: impl FnOnce(&mut mvvm_snapshot::Snapshot)) {
    let mut s = mvvm_snapshot::open_file(snap).unwrap();
    edit(&mut s);
    let memory = s.memory_bytes().unwrap();
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
    mvvm_snapshot::write_file_atomic(snap, &parts).unwrap();
}

#[test]
fn altered_frames_are_refused_with_a_message() {
    let (module, dir, snap) = count_snapshot("frame");
    let good = std::fs::read(&snap).unwrap();
    type Edit = Box<dyn FnOnce(&mut mvvm_snapshot::Snapshot)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "not one of the function's",
            Box::new(|s| s.frames.last_mut().unwrap().resume_offset += 1),
        ),
        (
            "local 0 is I64",
            Box::new(|s| s.frames[0].locals[0] = mvvm_snapshot::WasmValue::I64(1)),
        ),
        (
            "locals saved",
            Box::new(|s| s.frames[0].locals.pop().map(drop).unwrap_or(())),
        ),
        (
            "an outer frame must be at a call site",
            Box::new(|s| {
                s.frames.push(mvvm_snapshot::FrameRecord {
                    func: 999,
                    ..Default::default()
                })
            }),
        ),
        ("holds no frame", Box::new(|s| s.frames.clear())),
        ("neither `_start`", Box::new(|s| s.frames[0].func = 5)),
        (
            "globals",
            Box::new(|s| s.globals.push(mvvm_snapshot::WasmValue::I32(0))),
        ),
    ];
    for (want, edit) in cases {
        std::fs::write(&snap, &good).unwrap();
        rewrite(&snap, edit);
        let e = restore_file(&module, &snap, false).unwrap_err();
        // More globals than the module has is refused by the reader's
        // limits (derived from the module) before it decodes them.
        let refused = matches!(
            e,
            mvvm_wasi::Error::Checkpoint(
                CheckpointError::Mismatch(_)
                    | CheckpointError::Snapshot(SnapshotError::LimitExceeded { .. })
            )
        );
        assert!(
            refused && e.to_string().contains(want),
            "want `{want}`, got: {e}"
        );
    }
    // And the untouched snapshot still restores.
    std::fs::write(&snap, &good).unwrap();
    let out = restore_file(&module, &snap, false).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 3, .. }), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn triggers_that_cannot_work() {
    let dir = temp_dir("refuse", "trig");
    let plain = compile(COUNT, Policy::None);
    let out = Command::new(&plain)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::CountProbes, &dir.join("s")),
            RunOptions::default(),
        )
        .unwrap();
    assert_eq!(out, Outcome::Exited { code: 3, probes: 0 });
    let e = Command::new(&plain)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::ProbeCount(3), &dir.join("s")),
            RunOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            mvvm_wasi::Error::Checkpoint(CheckpointError::NotInstrumented)
        ),
        "{e}"
    );
    let e = restore_file(&plain, &dir.join("s"), false).unwrap_err();
    assert!(
        matches!(
            e,
            mvvm_wasi::Error::Checkpoint(CheckpointError::NotInstrumented)
        ),
        "{e}"
    );
    let looped = compile(COUNT, Policy::Loop);
    let t = Trigger::FunctionEntry {
        func: FuncSelector::Name("_start".into()),
        count: 1,
    };
    let e = Command::new(&looped)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(cfg(t, &dir.join("s")), RunOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("--enable-checkpoint"), "{e}");
    let entry = compile(COUNT, Policy::FunctionEntry);
    let t = Trigger::FunctionEntry {
        func: FuncSelector::Name("nope".into()),
        count: 1,
    };
    let e = Command::new(&entry)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(cfg(t, &dir.join("s")), RunOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("`nope`"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

const FIB: &str = r#"
  (func $fib (param $n i32) (result i64)
    (if (result i64) (i32.lt_u (local.get $n) (i32.const 2))
      (then (i64.extend_i32_u (local.get $n)))
      (else (i64.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "_start")
    (call $emit (call $fib (i32.const 12)))
    (call $proc_exit (i32.const 0)))
"#;

#[test]
fn function_entry_trigger_by_name_and_index() {
    let module = compile(FIB, Policy::FunctionEntry);
    let fib = module
        .meta()
        .func_names
        .iter()
        .find(|(_, n)| *n == "fib")
        .unwrap()
        .0;
    for sel in [FuncSelector::Name("fib".into()), FuncSelector::Index(fib)] {
        let dir = temp_dir("refuse", "entry");
        let t = Trigger::FunctionEntry {
            func: sel,
            count: 100,
        };
        let out = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(cfg(t, &dir.join("s")), RunOptions::default())
            .unwrap();
        let Outcome::Checkpointed { stats } = out else {
            panic!("{out:?}")
        };
        let snap = mvvm_snapshot::open_file(&dir.join("s")).unwrap();
        let inner = snap.frames.last().unwrap();
        assert_eq!(inner.func, fib);
        assert_eq!(stats.frames, snap.frames.len());
        let out = restore_file(&module, &dir.join("s"), false).unwrap();
        assert!(matches!(out, Outcome::Exited { code: 0, .. }));
        assert_eq!(
            std::fs::read(dir.join("out")).unwrap(),
            144u64.to_le_bytes()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Sleeps 10 x 60 ms in poll_oneoff, counting iterations into the result.
const SLEEPER: &str = r#"
  (func (export "_start") (local $i i32)
    (loop $l
      (call $sleep (i64.const 60))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (call $emit (i64.extend_i32_u (local.get $i)))
    (call $proc_exit (i32.const 0)))
"#;

#[test]
fn timer_interrupts_a_sleeping_host_call() {
    let module = compile(SLEEPER, Policy::FunctionEntry);
    let dir = temp_dir("refuse", "timer");
    let snap = dir.join("s");
    let t0 = std::time::Instant::now();
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::After(Duration::from_millis(150)), &snap),
            RunOptions::default(),
        )
        .unwrap();
    let Outcome::Checkpointed { stats } = out else {
        panic!("{out:?}")
    };
    assert!(
        t0.elapsed() < Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
    // The innermost frame is _start at the call of $sleep... or $sleep at
    // its call of poll_oneoff: the host call was interrupted, not finished.
    let s = mvvm_snapshot::open_file(&snap).unwrap();
    assert_eq!(s.frames.len(), 2, "{:?}", s.frames);
    assert_eq!(stats.frames, 2);
    let out = restore_file(&module, &snap, false).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), 10u64.to_le_bytes());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigusr1_requests_a_checkpoint() {
    let module = compile(SLEEPER, Policy::Loop);
    let dir = temp_dir("refuse", "signal");
    let snap = dir.join("s");
    let killer = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: sending a signal to our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    });
    let mut c = cfg(Trigger::CountProbes, &snap);
    c.signals = true;
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(c, RunOptions::default())
        .unwrap();
    killer.join().unwrap();
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    let out = restore_file(&module, &snap, false).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), 10u64.to_le_bytes());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens `in` once, then reads it one byte per iteration, summing.
const READER: &str = r#"
  (func (export "_start") (local $fd i32) (local $n i32) (local $acc i64)
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 8) (i32.const 2)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64)))
    (local.set $fd (i32.load (i32.const 64)))
    (i32.store (i32.const 72) (i32.const 80))
    (i32.store (i32.const 76) (i32.const 1))
    (loop $l
      (drop (call $fd_read (local.get $fd) (i32.const 72) (i32.const 1) (i32.const 84)))
      (local.set $n (i32.load (i32.const 84)))
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 3)) (i64.load8_u (i32.const 80))))
      (br_if $l (local.get $n)))
    (call $emit (local.get $acc))
    (call $proc_exit (i32.const 0)))
"#;

#[test]
fn open_files_are_reopened_and_checked() {
    let module = compile(READER, Policy::Loop);
    let dir = temp_dir("refuse", "files");
    let data: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("in"), &data).unwrap();
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::CountProbes, &dir.join("s")),
            RunOptions::default(),
        )
        .unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }));
    let want = std::fs::read(dir.join("out")).unwrap();
    std::fs::remove_file(dir.join("out")).unwrap();

    let snap = dir.join("s");
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(cfg(Trigger::ProbeCount(100), &snap), RunOptions::default())
        .unwrap();
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    let out = restore_file(&module, &snap, false).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), want);

    // Replace `in` by another file with the same contents: refused, unless
    // allowed (and then the result is the same, the bytes being equal).
    std::fs::write(dir.join("in.new"), &data).unwrap();
    std::fs::rename(dir.join("in.new"), dir.join("in")).unwrap();
    let e = restore_file(&module, &snap, false).unwrap_err();
    assert!(
        matches!(&e, mvvm_wasi::Error::FileChanged { path, .. } if path == "in"),
        "{e}"
    );
    let out = restore_file(&module, &snap, true).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), want);
    // Gone: refused.
    std::fs::remove_file(dir.join("in")).unwrap();
    let e = restore_file(&module, &snap, true).unwrap_err();
    assert!(matches!(e, mvvm_wasi::Error::FileChanged { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bytes` with the checkpoint tables section's bytes passed to `damage`.
fn damage_tables(mut bytes: Vec<u8>, damage: impl FnOnce(&mut [u8])) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(&*bytes).unwrap();
    let (off, size) = file
        .section_by_name(mvvm_abi::object::CKPT_SECTION)
        .expect("a checkpoint tables section")
        .file_range()
        .unwrap();
    drop(file);
    damage(&mut bytes[off as usize..(off + size) as usize]);
    bytes
}

/// The message of `e` and of its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Damaged checkpoint tables (decoded on first use) do not stop a module
/// from loading and running; the checkpoint or restore that needs them
/// fails with a message naming them.
#[test]
fn damaged_checkpoint_tables_fail_the_checkpoint_not_the_start() {
    let wat = format!("(module {IMPORTS} {COUNT})");
    let opts = mvvm_aot::CompileOptions {
        policy: Policy::Loop,
        ..Default::default()
    };
    let good = mvvm_aot::compile(wat.as_bytes(), &opts).expect("compile");
    let (_, dir, snap) = count_snapshot("tables");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "payload garbled",
            damage_tables(good.clone(), |s| {
                let n = s.len();
                let count = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
                s[4 + 4 * (count + 1)..n].fill(0xff);
            }),
        ),
        (
            "wrong count",
            damage_tables(good.clone(), |s| s[..4].fill(0x7f)),
        ),
        (
            "offsets past the end",
            damage_tables(good.clone(), |s| {
                // Every offset but the first and the last.
                let count = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
                s[8..4 + 4 * count].fill(0xff);
            }),
        ),
    ];
    for (what, bytes) in cases {
        let module = Module::from_aot(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        let run_dir = temp_dir("refuse-tables", "run");
        let out = Command::new(&module)
            .config(wasi(&run_dir))
            .max_wasm_stack(STACK)
            .run(
                ckpt_common::cfg(Trigger::CountProbes, &run_dir.join("s")),
                RunOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{what}: a run without checkpoint: {e}"));
        assert!(
            matches!(out, Outcome::Exited { code: 3, .. }),
            "{what}: {out:?}"
        );
        let e = Command::new(&module)
            .config(wasi(&run_dir))
            .max_wasm_stack(STACK)
            .run(
                ckpt_common::cfg(Trigger::ProbeCount(50), &run_dir.join("s")),
                RunOptions::default(),
            )
            .expect_err(what);
        assert!(
            chain(&e).contains("checkpoint tables"),
            "{what}: {}",
            chain(&e)
        );
        let e = restore_file(&module, &snap, false).expect_err(what);
        assert!(
            chain(&e).contains("checkpoint tables"),
            "{what}: {}",
            chain(&e)
        );
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
