//! Periodic checkpoints written in the background (`checkpoint/
//! background.rs`): the program runs on while a child process writes the
//! snapshot, and each snapshot is still the image of one instant.
//!
//! The guest makes that checkable: iteration `k` of its loop fills 256 KiB
//! with the byte `k` and stores `k` at address 0, so at the loop's stable
//! point with `$i == k` the memory holds iteration `k - 1`'s values. A
//! writer that read memory the program kept writing would save later
//! iterations' bytes beside an earlier `$i`.

mod ckpt_common;

use ckpt_common::{cfg, temp_dir};
use mvvm_abi::Policy;
use mvvm_rt::checkpoint::{
    CheckpointStats, Outcome, Restore, RestoreOptions, RunOptions, SnapshotSource, Trigger,
};
use mvvm_rt::{Module, Store};
use mvvm_snapshot::WasmValue;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

const REGION: u64 = 65536;
const REGION_LEN: u64 = 4 * 65536;

/// 60 000 iterations of a 256 KiB fill: a second or so of work.
const GUEST: &str = r#"(module
  (memory 8)
  (func (export "_start") (local $i i32)
    (loop $l
      (memory.fill (i32.const 65536) (local.get $i) (i32.const 262144))
      (i32.store (i32.const 0) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 60000))))))"#;

/// Where each finished periodic snapshot is copied (the next one replaces
/// the file): `on_checkpoint` is a plain function.
static COPIES: Mutex<(Option<PathBuf>, Vec<PathBuf>)> = Mutex::new((None, Vec::new()));

fn keep_copy(stats: &CheckpointStats) {
    let mut c = COPIES.lock().unwrap();
    let Some(dir) = c.0.clone() else { return };
    let to = dir.join(format!("copy-{}.snap", c.1.len()));
    std::fs::copy(&stats.location, &to).unwrap();
    assert!(
        stats.pause <= stats.trigger_to_durable,
        "paused {:?}, durable after {:?}",
        stats.pause,
        stats.trigger_to_durable
    );
    c.1.push(to);
}

/// The loop counter in the innermost frame of `snap` and the memory it
/// holds.
fn counter_and_memory(snap: &std::path::Path) -> (u32, Vec<u8>) {
    let s = mvvm_snapshot::open_file(snap).unwrap();
    let frame = s.frames.last().expect("a frame");
    let WasmValue::I32(i) = frame.locals[0] else {
        panic!("local 0 is {:?}", frame.locals[0]);
    };
    let mut memory = vec![0u8; s.memory.length_bytes() as usize];
    s.memory.copy_into(&mut memory).unwrap();
    (i, memory)
}

#[test]
fn background_snapshots_are_images_of_one_instant_and_restore() {
    let dir = temp_dir("background", "consistent");
    let module: Module = ckpt_common::compile(GUEST, Policy::Loop, 2);
    let snap = dir.join("p.snap");
    COPIES.lock().unwrap().0 = Some(dir.clone());
    let mut store = Store::new();
    store.set_max_wasm_stack(1 << 20);
    let run = mvvm_rt::checkpoint::Run::new(
        &module,
        cfg(Trigger::Every(Duration::from_millis(15)), &snap),
        RunOptions {
            on_checkpoint: Some(keep_copy),
            ..Default::default()
        },
    )
    .unwrap();
    let out = run.start(&mut store, &[]).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    let copies = std::mem::take(&mut COPIES.lock().unwrap().1);
    assert!(
        copies.len() >= 3,
        "only {} periodic checkpoints in the run",
        copies.len()
    );
    for copy in &copies {
        let (i, memory) = counter_and_memory(copy);
        let last = i.checked_sub(1);
        let at0 = u32::from_le_bytes(memory[0..4].try_into().unwrap());
        assert_eq!(at0, last.unwrap_or(0), "{}: $i = {i}", copy.display());
        let byte = last.unwrap_or(0) as u8;
        let region = &memory[REGION as usize..(REGION + REGION_LEN) as usize];
        let wrong = region.iter().position(|b| *b != byte);
        assert_eq!(
            wrong,
            None,
            "{}: $i = {i}, the region holds another iteration's byte",
            copy.display()
        );
    }
    // The last copy restores and runs to the end.
    let last = copies.last().unwrap();
    let mut restored = Store::new();
    restored.set_max_wasm_stack(1 << 20);
    let r = Restore::open(
        &module,
        SnapshotSource::File(last.clone()),
        1 << 20,
        cfg(Trigger::None, &dir.join("u.snap")),
        RestoreOptions::default(),
    )
    .unwrap();
    let out = r.resume(&mut restored, &[]).unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
