//! Checkpoint and restore of `v128` values: a WAT program keeps them live
//! in locals, on the operand stack under calls (mixed with scalars), in
//! parameters and results and in a mutable global, and is checkpointed at
//! every probe under each policy; every restore (into the same
//! compilation, into another policy's, into -O0) must end with the bytes
//! of the uninterrupted run. A snapshot holds each `v128` as 16 bytes in
//! memory order, bit for bit (checked on the global), and a snapshot
//! whose `v128` value stands where the module has an `i32` (or the
//! reverse) is refused before anything runs.

mod ckpt_common;

use ckpt_common::in_memory::{self};

use ckpt_common::{compile, temp_dir};
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::CheckpointError;
use mvvm_snapshot::{Snapshot, SnapshotParts, WasmValue};
use std::path::Path;

const STACK: usize = 1 << 20;

/// Writes the 64 bytes at address 256 (four `v128`s) to the file `out` of
/// the preopened directory (fd 3), then exits with 7. `$mix` recurses with a `v128` parameter and a `v128`
/// under the recursive call; `$scalar` is called with a `v128`, an `i64`
/// and an `f64` under it; `_start` loops with `v128` locals, a `v128`
/// global and a `v128` under the call of `$mix`.
const WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "out")
  (global $g (mut v128) (v128.const i32x4 1 2 3 4))
  (global $n (mut i32) (i32.const 0))
  (func $scalar (param $x i64) (result i64)
    (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005))
             (i64.const 1442695040888963407)))
  (func $mix (param $a v128) (param $n i32) (result v128)
    (local $t v128) (local $k i32)
    (local.set $t (v128.const i64x2 0x0123456789abcdef 0xfedcba9876543210))
    (local.set $k (i32.add (local.get $n) (i32.const 100)))
    (if (result v128) (i32.eqz (local.get $n))
      (then (v128.xor (local.get $a) (local.get $t)))
      (else
        (i32x4.add
          (local.get $a)
          (call $mix
            (i64x2.replace_lane 1
              (i8x16.shuffle 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1 0
                (local.get $a) (local.get $t))
              (i64.add
                (i64.extend_i32_u (local.get $k))
                (call $scalar (i64x2.extract_lane 0 (local.get $a)))))
            (i32.sub (local.get $n) (i32.const 1)))))))
  (func (export "_start")
    (local $acc v128) (local $f v128) (local $i i32) (local $d f64)
    (local.set $acc (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16))
    (local.set $f (v128.const f32x4 1.5 -2.25 nan:0x200000 -0))
    (loop $l
      (local.set $acc
        (i32x4.add
          (local.get $acc)
          (call $mix (v128.xor (local.get $acc) (global.get $g))
                     (i32.and (local.get $i) (i32.const 3)))))
      ;; a v128 (the global) and an f64 under the call of $scalar
      (global.set $g
        (i64x2.add (global.get $g)
          (i64x2.splat
            (i64.extend_i32_u
              (f64.lt (local.get $d)
                (f64.convert_i64_s (call $scalar (i64.extend_i32_u (local.get $i)))))))))
      (local.set $f (f32x4.mul (local.get $f) (v128.const f32x4 1.25 1.25 1.25 1.25)))
      (local.set $d (f64.add (local.get $d) (f64.const 0.5)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 12))))
    (v128.store (i32.const 256) (local.get $acc))
    (v128.store (i32.const 272) (global.get $g))
    (v128.store (i32.const 288) (local.get $f))
    (v128.store (i32.const 304)
      (select (result v128) (local.get $acc) (global.get $g) (i32.const 0)))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 0) (i32.const 256))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 7)))
)"#;

/// The uninterrupted run: its output and the number of probes.
fn reference(module: &Module) -> (Vec<u8>, u64) {
    in_memory::reference(module, STACK, "v128")
}

/// The snapshot of `module` at probe `k`, and the directory it ran in.
fn checkpoint(module: &Module, k: u64) -> (Vec<u8>, std::path::PathBuf) {
    in_memory::checkpoint(module, k, STACK, "v128")
}

/// Restores `snap` (taken in `dir`) into `target` and runs it to its end:
/// its output. Removes `dir`.
fn restore(target: &Module, snap: Vec<u8>, dir: &Path) -> Result<Vec<u8>, mvvm_wasi::Error> {
    in_memory::restore(target, snap, dir, STACK)
}

const POLICIES: [Policy; 3] = [
    Policy::FunctionEntry,
    Policy::Loop,
    Policy::CounterLoop { threshold_bits: 0 },
];

#[test]
fn v128_values_survive_a_checkpoint_at_every_probe() {
    let modules: Vec<Module> = POLICIES.iter().map(|p| compile(WAT, *p, 3)).collect();
    let plain = compile(WAT, Policy::None, 3);
    let (want, _) = reference(&plain);
    assert_eq!(want.len(), 64, "four v128 values written");
    let mut checkpoints = 0;
    for (i, (policy, module)) in POLICIES.iter().zip(&modules).enumerate() {
        let (got, p) = reference(module);
        assert_eq!(got, want, "{policy:?}: uninterrupted run");
        assert!(p >= 10, "{policy:?}: only {p} probes");
        let o0 = compile(WAT, *policy, 0);
        for k in 1..=p {
            let (snap, dir) = checkpoint(module, k);
            assert!(!dir.join("out").exists(), "output before the end");
            let target = match k % 3 {
                0 => module,
                1 => &o0,
                _ => &modules[(i + 1) % modules.len()],
            };
            let after = restore(target, snap, &dir)
                .unwrap_or_else(|e| panic!("{policy:?}: restore of probe {k}: {e}"));
            assert_eq!(after, want, "{policy:?}: checkpoint at probe {k} of {p}");
            checkpoints += 1;
        }
    }
    assert!(checkpoints > 30);
}

#[test]
fn a_v128_global_is_saved_bit_for_bit() {
    // The first probe of the function-entry policy is `_start`'s entry:
    // the global still holds its initial value.
    let module = compile(WAT, Policy::FunctionEntry, 3);
    let (snap, dir) = checkpoint(&module, 1);
    let _ = std::fs::remove_dir_all(dir);
    let snap = mvvm_snapshot::read(std::io::Cursor::new(snap)).expect("read the snapshot");
    let mut init = Vec::new();
    for x in [1u32, 2, 3, 4] {
        init.extend_from_slice(&x.to_le_bytes());
    }
    assert_eq!(snap.globals[0], WasmValue::V128(init.try_into().unwrap()));
    assert_eq!(snap.globals[1], WasmValue::I32(0));
    // `_start`'s locals: $acc, $f (v128), $i (i32), $d (f64), all zero.
    let locals = &snap.frames[0].locals;
    assert_eq!(locals[0], WasmValue::V128([0; 16]));
    assert_eq!(locals[2], WasmValue::I32(0));
}

/// A change to a snapshot's globals and innermost frame's locals.
type Edit = Box<dyn FnOnce(&mut Vec<WasmValue>, &mut Vec<WasmValue>)>;

/// `snap` written again with `edit` applied.
fn altered(
    snap: &Snapshot,
    edit: impl FnOnce(&mut Vec<WasmValue>, &mut Vec<WasmValue>),
) -> Vec<u8> {
    let mut globals = snap.globals.clone();
    let mut frames = snap.frames.clone();
    let mut locals = std::mem::take(&mut frames.last_mut().unwrap().locals);
    edit(&mut globals, &mut locals);
    frames.last_mut().unwrap().locals = locals;
    let memory = snap.memory_bytes().unwrap();
    let parts = SnapshotParts {
        info: snap.info.clone(),
        frames,
        globals,
        tables: snap.tables.clone(),
        exceptions: snap.exceptions.clone(),
        dropped_data: snap.dropped_data.clone(),
        dropped_elems: snap.dropped_elems.clone(),
        wasi: snap.wasi.clone(),
        monotonic_offset_nanos: snap.monotonic_offset_nanos,
        memory: &memory,
        max_pages: snap.memory.max_pages(),
        threads: snap.threads.clone(),
        last_thread_id: snap.last_thread_id,
    };
    let mut bytes = Vec::new();
    mvvm_snapshot::write(&mut bytes, &parts).expect("write the snapshot");
    bytes
}

#[test]
fn v128_values_of_the_wrong_type_are_refused() {
    let module = compile(WAT, Policy::FunctionEntry, 3);
    let (bytes, dir) = checkpoint(&module, 1);
    let snap = mvvm_snapshot::read(std::io::Cursor::new(bytes)).expect("read");
    // Unchanged, it restores.
    restore(&module, altered(&snap, |_, _| {}), &dir).expect("unaltered snapshot");
    let cases: [(&str, Edit); 4] = [
        ("global 0", Box::new(|g, _| g[0] = WasmValue::I32(1))),
        ("global 1", Box::new(|g, _| g[1] = WasmValue::V128([1; 16]))),
        ("local 0", Box::new(|_, l| l[0] = WasmValue::I64(1))),
        ("local 2", Box::new(|_, l| l[2] = WasmValue::V128([2; 16]))),
    ];
    for (what, edit) in cases {
        let dir = temp_dir("v128", "bad");
        match restore(&module, altered(&snap, edit), &dir) {
            Err(mvvm_wasi::Error::Checkpoint(CheckpointError::Mismatch(msg))) => {
                assert!(msg.contains(what), "{what}: {msg}");
            }
            other => panic!("{what}: expected a mismatch, got {other:?}"),
        }
    }
}
