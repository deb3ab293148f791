//! Files deleted while open survive a checkpoint (issue 4).
//!
//! The guest opens `tmp` three times in its preopened directory (A: read
//! and write, created and truncated; B: read only; C: write only, append),
//! writes through A, deletes `tmp`, then between loops appends through C,
//! reads back through A and B, writes more through A and reads through B
//! again, checks that `tmp` is gone (`path_filestat_get` must fail), writes
//! everything it read to `out` and exits with 7. Checkpointed at probes
//! spread over the run with every policy, and restored (sometimes
//! checkpointed again after the restore, when the file is an anonymous
//! one), it must write the same `out` and exit with the same code as an
//! uninterrupted run, and `tmp` must not reappear in the directory.
//!
//! The three descriptors share one restored file: what A and C write after
//! the restore is what B reads.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{Outcome, RestoreOptions, RunOptions, SnapshotSource, Trigger};
use mvvm_wasi::Command;
use std::path::Path;

const STACK: usize = 1 << 20;

/// Exit codes: 7 when all went well, 100 + errno when a call failed
/// unexpectedly.
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file"
    (func $unlink (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $filestat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "tmp")
  (data (i32.const 8) "out")
  (data (i32.const 16) "hello ")
  (data (i32.const 24) "world")
  (data (i32.const 32) "!!")
  (global $olen (mut i32) (i32.const 0))
  (global $acc (mut i32) (i32.const 1))
  (func $check (param $err i32)
    (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 100) (local.get $err))))))
  ;; opens "tmp" and returns the new descriptor
  (func $open (param $oflags i32) (param $rights i64) (param $fdflags i32) (result i32)
    (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (local.get $oflags) (local.get $rights) (i64.const 0) (local.get $fdflags) (i32.const 200)))
    (i32.load (i32.const 200)))
  (func $write (param $fd i32) (param $p i32) (param $n i32)
    (i32.store (i32.const 100) (local.get $p))
    (i32.store (i32.const 104) (local.get $n))
    (call $check (call $fd_write (local.get $fd) (i32.const 100) (i32.const 1) (i32.const 212))))
  ;; appends what one read of `fd` returns, then a '|', to the output
  (func $read (param $fd i32)
    (i32.store (i32.const 100) (i32.add (i32.const 1024) (global.get $olen)))
    (i32.store (i32.const 104) (i32.const 256))
    (call $check (call $fd_read (local.get $fd) (i32.const 100) (i32.const 1) (i32.const 216)))
    (global.set $olen (i32.add (global.get $olen) (i32.load (i32.const 216))))
    (i32.store8 (i32.add (i32.const 1024) (global.get $olen)) (i32.const 124))
    (global.set $olen (i32.add (global.get $olen) (i32.const 1))))
  (func $seek0 (param $fd i32)
    (call $check (call $fd_seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 220))))
  (func $step (param $i i32)
    (global.set $acc (i32.add (i32.mul (global.get $acc) (i32.const 31)) (local.get $i))))
  (func $spin (param $n i32) (local $i i32)
    (loop $l
      (call $step (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func (export "_start") (local $a i32) (local $b i32) (local $c i32)
    ;; rights: READ 2, SEEK 4, TELL 32, WRITE 64
    (local.set $a (call $open (i32.const 9) (i64.const 102) (i32.const 0)))
    (local.set $b (call $open (i32.const 0) (i64.const 6) (i32.const 0)))
    (local.set $c (call $open (i32.const 0) (i64.const 64) (i32.const 1)))
    (call $write (local.get $a) (i32.const 16) (i32.const 6))
    (call $check (call $unlink (i32.const 3) (i32.const 0) (i32.const 3)))
    (call $spin (i32.const 300))
    (call $write (local.get $c) (i32.const 24) (i32.const 5))
    (call $spin (i32.const 300))
    (call $seek0 (local.get $a))
    (call $read (local.get $a))
    (call $read (local.get $b))
    (call $write (local.get $a) (i32.const 32) (i32.const 2))
    (call $spin (i32.const 300))
    (call $seek0 (local.get $b))
    (call $read (local.get $b))
    (call $write (local.get $c) (i32.const 24) (i32.const 5))
    (call $read (local.get $b))
    ;; "tmp" must be gone: store the errno of the lookup
    (i32.store8 (i32.add (i32.const 1024) (global.get $olen))
      (call $filestat (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3) (i32.const 300)))
    (global.set $olen (i32.add (global.get $olen) (i32.const 1)))
    (i32.store (i32.add (i32.const 1024) (global.get $olen)) (global.get $acc))
    (global.set $olen (i32.add (global.get $olen) (i32.const 4)))
    (local.set $a (call $path_open (i32.const 3) (i32.const 0) (i32.const 8) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 200)))
    (call $check (local.get $a))
    (call $write (i32.load (i32.const 200)) (i32.const 1024) (global.get $olen))
    (call $proc_exit (i32.const 7))))
"#;

fn compile(policy: Policy) -> Module {
    ckpt_common::compile(GUEST, policy, 2)
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The exit code and `out` of an uninterrupted run, and its probe count.
fn reference(module: &Module) -> (i32, Vec<u8>, u64) {
    let dir = temp_dir("unlinked", "ref");
    let out = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::CountProbes, &dir.join("snap")),
            RunOptions::default(),
        )
        .expect("reference run");
    let Outcome::Exited { code, probes } = out else {
        panic!("reference run checkpointed: {out:?}");
    };
    let bytes = std::fs::read(dir.join("out")).expect("reference output");
    assert_eq!(names(&dir), ["out"], "reference run left files behind");
    let _ = std::fs::remove_dir_all(&dir);
    (code, bytes, probes)
}

/// Checkpoints at probe `n`, restores (checkpointing again at probe
/// `again` of the restored run and restoring that, when given), and checks
/// the result and the directory.
fn checkpoint_restore(module: &Module, n: u64, again: Option<u64>, want: &(i32, Vec<u8>)) {
    let dir = temp_dir("unlinked", "cr");
    let snaps = temp_dir("unlinked", "snaps");
    let snap = snaps.join("snap");
    let out = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(cfg(Trigger::ProbeCount(n), &snap), RunOptions::default())
        .unwrap_or_else(|e| panic!("run to probe {n}: {e}"));
    let Outcome::Checkpointed { .. } = out else {
        panic!("probe {n}: no checkpoint: {out:?}");
    };
    let trigger = match again {
        Some(m) => Trigger::ProbeCount(m),
        None => Trigger::CountProbes,
    };
    let snap2 = snaps.join("snap2");
    let mut out = Command::new(module)
        .max_wasm_stack(STACK)
        .grants(ckpt_common::grants(&dir))
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(trigger, &snap2),
            RestoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("restore of probe {n}: {e}"));
    if let Outcome::Checkpointed { .. } = out {
        assert!(
            !dir.join("tmp").exists(),
            "probe {n}: `tmp` reappeared after the first restore"
        );
        out = Command::new(module)
            .max_wasm_stack(STACK)
            .grants(ckpt_common::grants(&dir))
            .restore(
                SnapshotSource::File(snap2.clone()),
                cfg(Trigger::CountProbes, &snaps.join("snap3")),
                RestoreOptions::default(),
            )
            .unwrap_or_else(|e| panic!("second restore of probe {n}: {e}"));
    }
    let Outcome::Exited { code, .. } = out else {
        panic!("restore of probe {n} did not exit: {out:?}");
    };
    let bytes = std::fs::read(dir.join("out")).expect("output after restore");
    assert_eq!(
        (code, String::from_utf8_lossy(&bytes)),
        (want.0, String::from_utf8_lossy(&want.1)),
        "checkpoint at probe {n}, again {again:?}"
    );
    assert_eq!(
        names(&dir),
        ["out"],
        "probe {n}: the directory after restore"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&snaps);
}

fn everywhere(policy: Policy) {
    let module = compile(policy);
    let (code, bytes, p) = reference(&module);
    assert_eq!(code, 7, "reference run failed");
    // What the guest read: through A, through B, B again after "!!", B
    // after the second append, then ENOENT (44) for the lookup of `tmp`.
    assert!(
        bytes.starts_with(b"hello world|hello world|hello world!!|world|\x2c"),
        "reference output {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(p >= 8, "too few probes ({p}) to test");
    let want = (code, bytes);
    let mut ns = vec![1, 2, p / 5, p / 3, p / 2, 2 * p / 3, 4 * p / 5, p - 1, p];
    ns.sort();
    ns.dedup();
    for &n in &ns {
        checkpoint_restore(&module, n, None, &want);
    }
    // Checkpointed again while the file is the restored anonymous one.
    checkpoint_restore(&module, p / 5, Some(p / 3), &want);
}

#[test]
fn unlinked_loop() {
    everywhere(Policy::Loop);
}

#[test]
fn unlinked_function_entry() {
    everywhere(Policy::FunctionEntry);
}

#[test]
fn unlinked_counter_loop() {
    everywhere(Policy::CounterLoop { threshold_bits: 3 });
}

#[test]
fn unlinked_loop_dirty() {
    everywhere(Policy::LoopDirty);
}

/// The deleted file's contents are in the snapshot; damaging them makes
/// the restore fail with an error, never a panic or a wrong file.
#[test]
fn damaged_contents_refuse() {
    let module = compile(Policy::Loop);
    let (_, _, p) = reference(&module);
    let dir = temp_dir("unlinked", "dmg");
    let snaps = temp_dir("unlinked", "dmg-snaps");
    let snap = snaps.join("snap");
    let out = Command::new(&module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::ProbeCount(p / 2), &snap),
            RunOptions::default(),
        )
        .expect("run");
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"hello world")
        .expect("the deleted file's contents are in the snapshot");
    bytes[at] ^= 0x20;
    std::fs::write(&snap, &bytes).unwrap();
    let r = Command::new(&module)
        .max_wasm_stack(STACK)
        .grants(ckpt_common::grants(&dir))
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::CountProbes, &snaps.join("snap2")),
            RestoreOptions::default(),
        );
    let err = r.expect_err("a damaged snapshot was restored");
    assert!(!err.to_string().is_empty());
    assert_eq!(
        names(&dir),
        Vec::<String>::new(),
        "the damaged restore left files"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&snaps);
}
